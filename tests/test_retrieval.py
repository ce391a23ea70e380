# Copyright 2026 The MERIT authors.
# Licensed under the Apache License, Version 2.0.
"""ECG-report retrieval (`eval_merit.py --task retrieval`): duplicate-aware ranks, chance levels, bootstrap rows, and
the task end to end on the real PTB-XL sample with a tiny random checkpoint."""

import json
import math

import numpy as np
import pytest
from checkpoint_helpers import save_tiny_dual_checkpoint

from merit_evaluation import cli as eval_merit
from merit_evaluation.results import read_results, results_to_markdown
from merit_evaluation.retrieval import (
    chance_recall,
    normalised_report,
    retrieval_metrics,
    retrieval_pool,
    retrieval_ranks,
)
from modeling_merit import MeritConfig


def test_ranks_count_non_hits_above_the_best_hit():
    reports = ["sinus rhythm", "atrial fibrillation", "Sinus  Rhythm", "left bundle branch block"]
    similarity = np.array(
        [
            [0.1, 0.9, 0.5, 0.0],  # hits 0 and 2 (same text); best hit 0.5; one non-hit (0.9) above -> rank 2
            [0.3, 0.2, 0.4, 0.8],  # hit 1 (0.2); 0.3 and 0.8 above, 0.4 is a different report too -> rank 4
            [0.7, 0.1, 0.2, 0.6],  # hits 0 and 2; best 0.7 -> rank 1
            [0.2, 0.3, 0.1, 0.25],  # hit 3 (0.25); 0.3 above -> rank 2
        ]
    )
    np.testing.assert_array_equal(retrieval_ranks(similarity, reports, reports), [2, 4, 1, 2])
    # with all texts distinct, the copies no longer count: queries 0 and 2 fall to rank 3
    distinct = ["a", "b", "c", "d"]
    np.testing.assert_array_equal(retrieval_ranks(similarity, distinct, distinct), [3, 4, 3, 2])


def test_ranks_need_every_query_in_the_pool():
    with pytest.raises(ValueError, match="no matching candidate"):
        retrieval_ranks(np.zeros((1, 2)), ["x"], ["a", "b"])


def test_normalised_report_ignores_case_and_whitespace():
    assert normalised_report("  Sinus\tRhythm.\n") == "sinus rhythm."


def test_chance_recall_matches_a_simulation():
    reports = ["a", "a", "a", "b", "c", "d", "e", "f", "g", "h"]
    assert chance_recall(["b"], reports, 1) == pytest.approx(0.1)
    assert chance_recall(["a"], reports, 1) == pytest.approx(0.3)
    assert chance_recall(["a"], reports, 5) == pytest.approx(1 - math.comb(7, 5) / math.comb(10, 5))
    rng = np.random.default_rng(0)
    ranks = np.concatenate([retrieval_ranks(rng.random((10, 10)), reports, reports) for _ in range(4000)])
    assert np.mean(ranks <= 5) == pytest.approx(chance_recall(reports, reports, 5), abs=0.01)


def test_retrieval_metrics_values_and_intervals():
    ranks = {"ecg_to_report": np.array([1, 1, 2, 7, 20]), "report_to_ecg": np.array([1, 3, 3, 3, 11])}
    metrics, bootstrap = retrieval_metrics(ranks, n_bootstrap=200, seed=0)
    assert metrics["ecg_to_report_r1"].value == pytest.approx(0.4)
    assert metrics["ecg_to_report_r5"].value == pytest.approx(0.6)
    assert metrics["ecg_to_report_r10"].value == pytest.approx(0.8)
    assert metrics["ecg_to_report_median_rank"].value == 2
    assert metrics["report_to_ecg_r1"].value == pytest.approx(0.2)
    assert metrics["report_to_ecg_median_rank"].value == 3
    for value in metrics.values():
        assert value.ci_low <= value.value <= value.ci_high
    assert metrics["ecg_to_report_r5"].ci_low < metrics["ecg_to_report_r5"].ci_high
    assert bootstrap["n_resamples"] == 200
    no_bootstrap, _ = retrieval_metrics(ranks, n_bootstrap=0, seed=0)
    assert no_bootstrap["ecg_to_report_r5"].ci_low is None


@pytest.fixture(scope="module")
def dual_checkpoint(tmp_path_factory, processor):
    return save_tiny_dual_checkpoint(tmp_path_factory.mktemp("retrieval-checkpoint"), processor, seed=4321)


