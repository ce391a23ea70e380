"""Multi-node launch: the scheduler environment -> `accelerate launch` command of `merit_training.launch`, and two
machine ranks on this host (`configs/accelerate/multi_node.yaml`, one gloo process each) training exactly like two
processes on one machine (`configs/accelerate/multi_gpu_ddp.yaml`, run on the CPU)."""

import json
import os
import signal
import subprocess
import sys

import pytest
import torch
from train_helpers import (
    REPO_ROOT,
    accelerate_launch_command,
    free_port,
    read_training_log_losses,
    run_judged_by_outputs,
    subprocess_env,
    tiny_train_args,
    weights,
)

from merit_training.launch import first_host, launch_command, main


CONFIG_DIR = REPO_ROOT / "configs" / "accelerate"


def option(command: list[str], name: str) -> str:
    return command[command.index(name) + 1]


def test_a_slurm_task_gets_the_launch_command_of_its_node():
    environ = {
        "SLURM_NNODES": "2",
        "SLURM_NODEID": "1",
        "SLURM_GPUS_ON_NODE": "8",
        "SLURM_JOB_NODELIST": "gpu[03-04]",
    }
    command = launch_command(["train_merit.py", "--model_preset", "base"], "multi_node.yaml", environ)
    assert command[:4] == ["accelerate", "launch", "--config_file", "multi_node.yaml"]
    assert [option(command, name) for name in ("--num_machines", "--num_processes", "--machine_rank")] == [
        "2",
        "16",
        "1",
    ]
    assert (option(command, "--main_process_ip"), option(command, "--main_process_port")) == ("gpu03", "29500")
    assert command[-3:] == ["train_merit.py", "--model_preset", "base"]


def test_torchrun_style_variables_and_explicit_values_win():
    environ = {
        "NNODES": "4",
        "NODE_RANK": "3",
        "NPROC_PER_NODE": "2",
        "MASTER_ADDR": "10.0.0.1",
        "MASTER_PORT": "1234",
    }
    command = launch_command(["train_merit.py"], "c.yaml", environ)
    assert [option(command, name) for name in ("--num_processes", "--machine_rank", "--main_process_ip")] == [
        "8",
        "3",
        "10.0.0.1",
    ]
    assert option(command, "--main_process_port") == "1234"
    # MASTER_ADDR wins over the node list; --processes_per_machine over the GPU count; "h100:4" is read as 4
    slurm = {**environ, "SLURM_JOB_NODELIST": "n[1-4]", "SLURM_GPUS_PER_NODE": "h100:4"}
    assert option(launch_command(["x.py"], "c.yaml", slurm), "--main_process_ip") == "10.0.0.1"
    assert option(launch_command(["x.py"], "c.yaml", {**slurm, "NPROC_PER_NODE": ""}), "--num_processes") == "16"
    assert option(launch_command(["x.py"], "c.yaml", slurm, processes_per_machine=1), "--num_processes") == "4"


@pytest.mark.parametrize(
    "nodelist, host",
    [("gpu[03-04,07]", "gpu03"), ("node7,node8", "node7"), ("a-b[10,12]", "a-b10"), ("solo", "solo")],
)
def test_first_host_of_a_slurm_node_list(nodelist, host):
    assert first_host(nodelist) == host


@pytest.mark.parametrize(
    "environ, message",
    [
        ({"SLURM_NODEID": "0", "SLURM_GPUS_ON_NODE": "8", "MASTER_ADDR": "h"}, "SLURM_NNODES, NNODES"),
        ({"SLURM_NNODES": "2", "SLURM_GPUS_ON_NODE": "8", "MASTER_ADDR": "h"}, "SLURM_NODEID, NODE_RANK"),
        ({"SLURM_NNODES": "2", "SLURM_NODEID": "0", "MASTER_ADDR": "h"}, "SLURM_GPUS_ON_NODE"),
        ({"SLURM_NNODES": "2", "SLURM_NODEID": "0", "SLURM_GPUS_ON_NODE": "8"}, "MASTER_ADDR or SLURM_JOB_NODELIST"),
        ({"SLURM_NNODES": "2", "SLURM_NODEID": "2", "SLURM_GPUS_ON_NODE": "8", "MASTER_ADDR": "h"}, "below"),
        ({"SLURM_NNODES": "two", "SLURM_NODEID": "0", "SLURM_GPUS_ON_NODE": "8", "MASTER_ADDR": "h"}, "'two'"),
    ],
)
def test_a_missing_or_malformed_variable_is_named(environ, message):
    with pytest.raises(ValueError, match=message):
        launch_command(["train_merit.py"], "c.yaml", environ)


