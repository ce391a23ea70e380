"""Faults of `train_merit.py`, run in-process on the tiny preset and the embedded PTB-XL sample:

- interrupt after step k and resume: the final weights equal those of an uninterrupted run, bitwise;
- a save interrupted half-way never damages the previous checkpoint, and `latest` ignores the `.tmp` folder;
- a non-finite loss (or gradient norm) stops training with a message naming the step and the last good checkpoint,
  which is kept.
- resuming with flags that change the optimizer's parameter groups fails with a message naming the flag; with flags
  that change only the learning rates, the saved rates are kept and a warning says so.
"""

import json
import logging
import shutil

import numpy as np
import pytest
import torch
from accelerate import Accelerator
from train_helpers import CROPPING_OVERRIDES, file_digests, tiny_train_args, weights

import train_merit
from merit_training.checkpoints import list_checkpoints, resolve_checkpoint
from merit_training.data import ROW_INDEX, ECGReportCollator
from merit_training.model_setup import default_text_model
from modeling_merit import MeritForPreTraining


pytestmark = pytest.mark.usefixtures("single_torch_thread")


def assert_same_weights(expected_file, actual_file):
    expected, actual = weights(expected_file), weights(actual_file)
    assert expected.keys() == actual.keys()
    different = [name for name in expected if not torch.equal(expected[name], actual[name])]
    assert not different, f"{len(different)} tensors differ, e.g. {different[:3]}"


@pytest.mark.slow
@pytest.mark.parametrize(
    "records, accumulation, max_steps, resume_step",
    [
        (24, 1, 8, 3),  # 6 batches per epoch: resume mid-epoch, then cross into epoch 1
        (20, 2, 5, 2),  # 5 micro-batches per epoch, accumulated 2 + 2 + 1: resume before the short last step
    ],
)
def test_interrupt_and_resume_gives_bitwise_identical_weights(
    tmp_path, cache_dir, records, accumulation, max_steps, resume_step
):
    common = [
        "--max_train_samples", str(records),
        "--max_train_steps", str(max_steps),
        "--gradient_accumulation_steps", str(accumulation),
        "--checkpointing_steps", str(resume_step),
        "--checkpoints_total_limit", "10",
        "--config_overrides", CROPPING_OVERRIDES,
    ]  # fmt: skip
    uninterrupted = tmp_path / "uninterrupted"
    train_merit.main(tiny_train_args(uninterrupted, cache_dir, *common))
    assert (uninterrupted / f"checkpoint-{max_steps}").is_dir()

    # "Interrupted after step k": a fresh output folder holding only checkpoint-k, resumed with the same flags.
    resumed = tmp_path / "resumed"
    resumed.mkdir()
    shutil.copytree(uninterrupted / f"checkpoint-{resume_step}", resumed / f"checkpoint-{resume_step}")
    train_merit.main(tiny_train_args(resumed, cache_dir, *common, "--resume_from_checkpoint", "latest"))

    assert_same_weights(uninterrupted / "model.safetensors", resumed / "model.safetensors")
    assert_same_weights(
        uninterrupted / f"checkpoint-{max_steps}" / "model.safetensors",
        resumed / f"checkpoint-{max_steps}" / "model.safetensors",
    )
    state = json.loads((resumed / f"checkpoint-{max_steps}" / "training_state.json").read_text())
    assert state["completed_steps"] == max_steps


def test_resuming_with_other_optimizer_groups_or_rates_says_what_differs(tmp_path, cache_dir, caplog):
    output_dir = tmp_path / "run"
    common = ["--max_train_samples", "8", "--checkpointing_steps", "1"]
    train_merit.main(tiny_train_args(output_dir, cache_dir, *common, "--max_train_steps", "1"))
    with pytest.raises(ValueError, match="--decoder_learning_rate") as caught:  # 0: no decoder groups of its own
        train_merit.main(
            tiny_train_args(
                output_dir, cache_dir, *common, "--max_train_steps", "2", "--decoder_learning_rate", "0",
                "--resume_from_checkpoint", "latest",
            )
        )  # fmt: skip
    assert "checkpoint-1" in str(caught.value) and "number of parameter groups" in str(caught.value)
    with pytest.raises(ValueError, match="--text_freeze"):  # as many groups, other tensors in them
        train_merit.main(
            tiny_train_args(
                output_dir, cache_dir, *common, "--max_train_steps", "2", "--text_freeze", "none",
                "--resume_from_checkpoint", "latest",
            )
        )  # fmt: skip
    # the same groups with another rate: the saved run's rates are kept, and the log says so
    with caplog.at_level(logging.WARNING, logger="train_merit"):
        train_merit.main(
            tiny_train_args(
                output_dir, cache_dir, *common, "--max_train_steps", "2", "--learning_rate", "5e-4",
                "--resume_from_checkpoint", "latest",
            )
        )  # fmt: skip
    warnings = [record.getMessage() for record in caplog.records if "does not apply" in record.getMessage()]
    assert len(warnings) == 1 and "0.0005" in warnings[0] and "0.001" in warnings[0]


