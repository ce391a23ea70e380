# Copyright 2026 The MERIT authors.
# Licensed under the Apache License, Version 2.0.
"""
The findings classifier of findings-conditioned report generation (`train_merit.py --task report_generation
--findings superdiagnostic,rhythm`).

A linear classifier on the frozen encoder's pooled ECG vector predicts PTB-XL statements (the classes of the named
label sets: e.g. the 5 diagnostic superclasses and the rhythm statements), and the predicted ones are written into
the language model's prompt after the ECG prefix (`MeritReportGenerationConfig.findings_labels`). The language model
thus reads what the classifier found as well as the ECG tokens.

- **Records.** The classifier is fitted on every labelled training record, including those without a report
  (PTB-XL records rebuilt from the label matrix have real statements but no text), so it sees more ECGs than the
  language model does.
- **Classifier.** L2-regularised logistic regression per statement on the standardised pooled vector, with
  class-balanced weights (positives and negatives weigh the same in total), fitted by L-BFGS.
- **Thresholds.** One per statement, maximising its F1 on out-of-fold probabilities (`--findings_folds`-fold
  cross-validation on the training records), so no validation or test record chooses them.
- **Training prompts hold out-of-fold findings.** Each training record's prompt gets the statements predicted by
  the classifier of the folds that did not see it, as noisy as the findings of an unseen ECG; with the fitted
  classifier's own (in-sample) predictions the language model would learn to trust findings more than it should.
- Statements with fewer than `--findings_min_positives` positive training records are left out (logged).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch


logger = logging.getLogger(__name__)

FINDINGS_LABEL_SETS = ("superdiagnostic", "subdiagnostic", "rhythm", "form")
"""PTB-XL label sets whose classes can be findings (see `dataset_scripts.ptbxl.labels`)."""


@dataclass
class FittedFindings:
    """A fitted findings classifier: the kept statements, their phrases, the standardisation, the weights, the
    thresholds and the out-of-fold probabilities of the training records."""

    labels: list[str]
    phrases: list[str]
    standardizer: torch.nn.Module  # MeritFeatureStandardizer fitted on every record
    weight: torch.Tensor  # (C, H)
    bias: torch.Tensor  # (C,)
    thresholds: list[float]
    out_of_fold: torch.Tensor  # (N, C) probabilities
    out_of_fold_f1: list[float]
    num_positives: list[int]


def findings_statements(data_dir: str | Path, label_sets: Sequence[str]) -> tuple[dict[str, set[str]], dict[str, str]]:
    """
    From the PTB-XL copy in `data_dir`: which findings classes each statement code implies, and each class's
    phrase (its description, e.g. `"atrial fibrillation"`, `"myocardial infarction"`).

    Args:
        data_dir (`str` or `Path`): a PTB-XL folder with `scp_statements.csv`.
        label_sets (`Sequence[str]`): names from `FINDINGS_LABEL_SETS`.

    Returns:
        `(code -> classes, class -> phrase)`.
    """
    import pandas as pd

    from dataset_scripts.ptbxl.descriptions import ptbxl_class_descriptions
    from dataset_scripts.ptbxl.labels import statement_labels
    from dataset_scripts.ptbxl.ptbxl import STATEMENTS_FILE

    unknown = sorted(set(label_sets) - set(FINDINGS_LABEL_SETS))
    if unknown or not label_sets:
        raise ValueError(
            f"--findings must name PTB-XL label sets among {FINDINGS_LABEL_SETS}, got {list(label_sets)}."
        )
    path = Path(data_dir) / STATEMENTS_FILE
    if not path.is_file():
        raise ValueError(
            f"--findings needs PTB-XL statements: {path} not found. Findings-conditioned generation is available for "
            "PTB-XL-labelled data (statement codes in the `labels` column and scp_statements.csv in the data folder)."
        )
    statements = pd.read_csv(path, index_col=0)
    code_classes: dict[str, set[str]] = {}
    phrases: dict[str, str] = {}
    for label_set in label_sets:
        for code, classes in statement_labels(statements, label_set).items():
            code_classes.setdefault(code, set()).update(classes)
        phrases.update(ptbxl_class_descriptions(statements, label_set))
    return code_classes, phrases


def findings_targets(label_names: Sequence[str], record_labels: Sequence[Sequence[int]], code_classes, classes):
    """Multi-hot targets `(N, C)` bool of `classes` from each record's statement indices into `label_names`."""
    index = {name: column for column, name in enumerate(classes)}
    targets = torch.zeros(len(record_labels), len(classes), dtype=torch.bool)
    for row, labels in enumerate(record_labels):
        for label in labels:
            for name in code_classes.get(label_names[label], ()):
                if name in index:
                    targets[row, index[name]] = True
    return targets


