# Copyright 2026 The MERIT authors.
# Licensed under the Apache License, Version 2.0.
"""The evaluation driver behind `eval_merit.py`: its command-line arguments, their checks, and the run.

`main([...])` parses a command line and runs it, returning the result rows; `run_evaluation` runs already parsed
arguments; `run_demo_evaluation(model_dir, data_dir)` is the evaluation `train_merit.py` runs after pretraining.
Linear probing, fine-tuning, zero-shot classification and robustness to distribution shift run in one
`EvaluationHarness` (validation-only model selection, bootstrap confidence intervals, baselines); report generation
(`--task report-generation`, a `MeritForReportGeneration` checkpoint) in `merit_evaluation.report_generation`.

Outputs: `<output_dir>/results.json` (schema: `merit_evaluation.results`), `<output_dir>/results.md` (the printed
table and its notes), ROC / per-class AUROC figures of the MERIT rows (`<output_dir>/roc_*.png`), the trained
classifiers (`<output_dir>/models/`, unless `--no_save_models`) and, with `--model_card`, the card's results table
and `model-index`. Which datasets `--dataset` offers, their label sets and sampling rates come from the dataset
registry (`dataset_scripts.registry`).
"""

from __future__ import annotations

import json
import logging
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import torch
from transformers import AutoConfig, AutoFeatureExtractor, AutoProcessor, HfArgumentParser

from dataset_scripts.registry import (
    DATASETS,
    DEFAULT_DATASET,
    LABELLED_DATASETS,
    LABELLED_REPORT_DATASETS,
    dataset_spec,
)
from merit_training.checkpoints import check_model_path
from modeling_merit import MeritModel  # importing modeling_merit registers the MERIT Auto classes

from .data import load_evaluation_dataset
from .finetune import run_finetune
from .harness import EvaluationHarness, TrainingOptions, load_classifier
from .probing import run_linear_probe
from .prompts import DEFAULT_PROMPT_STYLE, PROMPT_STYLES, class_prompts
from .report_generation import REPORT_LANGUAGES, REPORT_TASK, run_report_generation_task
from .report_generation import RESERVED_NAMES as RESERVED_REPORT_NAMES
from .results import (
    RESULTS_END_MARKER,
    TASKS,
    ResultRow,
    paired_macro_auroc_difference,
    read_results,
    results_to_markdown,
    update_model_card,
    write_results,
)
from .retrieval import RETRIEVAL_TASK, run_retrieval_task
from .robustness import run_robustness
from .shifts import SHIFTS
from .zero_shot import ClassEmbeddingCache, run_zero_shot


logger = logging.getLogger(__name__)

TRAINING_TASKS = ("linear-probe", "finetune", "robustness")
"""Tasks that train something (robustness trains a linear probe unless the checkpoint is a classifier)."""

DEFAULT_LABEL_FRACTIONS = [0.01, 0.1, 1.0]

TASK_TRAINING_DEFAULTS = {
    "linear-probe": {"epochs": 200, "patience": 20, "learning_rate": [1e-3], "weight_decay": [0.0, 1e-4, 1e-2]},
    "finetune": {"epochs": 30, "patience": 5, "learning_rate": [1e-4], "weight_decay": [1e-2]},
    "robustness": {"epochs": 200, "patience": 20, "learning_rate": [1e-3], "weight_decay": [0.0, 1e-4, 1e-2]},
}
"""Per-task training defaults; `--epochs`, `--patience`, `--learning_rate` and `--weight_decay` override them."""

SMALL_TEST_SET = 200
"""Below this many test records the printed table carries a note that the scores are noisy."""


@dataclass
class ModelArguments:
    """Which checkpoint to evaluate and where it runs."""

    model_name_or_path: str = field(
        metadata={
            "help": "Path or Hub id of a MERIT checkpoint (pretraining, dual encoder, or MeritForECGClassification), "
            "saved with its processor; every ECG is preprocessed through that processor."
        }
    )
    revision: str | None = field(
        default=None, metadata={"help": "Hub revision (branch, tag or commit) of --model_name_or_path."}
    )
    cache_dir: str | None = field(
        default=None,
        metadata={
            "help": "Cache folder for Hub downloads and the prepared datasets; zero-shot class embeddings are cached "
            "in its `merit_class_embeddings/` (default: <output_dir>/class_embeddings)."
        },
    )
    device: str | None = field(
        default=None, metadata={"help": "Torch device, e.g. `cpu` or `cuda:0` (default: cuda if available, else cpu)."}
    )


