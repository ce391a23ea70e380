# Copyright 2026 The MERIT authors.
# Licensed under the Apache License, Version 2.0.
"""Which records a `merit` command line names, and reading them.

`find_records` turns the INPUT arguments (WFDB records, folders searched recursively, glob patterns, `.npy` and
`.csv` files) into one `ECGSource` per record; `ECGRecordDataset` reads and preprocesses them with the checkpoint's
feature extractor through `modeling_merit.pipeline_merit.preprocess_ecg_record`, the function the pipelines use, so
that the command and the pipelines see the same input values. A record that cannot be read becomes an error entry
instead of stopping the run.
"""

from __future__ import annotations

import glob
import logging
import os
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
import wfdb
from torch.utils.data import Dataset

from modeling_merit import feature_extraction_merit, limits_merit, pipeline_merit
from modeling_merit.pipeline_merit import ecg_record_arguments, preprocess_ecg_record


FORMATS = ("wfdb", "npy", "csv")
"""The record formats `--formats` can choose from (all by default): WFDB records (a `.hea` header and the signal
file it names), `.npy` arrays and `.csv` tables."""

FORMAT_OF_SUFFIX = {".hea": "wfdb", ".dat": "wfdb", ".npy": "npy", ".csv": "csv"}
GLOB_CHARACTERS = frozenset("*?[")


@dataclass(frozen=True)
class ECGSource:
    """One record named on the command line.

    Attributes:
        path (`str`): the absolute path of the file read: the `.hea` header of a WFDB record, or the `.npy` / `.csv`
            file. It identifies the record in the output (and when a run is resumed).
        record (`str`): the record's name (the WFDB record name, or the file name without extension).
        format (`str`): one of `FORMATS`.
    """

    path: str
    record: str
    format: str

    @property
    def reader_argument(self) -> str:
        """What `ecg_record_arguments` reads: the record name (no extension) of a WFDB record, else the file."""
        return self.path[: -len(".hea")] if self.format == "wfdb" else self.path


@dataclass(frozen=True)
class InputProblem:
    """An INPUT argument, or a record, that gave nothing to read, and why."""

    path: str
    error: str


def find_records(inputs: list[str], formats: tuple[str, ...] = FORMATS) -> tuple[list[ECGSource], list[InputProblem]]:
    """The records the INPUT arguments name, in command-line order (a folder's records sorted by path), each once.

    Args:
        inputs (`list[str]`): WFDB records (`.hea`, `.dat` or the record name without extension), `.npy` or `.csv`
            files, folders (searched recursively for the records of `formats`) and glob patterns (`**` matches
            folders at any depth); a pattern may match folders too.
        formats (`tuple[str]`): the record formats taken from folders and patterns.

    Returns:
        `tuple`: the records, and the INPUT arguments that named nothing readable (a missing file, a pattern that
        matches nothing, a file of another format).
    """
    unknown = sorted(set(formats) - set(FORMATS))
    if unknown or not formats:
        raise ValueError(f"`--formats` must be some of {list(FORMATS)}, got {list(formats)}.")
    records: dict[str, ECGSource] = {}
    problems: list[InputProblem] = []

    def add(source: ECGSource) -> None:
        records.setdefault(source.path, source)

    for argument in inputs:
        if os.path.isdir(argument):
            found = _records_in_folder(argument, formats)
            if not found:
                problems.append(InputProblem(argument, f"the folder holds no record of the formats {list(formats)}"))
            for source in found:
                add(source)
            continue
        source_or_problem = _single_record(argument)
        if isinstance(source_or_problem, ECGSource):
            add(source_or_problem)
            continue
        if GLOB_CHARACTERS & set(argument):
            matches = sorted(glob.glob(argument, recursive=True))
            found = []
            for match in matches:
                if os.path.isdir(match):
                    found.extend(_records_in_folder(match, formats))
                elif FORMAT_OF_SUFFIX.get(Path(match).suffix.lower()) in formats:
                    found.append(_single_record(match))
            found = [source for source in found if isinstance(source, ECGSource)]
            if not found:
                problems.append(
                    InputProblem(argument, f"the pattern matches no record of the formats {list(formats)}")
                )
            for source in found:
                add(source)
            continue
        problems.append(source_or_problem)
    return list(records.values()), problems


def _records_in_folder(folder: str, formats: tuple[str, ...]) -> list[ECGSource]:
    found = []
    for root, directories, files in os.walk(folder):
        directories.sort()
        for name in sorted(files):
            if FORMAT_OF_SUFFIX.get(Path(name).suffix.lower()) in formats and not name.lower().endswith(".dat"):
                source = _single_record(os.path.join(root, name))
                if isinstance(source, ECGSource):
                    found.append(source)
    return sorted(found, key=lambda source: source.path)


def _single_record(argument: str) -> ECGSource | InputProblem:
    """The record one path names: a `.hea` / `.dat` file or record name of a WFDB record, a `.npy` or `.csv` file."""
    path = os.path.abspath(argument)
    suffix = Path(path).suffix.lower()
    if suffix in (".npy", ".csv"):
        if not os.path.isfile(path):
            return InputProblem(argument, "no such file")
        return ECGSource(path, Path(path).stem, suffix[1:])
    if suffix in (".hea", ".dat"):
        path = path[: -len(suffix)]
    elif not os.path.isfile(path + ".hea"):
        if os.path.exists(path):
            return InputProblem(
                argument, "not a record: expected a WFDB record (.hea, .dat or record name), .npy or .csv"
            )
        return InputProblem(argument, "no such file or WFDB record")
    if not os.path.isfile(path + ".hea"):
        return InputProblem(argument, f"the WFDB header {path}.hea does not exist")
    return ECGSource(path + ".hea", os.path.basename(path), "wfdb")