def fit_logistic_regression(
    features: torch.Tensor, targets: torch.Tensor, l2: float, max_iter: int = 200, balanced: bool = True
):
    """
    One L2-regularised logistic regression per column of `targets`, fitted jointly by L-BFGS.

    Args:
        features (`torch.FloatTensor` of shape `(N, H)`): standardised inputs.
        targets (`torch.BoolTensor` of shape `(N, C)`).
        l2 (`float`): the penalty `l2 / 2 * ||W||^2` added to the mean weighted cross-entropy.
        max_iter (`int`, defaults to 200): L-BFGS iterations.
        balanced (`bool`, defaults to `True`): each class's positives and negatives carry half of the total weight
            (what thresholded findings need); `False` weighs every record the same, so that the probabilities are
            calibrated to the class rates (what a likelihood needs).

    Returns:
        `(weight (C, H), bias (C,))`, float32.
    """
    features, targets = features.double(), targets.double()
    num_samples = features.shape[0]
    sample_weight = None
    if balanced:
        positives = targets.sum(0).clamp(min=1)
        negatives = (num_samples - targets.sum(0)).clamp(min=1)
        sample_weight = targets * (num_samples / (2 * positives)) + (1 - targets) * (num_samples / (2 * negatives))
    weight = torch.zeros(targets.shape[1], features.shape[1], dtype=torch.float64, requires_grad=True)
    bias = torch.zeros(targets.shape[1], dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([weight, bias], max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        logits = features @ weight.T + bias
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, targets, weight=sample_weight)
        loss = loss + l2 / 2 * weight.pow(2).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        optimizer.step(closure)
    return weight.detach().float(), bias.detach().float()


def _fitted_standardizer(features: torch.Tensor, eps: float):
    """The model's own standardisation (`MeritFeatureStandardizer`) fitted on `features` `(N, H)`."""
    from modeling_merit.modeling_merit_report import MeritFeatureStandardizer

    standardizer = MeritFeatureStandardizer(features.shape[1], eps)
    standardizer.fit(features)
    return standardizer


def fit_findings(
    pooled: torch.Tensor,
    targets: torch.Tensor,
    classes: Sequence[str],
    phrases: dict[str, str],
    *,
    l2: float,
    folds: int,
    min_positives: int,
    seed: int,
    eps: float,
) -> FittedFindings:
    """
    Fits the findings classifier on training ECGs (see the module docstring).

    Args:
        pooled (`torch.FloatTensor` of shape `(N, H)`): pooled encoder vectors of the labelled training records.
        targets (`torch.BoolTensor` of shape `(N, C)`): their statements, columns in the order of `classes`.
        classes (`Sequence[str]`): the candidate statements; phrases: their prompt words.
        l2 (`float`), folds (`int`), min_positives (`int`), seed (`int`): see the training flags.
        eps (`float`): the variance epsilon of the standardisation (the model's `projector_norm_eps`).
    """
    from merit_evaluation.thresholds import fit_thresholds

    counts = targets.sum(0)
    keep = [column for column in range(len(classes)) if int(counts[column]) >= min_positives]
    dropped = [f"{classes[column]} ({int(counts[column])})" for column in range(len(classes)) if column not in keep]
    if dropped:
        logger.info(f"Findings left out (fewer than {min_positives} positive training records): {', '.join(dropped)}")
    if not keep:
        raise ValueError(
            f"No findings statement has {min_positives} positive training records; lower --findings_min_positives."
        )
    if folds < 2 or folds > pooled.shape[0]:
        raise ValueError(f"--findings_folds must be between 2 and the {pooled.shape[0]} records, got {folds}.")
    targets = targets[:, keep]
    pooled = pooled.float()
    fold_of = torch.randperm(pooled.shape[0], generator=torch.Generator().manual_seed(seed)) % folds
    out_of_fold = torch.zeros(targets.shape, dtype=torch.float32)
    for fold in range(folds):
        held_out = fold_of == fold
        train = ~held_out
        standardizer = _fitted_standardizer(pooled[train], eps)
        weight, bias = fit_logistic_regression(standardizer(pooled[train]), targets[train], l2)
        out_of_fold[held_out] = torch.sigmoid(standardizer(pooled[held_out]) @ weight.T + bias)
    thresholds = fit_thresholds(validation_labels=targets.numpy(), validation_scores=out_of_fold.numpy())
    predicted = out_of_fold >= torch.from_numpy(thresholds).float()
    true_positive = (predicted & targets).sum(0).float()
    f1 = 2 * true_positive / (predicted.sum(0) + targets.sum(0)).clamp(min=1)
    standardizer = _fitted_standardizer(pooled, eps)
    weight, bias = fit_logistic_regression(standardizer(pooled), targets, l2)
    labels = [classes[column] for column in keep]
    return FittedFindings(
        labels=labels,
        phrases=[phrases[label] for label in labels],
        standardizer=standardizer,
        weight=weight,
        bias=bias,
        thresholds=[float(value) for value in np.asarray(thresholds)],
        out_of_fold=out_of_fold,
        out_of_fold_f1=[float(value) for value in f1],
        num_positives=[int(value) for value in targets.sum(0)],
    )


@torch.no_grad()
def install_findings(model, fitted: FittedFindings, tokenizer) -> None:
    """Writes a fitted classifier into a report generator (`set_findings`, then the weights and statistics) and
    freezes it: the head is fitted once, never trained with the projector."""
    model.set_findings(fitted.labels, fitted.phrases, fitted.thresholds, tokenizer)
    head = model.findings_head
    head.standardizer.load_state_dict(fitted.standardizer.state_dict())
    head.classifier.weight.copy_(fitted.weight)
    head.classifier.bias.copy_(fitted.bias)
    head.requires_grad_(False)


def findings_summary(fitted: FittedFindings) -> str:
    """One line per statement: positives, out-of-fold F1 and threshold (for the log and the model card)."""
    return "; ".join(
        f"{label} ({phrase}): {positives} positives, out-of-fold F1 {f1:.2f}, threshold {threshold:.2f}"
        for label, phrase, positives, f1, threshold in zip(
            fitted.labels, fitted.phrases, fitted.num_positives, fitted.out_of_fold_f1, fitted.thresholds
        )
    )
