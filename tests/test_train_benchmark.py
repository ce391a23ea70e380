"""Smoke test of benchmarks/bench_training.py on the tiny preset: it stays runnable and reports every number."""

import importlib.util

import pytest

from train_helpers import REPO_ROOT


@pytest.mark.slow
def test_training_benchmark_reports_throughput_data_wait_memory_and_view_ratio(tmp_path, single_torch_thread):
    spec = importlib.util.spec_from_file_location("bench_training", REPO_ROOT / "benchmarks" / "bench_training.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    output = tmp_path / "bench.json"
    results = bench.main([
        "--preset", "tiny", "--text_model_name_or_path", "scratch", "--batch_size", "4", "--iterations", "2",
        "--warmup", "0", "--threads", "1", "--output", str(output),
    ])  # fmt: skip

    assert output.is_file()
    assert results["setup"]["num_workers"] == 0  # the script's default loader settings on CPU
    for view in ("full", "masked"):
        row = results[view]
        assert row["ecgs_per_second"] > 0 and 0 < row["data_wait_fraction"] < 1
        assert row["peak_rss_mib"] > row["step_growth_mib"] >= 0
    assert results["full_over_masked_compute_ratio"] > 0