def describe_error(error: Exception) -> str:
    """One line for the error of a record: the message of a `ValueError` (MERIT's input errors say what was wrong),
    the exception type and message otherwise (e.g. a damaged file that the WFDB reader trips over)."""
    message = " ".join(str(error).split())
    return message if isinstance(error, ValueError) and message else f"{type(error).__name__}: {message}"


@contextmanager
def captured_warnings():
    """Collects the warnings that reading and preprocessing one record logs (filled samples, a short record, flat
    leads, a long file read over its central window) instead of printing them, so that the command can print them
    with the record's path: they would otherwise say "the record" (and come from worker processes)."""
    notes: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            notes.append(" ".join(record.getMessage().split()))

    handler = Collect(logging.WARNING)
    loggers = [
        logging.getLogger(module.__name__) for module in (feature_extraction_merit, limits_merit, pipeline_merit)
    ]
    saved = [(logger.handlers, logger.propagate) for logger in loggers]
    for logger in loggers:
        logger.handlers, logger.propagate = [handler], False
    try:
        yield notes
    finally:
        for logger, (handlers, propagate) in zip(loggers, saved, strict=True):
            logger.handlers, logger.propagate = handlers, propagate


class ECGRecordDataset(Dataset):
    """Reads and preprocesses records for a `torch.utils.data.DataLoader` (which reads them in parallel with
    `num_workers`).

    Item `i` is `{"index": i, "input_values": (1, n_leads, num_samples), "lead_mask": (1, n_leads), "sampling_rate":
    Hz read, "num_samples": samples read, "notes": [the warnings reading it gave]}` or, when the record cannot be
    read, `{"index": i, "error": str}`.

    Args:
        sources (`list[ECGSource]`): the records.
        feature_extractor (`MeritFeatureExtractor`): the checkpoint's feature extractor.
        sampling_rate (`float`, *optional*): sampling rate of records that carry none (`.npy`, `.csv` without a time
            column).
        lead_names (`list[str]`, *optional*): lead names of records that carry none (`.npy`).
        channels_last (`bool`): `.npy` arrays are `(n_samples, n_leads)`.
    """

    def __init__(self, sources, feature_extractor, sampling_rate=None, lead_names=None, channels_last=False):
        self.sources = list(sources)
        self.feature_extractor = feature_extractor
        self.sampling_rate = sampling_rate
        self.lead_names = lead_names
        self.channels_last = channels_last

    def __len__(self) -> int:
        return len(self.sources)

    def __getitem__(self, index: int) -> dict:
        source = self.sources[index]
        with captured_warnings() as notes:
            item = self._read(index, source)
        return {**item, "notes": notes}

    def _read(self, index: int, source: ECGSource) -> dict:
        try:
            arguments = ecg_record_arguments(
                source.reader_argument, self.sampling_rate, self.lead_names, channels_last=self.channels_last
            )
            if source.format == "wfdb":
                # the pipelines' path: the feature extractor reads the record; the header gives the rate read
                record = arguments["ecg"]
            else:
                record = arguments  # the array already read, with its sampling rate and lead names
            model_inputs = preprocess_ecg_record(
                self.feature_extractor, record, self.sampling_rate, self.lead_names, self.channels_last
            )
            sampling_rate, num_samples = _rate_and_length(source, arguments, self.channels_last)
        except Exception as error:  # one damaged record must not stop a batch run
            return {"index": index, "error": describe_error(error)}
        return {"index": index, **model_inputs, "sampling_rate": sampling_rate, "num_samples": num_samples}


def _rate_and_length(source: ECGSource, arguments: dict, channels_last: bool) -> tuple[float, int]:
    """The sampling rate and the number of samples of a record as read (before resampling, cropping or padding)."""
    if source.format == "wfdb":
        header = wfdb.rdheader(source.reader_argument)
        return float(header.fs), int(header.sig_len)
    shape = tuple(arguments["ecg"].shape)
    return float(arguments["sampling_rate"]), int(shape[0] if channels_last else shape[1])


def collate_records(items: list[dict]) -> dict:
    """Stacks the records that were read into one batch; the others stay as `(index, error)` pairs.

    Returns:
        `dict` with `indices` (`list[int]`), `model_inputs` (`input_values` `(n_read, n_leads, num_samples)`,
        `lead_mask` `(n_read, n_leads)`; `None` when no record of the batch was read), `sampling_rates`,
        `num_samples` (one per record read), `errors` (`list[tuple[int, str]]`) and `notes` (`list[tuple[int, str]]`,
        the warnings of the records read).
    """
    read = [item for item in items if "error" not in item]
    batch = {
        "indices": [item["index"] for item in read],
        "sampling_rates": [item["sampling_rate"] for item in read],
        "num_samples": [item["num_samples"] for item in read],
        "errors": [(item["index"], item["error"]) for item in items if "error" in item],
        "notes": [(item["index"], note) for item in read for note in item["notes"]],
        "model_inputs": None,
    }
    if read:
        batch["model_inputs"] = {
            key: torch.cat([item[key] for item in read]) for key in ("input_values", "lead_mask") if key in read[0]
        }
    return batch
