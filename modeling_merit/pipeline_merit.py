# Copyright 2026 The MERIT authors.
# Licensed under the Apache License, Version 2.0.
"""`transformers` pipelines for MERIT checkpoints, saved with every checkpoint for `trust_remote_code` loading.

| task | model | output per record |
|---|---|---|
| `zero-shot-ecg-classification` | `MeritModel`, `MeritForPreTraining` | `[{"label", "score"}, ...]`, best first |
| `ecg-classification` | `MeritForECGClassification` | `[{"label", "score", "threshold", "positive"}, ...]` |
| `ecg-feature-extraction` | any MERIT model | the embedding (list of floats; tensor with `return_tensors=True`) |
| `ecg-report-generation` | `MeritForReportGeneration` (*) | `[{"generated_text"}, ...]` (one per returned sequence) |

(*) or any model with `generate(input_values, lead_mask=None, prompt=None, max_new_tokens=..., **generate_kwargs)`.

`MeritPreTrainedModel.save_pretrained` calls `add_pipelines_to_checkpoint`, which writes the tasks that apply to the
saved model into `config.json` (`custom_pipelines`) and copies this file, its relative imports and the Inference
Endpoints `handler.py` next to the weights, so that in any environment with `transformers`:

```python
from transformers import pipeline

classifier = pipeline("zero-shot-ecg-classification", model="path/or/hub-id", trust_remote_code=True)
classifier("records500/00000/00001_hr", candidate_labels=["normal ECG", "atrial fibrillation"])
# -> [{"label": ..., "score": ...}, {"label": ..., "score": ...}], highest score first
```

**Inputs.** One record, or a list of records (a batch, answered by a list), each in one of these forms:

- a WFDB record: the path of its `.hea` header, its `.dat` signal file or its record name (sampling rate and lead
  names come from the header);
- an uploaded WFDB record: `{"hea": ..., "dat": ...}` with the header and the signal file as `bytes` or paths (the
  file names need not match: the signal is stored under the name the header gives it);
- a `.npy` file holding one `(n_leads, n_samples)` array (`channels_last=True` for `(n_samples, n_leads)`);
- a `.csv` file, time x leads, whose header row holds the lead names; a first column named `time`, `time_s`, `t` or
  `seconds` (in seconds) is dropped and gives the sampling rate (a passed rate must agree with it within 1 %); an
  empty cell or one of `CSV_MISSING_VALUES` (`nan`, `n/a`, ...) is a missing sample, any other text an error;
- `{"ecg": array, "sampling_rate": ..., "lead_names": [...]}` (array `(n_leads, n_samples)`, a nested list, a NumPy
  array or a torch tensor);
- a NumPy array or torch tensor `(n_leads, n_samples)`.

`sampling_rate=` and `lead_names=` passed to the call apply to records that do not carry their own (arrays, `.npy`,
`.csv`); without lead names, exactly 12 leads are taken in the order I, II, III, aVR, aVL, aVF, V1-V6.
Preprocessing (lead matching by name, resampling, filtering, crop/pad, scaling) is the checkpoint's processor's, the
same as in training and evaluation. Input that cannot be used raises a `ValueError` that says what was wrong.
"""

from __future__ import annotations

import csv
import inspect
import os
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from transformers import AutoModel, AutoModelForSequenceClassification, Pipeline
from transformers.dynamic_module_utils import get_relative_import_files
from transformers.pipelines import PIPELINE_REGISTRY

from .feature_extraction_merit import (
    _MAX_WFDB_HEADER_BYTES,
    _nested_list_shape,
    _to_float64_array,
    parse_wfdb_header,
)
from .limits_merit import MeritLimits
from .zero_shot_merit import DEFAULT_TEMPLATES, build_class_prompts, embed_class_prompts, zero_shot_scores


ENDPOINT_REQUIREMENTS = ["scipy>=1.10", "wfdb>=4.1"]
"""What the MERIT code needs beyond `transformers` and `torch`, written to every checkpoint's `requirements.txt`
(Inference Endpoints install it before loading `handler.py`)."""

TIME_COLUMN_NAMES = ("time", "time_s", "t", "seconds")
"""CSV column names (case-insensitive) taken as a time axis in seconds rather than a lead."""

ACCEPTED_INPUTS = (
    "a WFDB record path (.hea, .dat or record name), {'hea': bytes|path, 'dat': bytes|path}, a .npy or .csv path, "
    "{'ecg': array, 'sampling_rate': Hz, 'lead_names': [...]}, a (n_leads, n_samples) NumPy array or torch tensor, "
    "or a list of these"
)


# --------------------------------------------------------------------------------------------------------------------
# Input forms -> processor arguments
# --------------------------------------------------------------------------------------------------------------------


def _is_path(value) -> bool:
    return isinstance(value, (str, os.PathLike))


_CSV_CHUNK_ROWS = 8192


def _read_bytes(value, what: str, max_bytes: int | None = None) -> bytes:
    """The content of an uploaded file given as `bytes` or as a path (at most `max_bytes`)."""
    if isinstance(value, (bytes, bytearray)):
        content = bytes(value)
    elif _is_path(value):
        if not os.path.isfile(value):
            raise ValueError(f"The {what} file {os.fspath(value)!r} does not exist.")
        with open(value, "rb") as file:
            content = file.read() if max_bytes is None else file.read(max_bytes + 1)
    else:
        raise ValueError(
            f"The {what} of an uploaded WFDB record must be bytes or a file path, got {type(value).__name__}."
        )
    if max_bytes is not None and len(content) > max_bytes:
        raise ValueError(f"The uploaded `{what}` file is larger than {max_bytes} bytes; expected a WFDB header.")
    return content


def _stage_uploaded_wfdb(hea, dat, workdir: str) -> str:
    """Writes an uploaded header + signal file pair into `workdir` under the names the header expects, after
    validating the header (`parse_wfdb_header`: plain file names, a real sampling rate, sensible gains).

    Returns:
        `str`: the record path (without extension) to read.
    """
    header_bytes = _read_bytes(hea, "hea", _MAX_WFDB_HEADER_BYTES)
    try:
        header_text = header_bytes.decode("ascii")
    except UnicodeDecodeError as error:
        raise ValueError(f"The uploaded `hea` file is not a text WFDB header ({error}).") from error
    header = parse_wfdb_header(header_text, "the uploaded record")
    signal_files = sorted(set(header.file_names))
    if len(signal_files) != 1:
        raise ValueError(
            f"The uploaded WFDB header names {len(signal_files)} signal files {signal_files}; an upload of one `hea` "
            "and one `dat` file supports records stored in one signal file."
        )
    Path(workdir, f"{header.record_name}.hea").write_bytes(header_bytes)
    target = Path(workdir, signal_files[0])
    if isinstance(dat, (bytes, bytearray)):
        target.write_bytes(dat)
    elif _is_path(dat) and os.path.isfile(dat):
        shutil.copyfile(dat, target)  # streamed: a large upload is never held in memory
    else:
        _read_bytes(dat, "dat")  # raises the error that says what is wrong
    return os.path.join(workdir, header.record_name)


