# Copyright 2026 The MERIT authors.
#
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#
#     http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS,
# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and
# limitations under the License.
"""ECG feature extractor for MERIT: the single place where ECG preprocessing lives.

It turns raw ECGs (arrays or WFDB records, any lead order, any sampling rate, any length) into fixed-size model
inputs. Everything it does is decided by its constructor arguments, which `save_pretrained` records in the
(pre)processor config, so a checkpoint always carries the exact preprocessing it was trained with.
"""

import contextlib
import functools
import os
import re
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np
from scipy import signal as scipy_signal
from transformers.feature_extraction_sequence_utils import SequenceFeatureExtractor
from transformers.feature_extraction_utils import BatchFeature
from transformers.utils import TensorType, is_torch_tensor, logging

from .configuration_merit import CANONICAL_LEADS
from .limits_merit import CHANNELS_LAST, MeritLimits, sentence_start


logger = logging.get_logger(__name__)

KNOWN_EXTRA_LEAD_NAMES = (
    "vx", "vy", "vz",  # Frank leads, e.g. the 15-lead records of the PTB Diagnostic ECG Database
    "x", "y", "z",  # Frank / orthogonal leads under their short names
    "v3r", "v4r", "v5r", "v6r",  # right-sided precordial leads
    "v7", "v8", "v9",  # posterior leads
    "mli", "mlii", "mliii",  # modified limb leads of Holter recordings (MIT-BIH)
)  # fmt: skip
"""Lead names that are valid ECG leads but not model inputs: they are ignored (logged at debug level)."""

SCALING_MODES = ("per_lead_zscore", "per_record_zscore", "none")
CROP_MODES = ("center", "random")
NAN_POLICIES = ("interpolate", "zero")

# The resampling factor target_rate / source_rate is approximated by a fraction up / down with down <= this bound.
_MAX_RESAMPLING_DENOMINATOR = 1000
# Standard deviations below this are treated as this value, so a flat lead scales to zeros instead of dividing by 0.
_MIN_STD = 1e-8


@functools.lru_cache(maxsize=32)
def _bandpass_sos(low_hz: float, high_hz: float, order: int, sampling_rate: float) -> np.ndarray:
    """Second-order sections of a Butterworth band-pass filter, shape `(n_sections, 6)`."""
    return scipy_signal.butter(order, [low_hz, high_hz], btype="bandpass", fs=sampling_rate, output="sos")


def _resampling_factors(source_rate: float, target_rate: float) -> tuple[int, int]:
    """Returns `(up, down)` such that `up / down` approximates `target_rate / source_rate`."""
    ratio = Fraction(target_rate / source_rate).limit_denominator(_MAX_RESAMPLING_DENOMINATOR)
    if ratio.numerator == 0:
        raise ValueError(
            f"Cannot resample from {source_rate} Hz to {target_rate} Hz: the ratio is below "
            f"1/{_MAX_RESAMPLING_DENOMINATOR}."
        )
    return ratio.numerator, ratio.denominator


def _wfdb_record_name(path: str | os.PathLike) -> str:
    """The WFDB record name (path without the `.hea` extension) of a header path or record name."""
    path = os.fspath(path)
    return path[: -len(".hea")] if path.endswith(".hea") else path


WFDB_BYTES_PER_SAMPLE = {"8": 1, "16": 2, "24": 3, "32": 4, "61": 2, "80": 1, "160": 2, "212": 1.5, "310": 4 / 3,
                         "311": 4 / 3, "508": None, "516": None, "524": None}  # fmt: skip
"""The WFDB signal formats `wfdb` reads, with the bytes one sample takes (`None`: FLAC, compressed)."""
_WFDB_FILE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+-]*")
_WFDB_FORMAT = re.compile(r"(?P<format>\d+)(?:x(?P<frame>\d+))?(?::(?P<skew>\d+))?(?:\+(?P<offset>\d+))?")
_WFDB_GAIN = re.compile(r"(?P<gain>[^(/]*)(?:\((?P<baseline>[^)]*)\))?(?:/(?P<units>.*))?")
_MAX_WFDB_HEADER_BYTES = 1 << 20


@dataclass
class WfdbHeader:
    """The fields of a WFDB header (`.hea`) that MERIT reads, validated by [`parse_wfdb_header`].

    Attributes:
        record_name (`str`): the record name of the record line.
        num_signals (`int`): the number of signals (leads).
        sampling_rate (`float`): samples per second and signal, as written (never WFDB's default of 250 Hz).
        num_samples (`int` or `None`): samples per signal; `None` when the header omits it.
        file_names (`list[str]`): the signal file of each signal, a plain file name next to the header.
        formats (`list[str]`): the WFDB storage format of each signal (e.g. `"16"`).
        byte_offsets (`list[int]`): bytes before the first sample of each signal's file.
        samples_per_frame (`list[int]`): samples per frame of each signal (1 for ECGs).
        units (`list[str]`): the physical units of each signal (`"mV"` when the header gives none).
        lead_names (`list[str]`): the description (lead name) of each signal.
    """

    record_name: str
    num_signals: int
    sampling_rate: float
    num_samples: int | None
    file_names: list[str] = field(default_factory=list)
    formats: list[str] = field(default_factory=list)
    byte_offsets: list[int] = field(default_factory=list)
    samples_per_frame: list[int] = field(default_factory=list)
    units: list[str] = field(default_factory=list)
    lead_names: list[str] = field(default_factory=list)


def _header_error(description: str, problem: str, line: str) -> ValueError:
    return ValueError(f"The WFDB header of {description} {problem} (line {line!r}); fix the header.")


def _header_int(text: str, name: str, description: str, line: str, minimum: int | None = None) -> int:
    try:
        value = int(text)
    except ValueError:
        raise _header_error(description, f"has the {name} {text!r}; expected an integer", line) from None
    if minimum is not None and value < minimum:
        raise _header_error(description, f"has the {name} {value}; expected at least {minimum}", line)
    return value


def _is_plain_file_name(name: str) -> bool:
    return bool(_WFDB_FILE_NAME.fullmatch(name)) and name not in (".", "..")


