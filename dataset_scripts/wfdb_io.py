"""Fast, strict reading of single-segment WFDB records.

`wfdb.rdsamp` spends most of its ~4 ms per 12 x 5000 record on header parsing and generic
format handling. The ECG corpora used by MERIT store every record the same simple way (all
signals interleaved in one file, WFDB format 16 or 212, or a MATLAB v4 `.mat` in the
PhysioNet/CinC Challenge layout), so this module parses the header with plain string
operations and decodes the samples with numpy, which is roughly two orders of magnitude faster.

Every inconsistency (missing or truncated signal file, header/signal length mismatch, checksum
mismatch, missing samples) raises a [`BadRecordError`] naming the file, so that a builder can
either stop with a clear message or skip and count the record.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np
import scipy.io


# WFDB default ADC gain (units per physical unit) when the header gives none or 0.
DEFAULT_ADC_GAIN = 200.0
# The sample value WFDB reserves for "no data" (NaN in physical units), per storage format.
INVALID_SAMPLE_VALUE = {"16": -32768, "212": -2048}
# Physical units the headers of ECG corpora use, as the number of that unit in one millivolt.
UNITS_PER_MILLIVOLT = {"mv": 1.0, "uv": 1000.0, "μv": 1000.0, "µv": 1000.0, "v": 0.001}
SUPPORTED_FORMATS = ("16", "212")


class BadRecordError(ValueError):
    """A record whose files are missing, truncated or inconsistent.

    Args:
        path (`str`): the offending file (or record) path.
        reason (`str`): what is wrong with it.
    """

    def __init__(self, path: str | os.PathLike, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(self.path, reason)

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"

    def __reduce__(self):
        # Keep the two fields when the error crosses a process boundary (`num_proc` workers).
        return (type(self), (self.path, self.reason))


@dataclass
class WfdbHeader:
    """The parts of a WFDB header (`.hea`) that MERIT's builders use.

    Attributes:
        record_name (`str`): the record name of the first header line.
        sampling_rate (`float`): samples per second and signal.
        sig_len (`int` or `None`): samples per signal, `None` when the header omits it.
        file_names (`list[str]`): the signal file of each signal (relative to the header).
        fmts (`list[str]`): the WFDB storage format of each signal, e.g. `"16"`.
        byte_offsets (`list[int]`): bytes to skip at the start of each signal file.
        adc_gains (`list[float]`): ADC units per **millivolt** (converted from the header's units).
        baselines (`list[int]`): the ADC value of 0 mV.
        checksums (`list[int]` or `None`): the 16-bit sample checksums, `None` when absent.
        lead_names (`list[str]`): the signal descriptions exactly as written (e.g. `"AVF"`).
        comments (`list[str]`): the `#` comment lines, without the leading `#`, stripped.
    """

    record_name: str
    sampling_rate: float
    sig_len: int | None
    file_names: list[str] = field(default_factory=list)
    fmts: list[str] = field(default_factory=list)
    byte_offsets: list[int] = field(default_factory=list)
    adc_gains: list[float] = field(default_factory=list)
    baselines: list[int] = field(default_factory=list)
    checksums: list[int] | None = None
    lead_names: list[str] = field(default_factory=list)
    comments: list[str] = field(default_factory=list)

    @property
    def n_sig(self) -> int:
        return len(self.lead_names)


def _parse_gain(field_text: str, adc_zero: int, path: str) -> tuple[float, int]:
    """Parses `GAIN[(BASELINE)][/UNITS]` into (ADC units per mV, baseline)."""
    gain_text, _, units = field_text.partition("/")
    units = units or "mV"
    baseline = adc_zero
    if "(" in gain_text:
        gain_text, _, baseline_text = gain_text.partition("(")
        baseline = int(baseline_text.rstrip(")"))
    gain = float(gain_text) or DEFAULT_ADC_GAIN
    if not (np.isfinite(gain) and gain > 0):
        raise BadRecordError(path, f"ADC gain {gain_text!r}; expected a positive finite number (0: the default 200)")
    units_per_millivolt = UNITS_PER_MILLIVOLT.get(units.lower())
    if units_per_millivolt is None:
        raise BadRecordError(path, f"unsupported physical units {units!r}; expected one of mV, uV, V")
    return gain * units_per_millivolt, baseline


def parse_header(text: str, path: str = "<header>") -> WfdbHeader:
    """Parses the text of a single-segment WFDB header.

    Args:
        text (`str`): the content of a `.hea` file.
        path (`str`, *optional*): the file name used in error messages.

    Returns:
        [`WfdbHeader`]

    Raises:
        [`BadRecordError`]: when the header is malformed or describes a multi-segment record.
    """
    comments, lines = [], []
    for raw_line in text.splitlines():
        line = raw_line.strip()
        if not line:
            continue
        if line.startswith("#"):
            comments.append(line[1:].strip())
        else:
            lines.append(line)
    if not lines:
        raise BadRecordError(path, "empty header")
    record_fields = lines[0].split()
    if len(record_fields) < 2:
        raise BadRecordError(path, f"malformed record line {lines[0]!r}")
    if "/" in record_fields[0]:
        raise BadRecordError(path, "multi-segment records are not supported")
    try:
        n_sig = int(record_fields[1])
        sampling_rate = float(record_fields[2].split("/")[0]) if len(record_fields) > 2 else 250.0
        sig_len = int(record_fields[3]) if len(record_fields) > 3 else None
    except ValueError:
        raise BadRecordError(path, f"malformed record line {lines[0]!r}") from None
    if not (np.isfinite(sampling_rate) and sampling_rate > 0):
        raise BadRecordError(path, f"sampling rate {record_fields[2]!r}; expected a positive finite number of Hz")
    if len(lines) - 1 != n_sig:
        raise BadRecordError(path, f"header declares {n_sig} signals but describes {len(lines) - 1}")

    header = WfdbHeader(record_name=record_fields[0], sampling_rate=sampling_rate, sig_len=sig_len)
    checksums = []
    for line in lines[1:]:
        fields = line.split(maxsplit=8)
        try:
            fmt_text = fields[1]
            fmt_text, _, offset_text = fmt_text.partition("+")
            if "x" in fmt_text or ":" in fmt_text:
                raise BadRecordError(path, f"unsupported signal format {fields[1]!r} (samples per frame or skew)")
            adc_zero = int(fields[4]) if len(fields) > 4 else 0
            gain, baseline = _parse_gain(fields[2], adc_zero, path) if len(fields) > 2 else (DEFAULT_ADC_GAIN, 0)
            if len(fields) > 6:
                checksums.append(int(fields[6]))
        except BadRecordError:
            raise
        except (IndexError, ValueError):
            raise BadRecordError(path, f"malformed signal line {line!r}") from None
        header.file_names.append(fields[0])
        header.fmts.append(fmt_text)
        header.byte_offsets.append(int(offset_text) if offset_text else 0)
        header.adc_gains.append(gain)
        header.baselines.append(baseline)
        header.lead_names.append(fields[8] if len(fields) > 8 else "")
    header.checksums = checksums if len(checksums) == n_sig else None
    header.comments = comments
    return header


def read_header(path: str | os.PathLike) -> WfdbHeader:
    """Reads and parses a `.hea` file; see [`parse_header`].

    Raises:
        [`BadRecordError`]: when the file is missing or malformed.
    """
    try:
        with open(path, encoding="latin-1") as file:
            text = file.read()
    except FileNotFoundError:
        raise BadRecordError(path, "header file not found") from None
    return parse_header(text, str(path))


def _decode_212(raw: np.ndarray, n_samples: int) -> np.ndarray:
    """Unpacks WFDB format 212 (two 12-bit two's-complement samples in three bytes) to int16."""
    n_pairs = (n_samples + 1) // 2
    padded = np.zeros(n_pairs * 3, dtype=np.uint8)
    padded[: raw.size] = raw[: n_pairs * 3]
    triplets = padded.reshape(n_pairs, 3).astype(np.int16)
    samples = np.empty((n_pairs, 2), dtype=np.int16)
    samples[:, 0] = triplets[:, 0] | ((triplets[:, 1] & 0x0F) << 8)
    samples[:, 1] = triplets[:, 2] | ((triplets[:, 1] & 0xF0) << 4)
    samples[samples > 2047] -= 4096
    return samples.reshape(-1)[:n_samples]


def _read_dat(header: WfdbHeader, signal_path: str) -> np.ndarray:
    """Reads an interleaved format 16 / 212 signal file into int16 (leads, time)."""
    fmt = header.fmts[0]
    if fmt not in SUPPORTED_FORMATS:
        raise BadRecordError(signal_path, f"unsupported WFDB format {fmt!r}; supported: 16, 212, MATLAB v4 .mat")
    offset = header.byte_offsets[0]
    try:
        size = os.path.getsize(signal_path) - offset
    except FileNotFoundError:
        raise BadRecordError(signal_path, "signal file not found") from None
    n_sig = header.n_sig
    bytes_per_frame = 2 * n_sig if fmt == "16" else 1.5 * n_sig
    stored_frames = int(size // bytes_per_frame)
    sig_len = header.sig_len if header.sig_len is not None else stored_frames
    if stored_frames < sig_len:
        raise BadRecordError(
            signal_path, f"truncated: header declares {sig_len} samples per signal, file holds {stored_frames}"
        )
    if fmt == "16":
        expected_sizes = {2 * n_sig * sig_len}
    else:  # an odd final sample takes 2 bytes, or 3 when the writer pads the last pair
        expected_sizes = {(3 * n_sig * sig_len + 1) // 2, 3 * ((n_sig * sig_len + 1) // 2)}
    if size not in expected_sizes:
        expected_bytes = min(expected_sizes)
        raise BadRecordError(
            signal_path,
            f"header/signal length mismatch: header declares {sig_len} samples x {n_sig} signals "
            f"({expected_bytes} bytes), file holds {size} bytes",
        )
    if fmt == "16":
        flat = np.fromfile(signal_path, dtype="<i2", offset=offset)
    else:
        flat = _decode_212(np.fromfile(signal_path, dtype=np.uint8, offset=offset), n_sig * sig_len)
    return flat.reshape(sig_len, n_sig).T.astype(np.int16, copy=True)


def _read_mat(header: WfdbHeader, signal_path: str) -> np.ndarray:
    """Reads the `val` matrix (leads x time) of a Challenge-style MATLAB `.mat` file."""
    try:
        values = scipy.io.loadmat(signal_path)["val"]
    except FileNotFoundError:
        raise BadRecordError(signal_path, "signal file not found") from None
    except Exception as error:  # scipy raises several types for corrupt or truncated files
        raise BadRecordError(signal_path, f"unreadable MATLAB file ({error})") from None
    if values.ndim != 2 or values.shape[0] != header.n_sig:
        raise BadRecordError(signal_path, f"`val` has shape {values.shape}, header declares {header.n_sig} signals")
    if header.sig_len is not None and values.shape[1] != header.sig_len:
        raise BadRecordError(
            signal_path,
            f"header/signal length mismatch: header declares {header.sig_len} samples, file holds {values.shape[1]}",
        )
    if values.dtype.kind == "f":
        missing = ~np.isfinite(values)
        if missing.any():
            leads = sorted({header.lead_names[i] for i in np.nonzero(missing.any(axis=1))[0]})
            raise BadRecordError(signal_path, f"{int(missing.sum())} NaN/inf samples in leads {leads}")
        if not np.array_equal(values, np.round(values)):
            raise BadRecordError(signal_path, "non-integer samples; expected digital (ADC) values")
    if values.size and (values.min() < -32768 or values.max() > 32767):
        raise BadRecordError(signal_path, "samples outside the int16 range")
    return values.astype(np.int16)


def read_digital_signal(
    header: WfdbHeader, header_path: str | os.PathLike, verify_checksums: bool = True
) -> np.ndarray:
    """Reads the samples of a record exactly as stored (no gain or baseline applied).

    Args:
        header ([`WfdbHeader`]): the parsed header of the record.
        header_path (`str` or `os.PathLike`): the `.hea` path; signal files are resolved next to it.
        verify_checksums (`bool`, *optional*, defaults to `True`): compare each signal's 16-bit
            sample sum with the header's checksum when the header has one.

    Returns:
        `np.ndarray` of dtype int16 and shape `(n_sig, sig_len)`.

    Raises:
        [`BadRecordError`]: missing/truncated file, length mismatch, unsupported storage, missing
            (NaN) samples or a checksum mismatch.
    """
    if len(set(header.file_names)) != 1 or len(set(header.fmts)) != 1 or len(set(header.byte_offsets)) != 1:
        raise BadRecordError(header_path, "signals stored in several files or formats are not supported")
    signal_path = os.path.join(os.path.dirname(header_path), header.file_names[0])
    if signal_path.endswith(".mat"):
        signal = _read_mat(header, signal_path)
    else:
        signal = _read_dat(header, signal_path)
        invalid = signal == INVALID_SAMPLE_VALUE[header.fmts[0]]
        if invalid.any():
            leads = sorted({header.lead_names[i] for i in np.nonzero(invalid.any(axis=1))[0]})
            raise BadRecordError(signal_path, f"{int(invalid.sum())} missing (NaN) samples in leads {leads}")
    if verify_checksums and header.checksums is not None:
        sums = signal.sum(axis=1, dtype=np.int64) & 0xFFFF
        expected = np.asarray(header.checksums, dtype=np.int64) & 0xFFFF
        bad = np.nonzero(sums != expected)[0]
        if bad.size:
            raise BadRecordError(
                signal_path, f"checksum mismatch in leads {[header.lead_names[i] for i in bad]} (corrupt samples)"
            )
    return signal


def read_record(header_path: str | os.PathLike, verify_checksums: bool = True) -> tuple[WfdbHeader, np.ndarray]:
    """Reads a record's header and digital samples; see [`read_digital_signal`].

    Returns:
        `(header, signal)` with `signal` int16 of shape `(n_sig, sig_len)`.
    """
    header = read_header(header_path)
    return header, read_digital_signal(header, header_path, verify_checksums=verify_checksums)
