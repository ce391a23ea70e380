# Copyright 2026 The MERIT authors.
# Licensed under the Apache License, Version 2.0.
"""Label-fraction sampling, distribution shifts, zero-shot prompts and the results/model-card helpers, on the real
PTB-XL sample shipped in the repository."""

import ast
import json
import logging
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import wfdb

from dataset_scripts.ptbxl.descriptions import (
    PTBXL_SUBCLASS_DESCRIPTIONS,
    PTBXL_SUPERCLASS_DESCRIPTIONS,
    ptbxl_class_descriptions,
)
from merit_evaluation.label_fractions import sample_label_fraction
from merit_evaluation.metrics import MetricValue, compute_classification_metrics
from merit_evaluation.prompts import DEFAULT_TEMPLATES, build_class_prompts, load_prompts_file
from merit_evaluation.results import (
    RESULTS_START_MARKER,
    ResultRow,
    read_results,
    results_to_markdown,
    update_model_card,
    write_results,
)
from merit_evaluation.shifts import SEVERITIES, SHIFTS, apply_shift


PTBXL_SAMPLE = Path(__file__).resolve().parents[1] / "data" / "ptbxl-sample"


@pytest.fixture(scope="module")
def scp_statements():
    return pd.read_csv(PTBXL_SAMPLE / "scp_statements.csv", index_col=0)


@pytest.fixture(scope="module")
def ecg_500hz():
    """Records 1-4 at 500 Hz in mV, shape (4, 12, 5000)."""
    records = [wfdb.rdsamp(str(PTBXL_SAMPLE / "records500" / "00000" / f"{i:05d}_hr"))[0].T for i in range(1, 5)]
    return np.stack(records).astype(np.float32)


def ptbxl_train_multi_hot(scp_statements, label_set):
    """Multi-hot labels of the sample's training folds (1-8) for a label set, records without a label dropped."""
    database = pd.read_csv(PTBXL_SAMPLE / "ptbxl_database.csv", index_col="ecg_id")
    database = database[database["strat_fold"] <= 8]
    diagnostic = scp_statements[scp_statements["diagnostic"] == 1]
    column = {"superdiagnostic": "diagnostic_class", "subdiagnostic": "diagnostic_subclass"}[label_set]
    classes = sorted(diagnostic[column].unique())
    rows = []
    for codes in database["scp_codes"].map(ast.literal_eval):
        present = {diagnostic.at[code, column] for code in codes if code in diagnostic.index}
        rows.append([int(name in present) for name in classes])
    labels = np.array(rows)
    return labels[labels.sum(axis=1) > 0], classes


# ---------------------------------------------------------------------------------------------------------------
# Label fractions
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("label_set", ["superdiagnostic", "subdiagnostic"])
def test_label_fraction_on_real_sample_is_class_complete_reproducible_and_nested(scp_statements, label_set):
    labels, _classes = ptbxl_train_multi_hot(scp_statements, label_set)
    present = labels.sum(axis=0) > 0
    subsets = {}
    for fraction in (0.01, 0.1, 0.5):
        subset = sample_label_fraction(labels, fraction, seed=0)
        assert np.array_equal(subset, sample_label_fraction(labels, fraction, seed=0))
        assert np.array_equal(subset, np.unique(subset))
        assert len(subset) >= math.ceil(fraction * len(labels))
        assert np.array_equal(labels[subset].sum(axis=0) > 0, present), f"a class is missing at {fraction}"
        subsets[fraction] = set(subset.tolist())
    assert subsets[0.01] <= subsets[0.1] <= subsets[0.5]
    assert len(subsets[0.5]) == math.ceil(0.5 * len(labels))
    assert not np.array_equal(sample_label_fraction(labels, 0.1, seed=0), sample_label_fraction(labels, 0.1, seed=1))
    np.testing.assert_array_equal(sample_label_fraction(labels, 1.0, seed=3), np.arange(len(labels)))


def test_label_fraction_keeps_rare_classes_and_handles_single_label(caplog):
    rng = np.random.default_rng(0)
    labels = (rng.random((1000, 4)) < 0.3).astype(int)
    labels[:, 3] = 0
    labels[617, 3] = 1  # a class with a single positive
    for seed in range(5):
        assert 617 in sample_label_fraction(labels, 0.01, seed=seed)
    class_ids = rng.integers(0, 3, size=500)
    class_ids[123] = 3
    subset = sample_label_fraction(class_ids, 0.02, seed=0)
    assert 123 in subset and len(subset) == 10 and set(class_ids[subset]) == {0, 1, 2, 3}
    # covering 10 singleton classes needs all 10 samples, more than 10 % of them: larger subset and a warning
    with caplog.at_level(logging.WARNING):
        subset = sample_label_fraction(np.eye(10, dtype=int), 0.1, seed=0)
    assert len(subset) == 10 and "Keeping every class needs 10 samples" in caplog.text


