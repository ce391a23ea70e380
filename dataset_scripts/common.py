"""What the ECG builders share: the row schema, the skip policy, splitting, integrity checks.

Every builder in `dataset_scripts` produces rows with the same core columns (see [`ecg_features`]):
the digital samples exactly as stored (int16, shape `(leads, time)`), the per-lead ADC gain
(units per mV) and baseline needed to recover millivolts with [`physical_signal`], the lead names
exactly as written in the header, the sampling rate, a report string and, for labelled datasets,
the labels by name (`List(ClassLabel)`, so the canonical class list lives in the features) plus a
multi-hot vector in that same order. [`get_class_names`] reads the class list back.

[`EcgBuilder`] is the `datasets.GeneratorBasedBuilder` base class of all builders. It streams
records shard by shard (so `num_proc` workers each decode their own shards and nothing holds the
whole dataset in memory) and implements the bad-record policy: with `skip_bad_records=False` the
first [`BadRecordError`] stops preparation with a message naming the file; with `True` bad
records are skipped, logged, counted and listed in `skipped_records.json` next to the prepared
Arrow files (exposed as `builder.skipped_records` and as the `skipped_records` attribute of the
`DatasetDict` returned by the `load_*` helpers).
"""

from __future__ import annotations

import glob
import hashlib
import json
import logging
import math
import os
import tempfile
import urllib.request
import zipfile
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import pandas as pd
from datasets.builder import Key
from datasets.exceptions import DatasetGenerationError

from .wfdb_io import BadRecordError


logger = logging.getLogger(__name__)

SPLITS = ("train", "validation", "test")
SKIPPED_RECORDS_FILE = "skipped_records.json"
_SKIP_LOG_PATTERN = "skipped-*.jsonl"
_PACKAGE_DIR = Path(__file__).resolve().parent

__all__ = [
    "BadRecordError",
    "EcgBuilder",
    "EcgBuilderConfig",
    "SPLITS",
    "download_and_extract",
    "ecg_features",
    "get_class_names",
    "group_split",
    "load_builder",
    "multi_hot",
    "normalize_sex",
    "parse_age",
    "physical_signal",
    "read_sha256sums",
    "read_split_file",
    "sha256_file",
    "stratified_split",
    "verify_sha256",
]


# ----------------------------------------------------------------------------------------------
# Row schema
# ----------------------------------------------------------------------------------------------


def ecg_features(
    *,
    n_leads: int = 12,
    n_samples: int | None,
    class_names: Sequence[str] | None,
    id_dtype: str,
    extra: Mapping[str, Any] | None = None,
) -> datasets.Features:
    """The row schema shared by every ECG builder.

    Args:
        n_leads (`int`, *optional*, defaults to 12): number of stored signals.
        n_samples (`int` or `None`): samples per lead when every record has the same length, which
            stores `signal` as `Array2D((n_leads, n_samples), "int16")`; `None` for variable-length
            records, stored as `List(List(Value("int16")))` (an `Array2D` may only vary in its first
            dimension, which here is the lead axis). Both are Arrow lists of int16 on disk: the
            overhead over the raw int16 bytes is one 4-byte offset per lead and record.
        class_names (`Sequence[str]` or `None`): the canonical, sorted class list. `None` for
            unlabelled datasets, which then have no `labels`/`multi_hot` columns.
        id_dtype (`str`): Arrow type of `ecg_id`/`patient_id`, e.g. `"int32"` or `"string"`.
        extra (`Mapping[str, Any]`, *optional*): dataset-specific columns appended at the end.

    Returns:
        `datasets.Features` with columns `ecg_id`, `patient_id`, `record_path`, `signal`,
        `adc_gain` (float32 per lead, ADC units per mV), `baseline` (int32 per lead), `lead_names`,
        `sampling_rate` (Hz), `report`, [`labels`, `multi_hot`,] `age`, `sex`, then `extra`.
    """
    if n_samples is None:
        signal = datasets.List(datasets.List(datasets.Value("int16")))
    else:
        signal = datasets.Array2D(shape=(n_leads, n_samples), dtype="int16")
    features = {
        "ecg_id": datasets.Value(id_dtype),
        "patient_id": datasets.Value(id_dtype),
        "record_path": datasets.Value("string"),
        "signal": signal,
        "adc_gain": datasets.List(datasets.Value("float32"), length=n_leads),
        "baseline": datasets.List(datasets.Value("int32"), length=n_leads),
        "lead_names": datasets.List(datasets.Value("string"), length=n_leads),
        "sampling_rate": datasets.Value("int32"),
        "report": datasets.Value("string"),
    }
    if class_names is not None:
        if list(class_names) != sorted(set(class_names)):
            raise ValueError(f"class_names must be sorted and unique, got {list(class_names)}")
        features["labels"] = datasets.List(datasets.ClassLabel(names=list(class_names)))
        features["multi_hot"] = datasets.List(datasets.Value("int8"), length=len(class_names))
    features["age"] = datasets.Value("float32")
    features["sex"] = datasets.Value("string")
    features.update(extra or {})
    return datasets.Features(features)


