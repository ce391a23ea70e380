"""One tiny `train_merit.py` run through to the end, in-process: validation metrics, TensorBoard logs, the exported
model that `AutoModel` loads, the filled model card, the evaluation that follows on PTB-XL, and the closing message
that says where everything is."""

import json
import logging

import pytest
import torch
from train_helpers import tiny_train_args, weights
from transformers import AutoModel, AutoProcessor

import modeling_merit  # noqa: F401 (registers the MERIT Auto classes)
import train_merit
from merit_training.model_card import template_placeholders


@pytest.mark.slow
@pytest.mark.usefixtures("single_torch_thread")
def test_tiny_run_exports_a_loadable_model_logs_and_evaluates(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="train_merit")
    output_dir = tmp_path / "run"
    args = tiny_train_args(
        output_dir, tmp_path / "cache",
        "--max_train_steps", "4", "--checkpointing_steps", "2", "--eval_steps", "2",
        "--report_to", "tensorboard", "--evaluate_after_training", "true", "--gradient_checkpointing",
    )  # fmt: skip
    assert train_merit.main(args) == output_dir

    log = caplog.text
    assert "Processes: 1 |" in log and "effective batch: 4" in log
    assert "val/loss" in log and "val/zero_shot_macro_auroc" in log  # validation every 2 steps
    assert list((output_dir / "logs").rglob("events.out.tfevents.*"))  # TensorBoard, kept out of the exported model
    assert sorted(path.name for path in output_dir.glob("checkpoint-*")) == ["checkpoint-2", "checkpoint-4"]

    model = AutoModel.from_pretrained(output_dir)
    processor = AutoProcessor.from_pretrained(output_dir)
    trained = weights(output_dir / "checkpoint-4" / "model.safetensors")
    assert all(torch.equal(tensor, trained[f"merit.{name}"]) for name, tensor in model.state_dict().items())
    assert processor.feature_extractor.num_samples == model.config.ecg_config.num_samples

    card = (output_dir / "README.md").read_text()
    assert not template_placeholders(card)
    assert "Optimizer steps: 4" in card and "`ptbxl`, training split: 24 ECG-report pairs" in card
    results = json.loads((output_dir / "results" / "results.json").read_text())["results"]
    assert {row["task"] for row in results} == {"linear-probe", "zero-shot", "retrieval"}  # the demo evaluation ran
    assert {row["model"] for row in results if row["baseline"] is None} == {str(output_dir)}

    closing = log[log.rindex("Done.") :]  # the run ends by saying where the outputs are and how to load them
    assert str(output_dir.resolve()) in closing and "AutoModel.from_pretrained" in closing and "results" in closing


@pytest.mark.slow
@pytest.mark.usefixtures("single_torch_thread")
def test_load_best_model_at_end_exports_the_best_validation_step(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="train_merit")
    output_dir = tmp_path / "run"
    args = tiny_train_args(
        output_dir, tmp_path / "cache", "--max_train_steps", "4", "--checkpointing_steps", "1", "--eval_steps", "1",
        "--checkpoints_total_limit", "4", "--report_to", "none", "--evaluate_after_training", "false",
        "--load_best_model_at_end", "--metric_for_best_model", "val/reconstruction_loss",
    )  # fmt: skip
    train_merit.main(args)
    history = train_merit.read_training_log(output_dir)
    validated = {
        entry["step"]: entry["val/reconstruction_loss"] for entry in history if "val/reconstruction_loss" in entry
    }
    best_step = min(validated, key=validated.get)
    assert f"Exporting the weights of step {best_step}" in caplog.text
    exported = weights(output_dir / "model.safetensors")
    at_best = weights(output_dir / f"checkpoint-{best_step}" / "model.safetensors")
    assert all(torch.equal(tensor, at_best[name]) for name, tensor in exported.items())
    assert (output_dir / "training_curves.png").stat().st_size > 0
