# Copyright 2026 The MERIT authors.
# Licensed under the Apache License, Version 2.0.
"""Linear probing: a linear head trained on frozen, pooled ECG features.

The features of each encoder are computed once per split (`EvaluationHarness.features`); a head is then trained
for each label fraction, seed and `(learning_rate, weight_decay)` grid point with early stopping on the validation
macro AUROC, and the grid point with the best validation macro AUROC is kept. Its thresholds are fitted on the
validation split. Only when every probe of the run is trained are the test features computed and scored.

A probe is exactly `MeritForECGClassification` with `freeze_ecg_encoder=True` (the head reads `pooler_output`),
so a trained probe is saved as such a checkpoint and can be reloaded with `from_pretrained` or used in the
classification pipeline.
"""

from __future__ import annotations

import copy
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from .harness import EvaluationHarness, TrainingOptions, random_init_classifier, save_classifier
from .label_fractions import sample_label_fraction
from .metrics import macro_roc_auc
from .results import ResultRow
from .training import EarlyStoppingResult, train_with_early_stopping


logger = logging.getLogger(__name__)

RANDOM_INIT_BASELINE = "random-init"
"""Baseline name of a randomly initialised encoder of the same architecture, probed the same way."""


@dataclass
class TrainedProbe:
    """A linear head chosen on the validation split.

    Attributes:
        head (`torch.nn.Linear`): `hidden_size -> n_classes`, on CPU.
        learning_rate (`float`), weight_decay (`float`): the selected grid point.
        training (`EarlyStoppingResult`): epochs of the selected grid point.
        validation_scores (`np.ndarray` of shape `(n_validation, n_classes)`): its validation probabilities.
        n_train (`int`): number of training records it saw.
    """

    head: torch.nn.Linear
    learning_rate: float
    weight_decay: float
    training: EarlyStoppingResult
    validation_scores: np.ndarray
    n_train: int


def probe_probabilities(head: torch.nn.Linear, features: np.ndarray) -> np.ndarray:
    """`sigmoid(head(features))`, shape `(n_records, n_classes)`, float64."""
    head.eval()
    with torch.inference_mode():
        logits = head(torch.as_tensor(features, dtype=torch.float32))
    return torch.sigmoid(logits).double().numpy()


def train_linear_probe(
    train_features: np.ndarray,
    train_labels: np.ndarray,
    validation_features: np.ndarray,
    validation_labels: np.ndarray,
    options: TrainingOptions,
    seed: int,
    description: str = "Linear probe",
) -> TrainedProbe:
    """Train one linear head per grid point with early stopping; keep the best on validation macro AUROC.

    Args:
        train_features (`np.ndarray` of shape `(n_train, hidden_size)`): frozen training features.
        train_labels (`np.ndarray` of shape `(n_train, n_classes)`): multi-hot training labels.
        validation_features (`np.ndarray` of shape `(n_validation, hidden_size)`).
        validation_labels (`np.ndarray` of shape `(n_validation, n_classes)`).
        options (`TrainingOptions`): epochs, patience, grid and batch size.
        seed (`int`): seed of the head initialisation and of the batch order.
        description (`str`): progress-bar label.

    Returns:
        `TrainedProbe`.
    """
    if len(train_features) != len(train_labels) or len(validation_features) != len(validation_labels):
        raise ValueError(
            f"Features and labels differ in length: train {len(train_features)} vs {len(train_labels)}, validation "
            f"{len(validation_features)} vs {len(validation_labels)}."
        )
    inputs = torch.as_tensor(train_features, dtype=torch.float32)
    targets = torch.as_tensor(train_labels, dtype=torch.float32)
    best = None
    for learning_rate, weight_decay in options.grid():
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            head = torch.nn.Linear(inputs.shape[1], targets.shape[1])
        loader = DataLoader(
            TensorDataset(inputs, targets),
            batch_size=options.batch_size,
            shuffle=True,
            generator=torch.Generator().manual_seed(seed),
        )
        optimizer = torch.optim.AdamW(head.parameters(), lr=learning_rate, weight_decay=weight_decay)
        training = train_with_early_stopping(
            head,
            loader,
            compute_loss=lambda batch, head=head: F.binary_cross_entropy_with_logits(head(batch[0]), batch[1]),
            validation_score=lambda head=head: macro_roc_auc(
                validation_labels, probe_probabilities(head, validation_features)
            ),
            optimizer=optimizer,
            epochs=options.epochs,
            patience=options.patience,
            description=f"{description} lr={learning_rate:g} wd={weight_decay:g}",
        )
        if best is None or training.best_score > best.training.best_score:
            best = TrainedProbe(
                head=head,
                learning_rate=learning_rate,
                weight_decay=weight_decay,
                training=training,
                validation_scores=probe_probabilities(head, validation_features),
                n_train=len(inputs),
            )
    logger.info(
        "%s: selected lr=%g, weight_decay=%g, epoch %d (validation macro AUROC %.4f, %d training records).",
        description,
        best.learning_rate,
        best.weight_decay,
        best.training.best_epoch,
        best.training.best_score,
        best.n_train,
    )
    return best


