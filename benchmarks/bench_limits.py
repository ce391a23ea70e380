"""Time and memory of the hostile or oversized requests of issue 19, sent to the Inference Endpoints handler and the
pipelines of a checkpoint: what each answers (the error, or a summary of the answer), its wall time and the peak
resident memory it adds.

Method. The parent saves a randomly initialised `tiny` dual encoder and a tiny report generator (a 2-layer Llama over
the MiniLM vocabulary) with their processor, pipelines and `handler.py`, and writes every request to a scratch folder
(JSON bodies for the handler; `.csv`, `.npy` and WFDB files for the pipelines), all built from the real PTB-XL record
00001 (500 Hz). Each case then runs in its own fresh Python process, where `modeling_merit` is not importable, so the
checkpoint's own code answers (as on an endpoint). The process loads the route, warms it up as a running endpoint is
(the request's task loaded, one normal record answered), reads the request (a JSON body is parsed before the clock
starts, as an endpoint does before calling the handler) and times one call. A thread samples the process's resident
set size every 2 ms during the call; `peak MiB` is its maximum minus the RSS just before the call. A process that
exceeds `--memory-cap-gb` (default 4) is stopped by that thread and reported as `killed`.

The checkpoint's code is that of the `modeling_merit` the parent imports, so the same script measures the code
before a change: `PYTHONPATH=<old checkout> python benchmarks/bench_limits.py`.

    python benchmarks/bench_limits.py                               # every case, 1 torch thread
    python benchmarks/bench_limits.py --cases csv_1e6_rows npy_header_1.2e11 --output limits.json
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path


REPO_ROOT = Path(__file__).resolve().parents[1]
RECORD = REPO_ROOT / "data" / "ptbxl-sample" / "records500" / "00000" / "00001_hr"
LABELS = ["normal ECG", "atrial fibrillation", "myocardial infarction"]
CASES = {
    "reference_wfdb_upload": ("handler", "a normal request: one 10 s record uploaded as WFDB"),
    "upsampling_wfdb_0.01Hz": ("handler", "WFDB upload whose header says 0.01 Hz"),
    "upsampling_wfdb_0.001Hz": ("handler", "WFDB upload whose header says 0.001 Hz"),
    "upsampling_list_0.01Hz": ("handler", "nested list 12 x 5000 with sampling_rate 0.01"),
    "csv_1e6_rows": ("pipeline", "CSV of 1e6 rows x 12 leads at 500 Hz"),
    "wfdb_2_hours": ("pipeline", "2-hour 12-lead WFDB record at 500 Hz"),
    "list_12x1e6": ("handler", "nested list 12 x 1e6 at 500 Hz"),
    "batch_200": ("handler", "a batch of 200 records (12 x 1000 at 100 Hz)"),
    "labels_1000": ("handler", "1,000 candidate labels"),
    "instruction_40000": ("report", "a 40,000-character report instruction"),
    "rate_minus_500": ("handler", "WFDB header with sampling rate -500"),
    "rate_nan": ("handler", "WFDB header with sampling rate nan"),
    "signal_file_dot": ("handler", "signal file named '.'"),
    "signal_file_dotdot": ("handler", "signal file named '..'"),
    "value_10e400": ("handler", "a value 10**400 in a nested list"),
    "npy_header_1.2e11": ("pipeline", ".npy header claiming 1.2e11 samples"),
}
"""Case name -> (route, what the request is)."""


def save_checkpoints(directory: Path) -> tuple[str, str]:
    """A tiny random dual encoder and a tiny report generator, saved with their processor (MiniLM tokenizer)."""
    import torch
    from transformers import AutoTokenizer

    from merit_training.model_setup import default_text_model
    from modeling_merit import (
        MeritConfig,
        MeritFeatureExtractor,
        MeritForPreTraining,
        MeritForReportGeneration,
        MeritProcessor,
        MeritReportGenerationConfig,
    )

    tokenizer = AutoTokenizer.from_pretrained(default_text_model())
    processor = MeritProcessor(MeritFeatureExtractor(), tokenizer, max_text_length=32)
    torch.manual_seed(0)
    dual, report = directory / "dual", directory / "report"
    MeritForPreTraining(MeritConfig.from_preset("tiny")).save_pretrained(dual)
    processor.save_pretrained(dual)
    text_config = {
        "model_type": "llama", "vocab_size": len(tokenizer), "hidden_size": 32, "intermediate_size": 64,
        "num_hidden_layers": 2, "num_attention_heads": 2, "num_key_value_heads": 1, "max_position_embeddings": 16384,
        "eos_token_id": tokenizer.sep_token_id, "pad_token_id": tokenizer.pad_token_id, "bos_token_id": None,
    }  # fmt: skip
    config = MeritReportGenerationConfig(
        ecg_config=MeritConfig.from_preset("tiny").ecg_config.to_dict(), text_config=text_config,
        projector_hidden_size=64,
    )  # fmt: skip
    model = MeritForReportGeneration(config).eval()
    model.set_prompt(tokenizer)
    model.save_pretrained(report)
    processor.save_pretrained(report)
    return str(dual), str(report)


def write_requests(directory: Path) -> dict:
    """Writes every case's request into `directory`; returns case -> request description for the worker."""
    import numpy as np
    import wfdb

    header = RECORD.with_suffix(".hea").read_text()
    data = RECORD.with_suffix(".dat").read_bytes()
    signal, fields = wfdb.rdsamp(str(RECORD))  # (5000, 12) in mV

    def upload(text: str, content: bytes = data) -> dict:
        return {"hea": base64.b64encode(text.encode()).decode(), "dat": base64.b64encode(content).decode()}

    def body(name: str, inputs, **parameters) -> dict:
        path = directory / f"{name}.json"
        path.write_text(json.dumps({"inputs": inputs, "parameters": parameters}))
        return {"body": str(path)}

    requests = {
        "reference_wfdb_upload": body("reference", upload(header), candidate_labels=LABELS),
        "upsampling_wfdb_0.01Hz": body("hz001", upload(header.replace("12 500 5000", "12 0.01 5000")),
                                       candidate_labels=LABELS),
        "upsampling_wfdb_0.001Hz": body("hz0001", upload(header.replace("12 500 5000", "12 0.001 5000")),
                                        candidate_labels=LABELS),
        "upsampling_list_0.01Hz": body("list001", signal.T.tolist(), sampling_rate=0.01,
                                       lead_names=fields["sig_name"]),
        "batch_200": body("batch", [signal.T[:, :1000].tolist()] * 200, sampling_rate=100,
                          lead_names=fields["sig_name"]),
        "labels_1000": body("labels", upload(header), candidate_labels=[f"finding number {i}" for i in range(1000)]),
        "instruction_40000": body("instruction", upload(header), prompt=("Describe the ECG in detail. " * 1429)[:40000],
                                  max_new_tokens=8),
        "rate_minus_500": body("minus500", upload(header.replace("12 500 5000", "12 -500 5000")),
                               candidate_labels=LABELS),
        "rate_nan": body("nan", upload(header.replace("12 500 5000", "12 nan 5000")), candidate_labels=LABELS),
        "signal_file_dot": body("dot", upload(header.replace("00001_hr.dat", ".")), candidate_labels=LABELS),
        "signal_file_dotdot": body("dotdot", upload(header.replace("00001_hr.dat", "..")), candidate_labels=LABELS),
    }  # fmt: skip
    # a 12 x 1e6 nested list and a value too large for a float, written as JSON text directly
    row = "[" + ",".join(["0.1"] * 1_000_000) + "]"
    (directory / "list_12x1e6.json").write_text(
        '{"inputs": [' + ",".join([row] * 12) + '], "parameters": {"sampling_rate": 500}}'
    )
    requests["list_12x1e6"] = {"body": str(directory / "list_12x1e6.json")}
    row = "[" + ",".join(["0.1"] * 999 + ["1" + "0" * 400]) + "]"
    (directory / "huge.json").write_text(
        '{"inputs": [' + ",".join([row] * 12) + '], "parameters": {"sampling_rate": 100}}'
    )
    requests["value_10e400"] = {"body": str(directory / "huge.json")}

    # files for the pipelines
    lines = "\n".join(",".join(f"{value:.4f}" for value in sample) for sample in signal)
    with open(directory / "long.csv", "w") as file:
        file.write(",".join(fields["sig_name"]) + "\n")
        for _ in range(200):  # 200 x 5000 = 1e6 rows
            file.write(lines + "\n")
    requests["csv_1e6_rows"] = {"path": str(directory / "long.csv"), "sampling_rate": 500}
    digital = wfdb.rdrecord(str(RECORD), physical=False).d_signal
    np.tile(digital, (720, 1)).astype("<i2").tofile(directory / "two_hours.dat")
    (directory / "two_hours.hea").write_text(
        header.replace("00001_hr 12 500 5000", "two_hours 12 500 3600000").replace("00001_hr.dat", "two_hours.dat")
    )
    requests["wfdb_2_hours"] = {"path": str(directory / "two_hours")}
    with open(directory / "liar.npy", "wb") as file:
        np.lib.format.write_array_header_2_0(
            file, {"descr": "<f8", "fortran_order": False, "shape": (12, 10_000_000_000)}
        )  # 1.2e11 samples
        file.write(np.zeros(1000).tobytes())
    requests["npy_header_1.2e11"] = {"path": str(directory / "liar.npy"), "sampling_rate": 500,
                                     "lead_names": fields["sig_name"]}  # fmt: skip
    return requests


