"""CPU training-step benchmark of the MERIT ECG encoder: SDPA vs plain attention, against a matmul peak.

For one preset (default `small`: 384 wide, 12 layers, 6 heads, 12 leads x 22 tokens = 264 tokens per ECG) and one
batch size (default 32) it measures, on CPU with a fixed number of intra-op threads:

- encoder forward + backward throughput (ECGs/s) with `config._attn_implementation = "sdpa"`
  (`torch.nn.functional.scaled_dot_product_attention`) and with `"eager"` (matmul-softmax-matmul, the plain
  baseline), and the speed ratio SDPA / eager;
- the peak memory of the training step: each implementation runs in a fresh subprocess, which records its resident
  set size (RSS) once the model and the input batch exist, resets the kernel's RSS high-water mark
  (`/proc/self/clear_refs`), runs two steps and reads the high-water mark back (`VmHWM`). "Peak memory" is the
  high-water mark's growth over that baseline: activations kept for backward, gradients, temporaries and
  allocator slack, i.e. what training adds on top of the weights and the batch;
- the achieved FLOP/s as a fraction of the float32 matrix-multiply rate of this machine, measured in the same run
  (square `torch.matmul` of `--matmul-size` fp32 matrices, same thread count).

FLOPs are counted analytically, matmuls only (LayerNorm, GELU, softmax, residual adds and the masking/gather are
not counted: they are "free" in this accounting, so time spent on them lowers the achieved fraction). With
S = leads * (patches per lead + 2) tokens, H = hidden size, I = MLP size, P = patch size, per ECG and per layer:

    qkv projection      2 * S * H * 3H
    output projection   2 * S * H * H
    scores Q K^T        2 * S * S * H      (all heads together)
    weighted sum A V    2 * S * S * H
    MLP                 2 * S * H * I * 2
    layer forward       8 S H^2 + 4 S H I + 4 S^2 H

    forward  = layers * layer forward + patch embedding (2 * leads * patches * P * H)
    training = 3 * layers * layer forward + 2 * patch embedding

Backward costs two matmuls per forward matmul (gradient of the input and of the weight, or of both operands of the
attention products), hence 3x; the patch embedding needs no input gradient, hence 2x. These are model FLOPs: CPU
flash attention recomputes Q K^T in its backward, which is work done but not counted. The count is cross-checked
with `torch.utils.flop_counter.FlopCounterMode` on the eager variant (which counts every matmul; it has no formula
for the CPU flash-attention kernel, so on the SDPA variant it would miss the attention products).

The machine may be shared, so the timing runs in one process that interleaves the two implementations step by step
(alternating which goes first), with a burst of reference matmuls after every step. Every step and burst also
records how long its threads were runnable but waiting for a CPU held by another process (`/proc/self/task/*/
schedstat`); the table gives medians over all timed steps and over the "quiet" ones (wait share <= 5 % by default),
which estimate an unloaded machine. Ratios and fractions always compare numbers from the same run. Minor page
faults per step are recorded too: with glibc's default settings large activations are unmapped on free and faulted
in again every step; `--malloc-keep-memory` runs the workers with freed memory kept for reuse instead.

Usage (rerunnable; nothing is written unless `--output` is given):

```
python benchmarks/bench_model.py                                  # small, batch 32, all CPU threads torch uses
python benchmarks/bench_model.py --threads 2 --iterations 9 --output bench_model.json
python benchmarks/bench_model.py --profile-rows 15                # also where the time goes, per variant
python benchmarks/bench_model.py --missing-leads 3                # leads missing -> attention mask in SDPA
```
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path


REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

ATTENTION_IMPLEMENTATIONS = ("sdpa", "eager")
PRESETS = ("tiny", "small", "base")
SDPA_TARGET_RATIO = 1.0
MATMUL_FRACTION_TARGET = 0.35
# glibc serves allocations above 32 MiB with mmap and unmaps them on free (and trims the top of the heap), so each
# training step page-faults its large activations in again; with these settings freed memory stays in the heap.
GLIBC_KEEP_MEMORY_ENV = {"MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": str(2**40)}
GLIBC_KEEP_MEMORY_TEXT = " ".join(f"{key}={value}" for key, value in GLIBC_KEEP_MEMORY_ENV.items())

logger = logging.getLogger("bench_model")


# --------------------------------------------------------------------------------------------------------------------
# FLOP accounting
# --------------------------------------------------------------------------------------------------------------------


def encoder_flops_per_ecg(ecg_config) -> dict[str, int]:
    """
    Analytic matmul FLOPs of one ECG through the unmasked encoder (formula in the module docstring).

    Args:
        ecg_config (`MeritECGConfig`): the encoder configuration.

    Returns:
        `dict` with `tokens` (S), `forward` and `training` (forward + backward) FLOPs per ECG, and the per-layer
        forward breakdown `projections`, `attention`, `mlp`.
    """
    tokens = ecg_config.num_leads * (ecg_config.num_patches_per_lead + 2)
    hidden, intermediate = ecg_config.hidden_size, ecg_config.intermediate_size
    projections = 2 * tokens * hidden * 3 * hidden + 2 * tokens * hidden * hidden
    attention = 2 * (2 * tokens * tokens * hidden)
    mlp = 2 * (2 * tokens * hidden * intermediate)
    layer = projections + attention + mlp
    patch_embedding = 2 * ecg_config.num_leads * ecg_config.num_patches_per_lead * ecg_config.patch_size * hidden
    layers = ecg_config.num_hidden_layers
    return {
        "tokens": tokens,
        "projections": projections,
        "attention": attention,
        "mlp": mlp,
        "forward": layers * layer + patch_embedding,
        "training": 3 * layers * layer + 2 * patch_embedding,
    }


def build_encoder(preset: str, attn_implementation: str):
    """Builds a randomly initialised `MeritECGModel` of `preset` with the requested attention implementation."""
    from modeling_merit import MeritConfig, MeritECGModel

    ecg_config = MeritConfig.from_preset(preset).ecg_config
    ecg_config._attn_implementation = attn_implementation
    model = MeritECGModel(ecg_config)
    if model.config._attn_implementation != attn_implementation:
        raise RuntimeError(
            f"Asked for attention implementation {attn_implementation!r}, the model uses "
            f"{model.config._attn_implementation!r}."
        )
    return model.train()


def make_batch(ecg_config, batch_size: int, missing_leads: int):
    """
    Random `input_values` `(batch_size, leads, samples)` and `lead_mask` `(batch_size, leads)`.

    With `missing_leads > 0`, every second ECG has its last `missing_leads` leads marked missing, so the encoder
    builds an attention mask; otherwise `lead_mask` is `None` (all leads present, no mask).
    """
    import torch

    generator = torch.Generator().manual_seed(0)
    input_values = torch.randn(batch_size, ecg_config.num_leads, ecg_config.num_samples, generator=generator)
    if missing_leads == 0:
        return input_values, None
    lead_mask = torch.ones(batch_size, ecg_config.num_leads, dtype=torch.long)
    lead_mask[::2, ecg_config.num_leads - missing_leads :] = 0
    return input_values, lead_mask


def training_step(model, input_values, lead_mask) -> None:
    """One forward + backward pass of the encoder (loss: mean square of the pooled features); frees the gradients."""
    outputs = model(input_values, lead_mask=lead_mask)
    outputs.pooler_output.square().mean().backward()
    model.zero_grad(set_to_none=True)


def check_variants(preset: str, missing_leads: int, threads: int) -> dict:
    """
    One batch-1 (batch-2 with missing leads) training step per attention implementation, to check what each runs.

    Returns, per implementation, the aten attention kernels seen by `torch.profiler` and the matmul FLOPs of one
    training step counted by `FlopCounterMode` (exact for `eager`; see the module docstring for `sdpa`).
    """
    import torch
    from torch.profiler import ProfilerActivity, profile
    from torch.utils.flop_counter import FlopCounterMode

    torch.set_num_threads(threads)
    checks = {}
    for attn_implementation in ATTENTION_IMPLEMENTATIONS:
        torch.manual_seed(0)
        model = build_encoder(preset, attn_implementation)
        input_values, lead_mask = make_batch(model.config, 2 if missing_leads else 1, missing_leads)
        with profile(activities=[ProfilerActivity.CPU]) as profiler:
            training_step(model, input_values, lead_mask)
        kernels = sorted(
            {
                event.key
                for event in profiler.key_averages()
                if "scaled_dot_product" in event.key or event.key in ("aten::_softmax", "aten::bmm")
            }
        )
        counter = FlopCounterMode(display=False)
        with counter:
            training_step(model, input_values, lead_mask)
        checks[attn_implementation] = {
            "attention_kernels": kernels,
            "counted_training_flops_per_ecg": counter.get_total_flops() / input_values.shape[0],
        }
    return checks


# --------------------------------------------------------------------------------------------------------------------
# Workers (each runs in its own process)
# --------------------------------------------------------------------------------------------------------------------


def _proc_status_kib(field: str) -> int | None:
    """`VmRSS` / `VmHWM` of this process in KiB from `/proc/self/status`, or `None` off Linux."""
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return None
    match = re.search(rf"^{field}:\s+(\d+) kB", status, flags=re.MULTILINE)
    return int(match.group(1)) if match else None


def _reset_peak_rss() -> bool:
    """Resets the kernel's RSS high-water mark of this process (Linux `clear_refs` 5); `False` if unsupported."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def run_memory_worker(args: argparse.Namespace) -> dict:
    """
    Peak memory of training steps of one attention implementation, in this (fresh) process.

    The baseline is the RSS once the model and the batch exist; the kernel's RSS high-water mark is then reset, two
    training steps run (the first one also allocates the gradients and the kernels' scratch buffers) and the peak is
    the high-water mark's growth over the baseline.
    """
    import torch

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = build_encoder(args.preset, args.worker_attn)
    input_values, lead_mask = make_batch(model.config, args.batch_size, args.missing_leads)
    baseline_kib = _proc_status_kib("VmRSS")
    if baseline_kib is not None and _reset_peak_rss():
        memory_method = "growth of VmHWM (reset by clear_refs) over the RSS with model and batch built"
    else:  # ru_maxrss (KiB on Linux) is the peak since process start: it also counts building the model
        baseline_kib = 0
        memory_method = "ru_maxrss since process start (no /proc: includes the model)"
    for _ in range(2):
        training_step(model, input_values, lead_mask)
    peak_kib = _proc_status_kib("VmHWM") if baseline_kib else None
    if peak_kib is None:
        peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "peak_memory_mib": (peak_kib - baseline_kib) / 1024,
        "baseline_rss_mib": baseline_kib / 1024,
        "memory_method": memory_method,
    }


