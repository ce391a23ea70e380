"""CPU latency of the ECG encoder exported to ONNX (`merit_cli.onnx_export`): ONNX Runtime (fp32 and int8) against
PyTorch, on the same preprocessed batch of real PTB-XL records, in one process.

Method. A checkpoint is exported with `export_onnx(..., int8=True)` into a temporary folder: `--model` (e.g. the
`make demo` output), or by default a randomly initialised model of `--preset` (`compact`, the demo's shape) saved
with the MiniLM tokenizer; random weights compute exactly what trained ones do, so the timing is the same. The batch
is `--batch-size` records of the excerpt (`data/ptbxl-sample/records500`) preprocessed once by the checkpoint's
processor. Each route (PyTorch `get_ecg_features` + pooled output under `torch.inference_mode()`, ORT fp32, ORT
int8) is warmed up once, then the routes are timed in turn, `--iterations` rounds, so that all three see the same
machine load; the median per route and the ratios to PyTorch are printed. torch and ONNX Runtime both get
`--threads` intra-op threads.

    python benchmarks/bench_onnx.py                               # compact preset, random weights, 1 thread
    python benchmarks/bench_onnx.py --model outputs/merit-ptbxl-sample --batch-size 32 --threads 2
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path


REPO_ROOT = Path(__file__).resolve().parents[1]
RECORDS_DIR = REPO_ROOT / "data" / "ptbxl-sample" / "records500" / "00000"


def save_random_checkpoint(preset: str, directory: Path) -> None:
    """A randomly initialised MERIT dual encoder of `preset`, saved with its processor (MiniLM tokenizer)."""
    import torch
    from transformers import AutoTokenizer

    from merit_training.model_setup import default_text_model
    from modeling_merit import MeritConfig, MeritFeatureExtractor, MeritModel, MeritProcessor

    torch.manual_seed(0)
    MeritModel(MeritConfig.from_preset(preset)).save_pretrained(directory)
    MeritProcessor(MeritFeatureExtractor(), AutoTokenizer.from_pretrained(default_text_model())).save_pretrained(
        directory
    )


def run(model: str | None, preset: str, batch_size: int, iterations: int, threads: int) -> dict:
    import numpy as np
    import onnxruntime
    import torch

    from merit_cli.onnx_export import export_onnx
    from modeling_merit import MeritModel, MeritProcessor

    torch.set_num_threads(threads)
    with tempfile.TemporaryDirectory(prefix="bench-onnx-") as workdir:
        checkpoint = Path(model) if model else Path(workdir) / "checkpoint"
        if model is None:
            save_random_checkpoint(preset, checkpoint)
        exported = export_onnx(checkpoint, Path(workdir) / "onnx", int8=True)
        torch_model = MeritModel.from_pretrained(checkpoint).eval()
        processor = MeritProcessor.from_pretrained(checkpoint)
        records = sorted(str(path.with_suffix("")) for path in RECORDS_DIR.glob("*.hea"))
        records = [records[index % len(records)] for index in range(batch_size)]
        features = processor.feature_extractor(records, return_tensors="np")
        feeds = {"input_values": features["input_values"], "lead_mask": features["lead_mask"].astype(np.int64)}
        tensors = {name: torch.from_numpy(value) for name, value in feeds.items()}

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        sessions = {
            name: onnxruntime.InferenceSession(exported["files"][key], options, providers=["CPUExecutionProvider"])
            for name, key in (("onnxruntime fp32", "ecg_encoder"), ("onnxruntime int8", "ecg_encoder_int8"))
        }

        def pytorch():
            with torch.inference_mode():
                pooled = torch_model.ecg_model(**tensors, return_dict=True).pooler_output
                return torch.nn.functional.normalize(torch_model.ecg_projection(pooled), dim=-1)

        routes = {"pytorch": pytorch}
        for name, session in sessions.items():
            routes[name] = lambda session=session: session.run(None, feeds)
        times = {name: [] for name in routes}
        for route in routes.values():
            route()  # warm-up
        for _ in range(iterations):
            for name, route in routes.items():
                start = time.perf_counter()
                route()
                times[name].append(time.perf_counter() - start)
        sizes = exported["sizes"]
    medians = {name: statistics.median(values) for name, values in times.items()}
    return {
        "preset": None if model else preset,
        "model": model,
        "batch_size": batch_size,
        "threads": threads,
        "iterations": iterations,
        "median_s": medians,
        "speedup_vs_pytorch": {name: medians["pytorch"] / value for name, value in medians.items()},
        "file_bytes": {name: sizes[name] for name in ("ecg_encoder", "ecg_encoder_int8")},
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="checkpoint folder (default: random --preset model)")
    parser.add_argument("--preset", default="compact")
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--output", default=None, help="also write the results as JSON")
    args = parser.parse_args(argv)
    result = run(args.model, args.preset, args.batch_size, args.iterations, args.threads)
    print(
        f"ECG encoder latency, batch {result['batch_size']}, {result['threads']} thread(s), median of "
        f"{result['iterations']} ({args.model or args.preset + ' preset, random weights'})"
    )
    for name, seconds in result["median_s"].items():
        print(f"  {name:18s} {seconds * 1e3:9.2f} ms   x{result['speedup_vs_pytorch'][name]:.2f} vs PyTorch")
    print(
        f"  file sizes: fp32 {result['file_bytes']['ecg_encoder'] / 1e6:.2f} MB, "
        f"int8 {result['file_bytes']['ecg_encoder_int8'] / 1e6:.2f} MB"
    )
    if args.output:
        Path(args.output).write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
