# Copyright 2026 The MERIT authors.
# Licensed under the Apache License, Version 2.0.
"""Fine-tuning: the whole `MeritForECGClassification` (pretrained ECG tower + new head) trained end to end.

For each label fraction and seed, one model is trained per `(learning_rate, weight_decay)` grid point with early
stopping on the validation macro AUROC; the best grid point is kept and its thresholds are fitted on the validation
split. That model then meets the test split once, and is saved (MERIT) or dropped, before the next setting starts,
so only one fine-tuned model is held in memory. The baseline, `supervised-scratch`, is the same architecture
randomly initialised and trained with the same data, fractions, seeds and grid.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path

import datasets
import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from .harness import EvaluationHarness, TrainingOptions, random_init_classifier, save_classifier
from .label_fractions import sample_label_fraction
from .metrics import macro_roc_auc
from .results import ResultRow
from .training import EarlyStoppingResult, train_with_early_stopping


logger = logging.getLogger(__name__)

SUPERVISED_SCRATCH_BASELINE = "supervised-scratch"
"""Baseline name of the randomly initialised classifier trained end to end."""


def predict_probabilities(
    classifier,
    processed: datasets.Dataset,
    batch_size: int,
    device: str | torch.device,
    description: str = "Predicting",
) -> np.ndarray:
    """`sigmoid(logits)` of a `MeritForECGClassification` on a preprocessed split.

    Args:
        classifier (`MeritForECGClassification`): the model.
        processed (`datasets.Dataset`): from `merit_evaluation.data.preprocess_split`.
        batch_size (`int`): records per forward pass.
        device (`str` or `torch.device`): where it runs.
        description (`str`): progress-bar label.

    Returns:
        `np.ndarray` of shape `(n_records, n_classes)`, float64.
    """
    classifier.eval().to(device)
    loader = DataLoader(processed.with_format("torch", columns=["input_values", "lead_mask"]), batch_size=batch_size)
    probabilities = []
    with torch.inference_mode():
        for batch in tqdm(loader, desc=description, leave=False):
            logits = classifier(
                input_values=batch["input_values"].to(device),
                lead_mask=batch["lead_mask"].to(device),
                return_dict=True,
            ).logits
            probabilities.append(torch.sigmoid(logits).double().cpu().numpy())
    return np.concatenate(probabilities)


def finetune_classifier(
    classifier,
    train_processed: datasets.Dataset,
    validation_processed: datasets.Dataset,
    validation_labels: np.ndarray,
    learning_rate: float,
    weight_decay: float,
    options: TrainingOptions,
    seed: int,
    device: str | torch.device,
    description: str = "Fine-tuning",
) -> EarlyStoppingResult:
    """Train every trainable parameter of `classifier` with AdamW and BCE, early stopping on validation macro AUROC.

    Args:
        classifier (`MeritForECGClassification`): trained in place; holds the best epoch's weights afterwards.
        train_processed (`datasets.Dataset`): preprocessed training records (with `multi_hot`).
        validation_processed (`datasets.Dataset`): preprocessed validation records.
        validation_labels (`np.ndarray` of shape `(n_validation, n_classes)`).
        learning_rate (`float`), weight_decay (`float`): AdamW settings.
        options (`TrainingOptions`): epochs, patience, batch size.
        seed (`int`): seed of the batch order.
        device (`str` or `torch.device`): where it trains.
        description (`str`): progress-bar label.

    Returns:
        `EarlyStoppingResult`.
    """
    classifier.to(device)
    loader = DataLoader(
        train_processed.with_format("torch", columns=["input_values", "lead_mask", "multi_hot"]),
        batch_size=options.batch_size,
        shuffle=True,
        generator=torch.Generator().manual_seed(seed),
    )

    def compute_loss(batch: dict) -> torch.Tensor:
        return classifier(
            input_values=batch["input_values"].to(device),
            lead_mask=batch["lead_mask"].to(device),
            labels=batch["multi_hot"].to(device=device, dtype=torch.float32),
            return_dict=True,
        ).loss

    def validation_score() -> float:
        scores = predict_probabilities(classifier, validation_processed, options.batch_size, device, "Validating")
        return macro_roc_auc(validation_labels, scores)

    optimizer = torch.optim.AdamW(
        [parameter for parameter in classifier.parameters() if parameter.requires_grad],
        lr=learning_rate,
        weight_decay=weight_decay,
    )
    return train_with_early_stopping(
        classifier, loader, compute_loss, validation_score, optimizer, options.epochs, options.patience, description
    )


def run_finetune(
    harness: EvaluationHarness,
    load_pretrained: Callable[[], torch.nn.Module],
    base_config,
    *,
    fractions: list[float],
    seeds: list[int],
    options: TrainingOptions,
    baselines: bool,
    processor=None,
    save_dir: str | os.PathLike | None = None,
) -> list[ResultRow]:
    """The fine-tune task: MERIT (and, with `baselines`, `supervised-scratch`) at every fraction and seed.

    Args:
        harness (`EvaluationHarness`): the run's data, caches and rules.
        load_pretrained (`Callable`): () -> a fresh trainable `MeritForECGClassification` with the MERIT encoder
            (`harness.load_classifier(..., freeze_ecg_encoder=False)`); called once per grid point.
        base_config (`MeritConfig`): the checkpoint's config: the architecture of the `supervised-scratch` baseline.
        fractions (`list[float]`): label fractions of the training split.
        seeds (`list[int]`): seeds of the fraction sample, the initialisation, the batch order and the bootstrap.
        options (`TrainingOptions`): epochs, patience, grid and batch size.
        baselines (`bool`): also train the `supervised-scratch` baseline.
        processor (`MeritProcessor`, *optional*): saved with the models; required with `save_dir`.
        save_dir (`str` or `os.PathLike`, *optional*): save each fine-tuned MERIT classifier there
            (`finetune_fraction-<f>_seed-<s>/`).

    Returns:
        `list[ResultRow]`, one per (fraction, seed, model).
    """
    if save_dir is not None and processor is None:
        raise ValueError("`processor` is required to save fine-tuned models (`save_dir`).")
    train_labels = harness.labels("train")
    validation_labels = harness.labels("validation")
    validation_processed = harness.processed("validation")
    rows = []
    for fraction in fractions:
        for seed in seeds:
            indices = sample_label_fraction(train_labels, fraction, seed)
            train_processed = harness.processed("train").select(indices)
            factories = [(None, load_pretrained)]
            if baselines:
                factories.append(
                    (
                        SUPERVISED_SCRATCH_BASELINE,
                        lambda seed=seed: random_init_classifier(
                            base_config, harness.class_names, seed, freeze_ecg_encoder=False
                        ),
                    )
                )
            for baseline, factory in factories:
                name = baseline or "merit"
                best_model, best_result = None, None
                for learning_rate, weight_decay in options.grid():
                    with torch.random.fork_rng(devices=[]):
                        torch.manual_seed(seed)
                        classifier = factory()
                    result = finetune_classifier(
                        classifier,
                        train_processed,
                        validation_processed,
                        validation_labels,
                        learning_rate,
                        weight_decay,
                        options,
                        seed,
                        harness.device,
                        description=f"Fine-tune {name} fraction={fraction:g} seed={seed} lr={learning_rate:g} "
                        f"wd={weight_decay:g}",
                    )
                    if best_result is None or result.best_score > best_result.best_score:
                        best_model, best_result = classifier, result
                validation_scores = predict_probabilities(
                    best_model, validation_processed, options.batch_size, harness.device, "Validating"
                )
                thresholds = harness.fit_thresholds(validation_scores)
                test_scores = predict_probabilities(
                    best_model, harness.processed("test"), options.batch_size, harness.device, "Testing"
                )
                rows.append(
                    harness.test_row(
                        test_scores, thresholds, task="finetune", fraction=fraction, seed=seed, baseline=baseline
                    )
                )
                if save_dir is not None and baseline is None:
                    directory = Path(save_dir) / f"finetune_fraction-{fraction:g}_seed-{seed}"
                    save_classifier(best_model.cpu(), processor, thresholds, directory)
    return rows
