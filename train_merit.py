#!/usr/bin/env python
# Copyright 2026 The MERIT authors. Licensed under the Apache License, Version 2.0.
"""
Pretrain MERIT (masked ECG modelling + ECG-report contrastive alignment) with 🤗 Accelerate.

    accelerate launch train_merit.py                      # offline demo on the embedded PTB-XL excerpt
    accelerate launch train_merit.py --dataset_name mimic_iv_ecg --data_dir /data/mimic-iv-ecg \\
        --model_preset base --max_train_steps 100000 --output_dir runs/merit-base --push_to_hub --hub_model_id org/merit
    python train_merit.py --task report_generation --model_name_or_path outputs/merit-ptbxl-sample  # ECG -> report

Run `python train_merit.py --help` for every flag. The same script runs on one CPU, one GPU or many processes
(DDP, FSDP, DeepSpeed: see configs/accelerate/). Flags can also come from a JSON or YAML file:
`accelerate launch train_merit.py args.yaml`.
"""

import argparse
import json
import logging
import math
import os
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.utils import DataLoaderConfiguration, DistributedType, ProjectConfiguration, set_seed
from tqdm.auto import tqdm
from transformers import HfArgumentParser, get_scheduler

from merit_training.arguments import (
    BEST_MODEL_METRICS,
    DataArguments,
    ModelArguments,
    TrainingArguments,
    evaluates_after_training,
    resolved_data_dir,
    validate_arguments,
)
from merit_training.checkpoints import (
    TrainingProgress,
    check_no_earlier_run,
    clear_earlier_run,
    read_progress,
    resolve_checkpoint,
    resumable_batches,
    save_checkpoint,
)
from merit_training.data import PretrainingData, prepare_pretraining_data
from merit_training.hub import HubPusher, check_model_card_template, export_model, model_card_values
from merit_training.model_setup import build_model_and_processor, optimizer_parameter_groups, step_seed
from merit_training.report_generation import split_task_argument
from merit_training.sharding import check_sharding_is_real
from modeling_merit.zero_shot_merit import embed_class_prompts


logger = logging.getLogger("train_merit")


def interrupted_message(step: int, last_checkpoint: Path | None) -> str:
    """What Ctrl-C leaves behind and how to go on."""
    if last_checkpoint is None:
        return f"Interrupted at step {step}, before the first checkpoint: a new run starts from the beginning."
    return (
        f"Interrupted at step {step}; the last checkpoint is {last_checkpoint}. Go on with the same command and "
        "--resume_from_checkpoint latest."
    )


class NonFiniteLossError(RuntimeError):
    """Raised when the training loss (or the gradient norm) stops being finite."""


def check_finite(
    accelerator: Accelerator, value: torch.Tensor, name: str, step: int, last_checkpoint: Path | None
) -> None:
    """
    Raises `NonFiniteLossError` on every process if `value` (a scalar tensor) is not finite on any of them, before
    the optimizer step, so the weights and the checkpoints on disk stay those of the last good step.
    """
    finite = accelerator.gather(torch.isfinite(value.detach()).reshape(1)).all()
    if finite:
        return
    kept = (
        f"The last good checkpoint is {last_checkpoint} (resume with --resume_from_checkpoint {last_checkpoint})."
        if last_checkpoint
        else "No checkpoint was written yet."
    )
    raise NonFiniteLossError(
        f"The training {name} became non-finite ({value.item()}) at step {step}; training stopped. {kept} "
        "Lower --learning_rate, keep --max_grad_norm on, or check the data."
    )


class HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """`--help` keeps the layout of the module docstring and shows every flag's default."""


def build_parser() -> HfArgumentParser:
    """The command-line parser: every field of the three argument dataclasses is a documented `--flag`."""
    return HfArgumentParser(
        (ModelArguments, DataArguments, TrainingArguments), description=__doc__, formatter_class=HelpFormatter
    )


