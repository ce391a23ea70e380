# Copyright 2026 The MERIT authors. Licensed under the Apache License, Version 2.0.
"""
FSDP2 pretraining of MERIT on two gloo CPU ranks, launched by `tests/test_train_sharded.py`:

    ACCELERATE_USE_CPU=1 accelerate launch --config_file configs/accelerate/cpu_2_processes.yaml \
        tests/fsdp2_check.py --output_dir /tmp/check --cache_dir /tmp/cache

accelerate cannot shard on the CPU (it runs FSDP configs there as plain data parallelism; `train_merit.py` refuses
that), so the model is sharded with `torch.distributed` directly, with the wrap policy of
`configs/accelerate/fsdp.yaml` (`merit_training.sharding`). Real records of the shipped PTB-XL excerpt go through the
checkpoint's processor and `train_merit.py`'s collator, optimizer parameter groups and gradient clipping. The script
records, for the tests to judge:

1. a one-process reference: `STEPS` optimizer steps on global batches of 8 (on every rank, gathering switched off);
2. the same steps sharded over 2 ranks (each rank holds half of every batch and half of every parameter), the
   losses averaged over the ranks, and the gathered weights after the last step;
3. a sharded checkpoint (`torch.distributed.checkpoint`) written after `CHECKPOINT_STEP` steps, restored into a
   freshly sharded model and optimizer, and the remaining steps run again from it;
4. the model exported with `save_pretrained` from the gathered full state dict, and loaded back with
   `AutoModelForPreTraining.from_pretrained`.

Each rank writes `result-<rank>.json` as its very last action (a gloo run may abort at interpreter exit).
"""

import argparse
import copy
import json
from pathlib import Path
from unittest import mock

import torch
import torch.distributed as dist
from transformers import AutoModelForPreTraining

from merit_training.arguments import ModelArguments
from merit_training.data import ECGReportCollator, load_pretraining_splits
from merit_training.model_setup import build_model_and_processor, optimizer_parameter_groups
from merit_training.sharding import (
    fsdp_wrap_classes,
    full_state_dict,
    load_sharded_checkpoint,
    save_pretrained_unsharded,
    save_sharded_checkpoint,
    shard_model,
)


REPO_ROOT = Path(__file__).resolve().parents[1]
FSDP_CONFIG = REPO_ROOT / "configs" / "accelerate" / "fsdp.yaml"
GLOBAL_BATCH = 8
STEPS = 4
CHECKPOINT_STEP = 2
MAX_GRAD_NORM = 1.0
NO_DROPOUT = '{"text_config": {"hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}}'


def global_batches(processor, cache_dir: str, config) -> list[dict[str, torch.Tensor]]:
    """`STEPS` batches of 8 real PTB-XL records (centre crops) with fixed masking noise, the same on every rank."""
    if dist.get_rank() != 0:
        dist.barrier()  # rank 0 prepares the Arrow cache first
    train = load_pretraining_splits("ptbxl", str(REPO_ROOT / "data" / "ptbxl-sample"), cache_dir=cache_dir)["train"]
    if dist.get_rank() == 0:
        dist.barrier()
    train = train.select(range(GLOBAL_BATCH * STEPS)).with_format("numpy")
    collator = ECGReportCollator(processor, crop="center")
    ecg = config.ecg_config
    generator = torch.Generator().manual_seed(1234)
    batches = []
    for step in range(STEPS):
        batch = collator([train[index] for index in range(step * GLOBAL_BATCH, (step + 1) * GLOBAL_BATCH)])
        batch["noise"] = torch.rand(GLOBAL_BATCH, ecg.num_leads, ecg.num_patches_per_lead, generator=generator)
        batches.append(batch)
    return batches


def local_half(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    size = GLOBAL_BATCH // dist.get_world_size()
    start = dist.get_rank() * size
    return {name: tensor[start : start + size] for name, tensor in batch.items()}


def new_optimizer(model) -> torch.optim.Optimizer:
    """SGD with momentum and weight decay on `train_merit.py`'s parameter groups. Not AdamW: Adam divides every update
    by the root of the squared gradient, so a parameter whose exact gradient is zero moves by up to the learning rate
    in the direction of its rounding noise. `merit.ecg_model.pooler_norm.bias` is one (the batch-normalised projection
    head cancels a constant shift), and with AdamW at 1e-3 the 2-rank and 1-process weights differed by 4e-4 there
    after 4 steps, while the losses agreed to 2e-7."""
    return torch.optim.SGD(optimizer_parameter_groups(model, weight_decay=0.05), lr=0.05, momentum=0.9)


def train_steps(model, optimizer, batches, distributed: bool) -> list[float]:
    """Optimizer steps on `batches` (each rank its half when `distributed`); the losses of the global batches."""
    losses = []
    for batch in batches:
        output = model(**(local_half(batch) if distributed else batch))
        output.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), MAX_GRAD_NORM)
        optimizer.step()
        optimizer.zero_grad()
        loss = output.loss.detach().clone()
        if distributed:
            dist.all_reduce(loss)
            loss /= dist.get_world_size()
        losses.append(loss.item())
    return losses