def test_random_crops_depend_on_the_records_not_on_the_global_rng(tiny_processor_with_crops):
    collator = ECGReportCollator(tiny_processor_with_crops, crop="random", seed=7)
    rng = np.random.default_rng(0)
    rows = [
        {
            "signal": rng.standard_normal((12, 1000)).astype(np.float32),
            "lead_names": LEADS,
            "sampling_rate": 100,
            "report": "sinus rhythm",
            ROW_INDEX: index,
        }
        for index in range(4)
    ]
    torch.manual_seed(1)
    first = collator(rows)["input_values"]
    torch.manual_seed(2)
    torch.rand(100)
    assert torch.equal(first, collator(rows)["input_values"])  # same records: same crops, whatever the global RNG
    other_rows = [{**row, ROW_INDEX: row[ROW_INDEX] + 10} for row in rows]
    assert not torch.equal(first, collator(other_rows)["input_values"])  # other records: other crops
    with pytest.raises(ValueError, match="IndexedRows"):
        collator([{key: value for key, value in row.items() if key != ROW_INDEX} for row in rows])


LEADS = ["I", "II", "III", "AVR", "AVL", "AVF", "V1", "V2", "V3", "V4", "V5", "V6"]


@pytest.fixture(scope="module")
def tiny_processor_with_crops():
    from transformers import AutoTokenizer

    from modeling_merit import MeritFeatureExtractor, MeritProcessor

    extractor = MeritFeatureExtractor(sampling_rate=100, num_samples=500, feature_size=12)
    return MeritProcessor(extractor, AutoTokenizer.from_pretrained(default_text_model()))


def test_interrupted_save_keeps_the_previous_checkpoint(tmp_path, cache_dir, monkeypatch):
    output_dir = tmp_path / "run"
    original_save_state = Accelerator.save_state
    snapshots = {}

    def crashing_save_state(self, output_dir_of_save=None, **kwargs):
        saves = snapshots.setdefault("calls", 0) + 1
        snapshots["calls"] = saves
        if saves < 2:
            return original_save_state(self, output_dir_of_save, **kwargs)
        # Second save: the model file is half written when the process dies.
        snapshots["checkpoint-2"] = file_digests(output_dir / "checkpoint-2")
        original_save_state(self, output_dir_of_save, **kwargs)
        model_file = next(path for path in output_dir.glob("*.tmp/model.safetensors"))
        model_file.write_bytes(model_file.read_bytes()[:100])
        raise KeyboardInterrupt("simulated crash while saving")

    monkeypatch.setattr(Accelerator, "save_state", crashing_save_state)
    # total limit 1: rotating before the new checkpoint is complete would delete checkpoint-2
    args = tiny_train_args(
        output_dir, cache_dir, "--max_train_steps", "6", "--checkpointing_steps", "2", "--checkpoints_total_limit", "1"
    )
    with pytest.raises(KeyboardInterrupt, match="simulated crash"):
        train_merit.main(args)

    assert (output_dir / "checkpoint-4.tmp").is_dir()
    assert not (output_dir / "checkpoint-4").exists()
    assert file_digests(output_dir / "checkpoint-2") == snapshots["checkpoint-2"]
    assert list_checkpoints(output_dir) == [output_dir / "checkpoint-2"]
    assert resolve_checkpoint("latest", output_dir) == output_dir / "checkpoint-2"

    monkeypatch.setattr(Accelerator, "save_state", original_save_state)
    train_merit.main([*args, "--resume_from_checkpoint", "latest"])
    assert list_checkpoints(output_dir) == [output_dir / "checkpoint-6"]
    assert not list(output_dir.glob("*.tmp"))  # the leftover of the interrupted save is cleaned up


