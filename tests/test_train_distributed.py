"""Distributed correctness with two real processes on the CPU (gloo), launched with
`configs/accelerate/cpu_2_processes.yaml` and `ACCELERATE_USE_CPU=1` (DESIGN.md section 6: `--cpu --num_processes 2`
would silently run one process).

Success is judged by the files the processes write (see `run_judged_by_outputs`): a gloo run sometimes aborts at
interpreter exit after finishing its work.
"""

import json
import sys

import pytest
import torch
from train_helpers import (
    REPO_ROOT,
    run_judged_by_outputs,
    subprocess_env,
    tiny_train_args,
    two_process_command,
    weights,
)
from transformers import AutoModelForPreTraining

import modeling_merit  # noqa: F401 (registers the MERIT Auto classes)


pytestmark = pytest.mark.slow


def test_contrastive_loss_gradients_and_checkpoint_match_one_process(tmp_path):
    command = two_process_command("tests/distributed_contrastive_check.py", "--output_dir", str(tmp_path))
    results = [tmp_path / f"result-{rank}.json" for rank in (0, 1)]
    run_judged_by_outputs(
        command, lambda: all(path.is_file() for path in results),
        cwd=REPO_ROOT, env=subprocess_env(ACCELERATE_USE_CPU="1"), timeout=300,
    )  # fmt: skip

    for path in results:
        result = json.loads(path.read_text())
        assert (result["world_size"], result["backend"]) == (2, "gloo")
        for name, value in result["reference_losses"].items():
            assert result["distributed_losses"][name] == pytest.approx(value, rel=1e-5)
        assert result["relative_gradient_error"] < 1e-5
        assert result["local_only_relative_gradient_error"] > 1e-3  # gathering without gradient would be caught
        assert result["standardized_relative_gradient_error"] < 1e-5
        assert result["standardized_running_statistics_error"] < 1e-5
        assert result["loaded_class"] == "MeritForPreTraining"


def test_train_merit_with_two_processes(tmp_path):
    output_dir = tmp_path / "run"
    args = tiny_train_args(output_dir, tmp_path / "cache", "--max_train_steps", "3", "--checkpointing_steps", "2")
    command = two_process_command("train_merit.py", *args)
    result = run_judged_by_outputs(
        command, lambda: (output_dir / "README.md").is_file() and (output_dir / "checkpoint-3" / "training_state.json").is_file(),
        cwd=REPO_ROOT, env=subprocess_env(ACCELERATE_USE_CPU="1"), timeout=300,
    )  # fmt: skip

    assert "Processes: 2 |" in result.stderr and "MULTI_CPU" in result.stderr
    assert "effective batch: 8 (4 per device x 2 processes x 1 accumulation)" in result.stderr
    checkpoint = output_dir / "checkpoint-3"
    assert sorted(path.name for path in checkpoint.glob("random_states_*.pkl")) == [
        "random_states_0.pkl",
        "random_states_1.pkl",
    ]
    assert json.loads((checkpoint / "training_state.json").read_text())["completed_steps"] == 3

    model = AutoModelForPreTraining.from_pretrained(output_dir)
    saved = weights(checkpoint / "model.safetensors")
    assert all(torch.equal(tensor, saved[name]) for name, tensor in model.state_dict().items())


def test_a_run_whose_rank_crashed_is_retried_once(tmp_path):
    """`run_judged_by_outputs` runs a launch again, from a clean `--output_dir`, only when a rank died of a signal."""
    script = (
        "import pathlib, sys\n"
        "out = pathlib.Path(sys.argv[2]); marker = out.parent / 'crashed-once'\n"
        "out.mkdir(exist_ok=True); (out / 'partial').write_text('x')\n"
        "if sys.argv[3] == 'always' or not marker.exists():\n"
        "    marker.touch(); sys.exit('Signal 11 (SIGSEGV) received by PID 1')\n"
        "assert not (out / 'model').exists(); (out / 'model').write_text('ok')\n"
    )
    out = tmp_path / "run"

    def command(mode):
        return [sys.executable, "-c", script, "--output_dir", str(out), mode]

    with pytest.warns(UserWarning, match="killed by a signal; running once more"):
        run_judged_by_outputs(command("once"), lambda: (out / "model").is_file())
    assert (out / "model").read_text() == "ok"
    with pytest.raises(pytest.fail.Exception, match="without writing its outputs"), pytest.warns(UserWarning):
        run_judged_by_outputs(command("always"), lambda: (out / "missing").is_file())
