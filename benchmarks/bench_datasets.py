"""Benchmark of the PTB-XL builder on synthetic records in the PTB-XL layout.

For each N it writes N synthetic 12-lead 10-s records (`records100/` or `records500/`, WFDB format
16, headers like PTB-XL's) plus `ptbxl_database.csv`, prepares them with `load_ptbxl` in a fresh
subprocess, and reports:

- preparation throughput (records/s) and the peak RSS of the preparing process (`VmHWM`) and of
  its largest `num_proc` worker, which must not grow with N;
- the size of the Arrow files against the raw int16 bytes (target <= 1.1x);
- batch-read throughput from the prepared dataset (`with_format("numpy")`, sequential and
  shuffled batches) against decoding the WFDB files one by one with `wfdb.rdsamp` (target >= 20x).

Usage (rerunnable; everything goes to a temporary folder unless `--work-dir` is given):

```
python benchmarks/bench_datasets.py                       # N = 5000 and 20000, 100 Hz
python benchmarks/bench_datasets.py --sizes 500 2000 --sampling-rate 500 --num-proc 2
```
"""

from __future__ import annotations

import argparse
import json
import logging
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


REPO_ROOT = Path(__file__).resolve().parents[1]
SAMPLE_STATEMENTS = REPO_ROOT / "data" / "ptbxl-sample" / "scp_statements.csv"
LEADS = ["I", "II", "III", "AVR", "AVL", "AVF", "V1", "V2", "V3", "V4", "V5", "V6"]
CODE_SETS = ["{'NORM': 100.0, 'SR': 0.0}", "{'IMI': 35.0, 'ABQRS': 0.0, 'SR': 0.0}", "{'AFLT': 100.0, 'ABQRS': 0.0}"]
GAIN = 1000

logger = logging.getLogger("bench_datasets")


def write_synthetic_ptbxl(data_dir: Path, n_records: int, sampling_rate: int, seed: int = 0) -> int:
    """Writes `n_records` synthetic records in the PTB-XL layout; returns the raw int16 bytes."""
    rng = np.random.default_rng(seed)
    n_samples = 10 * sampling_rate
    folder, suffix = ("records100", "lr") if sampling_rate == 100 else ("records500", "hr")
    data_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(SAMPLE_STATEMENTS, data_dir / "scp_statements.csv")
    rows = ["ecg_id,patient_id,age,sex,report,scp_codes,strat_fold,filename_lr,filename_hr"]
    # A smooth random walk looks more like an ECG than white noise (not that it matters to int16 storage).
    template = np.cumsum(rng.integers(-20, 21, size=(12, n_samples)), axis=1).astype(np.int16)
    for ecg_id in range(1, n_records + 1):
        shard = f"{folder}/{(ecg_id // 1000) * 1000:05d}"
        (data_dir / shard).mkdir(parents=True, exist_ok=True)
        name = f"{ecg_id:05d}_{suffix}"
        signal = np.roll(template, ecg_id, axis=1)
        signal.T.astype("<i2").tofile(data_dir / shard / f"{name}.dat")
        lines = [f"{name} 12 {sampling_rate} {n_samples}"]
        for lead, samples in zip(LEADS, signal):
            checksum = int(samples.sum(dtype=np.int64)) & 0xFFFF
            lines.append(f"{name}.dat 16 {GAIN}.0(0)/mV 16 0 {samples[0]} {checksum} 0 {lead}")
        (data_dir / shard / f"{name}.hea").write_text("\n".join(lines) + "\n")
        fold = ecg_id % 10 + 1
        record = f"{shard}/{name}"
        other = record.replace("records100", "records500").replace("_lr", "_hr") if suffix == "lr" else record
        filenames = f"{record},{other}" if suffix == "lr" else f"{other},{record}"
        codes = CODE_SETS[ecg_id % len(CODE_SETS)]
        demographics = f"{ecg_id // 2},{40 + ecg_id % 50},{ecg_id % 2}"
        rows.append(f'{ecg_id},{demographics},synthetic report,"{codes}",{fold},{filenames}')
    (data_dir / "ptbxl_database.csv").write_text("\n".join(rows) + "\n")
    return n_records * 12 * n_samples * 2


