# Copyright 2026 The MERIT authors.
# Licensed under the Apache License, Version 2.0.
"""Reproducible, class-complete subsets of a training split for the label-fraction experiments (1 %, 10 %, 100 %).

`sample_label_fraction` works in two steps on one seeded permutation of the samples:

1. **cover** — classes are visited from the rarest to the most frequent; a class that no chosen sample covers yet
   gets the first of its positives in permutation order (a uniformly random positive). This keeps at least one
   positive of every class that has one in the full set.
2. **fill** — the remaining places go to the other samples in permutation order until
   `ceil(fraction * n_samples)` samples are chosen.

Because both steps only depend on the seed's permutation, a smaller fraction's subset is contained in a larger
fraction's subset for the same seed. When the cover alone needs more samples than the target (tiny fractions with
many rare classes), the subset is larger than requested and a warning says by how much.
"""

from __future__ import annotations

import logging
import math
import numbers

import numpy as np

from ._validation import as_multi_hot, validate_multi_hot


logger = logging.getLogger(__name__)


def sample_label_fraction(labels: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Indices of a class-complete random subset holding `fraction` of the samples.

    Args:
        labels (`np.ndarray`): multi-hot labels of shape `(n_samples, n_classes)`, or integer class indices of shape
            `(n_samples,)` for single-label data.
        fraction (`float`): fraction of samples to keep, in (0, 1]; 1.0 returns every index.
        seed (`int`): seed of the permutation; the same seed gives the same subset.

    Returns:
        `np.ndarray` of shape `(n_subset,)`, sorted int64 indices into the samples, with
        `n_subset >= ceil(fraction * n_samples)` (larger only when needed to cover every class).
    """
    labels = np.asarray(labels)
    if labels.ndim == 1:
        labels = as_multi_hot(labels, int(labels.max()) + 1 if labels.size else 0)
    labels = validate_multi_hot(labels)
    if isinstance(fraction, bool) or not isinstance(fraction, numbers.Real) or not 0.0 < fraction <= 1.0:
        raise ValueError(f"`fraction` must be in (0, 1], got {fraction!r}.")
    n_samples = labels.shape[0]
    if fraction == 1.0:
        return np.arange(n_samples, dtype=np.int64)
    target = math.ceil(fraction * n_samples)
    permutation = np.random.default_rng(seed).permutation(n_samples)
    chosen = np.zeros(n_samples, dtype=bool)
    covered = np.zeros(labels.shape[1], dtype=bool)
    permuted_labels = labels[permutation]
    class_counts = labels.sum(axis=0)
    for class_index in np.argsort(class_counts, kind="stable"):
        if class_counts[class_index] == 0 or covered[class_index]:
            continue
        position = int(np.argmax(permuted_labels[:, class_index]))
        chosen[permutation[position]] = True
        covered |= permuted_labels[position]
    n_cover = int(chosen.sum())
    if n_cover > target:
        logger.warning(
            "Keeping every class needs %d samples, more than the %d of fraction %s; the subset has %d samples.",
            n_cover,
            target,
            fraction,
            n_cover,
        )
    fill = permutation[~chosen[permutation]][: max(target - n_cover, 0)]
    chosen[fill] = True
    return np.flatnonzero(chosen).astype(np.int64)
