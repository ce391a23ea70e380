"""PTB-XL builder tests on the real 1,399-record sample shipped in data/ptbxl-sample."""

import shutil
from pathlib import Path

import datasets
import numpy as np
import pandas as pd
import pytest
import wfdb

from dataset_scripts import BadRecordError, export_to_parquet, get_class_names, physical_signal
from dataset_scripts.ptbxl import LABEL_SETS, PTBXL, TASKS, aggregate_labels, load_ptbxl
from dataset_scripts.ptbxl.labels import class_names


SAMPLE = Path(__file__).resolve().parents[1] / "data" / "ptbxl-sample"

# Hand-checked against ptbxl_database.csv (scp_codes, strat_fold) and scp_statements.csv:
#   1: fold 3,  {'NORM': 100.0, 'LVOLT': 0.0, 'SR': 0.0}
#   8: fold 9,  {'IMI': 35.0, 'ABQRS': 0.0, 'SR': 0.0}
#   9: fold 10, {'NORM': 100.0, 'SR': 0.0}
#  17: fold 9,  {'AFLT': 100.0, 'ABQRS': 0.0, 'AFIB': 0.0}                  (no diagnostic statement)
#  32: fold 1,  {'LPFB': 100.0, 'SR': 0.0}
#  39: fold 9,  {'IMI': 15.0, 'LNGQT': 100.0, 'NST_': 100.0, 'DIG': 100.0, 'ABQRS': 0.0, 'SR': 0.0}
EXPECTED_LABELS = {
    "superdiagnostic": {1: ["NORM"], 8: ["MI"], 9: ["NORM"], 17: [], 32: ["CD"], 39: ["MI", "STTC"]},
    "subdiagnostic": {1: ["NORM"], 8: ["IMI"], 9: ["NORM"], 17: [], 32: ["LAFB/LPFB"], 39: ["IMI", "NST_", "STTC"]},
    "diagnostic": {1: ["NORM"], 8: ["IMI"], 9: ["NORM"], 17: [], 32: ["LPFB"], 39: ["DIG", "IMI", "LNGQT", "NST_"]},
    "form": {1: ["LVOLT"], 8: ["ABQRS"], 9: [], 17: ["ABQRS"], 32: [], 39: ["ABQRS", "DIG", "LNGQT", "NST_"]},
    "rhythm": {1: ["SR"], 8: ["SR"], 9: ["SR"], 17: ["AFIB", "AFLT"], 32: ["SR"], 39: ["SR"]},
    "all": {
        1: ["LVOLT", "NORM", "SR"],
        8: ["ABQRS", "IMI", "SR"],
        9: ["NORM", "SR"],
        17: ["ABQRS", "AFIB", "AFLT"],
        32: ["LPFB", "SR"],
        39: ["ABQRS", "DIG", "IMI", "LNGQT", "NST_", "SR"],
    },
}
EXPECTED_SPLIT = {1: "train", 8: "validation", 9: "test", 17: "validation", 32: "train", 39: "validation"}
HAND_CHECKED = tuple(EXPECTED_SPLIT)


@pytest.fixture(scope="module")
def tables():
    return (
        pd.read_csv(SAMPLE / "ptbxl_database.csv", index_col="ecg_id"),
        pd.read_csv(SAMPLE / "scp_statements.csv", index_col=0),
    )


def rows_by_id(dataset):
    return {row["ecg_id"]: (split, row) for split, part in dataset.items() for row in part}


def label_names(dataset, split, row):
    return [dataset[split].features["labels"].feature.int2str(index) for index in row["labels"]]


# -- label sets ---------------------------------------------------------------------------------


def test_label_sets_match_the_statement_table(tables):
    _, statements = tables
    sizes = {"all": 71, "diagnostic": 44, "subdiagnostic": 23, "superdiagnostic": 5, "form": 19, "rhythm": 12}
    for task, size in sizes.items():
        assert len(LABEL_SETS[task]) == size
        assert list(LABEL_SETS[task]) == class_names(statements, task)
    assert LABEL_SETS["superdiagnostic"] == ("CD", "HYP", "MI", "NORM", "STTC")
    assert LABEL_SETS["pretraining"] == LABEL_SETS["all"]


@pytest.mark.parametrize("task", sorted(EXPECTED_LABELS))
def test_aggregate_labels_hand_checked_records(tables, task):
    database, statements = tables
    labels = aggregate_labels(database, statements, task)
    assert labels.index.equals(database.index)
    for ecg_id, expected in EXPECTED_LABELS[task].items():
        assert labels.loc[ecg_id] == expected


