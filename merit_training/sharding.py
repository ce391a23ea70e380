# Copyright 2026 The MERIT authors. Licensed under the Apache License, Version 2.0.
"""
FSDP2 (`torch.distributed.fsdp.fully_shard`) for MERIT models, and the guard against a sharding launch that silently
runs as data parallelism.

On GPUs, `accelerate launch --config_file configs/accelerate/fsdp.yaml` shards the model itself. On the CPU it cannot:
accelerate turns every multi-process CPU run into `DistributedType.MULTI_CPU` (plain data parallelism) whatever the
config asks for. [`check_sharding_is_real`] makes `train_merit.py` refuse such a run, and the functions below apply the
config's wrap policy with `torch.distributed` directly (any backend, gloo included), which is how the test suite runs
FSDP2 on CPU ranks (tests/fsdp2_check.py):

- [`fsdp_wrap_classes`] reads the layer classes to wrap from an accelerate FSDP config (`fsdp_transformer_layer_cls_to_wrap`);
- [`shard_model`] applies `fully_shard` to every module of those classes, then to the root (accelerate's
  `TRANSFORMER_BASED_WRAP`);
- [`full_state_dict`] gathers the sharded weights into one plain state dict (what `save_pretrained` writes);
- [`save_sharded_checkpoint`] / [`load_sharded_checkpoint`] write and read model and optimizer shards with
  `torch.distributed.checkpoint` (one file per rank; resume with the same number of ranks).
"""

import os
from pathlib import Path

import torch
from torch import nn


SHARDING_ENVIRONMENT_FLAGS = {"ACCELERATE_USE_FSDP": "FSDP", "ACCELERATE_USE_DEEPSPEED": "DeepSpeed"}
"""Environment flags that `accelerate launch` sets for a sharding config, and the sharding each one asks for."""


def requested_sharding(environ: dict[str, str] | None = None) -> str | None:
    """The sharding (`"FSDP"`, `"DeepSpeed"`) that the launch environment asks for, or `None`."""
    environ = os.environ if environ is None else environ
    for flag, name in SHARDING_ENVIRONMENT_FLAGS.items():
        if environ.get(flag, "false").lower() in ("1", "true"):
            return name
    return None


def check_sharding_is_real(distributed_type, environ: dict[str, str] | None = None) -> None:
    """
    Raises a `ValueError` when the launch asked for FSDP or DeepSpeed (`accelerate launch` with such a config sets
    `ACCELERATE_USE_FSDP` / `ACCELERATE_USE_DEEPSPEED`) but accelerate set the run up as something else: on the CPU
    (`ACCELERATE_USE_CPU=1` or `--cpu`) accelerate runs such configs as plain data parallelism (`MULTI_CPU`) or as one
    process (`NO`), without a word, so a user who believes the model is sharded would not know it is replicated.

    Args:
        distributed_type (`accelerate.utils.DistributedType`): `accelerator.distributed_type`.
        environ (`dict`, *optional*): the environment (default `os.environ`).
    """
    from accelerate.utils import DistributedType

    requested = requested_sharding(environ)
    expected = {"FSDP": DistributedType.FSDP, "DeepSpeed": DistributedType.DEEPSPEED}.get(requested)
    if expected is None or distributed_type == expected:
        return
    raise ValueError(
        f"The accelerate config asks for {requested} sharding, but accelerate set this run up as {distributed_type} "
        f"(accelerate shards only on accelerators: on the CPU it replicates the model in every process). Expected "
        f"{expected}; got {distributed_type}. On the CPU, launch with configs/accelerate/cpu_2_processes.yaml for "
        "data parallelism; FSDP2 on CPU ranks runs with torch.distributed directly (merit_training.sharding, "
        "tests/fsdp2_check.py); on GPUs, do not set ACCELERATE_USE_CPU / --cpu."
    )


def fsdp_wrap_classes(accelerate_config_file: str | os.PathLike) -> list[str]:
    """The class names of an accelerate FSDP config's `fsdp_transformer_layer_cls_to_wrap` (e.g. `MeritLayer`,
    `BertLayer`), read with accelerate's own config reader."""
    from accelerate.commands.config.config_args import load_config_from_file

    config = load_config_from_file(os.fspath(accelerate_config_file))
    fsdp_config = config.fsdp_config or {}
    names = fsdp_config.get("fsdp_transformer_layer_cls_to_wrap")
    if fsdp_config.get("fsdp_auto_wrap_policy") != "TRANSFORMER_BASED_WRAP" or not names:
        raise ValueError(
            f"{accelerate_config_file} must set fsdp_auto_wrap_policy: TRANSFORMER_BASED_WRAP and "
            f"fsdp_transformer_layer_cls_to_wrap; got {fsdp_config.get('fsdp_auto_wrap_policy')!r} and {names!r}."
        )
    return [name.strip() for name in names.split(",") if name.strip()]


