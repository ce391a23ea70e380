# Copyright 2026 The MERIT authors.
# Licensed under the Apache License, Version 2.0.
"""Robustness to distribution shift: one classifier, the test split under controlled shifts.

The classifier is either the checkpoint itself, when it is a `MeritForECGClassification` of exactly the evaluated
classes, or a linear probe trained on the clean training split (all labels) and selected on the clean validation
split. Thresholds come from the clean validation split. The test split is then scored once clean (`shift="none"`)
and once per (shift, severity) of `merit_evaluation.shifts`, giving a table of metric vs severity.

Shifts act on each test record in mV at its **stored** sampling rate, before the checkpoint's processor (which then
resamples, filters and scales as always), with a seed derived from the run seed and the record index. A shift that
cannot apply at the stored rate is skipped and reported: `powerline_interference` at 50 Hz needs records sampled
above 100 Hz, so it is skipped on PTB-XL's 100 Hz records. Leads a shift removes are passed to the processor as
NaN, which it marks missing in `lead_mask`, exactly as for a record without those leads.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from .data import RecordTransform
from .harness import EvaluationHarness, TrainingOptions, random_init_classifier
from .probing import RANDOM_INIT_BASELINE, probe_probabilities, train_linear_probe
from .results import ResultRow
from .shifts import SEVERITIES, SHIFTS, apply_shift


logger = logging.getLogger(__name__)

CLEAN_SHIFT = "none"
"""`shift` of the robustness row on the unshifted test split."""


@dataclass(frozen=True)
class ShiftSetting:
    """One shift at one severity (see `merit_evaluation.shifts.SEVERITIES`)."""

    name: str
    severity: float | int | str


def shift_settings(
    shift_names: Sequence[str], sampling_rates: Sequence[float]
) -> tuple[list[ShiftSetting], dict[str, str]]:
    """Every (shift, severity) of the default grid that can apply to records stored at `sampling_rates`.

    Applicability is checked by running the shift on a short all-zero record at each rate, so the shift's own
    validation decides (e.g. the powerline frequency must be below the Nyquist frequency).

    Args:
        shift_names (`Sequence[str]`): names of `SHIFTS`.
        sampling_rates (`Sequence[float]`): the stored sampling rates of the evaluated records.

    Returns:
        `tuple`: the applicable `ShiftSetting`s, and `{"<name> (severities ...)": reason}` for the skipped ones.
    """
    unknown = [name for name in shift_names if name not in SHIFTS]
    if unknown:
        raise ValueError(f"Unknown shifts {unknown}; expected names of {sorted(SHIFTS)}.")
    settings, skipped_severities, reasons = [], {}, {}
    for name in shift_names:
        for severity in SEVERITIES[name]:
            for rate in sampling_rates:
                try:
                    apply_shift(name, np.zeros((1, 12, int(2 * rate)), dtype=np.float32), rate, severity)
                except ValueError as error:
                    skipped_severities.setdefault(name, []).append(severity)
                    reasons.setdefault(name, f"not applicable to records stored at {rate:g} Hz: {error}")
                    break
            else:
                settings.append(ShiftSetting(name, severity))
    skipped = {
        f"{name} (severities {', '.join(map(str, severities))})": reasons[name]
        for name, severities in skipped_severities.items()
    }
    for setting, reason in skipped.items():
        logger.warning("Robustness: skipping %s: %s", setting, reason)
    return settings, skipped


def shift_transform(setting: ShiftSetting, seed: int) -> RecordTransform:
    """A `RecordTransform` applying `setting` to one record with the seed `(seed, record_index)`.

    Leads the shift marks absent in its `lead_mask` are set to NaN, so the feature extractor treats them as missing.
    """

    def transform(signal: np.ndarray, sampling_rate: float, lead_names: list[str], record_index: int):
        record_seed = int(np.random.SeedSequence([seed, record_index]).generate_state(1)[0])
        options = {"lead_names": lead_names} if setting.name == "keep_lead_subset" else {}
        shifted = apply_shift(setting.name, signal[None], sampling_rate, setting.severity, seed=record_seed, **options)
        output = shifted.signals[0].astype(np.float32)
        output[shifted.lead_mask[0] == 0] = np.nan
        return output, shifted.sampling_rate

    return transform


@dataclass
class _ShiftedModel:
    baseline: str | None
    encoder_key: str
    ecg_model: torch.nn.Module
    head: torch.nn.Linear
    thresholds: np.ndarray
    seed: int


def run_robustness(
    harness: EvaluationHarness,
    merit_classifier,
    *,
    seeds: list[int],
    options: TrainingOptions,
    baselines: bool,
    shift_names: Sequence[str],
    use_checkpoint_head: bool = False,
) -> tuple[list[ResultRow], dict[str, str]]:
    """The robustness task.

    Args:
        harness (`EvaluationHarness`): the run's data, caches and rules.
        merit_classifier (`MeritForECGClassification`): holds the MERIT encoder (and, with `use_checkpoint_head`, its
            trained head).
        seeds (`list[int]`): seeds of the probe, the shifts and the bootstrap.
        options (`TrainingOptions`): training of the linear probes.
        baselines (`bool`): also evaluate a linear probe on a randomly initialised encoder of the same architecture.
        shift_names (`Sequence[str]`): the shifts to apply (names of `SHIFTS`), each at its default severities.
        use_checkpoint_head (`bool`, defaults to `False`): use `merit_classifier.classifier` as it is (the checkpoint
            is a classifier of these classes) instead of training a probe.

    Returns:
        `tuple`: rows (`task="robustness"`, `fraction=1.0`, one clean row and one per applicable shift setting, per
        model and seed), and the skipped settings with their reason.
    """
    settings, skipped = shift_settings(shift_names, harness.sampling_rates("test"))
    train_labels = harness.labels("train")
    validation_labels = harness.labels("validation")
    models = []
    for seed in seeds:
        candidates = [(None, "merit", merit_classifier)]
        if baselines:
            random_classifier = random_init_classifier(
                merit_classifier.config, harness.class_names, seed, freeze_ecg_encoder=True
            )
            candidates.append((RANDOM_INIT_BASELINE, f"random-init-seed{seed}", random_classifier))
        for baseline, encoder_key, classifier in candidates:
            validation_features = harness.features(encoder_key, classifier.ecg_model, "validation")
            if baseline is None and use_checkpoint_head:
                head = classifier.classifier.cpu()
            else:
                head = train_linear_probe(
                    harness.features(encoder_key, classifier.ecg_model, "train"),
                    train_labels,
                    validation_features,
                    validation_labels,
                    options,
                    seed,
                    description=f"Robustness probe {encoder_key} seed={seed}",
                ).head
            thresholds = harness.fit_thresholds(probe_probabilities(head, validation_features))
            models.append(_ShiftedModel(baseline, encoder_key, classifier.ecg_model, head, thresholds, seed))

    rows = []
    for model in models:  # every choice is made: now the test split, clean and under each shift
        clean = harness.features(model.encoder_key, model.ecg_model, "test")
        rows.append(
            harness.test_row(
                probe_probabilities(model.head, clean),
                model.thresholds,
                task="robustness",
                fraction=1.0,
                seed=model.seed,
                baseline=model.baseline,
                shift=CLEAN_SHIFT,
            )
        )
        for setting in settings:
            shifted = harness.features(
                model.encoder_key,
                model.ecg_model,
                "test",
                record_transform=shift_transform(setting, model.seed),
                transform_key=(setting.name, setting.severity, model.seed),
            )
            rows.append(
                harness.test_row(
                    probe_probabilities(model.head, shifted),
                    model.thresholds,
                    task="robustness",
                    fraction=1.0,
                    seed=model.seed,
                    baseline=model.baseline,
                    shift=setting.name,
                    severity=setting.severity,
                )
            )
    return rows, skipped
