"""One tiny `train_merit.py` run through to the end, in-process: validation metrics, TensorBoard logs, the exported
model that `AutoModel` loads, the filled model card, the evaluation that follows on PTB-XL, and the closing message
that says where everything is."""

import json
import logging

import pytest
import torch
from train_helpers import single_torch_thread, tiny_train_args, weights  # noqa: F401
from transformers import AutoModel, AutoProcessor

import modeling_merit  # noqa: F401 (registers the MERIT Auto classes)
import train_merit
from merit_evaluation.model_card import template_placeholders


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
    assert all(torch.equal(tensor, trained[name]) for name, tensor in model.state_dict().items())
    assert processor.feature_extractor.num_samples == model.config.ecg_config.num_samples

    card = (output_dir / "README.md").read_text()
    assert not template_placeholders(card)
    assert "Optimizer steps: 4" in card and "`ptbxl`, training split: 24 ECG-report pairs" in card
    results = json.loads((output_dir / "results" / "results.json").read_text())["results"]
    assert {row["task"] for row in results} == {"linear-probe", "zero-shot"}  # the demo evaluation ran on it
    assert {row["model"] for row in results if row["baseline"] is None} == {str(output_dir)}

    closing = log[log.rindex("Done.") :]  # the run ends by saying where the outputs are and how to load them
    assert str(output_dir.resolve()) in closing and "AutoModel.from_pretrained" in closing and "results" in closing