def test_aggregate_labels_accepts_tables_read_without_index(tables):
    database = pd.read_csv(SAMPLE / "ptbxl_database.csv")
    statements = pd.read_csv(SAMPLE / "scp_statements.csv")
    labels = aggregate_labels(database, statements, "subdiagnostic")
    indexed = aggregate_labels(*tables, "subdiagnostic")
    assert labels.tolist() == indexed.tolist()


def test_aggregate_labels_counts_every_code_whatever_its_likelihood(tables):
    database, statements = tables
    rhythm = aggregate_labels(database, statements, "rhythm")
    # SR carries likelihood 0.0 in almost every record; it must still count.
    assert sum("SR" in labels for labels in rhythm) > 300


def test_aggregate_labels_rejects_unknown_codes_and_tasks(tables):
    database, statements = tables
    broken = database.loc[[1, 2]].copy()
    broken.loc[2, "scp_codes"] = "{'NORM': 100.0, 'NOT_A_CODE': 0.0}"
    with pytest.raises(ValueError, match=r"record 2: unknown SCP statement codes \['NOT_A_CODE'\]"):
        aggregate_labels(broken, statements, "all")
    with pytest.raises(ValueError, match="unknown PTB-XL task 'superclass'"):
        aggregate_labels(database, statements, "superclass")


# -- builder on the full sample --------------------------------------------------------------------


@pytest.fixture(scope="module")
def superdiagnostic(tmp_path_factory):
    return load_ptbxl(SAMPLE, task="superdiagnostic", cache_dir=tmp_path_factory.mktemp("cache"))


def test_fold_to_split_membership(superdiagnostic, tables):
    database, statements = tables
    labels = aggregate_labels(database, statements, "superdiagnostic")
    kept = database[labels.map(len) > 0]
    expected_folds = {"train": set(range(1, 9)), "validation": {9}, "test": {10}}
    for split, folds in expected_folds.items():
        part = superdiagnostic[split]
        assert set(part["strat_fold"]) == folds
        assert sorted(part["ecg_id"]) == sorted(kept.index[kept["strat_fold"].isin(folds)])
    assert superdiagnostic.skipped_records == []


def test_class_list_is_identical_across_splits(superdiagnostic):
    names = get_class_names(superdiagnostic)
    assert names == ["CD", "HYP", "MI", "NORM", "STTC"]
    for part in superdiagnostic.values():
        assert part.features["labels"].feature.names == names
        assert part.features == superdiagnostic["train"].features


def test_rows_match_the_metadata_and_the_multi_hot(superdiagnostic, tables):
    database, _ = tables
    rows = rows_by_id(superdiagnostic)
    for ecg_id, expected_split in EXPECTED_SPLIT.items():
        if ecg_id == 17:  # no diagnostic statement: dropped from superdiagnostic
            assert ecg_id not in rows
            continue
        split, row = rows[ecg_id]
        assert split == expected_split
        names = label_names(superdiagnostic, split, row)
        assert names == EXPECTED_LABELS["superdiagnostic"][ecg_id]
        assert row["multi_hot"] == [int(name in names) for name in get_class_names(superdiagnostic)]
        assert row["patient_id"] == int(database.loc[ecg_id, "patient_id"])
        assert row["report"] == database.loc[ecg_id, "report"]
        assert row["strat_fold"] == database.loc[ecg_id, "strat_fold"]
    _, first = rows[1]
    assert (first["age"], first["sex"], first["sampling_rate"]) == (56.0, "female", 100)
    assert first["lead_names"] == ["I", "II", "III", "AVR", "AVL", "AVF", "V1", "V2", "V3", "V4", "V5", "V6"]


def test_signal_is_stored_as_int16_leads_by_time(superdiagnostic):
    part = superdiagnostic["train"]
    assert part.features["signal"] == datasets.Array2D(shape=(12, 1000), dtype="int16")
    stored = part.with_format("arrow")[:3]["signal"].combine_chunks().to_numpy(zero_copy_only=False)
    assert stored.dtype == np.int16 and stored.shape == (3, 12, 1000)
    raw = np.fromfile(SAMPLE / "records100/00000/00001_lr.dat", "<i2").reshape(1000, 12).T
    np.testing.assert_array_equal(stored[0], raw)


def test_signal_equals_wfdb_rdsamp_in_physical_units(superdiagnostic):
    part = superdiagnostic["train"].with_format("numpy")
    for index in (0, 1, 57, len(part) - 1):
        row = part[index]
        assert row["signal"].shape == (12, 1000)
        expected, fields = wfdb.rdsamp(str(SAMPLE / row["record_path"]))
        assert list(row["lead_names"]) == fields["sig_name"]
        np.testing.assert_allclose(physical_signal(row), expected.T, atol=1e-6)


