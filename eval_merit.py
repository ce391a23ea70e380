#!/usr/bin/env python
# Copyright 2026 The MERIT authors.
# Licensed under the Apache License, Version 2.0.
"""Evaluate a MERIT checkpoint: linear probing, fine-tuning, zero-shot classification and robustness to
distribution shift, with validation-only model selection, bootstrap confidence intervals and baselines in the same
harness; and report generation (`--task report-generation`, a `MeritForReportGeneration` checkpoint, see
`merit_evaluation.report_generation`).

```bash
python eval_merit.py \
    --model_name_or_path outputs/merit-small \
    --task linear-probe zero-shot \
    --dataset ptbxl --label_set superdiagnostic --data_dir data/ptbxl-sample \
    --label_fractions 0.1 1.0 --output_dir outputs/eval
```

```bash
python eval_merit.py --task report-generation --model_name_or_path outputs/merit-report \
    --data_dir data/ptbxl-sample --output_dir outputs/eval-report
```

Outputs: `<output_dir>/results.json` (schema: `merit_evaluation.results`), `<output_dir>/results.md` (the printed
table and its notes), ROC / per-class AUROC figures of the MERIT rows (`<output_dir>/roc_*.png`), the trained
classifiers (`<output_dir>/models/`, unless `--no_save_models`) and, with `--model_card`, the card's results table
and `model-index`.

The driver lives in `merit_evaluation.cli`: from Python, `merit_evaluation.cli.main([...])` runs the same thing and
returns the result rows, and `merit_evaluation.cli.run_demo_evaluation(model_dir, data_dir)` is the evaluation
`train_merit.py` runs after its demo pretraining.
"""

from merit_evaluation.cli import main


if __name__ == "__main__":
    main()
