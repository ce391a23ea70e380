# Copyright 2026 The MERIT authors. Licensed under the Apache License, Version 2.0.
"""
Compare pretraining checkpoints on the **validation** fold only (the test fold is never read), as the README's
recipe choices were made: each checkpoint's validation contrastive loss (from its `training_log.jsonl`), zero-shot
superdiagnostic macro AUROC with the default report-style prompts, and ECG->report recall@1/5/10 and median rank
among the validation reports (duplicate-aware, as `eval_merit.py --task retrieval`), then the **paired** bootstrap
difference of each checkpoint minus the first one on the same resamples of the same records.

    python utils/compare_checkpoints.py outputs/merit-ptbxl-sample runs/other-recipe [...] [--data_dir DIR]

Prints two markdown tables (values; differences with 95 % intervals, bold where the interval excludes 0).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np


ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def last_validation_entry(checkpoint: str) -> dict:
    """The last `val/...` entry of a checkpoint's `training_log.jsonl` (empty when there is none)."""
    path = Path(checkpoint) / "training_log.jsonl"
    entries = [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []
    validation = [entry for entry in entries if "val/contrastive_loss" in entry]
    return validation[-1] if validation else {}


def checkpoint_scores(checkpoint: str, data_dir: str, batch_size: int, device: str) -> dict:
    """Zero-shot scores and labels of the labelled validation records, retrieval ranks of the validation reports."""
    from merit_evaluation.data import load_evaluation_dataset, preprocess_ecg_inputs
    from merit_evaluation.harness import EvaluationHarness
    from merit_evaluation.prompts import class_prompts
    from merit_evaluation.report_generation import load_report_dataset
    from merit_evaluation.retrieval import (
        chance_recall,
        pool_ecg_embeddings,
        report_embeddings,
        retrieval_ranks,
    )
    from merit_evaluation.zero_shot import class_text_embeddings, project_ecg_features
    from modeling_merit import MeritModel, MeritProcessor
    from modeling_merit.zero_shot_merit import zero_shot_scores

    model = MeritModel.from_pretrained(checkpoint).eval()
    processor = MeritProcessor.from_pretrained(checkpoint)
    splits = load_evaluation_dataset("ptbxl", data_dir, "superdiagnostic")
    harness = EvaluationHarness(
        splits,
        processor.feature_extractor,
        dataset="ptbxl",
        label_set="superdiagnostic",
        model_name_or_path=checkpoint,
        model_revision=None,
        batch_size=batch_size,
        device=device,
        n_bootstrap=0,
    )
    ecg = project_ecg_features(model, harness.features("merit", model.ecg_model, "validation"))
    prompts = class_prompts("ptbxl", data_dir, "superdiagnostic", harness.class_names, prompt_style="report-style")
    scores = zero_shot_scores(ecg, class_text_embeddings(model, processor, prompts, device))

    pool = load_report_dataset(data_dir, "ptbxl")["validation"]
    reports = [str(report) for report in pool["report"]]
    processed = preprocess_ecg_inputs(pool, processor.feature_extractor, batch_size)
    pool_ecg = pool_ecg_embeddings(model, processed, batch_size, device, description="validation ECGs")
    ranks = retrieval_ranks(
        pool_ecg @ report_embeddings(model, processor, reports, batch_size, device).T, reports, reports
    )
    return {
        "labels": harness.labels("validation"),
        "scores": scores,
        "ranks": ranks,
        "chance_r5": chance_recall(reports, reports, 5),
        "n_reports": len(reports),
    }


def zero_shot_metric(labels: np.ndarray, scores: np.ndarray):
    """`WeightedMetrics` of the zero-shot macro AUROC."""
    from merit_evaluation.metrics import weighted_macro_auroc

    macro_auroc = weighted_macro_auroc(labels, scores)
    return lambda weights: {"zero_shot": macro_auroc(weights)["macro_auroc"]}


def retrieval_metric(ranks: np.ndarray):
    """`WeightedMetrics` of ECG->report recall@k (k in `merit_evaluation.retrieval.RECALL_AT`) over the queries."""
    from merit_evaluation.retrieval import RECALL_AT

    def values(weights: np.ndarray) -> dict[str, np.ndarray]:
        weights = np.asarray(weights, dtype=float)
        return {f"R@{k}": weights @ (ranks <= k) / weights.sum(axis=1) for k in RECALL_AT}

    return values


def comparison_tables(names: list[str], scored: list[dict], n_bootstrap: int, seed: int) -> str:
    """The markdown tables of values and of paired differences vs the first checkpoint."""
    from merit_evaluation.metrics import difference_markdown, paired_bootstrap_differences
    from merit_evaluation.retrieval import RECALL_AT

    lines = [
        "| checkpoint | val InfoNCE (chance) | zero-shot | R@1 | R@5 | R@10 | chance R@5 | median rank |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, entry in zip(names, scored):
        log = last_validation_entry(name)
        infonce = (
            f"{log['val/contrastive_loss']:.3f} ({log['val/contrastive_chance']:.3f})"
            if "val/contrastive_chance" in log
            else "—"
        )
        zero_shot = zero_shot_metric(entry["labels"], entry["scores"])(np.ones((1, len(entry["labels"]))))
        recall = retrieval_metric(entry["ranks"])(np.ones((1, len(entry["ranks"]))))
        lines.append(
            f"| {name} | {infonce} | {zero_shot['zero_shot'][0]:.3f} | "
            + " | ".join(f"{recall[f'R@{k}'][0]:.3f}" for k in RECALL_AT)
            + f" | {entry['chance_r5']:.3f} | {np.median(entry['ranks']):.0f} |"
        )
    lines += ["", "| checkpoint − first | zero-shot | R@1 | R@5 | R@10 |", "|---|---|---|---|---|"]
    base = scored[0]
    for name, entry in zip(names[1:], scored[1:]):
        cells = []
        differences = paired_bootstrap_differences(
            zero_shot_metric(entry["labels"], entry["scores"]),
            zero_shot_metric(base["labels"], base["scores"]),
            len(base["labels"]),
            n_bootstrap=n_bootstrap,
            seed=seed,
        )
        differences.update(
            paired_bootstrap_differences(
                retrieval_metric(entry["ranks"]),
                retrieval_metric(base["ranks"]),
                len(base["ranks"]),
                n_bootstrap=n_bootstrap,
                seed=seed,
            )
        )
        for metric in ("zero_shot", *(f"R@{k}" for k in RECALL_AT)):
            cells.append(difference_markdown(differences[metric]))
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoints", nargs="+", help="Pretraining checkpoints; the first is the reference.")
    parser.add_argument("--data_dir", default=str(ROOT / "data" / "ptbxl-sample"), help="A PTB-XL copy.")
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--n_bootstrap", type=int, default=1000, help="Paired bootstrap resamples.")
    parser.add_argument("--seed", type=int, default=0, help="Bootstrap seed.")
    args = parser.parse_args(argv)
    scored = [checkpoint_scores(path, args.data_dir, args.batch_size, args.device) for path in args.checkpoints]
    if len({len(entry["labels"]) for entry in scored}) != 1 or len({entry["n_reports"] for entry in scored}) != 1:
        raise ValueError("The checkpoints were scored on different validation records; use one --data_dir.")
    tables = comparison_tables(args.checkpoints, scored, args.n_bootstrap, args.seed)
    print(tables)
    return tables


if __name__ == "__main__":
    main()