def parse_wfdb_header(text: str, description: str = "the record") -> WfdbHeader:
    """Parses and validates the text of a single-segment WFDB header.

    Unlike `wfdb`, which reads a missing or unreadable sampling rate as 250 Hz and a missing or unreadable gain as
    200, every field MERIT uses must be written and make sense: a positive finite sampling rate, a non-negative
    finite gain (0 is WFDB's "uncalibrated, use 200"), an integer baseline, a format `wfdb` reads, and signal files
    named by plain file names next to the header (never `.`, `..` or a path).

    Args:
        text (`str`): the content of the `.hea` file.
        description (`str`, *optional*): how to name the record in error messages.

    Returns:
        [`WfdbHeader`]

    Raises:
        `ValueError`: naming the field that is missing or wrong.
    """
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    record_line = lines[0] if lines else ""
    fields = record_line.split()
    if len(fields) < 2 or not fields[1].isdigit():
        raise ValueError(
            f"The header of {description} is not a WFDB header: its first line must be '<record name> <number of "
            f"signals> <sampling rate> <number of samples>', got {record_line!r}."
        )
    record_name = fields[0]
    base_name, _, segments = record_name.partition("/")
    if segments.isdigit() and _is_plain_file_name(base_name):
        raise _header_error(description, "describes a multi-segment record; MERIT reads single-segment records",
                            record_line)  # fmt: skip
    if not _is_plain_file_name(record_name):
        raise ValueError(f"The WFDB header of {description} names files outside its folder: {record_name!r}.")
    num_signals = _header_int(fields[1], "number of signals", description, record_line, minimum=1)
    if len(fields) < 3:
        raise _header_error(
            description, "gives no sampling rate (WFDB would assume 250 Hz); expected '<record name> <number of "
            "signals> <sampling rate in Hz> <number of samples>'", record_line,
        )  # fmt: skip
    rate_text = fields[2].split("/")[0]
    try:
        sampling_rate = float(rate_text)
    except ValueError:
        sampling_rate = float("nan")
    if not (np.isfinite(sampling_rate) and sampling_rate > 0):
        raise _header_error(
            description, f"has the sampling rate {rate_text!r}; expected a positive finite number of Hz", record_line
        )
    num_samples = _header_int(fields[3], "number of samples", description, record_line, 0) if len(fields) > 3 else None

    signal_lines = lines[1:]
    if len(signal_lines) != num_signals:
        raise _header_error(
            description, f"announces {num_signals} signals but describes {len(signal_lines)}", record_line
        )
    header = WfdbHeader(record_name, num_signals, sampling_rate, num_samples)
    for line in signal_lines:
        fields = line.split(maxsplit=8)
        if len(fields) < 2:
            raise _header_error(description, "has a signal line without a format", line)
        file_name, format_spec = fields[0], _WFDB_FORMAT.fullmatch(fields[1])
        if not _is_plain_file_name(file_name):
            raise ValueError(
                f"The WFDB header of {description} names files outside its folder: {file_name!r} (expected a plain "
                "file name next to the header)."
            )
        if format_spec is None or format_spec["format"] not in WFDB_BYTES_PER_SAMPLE:
            raise _header_error(
                description, f"has the signal format {fields[1]!r}; expected one of {sorted(WFDB_BYTES_PER_SAMPLE)}",
                line,
            )  # fmt: skip
        units = "mV"
        if len(fields) > 2:
            gain_spec = _WFDB_GAIN.fullmatch(fields[2])
            try:
                gain = float(gain_spec["gain"])
            except ValueError:
                gain = float("nan")
            if not (np.isfinite(gain) and gain >= 0):
                raise _header_error(
                    description, f"has the gain {gain_spec['gain']!r}; expected a positive finite number of ADC units "
                    "per physical unit (0: uncalibrated)", line,
                )  # fmt: skip
            if gain_spec["baseline"] is not None:
                _header_int(gain_spec["baseline"], "baseline", description, line)
            units = gain_spec["units"] or units
        for index, name in ((3, "ADC resolution"), (4, "ADC zero"), (5, "initial value"), (6, "checksum"),
                            (7, "block size")):  # fmt: skip
            if len(fields) > index:
                _header_int(fields[index], name, description, line)
        header.file_names.append(file_name)
        header.formats.append(format_spec["format"])
        header.byte_offsets.append(int(format_spec["offset"] or 0))
        header.samples_per_frame.append(int(format_spec["frame"] or 1))
        header.units.append(units)
        header.lead_names.append(fields[8] if len(fields) > 8 else "")
    return header


