"""Resumable checkpoints written atomically (temporary folder, then rename) and rotated."""

import json
import logging
import os
import re
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path


logger = logging.getLogger(__name__)

CHECKPOINT_PATTERN = re.compile(r"^checkpoint-(\d+)$")
STATE_FILE = "training_state.json"


@dataclass
class TrainingProgress:
    """Where training stands: optimizer steps done, the epoch, and the batches of that epoch already consumed."""

    completed_steps: int = 0
    epoch: int = 0
    batches_in_epoch: int = 0


def resumable_batches(accelerator, dataloader, progress: TrainingProgress, num_epochs: int):
    """
    Yields `(epoch, batch_index, batch)` from `progress` on: the epochs left (each reshuffled by `set_epoch`) and, in
    the epoch training stopped in, only the batches not consumed yet. `batch_index` counts from 1 within the epoch,
    so a resumed run sees exactly the batches, and positions, that the uninterrupted run saw.
    """
    for epoch in range(progress.epoch, num_epochs):
        dataloader.set_epoch(epoch)
        batches = dataloader
        batch_index = 0
        if epoch == progress.epoch and progress.batches_in_epoch:
            batches = accelerator.skip_first_batches(dataloader, progress.batches_in_epoch)
            batch_index = progress.batches_in_epoch
        for batch in batches:
            batch_index += 1
            yield epoch, batch_index, batch


def list_checkpoints(output_dir: str | os.PathLike) -> list[Path]:
    """Complete checkpoints in `output_dir`, oldest first (temporary folders of interrupted saves are ignored)."""
    output_dir = Path(output_dir)
    if not output_dir.is_dir():
        return []
    found = [
        (int(match.group(1)), path)
        for path in output_dir.iterdir()
        if (match := CHECKPOINT_PATTERN.match(path.name)) and (path / STATE_FILE).is_file()
    ]
    return [path for _, path in sorted(found)]


def model_path_problem(model_name_or_path: str, flag: str) -> str | None:
    """What is plainly wrong with a model given as a local path (a Hub id, `name` or `namespace/name`, is left to
    `from_pretrained`), or `None`: a path that does not exist, a file, or a folder without a `config.json`. Also
    tells apart a resumable training checkpoint (`checkpoint-<step>`), whose exported model is in the folder above."""
    path = Path(model_name_or_path)
    if path.is_dir():
        if (path / "config.json").is_file():
            return None
        if (path / STATE_FILE).is_file():
            return (
                f"{flag} {model_name_or_path} is a resumable training checkpoint, not a model; the model exported by "
                f"that run is in {path.parent} (resume training with --resume_from_checkpoint {model_name_or_path})."
            )
        return (
            f"{flag} {model_name_or_path} is a folder without a config.json; expected a model folder as "
            "`save_pretrained` writes it (config.json, the weights and the processor's files), or a Hub id."
        )
    if path.exists():
        return f"{flag} {model_name_or_path} is a file; expected a model folder or a Hub id."
    if (
        model_name_or_path.startswith((".", "/", "~"))
        or model_name_or_path.count("/") > 1
        or "\\" in model_name_or_path
    ):
        return (
            f"{flag} {model_name_or_path} does not exist: there is no such folder (and it is not a Hub id, which has "
            "the form 'name' or 'namespace/name')."
        )
    return None


def check_model_path(model_name_or_path: str, flag: str) -> None:
    """Raises a `ValueError` with `model_path_problem`'s message, if it has one."""
    problem = model_path_problem(model_name_or_path, flag)
    if problem:
        raise ValueError(problem)


def earlier_run_checkpoints(output_dir: str | os.PathLike) -> list[Path]:
    """Every checkpoint folder in `output_dir`, complete or interrupted (`checkpoint-<step>` and `.tmp`), by name."""
    output_dir = Path(output_dir)
    if not output_dir.is_dir():
        return []
    return sorted(path for path in output_dir.glob("checkpoint-*") if path.is_dir())