@pytest.mark.slow
def test_retrieval_task_end_to_end(dual_checkpoint, ptbxl_sample_dir, cache_dir, tmp_path, capsys):
    output_dir = tmp_path / "eval"
    rows = eval_merit.main(
        [
            "--model_name_or_path", str(dual_checkpoint), "--task", "retrieval", "--dataset", "ptbxl",
            "--data_dir", str(ptbxl_sample_dir), "--output_dir", str(output_dir), "--cache_dir", str(cache_dir),
            "--n_bootstrap", "50",
        ]
    )  # fmt: skip
    from merit_evaluation.report_generation import load_report_dataset

    pool = retrieval_pool(load_report_dataset(ptbxl_sample_dir, "ptbxl", cache_dir=cache_dir))
    reports = [str(report) for report in pool["report"]]
    assert all(report.strip() for report in reports) and len(pool) < 182  # the test fold less its report-less records
    assert [(row.task, row.baseline) for row in rows] == [
        ("retrieval", None), ("retrieval", "random-init-encoder"), ("retrieval", "shuffled-pairing"),
    ]  # fmt: skip
    for row in rows:
        assert row.n_test == len(pool) and row.label_set == "report" and row.thresholds_source is None
        assert row.details["distinct_reports"] == str(len({normalised_report(report) for report in reports}))
        for metric in ("ecg_to_report_r1", "ecg_to_report_r5", "report_to_ecg_r10", "report_to_ecg_median_rank"):
            assert row.metrics[metric].ci_low <= row.metrics[metric].value <= row.metrics[metric].ci_high
    chance_r5 = float(rows[0].details["chance_ecg_to_report_r5"])
    assert chance_r5 == pytest.approx(chance_recall(reports, reports, 5), abs=1e-4)
    assert [row.to_dict() for row in read_results(output_dir / "results.json")] == [row.to_dict() for row in rows]
    printed = capsys.readouterr().out
    assert "ECG→report R@5" in printed and "baseline: shuffled-pairing" in printed
    assert f"{len({normalised_report(report) for report in reports})} distinct reports" in printed
    assert json.loads((output_dir / "results.json").read_text())["results"][0]["task"] == "retrieval"
    assert results_to_markdown(rows).count("\n| retrieval |") == 3


def test_retrieval_on_the_validation_split(dual_checkpoint, ptbxl_sample_dir, cache_dir, tmp_path, capsys):
    """`--report_split validation` retrieves among the validation reports, so settings can be chosen without the test
    fold."""
    rows = eval_merit.main(
        [
            "--model_name_or_path", str(dual_checkpoint), "--task", "retrieval", "--dataset", "ptbxl",
            "--data_dir", str(ptbxl_sample_dir), "--output_dir", str(tmp_path / "eval"), "--cache_dir", str(cache_dir),
            "--n_bootstrap", "20", "--report_split", "validation", "--no_baselines",
        ]
    )  # fmt: skip
    from merit_evaluation.report_generation import load_report_dataset

    splits = load_report_dataset(ptbxl_sample_dir, "ptbxl", cache_dir=cache_dir)
    validation = retrieval_pool(splits, "validation")
    assert len(validation) != len(retrieval_pool(splits))
    assert [(row.split, row.n_test, row.baseline) for row in rows] == [("validation", len(validation), None)]
    assert rows[0].details["pool"] == f"{len(validation)} validation records with a report"
    assert f"retrieval pool = {len(validation)} validation records with a report" in capsys.readouterr().out


def test_retrieval_refuses_a_classifier_checkpoint(tmp_path, ptbxl_sample_dir, processor):
    from modeling_merit import MeritForECGClassification

    directory = tmp_path / "classifier"
    config = MeritConfig.from_preset("tiny").ecg_config
    MeritForECGClassification(MeritConfig.from_preset("tiny", ecg_config=config.to_dict())).save_pretrained(directory)
    processor.save_pretrained(directory)
    with pytest.raises(ValueError, match="needs a checkpoint with a trained text tower"):
        eval_merit.main(
            ["--model_name_or_path", str(directory), "--task", "retrieval", "--dataset", "ptbxl",
             "--data_dir", str(ptbxl_sample_dir), "--output_dir", str(tmp_path / "eval")]
        )  # fmt: skip