def single_process_run(model, batches) -> tuple[list[float], dict[str, torch.Tensor]]:
    """The reference: one process, whole batches, nothing gathered across ranks."""
    optimizer = new_optimizer(model)
    with mock.patch.object(dist, "is_initialized", return_value=False):
        losses = train_steps(model, optimizer, batches, distributed=False)
    return losses, {name: tensor.detach().clone() for name, tensor in model.state_dict().items()}


def largest_difference(reference: dict, candidate: dict) -> tuple[float, str]:
    if reference.keys() != candidate.keys():
        raise AssertionError(f"Different state dict keys: {sorted(reference.keys() ^ candidate.keys())[:5]}")
    return max(
        ((reference[name].double() - candidate[name].double()).abs().max().item(), name)
        for name in reference
        if reference[name].is_floating_point()
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output_dir", required=True, type=Path)
    parser.add_argument("--cache_dir", required=True)
    args = parser.parse_args()

    dist.init_process_group("gloo")
    rank, world_size = dist.get_rank(), dist.get_world_size()
    if world_size != 2:
        raise AssertionError(f"Expected 2 ranks, got {world_size}")
    torch.manual_seed(0)
    model, processor = build_model_and_processor(
        ModelArguments(
            model_preset="tiny",
            text_model_name_or_path="scratch",
            text_freeze="none",
            config_overrides=NO_DROPOUT,
            # A trained text projection: with the weight-free one the pooled features of this random tiny BERT are so
            # alike that dividing by their batch spread amplifies rounding about 100x (weights 1.8e-5 apart after 4
            # steps, against 1.7e-7 here). The weight-free head's distributed statistics and gradients are checked
            # in tests/distributed_contrastive_check.py.
            text_projection_head="mlp_bn",
        )
    )
    batches = global_batches(processor, args.cache_dir, model.config)
    initial = copy.deepcopy(model)

    reference_losses, reference_weights = single_process_run(copy.deepcopy(initial), batches)

    wrap_classes = fsdp_wrap_classes(FSDP_CONFIG)
    sharded = shard_model(copy.deepcopy(initial), wrap_classes)
    local_numel = sum(parameter.to_local().numel() for parameter in sharded.parameters())
    total_numel = sum(parameter.numel() for parameter in sharded.parameters())
    optimizer = new_optimizer(sharded)
    losses = train_steps(sharded, optimizer, batches[:CHECKPOINT_STEP], distributed=True)
    checkpoint = args.output_dir / f"checkpoint-{CHECKPOINT_STEP}"
    save_sharded_checkpoint(sharded, optimizer, checkpoint)
    losses += train_steps(sharded, optimizer, batches[CHECKPOINT_STEP:], distributed=True)
    sharded_weights = full_state_dict(sharded)

    resumed = shard_model(copy.deepcopy(initial), wrap_classes)  # initial weights, overwritten by the checkpoint
    resumed_optimizer = new_optimizer(resumed)
    load_sharded_checkpoint(resumed, resumed_optimizer, checkpoint)
    resumed_losses = train_steps(resumed, resumed_optimizer, batches[CHECKPOINT_STEP:], distributed=True)
    resumed_weights = full_state_dict(resumed)

    export = args.output_dir / "export"
    result = {
        "rank": rank,
        "world_size": world_size,
        "backend": dist.get_backend(),
        "wrap_classes": wrap_classes,
        "sharded_layers": sorted(
            {type(module).__name__ for module in sharded.modules() if type(module).__name__.startswith("FSDP")}
        ),
        "local_parameter_fraction": local_numel / total_numel,
        "reference_losses": reference_losses,
        "sharded_losses": losses,
        "resumed_losses": resumed_losses,
        "checkpoint_files": sorted(path.name for path in checkpoint.iterdir()),
    }
    if rank == 0:  # the gathered weights exist on rank 0 only
        save_pretrained_unsharded(sharded, export, sharded_weights)
        weight_error, worst = largest_difference(reference_weights, sharded_weights)
        result.update(
            {
                "max_weight_difference": weight_error,
                "worst_parameter": worst,
                "resumed_equals_uninterrupted": resumed_weights.keys() == sharded_weights.keys()
                and all(torch.equal(resumed_weights[name], tensor) for name, tensor in sharded_weights.items()),
                "exported_types": sorted({type(tensor).__name__ for tensor in sharded_weights.values()}),
            }
        )
    dist.barrier()
    loaded = AutoModelForPreTraining.from_pretrained(export)
    if rank == 0:
        loaded_weights = loaded.state_dict()
        result.update(
            {
                "loaded_class": type(loaded).__name__,
                "architectures": json.loads((export / "config.json").read_text()).get("architectures"),
                "loaded_equals_exported": loaded_weights.keys() == sharded_weights.keys()
                and all(torch.equal(loaded_weights[name], tensor) for name, tensor in sharded_weights.items()),
                "exported_files": sorted(path.name for path in export.iterdir()),
            }
        )
    dist.barrier()
    (args.output_dir / f"result-{rank}.json").write_text(json.dumps(result, indent=2))
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
