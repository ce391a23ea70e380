# Copyright 2026 The MERIT authors. Licensed under the Apache License, Version 2.0.
"""
Two-process check of MERIT's distributed contrastive loss, launched by `tests/test_train_distributed.py`:

    ACCELERATE_USE_CPU=1 accelerate launch --config_file configs/accelerate/cpu_2_processes.yaml \
        tests/distributed_contrastive_check.py --output_dir /tmp/check

Every process holds half of one global batch of 8 synthetic ECG-report pairs, 4 of them without a report (1 on the
first process, 3 on the second) and two with the same report on different processes. The script checks that

1. the run really has 2 processes (gloo);
2. the contrastive loss with negatives gathered across the processes, averaged over the processes, equals the
   loss of one process on the whole batch;
3. the gradients after DDP averaging equal the single-process gradients of that global loss, and that gathering
   without gradient (only the local shard back-propagates) would NOT pass this check;
4. the same holds (losses, gradients, running statistics) with the weight-free text projection
   (`text_projection_head="standardize"`), whose batch statistics feed the text tower's gradients directly;
5. a model saved by the 2-process run loads with `AutoModelForPreTraining.from_pretrained`.

Each process writes `result-<rank>.json` as its very last action, so the caller can judge success by what was
written even if the interpreter aborts at exit (seen with gloo on CPU).
"""

import argparse
import copy
import json
from pathlib import Path
from unittest import mock

import torch
from accelerate import Accelerator
from transformers import AutoModelForPreTraining

from modeling_merit import MeritConfig, MeritForPreTraining


GLOBAL_BATCH = 8
TEXT_LENGTH = 12
LOSS_TOLERANCE = 1e-5
GRADIENT_TOLERANCE = 1e-5


