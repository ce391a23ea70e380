# Copyright 2026 The MERIT authors. Licensed under the Apache License, Version 2.0.
"""
FSDP2 report-generation training with LoRA on two gloo CPU ranks, launched by `tests/test_train_sharded.py`:

    ACCELERATE_USE_CPU=1 accelerate launch --config_file configs/accelerate/cpu_2_processes.yaml \
        tests/fsdp2_report_check.py --merit <MERIT checkpoint> --language_model <SmolLM2 folder> \
        --output_dir /tmp/check --cache_dir /tmp/cache

The report generator is built as `train_merit.py --task report_generation` builds it (a MERIT encoder, a new
projector, the LLM with LoRA adapters on its attention projections) and sharded with the wrap policy of
`configs/accelerate/fsdp_report_generation.yaml` (every `MeritLayer` and `LlamaDecoderLayer`, then the root). Real
PTB-XL records and reports of the shipped excerpt, `STEPS` SGD steps on the run's optimizer groups (projector and
LoRA), each rank holding half of every batch of 4. As under DDP or FSDP, every rank averages the loss over its own
report tokens and the gradients are averaged over the ranks; the one-process reference computes that same objective,
the mean of the two halves' losses. The gathered weights are then saved as the training script saves them: LoRA merged
into the language model's weights, one `model.safetensors`.

Each rank writes `result-<rank>.json` as its very last action (a gloo run may abort at interpreter exit).
"""

import argparse
import copy
import json
from pathlib import Path
from unittest import mock

import torch
import torch.distributed as dist
from safetensors import safe_open
from transformers import AutoModel

from merit_training.report_generation import (
    ReportCollator,
    ReportGenerationArguments,
    build_model_and_processor,
    load_report_splits,
    optimizer_groups,
)
from merit_training.sharding import fsdp_wrap_classes, full_state_dict, shard_model, unsharded_copy


REPO_ROOT = Path(__file__).resolve().parents[1]
FSDP_CONFIG = REPO_ROOT / "configs" / "accelerate" / "fsdp_report_generation.yaml"
GLOBAL_BATCH = 4
STEPS = 2


def new_optimizer(model, args) -> torch.optim.Optimizer:
    """SGD with momentum on the run's groups (see tests/fsdp2_check.py for why not AdamW in an equality check)."""
    groups, _ = optimizer_groups(model, args)
    return torch.optim.SGD([{k: v for k, v in group.items() if k != "stage"} for group in groups], momentum=0.9)


def halves(batch: dict[str, torch.Tensor]) -> list[dict[str, torch.Tensor]]:
    size = GLOBAL_BATCH // 2
    return [{name: tensor[start : start + size] for name, tensor in batch.items()} for start in (0, size)]


def step(model, optimizer, loss: torch.Tensor, max_grad_norm: float) -> None:
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
    optimizer.step()
    optimizer.zero_grad()


