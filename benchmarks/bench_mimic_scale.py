"""The MIMIC-IV-ECG data path at scale, on a synthetic corpus in the exact MIMIC-IV-ECG layout.

Writes `--num-records` studies with `dataset_scripts.mimic_iv_ecg.synthetic` (500 Hz x 10 s, format 16; `.dat` files
shared through hard links from a pool of `--distinct-signals`, to keep the disk use low), then measures:

- **preparation** with `load_mimic_iv_ecg` in a fresh subprocess per run: records/s at `num_proc` 1 (each size of
  `--sizes`, the first N studies through `record_ids`) and at `num_proc` 2 (the smallest size); the peak RSS of the
  preparing process (`VmHWM`) and of its largest worker, which must stay flat as N grows;
- **a killed preparation**: the smallest size is prepared in a subprocess that is SIGKILLed once half of its Arrow
  data is written, then prepared again; the records the second run reused (Arrow files complete before the kill and
  left untouched) say whether finished work is kept. Once as one `datasets` preparation, once in resumable chunks
  (`chunk_records`, a quarter of the size);
- **the training loader**: `train_merit.py`'s loader (`IndexedRows` + `ECGReportCollator`, random crops, the `base`
  preset's processor: 500 -> 100 Hz resampling, z-scoring, tokenisation) over the prepared records, ECG/s with the
  work in the main process (= the cost of one worker) and with 2 worker processes;
- **report texts**: the distinct reports among the prepared records, and a text cache (each distinct report
  tokenised once): its build time and memory against tokenising every report;
- **the extrapolation to 800k records and one H100**: training FLOPs per ECG of `MeritForPreTraining` at the `base`
  preset (counted with `FlopCounterMode`, eager attention, a forward + backward pass), the ECG/s one H100 consumes at
  a stated MFU (989 TFLOP/s dense bf16 peak), and the loader workers that takes at the measured per-worker rate.

Usage (everything in a temporary folder that is deleted at the end, unless `--work-dir` is given and `--keep`):

```
python benchmarks/bench_mimic_scale.py                                   # 50k records; sizes 10k, 25k, 50k
python benchmarks/bench_mimic_scale.py --num-records 2000 --sizes 500 1000 2000 --output result.json
```
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

H100_DENSE_BF16_FLOPS = 989.4e12  # H100 SXM, dense (no sparsity)
TARGET_RECORDS = 800_000


def memory_mb(field: str) -> float:
    """`VmRSS` (current) or `VmHWM` (peak) resident memory of this process, in MB (from /proc)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


# -------------------------------------------------------------------------------------------- preparation (child)


def study_ids(data_dir: str, count: int) -> list[int]:
    import pandas as pd

    return pd.read_csv(Path(data_dir) / "record_list.csv", usecols=["study_id"], nrows=count)["study_id"].tolist()


def prepare_child(
    data_dir: str, cache_dir: str, count: int, num_proc: int, records_per_shard: int, chunk_records: int = 0
) -> dict:
    """Child-process entry point: prepares the first `count` studies (in resumable chunks of `chunk_records` when it
    is not 0) and reports time and memory."""
    import datasets

    from dataset_scripts.mimic_iv_ecg import load_mimic_iv_ecg

    datasets.disable_progress_bars()
    ids = study_ids(data_dir, count)
    start = time.perf_counter()
    dataset = load_mimic_iv_ecg(
        data_dir,
        cache_dir=cache_dir,
        num_proc=num_proc if num_proc > 1 else None,
        record_ids=ids,
        records_per_shard=records_per_shard,
        chunk_records=chunk_records or None,
    )
    seconds = time.perf_counter() - start
    arrow_files = {Path(file["filename"]) for part in dataset.values() for file in part.cache_files}
    return {
        "studies": count,
        "records": sum(len(part) for part in dataset.values()),
        "seconds": seconds,
        "arrow_bytes": sum(path.stat().st_size for path in arrow_files),
        "peak_rss_mb": memory_mb("VmHWM"),
        "peak_worker_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
    }