@dataclass
class DataArguments:
    """Which dataset and label set to evaluate on."""

    data_dir: str = field(metadata={"help": "Local copy of the dataset in its PhysioNet layout."})
    dataset: str | None = field(
        default=None,
        metadata={
            "help": "Evaluation dataset, a labelled dataset of the registry (required, except for --task "
            f"report-generation: {DEFAULT_DATASET}).",
            "choices": LABELLED_DATASETS,  # read from the registry at parse time
        },
    )
    label_set: str | None = field(
        default=None,
        metadata={
            "help": "Label set of --dataset (default: the dataset's default): "
            + "; ".join(
                f"{name}: {', '.join(spec.label_sets)}"
                + (f" (default {spec.default_label_set})" if len(spec.label_sets) > 1 else "")
                for name, spec in DATASETS.items()
                if spec.is_labelled
            )
            + "."
        },
    )
    dataset_sampling_rate: int | None = field(
        default=None,
        metadata={
            "help": "For a dataset shipped at several sampling rates, the one to load (default: its first): "
            + "; ".join(
                f"{name}: {', '.join(map(str, spec.sampling_rates))}"
                for name, spec in DATASETS.items()
                if spec.sampling_rates
            )
            + ". The checkpoint's processor resamples to its own rate either way."
        },
    )


@dataclass
class EvaluationArguments:
    """What to run and how; model selection always uses the validation split only."""

    task: list[str] = field(
        metadata={
            "help": "One or more tasks, run in order into one results.json: linear-probe (head on frozen features), "
            "finetune (whole classifier), zero-shot (text prompts), robustness (a classifier under distribution "
            "shifts), retrieval (ECG->report and report->ECG among the test reports), report-generation (alone).",
            "choices": list(TASKS),
        }
    )
    output_dir: str = field(metadata={"help": "Where results.json, results.md and the trained classifiers go."})
    label_fractions: list[float] | None = field(
        default=None,
        metadata={
            "help": "linear-probe / finetune: fractions of the training labels, sampled per seed so that every "
            "class keeps a positive (default: 0.01 0.1 1.0)."
        },
    )
    seeds: list[int] = field(
        default_factory=lambda: [0],
        metadata={"help": "Seeds: label-fraction sample, initialisation, batch order, shifts and bootstrap."},
    )
    n_bootstrap: int = field(
        default=1000, metadata={"help": "Bootstrap resamples of the test set for the 95%% intervals (0: none)."}
    )
    batch_size: int = field(default=64, metadata={"help": "Batch size of preprocessing, inference and training."})
    epochs: int | None = field(
        default=None,
        metadata={"help": "Maximum training epochs (default: 200 for linear probes, 30 for fine-tuning)."},
    )
    patience: int | None = field(
        default=None,
        metadata={
            "help": "Early-stopping patience in epochs on the validation macro AUROC (default: 20 for linear "
            "probes, 5 for fine-tuning)."
        },
    )
    learning_rate: list[float] | None = field(
        default=None,
        metadata={
            "help": "Learning rate(s); several values form a grid searched on the validation macro AUROC "
            "(default: 1e-3 for linear probes, 1e-4 for fine-tuning)."
        },
    )
    weight_decay: list[float] | None = field(
        default=None,
        metadata={
            "help": "AdamW weight decay(s), also a validation-searched grid (default: 0 1e-4 1e-2 for linear probes, "
            "1e-2 for fine-tuning)."
        },
    )
    prompts: str | None = field(
        default=None,
        metadata={
            "help": "zero-shot: JSON file mapping every class name to a prompt or a list of prompts, replacing the "
            "prompts built from the dataset's label table."
        },
    )
    prompt_style: str = field(
        default=DEFAULT_PROMPT_STYLE,
        metadata={
            "help": "zero-shot: how prompts are built from the registry: class descriptions in templates, whole "
            "prompts worded like the dataset's reports (where it has them), or both (merit_evaluation.prompts).",
            "choices": list(PROMPT_STYLES),
        },
    )
    shifts: list[str] | None = field(
        default=None,
        metadata={
            "help": "robustness: the shifts to apply, each at its default severities (default: all).",
            "choices": list(SHIFTS),
        },
    )
    baselines: bool = field(
        default=True,
        metadata={
            "help": "Evaluate the baselines next to MERIT with the same data, fractions and seeds: a randomly "
            "initialised encoder of the same architecture (linear-probe, robustness) and the same classifier "
            "trained from scratch (finetune). --no_baselines turns them off."
        },
    )
    save_models: bool = field(
        default=True,
        metadata={
            "help": "Save every trained MERIT classifier as a MeritForECGClassification checkpoint (with its "
            "processor and validation thresholds) under <output_dir>/models/. --no_save_models turns it off."
        },
    )
    model_card: str | None = field(
        default=None,
        metadata={"help": "Model card (markdown file) whose results table and model-index are updated in place."},
    )
    push_to_hub: bool = field(
        default=False,
        metadata={"help": "Push the updated --model_card and results.json to the Hub repository --hub_model_id."},
    )
    hub_model_id: str | None = field(
        default=None,
        metadata={"help": "Hub repository for --push_to_hub (default: --model_name_or_path when it is a Hub id)."},
    )
    max_new_tokens: int = field(
        default=64, metadata={"help": "report-generation: longest generated report, in LLM tokens (greedy)."}
    )
    report_examples: int = field(
        default=5,
        metadata={"help": "report-generation: test records whose reports are printed next to the reference."},
    )
    report_language: str = field(
        default="all",
        metadata={
            "help": "report-generation: score every test report (all) or only those detected as en, de or sv (every "
            "record is still generated for; retrieval uses training reports of that language).",
            "choices": list(REPORT_LANGUAGES),
        },
    )
    baseline_checkpoints: list[str] | None = field(
        default=None,
        metadata={
            "help": "report-generation: more report-generation checkpoints evaluated as named baselines in the same "
            "harness, as NAME=PATH (e.g. random-init-bridge=outputs/report-random-encoder: a bridge trained the same "
            "way on a randomly initialised encoder)."
        },
    )
    retrieval_checkpoint: str | None = field(
        default=None,
        metadata={
            "help": "report-generation: a MERIT pretraining checkpoint (e.g. the one the generator's encoder comes "
            "from) whose ECG-text space retrieves, for each test ECG, the training report with the most similar "
            "embedding: the ecg-text-retrieval baseline (the contrastive alignment used as a report retriever)."
        },
    )
    report_split: str = field(
        default="test",
        metadata={
            "help": "report-generation and retrieval (alone): the scored split: test, or validation (fold 9 for "
            "PTB-XL) to choose decoding, training or pretraining settings without reading the test reports.",
            "choices": ["test", "validation"],
        },
    )
    generate_kwargs: str | None = field(
        default=None,
        metadata={
            "help": "report-generation: decoding arguments of every generation as a JSON object, passed to the LLM's "
            'generate, e.g. \'{"num_beams": 3, "repetition_penalty": 1.2}\' (default: greedy).'
        },
    )


