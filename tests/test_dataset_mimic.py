"""MIMIC-IV-ECG builder tests on a small tree generated in the official PhysioNet layout."""

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import wfdb
from dataset_layouts import MIMIC_LEAD_NAMES, MimicStudy, mimic_record_path, write_mimic_tree

from dataset_scripts import BadRecordError, get_class_names, physical_signal
from dataset_scripts.mimic_iv_ecg import build_report, load_mimic_iv_ecg


def make_studies():
    """24 subjects with 1-3 studies each, plus reports exercising every report rule."""
    studies = []
    study_id = 40000000
    for subject_index in range(24):
        subject_id = 10000032 + 1000 * subject_index
        for _ in range(1 + subject_index % 3):
            study_id += 17
            studies.append(MimicStudy(subject_id, study_id, ["Sinus rhythm", "Normal ECG", None, "Unconfirmed"]))
    # Special reports on the first subject's studies.
    studies[0].reports = ["  Sinus   rhythm. ", None, "", "Possible Left atrial abnormality", "Borderline ECG."]
    studies[1].reports = ["Normal ECG"]  # two words: dropped by the default min_words=4
    studies[2].reports = [None] * 18  # no report at all
    return studies


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("mimic-iv-ecg")
    studies = make_studies()
    signals = write_mimic_tree(root, studies)
    return root, studies, signals


@pytest.fixture(scope="module")
def pairs(tree, tmp_path_factory):
    root, _, _ = tree
    return load_mimic_iv_ecg(root, cache_dir=tmp_path_factory.mktemp("cache"), split_fractions=(0.6, 0.2, 0.2))


def all_rows(dataset):
    return {row["ecg_id"]: (split, row) for split, part in dataset.items() for row in part}


def test_layout_is_the_official_one(tree):
    root, studies, _ = tree
    first = studies[0]
    expected = f"files/p1000/p10000032/s{first.study_id}/{first.study_id}"
    assert mimic_record_path(first.subject_id, first.study_id) == expected
    assert (root / "record_list.csv").read_text().splitlines()[0] == "subject_id,study_id,file_name,ecg_time,path"
    header = (root / "machine_measurements.csv").read_text().splitlines()[0].split(",")
    assert header[:5] == ["subject_id", "study_id", "cart_id", "ecg_time", "report_0"] and "report_17" in header


def test_reports_are_built_and_short_ones_dropped(pairs, tree):
    _, studies, _ = tree
    rows = all_rows(pairs)
    assert rows[studies[0].study_id][1]["report"] == "sinus rhythm. possible left atrial abnormality. borderline ecg"
    assert studies[1].study_id not in rows and studies[2].study_id not in rows
    assert rows[studies[3].study_id][1]["report"] == "sinus rhythm. normal ecg. unconfirmed"
    assert len(rows) == len(studies) - 2


def test_leads_are_stored_as_in_the_header_with_avf_before_avl(pairs, tree):
    root, studies, signals = tree
    _, row = all_rows(pairs)[studies[0].study_id]
    assert row["lead_names"] == MIMIC_LEAD_NAMES
    assert row["lead_names"].index("aVF") < row["lead_names"].index("aVL")
    assert row["sampling_rate"] == 500 and row["adc_gain"] == [200.0] * 12 and row["baseline"] == [0] * 12
    np.testing.assert_array_equal(np.asarray(row["signal"]), signals[studies[0].study_id])
    expected, fields = wfdb.rdsamp(str(root / row["record_path"]))
    assert fields["sig_name"] == row["lead_names"]
    np.testing.assert_allclose(physical_signal(row), expected.T, atol=1e-6)


def test_split_by_subject_is_seeded_and_disjoint(pairs, tree, tmp_path):
    _, studies, _ = tree
    subject_of = {study.study_id: study.subject_id for study in studies}
    subjects = {split: {subject_of[ecg_id] for ecg_id in part["ecg_id"]} for split, part in pairs.items()}
    assert all(len(ids) > 0 for ids in subjects.values())
    assert not subjects["train"] & subjects["validation"]
    assert not subjects["train"] & subjects["test"]
    assert not subjects["validation"] & subjects["test"]
    for _split, part in pairs.items():
        assert part["patient_id"] == [subject_of[ecg_id] for ecg_id in part["ecg_id"]]
    root, _, _ = tree
    again = load_mimic_iv_ecg(root, cache_dir=tmp_path / "again", split_fractions=(0.6, 0.2, 0.2))
    assert {split: part["ecg_id"] for split, part in again.items()} == {s: p["ecg_id"] for s, p in pairs.items()}
    other_seed = load_mimic_iv_ecg(root, cache_dir=tmp_path / "seed", split_fractions=(0.6, 0.2, 0.2), seed=7)
    assert other_seed["test"]["ecg_id"] != pairs["test"]["ecg_id"]


