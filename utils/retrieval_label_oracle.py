# Copyright 2026 The MERIT authors. Licensed under the Apache License, Version 2.0.
"""
An experiment, not part of the package: how far could ECG->report retrieval go on the excerpt if the ECG side were
read perfectly? A **label oracle** replaces the ECG embedding by the record's own PTB-XL statements and scores each
candidate report by the Jaccard overlap between the query record's statements and the candidate record's, at three
levels of detail: every coded statement, the 5 diagnostic superclasses plus the rhythms SR / AFIB / STACH / SBRAD /
SARRH, and the superclasses alone. Ranks are duplicate-aware exactly as `eval_merit.py --task retrieval` scores them
(an identical report text is a hit); ties, frequent at the coarse levels, are broken at random and the recall is
averaged over the tie-breaks. No model and no training: it measures what the reports let a perfect reader of each
level reach, i.e. whether the retrieval target (R@5 >= 3x chance) is capped by the data.

    python utils/retrieval_label_oracle.py data/ptbxl-sample [--folds 9 10]

Prints, per fold, the pool size, the number of distinct reports, the chance recall and each oracle's R@1/5/10 with a
95 % bootstrap interval over the queries. README, "Demo results", has the measurement.
"""

from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path

import numpy as np


ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

RHYTHMS = frozenset({"SR", "AFIB", "STACH", "SBRAD", "SARRH"})
LEVELS = ("every statement", "superclasses + rhythm", "superclasses")
RECALL_AT = (1, 5, 10)


def statement_sets(scp_codes: list[dict], superclass_of: dict[str, str], level: str) -> list[frozenset]:
    """Each record's statements at `level` (one of `LEVELS`) from its `scp_codes` and the statement -> superclass map."""
    if level == "every statement":
        return [frozenset(codes) for codes in scp_codes]
    superclasses = [frozenset(superclass_of[code] for code in codes if code in superclass_of) for codes in scp_codes]
    if level == "superclasses":
        return superclasses
    if level == "superclasses + rhythm":
        return [classes | (frozenset(codes) & RHYTHMS) for classes, codes in zip(superclasses, scp_codes)]
    raise ValueError(f"`level` must be one of {LEVELS}, got {level!r}.")


def jaccard_matrix(sets: list[frozenset]) -> np.ndarray:
    """`(n, n)` Jaccard overlaps (two empty sets overlap fully)."""
    return np.array([[len(a & b) / len(a | b) if a | b else 1.0 for b in sets] for a in sets])


def oracle_recall(
    similarity: np.ndarray, reports: list[str], n_tiebreaks: int = 200, seed: int = 0
) -> dict[int, np.ndarray]:
    """Per query, the recall@k (k in `RECALL_AT`) of ranking the pool's reports by `similarity` `(n, n)`, averaged
    over `n_tiebreaks` random tie-breaks; duplicate-aware as `merit_evaluation.retrieval.retrieval_ranks`."""
    from merit_evaluation.retrieval import retrieval_ranks

    generator = np.random.default_rng(seed)
    scale = np.diff(np.unique(similarity)).min(initial=1.0) / 2  # noise below the smallest gap: it only breaks ties
    hits = {k: np.zeros(len(reports)) for k in RECALL_AT}
    for _ in range(n_tiebreaks):
        ranks = retrieval_ranks(similarity + generator.uniform(0, scale, similarity.shape), reports, reports)
        for k in RECALL_AT:
            hits[k] += ranks <= k
    return {k: value / n_tiebreaks for k, value in hits.items()}


def bootstrap_interval(values: np.ndarray, n_bootstrap: int = 1000, seed: int = 0) -> tuple[float, float]:
    """95 % percentile interval of the mean of `values` over resampled queries."""
    generator = np.random.default_rng(seed)
    means = values[generator.integers(0, len(values), (n_bootstrap, len(values)))].mean(axis=1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def main(argv: list[str] | None = None) -> None:
    import pandas as pd

    from merit_evaluation.retrieval import chance_recall

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data_dir", help="A PTB-XL copy (ptbxl_database.csv, scp_statements.csv).")
    parser.add_argument("--folds", type=int, nargs="+", default=[9, 10], help="strat_fold values, one pool each.")
    args = parser.parse_args(argv)
    data_dir = Path(args.data_dir)
    table = pd.read_csv(data_dir / "ptbxl_database.csv")
    table = table[table.report.fillna("").str.strip() != ""]
    statements = pd.read_csv(data_dir / "scp_statements.csv", index_col=0)
    superclass_of = statements.diagnostic_class.dropna().to_dict()
    for fold in args.folds:
        pool = table[table.strat_fold == fold]
        reports = pool.report.tolist()
        codes = [ast.literal_eval(value) for value in pool.scp_codes]
        distinct = len({" ".join(report.lower().split()) for report in reports})
        chance = " / ".join(f"{chance_recall(reports, reports, k):.3f}" for k in RECALL_AT)
        print(f"\nfold {fold}: {len(reports)} reports ({distinct} distinct), chance R@1/5/10 {chance}\n")
        print("| oracle | R@1 | R@5 | R@10 |\n|---|---|---|---|")
        for level in LEVELS:
            recall = oracle_recall(jaccard_matrix(statement_sets(codes, superclass_of, level)), reports)
            cells = []
            for k in RECALL_AT:
                low, high = bootstrap_interval(recall[k])
                cells.append(f"{recall[k].mean():.3f} ({low:.3f}–{high:.3f})")
            print(f"| {level} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