OVERWRITE_HELP = (
    "Start afresh in an --output_dir that holds checkpoints of an earlier run, deleting them first. Without it such a "
    "folder is refused unless --resume_from_checkpoint is given: a new run there would mix its checkpoints with the "
    "old ones, and keeping the newest --checkpoints_total_limit by step would delete checkpoints of either run."
)


def check_no_earlier_run(arguments) -> None:
    """Raises a `ValueError` when a new run would start in an `--output_dir` that holds checkpoints of an earlier
    run (see `OVERWRITE_HELP`). Checked when a run starts, before any work (not when flags are parsed: the default
    `--output_dir` of the demo holds the demo's own checkpoints)."""
    found = earlier_run_checkpoints(arguments.output_dir)
    if not found or arguments.resume_from_checkpoint or arguments.overwrite_output_dir:
        return
    names = ", ".join(path.name for path in found[:4]) + (", ..." if len(found) > 4 else "")
    raise ValueError(
        f"--output_dir {arguments.output_dir} holds checkpoints of an earlier run ({names}). Pass "
        "--resume_from_checkpoint latest to go on with that run, --overwrite_output_dir to delete them and start "
        "afresh, or another --output_dir."
    )


def clear_earlier_run(output_dir: str | os.PathLike) -> None:
    """Deletes the checkpoint folders of an earlier run in `output_dir` (`--overwrite_output_dir`)."""
    for path in earlier_run_checkpoints(output_dir):
        shutil.rmtree(path)
        logger.info(f"--overwrite_output_dir: removed {path} of an earlier run")


def resolve_checkpoint(resume_from_checkpoint: str, output_dir: str | os.PathLike) -> Path:
    """`latest` -> the newest complete checkpoint of `output_dir`; a path -> that checkpoint (validated)."""
    if resume_from_checkpoint == "latest":
        checkpoints = list_checkpoints(output_dir)
        if not checkpoints:
            raise FileNotFoundError(f"--resume_from_checkpoint latest: no checkpoint found in {output_dir}.")
        return checkpoints[-1]
    path = Path(resume_from_checkpoint)
    if not (path / STATE_FILE).is_file():
        raise FileNotFoundError(f"{path} is not a complete MERIT checkpoint (no {STATE_FILE}).")
    return path


def read_progress(checkpoint: str | os.PathLike) -> TrainingProgress:
    """The `TrainingProgress` stored in a checkpoint folder."""
    return TrainingProgress(**json.loads((Path(checkpoint) / STATE_FILE).read_text()))


def save_checkpoint(accelerator, output_dir: str | os.PathLike, progress: TrainingProgress, total_limit: int) -> Path:
    """
    Saves model, optimizer, scheduler, RNG states and `progress` to `output_dir/checkpoint-<step>`.

    Every process writes into `checkpoint-<step>.tmp`; the main process then renames it, so a save interrupted at
    any point leaves the previous checkpoints intact and no half-written `checkpoint-*` folder (`list_checkpoints`
    and `--resume_from_checkpoint latest` ignore `.tmp` folders; the next save removes them). Older checkpoints
    beyond `total_limit` are deleted afterwards.
    """
    output_dir = Path(output_dir)
    final = output_dir / f"checkpoint-{progress.completed_steps}"
    temporary = output_dir / f"checkpoint-{progress.completed_steps}.tmp"
    if accelerator.is_main_process:
        for leftover in output_dir.glob("checkpoint-*.tmp"):  # interrupted earlier saves
            shutil.rmtree(leftover)
    accelerator.wait_for_everyone()
    accelerator.save_state(os.fspath(temporary))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        (temporary / STATE_FILE).write_text(json.dumps(asdict(progress), indent=2))
        if final.exists():
            shutil.rmtree(final)
        os.replace(temporary, final)
        for stale in list_checkpoints(output_dir)[:-total_limit]:
            shutil.rmtree(stale)
            logger.info(f"Removed old checkpoint {stale}")
    accelerator.wait_for_everyone()
    return final
