# Copyright 2026 The MERIT authors. Licensed under the Apache License, Version 2.0.
"""
Multi-node launch under a scheduler: turns the environment of a SLURM task (or plain `MASTER_ADDR`-style variables)
into the `accelerate launch` command of its node, and runs it.

    # one task per node (sbatch --nodes 2 --ntasks-per-node 1 --gpus-per-node 8), see configs/slurm/train_merit.sbatch
    srun python -m merit_training.launch --config_file configs/accelerate/multi_node.yaml -- \\
        train_merit.py --model_preset base --dataset_name mimic_iv_ecg --data_dir /data/mimic-iv-ecg ...

On every node this runs

    accelerate launch --config_file <file> --num_machines <N> --num_processes <N x per node> --machine_rank <node> \\
        --main_process_ip <first node> --main_process_port <port> train_merit.py ...

| what | read from, first found |
|---|---|
| machines | `SLURM_NNODES`, `NNODES` |
| this machine's rank | `SLURM_NODEID`, `NODE_RANK` |
| processes per machine | `--processes_per_machine`, `SLURM_GPUS_ON_NODE`, `SLURM_GPUS_PER_NODE` (`8` or `h100:8`), `NPROC_PER_NODE` |
| main machine's address | `MASTER_ADDR`, the first host of `SLURM_JOB_NODELIST` (`gpu[03-04,07]` -> `gpu03`) |
| port | `MASTER_PORT`, else 29500 |

`--dry_run` prints the command instead of running it. The test suite runs two machine ranks on one host through
this module (`tests/test_train_multi_node.py`).
"""

import argparse
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path


DEFAULT_PORT = 29500


def _first(environ: dict[str, str], names: tuple[str, ...]) -> tuple[str, str] | None:
    for name in names:
        value = environ.get(name, "").strip()
        if value:
            return name, value
    return None


def _integer(environ: dict[str, str], names: tuple[str, ...], what: str, minimum: int) -> int:
    found = _first(environ, names)
    if found is None:
        raise ValueError(
            f"The {what} is not set: expected one of the environment variables {', '.join(names)}; got none. Run "
            "inside a SLURM allocation (srun) or export them."
        )
    name, value = found
    match = re.fullmatch(r"(?:[\w-]+:)?(\d+)(?:\(.*\))?", value)  # "8", "h100:8", "8(x2)"
    if match is None or int(match.group(1)) < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum} (the {what}); got {value!r}.")
    return int(match.group(1))


def first_host(nodelist: str) -> str:
    """The first host of a SLURM node list: `gpu[03-04,07],cpu1` -> `gpu03`, `node7,node8` -> `node7`."""
    match = re.match(r"([^,\[]+)(?:\[([^\]]+)\])?", nodelist.strip())
    if match is None or not match.group(1):
        raise ValueError(f"SLURM_JOB_NODELIST must list hosts, e.g. 'gpu[03-04]'; got {nodelist!r}.")
    prefix, ranges = match.groups()
    if ranges is None:
        return prefix
    return prefix + ranges.split(",")[0].split("-")[0]


def launch_command(
    script_and_args: list[str],
    config_file: str | os.PathLike,
    environ: dict[str, str] | None = None,
    processes_per_machine: int | None = None,
) -> list[str]:
    """
    The `accelerate launch` command of this node for `script_and_args` (e.g. `["train_merit.py", "--flag", ...]`),
    from the scheduler's environment (see the module docstring). Raises a `ValueError` naming the variable that is
    missing or malformed.
    """
    environ = dict(os.environ if environ is None else environ)
    if not script_and_args:
        raise ValueError("No script to launch: expected e.g. `-- train_merit.py --model_preset base`; got nothing.")
    num_machines = _integer(environ, ("SLURM_NNODES", "NNODES"), "number of machines", 1)
    machine_rank = _integer(environ, ("SLURM_NODEID", "NODE_RANK"), "rank of this machine", 0)
    if machine_rank >= num_machines:
        raise ValueError(f"The machine rank ({machine_rank}) must be below the number of machines ({num_machines}).")
    if processes_per_machine is None:
        processes_per_machine = _integer(
            environ,
            ("SLURM_GPUS_ON_NODE", "SLURM_GPUS_PER_NODE", "NPROC_PER_NODE"),
            "number of processes per machine",
            1,
        )
    address = environ.get("MASTER_ADDR", "").strip()
    if not address:
        if not environ.get("SLURM_JOB_NODELIST", "").strip():
            raise ValueError(
                "The main machine's address is not set: expected MASTER_ADDR or SLURM_JOB_NODELIST; got neither."
            )
        address = first_host(environ["SLURM_JOB_NODELIST"])
    port = _integer(environ, ("MASTER_PORT",), "port", 1) if environ.get("MASTER_PORT") else DEFAULT_PORT
    return [
        "accelerate", "launch",
        "--config_file", os.fspath(config_file),
        "--num_machines", str(num_machines),
        "--num_processes", str(num_machines * processes_per_machine),
        "--machine_rank", str(machine_rank),
        "--main_process_ip", address,
        "--main_process_port", str(port),
        *script_and_args,
    ]  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config_file", default="configs/accelerate/multi_node.yaml", help="accelerate config.")
    parser.add_argument("--processes_per_machine", type=int, default=None, help="Default: from the environment.")
    parser.add_argument("--dry_run", action="store_true", help="Print the command instead of running it.")
    parser.add_argument("script_and_args", nargs=argparse.REMAINDER, help="-- train_merit.py [flags]")
    args = parser.parse_args(argv)
    script_and_args = args.script_and_args[1:] if args.script_and_args[:1] == ["--"] else args.script_and_args
    command = launch_command(script_and_args, args.config_file, processes_per_machine=args.processes_per_machine)
    # the accelerate next to this interpreter (the environment's), whatever PATH says
    command[0] = os.fspath(Path(sys.executable).with_name("accelerate"))
    if args.dry_run:
        print(shlex.join(command))
        return 0
    return subprocess.call(command)


if __name__ == "__main__":
    sys.exit(main())
