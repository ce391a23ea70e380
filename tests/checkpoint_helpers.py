# Copyright 2026 The MERIT authors.
# Licensed under the Apache License, Version 2.0.
"""Tiny random checkpoints the pipeline, limits, command-line, Space and evaluation tests build the same way."""

from pathlib import Path

import numpy as np
import torch

from merit_evaluation.harness import save_classifier
from modeling_merit import (
    MeritConfig,
    MeritForECGClassification,
    MeritForPreTraining,
    MeritForReportGeneration,
    MeritReportGenerationConfig,
)


SUPERCLASSES = ["CD", "HYP", "MI", "NORM", "STTC"]
SUPERCLASS_THRESHOLDS = np.array([0.2, 0.5, np.inf, 0.9, 0.45])
"""Validation thresholds of `save_tiny_superclass_classifier` (MI is never positive)."""


def save_tiny_dual_checkpoint(directory: Path, processor, seed: int = 0) -> Path:
    """A tiny random MERIT pretraining checkpoint (`seed` set just before it is built) saved with `processor`."""
    torch.manual_seed(seed)
    MeritForPreTraining(MeritConfig.from_preset("tiny")).save_pretrained(directory)
    processor.save_pretrained(directory)
    return directory


def save_tiny_superclass_classifier(directory: Path, processor, seed: int = 1) -> Path:
    """A tiny random classifier of the PTB-XL superclasses, saved by the evaluation code with
    `SUPERCLASS_THRESHOLDS`."""
    torch.manual_seed(seed)
    config = MeritConfig.from_preset(
        "tiny",
        problem_type="multi_label_classification",
        id2label=dict(enumerate(SUPERCLASSES)),
        label2id={name: index for index, name in enumerate(SUPERCLASSES)},
    )
    classifier = MeritForECGClassification(config).eval()
    return save_classifier(classifier, processor, SUPERCLASS_THRESHOLDS, directory)


def tiny_report_generator(tokenizer, seed: int, max_position_embeddings: int = 256) -> MeritForReportGeneration:
    """A tiny random report generator in eval mode, its prompt set: the tiny ECG encoder and a 2-layer Llama over
    `tokenizer`'s vocabulary (the MiniLM one in the tests)."""
    text_config = {
        "model_type": "llama", "vocab_size": len(tokenizer), "hidden_size": 32, "intermediate_size": 64,
        "num_hidden_layers": 2, "num_attention_heads": 2, "num_key_value_heads": 1,
        "max_position_embeddings": max_position_embeddings, "eos_token_id": tokenizer.sep_token_id,
        "pad_token_id": tokenizer.pad_token_id, "bos_token_id": None,
    }  # fmt: skip
    config = MeritReportGenerationConfig(
        ecg_config=MeritConfig.from_preset("tiny").ecg_config.to_dict(), text_config=text_config,
        projector_hidden_size=64,
    )  # fmt: skip
    torch.manual_seed(seed)
    model = MeritForReportGeneration(config).eval()
    model.set_prompt(tokenizer)
    return model