def parse_arguments(argv: list[str] | None = None) -> tuple[ModelArguments, DataArguments, TrainingArguments]:
    """Flags, or a single JSON/YAML file holding them; invalid combinations raise before any work starts."""
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) == 1 and argv[0].endswith(".json"):
        parsed = parser.parse_json_file(argv[0])
    elif len(argv) == 1 and argv[0].endswith((".yaml", ".yml")):
        parsed = parser.parse_yaml_file(argv[0])
    else:
        parsed = parser.parse_args_into_dataclasses(args=argv)
    validate_arguments(*parsed)
    return parsed


# -------------------------------------------------------------------------------------------------------- validation


@torch.no_grad()
def validation_loss(model, dataloader, accelerator, seed: int) -> dict[str, float]:
    """
    Mean losses over the validation set, with the same masks at every evaluation (seeded noise per batch):
    `val/loss`, `val/reconstruction_loss`, `val/reconstruction_predict_zero` (the reconstruction loss of predicting
    zeros, the level a decoder that learned nothing reaches) and, with reports, `val/contrastive_loss` over the
    records that have one, and its chance level `val/contrastive_chance`: the mean over those records of ln(number of
    candidates), the batch's reported records less the identical reports that are not counted as negatives.
    """
    model.eval()
    unwrapped = accelerator.unwrap_model(model)
    config = unwrapped.config.ecg_config
    generator = torch.Generator().manual_seed(seed)
    # sums of [loss, reconstruction, predict-zero] over records, of [contrastive, chance] over reported records
    totals = torch.zeros(7, device=accelerator.device)
    for batch in dataloader:
        size = batch["input_values"].shape[0]
        noise = torch.rand(size, config.num_leads, config.num_patches_per_lead, generator=generator)
        output = model(**batch, noise=noise.to(accelerator.device))
        reconstruction = predict_zero = torch.tensor(0.0)
        if output.reconstruction is not None:
            lead_mask = unwrapped.ecg_model._checked_lead_mask(batch["input_values"], batch.get("lead_mask"))
            reconstruction = output.reconstruction_loss
            predict_zero = unwrapped.reconstruction_loss(
                batch["input_values"], torch.zeros_like(output.reconstruction), output.mask, lead_mask
            )
        contrastive = chance = pairs = torch.tensor(0.0)
        if output.contrastive_loss is not None:
            rows = batch.get("report_mask", torch.ones(size, dtype=torch.bool)).bool().to(accelerator.device)
            pairs = rows.sum().float()
            # contrastive_loss is a process's share of the global batch's mean (see modeling's contrastive_loss)
            global_pairs = accelerator.reduce(pairs.clone(), reduction="sum")
            contrastive = output.contrastive_loss.detach() * global_pairs / accelerator.num_processes
            candidates = torch.isfinite(output.logits_per_ecg).sum(dim=1).float()
            chance = candidates.log()[rows].sum()
        values = [output.loss * size, reconstruction * size, predict_zero * size, contrastive, chance]
        counts = [torch.tensor(float(size)), pairs]
        totals += torch.stack([value.detach().float().to(accelerator.device) for value in values + counts])
    totals = accelerator.reduce(totals, reduction="sum")
    model.train()
    records, pairs = totals[5].item(), totals[6].item()
    metrics = {
        "val/loss": totals[0].item() / records,
        "val/reconstruction_loss": totals[1].item() / records,
        "val/reconstruction_predict_zero": totals[2].item() / records,
    }
    if unwrapped.config.reconstruction_loss_weight == 0:
        metrics = {"val/loss": metrics["val/loss"]}
    if pairs:
        metrics["val/contrastive_loss"] = totals[3].item() / pairs
        metrics["val/contrastive_chance"] = totals[4].item() / pairs
    return metrics


