# Copyright 2026 The MERIT authors.
# Licensed under the Apache License, Version 2.0.
"""Zero-shot classification with the MERIT dual encoder.

The computation (prompts, class embeddings, scores) lives in `modeling_merit.zero_shot_merit`, shared with the
`zero-shot-ecg-classification` pipeline. Every class gets several prompts (`merit_evaluation.prompts.class_prompts`:
in the `--prompt_style` chosen, or the `--prompts FILE.json` override). Each prompt is embedded with the text tower
(`MeritModel.get_text_features`), L2-normalised, and the prompts of a class are averaged and normalised again into
one class embedding. Class embeddings are computed once per (text tower weights, tokenizer settings, prompt set) and
cached in memory and, optionally, as `.npy` files.

The score of a record for a class is the cosine similarity of its ECG embedding (`ecg_projection` of the pooled
ECG features) and the class embedding, mapped to [0, 1] as `(1 + cosine) / 2`. The map is monotone, so AUROC is
that of the cosine itself; it only puts the scores on the [0, 1] scale of the Fmax threshold grid. No training
label is used. Decision thresholds for macro F1 are fitted on the validation split like for every other task.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from modeling_merit.zero_shot_merit import embed_class_prompts, zero_shot_scores

from .harness import EvaluationHarness
from .results import ResultRow


logger = logging.getLogger(__name__)


def text_tower_fingerprint(model, tokenizer) -> str:
    """SHA-256 over everything a class embedding depends on: the text tower and projection weights, the text
    pooling, and the tokenizer's vocabulary size, class and maximum length."""
    digest = hashlib.sha256()
    for module_name in ("text_model", "text_projection"):
        for name, tensor in getattr(model, module_name).state_dict().items():
            digest.update(f"{module_name}.{name}:{tuple(tensor.shape)}:{tensor.dtype}".encode())
            digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    settings = [model.config.text_pooling, type(tokenizer).__name__, len(tokenizer), tokenizer.model_max_length]
    digest.update(json.dumps(settings).encode())
    return digest.hexdigest()


class ClassEmbeddingCache:
    """Class embeddings keyed by text-tower fingerprint and prompt set: in memory, and as `<key>.npy` files in
    `directory` when given (so later runs with the same model and prompts reuse them).

    Args:
        directory (`str` or `os.PathLike`, *optional*): folder of the `.npy` files.
    """

    def __init__(self, directory: str | os.PathLike | None = None):
        self.directory = None if directory is None else Path(directory)
        self._memory: dict[str, np.ndarray] = {}

    @staticmethod
    def key(fingerprint: str, prompts: dict[str, list[str]]) -> str:
        """Cache key of a text tower (`text_tower_fingerprint`) and a prompt set."""
        content = json.dumps({"text_tower": fingerprint, "prompts": prompts}, sort_keys=False, ensure_ascii=True)
        return hashlib.sha256(content.encode()).hexdigest()[:32]

    def get(self, key: str) -> np.ndarray | None:
        """The cached embeddings of `key`, or `None`."""
        if key not in self._memory and self.directory is not None and (self.directory / f"{key}.npy").is_file():
            self._memory[key] = np.load(self.directory / f"{key}.npy")
            logger.info("Loaded cached class embeddings %s from %s", key, self.directory)
        return self._memory.get(key)

    def put(self, key: str, embeddings: np.ndarray) -> None:
        """Store embeddings in memory and, with a directory, on disk."""
        self._memory[key] = embeddings
        if self.directory is not None:
            self.directory.mkdir(parents=True, exist_ok=True)
            np.save(self.directory / f"{key}.npy", embeddings)


def class_text_embeddings(
    model,
    processor,
    prompts: dict[str, list[str]],
    device: str | torch.device,
    cache: ClassEmbeddingCache | None = None,
) -> np.ndarray:
    """One unit-norm text embedding per class: the normalised mean of its normalised prompt embeddings.

    Args:
        model (`MeritModel`): the dual encoder (its text tower and `text_projection`).
        processor (`MeritProcessor`): the checkpoint's processor (tokenizer and `max_text_length`).
        prompts (`dict[str, list[str]]`): class name -> prompts (`merit_evaluation.prompts.class_prompts`).
        device (`str` or `torch.device`): where the text tower runs.
        cache (`ClassEmbeddingCache`, *optional*): reuse / store the result.

    Returns:
        `np.ndarray` of shape `(n_classes, projection_dim)`, float32, rows in the order of `prompts`.
    """
    key = None
    if cache is not None:
        key = ClassEmbeddingCache.key(text_tower_fingerprint(model, processor.tokenizer), prompts)
        cached = cache.get(key)
        if cached is not None:
            return cached
    model.eval().to(device)
    embeddings = embed_class_prompts(model, processor, prompts).cpu().numpy()
    if cache is not None:
        cache.put(key, embeddings)
    return embeddings


def project_ecg_features(model, pooled_features: np.ndarray) -> np.ndarray:
    """Unit-norm ECG embeddings `(n_records, projection_dim)` from pooled features `(n_records, hidden_size)`:
    `normalize(model.ecg_projection(pooled))`, i.e. `MeritModel.get_ecg_features`, normalised. The projection (a
    `Linear`, or an MLP whose batch norm then uses its running statistics) runs in evaluation mode."""
    projection = model.ecg_projection
    parameter = next(projection.parameters())
    was_training = projection.training
    projection.eval()
    try:
        with torch.inference_mode():
            pooled = torch.as_tensor(pooled_features, dtype=parameter.dtype, device=parameter.device)
            return F.normalize(projection(pooled), dim=-1).float().cpu().numpy()
    finally:
        projection.train(was_training)


def run_zero_shot(
    harness: EvaluationHarness,
    dual_model,
    processor,
    prompts: dict[str, list[str]],
    seeds: list[int],
    cache: ClassEmbeddingCache | None = None,
) -> list[ResultRow]:
    """The zero-shot task: thresholds on the validation split, then the test split once; one row per seed (the
    seed only changes the bootstrap resamples, the scores are deterministic).

    Args:
        harness (`EvaluationHarness`): the run's data, caches and rules.
        dual_model (`MeritModel`): the checkpoint's dual encoder; its ECG tower is cached as `"merit"`.
        processor (`MeritProcessor`): the checkpoint's processor (with its tokenizer).
        prompts (`dict[str, list[str]]`): class prompts in the order of `harness.class_names`.
        seeds (`list[int]`): bootstrap seeds.
        cache (`ClassEmbeddingCache`, *optional*): class-embedding cache.

    Returns:
        `list[ResultRow]` with `fraction=1.0` (no training label is used).
    """
    if list(prompts) != list(harness.class_names):
        raise ValueError(f"Prompts are given for {list(prompts)}, but the classes are {harness.class_names}.")
    class_embeddings = class_text_embeddings(dual_model, processor, prompts, harness.device, cache)

    def scores(split: str) -> np.ndarray:
        pooled = harness.features("merit", dual_model.ecg_model, split)
        return zero_shot_scores(project_ecg_features(dual_model, pooled), class_embeddings)

    thresholds = harness.fit_thresholds(scores("validation"))
    test_scores = scores("test")
    return [harness.test_row(test_scores, thresholds, task="zero-shot", fraction=1.0, seed=seed) for seed in seeds]