def child_command(
    data_dir: Path, cache_dir: Path, count: int, num_proc: int, records_per_shard: int, chunk_records: int = 0
) -> list[str]:
    return [
        sys.executable, __file__, "--child-prepare", str(data_dir), str(cache_dir),
        str(count), str(num_proc), str(records_per_shard), str(chunk_records),
    ]  # fmt: skip


def run_prepare(
    data_dir: Path, cache_dir: Path, count: int, num_proc: int, records_per_shard: int, chunk_records: int = 0
) -> dict:
    """Prepares in a fresh subprocess (so its peak RSS is its own) and returns the child's report."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_DATASETS_OFFLINE": "1"}
    child = subprocess.run(
        child_command(data_dir, cache_dir, count, num_proc, records_per_shard, chunk_records),
        check=True,
        capture_output=True,
        text=True,
        env=env,
    )
    result = json.loads(child.stdout.strip().splitlines()[-1])
    result["records_per_s"] = result["records"] / result["seconds"]
    result["num_proc"] = num_proc
    return result


def arrow_bytes_written(cache_dir: Path) -> int:
    """Bytes of Arrow data written so far under `cache_dir` (finished chunks and the `.incomplete` folder)."""
    return sum(path.stat().st_size for path in cache_dir.rglob("*.arrow"))


def finished_arrow_files(cache_dir: Path) -> dict[Path, int]:
    """The Arrow files of finished preparations under `cache_dir` (not in an `.incomplete` folder), with mtimes."""
    return {path: path.stat().st_mtime_ns for path in cache_dir.rglob("*.arrow") if ".incomplete" not in str(path)}


def arrow_rows(path: Path) -> int:
    import pyarrow as pa

    with pa.memory_map(str(path)) as source:
        return pa.ipc.open_stream(source).read_all().num_rows


def killed_and_resumed(
    data_dir: Path, cache_dir: Path, count: int, records_per_shard: int, full_run: dict, chunk_records: int = 0
) -> dict:
    """
    SIGKILLs a preparation once it has written half of the Arrow data of an uninterrupted one, and prepares again
    with the same arguments. Reports the second run's time and, independently of the machine's load, how many
    records it reused: those in Arrow files that were complete before the kill and that the second run left
    untouched (same mtime).
    """
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_DATASETS_OFFLINE": "1"}
    process = subprocess.Popen(
        child_command(data_dir, cache_dir, count, 1, records_per_shard, chunk_records),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    started = time.perf_counter()
    while process.poll() is None and arrow_bytes_written(cache_dir) < full_run["arrow_bytes"] / 2:
        time.sleep(0.1)
    killed_after = time.perf_counter() - started
    bytes_at_kill = arrow_bytes_written(cache_dir)
    finished_before_kill = process.poll() is not None
    process.send_signal(signal.SIGKILL)
    process.wait()
    before = finished_arrow_files(cache_dir)
    second = run_prepare(data_dir, cache_dir, count, 1, records_per_shard, chunk_records)
    reused = sum(
        arrow_rows(path) for path, mtime in before.items() if path.exists() and path.stat().st_mtime_ns == mtime
    )
    return {
        "chunk_records": chunk_records or None,
        "killed_after_s": killed_after,
        "share_written_at_kill": bytes_at_kill / full_run["arrow_bytes"],
        "finished_before_kill": finished_before_kill,
        "second_run_s": second["seconds"],
        "uninterrupted_s": full_run["seconds"],
        "records": second["records"],
        "reused_records": reused,
        "redone_share": 1 - reused / second["records"],
    }


# -------------------------------------------------------------------------------------------- loader and reports


def base_processor(max_text_length: int = 128):
    from transformers import AutoTokenizer

    from merit_training.model_setup import default_text_model
    from modeling_merit import MeritConfig, MeritFeatureExtractor, MeritProcessor

    ecg = MeritConfig.from_preset("base").ecg_config
    extractor = MeritFeatureExtractor(
        sampling_rate=ecg.sampling_rate, num_samples=ecg.num_samples, feature_size=ecg.num_leads
    )
    return MeritProcessor(extractor, AutoTokenizer.from_pretrained(default_text_model()), max_text_length)


def loader_throughput(train, batch_size: int, num_workers: int, max_batches: int, variant: str) -> dict:
    """ECG/s of train_merit.py's training loader (rows read from Arrow + the processor's work)."""
    import torch

    from merit_training.data import ECGReportCollator, build_train_dataloader

    torch.set_num_threads(1)
    collator = ECGReportCollator(base_processor(), crop="random", seed=0)
    loader = build_train_dataloader(train, collator, batch_size, num_workers)
    iterator = iter(loader)
    next(iterator)  # worker start-up and the first batch are not timed
    start, seen = time.perf_counter(), 0
    for _, batch in zip(range(max_batches), iterator):
        seen += batch["input_values"].shape[0]
    seconds = time.perf_counter() - start
    del iterator, loader
    return {
        "variant": variant,
        "num_workers": num_workers,
        "ecgs": seen,
        "seconds": seconds,
        "ecgs_per_s": seen / seconds,
    }


def report_statistics(reports: list[str]) -> dict:
    """Distinct reports, and a text cache (distinct reports tokenised once) against tokenising every report."""
    tokenizer = base_processor().tokenizer
    start = time.perf_counter()
    distinct = sorted(set(reports))
    rss_before = memory_mb("VmRSS")
    encoded = tokenizer(distinct, truncation=True, max_length=128)["input_ids"]
    cache = {text: np.asarray(ids, dtype=np.int32) for text, ids in zip(distinct, encoded, strict=True)}
    cache_seconds = time.perf_counter() - start
    cache_bytes = sum(ids.nbytes for ids in cache.values()) + sum(len(text) for text in cache)
    sample = reports[: min(len(reports), 20_000)]
    start = time.perf_counter()
    tokenizer(sample, truncation=True, max_length=128)
    per_report_seconds = (time.perf_counter() - start) / len(sample)
    lengths = [len(ids) for ids in encoded]
    return {
        "reports": len(reports),
        "distinct_reports": len(distinct),
        "distinct_share": len(distinct) / len(reports),
        "cache_build_s": cache_seconds,
        "cache_bytes": cache_bytes,
        "cache_rss_growth_mb": memory_mb("VmRSS") - rss_before,
        "tokenize_every_report_s": per_report_seconds * len(reports),
        "mean_tokens": float(np.mean(lengths)),
        "max_tokens": int(np.max(lengths)),
    }


def training_flops_per_ecg(text_length: int) -> dict:
    """FLOPs of one forward + backward of MeritForPreTraining at the base preset (eager attention), per ECG."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from modeling_merit import MeritConfig, MeritForPreTraining

    torch.set_num_threads(1)
    torch.manual_seed(0)
    config = MeritConfig.from_preset("base")
    config._attn_implementation = "eager"
    config.ecg_config._attn_implementation = "eager"
    config.text_config._attn_implementation = "eager"
    model = MeritForPreTraining(config).train()
    ecg = config.ecg_config
    batch = 2
    inputs = {
        "input_values": torch.randn(batch, ecg.num_leads, ecg.num_samples),
        "input_ids": torch.randint(1000, 2000, (batch, text_length)),
        "attention_mask": torch.ones(batch, text_length, dtype=torch.long),
    }
    counter = FlopCounterMode(display=False)
    with counter:
        model(**inputs).loss.backward()
    return {
        "preset": "base",
        "parameters": sum(p.numel() for p in model.parameters()),
        "trainable_parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "text_length": text_length,
        "training_flops_per_ecg": counter.get_total_flops() / batch,
    }