def _thread_schedstats() -> dict[str, tuple[int, int]]:
    """Per thread of this process: (ns on a CPU, ns waiting in a run queue) from `/proc/self/task/*/schedstat`."""
    stats = {}
    for task in Path("/proc/self/task").glob("*"):
        try:
            on_cpu, waited = (int(value) for value in (task / "schedstat").read_text().split()[:2])
        except (OSError, ValueError):
            continue
        stats[task.name] = (on_cpu, waited)
    return stats


def run_queue_wait_share(before: dict, after: dict, seconds: float) -> float | None:
    """
    Share of the wall time that this process's busy threads spent runnable but waiting for a CPU.

    Around 0 when the machine was free for us; 0.5 when, on average, one of two threads was pushed off its core by
    another process. `None` where `/proc/self/task/*/schedstat` is not available.

    Args:
        before, after: [`_thread_schedstats`] taken around the measured work.
        seconds: the wall time of the work.
    """
    busy = [thread for thread in after if thread in before and after[thread][0] > before[thread][0]]
    if not busy or seconds <= 0:
        return None
    waited = sum(after[thread][1] - before[thread][1] for thread in busy)
    return waited / 1e9 / (len(busy) * seconds)


def matmul_gflops(size: int, repeats: int) -> list[float]:
    """GFLOP/s of each of `repeats` square fp32 `torch.matmul` calls of side `size` (after one untimed call)."""
    import torch

    generator = torch.Generator().manual_seed(0)
    left = torch.randn(size, size, generator=generator)
    right = torch.randn(size, size, generator=generator)
    product = torch.empty(size, size)
    torch.matmul(left, right, out=product)
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        torch.matmul(left, right, out=product)
        rates.append(2 * size**3 / (time.perf_counter() - start) / 1e9)
    return rates


