"""Smoke test of benchmarks/bench_datasets.py on a handful of records (keeps the benchmark runnable)."""

import importlib.util
from pathlib import Path

import pytest


BENCHMARK = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_datasets.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_datasets", BENCHMARK)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_benchmark_runs_and_reports(bench, tmp_path):
    results = bench.main(["--sizes", "40", "--rdsamp-items", "5", "--batch-size", "8", "--work-dir", str(tmp_path)])
    (result,) = results
    assert result["n_records"] == 40
    assert result["size_ratio"] <= 1.1
    assert result["peak_rss_mb"] >= result["rss_after_imports_mb"] > 0
    assert result["read_sequential_rec_per_s"] > 0 and result["rdsamp_rec_per_s"] > 0
    assert not any(tmp_path.iterdir())  # synthetic data and prepared files are removed unless --keep