@pytest.mark.parametrize("fraction", [0, -0.1, 1.5, True, "0.1"])
def test_label_fraction_rejects_bad_fraction(fraction):
    with pytest.raises(ValueError, match="fraction"):
        sample_label_fraction(np.eye(3, dtype=int), fraction, seed=0)


# ---------------------------------------------------------------------------------------------------------------
# Distribution shifts
# ---------------------------------------------------------------------------------------------------------------


def power_spectrum(x, sampling_rate, window=False):
    """Frequencies and power spectrum along the last axis (optionally Hann-windowed against leakage)."""
    taper = np.hanning(x.shape[-1]) if window else 1.0
    spectrum = np.abs(np.fft.rfft(x * taper, axis=-1)) ** 2
    return np.fft.rfftfreq(x.shape[-1], 1 / sampling_rate), spectrum


@pytest.mark.parametrize("snr_db", SEVERITIES["gaussian_noise"] + [-3])
def test_gaussian_noise_has_requested_snr(ecg_500hz, snr_db):
    shifted = apply_shift("gaussian_noise", ecg_500hz, 500, snr_db, seed=0)
    clean = ecg_500hz.astype(np.float64)
    noise = shifted.signals.astype(np.float64) - clean
    measured = 10 * np.log10(np.mean(clean**2, axis=-1) / np.mean(noise**2, axis=-1))
    np.testing.assert_allclose(measured, snr_db, atol=0.5)
    assert abs(noise.mean()) < 0.01 * noise.std()
    assert shifted.signals.dtype == np.float32 and shifted.lead_mask.shape == (4, 12)


@pytest.mark.parametrize("frequency", [50.0, 60.0])
def test_powerline_interference_peaks_at_mains_frequency(ecg_500hz, frequency):
    shifted = apply_shift("powerline_interference", ecg_500hz, 500, 0.2, seed=0, frequency=frequency)
    frequencies, spectrum = power_spectrum(shifted.signals - ecg_500hz, 500)
    assert np.all(frequencies[spectrum.argmax(axis=-1)] == frequency)
    _, noisy_spectrum = power_spectrum(shifted.signals, 500)
    band = frequencies > 20  # above the ECG's dominant low-frequency content, the mains line is the largest peak
    assert np.all(frequencies[band][noisy_spectrum[..., band].argmax(axis=-1)] == frequency)
    # 10 s hold whole mains periods, so the line's DFT magnitude gives its amplitude exactly
    line = np.abs(np.fft.rfft(shifted.signals - ecg_500hz, axis=-1))[..., frequencies == frequency][..., 0]
    np.testing.assert_allclose(2 * line / ecg_500hz.shape[-1], 0.2, rtol=1e-3)
    with pytest.raises(ValueError, match="Nyquist"):
        apply_shift("powerline_interference", ecg_500hz[..., :1000], 100, 0.2)


def test_baseline_wander_energy_is_below_1_hz(ecg_500hz):
    shifted = apply_shift("baseline_wander", ecg_500hz, 500, 0.5, seed=0)
    wander = shifted.signals.astype(np.float64) - ecg_500hz
    # a Hann window keeps the edges of the 10 s segment (the sinusoid is not periodic in it) from leaking energy
    frequencies, spectrum = power_spectrum(wander, 500, window=True)
    below = spectrum[..., frequencies < 1.0].sum(axis=-1) / spectrum.sum(axis=-1)
    assert below.min() > 0.99
    assert np.abs(wander).max() <= 0.5 + 1e-5
    assert np.abs(wander).max() > 0.4


def test_amplitude_scaling_is_exact(ecg_500hz):
    for factor in (0.5, 2.0):
        np.testing.assert_array_equal(
            apply_shift("amplitude_scaling", ecg_500hz, 500, factor).signals, ecg_500hz * factor
        )
    with pytest.raises(ValueError, match="amplitude_scaling"):
        apply_shift("amplitude_scaling", ecg_500hz, 500, 0)


