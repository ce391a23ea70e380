# Copyright 2026 The MERIT authors.
# Licensed under the Apache License, Version 2.0.
"""Evaluation datasets and their preprocessing through a checkpoint's feature extractor.

- `load_evaluation_dataset` loads PTB-XL (one benchmark label set), CPSC2018 or Chapman-Shaoxing-Ningbo with the
  `dataset_scripts` builders as a `DatasetDict` with `train`, `validation` and `test` splits.
- `split_labels` returns a split's multi-hot labels in the canonical class order stored in its features.
- `class_descriptions` gives a text description of every class from the dataset's own label table (for zero-shot
  prompts).
- `preprocess_split` converts a split's stored samples to millivolts, optionally transforms each record (the
  robustness shifts), and runs the checkpoint's `MeritFeatureExtractor` over it in batches. There is no other
  preprocessing path: what a checkpoint saw in training is what it sees here.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import datasets
import numpy as np
import pandas as pd


logger = logging.getLogger(__name__)

DATASETS = ("ptbxl", "cpsc2018", "chapman")
"""Datasets `eval_merit.py` evaluates on."""

CHALLENGE_LABEL_SET = "default"
"""The only label set of CPSC2018 and Chapman: every class of the dataset's SNOMED-CT label table."""

PTBXL_SAMPLING_RATES = (100, 500)
"""Rates at which PTB-XL ships its records (`records100/`, `records500/`)."""

RecordTransform = Callable[[np.ndarray, float, list[str], int], tuple[np.ndarray, float]]
"""`(signal (leads, time) in mV, sampling_rate, lead_names, record_index) -> (signal, sampling_rate)`. Leads set to
NaN in the returned signal are treated as missing by the feature extractor (zero-filled, `lead_mask = 0`)."""


def dataset_label_sets(dataset: str) -> tuple[str, ...]:
    """Label sets available for `dataset` (PTB-XL: the six benchmark sets; the others: `("default",)`)."""
    if dataset == "ptbxl":
        from dataset_scripts.ptbxl import BENCHMARK_TASKS

        return tuple(BENCHMARK_TASKS)
    if dataset in ("cpsc2018", "chapman"):
        return (CHALLENGE_LABEL_SET,)
    raise ValueError(f"Unknown dataset {dataset!r}; expected one of {list(DATASETS)}.")


def default_label_set(dataset: str) -> str:
    """`superdiagnostic` for PTB-XL, `default` for the others."""
    return "superdiagnostic" if dataset == "ptbxl" else dataset_label_sets(dataset)[0]


def load_evaluation_dataset(
    dataset: str,
    data_dir: str | os.PathLike,
    label_set: str | None = None,
    sampling_rate: int = 100,
    cache_dir: str | os.PathLike | None = None,
) -> datasets.DatasetDict:
    """Load an evaluation dataset with its `train` / `validation` / `test` splits.

    Args:
        dataset (`str`): `ptbxl`, `cpsc2018` or `chapman`.
        data_dir (`str` or `os.PathLike`): the local copy of the dataset in its PhysioNet layout.
        label_set (`str`, *optional*): see `dataset_label_sets`; defaults to `default_label_set(dataset)`.
        sampling_rate (`int`, defaults to 100): PTB-XL only: load `records100/` (100) or `records500/` (500). The
            Challenge datasets are stored at 500 Hz. The checkpoint's processor resamples either way.
        cache_dir (`str` or `os.PathLike`, *optional*): where the prepared Arrow files go.

    Returns:
        `datasets.DatasetDict` with `train`, `validation` and `test`; PTB-XL uses folds 1-8 / 9 / 10, the others the
        builders' seeded stratified split.
    """
    label_set = default_label_set(dataset) if label_set is None else label_set
    if label_set not in dataset_label_sets(dataset):
        raise ValueError(
            f"Label set {label_set!r} does not exist for {dataset}; expected one of "
            f"{list(dataset_label_sets(dataset))}."
        )
    if dataset == "ptbxl":
        from dataset_scripts.ptbxl import load_ptbxl

        if sampling_rate not in PTBXL_SAMPLING_RATES:
            raise ValueError(f"PTB-XL ships records at {PTBXL_SAMPLING_RATES} Hz, got sampling_rate={sampling_rate}.")
        return load_ptbxl(data_dir, task=label_set, sampling_rate=sampling_rate, cache_dir=cache_dir)
    if dataset == "cpsc2018":
        from dataset_scripts.cpsc2018 import load_cpsc2018

        return load_cpsc2018(data_dir, cache_dir=cache_dir)
    from dataset_scripts.chapman import load_chapman

    return load_chapman(data_dir, cache_dir=cache_dir)


def split_labels(split: datasets.Dataset) -> np.ndarray:
    """Multi-hot labels of a split, shape `(n_records, n_classes)`, dtype int8, in the split's class order."""
    if "multi_hot" not in split.column_names:
        raise ValueError(f"The split has no `multi_hot` column (columns: {split.column_names}); is it labelled?")
    labels = split.select_columns(["multi_hot"]).with_format("numpy")[:]["multi_hot"]
    return np.asarray(labels, dtype=np.int8).reshape(len(split), -1)


def class_descriptions(
    dataset: str, data_dir: str | os.PathLike, label_set: str, class_names: Sequence[str]
) -> dict[str, str]:
    """A text description of every class, from the dataset's label table, in the order of `class_names`.

    PTB-XL: `merit_evaluation.prompts.ptbxl_class_descriptions` on the `scp_statements.csv` of `data_dir`.
    CPSC2018 / Chapman: the `description` column of the builder's SNOMED-CT table (`snomed_classes.csv`); a class
    that several codes map to gets their descriptions joined with " or " (e.g. Chapman `PAC`: "premature atrial
    contraction or supraventricular premature beats").

    Args:
        dataset (`str`): `ptbxl`, `cpsc2018` or `chapman`.
        data_dir (`str` or `os.PathLike`): the dataset copy (PTB-XL: holds `scp_statements.csv`).
        label_set (`str`): the evaluated label set.
        class_names (`Sequence[str]`): the evaluated classes, in column order.

    Returns:
        `dict[str, str]`: class name -> description.
    """
    if dataset == "ptbxl":
        from .prompts import ptbxl_class_descriptions

        statements_path = Path(data_dir) / "scp_statements.csv"
        if not statements_path.is_file():
            raise ValueError(f"{statements_path} not found; PTB-XL zero-shot prompts are built from it.")
        descriptions = ptbxl_class_descriptions(pd.read_csv(statements_path, index_col=0), label_set)
    elif dataset in ("cpsc2018", "chapman"):
        if dataset == "cpsc2018":
            from dataset_scripts.cpsc2018 import LABEL_TABLE
        else:
            from dataset_scripts.chapman import LABEL_TABLE
        table = pd.read_csv(LABEL_TABLE, dtype=str, keep_default_na=False)
        descriptions = {
            class_name: " or ".join(dict.fromkeys(group["description"].str.strip()))
            for class_name, group in table.groupby("class_name", sort=True)
            if class_name
        }
    else:
        raise ValueError(f"Unknown dataset {dataset!r}; expected one of {list(DATASETS)}.")
    missing = [name for name in class_names if name not in descriptions]
    if missing:
        raise ValueError(f"No description for the {dataset} classes {missing} in its label table.")
    return {name: descriptions[name] for name in class_names}


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
