# Copyright 2026 The MERIT authors.
# Licensed under the Apache License, Version 2.0.
"""Per-class decision thresholds chosen on the **validation** split only.

`fit_thresholds` takes keyword-only `validation_labels` / `validation_scores`, so every call site says which
split it uses, and it is the only function here that sees labels. `apply_thresholds` turns (test) scores into
predictions and never sees labels. A sample is predicted positive for a class when `score >= threshold`, the
rule `merit_evaluation.metrics` uses too.

For each class the threshold maximises the validation F1 over all cut points between distinct validation scores:
predicting the top-`k` scores positive gives `F1 = 2 TP / (n_positives + k)`. The returned threshold is the
midpoint between the lowest included and the highest excluded distinct score (the lowest score when every sample
is included), so test scores that fall between two validation scores are not decided by an arbitrary side.
Ties in F1 are broken towards the higher threshold (fewer positive predictions). A class without any positive
in the validation split cannot be fitted: its threshold is `+inf` (never predicted) and a warning is logged.
"""

from __future__ import annotations

import logging

import numpy as np

from ._validation import check_labels_and_scores, check_thresholds


logger = logging.getLogger(__name__)


def _best_threshold(is_positive: np.ndarray, scores: np.ndarray) -> float:
    """F1-maximising threshold of one class (`is_positive` bool and `scores` float, both `(n_samples,)`)."""
    n_positive = int(is_positive.sum())
    if n_positive == 0:
        return float("inf")
    order = np.argsort(-scores, kind="stable")
    sorted_scores = scores[order]
    # a cut can only be placed after the last sample of a group of equal scores
    group_ends = np.flatnonzero(np.r_[sorted_scores[1:] != sorted_scores[:-1], True])
    true_positive = np.cumsum(is_positive[order])[group_ends]
    n_predicted = group_ends + 1
    f1 = 2 * true_positive / (n_positive + n_predicted)
    best = int(np.argmax(f1))  # first maximum = highest threshold
    lowest_included = sorted_scores[group_ends[best]]
    if best + 1 == group_ends.size:
        return float(lowest_included)
    highest_excluded = sorted_scores[group_ends[best] + 1]
    return float((lowest_included + highest_excluded) / 2)


def fit_thresholds(*, validation_labels: np.ndarray, validation_scores: np.ndarray) -> np.ndarray:
    """Choose one decision threshold per class maximising F1 on the validation split.

    Args:
        validation_labels (`np.ndarray` of shape `(n_samples, n_classes)`): multi-hot validation labels.
        validation_scores (`np.ndarray` of shape `(n_samples, n_classes)`): validation scores.

    Returns:
        `np.ndarray` of shape `(n_classes,)` (float64); `+inf` for classes without validation positives.
    """
    labels, scores = check_labels_and_scores(validation_labels, validation_scores)
    thresholds = np.array([_best_threshold(labels[:, c], scores[:, c]) for c in range(labels.shape[1])])
    unfitted = np.flatnonzero(np.isinf(thresholds)).tolist()
    if unfitted:
        logger.warning(
            "No validation positives for classes %s: their threshold is +inf (never predicted), so their F1 is 0.",
            unfitted,
        )
    return thresholds


def apply_thresholds(scores: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Binary predictions `scores >= thresholds`.

    Args:
        scores (`np.ndarray` of shape `(n_samples, n_classes)`): scores of any split.
        thresholds (`np.ndarray` of shape `(n_classes,)`): from `fit_thresholds`.

    Returns:
        `np.ndarray` of shape `(n_samples, n_classes)` and dtype `bool`.
    """
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 2:
        raise ValueError(f"`scores` must have shape (n_samples, n_classes), got {scores.shape}.")
    return scores >= check_thresholds(thresholds, scores.shape[1])[None, :]
