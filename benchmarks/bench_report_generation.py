#!/usr/bin/env python
"""
Training-step cost of the report-generation bridge: LoRA vs full fine-tuning of the language model, in one run.

    python benchmarks/bench_report_generation.py                       # SmolLM2-135M-Instruct, batch 8, 1 thread
    python benchmarks/bench_report_generation.py --merit outputs/merit-ptbxl-sample --batch-size 8 --steps 4

Each variant runs in its own fresh subprocess (same seed, same batch):

- `lora`: the projector + LoRA adapters trainable, with the training defaults (rank 8 on every linear layer of
  the Llama blocks), as in the second training stage;
- `full`: the projector + every language-model weight trainable (full fine-tuning);
- `projector`: the projector alone (first stage; the gradient still flows back through the whole LLM).

The batch is what `train_merit.py --task report_generation` trains on: cached frozen-encoder features of random
ECGs and the first `--batch-size` non-empty reports of the PTB-XL excerpt's training folds, tokenised by the LLM's
tokenizer after the default prompt. A step is forward + backward + AdamW update.

- **step time**: median over `--steps` timed steps after one warm-up step, with `--threads` torch threads;
- **peak memory**: the growth of the process's RSS high-water mark (`VmHWM`, reset through `/proc/self/clear_refs`)
  over its RSS once the model and batch exist: gradients, AdamW state, activations and temporaries of the
  warm-up and timed steps. The absolute peak RSS is shown too.

The summary gives full / LoRA ratios of both, measured in the same run.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from bench_model import _proc_status_kib, _reset_peak_rss


REPO_ROOT = Path(__file__).resolve().parents[1]
VARIANTS = ("lora", "full", "projector")


def first_training_reports(count: int) -> list[str]:
    """The first `count` non-empty reports of folds 1-8 of the embedded PTB-XL excerpt."""
    import pandas as pd

    database = pd.read_csv(REPO_ROOT / "data" / "ptbxl-sample" / "ptbxl_database.csv")
    reports = database[(database.strat_fold <= 8) & database.report.fillna("").str.strip().astype(bool)].report
    return [str(report) for report in reports.iloc[:count]]


def build(args: argparse.Namespace, variant: str):
    """The model with `variant`'s trainable parameters, its optimizer, and one training batch."""
    from transformers import AutoTokenizer

    from merit_training.language_models import default_language_model
    from merit_training.report_generation import ReportCollator, ReportGenerationArguments
    from modeling_merit import (
        MeritConfig,
        MeritFeatureExtractor,
        MeritForPreTraining,
        MeritForReportGeneration,
        MeritProcessor,
    )

    language_model = args.language_model or default_language_model()
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as folder:
        merit = args.merit
        if merit is None:
            merit = folder
            MeritForPreTraining(MeritConfig.from_preset("small")).save_pretrained(merit)
        model = MeritForReportGeneration.from_merit_and_language_model(merit, language_model)
    tokenizer = AutoTokenizer.from_pretrained(language_model)
    if variant == "lora":
        defaults = ReportGenerationArguments(model_name_or_path="")  # the LoRA of train_merit.py's second stage
        model.enable_lora(
            rank=defaults.lora_rank, alpha=defaults.lora_alpha, target_modules=defaults.lora_target_modules.split(",")
        )
    else:
        model.language_model.requires_grad_(variant == "full")
    config = model.config
    collator = ReportCollator(
        MeritProcessor(MeritFeatureExtractor(), tokenizer),
        config.eos_token_id_for_generation,
        config.pad_token_id_for_generation,
        64,
    )
    batch = collator.reports(first_training_reports(args.batch_size))
    with torch.no_grad():
        features, feature_mask = model.encode_ecg(torch.randn(args.batch_size, 12, config.ecg_config.num_samples))
    batch.update(ecg_features=features, ecg_feature_mask=feature_mask)
    parameters = [parameter for parameter in model.parameters() if parameter.requires_grad]
    optimizer = torch.optim.AdamW(parameters, lr=1e-4)
    prompt_tokens = len(config.prompt_ids_before_ecg) + config.num_prefix_tokens + len(config.prompt_ids_after_ecg)
    shape = {
        "trainable_parameters": sum(parameter.numel() for parameter in parameters),
        "sequence_tokens": prompt_tokens + int(batch["attention_mask"].sum(1).max()),
        "report_tokens_mean": float(batch["attention_mask"].sum(1).float().mean()),
    }
    return model.train(), optimizer, batch, shape