def shard_model(model: nn.Module, layer_class_names: list[str], reshard_after_forward: bool = True, mesh=None):
    """
    Shards `model` in place with FSDP2: `fully_shard` on every module whose class is named in `layer_class_names`
    (innermost first), then on the root, as accelerate's `TRANSFORMER_BASED_WRAP` does. Every parameter becomes a
    `DTensor` sharded along dim 0 over the ranks of `mesh` (default: all ranks of the default process group).

    Returns `model` (its class is now an `FSDPModule` subclass). Raises a `ValueError` when no module matches, or when
    the model still has a 0-d parameter (`fully_shard` cannot shard those).
    """
    from torch.distributed.fsdp import fully_shard

    scalars = [name for name, parameter in model.named_parameters() if parameter.dim() == 0]
    if scalars:
        raise ValueError(
            f"fully_shard cannot shard 0-d parameters; got {scalars}. Make them tensors of shape (1,) "
            "(MeritModel.logit_scale is one since FSDP2 support)."
        )
    wanted = set(layer_class_names)
    layers = [module for module in model.modules() if type(module).__name__ in wanted]
    if not layers:
        present = sorted({type(module).__name__ for module in model.modules()})
        raise ValueError(
            f"No module of the classes to wrap {sorted(wanted)} in {type(model).__name__}; its module classes are "
            f"{present}. Set fsdp_transformer_layer_cls_to_wrap to the model's transformer layer classes."
        )
    for layer in reversed(layers):  # children before parents, should wrapped classes nest
        fully_shard(layer, mesh=mesh, reshard_after_forward=reshard_after_forward)
    fully_shard(model, mesh=mesh)
    return model


def full_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """
    The whole state dict of a sharded `model` as plain CPU tensors (no `DTensor`) on rank 0, an empty dict on the
    other ranks (so that only one copy of the full model is ever held in CPU memory): what accelerate's
    `get_state_dict` gathers under FSDP2 and what `save_pretrained(..., state_dict=...)` writes as one
    `model.safetensors`. A collective: every rank must call it.
    """
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    return get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))


def save_sharded_checkpoint(model: nn.Module, optimizer: torch.optim.Optimizer, folder: str | os.PathLike) -> None:
    """Writes the model and optimizer shards of every rank to `folder` with `torch.distributed.checkpoint` (one
    `__<rank>_0.distcp` file per rank and a `.metadata` index). A collective: every rank must call it."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_state_dict

    model_state, optimizer_state = get_state_dict(model, optimizer)
    dcp.save({"model": model_state, "optimizer": optimizer_state}, checkpoint_id=os.fspath(folder))


def load_sharded_checkpoint(model: nn.Module, optimizer: torch.optim.Optimizer, folder: str | os.PathLike) -> None:
    """Restores a [`save_sharded_checkpoint`] folder into a model sharded the same way and its optimizer (on as many
    ranks as wrote it). A collective: every rank must call it."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict

    if not (Path(folder) / ".metadata").is_file():
        raise ValueError(
            f"{folder} is not a sharded checkpoint (no .metadata); expected a save_sharded_checkpoint folder."
        )
    model_state, optimizer_state = get_state_dict(model, optimizer)
    state = {"model": model_state, "optimizer": optimizer_state}
    dcp.load(state, checkpoint_id=os.fspath(folder))
    set_state_dict(model, optimizer, model_state_dict=state["model"], optim_state_dict=state["optimizer"])


def unsharded_class(model: nn.Module) -> type:
    """The model's own class: `fully_shard` swaps it for a generated subclass `FSDP<name>(FSDPModule, <class>)`."""
    from torch.distributed.fsdp import FSDPModule

    return next(klass for klass in type(model).__mro__ if not issubclass(klass, FSDPModule))


def save_pretrained_unsharded(
    model, folder: str | os.PathLike, state_dict: dict[str, torch.Tensor] | None, **kwargs
) -> None:
    """
    `save_pretrained` of a model that `fully_shard` has wrapped, with its gathered `state_dict` ([`full_state_dict`]).

    Calling `save_pretrained` on the wrapped model itself writes a broken folder for custom-code models like MERIT
    (transformers 5.23): the `auto_map` entry names `_fsdp_init.FSDPMeritForPreTraining` and torch's FSDP source
    files are copied in place of `modeling_merit.py`, so `trust_remote_code` loading fails. The folder is written
    through an unsharded instance of the model's own class built on the meta device (no memory for weights) instead;
    `kwargs` go to `save_pretrained`. A plain (unsharded) `model` is saved as it is.
    """
    from torch.distributed.fsdp import FSDPModule

    if isinstance(model, FSDPModule):
        if state_dict is None:
            raise ValueError(
                f"A {type(model).__name__} sharded by FSDP2 needs its gathered weights to be saved: got state_dict=None; "
                "pass full_state_dict(model) (or accelerator.get_state_dict(model))."
            )
        with torch.device("meta"):
            model = unsharded_class(model)(model.config)
    model.save_pretrained(folder, state_dict=state_dict, **kwargs)


def unsharded_copy(model, state_dict: dict[str, torch.Tensor]):
    """
    A plain (unsharded, CPU) instance of the class of a model that `fully_shard` has wrapped, holding the gathered
    `state_dict` ([`full_state_dict`], on rank 0). A report generator's LoRA adapters are re-created first with the
    model's own peft config, so that its `save_pretrained` merges them into the saved weights as it does unsharded.
    """
    plain = unsharded_class(model)(model.config)
    peft_configs = getattr(getattr(model, "language_model", None), "peft_config", None)
    if peft_configs:
        import peft

        if len(peft_configs) != 1:
            raise ValueError(f"Expected one LoRA adapter on the language model; got {sorted(peft_configs)}.")
        plain.language_model = peft.get_peft_model(plain.language_model, next(iter(peft_configs.values())))
    plain.load_state_dict(state_dict)
    return plain