def save_probe(
    classifier, probe: TrainedProbe, processor, thresholds: np.ndarray, directory: str | os.PathLike
) -> Path:
    """Save `classifier` (a `MeritForECGClassification` holding the probed encoder) with the probe's head as its
    classifier, via `harness.save_classifier`; `classifier` itself is left unchanged."""
    probed = copy.deepcopy(classifier)
    probed.classifier.load_state_dict(probe.head.state_dict())
    return save_classifier(probed, processor, thresholds, directory)


@dataclass
class _ProbeRun:
    baseline: str | None
    encoder_key: str
    classifier: torch.nn.Module
    fraction: float
    seed: int
    probe: TrainedProbe
    thresholds: np.ndarray


def run_linear_probe(
    harness: EvaluationHarness,
    merit_classifier,
    *,
    fractions: list[float],
    seeds: list[int],
    options: TrainingOptions,
    baselines: bool,
    processor=None,
    save_dir: str | os.PathLike | None = None,
) -> list[ResultRow]:
    """The linear-probe task: MERIT (and, with `baselines`, a random-init encoder) at every fraction and seed.

    Args:
        harness (`EvaluationHarness`): the run's data, caches and rules.
        merit_classifier (`MeritForECGClassification`): holds the MERIT encoder (`load_classifier`).
        fractions (`list[float]`): label fractions of the training split, each in (0, 1].
        seeds (`list[int]`): seeds of the fraction sample, the head and the bootstrap.
        options (`TrainingOptions`): training of the heads.
        baselines (`bool`): also probe a randomly initialised encoder of the same architecture (one per seed).
        processor (`MeritProcessor`, *optional*): saved with the probes; required with `save_dir`.
        save_dir (`str` or `os.PathLike`, *optional*): save each MERIT probe there as a `MeritForECGClassification`
            checkpoint (`linear-probe_fraction-<f>_seed-<s>/`).

    Returns:
        `list[ResultRow]`, one per (fraction, seed, model).
    """
    if save_dir is not None and processor is None:
        raise ValueError("`processor` is required to save probes (`save_dir`).")
    train_labels = harness.labels("train")
    validation_labels = harness.labels("validation")
    random_classifiers = {}

    def encoders(seed: int) -> list[tuple[str | None, str, torch.nn.Module]]:
        models = [(None, "merit", merit_classifier)]
        if baselines:
            if seed not in random_classifiers:
                random_classifiers[seed] = random_init_classifier(
                    merit_classifier.config, harness.class_names, seed, freeze_ecg_encoder=True
                )
            models.append((RANDOM_INIT_BASELINE, f"random-init-seed{seed}", random_classifiers[seed]))
        return models

    runs = []
    for fraction in fractions:
        for seed in seeds:
            indices = sample_label_fraction(train_labels, fraction, seed)
            for baseline, encoder_key, classifier in encoders(seed):
                train_features = harness.features(encoder_key, classifier.ecg_model, "train")[indices]
                validation_features = harness.features(encoder_key, classifier.ecg_model, "validation")
                probe = train_linear_probe(
                    train_features,
                    train_labels[indices],
                    validation_features,
                    validation_labels,
                    options,
                    seed,
                    description=f"Linear probe {encoder_key} fraction={fraction:g} seed={seed}",
                )
                thresholds = harness.fit_thresholds(probe.validation_scores)
                runs.append(_ProbeRun(baseline, encoder_key, classifier, fraction, seed, probe, thresholds))

    rows = []
    for run in runs:  # every choice is made: now the test split, once per probe
        test_features = harness.features(run.encoder_key, run.classifier.ecg_model, "test")
        rows.append(
            harness.test_row(
                probe_probabilities(run.probe.head, test_features),
                run.thresholds,
                task="linear-probe",
                fraction=run.fraction,
                seed=run.seed,
                baseline=run.baseline,
            )
        )
        if save_dir is not None and run.baseline is None:
            directory = Path(save_dir) / f"linear-probe_fraction-{run.fraction:g}_seed-{run.seed}"
            save_probe(run.classifier, run.probe, processor, run.thresholds, directory)
    return rows