def parse_arguments(args: list[str] | None = None) -> tuple[ModelArguments, DataArguments, EvaluationArguments]:
    """Parse and check the command line (`args`, or `sys.argv[1:]`)."""
    parser = HfArgumentParser((ModelArguments, DataArguments, EvaluationArguments))
    model_args, data_args, eval_args = parser.parse_args_into_dataclasses(args=args, look_for_args_file=False)
    check_arguments(model_args, data_args, eval_args)
    return model_args, data_args, eval_args


def check_arguments(model_args: ModelArguments, data_args: DataArguments, eval_args: EvaluationArguments) -> None:
    """Reject invalid values and flag combinations before anything is loaded; each error names the flags."""
    tasks = eval_args.task
    if len(set(tasks)) != len(tasks):
        raise ValueError(f"--task lists a task more than once: {tasks}.")
    if REPORT_TASK in tasks:
        if tasks != [REPORT_TASK]:
            raise ValueError(
                f"--task {REPORT_TASK} evaluates a report-generation checkpoint and runs alone; got --task "
                f"{' '.join(tasks)}. Run the classification tasks in a separate call."
            )
        with_reports = list(LABELLED_REPORT_DATASETS)
        if data_args.dataset not in (None, *with_reports) or data_args.label_set is not None:
            raise ValueError(
                f"--task {REPORT_TASK} evaluates on a dataset's reports (every record, the dataset's own train / "
                f"validation / test splits); it takes no --label_set and only a --dataset with reports "
                f"({', '.join(with_reports)}; default {DEFAULT_DATASET}) (got --dataset {data_args.dataset}, "
                f"--label_set {data_args.label_set})."
            )
        data_args.dataset = data_args.dataset or DEFAULT_DATASET
        if eval_args.max_new_tokens < 1 or eval_args.report_examples < 0:
            raise ValueError(
                f"--max_new_tokens must be >= 1 and --report_examples >= 0, got {eval_args.max_new_tokens} and "
                f"{eval_args.report_examples}."
            )
    elif data_args.dataset is None:
        raise ValueError(f"--dataset is required for --task {' '.join(tasks)}; one of {list(LABELLED_DATASETS)}.")
    elif RETRIEVAL_TASK in tasks and data_args.dataset not in LABELLED_REPORT_DATASETS:
        raise ValueError(
            f"--task {RETRIEVAL_TASK} retrieves among a dataset's test reports; --dataset must have reports "
            f"({', '.join(LABELLED_REPORT_DATASETS)}), got {data_args.dataset}."
        )
    elif eval_args.report_split != "test" and tasks != [RETRIEVAL_TASK]:
        raise ValueError(
            f"--report_split {eval_args.report_split} applies to --task {REPORT_TASK} or --task {RETRIEVAL_TASK} "
            f"alone (got --task {' '.join(tasks)}): the other tasks score the test split; run retrieval in a "
            "separate call."
        )
    elif (
        eval_args.report_language != "all"
        or eval_args.baseline_checkpoints is not None
        or eval_args.generate_kwargs is not None
        or eval_args.retrieval_checkpoint is not None
    ):
        raise ValueError(
            "--report_language, --baseline_checkpoints, --retrieval_checkpoint and --generate_kwargs only apply to "
            f"--task {REPORT_TASK} (got --task {' '.join(tasks)})."
        )
    if eval_args.generate_kwargs is not None:
        report_generate_kwargs(eval_args)
    if eval_args.baseline_checkpoints is not None:
        baseline_checkpoints(eval_args)
    spec = dataset_spec(data_args.dataset)
    if data_args.label_set is not None and data_args.label_set not in spec.label_sets:
        raise ValueError(
            f"--label_set {data_args.label_set!r} is not a label set of --dataset {data_args.dataset}; expected one "
            f"of {list(spec.label_sets)}."
        )
    if data_args.dataset_sampling_rate is not None:
        if not spec.sampling_rates:
            several = [name for name, other in DATASETS.items() if other.sampling_rates]
            raise ValueError(
                f"--dataset_sampling_rate only applies to a --dataset shipped at several sampling rates "
                f"({', '.join(several)}); {data_args.dataset} is read at its records' own rate (got --dataset "
                f"{data_args.dataset})."
            )
        if data_args.dataset_sampling_rate not in spec.sampling_rates:
            raise ValueError(
                f"--dataset_sampling_rate must be one of {list(spec.sampling_rates)} for --dataset "
                f"{data_args.dataset}, got {data_args.dataset_sampling_rate}."
            )
    if not Path(data_args.data_dir).is_dir():
        raise ValueError(f"--data_dir {data_args.data_dir} is not a directory.")

    fraction_tasks = {"linear-probe", "finetune"} & set(tasks)
    if eval_args.label_fractions is not None:
        if not fraction_tasks:
            raise ValueError(
                f"--label_fractions only applies to --task linear-probe or finetune (got --task {' '.join(tasks)})."
            )
        bad = [value for value in eval_args.label_fractions if not 0.0 < value <= 1.0]
        if bad or len(set(eval_args.label_fractions)) != len(eval_args.label_fractions):
            raise ValueError(f"--label_fractions must be distinct values in (0, 1], got {eval_args.label_fractions}.")
    training_flags = {
        "--epochs": eval_args.epochs,
        "--patience": eval_args.patience,
        "--learning_rate": eval_args.learning_rate,
        "--weight_decay": eval_args.weight_decay,
    }
    given = [flag for flag, value in training_flags.items() if value is not None]
    if given and not set(TRAINING_TASKS) & set(tasks):
        raise ValueError(f"{', '.join(given)} only apply to tasks that train (--task {' '.join(TRAINING_TASKS)}).")
    for flag in ("--epochs", "--patience"):
        if training_flags[flag] is not None and training_flags[flag] < 1:
            raise ValueError(f"{flag} must be >= 1, got {training_flags[flag]}.")
    if eval_args.learning_rate is not None and any(value <= 0 for value in eval_args.learning_rate):
        raise ValueError(f"--learning_rate values must be > 0, got {eval_args.learning_rate}.")
    if eval_args.weight_decay is not None and any(value < 0 for value in eval_args.weight_decay):
        raise ValueError(f"--weight_decay values must be >= 0, got {eval_args.weight_decay}.")

    if eval_args.prompts is not None:
        if "zero-shot" not in tasks:
            raise ValueError(f"--prompts only applies to --task zero-shot (got --task {' '.join(tasks)}).")
        if not Path(eval_args.prompts).is_file():
            raise ValueError(f"--prompts {eval_args.prompts} is not a file.")
    if eval_args.shifts is not None and "robustness" not in tasks:
        raise ValueError(f"--shifts only applies to --task robustness (got --task {' '.join(tasks)}).")

    if not eval_args.seeds or len(set(eval_args.seeds)) != len(eval_args.seeds):
        raise ValueError(f"--seeds must be one or more distinct integers, got {eval_args.seeds}.")
    if eval_args.n_bootstrap < 0:
        raise ValueError(f"--n_bootstrap must be >= 0, got {eval_args.n_bootstrap}.")
    if eval_args.batch_size < 1:
        raise ValueError(f"--batch_size must be >= 1, got {eval_args.batch_size}.")

    if eval_args.model_card is not None and not Path(eval_args.model_card).is_file():
        raise ValueError(f"--model_card {eval_args.model_card} is not a file.")
    if eval_args.push_to_hub:
        if eval_args.model_card is None:
            raise ValueError("--push_to_hub pushes the updated --model_card; pass --model_card too.")
        if eval_args.hub_model_id is None and Path(model_args.model_name_or_path).exists():
            raise ValueError(
                "--push_to_hub needs --hub_model_id when --model_name_or_path is a local path "
                f"({model_args.model_name_or_path})."
            )
    elif eval_args.hub_model_id is not None:
        raise ValueError("--hub_model_id only applies with --push_to_hub.")


