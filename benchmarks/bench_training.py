"""CPU benchmark of MERIT pretraining as `train_merit.py` runs it, on the real PTB-XL excerpt shipped in the repo.

For one preset (default `small`, with the all-MiniLM-L6-v2 text tower of the demo) and the script's default loader
settings (batch 32, `default_num_workers()` = 0 worker processes on CPU, the same `build_train_dataloader` and
`ECGReportCollator` through the processor, prepared by accelerate, which collates the next batch before handing
out the current one), it measures:

- **training throughput** (ECGs/s): batch size / (data wait + forward + backward + clipping + AdamW step);
- **data-wait fraction**: the time blocked in `next(iterator)` over the whole step time (target < 10 %);
- **peak memory**: the peak resident set (`VmHWM`, Linux) of a fresh process that trains one model with one view
  for `--memory_steps` steps on the same data (one subprocess per view, so neither the other model nor memory
  kept by the allocator from earlier steps counts); and, within it, the growth of the high-water mark during its
  last step over the resident set just before that step (activations, gradients and temporaries on top of the
  weights and the optimizer state), the mark being reset through `/proc/self/clear_refs`;
- **cost of `contrastive_view="full"` vs `"masked"`**: `full` runs one extra, unmasked encoder pass for the
  contrastive branch. Both views train side by side in the same process, on the same batches and masks, one step
  each per iteration (alternating which goes first); the ratio is the median of the per-iteration ratios of
  their compute times, so load from other programs on a shared machine affects both alike;
- **the text-feature cache** (`--cache_text_features`, on by default; used while the text tower is entirely frozen):
  the same model (`masked` view) with and without it, side by side in the same way, the cache filled first as one
  epoch would fill it (that one-off cost, the number of distinct reports and the cache's size are reported too);
- **patch dropout in the full view** (`contrastive_patch_keep_ratio`): the `full` view seeing every patch vs a
  random `--patch_keep_ratio` of each lead's patches in training, side by side in the same way;
- **the reconstruction decoder** (`decoder_mode`): the default recipe with the `axial` decoder (train_merit.py's
  default) vs the `lead_wise` one, side by side in the same way.

The table reports medians over the measured iterations (after `--warmup` iterations).

Usage (rerunnable; nothing is written unless `--output` is given):

```
python benchmarks/bench_training.py                       # small preset, batch 32, 8 iterations
python benchmarks/bench_training.py --threads 2 --iterations 12 --output bench_training.json
python benchmarks/bench_training.py --preset tiny --text_model_name_or_path scratch --batch_size 8 --iterations 2
                                                          # a quick smoke run
```
"""

from __future__ import annotations

import argparse
import copy
import gc
import json
import logging
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import NamedTuple


REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402
from accelerate import Accelerator  # noqa: E402
from accelerate.utils import DataLoaderConfiguration  # noqa: E402

from dataset_scripts.registry import DATASETS  # noqa: E402
from merit_training.arguments import DEFAULT_DECODER_MODE, ModelArguments, TrainingArguments  # noqa: E402
from merit_training.data import (  # noqa: E402
    ECGReportCollator,
    build_train_dataloader,
    default_num_workers,
    load_pretraining_splits,
)
from merit_training.model_setup import build_model_and_processor, optimizer_parameter_groups, step_seed  # noqa: E402


logger = logging.getLogger("bench_training")
VIEWS = ("full", "masked")
DEFAULT_VIEW = ModelArguments.contrastive_view  # what train_merit.py builds new models with


def default_keep_ratio(view: str) -> float:
    """The `contrastive_patch_keep_ratio` train_merit.py gives a new model of `view` (it acts on `full` only)."""
    return ModelArguments.contrastive_patch_keep_ratio if view == "full" else 1.0


class Variant(NamedTuple):
    """One model of a side-by-side comparison: how it differs from train_merit.py's new model."""

    view: str
    cache_text_features: bool
    keep_ratio: float
    decoder_mode: str = DEFAULT_DECODER_MODE


