# Copyright 2026 The MERIT authors.
# Licensed under the Apache License, Version 2.0.
"""The one training loop of the evaluation harness: epochs with early stopping on a validation score.

Linear probes (a head on frozen features) and fine-tuning (the whole `MeritForECGClassification`) both train
through `train_with_early_stopping`. After every epoch it asks a callback for the validation score (macro AUROC),
keeps a copy of the best weights, stops after `patience` epochs without improvement, and restores the best
weights at the end, so the epoch is chosen on the validation split only.
"""

from __future__ import annotations

import copy
import logging
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import torch
from tqdm.auto import tqdm


logger = logging.getLogger(__name__)


@dataclass
class EarlyStoppingResult:
    """What `train_with_early_stopping` did.

    Attributes:
        best_epoch (`int`): 1-based epoch whose weights were restored.
        best_score (`float`): its validation score.
        epochs_run (`int`): epochs trained before stopping.
        validation_scores (`list[float]`): the validation score after each epoch.
    """

    best_epoch: int
    best_score: float
    epochs_run: int
    validation_scores: list[float] = field(default_factory=list)


def train_with_early_stopping(
    model: torch.nn.Module,
    train_batches: Iterable,
    compute_loss: Callable[[object], torch.Tensor],
    validation_score: Callable[[], float],
    optimizer: torch.optim.Optimizer,
    epochs: int,
    patience: int,
    description: str = "Training",
) -> EarlyStoppingResult:
    """Train `model` for at most `epochs` epochs, keeping the weights of the best validation epoch.

    Args:
        model (`torch.nn.Module`): the trained module; its `state_dict` is what is kept and restored.
        train_batches (`Iterable`): re-iterable over the training batches of one epoch (e.g. a `DataLoader`).
        compute_loss (`Callable`): batch -> scalar loss tensor (the model is in training mode).
        validation_score (`Callable`): () -> validation score, higher is better (the model is in eval mode).
        optimizer (`torch.optim.Optimizer`): optimiser of the model's trainable parameters.
        epochs (`int`): maximum number of epochs, >= 1.
        patience (`int`): stop after this many epochs without a better validation score, >= 1.
        description (`str`): progress-bar label.

    Returns:
        `EarlyStoppingResult`; the model holds the best epoch's weights, in eval mode.
    """
    if epochs < 1 or patience < 1:
        raise ValueError(f"`epochs` and `patience` must be >= 1, got epochs={epochs}, patience={patience}.")
    best_score, best_epoch, best_state = -math.inf, 0, None
    scores = []
    progress = tqdm(range(1, epochs + 1), desc=description, leave=False)
    for epoch in progress:
        model.train()
        for batch in train_batches:
            optimizer.zero_grad(set_to_none=True)
            loss = compute_loss(batch)
            loss.backward()
            optimizer.step()
        model.eval()
        with torch.inference_mode():
            score = float(validation_score())
        if math.isnan(score):
            raise ValueError(f"{description}: the validation score of epoch {epoch} is NaN.")
        scores.append(score)
        progress.set_postfix(validation=f"{score:.4f}", best=f"{max(best_score, score):.4f}", refresh=False)
        if score > best_score:
            best_score, best_epoch = score, epoch
            best_state = copy.deepcopy({name: value.detach().cpu() for name, value in model.state_dict().items()})
        elif epoch - best_epoch >= patience:
            break
    progress.close()
    model.load_state_dict(best_state)
    model.eval()
    logger.info("%s: best validation score %.4f at epoch %d of %d.", description, best_score, best_epoch, len(scores))
    return EarlyStoppingResult(
        best_epoch=best_epoch, best_score=best_score, epochs_run=len(scores), validation_scores=scores
    )
