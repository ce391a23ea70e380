"""Each script in `benchmarks/` still runs at a tiny size and reports every number it promises.

One smoke test per script, no tests of a benchmark's internals: the numbers themselves are the benchmarks' business
(`benchmarks/README.md`). `bench_space.py` and `bench_report_generation.py` are smoke-tested next to what they
measure, in `test_space.py` and `test_report_generation_training.py`.
"""

import ctypes
import ctypes.util
import importlib.util
import json

import pytest
from train_helpers import REPO_ROOT


def load_benchmark(name: str):
    """The module `benchmarks/<name>.py` (the folder is not a package)."""
    spec = importlib.util.spec_from_file_location(name, REPO_ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_model_benchmark_reports_both_attentions_and_sdpa_runs_the_fused_kernel(
    tmp_path, monkeypatch, single_torch_thread
):
    """bench_model.py on the tiny preset, missing leads included (an attention mask), with its worker processes run
    in this process. Its checks must hold: SDPA runs the fused kernel and eager does not, and `FlopCounterMode`
    reproduces the analytic FLOP count the matmul-peak fractions rest on."""
    bench = load_benchmark("bench_model")

    def memory_worker(args):
        # The script runs it in a fresh process, whose heap holds no freed memory the training steps could reuse
        # unseen; hand this process's freed memory back to the system first, so that their growth shows here too.
        ctypes.CDLL(ctypes.util.find_library("c")).malloc_trim(0)
        return bench.run_memory_worker(args)

    workers = {
        "check": lambda args: bench.check_variants(args.preset, args.missing_leads, args.threads),
        "memory": memory_worker,
        "timing": bench.run_timing_worker,
    }

    def in_process(args, worker, attn_implementation=None):
        args.worker_attn = attn_implementation
        return workers[worker](args)

    monkeypatch.setattr(bench, "run_worker_subprocess", in_process)
    output = tmp_path / "bench.json"
    summary = bench.main([
        "--preset", "tiny", "--batch-size", "2", "--iterations", "2", "--warmup", "0", "--threads", "1",
        "--matmul-size", "64", "--matmul-repeats", "2", "--missing-leads", "2", "--profile-rows", "3", "--quiet",
        "--output", str(output),
    ])  # fmt: skip

    from modeling_merit import MeritConfig

    config = MeritConfig.from_preset("tiny").ecg_config
    flops, checks = summary["flops_per_ecg"], summary["raw"]["check"]
    assert flops["tokens"] == 12 * (20 + 2)
    # eager attention is plain bmm, so every matmul is counted
    assert checks["eager"]["counted_training_flops_per_ecg"] == flops["training"]
    # FlopCounterMode has no formula for the CPU flash-attention kernel: exactly the attention products are missing
    missing = 3 * config.num_hidden_layers * flops["attention"]
    assert checks["sdpa"]["counted_training_flops_per_ecg"] == flops["training"] - missing
    assert any("scaled_dot_product" in kernel for kernel in checks["sdpa"]["attention_kernels"])
    assert not any("scaled_dot_product" in kernel for kernel in checks["eager"]["attention_kernels"])

    assert json.loads(output.read_text())["settings"]["missing_leads"] == 2
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


def test_dataset_benchmark_reports_and_cleans_up(tmp_path):
    bench = load_benchmark("bench_datasets")
    results = bench.main(["--sizes", "40", "--rdsamp-items", "5", "--batch-size", "8", "--work-dir", str(tmp_path)])
    (result,) = results
    assert result["n_records"] == 40
    assert result["size_ratio"] <= 1.1
    assert result["peak_rss_mb"] >= result["rss_after_imports_mb"] > 0
    assert result["read_sequential_rec_per_s"] > 0 and result["rdsamp_rec_per_s"] > 0
    assert not any(tmp_path.iterdir())  # synthetic data and prepared files are removed unless --keep


def test_feature_extraction_benchmark_reports_every_stage(tmp_path, capsys):
    bench = load_benchmark("bench_feature_extraction")
    report = bench.main(["--records", "6", "--repeats", "1", "--output", str(tmp_path / "bench.json")])

    assert report["output_shape"] == [6, 12, 1000]  # the benchmark also checks every call's output against it
    assert list(report["results"]) == [
        "100 Hz arrays", "500 Hz arrays", "500 Hz arrays + band-pass", "PTB-XL files (100 Hz)"
    ]  # fmt: skip
    for row in report["results"].values():
        assert row["wall_seconds"] > 0 and row["records_per_second"] > 0 and row["cpu_over_baseline"] > 0
    assert json.loads((tmp_path / "bench.json").read_text()) == report
    assert "| 500 Hz arrays + band-pass |" in capsys.readouterr().out


@pytest.mark.slow
def test_pipeline_benchmark_times_both_routes_in_fresh_processes(tmp_path, capsys):
    bench = load_benchmark("bench_pipelines")
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


@pytest.mark.slow
def test_limits_benchmark_reports_each_case_from_a_fresh_process(tmp_path, capsys):
    bench = load_benchmark("bench_limits")
    cases = ["reference_wfdb_upload", "rate_nan", "npy_header_1.2e11", "list_12x1e6"]
    report = bench.main(["--cases", *cases, "--output", str(tmp_path / "bench.json")])

    outcomes = {result["case"]: result["outcome"] for result in report["results"]}
    assert outcomes == {"reference_wfdb_upload": "answered", "rate_nan": "ValueError",
                        "npy_header_1.2e11": "ValueError", "list_12x1e6": "ValueError"}  # fmt: skip
    messages = {result["case"]: result["message"] for result in report["results"]}
    assert "more than the limit `max_samples_per_record`" in messages["list_12x1e6"]
    assert all(result["wall_seconds"] > 0 and result["peak_mib"] is not None for result in report["results"])
    assert json.loads((tmp_path / "bench.json").read_text()) == report
    assert "| WFDB header with sampling rate nan | ValueError |" in capsys.readouterr().out


@pytest.mark.slow
def test_training_benchmark_reports_throughput_data_wait_memory_and_view_ratio(tmp_path, single_torch_thread):
    bench = load_benchmark("bench_training")
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
    cache = results["text_cache"]
    assert cache["distinct_reports"] > 100 and cache["cache_mib"] > 0  # the excerpt's training reports, embedded once
    assert cache["with_step_seconds"] > 0 and cache["without_over_with_compute_ratio"] > 0
    patch = results["patch_dropout"]
    assert (
        patch["keep_ratio"] == 0.5
        and patch["every_patch_step_seconds"] > 0
        and patch["patch_dropout_step_seconds"] > 0
    )
    assert patch["every_patch_over_dropout_compute_ratio"] > 0
    decoder = results["decoder"]
    assert decoder["axial_step_seconds"] > 0 and decoder["lead_wise_step_seconds"] > 0
    assert decoder["axial_over_lead_wise_compute_ratio"] > 0


@pytest.mark.slow
def test_onnx_benchmark_times_pytorch_and_both_onnx_encoders(tmp_path, capsys, single_torch_thread):
    pytest.importorskip("onnxruntime", reason="bench_onnx.py needs the `onnx` extra")
    bench = load_benchmark("bench_onnx")
    report = bench.main(
        ["--preset", "tiny", "--batch-size", "3", "--iterations", "2", "--output", str(tmp_path / "bench.json")]
    )

    assert set(report["median_s"]) == {"pytorch", "onnxruntime fp32", "onnxruntime int8"}
    assert all(seconds > 0 for seconds in report["median_s"].values())
    assert report["speedup_vs_pytorch"]["pytorch"] == 1.0
    assert 0 < report["file_bytes"]["ecg_encoder_int8"] < report["file_bytes"]["ecg_encoder"]
    assert json.loads((tmp_path / "bench.json").read_text()) == report
    assert "onnxruntime int8" in capsys.readouterr().out


@pytest.mark.slow
def test_mimic_scale_benchmark_reports_every_number_and_deletes_the_corpus(tmp_path, capsys):
    bench = load_benchmark("bench_mimic_scale")
    work_dir = tmp_path / "work"
    summary = bench.main([
        "--num-records", "600", "--sizes", "300", "600", "--distinct-signals", "20", "--records-per-shard", "100",
        "--loader-batches", "2", "--batch-size", "8", "--work-dir", str(work_dir), "--output", str(tmp_path / "b.json"),
    ])  # fmt: skip

    assert not work_dir.exists()  # corpus and caches deleted
    assert summary["corpus"]["num_records"] == 600 and summary["corpus"]["generation_s"] > 0
    preparation = summary["preparation"]
    assert [(run["studies"], run["num_proc"]) for run in preparation] == [(300, 1), (600, 1), (300, 2)]
    for run in preparation:
        assert 0 < run["records"] <= run["studies"] and run["records_per_s"] > 0 and run["peak_rss_mb"] > 0
        assert run["arrow_bytes"] >= run["records"] * 12 * 5000 * 2  # int16 samples, at least
    plain, chunked = summary["killed_and_resumed"]
    for resumed in (plain, chunked):
        assert resumed["records"] == preparation[0]["records"] and resumed["second_run_s"] > 0
    # how much of a plain killed preparation survives depends on where the kill lands (a split written in full before
    # it may be kept), so only the counts are checked here; the chunked preparation must keep its finished chunks
    assert 0 <= plain["reused_records"] <= plain["records"]
    assert (chunked["chunk_records"], chunked["redone_share"] < 1) == (75, True)  # finished chunks are kept
    assert [(run["variant"], run["num_workers"]) for run in summary["loader"]] == [
        ("as prepared (500 Hz)", 0),
        ("as prepared (500 Hz)", 2),
        ("resampled once (100 Hz)", 0),
        ("resampled once (100 Hz)", 2),
    ]
    assert all(run["ecgs"] == 2 * 8 and run["ecgs_per_s"] > 0 for run in summary["loader"])
    reports = summary["reports"]
    assert 0 < reports["distinct_reports"] < reports["reports"] == preparation[1]["records"]
    assert summary["flops"]["training_flops_per_ecg"] > 1e9  # base preset: tens of GFLOP per ECG
    extrapolation = summary["extrapolation"]
    assert extrapolation["loader workers per H100, as prepared"] >= 1
    assert json.loads((tmp_path / "b.json").read_text())["extrapolation"] == extrapolation
    assert "| resampled once (100 Hz) | 0 |" in capsys.readouterr().out


def test_onnx_int8_accuracy_reports_both_tasks_with_intervals(tmp_path, capsys, tokenizer, single_torch_thread):
    pytest.importorskip("onnxruntime", reason="onnx_int8_accuracy.py needs the `onnx` extra")
    import torch

    from modeling_merit import MeritConfig, MeritFeatureExtractor, MeritModel, MeritProcessor

    torch.manual_seed(0)
    MeritModel(MeritConfig.from_preset("tiny")).save_pretrained(tmp_path / "checkpoint")
    MeritProcessor(MeritFeatureExtractor(), tokenizer).save_pretrained(tmp_path / "checkpoint")
    bench = load_benchmark("onnx_int8_accuracy")
    report = bench.main(
        ["--model", str(tmp_path / "checkpoint"), "--resamples", "20", "--epochs", "3",
         "--output", str(tmp_path / "accuracy.json")]
    )  # fmt: skip

    assert report["n_test"] == 181 and report["classes"] == ["CD", "HYP", "MI", "NORM", "STTC"]
    for task in ("zero_shot_macro_auroc", "linear_probe_macro_auroc"):
        entry = report[task]
        assert 0 <= entry["fp32"] <= 1 and 0 <= entry["int8"] <= 1
        assert entry["delta"] == pytest.approx(entry["int8"] - entry["fp32"])
        low, high = entry["delta_ci95"]
        assert low <= high
    assert 0.9 < report["embedding_cosine_fp32_int8"]["min"] <= 1.0 + 1e-6
    assert json.loads((tmp_path / "accuracy.json").read_text()) == report
    assert "zero_shot_macro_auroc" in capsys.readouterr().out
