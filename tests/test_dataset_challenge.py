"""CPSC2018 and Chapman-Shaoxing-Ningbo builder tests on trees generated in the Challenge layout."""

from collections import Counter

import numpy as np
import pandas as pd
import pytest
import wfdb
from dataset_layouts import CHALLENGE_LEAD_NAMES, random_digital_signal, write_challenge_record

from dataset_scripts import BadRecordError, get_class_names, physical_signal
from dataset_scripts.chapman import LABEL_TABLE as CHAPMAN_TABLE
from dataset_scripts.chapman import load_chapman
from dataset_scripts.cpsc2018 import LABEL_TABLE as CPSC_TABLE
from dataset_scripts.cpsc2018 import load_cpsc2018


CPSC_CLASSES = ["AF", "I-AVB", "LBBB", "Normal", "PAC", "PVC", "RBBB", "STD", "STE"]
CPSC_CODES = {
    "426783006": "Normal",
    "164889003": "AF",
    "270492004": "I-AVB",
    "164909002": "LBBB",
    "59118001": "RBBB",
    "284470004": "PAC",
    "164884008": "PVC",
    "429622005": "STD",
    "164931005": "STE",
}


@pytest.fixture(scope="module")
def cpsc_tree(tmp_path_factory):
    """45 records (five per class, some with two classes), 3-12 s long, in `g1/`, `g2/` ... folders."""
    root = tmp_path_factory.mktemp("cpsc_2018")
    rng = np.random.default_rng(0)
    codes = list(CPSC_CODES)
    records = {}
    for index in range(45):
        record_codes = [codes[index % 9]] + ([codes[(index + 4) % 9]] if index % 5 == 0 else [])
        signal = random_digital_signal(rng, 12, int(rng.integers(1500, 6000)))
        name = f"A{index + 1:04d}"
        folder = root / f"g{index // 20 + 1}"
        write_challenge_record(folder, name, record_codes, signal, age=str(30 + index), sex="Female")
        records[name] = (record_codes, signal)
    return root, records


@pytest.fixture(scope="module")
def cpsc(cpsc_tree, tmp_path_factory):
    root, _ = cpsc_tree
    return load_cpsc2018(root, cache_dir=tmp_path_factory.mktemp("cache"))


def all_rows(dataset):
    return {row["ecg_id"]: (split, row) for split, part in dataset.items() for row in part}


def test_cpsc_label_table_is_the_nine_challenge_codes():
    table = pd.read_csv(CPSC_TABLE, dtype=str)
    assert dict(zip(table["snomed_ct_code"], table["class_name"])) == CPSC_CODES


def test_cpsc_rows(cpsc, cpsc_tree):
    _root, records = cpsc_tree
    assert get_class_names(cpsc) == CPSC_CLASSES
    rows = all_rows(cpsc)
    assert sorted(rows) == sorted(records)
    for name, (codes, signal) in records.items():
        split, row = rows[name]
        names = [cpsc[split].features["labels"].feature.int2str(index) for index in row["labels"]]
        assert names == sorted(CPSC_CODES[code] for code in codes)
        assert row["multi_hot"] == [int(class_name in names) for class_name in CPSC_CLASSES]
        assert row["snomed_codes"] == codes
        assert row["lead_names"] == CHALLENGE_LEAD_NAMES
        assert (row["sex"], row["age"], row["sampling_rate"]) == ("female", 30.0 + int(name[1:]) - 1, 500)
        np.testing.assert_array_equal(np.asarray(row["signal"], dtype=np.int16), signal)


def test_cpsc_keeps_variable_lengths_and_matches_wfdb(cpsc, cpsc_tree):
    root, _records = cpsc_tree
    rows = all_rows(cpsc)
    lengths = {np.asarray(row["signal"]).shape[1] for _, row in rows.values()}
    assert len(lengths) > 10
    for name in ("A0001", "A0022", "A0045"):
        _, row = rows[name]
        expected, fields = wfdb.rdsamp(str(root / row["record_path"]))
        assert fields["sig_name"] == row["lead_names"]
        np.testing.assert_allclose(physical_signal(row), expected.T, atol=1e-6)


