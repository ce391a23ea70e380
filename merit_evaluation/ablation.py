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

from .metrics import difference_markdown
from .results import ResultRow, paired_macro_auroc_difference, read_results


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


def _difference_cell(merit: ResultRow | None, other: ResultRow | None) -> tuple[str, dict | None]:
    difference = None if merit is None or other is None else paired_macro_auroc_difference(merit, other)
    if difference is None:
        return "—", None
    return difference_markdown(difference), {
        "difference": difference.value,
        "ci_low": difference.ci_low,
        "ci_high": difference.ci_high,
    }


def ablation_table(results_files: dict[str, list[str | PathLike]]) -> tuple[str, list[dict]]:
    """
    Builds the ablation table from the `results.json` files of every variant.

    Args:
        results_files (`dict[str, list[str or os.PathLike]]`): variant name -> its `results.json` files (one per
            label set). The random-init baseline rows are taken from whichever file holds them.

    Returns:
        `(markdown, records)`: a markdown table with one row per (task, label set) and one column per variant plus
        the random-init encoder (test macro AUROC with its 95 % bootstrap interval; mean over seeds is not taken:
        with several seeds each seed gets its own row), then the paired differences MERIT − each other column
        (the same bootstrap resamples for both, `paired_macro_auroc_difference`; bold where the 95 % interval
        excludes 0), and the same cells as JSON-ready dicts.
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
    merit_column, others = columns[0], columns[1:]
    difference_columns = [f"{merit_column} − {other}" for other in others]
    lines = [
        "| task | label set | seed | n test | " + " | ".join(columns + difference_columns) + " |",
        "|---|---|---|---|" + "---|" * (len(columns) + len(difference_columns)),
    ]
    records = []
    for (task, label_set, seed), by_column in sorted(cells.items()):
        n_test = next(iter(by_column.values())).n_test
        differences = [_difference_cell(by_column.get(merit_column), by_column.get(other)) for other in others]
        lines.append(
            f"| {task} | {label_set} | {seed} | {n_test} | "
            + " | ".join([_cell(by_column.get(column)) for column in columns] + [text for text, _ in differences])
            + " |"
        )
        for column, row in by_column.items():
            metric = row.metrics["macro_auroc"]
            records.append({
                "task": task, "label_set": label_set, "seed": seed, "n_test": row.n_test, "model": column,
                "macro_auroc": metric.value, "ci_low": metric.ci_low, "ci_high": metric.ci_high,
            })  # fmt: skip
        for other, (_, difference) in zip(others, differences):
            if difference is not None:
                records.append({
                    "task": task, "label_set": label_set, "seed": seed, "n_test": n_test,
                    "model": f"{merit_column} − {other}", "paired_difference": difference,
                })  # fmt: skip
    return "\n".join(lines) + "\n", records


def write_ablation_table(results_files: dict[str, list[str | PathLike]], output_dir: str | PathLike) -> str:
    """Writes `ablation.md` and `ablation.json` into `output_dir` and returns the markdown table."""
    markdown, records = ablation_table(results_files)
    output_dir = Path(output_dir)
    (output_dir / "ablation.md").write_text(markdown, encoding="utf-8")
    (output_dir / "ablation.json").write_text(json.dumps(records, indent=2), encoding="utf-8")
    return markdown