CACHE_VARIANTS = {"text cache": Variant("masked", True, 1.0), "no text cache": Variant("masked", False, 1.0)}
DECODER_VARIANTS = {
    mode: Variant("full", True, default_keep_ratio("full"), decoder_mode=mode) for mode in ("axial", "lead_wise")
}


def memory_kib(field: str) -> int:
    """A `/proc/self/status` field (`VmRSS`, `VmHWM`) in KiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def reset_peak_memory() -> None:
    """Resets the resident-set high-water mark (`VmHWM`) to the current resident set."""
    Path("/proc/self/clear_refs").write_text("5")


class Trainer:
    """One model with its AdamW optimizer, stepping exactly like the training loop of `train_merit.py`."""

    def __init__(self, accelerator: Accelerator, model, training_args: TrainingArguments):
        optimizer = torch.optim.AdamW(
            optimizer_parameter_groups(model, training_args.weight_decay),
            lr=training_args.learning_rate,
            betas=(training_args.adam_beta1, training_args.adam_beta2),
        )
        self.accelerator = accelerator
        self.model, self.optimizer = accelerator.prepare(model, optimizer)
        self.max_grad_norm = training_args.max_grad_norm

    def step(self, batch: dict[str, torch.Tensor], seed: int) -> float:
        """One optimizer step on `batch`; returns its wall time in seconds."""
        started = time.perf_counter()
        torch.manual_seed(seed)
        output = self.model(**batch)
        self.accelerator.backward(output.loss)
        self.accelerator.clip_grad_norm_(self.model.parameters(), self.max_grad_norm)
        self.optimizer.step()
        self.optimizer.zero_grad()
        return time.perf_counter() - started


def batches_forever(dataloader):
    """Batches of successive epochs, timing each `next()` call: yields `(batch, seconds blocked)`."""
    epoch = 0
    while True:
        dataloader.set_epoch(epoch)
        iterator = iter(dataloader)
        while True:
            started = time.perf_counter()
            try:
                batch = next(iterator)
            except StopIteration:
                break
            yield batch, time.perf_counter() - started
        epoch += 1


def build(args: argparse.Namespace, cache_dir: str, variants: dict[str, Variant]):
    """`(trainers by variant, train dataloader, training split, loader workers, processor)` set up as train_merit.py
    does (with the same `merit_training` functions); `variants` maps a name to its `Variant`, every variant starting
    from the same weights (the decoders' weights have the same shapes in every mode)."""
    training_args = TrainingArguments(per_device_train_batch_size=args.batch_size)
    accelerator = Accelerator(cpu=True, dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True))
    model, processor = build_model_and_processor(
        ModelArguments(model_preset=args.preset, text_model_name_or_path=args.text_model_name_or_path)
    )
    models = {name: model if index == 0 else copy.deepcopy(model) for index, name in enumerate(variants)}
    for name, variant in variants.items():
        models[name].config.contrastive_view = variant.view
        models[name].config.contrastive_patch_keep_ratio = variant.keep_ratio
        models[name].decoder.config.decoder_mode = variant.decoder_mode  # the decoder reads it at each forward
        models[name].merit.enable_text_feature_cache(variant.cache_text_features)
    trainers = {name: Trainer(accelerator, models[name], training_args) for name in variants}

    train = load_pretraining_splits("ptbxl", str(DATASETS["ptbxl"].default_data_dir), cache_dir=cache_dir)["train"]
    num_workers = default_num_workers() if args.num_workers is None else args.num_workers
    collator = ECGReportCollator(processor, crop="random", seed=training_args.seed)
    dataloader = accelerator.prepare(build_train_dataloader(train, collator, args.batch_size, num_workers))
    return trainers, dataloader, train, num_workers, processor