def _read_npy(path: str, sampling_rate, channels_last: bool, limits: MeritLimits):
    """Reads the central window (`limits.window_to_read`) of a `.npy` array; its header is checked against the file
    size and the limits first, so a header announcing a huge array is an error rather than an allocation."""
    try:
        with open(path, "rb") as file:
            version = np.lib.format.read_magic(file)
            read_header = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
            if version in read_header:
                shape, _, dtype = read_header[version](file)
                expected = file.tell() + int(np.prod(shape, dtype=object)) * dtype.itemsize
                if os.path.getsize(path) < expected:
                    raise ValueError(
                        f"its header announces an array of shape {shape} ({dtype}, {expected} bytes) but the file "
                        f"holds {os.path.getsize(path)} bytes"
                    )
                if dtype.hasobject:
                    raise ValueError("it holds Python objects, not numbers")
                if not np.prod(shape):
                    return np.zeros(shape, dtype=dtype)
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except ValueError as error:
        raise ValueError(f"{path!r} is not a .npy file of numbers: {error}") from error
    if array.ndim != 2:
        return array  # ecg_record_arguments says what is wrong with its shape
    time_axis = 0 if channels_last else 1
    limits.check_leads(array.shape[1 - time_axis], array.shape[time_axis], repr(path))
    num_samples = array.shape[time_axis]
    start, stop = limits.window_to_read(num_samples, sampling_rate, f"{path!r} has {num_samples} samples per lead")
    window = array[start:stop] if channels_last else array[:, start:stop]
    return np.array(window)  # reads only the window from the memory-mapped file


def _is_data_line(line: str) -> bool:
    return bool(line.strip()) and not line.lstrip().startswith("#")


def _csv_rows(file, path: str, names: list[str], delimiter: str, max_rows: int) -> np.ndarray:
    """Parses the next `max_rows` lines of a binary `file` (blank and `#` lines skipped) into a float64 table with
    one column per name, a chunk of lines at a time, so that parsing never holds more than one chunk of text."""
    table = np.empty((max_rows, len(names)))
    row = read = 0
    while read < max_rows:
        raw = [file.readline() for _ in range(min(_CSV_CHUNK_ROWS, max_rows - read))]
        read += len(raw)
        chunk = [
            line.replace('"', "")  # quoted numbers ("0.5", as spreadsheets may write them) are numbers
            for line in (line.decode("utf-8", errors="replace") for line in raw if line)
            if _is_data_line(line)
        ]
        if chunk:
            try:
                values = np.genfromtxt(chunk, delimiter=delimiter, dtype=np.float64, ndmin=2)
            except ValueError as error:
                raise ValueError(
                    f"The CSV file {path!r} has rows that are not {len(names)} numbers: {error}"
                ) from error
            if values.shape[1] != len(names):
                raise ValueError(
                    f"The CSV file {path!r} has {len(names)} column names but {values.shape[1]} columns of samples."
                )
            _check_csv_cells(values, chunk, path, names, delimiter)
            table[row : row + len(values)] = values
            row += len(values)
        if not raw or not raw[-1]:
            break
    return table[:row]


CSV_MISSING_VALUES = frozenset({"", "nan", "na", "n/a", "null", "none", "-"})
"""CSV cells (case-insensitive, stripped) read as a missing sample (NaN, filled by the processor's `nan_policy`); any
other cell that is not a number is an error."""


def _check_csv_cells(values: np.ndarray, lines: list[str], path: str, names: list[str], delimiter: str) -> None:
    """Raises a `ValueError` naming the first cell that `genfromtxt` read as NaN but is neither a number nor one of
    `CSV_MISSING_VALUES` (text, or a decimal comma)."""
    parsed: dict[int, list[str]] = {}
    for row, column in zip(*np.nonzero(np.isnan(values))):
        if row not in parsed:
            parsed[row] = next(csv.reader([lines[row]], delimiter=delimiter))
        cells = parsed[row]
        cell = cells[column].strip() if column < len(cells) else ""
        if cell.lower() in CSV_MISSING_VALUES or cell.startswith("#") or _is_number(cell):
            continue  # a missing sample (NaN, or a comment where the sample would be)
        hint = ""
        if "," in cell and _is_number(cell.replace(",", ".")):
            hint = " It looks like a decimal comma: write numbers with a decimal point."
        raise ValueError(
            f"The CSV file {path!r} has a cell that is not a number, {cell!r}, in column {names[column]!r} (line "
            f"{lines[row].strip()[:80]!r}); expected numbers, or an empty cell / NaN for a missing sample.{hint}"
        )


def _count_lines(file) -> int:
    """The number of lines from the position of a binary `file` to its end (a last line without a newline counts)."""
    count, last = 0, b"\n"
    for chunk in iter(lambda: file.read(1 << 20), b""):
        count, last = count + chunk.count(b"\n"), chunk[-1:]
    return count + (last != b"\n")


def _skip_lines(file, count: int) -> None:
    """Moves a binary `file` past its next `count` lines, a chunk at a time."""
    while count > 0:
        position, chunk = file.tell(), file.read(1 << 20)
        if not chunk:
            return
        newlines = np.flatnonzero(np.frombuffer(chunk, dtype=np.uint8) == ord("\n"))
        if len(newlines) >= count:
            file.seek(position + int(newlines[count - 1]) + 1)
            return
        count -= len(newlines)


def _rate_from_time_column(time: np.ndarray, time_name: str, path: str) -> float:
    """The rate of a time column in seconds: samples per second over its whole span (times rounded to milliseconds
    still give 360 Hz, where the median step would give 333), taken as a whole number of Hz when within 0.1 % of one."""
    steps = np.diff(time)
    if len(steps) == 0 or not np.all(np.isfinite(steps)) or np.median(steps) <= 0 or time[-1] <= time[0]:
        raise ValueError(f"The time column {time_name!r} of {path!r} does not increase; pass `sampling_rate` instead.")
    rate = len(steps) / float(time[-1] - time[0])
    return float(round(rate)) if abs(rate - round(rate)) <= 1e-3 * rate else round(rate, 6)