def report_generate_kwargs(eval_args: EvaluationArguments) -> dict | None:
    """`--generate_kwargs` parsed: a JSON object, or `None`; raises a `ValueError` naming the flag otherwise."""
    if eval_args.generate_kwargs is None:
        return None
    try:
        parsed = json.loads(eval_args.generate_kwargs)
    except json.JSONDecodeError as error:
        raise ValueError(
            f"--generate_kwargs must be a JSON object such as '{{\"num_beams\": 3}}', got "
            f"{eval_args.generate_kwargs!r}: {error}."
        ) from error
    if not isinstance(parsed, dict):
        raise ValueError(f"--generate_kwargs must be a JSON object, got {eval_args.generate_kwargs!r}.")
    for name in ("num_return_sequences", "max_new_tokens"):
        if name in parsed:
            raise ValueError(
                f"--generate_kwargs may not set {name!r}: the evaluation scores one report per record, and its length "
                "is --max_new_tokens."
            )
    return parsed


def baseline_checkpoints(eval_args: EvaluationArguments) -> dict[str, str]:
    """`--baseline_checkpoints NAME=PATH ...` as `{name: path}`; raises on a malformed or repeated entry."""
    parsed = {}
    for entry in eval_args.baseline_checkpoints or []:
        name, separator, path = entry.partition("=")
        if not separator or not name or not path or name in parsed or name in RESERVED_REPORT_NAMES:
            raise ValueError(
                "--baseline_checkpoints entries must be NAME=PATH pairs with distinct names other than "
                f"{list(RESERVED_REPORT_NAMES)}, got {eval_args.baseline_checkpoints}."
            )
        parsed[name] = path
    return parsed