def _rss_bytes() -> int:
    with open("/proc/self/statm") as file:
        return int(file.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def run_worker(case: str, checkpoint: str, report_checkpoint: str, request: dict, memory_cap: float) -> dict:
    """Loads the case's route from the checkpoint and times one call (run in a fresh process)."""
    sys.modules["modeling_merit"] = None  # the checkpoint's own code answers, as on an endpoint
    import torch

    torch.set_num_threads(1)
    route = CASES[case][0]
    if route == "pipeline":
        from transformers import pipeline

        classifier = pipeline("zero-shot-ecg-classification", model=checkpoint, trust_remote_code=True, device=-1)
        arguments = {key: value for key, value in request.items() if key != "path"}
        classifier(str(RECORD), candidate_labels=LABELS)  # warm up: `wfdb` imported, the labels embedded

        def call():
            return classifier(request["path"], candidate_labels=LABELS, **arguments)

    else:
        folder = report_checkpoint if route == "report" else checkpoint
        sys.path.insert(0, folder)  # an endpoint imports handler.py from the repository folder
        from handler import EndpointHandler

        handler = EndpointHandler(folder)
        body = json.loads(Path(request["body"]).read_text())
        # warm up as a running endpoint is: the request's task loaded, `wfdb` imported, a record answered
        files = {suffix: base64.b64encode(RECORD.with_suffix(f".{suffix}").read_bytes()).decode() for suffix in
                 ("hea", "dat")}  # fmt: skip
        task_parameters = {"max_new_tokens": 2} if route == "report" else {"candidate_labels": LABELS}
        handler({"inputs": files, "parameters": task_parameters})
        handler({"inputs": [[0.0] * 1000] * 12, "parameters": {"sampling_rate": 100}})

        def call():
            return handler(body)

    peak, done = [_rss_bytes()], threading.Event()

    def sample():
        while not done.is_set():
            rss = _rss_bytes()
            peak[0] = max(peak[0], rss)
            if rss > memory_cap:
                print(json.dumps({"case": case, "outcome": "killed", "message": f"RSS over {memory_cap / 2**30:g} GiB",
                                  "wall_seconds": time.perf_counter() - start, "peak_mib": (rss - before) / 2**20}),
                      flush=True)  # fmt: skip
                os._exit(137)
            time.sleep(0.002)

    before = _rss_bytes()
    start = time.perf_counter()
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        answer = call()
        outcome, message = "answered", json.dumps(answer)[:160]
    except Exception as error:  # the point is to report what each request raises
        outcome, message = type(error).__name__, str(error)
    wall = time.perf_counter() - start
    done.set()
    sampler.join()
    return {"case": case, "outcome": outcome, "message": message, "wall_seconds": wall,
            "peak_mib": (peak[0] - before) / 2**20}  # fmt: skip


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", nargs="+", choices=list(CASES), default=list(CASES), help="cases to run")
    parser.add_argument("--memory-cap-gb", type=float, default=4.0, help="stop a case above this RSS (default 4)")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds before a case is stopped")
    parser.add_argument("--output", help="also write the results as JSON to this file")
    parser.add_argument("--worker", choices=list(CASES), help=argparse.SUPPRESS)
    parser.add_argument("--worker-args", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker is not None:
        worker = json.loads(args.worker_args)
        print(json.dumps(run_worker(args.worker, **worker)))
        return {}

    results = []
    with tempfile.TemporaryDirectory(prefix="bench-limits-") as scratch:
        checkpoint, report_checkpoint = save_checkpoints(Path(scratch))
        requests = write_requests(Path(scratch))
        for case in args.cases:
            worker = {"checkpoint": checkpoint, "report_checkpoint": report_checkpoint, "request": requests[case],
                      "memory_cap": args.memory_cap_gb * 2**30}  # fmt: skip
            env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": os.path.join(scratch, "hf"), "OMP_NUM_THREADS": "1"}
            env.pop("PYTHONPATH", None)  # the worker runs the checkpoint's code, not the repository's
            try:
                completed = subprocess.run(
                    [sys.executable, __file__, "--worker", case, "--worker-args", json.dumps(worker)],
                    env=env, cwd=scratch, capture_output=True, text=True, timeout=args.timeout, check=False,
                )  # fmt: skip
                lines = [line for line in completed.stdout.splitlines() if line.startswith('{"case"')]
                if not lines:
                    raise RuntimeError(f"The worker of {case} failed:\n{completed.stderr[-3000:]}")
                result = json.loads(lines[-1])
            except subprocess.TimeoutExpired:
                result = {"case": case, "outcome": "timed out", "message": f"over {args.timeout:g} s",
                          "wall_seconds": args.timeout, "peak_mib": None}  # fmt: skip
            result["request"] = CASES[case][1]
            results.append(result)
            print(f"{case}: {result['outcome']} in {result['wall_seconds']:.2f} s", file=sys.stderr)

    import modeling_merit

    report = {"code": str(Path(modeling_merit.__file__).parent), "results": results}
    print("| request | answer | wall s | peak MiB | message |")
    print("|---|---|---|---|---|")
    for result in results:
        peak = "" if result["peak_mib"] is None else f"{result['peak_mib']:.0f}"
        message = result["message"].replace("|", "/")[:140]
        print(f"| {result['request']} | {result['outcome']} | {result['wall_seconds']:.2f} | {peak} | {message} |")
    if args.output:
        Path(args.output).write_text(json.dumps(report, indent=2) + "\n")
    return report


if __name__ == "__main__":
    main()
