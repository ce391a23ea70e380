# Copyright 2026 The MERIT authors.
# Licensed under the Apache License, Version 2.0.
"""Running a MERIT pipeline over many records: read in parallel, forward in batches, one output row per record.

The numbers are the pipelines' own: every record is read and preprocessed by `preprocess_ecg_record` (what
`MeritECGPipeline.preprocess` runs), a batch goes through the pipeline's `forward` (its `_forward`: the embedding
choice, the zero-shot class embeddings, the classifier) and each record's slice of the outputs through the pipeline's
`postprocess` (scores, decision thresholds). Only the batching differs from calling the pipeline record by record,
which changes the results by float rounding (about 1e-7).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field

import pyarrow as pa
import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm
from transformers import AutoConfig, AutoModel

from merit_training.checkpoints import check_model_path
from modeling_merit import MeritFeatureExtractor, MeritForECGClassification, MeritProcessor
from modeling_merit.pipeline_merit import CHECKPOINT_PIPELINES, MERIT_PIPELINES

from .inputs import ECGRecordDataset, ECGSource, collate_records, find_records
from .output import ResumableTable, check_output_location, write_errors


RECORD_COLUMNS = [
    pa.field("path", pa.string()),
    pa.field("record", pa.string()),
    pa.field("sampling_rate", pa.float64()),
    pa.field("num_samples", pa.int64()),
    pa.field("leads", pa.list_(pa.string())),
]
"""The columns every output starts with (see `merit embed --help`)."""

COMMAND_OF_TASK = {
    "ecg-feature-extraction": "embed",
    "zero-shot-ecg-classification": "zero-shot",
    "ecg-classification": "ecg-classification",
}
SHOWN_ERRORS = 10
"""Errors printed at the end of a run (all of them are in OUT.errors.csv)."""


def checkpoint_architecture(model_name_or_path: str) -> str:
    """The model class name of a MERIT checkpoint (`config.architectures`), one of `CHECKPOINT_PIPELINES`.

    Raises:
        `ValueError`: there is no loadable checkpoint at `model_name_or_path`, or it is not a MERIT one.
    """
    check_model_path(model_name_or_path, "`--model`")
    try:
        config = AutoConfig.from_pretrained(model_name_or_path)
    except (OSError, ValueError) as error:
        where = "a folder that" if os.path.isdir(model_name_or_path) else "not a local folder, and as a Hub id it"
        raise ValueError(f"`--model` {model_name_or_path!r} is {where} could not be loaded: {error}") from error
    architecture = (getattr(config, "architectures", None) or [None])[0]
    if architecture not in CHECKPOINT_PIPELINES:
        raise ValueError(
            f"`--model` {model_name_or_path!r} holds a {architecture} model; expected a MERIT checkpoint, one of "
            f"{sorted(CHECKPOINT_PIPELINES)}."
        )
    return architecture


def load_pipeline(task: str, model_name_or_path: str, device: str | None = None):
    """The MERIT pipeline of `task` for a checkpoint, built from the installed `modeling_merit` (no remote code).

    Raises:
        `ValueError`: the checkpoint is not a MERIT checkpoint, or its model does not do `task` (e.g. zero-shot
        classification with a classifier).
    """
    architecture = checkpoint_architecture(model_name_or_path)
    auto_class, tasks = CHECKPOINT_PIPELINES[architecture]
    if task not in tasks:
        offered = ", ".join(f"merit {COMMAND_OF_TASK[name]}" for name in tasks if name in COMMAND_OF_TASK)
        raise ValueError(
            f"`--model` {model_name_or_path!r} is a {architecture} checkpoint, which does not do "
            f"`merit {COMMAND_OF_TASK[task]}`; it offers: {offered}."
        )
    model_class = MeritForECGClassification if auto_class == "AutoModelForSequenceClassification" else AutoModel
    model = model_class.from_pretrained(model_name_or_path)
    try:
        if task == "zero-shot-ecg-classification":
            preprocessing = {"processor": MeritProcessor.from_pretrained(model_name_or_path)}
        else:
            preprocessing = {"feature_extractor": MeritFeatureExtractor.from_pretrained(model_name_or_path)}
    except (OSError, ValueError) as error:
        raise ValueError(
            f"`--model` {model_name_or_path!r} has no loadable MERIT processor ({error}); save the processor with the "
            "checkpoint (`processor.save_pretrained(checkpoint)`)."
        ) from error
    return MERIT_PIPELINES[task](model=model, device=device, **preprocessing)


@dataclass
class TaskOutput:
    """The task-specific part of the output rows.

    Attributes:
        task (`str`): the pipeline task.
        columns (`list[pa.Field]`): the columns after `RECORD_COLUMNS`.
        settings (`dict`): what the rows depend on besides the model (stored with the output).
        extra_inputs (`dict`): added to every batch's model inputs (the zero-shot prompts).
    """

    task: str
    columns: list
    settings: dict
    extra_inputs: dict = field(default_factory=dict)

    def values(self, pipe, outputs: dict, row: int, postprocess_params: dict) -> dict:
        """The task's columns for row `row` of a batch's `outputs`, through the pipeline's `postprocess`."""
        if self.task == "ecg-feature-extraction":
            return {
                "embedding": pipe.postprocess({"embedding": outputs["embedding"][row : row + 1]}, **postprocess_params)
            }
        if self.task == "zero-shot-ecg-classification":
            answer = pipe.postprocess(
                {
                    "ecg_embeddings": outputs["ecg_embeddings"][row : row + 1],
                    "class_embeddings": outputs["class_embeddings"],
                    "labels": outputs["labels"],
                },
                **postprocess_params,
            )
            return {entry["label"]: entry["score"] for entry in answer}
        answer = pipe.postprocess({"logits": outputs["logits"][row : row + 1]}, **postprocess_params)
        values = {entry["label"]: entry["score"] for entry in answer}
        values["positive"] = ";".join(entry["label"] for entry in answer if entry["positive"])
        return values