def training_step(model, optimizer, batch) -> None:
    loss = model(**batch).loss
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def run_worker(args: argparse.Namespace) -> dict:
    torch.set_num_threads(args.threads)
    model, optimizer, batch, shape = build(args, args.worker)
    baseline_kib = _proc_status_kib("VmRSS")
    reset = _reset_peak_rss()
    training_step(model, optimizer, batch)  # warm-up (allocates gradients and AdamW state)
    times = []
    for _ in range(args.steps):
        started = time.perf_counter()
        training_step(model, optimizer, batch)
        times.append(time.perf_counter() - started)
    peak_kib = _proc_status_kib("VmHWM")
    return {
        **shape,
        "variant": args.worker,
        "step_seconds": times,
        "median_step_seconds": statistics.median(times),
        "peak_rss_mib": peak_kib / 1024 if peak_kib else None,
        "peak_growth_mib": (peak_kib - baseline_kib) / 1024 if reset and peak_kib and baseline_kib else None,
    }


def run_variant(args: argparse.Namespace, variant: str) -> dict:
    command = [
        sys.executable,
        __file__,
        "--worker",
        variant,
        "--batch-size",
        str(args.batch_size),
        "--steps",
        str(args.steps),
        "--threads",
        str(args.threads),
    ]
    for flag, value in (("--merit", args.merit), ("--language-model", args.language_model)):
        if value:
            command += [flag, value]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [os.fspath(REPO_ROOT), os.environ.get("PYTHONPATH")])),
        "OMP_NUM_THREADS": str(args.threads),
    }
    child = subprocess.run(command, capture_output=True, text=True, cwd=REPO_ROOT, env=env)
    if child.returncode != 0:
        raise RuntimeError(f"The {variant} worker failed:\n{child.stderr[-3000:]}")
    return json.loads(child.stdout.strip().splitlines()[-1])


def format_report(results: dict[str, dict], args: argparse.Namespace) -> str:
    lines = [
        f"Report-generation training step, batch {args.batch_size}, {args.threads} thread(s), "
        f"{results['lora']['sequence_tokens']} tokens per sequence (prompt + prefix + longest report)",
        f"{'variant':<10} {'trainable':>12} {'step (s)':>9} {'peak growth (MiB)':>18} {'peak RSS (MiB)':>15}",
    ]
    for variant, result in results.items():
        growth = result["peak_growth_mib"]
        lines.append(
            f"{variant:<10} {result['trainable_parameters']:>12,} {result['median_step_seconds']:>9.2f} "
            f"{(f'{growth:.0f}' if growth is not None else 'n/a'):>18} {result['peak_rss_mib']:>15.0f}"
        )
    lora, full = results["lora"], results["full"]
    lines.append(f"full / LoRA step time: {full['median_step_seconds'] / lora['median_step_seconds']:.2f}x")
    if lora["peak_growth_mib"] and full["peak_growth_mib"]:
        lines.append(f"full / LoRA peak memory growth: {full['peak_growth_mib'] / lora['peak_growth_mib']:.2f}x")
    lines.append(f"full / LoRA peak RSS: {full['peak_rss_mib'] / lora['peak_rss_mib']:.2f}x")
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--merit", help="MERIT checkpoint (default: a randomly initialised `small` ECG tower).")
    parser.add_argument("--language-model", help="Causal LM folder (default: the converted SmolLM2-135M-Instruct).")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--steps", type=int, default=3, help="Timed steps per variant (after one warm-up step).")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--variants", default=",".join(VARIANTS), help="Comma-separated subset of lora,full,projector."
    )
    parser.add_argument("--output", help="Also write the results as JSON to this file.")
    parser.add_argument("--worker", choices=VARIANTS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    variants = [name.strip() for name in args.variants.split(",")]
    if not {"lora", "full"} <= set(variants) or set(variants) - set(VARIANTS):
        parser.error(f"--variants must include lora and full, from {VARIANTS}; got {args.variants!r}.")
    args.variants = variants
    return args


def main(argv: list[str] | None = None) -> dict | None:
    args = parse_args(argv)
    if args.worker:
        print(json.dumps(run_worker(args)))
        return None
    results = {variant: run_variant(args, variant) for variant in args.variants}
    print(format_report(results, args))
    if args.output:
        Path(args.output).write_text(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()