def fill_text_cache(model, processor, reports: list[str], batch_size: int) -> dict:
    """Embeds every training report into `model`'s text cache, as the first epoch does; returns its cost."""
    gc.collect()
    started, before = time.perf_counter(), memory_kib("VmRSS")
    for start in range(0, len(reports), batch_size):
        tokens = processor(text=reports[start : start + batch_size], return_tensors="pt")
        model.merit.pooled_text_features(tokens["input_ids"], tokens["attention_mask"])
    cache = model.merit._text_feature_cache
    entries = sum(tensor.numel() * tensor.element_size() for tensor in cache.values())
    return {
        "fill_seconds": time.perf_counter() - started,
        "distinct_reports": len(cache),
        "cache_mib": entries / 2**20,
        "fill_rss_growth_mib": (memory_kib("VmRSS") - before) / 1024,
    }


def timed_iterations(args: argparse.Namespace, trainers: dict, dataloader, seed: int) -> list[dict]:
    """`args.warmup + args.iterations` iterations of one step per trainer on the same batch (alternating which goes
    first); returns, per measured iteration, the data wait and each trainer's compute time."""
    names = list(trainers)
    rows = []
    batches = batches_forever(dataloader)
    for iteration in range(args.warmup + args.iterations):
        batch, wait = next(batches)
        order = names if iteration % 2 == 0 else names[::-1]
        compute = {name: trainers[name].step(batch, step_seed(seed, iteration, 1, 0)) for name in order}
        if iteration >= args.warmup:
            rows.append({"wait": wait, **compute})
        logger.info(
            f"iteration {iteration}: wait {wait * 1e3:.1f} ms, "
            + ", ".join(f"{name} {compute[name]:.2f} s" for name in names)
        )
    return rows


def measure_memory(args: argparse.Namespace, cache_dir: str) -> dict:
    """Worker of one view (`args.memory_view`): peak resident set of training it, and of its last step's growth."""
    view_variant = Variant(args.memory_view, True, default_keep_ratio(args.memory_view))
    trainers, dataloader, _, _, _ = build(args, cache_dir, {args.memory_view: view_variant})
    trainer = trainers[args.memory_view]
    batches = batches_forever(dataloader)
    for step in range(args.memory_steps):
        batch, _ = next(batches)
        if step == args.memory_steps - 1:
            gc.collect()
            process_peak = memory_kib("VmHWM")
            reset_peak_memory()
            before = memory_kib("VmRSS")
        trainer.step(batch, step_seed(0, step, 1, 0))
    step_peak = memory_kib("VmHWM")
    return {"peak_rss_mib": max(process_peak, step_peak) / 1024, "step_growth_mib": (step_peak - before) / 1024}


def memory_in_subprocess(args: argparse.Namespace, view: str) -> dict:
    """Runs `measure_memory` for `view` in a fresh interpreter; returns its result."""
    command = [
        sys.executable,
        __file__,
        "--memory_view",
        view,
        "--preset",
        args.preset,
        "--batch_size",
        str(args.batch_size),
    ]
    for name in ("text_model_name_or_path", "num_workers", "threads"):
        if getattr(args, name) is not None:
            command += [f"--{name}", str(getattr(args, name))]
    command += ["--memory_steps", str(args.memory_steps)]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"The memory worker for {view} failed:\n{result.stderr[-4000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def side_by_side(
    args: argparse.Namespace, cache_dir: str, seed: int, variants: dict[str, Variant]
) -> tuple[dict[str, float], float]:
    """Two variants trained side by side: `({"<name>_step_seconds": median step incl. data wait}, median of the
    per-iteration compute-time ratios first / second variant)`, names with spaces turned into underscores."""
    trainers, dataloader, _, _, _ = build(args, cache_dir, variants)
    rows = timed_iterations(args, trainers, dataloader, seed)
    del trainers, dataloader
    gc.collect()
    first, second = variants
    steps = {
        f"{name.replace(' ', '_')}_step_seconds": statistics.median(row["wait"] + row[name] for row in rows)
        for name in variants
    }
    return steps, statistics.median(row[first] / row[second] for row in rows)