def _check_rate_against_time_column(sampling_rate, time: np.ndarray, time_name: str, path: str) -> None:
    """Raises a `ValueError` when a given `sampling_rate` differs by more than 1 % from the rate of a CSV file's time
    column (a time column that gives no rate leaves the given one in charge)."""
    given_rate = _positive_number_or_none(sampling_rate)
    try:
        time_rate = _rate_from_time_column(time, time_name, path)
    except ValueError:
        return
    if given_rate is not None and abs(given_rate - time_rate) > 0.01 * time_rate:
        in_milliseconds = abs(given_rate / time_rate - 1000) < 10
        raise ValueError(
            f"The CSV file {path!r} has a time column {time_name!r} that gives {time_rate:g} Hz, but `sampling_rate` "
            f"says {given_rate:g} Hz; leave `sampling_rate` out to use the file's rate, or fix the time column"
            + (" (it looks like milliseconds; it must be in seconds)." if in_milliseconds else ".")
        )


def _read_csv(
    path: str, sampling_rate, limits: MeritLimits | None = None
) -> tuple[np.ndarray, float | None, list[str]]:
    """Reads a time x leads CSV with a header row of lead names: its lines are counted first, then only the central
    window that is kept (`limits.window_to_read`) is parsed.

    Returns:
        `tuple`: the signal `(n_leads, n_samples)`, the sampling rate (from a time column if there is one and none
        was given) and the lead names.
    """
    limits = MeritLimits.resolve(limits)
    with open(path, "rb") as file:
        first_line = file.readline().decode("utf-8-sig", errors="replace")
        delimiter = next((candidate for candidate in ",;\t" if candidate in first_line), ",")
        names = [name.strip() for name in next(csv.reader([first_line], delimiter=delimiter))]
        if not names or all(_is_number(name) for name in names):
            raise ValueError(
                f"The CSV file {path!r} must start with a header row of lead names (e.g. I,II,III,aVR,...), got "
                f"{first_line.strip()!r}."
            )
        has_time = names[0].lower() in TIME_COLUMN_NAMES
        limits.check_count(
            "max_leads_per_record", len(names) - has_time, f"The CSV file {path!r} has {len(names) - has_time} leads"
        )
        if sampling_rate is None and not has_time:
            raise ValueError(
                f"`sampling_rate` is required for the CSV file {path!r}: it has no time column (one of "
                f"{TIME_COLUMN_NAMES}); pass the rate in Hz it was recorded at."
            )
        data_start = file.tell()
        num_lines = _count_lines(file)
        window_rate = _positive_number_or_none(sampling_rate)
        if sampling_rate is None:  # the rate the time column gives, estimated from the first rows
            file.seek(data_start)
            head = _csv_rows(file, path, names, delimiter, min(num_lines, 1001))
            if len(head):
                window_rate = _rate_from_time_column(head[:, 0], names[0], path)
                limits.check_sampling_rate(window_rate, f"the CSV file {path!r}")
        start, stop = limits.window_to_read(num_lines, window_rate, f"The CSV file {path!r} has {num_lines} rows")
        file.seek(data_start)
        _skip_lines(file, start)
        table = _csv_rows(file, path, names, delimiter, stop - start)
    if table.size == 0:
        raise ValueError(f"The CSV file {path!r} has a header but no samples.")
    if has_time:
        time_name, time, table, names = names[0], table[:, 0], table[:, 1:], names[1:]
        if sampling_rate is None:
            sampling_rate = _rate_from_time_column(time, time_name, path)
        else:
            _check_rate_against_time_column(sampling_rate, time, time_name, path)
    return table.T, sampling_rate, names


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def ecg_record_arguments(
    record,
    sampling_rate=None,
    lead_names=None,
    workdir: str | None = None,
    channels_last: bool = False,
    limits: MeritLimits | None = None,
) -> dict:
    """Turns one input record (any form listed in the module docstring) into processor arguments.

    Files are read only over the stretch that is kept (`limits.window_to_read`) and nested lists are checked against
    `limits` before they are converted; an uploaded WFDB header is validated before it is written.

    Args:
        record: the input record.
        sampling_rate (`float`, *optional*): sampling rate of records that carry none (arrays, `.npy`, `.csv`).
        lead_names (`list[str]`, *optional*): lead names of records that carry none.
        workdir (`str`, *optional*): a folder where an uploaded WFDB record is written; required for that form.
        channels_last (`bool`, *optional*, defaults to `False`): arrays and `.npy` files are `(n_samples, n_leads)`.
        limits ([`MeritLimits`], *optional*): defaults to `MeritLimits.from_env()`.

    Returns:
        `dict` with `ecg` (a WFDB record path or an array), `sampling_rate` and `lead_names`, for
        `MeritFeatureExtractor.__call__`.
    """
    limits = MeritLimits.resolve(limits)
    if isinstance(record, dict):
        keys = set(record)
        if {"hea", "dat"} <= keys:
            if keys - {"hea", "dat"}:
                raise ValueError(f"An uploaded WFDB record takes the keys 'hea' and 'dat' only, got {sorted(keys)}.")
            if workdir is None:
                raise ValueError("An uploaded WFDB record needs a `workdir` to be written to.")
            return {"ecg": _stage_uploaded_wfdb(record["hea"], record["dat"], workdir), "sampling_rate": None,
                    "lead_names": None}  # fmt: skip
        if "ecg" in keys:
            unknown = keys - {"ecg", "sampling_rate", "lead_names"}
            if unknown:
                raise ValueError(
                    f"Unknown key(s) {sorted(unknown)} in an ECG record; expected 'ecg', 'sampling_rate', 'lead_names'."
                )
            inner = record["ecg"]
            if isinstance(inner, (list, tuple)):
                shape = _nested_list_shape(inner)
                if len(shape) == 2:  # checked before the list is converted
                    limits.check_record_shape(*(shape[::-1] if channels_last else shape), "the 'ecg' of an ECG record")
                inner = _to_float64_array(inner, "The 'ecg' of an ECG record") if len(shape) == 2 else None
                if inner is not None and inner.ndim != 2:
                    inner = None
            if not (isinstance(inner, np.ndarray) or torch.is_tensor(inner)):
                raise ValueError(
                    "The 'ecg' of an ECG record must be a rectangular (n_leads, n_samples) array, nested list or "
                    f"tensor, got {type(record['ecg']).__name__}."
                )
            return {
                "ecg": inner,
                "sampling_rate": record.get("sampling_rate", sampling_rate),
                "lead_names": record.get("lead_names", lead_names),
            }
        raise ValueError(
            f"A dict ECG record must have the keys 'ecg' (+ 'sampling_rate', 'lead_names') or 'hea' and 'dat', got "
            f"{sorted(keys)}."
        )
    if isinstance(record, np.ndarray) or torch.is_tensor(record):
        if record.ndim != 2:
            raise ValueError(
                f"An ECG array must have 2 dimensions (n_leads, n_samples), got shape {tuple(record.shape)}; pass a "
                "batch as a list of records."
            )
        return {"ecg": record, "sampling_rate": sampling_rate, "lead_names": lead_names}
    if _is_path(record):
        path = os.fspath(record)
        suffix = Path(path).suffix.lower()
        if suffix in (".npy", ".csv") and not os.path.isfile(path):
            raise ValueError(f"The ECG file {path!r} does not exist.")
        if suffix == ".npy":
            array = _read_npy(path, _positive_number_or_none(sampling_rate), channels_last, limits)
            return ecg_record_arguments(array, sampling_rate, lead_names)
        if suffix == ".csv":
            signal, csv_rate, csv_lead_names = _read_csv(path, sampling_rate, limits)
            return {"ecg": signal, "sampling_rate": csv_rate, "lead_names": csv_lead_names}
        if suffix == ".dat":
            path = path[: -len(".dat")]
        elif suffix not in ("", ".hea") and not os.path.isfile(path + ".hea"):
            raise ValueError(f"Cannot read {path!r} as an ECG; expected {ACCEPTED_INPUTS}.")
        return {"ecg": path, "sampling_rate": None, "lead_names": None}
    raise ValueError(f"Cannot read a {type(record).__name__} as an ECG; expected {ACCEPTED_INPUTS}.")


