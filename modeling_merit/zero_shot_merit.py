# Copyright 2026 The MERIT authors.
# Licensed under the Apache License, Version 2.0.
"""Zero-shot ECG classification with the MERIT dual encoder: prompts, class embeddings and scores.

This is the one implementation used by `eval_merit.py --task zero-shot` (through `merit_evaluation.zero_shot` and
`merit_evaluation.prompts`) and by the `zero-shot-ecg-classification` pipeline (`pipeline_merit.py`), so that a
checkpoint scores an ECG the same way in both. It lives in `modeling_merit/` because checkpoints carry this folder for
`trust_remote_code`.

1. Every class description is put into every template (`build_class_prompts`), e.g. `"ECG showing {description}."`.
2. Each prompt is embedded with the text tower (`get_text_features`) and L2-normalised; the prompts of a class are
   averaged and normalised again into one class embedding (`embed_class_prompts`).
3. The score of an ECG for a class is `(1 + cosine) / 2` of its normalised ECG embedding (`get_ecg_features`) and the
   class embedding (`zero_shot_scores`): in [0, 1], monotone in the cosine, one score per class (not a softmax over
   the classes, so scores of several classes can all be high or all be low).
"""

from __future__ import annotations

import string
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F


DEFAULT_TEMPLATES = [
    "{description}",
    "ECG showing {description}.",
    "12-lead ECG with {description}.",
    "The electrocardiogram shows {description}.",
    "Findings consistent with {description}.",
]
"""Templates with one `{description}` field; the embeddings of all of a class's prompts are averaged."""


def check_templates(templates: Sequence[str]) -> None:
    """Raises a `ValueError` unless `templates` is a non-empty list of strings with exactly one `{description}`."""
    if isinstance(templates, str) or not isinstance(templates, Sequence) or len(templates) == 0:
        raise ValueError(f"`templates` must be a non-empty list of strings, got {templates!r}.")
    for template in templates:
        if not isinstance(template, str):
            raise ValueError(f"Every template must be a string, got {template!r}.")
        fields = [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]
        if fields != ["description"]:
            raise ValueError(
                f"Template {template!r} must contain exactly one `{{description}}` field (a pipeline's "
                f"`hypothesis_template` may write it `{{}}`), got {fields}."
            )


def build_class_prompts(
    class_descriptions: dict[str, str], templates: Sequence[str] = DEFAULT_TEMPLATES
) -> dict[str, list[str]]:
    """Fill every template with every class description.

    Args:
        class_descriptions (`dict[str, str]`): class name -> description (e.g. `{"AFIB": "atrial fibrillation"}`).
        templates (`list[str]`, defaults to `DEFAULT_TEMPLATES`): templates with one `{description}` field.

    Returns:
        `dict[str, list[str]]`: class name -> one prompt per template, in the order of `class_descriptions`.
    """
    check_templates(templates)
    prompts = {}
    for class_name, description in class_descriptions.items():
        if not isinstance(description, str) or not description.strip():
            raise ValueError(f"Class {class_name!r} has no description (got {description!r}).")
        prompts[class_name] = [template.format(description=description.strip()) for template in templates]
    return prompts


def embed_class_prompts(model, processor, prompts: dict[str, list[str]]) -> torch.Tensor:
    """One unit-norm text embedding per class: the normalised mean of its normalised prompt embeddings.

    Args:
        model (`MeritModel`): the dual encoder (its text tower and text projection, through `get_text_features`).
        processor (`MeritProcessor`): the checkpoint's processor (tokenizer and `max_text_length`).
        prompts (`dict[str, list[str]]`): class name -> prompts (`build_class_prompts`).

    Returns:
        `torch.FloatTensor` of shape `(n_classes, projection_dim)` on the model's device, rows in the order of
        `prompts`.
    """
    if not prompts:
        raise ValueError("`prompts` is empty; expected at least one class.")
    device = next(model.parameters()).device
    embeddings = []
    with torch.inference_mode():
        for class_name, class_prompt_list in prompts.items():
            if not class_prompt_list:
                raise ValueError(f"Class {class_name!r} has no prompt.")
            tokens = processor(text=list(class_prompt_list), return_tensors="pt")
            tokens = {name: value.to(device) for name, value in tokens.items()}
            prompt_embeddings = F.normalize(model.get_text_features(**tokens).float(), dim=-1)
            embeddings.append(F.normalize(prompt_embeddings.mean(dim=0), dim=-1))
    return torch.stack(embeddings)


def zero_shot_scores(ecg_embeddings: np.ndarray, class_embeddings: np.ndarray) -> np.ndarray:
    """`(1 + cosine) / 2` between every record and every class.

    Args:
        ecg_embeddings (`np.ndarray` of shape `(n_records, dim)`): unit-norm ECG embeddings.
        class_embeddings (`np.ndarray` of shape `(n_classes, dim)`): unit-norm class embeddings.

    Returns:
        `np.ndarray` of shape `(n_records, n_classes)` in [0, 1], float64.
    """
    ecg_embeddings = np.asarray(ecg_embeddings, dtype=np.float64)
    class_embeddings = np.asarray(class_embeddings, dtype=np.float64)
    if ecg_embeddings.ndim != 2 or class_embeddings.ndim != 2 or ecg_embeddings.shape[1] != class_embeddings.shape[1]:
        raise ValueError(
            f"Expected embeddings of shapes (n_records, dim) and (n_classes, dim), got {ecg_embeddings.shape} and "
            f"{class_embeddings.shape}."
        )
    cosine = ecg_embeddings @ class_embeddings.T
    return np.clip((1.0 + cosine) / 2.0, 0.0, 1.0)


__all__ = ["DEFAULT_TEMPLATES", "build_class_prompts", "check_templates", "embed_class_prompts", "zero_shot_scores"]