def task_output(
    pipe, task: str, preprocess_params: dict, forward_params: dict, postprocess_params: dict
) -> TaskOutput:
    """The columns and settings of `task`; takes the zero-shot labels out of `preprocess_params` (their prompts are
    built once and given to every batch)."""
    if task == "ecg-feature-extraction":
        settings = {"embedding": forward_params.get("embedding"), "normalize": forward_params.get("normalize", False)}
        return TaskOutput(task, [pa.field("embedding", pa.list_(pa.float32()))], settings)
    if task == "zero-shot-ecg-classification":
        prompts = pipe._class_prompts(
            preprocess_params.pop("candidate_labels", None),
            preprocess_params.pop("hypothesis_template", None),
            pipe.limits,
        )
        labels = list(prompts)
        _check_label_columns(labels, "--labels")
        columns = [pa.field(label, pa.float64()) for label in labels]
        return TaskOutput(task, columns, {"prompts": prompts}, {"prompts": prompts})
    config = pipe.model.config
    labels = [config.id2label[index] for index in range(config.num_labels)]
    _check_label_columns(labels + ["positive"], "the classifier's labels")
    columns = [pa.field(label, pa.float64()) for label in labels] + [pa.field("positive", pa.string())]
    return TaskOutput(task, columns, {"thresholds": pipe.decision_thresholds(postprocess_params.get("threshold"))})


def _check_label_columns(labels: list[str], what: str) -> None:
    taken = {column.name for column in RECORD_COLUMNS}
    clashes = sorted(taken & set(labels))
    if clashes:
        raise ValueError(
            f"{what} {clashes} would be output columns of the same name as the record's own {sorted(taken)}; rename "
            "them."
        )


def _model_identity(model_name_or_path: str) -> str:
    return os.path.abspath(model_name_or_path) if os.path.isdir(model_name_or_path) else model_name_or_path


