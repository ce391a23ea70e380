"""Writers of small fake ECG corpora in the exact official PhysioNet layouts, for the builder tests.

- MIMIC-IV-ECG: `record_list.csv`, `machine_measurements.csv` (all official columns) and
  `files/p1000/p10000032/s40689238/40689238.hea/.dat` written with `wfdb.wrsamp` (format 16,
  500 Hz, 5000 samples, lead order `I II III aVR aVF aVL V1..V6` as in the real headers).
- PhysioNet/CinC Challenge records (CPSC2018, Chapman): a MATLAB v4 `.mat` holding `val`
  (leads x time, int16) written with `scipy.io.savemat` and a header in the Challenge's form
  (`A0001.mat 16+24 1000/mV 16 0 <first> <checksum> 0 I`, `#Age:`, `#Sex:`, `#Dx:` ...).

The signals are seeded random integers: the tests compare the builders against `wfdb.rdsamp`.
"""

from __future__ import annotations

import csv
import datetime
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import scipy.io
import wfdb


MIMIC_LEAD_NAMES = ["I", "II", "III", "aVR", "aVF", "aVL", "V1", "V2", "V3", "V4", "V5", "V6"]
CHALLENGE_LEAD_NAMES = ["I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"]
MIMIC_MEASUREMENT_COLUMNS = (
    ["subject_id", "study_id", "cart_id", "ecg_time"]
    + [f"report_{index}" for index in range(18)]
    + ["bandwidth", "filtering", "rr_interval", "p_onset", "p_end", "qrs_onset", "qrs_end", "t_end"]
    + ["p_axis", "qrs_axis", "t_axis"]
)


def random_digital_signal(rng: np.random.Generator, n_leads: int, n_samples: int) -> np.ndarray:
    """Seeded int16 samples of shape `(n_leads, n_samples)`, away from the WFDB 'missing' value."""
    return rng.integers(-3000, 3000, size=(n_leads, n_samples)).astype(np.int16)


@dataclass
class MimicStudy:
    """One MIMIC-IV-ECG record: its ids and the `report_0 ...` statements (`None` = empty cell)."""

    subject_id: int
    study_id: int
    reports: Sequence[str | None] = field(default_factory=lambda: ["Sinus rhythm", "Normal ECG"])
    ecg_time: str = "2180-07-23 08:44:00"


def mimic_record_path(subject_id: int, study_id: int) -> str:
    """`files/p1000/p10000032/s40689238/40689238`: the official path (without extension)."""
    return f"files/p{str(subject_id)[:4]}/p{subject_id}/s{study_id}/{study_id}"


def write_mimic_tree(root: Path, studies: Sequence[MimicStudy], seed: int = 0) -> dict[int, np.ndarray]:
    """Writes a MIMIC-IV-ECG tree under `root`.

    Returns:
        `dict[int, np.ndarray]`: study_id -> the int16 digital signal `(12, 5000)` written.
    """
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    signals = {}
    with (
        open(root / "record_list.csv", "w", newline="") as list_file,
        open(root / "machine_measurements.csv", "w", newline="") as measurements_file,
    ):
        record_list = csv.writer(list_file)
        record_list.writerow(["subject_id", "study_id", "file_name", "ecg_time", "path"])
        measurements = csv.writer(measurements_file)
        measurements.writerow(MIMIC_MEASUREMENT_COLUMNS)
        for study in studies:
            path = mimic_record_path(study.subject_id, study.study_id)
            record_list.writerow([study.subject_id, study.study_id, study.study_id, study.ecg_time, path])
            reports = list(study.reports) + [None] * (18 - len(study.reports))
            measurements.writerow(
                [study.subject_id, study.study_id, 6848296, study.ecg_time]
                + ["" if part is None else part for part in reports]
                + ["0.005-150 Hz", "60 Hz notch Baseline filter", 659, 40, 128, 170, 258, 518, 81, 77, 79]
            )
            record_dir = root / Path(path).parent
            record_dir.mkdir(parents=True, exist_ok=True)
            signal = random_digital_signal(rng, 12, 5000)
            wfdb.wrsamp(
                str(study.study_id),
                fs=500,
                units=["mV"] * 12,
                sig_name=MIMIC_LEAD_NAMES,
                d_signal=signal.T.astype(np.int64),
                fmt=["16"] * 12,
                adc_gain=[200.0] * 12,
                baseline=[0] * 12,
                base_time=datetime.time(8, 44),
                base_date=datetime.date(2180, 7, 23),
                write_dir=str(record_dir),
            )
            signals[study.study_id] = signal
    return signals


def write_challenge_record(
    directory: Path,
    name: str,
    codes: Sequence[str],
    signal: np.ndarray,
    age: str = "74",
    sex: str = "Male",
    sampling_rate: int = 500,
    declared_samples: int | None = None,
) -> None:
    """Writes `name.mat` (MATLAB v4 `val`) and `name.hea` in the PhysioNet/CinC Challenge form.

    Args:
        signal (`np.ndarray`): `(12, n_samples)`; int16 as in the real files, or float to
            simulate float sources (e.g. with NaN samples).
        declared_samples (`int`, *optional*): the length written in the header (defaults to the
            true length; a different value simulates a header/signal mismatch).
    """
    directory.mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(directory / f"{name}.mat", {"val": signal}, format="4")
    n_samples = signal.shape[1] if declared_samples is None else declared_samples
    digital = np.nan_to_num(np.asarray(signal, dtype=np.float64)).astype(np.int64)
    lines = [f"{name} 12 {sampling_rate} {n_samples} 05-Feb-2020 11:39:16"]
    for lead, samples in zip(CHALLENGE_LEAD_NAMES, digital):
        checksum = int(samples.sum()) & 0xFFFF
        checksum = checksum - 0x10000 if checksum >= 0x8000 else checksum
        lines.append(f"{name}.mat 16+24 1000/mV 16 0 {samples[0]} {checksum} 0 {lead}")
    lines += [f"#Age: {age}", f"#Sex: {sex}", f"#Dx: {','.join(codes)}"]
    lines += ["#Rx: Unknown", "#Hx: Unknown", "#Sx: Unknown"]
    (directory / f"{name}.hea").write_text("\n".join(lines) + "\n")
