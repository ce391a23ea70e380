# Copyright 2026 The MERIT authors.
# Licensed under the Apache License, Version 2.0.
"""Evaluation datasets and their preprocessing through a checkpoint's feature extractor.

- `load_evaluation_dataset` loads a labelled dataset of the registry (`dataset_scripts.registry.DATASETS`: PTB-XL
  with one benchmark label set, CPSC2018, Chapman-Shaoxing-Ningbo, ...) with its builder as a `DatasetDict` with
  `train`, `validation` and `test` splits.
- `split_labels` returns a split's multi-hot labels in the canonical class order stored in its features.
- `preprocess_split` converts a split's stored samples to millivolts, optionally transforms each record (the
  robustness shifts), and runs the checkpoint's `MeritFeatureExtractor` over it in batches. There is no other
  preprocessing path: what a checkpoint saw in training is what it sees here.

Label sets, sampling rates and class descriptions of each dataset are in its `DatasetSpec`.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import datasets
import numpy as np

from dataset_scripts.registry import LABELLED_DATASETS, dataset_spec, load_dataset_splits


RecordTransform = Callable[[np.ndarray, float, list[str], int], tuple[np.ndarray, float]]
"""`(signal (leads, time) in mV, sampling_rate, lead_names, record_index) -> (signal, sampling_rate)`. Leads set to
NaN in the returned signal are treated as missing by the feature extractor (zero-filled, `lead_mask = 0`)."""


def load_evaluation_dataset(
    dataset: str,
    data_dir: str | os.PathLike,
    label_set: str | None = None,
    sampling_rate: int | None = None,
    cache_dir: str | os.PathLike | None = None,
) -> datasets.DatasetDict:
    """Load an evaluation dataset with its `train` / `validation` / `test` splits.

    Args:
        dataset (`str`): a labelled dataset of the registry (`ptbxl`, `cpsc2018`, `chapman`, ...).
        data_dir (`str` or `os.PathLike`): the local copy of the dataset in its PhysioNet layout.
        label_set (`str`, *optional*): one of the spec's `label_sets`; defaults to its `default_label_set`.
        sampling_rate (`int`, *optional*): for a dataset shipped at several rates, the one to load (PTB-XL:
            `records100/` (100, the default) or `records500/` (500)); the Challenge datasets are read at their
            stored 500 Hz. The checkpoint's processor resamples either way.
        cache_dir (`str` or `os.PathLike`, *optional*): where the prepared Arrow files go.

    Returns:
        `datasets.DatasetDict` with `train`, `validation` and `test`; PTB-XL uses folds 1-8 / 9 / 10, the others the
        builders' seeded stratified split.
    """
    spec = dataset_spec(dataset)
    if not spec.is_labelled:
        raise ValueError(
            f"{spec.display_name} ({dataset}) has no label sets, so it cannot be evaluated; expected one of "
            f"{list(LABELLED_DATASETS)}."
        )
    label_set = spec.default_label_set if label_set is None else label_set
    if label_set not in spec.label_sets:
        raise ValueError(
            f"Label set {label_set!r} does not exist for {dataset}; expected one of {list(spec.label_sets)}."
        )
    return load_dataset_splits(dataset, data_dir, label_set, sampling_rate=sampling_rate, cache_dir=cache_dir)


def split_labels(split: datasets.Dataset) -> np.ndarray:
    """Multi-hot labels of a split, shape `(n_records, n_classes)`, dtype int8, in the split's class order."""
    if "multi_hot" not in split.column_names:
        raise ValueError(f"The split has no `multi_hot` column (columns: {split.column_names}); is it labelled?")
    labels = split.select_columns(["multi_hot"]).with_format("numpy")[:]["multi_hot"]
    return np.asarray(labels, dtype=np.int8).reshape(len(split), -1)


def _record_signal(batch: dict, index: int) -> np.ndarray:
    """The record `index` of a numpy-formatted batch in mV, shape `(leads, time)` (float32)."""
    from dataset_scripts.common import physical_signal

    signal = batch["signal"][index]
    if signal.dtype == object:  # variable-length records come as an array of per-lead arrays
        signal = np.stack(signal)
    row = {"signal": signal, "baseline": batch["baseline"][index], "adc_gain": batch["adc_gain"][index]}
    return physical_signal(row)


def preprocess_split(
    split: datasets.Dataset,
    feature_extractor,
    record_transform: RecordTransform | None = None,
    batch_size: int = 64,
    description: str = "Preprocessing",
) -> datasets.Dataset:
    """Run the checkpoint's feature extractor over a split (in memory; nothing is written to the cache).

    Args:
        split (`datasets.Dataset`): rows of the `dataset_scripts` schema (`signal`, `adc_gain`, `baseline`,
            `lead_names`, `sampling_rate`, `multi_hot`).
        feature_extractor (`MeritFeatureExtractor`): the checkpoint's feature extractor
            (`processor.feature_extractor`).
        record_transform (`RecordTransform`, *optional*): applied to each record in mV before the feature extractor.
        batch_size (`int`, defaults to 64): records per `map` batch.
        description (`str`): progress-bar label.

    Returns:
        `datasets.Dataset` with `input_values` `(n_leads, num_samples)` float32, `lead_mask` `(n_leads,)` int64 and
        (when the split has it) `multi_hot`, one row per record, in the split's order.
    """
    n_leads, n_samples = feature_extractor.feature_size, feature_extractor.num_samples

    def preprocess(batch: dict, indices: list[int]) -> dict:
        signals, rates, lead_names = [], [], []
        for position, record_index in enumerate(indices):
            signal = _record_signal(batch, position)
            rate = float(batch["sampling_rate"][position])
            names = [str(name) for name in batch["lead_names"][position]]
            if record_transform is not None:
                signal, rate = record_transform(signal, rate, names, record_index)
            signals.append(signal)
            rates.append(rate)
            lead_names.append(names)
        features = feature_extractor(signals, sampling_rate=rates, lead_names=lead_names, return_tensors="np")
        return {"input_values": features["input_values"], "lead_mask": features["lead_mask"]}

    output_features = datasets.Features(
        {
            "input_values": datasets.Array2D((n_leads, n_samples), "float32"),
            "lead_mask": datasets.List(datasets.Value("int64"), length=n_leads),
            **({"multi_hot": split.features["multi_hot"]} if "multi_hot" in split.column_names else {}),
        }
    )
    return split.with_format("numpy").map(
        preprocess,
        batched=True,
        batch_size=batch_size,
        with_indices=True,
        remove_columns=[name for name in split.column_names if name != "multi_hot"],
        features=output_features,
        keep_in_memory=True,
        load_from_cache_file=False,
        desc=description,
    )


def preprocess_ecg_inputs(
    split: datasets.Dataset, feature_extractor, batch_size: int = 64, description: str = "Preprocessing"
) -> datasets.Dataset:
    """`preprocess_split` of a split's ECGs alone: its `report` and `multi_hot` columns, when present, are dropped
    first, so the result holds `input_values` and `lead_mask` (e.g. a pool of ECG-report pairs to embed)."""
    signals = split.remove_columns([name for name in ("report", "multi_hot") if name in split.column_names])
    return preprocess_split(signals, feature_extractor, batch_size=batch_size, description=description)
