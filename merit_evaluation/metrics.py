# Copyright 2026 The MERIT authors.
# Licensed under the Apache License, Version 2.0.
"""Multi-label ECG classification metrics in plain numpy: macro AUROC, per-class AUROC, macro F1 at given
per-class thresholds, sample-centric Fmax, and percentile-bootstrap confidence intervals.

Every metric is computed from **per-sample weights**: the point estimate uses weight 1 for every test sample
and a bootstrap resample uses the number of times each sample was drawn. This gives exactly the value that the
metric would have on the resampled (duplicated) data, lets all resamples of a chunk be evaluated with a few
matrix products, and keeps one implementation of each computation.

Conventions (shared with `merit_evaluation.thresholds`):

- `labels` is a multi-hot matrix of shape `(n_samples, n_classes)` with values 0/1. A 1-D integer vector of class
  indices (single-label data) is accepted together with 2-D scores, and a 1-D 0/1 vector with 1-D scores is a
  single binary class.
- `scores` has the same shape; higher means "more likely positive".
- A sample is predicted positive for a class when `score >= threshold`.

Definitions:

- **AUROC** of a class is the Mann-Whitney probability that a random positive scores higher than a random
  negative, ties counting one half (identical to `sklearn.metrics.roc_auc_score`). It is undefined for a class
  without positives or without negatives; such a class is *skipped*: its per-class AUROC is NaN, the macro AUROC
  is the mean over the remaining classes, and the skipped classes are reported. (scikit-learn raises instead.)
  In a bootstrap resample the same rule applies per resample, and the number of skipped (class, resample) pairs
  and of resamples with at least one skipped class are reported.
- **F1** of a class is `2 TP / (2 TP + FP + FN)`, and 0 when that denominator is 0 (no positives and no
  predictions), like `sklearn.metrics.f1_score(zero_division=0)`. Macro F1 is the unweighted mean over all
  classes, also in bootstrap resamples.
- **Fmax** is the sample-centric maximum F-measure used for ECG benchmarks by Strodthoff et al. (2021, "Deep
  Learning for ECG Analysis: Benchmarks and Insights from PTB-XL", IEEE JBHI), taken from protein function
  prediction (CAFA; Radivojac et al. 2013). For a threshold `t`, with `P_i(t)` the classes predicted for sample
  `i` (`score >= t`) and `T_i` its true classes::

      precision(t) = mean over samples with |P_i(t)| > 0       of |P_i(t) & T_i| / |P_i(t)|
      recall(t)    = mean over samples with |T_i| > 0          of |P_i(t) & T_i| / |T_i|
      Fmax         = max over t of 2 precision(t) recall(t) / (precision(t) + recall(t))

  Thresholds at which no sample has a prediction are skipped (precision undefined); `F = 0` where
  `precision + recall = 0`. One threshold is shared by all classes, so the scores must be comparable across
  classes (probabilities); the default grid is 0.00, 0.01, ..., 1.00.
- **Confidence intervals**: percentile bootstrap over test samples. Resample `r` draws `n_samples` indices with
  replacement from `numpy.random.default_rng([seed, r])` (see `bootstrap_indices`), so a resample is the same
  whatever the chunking or the number of resamples. The interval is given by the `(1 - level) / 2` and
  `(1 + level) / 2` quantiles of the resampled values; resamples where a metric is undefined are left out of
  its interval and counted.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from ._validation import as_multi_hot, check_labels_and_scores, validate_multi_hot
from .thresholds import apply_thresholds


__all__ = [
    "BootstrapSummary",
    "ClassificationMetrics",
    "MetricValue",
    "as_multi_hot",
    "bootstrap_indices",
    "bootstrap_metric_values",
    "bootstrap_weights",
    "check_bootstrap_arguments",
    "compute_classification_metrics",
    "fmax",
    "macro_f1",
    "macro_roc_auc",
    "paired_bootstrap_differences",
    "per_class_f1",
    "per_class_roc_auc",
    "percentile_interval",
    "validate_multi_hot",
    "weighted_macro_auroc",
]

logger = logging.getLogger(__name__)

DEFAULT_FMAX_THRESHOLDS = np.round(np.linspace(0.0, 1.0, 101), 2)
"""Default threshold grid of `fmax`: 0.00, 0.01, ..., 1.00."""

_BOOTSTRAP_CHUNK_SIZE = 100
_ALL_CLASSES_UNDEFINED = "AUROC is undefined for every class: each class lacks positives or negatives."


@dataclass
class MetricValue:
    """A metric value with an optional confidence interval (`None` when no bootstrap was run).

    Attributes:
        value (`float`): the point estimate on the full evaluation set.
        ci_low (`float`, *optional*): lower bound of the confidence interval.
        ci_high (`float`, *optional*): upper bound of the confidence interval.
    """

    value: float
    ci_low: float | None = None
    ci_high: float | None = None


def difference_markdown(difference: MetricValue) -> str:
    """A paired difference as a markdown cell, `+0.012 (-0.020 to +0.045)`, in bold when its interval excludes 0."""
    if difference.ci_low is None:
        return f"{difference.value:+.3f}"
    text = f"{difference.value:+.3f} ({difference.ci_low:+.3f} to {difference.ci_high:+.3f})"
    return f"**{text}**" if difference.ci_low > 0 or difference.ci_high < 0 else text


@dataclass
class BootstrapSummary:
    """How the bootstrap went.

    Attributes:
        n_resamples (`int`): number of resamples drawn.
        confidence_level (`float`): coverage of the percentile intervals, e.g. 0.95.
        seed (`int`): seed of the resamples.
        n_resamples_with_skipped_auroc_classes (`int`): resamples in which at least one class had no positives or
            no negatives and was therefore left out of that resample's macro AUROC.
        n_skipped_auroc_class_resamples (`int`): total number of (class, resample) pairs left out of the macro AUROC.
        n_undefined (`dict[str, int]`): per metric, resamples where it was undefined and left out of its interval.
        resampled_macro_auroc (`list[float]`, *optional*): the macro AUROC of every resample, in order (NaN where
            undefined). Resample `r` draws the same records for every model scored on the same test set with the
            same seed (`bootstrap_indices`), so two rows give a *paired* bootstrap of their difference
            (`paired_difference`).
    """

    n_resamples: int
    confidence_level: float
    seed: int
    n_resamples_with_skipped_auroc_classes: int
    n_skipped_auroc_class_resamples: int
    n_undefined: dict[str, int] = field(default_factory=dict)
    resampled_macro_auroc: list[float] | None = None


@dataclass
class ClassificationMetrics:
    """All metrics of one evaluation.

    Attributes:
        metrics (`dict[str, MetricValue]`): `macro_auroc`, `fmax` and, when thresholds were given, `macro_f1`.
        per_class_auroc (`np.ndarray` of shape `(n_classes,)`): NaN for classes without positives or negatives.
        per_class_f1 (`np.ndarray` of shape `(n_classes,)`, *optional*): when thresholds were given.
        auroc_skipped_classes (`list[int]`): indices of the classes left out of the point-estimate macro AUROC.
        n_samples (`int`): number of evaluated samples.
        bootstrap (`BootstrapSummary`, *optional*): `None` when `n_bootstrap=0`.
    """

    metrics: dict[str, MetricValue]
    per_class_auroc: np.ndarray
    per_class_f1: np.ndarray | None
    auroc_skipped_classes: list[int]
    n_samples: int
    bootstrap: BootstrapSummary | None

    def to_dict(self) -> dict:
        """JSON-friendly flat dictionary (NaN per-class values become `None`)."""
        flat: dict = {}
        for name, metric in self.metrics.items():
            flat[name] = metric.value
            flat[f"{name}_ci_low"] = metric.ci_low
            flat[f"{name}_ci_high"] = metric.ci_high
        flat["per_class_auroc"] = [None if np.isnan(v) else float(v) for v in self.per_class_auroc]
        if self.per_class_f1 is not None:
            flat["per_class_f1"] = [float(v) for v in self.per_class_f1]
        flat["auroc_skipped_classes"] = list(self.auroc_skipped_classes)
        flat["n_samples"] = self.n_samples
        flat["bootstrap"] = None if self.bootstrap is None else asdict(self.bootstrap)
        return flat


# --------------------------------------------------------------------------------------------------------------
# Weighted implementations (weights: (n_resamples, n_samples) non-negative sample counts)
# --------------------------------------------------------------------------------------------------------------


def _weighted_auroc(labels: np.ndarray, scores: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Per-class AUROC for each row of sample weights; NaN where a class has no positive or no negative weight.

    Returns:
        `np.ndarray` of shape `(n_resamples, n_classes)`.
    """
    n_resamples = weights.shape[0]
    n_classes = labels.shape[1]
    auroc = np.full((n_resamples, n_classes), np.nan)
    for class_index in range(n_classes):
        order = np.argsort(scores[:, class_index], kind="stable")
        sorted_scores = scores[order, class_index]
        is_positive = labels[order, class_index]
        sorted_weights = weights[:, order]
        # one group per distinct score: ties share the group, and a tied (positive, negative) pair counts 1/2
        group_starts = np.flatnonzero(np.r_[True, sorted_scores[1:] != sorted_scores[:-1]])
        positive = np.add.reduceat(np.where(is_positive, sorted_weights, 0.0), group_starts, axis=1)
        negative = np.add.reduceat(np.where(is_positive, 0.0, sorted_weights), group_starts, axis=1)
        negatives_below = np.cumsum(negative, axis=1) - negative
        concordant = (positive * (negatives_below + 0.5 * negative)).sum(axis=1)
        n_positive = positive.sum(axis=1)
        n_negative = negative.sum(axis=1)
        defined = (n_positive > 0) & (n_negative > 0)
        auroc[defined, class_index] = concordant[defined] / (n_positive[defined] * n_negative[defined])
    return auroc