# ------------------------------------------------------------------------------------------------------- the run


def format_table(summary: dict) -> str:
    lines = [
        "| preparation | studies | records | num_proc | s | records/s | peak RSS MB | largest worker MB | Arrow GB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for run in summary["preparation"]:
        lines.append(
            f"| | {run['studies']} | {run['records']} | {run['num_proc']} | {run['seconds']:.1f} | "
            f"{run['records_per_s']:.0f} | {run['peak_rss_mb']:.0f} | {run['peak_worker_rss_mb']:.0f} | "
            f"{run['arrow_bytes'] / 1e9:.2f} |"
        )
    lines += [
        "",
        "| killed preparation | killed after s | written at kill | second run s | records reused | redone |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for resume in summary["killed_and_resumed"]:
        how = f"chunks of {resume['chunk_records']}" if resume["chunk_records"] else "one preparation"
        lines.append(
            f"| {how} | {resume['killed_after_s']:.1f} | {resume['share_written_at_kill']:.0%} | "
            f"{resume['second_run_s']:.1f} | {resume['reused_records']} of {resume['records']} | "
            f"{resume['redone_share']:.0%} |"
        )
    lines += [
        "",
        "| loader | workers | ECG/s |",
        "|---|---:|---:|",
    ]
    lines += [f"| {run['variant']} | {run['num_workers']} | {run['ecgs_per_s']:.0f} |" for run in summary["loader"]]
    reports, extrapolation = summary["reports"], summary["extrapolation"]
    lines += [
        "",
        f"Reports: {reports['distinct_reports']} distinct of {reports['reports']} ({reports['distinct_share']:.1%}); "
        f"text cache built in {reports['cache_build_s']:.2f} s, {reports['cache_bytes'] / 1e6:.2f} MB; tokenising "
        f"every report: {reports['tokenize_every_report_s']:.1f} s.",
        "",
        "| extrapolation | value |",
        "|---|---:|",
    ]
    lines += [f"| {name} | {value:,.1f} |" for name, value in extrapolation.items() if isinstance(value, float)]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--num-records", type=int, default=50_000)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 25_000, 50_000])
    parser.add_argument("--distinct-signals", type=int, default=2000)
    parser.add_argument("--records-per-shard", type=int, default=500)
    parser.add_argument("--loader-batches", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--mfu", type=float, default=0.4, help="Stated model-FLOPs utilisation of the H100.")
    parser.add_argument("--work-dir", type=Path, default=None)
    parser.add_argument("--keep", action="store_true", help="Keep the corpus and caches in --work-dir.")
    parser.add_argument("--output", type=Path, default=None, help="Write the summary as JSON here.")
    args = parser.parse_args(argv)
    if max(args.sizes) > args.num_records:
        raise ValueError(f"--sizes must be <= --num-records ({args.num_records}); got {args.sizes}.")

    import datasets

    from dataset_scripts.mimic_iv_ecg.synthetic import write_synthetic_mimic_iv_ecg

    datasets.disable_progress_bars()
    work_dir = args.work_dir or Path(tempfile.mkdtemp(prefix="bench-mimic-"))
    data_dir, summary = work_dir / "mimic-iv-ecg", {"preparation": []}
    try:
        start = time.perf_counter()
        summary["corpus"] = write_synthetic_mimic_iv_ecg(
            data_dir, args.num_records, distinct_signals=args.distinct_signals
        )
        summary["corpus"]["generation_s"] = time.perf_counter() - start
        sizes = sorted(args.sizes)
        for size in sizes:
            cache_dir = work_dir / f"cache-{size}"
            summary["preparation"].append(run_prepare(data_dir, cache_dir, size, 1, args.records_per_shard))
            if size not in (sizes[0], sizes[-1]):  # the smallest feeds the loader, the largest the report counts
                shutil.rmtree(cache_dir)
        smallest, largest = summary["preparation"][0], summary["preparation"][-1]
        summary["preparation"].append(
            run_prepare(data_dir, work_dir / "cache-nproc2", sizes[0], 2, args.records_per_shard)
        )
        shutil.rmtree(work_dir / "cache-nproc2")
        summary["killed_and_resumed"] = []
        for chunk_records in (0, max(1, sizes[0] // 4)):  # one datasets preparation, then resumable chunks
            cache_dir = work_dir / f"cache-killed-{chunk_records}"
            summary["killed_and_resumed"].append(
                killed_and_resumed(data_dir, cache_dir, sizes[0], args.records_per_shard, smallest, chunk_records)
            )
            shutil.rmtree(cache_dir)

        from dataset_scripts.mimic_iv_ecg import load_mimic_iv_ecg

        reports = []
        for part in load_mimic_iv_ecg(
            data_dir,
            cache_dir=work_dir / f"cache-{sizes[-1]}",
            record_ids=study_ids(str(data_dir), sizes[-1]),
            records_per_shard=args.records_per_shard,
        ).values():
            reports += part["report"]
        summary["reports"] = report_statistics(reports)
        if len(sizes) > 1:
            shutil.rmtree(work_dir / f"cache-{sizes[-1]}")
        train = load_mimic_iv_ecg(
            data_dir,
            cache_dir=work_dir / f"cache-{sizes[0]}",
            record_ids=study_ids(str(data_dir), sizes[0]),
            records_per_shard=args.records_per_shard,
        )["train"]
        from merit_training.data import resample_to_model_rate

        start = time.perf_counter()
        resampled = resample_to_model_rate(train, base_processor().feature_extractor)
        resampling_per_s = len(train) / (time.perf_counter() - start)
        summary["loader"] = [
            loader_throughput(data, args.batch_size, workers, args.loader_batches, variant)
            for variant, data in (("as prepared (500 Hz)", train), ("resampled once (100 Hz)", resampled))
            for workers in (0, 2)
        ]
        flops = training_flops_per_ecg(text_length=max(8, round(summary["reports"]["mean_tokens"])))
        per_worker = summary["loader"][0]["ecgs_per_s"]
        per_worker_resampled = summary["loader"][2]["ecgs_per_s"]
        gpu_ecgs_per_s = H100_DENSE_BF16_FLOPS * args.mfu / flops["training_flops_per_ecg"]
        summary["flops"] = flops
        summary["extrapolation"] = {
            "training GFLOP per ECG (base)": flops["training_flops_per_ecg"] / 1e9,
            f"H100 ECG/s at {args.mfu:.0%} MFU": gpu_ecgs_per_s,
            "loader ECG/s per worker, as prepared": per_worker,
            "loader workers per H100, as prepared": float(math.ceil(gpu_ecgs_per_s / per_worker)),
            "loader ECG/s per worker, resampled once": per_worker_resampled,
            "loader workers per H100, resampled once": float(math.ceil(gpu_ecgs_per_s / per_worker_resampled)),
            "resampling once, records/s (one process)": resampling_per_s,
            "resampling 800k once, hours (one process)": TARGET_RECORDS / resampling_per_s / 3600,
            "preparation of 800k, hours (num_proc 1)": TARGET_RECORDS / largest["records_per_s"] / 3600,
            "preparation of 800k, hours (num_proc 2)": TARGET_RECORDS
            / summary["preparation"][-1]["records_per_s"]
            / 3600,
            "Arrow GB at 800k": largest["arrow_bytes"] / largest["records"] * TARGET_RECORDS / 1e9,
            "peak RSS growth, largest vs smallest size (%)": 100
            * (largest["peak_rss_mb"] / smallest["peak_rss_mb"] - 1),
        }
    finally:
        if not (args.work_dir and args.keep):
            shutil.rmtree(work_dir, ignore_errors=True)
    print(format_table(summary))
    if args.output:
        args.output.write_text(json.dumps(summary, indent=2))
    return summary


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child-prepare":
        data_dir, cache_dir, count, num_proc, per_shard, chunks = sys.argv[2:8]
        print(json.dumps(prepare_child(data_dir, cache_dir, int(count), int(num_proc), int(per_shard), int(chunks))))
    else:
        main()