# -- other label sets, rates and options on small subsets ------------------------------------------


@pytest.mark.parametrize("task", sorted(EXPECTED_LABELS) + ["pretraining"])
def test_each_label_set_on_hand_checked_records(tmp_path, task):
    dataset = load_ptbxl(SAMPLE, task=task, cache_dir=tmp_path, record_ids=HAND_CHECKED)
    rows = rows_by_id(dataset)
    expected = EXPECTED_LABELS["all" if task == "pretraining" else task]
    assert get_class_names(dataset) == list(LABEL_SETS[task])
    for ecg_id in HAND_CHECKED:
        if not expected[ecg_id] and task != "pretraining":
            assert ecg_id not in rows
            continue
        split, row = rows[ecg_id]
        assert split == EXPECTED_SPLIT[ecg_id]
        assert label_names(dataset, split, row) == expected[ecg_id]


def test_500_hz_records(tmp_path):
    dataset = load_ptbxl(SAMPLE, task="all", sampling_rate=500, cache_dir=tmp_path, record_ids=(1, 2, 9))
    row = dataset["test"].with_format("numpy")[0]
    assert row["ecg_id"] == 9 and row["sampling_rate"] == 500 and row["signal"].shape == (12, 5000)
    expected, _ = wfdb.rdsamp(str(SAMPLE / "records500/00000/00009_hr"))
    np.testing.assert_allclose(physical_signal(row), expected.T, atol=1e-6)


def test_parallel_preparation_gives_the_same_rows(tmp_path):
    ids = tuple(range(1, 41))
    serial = load_ptbxl(SAMPLE, task="form", cache_dir=tmp_path / "a", record_ids=ids)
    parallel = load_ptbxl(
        SAMPLE, task="form", cache_dir=tmp_path / "b", record_ids=ids, num_proc=2, records_per_shard=7
    )
    for split in serial:
        assert serial[split]["ecg_id"] == parallel[split]["ecg_id"]
        assert serial[split]["labels"] == parallel[split]["labels"]
        np.testing.assert_array_equal(
            serial[split].with_format("numpy")["signal"], parallel[split].with_format("numpy")["signal"]
        )


def test_prepared_size_is_close_to_raw_int16(superdiagnostic):
    part = superdiagnostic["train"]
    raw_bytes = part.num_rows * 12 * 1000 * 2
    arrow_bytes = sum(Path(file["filename"]).stat().st_size for file in part.cache_files)
    assert arrow_bytes <= 1.1 * raw_bytes


def test_sha256_verification(tmp_path):
    load_ptbxl(SAMPLE, cache_dir=tmp_path / "ok", record_ids=(1, 2, 3), verify_sha256=True)
    copy = copy_sample(tmp_path / "data", (1, 2, 3))
    dat = copy / "records100/00000/00002_lr.dat"
    data = bytearray(dat.read_bytes())
    data[100] ^= 0xFF
    dat.write_bytes(bytes(data))
    with pytest.raises(BadRecordError, match=r"00002_lr\.dat: SHA-256 mismatch"):
        load_ptbxl(copy, cache_dir=tmp_path / "bad", record_ids=(1, 2, 3), verify_sha256=True)


def test_invalid_options(tmp_path):
    with pytest.raises(ValueError, match="BuilderConfig 'superclass' not found"):
        load_ptbxl(SAMPLE, task="superclass", cache_dir=tmp_path)
    with pytest.raises(ValueError, match="sampling_rate must be 100 or 500"):
        load_ptbxl(SAMPLE, sampling_rate=250, cache_dir=tmp_path)
    with pytest.raises(ValueError, match=r"record_ids \[99999\] are not in"):
        load_ptbxl(SAMPLE, cache_dir=tmp_path, record_ids=(1, 99999))
    with pytest.raises(ValueError, match="needs `data_dir`"):
        PTBXL(cache_dir=str(tmp_path))


def test_parquet_export_round_trip(tmp_path):
    dataset = load_ptbxl(SAMPLE, task="superdiagnostic", cache_dir=tmp_path / "cache", record_ids=HAND_CHECKED)
    paths = export_to_parquet(dataset, tmp_path / "export", config_name="superdiagnostic")
    assert sorted(paths) == ["test", "train", "validation"]
    assert paths["train"] == tmp_path / "export" / "superdiagnostic" / "train-00000-of-00001.parquet"
    reloaded = datasets.load_dataset(
        "parquet", data_files={split: str(path) for split, path in paths.items()}, cache_dir=str(tmp_path / "hf")
    )
    for split in dataset:
        assert reloaded[split].features == dataset[split].features
        assert isinstance(reloaded[split].features["signal"], datasets.Array2D)
        np.testing.assert_array_equal(
            reloaded[split].with_format("numpy")["signal"], dataset[split].with_format("numpy")["signal"]
        )
    assert get_class_names(reloaded) == get_class_names(dataset)


