# Copyright 2026 The MERIT authors. Licensed under the Apache License, Version 2.0.
"""
An experiment, not part of the package: is the clinical-efficacy extractor's held-out ceiling (superclass micro F1
about 0.76 on the validation and test folds, 0.815 on the training folds its rules were written from) set by the
rules, or by how PTB-XL's statements relate to its report texts? A learned extractor answers it: per diagnostic
superclass, a logistic regression on the training folds' reports (folds 1-8) predicts the record's superclass
from character 3-5-gram TF-IDF features of the normalised report (`ngrams`), or from those features plus the
rules' own outputs (`ngrams+rules`). Its inverse regularisation `C` is chosen by 5-fold cross-validation on the
training folds (superclass micro F1), so the validation and test folds choose nothing and both are read.

    python utils/learned_extractor_baseline.py data/ptbxl-sample

Prints, per held-out split, the superclass micro F1 of the rules and of both learned extractors with 95 %
bootstrap intervals, and the paired difference (learned - rules). The metric card
(`metrics/report_generation/README.md`) quotes the measurement.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np


ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

C_GRID = (0.3, 1.0, 3.0, 10.0)
"""Inverse L2 strengths tried by the cross-validation."""
RULE_FEATURE_SCALE = 3.0
"""Value of a rule's output feature (TF-IDF rows have unit norm, so a 0/1 feature would weigh little)."""


def micro_f1_scorer(truth: np.ndarray, predicted: np.ndarray):
    """The superclass micro F1 of bool matrices `(n_samples, k)` (the first `k` superclasses, in `CE_CLASSES` order)
    for any sample weights `(n_resamples, n_samples)`, as `{"superclass_micro_f1": (n_resamples,)}` (the
    `WeightedMetrics` form of `merit_evaluation.metrics`), computed by the CE metric itself."""
    from merit_evaluation.clinical_efficacy import CE_CLASSES, ClinicalEfficacyStatistics

    def padded(matrix):
        full = np.zeros((len(matrix), len(CE_CLASSES)), dtype=bool)
        full[:, : matrix.shape[1]] = matrix
        return full

    statistics = ClinicalEfficacyStatistics(truth=padded(truth), predicted=padded(predicted))
    return lambda weights: {"superclass_micro_f1": statistics.values(weights)["ce_super_f1_micro"]}


def superclass_micro_f1(truth: np.ndarray, predicted: np.ndarray) -> float:
    """Superclass micro F1 of bool matrices `(n_samples, k)` (0 when there is nothing to count)."""
    return float(micro_f1_scorer(truth, predicted)(np.ones((1, len(truth))))["superclass_micro_f1"][0])


def features(texts, rules: np.ndarray | None, vectorizer, fit: bool = False):
    """TF-IDF character n-grams of `texts`, with the rules' outputs `(n, n_classes)` appended when given."""
    from scipy.sparse import csr_matrix, hstack

    matrix = vectorizer.fit_transform(texts) if fit else vectorizer.transform(texts)
    if rules is not None:
        matrix = hstack([matrix, csr_matrix(rules * RULE_FEATURE_SCALE)]).tocsr()
    return matrix