def multi_hot(labels: Iterable[str], class_names: Sequence[str]) -> list[int]:
    """The multi-hot vector (in `class_names` order) of a list of class names."""
    present = set(labels)
    unknown = present - set(class_names)
    if unknown:
        raise ValueError(f"labels {sorted(unknown)} are not in the class list {list(class_names)}")
    return [int(name in present) for name in class_names]


def physical_signal(example: Mapping[str, Any]) -> np.ndarray:
    """Converts a row's stored samples to millivolts: `(signal - baseline) / adc_gain` per lead.

    Args:
        example (`Mapping`): a row (or any dict) with `signal` of shape `(leads, time)` and the
            per-lead `baseline` and `adc_gain`, as Python lists or numpy arrays.

    Returns:
        `np.ndarray` of dtype float32 and shape `(leads, time)`, in mV.
    """
    signal = np.asarray(example["signal"], dtype=np.float32)
    baseline = np.asarray(example["baseline"], dtype=np.float32)
    gain = np.asarray(example["adc_gain"], dtype=np.float32)
    if signal.ndim != 2 or baseline.shape != (signal.shape[0],) or gain.shape != (signal.shape[0],):
        raise ValueError(
            f"expected signal (leads, time) with one baseline and gain per lead, got signal {signal.shape}, "
            f"baseline {baseline.shape}, adc_gain {gain.shape}"
        )
    return (signal - baseline[:, None]) / gain[:, None]


def get_class_names(dataset: datasets.Dataset | datasets.DatasetDict | datasets.Features) -> list[str]:
    """The canonical class list stored in the `labels` feature (`[]` for unlabelled datasets).

    Args:
        dataset (`Dataset`, `IterableDataset`, `DatasetDict` or `Features`): for a `DatasetDict`
            every split must carry the same class list.

    Raises:
        `ValueError`: when the splits of a `DatasetDict` disagree.
    """
    if isinstance(dataset, (datasets.DatasetDict, datasets.IterableDatasetDict)):
        names_per_split = {split: get_class_names(part) for split, part in dataset.items()}
        distinct = {tuple(names) for names in names_per_split.values()}
        if len(distinct) > 1:
            raise ValueError(f"splits disagree on the class list: {names_per_split}")
        return list(distinct.pop()) if distinct else []
    features = dataset if isinstance(dataset, datasets.Features) else dataset.features
    labels = features.get("labels")
    if labels is None:
        return []
    return list(labels.feature.names)


