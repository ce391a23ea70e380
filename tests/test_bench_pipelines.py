"""benchmarks/bench_pipelines.py stays runnable: the tiny preset, both routes, each in a fresh process."""

import importlib.util
import json
from pathlib import Path

import pytest


BENCHMARK = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_pipelines.py"


@pytest.mark.slow
def test_pipeline_and_handler_latency_benchmark_runs(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("bench_pipelines", BENCHMARK)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    report = bench.main(["--preset", "tiny", "--output", str(tmp_path / "bench.json")])

    assert report["model"] == "randomly initialised `tiny` preset (no trained checkpoint)"
    assert [result["route"] for result in report["results"]] == ["pipeline", "handler"]
    for result in report["results"]:
        assert set(result["timings"]) == {"load", "first call", "second call"}
        assert all(wall > 0 and cpu >= 0 for wall, cpu in result["timings"].values())
        assert sorted(entry["label"] for entry in result["answer"]) == sorted(bench.DEFAULT_LABELS)
    assert json.loads((tmp_path / "bench.json").read_text()) == report
    table = capsys.readouterr().out
    assert "| pipeline |" in table and "| handler |" in table
