# Copyright 2026 The MERIT authors.
# Licensed under the Apache License, Version 2.0.
"""Filling the model card template `merit_training/model_card.md` (package data, shipped with the package).

The template holds `{{name}}` placeholders (listed in `MODEL_CARD_PLACEHOLDERS`) and a block of notes for whoever
fills it, between `TEMPLATE_NOTES_START` and `TEMPLATE_NOTES_END`. The training script fills it once per
checkpoint with `fill_model_card_template` (the architecture and preprocessing sections come from
`describe_architecture` and `describe_preprocessing`, so they always state what the saved config and processor
do); `eval_merit.py --model_card` later fills the results table and the `model-index` metadata
(`merit_evaluation.results.update_model_card`). Training and evaluation both import this module, so it lives in
`merit_training`, below `merit_evaluation` in the import layers.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path


MODEL_CARD_TEMPLATE_PATH = Path(__file__).resolve().parent / "model_card.md"
"""The template, next to this module (package data: `setup.cfg` ships every `*.md` of the packages)."""

TEMPLATE_NOTES_START = "<!-- template-notes-start"
TEMPLATE_NOTES_END = "template-notes-end -->"

MODEL_CARD_PLACEHOLDERS = {
    "model_id": "Hub repository id or local name of the checkpoint, e.g. `merit-ecg/merit-small-mimic`.",
    "pretraining_dataset_id": "Hub id (or name) of the pretraining dataset, for the `datasets:` metadata.",
    "architecture": "`describe_architecture(model.config)`.",
    "preprocessing": "`describe_preprocessing(processor.feature_extractor)`.",
    "training_data": "What the checkpoint was pretrained on: dataset, version, records, split (markdown).",
    "training_configuration": "The training script's settings: preset, steps, batch size, optimiser, schedule, "
    "loss weights, hardware, duration (markdown).",
}
"""Every placeholder of `model_card.md` and what fills it."""

_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


def template_placeholders(template: str) -> set[str]:
    """Names of the `{{name}}` placeholders in a template text (outside the notes block)."""
    return set(_PLACEHOLDER.findall(_without_notes(template)))


def _without_notes(template: str) -> str:
    start = template.find(TEMPLATE_NOTES_START)
    if start == -1:
        return template
    end = template.find(TEMPLATE_NOTES_END, start)
    if end == -1:
        raise ValueError(
            f"The template opens `{TEMPLATE_NOTES_START}` but never closes it with `{TEMPLATE_NOTES_END}`."
        )
    return template[:start] + template[end + len(TEMPLATE_NOTES_END) :].lstrip("\n")


def fill_model_card_template(template: str, values: Mapping[str, str]) -> str:
    """Replace every `{{name}}` of the template and drop its notes block.

    Args:
        template (`str`): the template text (e.g. `MODEL_CARD_TEMPLATE_PATH.read_text()`).
        values (`Mapping[str, str]`): a value for every placeholder of the template, and nothing else.

    Returns:
        `str`: the model card text, ready for `huggingface_hub.ModelCard`.
    """
    body = _without_notes(template)
    names = set(_PLACEHOLDER.findall(body))
    missing = sorted(names - set(values))
    unknown = sorted(set(values) - names)
    if missing or unknown:
        raise ValueError(
            f"Model card values do not match the template's placeholders: missing {missing}, unknown {unknown} "
            f"(placeholders: {sorted(names)})."
        )
    return _PLACEHOLDER.sub(lambda match: str(values[match.group(1)]).strip(), body)


def describe_architecture(config) -> str:
    """A markdown list describing a `MeritConfig`'s towers, from the config itself."""
    ecg = config.ecg_config
    text = config.text_config
    return "\n".join(
        [
            f"- ECG encoder: per-lead patch transformer, {ecg.num_leads} leads x {ecg.num_samples} samples "
            f"({ecg.duration:g} s at {ecg.sampling_rate} Hz), patches of {ecg.patch_size} samples; hidden size "
            f"{ecg.hidden_size}, {ecg.num_hidden_layers} layers, {ecg.num_attention_heads} heads.",
            f"- Masked ECG modelling: mask ratio {ecg.mask_ratio}, {ecg.decoder_mode} decoder "
            f"({ecg.decoder_hidden_size} hidden, {ecg.decoder_num_hidden_layers} layers), "
            f"{'per-patch normalised' if ecg.norm_patch_loss else 'raw'} reconstruction target.",
            f"- Text encoder: {text.model_type} (hidden size {text.hidden_size}, {text.num_hidden_layers} layers), "
            f"{config.text_pooling} pooling, frozen: {config.text_freeze}.",
            f"- Shared embedding space: {config.projection_dim} dimensions; projections: ECG "
            f"{config.projection_head}, text {describe_text_projection(config)}; contrastive view: "
            f"{describe_contrastive_view(config)}; loss weights: reconstruction {config.reconstruction_loss_weight}, "
            f"contrastive {config.contrastive_loss_weight}.",
        ]
    )


def describe_text_projection(config) -> str:
    """The text side's projection head, e.g. `standardize (no weights: the frozen text space, centred and scaled)`."""
    head = config.resolved_text_projection_head
    return f"{head} (no weights: the frozen text space, centred and scaled)" if head == "standardize" else head


def describe_contrastive_view(config) -> str:
    """The ECG view a pretraining config aligns with the reports, e.g. `full, 50 % of each lead's patches (drawn at
    random) in training`; lead dropout and time shift, when set, are named too."""
    if config.contrastive_view != "full":
        return config.contrastive_view
    ratio = getattr(config, "contrastive_patch_keep_ratio", 1.0)
    lead_dropout = getattr(config, "contrastive_lead_dropout", 0.0)
    augmentations = [f"{100 * ratio:g} % of each lead's patches (drawn at random)"] if ratio < 1 else []
    if lead_dropout > 0:
        augmentations.append(f"each lead hidden with probability {lead_dropout:g}")
    time_shift = getattr(config, "contrastive_time_shift", 0.0)
    if time_shift > 0:
        augmentations.append(f"rolled in time by up to {100 * time_shift:g} % of the record")
    return ", ".join(["full", *augmentations]) + (" in training" if augmentations else "")


def describe_preprocessing(feature_extractor) -> str:
    """A markdown list of what a `MeritFeatureExtractor` does, in order, from its saved configuration."""
    bandpass = feature_extractor.bandpass
    filtering = (
        f"zero-phase Butterworth band-pass {bandpass[0]:g}-{bandpass[1]:g} Hz "
        f"(order {feature_extractor.filter_order}, applied forwards and backwards)"
        if bandpass is not None
        else "no band-pass filter"
    )
    return "\n".join(
        [
            f"- Leads matched by name (case-insensitive) to {', '.join(feature_extractor.lead_names)}; absent leads "
            "are zero-filled and flagged 0 in `lead_mask`.",
            f"- Non-finite samples filled by `{feature_extractor.nan_policy}`.",
            f"- Resampled to {feature_extractor.sampling_rate:g} Hz (polyphase filter).",
            f"- {filtering[0].upper()}{filtering[1:]}.",
            f"- Cropped ({feature_extractor.crop}) or end-padded with {feature_extractor.padding_value:g} to "
            f"{feature_extractor.num_samples} samples.",
            f"- Scaling: `{feature_extractor.scaling}`.",
            "- Always preprocess through the checkpoint's processor: "
            "`AutoProcessor.from_pretrained(<checkpoint>)(ecg=..., sampling_rate=..., lead_names=...)`.",
        ]
    )
