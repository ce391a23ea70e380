# Copyright 2026 The MERIT authors.
# Licensed under the Apache License, Version 2.0.
"""The `merit` console command (entry point `merit = merit_cli.main:main`; also `python -m merit_cli`).

```bash
merit embed data/ptbxl-sample/records100 --model outputs/merit-ptbxl-sample --output embeddings.parquet
merit zero-shot "recordings/**/*.hea" --model M --labels "normal ECG" "atrial fibrillation" --output scores.csv
merit ecg-classification recordings/ --model outputs/eval/models/linear-probe --output predictions.csv
merit export-onnx --model M --output_dir onnx/ --int8
```

`main(argv)` runs a command line and returns the exit status, so tests run it in-process.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from importlib import metadata

from .inputs import FORMATS


logger = logging.getLogger(__name__)

DESCRIPTION = """\
MERIT from the command line: embeddings, zero-shot scores and classifier predictions for folders of ECGs, and the
ONNX export of a checkpoint. No Python needed.

Every record goes through the checkpoint's own processor (lead matching by name, resampling, filtering, crop/pad,
scaling) and the same code as the `transformers` pipelines the checkpoint carries, so the numbers are the
pipelines' numbers. Records are read in parallel (--num_workers) and run through the model in batches
(--batch_size); a record that cannot be read is listed with its error (on screen and in OUT.errors.csv) while the
others go on.
"""

INPUT_HELP = """\
ECG records: WFDB records (the .hea header, the .dat signal file or the record name without extension), .npy
arrays (n_leads, n_samples), .csv tables (time x leads, a header row of lead names), folders (searched
recursively) and glob patterns in quotes ("data/**/*.hea"; ** matches any depth)."""

RECORD_HELP = """\
inputs:
  WFDB headers carry their sampling rate and lead names (--sampling_rate and --lead_names are not used for them); a
  .csv file gives its lead names in the header row and its rate in a first column named time, time_s, t or seconds
  (in seconds; a --sampling_rate that disagrees with it is an error), else --sampling_rate; empty or nan / n/a cells
  are missing samples, other text an error; a .npy array needs --sampling_rate, and --lead_names unless it has
  exactly 12 leads in the order I, II, III, aVR, aVL, aVF, V1-V6.
  Missing leads are zero-filled and masked, as in the pipelines; the `leads` column lists the leads found.

