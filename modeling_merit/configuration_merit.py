# Copyright 2026 The MERIT authors. Licensed under the Apache License, Version 2.0.
"""MERIT model configurations: the ECG tower (`MeritECGConfig`) and the ECG-text model (`MeritConfig`)."""

import copy
import math

from transformers import AutoConfig, PreTrainedConfig
from transformers.configuration_utils import SubConfigSpec
from transformers.utils import logging


logger = logging.get_logger(__name__)

CANONICAL_LEADS = ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")

# Sizes of the ECG tower per preset. `tiny` exists for tests; `compact` is the CPU demo's (a quarter of `small`'s
# encoder compute per token); `small` and `base` follow ST-MEM / ViT.
ECG_PRESETS = {
    "tiny": dict(
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=128,
        decoder_hidden_size=32,
        decoder_num_hidden_layers=1,
        decoder_num_attention_heads=2,
        decoder_intermediate_size=64,
    ),
    "compact": dict(
        hidden_size=256,
        num_hidden_layers=6,
        num_attention_heads=4,
        intermediate_size=1024,
        decoder_hidden_size=128,
        decoder_num_hidden_layers=2,
        decoder_num_attention_heads=4,
        decoder_intermediate_size=512,
    ),
    "small": dict(
        hidden_size=384,
        num_hidden_layers=12,
        num_attention_heads=6,
        intermediate_size=1536,
        decoder_hidden_size=256,
        decoder_num_hidden_layers=4,
        decoder_num_attention_heads=4,
        decoder_intermediate_size=1024,
    ),
    "base": dict(
        hidden_size=768,
        num_hidden_layers=12,
        num_attention_heads=12,
        intermediate_size=3072,
        decoder_hidden_size=256,
        decoder_num_hidden_layers=4,
        decoder_num_attention_heads=4,
        decoder_intermediate_size=1024,
    ),
}

# BERT-shaped text towers per preset (vocabulary of the uncased BERT WordPiece tokenizer, 30,522 tokens).
# `compact` and `small` have exactly the shape of all-MiniLM-L6-v2 so its pretrained weights can be loaded into them;
# `base` has the shape of BERT-base / MedCPT-Query-Encoder.
MINILM_L6_SHAPE = dict(
    model_type="bert",
    vocab_size=30522,
    hidden_size=384,
    num_hidden_layers=6,
    num_attention_heads=12,
    intermediate_size=1536,
    max_position_embeddings=512,
)
TEXT_PRESETS = {
    "tiny": dict(
        model_type="bert",
        vocab_size=30522,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
    ),
    "compact": MINILM_L6_SHAPE,
    "small": MINILM_L6_SHAPE,
    "base": dict(
        model_type="bert",
        vocab_size=30522,
        hidden_size=768,
        num_hidden_layers=12,
        num_attention_heads=12,
        intermediate_size=3072,
        max_position_embeddings=512,
    ),
}

PRESET_PROJECTION_DIM = {"tiny": 32, "compact": 256, "small": 256, "base": 256}

# Fields added after MERIT 0.1.0, with the values that rebuild a checkpoint saved before they existed (its
# config.json lacks them). Loading fills them in, so old checkpoints keep loading as what they were.
LEGACY_ECG_CONFIG_VALUES = {"patch_embedding_norm": "none"}
LEGACY_CONFIG_VALUES = {"projection_head": "linear"}


def _with_legacy_values(config_dict: dict, legacy_values: dict) -> dict:
    """`config_dict` with every field of `legacy_values` it lacks set to its legacy value."""
    return {**legacy_values, **config_dict}


PROJECTION_HEADS = ("mlp_bn", "linear")
TEXT_PROJECTION_HEADS = (*PROJECTION_HEADS, "standardize")
DECODER_MODES = ("axial", "joint", "lead_wise")


def _check_choice(field: str, value, allowed) -> None:
    if value not in allowed:
        raise ValueError(f"`{field}` must be one of {sorted(allowed)}, got {value!r}.")


