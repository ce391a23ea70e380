# Copyright 2026 The MERIT authors.
# Licensed under the Apache License, Version 2.0.
"""Input checks shared by the evaluation modules (label/score shapes, thresholds)."""

from __future__ import annotations

import numpy as np


def as_multi_hot(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """Convert a vector of class indices to a multi-hot matrix.

    Args:
        labels (`np.ndarray` of shape `(n_samples,)`): integer class indices in `[0, num_classes)`.
        num_classes (`int`): number of classes.

    Returns:
        `np.ndarray` of shape `(n_samples, num_classes)` and dtype `int8`.
    """
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise ValueError(f"Class-index labels must be 1-D, got shape {labels.shape}.")
    if labels.size and (
        not np.issubdtype(labels.dtype, np.integer) or labels.min() < 0 or labels.max() >= num_classes
    ):
        raise ValueError(f"Class-index labels must be integers in [0, {num_classes}), got values {np.unique(labels)}.")
    multi_hot = np.zeros((labels.shape[0], num_classes), dtype=np.int8)
    multi_hot[np.arange(labels.shape[0]), labels] = 1
    return multi_hot


def validate_multi_hot(labels: np.ndarray, name: str = "labels") -> np.ndarray:
    """Check that `labels` is a 2-D 0/1 matrix and return it as a boolean array.

    Args:
        labels (`np.ndarray` of shape `(n_samples, n_classes)`): multi-hot labels (bool, int or float 0/1).
        name (`str`): argument name used in error messages.

    Returns:
        `np.ndarray` of shape `(n_samples, n_classes)` and dtype `bool`.
    """
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ValueError(f"`{name}` must be a multi-hot matrix of shape (n_samples, n_classes), got {labels.shape}.")
    if labels.size and not np.isin(labels, (0, 1)).all():
        raise ValueError(f"`{name}` must contain only 0 and 1, got values {np.unique(labels)[:10]}.")
    return labels.astype(bool)


def check_labels_and_scores(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Check labels and scores and bring them to 2-D `(n_samples, n_classes)` bool / float64 arrays.

    Accepted: multi-hot `labels` with `scores` of the same 2-D shape; 1-D integer class indices with 2-D scores
    (single-label data); 1-D 0/1 labels with 1-D scores (one binary class).
    """
    labels = np.asarray(labels)
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim == 1:
        scores = scores[:, None]
        if labels.ndim == 1:
            labels = labels[:, None]
    elif scores.ndim == 2 and labels.ndim == 1:
        labels = as_multi_hot(labels, scores.shape[1])
    if scores.ndim != 2:
        raise ValueError(f"`scores` must have shape (n_samples, n_classes) or (n_samples,), got {scores.shape}.")
    labels = validate_multi_hot(labels)
    if labels.shape != scores.shape:
        raise ValueError(f"`labels` and `scores` must have the same shape, got {labels.shape} and {scores.shape}.")
    if scores.shape[0] == 0:
        raise ValueError("Cannot compute metrics on zero samples.")
    if not np.isfinite(scores).all():
        raise ValueError("`scores` contains NaN or infinite values.")
    return labels, scores


def check_thresholds(thresholds: np.ndarray, n_classes: int) -> np.ndarray:
    """Return per-class thresholds of shape `(n_classes,)` (a scalar is broadcast); NaN is rejected."""
    thresholds = np.asarray(thresholds, dtype=np.float64)
    if thresholds.ndim == 0:
        thresholds = np.full(n_classes, float(thresholds))
    if thresholds.shape != (n_classes,):
        raise ValueError(f"`thresholds` must have shape ({n_classes},) (one per class), got {thresholds.shape}.")
    if np.isnan(thresholds).any():
        raise ValueError("`thresholds` contains NaN.")
    return thresholds