def normalize_sex(value: Any) -> str | None:
    """Maps the sex encodings of the corpora (PTB-XL 0/1, `Male`/`Female`, `M`/`F`) to `male`/`female`."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    text = str(value).strip().lower()
    return {"0": "male", "1": "female", "male": "male", "female": "female", "m": "male", "f": "female"}.get(text)


def parse_age(value: Any) -> float | None:
    """An age as float, `None` when missing (`NaN`, empty, `Unknown`)."""
    try:
        age = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(age) else age


# ----------------------------------------------------------------------------------------------
# Splitting
# ----------------------------------------------------------------------------------------------


def _check_fractions(fractions: Mapping[str, float]) -> None:
    if set(fractions) != set(SPLITS) or any(value < 0 for value in fractions.values()):
        raise ValueError(f"split fractions must give a non-negative value for each of {SPLITS}, got {dict(fractions)}")
    if not math.isclose(sum(fractions.values()), 1.0, abs_tol=1e-6):
        raise ValueError(f"split fractions must sum to 1, got {dict(fractions)} (sum {sum(fractions.values())})")


def group_split(groups: Sequence[Any], fractions: Mapping[str, float], seed: int) -> list[str]:
    """Assigns every member of a group (e.g. all ECGs of one subject) to the same split.

    Each group goes to a split by a seeded hash of its id, so the assignment is deterministic,
    needs no global shuffle (it streams) and does not move when records are added or removed.

    Args:
        groups (`Sequence`): the group id of each record.
        fractions (`Mapping[str, float]`): expected share of groups per split (`train`, `validation`, `test`).
        seed (`int`): changes the assignment.

    Returns:
        `list[str]`: the split name of each record.
    """
    _check_fractions(fractions)
    bounds = np.cumsum([fractions[split] for split in SPLITS])
    assignment = {}
    result = []
    for group in groups:
        if group not in assignment:
            digest = hashlib.blake2b(f"{seed}/{group}".encode(), digest_size=8).digest()
            position = int.from_bytes(digest, "big") / 2**64
            assignment[group] = SPLITS[min(int(np.searchsorted(bounds, position, side="right")), len(SPLITS) - 1)]
        result.append(assignment[group])
    return result


def stratified_split(
    record_ids: Sequence[str], label_lists: Sequence[Sequence[str]], fractions: Mapping[str, float], seed: int
) -> list[str]:
    """A seeded multi-label stratified split.

    Each record is stratified by its rarest label (by frequency over all records; unlabelled
    records form their own stratum). Within each stratum the records are ordered by id, shuffled
    with `seed`, and cut by largest remainder so that every stratum follows `fractions` as closely
    as its size allows, with at least one record in every split of non-zero share once the stratum
    has 3 records or more (so rare classes reach validation and test).

    Args:
        record_ids (`Sequence[str]`): unique record ids (only used for a deterministic order).
        label_lists (`Sequence[Sequence[str]]`): the class names of each record.
        fractions (`Mapping[str, float]`): share per split (`train`, `validation`, `test`).
        seed (`int`): the shuffling seed.

    Returns:
        `list[str]`: the split name of each record.
    """
    _check_fractions(fractions)
    if len(record_ids) != len(label_lists):
        raise ValueError(f"got {len(record_ids)} record ids but {len(label_lists)} label lists")
    frequency = Counter(label for labels in label_lists for label in set(labels))
    strata: dict[str, list[int]] = {}
    for index, labels in enumerate(label_lists):
        stratum = min(labels, key=lambda label: (frequency[label], label)) if labels else ""
        strata.setdefault(stratum, []).append(index)
    rng = np.random.default_rng(seed)
    result = [""] * len(record_ids)
    for stratum in sorted(strata):
        members = sorted(strata[stratum], key=lambda index: str(record_ids[index]))
        members = [members[i] for i in rng.permutation(len(members))]
        exact = np.array([fractions[split] * len(members) for split in SPLITS])
        counts = np.floor(exact).astype(int)
        # Largest remainder; ties favour the smaller held-out splits so rare classes reach them.
        order = sorted(range(len(SPLITS)), key=lambda i: (-(exact[i] - counts[i]), fractions[SPLITS[i]]))
        for i in order[: len(members) - counts.sum()]:
            counts[i] += 1
        if len(members) >= len(SPLITS):
            # Every split with a non-zero share gets at least one record of the stratum.
            for i in range(len(SPLITS)):
                if counts[i] == 0 and fractions[SPLITS[i]] > 0:
                    counts[i] += 1
                    counts[int(np.argmax(counts))] -= 1
        start = 0
        for split, count in zip(SPLITS, counts):
            for index in members[start : start + count]:
                result[index] = split
            start += count
    return result


def read_split_file(path: str | os.PathLike) -> dict[str, str]:
    """Reads an external split file: a CSV with columns `ecg_id` and `split`.

    Returns:
        `dict[str, str]`: record id (as string) -> split name.

    Raises:
        `ValueError`: missing columns, unknown split names or duplicated ids.
    """
    table = pd.read_csv(path, dtype=str)
    if not {"ecg_id", "split"} <= set(table.columns):
        raise ValueError(f"split file {path} must have columns `ecg_id` and `split`, got {list(table.columns)}")
    unknown = sorted(set(table["split"]) - set(SPLITS))
    if unknown:
        raise ValueError(f"split file {path} names unknown splits {unknown}; expected {SPLITS}")
    duplicated = table["ecg_id"][table["ecg_id"].duplicated()].tolist()
    if duplicated:
        raise ValueError(f"split file {path} lists ecg_ids more than once: {duplicated[:10]}")
    return dict(zip(table["ecg_id"], table["split"]))


# ----------------------------------------------------------------------------------------------
# Integrity and download
# ----------------------------------------------------------------------------------------------


def sha256_file(path: str | os.PathLike, chunk_size: int = 1 << 20) -> str:
    """The hex SHA-256 digest of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for chunk in iter(lambda: file.read(chunk_size), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_sha256sums(path: str | os.PathLike) -> dict[str, str]:
    """Reads a `sha256sum`-style file (PhysioNet's `SHA256SUMS.txt`): relative path -> hex digest."""
    sums = {}
    with open(path, encoding="utf-8") as file:
        for line_number, line in enumerate(file, start=1):
            if not line.strip():
                continue
            digest, _, name = line.strip().partition(" ")
            name = name.strip().lstrip("*")
            if len(digest) != 64 or not name:
                raise ValueError(f"{path}:{line_number}: expected '<sha256> <path>', got {line.strip()!r}")
            sums[name] = digest.lower()
    return sums


def verify_sha256(path: str | os.PathLike, expected: str) -> None:
    """Raises [`BadRecordError`] when the file's SHA-256 differs from `expected`."""
    if not os.path.exists(path):
        raise BadRecordError(path, "file not found")
    actual = sha256_file(path)
    if actual != expected:
        raise BadRecordError(path, f"SHA-256 mismatch: expected {expected}, got {actual}")


def download_and_extract(url: str, target_dir: str | os.PathLike, sha256: str | None = None) -> Path:
    """Downloads a zip archive (e.g. a PhysioNet project archive) and extracts it.

    This is the only network access in `dataset_scripts` and it only runs when called.

    Args:
        url (`str`): the archive URL.
        target_dir (`str` or `os.PathLike`): where to extract; created if needed.
        sha256 (`str`, *optional*): expected digest of the archive, checked before extraction.

    Returns:
        `Path`: `target_dir`.
    """
    from tqdm.auto import tqdm

    target_dir = Path(target_dir)
    target_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target_dir) as tmp:
        archive = Path(tmp) / "archive.zip"
        with urllib.request.urlopen(url) as response, open(archive, "wb") as file:
            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=f"Downloading {url.rsplit('/', 1)[-1]}") as bar:
                for chunk in iter(lambda: response.read(1 << 20), b""):
                    file.write(chunk)
                    bar.update(len(chunk))
        if sha256 is not None and sha256_file(archive) != sha256.lower():
            raise ValueError(f"the archive downloaded from {url} does not have the expected SHA-256 {sha256}")
        with zipfile.ZipFile(archive) as zip_file:
            zip_file.extractall(target_dir)
    return target_dir