@torch.no_grad()
def zero_shot_validation_auroc(model, processor, dataloader, prompts: dict[str, list[str]], accelerator) -> float:
    """Macro AUROC of cosine-similarity zero-shot scores (prompt embeddings averaged per class)."""
    from merit_evaluation.metrics import macro_roc_auc

    unwrapped = accelerator.unwrap_model(model)
    unwrapped.eval()
    class_embeddings = embed_class_prompts(unwrapped, processor, prompts)  # the evaluation's and pipeline's code
    scores, labels = [], []
    for batch in dataloader:
        ecg = torch.nn.functional.normalize(
            unwrapped.get_ecg_features(batch["input_values"], batch["lead_mask"]), dim=-1
        )
        scores.append(accelerator.gather_for_metrics(ecg @ class_embeddings.t()).float().cpu())
        labels.append(accelerator.gather_for_metrics(batch["labels"]).cpu())
    unwrapped.train()
    return float(macro_roc_auc(torch.cat(labels).numpy(), torch.cat(scores).numpy()))


# ------------------------------------------------------------------------------------------------------- loss curves

TRAINING_LOG = "training_log.jsonl"
"""One JSON object per logging or evaluation step (`{"step": ..., "train/loss": ...}`), appended by the main process;
after a resume, the entries of re-run steps are appended again and the later one counts."""
TRAINING_CURVES = "training_curves.png"


def append_training_log(accelerator: Accelerator, output_dir: Path, step: int, values: dict[str, float]) -> None:
    """Appends `{"step": step, **values}` to `output_dir/training_log.jsonl` (main process only)."""
    if accelerator.is_main_process:
        with open(output_dir / TRAINING_LOG, "a", encoding="utf-8") as log:
            log.write(json.dumps({"step": step, **values}) + "\n")


def read_training_log(output_dir: Path) -> list[dict]:
    """The entries of `training_log.jsonl`, one per step (a re-run step's later values replace the earlier ones)."""
    by_step: dict[int, dict] = {}
    path = output_dir / TRAINING_LOG
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            entry = json.loads(line)
            by_step.setdefault(entry["step"], {}).update(entry)
    return [by_step[step] for step in sorted(by_step)]


def write_training_curves(output_dir: Path) -> Path | None:
    """Plots the logged train and validation losses (and the zero-shot validation AUROC) to
    `output_dir/training_curves.png`; `None` when nothing was logged."""
    from merit_plotting import plot_training_curves

    history = read_training_log(output_dir)
    if not history:
        return None
    path = output_dir / TRAINING_CURVES
    plot_training_curves(history, path)
    logger.info(f"Loss curves: {path}")
    return path


@dataclass(frozen=True)
class BestModel:
    """The weights (on CPU) of the validation step with the best `metric` so far, for `--load_best_model_at_end`."""

    metric: str
    step: int | None = None
    value: float | None = None
    state_dict: dict | None = None

    def update(self, model: torch.nn.Module, step: int, metrics: dict[str, float]) -> "BestModel":
        """`self`, or the weights of `model` at `step` when its `metrics[self.metric]` is better."""
        value = metrics.get(self.metric)
        if value is None:
            return self
        greater_is_better = BEST_MODEL_METRICS[self.metric]
        if self.value is not None and (value <= self.value if greater_is_better else value >= self.value):
            return self
        weights = {name: tensor.detach().to("cpu", copy=True) for name, tensor in model.state_dict().items()}
        return BestModel(self.metric, step, value, weights)

    def restore(self, model: torch.nn.Module) -> None:
        """Loads the best weights into `model` (nothing when no validation step reported the metric)."""
        if self.state_dict is None:
            logger.warning(
                f"--load_best_model_at_end: no validation step reported {self.metric}; keeping the last weights."
            )
            return
        model.load_state_dict(self.state_dict)
        logger.info(f"Exporting the weights of step {self.step} (best {self.metric} = {self.value:.4f}).")