output:
  One row per record: path (absolute; the key of a record), record (its name), sampling_rate (Hz, as read),
  num_samples (as read), leads (the model's leads present in the record), then the command's own columns. The
  extension of --output chooses Parquet (.parquet) or CSV (.csv; the leads joined with spaces).

  Runs resume: records already in OUT (or written by an interrupted run) are skipped, and new rows are added to
  OUT. Rows are saved every few hundred records in OUT.partial/ and merged into OUT by one atomic rename when the
  run ends, also on Ctrl-C, so nothing written is lost. OUT remembers the model and settings it was made with (a
  CSV OUT in OUT.settings.json) and refuses rows of another run (--overwrite starts afresh). Records that could
  not be read are listed in OUT.errors.csv and tried again by the next run.

exit status:
  0 when records were written or were already in OUT (some may have failed: see the list), 1 when nothing could be
  read, 2 for a wrong command line or checkpoint."""


def package_version() -> str:
    """The installed version of the `merit-ecg` distribution."""
    try:
        return metadata.version("merit-ecg")
    except metadata.PackageNotFoundError:
        return "unknown (not installed)"


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the line breaks of descriptions and epilogs, in the repository's 119 columns."""

    def __init__(self, prog):
        super().__init__(prog, max_help_position=32, width=119)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="merit",
        description=DESCRIPTION,
        epilog="Run `merit COMMAND --help` for a command's options. Research code, not a medical device.",
        formatter_class=_HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {package_version()} (merit-ecg)")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    embed = _record_command(
        commands,
        "embed",
        help="one embedding per record, into a Parquet file",
        description=(
            "Embeds ECG records with a MERIT checkpoint: one row per record with its embedding (list of float32).\n\n"
            "By default the pooled embedding of the ECG encoder (hidden_size: the mean of the patch tokens, then "
            "LayerNorm),\nthe features a linear probe is trained on; --projected gives the embedding in the space "
            "shared with the text\ntower (projection_dim), the one zero-shot classification and retrieval compare "
            "(dual-encoder checkpoints only).\nThe pipeline `ecg-feature-extraction` gives the same numbers with "
            'embedding="pooled" (or "projected"; its own\ndefault is the projected embedding of a dual encoder).'
        ),
        example="merit embed data/ptbxl-sample/records100 --model outputs/merit-ptbxl-sample --output embeddings.parquet",
        output_help="the table of embeddings (.parquet; or .csv, each embedding space-separated)",
    )
    embed.add_argument(
        "--projected", action="store_true", help="the projected (ECG-text) embedding instead of the pooled one"
    )
    embed.add_argument("--normalize", action="store_true", help="L2-normalise the embeddings")
    embed.set_defaults(run=run_embed)

    zero_shot = _record_command(
        commands,
        "zero-shot",
        help="zero-shot scores of labels in words (dual-encoder checkpoints)",
        description=(
            "Zero-shot classification with a MERIT dual encoder: one score column per label, named as the label.\n\n"
            "Each label is put into the default prompt templates (or --hypothesis_template) and the prompt embeddings "
            "are\naveraged; the score is (1 + cosine) / 2 of the normalised ECG and class embeddings: one score per "
            "label in [0, 1],\nnot a probability distribution over the labels. The same scoring as the pipeline "
            "`zero-shot-ecg-classification`\nand `eval_merit.py --task zero-shot` (whose default prompts are report-style "
            "ones: --prompts FILE.json\nscores with given prompts)."
        ),
        example=(
            'merit zero-shot "recordings/**/*.hea" --model outputs/merit-ptbxl-sample '
            '--labels "normal ECG" "atrial fibrillation" --output scores.csv'
        ),
        output_help="the table of scores (.csv or .parquet)",
    )
    labels = zero_shot.add_mutually_exclusive_group(required=True)
    labels.add_argument("--labels", nargs="+", metavar="LABEL", help="the classes, in words (quote each)")
    labels.add_argument(
        "--prompts",
        metavar="FILE.json",
        help='{"label": ["prompt", ...], ...}: prompts used as they are (e.g. the evaluation\'s) instead of templates',
    )
    zero_shot.add_argument(
        "--hypothesis_template",
        nargs="+",
        metavar="TEMPLATE",
        help="prompt template(s) with one {} for the label, replacing the 5 default templates (with --labels)",
    )
    zero_shot.set_defaults(run=run_zero_shot)

    classification = _record_command(
        commands,
        "ecg-classification",
        help="the predictions of a fine-tuned or linear-probed classifier",
        description=(
            "Classifies ECG records with a MeritForECGClassification checkpoint (saved by eval_merit.py): one score "
            "column per\nlabel (sigmoid; softmax for a single-label classifier), then `positive`: the labels whose "
            "score reaches their\ndecision threshold (chosen on the validation split and stored in the checkpoint; "
            "0.5 where none was stored),\njoined with ';'. The same scores as the pipeline `ecg-classification`."
        ),
        example="merit ecg-classification recordings/ --model outputs/eval/models/linear-probe --output predictions.csv",
        output_help="the table of predictions (.csv or .parquet)",
    )
    classification.add_argument(
        "--threshold", type=float, help="one decision threshold for every label, replacing the saved ones"
    )
    classification.set_defaults(run=run_classification)

    export = commands.add_parser(
        "export-onnx",
        help="export the ECG and text encoders to ONNX",
        description=(
            "Exports a MERIT dual-encoder checkpoint to ONNX for ONNX Runtime (Python, C#, Java, C++, the browser):\n"
            "ecg_encoder.onnx (input_values (B, 12, T) + lead_mask (B, 12) -> pooled and projected embeddings), "
            "text_encoder.onnx\nwith its tokenizer files, preprocessing.json (what the processor does) and the "
            "embeddings of the default zero-shot\nlabels. Each exported encoder is checked against PyTorch with ONNX "
            "Runtime. Needs the `onnx` extra."
        ),
        epilog="example:\n  merit export-onnx --model outputs/merit-ptbxl-sample --output_dir onnx/ --int8",
        formatter_class=_HelpFormatter,
    )
    export.add_argument("--model", required=True, type=os.path.expanduser, help="the checkpoint: a folder or a Hub id")
    export.add_argument("--output_dir", required=True, help="where the .onnx files go (created if needed)")
    export.add_argument("--int8", action="store_true", help="also write dynamically quantised int8 encoders")
    export.set_defaults(run=run_export_onnx)
    return parser