def test_the_cli_prints_the_command_with_dry_run(monkeypatch, capsys):
    for name, value in {"NNODES": "2", "NODE_RANK": "0", "NPROC_PER_NODE": "1", "MASTER_ADDR": "127.0.0.1"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("MASTER_PORT", raising=False)
    assert main(["--dry_run", "--config_file", "m.yaml", "--", "train_merit.py", "--seed", "3"]) == 0
    printed = capsys.readouterr().out.split()
    assert printed[0].endswith("accelerate") and printed[-3:] == ["train_merit.py", "--seed", "3"]
    assert option(printed, "--main_process_ip") == "127.0.0.1"


@pytest.mark.slow
def test_two_machine_ranks_train_like_two_processes_on_one_machine(tmp_path):
    train_args = ("--max_train_steps", "3", "--checkpointing_steps", "3", "--mixed_precision", "no")

    one_machine = tmp_path / "one-machine"
    command = accelerate_launch_command(
        CONFIG_DIR / "multi_gpu_ddp.yaml",
        "train_merit.py",
        *tiny_train_args(one_machine, tmp_path / "cache", *train_args),
        launch_options=("--num_processes", "2"),
    )
    result = run_judged_by_outputs(
        command,
        lambda: (one_machine / "model.safetensors").is_file(),
        cwd=REPO_ROOT,
        env=subprocess_env(ACCELERATE_USE_CPU="1"),
        timeout=300,
    )
    assert "Processes: 2 |" in result.stderr and "MULTI_CPU" in result.stderr

    # two "machines" on this host, each launched through merit_training.launch from torchrun-style variables
    two_machines = tmp_path / "two-machines"
    port = str(free_port())
    launches = []
    for machine_rank in (0, 1):
        environ = subprocess_env(
            ACCELERATE_USE_CPU="1",
            NNODES="2",
            NODE_RANK=str(machine_rank),
            NPROC_PER_NODE="1",
            MASTER_ADDR="127.0.0.1",
            MASTER_PORT=port,
        )
        command = [
            sys.executable, "-m", "merit_training.launch",
            "--config_file", str(CONFIG_DIR / "multi_node.yaml"),
            "--", "train_merit.py", *tiny_train_args(two_machines, tmp_path / f"cache-{machine_rank}", *train_args),
        ]  # fmt: skip
        launches.append(
            subprocess.Popen(
                command,
                cwd=REPO_ROOT,
                env=environ,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                start_new_session=True,  # its own process group: the launcher and the ranks it starts
            )
        )
    try:
        outputs = [launch.communicate(timeout=300) for launch in launches]
    finally:  # a rank left waiting for a crashed peer must not outlive the test
        for launch in launches:
            if launch.poll() is None:
                os.killpg(launch.pid, signal.SIGKILL)
                launch.communicate()
    if not (two_machines / "model.safetensors").is_file():
        pytest.fail(
            "The two-machine run wrote no model (exits "
            f"{[launch.returncode for launch in launches]}):\n{outputs[0][1][-4000:]}\n{outputs[1][1][-4000:]}"
        )
    assert "Processes: 2 |" in outputs[0][1] and "MULTI_CPU" in outputs[0][1]
    assert "effective batch: 8 (4 per device x 2 processes x 1 accumulation)" in outputs[0][1]

    # the same losses at every step and the same final weights, bitwise
    assert read_training_log_losses(two_machines) == read_training_log_losses(one_machine)
    expected, actual = weights(one_machine / "model.safetensors"), weights(two_machines / "model.safetensors")
    assert expected.keys() == actual.keys()
    assert all(torch.equal(expected[name], actual[name]) for name in expected)
    progress = json.loads((two_machines / "checkpoint-3" / "training_state.json").read_text())
    assert progress["completed_steps"] == 3


def test_the_slurm_example_parses_into_a_launch_and_train_merit_flags(repo_root):
    import shlex

    import train_merit

    script = (repo_root / "configs" / "slurm" / "train_merit.sbatch").read_text()
    srun = script[script.index("srun ") :].split("\n#")[0].replace("\\\n", " ")
    words = shlex.split(srun)
    assert words[:4] == ["srun", "python", "-m", "merit_training.launch"]
    separator = words.index("--")
    launch_flags, train_args = words[4:separator], words[separator + 2 :]
    assert words[separator + 1] == "train_merit.py"
    config_file = launch_flags[launch_flags.index("--config_file") + 1]
    assert (repo_root / config_file).is_file()
    # what `srun` gives the task of node 1 in a 2-node allocation with 8 GPUs per node
    environ = {"SLURM_NNODES": "2", "SLURM_NODEID": "1", "SLURM_GPUS_ON_NODE": "8", "SLURM_JOB_NODELIST": "gpu[1-2]"}
    command = launch_command(["train_merit.py", *train_args], config_file, environ)
    assert [option(command, name) for name in ("--num_processes", "--machine_rank", "--main_process_ip")] == [
        "16",
        "1",
        "gpu1",
    ]
    model_args, data_args, training_args = train_merit.build_parser().parse_args_into_dataclasses(args=train_args)
    assert (model_args.model_preset, data_args.dataset_name) == ("base", "mimic_iv_ecg")
    assert training_args.output_dir == "/shared/runs/merit-base"
