# Copyright 2026 The MERIT authors.
# Licensed under the Apache License, Version 2.0.
"""Training curves (the losses `train_merit.py` logs) and ROC curves with per-class AUROC (evaluation outputs)."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence

import matplotlib
import numpy as np
from matplotlib.figure import Figure


TRAINING_CURVE_PANELS: tuple[tuple[str, str], ...] = (
    ("loss", "Total loss"),
    ("reconstruction_loss", "Masked reconstruction loss (MSE)"),
    ("contrastive_loss", "ECG-report contrastive loss (InfoNCE)"),
    ("zero_shot_macro_auroc", "Validation zero-shot macro AUROC"),
)
"""`(metric, title)` of each panel: the curves are `train/<metric>` and `val/<metric>` of the history."""

REFERENCE_LEVELS = {
    "reconstruction_loss": ("val/reconstruction_predict_zero", "predicting zeros (validation)"),
    "contrastive_loss": ("val/contrastive_chance", "chance, ln B (validation)"),
}
"""Panels with a no-learning level drawn as a dashed line, when `train_merit.py` logged it: `metric -> (key, label)`."""

TRAIN_COLOR = "#1f77b4"
VALIDATION_COLOR = "#d62728"
NOT_LOGGED = "not logged"
_ROC_LEGEND_MAX_CLASSES = 12


def _finite_number(value) -> bool:
    is_number = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
    return is_number and math.isfinite(value)


def _series(history: Sequence[Mapping], key: str) -> tuple[np.ndarray, np.ndarray]:
    """`(steps, values)` of the entries of `history` that log `key`, in step order."""
    points = sorted((entry["step"], entry[key]) for entry in history if key in entry and entry[key] is not None)
    if not points:
        return np.empty(0), np.empty(0)
    steps, values = zip(*points)
    return np.asarray(steps, dtype=np.float64), np.asarray(values, dtype=np.float64)


def plot_training_curves(history: Sequence[Mapping], path: str | os.PathLike | None = None, dpi: int = 120) -> Figure:
    """
    Plots the train and validation curves of the losses `train_merit.py` logs.

    Args:
        history (`Sequence[Mapping]`):
            The logged entries, each a dict with a numeric `step` and any of `train/loss`,
            `train/reconstruction_loss`, `train/contrastive_loss`, `val/loss`, `val/reconstruction_loss`,
            `val/contrastive_loss` and `val/zero_shot_macro_auroc` (other keys, e.g. `lr`, are ignored).
        path (`str` or `os.PathLike`, *optional*):
            Where to save the figure as PNG.
        dpi (`int`, *optional*, defaults to 120):
            Resolution of the saved PNG.

    Returns:
        `matplotlib.figure.Figure` with 2 x 2 axes, one per entry of `TRAINING_CURVE_PANELS`; a panel whose metric
        was never logged says "not logged".
    """
    if isinstance(history, (str, bytes, Mapping)) or not isinstance(history, Sequence) or not history:
        raise ValueError(
            "`history` must be a non-empty list of dicts, one per logging step, e.g. "
            f"[{{'step': 10, 'train/loss': 1.2}}, ...], got {type(history).__name__} {history!r:.80}."
        )
    for index, entry in enumerate(history):
        if not isinstance(entry, Mapping) or not _finite_number(entry.get("step")):
            raise ValueError(f"`history[{index}]` must be a dict with a numeric `step`, got {entry!r:.120}.")
    known = {f"{split}/{metric}" for metric, _ in TRAINING_CURVE_PANELS for split in ("train", "val")}
    if not any(key in known for entry in history for key in entry):
        raise ValueError(
            f"`history` logs none of the plotted metrics {sorted(known)}; its keys are "
            f"{sorted({key for entry in history for key in entry})}."
        )

    figure = Figure(figsize=(11, 7.5), layout="constrained")
    for axes, (metric, title) in zip(figure.subplots(2, 2).flat, TRAINING_CURVE_PANELS, strict=True):
        drawn = False
        for split, label, color, marker in (
            ("train", "train", TRAIN_COLOR, None),
            ("val", "validation", VALIDATION_COLOR, "o"),
        ):
            steps, values = _series(history, f"{split}/{metric}")
            if steps.size:
                axes.plot(steps, values, color=color, marker=marker, markersize=3, linewidth=1.0, label=label)
                drawn = True
        if metric in REFERENCE_LEVELS:
            key, label = REFERENCE_LEVELS[metric]
            steps, values = _series(history, key)
            if steps.size:
                axes.plot(steps, values, color="#757575", linestyle="--", linewidth=1.0, label=label)
        axes.set_title(title, fontsize=10)
        axes.set_xlabel("optimizer step")
        axes.grid(alpha=0.3)
        if drawn:
            axes.legend(fontsize=8)
        else:
            axes.text(0.5, 0.5, NOT_LOGGED, ha="center", va="center", transform=axes.transAxes, color="#757575")
    if path is not None:
        figure.savefig(path, dpi=dpi, format="png")
    return figure


def plot_roc(
    labels,
    scores,
    class_names: Sequence[str],
    aurocs,
    path: str | os.PathLike | None = None,
    title: str | None = None,
    dpi: int = 120,
) -> Figure:
    """
    Plots one ROC curve per class and a bar chart of the per-class AUROC (the values `results.json` reports).

    The AUROC values are computed by the caller (`merit_evaluation.metrics.per_class_roc_auc`, or the
    `per_class_auroc` of its `compute_classification_metrics`); this function only draws them, with each class's ROC
    curve from `labels` and `scores`.

    Args:
        labels (`np.ndarray` of shape `(n_samples, n_classes)`):
            Multi-hot test labels.
        scores (`np.ndarray` of shape `(n_samples, n_classes)`):
            Scores, higher = more likely positive.
        class_names (`Sequence[str]` of length `n_classes`):
            Name of each column.
        aurocs (`np.ndarray` of shape `(n_classes,)`):
            AUROC of each class, NaN where it is undefined (a class without positives or without negatives).
        path (`str` or `os.PathLike`, *optional*):
            Where to save the figure as PNG.
        title (`str`, *optional*):
            Figure title; the macro AUROC is appended.
        dpi (`int`, *optional*, defaults to 120):
            Resolution of the saved PNG.

    Returns:
        `matplotlib.figure.Figure` with two axes: the ROC curves (legend with each class's AUROC when there are at
        most 12 classes) and the per-class AUROC bars, sorted. A class whose AUROC is undefined has no ROC curve; it
        is listed as "n/a".
    """
    from sklearn.metrics import roc_curve

    labels = np.asarray(labels)
    scores = np.asarray(scores, dtype=np.float64)
    if labels.ndim != 2 or labels.shape != scores.shape:
        raise ValueError(
            f"`labels` and `scores` must have the same shape (n_samples, n_classes), got {labels.shape} and "
            f"{scores.shape}."
        )
    labels = labels.astype(bool)
    if isinstance(class_names, str) or len(class_names) != labels.shape[1]:
        got = 1 if isinstance(class_names, str) else len(class_names)
        raise ValueError(f"`class_names` must name each of the {labels.shape[1]} score columns, got {got} name(s).")
    aurocs = np.asarray(aurocs, dtype=np.float64)
    if aurocs.shape != (labels.shape[1],):
        raise ValueError(
            f"`aurocs` must hold one AUROC per class, shape ({labels.shape[1]},), got {aurocs.shape}; compute it with "
            "merit_evaluation.metrics.per_class_roc_auc(labels, scores)."
        )
    defined = ~np.isnan(aurocs)
    macro = float(aurocs[defined].mean()) if defined.any() else math.nan

    num_classes = len(class_names)
    figure = Figure(figsize=(12, max(5.0, 0.22 * num_classes + 1.5)), layout="constrained")
    roc_axes, bar_axes = figure.subplots(1, 2, width_ratios=(1.2, 1))
    colors = [f"C{index % 10}" for index in range(num_classes)]
    for index, name in enumerate(class_names):
        if not defined[index]:
            continue
        false_positive_rate, true_positive_rate, _ = roc_curve(labels[:, index], scores[:, index])
        roc_axes.plot(
            false_positive_rate,
            true_positive_rate,
            color=colors[index],
            linewidth=1.2,
            label=f"{name} ({aurocs[index]:.3f})",
        )
    roc_axes.plot([0, 1], [0, 1], color="#9e9e9e", linestyle="--", linewidth=0.8, label="chance")
    roc_axes.set(xlim=(0, 1), ylim=(0, 1.01), aspect="equal")
    roc_axes.set(xlabel="false positive rate", ylabel="true positive rate")
    roc_axes.set_title("ROC curves (AUROC)", fontsize=10)
    roc_axes.grid(alpha=0.3)
    if num_classes <= _ROC_LEGEND_MAX_CLASSES:
        roc_axes.legend(fontsize=8, loc="lower right")

    order = sorted(range(num_classes), key=lambda index: (not defined[index], -np.nan_to_num(aurocs[index])))
    positions = np.arange(num_classes)
    bar_axes.barh(
        positions,
        [aurocs[index] if defined[index] else 0.0 for index in order],
        color=[colors[index] for index in order],
    )
    for position, index in zip(positions, order, strict=True):
        text = f"{aurocs[index]:.3f}" if defined[index] else "n/a"
        bar_axes.text(0.01, position, text, va="center", fontsize=7, color="white" if defined[index] else "#424242")
    bar_axes.set_yticks(positions, [class_names[index] for index in order], fontsize=8)
    bar_axes.invert_yaxis()
    bar_axes.axvline(0.5, color="#9e9e9e", linestyle="--", linewidth=0.8)
    bar_axes.set(xlim=(0, 1), xlabel="AUROC")
    bar_axes.set_title("Per-class AUROC", fontsize=10)
    heading = f"macro AUROC {macro:.3f} over {int(defined.sum())} of {num_classes} classes, n = {labels.shape[0]}"
    figure.suptitle(f"{title}: {heading}" if title else heading, fontsize=11)
    if path is not None:
        figure.savefig(path, dpi=dpi, format="png")
    return figure


def plot_clinical_efficacy(
    per_class_f1: Mapping[str, Mapping[str, float]],
    support: Mapping[str, int],
    ceiling: Mapping[str, float] | None = None,
    path: str | os.PathLike | None = None,
    title: str | None = None,
    dpi: int = 120,
) -> Figure:
    """
    Per-class clinical-efficacy F1 of several report generators side by side, with the extractor's ceiling.

    The F1 values are computed by the caller (`merit_evaluation.clinical_efficacy`); this function only draws them.

    Args:
        per_class_f1 (`Mapping[str, Mapping[str, float]]`): per generator (e.g. `"MERIT"`, `"nearest-neighbour"`),
            in drawing order, its F1 per class; every generator must hold the classes of `support`.
        support (`Mapping[str, int]`): the classes, in drawing order, with their positive records.
        ceiling (`Mapping[str, float]`, *optional*): the extractor's F1 per class on the reference reports, drawn as
            a black tick.
        path (`str` or `os.PathLike`, *optional*): where to write the PNG.
        title (`str`, *optional*): the figure's title.
        dpi (`int`, *optional*, defaults to 120): resolution of the PNG.

    Returns:
        `matplotlib.figure.Figure` with one horizontal bar per generator and class.
    """
    classes = list(support)
    if not classes or not per_class_f1:
        raise ValueError("Nothing to draw: give at least one class in `support` and one generator in `per_class_f1`.")
    for name, values in per_class_f1.items():
        missing = [label for label in classes if label not in values]
        if missing:
            raise ValueError(
                f"Generator {name!r} has no F1 for the classes {missing}; give one per class of `support`."
            )
    if ceiling is not None and any(label not in ceiling for label in classes):
        raise ValueError(f"`ceiling` must hold an F1 for every class of `support` ({classes}).")
    names = list(per_class_f1)
    height = 0.8 / len(names)
    figure = Figure(figsize=(10.0, 1.2 + 0.09 * len(classes) * len(names) + 0.15 * len(classes)))
    axes = figure.subplots()
    colors = [matplotlib.colormaps["tab10"](index % 10) for index in range(len(names))]
    positions = np.arange(len(classes))
    for offset, (name, color) in enumerate(zip(names, colors, strict=True)):
        values = [per_class_f1[name][label] for label in classes]
        axes.barh(positions - 0.4 + (offset + 0.5) * height, values, height=height, color=color, label=name)
    if ceiling is not None:
        axes.scatter(
            [ceiling[label] for label in classes],
            positions,
            marker="|",
            s=300,
            color="black",
            linewidths=2,
            label="extractor on the references (ceiling)",
            zorder=3,
        )
    axes.set_yticks(positions, [f"{label} (n={support[label]})" for label in classes], fontsize=8)
    axes.invert_yaxis()
    axes.set(xlim=(0, 1), xlabel="CE-F1 (statements extracted from the report vs the record's own)")
    axes.grid(axis="x", alpha=0.3)
    axes.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    if title:
        axes.set_title(title, fontsize=10)
    figure.tight_layout()
    if path is not None:
        figure.savefig(path, dpi=dpi, format="png")
    return figure