def training_options(eval_args: EvaluationArguments, task: str) -> TrainingOptions:
    """The task's training defaults with the command-line overrides applied."""
    defaults = TASK_TRAINING_DEFAULTS[task]
    return TrainingOptions(
        epochs=eval_args.epochs or defaults["epochs"],
        patience=eval_args.patience or defaults["patience"],
        learning_rates=list(eval_args.learning_rate or defaults["learning_rate"]),
        weight_decays=list(eval_args.weight_decay if eval_args.weight_decay is not None else defaults["weight_decay"]),
        batch_size=eval_args.batch_size,
    )


def result_notes(rows: list[ResultRow], n_train: int, skipped_shifts: dict[str, str]) -> list[str]:
    """Lines printed under the table: small-sample warnings and skipped robustness settings."""
    notes = []
    n_test = min((row.n_test for row in rows), default=0)
    if 0 < n_test < SMALL_TEST_SET:
        notes.append(
            f"Note: the test split has only {n_test} records (< {SMALL_TEST_SET}) and the training split "
            f"{n_train}: expect modest, noisy scores with wide confidence intervals, not comparable with published "
            "full-benchmark numbers."
        )
    for setting, reason in skipped_shifts.items():
        notes.append(f"Note: robustness setting {setting} was skipped ({reason}).")
    for row in rows:
        if row.baseline is not None or row.task not in TRAINING_TASKS:
            continue
        for baseline in rows:
            same_setting = (baseline.task, baseline.fraction, baseline.seed, baseline.shift, baseline.severity) == (
                row.task,
                row.fraction,
                row.seed,
                row.shift,
                row.severity,
            )
            difference = paired_macro_auroc_difference(row, baseline) if same_setting and baseline.baseline else None
            if difference is not None:
                notes.append(
                    f"Paired difference MERIT − {baseline.baseline} ({row.task}, {row.fraction:g} of the labels, seed "
                    f"{row.seed}): macro AUROC {difference.value:+.3f} (95 % CI {difference.ci_low:+.3f} to "
                    f"{difference.ci_high:+.3f}, same bootstrap resamples)."
                )
    return notes


