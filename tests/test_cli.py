"""The `merit` console command (`merit_cli/`) on real PTB-XL records of the excerpt with tiny random checkpoints:
its outputs against the pipelines', input forms (WFDB, folders, globs, .npy, .csv), records that cannot be read,
resuming, and the help texts. Most tests run `main(argv)` in-process; one runs `python -m merit_cli`."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import wfdb
from checkpoint_helpers import save_tiny_dual_checkpoint, save_tiny_superclass_classifier

from merit_cli.main import main, package_version
from merit_cli.output import ResumableTable
from modeling_merit import (
    ECGClassificationPipeline,
    ECGFeatureExtractionPipeline,
    MeritForECGClassification,
    MeritModel,
    ZeroShotECGClassificationPipeline,
)


LABELS = ["normal ECG", "atrial fibrillation", "myocardial infarction"]
SUPERCLASSES = ["CD", "HYP", "MI", "NORM", "STTC"]
LIMB_LEADS = ["I", "II", "III", "aVR", "aVL", "aVF"]


@pytest.fixture(scope="module")
def dual_checkpoint(tmp_path_factory, processor):
    return str(save_tiny_dual_checkpoint(tmp_path_factory.mktemp("dual"), processor, seed=0))


@pytest.fixture(scope="module")
def classifier_checkpoint(tmp_path_factory, processor):
    """A classifier saved by the evaluation code, with validation thresholds (MI never positive)."""
    return str(save_tiny_superclass_classifier(tmp_path_factory.mktemp("classifier"), processor, seed=1))


@pytest.fixture(scope="module")
def dual_model(dual_checkpoint):
    return MeritModel.from_pretrained(dual_checkpoint).eval()


@pytest.fixture(scope="module")
def records(tmp_path_factory, ptbxl_sample_dir):
    """A folder of real records: three at 100 Hz, one at 500 Hz in a subfolder, and one with the limb leads only
    (the chest leads missing), written from a real record."""
    folder = tmp_path_factory.mktemp("records")
    for name in ("00001_lr", "00002_lr", "00003_lr"):
        for suffix in (".hea", ".dat"):
            shutil.copy(ptbxl_sample_dir / "records100" / "00000" / f"{name}{suffix}", folder)
    (folder / "hr").mkdir()
    for suffix in (".hea", ".dat"):
        shutil.copy(ptbxl_sample_dir / "records500" / "00000" / f"00004_hr{suffix}", folder / "hr")
    signal, fields = wfdb.rdsamp(str(ptbxl_sample_dir / "records100" / "00000" / "00005_lr"))
    header_names = [name.lower() for name in fields["sig_name"]]  # PTB-XL writes AVR, AVL, AVF
    rows = [header_names.index(lead.lower()) for lead in LIMB_LEADS]
    wfdb.wrsamp(
        "limb_only", fs=fields["fs"], units=["mV"] * len(rows), sig_name=[fields["sig_name"][row] for row in rows], p_signal=signal[:, rows],
        fmt=["16"] * len(rows), adc_gain=[1000.0] * len(rows), baseline=[0] * len(rows), write_dir=str(folder),
    )  # fmt: skip
    return folder


def record_paths(folder) -> list[str]:
    """The records of the `records` folder as the command names them (absolute header paths), sorted."""
    return sorted(str(path) for path in folder.rglob("*.hea"))


def run(argv, capsys) -> tuple[int, str]:
    status = main([str(argument) for argument in argv] + ["--quiet"])
    return status, capsys.readouterr().err


def by_path(frame: pd.DataFrame) -> dict:
    return {row["path"]: row for _, row in frame.iterrows()}


# ---------------------------------------------------------------------------------------------------------------
# Outputs equal to the pipelines'
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("projected", [False, True])
def test_embed_matches_the_feature_extraction_pipeline(projected, dual_checkpoint, dual_model, processor, records,
                                                       tmp_path, capsys):  # fmt: skip
    output = tmp_path / "embeddings.parquet"
    argv = ["embed", records, "--model", dual_checkpoint, "--output", output, "--batch_size", 2]
    status, err = run(argv + (["--projected"] if projected else []), capsys)
    assert status == 0, err
    frame = pd.read_parquet(output)
    assert sorted(frame["path"]) == record_paths(records) and len(frame) == 5
    pipe = ECGFeatureExtractionPipeline(model=dual_model, processor=processor, device=-1)
    rows = by_path(frame)
    for path in record_paths(records):
        expected = pipe(path[: -len(".hea")], embedding="projected" if projected else "pooled")
        np.testing.assert_allclose(rows[path]["embedding"], expected, rtol=1e-5, atol=1e-5)
    width = dual_model.config.projection_dim if projected else dual_model.config.ecg_config.hidden_size
    assert {len(embedding) for embedding in frame["embedding"]} == {width}

    limb = rows[str(records / "limb_only.hea")]
    assert list(limb["leads"]) == LIMB_LEADS and limb["record"] == "limb_only"
    high_rate = rows[str(records / "hr" / "00004_hr.hea")]
    assert high_rate["sampling_rate"] == 500.0 and high_rate["num_samples"] == 5000
    assert len(high_rate["leads"]) == 12 and rows[str(records / "00001_lr.hea")]["sampling_rate"] == 100.0
    assert "5 record(s) written" in err


def test_zero_shot_matches_the_pipeline(dual_checkpoint, dual_model, processor, records, tmp_path, capsys):
    output = tmp_path / "scores.csv"
    status, err = run(["zero-shot", records, "--model", dual_checkpoint, "--labels", *LABELS, "--output", output,
                       "--batch_size", 3], capsys)  # fmt: skip
    assert status == 0, err
    frame = pd.read_csv(output)
    assert list(frame.columns) == ["path", "record", "sampling_rate", "num_samples", "leads", *LABELS]
    pipe = ZeroShotECGClassificationPipeline(model=dual_model, processor=processor, device=-1)
    rows = by_path(frame)
    for path in record_paths(records):
        answer = {entry["label"]: entry["score"] for entry in pipe(path, candidate_labels=LABELS)}
        np.testing.assert_allclose([rows[path][label] for label in LABELS], [answer[label] for label in LABELS],
                                   rtol=0, atol=1e-6)  # fmt: skip
    assert rows[str(records / "limb_only.hea")]["leads"] == " ".join(LIMB_LEADS)
    status, err = run(["zero-shot", records, "--model", dual_checkpoint, "--labels", *LABELS, "--output", output],
                      capsys)  # fmt: skip
    assert status == 0 and "5 already there (skipped)" in err and pd.read_csv(output).equals(frame)

    # given prompts (as the evaluation uses them) instead of templates
    prompts = {"NORM": ["normal ECG", "sinus rhythm"], "AFIB": "atrial fibrillation"}
    (tmp_path / "prompts.json").write_text(json.dumps(prompts))
    status, err = run(["zero-shot", records / "00002_lr.hea", "--model", dual_checkpoint, "--prompts",
                       tmp_path / "prompts.json", "--output", tmp_path / "prompted.csv"], capsys)  # fmt: skip
    assert status == 0, err
    row = pd.read_csv(tmp_path / "prompted.csv").iloc[0]
    answer = {entry["label"]: entry["score"] for entry in pipe(str(records / "00002_lr"), candidate_labels=prompts)}
    assert row["NORM"] == pytest.approx(answer["NORM"], abs=1e-6) and row["AFIB"] == pytest.approx(answer["AFIB"])


def test_classification_matches_the_pipeline(classifier_checkpoint, processor, records, tmp_path, capsys):
    output = tmp_path / "predictions.csv"
    status, err = run(["ecg-classification", records, "--model", classifier_checkpoint, "--output", output], capsys)
    assert status == 0, err
    frame = pd.read_csv(output, keep_default_na=False)
    assert list(frame.columns)[5:] == [*SUPERCLASSES, "positive"]
    model = MeritForECGClassification.from_pretrained(classifier_checkpoint).eval()
    pipe = ECGClassificationPipeline(model=model, processor=processor, device=-1)
    rows = by_path(frame)
    for path in record_paths(records):
        answer = pipe(path)
        for entry in answer:
            assert rows[path][entry["label"]] == pytest.approx(entry["score"], abs=1e-6)
        positive = {entry["label"] for entry in answer if entry["positive"]}
        assert set(filter(None, rows[path]["positive"].split(";"))) == positive
        assert "MI" not in positive  # no validation threshold: never positive
    status, err = run(["ecg-classification", records, "--model", classifier_checkpoint, "--output", output], capsys)
    assert status == 0 and "0 record(s) written" in err and "5 already there" in err

    # a classifier does not do zero-shot classification: a wrong command line, status 2
    status, err = run(["zero-shot", records, "--model", classifier_checkpoint, "--labels", "x", "--output",
                       tmp_path / "x.csv"], capsys)  # fmt: skip
    assert status == 2 and "does not do `merit zero-shot`" in err and "merit ecg-classification" in err
    status = main(["export-onnx", "--model", classifier_checkpoint, "--output_dir", str(tmp_path / "onnx")])
    assert status == 2 and "exports a dual encoder" in capsys.readouterr().err and not (tmp_path / "onnx").exists()


def test_parallel_reading_gives_the_same_rows(dual_checkpoint, records, tmp_path, capsys):
    outputs = []
    for workers in (0, 2):
        output = tmp_path / f"workers-{workers}.parquet"
        status, err = run(["embed", records, "--model", dual_checkpoint, "--output", output, "--num_workers",
                           workers, "--batch_size", 2], capsys)  # fmt: skip
        assert status == 0, err
        outputs.append(pd.read_parquet(output))
    pd.testing.assert_frame_equal(outputs[0], outputs[1])


# ---------------------------------------------------------------------------------------------------------------
# Input forms
# ---------------------------------------------------------------------------------------------------------------


def test_npy_and_csv_inputs_give_the_wfdb_record_answer(dual_checkpoint, records, tmp_path, capsys):
    signal, fields = wfdb.rdsamp(str(records / "hr" / "00004_hr"))  # 500 Hz, (5000, 12)
    np.save(tmp_path / "as_array.npy", signal.T)
    np.save(tmp_path / "limbs_last.npy", signal[:, :6])  # (n_samples, n_leads): needs --channels_last
    time = np.arange(len(signal)) / fields["fs"]
    table = pd.DataFrame(signal, columns=fields["sig_name"])
    table.insert(0, "time", time)
    table.to_csv(tmp_path / "as_table.csv", index=False, float_format="%.6f")

    output = tmp_path / "embeddings.parquet"
    status, err = run(["embed", records / "hr" / "00004_hr", tmp_path / "as_array.npy", tmp_path / "as_table.csv",
                       "--sampling_rate", 500, "--model", dual_checkpoint, "--output", output], capsys)  # fmt: skip
    assert status == 0, err
    rows = by_path(pd.read_parquet(output))
    wfdb_row = rows[str(records / "hr" / "00004_hr.hea")]
    for name in ("as_array.npy", "as_table.csv"):
        row = rows[str(tmp_path / name)]
        assert row["sampling_rate"] == 500.0 and row["num_samples"] == 5000 and len(row["leads"]) == 12
        np.testing.assert_allclose(row["embedding"], wfdb_row["embedding"], atol=1e-5)
    assert rows[str(tmp_path / "as_table.csv")]["record"] == "as_table"

    output = tmp_path / "limbs.parquet"
    status, err = run(["embed", tmp_path / "limbs_last.npy", "--sampling_rate", 500, "--channels_last",
                       "--lead_names", *LIMB_LEADS, "--model", dual_checkpoint, "--output", output], capsys)  # fmt: skip
    assert status == 0, err
    assert list(pd.read_parquet(output)["leads"][0]) == LIMB_LEADS

    # without --sampling_rate a .npy file cannot be read: listed with the processor's message, nothing written
    status, err = run(["embed", tmp_path / "as_array.npy", "--model", dual_checkpoint, "--output",
                       tmp_path / "none.parquet"], capsys)  # fmt: skip
    assert status == 1 and "`sampling_rate` is required" in err and not (tmp_path / "none.parquet").exists()


def test_globs_and_record_names(dual_checkpoint, records, tmp_path, capsys):
    output = tmp_path / "embeddings.parquet"
    status, err = run(["embed", f"{records}/**/*_hr.hea", f"{records}/0000[12]_lr.dat", records / "00003_lr",
                       f"{records}/nothing-*.hea", "--model", dual_checkpoint, "--output", output], capsys)  # fmt: skip
    assert status == 0, err
    assert list(pd.read_parquet(output)["record"]) == ["00004_hr", "00001_lr", "00002_lr", "00003_lr"]
    assert "nothing-*.hea: the pattern matches no record" in err
    errors = pd.read_csv(tmp_path / "embeddings.parquet.errors.csv")
    assert list(errors["path"]) == [f"{records}/nothing-*.hea"]


# ---------------------------------------------------------------------------------------------------------------
# Records that cannot be read, resuming
# ---------------------------------------------------------------------------------------------------------------


def write_truncated_record(folder, ptbxl_sample_dir) -> str:
    """A real record whose signal file is cut short; returns its header path."""
    source = ptbxl_sample_dir / "records100" / "00000"
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(source / "00010_lr.hea", folder)
    (folder / "00010_lr.dat").write_bytes((source / "00010_lr.dat").read_bytes()[:5000])
    return str(folder / "00010_lr.hea")


def write_unreadable_records(folder, ptbxl_sample_dir) -> list[str]:
    """A truncated signal file, a header that is not one, a header without its signal file, a CSV without lead names.

    Returns:
        the paths the command names them by.
    """
    truncated = write_truncated_record(folder, ptbxl_sample_dir)
    (folder / "garbage.hea").write_text("this is not a WFDB header\n")
    shutil.copy(ptbxl_sample_dir / "records100" / "00000" / "00011_lr.hea", folder)
    (folder / "numbers.csv").write_text("1,2,3\n4,5,6\n")
    return [truncated] + [str(folder / name) for name in ("00011_lr.hea", "garbage.hea", "numbers.csv")]


def test_an_unreadable_record_is_listed_and_the_others_are_written(dual_checkpoint, records, ptbxl_sample_dir,
                                                                   tmp_path, capsys):  # fmt: skip
    folder = tmp_path / "mixed"
    shutil.copytree(records, folder)
    truncated = write_truncated_record(folder / "broken", ptbxl_sample_dir)
    output = tmp_path / "embeddings.parquet"
    status, err = run(["embed", folder, "--model", dual_checkpoint, "--output", output], capsys)
    assert status == 0, err
    frame = pd.read_parquet(output)
    assert len(frame) == 5 and truncated not in set(frame["path"])
    errors = pd.read_csv(tmp_path / "embeddings.parquet.errors.csv")
    assert list(errors["path"]) == [truncated]
    assert "Could not read the WFDB record" in errors["error"][0]
    assert "1 could not be read" in err and truncated in err


def test_nothing_readable_exits_non_zero(dual_checkpoint, ptbxl_sample_dir, tmp_path, capsys):
    paths = write_unreadable_records(tmp_path / "bad", ptbxl_sample_dir)
    output = tmp_path / "scores.csv"
    status, err = run(["zero-shot", tmp_path / "bad", "--model", dual_checkpoint, "--labels", *LABELS, "--output",
                       output], capsys)  # fmt: skip
    assert status == 1 and "nothing was read" in err
    assert not output.exists()
    assert sorted(pd.read_csv(tmp_path / "scores.csv.errors.csv")["path"]) == sorted(paths)
    assert "must start with a header row of lead names" in err

    status, err = run(["embed", tmp_path / "missing-folder", "--model", dual_checkpoint, "--output",
                       tmp_path / "e.parquet"], capsys)  # fmt: skip
    assert status == 1 and "no such file or WFDB record" in err


def test_a_second_run_skips_done_records_and_gives_the_same_table(dual_checkpoint, records, tmp_path, capsys):
    output = tmp_path / "embeddings.parquet"
    argv = ["--model", dual_checkpoint, "--output", output, "--batch_size", 2]
    status, err = run(["embed", records / "00001_lr.hea", records / "00003_lr.hea", *argv], capsys)
    assert status == 0 and "2 record(s) written" in err
    status, err = run(["embed", records, *argv], capsys)
    assert status == 0 and "3 record(s) written" in err and "2 already there (skipped)" in err
    resumed = pd.read_parquet(output)
    status, err = run(["embed", records, *argv], capsys)
    assert status == 0 and "0 record(s) written" in err and "5 already there" in err
    pd.testing.assert_frame_equal(pd.read_parquet(output), resumed)

    fresh = tmp_path / "fresh.parquet"
    assert run(["embed", records, "--model", dual_checkpoint, "--output", fresh], capsys)[0] == 0
    expected = pd.read_parquet(fresh).set_index("path").sort_index()
    got = resumed.set_index("path").sort_index()
    assert list(got.index) == list(expected.index) == record_paths(records)
    for path in expected.index:
        np.testing.assert_allclose(got.loc[path, "embedding"], expected.loc[path, "embedding"], atol=1e-5)
    pd.testing.assert_frame_equal(got.drop(columns="embedding"), expected.drop(columns="embedding"))

    # other settings do not mix into the same output
    status, err = run(["embed", records, "--projected", *argv], capsys)
    assert status == 2 and "Cannot resume" in err and "--overwrite" in err
    status, err = run(["embed", records / "00002_lr.hea", "--projected", "--overwrite", *argv], capsys)
    assert status == 0 and len(pd.read_parquet(output)) == 1


def test_warnings_about_a_record_name_its_file(dual_checkpoint, ptbxl_sample_dir, tmp_path, capsys):
    """Filled samples and flat leads are warned about with the path of the record (with worker processes too)."""
    signal, _ = wfdb.rdsamp(str(ptbxl_sample_dir / "records100" / "00000" / "00001_lr"))
    gappy, flat = signal.T.copy(), signal.T.copy()
    gappy[2, 100:110] = np.nan
    flat[4] = 0.0
    folder = tmp_path / "arrays"
    folder.mkdir()
    np.save(folder / "gappy.npy", gappy)
    np.save(folder / "flat.npy", flat)
    argv = ["embed", folder, "--model", dual_checkpoint, "--sampling_rate", 100, "--num_workers", 2]
    status, err = run([*argv, "--output", tmp_path / "out.csv"], capsys)
    assert status == 0 and "2 record(s) written" in err
    assert f"warning: {folder / 'gappy.npy'}: Filled non-finite samples (interpolate)" in err
    assert f"warning: {folder / 'flat.npy'}: The record has leads that are a flat line: ['aVL']" in err
    assert err.count("warning:") == 2


def test_rate_and_lead_names_given_for_wfdb_records_are_said_to_be_unused(dual_checkpoint, records, tmp_path, capsys):
    argv = ["embed", records / "00001_lr.hea", "--model", dual_checkpoint, "--sampling_rate", 500]
    status, err = run([*argv, "--output", tmp_path / "given.csv"], capsys)
    assert status == 0 and "not used: --sampling_rate by WFDB records" in err and "--lead_names" not in err
    status, err = run([*argv[:4], "--output", tmp_path / "plain.csv"], capsys)
    assert status == 0 and "not used" not in err
    assert pd.read_csv(tmp_path / "given.csv")["embedding"].equals(pd.read_csv(tmp_path / "plain.csv")["embedding"])


def test_a_csv_output_keeps_its_settings_beside_it(dual_checkpoint, records, tmp_path, capsys):
    output = tmp_path / "scores.csv"
    settings_file = tmp_path / "scores.csv.settings.json"
    argv = ["zero-shot", records, "--model", dual_checkpoint, "--labels", *LABELS[:2], "--output", output]
    assert run(argv, capsys)[0] == 0
    settings = json.loads(settings_file.read_text())
    assert settings["command"] == "zero-shot" and sorted(settings["prompts"]) == sorted(LABELS[:2])
    status, err = run(argv, capsys)
    assert status == 0 and "5 already there" in err
    scores = pd.read_csv(output)

    # the same columns with other prompts: refused, the table unchanged
    status, err = run([*argv, "--hypothesis_template", "an ECG showing {}"], capsys)
    assert status == 2 and "Cannot resume" in err and "an ECG showing" in err and "--overwrite" in err
    pd.testing.assert_frame_equal(pd.read_csv(output), scores)
    # without its settings file a CSV output cannot be checked, so it is not added to
    settings_file.unlink()
    status, err = run(argv, capsys)
    assert status == 2 and "cannot be checked" in err and "scores.csv.settings.json" in err
    status, err = run([*argv, "--hypothesis_template", "an ECG showing {}", "--overwrite"], capsys)
    assert status == 0 and "5 record(s) written" in err
    assert json.loads(settings_file.read_text())["prompts"]["normal ECG"] == ["an ECG showing normal ECG"]


def test_a_model_and_an_output_under_the_home_folder(dual_checkpoint, records, tmp_path, capsys, monkeypatch):
    """`--model=~/...` reaches the command unexpanded (the shell expands `~` only at the start of a word)."""
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "checkpoint").symlink_to(dual_checkpoint, target_is_directory=True)
    status, err = run(["embed", records / "00001_lr.hea", "--model=~/checkpoint", "--output=~/out.csv"], capsys)
    assert status == 0 and (tmp_path / "out.csv").is_file(), err


def test_warnings_are_captured_alone_and_the_loggers_restored():
    import logging

    from merit_cli.inputs import captured_warnings

    logger = logging.getLogger("modeling_merit.feature_extraction_merit")
    seen = []

    class Seen(logging.Handler):
        def emit(self, record):
            seen.append(record.getMessage())

    own = Seen()
    logger.addHandler(own)
    try:
        with captured_warnings() as notes:
            logger.warning("a   note\n on two lines")
        logger.warning("after")
    finally:
        logger.removeHandler(own)
    assert notes == ["a note on two lines"] and seen == ["after"] and logger.propagate


def test_a_model_path_that_is_not_a_checkpoint_is_named_plainly(records, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    (tmp_path / "weights.bin").write_bytes(b"")
    for model, message in (
        (tmp_path / "missing", "does not exist: there is no such folder"),
        ("./missing-checkpoint", "does not exist: there is no such folder"),
        (tmp_path / "empty", "is a folder without a config.json"),
        (tmp_path / "weights.bin", "is a file; expected a model folder or a Hub id"),
    ):
        status, err = run(["embed", records, "--model", model, "--output", tmp_path / "out.csv"], capsys)
        assert status == 2 and message in err, err
    # a path that could be a Hub id is tried as one (offline here), and the message says it is no local folder
    status, err = run(
        ["embed", records, "--model", "outputs/no-such-checkpoint", "--output", tmp_path / "o.csv"], capsys
    )
    assert status == 2 and "is not a local folder, and as a Hub id it could not be loaded" in err


def test_an_output_that_cannot_be_written_is_refused_before_any_work(dual_checkpoint, records, tmp_path, capsys,
                                                                      monkeypatch):  # fmt: skip
    import merit_cli.batch

    def load_pipeline(*args, **kwargs):
        raise AssertionError("the model was loaded before the output was checked")

    monkeypatch.setattr(merit_cli.batch, "load_pipeline", load_pipeline)
    (tmp_path / "scores.csv").write_text("a file\n")
    (tmp_path / "folder.csv").mkdir()
    for output, message in (
        (tmp_path / "scores.csv" / "x.csv", "is a file, not a folder"),
        (tmp_path / "folder.csv", "is a folder"),
        (tmp_path / "scores.txt", "must end in .parquet or .csv"),
    ):
        status, err = run(["embed", records, "--model", dual_checkpoint, "--output", output], capsys)
        assert status == 2 and message in err, err


def test_an_interrupted_run_keeps_its_rows_and_the_next_run_finishes(dual_checkpoint, records, tmp_path, capsys,
                                                                      monkeypatch):  # fmt: skip
    import merit_cli.batch

    added = []
    original_add = ResumableTable.add

    def add_then_interrupt(table, rows):
        original_add(table, rows)
        added.append(len(rows))
        if len(added) == 2:
            raise KeyboardInterrupt  # Ctrl-C after the second batch

    monkeypatch.setattr(merit_cli.batch.ResumableTable, "add", add_then_interrupt)
    output = tmp_path / "embeddings.parquet"
    argv = ["embed", records, "--model", dual_checkpoint, "--output", output, "--batch_size", 2]
    status, err = run(argv, capsys)
    assert status == 130 and "run the same command again" in err
    assert len(pd.read_parquet(output)) == 4 and not output.with_name("embeddings.parquet.partial").exists()

    monkeypatch.setattr(merit_cli.batch.ResumableTable, "add", original_add)
    status, err = run(argv, capsys)
    assert status == 0 and "1 record(s) written" in err and "4 already there" in err
    assert sorted(pd.read_parquet(output)["path"]) == record_paths(records)


def test_rows_of_a_killed_run_are_kept_and_written_once(tmp_path):
    schema = pa.schema([pa.field("path", pa.string()), pa.field("score", pa.float64())])
    output = tmp_path / "scores.csv"
    first = ResumableTable(output, schema, {"command": "test"})
    first.add([{"path": "a", "score": 0.25}, {"path": "b", "score": 0.5}])
    first.flush()  # the process is killed here: the rows are in a part file only
    assert not output.exists() and len(list(first.parts_dir.glob("part-*.parquet"))) == 1

    second = ResumableTable(output, schema, {"command": "test"})
    assert second.done == {"a", "b"}
    second.add([{"path": "c", "score": 0.75}])
    second.flush()
    shutil.copytree(second.parts_dir, tmp_path / "parts-before-finalize")
    second.finalize()
    assert pd.read_csv(output)["path"].tolist() == ["a", "b", "c"] and not second.parts_dir.exists()

    # killed between the rename of the output and the removal of its parts: the parts repeat rows of the output
    shutil.copytree(tmp_path / "parts-before-finalize", second.parts_dir)
    third = ResumableTable(output, schema, {"command": "test"})
    assert third.done == {"a", "b", "c"}
    third.add([{"path": "d", "score": 1.0}])
    third.finalize()
    assert pd.read_csv(output).to_dict("list") == {"path": ["a", "b", "c", "d"], "score": [0.25, 0.5, 0.75, 1.0]}

    with pytest.raises(ValueError, match="its columns are"):
        ResumableTable(output, pa.schema([pa.field("path", pa.string())]), {"command": "test"})
    with pytest.raises(ValueError, match=r"`--output` must end in \.parquet or \.csv"):
        ResumableTable(tmp_path / "scores.txt", schema, {})


# ---------------------------------------------------------------------------------------------------------------
# Help, version, the installed command
# ---------------------------------------------------------------------------------------------------------------


def test_help_and_version(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for command in ("embed", "zero-shot", "ecg-classification", "export-onnx"):
        assert command in text
    with pytest.raises(SystemExit):
        main(["embed", "--help"])
    text = capsys.readouterr().out
    for phrase in ("--projected", "--num_workers", "OUT.errors.csv", "glob patterns", "exit status"):
        assert phrase in text
    with pytest.raises(SystemExit):
        main(["zero-shot", "--help"])
    assert "(1 + cosine) / 2" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0 and capsys.readouterr().out.strip() == f"merit {package_version()} (merit-ecg)"
    with pytest.raises(SystemExit) as exit_info:
        main(["embed", "x.hea", "--output", "x.parquet"])  # --model missing
    assert exit_info.value.code == 2 and "--model" in capsys.readouterr().err


@pytest.mark.slow
def test_python_m_merit_cli_runs_the_command(dual_checkpoint, records, repo_root, tmp_path):
    output = tmp_path / "scores.csv"
    environment = {**os.environ, "PYTHONPATH": str(repo_root), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    completed = subprocess.run(
        [sys.executable, "-m", "merit_cli", "zero-shot", str(records / "00001_lr.hea"), "--model", dual_checkpoint,
         "--labels", "normal ECG", "--output", str(output)],
        env=environment, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr
    assert "1 record(s) written" in completed.stderr
    assert list(pd.read_csv(output).columns)[-1] == "normal ECG"


@pytest.mark.slow
def test_export_onnx_command_gives_the_embed_command_numbers(dual_checkpoint, processor, records, tmp_path, capsys):
    import onnxruntime

    output_dir = tmp_path / "onnx"
    assert main(["export-onnx", "--model", dual_checkpoint, "--output_dir", str(output_dir), "--int8"]) == 0
    printed = capsys.readouterr().out
    assert "ecg_encoder" in printed and "max |ONNX Runtime - PyTorch|" in printed
    for name in ("ecg_encoder.onnx", "ecg_encoder.int8.onnx", "text_encoder.onnx", "preprocessing.json"):
        assert str(output_dir / name) in printed and (output_dir / name).is_file()

    output = tmp_path / "embeddings.parquet"
    status, err = run(["embed", records, "--model", dual_checkpoint, "--output", output, "--projected", "--normalize"],
                      capsys)  # fmt: skip
    assert status == 0, err
    rows = by_path(pd.read_parquet(output))
    paths = record_paths(records)
    inputs = processor(ecg=[path[: -len(".hea")] for path in paths], return_tensors="np")
    session = onnxruntime.InferenceSession(str(output_dir / "ecg_encoder.onnx"), providers=["CPUExecutionProvider"])
    _, embedding = session.run(["pooled", "embedding"], {"input_values": inputs["input_values"],
                                                         "lead_mask": inputs["lead_mask"].astype(np.int64)})  # fmt: skip
    np.testing.assert_allclose(embedding, np.stack([rows[path]["embedding"] for path in paths]), atol=1e-4)

    status = main(["export-onnx", "--model", str(tmp_path / "no-checkpoint"), "--output_dir", str(output_dir)])
    assert status == 2 and "does not exist: there is no such folder" in capsys.readouterr().err