def test_drop_random_leads_zeroes_and_masks(ecg_500hz):
    shifted = apply_shift("drop_random_leads", ecg_500hz, 500, 3, seed=1)
    assert shifted.lead_mask.dtype == np.int64 and np.all(shifted.lead_mask.sum(axis=1) == 9)
    dropped = shifted.lead_mask == 0
    assert np.all(shifted.signals[dropped] == 0)
    np.testing.assert_array_equal(shifted.signals[~dropped], ecg_500hz[~dropped])
    assert len({tuple(row) for row in shifted.lead_mask}) > 1  # chosen per record
    again = apply_shift("drop_random_leads", ecg_500hz, 500, 3, seed=1)
    np.testing.assert_array_equal(again.lead_mask, shifted.lead_mask)
    with pytest.raises(ValueError, match="drop_random_leads"):
        apply_shift("drop_random_leads", ecg_500hz, 500, 13)


def test_keep_lead_subset(ecg_500hz):
    limb = apply_shift("keep_lead_subset", ecg_500hz, 500, "limb")
    np.testing.assert_array_equal(limb.lead_mask, np.tile([1] * 6 + [0] * 6, (4, 1)))
    assert np.all(limb.signals[:, 6:] == 0)
    np.testing.assert_array_equal(limb.signals[:, :6], ecg_500hz[:, :6])
    # lead names of the input, matched case-insensitively, in any order
    header_names = ["V6", "V5", "V4", "V3", "V2", "V1", "AVF", "AVL", "AVR", "III", "II", "I"]
    reversed_leads = SHIFTS["keep_lead_subset"](ecg_500hz[:, ::-1], 500, ("I", "aVF"), None, lead_names=header_names)
    np.testing.assert_array_equal(reversed_leads.lead_mask[0], [0] * 6 + [1, 0, 0, 0, 0, 1])
    with pytest.raises(ValueError, match="V7"):
        apply_shift("keep_lead_subset", ecg_500hz, 500, ("I", "V7"))
    with pytest.raises(ValueError, match="Unknown lead subset"):
        apply_shift("keep_lead_subset", ecg_500hz, 500, "chest")


def test_sampling_rate_shift_resamples_to_the_other_rate(ecg_500hz):
    down = apply_shift("sampling_rate", ecg_500hz, 500, 100)
    assert down.signals.shape == (4, 12, 1000) and down.sampling_rate == 100
    # PTB-XL's own 100 Hz version of record 1 is a downsampled copy of the 500 Hz one
    shipped_100hz = wfdb.rdsamp(str(PTBXL_SAMPLE / "records100" / "00000" / "00001_lr"))[0].T
    correlation = np.corrcoef(down.signals[0, :, 50:-50].ravel(), shipped_100hz[:, 50:-50].ravel())[0, 1]
    assert correlation > 0.95
    up = apply_shift("sampling_rate", shipped_100hz[None].astype(np.float64), 100, 500)
    assert up.signals.shape == (1, 12, 5000) and up.sampling_rate == 500
    back = apply_shift("sampling_rate", up.signals, 500, 100)
    np.testing.assert_allclose(back.signals[0, :, 50:-50], shipped_100hz[:, 50:-50], atol=0.02)
    assert apply_shift("sampling_rate", ecg_500hz, 500, 250).signals.shape[-1] == 2500


@pytest.mark.parametrize("seconds", [0.5, -1.0])
def test_time_shift_is_exact(ecg_500hz, seconds):
    n = round(abs(seconds) * 500)
    circular = apply_shift("time_shift", ecg_500hz, 500, seconds).signals
    np.testing.assert_array_equal(circular, np.roll(ecg_500hz, int(np.sign(seconds)) * n, axis=-1))
    padded = apply_shift("time_shift", ecg_500hz, 500, seconds, mode="pad").signals
    if seconds > 0:
        assert np.all(padded[..., :n] == 0)
        np.testing.assert_array_equal(padded[..., n:], ecg_500hz[..., :-n])
    else:
        assert np.all(padded[..., -n:] == 0)
        np.testing.assert_array_equal(padded[..., :-n], ecg_500hz[..., n:])


def test_every_registered_shift_runs_on_its_default_severities(ecg_500hz):
    assert set(SHIFTS) == set(SEVERITIES)
    original = ecg_500hz.copy()
    for name, severities in SEVERITIES.items():
        for severity in severities:
            shifted = apply_shift(name, ecg_500hz, 500, severity, seed=0)
            assert shifted.signals.dtype == ecg_500hz.dtype and shifted.signals.shape[:2] == (4, 12), name
            assert shifted.lead_mask.shape == (4, 12)
            assert np.isfinite(shifted.signals).all()
    np.testing.assert_array_equal(ecg_500hz, original)  # inputs are never modified
    with pytest.raises(ValueError, match="Unknown shift"):
        apply_shift("blur", ecg_500hz, 500, 1)
    with pytest.raises(ValueError, match="physical units"):
        apply_shift("gaussian_noise", (ecg_500hz * 1000).astype(np.int16), 500, 6)
    with pytest.raises(ValueError, match="batch, leads, time"):
        apply_shift("gaussian_noise", ecg_500hz[0], 500, 6)


