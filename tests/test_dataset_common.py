"""Tests of the shared WFDB decoding, row helpers, splitting and integrity checks of dataset_scripts."""

import pickle
from collections import Counter
from pathlib import Path

import datasets
import numpy as np
import pytest
import wfdb

from dataset_scripts import BadRecordError, get_class_names, physical_signal
from dataset_scripts.common import (
    ecg_features,
    group_split,
    read_sha256sums,
    read_split_file,
    sha256_file,
    stratified_split,
)
from dataset_scripts.wfdb_io import parse_header, read_record


SAMPLE = Path(__file__).resolve().parents[1] / "data" / "ptbxl-sample"
FRACTIONS = {"train": 0.7, "validation": 0.1, "test": 0.2}


# -- WFDB decoding --------------------------------------------------------------------------------


@pytest.mark.parametrize("n_samples", [101, 100])  # odd and even sample counts (format 212 packs pairs)
def test_format_212_matches_wfdb(tmp_path, n_samples):
    rng = np.random.default_rng(0)
    digital = rng.integers(-2000, 2000, size=(n_samples, 3))
    wfdb.wrsamp(
        "rec212",
        fs=250,
        units=["mV"] * 3,
        sig_name=["I", "II", "V1"],
        d_signal=digital,
        fmt=["212"] * 3,
        adc_gain=[200.0] * 3,
        baseline=[5, -3, 0],
        write_dir=str(tmp_path),
    )
    header, signal = read_record(tmp_path / "rec212.hea")
    assert signal.dtype == np.int16 and signal.shape == (3, n_samples)
    np.testing.assert_array_equal(signal, digital.T)
    expected, _ = wfdb.rdsamp(str(tmp_path / "rec212"))
    row = {"signal": signal, "baseline": header.baselines, "adc_gain": header.adc_gains}
    np.testing.assert_allclose(physical_signal(row), expected.T, atol=1e-6)


def test_microvolt_headers_are_converted_to_units_per_millivolt(tmp_path):
    digital = np.arange(-50, 50).reshape(50, 2)
    wfdb.wrsamp(
        "uv",
        fs=500,
        units=["uV", "uV"],
        sig_name=["I", "II"],
        d_signal=digital,
        fmt=["16", "16"],
        adc_gain=[2.0, 2.0],
        baseline=[0, 0],
        write_dir=str(tmp_path),
    )
    header, signal = read_record(tmp_path / "uv.hea")
    assert header.adc_gains == [2000.0, 2000.0]
    expected_microvolts, _ = wfdb.rdsamp(str(tmp_path / "uv"))
    row = {"signal": signal, "baseline": header.baselines, "adc_gain": header.adc_gains}
    np.testing.assert_allclose(physical_signal(row), expected_microvolts.T / 1000, atol=1e-7)


def test_header_parsing_matches_wfdb_rdheader():
    path = SAMPLE / "records100/00000/00001_lr"
    header, _ = read_record(str(path) + ".hea")
    reference = wfdb.rdheader(str(path))
    assert header.lead_names == reference.sig_name
    assert header.adc_gains == reference.adc_gain
    assert header.baselines == reference.baseline
    assert header.checksums == reference.checksum
    assert (header.sampling_rate, header.sig_len, header.n_sig) == (reference.fs, reference.sig_len, reference.n_sig)


def test_header_errors():
    with pytest.raises(BadRecordError, match="header declares 2 signals but describes 1"):
        parse_header("rec 2 500 10\nrec.dat 16 200/mV 16 0 0 0 0 I\n", "rec.hea")
    with pytest.raises(BadRecordError, match="multi-segment"):
        parse_header("rec/2 12 500 5000\n")
    with pytest.raises(BadRecordError, match="unsupported physical units 'mmHg'"):
        parse_header("rec 1 500 10\nrec.dat 16 200/mmHg 16 0 0 0 0 I\n")
    with pytest.raises(BadRecordError, match="empty header"):
        parse_header("# only a comment\n")
    for rate in ("-500", "nan", "0", "inf"):  # never read at a nonsense rate
        with pytest.raises(BadRecordError, match=f"sampling rate '{rate}'; expected a positive finite"):
            parse_header(f"rec 1 {rate} 10\nrec.dat 16 200/mV 16 0 0 0 0 I\n")
    for gain in ("-200", "nan"):
        with pytest.raises(BadRecordError, match=f"ADC gain '{gain}'; expected a positive finite"):
            parse_header(f"rec 1 500 10\nrec.dat 16 {gain}/mV 16 0 0 0 0 I\n")


def test_missing_header_names_the_file(tmp_path):
    with pytest.raises(BadRecordError, match="nothing.hea: header file not found"):
        read_record(tmp_path / "nothing.hea")


def test_bad_record_error_survives_pickling():
    error = pickle.loads(pickle.dumps(BadRecordError("a/b.dat", "truncated")))
    assert (error.path, error.reason, str(error)) == ("a/b.dat", "truncated", "a/b.dat: truncated")


