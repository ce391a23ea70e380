# Copyright 2026 The MERIT authors.
# Licensed under the Apache License, Version 2.0.
"""`evaluate` wrapper of MERIT's multi-label ECG classification metrics.

Load it offline by path: `evaluate.load("<repo>/metrics/ecg_classification")`. The computation lives in
`merit_evaluation.metrics` (plain numpy), which must be importable: run from the repository root or install the
repository (`pip install -e .`).
"""

import datasets
import evaluate
import numpy as np


try:
    from merit_evaluation.metrics import compute_classification_metrics
except ImportError as error:  # the module is copied into the `evaluate` cache, so the repository must be importable
    raise ImportError(
        "The `ecg_classification` metric computes with the `merit_evaluation` package of the MERIT repository, which "
        "is not importable here: run from the repository root or install it with `pip install -e <repository>`."
    ) from error


_CITATION = """\
@article{strodthoff2021deep,
  title   = {Deep Learning for {ECG} Analysis: Benchmarks and Insights from {PTB-XL}},
  author  = {Strodthoff, Nils and Wagner, Patrick and Schaeffter, Tobias and Samek, Wojciech},
  journal = {IEEE Journal of Biomedical and Health Informatics},
  volume  = {25},
  number  = {5},
  pages   = {1519--1528},
  year    = {2021}
}
"""

_DESCRIPTION = """\
Multi-label ECG classification metrics: macro AUROC (primary; classes without positives or negatives are skipped
and reported), per-class AUROC, macro F1 at per-class thresholds chosen on the validation split, sample-centric
Fmax (Strodthoff et al. 2021) and percentile-bootstrap confidence intervals over test samples.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list[list[float]]`): scores of shape (n_samples, n_classes); probabilities in [0, 1] for Fmax
        with the default threshold grid.
    references (`list[list[int]]`): multi-hot labels of shape (n_samples, n_classes).
    thresholds (`list[float]`, *optional*): per-class decision thresholds fitted on the validation split
        (`merit_evaluation.thresholds.fit_thresholds`); macro F1 is only reported when given.
    n_bootstrap (`int`, defaults to 1000): bootstrap resamples; 0 disables the confidence intervals.
    confidence_level (`float`, defaults to 0.95): coverage of the percentile intervals.
    seed (`int`, defaults to 0): bootstrap seed.
    fmax_thresholds (`list[float]`, *optional*): Fmax threshold grid (default 0.00, 0.01, ..., 1.00).

Returns:
    `macro_auroc`, `fmax` and (with thresholds) `macro_f1`, each with `<name>_ci_low` / `<name>_ci_high` (None
    without bootstrap); `per_class_auroc` (None for skipped classes), `per_class_f1` (with thresholds),
    `auroc_skipped_classes`, `n_samples` and `bootstrap` (resamples, skipped-class counts, undefined counts).

Examples:
    >>> import evaluate
    >>> metric = evaluate.load("metrics/ecg_classification")
    >>> results = metric.compute(
    ...     references=[[1, 0], [0, 1], [1, 1], [0, 0]],
    ...     predictions=[[0.9, 0.5], [0.3, 0.8], [0.6, 0.4], [0.1, 0.3]],
    ...     n_bootstrap=0,
    ... )
    >>> results["macro_auroc"]
    0.875
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class EcgClassification(evaluate.Metric):
    """Macro AUROC, per-class AUROC, macro F1 at validation thresholds, Fmax and bootstrap intervals."""

    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {
                    "predictions": datasets.Sequence(datasets.Value("float64")),
                    "references": datasets.Sequence(datasets.Value("int64")),
                }
            ),
            reference_urls=["https://doi.org/10.1109/JBHI.2020.3022989"],
        )

    def _compute(
        self,
        predictions,
        references,
        thresholds=None,
        n_bootstrap=1000,
        confidence_level=0.95,
        seed=0,
        fmax_thresholds=None,
    ):
        result = compute_classification_metrics(
            labels=np.asarray(references),
            scores=np.asarray(predictions, dtype=np.float64),
            thresholds=None if thresholds is None else np.asarray(thresholds, dtype=np.float64),
            n_bootstrap=n_bootstrap,
            confidence_level=confidence_level,
            seed=seed,
            fmax_thresholds=None if fmax_thresholds is None else np.asarray(fmax_thresholds, dtype=np.float64),
        )
        return result.to_dict()
