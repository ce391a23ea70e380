# Copyright 2026 The MERIT authors.
# Licensed under the Apache License, Version 2.0.
"""The ablation table's paired differences: the same bootstrap resamples for every model on one test set."""

from pathlib import Path

import numpy as np
import pytest

from merit_evaluation.ablation import RANDOM_ENCODER, ablation_table
from merit_evaluation.metrics import compute_classification_metrics, paired_difference
from merit_evaluation.results import ResultRow, paired_macro_auroc_difference, write_results


N_RECORDS, N_CLASSES = 150, 3


def scored_row(scores: np.ndarray, labels: np.ndarray, *, baseline=None, seed=0, n_bootstrap=300) -> ResultRow:
    metrics = compute_classification_metrics(labels, scores, n_bootstrap=n_bootstrap, seed=seed)
    return ResultRow.from_classification_metrics(
        metrics, ["A", "B", "C"], task="linear-probe", dataset="ptbxl", label_set="superdiagnostic", fraction=1.0,
        seed=seed, model="m", model_revision=None, baseline=baseline, thresholds_source=None,
    )  # fmt: skip


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    labels = (rng.random((N_RECORDS, N_CLASSES)) < 0.3).astype(int)
    signal = 1.5 * labels + rng.normal(0, 1.0, labels.shape)  # shared by both models: their errors are correlated
    better = signal + rng.normal(0, 0.2, labels.shape)
    worse = signal + rng.normal(0, 1.5, labels.shape)
    return labels, 1 / (1 + np.exp(-better)), 1 / (1 + np.exp(-worse))  # probabilities, as the harness scores


def test_paired_interval_of_a_better_model_excludes_zero(data):
    labels, better, worse = data
    a, b = scored_row(better, labels), scored_row(worse, labels, baseline="random-init")
    difference = paired_macro_auroc_difference(a, b)
    assert difference.value == pytest.approx(a.metrics["macro_auroc"].value - b.metrics["macro_auroc"].value)
    assert difference.ci_low > 0  # the better model, on the same resamples
    # a model against itself: exactly zero on every resample
    same = paired_macro_auroc_difference(a, scored_row(better, labels))
    assert same.value == 0 and same.ci_low == 0 and same.ci_high == 0


def test_no_paired_difference_across_different_resamples(data):
    labels, better, worse = data
    a = scored_row(better, labels)
    assert paired_macro_auroc_difference(a, scored_row(worse, labels, seed=1)) is None  # other bootstrap seed
    assert paired_macro_auroc_difference(a, scored_row(worse[:100], labels[:100])) is None  # other test set
    assert paired_macro_auroc_difference(a, scored_row(worse, labels, n_bootstrap=0)) is None
    with pytest.raises(ValueError, match="same bootstrap resamples"):
        paired_difference(0.7, [0.7, 0.8], 0.6, [0.6])


def test_ablation_table_shows_paired_differences(data, tmp_path):
    labels, better, worse = data
    files = {}
    for name, scores, extra in (
        ("MERIT (both losses)", better, [scored_row(worse, labels, baseline="random-init")]),
        ("masked modelling only", worse, []),
    ):
        path = tmp_path / f"{len(files)}.json"
        write_results(path, [scored_row(scores, labels), *extra])
        files[name] = [path]
    markdown, records = ablation_table(files)
    header = markdown.splitlines()[0]
    assert (
        "MERIT (both losses) − masked modelling only" in header and f"MERIT (both losses) − {RANDOM_ENCODER}" in header
    )
    differences = [record for record in records if "paired_difference" in record]
    assert len(differences) == 2 and all(record["paired_difference"]["ci_low"] > 0 for record in differences)
    assert markdown.count("**+") == 2  # both differences exclude 0 and are shown in bold


def test_ablation_driver_does_not_retrain_a_finished_variant(tmp_path, monkeypatch):
    import ablation_merit

    commands = []
    monkeypatch.setattr(ablation_merit, "run", lambda command: commands.append(command))
    monkeypatch.setattr(ablation_merit, "write_ablation_table", lambda files, output_dir: "table")
    finished = tmp_path / "merit-both-losses-seed42"
    finished.mkdir()
    (finished / "model.safetensors").write_bytes(b"")

    def trained_dirs():
        return [Path(c[c.index("--output_dir") + 1]).name for c in commands if "train_merit.py" in c]

    ablation_merit.main(["--output_dir", str(tmp_path), "--label_sets", "superdiagnostic"])
    assert trained_dirs() == ["masked-modelling-only-seed42", "contrastive-only-seed42"]
    assert sum("eval_merit.py" in c for c in commands) == 3  # every variant is still evaluated
    commands.clear()
    ablation_merit.main(["--output_dir", str(tmp_path), "--label_sets", "superdiagnostic", "--retrain"])
    assert trained_dirs() == ["merit-both-losses-seed42", "masked-modelling-only-seed42", "contrastive-only-seed42"]
