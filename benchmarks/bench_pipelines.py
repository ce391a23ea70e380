"""Latency of one zero-shot ECG classification through the `zero-shot-ecg-classification` pipeline and through the
Inference Endpoints handler (`handler.py`), on the same real PTB-XL record.

Method. A checkpoint folder is needed: `--model` (e.g. the `make demo` output), or, by default, a randomly initialised
model of the `--preset` shape (`small`: ECG encoder 384/12/6, MiniLM-shaped text tower) saved with the MiniLM
tokenizer; a random model computes exactly what a trained one does, so the timing is the same. Each route runs in its
own fresh Python process, which loads the checkpoint from disk with `trust_remote_code=True` (as a user or an endpoint
would) and then answers the record twice, each timed once:

- `load`: importing `transformers.pipeline` / `handler.py` and building the pipeline / `EndpointHandler(path)`
  (which loads the model and processor);
- `first call`: the first answer, which embeds the candidate labels with the text tower (5 templates each);
- `second call`: the same request again; the label embeddings are cached by the pipeline, so this is the ECG side:
  reading the WFDB record, preprocessing, the ECG encoder and the scores.

The pipeline is called with the record path; the handler with its JSON body (the `.hea` and `.dat` files in base64,
as an HTTP client would send them), parsed from a string, so the timing includes JSON decoding, base64 decoding and
writing the upload to a temporary folder. Wall time and the process's CPU time are reported: on a shared machine a
CPU time well below wall time means the process waited for a core. torch runs `--threads` threads.

    python benchmarks/bench_pipelines.py                          # small preset, random weights, 1 thread
    python benchmarks/bench_pipelines.py --model outputs/merit-ptbxl-sample --threads 2
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_RECORD = REPO_ROOT / "data" / "ptbxl-sample" / "records500" / "00000" / "00001_hr"
DEFAULT_LABELS = ["normal ECG", "atrial fibrillation", "myocardial infarction", "left bundle branch block",
                  "ST/T change"]  # fmt: skip
ROUTES = ("pipeline", "handler")


def save_random_checkpoint(preset: str, directory: Path) -> None:
    """A randomly initialised MERIT pretraining model of `preset`, saved with its processor (MiniLM tokenizer)."""
    import torch
    from transformers import AutoTokenizer

    from merit_training.model_setup import default_text_model
    from modeling_merit import MeritConfig, MeritFeatureExtractor, MeritForPreTraining, MeritProcessor

    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(default_text_model())
    MeritForPreTraining(MeritConfig.from_preset(preset)).save_pretrained(directory)
    MeritProcessor(MeritFeatureExtractor(), tokenizer).save_pretrained(directory)


def timed(function, *args, **kwargs):
    """`(result, wall seconds, CPU seconds of this process)` of one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = function(*args, **kwargs)
    return result, time.perf_counter() - wall, time.process_time() - cpu


def run_worker(route: str, checkpoint: str, record: str, labels: list[str], threads: int) -> dict:
    """Loads one route from the checkpoint and times two identical zero-shot requests (run in a fresh process)."""
    sys.modules["modeling_merit"] = None  # load the checkpoint's own code, as a user without the package would
    import torch

    torch.set_num_threads(threads)
    timings = {}
    if route == "pipeline":

        def load():
            from transformers import pipeline

            return pipeline("zero-shot-ecg-classification", model=checkpoint, trust_remote_code=True, device=-1)

        classifier, *timings["load"] = timed(load)

        def request():
            return classifier(record, candidate_labels=labels)

    else:

        def load():
            sys.path.insert(0, checkpoint)  # an endpoint imports handler.py from the repository folder
            from handler import EndpointHandler

            return EndpointHandler(checkpoint)

        handler, *timings["load"] = timed(load)
        files = {
            suffix: base64.b64encode(Path(f"{record}.{suffix}").read_bytes()).decode() for suffix in ("hea", "dat")
        }
        body = json.dumps({"inputs": files, "parameters": {"candidate_labels": labels}})

        def request():
            return handler(json.loads(body))

    answer, *timings["first call"] = timed(request)
    again, *timings["second call"] = timed(request)
    if again != answer:
        raise RuntimeError(f"The {route} gave different answers to the same request: {answer} vs {again}.")
    return {"route": route, "timings": timings, "answer": answer}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="checkpoint folder; default: a random model of --preset shape")
    parser.add_argument("--preset", default="small", help="preset of the random model (default: small)")
    parser.add_argument("--record", default=str(DEFAULT_RECORD), help="WFDB record (default: PTB-XL 00001, 500 Hz)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads in each worker (default: 1)")
    parser.add_argument("--output", help="also write the results as JSON to this file")
    parser.add_argument("--worker", choices=ROUTES, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker is not None:
        print(json.dumps(run_worker(args.worker, args.model, args.record, DEFAULT_LABELS, args.threads)))
        return {}

    with tempfile.TemporaryDirectory(prefix="bench-pipelines-") as scratch:
        checkpoint = args.model
        description = f"checkpoint {args.model}"
        if checkpoint is None:
            checkpoint = os.path.join(scratch, f"merit-{args.preset}-random")
            save_random_checkpoint(args.preset, Path(checkpoint))
            description = f"randomly initialised `{args.preset}` preset (no trained checkpoint)"
        results = []
        for route in ROUTES:
            env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": os.path.join(scratch, f"hf-{route}"),
                   "OMP_NUM_THREADS": str(args.threads)}  # fmt: skip
            env.pop("PYTHONPATH", None)  # the worker must run the checkpoint's code, not the repository's
            completed = subprocess.run(
                [sys.executable, __file__, "--worker", route, "--model", checkpoint, "--record", args.record,
                 "--threads", str(args.threads)],
                env=env, cwd=scratch, capture_output=True, text=True, check=False,
            )  # fmt: skip
            if completed.returncode != 0:
                raise RuntimeError(f"The {route} worker failed:\n{completed.stderr[-4000:]}")
            results.append(json.loads(completed.stdout.strip().splitlines()[-1]))

    if results[0]["answer"] != results[1]["answer"]:
        raise RuntimeError(f"Pipeline and handler disagree: {results[0]['answer']} vs {results[1]['answer']}")
    report = {"model": description, "record": args.record, "labels": DEFAULT_LABELS, "threads": args.threads,
              "results": results}  # fmt: skip
    print(f"Zero-shot ECG classification, {description}; record {args.record}; {len(DEFAULT_LABELS)} labels; "
          f"{args.threads} torch thread(s); one timed run per step, fresh process per route.\n")  # fmt: skip
    print("| route | load s (CPU s) | first call s (CPU s) | second call s (CPU s) |")
    print("|---|---|---|---|")
    for result in results:
        cells = [f"{wall:.3f} ({cpu:.3f})" for wall, cpu in (result["timings"][step] for step in
                                                            ("load", "first call", "second call"))]  # fmt: skip
        print(f"| {result['route']} | " + " | ".join(cells) + " |")
    if args.output:
        Path(args.output).write_text(json.dumps(report, indent=2) + "\n")
    return report


if __name__ == "__main__":
    main()
