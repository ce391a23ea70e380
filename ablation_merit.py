#!/usr/bin/env python
# Copyright 2026 The MERIT authors. Licensed under the Apache License, Version 2.0.
"""
The paper's central claim in miniature: does pretraining with BOTH objectives give a better ECG representation than
either one alone? Pretrains MERIT (masked modelling + contrastive alignment), masked modelling only and contrastive
alignment only with the same recipe, step budget and seeds (train_merit.py's defaults: the demo recipe), then
evaluates all three and a randomly initialised encoder of the same architecture with the same harness
(eval_merit.py: linear probe on every label set, zero-shot where the variant has a text side), and writes one table
with 95 % bootstrap intervals (test macro AUROC):

    python ablation_merit.py                               # the embedded PTB-XL excerpt (make ablation)
    python ablation_merit.py --data_dir /data/ptb-xl --max_train_steps 20000 --output_dir outputs/ablation-full

Outputs: `<output_dir>/<variant>/` (checkpoint and `results-<label set>/results.json`), `ablation.md`,
`ablation.json`. Every step is a separate `train_merit.py` / `eval_merit.py` process, so any of them can be rerun
by hand; extra pretraining flags go after `--`, e.g. `python ablation_merit.py -- --learning_rate 5e-4`. A variant
whose folder already holds a trained checkpoint (`model.safetensors`, written at the end of training) is not trained
again, so an interrupted ablation picks up where it stopped; `--retrain` trains every variant anew.
"""

import argparse
import json
import logging
import subprocess
import sys
from pathlib import Path

from merit_evaluation.ablation import ABLATION_VARIANTS, variant_directory_name, write_ablation_table


logger = logging.getLogger("ablation_merit")
REPO_ROOT = Path(__file__).resolve().parent
DEFAULT_LABEL_SETS = ("superdiagnostic", "subdiagnostic", "form", "rhythm")


def parse_arguments(argv: list[str] | None = None) -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output_dir", default="outputs/ablation", help="Where the variants and the table go.")
    parser.add_argument(
        "--data_dir", default=str(REPO_ROOT / "data" / "ptbxl-sample"), help="A PTB-XL copy (default: the excerpt)."
    )
    parser.add_argument("--max_train_steps", type=int, default=None, help="Pretraining steps (default: the demo's).")
    parser.add_argument(
        "--seeds", type=int, nargs="+", default=[42], help="Pretraining seeds (one run per variant each)."
    )
    parser.add_argument(
        "--label_sets", nargs="+", default=list(DEFAULT_LABEL_SETS), help="PTB-XL label sets to probe."
    )
    parser.add_argument("--n_bootstrap", type=int, default=1000, help="Bootstrap resamples for the 95 %% intervals.")
    parser.add_argument(
        "--retrain", action="store_true", help="Train variants whose folder already holds a trained checkpoint."
    )
    argv = sys.argv[1:] if argv is None else argv
    extra = []
    if "--" in argv:
        argv, extra = argv[: argv.index("--")], argv[argv.index("--") + 1 :]
    return parser.parse_args(argv), extra


def run(command: list[str]) -> None:
    logger.info("$ " + " ".join(command))
    subprocess.run(command, check=True, cwd=REPO_ROOT)


def main(argv: list[str] | None = None) -> str:
    """Runs the ablation and returns the markdown table."""
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    args, extra_train_flags = parse_arguments(argv)
    output_dir = Path(args.output_dir).resolve()
    output_dir.mkdir(parents=True, exist_ok=True)
    results_files: dict[str, list[Path]] = {}
    for variant in ABLATION_VARIANTS:
        for seed in args.seeds:
            run_dir = output_dir / f"{variant_directory_name(variant)}-seed{seed}"
            train = [
                sys.executable, "train_merit.py", "--output_dir", str(run_dir), "--data_dir", args.data_dir,
                "--seed", str(seed), "--evaluate_after_training", "false", "--report_to", "none",
                "--config_overrides", json.dumps(variant.config_overrides), "--overwrite_output_dir",
            ]  # fmt: skip
            if args.max_train_steps:
                train += ["--max_train_steps", str(args.max_train_steps)]
            if (run_dir / "model.safetensors").is_file() and not args.retrain:
                logger.info(f"{run_dir} already holds a trained checkpoint: not trained again (--retrain to do so)")
            else:
                run(train + extra_train_flags)
            # one random-init encoder per architecture and seed: evaluated with the MERIT run only
            with_baselines = variant is ABLATION_VARIANTS[0]
            for label_set in args.label_sets:
                results_dir = run_dir / f"results-{label_set}"
                tasks = ["linear-probe", "zero-shot"] if variant.has_text_alignment else ["linear-probe"]
                run([
                    sys.executable, "eval_merit.py", "--model_name_or_path", str(run_dir), "--task", *tasks,
                    "--dataset", "ptbxl", "--label_set", label_set, "--data_dir", args.data_dir,
                    "--output_dir", str(results_dir), "--label_fractions", "1.0", "--seeds", str(seed),
                    "--n_bootstrap", str(args.n_bootstrap), "--no_save_models",
                    *([] if with_baselines else ["--no_baselines"]),
                ])  # fmt: skip
                results_files.setdefault(variant.name, []).append(results_dir / "results.json")
    table = write_ablation_table(results_files, output_dir)
    print(table)
    logger.info(f"Ablation table: {output_dir / 'ablation.md'} (and ablation.json)")
    return table


if __name__ == "__main__":
    main()