# -- bad input ------------------------------------------------------------------------------------


def copy_sample(target: Path, ecg_ids) -> Path:
    """A writable copy of the CSVs and of the 100 Hz files of `ecg_ids`."""
    (target / "records100/00000").mkdir(parents=True)
    for name in ("ptbxl_database.csv", "scp_statements.csv", "SHA256SUMS.txt"):
        shutil.copyfile(SAMPLE / name, target / name)
    for ecg_id in ecg_ids:
        for suffix in (".hea", ".dat"):
            name = f"records100/00000/{ecg_id:05d}_lr{suffix}"
            shutil.copyfile(SAMPLE / name, target / name)
    return target


def break_record(data_dir: Path, ecg_id: int, problem: str) -> str:
    """Damages one record; returns the name of the file the error must mention."""
    base = data_dir / f"records100/00000/{ecg_id:05d}_lr"
    dat, hea = base.with_suffix(".dat"), base.with_suffix(".hea")
    if problem == "missing_dat":
        dat.unlink()
        return dat.name
    if problem == "truncated_dat":
        dat.write_bytes(dat.read_bytes()[:5000])
        return dat.name
    if problem == "length_mismatch":
        dat.write_bytes(dat.read_bytes() + bytes(24))  # one frame more than the header declares
        return dat.name
    if problem == "wrong_shape":
        hea.write_text(hea.read_text().replace(" 12 100 1000", " 12 100 999", 1))
        return hea.name
    if problem == "nan_samples":
        samples = np.fromfile(dat, dtype="<i2")
        samples[40] = -32768  # WFDB's "no sample" value: NaN in physical units
        samples.tofile(dat)
        return dat.name
    if problem == "corrupt_samples":
        samples = np.fromfile(dat, dtype="<i2")
        samples[40] += 1
        samples.tofile(dat)
        return dat.name
    if problem == "unknown_code":
        database = (data_dir / "ptbxl_database.csv").read_text()
        original = "{'NORM': 80.0, 'SBRAD': 0.0}"  # record 2
        assert ecg_id == 2 and original in database
        (data_dir / "ptbxl_database.csv").write_text(database.replace(original, "{'NORM': 80.0, 'XYZ': 0.0}", 1))
        return "ptbxl_database.csv"
    raise ValueError(problem)


EXPECTED_REASONS = {
    "missing_dat": "signal file not found",
    "truncated_dat": "truncated: header declares 1000 samples per signal, file holds 208",
    "length_mismatch": "header/signal length mismatch: header declares 1000 samples x 12 signals (24000 bytes), "
    "file holds 24024 bytes",
    "wrong_shape": "expected 12 signals x 1000 samples at 100 Hz, header declares 12 x 999 at 100 Hz",
    "nan_samples": "1 missing (NaN) samples in leads",
    "corrupt_samples": "checksum mismatch in leads",
    "unknown_code": "unknown SCP statement codes ['XYZ']",
}


@pytest.mark.parametrize("problem", sorted(EXPECTED_REASONS))
def test_bad_record_raises_naming_the_file(tmp_path, problem):
    data_dir = copy_sample(tmp_path / "data", (1, 2, 3))
    file_name = break_record(data_dir, 2, problem)
    with pytest.raises(BadRecordError) as error:
        load_ptbxl(data_dir, task="all", cache_dir=tmp_path / "cache", record_ids=(1, 2, 3))
    assert error.value.path.endswith(file_name)
    assert EXPECTED_REASONS[problem] in str(error.value)


