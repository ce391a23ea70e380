# Copyright 2026 The MERIT authors.
# Licensed under the Apache License, Version 2.0.
"""Metric correctness: hand-computed cases, scikit-learn cross-checks, bootstrap, validation-only thresholds, and
the offline `evaluate` module."""

import inspect
import json
import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import f1_score, roc_auc_score

from merit_evaluation.metrics import (
    bootstrap_indices,
    compute_classification_metrics,
    fmax,
    macro_f1,
    macro_roc_auc,
    per_class_f1,
    per_class_roc_auc,
)
from merit_evaluation.thresholds import apply_thresholds, fit_thresholds


REPO_ROOT = Path(__file__).resolve().parents[1]


def random_case(seed, n_samples=120, n_classes=6, positive_rate=0.3, decimals=2):
    """Multi-hot labels and informative scores, rounded so that ties occur."""
    rng = np.random.default_rng(seed)
    labels = (rng.random((n_samples, n_classes)) < positive_rate).astype(int)
    scores = np.clip(rng.random((n_samples, n_classes)) * 0.7 + 0.3 * labels, 0, 1).round(decimals)
    return labels, scores


def reference_fmax(labels, scores, grid):
    """Straightforward loop implementation of the sample-centric Fmax definition (module docstring)."""
    best = np.nan
    for threshold in grid:
        precisions, recalls = [], []
        for true_row, score_row in zip(labels.astype(bool), scores):
            predicted = score_row >= threshold
            correct = (predicted & true_row).sum()
            if predicted.sum() > 0:
                precisions.append(correct / predicted.sum())
            if true_row.sum() > 0:
                recalls.append(correct / true_row.sum())
        if not precisions:
            continue
        precision, recall = np.mean(precisions), np.mean(recalls)
        f_measure = 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)
        best = f_measure if np.isnan(best) else max(best, f_measure)
    return best


# ---------------------------------------------------------------------------------------------------------------
# Hand-computed cases
# ---------------------------------------------------------------------------------------------------------------


def test_auroc_hand_computed():
    # positives score 0.9 and 0.4, negatives 0.8 and 0.1: pairs (0.9>0.8), (0.9>0.1), (0.4<0.8), (0.4>0.1) -> 3/4
    assert per_class_roc_auc(np.array([1, 0, 1, 0]), np.array([0.9, 0.8, 0.4, 0.1]))[0] == pytest.approx(0.75)
    # positives 0.5 and 0.7, negatives 0.5 and 0.2: the tie (0.5, 0.5) counts 1/2 -> (0.5 + 1 + 1 + 1) / 4 = 0.875
    assert per_class_roc_auc(np.array([1, 0, 1, 0]), np.array([0.5, 0.5, 0.7, 0.2]))[0] == pytest.approx(0.875)


def test_macro_auroc_skips_class_without_positives_or_negatives():
    labels = np.array([[1, 0, 1], [0, 0, 1], [1, 0, 1], [0, 0, 1]])
    scores = np.array([[0.9, 0.1, 0.3], [0.8, 0.2, 0.4], [0.4, 0.3, 0.5], [0.1, 0.4, 0.6]])
    per_class = per_class_roc_auc(labels, scores)
    # class 0 is the 0.75 case above; class 1 has no positives and class 2 no negatives -> undefined
    assert per_class[0] == pytest.approx(0.75)
    assert np.isnan(per_class[1]) and np.isnan(per_class[2])
    assert macro_roc_auc(labels, scores) == pytest.approx(0.75)
    result = compute_classification_metrics(labels, scores, n_bootstrap=0)
    assert result.auroc_skipped_classes == [1, 2]
    assert result.to_dict()["per_class_auroc"] == [0.75, None, None]
    with pytest.raises(ValueError, match="undefined for every class"):
        macro_roc_auc(labels[:, 1:], scores[:, 1:])


def test_f1_hand_computed():
    labels = np.array([[1, 0], [1, 0], [0, 0], [0, 0]])
    scores = np.array([[0.9, 0.1], [0.4, 0.2], [0.6, 0.3], [0.1, 0.4]])
    # class 0 at 0.5 predicts samples 0 and 2: TP=1, FP=1, FN=1 -> F1 = 2 / (2 + 1 + 1) = 0.5
    # class 1 has no positives and at 0.5 no predictions -> 0/0, reported as 0 (sklearn zero_division=0)
    np.testing.assert_allclose(per_class_f1(labels, scores, [0.5, 0.5]), [0.5, 0.0])
    assert macro_f1(labels, scores, [0.5, 0.5]) == pytest.approx(0.25)
    # a score equal to the threshold is predicted positive: class 0 at 0.4 predicts samples 0, 1, 2 -> 2/(4+1) = 0.8
    assert per_class_f1(labels, scores, [0.4, 0.5])[0] == pytest.approx(0.8)


