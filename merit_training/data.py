"""Datasets and batching for MERIT pretraining: every record goes through the checkpoint's `MeritProcessor`.

Registered datasets (`dataset_scripts.registry.DATASETS`) are loaded through their spec: the report config for the
ECG-report pairs, a label set for the zero-shot validation AUROC. Any other `--dataset_name` is a folder written by
`DatasetDict.save_to_disk` or a Hub dataset id.
"""

import logging
import re
from dataclasses import dataclass
from pathlib import Path

import datasets
import numpy as np
import torch

from dataset_scripts import get_class_names, physical_signal
from dataset_scripts.registry import DATASETS, REPORT_DATASETS, load_dataset_splits


logger = logging.getLogger(__name__)


def load_pretraining_splits(
    dataset_name: str,
    data_dir: str | None,
    dataset_config_name: str | None = None,
    sampling_rate: int | None = None,
    cache_dir: str | None = None,
    num_proc: int | None = None,
) -> datasets.DatasetDict:
    """
    Loads ECG-report pairs with `train` and `validation` splits.

    `dataset_name` is a registered dataset with reports (its spec's `report_config`, read from `data_dir`; e.g.
    `ptbxl`, `mimic_iv_ecg`), a folder written by `DatasetDict.save_to_disk`, or a Hub dataset id (`load_dataset`,
    with `dataset_config_name`). `sampling_rate` applies to a registered dataset shipped at several rates (PTB-XL:
    100 or 500); others are read at their records' own rate.
    """
    spec = DATASETS.get(dataset_name)
    if spec is not None:
        if not spec.has_reports:
            raise ValueError(
                f"{spec.display_name} ({dataset_name}) has no reports; pretraining needs ECG-report pairs: one of "
                f"{list(REPORT_DATASETS)}, a saved DatasetDict folder or a Hub dataset id."
            )
        rate = sampling_rate if spec.sampling_rates else None
        return load_dataset_splits(dataset_name, data_dir, spec.report_config, rate, cache_dir, num_proc)
    if Path(dataset_name).is_dir():
        loaded = datasets.load_from_disk(dataset_name)
    else:
        loaded = datasets.load_dataset(dataset_name, dataset_config_name, cache_dir=cache_dir)
    if not isinstance(loaded, datasets.DatasetDict) or "train" not in loaded:
        raise ValueError(f"Dataset {dataset_name!r} must have a 'train' split; it has {list(loaded)}.")
    return loaded


def zero_shot_validation_split(
    dataset_name: str,
    data_dir: str | None,
    pretraining_splits: datasets.DatasetDict,
    label_set: str | None = None,
    sampling_rate: int | None = None,
    cache_dir: str | None = None,
) -> tuple[datasets.Dataset | None, list[str]]:
    """
    The labelled validation records for the zero-shot AUROC tracked during pretraining, and their class names.

    A registered dataset with label sets uses its `label_set` config (default: the spec's default label set; e.g.
    PTB-XL statements aggregated to the 5 superclasses); another labelled dataset uses its own classes; an unlabelled
    one (MIMIC-IV-ECG, a Hub dataset without labels) returns `(None, [])`.
    """
    spec = DATASETS.get(dataset_name)
    if spec is not None and spec.is_labelled:
        rate = sampling_rate if spec.sampling_rates else None
        labelled = load_dataset_splits(dataset_name, data_dir, label_set or spec.default_label_set, rate, cache_dir)
        return labelled["validation"], get_class_names(labelled)
    validation = pretraining_splits.get("validation")
    class_names = get_class_names(validation) if validation is not None else []
    if not class_names or "multi_hot" not in validation.column_names:
        return None, []
    return validation, class_names


ROW_INDEX = "__row_index__"
"""Key under which `IndexedRows` adds each row's position in the dataset."""