def _check_positive_int(field: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"`{field}` must be a positive integer, got {value!r}.")


def _check_probability(field: str, value) -> None:
    if not 0.0 <= value < 1.0:
        raise ValueError(f"`{field}` must be in [0, 1), got {value!r}.")


def _check_divisible(field: str, value: int, divisor_field: str, divisor: int) -> None:
    if value % divisor != 0:
        raise ValueError(
            f"`{field}` ({value}) must be divisible by `{divisor_field}` ({divisor}); "
            f"the nearest valid values are {value - value % divisor} and {value - value % divisor + divisor}."
        )


def _unknown_preset(name: str, presets) -> ValueError:
    return ValueError(f"Unknown preset {name!r}; available presets: {sorted(presets)}.")


class MeritECGConfig(PreTrainedConfig):
    r"""
    Configuration of the MERIT ECG encoder ([`MeritECGModel`]) and of its masked-reconstruction decoder.

    The encoder is a per-lead patch transformer: every lead of a `(num_leads, num_samples)` ECG is cut into
    `num_samples // patch_size` non-overlapping patches embedded by one shared linear layer; each token gets a
    learnable embedding of its lead and a fixed sine-cosine embedding of its time position; a learnable separator
    token stands at both ends of each lead; one transformer runs over the tokens of all leads together. The pooled
    ECG representation is the mean of the (visible, present-lead) patch tokens followed by a LayerNorm.

    Args:
        num_leads (`int`, *optional*, defaults to 12):
            Number of ECG leads, in the canonical order I, II, III, aVR, aVL, aVF, V1-V6.
        sampling_rate (`int`, *optional*, defaults to 100):
            Sampling rate in Hz of the model input. The processor resamples every record to it.
        num_samples (`int`, *optional*, defaults to 1000):
            Number of samples per lead of the model input (10 s at 100 Hz). Must be divisible by `patch_size`.
        patch_size (`int`, *optional*, defaults to 50):
            Number of samples per patch (0.5 s at 100 Hz).
        hidden_size (`int`, *optional*, defaults to 384):
            Width of the encoder.
        num_hidden_layers (`int`, *optional*, defaults to 12):
            Number of encoder transformer layers.
        num_attention_heads (`int`, *optional*, defaults to 6):
            Number of attention heads per encoder layer; must divide `hidden_size`.
        intermediate_size (`int`, *optional*, defaults to 1536):
            Width of the encoder MLPs.
        hidden_act (`str`, *optional*, defaults to `"gelu"`):
            Activation of the MLPs (any key of `transformers.activations.ACT2FN`).
        hidden_dropout_prob (`float`, *optional*, defaults to 0.0):
            Dropout after the attention output projection and the MLPs.
        attention_probs_dropout_prob (`float`, *optional*, defaults to 0.0):
            Dropout on the attention probabilities.
        layer_norm_eps (`float`, *optional*, defaults to 1e-6):
            Epsilon of the LayerNorms.
        initializer_range (`float`, *optional*, defaults to 0.02):
            Standard deviation of the truncated-normal initialiser of the linear layers and learnable tokens.
        qkv_bias (`bool`, *optional*, defaults to `True`):
            Whether the query/key/value projections have a bias.
        decoder_hidden_size (`int`, *optional*, defaults to 256):
            Width of the masked-reconstruction decoder ([`MeritForPreTraining`] only).
        decoder_num_hidden_layers (`int`, *optional*, defaults to 4):
            Number of decoder transformer layers.
        decoder_num_attention_heads (`int`, *optional*, defaults to 4):
            Number of decoder attention heads; must divide `decoder_hidden_size`.
        decoder_intermediate_size (`int`, *optional*, defaults to 1024):
            Width of the decoder MLPs.
        decoder_mode (`str`, *optional*, defaults to `"lead_wise"`):
            `"lead_wise"` decodes each lead on its own (as ST-MEM does); `"joint"` decodes all leads in one sequence;
            `"axial"` alternates layers across the leads at one time position (a hidden patch then sees the other
            leads' visible patches of the same half second) and along the time of each lead, starting across.
        mask_ratio (`float`, *optional*, defaults to 0.75):
            Fraction of the patches of each lead hidden during masked ECG modelling, in [0, 1).
        norm_patch_loss (`bool`, *optional*, defaults to `False`):
            Whether the reconstruction target is each patch normalised by its own mean and variance
            (like ViT-MAE's `norm_pix_loss`) instead of the raw patch.
        patch_embedding_norm (`str`, *optional*, defaults to `"post"`):
            Normalisation around the linear patch embedding. `"post"`: `Linear -> LayerNorm(hidden)` (keeps each
            patch's offset and amplitude, which ST elevation and voltage criteria of hypertrophy are about);
            `"pre_and_post"`: `LayerNorm(patch) -> Linear -> LayerNorm(hidden)` (as ST-MEM; the patch's own mean and
            scale are removed before embedding); `"none"`: a bare `Linear` (MERIT 0.1.0). Without a norm after it, the content part of a token
            is ~5x smaller than its fixed time embedding at initialisation, mean pooling cancels it, and the pooled
            embeddings of different ECGs start with cosine 0.999: contrastive training then sits on a saddle.
            Checkpoints saved before this field existed load as `"none"`.

    Example:

    ```python
    >>> from modeling_merit import MeritECGConfig, MeritECGModel

    >>> config = MeritECGConfig.from_preset("tiny")
    >>> model = MeritECGModel(config)
    >>> config.num_patches_per_lead
    20

    ```"""

    model_type = "merit_ecg"
    base_config_key = "ecg_config"

    num_leads: int = 12
    sampling_rate: int = 100
    num_samples: int = 1000
    patch_size: int = 50
    hidden_size: int = 384
    num_hidden_layers: int = 12
    num_attention_heads: int = 6
    intermediate_size: int = 1536
    hidden_act: str = "gelu"
    hidden_dropout_prob: float | int = 0.0
    attention_probs_dropout_prob: float | int = 0.0
    layer_norm_eps: float = 1e-6
    initializer_range: float = 0.02
    qkv_bias: bool = True
    decoder_hidden_size: int = 256
    decoder_num_hidden_layers: int = 4
    decoder_num_attention_heads: int = 4
    decoder_intermediate_size: int = 1024
    decoder_mode: str = "lead_wise"
    mask_ratio: float | int = 0.75
    norm_patch_loss: bool = False
    patch_embedding_norm: str = "post"

    def __post_init__(self, **kwargs):
        for field in (
            "num_leads",
            "sampling_rate",
            "num_samples",
            "patch_size",
            "hidden_size",
            "num_hidden_layers",
            "num_attention_heads",
            "intermediate_size",
            "decoder_hidden_size",
            "decoder_num_hidden_layers",
            "decoder_num_attention_heads",
            "decoder_intermediate_size",
        ):
            _check_positive_int(field, getattr(self, field))
        _check_divisible("num_samples", self.num_samples, "patch_size", self.patch_size)
        _check_divisible("hidden_size", self.hidden_size, "num_attention_heads", self.num_attention_heads)
        _check_divisible(
            "decoder_hidden_size",
            self.decoder_hidden_size,
            "decoder_num_attention_heads",
            self.decoder_num_attention_heads,
        )
        _check_probability("mask_ratio", self.mask_ratio)
        _check_probability("hidden_dropout_prob", self.hidden_dropout_prob)
        _check_probability("attention_probs_dropout_prob", self.attention_probs_dropout_prob)
        _check_choice("decoder_mode", self.decoder_mode, DECODER_MODES)
        _check_choice("patch_embedding_norm", self.patch_embedding_norm, {"pre_and_post", "post", "none"})
        if self.num_patches_to_keep < 1:
            raise ValueError(
                f"`mask_ratio` ({self.mask_ratio}) leaves no visible patch out of the {self.num_patches_per_lead} "
                "patches of each lead; lower it or use smaller patches."
            )
        super().__post_init__(**kwargs)

    @classmethod
    def from_dict(cls, config_dict: dict, **kwargs) -> "MeritECGConfig":
        """`PreTrainedConfig.from_dict`; a saved config without the post-0.1.0 fields loads with their old behaviour."""
        return super().from_dict(_with_legacy_values(config_dict, LEGACY_ECG_CONFIG_VALUES), **kwargs)

    @property
    def num_patches_per_lead(self) -> int:
        """Number of patches each lead is cut into: `num_samples // patch_size`."""
        return self.num_samples // self.patch_size

    @property
    def num_patches_to_keep(self) -> int:
        """Number of visible patches per lead during masked ECG modelling."""
        return int(self.num_patches_per_lead * (1 - self.mask_ratio))

    @property
    def duration(self) -> float:
        """Length of the model input in seconds."""
        return self.num_samples / self.sampling_rate

    @classmethod
    def from_preset(cls, name: str, **overrides) -> "MeritECGConfig":
        """Builds the ECG config of a named preset (`tiny`, `compact`, `small`, `base`), with any field overridden."""
        if name not in ECG_PRESETS:
            raise _unknown_preset(name, ECG_PRESETS)
        return cls(**{**ECG_PRESETS[name], **overrides})