def test_bad_records_are_skipped_counted_and_reported(tmp_path, caplog):
    ids = (1, 2, 3, 4, 5, 6, 7, 8)
    data_dir = copy_sample(tmp_path / "data", ids)
    problems = {2: "unknown_code", 3: "missing_dat", 4: "truncated_dat", 5: "nan_samples", 6: "length_mismatch"}
    problems[7] = "corrupt_samples"
    for ecg_id, problem in problems.items():
        break_record(data_dir, ecg_id, problem)
    with caplog.at_level("WARNING"):
        dataset = load_ptbxl(data_dir, task="all", cache_dir=tmp_path / "cache", record_ids=ids, skip_bad_records=True)
    assert sorted(ecg_id for part in dataset.values() for ecg_id in part["ecg_id"]) == [1, 8]
    skipped = dataset.skipped_records
    assert len(skipped) == len(problems)
    reasons = " ".join(entry["reason"] for entry in skipped)
    for problem in problems.values():
        assert EXPECTED_REASONS[problem] in reasons
    assert all(entry["split"] == "train" for entry in skipped)
    assert "skipped 6 bad records (train: 6)" in caplog.text
    # The report survives a reload from the cache, and worker processes report their skips too.
    again = load_ptbxl(data_dir, task="all", cache_dir=tmp_path / "cache", record_ids=ids, skip_bad_records=True)
    assert again.skipped_records == skipped
    parallel = load_ptbxl(
        data_dir,
        task="all",
        cache_dir=tmp_path / "parallel",
        record_ids=ids,
        skip_bad_records=True,
        num_proc=2,
        records_per_shard=2,
    )
    assert parallel.skipped_records == skipped
    with pytest.raises(BadRecordError, match="00003_lr.dat: signal file not found"):
        load_ptbxl(data_dir, cache_dir=tmp_path / "raise", record_ids=(1, 3, 7, 8), num_proc=2, records_per_shard=1)


def test_empty_data_dir(tmp_path):
    with pytest.raises(ValueError, match="ptbxl_database.csv not found"):
        load_ptbxl(tmp_path, cache_dir=tmp_path / "cache")
    with pytest.raises(ValueError, match="ptbxl_database.csv not found"):
        load_ptbxl(tmp_path, cache_dir=tmp_path / "cache", skip_bad_records=True)


def test_all_tasks_are_configs():
    assert [config.name for config in PTBXL.BUILDER_CONFIGS] == list(TASKS)


# -- records without a report, unknown patients, records at one rate only (ids 501-1499 of the sample) -----------------


def test_rows_without_a_report_are_kept_and_flagged(tmp_path):
    database = pd.read_csv(SAMPLE / "ptbxl_database.csv", index_col="ecg_id")
    without_report = database.index[database["report"].isna()]
    assert (
        len(database) == 1399
        and len(without_report) == 495
        and database.loc[without_report, "patient_id"].isna().all()
    )
    ids = (1, 501, int(without_report[0]), int(without_report[1]))
    dataset = load_ptbxl(SAMPLE, task="pretraining", cache_dir=tmp_path, record_ids=ids)
    rows = {row["ecg_id"]: row for split in dataset.values() for row in split}
    assert sorted(rows) == sorted(ids)
    for ecg_id in ids:
        original = database.loc[ecg_id, "report"]
        if isinstance(original, str):
            assert rows[ecg_id]["report"] == original.strip() and rows[ecg_id]["has_report"]
            assert rows[ecg_id]["patient_id"] == int(database.loc[ecg_id, "patient_id"])
        else:  # never invented: an empty report, flagged, and the patient unknown
            assert rows[ecg_id]["report"] == "" and not rows[ecg_id]["has_report"]
            assert rows[ecg_id]["patient_id"] == -1
            assert rows[ecg_id]["labels"]  # the real labels are there


def test_records_absent_at_the_requested_rate_are_skipped_and_counted(tmp_path, caplog):
    with caplog.at_level("WARNING", logger="dataset_scripts.ptbxl.ptbxl"):
        dataset = load_ptbxl(SAMPLE, task="all", sampling_rate=500, cache_dir=tmp_path)
    assert sum(len(split) for split in dataset.values()) == 20  # the only records shipped at 500 Hz
    assert "PTB-XL at 500 Hz: skipped 1379 of 1399 records whose filename_hr file is not in" in caplog.text


def test_a_changed_database_table_invalidates_the_cache(tmp_path):
    data_dir = copy_sample(tmp_path / "copy", (1, 2, 3))
    first = load_ptbxl(data_dir, task="pretraining", cache_dir=tmp_path / "cache", record_ids=(1, 2, 3))
    database = pd.read_csv(data_dir / "ptbxl_database.csv", index_col="ecg_id")
    database.loc[2, "report"] = "a corrected report"
    database.to_csv(data_dir / "ptbxl_database.csv")
    second = load_ptbxl(data_dir, task="pretraining", cache_dir=tmp_path / "cache", record_ids=(1, 2, 3))
    reports = {row["ecg_id"]: row["report"] for split in second.values() for row in split}
    assert reports[2] == "a corrected report"
    assert {row["ecg_id"]: row["report"] for split in first.values() for row in split}[2] != "a corrected report"
