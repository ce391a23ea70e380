"""Smoke tests of benchmarks/bench_model.py with the tiny preset (keep the model benchmark runnable and its FLOP
count right)."""

import importlib.util
import json
from pathlib import Path

import pytest


BENCHMARK = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_model.py"
# One thread: on a loaded machine, two threads make every small op wait for the second core (see the README).
TINY_ARGS = [
    "--preset", "tiny", "--batch-size", "2", "--iterations", "2", "--warmup", "0", "--threads", "1",
    "--matmul-size", "64", "--matmul-repeats", "2", "--quiet",
]


@pytest.fixture(autouse=True)
def restore_torch_threads():
    """The workers set torch's thread count; keep it from leaking into other tests."""
    import torch

    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_model", BENCHMARK)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_check_confirms_kernels_and_analytic_flops(bench):
    """FlopCounterMode must match the documented formula, and each implementation must run its own kernels."""
    from modeling_merit import MeritConfig

    checks = bench.check_variants("tiny", missing_leads=0, threads=1)
    flops = bench.encoder_flops_per_ecg(MeritConfig.from_preset("tiny").ecg_config)
    config = MeritConfig.from_preset("tiny").ecg_config

    assert flops["tokens"] == 12 * (20 + 2)
    # eager attention is plain bmm, so every matmul is counted
    assert checks["eager"]["counted_training_flops_per_ecg"] == flops["training"]
    # FlopCounterMode has no formula for the CPU flash-attention kernel: exactly the attention products are missing
    missing = 3 * config.num_hidden_layers * flops["attention"]
    assert checks["sdpa"]["counted_training_flops_per_ecg"] == flops["training"] - missing
    assert any("scaled_dot_product" in kernel for kernel in checks["sdpa"]["attention_kernels"])
    assert not any("scaled_dot_product" in kernel for kernel in checks["eager"]["attention_kernels"])


@pytest.mark.parametrize("missing_leads", [0, 2])
def test_benchmark_runs_end_to_end(bench, monkeypatch, tmp_path, missing_leads):
    """The whole orchestration and report, with the workers run in this process instead of subprocesses."""
    workers = {"memory": bench.run_memory_worker, "timing": bench.run_timing_worker}

    def in_process(args, worker, attn_implementation=None):
        if worker == "check":
            check = {"attention_kernels": [], "counted_training_flops_per_ecg": 1.0}
            return {name: dict(check) for name in ("sdpa", "eager")}
        args.worker_attn = attn_implementation
        return workers[worker](args)

    monkeypatch.setattr(bench, "run_worker_subprocess", in_process)
    output = tmp_path / "bench.json"
    summary = bench.main(
        TINY_ARGS + ["--missing-leads", str(missing_leads), "--profile-rows", "3", "--output", str(output)]
    )

    assert json.loads(output.read_text())["settings"]["missing_leads"] == missing_leads
    timing = summary["all"]
    for name in ("sdpa", "eager"):
        variant = timing["variants"][name]
        assert variant["steps"] == 2
        assert variant["ecgs_per_second"] > 0 and variant["fraction_of_matmul"] > 0
        assert 0 <= variant["wait_share"] <= 1
        assert summary["peak_memory_mib"][name] > 0
        assert len(summary["raw"]["timing"]["profile"][name]) == 3
    assert timing["matmul_calls"] == (1 + 2 * 2) * 2  # bursts: one before the first step, one after each step
    assert summary["quiet"] is None or summary["quiet"]["variants"]["sdpa"]["steps"] <= 2
    assert "SDPA / eager speed" in bench.format_report(summary)


def test_summary_medians_and_quiet_filter(bench):
    def step(name, seconds, wait_share, timed=True):
        return {
            "iteration": 0, "attn_implementation": name, "seconds": seconds, "wait_share": wait_share,
            "page_faults": int(seconds * 10), "timed": timed,
        }

    timing = {
        "steps": [
            step("sdpa", 100.0, 0.0, timed=False),
            step("sdpa", 2.0, 0.01), step("eager", 3.0, 0.02),
            step("sdpa", 4.0, 0.40), step("eager", 6.0, 0.30),
            step("sdpa", 6.0, 0.50), step("eager", 9.0, 0.45),
        ],
        "matmul_bursts": [
            {"gflops": [1.0], "wait_share": 0.0, "timed": False},
            {"gflops": [100.0, 100.0], "wait_share": 0.0, "timed": True},
            {"gflops": [50.0], "wait_share": 0.5, "timed": True},
        ],
    }
    everything = bench.summarise_timing(timing, training_flops=400e9, batch_size=8, max_wait_share=None)
    quiet = bench.summarise_timing(timing, training_flops=400e9, batch_size=8, max_wait_share=0.05)

    assert everything["matmul_gflops"] == 100.0 and everything["matmul_calls"] == 3
    assert everything["variants"]["sdpa"]["steps"] == 3
    assert everything["variants"]["sdpa"]["step_seconds"] == 4.0  # the untimed 100 s step is left out
    assert everything["variants"]["sdpa"]["ecgs_per_second"] == 2.0
    assert everything["variants"]["sdpa"]["page_faults"] == 40
    assert everything["variants"]["sdpa"]["fraction_of_matmul"] == pytest.approx(1.0)  # 100 GFLOP/s of 100
    assert everything["sdpa_over_eager_speed"] == pytest.approx(1.5)
    assert quiet["variants"]["eager"]["step_seconds"] == 3.0 and quiet["variants"]["eager"]["steps"] == 1
    assert quiet["variants"]["sdpa"]["fraction_of_matmul"] == pytest.approx(2.0)
    assert bench.summarise_timing(timing, 400e9, 8, max_wait_share=0.001) is None


def test_run_queue_wait_share(bench):
    before = {"1": (0, 0), "2": (0, 0), "3": (5, 5)}
    after = {"1": (int(1e9), int(0.5e9)), "2": (int(0.5e9), int(0.5e9)), "3": (5, 9)}  # thread 3 idle: ignored
    assert bench.run_queue_wait_share(before, after, seconds=1.0) == pytest.approx(0.5)
    assert bench.run_queue_wait_share(before, before, seconds=1.0) is None


@pytest.mark.parametrize("worker, attn_implementation", [("timing", None), ("memory", "eager")])
def test_worker_command_carries_the_settings(bench, worker, attn_implementation):
    args = bench.parse_args(TINY_ARGS + ["--missing-leads", "3", "--threads", "3", "--profile-rows", "4"])
    command = bench.worker_command(args, worker, attn_implementation)
    worker_args = bench.parse_args(command[2:])

    assert (worker_args.worker, worker_args.worker_attn) == (worker, attn_implementation)
    for name in ("preset", "batch_size", "iterations", "warmup", "threads", "missing_leads", "matmul_size",
                 "matmul_repeats", "profile_rows"):
        assert getattr(worker_args, name) == getattr(args, name), name


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--batch-size", "0"], "--batch-size must be a positive integer"),
        (["--warmup", "-1"], "--warmup must be >= 0"),
        (["--missing-leads", "12"], "--missing-leads must be in"),
        (["--missing-leads", "1", "--batch-size", "1"], "needs --batch-size >= 2"),
    ],
)
def test_bad_options_raise(bench, argv, message):
    with pytest.raises(ValueError, match=message):
        bench.parse_args(argv)