def measured(work) -> tuple[object, dict]:
    """
    Runs `work()`; returns its result and a `dict` with the wall `seconds`, the run-queue `wait_share` (see
    [`run_queue_wait_share`]) and the minor `page_faults` of this process during the call.
    """
    before, faults_before = _thread_schedstats(), resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    start = time.perf_counter()
    result = work()
    seconds = time.perf_counter() - start
    return result, {
        "seconds": seconds,
        "wait_share": run_queue_wait_share(before, _thread_schedstats(), seconds),
        "page_faults": resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults_before,
    }


def run_timing_worker(args: argparse.Namespace) -> dict:
    """
    Interleaved timing of both attention implementations and of the matmul reference, in one process.

    Every iteration runs one training step of each implementation (the order alternates between iterations); a
    burst of `--matmul-repeats` reference matmuls runs before the first step and after every step. Each step and
    burst also records its run-queue wait share (see [`run_queue_wait_share`]), i.e. how much other processes
    slowed it down.

    Returns:
        `dict` with `steps` (in run order: `iteration`, `attn_implementation`, `timed` and the [`measured`] stats),
        `matmul_bursts` (`gflops` of each call, `wait_share`, `timed`) and, with `--profile-rows`, the top ops of one
        extra profiled step per implementation.
    """
    import torch

    torch.set_num_threads(args.threads)
    models = {}
    for name in ATTENTION_IMPLEMENTATIONS:
        torch.manual_seed(0)
        models[name] = build_encoder(args.preset, name)
    input_values, lead_mask = make_batch(models["sdpa"].config, args.batch_size, args.missing_leads)

    def burst(timed: bool) -> dict:
        rates, stats = measured(lambda: matmul_gflops(args.matmul_size, args.matmul_repeats))
        return {"gflops": rates, "wait_share": stats["wait_share"], "timed": timed}

    steps, bursts = [], [burst(args.warmup == 0)]
    for iteration in range(args.warmup + args.iterations):
        timed = iteration >= args.warmup
        order = ATTENTION_IMPLEMENTATIONS if iteration % 2 == 0 else ATTENTION_IMPLEMENTATIONS[::-1]
        for name in order:
            _, stats = measured(lambda model=models[name]: training_step(model, input_values, lead_mask))
            logger.info("iteration %d %s: %s", iteration, name, stats)
            steps.append({"iteration": iteration, "attn_implementation": name, "timed": timed, **stats})
            bursts.append(burst(timed))

    result = {"steps": steps, "matmul_bursts": bursts, "threads": torch.get_num_threads()}
    if args.profile_rows:
        from torch.profiler import ProfilerActivity, profile

        result["profile"] = {}
        for name in ATTENTION_IMPLEMENTATIONS:
            with profile(activities=[ProfilerActivity.CPU]) as profiler:
                training_step(models[name], input_values, lead_mask)
            events = profiler.key_averages()
            total_us = sum(event.self_cpu_time_total for event in events)
            top = sorted(events, key=lambda event: event.self_cpu_time_total, reverse=True)[: args.profile_rows]
            result["profile"][name] = [
                {
                    "op": event.key,
                    "self_cpu_ms": event.self_cpu_time_total / 1e3,
                    "share": event.self_cpu_time_total / total_us,
                }
                for event in top
            ]
    return result


