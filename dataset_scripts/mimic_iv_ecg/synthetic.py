"""A synthetic corpus in the exact MIMIC-IV-ECG v1.0 layout, at any size, for measuring the data path at scale.

    python -m dataset_scripts.mimic_iv_ecg.synthetic /tmp/mimic-synthetic --num_records 50000

writes what [`MimicIVECG`](mimic_iv_ecg.py) reads from a real copy:

```
record_list.csv              subject_id, study_id, file_name, ecg_time, path
machine_measurements.csv     subject_id, study_id, cart_id, ecg_time, report_0 ... report_17, bandwidth, ... t_axis
files/p1000/p10000032/s40689238/40689238.hea / .dat      12 leads, 500 Hz x 10 s, format 16, gain 200/mV
```

The signals are not ECGs that mean anything (a periodic beat-like waveform per lead plus noise, int16); the reports
are drawn from machine-statement phrases in MIMIC's style with a heavy-tailed (Zipf) choice, so many reports repeat,
and `empty_report_rate` of the studies have no statement at all (the builder drops those). Neither distribution is
calibrated against the real corpus. Subjects have 1 to 9 studies (mean ~5, as MIMIC's ~800k ECGs of ~160k patients).

Speed: headers are written as text and samples with `numpy.ndarray.tofile` (no `wfdb`): tens of thousands of records
per minute. `distinct_signals` (default: one per record) caps the number of different `.dat` contents; records then
share a pool of files through hard links, so a 50k-record corpus needs ~0.2 GB instead of 6 GB of disk (reads then
come mostly from the page cache: faster than a cold disk).
"""

from __future__ import annotations

import argparse
import csv
import os
from pathlib import Path

import numpy as np


LEAD_NAMES = ["I", "II", "III", "aVR", "aVF", "aVL", "V1", "V2", "V3", "V4", "V5", "V6"]  # MIMIC's header order
SAMPLING_RATE = 500
NUM_SAMPLES = 5000
ADC_GAIN = 200.0
MEASUREMENT_COLUMNS = (
    ["subject_id", "study_id", "cart_id", "ecg_time"]
    + [f"report_{index}" for index in range(18)]
    + ["bandwidth", "filtering", "rr_interval", "p_onset", "p_end", "qrs_onset", "qrs_end", "t_end"]
    + ["p_axis", "qrs_axis", "t_axis"]
)
STATEMENTS = (
    "Sinus rhythm",
    "Normal ECG",
    "Borderline ECG",
    "Abnormal ECG",
    "Sinus tachycardia",
    "Sinus bradycardia",
    "Atrial fibrillation",
    "Atrial fibrillation with rapid ventricular response",
    "Left axis deviation",
    "Right axis deviation",
    "Low QRS voltages in limb leads",
    "Prolonged QT interval",
    "Left ventricular hypertrophy",
    "Right bundle branch block",
    "Left bundle branch block",
    "Incomplete right bundle branch block",
    "Left anterior fascicular block",
    "Possible anterior infarct - age undetermined",
    "Inferior infarct - age undetermined",
    "Septal infarct - age undetermined",
    "Nonspecific T wave abnormalities",
    "Nonspecific ST abnormality",
    "ST elevation, consider acute injury",
    "Anterolateral ST-T changes may be due to myocardial ischemia",
    "Premature ventricular contractions",
    "Premature atrial contractions",
    "1st degree A-V block",
    "Pacemaker rhythm - no further analysis",
    "Poor R wave progression - probable normal variant",
    "Lateral T wave changes are nonspecific",
    "Baseline wander",
    "Artifact in lead(s) V1 V2",
    "Probable left atrial enlargement",
    "Sinus arrhythmia",
    "Atrial flutter with variable A-V block",
    "Junctional rhythm",
    "Ventricular paced rhythm",
    "Inferior/lateral ST-T changes are probably due to ventricular hypertrophy",
    "Repolarization abnormality, possible digitalis effect",
    "Consider right ventricular hypertrophy",
)


def record_path(subject_id: int, study_id: int) -> str:
    """`files/p1000/p10000032/s40689238/40689238` (without extension): MIMIC-IV-ECG's path of a study."""
    return f"files/p{str(subject_id)[:4]}/p{subject_id}/s{study_id}/{study_id}"


def synthetic_signal(rng: np.random.Generator) -> np.ndarray:
    """int16 samples `(12, 5000)`: a beat-like periodic waveform per lead (random rate and amplitude) plus noise."""
    time = np.arange(NUM_SAMPLES) / SAMPLING_RATE
    rate = rng.uniform(0.8, 2.0)  # beats per second
    phase = (time * rate + rng.uniform()) % 1.0
    beat = np.exp(-(((phase - 0.3) / 0.015) ** 2)) - 0.2 * np.exp(-(((phase - 0.6) / 0.06) ** 2))
    amplitudes = rng.normal(1.0, 0.5, size=(12, 1))
    millivolts = amplitudes * beat + rng.normal(0.0, 0.03, size=(12, NUM_SAMPLES))
    return np.clip(np.round(millivolts * ADC_GAIN), -32767, 32767).astype(np.int16)