def _load_processor(model_args: ModelArguments, needs_tokenizer: bool):
    """The checkpoint's processor; a checkpoint without a tokenizer gives its feature extractor alone (enough for
    every task but zero-shot)."""
    kwargs = {"revision": model_args.revision, "cache_dir": model_args.cache_dir}
    try:
        return AutoProcessor.from_pretrained(model_args.model_name_or_path, **kwargs)
    except (OSError, ValueError, TypeError) as error:
        if needs_tokenizer:
            raise ValueError(
                f"--task zero-shot needs the checkpoint's processor with its tokenizer, which could not be loaded "
                f"from {model_args.model_name_or_path}: {error}"
            ) from error
        logger.info("No processor with a tokenizer in the checkpoint (%s); using its feature extractor.", error)
        return AutoFeatureExtractor.from_pretrained(model_args.model_name_or_path, **kwargs)


def _model_revision(model_args: ModelArguments, config) -> str | None:
    """The commit of a Hub checkpoint (or the requested revision); `None` for a local directory."""
    if Path(model_args.model_name_or_path).exists():
        return None
    return getattr(config, "_commit_hash", None) or model_args.revision


def warn_about_earlier_results(output_dir: Path) -> None:
    """Says, before any work, that the `results.json` of an earlier evaluation in `output_dir` will be replaced (one
    evaluation's rows per folder: evaluate into another `--output_dir` to keep both)."""
    path = output_dir / "results.json"
    if not path.is_file():
        return
    try:
        earlier = read_results(path)
        what = ", ".join(sorted({f"{row.task} of {row.model}" for row in earlier})) or "no rows"
    except (OSError, ValueError, KeyError, TypeError):
        what = "rows that could not be read"
    logger.warning(
        f"{path} holds the results of an earlier evaluation ({what}); this evaluation replaces it (and the "
        "classifiers and figures of the same names). Use another --output_dir to keep both."
    )