def test_fmax_hand_computed():
    # true classes: sample 0 {A}, sample 1 {B}, sample 2 {A, B}
    labels = np.array([[1, 0], [0, 1], [1, 1]])
    scores = np.array([[0.7, 0.4], [0.2, 0.5], [0.8, 0.1]])
    # t = 0.3: predictions {A,B}, {B}, {A}; precision (1/2 + 1 + 1)/3 = 5/6; recall (1 + 1 + 1/2)/3 = 5/6 -> F = 5/6
    # t = 0.6: predictions {A}, {}, {A}; precision over the 2 samples with a prediction (1 + 1)/2 = 1;
    #          recall (1 + 0 + 1/2)/3 = 1/2 -> F = 2/3
    # t = 0.9: no predictions at all -> precision undefined, threshold skipped
    assert fmax(labels, scores, fmax_thresholds=[0.3, 0.6, 0.9]) == pytest.approx(5 / 6)
    assert fmax(labels, scores, fmax_thresholds=[0.6, 0.9]) == pytest.approx(2 / 3)
    assert np.isnan(fmax(labels, scores, fmax_thresholds=[0.9]))


def test_fmax_default_grid_requires_probabilities():
    labels, scores = random_case(0)
    with pytest.raises(ValueError, match="fmax_thresholds"):
        fmax(labels, scores * 4 - 2)
    assert fmax(labels, scores * 4 - 2, fmax_thresholds=np.linspace(-2, 2, 41)) == pytest.approx(
        reference_fmax(labels, scores * 4 - 2, np.linspace(-2, 2, 41))
    )


# ---------------------------------------------------------------------------------------------------------------
# Cross-checks against scikit-learn and a reference implementation on random cases
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(5))
def test_matches_sklearn_on_random_cases(seed):
    labels, scores = random_case(seed)
    np.testing.assert_allclose(per_class_roc_auc(labels, scores), roc_auc_score(labels, scores, average=None))
    assert macro_roc_auc(labels, scores) == pytest.approx(roc_auc_score(labels, scores, average="macro"))
    thresholds = np.random.default_rng(seed).uniform(0.2, 0.8, labels.shape[1])
    predictions = (scores >= thresholds).astype(int)
    np.testing.assert_allclose(
        per_class_f1(labels, scores, thresholds), f1_score(labels, predictions, average=None, zero_division=0)
    )
    assert macro_f1(labels, scores, thresholds) == pytest.approx(
        f1_score(labels, predictions, average="macro", zero_division=0)
    )


@pytest.mark.parametrize("seed", range(3))
def test_fmax_matches_reference_implementation(seed):
    labels, scores = random_case(seed, n_samples=60, n_classes=5)
    labels[0] = 0  # a sample without any true class (only counts for precision)
    grid = np.round(np.linspace(0, 1, 101), 2)
    assert fmax(labels, scores) == pytest.approx(reference_fmax(labels, scores, grid))


def test_single_label_and_binary_inputs():
    rng = np.random.default_rng(3)
    class_ids = rng.integers(0, 4, size=80)
    scores = rng.random((80, 4))
    one_hot = np.eye(4, dtype=int)[class_ids]
    np.testing.assert_allclose(per_class_roc_auc(class_ids, scores), per_class_roc_auc(one_hot, scores))
    np.testing.assert_allclose(per_class_roc_auc(class_ids, scores), roc_auc_score(one_hot, scores, average=None))
    binary = (rng.random(50) < 0.4).astype(int)
    binary_scores = rng.random(50)
    assert macro_roc_auc(binary, binary_scores) == pytest.approx(roc_auc_score(binary, binary_scores))


@pytest.mark.parametrize(
    "labels, scores, message",
    [
        (np.array([[0, 2]]), np.array([[0.1, 0.2]]), "only 0 and 1"),
        (np.zeros((3, 2)), np.zeros((3, 3)), "same shape"),
        (np.zeros((2, 2)), np.array([[0.1, np.nan], [0.2, 0.3]]), "NaN"),
        (np.zeros((0, 2)), np.zeros((0, 2)), "zero samples"),
    ],
)
def test_bad_inputs_raise(labels, scores, message):
    with pytest.raises(ValueError, match=message):
        compute_classification_metrics(labels, scores, n_bootstrap=0)