def header_text(study_id: int, signal: np.ndarray, ecg_time: str) -> str:
    """The WFDB header of one study, as MIMIC-IV-ECG writes it (format 16, gain 200/mV, checksums)."""
    date, clock = ecg_time.split(" ")
    year, month, day = date.split("-")
    lines = [f"{study_id} 12 {SAMPLING_RATE} {NUM_SAMPLES} {clock} {day}/{month}/{year}"]
    checksums = (signal.sum(axis=1, dtype=np.int64) & 0xFFFF).astype(np.uint16).view(np.int16)
    for lead, samples, checksum in zip(LEAD_NAMES, signal, checksums, strict=True):
        lines.append(f"{study_id}.dat 16 {ADC_GAIN:g}(0)/mV 16 0 {int(samples[0])} {int(checksum)} 0 {lead}")
    return "\n".join(lines) + "\n"


def report_statements(rng: np.random.Generator, empty_report_rate: float) -> list[str]:
    """0 to 6 machine statements of one study (none with probability `empty_report_rate`)."""
    if rng.uniform() < empty_report_rate:
        return []
    count = int(rng.choice([1, 2, 2, 3, 3, 3, 4, 4, 5, 6]))
    indices = np.minimum(rng.zipf(1.6, size=count) - 1, len(STATEMENTS) - 1)
    return list(dict.fromkeys(STATEMENTS[index] for index in indices))


def write_synthetic_mimic_iv_ecg(
    root: str | os.PathLike,
    num_records: int,
    seed: int = 0,
    distinct_signals: int | None = None,
    empty_report_rate: float = 0.02,
) -> dict:
    """
    Writes a synthetic MIMIC-IV-ECG copy of `num_records` studies under `root` (see the module docstring).

    Args:
        root (`str` or `os.PathLike`): the folder (created; must not hold a corpus already).
        num_records (`int`): studies to write.
        seed (`int`, *optional*, defaults to 0): everything is a function of it.
        distinct_signals (`int`, *optional*): at most this many different `.dat` files, shared through hard links
            (default: one per record).
        empty_report_rate (`float`, *optional*, defaults to 0.02): share of studies whose `report_*` are all empty.

    Returns:
        `dict` with `num_records`, `num_subjects`, `num_empty_reports` and `bytes_on_disk` (the distinct files).
    """
    root = Path(root)
    if num_records < 1:
        raise ValueError(f"num_records must be >= 1; got {num_records}.")
    if (root / "record_list.csv").exists():
        raise ValueError(f"{root} already holds a corpus (record_list.csv); write into an empty folder.")
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    pool_dir = root / ".signal-pool"
    num_subjects = max(1, round(num_records / 5))
    subject_ids = 10_000_000 + rng.choice(9_000_000, size=num_subjects, replace=False)
    study_subjects = subject_ids[rng.integers(0, num_subjects, size=num_records)]
    study_ids = 40_000_000 + rng.choice(10_000_000, size=num_records, replace=False)
    seconds = rng.integers(0, 20 * 365 * 86400, size=num_records)
    bytes_on_disk, empty = 0, 0
    pool_headers: dict[int, tuple[np.ndarray, Path]] = {}
    with (
        open(root / "record_list.csv", "w", newline="") as list_file,
        open(root / "machine_measurements.csv", "w", newline="") as measurements_file,
    ):
        record_list = csv.writer(list_file, lineterminator="\n")
        measurements = csv.writer(measurements_file, lineterminator="\n")
        record_list.writerow(["subject_id", "study_id", "file_name", "ecg_time", "path"])
        measurements.writerow(MEASUREMENT_COLUMNS)
        for index in range(num_records):
            subject_id, study_id = int(study_subjects[index]), int(study_ids[index])
            ecg_time = str(np.datetime64("2110-01-01T00:00:00") + np.timedelta64(int(seconds[index]), "s")).replace(
                "T", " "
            )
            path = record_path(subject_id, study_id)
            record_list.writerow([subject_id, study_id, study_id, ecg_time, path])
            statements = report_statements(rng, empty_report_rate)
            empty += not statements
            measurements.writerow(
                [subject_id, study_id, 6848296, ecg_time]
                + statements
                + [""] * (18 - len(statements))
                + ["0.005-150 Hz", "60 Hz notch Baseline filter"]
                + [int(value) for value in rng.integers(40, 1200, size=9)]
            )
            record_dir = root / os.path.dirname(path)
            record_dir.mkdir(parents=True, exist_ok=True)
            signal_file = record_dir / f"{study_id}.dat"
            if distinct_signals is None:
                signal = synthetic_signal(rng)
                signal.T.astype("<i2").tofile(signal_file)
                bytes_on_disk += signal.nbytes
            else:
                slot = index % distinct_signals
                if slot not in pool_headers:
                    pool_dir.mkdir(exist_ok=True)
                    pooled = synthetic_signal(rng)
                    pooled.T.astype("<i2").tofile(pool_dir / f"{slot}.dat")
                    pool_headers[slot] = (pooled, pool_dir / f"{slot}.dat")
                    bytes_on_disk += pooled.nbytes
                signal, pooled_file = pool_headers[slot]
                os.link(pooled_file, signal_file)
            (record_dir / f"{study_id}.hea").write_text(header_text(study_id, signal, ecg_time))
    return {
        "num_records": num_records,
        "num_subjects": len(np.unique(study_subjects)),
        "num_empty_reports": empty,
        "bytes_on_disk": bytes_on_disk,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("root", help="Output folder (created).")
    parser.add_argument("--num_records", type=int, default=50_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--distinct_signals", type=int, default=None, help="Share this many .dat files (hard links).")
    parser.add_argument("--empty_report_rate", type=float, default=0.02)
    args = parser.parse_args(argv)
    print(
        write_synthetic_mimic_iv_ecg(
            args.root, args.num_records, args.seed, args.distinct_signals, args.empty_report_rate
        )
    )


if __name__ == "__main__":
    main()