class IndexedRows(torch.utils.data.Dataset):
    """
    A `datasets.Dataset` whose rows also carry their position (`row[ROW_INDEX]`), so that the collator can seed
    random crops from the rows it batches rather than from a global RNG. Crops then depend only on the run seed and
    on which records form the batch: they are the same whether the batch is collated in the main process, in a
    worker, one batch ahead by accelerate's prefetching, or after resuming from a checkpoint.
    """

    def __init__(self, dataset: datasets.Dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict:
        return {**self.dataset[index], ROW_INDEX: index}

    def __getitems__(self, indices: list[int]) -> list[dict]:
        rows = self.dataset.__getitems__(indices)
        for row, index in zip(rows, indices, strict=True):
            row[ROW_INDEX] = index
        return rows


@dataclass
class ECGReportCollator:
    """
    Turns dataset rows into a model batch with the processor: physical units, lead reordering by name,
    resampling, crop, scaling and tokenisation all happen in `processor`.

    Rows need `signal_column` (leads x time; digital with `adc_gain`/`baseline`, or already physical), `lead_names`,
    `sampling_rate` and, unless `text_column` is `None`, the report; an empty report is kept as a placeholder and
    flagged in the batch's `report_mask` (`False`), so that the record serves masked modelling only. With `crop="random"`, rows must come from
    `IndexedRows`: the crop positions are seeded by `derived_seed(seed, *row positions)`, so a resumed run crops
    exactly like an uninterrupted one, whatever the global RNG, the prefetching or the worker processes did (a
    shuffled loader forms different batches every epoch, so a record gets new crops every epoch). With
    `report_sentence_dropout` > 0 (training only, needs random crops) each statement of a multi-statement report is
    left out with that probability, at least one kept (`drop_report_sentences`), from the same seed.
    """

    processor: object
    signal_column: str = "signal"
    text_column: str | None = "report"
    crop: str = "random"
    with_labels: bool = False
    seed: int = 0
    report_sentence_dropout: float = 0.0

    def signals(self, rows: list[dict]) -> list[np.ndarray]:
        """The ECGs of `rows` as float arrays `(leads, time)` in physical units (mV)."""
        if self.signal_column == "signal" and "adc_gain" in rows[0]:
            return [physical_signal(row) for row in rows]
        return [np.asarray(row[self.signal_column], dtype=np.float32) for row in rows]

    def crop_seed(self, rows: list[dict]) -> int | None:
        """The seed of the random crops of `rows` (a function of the run seed and the rows' positions), or `None`."""
        if self.crop != "random":
            return None
        if ROW_INDEX not in rows[0]:
            raise ValueError(
                f"Random crops need rows from `IndexedRows` (a {ROW_INDEX!r} key); got {sorted(rows[0])}."
            )
        return derived_seed(self.seed, *(int(row[ROW_INDEX]) for row in rows))

    def __call__(self, rows: list[dict]) -> dict[str, torch.Tensor]:
        text = None if self.text_column is None else [str(row[self.text_column]) for row in rows]
        seed = self.crop_seed(rows)
        if text is not None and self.report_sentence_dropout:
            if seed is None:
                raise ValueError("report_sentence_dropout is a training augmentation: it needs crop='random'.")
            rng = np.random.default_rng([seed, 1])
            text = [drop_report_sentences(report, self.report_sentence_dropout, rng) for report in text]
        batch = self.processor(
            ecg=self.signals(rows),
            text=text,
            sampling_rate=[float(row["sampling_rate"]) for row in rows],
            lead_names=[list(row["lead_names"]) for row in rows],
            crop=self.crop,
            seed=seed,
            return_tensors="pt",
        )
        batch = dict(batch)
        if text is not None:
            batch["report_mask"] = torch.tensor([bool(report.strip()) for report in text])
        if self.with_labels:
            batch["labels"] = torch.as_tensor(
                np.stack([np.asarray(row["multi_hot"]) for row in rows]), dtype=torch.float32
            )
        return batch


REPORT_STATEMENT_BREAK = re.compile(r"(?<=[.;])\s+|\s{3,}")
"""Where a report is cut into statements: after '.' or ';' followed by space, or at a run of 3+ spaces (the German
PTB-XL reports separate statements that way, e.g. "sinusrhythmus linkstyp qrs(t) abnormal    inferiorer infarkt")."""


def drop_report_sentences(report: str, probability: float, rng: np.random.Generator) -> str:
    """
    `report` with each of its statements (see `REPORT_STATEMENT_BREAK`) left out with `probability`, at least one
    kept (a random one when all were drawn out); kept statements stay in order, joined by one space. A report with a
    single statement (or none) comes back unchanged.
    """
    statements = [part.strip() for part in REPORT_STATEMENT_BREAK.split(report.strip()) if part.strip()]
    if len(statements) < 2:
        return report
    keep = rng.random(len(statements)) >= probability
    if not keep.any():
        keep[rng.integers(len(statements))] = True
    return " ".join(statement for statement, kept in zip(statements, keep) if kept)


def default_num_workers() -> int:
    """DataLoader worker processes when --dataloader_num_workers is not given: 4 with a GPU, 0 (main process) on CPU."""
    return 4 if torch.cuda.is_available() else 0


def build_train_dataloader(
    train_dataset: datasets.Dataset, collator: ECGReportCollator, batch_size: int, num_workers: int
) -> torch.utils.data.DataLoader:
    """Shuffled full batches of `train_dataset` (rows carry their position, see `IndexedRows`) through `collator`."""
    return torch.utils.data.DataLoader(
        IndexedRows(train_dataset.with_format("numpy")),
        batch_size=batch_size,
        shuffle=True,
        drop_last=True,
        collate_fn=collator,
        num_workers=num_workers,
        persistent_workers=num_workers > 0,
    )


def derived_seed(*parts: int) -> int:
    """A 63-bit seed that is a fixed function of `parts` (non-negative integers), stable across runs and platforms."""
    return int(np.random.SeedSequence([int(part) for part in parts]).generate_state(1, dtype=np.uint64)[0] >> 1)


@dataclass
class PretrainingData:
    """What a pretraining run feeds the model (`prepare_pretraining_data`); the loaders are not yet prepared by
    accelerate."""

    train_dataset: datasets.Dataset
    train_dataloader: torch.utils.data.DataLoader
    eval_dataloader: torch.utils.data.DataLoader | None
    zero_shot_dataloader: torch.utils.data.DataLoader | None
    zero_shot_prompts: dict[str, list[str]] | None


def first_records(dataset: datasets.Dataset | None, limit: int | None) -> datasets.Dataset | None:
    """The first `limit` records of `dataset` (all of them when `limit` is `None` or 0; `None` stays `None`)."""
    if dataset is None or not limit:
        return dataset
    return dataset.select(range(min(limit, len(dataset))))


def check_pretraining_columns(name: str, dataset: datasets.Dataset, signal_column: str, text_column: str) -> None:
    """Raises unless a split has the ECG, report, lead-name and sampling-rate columns the collator reads."""
    missing = {signal_column, text_column, "lead_names", "sampling_rate"} - set(dataset.column_names)
    if missing:
        raise ValueError(
            f"The {name} split lacks the columns {sorted(missing)} (has {dataset.column_names}); "
            "set --signal_column / --text_column."
        )


def prepare_pretraining_data(
    data_args, training_args, data_dir: str | None, processor, accelerator
) -> PretrainingData:
    """
    The splits and loaders of a pretraining run, as `train_merit.py` configures them: the ECG-report pairs of
    `--dataset_name` (`load_pretraining_splits`; the main process prepares them first), cut to `--max_train_samples`
    / `--max_eval_samples`; the shuffled training loader with random crops; the validation loader (centre crops);
    and, for a labelled dataset, the zero-shot validation records with the prompts of their classes
    (`merit_evaluation.prompts.class_prompts`, the prompts `eval_merit.py --task zero-shot` uses).

    Args:
        data_args (`DataArguments`), training_args (`TrainingArguments`): the parsed flags.
        data_dir (`str`, *optional*): `resolved_data_dir(data_args)`.
        processor (`MeritProcessor`): the model's processor; every record goes through it.
        accelerator (`accelerate.Accelerator`): for the process count and `main_process_first`.

    Returns:
        `PretrainingData`.
    """
    from merit_evaluation.prompts import class_prompts

    from .arguments import resolved_zero_shot_label_set

    label_set = resolved_zero_shot_label_set(data_args)
    with accelerator.main_process_first():
        splits = load_pretraining_splits(
            data_args.dataset_name,
            data_dir,
            data_args.dataset_config_name,
            data_args.ptbxl_sampling_rate,
            data_args.cache_dir,
            data_args.preprocessing_num_workers,
        )
        zero_shot_split, zero_shot_classes = zero_shot_validation_split(
            data_args.dataset_name, data_dir, splits, label_set, data_args.ptbxl_sampling_rate, data_args.cache_dir
        )
    train_dataset = first_records(splits["train"], data_args.max_train_samples)
    if data_args.reportless_records == "drop" and data_args.text_column in train_dataset.column_names:
        train_dataset = train_dataset.filter(
            lambda report: bool(str(report).strip()), input_columns=data_args.text_column
        )
    eval_dataset = first_records(splits.get("validation"), data_args.max_eval_samples)
    zero_shot_split = first_records(zero_shot_split, data_args.max_eval_samples)
    for name, dataset in (("train", train_dataset), ("validation", eval_dataset)):
        if dataset is not None:
            check_pretraining_columns(name, dataset, data_args.signal_column, data_args.text_column)
    if data_args.resample_once:
        with accelerator.main_process_first():  # one process resamples, the others read its cached map
            train_dataset = resample_to_model_rate(
                train_dataset, processor.feature_extractor, data_args.preprocessing_num_workers,
                signal_column=data_args.signal_column,
            )  # fmt: skip
        logger.info(f"Training records resampled once to {processor.feature_extractor.sampling_rate} Hz.")

    num_workers = data_args.dataloader_num_workers
    num_workers = default_num_workers() if num_workers is None else num_workers
    batch_size = training_args.per_device_train_batch_size
    if len(train_dataset) < batch_size * accelerator.num_processes:
        raise ValueError(
            f"The training split has {len(train_dataset)} records, fewer than one global batch "
            f"({batch_size} x {accelerator.num_processes} processes); lower --per_device_train_batch_size."
        )
    collator = ECGReportCollator(
        processor,
        data_args.signal_column,
        data_args.text_column,
        crop="random",
        seed=training_args.seed,
        report_sentence_dropout=data_args.report_sentence_dropout,
    )
    train_dataloader = build_train_dataloader(train_dataset, collator, batch_size, num_workers)
    data = PretrainingData(train_dataset, train_dataloader, None, None, None)
    eval_batch_size = training_args.per_device_eval_batch_size
    if eval_dataset is not None and len(eval_dataset):
        eval_collator = ECGReportCollator(processor, data_args.signal_column, data_args.text_column, crop="center")
        data.eval_dataloader = torch.utils.data.DataLoader(
            eval_dataset.with_format("numpy"),
            batch_size=eval_batch_size,
            collate_fn=eval_collator,
            num_workers=num_workers,
        )
    if zero_shot_split is not None and len(zero_shot_split):
        data.zero_shot_prompts = class_prompts(data_args.dataset_name, data_dir, label_set, zero_shot_classes)
        data.zero_shot_dataloader = torch.utils.data.DataLoader(
            zero_shot_split.with_format("numpy"),
            batch_size=eval_batch_size,
            collate_fn=ECGReportCollator(processor, "signal", None, crop="center", with_labels=True),
            num_workers=num_workers,
        )
    return data


def resample_to_model_rate(
    dataset: datasets.Dataset,
    feature_extractor,
    num_proc: int | None = None,
    batch_size: int = 64,
    signal_column: str = "signal",
) -> datasets.Dataset:
    """
    `dataset` with every ECG resampled once to the model's rate (`feature_extractor.sampling_rate`), so that the
    training loader does not resample the same record again at every epoch (at 500 -> 100 Hz the polyphase filter is
    most of the loader's work: `benchmarks/bench_mimic_scale.py`). `train_merit.py --resample_once` applies it to
    the training split.

    The feature extractor itself does the work, with only its steps that do not depend on the crop: physical units,
    lead selection and order, NaN filling and resampling (no band-pass, crop or scaling). Rows come back with
    `signal_column` as float32 millivolts of shape `(feature_size, samples at the model rate)` in the extractor's
    lead order, missing leads as NaN rows (so that they are still found missing), `lead_names` = the extractor's,
    `sampling_rate` = the model's, and no `adc_gain` / `baseline`. The processor then skips the resampling and gives
    the same model inputs up to float32 rounding of the stored samples. Cached by `datasets.map` like any map.

    Args:
        dataset (`datasets.Dataset`): rows of a builder (digital `signal` with `adc_gain` / `baseline`, or physical).
        feature_extractor (`MeritFeatureExtractor`): the model's.
        num_proc (`int`, *optional*): worker processes of the map.
        batch_size (`int`, *optional*, defaults to 64): rows per map batch.
        signal_column (`str`, *optional*, defaults to `"signal"`): the column holding the ECGs (rewritten).
    """
    from modeling_merit import MeritFeatureExtractor

    resampler = MeritFeatureExtractor.from_dict(
        {
            **feature_extractor.to_dict(),
            "bandpass": None,
            "scaling": "none",
            "crop": "center",
            "return_lead_mask": True,
        }
    )
    lead_names = list(feature_extractor.lead_names)
    collator = ECGReportCollator(None, signal_column, text_column=None)

    def resample(batch: dict) -> dict:
        rows = [dict(zip(batch, values, strict=True)) for values in zip(*batch.values(), strict=True)]
        signals, outputs = collator.signals(rows), []
        for row, signal in zip(rows, signals, strict=True):
            rate = float(row["sampling_rate"])
            length = round(signal.shape[-1] * feature_extractor.sampling_rate / rate)
            resampler.num_samples = length
            features = resampler(signal, sampling_rate=rate, lead_names=list(row["lead_names"]))
            values = features["input_values"][0]
            values[features["lead_mask"][0] == 0] = np.nan
            outputs.append(values)
        return {
            signal_column: outputs,
            "lead_names": [lead_names] * len(rows),
            "sampling_rate": [feature_extractor.sampling_rate] * len(rows),
        }

    features = dataset.features.copy()
    for name in ("adc_gain", "baseline"):
        features.pop(name, None)
    features[signal_column] = datasets.List(datasets.List(datasets.Value("float32")))
    features["lead_names"] = datasets.List(datasets.Value("string"))
    features["sampling_rate"] = datasets.Value("float32")
    removed = [name for name in ("adc_gain", "baseline") if name in dataset.column_names]
    return dataset.map(
        resample,
        batched=True,
        batch_size=batch_size,
        num_proc=num_proc,
        remove_columns=removed,
        features=features,
        desc=f"resampling to {feature_extractor.sampling_rate} Hz (once)",
    )