def fit_predict(train_texts, train_rules, train_truth, test_texts, test_rules, inverse_l2: float) -> np.ndarray:
    """Per-class logistic regressions fitted on the training reports; bool predictions `(n_test, n_classes)`."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    vectorizer = TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 5), min_df=2, sublinear_tf=True)
    train = features(train_texts, train_rules, vectorizer, fit=True)
    test = features(test_texts, test_rules, vectorizer)
    predicted = np.zeros((len(test_texts), train_truth.shape[1]), dtype=bool)
    for column in range(train_truth.shape[1]):
        if train_truth[:, column].all() or not train_truth[:, column].any():
            predicted[:, column] = train_truth[0, column]  # one class only: predict it
            continue
        classifier = LogisticRegression(C=inverse_l2, max_iter=2000).fit(train, train_truth[:, column])
        predicted[:, column] = classifier.predict_proba(test)[:, 1] > 0.5
    return predicted


def choose_inverse_l2(texts, rules, truth, n_folds: int = 5, seed: int = 0) -> float:
    """The `C_GRID` value with the best cross-validated superclass micro F1 on the training reports."""
    folds = np.random.default_rng(seed).integers(0, n_folds, len(texts))
    scores = {}
    for inverse_l2 in C_GRID:
        predicted = np.zeros_like(truth)
        for fold in range(n_folds):
            fit_rows, held_rows = np.flatnonzero(folds != fold), np.flatnonzero(folds == fold)
            predicted[held_rows] = fit_predict(
                [texts[row] for row in fit_rows],
                None if rules is None else rules[fit_rows],
                truth[fit_rows],
                [texts[row] for row in held_rows],
                None if rules is None else rules[held_rows],
                inverse_l2,
            )
        scores[inverse_l2] = superclass_micro_f1(truth, predicted)
    return max(scores, key=scores.get)


def main(argv: list[str] | None = None) -> None:
    import pandas as pd

    from dataset_scripts.ptbxl.labels import parse_scp_codes
    from merit_evaluation.clinical_efficacy import (
        CE_GROUPS,
        SPLIT_FOLDS,
        extract_statements,
        label_matrix,
        normalize_report,
        statements_from_scp_codes,
    )
    from merit_evaluation.metrics import bootstrap_metric_values, paired_bootstrap_differences

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data_dir", help="A PTB-XL copy (a folder holding ptbxl_database.csv with reports).")
    parser.add_argument("--n_bootstrap", type=int, default=1000)
    args = parser.parse_args(argv)

    database = pd.read_csv(Path(args.data_dir) / "ptbxl_database.csv", index_col="ecg_id")
    database = database[database["report"].fillna("").str.strip() != ""]
    superclasses = CE_GROUPS["superclass"]

    def split(name):
        rows = database[database["strat_fold"].isin(SPLIT_FOLDS[name])]
        texts = [normalize_report(text) for text in rows["report"]]
        truth = label_matrix([statements_from_scp_codes(parse_scp_codes(c)) for c in rows["scp_codes"]], superclasses)
        rules = label_matrix([extract_statements(text) for text in rows["report"]], superclasses)
        return texts, truth, rules

    train_texts, train_truth, train_rules = split("train")
    chosen = {
        "ngrams": choose_inverse_l2(train_texts, None, train_truth),
        "ngrams+rules": choose_inverse_l2(train_texts, train_rules, train_truth),
    }
    print(f"{len(train_texts)} training reports; C chosen by 5-fold CV on them: {chosen}")
    for name in ("validation", "test"):
        texts, truth, rules = split(name)
        systems = {"rules": rules}
        for extractor, inverse_l2 in chosen.items():
            with_rules = extractor == "ngrams+rules"
            systems[extractor] = fit_predict(
                train_texts,
                train_rules if with_rules else None,
                train_truth,
                texts,
                rules if with_rules else None,
                inverse_l2,
            )

        print(f"\n{name} (folds {SPLIT_FOLDS[name]}): {len(texts)} reports, superclass micro F1")
        for extractor, predicted in systems.items():
            value = bootstrap_metric_values(micro_f1_scorer(truth, predicted), len(texts), args.n_bootstrap)[
                "superclass_micro_f1"
            ]
            line = f"  {extractor:13s} {value.value:.3f} ({value.ci_low:.3f}-{value.ci_high:.3f})"
            if extractor != "rules":
                difference = paired_bootstrap_differences(
                    micro_f1_scorer(truth, predicted), micro_f1_scorer(truth, rules), len(texts), args.n_bootstrap
                )["superclass_micro_f1"]
                line += f"   - rules: {difference.value:+.3f} ({difference.ci_low:+.3f} to {difference.ci_high:+.3f})"
            print(line)


if __name__ == "__main__":
    main()
