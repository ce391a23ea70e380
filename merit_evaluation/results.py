# Copyright 2026 The MERIT authors.
# Licensed under the Apache License, Version 2.0.
"""The `results.json` schema, its markdown table, and the model card's `model-index`.

`results.json` is `{"schema_version": 1, "results": [row, ...]}`; each row is one evaluation of one model
(MERIT or a baseline) in one setting:

| field | type | meaning |
|---|---|---|
| `task` | str | `linear-probe`, `finetune`, `zero-shot`, `robustness`, `report-generation` or `retrieval` |
| `dataset` | str | e.g. `ptbxl`, `cpsc2018`, `chapman` |
| `label_set` | str | e.g. `superdiagnostic`; `report` for report generation |
| `fraction` | float | fraction of the training labels used, in (0, 1] (1.0 for zero-shot) |
| `seed` | int | seed of the label-fraction sample, the training run and the bootstrap |
| `model` | str | path or Hub id of the evaluated checkpoint (for a baseline: what it was built from) |
| `model_revision` | str or null | Hub revision / commit of `model` |
| `baseline` | str or null | null for MERIT, else the baseline's name (e.g. `random-init`, `supervised-scratch`, `ecg-shuffled`) |
| `n_test` | int | number of test samples |
| `metrics` | {name: {value, ci_low, ci_high}} | `macro_auroc` (primary), `macro_f1`, `fmax`; report generation: `rougeL` (primary), `meteor`, `bleu1`..`bleu4`, `rouge1`, `rouge2`, `cider_d`, `bertscore_*`, with PTB-XL statements `ce_*` (clinical efficacy); retrieval: `ecg_to_report_r5` (primary), `_r1`, `_r10`, `_median_rank` and the same for `report_to_ecg_`; CIs null w/o bootstrap |
| `per_class_auroc` | {class: float or null} | null where the class has no test positives or no test negatives; `{}` for report generation |
| `thresholds_source` | str or null | `validation` (thresholds are only fitted there); null without F1 |
| `shift`, `severity` | str; number or str (or null) | robustness rows: the `merit_evaluation.shifts` name, severity |
| `split` | str | evaluated split: `test`, or `validation` for report generation and retrieval with `--report_split validation` |
| `bootstrap` | object or null | `merit_evaluation.metrics.BootstrapSummary` as a dict |
| `details` | {str: str} or null | how the metrics were computed (report generation: tokeniser, BERTScore model and layer, CE per-class F1) |
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, fields, replace
from os import PathLike
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .metrics import ClassificationMetrics, MetricValue, paired_difference


if TYPE_CHECKING:
    from huggingface_hub import ModelCard


RESULTS_SCHEMA_VERSION = 1
TASKS = ("linear-probe", "finetune", "zero-shot", "robustness", "report-generation", "retrieval")
PRIMARY_METRICS = {"report-generation": "rougeL", "retrieval": "ecg_to_report_r5"}
"""Primary metric of a task when it is not `macro_auroc`."""
CLASSIFICATION_TABLE_METRICS = ("macro_auroc", "macro_f1", "fmax")
REPORT_TABLE_METRICS = ("rougeL", "meteor", "bleu4", "cider_d", "bertscore_f1", "ce_f1_micro", "ce_f1_macro")
RETRIEVAL_TABLE_METRICS = (
    "ecg_to_report_r1",
    "ecg_to_report_r5",
    "ecg_to_report_r10",
    "ecg_to_report_median_rank",
    "report_to_ecg_r1",
    "report_to_ecg_r5",
    "report_to_ecg_r10",
    "report_to_ecg_median_rank",
)
TASK_TABLE_METRICS = {"report-generation": REPORT_TABLE_METRICS, "retrieval": RETRIEVAL_TABLE_METRICS}
"""The metrics of the tasks shown in a table of their own (rows without label set or fraction)."""
METRIC_DISPLAY_NAMES = {
    "macro_auroc": "Macro AUROC",
    "macro_f1": "Macro F1",
    "fmax": "Fmax",
    "rougeL": "ROUGE-L",
    "meteor": "METEOR",
    "bleu4": "BLEU-4",
    "cider_d": "CIDEr-D",
    "bertscore_f1": "BERTScore F1",
    "ce_f1_micro": "CE-F1 micro",
    "ce_f1_macro": "CE-F1 macro",
    **{
        f"{direction}_r{k}": f"{arrow} R@{k}"
        for direction, arrow in (("ecg_to_report", "ECG→report"), ("report_to_ecg", "report→ECG"))
        for k in (1, 5, 10)
    },
    "ecg_to_report_median_rank": "ECG→report median rank",
    "report_to_ecg_median_rank": "report→ECG median rank",
}
MODEL_INDEX_METRIC_TYPES = {
    "macro_auroc": "roc_auc",
    "macro_f1": "f1",
    "fmax": "fmax",
    "rouge1": "rouge",
    "rouge2": "rouge",
    "rougeL": "rouge",
    "meteor": "meteor",
    "cider_d": "cider",
    "bertscore_precision": "bertscore",
    "bertscore_recall": "bertscore",
    "bertscore_f1": "bertscore",
    **{f"bleu{order}": "bleu" for order in range(1, 5)},
    **{f"ce_{kind}_{average}": kind for kind in ("precision", "recall", "f1") for average in ("micro", "macro")},
    "ce_super_f1_micro": "f1",
    "ce_super_f1_macro": "f1",
    "ce_all_f1_micro": "f1",
    **{f"{direction}_r{k}": "recall" for direction in ("ecg_to_report", "report_to_ecg") for k in (1, 5, 10)},
    "ecg_to_report_median_rank": "median_rank",
    "report_to_ecg_median_rank": "median_rank",
}
MODEL_INDEX_TASKS = {
    "report-generation": ("text-generation", "ECG report generation"),
    "retrieval": ("feature-extraction", "ECG-report retrieval"),
}
"""`model-index` task type and name of a task when it is not ECG classification."""
RESULTS_START_MARKER = "<!-- merit-results-start -->"
RESULTS_END_MARKER = "<!-- merit-results-end -->"


@dataclass
class ResultRow:
    """One evaluation of one model in one setting (see the module docstring for every field)."""

    task: str
    dataset: str
    label_set: str
    fraction: float
    seed: int
    model: str
    model_revision: str | None
    baseline: str | None
    n_test: int
    metrics: dict[str, MetricValue]
    per_class_auroc: dict[str, float | None]
    thresholds_source: str | None = "validation"
    shift: str | None = None
    severity: float | int | str | None = None
    split: str = "test"
    bootstrap: dict[str, Any] | None = None
    details: dict[str, str] | None = None

    def __post_init__(self):
        if self.task not in TASKS:
            raise ValueError(f"`task` must be one of {list(TASKS)}, got {self.task!r}.")
        if not 0.0 < self.fraction <= 1.0:
            raise ValueError(f"`fraction` must be in (0, 1], got {self.fraction!r}.")
        if self.thresholds_source not in ("validation", None):
            raise ValueError(
                f"`thresholds_source` must be 'validation' (or None without F1), got {self.thresholds_source!r}: "
                "decision thresholds are never chosen on the test split."
            )
        if self.n_test <= 0:
            raise ValueError(f"`n_test` must be positive, got {self.n_test!r}.")
        if (self.task == "robustness") != (self.shift is not None):
            raise ValueError(
                f"`shift` must be set exactly for robustness rows; got task={self.task!r}, shift={self.shift!r}."
            )
        primary = PRIMARY_METRICS.get(self.task, "macro_auroc")
        if primary not in self.metrics:
            raise ValueError(f"`metrics` must include the primary metric {primary!r}, got {sorted(self.metrics)}.")
        self.metrics = {
            name: value if isinstance(value, MetricValue) else MetricValue(**value)
            for name, value in self.metrics.items()
        }

    @classmethod
    def from_classification_metrics(
        cls, classification_metrics: ClassificationMetrics, class_names: list[str], **row_fields
    ) -> ResultRow:
        """Build a row from `compute_classification_metrics` output.

        Args:
            classification_metrics (`ClassificationMetrics`): the test-set metrics.
            class_names (`list[str]`): class names in the column order of the scores.
            **row_fields: the other `ResultRow` fields (`task`, `dataset`, `label_set`, `fraction`, `seed`, `model`,
                `model_revision`, `baseline`, ...).
        """
        per_class = classification_metrics.per_class_auroc
        if len(class_names) != len(per_class):
            raise ValueError(f"{len(class_names)} class names for {len(per_class)} classes.")
        row_fields.setdefault(
            "thresholds_source", "validation" if "macro_f1" in classification_metrics.metrics else None
        )
        bootstrap = classification_metrics.bootstrap
        return cls(
            n_test=classification_metrics.n_samples,
            metrics={name: replace(value) for name, value in classification_metrics.metrics.items()},
            per_class_auroc={
                name: None if math.isnan(value) else float(value) for name, value in zip(class_names, per_class)
            },
            bootstrap=None if bootstrap is None else asdict(bootstrap),
            **row_fields,
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dictionary (NaN becomes `None`, numpy scalars Python ones)."""
        return _nan_to_none(asdict(self))