def trainable_state(model) -> dict[str, torch.Tensor]:
    return {
        name: parameter.detach().clone() for name, parameter in model.named_parameters() if parameter.requires_grad
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--merit", required=True)
    parser.add_argument("--language_model", required=True)
    parser.add_argument("--output_dir", required=True, type=Path)
    parser.add_argument("--cache_dir", required=True)
    cli = parser.parse_args()

    dist.init_process_group("gloo")
    rank, world_size = dist.get_rank(), dist.get_world_size()
    if world_size != 2:
        raise AssertionError(f"Expected 2 ranks, got {world_size}")
    torch.set_num_threads(1)
    args = ReportGenerationArguments(
        model_name_or_path=cli.merit,
        language_model_name_or_path=cli.language_model,
        output_dir=str(cli.output_dir),
        data_dir=str(REPO_ROOT / "data" / "ptbxl-sample"),
        cache_dir=cli.cache_dir,
        max_report_tokens=16,
        lora_rank=4,
        lora_alpha=8,
        lora_dropout=0.0,
        projector_learning_rate=0.05,
        lora_learning_rate=2.0,  # large, so that the merged adapters change the weights measurably
        config_overrides='{"num_prefix_tokens": 2, "projector_hidden_size": 64}',
    )
    torch.manual_seed(0)
    model, processor, _ = build_model_and_processor(args)
    model.train()
    if rank != 0:
        dist.barrier()  # rank 0 prepares the Arrow cache first
    splits, _ = load_report_splits(args)
    if rank == 0:
        dist.barrier()
    train = splits["train"].select(range(GLOBAL_BATCH * STEPS)).with_format("numpy")
    collator = ReportCollator(
        processor, model.config.eos_token_id_for_generation, model.config.pad_token_id_for_generation, 16
    )
    batches = [collator([train[i] for i in range(s * GLOBAL_BATCH, (s + 1) * GLOBAL_BATCH)]) for s in range(STEPS)]
    initial = copy.deepcopy(model)

    # one process: the mean of the two halves' losses (what 2 ranks optimise), nothing gathered across ranks
    reference = copy.deepcopy(initial)
    optimizer = new_optimizer(reference, args)
    reference_losses = []
    with mock.patch.object(dist, "is_initialized", return_value=False):
        for batch in batches:
            loss = sum(reference(**half).loss for half in halves(batch)) / 2
            step(reference, optimizer, loss, args.max_grad_norm)
            reference_losses.append(loss.item())

    wrap_classes = fsdp_wrap_classes(FSDP_CONFIG)
    sharded = shard_model(copy.deepcopy(initial), wrap_classes)
    local_numel = sum(parameter.to_local().numel() for parameter in sharded.parameters())
    total_numel = sum(parameter.numel() for parameter in sharded.parameters())
    optimizer = new_optimizer(sharded, args)
    sharded_losses = []
    for batch in batches:
        loss = sharded(**halves(batch)[rank]).loss
        step(sharded, optimizer, loss, args.max_grad_norm)
        averaged = loss.detach().clone()
        dist.all_reduce(averaged)
        sharded_losses.append(averaged.item() / world_size)
    gathered = full_state_dict(sharded)

    result = {
        "rank": rank,
        "world_size": world_size,
        "wrap_classes": wrap_classes,
        "num_wrapped_layers": sum(type(module).__name__.startswith("FSDP") for module in sharded.modules()),
        "local_parameter_fraction": local_numel / total_numel,
        "trainable_parameters": sum(p.numel() for p in sharded.parameters() if p.requires_grad),
        "reference_losses": reference_losses,
        "sharded_losses": sharded_losses,
    }
    export = cli.output_dir / "export"
    if rank == 0:  # the gathered weights exist on rank 0 only
        plain = unsharded_copy(sharded, gathered)
        reference_trainable, sharded_trainable = trainable_state(reference), trainable_state(plain)
        result["max_trainable_difference"] = max(
            (reference_trainable[name] - sharded_trainable[name]).abs().max().item() for name in reference_trainable
        )
        result["lora_b_moved"] = max(
            tensor.abs().max().item() for name, tensor in sharded_trainable.items() if "lora_B" in name
        )
        plain.save_pretrained(export)  # as train_merit.py saves: adapters merged into a copy
        processor.save_pretrained(export)
        with safe_open(export / "model.safetensors", "pt") as saved:
            saved_keys = list(saved.keys())
        result["saved_lora_keys"] = [key for key in saved_keys if "lora_" in key]
        result["saved_files"] = sorted(path.name for path in export.iterdir())
        merged_reference = copy.deepcopy(reference)
        merged_reference.merge_lora()
        loaded = AutoModel.from_pretrained(export)  # strict: a missing or unmerged weight raises
        loaded_state, expected_state = loaded.state_dict(), merged_reference.state_dict()
        result["loaded_class"] = type(loaded).__name__
        result["loaded_keys_match"] = loaded_state.keys() == expected_state.keys()
        # parameters only: the projector's BatchNorm running statistics are each rank's own (rank 0's are saved),
        # while the one-process reference updated them with both halves
        parameter_names = [name for name, _ in merged_reference.named_parameters()]
        result["max_loaded_parameter_difference"] = max(
            ((loaded_state[name] - expected_state[name]).abs().max().item(), name) for name in parameter_names
        )
        result["buffers_differing"] = sorted(
            name
            for name in expected_state.keys() - set(parameter_names)
            if not torch.allclose(loaded_state[name].double(), expected_state[name].double(), atol=1e-5)
        )
        base = initial.language_model.get_base_model().model.layers[0].self_attn.q_proj.base_layer.weight
        result["merged_q_proj_change"] = (
            (loaded.language_model.model.layers[0].self_attn.q_proj.weight - base).abs().max().item()
        )
    dist.barrier()
    (cli.output_dir / f"result-{rank}.json").write_text(json.dumps(result, indent=2))
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