def worker_command(args: argparse.Namespace, worker: str, attn_implementation: str | None = None) -> list[str]:
    """The command line that runs this script as a `--worker` with the benchmark settings of `args`."""
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--worker",
        worker,
        "--preset",
        args.preset,
        "--batch-size",
        str(args.batch_size),
        "--iterations",
        str(args.iterations),
        "--warmup",
        str(args.warmup),
        "--threads",
        str(args.threads),
        "--missing-leads",
        str(args.missing_leads),
        "--matmul-size",
        str(args.matmul_size),
        "--matmul-repeats",
        str(args.matmul_repeats),
        "--profile-rows",
        str(args.profile_rows),
    ]
    if attn_implementation is not None:
        command += ["--worker-attn", attn_implementation]
    return command


def run_worker_subprocess(args: argparse.Namespace, worker: str, attn_implementation: str | None = None) -> dict:
    """Runs this script as a `--worker` in a fresh Python process and returns the JSON it prints last."""
    command = worker_command(args, worker, attn_implementation)
    # The profiler's C++ side logs to stderr; TORCH_CPP_LOG_LEVEL keeps the captured logs readable.
    env = {**os.environ, "TORCH_CPP_LOG_LEVEL": "ERROR", **(GLIBC_KEEP_MEMORY_ENV if args.malloc_keep_memory else {})}
    child = subprocess.run(command, capture_output=True, text=True, cwd=REPO_ROOT, env=env)
    if child.returncode != 0:
        raise RuntimeError(f"Benchmark worker {command[2:]} failed:\n{child.stderr[-3000:]}")
    return json.loads(child.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------------------------------------------------
# Orchestration and report
# --------------------------------------------------------------------------------------------------------------------


def summarise_timing(
    timing: dict, training_flops: float, batch_size: int, max_wait_share: float | None
) -> dict | None:
    """
    Medians of the timed steps and matmul bursts of a [`run_timing_worker`] result.

    Args:
        timing (`dict`): the timing worker's result.
        training_flops (`float`): analytic forward + backward matmul FLOPs of one batch.
        batch_size (`int`): ECGs per step.
        max_wait_share (`float`, *optional*): keep only the steps and bursts whose run-queue wait share is at most
            this ("quiet" ones); all of them when `None`.

    Returns:
        `dict` with `matmul_gflops` (median rate), per implementation `steps` (how many), `step_seconds`,
        `ecgs_per_second`, `achieved_gflops`, `fraction_of_matmul`, `wait_share`, `page_faults` (medians), and
        `sdpa_over_eager_speed` (ratio of the median throughputs); `None` when the filter leaves no step of an
        implementation or no burst.
    """

    def kept(record: dict) -> bool:
        if not record["timed"]:
            return False
        return max_wait_share is None or (record["wait_share"] is not None and record["wait_share"] <= max_wait_share)

    rates = [rate for burst in timing["matmul_bursts"] if kept(burst) for rate in burst["gflops"]]
    if not rates:
        return None
    matmul = statistics.median(rates)
    variants = {}
    for name in ATTENTION_IMPLEMENTATIONS:
        steps = [step for step in timing["steps"] if step["attn_implementation"] == name and kept(step)]
        if not steps:
            return None
        seconds = statistics.median(step["seconds"] for step in steps)
        waits = [step["wait_share"] for step in steps if step["wait_share"] is not None]
        variants[name] = {
            "page_faults": statistics.median(step["page_faults"] for step in steps),
            "steps": len(steps),
            "step_seconds": seconds,
            "ecgs_per_second": batch_size / seconds,
            "achieved_gflops": training_flops / seconds / 1e9,
            "fraction_of_matmul": training_flops / seconds / 1e9 / matmul,
            "wait_share": statistics.median(waits) if waits else None,
        }
    return {
        "matmul_gflops": matmul,
        "matmul_calls": len(rates),
        "variants": variants,
        "sdpa_over_eager_speed": variants["sdpa"]["ecgs_per_second"] / variants["eager"]["ecgs_per_second"],
    }


def run_benchmark(args: argparse.Namespace) -> dict:
    """
    Runs the check, memory (one fresh process per implementation) and timing workers and summarises them.

    Returns:
        `dict` with the settings, the FLOP accounting, peak memory per implementation, the raw worker results
        (checks included), and [`summarise_timing`] of all timed steps (`all`) and of the quiet ones only (`quiet`,
        run-queue wait share <= `--max-wait-share`; `None` if there were none), with whether the targets are met
        on each.
    """
    from tqdm.auto import tqdm

    from modeling_merit import MeritConfig

    flops = encoder_flops_per_ecg(MeritConfig.from_preset(args.preset).ecg_config)
    jobs = [("check", None)] + [("memory", name) for name in ATTENTION_IMPLEMENTATIONS] + [("timing", None)]
    raw = {}
    for worker, attn_implementation in tqdm(jobs, desc="benchmark workers", disable=args.quiet):
        raw[f"{worker}_{attn_implementation}" if attn_implementation else worker] = run_worker_subprocess(
            args, worker, attn_implementation
        )

    training_flops = flops["training"] * args.batch_size
    summaries = {
        "all": summarise_timing(raw["timing"], training_flops, args.batch_size, None),
        "quiet": summarise_timing(raw["timing"], training_flops, args.batch_size, args.max_wait_share),
    }
    for summary in summaries.values():
        if summary is not None:
            summary["targets"] = {
                "sdpa_at_least_eager": summary["sdpa_over_eager_speed"] >= SDPA_TARGET_RATIO,
                "sdpa_at_least_35_percent_of_matmul": (
                    summary["variants"]["sdpa"]["fraction_of_matmul"] >= MATMUL_FRACTION_TARGET
                ),
            }
    peak_memory = {name: raw[f"memory_{name}"]["peak_memory_mib"] for name in ATTENTION_IMPLEMENTATIONS}
    return {
        "settings": {
            key: getattr(args, key)
            for key in (
                "preset",
                "batch_size",
                "iterations",
                "warmup",
                "threads",
                "missing_leads",
                "matmul_size",
                "matmul_repeats",
                "max_wait_share",
                "malloc_keep_memory",
            )
        },
        "torch_version": __import__("torch").__version__,
        "flops_per_ecg": flops,
        "peak_memory_mib": peak_memory,
        "sdpa_over_eager_peak_memory": peak_memory["sdpa"] / peak_memory["eager"],
        "memory_method": raw["memory_sdpa"]["memory_method"],
        **summaries,
        "raw": raw,
    }


def format_report(summary: dict) -> str:
    """Human-readable table of a [`run_benchmark`] summary."""
    settings, flops = summary["settings"], summary["flops_per_ecg"]
    malloc = f"keeps freed memory ({GLIBC_KEEP_MEMORY_TEXT})" if settings["malloc_keep_memory"] else "default"
    lines = [
        f"MERIT ECG encoder, preset {settings['preset']!r}, batch {settings['batch_size']}, forward + backward on "
        f"CPU, {settings['threads']} thread(s), torch {summary['torch_version']}, "
        f"missing leads: {settings['missing_leads']}, glibc malloc: {malloc}",
        f"{settings['iterations']} timed iteration(s) (+{settings['warmup']} warm-up), each: one step of each "
        f"attention implementation (alternating order), a burst of {settings['matmul_repeats']} fp32 "
        f"{settings['matmul_size']}^2 matmuls after every step",
        f"tokens per ECG: {flops['tokens']}; analytic matmul FLOPs per ECG: forward {flops['forward'] / 1e9:.2f} G, "
        f"forward + backward {flops['training'] / 1e9:.2f} G",
        "",
        f"{'steps':<22}{'attention':<11}{'n':>3}{'step s':>8}{'ECGs/s':>9}{'GFLOP/s':>9}{'matmul GFLOP/s':>16}"
        f"{'% matmul':>10}{'wait':>7}{'faults':>8}{'peak MiB':>10}",
    ]
    labels = {"all": "all", "quiet": f"quiet (wait <= {100 * settings['max_wait_share']:.0f}%)"}
    for basis, label in labels.items():
        timing = summary[basis]
        if timing is None:
            lines.append(f"{label:<22}no step and burst this quiet in this run")
            continue
        for name, variant in timing["variants"].items():
            wait = "-" if variant["wait_share"] is None else f"{100 * variant['wait_share']:.0f}%"
            lines.append(
                f"{label:<22}{name:<11}{variant['steps']:>3}{variant['step_seconds']:>8.2f}"
                f"{variant['ecgs_per_second']:>9.2f}{variant['achieved_gflops']:>9.1f}{timing['matmul_gflops']:>16.1f}"
                f"{100 * variant['fraction_of_matmul']:>9.1f}%{wait:>7}{variant['page_faults'] / 1e3:>7.0f}k"
                f"{summary['peak_memory_mib'][name]:>10.0f}"
            )
    lines += [
        "(medians; wait = share of the step's wall time its threads spent waiting for a CPU held by other processes; "
        "% matmul = achieved / median matmul rate of the same steps' bursts; faults = minor page faults per step)",
        "",
    ]
    for basis, label in labels.items():
        timing = summary[basis]
        if timing is None:
            continue
        targets = {name: "met" if met else "MISSED" for name, met in timing["targets"].items()}
        lines.append(
            f"{label}: SDPA / eager speed {timing['sdpa_over_eager_speed']:.2f}x (target >= {SDPA_TARGET_RATIO:.2f}: "
            f"{targets['sdpa_at_least_eager']}); SDPA at "
            f"{100 * timing['variants']['sdpa']['fraction_of_matmul']:.1f}% of the matmul rate (target >= "
            f"{100 * MATMUL_FRACTION_TARGET:.0f}%: {targets['sdpa_at_least_35_percent_of_matmul']})"
        )
    lines.append(
        f"SDPA / eager peak memory: {summary['sdpa_over_eager_peak_memory']:.2f}x; peak memory = "
        f"{summary['memory_method']}, two steps in a fresh process per implementation"
    )
    for name, check in summary["raw"]["check"].items():
        lines.append(
            f"check {name}: attention kernels {', '.join(check['attention_kernels']) or '-'}; FlopCounterMode "
            f"{check['counted_training_flops_per_ecg'] / 1e9:.4f} GFLOP per ECG "
            f"({100 * check['counted_training_flops_per_ecg'] / flops['training']:.2f}% of the analytic count)"
        )
    for name, rows in summary["raw"]["timing"].get("profile", {}).items():
        lines += ["", f"profile of one {name} step (self CPU time):"]
        lines += [f"  {row['op']:<60}{row['self_cpu_ms']:>10.1f} ms{100 * row['share']:>7.1f}%" for row in rows]
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options; raises `ValueError` for sizes that cannot be benchmarked."""
    import torch

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="small", choices=PRESETS, help="model size preset (default: small)")
    parser.add_argument("--batch-size", type=int, default=32, help="ECGs per training step (default: 32)")
    parser.add_argument("--iterations", type=int, default=5, help="timed steps per implementation (default: 5)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps per implementation (default: 1)")
    parser.add_argument(
        "--threads",
        type=int,
        default=torch.get_num_threads(),
        help=f"intra-op threads for every worker (default: torch's default here, {torch.get_num_threads()})",
    )
    parser.add_argument(
        "--missing-leads",
        type=int,
        default=0,
        help="mark this many leads missing in every second ECG, which makes the encoder pass an attention mask",
    )
    parser.add_argument("--matmul-size", type=int, default=2048, help="side of the square fp32 matmul (default: 2048)")
    parser.add_argument(
        "--matmul-repeats",
        type=int,
        default=5,
        help="matmuls per reference burst, one burst between steps (default: 5)",
    )
    parser.add_argument(
        "--max-wait-share",
        type=float,
        default=0.05,
        help="steps and bursts whose threads waited for a CPU at most this share of the time count as quiet "
        "(default: 0.05)",
    )
    parser.add_argument(
        "--malloc-keep-memory",
        action="store_true",
        help=f"run the workers with glibc malloc keeping freed memory for reuse ({GLIBC_KEEP_MEMORY_TEXT}) instead of "
        "page-faulting it in again every step",
    )
    parser.add_argument("--profile-rows", type=int, default=0, help="profile one extra step; show the top N ops")
    parser.add_argument("--output", type=Path, help="also write the full results (raw timings included) as JSON")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--worker", choices=("check", "memory", "timing"), help=argparse.SUPPRESS)
    parser.add_argument("--worker-attn", choices=ATTENTION_IMPLEMENTATIONS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    for name in ("batch_size", "iterations", "threads", "matmul_size", "matmul_repeats"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be a positive integer, got {getattr(args, name)}.")
    for name in ("warmup", "profile_rows"):
        if getattr(args, name) < 0:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 0, got {getattr(args, name)}.")
    if not 0 <= args.max_wait_share <= 1:
        raise ValueError(f"--max-wait-share must be in [0, 1], got {args.max_wait_share}.")
    if not 0 <= args.missing_leads < 12:
        raise ValueError(
            f"--missing-leads must be in [0, 11] (at least one lead must stay), got {args.missing_leads}."
        )
    if args.missing_leads and args.batch_size < 2:
        raise ValueError("--missing-leads needs --batch-size >= 2 (only every second ECG misses leads).")
    if args.worker == "memory" and args.worker_attn is None:
        raise ValueError("--worker memory needs --worker-attn.")
    return args


def main(argv: list[str] | None = None) -> dict | None:
    """Entry point: a worker prints its JSON result; the orchestrator prints the table (and writes `--output`)."""
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO, stream=sys.stderr, format="%(name)s: %(message)s"
    )
    workers = {
        "check": lambda: check_variants(args.preset, args.missing_leads, args.threads),
        "memory": lambda: run_memory_worker(args),
        "timing": lambda: run_timing_worker(args),
    }
    if args.worker is not None:
        print(json.dumps(workers[args.worker]()))
        return None
    summary = run_benchmark(args)
    print(format_report(summary))
    if args.output is not None:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(summary, indent=2))
        logger.info("wrote %s", args.output)
    return summary


if __name__ == "__main__":
    main()