def run_task(args, task: str, task_parameters: dict) -> int:
    """Runs `task` over the records of `args.inputs` into `args.output` (see `merit embed --help`).

    Returns:
        the exit status: 0 when records were written or were already in the output, 1 when nothing was read.
    """
    for name, value, least in (("batch_size", args.batch_size, 1), ("num_workers", args.num_workers, 0)):
        if value < least:
            raise ValueError(f"`--{name}` must be at least {least}, got {value}.")
    check_output_location(args.output)
    sources, problems = find_records(args.inputs, tuple(args.formats))
    _say_what_is_not_used(args, {source.format for source in sources})
    pipe = load_pipeline(task, args.model, args.device)
    common = {"sampling_rate": args.sampling_rate, "lead_names": args.lead_names, "channels_last": args.channels_last}
    preprocess_params, forward_params, postprocess_params = pipe._sanitize_parameters(
        **{name: value for name, value in common.items() if value is not None}, **task_parameters
    )
    output = task_output(pipe, task, preprocess_params, forward_params, postprocess_params)
    settings = {"command": COMMAND_OF_TASK[task], "model": _model_identity(args.model), **output.settings}
    table = ResumableTable(args.output, pa.schema(RECORD_COLUMNS + output.columns), settings, args.overwrite)

    todo = [source for source in sources if source.path not in table.done]
    skipped = len(sources) - len(todo)
    errors = [(problem.path, problem.error) for problem in problems]
    interrupted = False
    try:
        _run_batches(pipe, todo, table, output, preprocess_params, forward_params, postprocess_params, args, errors)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        table.finalize()
        errors_file = write_errors(args.output, errors)
    _print_summary(args, table.written, skipped, len(todo), errors, errors_file, interrupted)
    if interrupted:
        return 130
    return 0 if table.written or skipped else 1


def _say_what_is_not_used(args, formats: set[str]) -> None:
    """Says which of --sampling_rate / --lead_names some of the records do not use (their files carry their own)."""
    unused = []
    if args.sampling_rate is not None and "wfdb" in formats:
        unused.append(
            "--sampling_rate by WFDB records (their headers give the rate; CSV files with a time column too)"
        )
    if args.lead_names and formats & {"wfdb", "csv"}:
        unused.append("--lead_names by WFDB and CSV records (their headers name the leads)")
    if unused:
        print(f"merit {args.command}: not used: " + "; ".join(unused) + ".", file=sys.stderr)


def _run_batches(pipe, todo: list[ECGSource], table, output, preprocess_params, forward_params, postprocess_params,
                 args, errors: list) -> None:  # fmt: skip
    dataset = ECGRecordDataset(todo, pipe.feature_extractor, **preprocess_params)
    loader = DataLoader(
        dataset, batch_size=args.batch_size, num_workers=args.num_workers, collate_fn=collate_records, shuffle=False
    )
    lead_names = list(pipe.feature_extractor.lead_names)
    with tqdm(total=len(todo), unit="record", desc=f"merit {args.command}", disable=args.quiet or not todo) as bar:
        for batch in loader:
            errors.extend((todo[index].path, error) for index, error in batch["errors"])
            for index, note in batch["notes"]:
                bar.write(f"warning: {todo[index].path}: {note}", file=sys.stderr)
            if batch["model_inputs"] is not None:
                model_inputs = dict(batch["model_inputs"])
                model_inputs["input_values"] = model_inputs["input_values"].to(pipe.dtype or torch.float32)
                outputs = pipe.forward({**model_inputs, **output.extra_inputs}, **forward_params)
                lead_mask = model_inputs.get("lead_mask")
                rows = []
                for row, index in enumerate(batch["indices"]):
                    source = todo[index]
                    present = lead_names if lead_mask is None else [
                        name for name, flag in zip(lead_names, lead_mask[row].tolist()) if flag
                    ]  # fmt: skip
                    rows.append(
                        {
                            "path": source.path,
                            "record": source.record,
                            "sampling_rate": batch["sampling_rates"][row],
                            "num_samples": batch["num_samples"][row],
                            "leads": present,
                            **output.values(pipe, outputs, row, postprocess_params),
                        }
                    )
                table.add(rows)
            bar.update(len(batch["indices"]) + len(batch["errors"]))


def _print_summary(args, written, skipped, attempted, errors, errors_file, interrupted) -> None:
    parts = [f"{written} record(s) written to {args.output}"]
    if skipped:
        parts.append(f"{skipped} already there (skipped)")
    if errors:
        parts.append(f"{len(errors)} could not be read (listed in {errors_file})")
    if interrupted:
        parts.append(f"interrupted after {written} of {attempted}: run the same command again to go on")
    print(f"merit {args.command}: " + "; ".join(parts) + ".", file=sys.stderr)
    for path, error in errors[:SHOWN_ERRORS]:
        print(f"  {path}: {error}", file=sys.stderr)
    if len(errors) > SHOWN_ERRORS:
        print(f"  ... and {len(errors) - SHOWN_ERRORS} more in {errors_file}", file=sys.stderr)
    if not written and not skipped and not interrupted:
        print(f"merit {args.command}: nothing was read.", file=sys.stderr)