def test_pairs_have_no_labels(pairs):
    assert "labels" not in pairs["train"].features and "multi_hot" not in pairs["train"].features
    assert get_class_names(pairs) == []


def test_report_options(tree, tmp_path):
    root, studies, _ = tree
    ids = [study.study_id for study in studies[:4]]
    dataset = load_mimic_iv_ecg(
        root,
        cache_dir=tmp_path,
        record_ids=ids,
        report_min_words=0,
        report_lowercase=False,
        report_separator=" | ",
        split_fractions=(1.0, 0.0, 0.0),
    )
    reports = dict(zip(dataset["train"]["ecg_id"], dataset["train"]["report"]))
    assert reports == {
        ids[0]: "Sinus rhythm | Possible Left atrial abnormality | Borderline ECG",
        ids[1]: "Normal ECG",
        ids[2]: "",
        ids[3]: "Sinus rhythm | Normal ECG | Unconfirmed",
    }


def test_build_report():
    parts = ["Sinus  rhythm", float("nan"), "  ", "Borderline ECG."]
    assert build_report(parts) == "sinus rhythm. borderline ecg"
    assert build_report(parts, min_words=5) == ""
    assert build_report(parts, lowercase=False, separator="; ", min_words=0) == "Sinus rhythm; Borderline ECG"
    assert build_report([], min_words=0) == ""


def test_external_split_file(tree, tmp_path):
    root, studies, _ = tree
    ids = [study.study_id for study in studies[3:9]]
    split_file = tmp_path / "splits.csv"
    assigned = zip(ids, ["train", "test", "validation", "train", "test"])
    split_file.write_text("ecg_id,split\n" + "".join(f"{ecg_id},{split}\n" for ecg_id, split in assigned))
    dataset = load_mimic_iv_ecg(root, cache_dir=tmp_path / "cache", record_ids=ids, split_file=split_file)
    assert dataset["train"]["ecg_id"] == [ids[0], ids[3]]
    assert dataset["validation"]["ecg_id"] == [ids[2]]
    assert dataset["test"]["ecg_id"] == [ids[1], ids[4]]  # ids[5] is not in the file: dropped


def test_bad_records(tree, tmp_path):
    _root, studies, _ = tree
    bad_root = tmp_path / "copy"
    kept = studies[3:7]
    write_mimic_tree(bad_root, kept, seed=1)
    missing = bad_root / (mimic_record_path(kept[0].subject_id, kept[0].study_id) + ".dat")
    missing.unlink()
    truncated = bad_root / (mimic_record_path(kept[1].subject_id, kept[1].study_id) + ".dat")
    truncated.write_bytes(truncated.read_bytes()[:1000])
    with pytest.raises(BadRecordError, match="signal file not found") as error:
        load_mimic_iv_ecg(bad_root, cache_dir=tmp_path / "a")
    assert error.value.path == str(missing)
    dataset = load_mimic_iv_ecg(
        bad_root, cache_dir=tmp_path / "b", skip_bad_records=True, split_fractions=(1.0, 0.0, 0.0)
    )
    assert sorted(dataset["train"]["ecg_id"]) == sorted(study.study_id for study in kept[2:])
    skipped_files = Counter(Path(entry["path"]).name for entry in dataset.skipped_records)
    assert skipped_files == Counter([missing.name, truncated.name])


def test_empty_data_dir(tmp_path):
    with pytest.raises(ValueError, match="record_list.csv not found"):
        load_mimic_iv_ecg(tmp_path, cache_dir=tmp_path / "cache")