# ----------------------------------------------------------------------------------------------
# Builder base class
# ----------------------------------------------------------------------------------------------


def _source_hash(data_dir: str | os.PathLike | None = None, metadata_files: Sequence[str] = ()) -> str:
    """A digest of this package's code and label tables, and of the `metadata_files` found in `data_dir`, so that
    code changes and changed metadata tables invalidate caches."""
    digest = hashlib.sha256()
    for name in metadata_files if data_dir is not None else ():
        path = Path(data_dir) / name
        if path.is_file():
            digest.update(name.encode())
            digest.update(path.read_bytes())
    for path in sorted(_PACKAGE_DIR.rglob("*")):
        if path.suffix in (".py", ".csv") and "__pycache__" not in path.parts:
            digest.update(path.relative_to(_PACKAGE_DIR).as_posix().encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


@dataclass
class EcgBuilderConfig(datasets.BuilderConfig):
    """Options shared by every ECG builder config.

    Attributes:
        skip_bad_records (`bool`, defaults to `False`): skip (and count) bad records instead of
            raising [`BadRecordError`].
        verify_signal_checksums (`bool`, defaults to `True`): check the 16-bit sample checksums
            that WFDB headers carry.
        record_ids (`tuple`, *optional*): prepare only these records (tests, quick looks).
        records_per_shard (`int`, defaults to 500): records per generator shard; `num_proc`
            workers share the shards.
    """

    skip_bad_records: bool = False
    verify_signal_checksums: bool = True
    record_ids: tuple | None = None
    records_per_shard: int = 500


class EcgBuilder(datasets.GeneratorBasedBuilder):
    """Base class: sharded streaming generation and the skip policy; see the module docstring.

    Subclasses implement `_split_generators` (returning [`EcgBuilder._make_split_generators`])
    and `_example_from_record(record) -> dict`, raising [`BadRecordError`] for bad input.
    """

    # Rows buffered per Arrow record batch: ~3 MB at 100 Hz, ~31 MB at 500 Hz (12 x 5000 int16).
    DEFAULT_WRITER_BATCH_SIZE = 256

    METADATA_FILES: tuple[str, ...] = ()
    """Tables of `data_dir` whose content is part of the cache key (a changed table invalidates the cache)."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("hash", _source_hash(kwargs.get("data_dir"), self.METADATA_FILES))
        # The cache folder name includes these options: make paths independent of the working
        # directory and sequences hashable.
        for name in ("data_dir", "split_file", "label_table"):
            if kwargs.get(name) is not None:
                kwargs[name] = os.path.abspath(kwargs[name])
        for name in ("record_ids", "split_fractions"):
            if kwargs.get(name) is not None:
                kwargs[name] = tuple(kwargs[name])
        super().__init__(*args, **kwargs)
        if self.config.data_dir is None:
            raise ValueError(f"{type(self).__name__} needs `data_dir`: the local copy of the dataset")
        if self.config.records_per_shard < 1:
            raise ValueError(f"records_per_shard must be >= 1, got {self.config.records_per_shard}")

    # -- hooks -----------------------------------------------------------------------------------

    def _example_from_record(self, record: dict) -> dict:
        raise NotImplementedError

    # -- generation ------------------------------------------------------------------------------

    def _make_split_generators(self, records_by_split: Mapping[str, pd.DataFrame]) -> list[datasets.SplitGenerator]:
        """Cuts each split's record table into shards (the unit `num_proc` workers share).

        Args:
            records_by_split (`Mapping[str, pd.DataFrame]`): one row per record, with whatever
                columns `_example_from_record` reads; a missing split is empty. DataFrames keep
                the per-record metadata of 800k records compact (Arrow-backed strings).
        """
        size = self.config.records_per_shard
        generators = []
        for split in SPLITS:
            records = records_by_split.get(split, pd.DataFrame())
            shards = [
                records.iloc[start : start + size].reset_index(drop=True) for start in range(0, len(records), size)
            ]
            generators.append(
                datasets.SplitGenerator(name=split, gen_kwargs={"shards": shards or [pd.DataFrame()], "split": split})
            )
        return generators

    def _generate_examples(self, shards: list[pd.DataFrame], split: str) -> Iterator[tuple[Key, dict]]:
        for shard_index, shard in enumerate(shards):
            for item_index, record in enumerate(shard.to_dict("records")):
                try:
                    example = self._example_from_record(record)
                except BadRecordError as error:
                    self._skip_or_raise(error, split)
                    continue
                yield Key(shard_index, item_index), example

    def _skip_or_raise(self, error: BadRecordError, split: str | None) -> None:
        """Raises `error` unless `skip_bad_records`; then logs it to this worker's skip log."""
        if not self.config.skip_bad_records:
            raise error
        logger.warning("Skipping bad record %s", error)
        output_dir = getattr(self, "_output_dir", None)
        if output_dir is None or "://" in str(output_dir):
            return
        # One log per process: `num_proc` workers never write to the same file.
        log_path = os.path.join(output_dir, f"skipped-{os.getpid()}.jsonl")
        with open(log_path, "a", encoding="utf-8") as file:
            file.write(json.dumps({"split": split, "path": error.path, "reason": error.reason}) + "\n")

    def _prepare_split_single(self, *args, **kwargs):
        # `datasets` wraps generator errors in DatasetGenerationError, and loses the cause when the
        # error crosses a worker process; re-raise our own error so the message names the file.
        try:
            yield from super()._prepare_split_single(*args, **kwargs)
        except DatasetGenerationError as error:
            if isinstance(error.__cause__, BadRecordError):
                raise error.__cause__ from None
            raise

    def _download_and_prepare(self, dl_manager, verification_mode, **prepare_split_kwargs):
        super()._download_and_prepare(dl_manager, verification_mode, **prepare_split_kwargs)
        output_dir = str(self._output_dir)
        if "://" in output_dir:
            return
        skipped = []
        for log_path in sorted(glob.glob(os.path.join(output_dir, _SKIP_LOG_PATTERN))):
            with open(log_path, encoding="utf-8") as file:
                skipped.extend(json.loads(line) for line in file)
            os.remove(log_path)
        skipped.sort(key=lambda entry: (str(entry["split"]), entry["path"]))
        with open(os.path.join(output_dir, SKIPPED_RECORDS_FILE), "w", encoding="utf-8") as file:
            json.dump(skipped, file, indent=1)
        if skipped:
            per_split = Counter(str(entry["split"]) for entry in skipped)
            logger.warning(
                "%s/%s: skipped %d bad records (%s); see %s",
                self.dataset_name,
                self.config.name,
                len(skipped),
                ", ".join(f"{split}: {count}" for split, count in sorted(per_split.items())),
                os.path.join(output_dir.removesuffix(".incomplete"), SKIPPED_RECORDS_FILE),
            )

    @property
    def skipped_records(self) -> list[dict]:
        """The records skipped while preparing (`[]` before preparation or when none were).

        Each entry is `{"split": str | None, "path": str, "reason": str}`; `split` is `None` for
        records rejected before they were assigned to a split.
        """
        # `_output_dir` is where `download_and_prepare` wrote (the cache folder unless told otherwise).
        path = os.path.join(getattr(self, "_output_dir", None) or self._cache_dir, SKIPPED_RECORDS_FILE)
        if not os.path.exists(path):
            return []
        with open(path, encoding="utf-8") as file:
            return json.load(file)


def load_builder(
    builder: EcgBuilder, num_proc: int | None = None, download_mode: str | None = None
) -> datasets.DatasetDict:
    """Prepares a builder (or reuses its cache) and returns its splits.

    Args:
        builder ([`EcgBuilder`]): a configured builder.
        num_proc (`int`, *optional*): worker processes for preparation.
        download_mode (`str`, *optional*): e.g. `"force_redownload"` to rebuild the cache.

    Returns:
        `datasets.DatasetDict` with `train`, `validation` and `test`, plus an attribute
        `skipped_records` (see [`EcgBuilder.skipped_records`]).
    """
    builder.download_and_prepare(num_proc=num_proc, download_mode=download_mode)
    features = builder.info.features
    splits = {}
    for split in SPLITS:
        if builder.info.splits[split].num_examples:
            splits[split] = builder.as_dataset(split=split)
        else:  # `as_dataset` refuses empty splits (possible with small subsets)
            splits[split] = datasets.Dataset.from_dict({name: [] for name in features}, features=features, split=split)
    dataset = datasets.DatasetDict(splits)
    dataset.skipped_records = builder.skipped_records
    return dataset


def load_builder_in_chunks(
    make_builder,
    record_ids: Sequence,
    chunk_records: int,
    num_proc: int | None = None,
    download_mode: str | None = None,
) -> datasets.DatasetDict:
    """Prepares a large dataset as consecutive chunks of `chunk_records` records, each a builder of its own (with
    `record_ids` = the chunk), and returns their splits concatenated.

    `datasets` prepares a builder all at once: a preparation killed midway leaves an `.incomplete` folder that the
    next run deletes, so everything is redone. Each chunk here is a complete, cached preparation of its own (the
    cache folder name includes the chunk's `record_ids`), so a killed run restarted with the same arguments reuses
    every finished chunk and redoes at most the one in progress. Records keep their split (splits are assigned per
    record by a seeded hash, e.g. [`group_split`]) and their order within each split.

    Args:
        make_builder (`Callable[[tuple], EcgBuilder]`): a configured builder for a tuple of record ids.
        record_ids (`Sequence`): every record id to prepare, in order.
        chunk_records (`int`): records per chunk (>= 1).
        num_proc (`int`, *optional*): worker processes within a chunk.
        download_mode (`str`, *optional*): e.g. `"force_redownload"` to rebuild every chunk.

    Returns:
        `datasets.DatasetDict` with `train`, `validation` and `test`, and the `skipped_records` of every chunk.
    """
    if chunk_records < 1:
        raise ValueError(f"chunk_records must be >= 1 (records per resumable chunk); got {chunk_records}.")
    record_ids = list(record_ids)
    parts, skipped = {split: [] for split in SPLITS}, []
    for start in range(0, len(record_ids), chunk_records):
        chunk = load_builder(make_builder(tuple(record_ids[start : start + chunk_records])), num_proc, download_mode)
        for split in SPLITS:
            if len(chunk[split]):
                parts[split].append(chunk[split])
        skipped.extend(chunk.skipped_records)
    splits = {}
    for split in SPLITS:
        if parts[split]:
            splits[split] = datasets.concatenate_datasets(parts[split], split=split)
        else:
            features = chunk[SPLITS[0]].features
            splits[split] = datasets.Dataset.from_dict({name: [] for name in features}, features=features, split=split)
    dataset = datasets.DatasetDict(splits)
    dataset.skipped_records = skipped
    return dataset