# ---------------------------------------------------------------------------------------------------------------
# Prompts
# ---------------------------------------------------------------------------------------------------------------


def test_ptbxl_class_descriptions_from_real_table(scp_statements):
    sizes = {"all": 71, "diagnostic": 44, "subdiagnostic": 23, "superdiagnostic": 5, "form": 19, "rhythm": 12}
    for label_set, size in sizes.items():
        descriptions = ptbxl_class_descriptions(scp_statements, label_set)
        assert len(descriptions) == size and list(descriptions) == sorted(descriptions), label_set
        assert all(isinstance(text, str) and text for text in descriptions.values())
    assert ptbxl_class_descriptions(scp_statements, "diagnostic")["IMI"] == "inferior myocardial infarction"
    assert ptbxl_class_descriptions(scp_statements, "rhythm")["AFIB"] == "atrial fibrillation"
    assert ptbxl_class_descriptions(scp_statements, "superdiagnostic")["MI"] == "myocardial infarction"
    # the shipped tables cover exactly the codes of the real statement table
    assert set(PTBXL_SUBCLASS_DESCRIPTIONS) == set(scp_statements["diagnostic_subclass"].dropna())
    assert set(PTBXL_SUPERCLASS_DESCRIPTIONS) == set(scp_statements["diagnostic_class"].dropna())
    with pytest.raises(ValueError, match="index_col=0"):
        ptbxl_class_descriptions(pd.read_csv(PTBXL_SAMPLE / "scp_statements.csv"), "all")
    with pytest.raises(ValueError, match="label set"):
        ptbxl_class_descriptions(scp_statements, "beats")


def test_build_class_prompts(scp_statements):
    prompts = build_class_prompts(ptbxl_class_descriptions(scp_statements, "superdiagnostic"))
    assert list(prompts) == ["CD", "HYP", "MI", "NORM", "STTC"]
    assert all(len(texts) == len(DEFAULT_TEMPLATES) == len(set(texts)) for texts in prompts.values())
    assert all("myocardial infarction" in text for text in prompts["MI"])
    custom = build_class_prompts({"AFIB": "atrial fibrillation"}, templates=["ECG: {description}"])
    assert custom == {"AFIB": ["ECG: atrial fibrillation"]}
    with pytest.raises(ValueError, match="description"):
        build_class_prompts({"AFIB": "atrial fibrillation"}, templates=["ECG of {label}"])


def test_load_prompts_file(tmp_path):
    path = tmp_path / "prompts.json"
    path.write_text(json.dumps({"MI": ["myocardial infarction", "old MI"], "NORM": "normal ECG"}))
    assert load_prompts_file(path, class_names=["NORM", "MI"]) == {
        "NORM": ["normal ECG"],
        "MI": ["myocardial infarction", "old MI"],
    }
    with pytest.raises(ValueError, match=r"missing classes \['CD'\], unknown classes \['MI'\]"):
        load_prompts_file(path, class_names=["NORM", "CD"])
    path.write_text(json.dumps({"MI": []}))
    with pytest.raises(ValueError, match="'MI'"):
        load_prompts_file(path)
    path.write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_prompts_file(path)


# ---------------------------------------------------------------------------------------------------------------
# results.json and the model card
# ---------------------------------------------------------------------------------------------------------------


def example_rows():
    rng = np.random.default_rng(0)
    labels = (rng.random((60, 3)) < 0.4).astype(int)
    labels[:, 2] = 0  # no test positives: per-class AUROC undefined -> null
    scores = np.clip(rng.random((60, 3)) * 0.7 + 0.3 * labels, 0, 1)
    metrics = compute_classification_metrics(labels, scores, thresholds=[0.5, 0.5, 0.5], n_bootstrap=20)
    common = dict(dataset="ptbxl", label_set="superdiagnostic", seed=0, model="runs/merit-tiny", model_revision=None)
    merit_1 = ResultRow.from_classification_metrics(
        metrics, ["CD", "MI", "NORM"], task="linear-probe", fraction=0.01, baseline=None, **common
    )
    common["seed"] = np.int64(0)  # numpy scalars are written as plain JSON numbers
    merit_100 = ResultRow.from_classification_metrics(
        metrics, ["CD", "MI", "NORM"], task="linear-probe", fraction=1.0, baseline=None, **common
    )
    random_1 = ResultRow(
        task="linear-probe",
        fraction=0.01,
        baseline="random-init",
        n_test=60,
        thresholds_source="validation",
        metrics={"macro_auroc": MetricValue(0.51, 0.40, 0.62)},
        per_class_auroc={"CD": 0.5, "MI": 0.52, "NORM": None},
        **common,
    )
    return [merit_1, merit_100, random_1]