def learning_summary(metrics: dict[str, float]) -> str:
    """One line saying whether the final validation losses beat their no-learning levels: the contrastive loss
    against chance (ln of the validation batch size) and the reconstruction loss against predicting zeros."""
    parts = []
    if "val/contrastive_loss" in metrics:
        loss, chance = metrics["val/contrastive_loss"], metrics["val/contrastive_chance"]
        parts.append(
            f"validation contrastive loss {loss:.3f} vs chance ln B = {chance:.3f} (difference {loss - chance:+.3f})"
        )
    if "val/reconstruction_loss" in metrics:
        loss, zero = metrics["val/reconstruction_loss"], metrics["val/reconstruction_predict_zero"]
        parts.append(f"validation reconstruction loss {loss:.3f} = {loss / zero:.3f} x predict-zero ({zero:.3f})")
    return "Learning check (records never trained on): " + "; ".join(parts)


# ------------------------------------------------------------------------------------------------------ the run's steps


def build_accelerator(training_args: TrainingArguments, output_dir: Path) -> Accelerator:
    """The run's `Accelerator`: bf16 by default only on CUDA devices that support it, tracker logs in
    `output_dir/logs` (kept out of the Hub pushes of `output_dir`), a seedable sampler (resumable shuffling).
    Raises a `ValueError` when an FSDP or DeepSpeed config would silently run unsharded (on the CPU)."""
    mixed_precision = training_args.mixed_precision
    if mixed_precision is None and "ACCELERATE_MIXED_PRECISION" not in os.environ:
        mixed_precision = "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "no"
    accelerator = Accelerator(
        gradient_accumulation_steps=training_args.gradient_accumulation_steps,
        mixed_precision=mixed_precision,
        log_with=None if training_args.report_to == "none" else training_args.report_to.split(","),
        project_config=ProjectConfiguration(
            project_dir=os.fspath(output_dir), logging_dir=os.fspath(output_dir / "logs")
        ),
        dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True),
    )
    check_sharding_is_real(accelerator.distributed_type)  # accelerate runs FSDP configs on the CPU unsharded
    return accelerator


def prepare_evaluation_loaders(accelerator: Accelerator, data: PretrainingData) -> None:
    """Prepares the validation and zero-shot loaders of `data` in place (after the model, optimizer, training loader
    and scheduler); the zero-shot one is dropped under FSDP."""
    if data.eval_dataloader is not None:
        data.eval_dataloader = accelerator.prepare(data.eval_dataloader)
    if data.zero_shot_dataloader is not None and accelerator.distributed_type == DistributedType.FSDP:
        # get_ecg_features / get_text_features bypass the FSDP-wrapped forward, so the sharded weights are not gathered
        logger.warning(
            "The zero-shot validation AUROC is skipped under FSDP; run eval_merit.py on the exported model."
        )
        data.zero_shot_dataloader = None
    if data.zero_shot_dataloader is not None:
        data.zero_shot_dataloader = accelerator.prepare(data.zero_shot_dataloader)