def memory_mb(field: str) -> float:
    """`VmRSS` (current) or `VmHWM` (peak) resident memory of this process, in MB.

    Read from /proc rather than `getrusage`, whose `ru_maxrss` keeps the parent's peak across
    fork + exec on Linux. Falls back to `ru_maxrss` where /proc is missing.
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def prepare_in_this_process(data_dir: str, cache_dir: str, sampling_rate: int, num_proc: int | None) -> dict:
    """Child-process entry point: prepares the dataset and reports time and memory."""
    import datasets

    from dataset_scripts.ptbxl import load_ptbxl

    datasets.disable_progress_bars()
    rss_after_imports = memory_mb("VmRSS")
    start = time.perf_counter()
    dataset = load_ptbxl(data_dir, task="all", sampling_rate=sampling_rate, cache_dir=cache_dir, num_proc=num_proc)
    seconds = time.perf_counter() - start
    arrow_files = {Path(file["filename"]) for part in dataset.values() for file in part.cache_files}
    return {
        "records": sum(len(part) for part in dataset.values()),
        "seconds": seconds,
        "arrow_bytes": sum(path.stat().st_size for path in arrow_files),
        "rss_after_imports_mb": rss_after_imports,
        "peak_rss_mb": memory_mb("VmHWM"),
        # Largest `num_proc` worker (forked, so it counts the pages it shares with its parent).
        "peak_worker_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
    }


def measure_reads(data_dir: Path, cache_dir: Path, sampling_rate: int, batch_size: int, rdsamp_items: int) -> dict:
    """Batch reads from the prepared dataset vs per-record `wfdb.rdsamp`."""
    import datasets
    import wfdb

    from dataset_scripts.ptbxl import load_ptbxl

    datasets.disable_progress_bars()
    train = load_ptbxl(data_dir, task="all", sampling_rate=sampling_rate, cache_dir=cache_dir)["train"]
    signals = train.with_format("numpy", columns=["signal"])
    n = len(signals) - len(signals) % batch_size

    def rate(batches) -> float:
        start = time.perf_counter()
        for batch in batches:
            signals[batch]["signal"]
        return n / (time.perf_counter() - start)

    sequential = rate(slice(i, i + batch_size) for i in range(0, n, batch_size))
    order = np.random.default_rng(0).permutation(n)
    shuffled = rate(order[i : i + batch_size] for i in range(0, n, batch_size))

    paths = train.select(range(min(rdsamp_items, len(train))))["record_path"]
    start = time.perf_counter()
    for path in paths:
        wfdb.rdsamp(str(data_dir / path))
    rdsamp = len(paths) / (time.perf_counter() - start)
    return {
        "read_sequential_rec_per_s": sequential,
        "read_shuffled_rec_per_s": shuffled,
        "rdsamp_rec_per_s": rdsamp,
        "speedup_sequential": sequential / rdsamp,
        "speedup_shuffled": shuffled / rdsamp,
    }


def run_one(work_dir: Path, n_records: int, args: argparse.Namespace) -> dict:
    data_dir, cache_dir = work_dir / f"ptbxl-{n_records}", work_dir / f"cache-{n_records}"
    start = time.perf_counter()
    raw_bytes = write_synthetic_ptbxl(data_dir, n_records, args.sampling_rate)
    logger.info("N=%d: wrote synthetic records in %.1f s", n_records, time.perf_counter() - start)
    command = [
        sys.executable,
        __file__,
        "--_prepare",
        json.dumps([str(data_dir), str(cache_dir), args.sampling_rate, args.num_proc]),
    ]
    child = subprocess.run(command, check=True, capture_output=True, text=True, cwd=REPO_ROOT)
    prepared = json.loads(child.stdout.strip().splitlines()[-1])
    if prepared["records"] != n_records:
        raise RuntimeError(f"prepared {prepared['records']} records, expected {n_records}")
    result = {
        "n_records": n_records,
        "sampling_rate": args.sampling_rate,
        "num_proc": args.num_proc,
        "prepare_rec_per_s": n_records / prepared["seconds"],
        "prepare_seconds": prepared["seconds"],
        "rss_after_imports_mb": prepared["rss_after_imports_mb"],
        "peak_rss_mb": prepared["peak_rss_mb"],
        "peak_worker_rss_mb": prepared["peak_worker_rss_mb"],
        "arrow_bytes": prepared["arrow_bytes"],
        "raw_int16_bytes": raw_bytes,
        "size_ratio": prepared["arrow_bytes"] / raw_bytes,
        **measure_reads(data_dir, cache_dir, args.sampling_rate, args.batch_size, args.rdsamp_items),
    }
    if not args.keep:
        shutil.rmtree(data_dir)
        shutil.rmtree(cache_dir)
    return result


def format_table(results: list[dict]) -> str:
    columns = [
        ("N", "n_records", "{:d}"),
        ("prep rec/s", "prepare_rec_per_s", "{:.0f}"),
        ("RSS imports MB", "rss_after_imports_mb", "{:.0f}"),
        ("peak RSS MB", "peak_rss_mb", "{:.0f}"),
        ("worker RSS MB", "peak_worker_rss_mb", "{:.0f}"),
        ("disk/raw", "size_ratio", "{:.4f}"),
        ("read seq rec/s", "read_sequential_rec_per_s", "{:.0f}"),
        ("read shuf rec/s", "read_shuffled_rec_per_s", "{:.0f}"),
        ("rdsamp rec/s", "rdsamp_rec_per_s", "{:.0f}"),
        ("speedup seq", "speedup_sequential", "{:.0f}x"),
        ("speedup shuf", "speedup_shuffled", "{:.0f}x"),
    ]
    lines = [" | ".join(title for title, _, _ in columns)]
    for result in results:
        lines.append(" | ".join(fmt.format(result[key]) for _, key, fmt in columns))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[5000, 20000], help="numbers of records N")
    parser.add_argument("--sampling-rate", type=int, choices=[100, 500], default=100)
    parser.add_argument("--num-proc", type=int, default=None, help="preparation workers")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--rdsamp-items", type=int, default=500, help="records decoded with wfdb.rdsamp")
    parser.add_argument("--work-dir", type=Path, default=None, help="default: a temporary folder")
    parser.add_argument("--keep", action="store_true", help="keep the synthetic data and prepared files")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    parser.add_argument("--_prepare", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args._prepare:
        data_dir, cache_dir, sampling_rate, num_proc = json.loads(args._prepare)
        print(json.dumps(prepare_in_this_process(data_dir, cache_dir, sampling_rate, num_proc)))
        return []

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    work_dir = args.work_dir or Path(tempfile.mkdtemp(prefix="bench_datasets_"))
    work_dir.mkdir(parents=True, exist_ok=True)
    results = []
    try:
        for n_records in args.sizes:
            results.append(run_one(work_dir, n_records, args))
            logger.info("%s", json.dumps(results[-1]))
    finally:
        if args.work_dir is None and not args.keep:
            shutil.rmtree(work_dir, ignore_errors=True)
    print(format_table(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return results


if __name__ == "__main__":
    sys.path.insert(0, str(REPO_ROOT))
    main()