def test_cpsc_stratified_split_is_seeded_and_keeps_every_class(cpsc, cpsc_tree, tmp_path):
    root, _ = cpsc_tree
    sizes = {split: len(part) for split, part in cpsc.items()}
    assert sizes == {"train": 27, "validation": 9, "test": 9}  # 9 strata of 5 records: 3 / 1 / 1
    for part in cpsc.values():
        assert {label for labels in part["labels"] for label in labels} == set(range(9))
    again = load_cpsc2018(root, cache_dir=tmp_path / "again")
    assert {s: p["ecg_id"] for s, p in again.items()} == {s: p["ecg_id"] for s, p in cpsc.items()}
    reseeded = load_cpsc2018(root, cache_dir=tmp_path / "reseeded", seed=1)
    assert reseeded["test"]["ecg_id"] != cpsc["test"]["ecg_id"]


def test_cpsc_external_split_file(cpsc_tree, tmp_path):
    root, _ = cpsc_tree
    split_file = tmp_path / "split.csv"
    split_file.write_text("ecg_id,split\nA0001,test\nA0002,validation\nA0003,train\nA0004,train\n")
    dataset = load_cpsc2018(root, cache_dir=tmp_path / "cache", split_file=split_file)
    assert {split: part["ecg_id"] for split, part in dataset.items()} == {
        "train": ["A0003", "A0004"],
        "validation": ["A0002"],
        "test": ["A0001"],
    }


def write_bad_cpsc_tree(root):
    rng = np.random.default_rng(3)
    good = random_digital_signal(rng, 12, 3000)
    write_challenge_record(root, "A0001", ["426783006"], good)
    write_challenge_record(root, "A0002", ["426783006", "999999999"], good)  # code outside the nine
    write_challenge_record(root, "A0003", ["426783006"], good, declared_samples=3500)  # header/signal mismatch
    with_nan = good.astype(np.float64)
    with_nan[4, 10] = np.nan
    write_challenge_record(root, "A0004", ["164889003"], with_nan)  # float source with a NaN sample
    write_challenge_record(root, "A0005", ["164889003"], good)
    (root / "A0005.mat").unlink()  # missing signal file
    write_challenge_record(root, "A0006", ["164889003"], good)
    (root / "A0006.mat").write_bytes((root / "A0006.mat").read_bytes()[:4000])  # truncated
    return {
        "A0002": "SNOMED-CT codes ['999999999'] are not in the label table",
        "A0003": "header/signal length mismatch: header declares 3500 samples, file holds 3000",
        "A0004": "1 NaN/inf samples in leads ['aVL']",
        "A0005": "signal file not found",
        "A0006": "unreadable MATLAB file",
    }


def test_cpsc_bad_records_raise_naming_the_file(tmp_path):
    expected = write_bad_cpsc_tree(tmp_path / "data")
    for name, reason in expected.items():
        with pytest.raises(BadRecordError) as error:
            load_cpsc2018(tmp_path / "data", cache_dir=tmp_path / name, record_ids=["A0001", name])
        assert name in error.value.path and reason in str(error.value)


def test_cpsc_bad_records_are_skipped_and_counted(tmp_path):
    expected = write_bad_cpsc_tree(tmp_path / "data")
    dataset = load_cpsc2018(tmp_path / "data", cache_dir=tmp_path / "cache", skip_bad_records=True)
    assert [ecg_id for part in dataset.values() for ecg_id in part["ecg_id"]] == ["A0001"]
    skipped = {entry["path"].rsplit("/", 1)[-1][:5]: entry for entry in dataset.skipped_records}
    assert sorted(skipped) == sorted(expected)
    for name, reason in expected.items():
        assert reason in skipped[name]["reason"]
    assert skipped["A0002"]["split"] is None  # rejected while reading labels, before the split
    assert skipped["A0003"]["split"] in ("train", "validation", "test")  # rejected while decoding