def resume_or_start(
    accelerator: Accelerator, training_args: TrainingArguments, output_dir: Path, optimizer
) -> tuple[TrainingProgress, Path | None]:
    """`(progress, last checkpoint)`: restored from `--resume_from_checkpoint`, or a fresh start (which also starts
    a new training log). On resume the optimizer's learning rates are the saved run's: a flag that asks for other
    rates (`--learning_rate`, `--text_learning_rate`, `--decoder_learning_rate`) is reported, not applied."""
    if not training_args.resume_from_checkpoint:
        if accelerator.is_main_process:
            (output_dir / TRAINING_LOG).unlink(missing_ok=True)  # a new run starts a new log
            if training_args.overwrite_output_dir:
                clear_earlier_run(output_dir)
        accelerator.wait_for_everyone()
        return TrainingProgress(), None
    checkpoint = resolve_checkpoint(training_args.resume_from_checkpoint, output_dir)
    requested = optimizer_peak_rates(optimizer)
    try:
        accelerator.load_state(os.fspath(checkpoint))
    except ValueError as error:
        if "different number of parameter groups" in str(error):
            raise ValueError(
                f"Cannot resume from {checkpoint}: its optimizer has another number of parameter groups than this "
                "run's. The groups depend on whether the decoder has a learning rate of its own: resume with the "
                "--decoder_learning_rate of the run that saved the checkpoint (0 for a run without one, e.g. any "
                "run saved before the decoder's rate had a default; pass that run's --num_train_epochs too, 4 for "
                "the demo recipe then, or its schedule changes)."
            ) from error
        if "parameter group" in str(error):
            raise ValueError(
                f"Cannot resume from {checkpoint}: a parameter group of its optimizer holds another number of "
                f"tensors than this run's ({error}). The trainable parameters differ from the saved run's: resume "
                "with the same model flags (e.g. --text_freeze) as the run that saved the checkpoint."
            ) from error
        raise
    restored = optimizer_peak_rates(optimizer)
    if requested != restored:
        logger.warning(
            f"Resumed from {checkpoint} with its peak learning rates per parameter group {restored}; the flags of "
            f"this run asked for {requested}, which a resumed run does not apply."
        )
    progress = read_progress(checkpoint)
    logger.info(
        f"Resumed from {checkpoint} at step {progress.completed_steps} (epoch {progress.epoch}, batch {progress.batches_in_epoch})"
    )
    return progress, checkpoint


def optimizer_peak_rates(optimizer) -> list[float]:
    """The peak (`initial_lr`, set by the scheduler) learning rate of each parameter group."""
    return [group.get("initial_lr", group["lr"]) for group in optimizer.param_groups]


def clip_gradients(
    accelerator: Accelerator, model, max_grad_norm: float, step: int, last_checkpoint: Path | None
) -> None:
    """Clips the gradient norm to `max_grad_norm`; raises `NonFiniteLossError` when the norm is not finite."""
    grad_norm = accelerator.clip_grad_norm_(model.parameters(), max_grad_norm)
    if grad_norm is not None:  # DeepSpeed clips inside its engine and may report no norm
        grad_norm = torch.as_tensor(grad_norm, device=accelerator.device)
        check_finite(accelerator, grad_norm, "gradient norm", step, last_checkpoint)


def training_step(
    accelerator: Accelerator,
    model,
    optimizer,
    scheduler,
    batch: dict,
    max_grad_norm: float,
    step: int,
    last_checkpoint: Path | None,
):
    """One micro-batch of optimizer step `step`: forward, backward and, when the accumulation completes, clipping and
    the optimizer and scheduler steps. A non-finite loss or gradient norm raises before the weights change."""
    with accelerator.accumulate(model):
        output = model(**batch)
        check_finite(accelerator, output.loss, "loss", step, last_checkpoint)
        accelerator.backward(output.loss)
        if accelerator.sync_gradients and max_grad_norm > 0:
            clip_gradients(accelerator, model, max_grad_norm, step, last_checkpoint)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad()
    return output


def log_training_step(accelerator: Accelerator, output, scheduler, output_dir: Path, step: int, bar) -> None:
    """Logs the step's training losses and learning rate (trackers, `training_log.jsonl`, progress bar)."""
    logs = {"train/loss": output.loss.item(), "lr": scheduler.get_last_lr()[0]}
    if output.reconstruction_loss is not None:
        logs["train/reconstruction_loss"] = output.reconstruction_loss.item()
    if output.contrastive_loss is not None:
        logs["train/contrastive_loss"] = output.contrastive_loss.item()
    accelerator.log(logs, step=step)
    append_training_log(accelerator, output_dir, step, logs)
    bar.set_postfix({k.split("/")[-1]: round(v, 4) for k, v in logs.items() if k != "lr"})


