"""Latency of the MERIT Space on one record, and of the pipeline calls it is made of.

On the example record PTB-XL 00003 (12 leads, 500 Hz, 10 s) it times, after one warm-up call each:

- `zero-shot`: one `zero-shot-ecg-classification` pipeline call in-process (the class embeddings of the labels are
  cached by the pipeline after the warm-up, as they are in the Space);
- `feature-extraction`: one `ecg-feature-extraction` pipeline call;
- `plot`: reading the record and drawing + saving the 12-lead PNG (`merit_plotting.plot_ecg`, as the Space does);
- `space`: one `/analyse` call through `gradio_client` against the app served on loopback in this process: both
  pipeline calls, the plot and the files, plus HTTP and Gradio's queue.

Without `--model` a tiny random checkpoint is saved to a temporary folder (the numbers then measure the plumbing, not
a real encoder). Nothing is written unless `--output` is given.

```
python benchmarks/bench_space.py
python benchmarks/bench_space.py --model outputs/merit-ptbxl-sample --repeats 5 --output bench_space.json
```
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path


REPO_ROOT = Path(__file__).resolve().parents[1]
LABELS = ["normal ECG", "myocardial infarction", "ST/T change", "conduction disturbance", "hypertrophy"]


def load_space_app():
    spec = importlib.util.spec_from_file_location("merit_space_app", REPO_ROOT / "space" / "app.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def save_tiny_checkpoint(directory: Path) -> str:
    import torch
    from transformers import AutoTokenizer

    sys.path.insert(0, str(REPO_ROOT))
    from merit_training.model_setup import default_text_model
    from modeling_merit import MeritConfig, MeritFeatureExtractor, MeritModel, MeritProcessor

    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(default_text_model())
    MeritModel(MeritConfig.from_preset("tiny")).save_pretrained(directory)
    MeritProcessor(MeritFeatureExtractor(), tokenizer).save_pretrained(directory)
    return str(directory)


def timed(function, repeats: int) -> list[float]:
    function()  # warm-up
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        seconds.append(time.perf_counter() - start)
    return seconds


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="MERIT checkpoint saved with its pipelines (default: a tiny random one).")
    parser.add_argument("--repeats", type=int, default=3, help="Timed calls per measurement (median reported).")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1).")
    parser.add_argument("--output", help="Also write the timings (seconds) to this JSON file.")
    args = parser.parse_args(argv)
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

    import torch
    from gradio_client import Client

    torch.set_num_threads(args.threads)
    app = load_space_app()
    with tempfile.TemporaryDirectory(prefix="bench-space-") as scratch:
        model = args.model or save_tiny_checkpoint(Path(scratch) / "checkpoint")
        space = app.MeritSpace(model)
        example = next(iter(app.EXAMPLES))
        record = str(app.EXAMPLES_DIR / app.EXAMPLES[example])

        def plot():
            signal, rate, lead_names = space._signal_for_plot(record, None)
            app.plot_ecg(signal, rate, lead_names, path=Path(scratch) / "plot.png", dpi=110)

        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        demo = space.build()
        demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, show_error=True)
        try:
            client = Client(f"http://127.0.0.1:{port}/", verbose=False)
            timings = {
                "zero-shot": timed(lambda: space.zero_shot(record, candidate_labels=LABELS), args.repeats),
                "feature-extraction": timed(lambda: space.feature_extraction(record), args.repeats),
                "plot": timed(plot, args.repeats),
                "space": timed(
                    lambda: client.predict(example, [], "\n".join(LABELS), 0, api_name="/analyse"), args.repeats
                ),
            }
        finally:
            demo.close()
    print(f"model: {args.model or 'tiny random checkpoint'} | record: {Path(record).name} | threads: {args.threads}")
    print(f"{'measurement':<20} {'median s':>9} {'min s':>9}")
    for name, seconds in timings.items():
        print(f"{name:<20} {statistics.median(seconds):>9.3f} {min(seconds):>9.3f}")
    if args.output:
        Path(args.output).write_text(json.dumps(timings, indent=2) + "\n")
    return timings


if __name__ == "__main__":
    main()