def run(args: argparse.Namespace, cache_dir: str) -> dict:
    """Runs the benchmark (`cache_dir`: where `datasets` prepares the PTB-XL excerpt); returns the results."""
    seed = TrainingArguments.seed
    trainers, dataloader, train, num_workers, processor = build(
        args, cache_dir, {view: Variant(view, True, default_keep_ratio(view)) for view in VIEWS}
    )
    num_records = len(train)
    logger.info(
        f"{args.preset} preset, batch {args.batch_size}, {num_workers} loader workers, {torch.get_num_threads()} "
        f"threads, {num_records} training records; {args.warmup} warm-up + {args.iterations} measured iterations"
    )
    rows = timed_iterations(args, trainers, dataloader, seed)
    del trainers, dataloader
    gc.collect()

    cache_trainers, cache_dataloader, _, _, _ = build(args, cache_dir, CACHE_VARIANTS)
    cached_model = cache_trainers["text cache"].accelerator.unwrap_model(cache_trainers["text cache"].model)
    text_cache = fill_text_cache(cached_model, processor, [str(report) for report in train["report"]], 64)
    cache_rows = timed_iterations(args, cache_trainers, cache_dataloader, seed)
    text_cache["with_step_seconds"] = statistics.median(row["wait"] + row["text cache"] for row in cache_rows)
    text_cache["without_step_seconds"] = statistics.median(row["wait"] + row["no text cache"] for row in cache_rows)
    text_cache["without_over_with_compute_ratio"] = statistics.median(
        row["no text cache"] / row["text cache"] for row in cache_rows
    )
    del cache_trainers, cache_dataloader
    gc.collect()
    patch_steps, patch_ratio = side_by_side(
        args,
        cache_dir,
        seed,
        {"every patch": Variant("full", True, 1.0), "patch dropout": Variant("full", True, args.patch_keep_ratio)},
    )
    patch_dropout = {
        "keep_ratio": args.patch_keep_ratio,
        **patch_steps,
        "every_patch_over_dropout_compute_ratio": patch_ratio,
    }
    decoder_steps, decoder_ratio = side_by_side(args, cache_dir, seed, DECODER_VARIANTS)
    decoder = {**decoder_steps, "axial_over_lead_wise_compute_ratio": decoder_ratio}
    memory = {view: memory_in_subprocess(args, view) for view in VIEWS}

    results = {"setup": {
        "preset": args.preset, "batch_size": args.batch_size, "num_workers": num_workers,
        "threads": torch.get_num_threads(), "iterations": args.iterations, "warmup": args.warmup,
        "records": num_records, "machine": f"{platform.machine()}, {os.cpu_count()} CPUs", "torch": torch.__version__,
    }}  # fmt: skip
    for view in VIEWS:
        step_times = [row["wait"] + row[view] for row in rows]
        results[view] = {
            "ecgs_per_second": args.batch_size / statistics.median(step_times),
            "step_seconds": statistics.median(step_times),
            "data_wait_ms": 1e3 * statistics.median(row["wait"] for row in rows),
            "data_wait_fraction": statistics.median(row["wait"] / (row["wait"] + row[view]) for row in rows),
            **memory[view],
        }
    results["full_over_masked_compute_ratio"] = statistics.median(row["full"] / row["masked"] for row in rows)
    results["text_cache"] = text_cache
    results["patch_dropout"] = patch_dropout
    results["decoder"] = decoder
    return results