def run_validation(
    accelerator: Accelerator,
    model,
    processor,
    data: PretrainingData,
    training_args: TrainingArguments,
    output_dir: Path,
    step: int,
    is_last: bool,
    best: BestModel,
) -> BestModel:
    """Validation at `step`: the validation losses and the zero-shot validation AUROC, logged; returns `best`
    updated with them (under `--load_best_model_at_end`)."""
    metrics = {}
    if data.eval_dataloader is not None:
        metrics.update(validation_loss(model, data.eval_dataloader, accelerator, training_args.seed))
    if data.zero_shot_dataloader is not None:
        metrics["val/zero_shot_macro_auroc"] = zero_shot_validation_auroc(
            model, processor, data.zero_shot_dataloader, data.zero_shot_prompts, accelerator
        )
    if not metrics:
        return best
    accelerator.log(metrics, step=step)
    append_training_log(accelerator, output_dir, step, metrics)
    logger.info(f"step {step}: " + ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()))
    if is_last:
        logger.info(learning_summary(metrics))
    if training_args.load_best_model_at_end:
        best = best.update(accelerator.unwrap_model(model), step, metrics)
    return best


@dataclass
class Publisher:
    """Exports model, processor and model card to `output_dir` and pushes them to the Hub with `pusher` (main
    process only), filling the card from the run's settings."""

    accelerator: Accelerator
    processor: object
    output_dir: Path
    pusher: HubPusher | None
    run_config: dict
    model_id: str
    dataset_name: str
    num_train_records: int
    effective_batch_size: int
    started: float

    def publish(self, model, completed_steps: int, final: bool) -> None:
        """Exports the model at `completed_steps`, and pushes it in the background unless `final` (a background push
        still uploading makes a non-final publish skip the step). Every process takes part (FSDP gathers the full
        weights)."""
        state_dict = self.accelerator.get_state_dict(model)
        if self.accelerator.is_main_process:
            self._export_and_push(self.accelerator.unwrap_model(model), completed_steps, state_dict, final)
        self.accelerator.wait_for_everyone()

    def _export_and_push(self, model, completed_steps: int, state_dict: dict, final: bool) -> None:
        if self.pusher is not None and not final and self.pusher.busy:
            logger.info(f"The previous Hub push is still uploading; step {completed_steps} is not pushed")
            return
        if self.pusher is not None:
            self.pusher.wait()  # never rewrite files that a background upload is still reading
        card = model_card_values(
            model,
            self.processor,
            self.run_config,
            self.model_id,
            self.dataset_name,
            self.num_train_records,
            completed_steps,
            self.effective_batch_size,
            f"{self.accelerator.num_processes} x {self.accelerator.device}",
            time.monotonic() - self.started,
        )
        export_model(model, self.processor, self.output_dir, card, state_dict)
        if self.pusher is not None:
            self.pusher.push(self.output_dir, f"MERIT pretraining, step {completed_steps}", blocking=final)


def save_and_publish(
    accelerator: Accelerator,
    model,
    publisher: Publisher,
    progress: TrainingProgress,
    checkpoints_total_limit: int,
    is_last: bool,
) -> Path:
    """Saves a resumable checkpoint and, when pushing to the Hub, publishes the model in the background (the last
    step is published once, blocking, by `finish_training`); returns the checkpoint folder."""
    checkpoint = save_checkpoint(accelerator, publisher.output_dir, progress, checkpoints_total_limit)
    if publisher.pusher is not None and not is_last:
        publisher.publish(model, progress.completed_steps, final=False)
    return checkpoint


