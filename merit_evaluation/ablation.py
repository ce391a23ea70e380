# Copyright 2026 The MERIT authors.
# Licensed under the Apache License, Version 2.0.
"""The pretraining-objective ablation: MERIT (both losses) against masked ECG modelling only, contrastive alignment
only and a randomly initialised encoder, with one evaluation harness. `ablation_merit.py` runs it; this module holds
what it needs that is not a process launch: the variants and the table built from the `results.json` files."""

from __future__ import annotations

import json
from dataclasses import dataclass
from os import PathLike
from pathlib import Path

from .results import ResultRow, read_results


@dataclass(frozen=True)
class AblationVariant:
    """One pretraining objective: its name, the `MeritConfig` overrides that select it, and whether it trains the
    text side (zero-shot is only meaningful then)."""

    name: str
    config_overrides: dict
    has_text_alignment: bool


ABLATION_VARIANTS = (
    AblationVariant("MERIT (both losses)", {}, True),
    AblationVariant("masked modelling only", {"contrastive_loss_weight": 0.0}, False),
    AblationVariant("contrastive only", {"reconstruction_loss_weight": 0.0}, True),
)
RANDOM_ENCODER = "random-init encoder"
"""The linear-probe baseline of `eval_merit.py` (same architecture, random weights), evaluated with MERIT's run."""


def variant_directory_name(variant: AblationVariant) -> str:
    """A folder name for `variant` (`merit-both-losses`, ...)."""
    slug = "".join(character if character.isalnum() else "-" for character in variant.name.lower())
    return "-".join(part for part in slug.split("-") if part)


def _cell(row: ResultRow | None) -> str:
    if row is None:
        return "—"
    metric = row.metrics["macro_auroc"]
    if metric.ci_low is None:
        return f"{metric.value:.3f}"
    return f"{metric.value:.3f} ({metric.ci_low:.3f}–{metric.ci_high:.3f})"


def ablation_table(results_files: dict[str, list[str | PathLike]]) -> tuple[str, list[dict]]:
    """
    Builds the ablation table from the `results.json` files of every variant.

    Args:
        results_files (`dict[str, list[str or os.PathLike]]`): variant name -> its `results.json` files (one per
            label set). The random-init baseline rows are taken from whichever file holds them.

    Returns:
        `(markdown, records)`: a markdown table with one row per (task, label set) and one column per variant plus
        the random-init encoder (test macro AUROC with its 95 % bootstrap interval; mean over seeds is not taken:
        with several seeds each seed gets its own row), and the same cells as JSON-ready dicts.
    """
    cells: dict[tuple, dict[str, ResultRow]] = {}
    for variant_name, paths in results_files.items():
        for path in paths:
            for row in read_results(path):
                if row.task not in ("linear-probe", "zero-shot") or row.fraction != 1.0:
                    continue
                column = (
                    RANDOM_ENCODER if row.baseline == "random-init" else variant_name if row.baseline is None else None
                )
                if column is None:
                    continue
                cells.setdefault((row.task, row.label_set, row.seed), {})[column] = row
    columns = [*results_files, RANDOM_ENCODER]
    lines = [
        "| task | label set | seed | n test | " + " | ".join(columns) + " |",
        "|---|---|---|---|" + "---|" * len(columns),
    ]
    records = []
    for (task, label_set, seed), by_column in sorted(cells.items()):
        n_test = next(iter(by_column.values())).n_test
        lines.append(
            f"| {task} | {label_set} | {seed} | {n_test} | "
            + " | ".join(_cell(by_column.get(column)) for column in columns)
            + " |"
        )
        for column, row in by_column.items():
            metric = row.metrics["macro_auroc"]
            records.append({
                "task": task, "label_set": label_set, "seed": seed, "n_test": row.n_test, "model": column,
                "macro_auroc": metric.value, "ci_low": metric.ci_low, "ci_high": metric.ci_high,
            })  # fmt: skip
    return "\n".join(lines) + "\n", records


def write_ablation_table(results_files: dict[str, list[str | PathLike]], output_dir: str | PathLike) -> str:
    """Writes `ablation.md` and `ablation.json` into `output_dir` and returns the markdown table."""
    markdown, records = ablation_table(results_files)
    output_dir = Path(output_dir)
    (output_dir / "ablation.md").write_text(markdown, encoding="utf-8")
    (output_dir / "ablation.json").write_text(json.dumps(records, indent=2), encoding="utf-8")
    return markdown
