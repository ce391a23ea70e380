#!/usr/bin/env python
# Copyright 2026 The MERIT authors.
# Licensed under the Apache License, Version 2.0.
"""The MERIT Space: a 12-lead plot, zero-shot scores, the ECG embedding and (optionally) a generated report for an
uploaded or example ECG record.

```bash
python space/app.py --model outputs/merit-ptbxl-sample --port 7860   # serves on 127.0.0.1:7860
python space/app.py --model your-org/merit-ecg --report-model your-org/merit-ecg-report
```

All inference goes through the pipelines saved with the checkpoint (`zero-shot-ecg-classification`,
`ecg-feature-extraction`, `ecg-report-generation`, loaded with `trust_remote_code=True`), so the Space gives the
same answers as `transformers.pipeline(...)`; the record is read once more, only to be plotted, by
`merit_plotting.plot_ecg`. Runs on CPU.

Every request is held to the pipelines' limits (the checkpoint's `limits_merit.MeritLimits`: record size, sampling
rate, labels, ...), which the Space's variables `MERIT_<LIMIT>` change (e.g. `MERIT_MAX_CANDIDATE_LABELS=100`); the
record is read for the plot by the same limited reader, so a long upload is read over its central stretch only.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


SPACE_DIR = Path(__file__).resolve().parent
# `merit_plotting` sits next to app.py in a deployed Space and one folder up in the repository
for _folder in (SPACE_DIR, SPACE_DIR.parent):
    if (_folder / "merit_plotting").is_dir():
        if str(_folder) not in sys.path:
            sys.path.insert(0, str(_folder))
        break

import gradio as gr  # noqa: E402
from transformers import pipeline  # noqa: E402

from merit_plotting import STANDARD_LEAD_NAMES, plot_ecg, standard_lead_name  # noqa: E402


EXAMPLES_DIR = SPACE_DIR / "examples"
EXAMPLES = {
    "PTB-XL 00003: sinus rhythm, normal ECG": "00003_hr",
    "PTB-XL 00008: inferior myocardial infarction (age undetermined)": "00008_hr",
    "PTB-XL 00017: atrial flutter / fibrillation": "00017_hr",
}
"""Dropdown label -> WFDB record name in `examples/` (PTB-XL v1.0.3, CC BY 4.0; see examples/README.md)."""

DEFAULT_CANDIDATE_LABELS = (
    "normal ECG",
    "myocardial infarction",
    "ST/T change",
    "conduction disturbance",
    "hypertrophy",
    "atrial fibrillation",
)
DEFAULT_MODEL = "your-org/merit-ecg"
"""Used when neither `--model` nor the `MERIT_MODEL` environment variable (e.g. a Space variable) names one."""

UPLOAD_SUFFIXES = (".hea", ".dat", ".npy", ".csv")
OUTPUT_MAX_AGE_S = 3600
"""Answer files (plot, embedding) older than this are deleted: Gradio serves its own copies from its cache, which it
clears on the same schedule (`delete_cache`)."""
WFDB_UNITS_IN_MV = {"mv": 1.0, "uv": 1.0e-3, "µv": 1.0e-3, "μv": 1.0e-3, "v": 1.0e3}

DESCRIPTION = """\
# MERIT: multimodal ECG representation learning

Pick an example or upload a 12-lead ECG: a WFDB record (its `.hea` **and** `.dat` file together), a `.npy` array
(leads x samples, in mV, leads in the order I, II, III, aVR, aVL, aVF, V1-V6) or a `.csv` file (time x leads, a
header row of lead names, optionally a first `time` column in seconds), then press **Analyse**. An upload is used
rather than the example; give the sampling rate for `.npy` files and for `.csv` files without a time column.

