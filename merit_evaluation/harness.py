# Copyright 2026 The MERIT authors.
# Licensed under the Apache License, Version 2.0.
"""Shared state and rules of one evaluation run (used by the linear-probe, fine-tune, zero-shot and robustness
tasks of `eval_merit.py`).

`EvaluationHarness` holds the dataset splits, the checkpoint's feature extractor and the run settings, caches the
preprocessed splits and the pooled ECG features of every encoder (so frozen features are computed once per
encoder, split and distribution shift), and enforces the evaluation hygiene of DESIGN §5:

- `fit_thresholds` is the only place where decision thresholds are chosen, and it only ever passes the
  **validation** labels to `merit_evaluation.thresholds.fit_thresholds`;
- `test_row` is the only place where **test** labels are read; a task calls it once per trained model, after the
  model's epochs, hyper-parameters and thresholds were fixed on the validation split.

It also builds the classifiers the tasks train: `load_classifier` (the ECG tower of any MERIT checkpoint plus a new
head), `random_init_classifier` (the same architecture, randomly initialised: the baselines) and
`save_classifier` (a reusable `MeritForECGClassification` checkpoint with its processor and thresholds).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import datasets
import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from . import thresholds as thresholds_module
from .data import RecordTransform, preprocess_split, split_labels
from .metrics import compute_classification_metrics
from .results import ResultRow


logger = logging.getLogger(__name__)

THRESHOLDS_FILE = "thresholds.json"
"""Per-class decision thresholds saved next to a classifier checkpoint."""


@dataclass
class TrainingOptions:
    """How the linear probes and fine-tuned classifiers are trained; every grid point is selected on validation.

    Attributes:
        epochs (`int`): maximum number of epochs.
        patience (`int`): early-stopping patience in epochs (validation macro AUROC).
        learning_rates (`list[float]`): learning-rate grid.
        weight_decays (`list[float]`): AdamW weight-decay grid.
        batch_size (`int`): training batch size.
    """

    epochs: int
    patience: int
    learning_rates: list[float]
    weight_decays: list[float]
    batch_size: int

    def __post_init__(self):
        if self.epochs < 1 or self.patience < 1 or self.batch_size < 1:
            raise ValueError(
                f"epochs, patience and batch_size must be >= 1, got {self.epochs}, {self.patience}, {self.batch_size}."
            )
        if not self.learning_rates or any(rate <= 0 for rate in self.learning_rates):
            raise ValueError(
                f"learning rates must be a non-empty list of positive numbers, got {self.learning_rates}."
            )
        if not self.weight_decays or any(decay < 0 for decay in self.weight_decays):
            raise ValueError(f"weight decays must be a non-empty list of numbers >= 0, got {self.weight_decays}.")

    def grid(self) -> list[tuple[float, float]]:
        """Every `(learning_rate, weight_decay)` pair."""
        return [(rate, decay) for rate in self.learning_rates for decay in self.weight_decays]


def extract_pooled_features(
    ecg_model: torch.nn.Module,
    processed: datasets.Dataset,
    batch_size: int,
    device: str | torch.device,
    description: str = "Extracting ECG features",
) -> np.ndarray:
    """Pooled ECG representations (`pooler_output`) of every record of a preprocessed split.

    Args:
        ecg_model (`MeritECGModel`): the ECG tower.
        processed (`datasets.Dataset`): from `merit_evaluation.data.preprocess_split`.
        batch_size (`int`): records per forward pass.
        device (`str` or `torch.device`): where the forward passes run.
        description (`str`): progress-bar label.

    Returns:
        `np.ndarray` of shape `(n_records, hidden_size)`, float32.
    """
    ecg_model.eval().to(device)
    loader = DataLoader(processed.with_format("torch", columns=["input_values", "lead_mask"]), batch_size=batch_size)
    features = []
    with torch.inference_mode():
        for batch in tqdm(loader, desc=description, leave=False):
            output = ecg_model(
                input_values=batch["input_values"].to(device),
                lead_mask=batch["lead_mask"].to(device),
                return_dict=True,
            )
            features.append(output.pooler_output.float().cpu().numpy())
    return np.concatenate(features)


def classifier_config(base_config, class_names: Sequence[str], freeze_ecg_encoder: bool):
    """A copy of a `MeritConfig` set up for multi-label classification of `class_names`."""
    from modeling_merit import MeritConfig

    return MeritConfig.from_dict(
        {
            **base_config.to_dict(),
            "id2label": dict(enumerate(class_names)),
            "label2id": {name: index for index, name in enumerate(class_names)},
            "problem_type": "multi_label_classification",
            "freeze_ecg_encoder": freeze_ecg_encoder,
        }
    )


def load_classifier(
    model_name_or_path: str,
    class_names: Sequence[str],
    freeze_ecg_encoder: bool,
    revision: str | None = None,
    cache_dir: str | os.PathLike | None = None,
):
    """`MeritForECGClassification` with the ECG tower of any MERIT checkpoint (pretraining, dual encoder or
    classifier) and a head for `class_names`: the checkpoint's own head when it is a classifier of exactly these
    classes, else a new one (a classifier head of another size is replaced, not an error).
    """
    from modeling_merit import MeritForECGClassification

    return MeritForECGClassification.from_pretrained(
        model_name_or_path,
        revision=revision,
        cache_dir=cache_dir,
        num_labels=len(class_names),
        id2label=dict(enumerate(class_names)),
        label2id={name: index for index, name in enumerate(class_names)},
        problem_type="multi_label_classification",
        freeze_ecg_encoder=freeze_ecg_encoder,
        ignore_mismatched_sizes=True,
    ).freeze_ecg_encoder(freeze_ecg_encoder)


def random_init_classifier(base_config, class_names: Sequence[str], seed: int, freeze_ecg_encoder: bool):
    """A randomly initialised `MeritForECGClassification` with the architecture of `base_config` (a `MeritConfig`),
    seeded by `seed`; the global random state is left untouched."""
    from modeling_merit import MeritForECGClassification

    config = classifier_config(base_config, class_names, freeze_ecg_encoder)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return MeritForECGClassification(config).freeze_ecg_encoder(freeze_ecg_encoder)


def save_classifier(classifier, processor, thresholds: np.ndarray, directory: str | os.PathLike) -> Path:
    """Save a trained classifier as a reusable checkpoint: `MeritForECGClassification` weights and config, the
    processor it was evaluated with, and `thresholds.json` (per-class thresholds fitted on the validation split;
    `null` for a class that had no validation positive), also stored as `config.decision_thresholds` for the
    `ecg-classification` pipeline."""
    directory = Path(directory)
    class_names = [classifier.config.id2label[i] for i in range(classifier.config.num_labels)]
    content = {
        "source": "validation",
        "rule": "score >= threshold, score = sigmoid(logit)",
        "thresholds": {
            name: None if np.isinf(value) else float(value)
            for name, value in zip(class_names, thresholds, strict=True)
        },
    }
    # also in config.json, where the `ecg-classification` pipeline reads them
    classifier.config.decision_thresholds = content["thresholds"]
    classifier.save_pretrained(directory)
    processor.save_pretrained(directory)
    (directory / THRESHOLDS_FILE).write_text(json.dumps(content, indent=2) + "\n", encoding="utf-8")
    logger.info("Saved classifier checkpoint to %s", directory)
    return directory


class EvaluationHarness:
    """Dataset, preprocessing, caches and the validation/test rules of one evaluation run.

    Args:
        splits (`datasets.DatasetDict`): `train`, `validation`, `test` from `load_evaluation_dataset`.
        feature_extractor (`MeritFeatureExtractor`): the checkpoint's feature extractor.
        dataset (`str`): dataset name written to the results (`ptbxl`, ...).
        label_set (`str`): label set written to the results.
        model_name_or_path (`str`): evaluated checkpoint, written to the results.
        model_revision (`str`, *optional*): its revision, written to the results.
        batch_size (`int`): batch size of preprocessing and feature extraction.
        device (`str` or `torch.device`): where models run.
        n_bootstrap (`int`): bootstrap resamples of the test metrics.
        figure_dir (`str` or `os.PathLike`, *optional*): where `test_row` writes a ROC / per-class AUROC figure
            (`roc_<task>_frac<fraction>_seed<seed>.png`) for every MERIT row without a distribution shift.
    """

    def __init__(
        self,
        splits: datasets.DatasetDict,
        feature_extractor,
        *,
        dataset: str,
        label_set: str,
        model_name_or_path: str,
        model_revision: str | None,
        batch_size: int,
        device: str | torch.device,
        n_bootstrap: int,
        figure_dir: str | os.PathLike | None = None,
    ):
        from dataset_scripts import get_class_names

        missing = [name for name in ("train", "validation", "test") if name not in splits]
        if missing:
            raise ValueError(f"The dataset lacks the splits {missing}; expected train, validation and test.")
        for name in ("validation", "test"):
            if len(splits[name]) == 0:
                raise ValueError(f"The {name} split is empty; nothing can be selected or evaluated.")
        self.splits = splits
        self.class_names = get_class_names(splits)
        self.feature_extractor = feature_extractor
        self.dataset = dataset
        self.label_set = label_set
        self.model_name_or_path = model_name_or_path
        self.model_revision = model_revision
        self.batch_size = batch_size
        self.device = device
        self.n_bootstrap = n_bootstrap
        self.figure_dir = None if figure_dir is None else Path(figure_dir)
        self._labels: dict[str, np.ndarray] = {}
        self._processed: dict[tuple, datasets.Dataset] = {}
        self._features: dict[tuple, np.ndarray] = {}

    @property
    def n_test(self) -> int:
        """Number of test records."""
        return len(self.splits["test"])

    def labels(self, split: str) -> np.ndarray:
        """Multi-hot labels `(n_records, n_classes)` of `train` or `validation` (test labels stay in `test_row`)."""
        if split == "test":
            raise ValueError("Test labels are only read by `EvaluationHarness.test_row`.")
        return self._split_labels(split)

    def _split_labels(self, split: str) -> np.ndarray:
        if split not in self._labels:
            self._labels[split] = split_labels(self.splits[split])
        return self._labels[split]

    def sampling_rates(self, split: str) -> list[float]:
        """The distinct stored sampling rates of a split's records, in Hz."""
        rates = self.splits[split].select_columns(["sampling_rate"]).with_format("numpy")[:]["sampling_rate"]
        return sorted({float(rate) for rate in rates})

    def processed(
        self, split: str, record_transform: RecordTransform | None = None, transform_key: tuple | None = None
    ) -> datasets.Dataset:
        """A split run through the feature extractor (cached per split and `transform_key`).

        Args:
            split (`str`): `train`, `validation` or `test`.
            record_transform (`RecordTransform`, *optional*): per-record transform in mV (e.g. a distribution shift).
            transform_key (`tuple`, *optional*): hashable name of the transform; required with `record_transform`.
        """
        if (record_transform is None) != (transform_key is None):
            raise ValueError("`record_transform` and `transform_key` must be given together.")
        key = (split, transform_key)
        if key not in self._processed:
            label = f"Preprocessing {split}" + ("" if transform_key is None else f" {transform_key}")
            self._processed[key] = preprocess_split(
                self.splits[split], self.feature_extractor, record_transform, self.batch_size, description=label
            )
        return self._processed[key]

    def features(
        self,
        encoder_key: str,
        ecg_model: torch.nn.Module,
        split: str,
        record_transform: RecordTransform | None = None,
        transform_key: tuple | None = None,
    ) -> np.ndarray:
        """Pooled ECG features of a split, computed once per `(encoder_key, split, transform_key)`.

        Args:
            encoder_key (`str`): identifies the encoder weights (e.g. `"merit"`, `"random-init-seed0"`).
            ecg_model (`MeritECGModel`): the encoder; used on a cache miss.
            split, record_transform, transform_key: as in `processed`.

        Returns:
            `np.ndarray` of shape `(n_records, hidden_size)`.
        """
        key = (encoder_key, split, transform_key)
        if key not in self._features:
            processed = self.processed(split, record_transform, transform_key)
            label = f"Features {encoder_key} {split}" + ("" if transform_key is None else f" {transform_key}")
            self._features[key] = extract_pooled_features(
                ecg_model, processed, self.batch_size, self.device, description=label
            )
        return self._features[key]

    def fit_thresholds(self, validation_scores: np.ndarray) -> np.ndarray:
        """Per-class F1-maximising thresholds for scores of the **validation** split.

        Args:
            validation_scores (`np.ndarray` of shape `(n_validation, n_classes)`): the model's validation scores.

        Returns:
            `np.ndarray` of shape `(n_classes,)`.
        """
        validation_labels = self._split_labels("validation")
        if np.shape(validation_scores) != validation_labels.shape:
            raise ValueError(
                f"Thresholds are fitted on validation scores of shape {validation_labels.shape}, got "
                f"{np.shape(validation_scores)}."
            )
        return thresholds_module.fit_thresholds(
            validation_labels=validation_labels, validation_scores=validation_scores
        )

    def test_row(
        self,
        test_scores: np.ndarray,
        thresholds: np.ndarray,
        *,
        task: str,
        fraction: float,
        seed: int,
        baseline: str | None = None,
        shift: str | None = None,
        severity: float | int | str | None = None,
    ) -> ResultRow:
        """Score a trained model on the test split: the only read of the test labels.

        Args:
            test_scores (`np.ndarray` of shape `(n_test, n_classes)`): probabilities in [0, 1].
            thresholds (`np.ndarray` of shape `(n_classes,)`): from `fit_thresholds` (validation split).
            task, fraction, seed, baseline, shift, severity: the `ResultRow` fields of this setting; `seed` is also
                the bootstrap seed.

        Returns:
            `ResultRow` with macro AUROC, macro F1 and Fmax and their bootstrap intervals.
        """
        metrics = compute_classification_metrics(
            self._split_labels("test"), test_scores, thresholds=thresholds, n_bootstrap=self.n_bootstrap, seed=seed
        )
        if self.figure_dir is not None and baseline is None and shift is None:
            from merit_plotting import plot_roc

            figure_path = self.figure_dir / f"roc_{task}_frac{fraction:g}_seed{seed}.png"
            plot_roc(
                self._split_labels("test"),
                test_scores,
                self.class_names,
                metrics.per_class_auroc,
                figure_path,
                title=f"{task}, {self.dataset} {self.label_set}, fraction {fraction:g}, seed {seed}",
            )
            logger.info("Wrote %s", figure_path)
        return ResultRow.from_classification_metrics(
            metrics,
            self.class_names,
            task=task,
            dataset=self.dataset,
            label_set=self.label_set,
            fraction=float(fraction),
            seed=seed,
            model=self.model_name_or_path,
            model_revision=self.model_revision,
            baseline=baseline,
            shift=shift,
            severity=severity,
        )