def global_batch(config: MeritConfig) -> dict[str, torch.Tensor]:
    """The same synthetic batch on every process: ECGs `(8, L, T)`, reports `(8, 12)`, masking noise `(8, L, N)` and
    which records have a report `(8,)`."""
    ecg = config.ecg_config
    generator = torch.Generator().manual_seed(1234)
    input_ids = torch.randint(1000, 2000, (GLOBAL_BATCH, TEXT_LENGTH), generator=generator)
    attention_mask = torch.ones_like(input_ids)
    attention_mask[::2, TEXT_LENGTH // 2 :] = 0
    input_ids[6] = input_ids[0]  # the same report on both processes: not a negative of each other
    return {
        "input_values": torch.randn(GLOBAL_BATCH, ecg.num_leads, ecg.num_samples, generator=generator),
        "input_ids": input_ids,
        "attention_mask": attention_mask,
        "noise": torch.rand(GLOBAL_BATCH, ecg.num_leads, ecg.num_patches_per_lead, generator=generator),
        # records without a report: 1 on the first process, 3 on the second (per-rank counts differ)
        "report_mask": torch.tensor([True, False, True, True, False, False, True, False]),
    }


def single_process_reference(model: MeritForPreTraining, batch: dict[str, torch.Tensor]) -> tuple[dict, dict]:
    """Losses and gradients of one process on the whole batch (gathering switched off: nothing to gather)."""
    with mock.patch.object(torch.distributed, "is_initialized", return_value=False):
        output = model(**batch)
        output.loss.backward()
    losses = {"loss": output.loss.item(), "contrastive_loss": output.contrastive_loss.item()}
    gradients = {
        name: parameter.grad.clone() for name, parameter in model.named_parameters() if parameter.grad is not None
    }
    return losses, gradients


def distributed_losses_and_gradients(
    accelerator: Accelerator, model: MeritForPreTraining, batch: dict
) -> tuple[dict, dict]:
    """Losses averaged over the processes and DDP-averaged gradients, each process holding its slice of `batch`."""
    local_size = GLOBAL_BATCH // accelerator.num_processes
    start = accelerator.process_index * local_size
    local_batch = {name: tensor[start : start + local_size] for name, tensor in batch.items()}
    ddp_model = accelerator.prepare(model)
    output = ddp_model(**local_batch)
    if tuple(output.logits_per_ecg.shape) != (local_size, GLOBAL_BATCH):
        raise AssertionError(
            f"logits_per_ecg has shape {tuple(output.logits_per_ecg.shape)}, expected ({local_size}, {GLOBAL_BATCH})"
        )
    accelerator.backward(output.loss)
    local = torch.stack([output.loss.detach(), output.contrastive_loss.detach()])
    averaged = accelerator.reduce(local, reduction="mean")
    losses = {"loss": averaged[0].item(), "contrastive_loss": averaged[1].item()}
    unwrapped = accelerator.unwrap_model(ddp_model)
    gradients = {
        name: parameter.grad.clone() for name, parameter in unwrapped.named_parameters() if parameter.grad is not None
    }
    return losses, gradients


def largest_gradient_difference(reference: dict, candidate: dict) -> tuple[float, str]:
    """Largest absolute difference over all parameters, relative to the largest reference gradient entry."""
    if reference.keys() != candidate.keys():
        raise AssertionError(
            f"Different parameters received gradients: {sorted(reference.keys() ^ candidate.keys())[:5]}"
        )
    scale = max(gradient.abs().max().item() for gradient in reference.values())
    worst = max(((reference[name] - candidate[name]).abs().max().item(), name) for name in reference)
    return worst[0] / scale, worst[1]


def tiny_config(**overrides) -> MeritConfig:
    """The tiny preset with the full contrastive view and dropout off (the ECG tower has none by default), so that
    both computations see the same network; the masking is fixed by `noise`."""
    return MeritConfig.from_preset(
        "tiny",
        text_config={"hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0},
        contrastive_view="full",
        **overrides,
    )


def check_losses(label: str, reference: dict, distributed: dict) -> None:
    """Raises if the 2-process losses differ from one process's beyond `LOSS_TOLERANCE` (relative above 1)."""
    for name, value in reference.items():
        if abs(distributed[name] - value) > LOSS_TOLERANCE * max(1.0, abs(value)):
            raise AssertionError(f"{label}{name}: 2 processes give {distributed[name]}, one process {value}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output_dir", required=True, type=Path)
    args = parser.parse_args()

    accelerator = Accelerator(cpu=True)
    world_size = torch.distributed.get_world_size() if torch.distributed.is_initialized() else 1
    if accelerator.num_processes != 2 or world_size != 2:
        raise AssertionError(
            f"Expected 2 processes, got accelerator.num_processes={accelerator.num_processes}, world size {world_size}"
        )

    torch.manual_seed(0)
    config = tiny_config()
    model = MeritForPreTraining(config)
    batch = global_batch(config)

    reference_losses, reference_gradients = single_process_reference(copy.deepcopy(model), batch)
    without_grad_model = copy.deepcopy(model)
    without_grad_model.config.gather_with_grad = False
    distributed_losses, distributed_gradients = distributed_losses_and_gradients(accelerator, model, batch)

    # The same computation with local-only back-propagation must fail the gradient check (the check has teeth).
    _, local_only_gradients = distributed_losses_and_gradients(accelerator, without_grad_model, batch)

    gradient_error, worst_parameter = largest_gradient_difference(reference_gradients, distributed_gradients)
    local_only_error, _ = largest_gradient_difference(reference_gradients, local_only_gradients)
    check_losses("", reference_losses, distributed_losses)
    if gradient_error > GRADIENT_TOLERANCE:
        raise AssertionError(f"Gradients differ by {gradient_error:.2e} (relative) at {worst_parameter}")
    if local_only_error < 100 * GRADIENT_TOLERANCE:
        raise AssertionError(
            f"Local-only gathering matched the reference gradients ({local_only_error:.2e}); the check is blind"
        )

    # The weight-free text projection (the demo's `text_projection_head="standardize"`): its batch statistics, and the
    # gradients that flow through them into a trainable text tower, are those of the global batch too.
    torch.manual_seed(0)
    standardized = MeritForPreTraining(tiny_config(text_projection_head="standardize"))
    standardized_reference = copy.deepcopy(standardized)
    standardized_losses, standardized_gradients = single_process_reference(standardized_reference, batch)
    distributed_standardized_losses, distributed_standardized_gradients = distributed_losses_and_gradients(
        accelerator, standardized, batch
    )
    standardized_error, standardized_worst = largest_gradient_difference(
        standardized_gradients, distributed_standardized_gradients
    )
    one_process_norm = standardized_reference.merit.text_projection.norm
    two_process_norm = standardized.merit.text_projection.norm
    running_statistics_error = max(
        (getattr(one_process_norm, name) - getattr(two_process_norm, name)).abs().max().item()
        for name in ("running_mean", "running_var")
    )
    check_losses("standardize, ", standardized_losses, distributed_standardized_losses)
    if standardized_error > GRADIENT_TOLERANCE:
        raise AssertionError(f"standardize: gradients differ by {standardized_error:.2e} at {standardized_worst}")
    if running_statistics_error > LOSS_TOLERANCE:
        raise AssertionError(
            f"standardize: the running statistics differ by {running_statistics_error:.2e} from one process's"
        )

    # One optimizer step, then save from the 2-process run and load the result.
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    optimizer.step()
    checkpoint = args.output_dir / "checkpoint"
    accelerator.wait_for_everyone()
    accelerator.unwrap_model(model).save_pretrained(
        checkpoint, is_main_process=accelerator.is_main_process, save_function=accelerator.save
    )
    accelerator.wait_for_everyone()
    loaded = AutoModelForPreTraining.from_pretrained(checkpoint)
    mismatched = [
        name for name, tensor in loaded.state_dict().items() if not torch.equal(tensor, model.state_dict()[name])
    ]
    if mismatched:
        raise AssertionError(f"The saved checkpoint differs from the trained weights in {mismatched[:5]}")

    result = {
        "rank": accelerator.process_index,
        "world_size": world_size,
        "backend": torch.distributed.get_backend(),
        "reference_losses": reference_losses,
        "distributed_losses": distributed_losses,
        "relative_gradient_error": gradient_error,
        "local_only_relative_gradient_error": local_only_error,
        "standardized_relative_gradient_error": standardized_error,
        "standardized_running_statistics_error": running_statistics_error,
        "loaded_class": type(loaded).__name__,
    }
    accelerator.wait_for_everyone()
    (args.output_dir / f"result-{accelerator.process_index}.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