@pytest.mark.parametrize("where", ["loss", "gradient norm"])
def test_non_finite_loss_stops_with_the_step_and_the_last_good_checkpoint(tmp_path, cache_dir, monkeypatch, where):
    output_dir = tmp_path / "run"
    original_forward = MeritForPreTraining.forward
    calls = []

    def forward_going_non_finite_at_step_5(self, *args, **kwargs):
        output = original_forward(self, *args, **kwargs)
        calls.append(1)
        if len(calls) == 5 and where == "loss":
            output.loss = output.loss * float("nan")
        if len(calls) == 5 and where == "gradient norm":  # a finite loss whose gradient overflows
            self.merit.logit_scale.register_hook(lambda gradient: gradient * float("inf"))
        return output

    monkeypatch.setattr(MeritForPreTraining, "forward", forward_going_non_finite_at_step_5)
    args = tiny_train_args(output_dir, cache_dir, "--max_train_steps", "8", "--checkpointing_steps", "2")
    with pytest.raises(train_merit.NonFiniteLossError) as caught:
        train_merit.main(args)

    message = str(caught.value)
    assert f"training {where} became non-finite" in message and "at step 5" in message
    assert str(output_dir / "checkpoint-4") in message
    assert list_checkpoints(output_dir) == [output_dir / "checkpoint-2", output_dir / "checkpoint-4"]
    state = json.loads((output_dir / "checkpoint-4" / "training_state.json").read_text())
    assert state["completed_steps"] == 4
    assert all(
        torch.isfinite(tensor).all() for tensor in weights(output_dir / "checkpoint-4" / "model.safetensors").values()
    )
    assert not (output_dir / "model.safetensors").exists()  # nothing exported from a failed run


@pytest.mark.slow
def test_a_new_run_in_the_folder_of_an_earlier_run_is_refused_or_starts_afresh(tmp_path, cache_dir):
    """Before: a new run in the folder of an earlier one gave no warning; its checkpoints were rotated with the
    earlier run's by step number (its own checkpoint-1 was deleted as soon as it was written) and the earlier run's
    later checkpoints stayed beside the new model, where `--resume_from_checkpoint latest` would pick them up."""
    output = tmp_path / "run"
    train_merit.main(tiny_train_args(output, cache_dir, "--max_train_steps", "4", "--checkpointing_steps", "2"))
    earlier = [path.name for path in list_checkpoints(output)]
    assert earlier == ["checkpoint-2", "checkpoint-4"]

    new_run = tiny_train_args(output, cache_dir, "--max_train_steps", "2", "--checkpointing_steps", "1")
    with pytest.raises(ValueError, match=r"holds checkpoints of an earlier run \(checkpoint-2, checkpoint-4\)"):
        train_merit.main(new_run)
    assert [path.name for path in list_checkpoints(output)] == earlier  # nothing touched
    with pytest.raises(ValueError, match="--overwrite_output_dir starts afresh; it cannot go with"):
        train_merit.main([*new_run, "--overwrite_output_dir", "--resume_from_checkpoint", "latest"])

    train_merit.main([*new_run, "--overwrite_output_dir"])
    assert [path.name for path in list_checkpoints(output)] == ["checkpoint-1", "checkpoint-2"]
    steps = [json.loads(line)["step"] for line in (output / "training_log.jsonl").read_text().splitlines()]
    assert steps and max(steps) <= 2


@pytest.mark.slow
def test_ctrl_c_says_where_training_stopped_and_how_to_go_on(tmp_path, cache_dir, monkeypatch, caplog):
    output_dir = tmp_path / "run"
    original_forward = MeritForPreTraining.forward
    calls = []

    def forward_interrupted_at_step_5(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 5:
            raise KeyboardInterrupt
        return original_forward(self, *args, **kwargs)

    monkeypatch.setattr(MeritForPreTraining, "forward", forward_interrupted_at_step_5)
    args = tiny_train_args(output_dir, cache_dir, "--max_train_steps", "8", "--checkpointing_steps", "2")
    with caplog.at_level(logging.WARNING), pytest.raises(KeyboardInterrupt):
        train_merit.main(args)
    assert f"Interrupted at step 4; the last checkpoint is {output_dir / 'checkpoint-4'}" in caplog.text
    assert "--resume_from_checkpoint latest" in caplog.text
    assert train_merit.interrupted_message(0, None).endswith(
        "before the first checkpoint: a new run starts from the beginning."
    )