def preprocess_ecg_record(
    feature_extractor,
    record,
    sampling_rate=None,
    lead_names=None,
    channels_last: bool = False,
    dtype=None,
    limits: MeritLimits | dict | None = None,
) -> dict:
    """Reads one input record (any form listed in the module docstring) and preprocesses it with `feature_extractor`:
    what every MERIT pipeline does before its model (and what the `merit` command runs for each record), within
    `limits` (a [`MeritLimits`], a dict of limits, or `None` for `MeritLimits.from_env()`).

    Returns:
        `dict` with `input_values` (`(1, n_leads, num_samples)`, `dtype`, float32 by default) and, when the feature
        extractor returns it, `lead_mask` (`(1, n_leads)`).
    """
    limits = MeritLimits.resolve(limits)
    with tempfile.TemporaryDirectory(prefix="merit-ecg-") as workdir:
        arguments = ecg_record_arguments(record, sampling_rate, lead_names, workdir, channels_last, limits)
        features = feature_extractor(
            arguments["ecg"],
            sampling_rate=arguments["sampling_rate"],
            lead_names=arguments["lead_names"],
            channels_last=channels_last,
            return_tensors="pt",
            limits=limits,
        )
    model_inputs = {"input_values": features["input_values"].to(dtype or torch.float32)}
    if "lead_mask" in features:
        model_inputs["lead_mask"] = features["lead_mask"]
    return model_inputs


def _positive_number_or_none(value) -> float | None:
    """`value` if it is a positive finite number of Hz, else `None` (the processor then says what is wrong with it)."""
    is_number = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
    return float(value) if is_number and np.isfinite(value) and value > 0 else None


# --------------------------------------------------------------------------------------------------------------------
# Pipelines
# --------------------------------------------------------------------------------------------------------------------


class MeritECGPipeline(Pipeline):
    """Base of the MERIT pipelines: reads one record (see the module docstring) and preprocesses it with the
    checkpoint's feature extractor (the processor's, when the pipeline loads a processor).

    Call arguments shared by every MERIT pipeline:

    - `sampling_rate` (`float`): sampling rate of records that carry none;
    - `lead_names` (`list[str]`): lead names of records that carry none;
    - `channels_last` (`bool`, defaults to `False`): arrays and `.npy` files are `(n_samples, n_leads)`.

    Built with `limits=` (a [`MeritLimits`] or a dict of limits; default `MeritLimits.from_env()`, i.e. the defaults
    and the `MERIT_<LIMIT>` environment variables): the limits every call is checked against (records per call,
    record size and sampling rate, the stretch of a file that is read, labels, prompts, `max_new_tokens`). Call
    arguments cannot change them.
    """

    _load_processor = False
    _load_image_processor = False
    _load_video_processor = False
    _load_feature_extractor = True
    _load_tokenizer = False

    def __init__(self, *args, limits: MeritLimits | dict | None = None, **kwargs):
        self.limits = MeritLimits.resolve(limits)
        super().__init__(*args, **kwargs)
        self.model.eval()  # inference: no dropout, batch norms (e.g. of an MLP projection) on running statistics
        if self.feature_extractor is None and self.processor is not None:
            self.feature_extractor = getattr(self.processor, "feature_extractor", None)
        if self.feature_extractor is None:
            raise ValueError(
                f"The {self.task or type(self).__name__} pipeline needs the checkpoint's MeritFeatureExtractor: pass "
                "`feature_extractor=` or `processor=`, or save the processor with the checkpoint."
            )

    def _sanitize_parameters(self, sampling_rate=None, lead_names=None, channels_last=None, **kwargs):
        preprocess_params = {}
        if sampling_rate is not None:
            preprocess_params["sampling_rate"] = sampling_rate
        if lead_names is not None:
            preprocess_params["lead_names"] = lead_names
        if channels_last is not None:
            preprocess_params["channels_last"] = channels_last
        forward_params, postprocess_params = self._sanitize_task_parameters(preprocess_params, **kwargs)
        return preprocess_params, forward_params, postprocess_params

    def _sanitize_task_parameters(self, preprocess_params: dict, **kwargs) -> tuple[dict, dict]:
        """Sorts the task's own call arguments into `preprocess_params` (in place), forward and postprocess ones."""
        if kwargs:
            raise ValueError(
                f"Unknown argument(s) {sorted(kwargs)} for the {self.task or type(self).__name__} pipeline."
            )
        return {}, {}

    def __call__(self, inputs, **kwargs):
        """Answers one record, or a list of records with a list of answers, one record at a time (see the class
        docstring for the arguments)."""
        if isinstance(inputs, tuple):
            inputs = list(inputs)
        if isinstance(inputs, list) and not inputs:
            raise ValueError(f"Got an empty list of ECG records; expected {ACCEPTED_INPUTS}.")
        if isinstance(inputs, list):
            self.limits.check_count("max_batch_size", len(inputs), f"The request has {len(inputs)} ECG records")
        batch_size = kwargs.get("batch_size") or self._batch_size or 1
        if batch_size != 1:
            raise ValueError(
                f"MERIT pipelines run one record at a time (batch_size=1), got batch_size={batch_size}; for large "
                "batches call the processor and the model directly."
            )
        return super().__call__(inputs, **kwargs)

    def preprocess(self, inputs, sampling_rate=None, lead_names=None, channels_last=False):
        return preprocess_ecg_record(
            self.feature_extractor, inputs, sampling_rate, lead_names, channels_last, self.dtype, self.limits
        )

    def save_pretrained(self, save_directory: str | os.PathLike, **kwargs):
        """`Pipeline.save_pretrained` (model, tokenizer, feature extractor, pipeline code), plus the processor, which
        the processor-based MERIT pipelines load back."""
        super().save_pretrained(save_directory, **kwargs)
        if self.processor is not None:
            self.processor.save_pretrained(save_directory, **kwargs)

    def _ecg_encoder(self):
        """The ECG tower of the model (the model itself for an ECG-only `MeritECGModel`)."""
        return getattr(self.model, "ecg_model", self.model)