def finish_training(
    accelerator: Accelerator,
    model,
    best: BestModel,
    publisher: Publisher,
    progress: TrainingProgress,
    data_args: DataArguments,
    training_args: TrainingArguments,
    data_dir: str | None,
) -> Path:
    """After the last step: the best weights restored (`--load_best_model_at_end`), the loss curves drawn, the model
    exported and pushed, and (`evaluates_after_training`) the demo evaluation run on the exported model. Returns the
    output folder."""
    output_dir = publisher.output_dir
    if training_args.load_best_model_at_end:
        best.restore(accelerator.unwrap_model(model))
    if accelerator.is_main_process:
        write_training_curves(output_dir)
    publisher.publish(model, progress.completed_steps, final=True)
    accelerator.end_training()
    if not accelerator.is_main_process:
        return output_dir
    evaluated = evaluates_after_training(data_args, training_args)
    if evaluated:
        from merit_evaluation.cli import run_demo_evaluation  # the evaluation's dependencies, only when it runs

        run_demo_evaluation(output_dir, data_dir, dataset=data_args.dataset_name)
    logger.info(
        f"Done. Model, processor and model card: {output_dir.resolve()}\n"
        + (
            f"  Evaluation results: {(output_dir / 'results').resolve()} (and the model card's results table)\n"
            if evaluated
            else ""
        )
        + f"  Load it with:  from transformers import AutoModel, AutoProcessor\n"
        f"                 model = AutoModel.from_pretrained('{output_dir}', trust_remote_code=True)\n"
        f"                 processor = AutoProcessor.from_pretrained('{output_dir}', trust_remote_code=True)\n"
        f"  (with `import modeling_merit` first, trust_remote_code is not needed)\n"
        f"  Resumable checkpoints: {output_dir}/checkpoint-*; tracker logs: {output_dir}/logs"
    )
    return output_dir