def _macro_auroc(auroc: np.ndarray) -> np.ndarray:
    """Mean over the defined classes of each row of `(n_resamples, n_classes)` AUROCs; NaN if none is defined."""
    defined = ~np.isnan(auroc)
    n_defined = defined.sum(axis=1)
    total = np.where(defined, auroc, 0.0).sum(axis=1)
    return np.divide(total, n_defined, out=np.full(auroc.shape[0], np.nan), where=n_defined > 0)


def _weighted_f1(labels: np.ndarray, predictions: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Per-class F1 (0 when `2 TP + FP + FN = 0`) for each row of sample weights, shape `(n_resamples, n_classes)`."""
    true_positive = weights @ (labels & predictions)
    false_positive = weights @ (~labels & predictions)
    false_negative = weights @ (labels & ~predictions)
    denominator = 2 * true_positive + false_positive + false_negative
    return np.divide(2 * true_positive, denominator, out=np.zeros_like(denominator), where=denominator > 0)


@dataclass
class _FmaxStatistics:
    """Per-sample precision/recall at each threshold of the grid, reused across bootstrap resamples."""

    sample_precision: np.ndarray  # (n_samples, n_thresholds), 0 where the sample has no prediction
    has_prediction: np.ndarray  # (n_samples, n_thresholds) float 0/1
    sample_recall: np.ndarray  # (n_samples, n_thresholds), 0 where the sample has no true label
    has_label: np.ndarray  # (n_samples,) float 0/1

    @classmethod
    def from_arrays(cls, labels: np.ndarray, scores: np.ndarray, grid: np.ndarray) -> _FmaxStatistics:
        n_samples, n_thresholds = scores.shape[0], grid.shape[0]
        # bucket k of a score = number of grid thresholds <= score; the score is predicted at grid[j] iff j < k
        bucket = np.searchsorted(grid, scores, side="right")
        flat = np.arange(n_samples)[:, None] * (n_thresholds + 1) + bucket
        size = n_samples * (n_thresholds + 1)
        predicted_hist = np.bincount(flat.ravel(), minlength=size).reshape(n_samples, n_thresholds + 1)
        correct_hist = np.bincount(flat[labels], minlength=size).reshape(n_samples, n_thresholds + 1)
        n_predicted = np.cumsum(predicted_hist[:, ::-1], axis=1)[:, ::-1][:, 1:].astype(np.float64)
        n_correct = np.cumsum(correct_hist[:, ::-1], axis=1)[:, ::-1][:, 1:].astype(np.float64)
        n_true = labels.sum(axis=1).astype(np.float64)[:, None]
        return cls(
            sample_precision=np.divide(n_correct, n_predicted, out=np.zeros_like(n_correct), where=n_predicted > 0),
            has_prediction=(n_predicted > 0).astype(np.float64),
            sample_recall=np.divide(n_correct, n_true, out=np.zeros_like(n_correct), where=n_true > 0),
            has_label=(n_true[:, 0] > 0).astype(np.float64),
        )

    def fmax(self, weights: np.ndarray) -> np.ndarray:
        """Fmax for each row of sample weights, shape `(n_resamples,)`; NaN where undefined at every threshold."""
        n_with_prediction = weights @ self.has_prediction
        n_with_label = (weights @ self.has_label)[:, None]
        precision = np.divide(
            weights @ self.sample_precision,
            n_with_prediction,
            out=np.full_like(n_with_prediction, np.nan),
            where=n_with_prediction > 0,
        )
        recall = np.divide(
            weights @ self.sample_recall, n_with_label, out=np.full_like(precision, np.nan), where=n_with_label > 0
        )
        total = precision + recall
        f_measure = np.divide(2 * precision * recall, total, out=np.zeros_like(total), where=total > 0)
        f_measure[np.isnan(total)] = np.nan
        result = np.full(weights.shape[0], np.nan)
        defined = ~np.isnan(f_measure).all(axis=1)
        result[defined] = np.nanmax(f_measure[defined], axis=1)
        return result


def _fmax_grid(scores: np.ndarray, thresholds: np.ndarray | None) -> np.ndarray:
    if thresholds is None:
        if scores.min() < 0.0 or scores.max() > 1.0:
            raise ValueError(
                f"Fmax with the default threshold grid 0.00..1.00 needs scores in [0, 1] (probabilities), got scores "
                f"in [{scores.min():.4g}, {scores.max():.4g}]; pass probabilities or an explicit `fmax_thresholds`."
            )
        return DEFAULT_FMAX_THRESHOLDS
    grid = np.unique(np.asarray(thresholds, dtype=np.float64))
    if grid.ndim != 1 or grid.size == 0 or not np.isfinite(grid).all():
        raise ValueError(f"`fmax_thresholds` must be a non-empty 1-D array of finite values, got {thresholds!r}.")
    return grid


# --------------------------------------------------------------------------------------------------------------
# Public point-estimate metrics
# --------------------------------------------------------------------------------------------------------------


def per_class_roc_auc(labels: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """AUROC of every class.

    Args:
        labels (`np.ndarray` of shape `(n_samples, n_classes)`): multi-hot labels.
        scores (`np.ndarray` of shape `(n_samples, n_classes)`): scores, higher = more likely positive.

    Returns:
        `np.ndarray` of shape `(n_classes,)`, NaN for classes without positives or without negatives.
    """
    labels, scores = check_labels_and_scores(labels, scores)
    return _weighted_auroc(labels, scores, np.ones((1, labels.shape[0])))[0]


def macro_roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Mean AUROC over the classes where it is defined (see module docstring); raises if it is defined for none."""
    labels, scores = check_labels_and_scores(labels, scores)
    auroc = _weighted_auroc(labels, scores, np.ones((1, labels.shape[0])))
    if np.isnan(auroc).all():
        raise ValueError(_ALL_CLASSES_UNDEFINED)
    return float(_macro_auroc(auroc)[0])


def per_class_f1(labels: np.ndarray, scores: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """F1 of every class when predicting `score >= threshold`.

    Args:
        labels (`np.ndarray` of shape `(n_samples, n_classes)`): multi-hot labels.
        scores (`np.ndarray` of shape `(n_samples, n_classes)`): scores.
        thresholds (`np.ndarray` of shape `(n_classes,)` or a scalar): decision thresholds, chosen on validation data
            (`merit_evaluation.thresholds.fit_thresholds`).

    Returns:
        `np.ndarray` of shape `(n_classes,)`.
    """
    labels, scores = check_labels_and_scores(labels, scores)
    predictions = apply_thresholds(scores, thresholds)
    return _weighted_f1(labels, predictions, np.ones((1, labels.shape[0])))[0]


def macro_f1(labels: np.ndarray, scores: np.ndarray, thresholds: np.ndarray) -> float:
    """Unweighted mean of `per_class_f1` over all classes."""
    return float(per_class_f1(labels, scores, thresholds).mean())


def fmax(labels: np.ndarray, scores: np.ndarray, fmax_thresholds: np.ndarray | None = None) -> float:
    """Sample-centric Fmax (see module docstring).

    Args:
        labels (`np.ndarray` of shape `(n_samples, n_classes)`): multi-hot labels.
        scores (`np.ndarray` of shape `(n_samples, n_classes)`): probabilities in [0, 1] unless `fmax_thresholds`
            is given.
        fmax_thresholds (`np.ndarray` of shape `(n_thresholds,)`, *optional*): the grid of shared thresholds;
            defaults to 0.00, 0.01, ..., 1.00.

    Returns:
        `float`, NaN when no threshold of the grid yields a prediction.
    """
    labels, scores = check_labels_and_scores(labels, scores)
    statistics = _FmaxStatistics.from_arrays(labels, scores, _fmax_grid(scores, fmax_thresholds))
    return float(statistics.fmax(np.ones((1, labels.shape[0])))[0])


def bootstrap_indices(n_samples: int, resample: int, seed: int) -> np.ndarray:
    """Sample indices (with replacement) of bootstrap resample number `resample`.

    Args:
        n_samples (`int`): size of the evaluation set.
        resample (`int`): resample number, 0-based.
        seed (`int`): bootstrap seed.

    Returns:
        `np.ndarray` of shape `(n_samples,)` with values in `[0, n_samples)`.
    """
    return np.random.default_rng([seed, resample]).integers(0, n_samples, size=n_samples)


def bootstrap_weights(n_samples: int, resamples: range, seed: int) -> np.ndarray:
    """Per-sample weights of bootstrap resamples: how often each sample was drawn (`bootstrap_indices`).

    Args:
        n_samples (`int`): size of the evaluation set.
        resamples (`range`): resample numbers, 0-based.
        seed (`int`): bootstrap seed.

    Returns:
        `np.ndarray` of shape `(len(resamples), n_samples)`, float64; each row sums to `n_samples`.
    """
    return np.stack(
        [np.bincount(bootstrap_indices(n_samples, r, seed), minlength=n_samples) for r in resamples]
    ).astype(np.float64)


def percentile_interval(values: np.ndarray, confidence_level: float) -> tuple[float | None, float | None]:
    """Percentile interval of resampled values, NaNs (undefined resamples) left out; `(None, None)` if all are."""
    finite = values[~np.isnan(values)]
    if finite.size == 0:
        return None, None
    low, high = np.quantile(finite, [(1 - confidence_level) / 2, (1 + confidence_level) / 2])
    return float(low), float(high)


def paired_difference(
    value_a: float,
    resampled_a: Sequence[float],
    value_b: float,
    resampled_b: Sequence[float],
    confidence_level: float = 0.95,
) -> MetricValue:
    """
    The difference `a - b` of two models' metric on the same test records, with the percentile interval of the
    per-resample differences: a paired bootstrap, valid when resample `r` drew the same records for both (same test
    set, same bootstrap seed; see `BootstrapSummary.resampled_macro_auroc`). Resamples where either is undefined
    are left out. For stored resamples (two `results.json` rows); `paired_bootstrap_differences` resamples live
    metric functions.
    """
    resampled_a, resampled_b = np.asarray(resampled_a, dtype=float), np.asarray(resampled_b, dtype=float)
    if resampled_a.shape != resampled_b.shape:
        raise ValueError(
            f"A paired difference needs the same bootstrap resamples for both models; got {resampled_a.shape[0]} "
            f"and {resampled_b.shape[0]} resamples."
        )
    low, high = percentile_interval(resampled_a - resampled_b, confidence_level)
    return MetricValue(value=float(value_a - value_b), ci_low=low, ci_high=high)


WeightedMetrics = Callable[[np.ndarray], dict[str, np.ndarray]]
"""`weights (n_resamples, n_samples) -> {metric name: values (n_resamples,)}`: metrics of per-sample statistics for
any sample weights (weight 1 everywhere is the point estimate; see the module docstring)."""


def weighted_macro_auroc(labels: np.ndarray, scores: np.ndarray) -> WeightedMetrics:
    """`WeightedMetrics` of the macro AUROC (`{"macro_auroc": ...}`, NaN for a resample where no class is defined),
    e.g. for `paired_bootstrap_differences` of two score matrices on the same labelled samples."""
    labels, scores = check_labels_and_scores(labels, scores)
    return lambda weights: {"macro_auroc": _macro_auroc(_weighted_auroc(labels, scores, np.asarray(weights)))}


def check_bootstrap_arguments(n_bootstrap, confidence_level) -> None:
    """Raise a `ValueError` unless `n_bootstrap` is a non-negative integer and `confidence_level` is in (0, 1)."""
    if not isinstance(n_bootstrap, (int, np.integer)) or n_bootstrap < 0:
        raise ValueError(f"`n_bootstrap` must be a non-negative integer, got {n_bootstrap!r}.")
    if not 0.0 < confidence_level < 1.0:
        raise ValueError(f"`confidence_level` must be in (0, 1), got {confidence_level!r}.")


def bootstrap_metric_values(
    metric_values: WeightedMetrics,
    n_samples: int,
    n_bootstrap: int = 1000,
    confidence_level: float = 0.95,
    seed: int = 0,
) -> dict[str, MetricValue]:
    """Point estimates and percentile-bootstrap intervals of weighted metrics.

    Args:
        metric_values (`WeightedMetrics`): the metrics for any sample weights.
        n_samples (`int`): size of the evaluation set.
        n_bootstrap (`int`, defaults to 1000): resamples (`bootstrap_weights`); 0 leaves the intervals `None`.
        confidence_level (`float`, defaults to 0.95): coverage of the intervals, in (0, 1).
        seed (`int`, defaults to 0): bootstrap seed.

    Returns:
        `dict[str, MetricValue]`, one per metric `metric_values` returns (NaN resamples left out of the interval).
    """
    check_bootstrap_arguments(n_bootstrap, confidence_level)
    point = metric_values(np.ones((1, n_samples)))
    metrics = {name: MetricValue(value=float(values[0])) for name, values in point.items()}
    if n_bootstrap > 0:
        resampled = _resampled_values(metric_values, n_samples, n_bootstrap, seed)
        for name, values in resampled.items():
            metrics[name].ci_low, metrics[name].ci_high = percentile_interval(values, confidence_level)
    return metrics


def _resampled_values(metric_values: WeightedMetrics, n_samples: int, n_bootstrap: int, seed: int) -> dict:
    chunks: dict[str, list[np.ndarray]] = {}
    for start in range(0, n_bootstrap, _BOOTSTRAP_CHUNK_SIZE):
        weights = bootstrap_weights(n_samples, range(start, min(start + _BOOTSTRAP_CHUNK_SIZE, n_bootstrap)), seed)
        for name, values in metric_values(weights).items():
            chunks.setdefault(name, []).append(values)
    return {name: np.concatenate(values) for name, values in chunks.items()}


def paired_bootstrap_differences(
    metric_values_a: WeightedMetrics,
    metric_values_b: WeightedMetrics,
    n_samples: int,
    n_bootstrap: int = 1000,
    confidence_level: float = 0.95,
    seed: int = 0,
) -> dict[str, MetricValue]:
    """Paired bootstrap of the difference `a - b` of two systems scored on the same samples.

    Each resample draws the same samples for both systems (`bootstrap_weights`), and the interval is the percentile
    interval of the resampled differences, so it accounts for the two systems' scores being correlated per sample.
    An interval that excludes 0 says the difference is significant at the chosen level.

    Args:
        metric_values_a, metric_values_b (`WeightedMetrics`): the two systems' metrics on the same `n_samples`
            samples, in the same order; only the metrics both return are compared.
        n_samples (`int`), n_bootstrap (`int`, defaults to 1000), confidence_level (`float`, defaults to 0.95),
        seed (`int`, defaults to 0): as in `bootstrap_metric_values`.

    Returns:
        `dict[str, MetricValue]`: the point difference and its interval per shared metric.
    """

    def difference(weights):
        values_a, values_b = metric_values_a(weights), metric_values_b(weights)
        return {name: values_a[name] - values_b[name] for name in values_a if name in values_b}

    return bootstrap_metric_values(difference, n_samples, n_bootstrap, confidence_level, seed)


def compute_classification_metrics(
    labels: np.ndarray,
    scores: np.ndarray,
    thresholds: np.ndarray | None = None,
    n_bootstrap: int = 1000,
    confidence_level: float = 0.95,
    seed: int = 0,
    fmax_thresholds: np.ndarray | None = None,
) -> ClassificationMetrics:
    """Macro AUROC (primary), per-class AUROC, Fmax and, given thresholds, macro F1, with bootstrap intervals.

    Args:
        labels (`np.ndarray` of shape `(n_samples, n_classes)`): multi-hot test labels.
        scores (`np.ndarray` of shape `(n_samples, n_classes)`): test scores (probabilities for Fmax with the
            default grid).
        thresholds (`np.ndarray` of shape `(n_classes,)`, *optional*): per-class decision thresholds fitted on the
            validation split; macro F1 is only reported when they are given.
        n_bootstrap (`int`, defaults to 1000): number of bootstrap resamples; 0 disables the intervals.
        confidence_level (`float`, defaults to 0.95): coverage of the percentile intervals, in (0, 1).
        seed (`int`, defaults to 0): bootstrap seed.
        fmax_thresholds (`np.ndarray`, *optional*): Fmax threshold grid (default 0.00, 0.01, ..., 1.00).

    Returns:
        `ClassificationMetrics`.
    """
    labels, scores = check_labels_and_scores(labels, scores)
    if not isinstance(n_bootstrap, (int, np.integer)) or n_bootstrap < 0:
        raise ValueError(f"`n_bootstrap` must be a non-negative integer, got {n_bootstrap!r}.")
    if not 0.0 < confidence_level < 1.0:
        raise ValueError(f"`confidence_level` must be in (0, 1), got {confidence_level!r}.")
    n_samples, n_classes = labels.shape
    predictions = None
    if thresholds is not None:
        predictions = apply_thresholds(scores, thresholds)
    fmax_statistics = _FmaxStatistics.from_arrays(labels, scores, _fmax_grid(scores, fmax_thresholds))

    def metrics_for_weights(weights: np.ndarray) -> dict[str, np.ndarray]:
        auroc = _weighted_auroc(labels, scores, weights)
        values = {"macro_auroc": _macro_auroc(auroc), "fmax": fmax_statistics.fmax(weights), "auroc": auroc}
        if predictions is not None:
            values["f1"] = _weighted_f1(labels, predictions, weights)
            values["macro_f1"] = values["f1"].mean(axis=1)
        return values

    point = metrics_for_weights(np.ones((1, n_samples)))
    per_class_auroc = point["auroc"][0]
    skipped_classes = np.flatnonzero(np.isnan(per_class_auroc)).tolist()
    if len(skipped_classes) == n_classes:
        raise ValueError(_ALL_CLASSES_UNDEFINED)
    if skipped_classes:
        logger.warning(
            "AUROC undefined (no positives or no negatives) for %d of %d classes %s; they are left out of the "
            "macro AUROC.",
            len(skipped_classes),
            n_classes,
            skipped_classes,
        )
    metric_names = ["macro_auroc", "fmax"] + (["macro_f1"] if predictions is not None else [])
    metrics = {name: MetricValue(value=float(point[name][0])) for name in metric_names}

    bootstrap = None
    if n_bootstrap > 0:
        resampled = {name: [] for name in metric_names}
        n_skipped_per_resample = []
        for start in range(0, n_bootstrap, _BOOTSTRAP_CHUNK_SIZE):
            stop = min(start + _BOOTSTRAP_CHUNK_SIZE, n_bootstrap)
            weights = bootstrap_weights(n_samples, range(start, stop), seed)
            values = metrics_for_weights(weights)
            for name in metric_names:
                resampled[name].append(values[name])
            n_skipped_per_resample.append(np.isnan(values["auroc"]).sum(axis=1))
        n_skipped_per_resample = np.concatenate(n_skipped_per_resample)
        n_undefined = {}
        resampled_macro_auroc = np.concatenate(resampled["macro_auroc"])
        for name in metric_names:
            values = np.concatenate(resampled[name])
            n_undefined[name] = int(np.isnan(values).sum())
            metrics[name].ci_low, metrics[name].ci_high = percentile_interval(values, confidence_level)
        extra_skipped = n_skipped_per_resample - len(skipped_classes)
        bootstrap = BootstrapSummary(
            n_resamples=n_bootstrap,
            confidence_level=confidence_level,
            seed=seed,
            n_resamples_with_skipped_auroc_classes=int((n_skipped_per_resample > 0).sum()),
            n_skipped_auroc_class_resamples=int(n_skipped_per_resample.sum()),
            n_undefined=n_undefined,
            resampled_macro_auroc=[round(float(value), 6) for value in resampled_macro_auroc],
        )
        if (extra_skipped > 0).any():
            logger.info(
                "Bootstrap: %d of %d resamples left at least one more class out of the macro AUROC (no positives or "
                "no negatives in that resample).",
                int((extra_skipped > 0).sum()),
                n_bootstrap,
            )
    return ClassificationMetrics(
        metrics=metrics,
        per_class_auroc=per_class_auroc,
        per_class_f1=None if predictions is None else point["f1"][0],
        auroc_skipped_classes=skipped_classes,
        n_samples=n_samples,
        bootstrap=bootstrap,
    )
