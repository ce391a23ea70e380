# Copyright 2026 The MERIT authors.
# Licensed under the Apache License, Version 2.0.
"""Model-independent evaluation building blocks of MERIT (used by `eval_merit.py`).

- `metrics`: macro/per-class AUROC, macro F1 at given thresholds, Fmax, bootstrap confidence intervals (numpy).
- `thresholds`: per-class F1-maximising thresholds fitted on the validation split only.
- `label_fractions`: reproducible, class-complete training subsets (1 %, 10 %, ...).
- `shifts`: controlled distribution shifts for the robustness evaluation.
- `prompts`: zero-shot class prompts from the dataset registry's label tables, and the `--prompts FILE.json`
  override.
- `results`: the `results.json` schema, its markdown table and the model card `model-index`.
- `report_metrics`: BLEU-1..4, ROUGE-1/2/L, METEOR, CIDEr-D, BERTScore with bootstrap intervals (report generation).
- `report_generation`: the `eval_merit.py --task report-generation` runner and its baselines.

The `evaluate` wrappers are `metrics/ecg_classification` (of `metrics`) and `metrics/report_generation` (of
`report_metrics`) at the repository root.
"""

from .label_fractions import sample_label_fraction
from .metrics import (
    BootstrapSummary,
    ClassificationMetrics,
    MetricValue,
    bootstrap_indices,
    compute_classification_metrics,
    fmax,
    macro_f1,
    macro_roc_auc,
    per_class_f1,
    per_class_roc_auc,
)
from .prompts import DEFAULT_TEMPLATES, build_class_prompts, class_prompts, load_prompts_file
from .results import ResultRow, read_results, results_to_markdown, update_model_card, write_results
from .shifts import SEVERITIES, SHIFTS, ShiftedECG, apply_shift
from .thresholds import apply_thresholds, fit_thresholds


__all__ = [
    "DEFAULT_TEMPLATES",
    "SEVERITIES",
    "SHIFTS",
    "BootstrapSummary",
    "ClassificationMetrics",
    "MetricValue",
    "ResultRow",
    "ShiftedECG",
    "apply_shift",
    "apply_thresholds",
    "bootstrap_indices",
    "build_class_prompts",
    "class_prompts",
    "compute_classification_metrics",
    "fit_thresholds",
    "fmax",
    "load_prompts_file",
    "macro_f1",
    "macro_roc_auc",
    "per_class_f1",
    "per_class_roc_auc",
    "read_results",
    "results_to_markdown",
    "sample_label_fraction",
    "update_model_card",
    "write_results",
]