def report(results: dict) -> str:
    setup = results["setup"]
    lines = [
        f"MERIT pretraining on CPU: {setup['preset']} preset, batch {setup['batch_size']}, {setup['num_workers']} "
        f"loader workers, {setup['threads']} threads, real PTB-XL excerpt ({setup['records']} training records), "
        f"medians over {setup['iterations']} iterations",
        "",
        "| contrastive view | ECGs/s | step (s) | data wait (ms) | data wait / step | peak RSS (MiB) | last step's growth (MiB) |",
        "|---|---|---|---|---|---|---|",
    ]
    for view in VIEWS:
        row = results[view]
        lines.append(
            f"| {view}{' (default)' if view == DEFAULT_VIEW else ''} | {row['ecgs_per_second']:.1f} | {row['step_seconds']:.2f} | "
            f"{row['data_wait_ms']:.1f} | {100 * row['data_wait_fraction']:.1f} % | {row['peak_rss_mib']:.0f} | "
            f"{row['step_growth_mib']:.0f} |"
        )
    lines += ["", f"full / masked compute time per step: {results['full_over_masked_compute_ratio']:.2f}x"]
    cache = results["text_cache"]
    lines += [
        "",
        "Frozen text tower, masked view, with and without the text-feature cache (same batches, side by side):",
        f"step {cache['without_step_seconds']:.2f} s without, {cache['with_step_seconds']:.2f} s with; compute time "
        f"without / with: {cache['without_over_with_compute_ratio']:.2f}x. Filling it (once per run): "
        f"{cache['fill_seconds']:.1f} s for {cache['distinct_reports']} distinct reports, {cache['cache_mib']:.2f} MiB "
        f"(resident set +{cache['fill_rss_growth_mib']:.0f} MiB).",
    ]
    patch = results["patch_dropout"]
    lines += [
        "",
        f"Full view, every patch vs {100 * patch['keep_ratio']:g} % of each lead's patches in the contrastive pass "
        f"(same batches, side by side): step {patch['every_patch_step_seconds']:.2f} s vs "
        f"{patch['patch_dropout_step_seconds']:.2f} s; compute time every patch / dropout: "
        f"{patch['every_patch_over_dropout_compute_ratio']:.2f}x.",
    ]
    decoder = results["decoder"]
    lines += [
        "",
        f"Reconstruction decoder, axial vs lead_wise (the default recipe otherwise; same batches, side by side): step "
        f"{decoder['axial_step_seconds']:.2f} s vs {decoder['lead_wise_step_seconds']:.2f} s; compute time axial / "
        f"lead_wise: {decoder['axial_over_lead_wise_compute_ratio']:.2f}x.",
    ]
    return "\n".join(lines)


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="small", help="model preset (default: small)")
    parser.add_argument(
        "--text_model_name_or_path",
        default=None,
        help="text tower (default: the script's, all-MiniLM-L6-v2; or 'scratch')",
    )
    parser.add_argument(
        "--batch_size",
        type=int,
        default=TrainingArguments.per_device_train_batch_size,
        help="per-device batch (default: the script's)",
    )
    parser.add_argument("--num_workers", type=int, default=None, help="loader workers (default: the script's default)")
    parser.add_argument("--iterations", type=int, default=8, help="measured iterations (one step of each view)")
    parser.add_argument("--warmup", type=int, default=1, help="iterations run before measuring")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument(
        "--patch_keep_ratio",
        type=float,
        default=0.5,
        help="fraction of each lead's patches the full view keeps in the patch-dropout comparison (default 0.5)",
    )
    parser.add_argument("--output", type=Path, default=None, help="also write the results as JSON here")
    parser.add_argument("--memory_steps", type=int, default=2, help="steps of each memory worker (default: 2)")
    parser.add_argument("--memory_view", choices=VIEWS, default=None, help=argparse.SUPPRESS)  # internal: worker
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    """Runs the benchmark, prints the table, writes `--output`; returns the results."""
    args = parse_arguments(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    logging.getLogger("dataset_scripts").setLevel(logging.WARNING)
    if args.memory_view is not None:
        with tempfile.TemporaryDirectory() as cache_dir:
            print(json.dumps(measure_memory(args, cache_dir)))
        return {}

    with tempfile.TemporaryDirectory() as cache_dir:
        results = run(args, cache_dir)
    print(report(results))
    if args.output is not None:
        args.output.write_text(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()