def run_evaluation(
    model_args: ModelArguments, data_args: DataArguments, eval_args: EvaluationArguments
) -> list[ResultRow]:
    """Run every requested task and write the outputs; returns the result rows (see the module docstring)."""
    tasks = eval_args.task
    check_model_path(model_args.model_name_or_path, "--model_name_or_path")
    output_dir = Path(eval_args.output_dir)
    warn_about_earlier_results(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    device = model_args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    # what the report-generation and retrieval tasks, which load their own checkpoint and dataset, share
    shared = {
        "dataset": data_args.dataset,
        "revision": model_args.revision,
        "cache_dir": model_args.cache_dir,
        "device": device,
        "sampling_rate": data_args.dataset_sampling_rate,
        "seeds": eval_args.seeds,
        "n_bootstrap": eval_args.n_bootstrap,
        "batch_size": eval_args.batch_size,
        "baselines": eval_args.baselines,
    }
    if tasks == [REPORT_TASK]:
        rows, notes = run_report_generation_task(
            model_args.model_name_or_path,
            data_args.data_dir,
            output_dir,
            **shared,
            max_new_tokens=eval_args.max_new_tokens,
            n_examples=eval_args.report_examples,
            report_language=eval_args.report_language,
            baseline_checkpoints=baseline_checkpoints(eval_args),
            split=eval_args.report_split,
            generate_kwargs=report_generate_kwargs(eval_args),
            retrieval_checkpoint=eval_args.retrieval_checkpoint,
        )
        return write_outputs(rows, notes, model_args, eval_args)
    retrieval_rows, retrieval_notes = [], []
    if RETRIEVAL_TASK in tasks:
        retrieval_rows, retrieval_notes = run_retrieval_task(
            model_args.model_name_or_path, data_args.data_dir, **shared, split=eval_args.report_split
        )
        tasks = [task for task in tasks if task != RETRIEVAL_TASK]
        if not tasks:
            return write_outputs(retrieval_rows, retrieval_notes, model_args, eval_args)
    label_set = data_args.label_set or dataset_spec(data_args.dataset).default_label_set
    fractions = eval_args.label_fractions or DEFAULT_LABEL_FRACTIONS
    hub_kwargs = {"revision": model_args.revision, "cache_dir": model_args.cache_dir}

    config = AutoConfig.from_pretrained(model_args.model_name_or_path, **hub_kwargs)
    architectures = list(getattr(config, "architectures", None) or [])
    if getattr(config, "model_type", None) not in ("merit", "merit_ecg"):
        raise ValueError(
            f"--model_name_or_path {model_args.model_name_or_path} holds a {getattr(config, 'model_type', None)} "
            f"model ({architectures or 'unknown architecture'}); --task {' '.join(tasks)} evaluates MERIT "
            "checkpoints (the output of train_merit.py, or a MERIT model on the Hub)."
        )
    if "zero-shot" in tasks and not {"MeritModel", "MeritForPreTraining"} & set(architectures):
        raise ValueError(
            f"--task zero-shot needs a checkpoint with a trained text tower (MeritModel or MeritForPreTraining); "
            f"{model_args.model_name_or_path} holds {architectures or 'an unknown architecture'}."
        )
    processor = _load_processor(model_args, needs_tokenizer="zero-shot" in tasks)
    feature_extractor = getattr(processor, "feature_extractor", processor)

    splits = load_evaluation_dataset(
        data_args.dataset,
        data_args.data_dir,
        label_set,
        sampling_rate=data_args.dataset_sampling_rate,
        cache_dir=model_args.cache_dir,
    )
    harness = EvaluationHarness(
        splits,
        feature_extractor,
        dataset=data_args.dataset,
        label_set=label_set,
        model_name_or_path=model_args.model_name_or_path,
        model_revision=_model_revision(model_args, config),
        batch_size=eval_args.batch_size,
        device=device,
        n_bootstrap=eval_args.n_bootstrap,
        figure_dir=output_dir,
    )
    logger.info(
        "Evaluating %s on %s/%s (%d train, %d validation, %d test records, classes %s) on %s.",
        model_args.model_name_or_path,
        data_args.dataset,
        label_set,
        len(splits["train"]),
        len(splits["validation"]),
        len(splits["test"]),
        harness.class_names,
        device,
    )
    save_dir = output_dir / "models" if eval_args.save_models else None
    merit_classifier = None

    def frozen_merit_classifier():
        nonlocal merit_classifier
        if merit_classifier is None:
            merit_classifier = load_classifier(
                model_args.model_name_or_path, harness.class_names, freeze_ecg_encoder=True, **hub_kwargs
            )
        return merit_classifier

    rows, skipped_shifts = [], {}
    for task in tasks:
        logger.info("Task %s", task)
        if task == "linear-probe":
            rows += run_linear_probe(
                harness,
                frozen_merit_classifier(),
                fractions=fractions,
                seeds=eval_args.seeds,
                options=training_options(eval_args, task),
                baselines=eval_args.baselines,
                processor=processor,
                save_dir=save_dir,
            )
        elif task == "finetune":
            rows += run_finetune(
                harness,
                lambda: load_classifier(
                    model_args.model_name_or_path, harness.class_names, freeze_ecg_encoder=False, **hub_kwargs
                ),
                config,
                fractions=fractions,
                seeds=eval_args.seeds,
                options=training_options(eval_args, task),
                baselines=eval_args.baselines,
                processor=processor,
                save_dir=save_dir,
            )
        elif task == "zero-shot":
            cache_dir = (
                Path(model_args.cache_dir) / "merit_class_embeddings"
                if model_args.cache_dir is not None
                else output_dir / "class_embeddings"
            )
            prompts = class_prompts(
                data_args.dataset,
                data_args.data_dir,
                label_set,
                harness.class_names,
                eval_args.prompts,
                prompt_style=eval_args.prompt_style,
            )
            dual_model = MeritModel.from_pretrained(model_args.model_name_or_path, **hub_kwargs)
            cache = ClassEmbeddingCache(cache_dir)
            rows += run_zero_shot(harness, dual_model, processor, prompts, eval_args.seeds, cache)
        elif task == "robustness":
            checkpoint_classes = [config.id2label[i] for i in range(config.num_labels)] if config.id2label else []
            use_checkpoint_head = (
                "MeritForECGClassification" in architectures and checkpoint_classes == harness.class_names
            )
            task_rows, skipped = run_robustness(
                harness,
                frozen_merit_classifier(),
                seeds=eval_args.seeds,
                options=training_options(eval_args, task),
                baselines=eval_args.baselines,
                shift_names=eval_args.shifts or list(SHIFTS),
                use_checkpoint_head=use_checkpoint_head,
            )
            rows += task_rows
            skipped_shifts.update(skipped)

    notes = result_notes(rows, len(splits["train"]), skipped_shifts) + retrieval_notes
    return write_outputs(rows + retrieval_rows, notes, model_args, eval_args)


def write_outputs(
    rows: list[ResultRow], notes: list[str], model_args: ModelArguments, eval_args: EvaluationArguments
) -> list[ResultRow]:
    """Write `results.json` and `results.md`, print the table, and update (and push) the model card if asked."""
    output_dir = Path(eval_args.output_dir)
    results_path = output_dir / "results.json"
    write_results(results_path, rows)
    report = results_to_markdown(rows) + "".join(f"\n{note}\n" for note in notes)
    (output_dir / "results.md").write_text(report, encoding="utf-8")
    print(report)
    logger.info("Wrote %s and %s", results_path, output_dir / "results.md")

    if eval_args.model_card is not None:
        card = update_model_card(eval_args.model_card, rows)
        if notes:
            notes_text = "".join(f"\n{note}\n" for note in notes)
            card.text = card.text.replace(RESULTS_END_MARKER, notes_text + RESULTS_END_MARKER, 1)
        card.save(eval_args.model_card)
        logger.info("Updated the model card %s", eval_args.model_card)
        if eval_args.push_to_hub:
            from huggingface_hub import HfApi

            repo_id = eval_args.hub_model_id or model_args.model_name_or_path
            card.push_to_hub(repo_id, commit_message="Update evaluation results")
            HfApi().upload_file(
                path_or_fileobj=str(results_path),
                path_in_repo="eval_results.json",
                repo_id=repo_id,
                commit_message="Upload evaluation results",
            )
            logger.info("Pushed the model card and results to %s", repo_id)
    return rows


DEMO_LABEL_FRACTIONS = (0.1, 1.0)


def run_demo_evaluation(
    model_dir: str | os.PathLike,
    data_dir: str | os.PathLike,
    output_dir: str | os.PathLike | None = None,
    label_fractions: tuple[float, ...] = DEMO_LABEL_FRACTIONS,
    dataset: str = DEFAULT_DATASET,
) -> list[ResultRow]:
    """The evaluation the training demo runs after pretraining: linear probe (with the random-init baseline) and
    zero-shot on the test split of `dataset`'s default label set (PTB-XL: superdiagnostic) and ECG-report retrieval
    among its test reports (with the random-encoder and shuffled-pairing baselines), the table printed,
    `results.json` written and, when `<model_dir>/README.md` exists, its results table and `model-index` filled.
    Trained probes are not saved.

    Args:
        model_dir (`str` or `os.PathLike`): the exported MERIT checkpoint (model, processor, model card).
        data_dir (`str` or `os.PathLike`): a copy of `dataset`, e.g. the PTB-XL excerpt `data/ptbxl-sample`.
        output_dir (`str` or `os.PathLike`, *optional*): defaults to `<model_dir>/results`.
        label_fractions (`tuple[float, ...]`, defaults to `(0.1, 1.0)`): linear-probe label fractions.
        dataset (`str`, defaults to the registry's `DEFAULT_DATASET`, `ptbxl`): a labelled registered dataset.

    Returns:
        `list[ResultRow]`.
    """
    model_dir = Path(model_dir)
    arguments = [
        "--model_name_or_path", str(model_dir), "--task", "linear-probe", "zero-shot", "retrieval",
        "--dataset", dataset, "--label_set", dataset_spec(dataset).default_label_set, "--data_dir", str(data_dir),
        "--output_dir", str(output_dir if output_dir is not None else model_dir / "results"),
        "--label_fractions", *[str(fraction) for fraction in label_fractions], "--no_save_models",
    ]  # fmt: skip
    if (model_dir / "README.md").is_file():
        arguments += ["--model_card", str(model_dir / "README.md")]
    return main(arguments)


def main(args: list[str] | None = None) -> list[ResultRow]:
    """Command-line entry point; also callable from Python with a list of arguments, returning the result rows.

    Example (the training demo):

    ```python
    from merit_evaluation import cli

    rows = cli.main(["--model_name_or_path", "outputs/demo", "--task", "linear-probe", "zero-shot",
                            "--dataset", "ptbxl", "--data_dir", "data/ptbxl-sample", "--label_fractions", "0.1", "1.0",
                            "--output_dir", "outputs/demo-eval"])
    ```
    """
    logging.basicConfig(
        format="%(asctime)s - %(levelname)s - %(name)s - %(message)s",
        datefmt="%m/%d/%Y %H:%M:%S",
        handlers=[logging.StreamHandler(sys.stdout)],
        level=logging.INFO,
    )
    model_args, data_args, eval_args = parse_arguments(args)
    return run_evaluation(model_args, data_args, eval_args)