class ZeroShotECGClassificationPipeline(MeritECGPipeline):
    """Zero-shot ECG classification with a MERIT dual encoder (`MeritModel`, `MeritForPreTraining`).

    Call arguments (besides those of `MeritECGPipeline`):

    - `candidate_labels` (`list[str]`, a comma-separated `str` or a `dict`, required): the classes, in words (e.g.
      `"atrial fibrillation"`), each put into every template; or `{label: prompt or [prompts]}` whose prompts are
      used as they are (e.g. the prompts `merit_evaluation.prompts.class_prompts` gives a benchmark's classes, or
      a `--prompts FILE.json`).
    - `hypothesis_template` (`str` or `list[str]`, *optional*): template(s) with one `{description}` field (or `{}`);
      defaults to `DEFAULT_TEMPLATES`. The prompt embeddings of a class are averaged, exactly as
      `eval_merit.py --task zero-shot` does.

    At most `limits.max_candidate_labels` labels, `limits.max_prompts_per_label` templates or prompts per label and
    `limits.max_prompt_characters` characters per label, template or prompt.

    Returns, per record, `[{"label": str, "score": float}, ...]` sorted by decreasing score, where the score is
    `(1 + cosine) / 2` of the normalised ECG and class embeddings (see `zero_shot_merit`): one score per label in
    [0, 1], not a distribution over the labels.
    """

    _load_processor = True
    _load_feature_extractor = False

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if not (hasattr(self.model, "get_text_features") and hasattr(self.model, "get_ecg_features")):
            raise ValueError(
                f"zero-shot-ecg-classification needs a MERIT dual encoder with a text tower (MeritModel or "
                f"MeritForPreTraining), got {type(self.model).__name__}."
            )
        if self.processor is None or getattr(self.processor, "tokenizer", None) is None:
            raise ValueError(
                "zero-shot-ecg-classification needs the checkpoint's MeritProcessor (feature extractor and tokenizer); "
                "pass `processor=` or save the processor with the checkpoint."
            )
        self._class_embeddings_cache: tuple[tuple, torch.Tensor] | None = None

    def _sanitize_task_parameters(self, preprocess_params, candidate_labels=None, hypothesis_template=None, **kwargs):
        super()._sanitize_task_parameters(preprocess_params, **kwargs)
        if candidate_labels is not None:
            preprocess_params["candidate_labels"] = candidate_labels
        if hypothesis_template is not None:
            preprocess_params["hypothesis_template"] = hypothesis_template
        return {}, {}

    def preprocess(self, inputs, candidate_labels=None, hypothesis_template=None, **kwargs):
        prompts = self._class_prompts(
            candidate_labels, hypothesis_template, self.limits
        )  # checked before the ECG is read
        model_inputs = super().preprocess(inputs, **kwargs)
        model_inputs["prompts"] = prompts
        return model_inputs

    @staticmethod
    def _class_prompts(candidate_labels, hypothesis_template, limits: MeritLimits) -> dict[str, list[str]]:
        prompts = ZeroShotECGClassificationPipeline._unchecked_class_prompts(candidate_labels, hypothesis_template)
        limits.check_count("max_candidate_labels", len(prompts), f"`candidate_labels` has {len(prompts)} labels")
        for label, texts in prompts.items():
            limits.check_count(
                "max_prompts_per_label", len(texts), f"Label {label[:40]!r} has {len(texts)} prompts (templates)"
            )
            for text in (label, *texts):
                limits.check_count(
                    "max_prompt_characters",
                    len(text),
                    f"The candidate label or prompt {text[:40] + '...'!r} has {len(text)} characters",
                )
        return prompts

    @staticmethod
    def _unchecked_class_prompts(candidate_labels, hypothesis_template) -> dict[str, list[str]]:
        if isinstance(candidate_labels, dict):
            if hypothesis_template is not None:
                raise ValueError("`hypothesis_template` applies to label names; `candidate_labels` gives prompts.")
            prompts = {}
            for label, texts in candidate_labels.items():
                texts = [texts] if isinstance(texts, str) else texts
                if (
                    not isinstance(texts, (list, tuple))
                    or not texts
                    or not all(isinstance(text, str) and text.strip() for text in texts)
                ):
                    raise ValueError(
                        f"The prompts of label {label!r} must be a non-empty string or list of strings, got {texts!r}."
                    )
                prompts[str(label)] = [text.strip() for text in texts]
            if not prompts:
                raise ValueError("`candidate_labels` is an empty dict; expected {label: prompts}.")
            return prompts
        if isinstance(candidate_labels, str):
            candidate_labels = [label.strip() for label in candidate_labels.split(",") if label.strip()]
        if isinstance(candidate_labels, tuple):
            candidate_labels = list(candidate_labels)
        words = isinstance(candidate_labels, list) and all(
            isinstance(item, str) and item.strip() for item in candidate_labels
        )
        if not words or not candidate_labels:
            raise ValueError(
                "zero-shot-ecg-classification needs `candidate_labels`: a non-empty list of class names in words, e.g. "
                f"['normal ECG', 'atrial fibrillation'], got {candidate_labels!r}."
            )
        if len(set(candidate_labels)) != len(candidate_labels):
            raise ValueError(f"`candidate_labels` has duplicates: {candidate_labels}.")
        templates = DEFAULT_TEMPLATES if hypothesis_template is None else hypothesis_template
        templates = [templates] if isinstance(templates, str) else templates
        if not isinstance(templates, (list, tuple)) or not all(isinstance(template, str) for template in templates):
            raise ValueError(
                "`hypothesis_template` must be a template string with one `{description}` field (or `{}`), or a "
                f"list of such strings, got {hypothesis_template!r}."
            )
        templates = [template.replace("{}", "{description}") for template in templates]
        return build_class_prompts({label: label for label in candidate_labels}, templates)

    def _class_embeddings(self, prompts: dict[str, list[str]]) -> torch.Tensor:
        """Class embeddings of a prompt set, reused while the same labels and templates are asked for."""
        key = tuple((label, tuple(texts)) for label, texts in prompts.items())
        if self._class_embeddings_cache is None or self._class_embeddings_cache[0] != key:
            self._class_embeddings_cache = (key, embed_class_prompts(self.model, self.processor, prompts))
        return self._class_embeddings_cache[1]

    def _forward(self, model_inputs):
        prompts = model_inputs.pop("prompts")
        ecg_embeddings = F.normalize(self.model.get_ecg_features(**model_inputs).float(), dim=-1)
        return {"ecg_embeddings": ecg_embeddings, "class_embeddings": self._class_embeddings(prompts),
                "labels": list(prompts)}  # fmt: skip

    def postprocess(self, model_outputs):
        scores = zero_shot_scores(
            model_outputs["ecg_embeddings"].cpu().numpy(), model_outputs["class_embeddings"].cpu().numpy()
        )[0]
        ranked = sorted(zip(model_outputs["labels"], scores.tolist()), key=lambda pair: -pair[1])
        return [{"label": label, "score": score} for label, score in ranked]