def _record_command(commands, name, help, description, example, output_help):
    """A subcommand over ECG records, with the options every such command shares."""
    command = commands.add_parser(
        name,
        help=help,
        description=description,
        epilog=f"example:\n  {example}\n\n{RECORD_HELP}",
        formatter_class=_HelpFormatter,
    )
    command.add_argument("inputs", nargs="+", metavar="INPUT", help=INPUT_HELP)
    # `~` is expanded here too: the shell leaves `--model=~/checkpoint` as it is
    command.add_argument(
        "--model", required=True, type=os.path.expanduser, help="the MERIT checkpoint: a folder or a Hub id"
    )
    command.add_argument("--output", required=True, type=os.path.expanduser, metavar="OUT", help=output_help)
    command.add_argument(
        "--batch_size", type=int, default=32, help="records per forward pass of the model (default: 32)"
    )
    command.add_argument(
        "--num_workers",
        type=int,
        default=0,
        help="processes reading and preprocessing records (default 0: the main process)",
    )
    command.add_argument("--device", default="cpu", help="where the model runs: cpu (default), cuda, cuda:1, mps, ...")
    command.add_argument(
        "--sampling_rate", type=float, help="sampling rate (Hz) of records that carry none (.npy, .csv)"
    )
    command.add_argument(
        "--lead_names", nargs="+", metavar="LEAD", help="lead names of records that carry none (.npy)"
    )
    command.add_argument("--channels_last", action="store_true", help=".npy arrays are (n_samples, n_leads)")
    command.add_argument(
        "--formats",
        nargs="+",
        default=list(FORMATS),
        choices=FORMATS,
        metavar="FORMAT",
        help=f"the record formats taken from folders and patterns (default: all of {' '.join(FORMATS)})",
    )
    command.add_argument("--overwrite", action="store_true", help="replace OUT instead of resuming it")
    command.add_argument("--quiet", action="store_true", help="no progress bar")
    return command


# ----------------------------------------------------------------------------------------------------------------
# Commands
# ----------------------------------------------------------------------------------------------------------------


def run_embed(args) -> int:
    from .batch import run_task

    embedding = "projected" if args.projected else "pooled"
    return run_task(args, "ecg-feature-extraction", {"embedding": embedding, "normalize": args.normalize})


def run_zero_shot(args) -> int:
    from .batch import run_task

    if args.prompts is not None:
        if args.hypothesis_template is not None:
            raise ValueError("`--hypothesis_template` applies to --labels; --prompts gives the prompts themselves.")
        try:
            with open(args.prompts, encoding="utf-8") as file:
                candidate_labels = json.load(file)
        except (OSError, json.JSONDecodeError) as error:
            raise ValueError(f"`--prompts` must be a JSON file {{label: [prompts]}}: {error}") from error
        if not isinstance(candidate_labels, dict):
            raise ValueError(
                f"`--prompts` must hold a JSON object {{label: [prompts]}}, got {type(candidate_labels).__name__}."
            )
    else:
        candidate_labels = list(args.labels)
    parameters = {"candidate_labels": candidate_labels}
    if args.hypothesis_template is not None:
        parameters["hypothesis_template"] = args.hypothesis_template
    return run_task(args, "zero-shot-ecg-classification", parameters)


def run_classification(args) -> int:
    from .batch import run_task

    parameters = {} if args.threshold is None else {"threshold": args.threshold}
    return run_task(args, "ecg-classification", parameters)


def run_export_onnx(args) -> int:
    from .batch import checkpoint_architecture

    architecture = checkpoint_architecture(args.model)
    if architecture not in ("MeritModel", "MeritForPreTraining"):
        raise ValueError(
            f"`merit export-onnx` exports a dual encoder (MeritModel or MeritForPreTraining: ECG and text towers); "
            f"`--model` {args.model!r} is a {architecture} checkpoint."
        )
    try:
        from .onnx_export import export_onnx
    except ModuleNotFoundError as error:
        if error.name in ("onnx", "onnxscript", "onnxruntime"):
            raise ValueError(
                f"`merit export-onnx` needs the package {error.name!r}: pip install 'merit-ecg[onnx]'."
            ) from error
        raise
    result = export_onnx(args.model, args.output_dir, int8=args.int8)
    if isinstance(result, dict) and "files" in result:
        sizes = result.get("sizes", {})
        for name, path in result["files"].items():
            size = f"  {sizes[name] / 1e6:.2f} MB" if name in sizes else ""
            print(f"{name:<24}{path}{size}")
        for name, difference in result.get("max_abs_diff", {}).items():
            print(f"{name}: max |ONNX Runtime - PyTorch| = {difference:.2e} (fp32, example batch)")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Runs one `merit` command line (`sys.argv[1:]` when `argv` is None) and returns its exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.run(args)
    except ValueError as error:
        print(f"merit {args.command}: error: {error}", file=sys.stderr)
        return 2