# --------------------------------------------------------------------------------------------------------------------
# The synthetic corpus of benchmarks/bench_mimic_scale.py: the official layout, read by the builder and by wfdb.
# --------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("distinct_signals", [None, 4])
def test_the_synthetic_corpus_has_the_official_layout_and_loads(tmp_path, distinct_signals):
    import pandas as pd
    from dataset_layouts import MIMIC_MEASUREMENT_COLUMNS

    from dataset_scripts.mimic_iv_ecg.synthetic import write_synthetic_mimic_iv_ecg

    root = tmp_path / "mimic"
    stats = write_synthetic_mimic_iv_ecg(root, 60, seed=3, distinct_signals=distinct_signals, empty_report_rate=0.2)
    records = pd.read_csv(root / "record_list.csv")
    measurements = pd.read_csv(root / "machine_measurements.csv", dtype=str)
    assert list(records.columns) == ["subject_id", "study_id", "file_name", "ecg_time", "path"]
    assert list(measurements.columns) == MIMIC_MEASUREMENT_COLUMNS
    assert len(records) == 60 and records["study_id"].is_unique
    assert all(
        path == mimic_record_path(s, t) for s, t, path in zip(records.subject_id, records.study_id, records.path)
    )
    assert records.groupby("subject_id").size().max() > 1  # subjects with several studies
    no_report = measurements[[f"report_{i}" for i in range(18)]].isna().all(axis=1)
    assert no_report.sum() == stats["num_empty_reports"] > 0

    # wfdb, the reference reader, agrees with the files: 12 leads in MIMIC's order, 500 Hz x 10 s, gain 200
    first = wfdb.rdrecord(str(root / records.path[0]), physical=False)
    assert (first.fs, first.sig_len, first.sig_name, first.adc_gain[0]) == (500, 5000, MIMIC_LEAD_NAMES, 200.0)

    pairs = load_mimic_iv_ecg(root, cache_dir=tmp_path / "cache", report_min_words=0)  # checksums verified
    loaded = [row for split in pairs.values() for row in split]
    assert len(loaded) == 60
    by_id = {row["ecg_id"]: row for row in loaded}
    for study_id, path in zip(records.study_id[:5], records.path[:5]):
        digital = wfdb.rdrecord(str(root / path), physical=False).d_signal.T
        np.testing.assert_array_equal(np.asarray(by_id[study_id]["signal"]), digital)
    if distinct_signals is not None:  # records share 4 files through hard links
        inodes = {(root / f"{path}.dat").stat().st_ino for path in records.path}
        assert len(inodes) == 4 and stats["bytes_on_disk"] == 4 * 12 * 5000 * 2


def test_a_preparation_in_chunks_resumes_after_a_failure_and_equals_one_preparation(tmp_path):
    import shutil

    import pandas as pd

    from dataset_scripts.mimic_iv_ecg.synthetic import write_synthetic_mimic_iv_ecg

    root = tmp_path / "mimic"
    write_synthetic_mimic_iv_ecg(root, 40, seed=5, empty_report_rate=0.0)
    paths = pd.read_csv(root / "record_list.csv")["path"].tolist()
    broken = root / f"{paths[30]}.dat"  # in the third chunk of 12
    intact = broken.read_bytes()
    broken.write_bytes(intact[:1000])  # truncated: preparation stops there, as a kill would
    cache = tmp_path / "cache"
    with pytest.raises(BadRecordError, match="truncated"):
        load_mimic_iv_ecg(root, cache_dir=cache, chunk_records=12, report_min_words=0)
    finished = {path: path.stat().st_mtime_ns for path in cache.rglob("*.arrow") if ".incomplete" not in str(path)}
    assert len({path.parent for path in finished}) == 2  # the first two chunks are complete and cached

    broken.write_bytes(intact)
    chunked = load_mimic_iv_ecg(root, cache_dir=cache, chunk_records=12, report_min_words=0)
    assert all(path.stat().st_mtime_ns == mtime for path, mtime in finished.items())  # reused, not redone
    whole = load_mimic_iv_ecg(root, cache_dir=tmp_path / "cache-whole", report_min_words=0)
    for split in ("train", "validation", "test"):
        assert chunked[split]["ecg_id"] == whole[split]["ecg_id"]
        assert chunked[split]["report"] == whole[split]["report"]
    assert sum(len(part) for part in chunked.values()) == 40
    np.testing.assert_array_equal(np.asarray(chunked["train"][-1]["signal"]), np.asarray(whole["train"][-1]["signal"]))
    shutil.rmtree(cache)
    with pytest.raises(ValueError, match="chunk_records must be >= 1"):
        load_mimic_iv_ecg(root, cache_dir=cache, chunk_records=0)