# --------------------------------------------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> Path:
    """Runs pretraining as configured by `argv` (default: `sys.argv[1:]`) and returns the output folder.

    `--task report_generation` trains an ECG-conditioned report generator instead (its own flags:
    `python train_merit.py --task report_generation --help`; see merit_training/report_generation.py).
    """
    task, argv = split_task_argument(sys.argv[1:] if argv is None else argv)
    if task == "report_generation":
        from merit_training.report_generation import main as train_report_generation

        return train_report_generation(argv)
    model_args, data_args, training_args = parse_arguments(argv)
    check_no_earlier_run(training_args)
    check_model_card_template()
    output_dir = Path(training_args.output_dir)
    started = time.monotonic()
    accelerator = build_accelerator(training_args, output_dir)
    logging.basicConfig(
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        level=logging.INFO if accelerator.is_main_process else logging.WARNING,
    )
    set_seed(training_args.seed)

    # Created first, so that a bad token or repository id fails before any data or model work.
    pusher = None
    if training_args.push_to_hub and accelerator.is_main_process:
        pusher = HubPusher(training_args.hub_model_id, training_args.hub_token, training_args.hub_private_repo)

    data_dir = resolved_data_dir(data_args)
    model, processor = build_model_and_processor(model_args)
    if model_args.gradient_checkpointing:
        model.activation_checkpointing_enable()
    data = prepare_pretraining_data(data_args, training_args, data_dir, processor, accelerator)

    optimizer = torch.optim.AdamW(
        optimizer_parameter_groups(
            model, training_args.weight_decay, training_args.text_learning_rate, training_args.decoder_learning_rate
        ),
        lr=training_args.learning_rate,
        betas=(training_args.adam_beta1, training_args.adam_beta2),
    )
    steps_per_epoch = math.ceil(
        len(data.train_dataloader) / accelerator.num_processes / training_args.gradient_accumulation_steps
    )
    max_train_steps = training_args.max_train_steps or training_args.num_train_epochs * steps_per_epoch
    num_epochs = math.ceil(max_train_steps / steps_per_epoch)
    # The prepared scheduler steps once per process at every optimizer step, hence the factor num_processes.
    scheduler = get_scheduler(
        training_args.lr_scheduler_type,
        optimizer,
        num_warmup_steps=int(training_args.warmup_ratio * max_train_steps) * accelerator.num_processes,
        num_training_steps=max_train_steps * accelerator.num_processes,
    )
    model, optimizer, train_dataloader, scheduler = accelerator.prepare(
        model, optimizer, data.train_dataloader, scheduler
    )
    prepare_evaluation_loaders(accelerator, data)

    batch_size = training_args.per_device_train_batch_size
    effective_batch = batch_size * accelerator.num_processes * training_args.gradient_accumulation_steps
    logger.info(
        f"Processes: {accelerator.num_processes} | device: {accelerator.device} | distributed: "
        f"{accelerator.distributed_type} | precision: {accelerator.mixed_precision} | effective batch: {effective_batch} "
        f"({batch_size} per device x {accelerator.num_processes} processes x {training_args.gradient_accumulation_steps} "
        f"accumulation) | train records: {len(data.train_dataset)} | steps: {max_train_steps} ({num_epochs} epochs)"
    )
    if accelerator.is_main_process:
        output_dir.mkdir(parents=True, exist_ok=True)
    run_config = {
        **asdict(model_args),
        **asdict(data_args),
        **asdict(training_args),
        "hub_token": None,
        "data_dir": data_dir,
    }
    accelerator.init_trackers(
        "merit", config={k: v for k, v in run_config.items() if isinstance(v, (int, float, str, bool))}
    )

    best = BestModel(training_args.metric_for_best_model)
    if training_args.load_best_model_at_end and accelerator.distributed_type == DistributedType.FSDP:
        raise ValueError("--load_best_model_at_end keeps a full copy of the weights: it is not supported under FSDP.")
    progress, last_checkpoint = resume_or_start(accelerator, training_args, output_dir, optimizer)
    publisher = Publisher(
        accelerator,
        processor,
        output_dir,
        pusher,
        run_config,
        training_args.hub_model_id or output_dir.name,
        data_args.dataset_name,
        len(data.train_dataset),
        effective_batch,
        started,
    )

    with tqdm(
        total=max_train_steps,
        initial=progress.completed_steps,
        desc="pretraining",
        disable=not accelerator.is_local_main_process,
    ) as bar:
        model.train()
        try:
            for epoch, batch_index, batch in resumable_batches(accelerator, train_dataloader, progress, num_epochs):
                # Masks and dropout are drawn from a seed fixed by (seed, step, micro-batch, process), and crops from
                # the records of the batch (ECGReportCollator), so a resumed run draws exactly what the uninterrupted
                # run drew.
                torch.manual_seed(
                    step_seed(training_args.seed, progress.completed_steps, batch_index, accelerator.process_index)
                )
                output = training_step(
                    accelerator,
                    model,
                    optimizer,
                    scheduler,
                    batch,
                    training_args.max_grad_norm,
                    progress.completed_steps + 1,
                    last_checkpoint,
                )
                if not accelerator.sync_gradients:
                    continue
                progress = TrainingProgress(progress.completed_steps + 1, epoch, batch_index)
                bar.update(1)
                step = progress.completed_steps
                is_last = step >= max_train_steps
                if step % training_args.logging_steps == 0 or step == max_train_steps:
                    log_training_step(accelerator, output, scheduler, output_dir, step, bar)
                if (training_args.eval_steps and step % training_args.eval_steps == 0) or is_last:
                    best = run_validation(
                        accelerator, model, processor, data, training_args, output_dir, step, is_last, best
                    )
                if step % training_args.checkpointing_steps == 0 or is_last:
                    last_checkpoint = save_and_publish(
                        accelerator, model, publisher, progress, training_args.checkpoints_total_limit, is_last
                    )
                if is_last:
                    break
        except KeyboardInterrupt:
            logger.warning(interrupted_message(progress.completed_steps, last_checkpoint))
            raise

    return finish_training(accelerator, model, best, publisher, progress, data_args, training_args, data_dir)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(130)  # what to do next was logged; no traceback