def _samples_in_signal_files(header: WfdbHeader, folder: str, description: str) -> int:
    """The number of samples per signal the header gives, checked against the size of every signal file (so that a
    header cannot make `wfdb` read past the end of a file); computed from the file size when the header omits it."""
    num_samples = header.num_samples
    for file_name in dict.fromkeys(header.file_names):
        signals = [index for index, name in enumerate(header.file_names) if name == file_name]
        path = os.path.join(folder, file_name)
        try:
            size = os.path.getsize(path)
        except OSError as error:
            raise ValueError(
                f"Could not read the {description}: its signal file {file_name!r} is missing or unreadable "
                f"({type(error).__name__}: {error})."
            ) from error
        if not os.path.isfile(path):
            raise ValueError(f"The WFDB header of the {description} names files outside its folder: {file_name!r}.")
        bytes_per_sample = WFDB_BYTES_PER_SAMPLE[header.formats[signals[0]]]
        if bytes_per_sample is None:
            if num_samples is None:
                raise ValueError(
                    f"Could not read the {description}: its header gives no number of samples, which a compressed "
                    "(FLAC) signal file needs; add it to the record line."
                )
            continue
        bytes_per_frame = bytes_per_sample * sum(header.samples_per_frame[index] for index in signals)
        stored = int((size - header.byte_offsets[signals[0]]) // bytes_per_frame)
        if num_samples is None:
            num_samples = stored
        elif stored < num_samples:
            raise ValueError(
                f"Could not read the {description}: its header announces {num_samples} samples per signal, but its "
                f"signal file {file_name!r} ({size} bytes) holds {max(stored, 0)}: the file is truncated or the "
                "header is wrong."
            )
    return num_samples


def read_wfdb_record(path: str | os.PathLike, limits: MeritLimits | None = None) -> tuple[np.ndarray, WfdbHeader]:
    """Reads the physical signal of a WFDB record, validating its header first and reading only what is kept.

    The header is parsed by [`parse_wfdb_header`] and checked against `limits` (leads, sampling rate) before any
    sample is read; a record longer than `limits.max_record_seconds` (or `limits.max_samples_per_record`) is read
    over its central stretch of that length only, with a warning.

    Args:
        path (`str` or `os.PathLike`): a `.hea` header path, or the record name without extension.
        limits ([`MeritLimits`], *optional*): defaults to `MeritLimits.from_env()`.

    Returns:
        `tuple`: the signal as a float64 array of shape `(n_leads, n_read)` in the header's physical units, and the
        validated [`WfdbHeader`].
    """
    limits = MeritLimits.resolve(limits)
    record_name = _wfdb_record_name(path)
    description = f"WFDB record {os.fspath(path)!r}"
    try:
        with open(f"{record_name}.hea", "rb") as file:
            text = file.read(_MAX_WFDB_HEADER_BYTES + 1).decode("latin-1")
    except OSError as error:
        raise ValueError(
            f"Could not read the WFDB record {os.fspath(path)!r} (expected a readable header {record_name}.hea and "
            f"the signal file(s) it names): {type(error).__name__}: {error}"
        ) from error
    if len(text) > _MAX_WFDB_HEADER_BYTES:
        raise ValueError(f"Could not read the {description}: its header is larger than 1 MiB.")
    try:
        header = parse_wfdb_header(text, "the record")
    except ValueError as error:
        raise ValueError(f"Could not read the {description}: {error}") from error
    limits.check_count("max_leads_per_record", header.num_signals, f"{description} has {header.num_signals} leads")
    limits.check_sampling_rate(header.sampling_rate, description)
    num_samples = _samples_in_signal_files(header, os.path.dirname(record_name), description)
    start, stop = limits.window_to_read(
        num_samples,
        header.sampling_rate,
        f"{description} has {num_samples} samples per lead ({num_samples / header.sampling_rate:g} s)",
    )
    if stop <= start:
        return np.zeros((header.num_signals, 0)), header
    try:
        import wfdb  # imported once the header has passed its checks (the import takes a while)
    except ImportError as error:
        raise ImportError(
            "Reading WFDB records needs the `wfdb` package: `pip install wfdb`. Alternatively, pass the signal as an "
            "array together with `sampling_rate` and `lead_names`."
        ) from error
    try:
        signal, _ = wfdb.rdsamp(record_name, sampfrom=start, sampto=stop)
    except (OSError, ValueError, LookupError) as error:
        raise ValueError(
            f"Could not read the WFDB record {os.fspath(path)!r} (expected a readable header {record_name}.hea and "
            f"the signal file(s) it names): {type(error).__name__}: {error}"
        ) from error
    return np.asarray(signal, dtype=np.float64).T, header


@dataclass
class _RawRecord:
    """One input record before preprocessing.

    Attributes:
        signal (`np.ndarray` of shape `(n_leads, n_samples)`, float64): the signal as given.
        sampling_rate (`float`): its sampling rate in Hz.
        lead_names (`list[str]`): the name of each row of `signal`.
        description (`str`): how to name the record in error messages.
    """

    signal: np.ndarray
    sampling_rate: float
    lead_names: list[str]
    description: str


class MeritFeatureExtractor(SequenceFeatureExtractor):
    r"""
    Constructs a MERIT ECG feature extractor.

    For every record it applies, in this order:

    1. **lead selection** — rows are mapped to `lead_names` by name, case-insensitively (`AVR`, `avr` and `aVR` are
       the same lead). Leads whose name is listed in `ignored_lead_names` (by default the Frank leads `vx vy vz` and
       other non-standard leads, see `KNOWN_EXTRA_LEAD_NAMES`), or that is a standard lead not in `lead_names`, are
       dropped with a debug log. Any other name is an error, so a typo cannot silently drop a lead. Leads that are
       absent, or whose samples are all NaN, are *missing*: they are filled with zeros and flagged 0 in `lead_mask`.
    2. **NaN handling** — non-finite samples (NaN, ±inf) of the present leads are filled according to `nan_policy`:
       `"interpolate"` (linear interpolation between the nearest finite samples, holding the first/last finite
       value at the ends) or `"zero"` (replaced by 0 in input units). Their number is returned as `nan_samples`.
    3. **resampling** to `sampling_rate` with a polyphase filter (`scipy.signal.resample_poly`, factor
       `up / down` = target rate / source rate as a fraction with `down <= 1000`, `padtype="line"` so that a
       baseline offset or drift causes no edge transient).
    4. **band-pass filtering** (optional) with a zero-phase Butterworth filter (`scipy.signal.sosfiltfilt`, the
       record extended at both ends by odd reflection over one period of the low cut-off) applied to the whole
       resampled record, before cropping, so that crops and windows away from the record's ends carry no filter
       edge effects.
    5. **crop or pad** to `num_samples`: records longer than `num_samples` are cropped (`"center"` or `"random"`
       crop) or, with `return_windows=True`, cut into sliding windows; shorter records are padded at the end with
       `padding_value`.
    6. **scaling** of each output row (`scaling`): `"per_lead_zscore"` (each lead to zero mean and unit standard
       deviation), `"per_record_zscore"` (one mean and standard deviation over all present leads) or `"none"`.
       Statistics are population statistics computed on the real samples of the present leads of that output row
       only: zero-filled missing leads and end padding are neither used nor changed. Scaling comes last so that
       the model always sees inputs with the statistics it was trained on, whatever the crop.

    Output rows are float32 regardless of the input dtype. Integer inputs (e.g. int16 WFDB digital values) are taken
    as they are: no gain or baseline is applied, so pass physical values when `scaling="none"` matters. WFDB records
    given by path are read in physical units with `wfdb.rdsamp`.

    Args:
        feature_size (`int`, *optional*, defaults to 12):
            Number of output leads; must equal `len(lead_names)`.
        sampling_rate (`int` or `float`, *optional*, defaults to 100):
            Sampling rate (Hz) of the model inputs; every record is resampled to it.
        num_samples (`int`, *optional*, defaults to 1000):
            Length (samples at `sampling_rate`) of each model input, e.g. 10 s at 100 Hz.
        padding_value (`float`, *optional*, defaults to 0.0):
            Value used to pad present leads of records shorter than `num_samples` (missing leads are always 0).
        lead_names (`list[str]`, *optional*, defaults to `CANONICAL_LEADS`):
            Output lead order: I, II, III, aVR, aVL, aVF, V1–V6.
        ignored_lead_names (`list[str]`, *optional*, defaults to `KNOWN_EXTRA_LEAD_NAMES`):
            Extra lead names (case-insensitive) that are dropped rather than rejected.
        bandpass (`list[float]`, *optional*):
            `[low_hz, high_hz]` of a zero-phase Butterworth band-pass filter, with
            `0 < low_hz < high_hz < sampling_rate / 2`; `None` disables filtering.
        filter_order (`int`, *optional*, defaults to 4):
            Order of the Butterworth band-pass filter (applied forwards and backwards, so the effective order doubles).
        scaling (`str`, *optional*, defaults to `"per_lead_zscore"`):
            One of `"per_lead_zscore"`, `"per_record_zscore"`, `"none"` (see step 6 above).
        crop (`str`, *optional*, defaults to `"center"`):
            How records longer than `num_samples` are cropped: `"center"` or `"random"`; can be overridden per call.
        nan_policy (`str`, *optional*, defaults to `"interpolate"`):
            How non-finite samples are filled: `"interpolate"` or `"zero"` (see step 2 above).
        window_stride (`int`, *optional*):
            Step (samples at `sampling_rate`) between sliding windows when called with `return_windows=True`;
            defaults to `num_samples` (non-overlapping windows).
        return_lead_mask (`bool`, *optional*, defaults to `True`):
            Whether to return `lead_mask`.

    Example:

    ```python
    >>> import numpy as np
    >>> from modeling_merit import MeritFeatureExtractor

    >>> feature_extractor = MeritFeatureExtractor(sampling_rate=100, num_samples=1000)
    >>> ecg = np.random.default_rng(0).normal(size=(12, 5000))  # 10 s at 500 Hz, leads x time
    >>> inputs = feature_extractor(ecg, sampling_rate=500, lead_names=["I", "II", "III", "AVR", "AVL", "AVF",
    ...                                                                "V1", "V2", "V3", "V4", "V5", "V6"])
    >>> inputs["input_values"].shape, inputs["lead_mask"].shape
    ((1, 12, 1000), (1, 12))
    ```
    """

    model_input_names = ["input_values", "lead_mask"]

    def __init__(
        self,
        feature_size: int = 12,
        sampling_rate: float = 100,
        num_samples: int = 1000,
        padding_value: float = 0.0,
        lead_names: list[str] | None = None,
        ignored_lead_names: list[str] | None = None,
        bandpass: list[float] | None = None,
        filter_order: int = 4,
        scaling: str = "per_lead_zscore",
        crop: str = "center",
        nan_policy: str = "interpolate",
        window_stride: int | None = None,
        return_lead_mask: bool = True,
        **kwargs,
    ):
        kwargs.setdefault("return_attention_mask", False)
        super().__init__(feature_size=feature_size, sampling_rate=sampling_rate, padding_value=padding_value, **kwargs)
        self.num_samples = num_samples
        self.lead_names = list(CANONICAL_LEADS if lead_names is None else lead_names)
        self.ignored_lead_names = list(KNOWN_EXTRA_LEAD_NAMES if ignored_lead_names is None else ignored_lead_names)
        self.bandpass = bandpass
        self.filter_order = filter_order
        self.scaling = scaling
        self.crop = crop
        self.nan_policy = nan_policy
        self.window_stride = window_stride
        self.return_lead_mask = return_lead_mask
        self._validate_config()
        if self.bandpass is not None:
            self.bandpass = [float(cutoff) for cutoff in self.bandpass]

    def _validate_config(self):
        """Raises a `ValueError` naming the first constructor argument with an invalid value."""
        if not _is_positive_number(self.sampling_rate):
            raise ValueError(f"`sampling_rate` must be a positive number of Hz, got {self.sampling_rate!r}.")
        if not _is_positive_int(self.num_samples):
            raise ValueError(f"`num_samples` must be a positive integer, got {self.num_samples!r}.")
        if not _is_positive_int(self.feature_size):
            raise ValueError(f"`feature_size` must be a positive integer, got {self.feature_size!r}.")
        if not (_is_real_number(self.padding_value) and np.isfinite(self.padding_value)):
            raise ValueError(f"`padding_value` must be a finite number, got {self.padding_value!r}.")
        for argument, names in (("lead_names", self.lead_names), ("ignored_lead_names", self.ignored_lead_names)):
            if not all(isinstance(name, str) and name.strip() for name in names):
                raise ValueError(f"`{argument}` must be a list of non-empty strings, got {names!r}.")
            if len({_normalise_lead_name(name) for name in names}) != len(names):
                raise ValueError(f"`{argument}` must not repeat a lead (case-insensitively), got {names!r}.")
        if len(self.lead_names) != self.feature_size:
            raise ValueError(
                f"`feature_size` ({self.feature_size}) must equal the number of `lead_names` "
                f"({len(self.lead_names)}: {self.lead_names})."
            )
        overlap = {_normalise_lead_name(name) for name in self.lead_names} & {
            _normalise_lead_name(name) for name in self.ignored_lead_names
        }
        if overlap:
            raise ValueError(
                f"`ignored_lead_names` must not contain output leads, but both contain {sorted(overlap)}."
            )
        if self.scaling not in SCALING_MODES:
            raise ValueError(f"`scaling` must be one of {SCALING_MODES}, got {self.scaling!r}.")
        if self.crop not in CROP_MODES:
            raise ValueError(f"`crop` must be one of {CROP_MODES}, got {self.crop!r}.")
        if self.nan_policy not in NAN_POLICIES:
            raise ValueError(f"`nan_policy` must be one of {NAN_POLICIES}, got {self.nan_policy!r}.")
        if self.window_stride is not None and not _is_positive_int(self.window_stride):
            raise ValueError(f"`window_stride` must be a positive integer or None, got {self.window_stride!r}.")
        if not _is_positive_int(self.filter_order):
            raise ValueError(f"`filter_order` must be a positive integer, got {self.filter_order!r}.")
        if self.bandpass is not None:
            nyquist = self.sampling_rate / 2
            is_valid = (
                isinstance(self.bandpass, (list, tuple))
                and len(self.bandpass) == 2
                and all(_is_real_number(cutoff) for cutoff in self.bandpass)
                and 0 < self.bandpass[0] < self.bandpass[1] < nyquist
            )
            if not is_valid:
                raise ValueError(
                    f"`bandpass` must be [low_hz, high_hz] with 0 < low_hz < high_hz < sampling_rate / 2 = {nyquist} "
                    f"Hz (the Nyquist frequency of the target rate), got {self.bandpass!r}."
                )

    def __call__(
        self,
        ecg,
        sampling_rate: float | list[float] | None = None,
        lead_names: list[str] | list[list[str] | None] | None = None,
        channels_last: bool = False,
        return_tensors: str | TensorType | None = None,
        crop: str | None = None,
        return_windows: bool = False,
        seed: int | None = None,
        return_nan_counts: bool = False,
        limits: MeritLimits | None = None,
    ) -> BatchFeature:
        """
        Preprocesses one or several ECG records.

        Args:
            ecg (`np.ndarray`, `torch.Tensor`, `str`, `os.PathLike` or a list of these):
                One record or a list of records (of any lengths and sampling rates). A record is an array of shape
                `(n_leads, n_samples)` (`(n_samples, n_leads)` with `channels_last=True`), or the path of a WFDB record
                (its `.hea` header, or the record name without extension), read in physical units. A 3-d array of
                shape `(batch, n_leads, n_samples)` is a batch of equally long records.
            sampling_rate (`float` or `list[float]`, *optional*):
                Sampling rate (Hz) of the records: one value for all, or one per record. Required for arrays; for
                WFDB records it is read from the header and, if given, must agree with it (`None` entries of a
                per-record list are allowed for WFDB records).
            lead_names (`list[str]` or `list[list[str] | None]`, *optional*):
                Name of each lead (row) of the records: one list for all, or one list per record. Matched to the
                output leads case-insensitively. If omitted for an array with exactly `feature_size` leads, the
                leads are assumed to be in the output order `self.lead_names`; otherwise it is required. For WFDB
                records the header's names are used and, if given, must agree with them.
            channels_last (`bool`, *optional*, defaults to `False`):
                Whether arrays are laid out time x leads instead of leads x time (WFDB records are unaffected).
            return_tensors (`str` or [`~utils.TensorType`], *optional*):
                `"pt"` for PyTorch tensors, `"np"` (or `None`) for NumPy arrays.
            crop (`str`, *optional*):
                `"center"` or `"random"`; overrides `self.crop` for this call.
            return_windows (`bool`, *optional*, defaults to `False`):
                Cut every record into sliding windows of `num_samples` with step `window_stride` instead of taking
                one crop. The windows start at 0, `window_stride`, ...; if they do not reach the end of the record,
                one more window aligned with the record's end is added, so every sample is covered and no window
                is padded (records shorter than `num_samples` give a single padded window).
            seed (`int`, *optional*):
                Seed of the random crop positions; `None` draws fresh positions on every call.
            return_nan_counts (`bool`, *optional*, defaults to `False`):
                Also return `nan_samples`. Off by default so that the output can be passed to a model as
                `model(**features)`; filled samples are then reported by a warning.
            limits ([`MeritLimits`], *optional*):
                Limits on the records (leads, samples, sampling rate, resampling ratio, the stretch of a WFDB record
                that is read); defaults to `MeritLimits.from_env()`. A record over a limit raises a `ValueError` before
                it is read, converted or resampled.

        Returns:
            [`BatchFeature`] with, for `n_rows` output rows (one per record, or one per window):

            - **input_values** (`(n_rows, feature_size, num_samples)`, float32) — the preprocessed signals;
            - **lead_mask** (`(n_rows, feature_size)`, int64) — 1 where the lead was present, 0 where it was missing
              and zero-filled (if `return_lead_mask`);
            - **nan_samples** (`(n_rows,)`, int64) — number of non-finite input samples of the present leads of the
              row's record that were filled (counted at the input sampling rate, over the whole record; only with
              `return_nan_counts=True`, otherwise a warning reports them);
            - **record_index** (`(n_rows,)`, int64) — index of the input record of each window (only with
              `return_windows=True`).
        """
        crop = self.crop if crop is None else crop
        if crop not in CROP_MODES:
            raise ValueError(f"`crop` must be one of {CROP_MODES}, got {crop!r}.")

        limits = MeritLimits.resolve(limits)
        records = self._collect_records(ecg, sampling_rate, lead_names, channels_last, limits)
        signals, lead_masks, nan_samples, flat = [], [], [], {}
        for record in records:
            resampled, lead_mask, nan_count, flat_leads = self._clean_and_resample(record)
            signals.append(resampled)
            lead_masks.append(lead_mask)
            nan_samples.append(nan_count)
            if flat_leads:
                flat[record.description] = flat_leads
        self._warn_about_unlikely_records(records, signals, flat)

        record_index, starts = self._row_layout(
            [signal.shape[1] for signal in signals], crop, return_windows, np.random.default_rng(seed)
        )
        input_values = np.full((len(starts), self.feature_size, self.num_samples), self.padding_value)
        valid_length = np.empty(len(starts), dtype=np.int64)
        for row, (index, start) in enumerate(zip(record_index, starts, strict=True)):
            segment = signals[index][:, start : start + self.num_samples]
            input_values[row, :, : segment.shape[1]] = segment
            valid_length[row] = segment.shape[1]
        lead_mask = np.stack(lead_masks)[record_index]
        input_values[lead_mask == 0] = 0.0
        self._scale(input_values, lead_mask, valid_length)

        data = {"input_values": input_values.astype(np.float32)}
        if self.return_lead_mask:
            data["lead_mask"] = lead_mask
        if return_nan_counts:
            data["nan_samples"] = np.asarray(nan_samples, dtype=np.int64)[record_index]
        elif any(nan_samples):
            filled = {index: count for index, count in enumerate(nan_samples) if count}
            logger.warning(
                f"Filled non-finite samples ({self.nan_policy}) in {len(filled)} record(s) "
                f"(record index: count) {filled}; pass `return_nan_counts=True` to get the counts per row."
            )
        if return_windows:
            data["record_index"] = record_index
        return BatchFeature(data, tensor_type=return_tensors)

    def _warn_about_unlikely_records(
        self, records: list[_RawRecord], signals: list[np.ndarray], flat: dict[str, list[str]]
    ) -> None:
        """One warning per kind for records that are valid but probably not what was meant: a record shorter than half
        the model's window (zero-padded; often a wrong `sampling_rate`) and used leads that are a flat line (`flat`,
        record description -> leads; often a disconnected electrode, or no signal at all). Both are encoded as
        given."""
        window = self.num_samples / self.sampling_rate
        short = {
            record.description: f"{signal.shape[1] / self.sampling_rate:g} s"
            for record, signal in zip(records, signals, strict=True)
            if signal.shape[1] < self.num_samples / 2
        }
        if len(short) == 1:
            ((description, duration),) = short.items()
            logger.warning(
                f"{sentence_start(description)} lasts {duration}, less than half of the model's "
                f"{window:g} s window, and is zero-padded; check `sampling_rate` if it should be longer."
            )
        elif short:
            logger.warning(
                f"{len(short)} records last less than half of the model's {window:g} s window and are zero-padded: "
                f"{short}; check `sampling_rate` if they should be longer."
            )
        if flat:
            which = (
                f"{next(iter(flat))} has leads that are a flat line: {next(iter(flat.values()))}"
                if len(flat) == 1
                else f"{len(flat)} records have leads that are a flat line: {flat}"
            )
            logger.warning(
                f"{sentence_start(which)}; a flat lead usually means a disconnected electrode. They are encoded "
                "as given (pass NaN for a lead to have it masked as missing)."
            )

    def _collect_records(
        self, ecg, sampling_rate, lead_names, channels_last: bool, limits: MeritLimits
    ) -> list[_RawRecord]:
        """Turns the accepted input forms into a list of records with their sampling rates and lead names."""
        if _is_path(ecg) or _is_array(ecg):
            items = [ecg]
            if _is_array(ecg) and np.ndim(ecg) == 3:
                items = list(ecg)
        elif isinstance(ecg, (list, tuple)):
            items = list(ecg)
        else:
            raise ValueError(
                "`ecg` must be an array or tensor of shape (n_leads, n_samples), a path to a WFDB record, or a list "
                f"of these, got {type(ecg).__name__}."
            )
        if not items:
            raise ValueError("`ecg` is an empty list; expected at least one record.")

        rates = _per_record(sampling_rate, len(items), "sampling_rate", _is_sequence_of_values(sampling_rate))
        names = _per_record(lead_names, len(items), "lead_names", _is_per_record_lead_names(lead_names))

        records = []
        for index, (item, rate, item_lead_names) in enumerate(zip(items, rates, names, strict=True)):
            description = f"record {index}" if len(items) > 1 else "the record"
            if _is_path(item):
                records.append(self._wfdb_record(item, rate, item_lead_names, limits))
            else:
                records.append(self._array_record(item, rate, item_lead_names, channels_last, description, limits))
        return records

    def _wfdb_record(self, path, sampling_rate, lead_names, limits: MeritLimits) -> _RawRecord:
        """Reads a WFDB record and checks that explicitly given metadata agrees with its header."""
        description = f"WFDB record {os.fspath(path)!r}"
        signal, header = read_wfdb_record(path, limits)
        header_rate, header_lead_names = header.sampling_rate, header.lead_names
        if sampling_rate is not None and not np.isclose(float(sampling_rate), header_rate):
            raise ValueError(
                f"`sampling_rate`={sampling_rate} disagrees with the header of {description} ({header_rate} Hz); "
                "omit it for WFDB records."
            )
        if lead_names is not None and [_normalise_lead_name(name) for name in lead_names] != [
            _normalise_lead_name(name) for name in header_lead_names
        ]:
            raise ValueError(
                f"`lead_names`={list(lead_names)} disagree with the header of {description} ({header_lead_names}); "
                "omit them for WFDB records."
            )
        return self._checked_record(signal, header_rate, header_lead_names, description, limits)

    def _array_record(
        self, array, sampling_rate, lead_names, channels_last: bool, description: str, limits: MeritLimits
    ) -> _RawRecord:
        """Validates an array record and attaches its sampling rate and lead names."""
        shape = tuple(array.shape) if _is_array(array) else _nested_list_shape(array)
        if len(shape) == 2:  # checked before the record is converted (copied) to float64
            limits.check_record_shape(*(shape[::-1] if channels_last else shape), description)
        signal = _to_float64_array(array, description)
        if signal.ndim != 2:
            raise ValueError(
                f"{description} has {signal.ndim} dimension(s) (shape {signal.shape}); expected 2: "
                f"(n_leads, n_samples), or (n_samples, n_leads) with {CHANNELS_LAST}."
            )
        if channels_last:
            signal = signal.T
        return self._checked_record(signal, sampling_rate, lead_names, description, limits)

    def _checked_record(
        self, signal: np.ndarray, sampling_rate, lead_names, description: str, limits: MeritLimits
    ) -> _RawRecord:
        """Checks what arrays and WFDB records share: a non-empty signal, a sampling rate within the limits that can be
        resampled to the model's rate without exceeding them, one name per lead.

        Without `lead_names`, a record with exactly `feature_size` leads is taken to be in the order `lead_names`.
        """
        if signal.size == 0:
            raise ValueError(
                f"{description} is empty (shape {signal.shape}); expected at least one lead and one sample."
            )
        if sampling_rate is None:
            raise ValueError(f"`sampling_rate` is required for {description}: pass the rate in Hz it was recorded at.")
        if not _is_positive_number(sampling_rate):
            raise ValueError(
                f"`sampling_rate` of {description} must be a positive number of Hz, got {sampling_rate!r}."
            )
        limits.check_record_shape(*signal.shape, description)
        limits.check_sampling_rate(float(sampling_rate), description)
        limits.check_resampling(float(sampling_rate), float(self.sampling_rate), description)
        resampled = int(np.ceil(signal.shape[1] * float(self.sampling_rate) / float(sampling_rate)))
        limits.check_count(
            "max_samples_per_record",
            resampled,
            f"{description} would have {resampled} samples per lead after resampling to {self.sampling_rate:g} Hz",
        )
        if lead_names is None:
            if signal.shape[0] != self.feature_size:
                raise ValueError(
                    f"`lead_names` is required for {description}: it has {signal.shape[0]} leads (shape "
                    f"{signal.shape}, leads first), and only a record with exactly {self.feature_size} leads is "
                    f"assumed to be in the order {self.lead_names}."
                )
            logger.debug(f"No lead_names for {description}; assuming the order {self.lead_names}.")
            lead_names = self.lead_names
        if not isinstance(lead_names, (str, list, tuple, np.ndarray)):
            raise ValueError(
                f"`lead_names` of {description} must be a list with one lead name per lead, got "
                f"{type(lead_names).__name__} {lead_names!r}."
            )
        if isinstance(lead_names, str) or len(lead_names) != signal.shape[0]:
            raise ValueError(
                f"`lead_names` of {description} has {1 if isinstance(lead_names, str) else len(lead_names)} name(s) "
                f"but the record has {signal.shape[0]} leads (shape {signal.shape}, leads first); expected one name "
                f"per lead ({CHANNELS_LAST} if time is the first axis)."
            )
        return _RawRecord(signal, float(sampling_rate), list(lead_names), description)

    def _match_leads(self, record: _RawRecord) -> tuple[list[int], list[int]]:
        """Maps the record's leads to output leads.

        Returns:
            `tuple[list[int], list[int]]`: for each kept lead, its row in the record and its row in the output.
        """
        output_index = {_normalise_lead_name(name): index for index, name in enumerate(self.lead_names)}
        ignorable = {
            _normalise_lead_name(name) for name in (*self.ignored_lead_names, *CANONICAL_LEADS)
        } - output_index.keys()
        source_rows, output_rows, ignored = [], [], []
        first_seen = {}
        for row, name in enumerate(record.lead_names):
            if not isinstance(name, str):
                raise ValueError(f"Lead names of {record.description} must be strings, got {name!r}.")
            key = _normalise_lead_name(name)
            if key in output_index:
                if key in first_seen:
                    raise ValueError(
                        f"Duplicate lead in {record.description}: {record.lead_names[first_seen[key]]!r} and {name!r} "
                        f"are both lead {self.lead_names[output_index[key]]!r} (names are case-insensitive); "
                        "expected each lead at most once."
                    )
                first_seen[key] = row
                source_rows.append(row)
                output_rows.append(output_index[key])
            elif key in ignorable:
                ignored.append(name)
            else:
                raise ValueError(
                    f"Unknown lead name {name!r} in {record.description}; expected one of {self.lead_names} "
                    f"(case-insensitive) or an ignored extra lead {sorted(ignorable)}."
                )
        if ignored:
            logger.debug(f"Ignoring the extra leads {ignored} of {record.description}.")
        if not source_rows:
            raise ValueError(
                f"None of the leads {record.lead_names} of {record.description} is one of {self.lead_names}."
            )
        return source_rows, output_rows

    def _clean_and_resample(self, record: _RawRecord) -> tuple[np.ndarray, np.ndarray, int, list[str]]:
        """Applies steps 1–4 (lead selection, NaN handling, resampling, band-pass) to one record.

        Returns:
            `tuple`: the signal of shape `(feature_size, n_resampled)` with zero rows for missing leads, the lead mask
            of shape `(feature_size,)` (int64), the number of non-finite samples that were filled, and the present
            leads whose finite samples are all equal (a flat line), by output lead name.
        """
        source_rows, output_rows = self._match_leads(record)
        signal = record.signal[source_rows]
        finite = np.isfinite(signal)
        has_data = finite.any(axis=1)
        if not has_data.any():
            raise ValueError(
                f"{record.description} has no finite sample in any of its leads {record.lead_names}; expected a "
                "signal that is not entirely NaN."
            )
        signal, finite = signal[has_data], finite[has_data]
        output_rows = np.asarray(output_rows)[has_data]
        nan_count = int(signal.size - np.count_nonzero(finite))
        given = np.where(finite, signal, np.nan) if nan_count else signal
        flat = np.nanmax(given, axis=1) == np.nanmin(given, axis=1)
        flat_leads = [self.lead_names[row] for row in output_rows[flat]]
        if nan_count:
            signal = self._fill_non_finite(signal, finite)

        up, down = _resampling_factors(record.sampling_rate, self.sampling_rate)
        if up != down:
            # "line" extrapolation needs two samples; a one-sample record is simply held constant.
            padtype = "line" if signal.shape[1] > 1 else "edge"
            signal = scipy_signal.resample_poly(signal, up, down, axis=1, padtype=padtype)
        if self.bandpass is not None:
            sos = _bandpass_sos(*self.bandpass, self.filter_order, float(self.sampling_rate))
            # Odd extension by one period of the low cut-off (scipy's default of a few samples leaves large edge
            # transients of a slow drift).
            padlen = min(round(self.sampling_rate / self.bandpass[0]), signal.shape[1] - 1)
            signal = scipy_signal.sosfiltfilt(sos, signal, axis=1, padlen=padlen)

        full = np.zeros((self.feature_size, signal.shape[1]))
        full[output_rows] = signal
        lead_mask = np.zeros(self.feature_size, dtype=np.int64)
        lead_mask[output_rows] = 1
        return full, lead_mask, nan_count, flat_leads

    def _fill_non_finite(self, signal: np.ndarray, finite: np.ndarray) -> np.ndarray:
        """Fills the non-finite samples of `signal` (shape `(n_leads, n_samples)`) according to `nan_policy`."""
        signal = signal.copy()
        if self.nan_policy == "zero":
            signal[~finite] = 0.0
            return signal
        positions = np.arange(signal.shape[1])
        for lead in np.flatnonzero(~finite.all(axis=1)):
            valid = finite[lead]
            signal[lead, ~valid] = np.interp(positions[~valid], positions[valid], signal[lead, valid])
        return signal

    def _row_layout(
        self, lengths: list[int], crop: str, return_windows: bool, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        """Chooses the output rows: the record each row comes from and its first sample.

        Args:
            lengths (`list[int]`): length of each resampled record.

        Returns:
            `tuple[np.ndarray, np.ndarray]`: `record_index` and `start`, both int64 of shape `(n_rows,)`.
        """
        record_index, starts = [], []
        for index, length in enumerate(lengths):
            spare = max(length - self.num_samples, 0)
            if return_windows:
                stride = self.window_stride or self.num_samples
                record_starts = list(range(0, spare + 1, stride))
                if record_starts[-1] != spare:
                    record_starts.append(spare)
            elif crop == "random":
                record_starts = [int(rng.integers(0, spare + 1))]
            else:
                record_starts = [spare // 2]
            record_index.extend([index] * len(record_starts))
            starts.extend(record_starts)
        return np.asarray(record_index, dtype=np.int64), np.asarray(starts, dtype=np.int64)

    def _scale(self, input_values: np.ndarray, lead_mask: np.ndarray, valid_length: np.ndarray):
        """Scales `input_values` (shape `(n_rows, n_leads, num_samples)`) in place, using only real samples.

        Args:
            lead_mask (`np.ndarray` of shape `(n_rows, n_leads)`): 1 for present leads.
            valid_length (`np.ndarray` of shape `(n_rows,)`): number of real (unpadded) samples of each row.
        """
        if self.scaling == "none":
            return
        real = (lead_mask[:, :, None] == 1) & (np.arange(self.num_samples) < valid_length[:, None])[:, None, :]
        axes = (2,) if self.scaling == "per_lead_zscore" else (1, 2)
        count = np.maximum(real.sum(axis=axes, keepdims=True), 1)
        mean = np.where(real, input_values, 0.0).sum(axis=axes, keepdims=True) / count
        centred = input_values - mean
        std = np.sqrt(np.where(real, centred**2, 0.0).sum(axis=axes, keepdims=True) / count)
        np.copyto(input_values, centred / np.maximum(std, _MIN_STD), where=real)


def _normalise_lead_name(name: str) -> str:
    """Case- and whitespace-insensitive key of a lead name (`" AVR"`, `"avr"` and `"aVR"` give `"avr"`)."""
    return name.strip().lower()


def _is_real_number(value) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


def _is_positive_number(value) -> bool:
    return _is_real_number(value) and bool(np.isfinite(value)) and value > 0


def _is_positive_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value > 0


def _is_path(value) -> bool:
    return isinstance(value, (str, os.PathLike))


def _is_array(value) -> bool:
    return isinstance(value, np.ndarray) or is_torch_tensor(value)


def _is_sequence_of_values(value) -> bool:
    return isinstance(value, (list, tuple)) or (isinstance(value, np.ndarray) and value.ndim == 1)


def _is_per_record_lead_names(lead_names) -> bool:
    """Whether `lead_names` is one list per record (rather than one list of names shared by all records)."""
    return isinstance(lead_names, (list, tuple)) and any(
        name is None or isinstance(name, (list, tuple)) for name in lead_names
    )


def _per_record(value, batch_size: int, argument: str, is_per_record: bool) -> list:
    """Broadcasts a call argument given once for all records to one value per record."""
    if not is_per_record:
        return [value] * batch_size
    if len(value) != batch_size:
        raise ValueError(
            f"`{argument}` has {len(value)} entries but `ecg` has {batch_size} records; expected one each."
        )
    return list(value)


def _nested_list_shape(nested) -> tuple[int, ...]:
    """The shape of a rectangular nested list, from the lengths of its first elements (without converting it); `()`
    for anything else, which the conversion then rejects."""
    shape = []
    while isinstance(nested, (list, tuple)):
        shape.append(len(nested))
        if not nested:
            break
        nested = nested[0]
    return tuple(shape)


def _to_float64_array(array, description: str) -> np.ndarray:
    """Converts a NumPy array, torch tensor or nested list to a float64 NumPy array. In a nested list, `None` (JSON's
    `null`, which is how JSON writers send NaN) is a missing sample, NaN, like a NaN in an array."""
    if is_torch_tensor(array):
        array = array.detach().cpu().double().numpy()
    given = array
    try:
        array = np.asarray(array)
    except (ValueError, OverflowError) as error:
        raise ValueError(f"{description} is not a rectangular numeric array: {error}") from error
    if array.dtype == object and isinstance(given, (list, tuple)):
        is_none = np.frompyfunc(lambda value: value is None, 1, 1)(array).astype(bool)
        if is_none.any():
            array = array.copy()
            array[is_none] = np.nan
            with contextlib.suppress(ValueError, TypeError, OverflowError):  # said below
                array = np.asarray(array.tolist())  # the type again: numbers, or text (refused below)
    if array.dtype == object:
        raise ValueError(
            f"{description} is not a rectangular array of numbers (a value is not a number, or too large for a "
            "64-bit float, e.g. 10**400); expected finite numbers."
        )
    if not (np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)):
        raise ValueError(f"{description} has dtype {array.dtype}; expected integer or floating-point samples.")
    return array.astype(np.float64, copy=False)


__all__ = ["MeritFeatureExtractor", "KNOWN_EXTRA_LEAD_NAMES", "WfdbHeader", "parse_wfdb_header", "read_wfdb_record"]
