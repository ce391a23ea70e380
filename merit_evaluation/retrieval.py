# Copyright 2026 The MERIT authors.
# Licensed under the Apache License, Version 2.0.
"""ECG-report retrieval (`eval_merit.py --task retrieval`): does the aligned space find the right report?

The pool is every test record of a dataset with reports (its registry spec's `report_config`; PTB-XL: fold 10 of the
`pretraining` configuration) whose report is not empty. Each ECG is embedded with `get_ecg_features` and each
report with `get_text_features` (both L2-normalised), and every ECG is scored against every report of the pool by
cosine similarity: ECG->report ranks the pool's reports for each ECG, report->ECG the pool's ECGs for each report.

**Duplicate-aware scoring.** Reports repeat (PTB-XL: "sinus rhythm. normal ecg." and its German twin are frequent),
and a report identical to the query's own (same text after whitespace normalisation and lower-casing) is as right
as the query's own copy. So a candidate is a *hit* when its report text equals the query's, and a query's rank is
1 + the number of non-hit candidates scored above its best hit. The number of distinct reports in the pool is
written to the rows' `details` and printed; with all reports distinct this is the usual retrieval protocol
(ECG-Chat's: R@1/5/10 and the median rank over the whole test split as pool).

Metrics (`recall@k`: the fraction of queries with a hit in the top k): `ecg_to_report_r1/r5/r10`,
`ecg_to_report_median_rank`, `report_to_ecg_r1/r5/r10`, `report_to_ecg_median_rank`, each with a percentile
bootstrap interval over the queries. The chance level of recall@k (random scores) is computed exactly from the
pool's duplicate structure and written to `details` (`chance_ecg_to_report_r5`, ...).

Baselines in the same harness: `random-init-encoder` (the trained text tower and projections with a randomly
initialised ECG encoder of the same architecture, seeded) and `shuffled-pairing` (each ECG scored against the
reports of a seeded derangement of the pool: what the metrics give when the pairing carries no information; its
recall matches the computed chance level up to noise).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

import datasets
import numpy as np

from merit_training.report_generation import report_embeddings

from .data import preprocess_ecg_inputs
from .harness import extract_pooled_features
from .metrics import MetricValue, bootstrap_indices, percentile_interval
from .report_generation import derangement, load_report_dataset, random_init_encoder
from .results import ResultRow
from .zero_shot import project_ecg_features


logger = logging.getLogger(__name__)

RETRIEVAL_TASK = "retrieval"
RETRIEVAL_LABEL_SET = "report"
RECALL_AT = (1, 5, 10)
DIRECTIONS = ("ecg_to_report", "report_to_ecg")
RETRIEVAL_BASELINES = ("random-init-encoder", "shuffled-pairing")
CONFIDENCE_LEVEL = 0.95


def normalised_report(report: str) -> str:
    """The text two reports must share to count as the same report: lower case, whitespace collapsed."""
    return " ".join(str(report).lower().split())


def retrieval_ranks(similarity: np.ndarray, query_texts: Sequence[str], candidate_texts: Sequence[str]) -> np.ndarray:
    """
    The duplicate-aware rank of each query (1 = a hit scored highest).

    Args:
        similarity (`np.ndarray` of shape `(n_queries, n_candidates)`): higher = more similar.
        query_texts (`Sequence[str]`): the report of each query (an ECG's own report, or the query report).
        candidate_texts (`Sequence[str]`): the report of each candidate.

    Returns:
        `np.ndarray` of shape `(n_queries,)`, int: 1 + the number of non-hit candidates scored strictly above the
        query's best-scored hit (a candidate whose normalised report equals the query's).
    """
    queries = np.array([normalised_report(text) for text in query_texts], dtype=object)
    candidates = np.array([normalised_report(text) for text in candidate_texts], dtype=object)
    hits = queries[:, None] == candidates[None, :]
    if not hits.any(axis=1).all():
        missing = int((~hits.any(axis=1)).sum())
        raise ValueError(f"{missing} queries have no matching candidate; every query's report must be in the pool.")
    best_hit = np.where(hits, similarity, -np.inf).max(axis=1)
    return 1 + ((similarity > best_hit[:, None]) & ~hits).sum(axis=1)


def chance_recall(query_texts: Sequence[str], candidate_texts: Sequence[str], k: int) -> float:
    """Expected recall@k of random scores: for a query with `m` hits among `n` candidates, `1 - C(n-m, k) / C(n, k)`,
    averaged over the queries."""
    candidates = [normalised_report(text) for text in candidate_texts]
    n = len(candidates)
    counts = {}
    for text in candidates:
        counts[text] = counts.get(text, 0) + 1
    values = [
        1.0 - math.comb(n - counts[normalised_report(text)], k) / math.comb(n, k) if k < n else 1.0
        for text in query_texts
    ]
    return float(np.mean(values))


def retrieval_metrics(
    ranks: dict[str, np.ndarray], n_bootstrap: int, seed: int
) -> tuple[dict[str, MetricValue], dict[str, int | float]]:
    """
    Recall@1/5/10 and the median rank of each direction, with percentile bootstrap intervals over the queries.

    Args:
        ranks (`dict[str, np.ndarray]`): direction (`DIRECTIONS`) -> ranks `(n_queries,)` of `retrieval_ranks`.
        n_bootstrap (`int`): resamples (0: no intervals).
        seed (`int`): bootstrap seed.

    Returns:
        `(metrics, bootstrap)`: `{f"{direction}_r{k}", f"{direction}_median_rank": MetricValue}` and the bootstrap
        summary for the row.
    """

    def statistics(direction_ranks: np.ndarray) -> dict[str, float]:
        values = {f"r{k}": float(np.mean(direction_ranks <= k)) for k in RECALL_AT}
        values["median_rank"] = float(np.median(direction_ranks))
        return values

    metrics = {}
    for direction, direction_ranks in ranks.items():
        point = statistics(direction_ranks)
        resampled = {name: [] for name in point}
        for resample in range(n_bootstrap):
            indices = bootstrap_indices(len(direction_ranks), resample, seed)
            for name, value in statistics(direction_ranks[indices]).items():
                resampled[name].append(value)
        for name, value in point.items():
            low, high = (
                percentile_interval(np.array(resampled[name]), CONFIDENCE_LEVEL) if n_bootstrap else (None, None)
            )
            metrics[f"{direction}_{name}"] = MetricValue(value=value, ci_low=low, ci_high=high)
    bootstrap = {"n_resamples": n_bootstrap, "confidence_level": CONFIDENCE_LEVEL, "seed": seed}
    return metrics, bootstrap


def pool_ecg_embeddings(
    dual_model,
    processed: datasets.Dataset,
    batch_size: int,
    device,
    ecg_model=None,
    description: str = "Retrieval ECG features",
) -> np.ndarray:
    """Unit-norm ECG embeddings `(n_records, projection_dim)` of a `preprocess_ecg_inputs` output: the pooled features
    of `ecg_model` (default: the dual model's own ECG tower) through `dual_model`'s ECG projection, as retrieval scores
    them."""
    pooled = extract_pooled_features(ecg_model or dual_model.ecg_model, processed, batch_size, device, description)
    return project_ecg_features(dual_model, pooled)


def retrieval_pool(splits: datasets.DatasetDict, split: str = "test") -> datasets.Dataset:
    """The records of `split` to retrieve among: every record of `load_report_dataset`'s split, which keeps only
    records with a non-empty report (a record without a report cannot be retrieved)."""
    return splits[split]


def run_retrieval(
    dual_model,
    processor,
    pool: datasets.Dataset,
    *,
    dataset: str,
    model_name_or_path: str,
    model_revision: str | None,
    seeds: Sequence[int],
    n_bootstrap: int,
    batch_size: int,
    device,
    baselines: bool = True,
    split: str = "test",
) -> list[ResultRow]:
    """
    Retrieval rows of MERIT and, with `baselines`, of `RETRIEVAL_BASELINES`, one per seed (the seed changes the
    bootstrap resamples, the derangement of `shuffled-pairing` and the random encoder's initialisation).

    Args:
        dual_model (`MeritModel`): the checkpoint's dual encoder.
        processor (`MeritProcessor`): its processor (feature extractor and tokenizer).
        pool (`datasets.Dataset`): the records to retrieve among (`retrieval_pool`), with `report`.
        dataset, model_name_or_path, model_revision: written to the rows.
        seeds, n_bootstrap, batch_size, device: see `eval_merit.py --help`.
        baselines (`bool`, defaults to `True`): also evaluate the baselines.
        split (`str`, defaults to `"test"`): the split the pool comes from, written to the rows and the notes.

    Returns:
        `list[ResultRow]` of task `retrieval`.
    """
    if len(pool) < 2:
        raise ValueError(f"Retrieval needs at least 2 {split} records with a report; the pool has {len(pool)}.")
    reports = [str(report) for report in pool["report"]]
    processed = preprocess_ecg_inputs(
        pool, processor.feature_extractor, batch_size, "Preprocessing the retrieval pool"
    )
    text = report_embeddings(dual_model, processor, reports, batch_size, device)
    n_distinct = len({normalised_report(report) for report in reports})
    details = {
        "pool": f"{len(reports)} {split} records with a report",
        "distinct_reports": str(n_distinct),
        "hit": "a candidate whose report equals the query's (lower case, whitespace collapsed)",
        **{
            f"chance_{direction}_r{k}": f"{chance_recall(reports, reports, k):.4f}"
            for direction in DIRECTIONS
            for k in RECALL_AT
        },
    }

    def row(ecg: np.ndarray, candidate_reports: Sequence[str], seed: int, baseline: str | None) -> ResultRow:
        similarity = ecg @ text.T
        ranks = {
            "ecg_to_report": retrieval_ranks(similarity, candidate_reports, reports),
            "report_to_ecg": retrieval_ranks(similarity.T, reports, candidate_reports),
        }
        metrics, bootstrap = retrieval_metrics(ranks, n_bootstrap, seed)
        return ResultRow(
            task=RETRIEVAL_TASK,
            dataset=dataset,
            label_set=RETRIEVAL_LABEL_SET,
            fraction=1.0,
            seed=seed,
            model=model_name_or_path,
            model_revision=model_revision,
            baseline=baseline,
            n_test=len(reports),
            metrics=metrics,
            per_class_auroc={},
            thresholds_source=None,
            bootstrap=bootstrap,
            details=details,
            split=split,
        )

    merit_ecg = pool_ecg_embeddings(dual_model, processed, batch_size, device)
    rows = []
    for seed in seeds:
        rows.append(row(merit_ecg, reports, seed, None))
        if baselines:
            random_ecg = pool_ecg_embeddings(
                dual_model, processed, batch_size, device, random_init_encoder(dual_model.ecg_model, seed)
            )
            rows.append(row(random_ecg, reports, seed, "random-init-encoder"))
            # ECG i is paired with the report of record permutation[i]: the pairing carries no information
            permutation = derangement(len(reports), seed)
            rows.append(row(merit_ecg, [reports[index] for index in permutation], seed, "shuffled-pairing"))
    logger.info("Retrieval pool: %d %s records, %d distinct reports.", len(reports), split, n_distinct)
    return rows


def run_retrieval_task(
    model_name_or_path: str,
    data_dir,
    *,
    dataset: str,
    revision: str | None = None,
    cache_dir=None,
    device="cpu",
    sampling_rate: int | None = None,
    seeds: Sequence[int] = (0,),
    n_bootstrap: int = 1000,
    batch_size: int = 64,
    baselines: bool = True,
    split: str = "test",
) -> tuple[list[ResultRow], list[str]]:
    """`eval_merit.py --task retrieval`: load the dual encoder and the reports of the dataset's `split` (`test`, or
    `validation` to choose settings without reading the test reports), run `run_retrieval`.

    Returns:
        `(rows, notes)`: the result rows and the lines printed under the table (pool size, distinct reports, chance).
    """
    from pathlib import Path

    from transformers import AutoConfig, AutoProcessor

    from modeling_merit import MeritModel

    hub_kwargs = {"revision": revision, "cache_dir": cache_dir}
    architectures = set(
        getattr(AutoConfig.from_pretrained(model_name_or_path, **hub_kwargs), "architectures", None) or []
    )
    if not {"MeritModel", "MeritForPreTraining"} & architectures:
        raise ValueError(
            f"--task retrieval needs a checkpoint with a trained text tower (MeritModel or MeritForPreTraining); "
            f"{model_name_or_path} holds {sorted(architectures) or 'an unknown architecture'}."
        )
    dual_model = MeritModel.from_pretrained(model_name_or_path, **hub_kwargs)
    processor = AutoProcessor.from_pretrained(model_name_or_path, **hub_kwargs)
    splits = load_report_dataset(data_dir, dataset, sampling_rate=sampling_rate, cache_dir=cache_dir)
    pool = retrieval_pool(splits, split)
    local = Path(model_name_or_path).exists()
    rows = run_retrieval(
        dual_model,
        processor,
        pool,
        dataset=dataset,
        model_name_or_path=model_name_or_path,
        model_revision=None if local else getattr(dual_model.config, "_commit_hash", None) or revision,
        seeds=seeds,
        n_bootstrap=n_bootstrap,
        batch_size=batch_size,
        device=device,
        baselines=baselines,
        split=split,
    )
    details = rows[0].details
    chance = ", ".join(f"R@{k} {float(details[f'chance_ecg_to_report_r{k}']):.3f}" for k in RECALL_AT)
    notes = [
        f"Note: retrieval pool = {details['pool']}, {details['distinct_reports']} distinct reports; a retrieved "
        f"report identical to the query's counts as a hit. Chance level (ECG->report): {chance}."
    ]
    return rows, notes