def test_empty_and_missing_data_dir(tmp_path):
    with pytest.raises(ValueError, match="no WFDB headers"):
        load_cpsc2018(tmp_path, cache_dir=tmp_path / "cache")
    with pytest.raises(ValueError, match="is not a directory"):
        load_chapman(tmp_path / "nowhere", cache_dir=tmp_path / "cache")


# -- Chapman-Shaoxing-Ningbo ----------------------------------------------------------------------


def test_chapman_table_is_the_challenge_2021_scored_classes():
    table = pd.read_csv(CHAPMAN_TABLE, dtype=str)
    assert len(table) == 30 and table["snomed_ct_code"].is_unique
    assert table["class_name"].nunique() == 26
    merged = table.groupby("class_name")["snomed_ct_code"].apply(sorted).to_dict()
    assert merged["LBBB"] == ["164909002", "733534002"]
    assert merged["RBBB"] == ["59118001", "713427006"]
    assert merged["PAC"] == ["284470004", "63593006"]
    assert merged["PVC"] == ["17338001", "427172004"]


@pytest.fixture(scope="module")
def chapman_tree(tmp_path_factory):
    """The PhysioNet release layout: WFDBRecords/01/010/JS00001.hea ..."""
    root = tmp_path_factory.mktemp("ecg-arrhythmia")
    rng = np.random.default_rng(1)
    diagnoses = [
        ["426177001", "164934002"],  # SB, TAb
        ["164889003", "17338001"],  # AF, VPB -> PVC
        ["426783006"],  # NSR
        ["55827005"],  # left ventricular high voltage: not a scored class -> no label -> dropped
        ["427084000", "251199005", "59931005"],  # STach, (counterclockwise rotation: ignored), TInv
    ]
    for index in range(20):
        name = f"JS{index + 1:05d}"
        folder = root / "WFDBRecords" / "01" / f"01{index // 10}"
        write_challenge_record(folder, name, diagnoses[index % 5], random_digital_signal(rng, 12, 5000))
    (root / "RECORDS").write_text("WFDBRecords/01/010/\nWFDBRecords/01/011/\n")
    return root


def test_chapman_labels_ignore_unscored_codes_and_merge_equivalents(chapman_tree, tmp_path, caplog):
    with caplog.at_level("WARNING"):
        dataset = load_chapman(chapman_tree, cache_dir=tmp_path)
    assert len(get_class_names(dataset)) == 26
    rows = all_rows(dataset)
    assert len(rows) == 16  # the four records with only an unscored code are dropped
    assert "JS00004" not in rows

    def names(record):
        split, row = rows[record]
        return [dataset[split].features["labels"].feature.int2str(index) for index in row["labels"]]

    assert names("JS00001") == ["SB", "TAb"]
    assert names("JS00002") == ["AF", "PVC"]
    assert names("JS00005") == ["STach", "TInv"]
    assert rows["JS00005"][1]["snomed_codes"] == ["427084000", "251199005", "59931005"]
    assert "ignored 8 diagnoses whose SNOMED-CT codes are not in the label table" in caplog.text
    assert Counter(split for split, _ in rows.values()) == {"train": 8, "validation": 4, "test": 4}


def test_chapman_options(chapman_tree, tmp_path):
    kept = load_chapman(chapman_tree, cache_dir=tmp_path / "a", drop_unlabelled=False, record_ids=["JS00004"])
    row = kept["train"][0]
    assert row["labels"] == [] and sum(row["multi_hot"]) == 0
    with pytest.raises(BadRecordError, match=r"SNOMED-CT codes \['55827005'\] are not in the label table"):
        load_chapman(chapman_tree, cache_dir=tmp_path / "b", unknown_codes="error", record_ids=["JS00004"])
    table = tmp_path / "two_classes.csv"
    table.write_text("snomed_ct_code,class_name\n426177001,brady\n426783006,normal\n")
    custom = load_chapman(chapman_tree, cache_dir=tmp_path / "c", label_table=table)
    assert get_class_names(custom) == ["brady", "normal"]
    assert sum(len(part) for part in custom.values()) == 8
    with pytest.raises(ValueError, match="unknown_codes must be one of"):
        load_chapman(chapman_tree, cache_dir=tmp_path / "d", unknown_codes="warn")