# ---------------------------------------------------------------------------------------------------------------
# Bootstrap
# ---------------------------------------------------------------------------------------------------------------


def test_bootstrap_matches_sklearn_per_resample_with_rare_class():
    labels, scores = random_case(7, n_samples=30, n_classes=3)
    labels[:, 2] = 0
    labels[4, 2] = 1  # one positive: most resamples of 30 draws miss it ((29/30)^30 ~ 36 %)
    n_bootstrap, seed = 100, 11
    expected_macro, expected_fmax, expected_f1, skipped = [], [], [], []
    thresholds = np.array([0.4, 0.5, 0.6])
    fmax_grid = np.linspace(0, 1, 21)
    for resample in range(n_bootstrap):
        index = bootstrap_indices(len(labels), resample, seed)
        resampled_labels, resampled_scores = labels[index], scores[index]
        defined = [c for c in range(3) if 0 < resampled_labels[:, c].sum() < len(index)]
        skipped.append(3 - len(defined))
        expected_macro.append(
            np.mean([roc_auc_score(resampled_labels[:, c], resampled_scores[:, c]) for c in defined])
        )
        expected_f1.append(
            f1_score(resampled_labels, resampled_scores >= thresholds, average="macro", zero_division=0)
        )
        expected_fmax.append(reference_fmax(resampled_labels, resampled_scores, fmax_grid))
    result = compute_classification_metrics(
        labels, scores, thresholds, n_bootstrap=n_bootstrap, seed=seed, fmax_thresholds=fmax_grid
    )
    for name, expected in [("macro_auroc", expected_macro), ("macro_f1", expected_f1), ("fmax", expected_fmax)]:
        low, high = np.quantile(expected, [0.025, 0.975])
        assert result.metrics[name].ci_low == pytest.approx(low), name
        assert result.metrics[name].ci_high == pytest.approx(high), name
    skipped = np.array(skipped)
    assert 10 < (skipped > 0).sum() < n_bootstrap  # the rare class really was skipped in some resamples
    assert result.bootstrap.n_resamples_with_skipped_auroc_classes == (skipped > 0).sum()
    assert result.bootstrap.n_skipped_auroc_class_resamples == skipped.sum()
    assert result.bootstrap.n_undefined == {"macro_auroc": 0, "fmax": 0, "macro_f1": 0}


def test_bootstrap_is_seeded_and_optional():
    labels, scores = random_case(1, n_samples=200)
    first = compute_classification_metrics(labels, scores, n_bootstrap=100, seed=5)
    again = compute_classification_metrics(labels, scores, n_bootstrap=100, seed=5)
    other = compute_classification_metrics(labels, scores, n_bootstrap=100, seed=6)
    assert first.metrics == again.metrics
    assert first.metrics["macro_auroc"].ci_low != other.metrics["macro_auroc"].ci_low
    low, high = first.metrics["macro_auroc"].ci_low, first.metrics["macro_auroc"].ci_high
    assert low < first.metrics["macro_auroc"].value < high
    # a resample is fixed by (seed, resample number), whatever the number of resamples
    fewer = compute_classification_metrics(labels[:50], scores[:50], n_bootstrap=1, seed=5)
    manual = compute_classification_metrics(
        labels[:50][bootstrap_indices(50, 0, 5)], scores[:50][bootstrap_indices(50, 0, 5)], n_bootstrap=0
    )
    assert fewer.metrics["macro_auroc"].ci_low == pytest.approx(manual.metrics["macro_auroc"].value)
    none = compute_classification_metrics(labels, scores, n_bootstrap=0)
    assert none.bootstrap is None and none.metrics["macro_auroc"].ci_low is None
    assert none.metrics["macro_auroc"].value == first.metrics["macro_auroc"].value
    with pytest.raises(ValueError, match="n_bootstrap"):
        compute_classification_metrics(labels, scores, n_bootstrap=-1)
    with pytest.raises(ValueError, match="confidence_level"):
        compute_classification_metrics(labels, scores, confidence_level=95)


# ---------------------------------------------------------------------------------------------------------------
# Thresholds: validation only
# ---------------------------------------------------------------------------------------------------------------


def test_fit_thresholds_api_only_takes_validation_data():
    parameters = inspect.signature(fit_thresholds).parameters
    assert list(parameters) == ["validation_labels", "validation_scores"]
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in parameters.values())
    assert "labels" not in " ".join(inspect.signature(apply_thresholds).parameters)
    labels, scores = random_case(0)
    with pytest.raises(TypeError):
        fit_thresholds(labels, scores)