The zero-shot score of a label is (1 + cosine similarity) / 2 between the ECG embedding and the embedding of the
label's prompts: one score per label in [0, 1], not probabilities that sum to one. Research code, **not a medical
device**: do not use it for diagnosis.
"""


def parse_candidate_labels(text: str | None) -> list[str]:
    """Candidate labels from a textbox: one per line, or separated by commas; blanks dropped."""
    labels = [label.strip() for line in (text or "").splitlines() for label in line.split(",")]
    labels = [label for label in labels if label]
    if not labels:
        raise ValueError("Enter at least one candidate label (one per line), e.g. 'normal ECG'.")
    return labels


def report_text(outputs: list[dict]) -> str:
    """The report box's text from the `ecg-report-generation` pipeline's output for one record: the generated report,
    then, for a findings-conditioned model, the classifier findings it was conditioned on (with their scores)."""
    first = outputs[0]
    text = first["generated_text"]
    if "findings" in first:
        found = ", ".join(f"{entry['phrase']} ({entry['score']:.2f})" for entry in first["findings"]) or "none"
        text += f"\n\nClassifier findings the report was conditioned on: {found}."
    return text


def record_from_inputs(example: str | None, files: list[str] | None):
    """The record to analyse, in a form the MERIT pipelines read, and a name for it.

    An upload wins over the example. Returns `(record, name)`: a WFDB record path, `{"hea": path, "dat": path}`, or
    a `.npy` / `.csv` path.
    """
    files = [os.fspath(file) for file in (files or [])]
    if files:
        names = [Path(file).name for file in files]
        by_suffix: dict[str, list[str]] = {}
        for file in files:
            by_suffix.setdefault(Path(file).suffix.lower(), []).append(file)
        if set(by_suffix) == {".hea", ".dat"} and len(files) == 2:
            return {"hea": by_suffix[".hea"][0], "dat": by_suffix[".dat"][0]}, Path(by_suffix[".hea"][0]).stem
        if len(files) == 1 and set(by_suffix) <= {".npy", ".csv"}:
            return files[0], Path(files[0]).stem
        raise ValueError(
            f"Upload one record: a WFDB record as its two files (.hea and .dat together), one .npy file or one .csv "
            f"file; got {names}."
        )
    if example:
        if example not in EXAMPLES:
            raise ValueError(f"Unknown example {example!r}; choose one of {list(EXAMPLES)}.")
        return str(EXAMPLES_DIR / EXAMPLES[example]), EXAMPLES[example]
    raise ValueError("Pick an example record or upload one.")


class MeritSpace:
    """The Space's state: the pipelines of one checkpoint (and of an optional report-generation checkpoint).

    Args:
        model (`str`): a MERIT dual-encoder checkpoint (folder or Hub id) saved with its pipelines.
        report_model (`str`, *optional*): a checkpoint with the `ecg-report-generation` pipeline; without it the
            report box is hidden.
    """

    def __init__(self, model: str, report_model: str | None = None):
        self.zero_shot = pipeline("zero-shot-ecg-classification", model=model, trust_remote_code=True)
        # the same model object: one copy of the weights in memory
        self.feature_extraction = pipeline(
            "ecg-feature-extraction",
            model=self.zero_shot.model,
            feature_extractor=self.zero_shot.feature_extractor,
            trust_remote_code=True,
        )
        self.report_generation = (
            pipeline("ecg-report-generation", model=report_model, trust_remote_code=True) if report_model else None
        )
        # the pipelines' own readers of the accepted input forms and of WFDB records (from the checkpoint's
        # pipeline_merit.py and feature_extraction_merit.py), held to the pipelines' limits
        self._record_arguments = sys.modules[type(self.zero_shot).__module__].ecg_record_arguments
        self._read_wfdb_record = sys.modules[type(self.zero_shot.feature_extractor).__module__].read_wfdb_record
        self.limits = self.zero_shot.limits
        self._outputs = tempfile.TemporaryDirectory(prefix="merit-space-")

    def _new_output_dir(self) -> Path:
        """A fresh folder for the files of one answer; folders older than `OUTPUT_MAX_AGE_S` are removed."""
        root = Path(self._outputs.name)
        cutoff = time.time() - OUTPUT_MAX_AGE_S
        for folder in root.iterdir():
            if folder.stat().st_mtime < cutoff:
                shutil.rmtree(folder, ignore_errors=True)
        return Path(tempfile.mkdtemp(dir=root))

    def _signal_for_plot(self, record, sampling_rate) -> tuple[np.ndarray, float, list[str]]:
        """The record in mV as `(leads, samples)`, its sampling rate and lead names: the standard leads only."""
        with tempfile.TemporaryDirectory(prefix="merit-space-record-") as workdir:
            arguments = self._record_arguments(record, sampling_rate, None, workdir, limits=self.limits)
            if isinstance(arguments["ecg"], str):
                signal, header = self._read_wfdb_record(arguments["ecg"], self.limits)
                factors = np.array([WFDB_UNITS_IN_MV.get(unit.strip().lower(), 1.0) for unit in header.units])
                signal, rate, names = signal * factors[:, None], header.sampling_rate, list(header.lead_names)
            else:
                signal, rate = np.asarray(arguments["ecg"], dtype=np.float64), float(arguments["sampling_rate"])
                names = arguments["lead_names"] or list(self.zero_shot.feature_extractor.lead_names)
        keep = [row for row, name in enumerate(names) if standard_lead_name(name) is not None]
        return signal[keep], rate, [names[row] for row in keep]

    def analyse(self, example, files, candidate_labels, sampling_rate):
        """Gradio callback: `(plot PNG, {label: score}, embedding .npy, report, record summary)`.

        Bad input (an unusable upload, no labels, ...) is answered with a `gr.Error` carrying the pipeline's
        `ValueError` message, which the page and `gradio_client` show instead of a stack trace.
        """
        output_dir = self._new_output_dir()
        try:
            labels = parse_candidate_labels(candidate_labels)
            record, name = record_from_inputs(example, files)
            rate = float(sampling_rate) if sampling_rate else None  # 0 or empty: the file says, or none is known
            scores = self.zero_shot(record, candidate_labels=labels, sampling_rate=rate)
            embedding = self.feature_extraction(record, sampling_rate=rate)
            report = ""
            if self.report_generation is not None:
                report = report_text(self.report_generation(record, sampling_rate=rate))
            signal, plot_rate, lead_names = self._signal_for_plot(record, rate)
            plot_path = output_dir / f"{name}_12lead.png"
            plot_ecg(signal, plot_rate, lead_names, path=plot_path, dpi=110)
        except ValueError as error:
            raise gr.Error(str(error), print_exception=False) from error
        embedding_path = output_dir / f"{name}_merit_embedding.npy"
        np.save(embedding_path, np.asarray(embedding, dtype=np.float32))
        recorded = {standard_lead_name(lead) for lead, row in zip(lead_names, signal) if not np.isnan(row).all()}
        missing = [lead for lead in STANDARD_LEAD_NAMES if lead not in recorded]
        summary = (
            f"**{name}**: {len(recorded)} standard leads, {plot_rate:g} Hz, {signal.shape[1] / plot_rate:.1f} s; "
            f"embedding of {len(embedding)} values." + (f" Not recorded: {', '.join(missing)}." if missing else "")
        )
        label_scores = {entry["label"]: entry["score"] for entry in scores}
        return str(plot_path), label_scores, str(embedding_path), report, summary

    def build(self) -> gr.Blocks:
        """The Gradio app; its one endpoint is `/analyse(example, files, candidate_labels, sampling_rate)`."""
        with gr.Blocks(
            title="MERIT ECG", analytics_enabled=False, delete_cache=(OUTPUT_MAX_AGE_S, OUTPUT_MAX_AGE_S)
        ) as demo:
            gr.Markdown(DESCRIPTION)
            with gr.Row():
                with gr.Column(scale=1):
                    example = gr.Dropdown(
                        choices=list(EXAMPLES), value=next(iter(EXAMPLES)), label="Example record (PTB-XL, CC BY 4.0)"
                    )
                    files = gr.File(
                        file_count="multiple",
                        file_types=list(UPLOAD_SUFFIXES),
                        label="...or upload a record (.hea + .dat, .npy or .csv)",
                        elem_id="upload",
                    )
                    sampling_rate = gr.Number(
                        value=0, minimum=0, label="Sampling rate in Hz of a .npy or time-less .csv upload (0: none)"
                    )
                    labels = gr.Textbox(
                        value="\n".join(DEFAULT_CANDIDATE_LABELS),
                        lines=6,
                        label="Candidate labels (one per line)",
                        elem_id="candidate-labels",
                    )
                    run = gr.Button("Analyse", variant="primary", elem_id="analyse")
                with gr.Column(scale=2):
                    summary = gr.Markdown(elem_id="summary")
                    scores = gr.Label(label="Zero-shot scores", num_top_classes=20, elem_id="scores")
                    report = gr.Textbox(
                        label="Generated report", visible=self.report_generation is not None, elem_id="report"
                    )
                    embedding = gr.File(label="ECG embedding (.npy, float32)", elem_id="embedding")
            plot = gr.Image(label="12-lead ECG", show_label=False, type="filepath", elem_id="ecg-plot")
            run.click(
                self.analyse,
                inputs=[example, files, labels, sampling_rate],
                outputs=[plot, scores, embedding, report, summary],
                api_name="analyse",
            )
        return demo


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--model",
        default=os.environ.get("MERIT_MODEL", DEFAULT_MODEL),
        help="MERIT checkpoint folder or Hub id, saved with its pipelines (default: $MERIT_MODEL, else %(default)s).",
    )
    parser.add_argument(
        "--report-model",
        default=os.environ.get("MERIT_REPORT_MODEL"),
        help="Checkpoint with the ecg-report-generation pipeline (default: $MERIT_REPORT_MODEL); without it the "
        "report box is hidden.",
    )
    parser.add_argument(
        "--host",
        default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
        help="Address to serve on (default: $GRADIO_SERVER_NAME, which Spaces set, else 127.0.0.1).",
    )
    parser.add_argument(
        "--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", 7860)), help="Port (default: 7860)."
    )
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    demo = MeritSpace(args.model, args.report_model).build()
    demo.launch(server_name=args.host, server_port=args.port, show_error=True, ssr_mode=False)


if __name__ == "__main__":
    main()