class MeritConfig(PreTrainedConfig):
    r"""
    Configuration of the MERIT ECG-text model ([`MeritModel`], [`MeritForPreTraining`],
    [`MeritForECGClassification`]): an ECG tower, any BERT-like text tower, their projections into a shared space
    and the weights of the two pretraining losses.

    Presets (`MeritConfig.from_preset(name, **overrides)`); parameter counts are those of [`MeritForPreTraining`]
    (ECG encoder / decoder / text tower / projections):

    | preset    | ECG encoder (hidden/layers/heads) | text tower | parameters |
    |-----------|-----------------------------------|------------|------------|
    | `tiny`    | 64 / 2 / 2                        | BERT 32 / 2 / 2 | 1.09 M (0.07 M / 0.01 M / 1.00 M / 8 K) |
    | `compact` | 256 / 6 / 4                       | MiniLM-L6 shape 384 / 6 / 12 | 28.1 M (4.8 M / 0.4 M / 22.6 M / 0.4 M) |
    | `small`   | 384 / 12 / 6                      | MiniLM-L6 shape 384 / 6 / 12 | 47.7 M (21.3 M / 3.3 M / 22.6 M / 0.5 M) |
    | `base`    | 768 / 12 / 12                     | BERT-base shape 768 / 12 / 12 | 199.0 M (85.1 M / 3.4 M / 108.9 M / 1.6 M) |

    `compact` is the CPU demo's ECG tower (`make demo`): about a quarter of `small`'s encoder compute per token.

    Args:
        ecg_config (`dict` or [`MeritECGConfig`], *optional*):
            Configuration of the ECG tower. Defaults to `MeritECGConfig()` (the `small` ECG tower).
        text_config (`dict` or [`PreTrainedConfig`], *optional*):
            Configuration of the text tower: any encoder `AutoConfig` (BERT-like). A dict must carry a `model_type`;
            defaults to a BERT with the shape of all-MiniLM-L6-v2.
        text_pooling (`str`, *optional*, defaults to `"mean"`):
            How a report is reduced to one vector: `"cls"` (first token), `"mean"` (mean of the non-padding tokens)
            or `"pooler"` (the text model's `pooler_output`).
        text_freeze (`str` or `int`, *optional*, defaults to `"none"`):
            Which text parameters `freeze_text_tower()` freezes by default (`requires_grad=False`, and no activations
            kept for them): `"none"`, `"all"` (the whole text model; the text projection stays trainable), or an
            integer `k` (the embeddings and the first `k` transformer layers). `train_merit.py` applies it.
        projection_dim (`int`, *optional*, defaults to 256):
            Dimension of the shared ECG-text embedding space.
        projection_head (`str`, *optional*, defaults to `"mlp_bn"`):
            How each tower's pooled features are projected into the shared space: `"mlp_bn"` (`Linear -> BatchNorm1d
            -> ReLU -> Linear`, as MERL; the batch normalisation removes the component that all records share, so
            the contrastive logits differ between records from the first step; converted to `SyncBatchNorm` by the
            training script in a distributed run) or `"linear"` (one bias-free `Linear`, as CLIP and MERIT 0.1.0).
            Checkpoints saved before this field existed load as `"linear"`.
        text_projection_head (`str`, *optional*):
            The text tower's projection, when it differs from `projection_head`: `"mlp_bn"`, `"linear"`, or
            `"standardize"` (no weights: each feature of the frozen text tower's pooled output centred and scaled by
            batch statistics, so the shared space is the text tower's own sentence space and only the ECG side
            learns; it needs `projection_dim` equal to the text model's `hidden_size`). Defaults to `projection_head`.
        logit_scale_init_value (`float`, *optional*, defaults to ln(1/0.2) = 1.6094):
            Initial value of the learnable log inverse temperature of the contrastive logits. CLIP's ln(1/0.07) suits
            batches of tens of thousands; with the excerpt's batches of 32 it made held-out predictions overconfident
            (validation contrastive loss 4.53 at step 120 against 4.06 with 0.2, chance 3.96).
        logit_scale_max (`float`, *optional*, defaults to ln(100) = 4.6052):
            The log inverse temperature is clamped to at most this value.
        reconstruction_loss_weight (`float`, *optional*, defaults to 1.0):
            Weight of the masked-reconstruction loss in the pretraining objective.
        contrastive_loss_weight (`float`, *optional*, defaults to 1.0):
            Weight of the ECG-text contrastive (InfoNCE) loss in the pretraining objective.
        contrastive_view (`str`, *optional*, defaults to `"masked"`):
            Which ECG embedding is aligned with the report during pretraining: `"masked"` (the pooled visible tokens
            of the masked pass, as in FLIP's masked contrastive training) or `"full"` (the unmasked ECG: one extra
            encoder pass, measured 2.6-2.8x the step time of `"masked"` for the `small` preset on CPU, see
            `benchmarks/bench_training.py`). The paper does not say which it uses.
        contrastive_patch_keep_ratio (`float`, *optional*, defaults to 1.0):
            With `contrastive_view="full"`, the fraction of each lead's patches the contrastive pass sees *in
            training*, drawn at random per lead and step (patch dropout: an augmentation of the contrastive view that
            also shortens its encoder pass, as in FLIP); at least one patch per lead. `1.0` = every patch. Inference
            and validation always encode every patch.
        contrastive_lead_dropout (`float`, *optional*, defaults to 0.0):
            With `contrastive_view="full"`, the probability that each recorded lead of a record is hidden from the
            contrastive pass *in training* (lead dropout: an augmentation of the contrastive view, as if the lead had
            not been recorded); a record keeps at least one lead. `0.0` = every lead. Inference and validation always
            encode every recorded lead. On the PTB-XL excerpt's validation fold 0.25 raised zero-shot a little and
            lowered retrieval (README, "Demo results"), so `train_merit.py` leaves it at 0.
        contrastive_time_shift (`float`, *optional*, defaults to 0.0):
            With `contrastive_view="full"`, the largest circular time shift of the contrastive pass's input *in
            training*, as a fraction of `ecg_config.num_samples`: each record is rolled along time by a whole number of
            samples drawn uniformly from [-s * num_samples, s * num_samples] (the same shift for all its leads, so the
            leads stay in step; the samples that leave one end re-enter at the other, end padding included). An
            augmentation of the contrastive view that moves the beats relative to the patch grid and the position
            embeddings. `0.0` = no shift. Inference and validation never shift. On the PTB-XL excerpt's validation
            fold neither 0.1 nor 0.5 helped (README, "Demo results"), so `train_merit.py` leaves it at 0. (No
            amplitude-scaling counterpart: the processor z-scores every lead by default, so no input varies in scale.)
        exclude_duplicate_reports (`bool`, *optional*, defaults to `True`):
            In the contrastive loss, a record whose report text is identical to the anchor's (same token ids) is not
            used as one of its negatives: it is the right answer, not a wrong one (false negatives; a third of the
            PTB-XL excerpt's training reports are one sentence). Each pair keeps its own positive.
        gather_with_grad (`bool`, *optional*, defaults to `True`):
            In a distributed run, gather the contrastive negatives of all processes with gradient, so the loss and
            gradients equal those of one process holding the whole global batch.
        classifier_dropout (`float`, *optional*, defaults to 0.0):
            Dropout before the classification head of [`MeritForECGClassification`].
        freeze_ecg_encoder (`bool`, *optional*, defaults to `False`):
            Linear probing: [`MeritForECGClassification`] trains only its head once `freeze_ecg_encoder()` is
            called (the evaluation scripts do).

    Example:

    ```python
    >>> from modeling_merit import MeritConfig, MeritModel

    >>> config = MeritConfig.from_preset("tiny", projection_dim=16)
    >>> model = MeritModel(config)
    >>> config.ecg_config.hidden_size, config.text_config.model_type
    (64, 'bert')

    ```"""

    model_type = "merit"
    sub_configs_defaults = {
        "ecg_config": MeritECGConfig,
        "text_config": SubConfigSpec(config_class=AutoConfig, model_type="bert", init_kwargs=TEXT_PRESETS["small"]),
    }

    ecg_config: dict | MeritECGConfig | None = None
    text_config: dict | PreTrainedConfig | None = None
    text_pooling: str = "mean"
    text_freeze: str | int = "none"
    projection_dim: int = 256
    projection_head: str = "mlp_bn"
    text_projection_head: str | None = None
    logit_scale_init_value: float = math.log(1 / 0.2)
    logit_scale_max: float = math.log(100.0)
    reconstruction_loss_weight: float | int = 1.0
    contrastive_loss_weight: float | int = 1.0
    contrastive_view: str = "masked"
    contrastive_patch_keep_ratio: float | int = 1.0
    contrastive_lead_dropout: float | int = 0.0
    contrastive_time_shift: float | int = 0.0
    exclude_duplicate_reports: bool = True
    gather_with_grad: bool = True
    classifier_dropout: float | int = 0.0
    freeze_ecg_encoder: bool = False

    @property
    def resolved_text_projection_head(self) -> str:
        """The text side's projection head: `text_projection_head`, or `projection_head` when it is unset."""
        return self.text_projection_head or self.projection_head

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        _check_choice("text_pooling", self.text_pooling, {"cls", "mean", "pooler"})
        if isinstance(self.text_freeze, int) and not isinstance(self.text_freeze, bool):
            num_text_layers = getattr(self.text_config, "num_hidden_layers", None)
            if self.text_freeze < 0 or (num_text_layers is not None and self.text_freeze > num_text_layers):
                raise ValueError(
                    f"`text_freeze` as a number of layers must be in [0, {num_text_layers}] "
                    f"(the text model's num_hidden_layers), got {self.text_freeze}."
                )
        else:
            _check_choice("text_freeze", self.text_freeze, {"none", "all"})
        _check_positive_int("projection_dim", self.projection_dim)
        _check_choice("projection_head", self.projection_head, set(PROJECTION_HEADS))
        if self.text_projection_head is not None:
            _check_choice("text_projection_head", self.text_projection_head, set(TEXT_PROJECTION_HEADS))
        text_width = getattr(self.text_config, "hidden_size", None)
        if (
            self.resolved_text_projection_head == "standardize"
            and text_width is not None
            and self.projection_dim != text_width
        ):
            raise ValueError(
                f"`text_projection_head='standardize'` keeps the text model's width, so `projection_dim` must equal "
                f"its hidden_size ({text_width}), got {self.projection_dim}; set `projection_dim={text_width}`, or "
                f"choose a text projection with weights (`text_projection_head='mlp_bn'`; train_merit.py "
                f"--text_projection_head mlp_bn)."
            )
        _check_choice("contrastive_view", self.contrastive_view, {"full", "masked"})
        if not 0 < self.contrastive_patch_keep_ratio <= 1:
            raise ValueError(
                f"`contrastive_patch_keep_ratio` must be in (0, 1] (the fraction of each lead's patches the "
                f"contrastive view keeps in training; 1 = all), got {self.contrastive_patch_keep_ratio!r}."
            )
        if not 0 <= self.contrastive_lead_dropout < 1:
            raise ValueError(
                f"`contrastive_lead_dropout` must be in [0, 1) (the probability that the contrastive view hides a "
                f"lead in training; 0 = none), got {self.contrastive_lead_dropout!r}."
            )
        if not 0 <= self.contrastive_time_shift <= 0.5:
            raise ValueError(
                f"`contrastive_time_shift` must be in [0, 0.5] (the largest circular shift of the contrastive view in "
                f"training, as a fraction of the record; 0 = none), got {self.contrastive_time_shift!r}."
            )
        for field in ("reconstruction_loss_weight", "contrastive_loss_weight"):
            if getattr(self, field) < 0:
                raise ValueError(f"`{field}` must be >= 0, got {getattr(self, field)!r}.")
        if self.reconstruction_loss_weight == 0 and self.contrastive_loss_weight == 0:
            raise ValueError("`reconstruction_loss_weight` and `contrastive_loss_weight` cannot both be 0.")
        if self.logit_scale_init_value > self.logit_scale_max:
            raise ValueError(
                f"`logit_scale_init_value` ({self.logit_scale_init_value}) exceeds `logit_scale_max` "
                f"({self.logit_scale_max})."
            )
        _check_probability("classifier_dropout", self.classifier_dropout)
        if not hasattr(self.text_config, "hidden_size"):
            raise ValueError(
                f"`text_config` must describe an encoder with a `hidden_size` (a BERT-like model), got "
                f"{type(self.text_config).__name__}."
            )

    @classmethod
    def from_dict(cls, config_dict: dict, **kwargs) -> "MeritConfig":
        """`PreTrainedConfig.from_dict`; a saved config without the post-0.1.0 fields loads with their old behaviour."""
        config_dict = _with_legacy_values(config_dict, LEGACY_CONFIG_VALUES)
        if isinstance(config_dict.get("ecg_config"), dict):
            config_dict["ecg_config"] = _with_legacy_values(config_dict["ecg_config"], LEGACY_ECG_CONFIG_VALUES)
        return super().from_dict(config_dict, **kwargs)

    @classmethod
    def from_preset(cls, name: str, **overrides) -> "MeritConfig":
        """
        Builds the config of a named preset (`tiny`, `compact`, `small`, `base`).

        Keyword overrides set top-level fields; `ecg_config=` and `text_config=` dicts are merged into the preset's
        tower configs, e.g. `MeritConfig.from_preset("small", ecg_config={"sampling_rate": 500, "num_samples": 5000,
        "patch_size": 100})`.
        """
        if name not in ECG_PRESETS:
            raise _unknown_preset(name, ECG_PRESETS)
        overrides = dict(overrides)
        ecg_config = {**ECG_PRESETS[name], **overrides.pop("ecg_config", {})}
        text_config = {**TEXT_PRESETS[name], **overrides.pop("text_config", {})}
        overrides.setdefault("projection_dim", PRESET_PROJECTION_DIM[name])
        return cls(ecg_config=ecg_config, text_config=copy.deepcopy(text_config), **overrides)


__all__ = ["MeritECGConfig", "MeritConfig", "CANONICAL_LEADS"]