def test_thresholds_hand_computed_and_unaffected_by_test_split(caplog):
    # validation: positives 0.9, 0.7; negatives 0.4, 0.2 -> best F1 = 1 with the top two; midpoint (0.7+0.4)/2
    validation_labels = np.array([[1, 0], [1, 0], [0, 0], [0, 1]])
    validation_scores = np.array([[0.9, 0.5], [0.7, 0.5], [0.4, 0.5], [0.2, 0.5]])
    with caplog.at_level(logging.WARNING):
        thresholds = fit_thresholds(validation_labels=validation_labels, validation_scores=validation_scores)
    # class 1: all scores tied, including everyone gives F1 = 2/(1+4) = 0.4 > 0 -> threshold = the tied score
    np.testing.assert_allclose(thresholds, [0.55, 0.5])
    test_labels, test_scores = random_case(3, n_samples=50, n_classes=2)
    before = thresholds.copy()
    results = [
        compute_classification_metrics(test_labels_variant, test_scores, thresholds, n_bootstrap=0)
        for test_labels_variant in (test_labels, 1 - test_labels)
    ]
    np.testing.assert_array_equal(thresholds, before)  # scoring the test split never touches the thresholds
    for result, variant in zip(results, (test_labels, 1 - test_labels)):
        expected = f1_score(variant, apply_thresholds(test_scores, thresholds), average="macro", zero_division=0)
        assert result.metrics["macro_f1"].value == pytest.approx(expected)
    # no validation positives -> +inf (never predicted) and a warning
    with caplog.at_level(logging.WARNING):
        unfitted = fit_thresholds(validation_labels=np.zeros((4, 1)), validation_scores=np.ones((4, 1)))
    assert np.isposinf(unfitted[0]) and "No validation positives" in caplog.text
    assert not apply_thresholds(np.ones((3, 1)) * 1e9, unfitted).any()


@pytest.mark.parametrize("seed", range(4))
def test_thresholds_maximise_validation_f1(seed):
    labels, scores = random_case(seed, n_samples=40, n_classes=3, decimals=1)
    thresholds = fit_thresholds(validation_labels=labels, validation_scores=scores)
    achieved = per_class_f1(labels, scores, thresholds)
    for c in range(3):
        best = max(f1_score(labels[:, c], scores[:, c] >= t, zero_division=0) for t in np.unique(scores[:, c]))
        assert achieved[c] == pytest.approx(best)
        # the threshold lies strictly between validation scores (or on the lowest one)
        assert thresholds[c] not in set(scores[:, c]) or thresholds[c] == scores[:, c].min()


# ---------------------------------------------------------------------------------------------------------------
# The evaluate module, loaded offline by path
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_merit_evaluation_does_not_import_evaluate():
    code = "import sys, merit_evaluation; assert 'evaluate' not in sys.modules and 'datasets' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO_ROOT)


@pytest.mark.slow
def test_evaluate_module_loads_offline_and_matches_numpy_core(tmp_path):
    labels, scores = random_case(4, n_samples=90, n_classes=5)
    thresholds = [0.3, 0.4, 0.5, 0.6, 0.7]
    np.save(tmp_path / "labels.npy", labels)
    np.save(tmp_path / "scores.npy", scores)
    script = textwrap.dedent(
        f"""
        import json, numpy as np, evaluate
        metric = evaluate.load({str(REPO_ROOT / "metrics" / "ecg_classification")!r})
        result = metric.compute(
            references=np.load("labels.npy").tolist(), predictions=np.load("scores.npy").tolist(),
            thresholds={thresholds!r}, n_bootstrap=50, seed=3,
        )
        json.dump(result, open("result.json", "w"))
        """
    )
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "HF_HOME": str(tmp_path / "hf_home"),
        "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    # run outside the repository so that only the path (not the working directory) locates the metric
    completed = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert completed.returncode == 0, completed.stderr[-3000:]
    from_evaluate = json.loads((tmp_path / "result.json").read_text())
    from_numpy = compute_classification_metrics(labels, scores, np.array(thresholds), n_bootstrap=50, seed=3)
    assert from_evaluate == json.loads(json.dumps(from_numpy.to_dict()))
    assert from_evaluate["macro_auroc"] == pytest.approx(roc_auc_score(labels, scores, average="macro"))