class ECGClassificationPipeline(MeritECGPipeline):
    """ECG classification with a fine-tuned or linear-probed `MeritForECGClassification`.

    Multi-label checkpoints (the default) score each label with a sigmoid; a label is `positive` when its score
    reaches its decision threshold: `config.decision_thresholds` (per label, chosen on the validation split by
    `eval_merit.py`; `None` for a label that had no validation positive, which is then never positive) where saved,
    else 0.5. Single-label checkpoints use a softmax and mark the top label positive.

    Call arguments (besides those of `MeritECGPipeline`):

    - `top_k` (`int`, *optional*): return only the `top_k` highest-scoring labels (default: all);
    - `threshold` (`float`, *optional*): one threshold for every label, replacing the saved ones (multi-label only).

    Returns, per record, `[{"label", "score", "threshold", "positive"}, ...]` sorted by decreasing score.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if not hasattr(self.model, "classifier") or not getattr(self.model.config, "id2label", None):
            raise ValueError(
                f"ecg-classification needs a MeritForECGClassification checkpoint, got {type(self.model).__name__}; "
                "use zero-shot-ecg-classification for a pretrained dual encoder."
            )

    def _sanitize_task_parameters(self, preprocess_params, top_k=None, threshold=None, **kwargs):
        super()._sanitize_task_parameters(preprocess_params, **kwargs)
        postprocess_params = {}
        if top_k is not None:
            if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k <= 0:
                raise ValueError(f"`top_k` must be a positive integer, got {top_k!r}.")
            postprocess_params["top_k"] = top_k
        if threshold is not None:
            if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0.0 <= threshold <= 1.0:
                raise ValueError(f"`threshold` must be a number in [0, 1], got {threshold!r}.")
            postprocess_params["threshold"] = float(threshold)
        return {}, postprocess_params

    def _forward(self, model_inputs):
        return {"logits": self.model(**model_inputs).logits}

    def decision_thresholds(self, threshold: float | None = None) -> list[float | None]:
        """The threshold of every label in `id2label` order (`None`: the label is never positive)."""
        config = self.model.config
        labels = [config.id2label[index] for index in range(config.num_labels)]
        if threshold is not None:
            return [threshold] * len(labels)
        saved = getattr(config, "decision_thresholds", None)
        if saved is None:
            return [0.5] * len(labels)
        missing = [label for label in labels if label not in saved]
        if missing:
            raise ValueError(f"`config.decision_thresholds` has no threshold for the labels {missing}.")
        return [saved[label] for label in labels]

    def postprocess(self, model_outputs, top_k=None, threshold=None):
        logits = model_outputs["logits"][0].float()
        config = self.model.config
        labels = [config.id2label[index] for index in range(config.num_labels)]
        if config.problem_type == "single_label_classification":
            scores = logits.softmax(dim=-1).tolist()
            best = int(np.argmax(scores))
            entries = [
                {"label": label, "score": score, "threshold": None, "positive": index == best}
                for index, (label, score) in enumerate(zip(labels, scores))
            ]
        else:
            scores = logits.sigmoid().tolist()
            entries = [
                {"label": label, "score": score, "threshold": cut, "positive": cut is not None and score >= cut}
                for label, score, cut in zip(labels, scores, self.decision_thresholds(threshold))
            ]
        entries.sort(key=lambda entry: -entry["score"])
        return entries[:top_k] if top_k is not None else entries


class ECGFeatureExtractionPipeline(MeritECGPipeline):
    """ECG embeddings from any MERIT model.

    Call arguments (besides those of `MeritECGPipeline`):

    - `embedding` (`str`): `"projected"` (default for dual encoders) is `get_ecg_features`, the ECG embedding in the
      space shared with the text tower (`projection_dim`), the one zero-shot classification and ECG-report retrieval
      compare; `"pooled"` (default, and the only choice, for ECG-only and classification models) is the ECG
      encoder's pooled output (`hidden_size`: mean of the patch tokens, then LayerNorm), the features a linear
      probe is trained on.
    - `normalize` (`bool`, defaults to `False`): L2-normalise the embedding.
    - `return_tensors` (`bool`, defaults to `False`): return a torch tensor `(dim,)` instead of a list of floats.
    """

    def _sanitize_task_parameters(
        self, preprocess_params, embedding=None, normalize=None, return_tensors=None, **kwargs
    ):
        super()._sanitize_task_parameters(preprocess_params, **kwargs)
        forward_params, postprocess_params = {}, {}
        if embedding is not None:
            if embedding not in ("projected", "pooled"):
                raise ValueError(f"`embedding` must be 'projected' or 'pooled', got {embedding!r}.")
            if embedding == "projected" and not hasattr(self.model, "get_ecg_features"):
                raise ValueError(
                    f"`embedding='projected'` needs a dual encoder with an ECG projection; {type(self.model).__name__} "
                    "has only the pooled embedding (embedding='pooled')."
                )
            forward_params["embedding"] = embedding
        if normalize is not None:
            forward_params["normalize"] = bool(normalize)
        if return_tensors is not None:
            postprocess_params["return_tensors"] = bool(return_tensors)
        return forward_params, postprocess_params

    def _forward(self, model_inputs, embedding=None, normalize=False):
        if embedding is None:
            embedding = "projected" if hasattr(self.model, "get_ecg_features") else "pooled"
        if embedding == "projected":
            features = self.model.get_ecg_features(**model_inputs)
        else:
            features = self._ecg_encoder()(**model_inputs, return_dict=True).pooler_output
        features = features.float()
        return {"embedding": F.normalize(features, dim=-1) if normalize else features}

    def postprocess(self, model_outputs, return_tensors=False):
        embedding = model_outputs["embedding"][0]
        return embedding if return_tensors else embedding.tolist()


class ECGReportGenerationPipeline(MeritECGPipeline):
    """ECG report generation with any model exposing
    `generate(input_values, lead_mask=None, prompt=None, max_new_tokens=..., **generate_kwargs) -> token ids
    (batch * num_return_sequences, new_tokens)` and a processor with `batch_decode` (e.g. MERIT's report-generation
    model and its processor).

    Call arguments (besides those of `MeritECGPipeline`):

    - `prompt` (`str`, *optional*): an instruction passed to `generate` (the model's default when omitted), at most
      `limits.max_instruction_characters` long;
    - `max_new_tokens` (`int`, defaults to 64): the most tokens to generate, at most `limits.max_new_tokens` (also
      when given in `generate_kwargs`);
    - `num_beams` (`int`, *optional*): beam search with this many beams (greedy by default);
    - `num_return_sequences` (`int`, *optional*): reports returned per record (at most `num_beams` with beam search;
      with `do_sample=True` in `generate_kwargs`, any number);
    - `generate_kwargs` (`dict`, *optional*): more arguments of the language model's `generate` (e.g.
      `repetition_penalty`, `do_sample`, `top_p`); an argument may not be given both directly and here.

    Returns, per record, a list of `{"generated_text": str}`, one per returned sequence (one by default), like
    `transformers`' `image-to-text` and `text-generation` pipelines; a list of records gets a list of such lists.
    A findings-conditioned generator (`config.findings_labels`) adds to each dict `"findings"`: the statements its
    classifier wrote into the prompt, `[{"label", "phrase", "score"}, ...]` (score: the classifier's probability),
    so a reader sees what the report was conditioned on.
    """

    _load_processor = True
    _load_feature_extractor = False

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if not callable(getattr(self.model, "generate", None)):
            raise ValueError(f"ecg-report-generation needs a model with `generate`, got {type(self.model).__name__}.")
        decoder = self.processor if hasattr(self.processor, "batch_decode") else self.tokenizer
        if not hasattr(decoder, "batch_decode"):
            raise ValueError("ecg-report-generation needs a processor (or tokenizer) with `batch_decode`.")
        self._decoder = decoder
        # a model that tokenises text prompts itself (MeritForReportGeneration) gets the checkpoint's tokenizer
        self._generate_takes_tokenizer = "tokenizer" in inspect.signature(self.model.generate).parameters

    def _sanitize_task_parameters(
        self,
        preprocess_params,
        prompt=None,
        max_new_tokens=None,
        num_beams=None,
        num_return_sequences=None,
        generate_kwargs=None,
        **kwargs,
    ):
        super()._sanitize_task_parameters(preprocess_params, **kwargs)
        forward_params = {}
        if prompt is not None:
            if not isinstance(prompt, str):
                raise ValueError(f"`prompt` must be a string, got {type(prompt).__name__}.")
            self.limits.check_count(
                "max_instruction_characters", len(prompt), f"`prompt` (the instruction) has {len(prompt)} characters"
            )
            forward_params["prompt"] = prompt
        if generate_kwargs is not None and not isinstance(generate_kwargs, dict):
            raise ValueError(f"`generate_kwargs` must be a dict, got {type(generate_kwargs).__name__}.")
        generate_kwargs = dict(generate_kwargs or {})
        for name, value in (
            ("max_new_tokens", max_new_tokens),
            ("num_beams", num_beams),
            ("num_return_sequences", num_return_sequences),
        ):
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"`{name}` must be a positive integer, got {value!r}.")
            if name in generate_kwargs:
                raise ValueError(
                    f"`{name}` is given both as an argument and in `generate_kwargs`; give it once (either place)."
                )
            generate_kwargs[name] = value
        if "max_length" in generate_kwargs:
            raise ValueError(
                "`generate_kwargs` may not set `max_length` (it would bypass the `max_new_tokens` limit); give "
                "`max_new_tokens` instead."
            )
        requested = generate_kwargs.get("max_new_tokens")
        if requested is not None:
            self.limits.check_count("max_new_tokens", requested, f"`max_new_tokens` is {requested}")
        if generate_kwargs:
            forward_params["generate_kwargs"] = generate_kwargs
        return forward_params, {}

    def _forward(self, model_inputs, prompt=None, generate_kwargs=None):
        generate_kwargs = dict(generate_kwargs or {})
        if "max_new_tokens" not in generate_kwargs:
            generate_kwargs["max_new_tokens"] = min(64, self.limits.max_new_tokens)
        extra = {"tokenizer": self.tokenizer} if self._generate_takes_tokenizer and prompt is not None else {}
        ecg = {"input_values": model_inputs["input_values"], "lead_mask": model_inputs.get("lead_mask")}
        config = getattr(self.model, "config", None)
        probabilities = None
        if getattr(config, "findings_labels", None):
            # one encoder pass: the findings (and any retrieved reports) come from it, and generate reads its features
            features, feature_mask, pooled = self.model.encode_ecg(
                ecg["input_values"], ecg["lead_mask"], return_pooled=True
            )
            probabilities = self.model.findings_probabilities(pooled)
            ecg = {
                "ecg_features": features,
                "ecg_feature_mask": feature_mask,
                "findings": self.model.predict_findings(pooled),
            }
            if config.num_retrieved_reports:
                ecg["retrieved_indices"] = self.model.retrieve(pooled)
        generated = self.model.generate(**ecg, prompt=prompt, **generate_kwargs, **extra)
        outputs = {"generated_ids": generated}
        if probabilities is not None:
            outputs.update(findings=ecg["findings"], findings_probabilities=probabilities)
        return outputs

    def postprocess(self, model_outputs):
        texts = self._decoder.batch_decode(model_outputs["generated_ids"], skip_special_tokens=True)
        probabilities = model_outputs.get("findings_probabilities")
        if probabilities is None:
            return [{"generated_text": text.strip()} for text in texts]
        config = self.model.config
        findings = [
            {"label": label, "phrase": phrase, "score": float(score)}
            for label, phrase, score, present in zip(
                config.findings_labels,
                config.findings_phrases,
                probabilities[0].tolist(),
                model_outputs["findings"][0].tolist(),
            )
            if present
        ]
        return [{"generated_text": text.strip(), "findings": findings} for text in texts]


# --------------------------------------------------------------------------------------------------------------------
# Registration and saving with checkpoints
# --------------------------------------------------------------------------------------------------------------------

MERIT_PIPELINES = {
    "zero-shot-ecg-classification": ZeroShotECGClassificationPipeline,
    "ecg-classification": ECGClassificationPipeline,
    "ecg-feature-extraction": ECGFeatureExtractionPipeline,
    "ecg-report-generation": ECGReportGenerationPipeline,
}
"""Task name -> pipeline class."""

CHECKPOINT_PIPELINES = {
    "MeritModel": ("AutoModel", ["zero-shot-ecg-classification", "ecg-feature-extraction"]),
    "MeritForPreTraining": ("AutoModel", ["zero-shot-ecg-classification", "ecg-feature-extraction"]),
    "MeritECGModel": ("AutoModel", ["ecg-feature-extraction"]),
    "MeritForECGClassification": (
        "AutoModelForSequenceClassification",
        ["ecg-classification", "ecg-feature-extraction"],
    ),
    "MeritForReportGeneration": ("AutoModel", ["ecg-report-generation", "ecg-feature-extraction"]),
}
"""Model class name -> (the Auto class that loads it for the pipelines, the tasks its checkpoints carry).
A pretraining checkpoint is loaded as `MeritModel` (the decoder is not needed)."""


def register_merit_pipelines() -> None:
    """Registers the MERIT tasks with `transformers.pipelines.PIPELINE_REGISTRY`, so that
    `pipeline("ecg-feature-extraction", model=<a MERIT model object>, ...)` works in-process."""
    models = {
        "zero-shot-ecg-classification": AutoModel,
        "ecg-classification": AutoModelForSequenceClassification,
        "ecg-feature-extraction": AutoModel,
        "ecg-report-generation": AutoModel,
    }
    for task, pipeline_class in MERIT_PIPELINES.items():
        if task not in PIPELINE_REGISTRY.supported_tasks:  # another copy (e.g. a checkpoint's remote code) may have
            PIPELINE_REGISTRY.register_pipeline(task, pipeline_class=pipeline_class, pt_model=models[task])


def custom_pipelines_for(model) -> dict[str, dict]:
    """The `custom_pipelines` entry of `config.json` for a MERIT model: the tasks that apply to it.

    Returns:
        `dict`: task -> `{"impl": "pipeline_merit.<Class>", "pt": [<Auto class name>]}`.
    """
    if type(model).__name__ not in CHECKPOINT_PIPELINES:
        return {}
    auto_class, tasks = CHECKPOINT_PIPELINES[type(model).__name__]
    return {task: {"impl": f"pipeline_merit.{MERIT_PIPELINES[task].__name__}", "pt": [auto_class]} for task in tasks}


def add_pipelines_to_checkpoint(model, save_directory: str | os.PathLike, is_main_process: bool = True) -> None:
    """Prepares a MERIT checkpoint folder for the pipelines and Inference Endpoints (called by
    `MeritPreTrainedModel.save_pretrained` before it writes `config.json`).

    Sets `config.custom_pipelines` (and, for a classifier, the `auto_map` entry its pipeline loads it with), copies
    this file, the model's module, the files they import and `handler.py` into `save_directory` (`save_pretrained`
    copies code only for classes registered with an Auto class, which a classifier is not), and writes the
    endpoint's `requirements.txt`. Only the main process writes files (`save_pretrained(..., is_main_process=...)`).
    """
    custom_pipelines = custom_pipelines_for(model)
    if not custom_pipelines:
        return
    model.config.custom_pipelines = custom_pipelines
    auto_map = dict(getattr(model.config, "auto_map", None) or {})
    # imported (not only located) so that trust_remote_code copies handler.py into the dynamic module folder too:
    # a model loaded from the Hub then saves complete checkpoints as well
    from .handler import EndpointHandler

    model_module = type(model).__module__.rsplit(".", 1)[-1]
    for info in custom_pipelines.values():
        auto_map.setdefault(info["pt"][0], f"{model_module}.{type(model).__name__}")
    model.config.auto_map = auto_map
    if not is_main_process:
        return
    os.makedirs(save_directory, exist_ok=True)
    code_files = {Path(__file__), Path(sys.modules[EndpointHandler.__module__].__file__)}
    for module_file in (Path(__file__), Path(sys.modules[type(model).__module__].__file__)):
        code_files |= {module_file, *map(Path, get_relative_import_files(module_file))}
    for file in sorted(code_files):
        shutil.copyfile(file, Path(save_directory) / file.name)
    (Path(save_directory) / "requirements.txt").write_text("\n".join(ENDPOINT_REQUIREMENTS) + "\n")


register_merit_pipelines()

__all__ = [
    "ECGClassificationPipeline",
    "ECGFeatureExtractionPipeline",
    "ECGReportGenerationPipeline",
    "MERIT_PIPELINES",
    "MeritECGPipeline",
    "ZeroShotECGClassificationPipeline",
    "add_pipelines_to_checkpoint",
    "custom_pipelines_for",
    "ecg_record_arguments",
    "preprocess_ecg_record",
    "register_merit_pipelines",
]