# -- row helpers ----------------------------------------------------------------------------------


def test_physical_signal_accepts_lists_and_arrays():
    row = {"signal": [[1000, 2000], [0, -500]], "baseline": [0, -100], "adc_gain": [1000.0, 200.0]}
    expected = np.array([[1.0, 2.0], [0.5, -2.0]], dtype=np.float32)
    np.testing.assert_array_equal(physical_signal(row), expected)
    as_arrays = {key: np.asarray(value) for key, value in row.items()}
    assert physical_signal(as_arrays).dtype == np.float32
    with pytest.raises(ValueError, match="one baseline and gain per lead"):
        physical_signal({**row, "baseline": [0]})


def test_get_class_names():
    features = ecg_features(n_samples=10, class_names=["A", "B"], id_dtype="int32")
    empty = {name: [] for name in features}
    part = datasets.Dataset.from_dict(empty, features=features)
    assert get_class_names(features) == get_class_names(part) == ["A", "B"]
    assert get_class_names(datasets.DatasetDict(train=part, test=part)) == ["A", "B"]
    other_features = ecg_features(n_samples=10, class_names=["A", "C"], id_dtype="int32")
    other = datasets.Dataset.from_dict(empty, features=other_features)
    with pytest.raises(ValueError, match="splits disagree on the class list"):
        get_class_names(datasets.DatasetDict(train=part, test=other))
    assert get_class_names(ecg_features(n_samples=10, class_names=None, id_dtype="int32")) == []
    with pytest.raises(ValueError, match="must be sorted and unique"):
        ecg_features(n_samples=10, class_names=["B", "A"], id_dtype="int32")


# -- splitting ------------------------------------------------------------------------------------


def test_group_split_keeps_groups_together_and_follows_fractions():
    groups = [index // 3 for index in range(30000)]
    splits = group_split(groups, FRACTIONS, seed=0)
    by_group = {}
    for group, split in zip(groups, splits):
        assert by_group.setdefault(group, split) == split
    shares = Counter(by_group.values())
    for split, fraction in FRACTIONS.items():
        assert abs(shares[split] / len(by_group) - fraction) < 0.02
    assert group_split(groups, FRACTIONS, seed=0) == splits
    assert group_split(groups, FRACTIONS, seed=1) != splits
    # Adding records does not move existing groups.
    assert group_split(groups[:300], FRACTIONS, seed=0) == splits[:300]


def test_stratified_split_follows_fractions_and_keeps_rare_classes():
    rng = np.random.default_rng(0)
    ids = [f"R{index:05d}" for index in range(2000)]
    labels = [["common"] + (["rare"] if index % 200 == 0 else []) for index in range(2000)]
    labels = [sorted(set(item) | ({"mid"} if rng.random() < 0.2 else set())) for item in labels]
    splits = stratified_split(ids, labels, FRACTIONS, seed=0)
    counts = Counter(splits)
    for split, fraction in FRACTIONS.items():
        assert abs(counts[split] / len(ids) - fraction) < 0.01
    rare_splits = Counter(split for split, item in zip(splits, labels) if "rare" in item)
    assert rare_splits == {"train": 7, "validation": 1, "test": 2}
    assert stratified_split(ids, labels, FRACTIONS, seed=0) == splits
    assert stratified_split(ids, labels, FRACTIONS, seed=1) != splits


def test_split_argument_errors(tmp_path):
    with pytest.raises(ValueError, match="must sum to 1"):
        group_split([1], {"train": 0.5, "validation": 0.1, "test": 0.1}, seed=0)
    with pytest.raises(ValueError, match="non-negative value for each of"):
        stratified_split(["a"], [["x"]], {"train": 1.0}, seed=0)
    bad = tmp_path / "split.csv"
    bad.write_text("ecg_id,split\n1,train\n2,holdout\n")
    with pytest.raises(ValueError, match=r"unknown splits \['holdout'\]"):
        read_split_file(bad)
    bad.write_text("ecg_id,split\n1,train\n1,test\n")
    with pytest.raises(ValueError, match="more than once"):
        read_split_file(bad)
    bad.write_text("record,fold\n1,train\n")
    with pytest.raises(ValueError, match="must have columns `ecg_id` and `split`"):
        read_split_file(bad)


# -- integrity ------------------------------------------------------------------------------------


def test_shipped_sha256sums_verify_the_sample():
    sums = read_sha256sums(SAMPLE / "SHA256SUMS.txt")
    assert len(sums) == 240 + 2 * 999  # records 1-100 (100 Hz) and 1-20 (500 Hz), then every file of ids 501-1499
    for name in (
        "records100/00000/00001_lr.dat",
        "records100/00000/00100_lr.hea",
        "records500/00000/00020_hr.dat",
        "records100/00000/00501_lr.dat",
        "records100/01000/01499_lr.hea",
    ):
        assert sha256_file(SAMPLE / name) == sums[name]
