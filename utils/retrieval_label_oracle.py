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

**Imperfect readers.** How well must the ECG be read for a given recall? A *simulated reader* of per-class AUROC
`a` (`--reader_auroc`) sees, for each of the 10 classes of the "superclasses + rhythm" level, a score drawn from the
binormal model (`N(mu, 1)` for a record of the class, `N(0, 1)` otherwise, `mu = sqrt(2) * Phi^-1(a)`, so that the
class's AUROC is `a` in expectation) and turns it into the posterior probability of the class (prevalence of the
training folds 1-8). Each candidate report is scored by the Bernoulli log-likelihood of its record's classes under
those probabilities; recall is averaged over `--draws` score draws (and random tie-breaks). With `--checkpoint`,
two real readers are added on the same pools: the checkpoint's own ECG->report cosine (as `eval_merit.py --task
retrieval` scores it) and a **linear probe** (L2-regularised logistic regression per class) on the same projected
ECG embeddings, fitted on the training folds' records with a report and scored like the simulated readers: whether
the contrastive alignment retrieves what the embedding's diagnostic content allows.

    python utils/retrieval_label_oracle.py data/ptbxl-sample [--folds 9 10] [--checkpoint outputs/merit-ptbxl-sample]

Prints, per fold, the pool size, the number of distinct reports, the chance recall and each oracle's and reader's
R@1/5/10 with a 95 % bootstrap interval over the queries. README, "Demo results", has the measurement.
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
READER_LEVEL = "superclasses + rhythm"
READER_CLASSES = ("NORM", "MI", "STTC", "CD", "HYP", *sorted(RHYTHMS))
"""The classes a simulated or probe reader reads (level `READER_LEVEL`)."""
DEFAULT_READER_AUROCS = (0.75, 0.8, 0.85, 0.9, 0.95)
PROBE_WEIGHT_DECAYS = (0.0, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2)
"""The L2 penalties (on the mean binary cross-entropy) `choose_weight_decay` picks the probe reader's from."""


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


def label_matrix(sets: list[frozenset], classes: tuple[str, ...] = READER_CLASSES) -> np.ndarray:
    """`(n, len(classes))` float multi-hot matrix of statement sets."""
    return np.array([[name in statements for name in classes] for statements in sets], dtype=float)


def simulated_reader_probabilities(
    labels: np.ndarray, auroc: float, prevalence: np.ndarray, generator: np.random.Generator
) -> np.ndarray:
    """
    What a reader of per-class AUROC `auroc` believes: binormal scores (`N(mu, 1)` for the positives of a class,
    `N(0, 1)` for its negatives, `mu = sqrt(2) * Phi^-1(auroc)`) turned into the posterior probability of each class
    given its `prevalence` `(C,)`.

    Args:
        labels (`np.ndarray` of shape `(n, C)`): the records' true classes (0/1).
        auroc (`float`): in (0.5, 1).
        prevalence (`np.ndarray` of shape `(C,)`): in (0, 1).
        generator (`np.random.Generator`): draws the scores.

    Returns:
        `np.ndarray` of shape `(n, C)`: probabilities in (0, 1).
    """
    from statistics import NormalDist

    if not 0.5 < auroc < 1.0:
        raise ValueError(f"`auroc` must be in (0.5, 1), got {auroc}.")
    shift = np.sqrt(2.0) * NormalDist().inv_cdf(auroc)
    scores = labels * shift + generator.standard_normal(labels.shape)
    prior_odds = prevalence / (1.0 - prevalence)
    # likelihood ratio N(s; mu, 1) / N(s; 0, 1) = exp(mu * s - mu^2 / 2)
    log_odds = np.log(prior_odds) + shift * scores - shift**2 / 2
    return 1.0 / (1.0 + np.exp(-np.clip(log_odds, -30.0, 30.0)))


def likelihood_scores(probabilities: np.ndarray, candidate_labels: np.ndarray) -> np.ndarray:
    """`(n, m)` Bernoulli log-likelihood of each candidate's classes `(m, C)` under each query's probabilities
    `(n, C)` (clipped to [1e-6, 1 - 1e-6])."""
    probabilities = np.clip(probabilities, 1e-6, 1.0 - 1e-6)
    return np.log(probabilities) @ candidate_labels.T + np.log(1.0 - probabilities) @ (1.0 - candidate_labels).T


def simulated_reader_recall(
    labels: np.ndarray, prevalence: np.ndarray, reports: list[str], auroc: float, n_draws: int = 20, seed: int = 0
) -> dict[int, np.ndarray]:
    """Per query, the recall@k of a simulated reader (`simulated_reader_probabilities`) retrieving among the pool's
    own records `labels` `(n, C)`, averaged over `n_draws` score draws, each with 20 random tie-breaks."""
    generator = np.random.default_rng(seed)
    totals = {k: np.zeros(len(reports)) for k in RECALL_AT}
    for draw in range(n_draws):
        probabilities = simulated_reader_probabilities(labels, auroc, prevalence, generator)
        recall = oracle_recall(likelihood_scores(probabilities, labels), reports, n_tiebreaks=20, seed=seed + draw)
        for k in RECALL_AT:
            totals[k] += recall[k]
    return {k: value / n_draws for k, value in totals.items()}


def fit_probe(features: np.ndarray, labels: np.ndarray, weight_decay: float = 1e-3) -> tuple[np.ndarray, np.ndarray]:
    """Logistic regression per class on `(n, D)` features and `(n, C)` labels, every record weighted the same (so the
    probabilities follow the class rates), with the penalty `weight_decay * ||W||^2` on the mean cross-entropy
    (`merit_training.findings.fit_logistic_regression`, L-BFGS); returns the weights `(D, C)` and biases `(C,)`."""
    import torch

    from merit_training.findings import fit_logistic_regression

    weight, bias = fit_logistic_regression(
        torch.as_tensor(features), torch.as_tensor(labels), l2=2 * weight_decay, max_iter=500, balanced=False
    )
    return weight.T.numpy(), bias.numpy()


def choose_weight_decay(
    features: np.ndarray,
    labels: np.ndarray,
    candidates: tuple[float, ...] = PROBE_WEIGHT_DECAYS,
    n_folds: int = 5,
    seed: int = 0,
) -> float:
    """
    The `fit_probe` weight decay with the lowest held-out binary cross-entropy (the negative log-likelihood that the
    readers rank candidates by) in `n_folds`-fold cross-validation over the records.

    Args:
        features (`np.ndarray` of shape `(n, D)`), labels (`np.ndarray` of shape `(n, C)`): the training records.
        candidates (`tuple[float, ...]`): the weight decays tried.
        n_folds (`int`), seed (`int`): the folds, a seeded random partition of the records.

    Returns:
        `float`: one of `candidates`.
    """
    folds = np.random.default_rng(seed).permutation(len(features)) % n_folds
    losses = []
    for weight_decay in candidates:
        total = 0.0
        for fold in range(n_folds):
            held_out = folds == fold
            weights = fit_probe(features[~held_out], labels[~held_out], weight_decay)
            probabilities = np.clip(probe_probabilities(weights, features[held_out]), 1e-6, 1.0 - 1e-6)
            y = labels[held_out]
            total -= float((y * np.log(probabilities) + (1.0 - y) * np.log(1.0 - probabilities)).sum())
        losses.append(total)
    return candidates[int(np.argmin(losses))]


def probe_probabilities(weights: tuple[np.ndarray, np.ndarray], features: np.ndarray) -> np.ndarray:
    """`(n, C)` class probabilities of a `fit_probe` result on `(n, D)` features."""
    weight, bias = weights
    return 1.0 / (1.0 + np.exp(-np.clip(features @ weight + bias, -30.0, 30.0)))


def checkpoint_embeddings(checkpoint: str, data_dir: Path) -> dict[str, dict]:
    """Per split of `merit_evaluation.report_generation.load_report_dataset` (records with a report): `ecg_id`, the
    checkpoint's unit-norm ECG embeddings `(n, E)` and report embeddings `(n, E)`, as the retrieval task computes
    them."""
    from transformers import AutoProcessor

    from merit_evaluation.data import preprocess_ecg_inputs
    from merit_evaluation.report_generation import load_report_dataset
    from merit_evaluation.retrieval import pool_ecg_embeddings, report_embeddings
    from modeling_merit import MeritModel

    model = MeritModel.from_pretrained(checkpoint)
    processor = AutoProcessor.from_pretrained(checkpoint)
    embeddings = {}
    for name, split in load_report_dataset(data_dir, "ptbxl").items():
        processed = preprocess_ecg_inputs(split, processor.feature_extractor, 64, description=name)
        embeddings[name] = {
            "ecg_id": list(split["ecg_id"]),
            "ecg": pool_ecg_embeddings(model, processed, 64, "cpu", description=f"ECG features, {name}"),
            "text": report_embeddings(model, processor, [str(report) for report in split["report"]], 64, "cpu"),
        }
    return embeddings


def bootstrap_interval(values: np.ndarray, n_bootstrap: int = 1000, seed: int = 0) -> tuple[float, float]:
    """95 % percentile interval of the mean of `values` over resampled queries."""
    generator = np.random.default_rng(seed)
    means = values[generator.integers(0, len(values), (n_bootstrap, len(values)))].mean(axis=1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def print_row(name: str, recall: dict[int, np.ndarray]) -> None:
    """One markdown row: R@1/5/10 with 95 % bootstrap intervals over the queries."""
    cells = []
    for k in RECALL_AT:
        low, high = bootstrap_interval(recall[k])
        cells.append(f"{recall[k].mean():.3f} ({low:.3f}–{high:.3f})")
    print(f"| {name} | " + " | ".join(cells) + " |")


def main(argv: list[str] | None = None) -> None:
    import pandas as pd

    from merit_evaluation.metrics import macro_roc_auc
    from merit_evaluation.retrieval import chance_recall, retrieval_ranks

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data_dir", help="A PTB-XL copy (ptbxl_database.csv, scp_statements.csv).")
    parser.add_argument("--folds", type=int, nargs="+", default=[9, 10], help="strat_fold values, one pool each.")
    parser.add_argument(
        "--reader_auroc", type=float, nargs="*", default=list(DEFAULT_READER_AUROCS),
        help="Per-class AUROCs of the simulated readers (none: no simulated reader).",
    )  # fmt: skip
    parser.add_argument("--draws", type=int, default=20, help="Score draws per simulated reader.")
    parser.add_argument(
        "--checkpoint", help="A MERIT pretraining checkpoint: adds its cosine retrieval and a linear-probe reader "
        "on its ECG embeddings (folds 9 and 10 only: the validation and test splits).",
    )  # fmt: skip
    args = parser.parse_args(argv)
    if any(not 0.5 < auroc < 1.0 for auroc in args.reader_auroc):
        parser.error(f"--reader_auroc values must lie in (0.5, 1), got {args.reader_auroc}.")
    if args.draws < 1:
        parser.error(f"--draws must be at least 1, got {args.draws}.")
    data_dir = Path(args.data_dir)
    table = pd.read_csv(data_dir / "ptbxl_database.csv")
    table = table[table.report.fillna("").str.strip() != ""]
    statements = pd.read_csv(data_dir / "scp_statements.csv", index_col=0)
    superclass_of = statements.diagnostic_class.dropna().to_dict()

    def reader_labels(rows: pd.DataFrame) -> np.ndarray:
        codes = [ast.literal_eval(value) for value in rows.scp_codes]
        return label_matrix(statement_sets(codes, superclass_of, READER_LEVEL))

    training = table[table.strat_fold <= 8]
    prevalence = np.clip(reader_labels(training).mean(axis=0), 1e-3, 1 - 1e-3)
    embeddings = checkpoint_embeddings(args.checkpoint, data_dir) if args.checkpoint else None
    probe = None
    if embeddings is not None:
        by_id = training.set_index("ecg_id")
        train_features = embeddings["train"]["ecg"]
        train_labels = reader_labels(by_id.loc[embeddings["train"]["ecg_id"]])
        probe_weight_decay = choose_weight_decay(train_features, train_labels)
        probe = fit_probe(train_features, train_labels, probe_weight_decay)
    for fold in args.folds:
        pool = table[table.strat_fold == fold]
        split = {9: "validation", 10: "test"}.get(fold)
        if embeddings is not None and split is not None:  # the checkpoint's record order
            pool = pool.set_index("ecg_id").loc[embeddings[split]["ecg_id"]].reset_index()
        reports = pool.report.tolist()
        codes = [ast.literal_eval(value) for value in pool.scp_codes]
        distinct = len({" ".join(report.lower().split()) for report in reports})
        chance = " / ".join(f"{chance_recall(reports, reports, k):.3f}" for k in RECALL_AT)
        print(f"\nfold {fold}: {len(reports)} reports ({distinct} distinct), chance R@1/5/10 {chance}\n")
        print("| oracle or reader | R@1 | R@5 | R@10 |\n|---|---|---|---|")
        for level in LEVELS:
            print_row(level, oracle_recall(jaccard_matrix(statement_sets(codes, superclass_of, level)), reports))
        labels = reader_labels(pool)
        for auroc in args.reader_auroc:
            recall = simulated_reader_recall(labels, prevalence, reports, auroc, args.draws)
            print_row(f"simulated reader, per-class AUROC {auroc:g} ({READER_LEVEL})", recall)
        if embeddings is not None and split is not None:
            ecg, text = embeddings[split]["ecg"], embeddings[split]["text"]
            ranks = retrieval_ranks(ecg @ text.T, reports, reports)
            print_row("the checkpoint: ECG->report cosine", {k: (ranks <= k).astype(float) for k in RECALL_AT})
            probabilities = probe_probabilities(probe, ecg)
            auroc = macro_roc_auc(labels, probabilities)
            name = (
                f"linear probe on the checkpoint's ECG embeddings ({READER_LEVEL}; weight decay {probe_weight_decay:g} "
                f"by 5-fold cross-validation on the training folds; its macro AUROC here {auroc:.3f}, mean probability "
                f"{probabilities.mean():.3f} for a label rate of {labels.mean():.3f})"
            )
            print_row(name, oracle_recall(likelihood_scores(probabilities, labels), reports))


if __name__ == "__main__":
    main()