def paired_macro_auroc_difference(row_a: ResultRow, row_b: ResultRow) -> MetricValue | None:
    """
    Macro AUROC of `row_a` minus that of `row_b` with a paired bootstrap interval (`paired_difference`), or `None`
    when the two rows were not scored on the same resamples (different test sets or seeds, no bootstrap, or rows
    written before `resampled_macro_auroc` existed).
    """
    resampled = [(row.bootstrap or {}).get("resampled_macro_auroc") for row in (row_a, row_b)]
    same_resamples = (
        None not in resampled
        and row_a.n_test == row_b.n_test
        and row_a.bootstrap.get("seed") == row_b.bootstrap.get("seed")
        and len(resampled[0]) == len(resampled[1])
    )
    if not same_resamples:
        return None
    nan_resampled = [[math.nan if value is None else value for value in values] for values in resampled]
    return paired_difference(
        row_a.metrics["macro_auroc"].value,
        nan_resampled[0],
        row_b.metrics["macro_auroc"].value,
        nan_resampled[1],
        row_a.bootstrap.get("confidence_level", 0.95),
    )


def _nan_to_none(value):
    """Recursively turn NaN into `None` and numpy scalars into Python ones, for strict JSON."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {key: _nan_to_none(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_nan_to_none(item) for item in value]
    return value


def write_results(path: str | PathLike, rows: list[ResultRow]) -> None:
    """Write rows to `path` as `{"schema_version": 1, "results": [...]}` (strict JSON, no NaN)."""
    content = {"schema_version": RESULTS_SCHEMA_VERSION, "results": [row.to_dict() for row in rows]}
    with open(path, "w", encoding="utf-8") as file:
        json.dump(content, file, indent=2, allow_nan=False)
        file.write("\n")


def read_results(path: str | PathLike) -> list[ResultRow]:
    """Read and validate a `results.json` written by `write_results`."""
    with open(path, encoding="utf-8") as file:
        content = json.load(file)
    if not isinstance(content, dict) or content.get("schema_version") != RESULTS_SCHEMA_VERSION:
        raise ValueError(
            f"{path} is not a results.json of schema version {RESULTS_SCHEMA_VERSION} "
            f"(got schema_version={content.get('schema_version') if isinstance(content, dict) else None!r})."
        )
    known = {f.name for f in fields(ResultRow)}
    rows = []
    for index, row in enumerate(content.get("results", [])):
        unknown = sorted(set(row) - known)
        if unknown:
            raise ValueError(f"Row {index} of {path} has unknown fields {unknown}; expected fields {sorted(known)}.")
        try:
            rows.append(ResultRow(**row))
        except TypeError as error:
            raise ValueError(f"Row {index} of {path} is incomplete: {error}") from error
    return rows


def _format_metric(metric: MetricValue | None) -> str:
    if metric is None or metric.value is None or math.isnan(metric.value):
        return "–"
    if metric.ci_low is None or metric.ci_high is None:
        return f"{metric.value:.3f}"
    return f"{metric.value:.3f} ({metric.ci_low:.3f}–{metric.ci_high:.3f})"


def _setting(row: ResultRow) -> tuple:
    return (row.task, row.dataset, row.label_set, row.fraction, row.shift, str(row.severity), row.seed, row.split)


def _grouped(rows: list[ResultRow]) -> list[ResultRow]:
    """Rows grouped by setting (in order of first appearance), MERIT first, then its baselines."""
    groups: dict[tuple, list[ResultRow]] = {}
    for row in rows:
        groups.setdefault(_setting(row), []).append(row)
    return [row for group in groups.values() for row in sorted(group, key=lambda r: r.baseline is not None)]


def results_to_markdown(rows: list[ResultRow], metric_names: tuple[str, ...] | None = None) -> str:
    """A markdown table with each MERIT row directly followed by its baselines in the same setting.

    Args:
        rows (`list[ResultRow]`): the results.
        metric_names (`tuple[str, ...]`, *optional*): metrics to show, as `value (ci_low–ci_high)`. By default
            `CLASSIFICATION_TABLE_METRICS` for the classification rows and, in a second table,
            `REPORT_TABLE_METRICS` / `RETRIEVAL_TABLE_METRICS` for the report-generation / retrieval rows.

    Returns:
        `str`: the table(s) (with `Shift` / `Severity` columns when there are robustness rows).
    """
    if metric_names is None:
        other_rows = [row for row in rows if row.task not in TASK_TABLE_METRICS]
        tables = [_table(other_rows, CLASSIFICATION_TABLE_METRICS)] if other_rows else []
        for task, task_metrics in TASK_TABLE_METRICS.items():
            task_rows = [row for row in rows if row.task == task]
            if task_rows:
                tables.append(_table(task_rows, task_metrics))
        return "\n".join(tables) if tables else _table([], CLASSIFICATION_TABLE_METRICS)
    return _table(rows, metric_names)


def _table(rows: list[ResultRow], metric_names: tuple[str, ...]) -> str:
    with_shift = any(row.shift is not None for row in rows)
    with_labels = any(row.task not in TASK_TABLE_METRICS for row in rows)  # report rows: no label set or fraction
    header = ["Task", "Dataset"] + (["Label set", "Fraction"] if with_labels else []) + ["Seed"]
    header += ["Shift", "Severity"] if with_shift else []
    header += ["Model"] + [METRIC_DISPLAY_NAMES.get(name, name) for name in metric_names] + ["n test"]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for row in _grouped(rows):
        cells = [row.task, row.dataset] + ([row.label_set, f"{row.fraction:g}"] if with_labels else [])
        cells += [str(row.seed)]
        if with_shift:
            cells += [row.shift or "–", "–" if row.severity is None else str(row.severity)]
        cells += ["MERIT" if row.baseline is None else f"baseline: {row.baseline}"]
        cells += [_format_metric(row.metrics.get(name)) for name in metric_names]
        cells += [str(row.n_test)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _metric_display_name(row: ResultRow, metric_name: str) -> str:
    setting = f"{row.task}, {row.fraction * 100:g}% labels, seed {row.seed}"
    if row.task in MODEL_INDEX_TASKS:
        setting = f"{row.task}, seed {row.seed}"
    if row.shift is not None:
        setting += f", {row.shift}={row.severity}"
    return f"{METRIC_DISPLAY_NAMES.get(metric_name, metric_name)} ({setting})"


def update_model_card(
    card: str | PathLike,
    rows: list[ResultRow],
    model_name: str | None = None,
    task_type: str = "time-series-classification",
) -> ModelCard:
    """Fill a model card's `model-index` and results table from evaluation rows (offline, nothing is pushed).

    Only MERIT rows (`baseline is None`) enter the `model-index`; the markdown table in the card body (between
    `RESULTS_START_MARKER` and `RESULTS_END_MARKER`, appended under "## Evaluation results" if absent) shows every
    row, baselines included. Existing `model-index` entries are replaced. One `model-index` result is made per
    (dataset, label set, split) and each metric's name states the task, label fraction, seed and shift.

    Args:
        card (`str` or `os.PathLike`): path of a model card file, or the card's text (several lines).
        rows (`list[ResultRow]`): the results.
        model_name (`str`, *optional*): the `model-index` name; defaults to the card's `model_name`, else "MERIT".
        task_type (`str`, defaults to `"time-series-classification"`): `model-index` task type of the classification
            rows (report-generation rows: `MODEL_INDEX_TASKS`).

    Returns:
        `huggingface_hub.ModelCard`; save it with `card.save(path)` or push it with `card.push_to_hub(repo_id)`.
    """
    from huggingface_hub import EvalResult, ModelCard

    from dataset_scripts.registry import display_name  # lazily: `import merit_evaluation` stays `datasets`-free

    if isinstance(card, PathLike) or "\n" not in card:  # a path; card texts span several lines
        if not Path(card).is_file():
            raise FileNotFoundError(f"Model card {card} not found (pass a file path or the card's text).")
        card = Path(card).read_text(encoding="utf-8")
    model_card = ModelCard(card)
    eval_results = []
    for row in rows:
        if row.baseline is not None:
            continue
        for metric_name, metric in row.metrics.items():
            if metric.value is None or math.isnan(metric.value):
                continue
            row_task_type, row_task_name = MODEL_INDEX_TASKS.get(row.task, (task_type, "ECG classification"))
            eval_results.append(
                EvalResult(
                    task_type=row_task_type,
                    task_name=row_task_name,
                    dataset_type=row.dataset,
                    dataset_name=display_name(row.dataset),
                    dataset_config=row.label_set,
                    dataset_split=row.split,
                    metric_type=MODEL_INDEX_METRIC_TYPES.get(metric_name, metric_name),
                    metric_name=_metric_display_name(row, metric_name),
                    metric_value=round(float(metric.value), 4),
                )
            )
    model_card.data.model_name = model_name or getattr(model_card.data, "model_name", None) or "MERIT"
    model_card.data.eval_results = eval_results or None
    table = f"{RESULTS_START_MARKER}\n{results_to_markdown(rows)}{RESULTS_END_MARKER}"
    text = model_card.text
    if RESULTS_START_MARKER in text and RESULTS_END_MARKER in text:
        before, rest = text.split(RESULTS_START_MARKER, 1)
        after = rest.split(RESULTS_END_MARKER, 1)[1]
        text = before + table + after
    else:
        text = text.rstrip("\n") + "\n\n## Evaluation results\n\n" + table + "\n"
    model_card.text = text
    return ModelCard(model_card.content)