def test_results_json_round_trip(tmp_path):
    rows = example_rows()
    path = tmp_path / "results.json"
    write_results(path, rows)
    json.loads(path.read_text(), parse_constant=lambda token: pytest.fail(f"non-standard JSON token {token}"))
    assert read_results(path) == rows
    assert rows[0].per_class_auroc["NORM"] is None and rows[0].thresholds_source == "validation"
    content = json.loads(path.read_text())
    assert content["schema_version"] == 1
    assert set(content["results"][0]["metrics"]["macro_auroc"]) == {"value", "ci_low", "ci_high"}
    content["results"][0]["thresholds_source"] = "test"
    path.write_text(json.dumps(content))
    with pytest.raises(ValueError, match="never chosen on the test split"):
        read_results(path)
    content["results"][0]["thresholds_source"] = "validation"
    content["results"][0]["epochs_chosen_on"] = "test"
    path.write_text(json.dumps(content))
    with pytest.raises(ValueError, match="unknown fields"):
        read_results(path)


def test_results_markdown_puts_baselines_next_to_merit():
    table = results_to_markdown(example_rows())
    lines = table.strip().splitlines()
    assert lines[0].startswith("| Task | Dataset | Label set | Fraction | Seed | Model | Macro AUROC")
    body = lines[2:]
    # the 1 % baseline comes right after the 1 % MERIT row, before the 100 % MERIT row
    assert [("MERIT" in line, "random-init" in line, "| 0.01 |" in line) for line in body] == [
        (True, False, True),
        (False, True, True),
        (True, False, False),
    ]
    assert "0.510 (0.400–0.620)" in body[1] and body[1].count("–") >= 2  # absent metrics shown as a dash


def test_update_model_card_model_index(tmp_path):
    rows = example_rows()
    card_path = tmp_path / "README.md"
    card_path.write_text("---\nlicense: apache-2.0\n---\n# MERIT tiny\n\nIntro.\n")
    card = update_model_card(card_path, rows, model_name="merit-tiny")
    model_index = card.data.to_dict()["model-index"]
    assert model_index[0]["name"] == "merit-tiny" and card.data.license == "apache-2.0"
    (result,) = model_index[0]["results"]
    assert result["dataset"] == {"name": "PTB-XL", "type": "ptbxl", "config": "superdiagnostic", "split": "test"}
    names = {metric["name"]: metric["value"] for metric in result["metrics"]}
    expected_auroc = round(rows[0].metrics["macro_auroc"].value, 4)
    assert names["Macro AUROC (linear-probe, 1% labels, seed 0)"] == expected_auroc
    assert names["Macro AUROC (linear-probe, 100% labels, seed 0)"] == expected_auroc
    assert len(names) == 6 and 0.51 not in names.values()  # baselines are in the table, not in the model-index
    assert card.text.count(RESULTS_START_MARKER) == 1 and "random-init" in card.text
    # updating again replaces the table instead of appending a second one; text input works too
    again = update_model_card(card.content, rows[:1])
    assert again.text.count(RESULTS_START_MARKER) == 1 and "random-init" not in again.text
    assert again.data.model_name == "merit-tiny" and len(again.data.eval_results) == 3
    with pytest.raises(FileNotFoundError, match="missing.md"):
        update_model_card(str(tmp_path / "missing.md"), rows)


def test_an_earlier_evaluation_in_the_output_folder_is_named_before_it_is_replaced(tmp_path, caplog):
    from merit_evaluation.cli import warn_about_earlier_results
    from merit_evaluation.results import write_results

    with caplog.at_level(logging.WARNING):
        warn_about_earlier_results(tmp_path)  # nothing there: nothing said
    assert caplog.text == ""
    write_results(tmp_path / "results.json", [])
    with caplog.at_level(logging.WARNING):
        warn_about_earlier_results(tmp_path)
    assert "holds the results of an earlier evaluation (no rows); this evaluation replaces it" in caplog.text
    caplog.clear()
    (tmp_path / "results.json").write_text("not json")
    with caplog.at_level(logging.WARNING):
        warn_about_earlier_results(tmp_path)
    assert "(rows that could not be read)" in caplog.text and "Use another --output_dir" in caplog.text
