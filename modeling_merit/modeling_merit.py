# Copyright 2026 The MERIT authors. Licensed under the Apache License, Version 2.0.
"""PyTorch MERIT: a per-lead patch transformer ECG encoder, pretrained by masked ECG modelling and ECG-report
contrastive alignment (arXiv 2605.27583).

Shape conventions used in the docstrings:
    B = batch size, L = number of leads (12), T = samples per lead (`config.num_samples`),
    P = `config.patch_size`, N = T // P patches per lead, K = visible patches per lead (N, or
    `config.num_patches_to_keep` when masking), S = L * (K + 2) encoder tokens (each lead: separator, K patches,
    separator), H = encoder width, E = `projection_dim`, A = attention heads.

Attention goes through the library's attention interface: `config._attn_implementation` (set with
`from_pretrained(..., attn_implementation="eager" | "sdpa")`) selects the kernel, and the default is SDPA. Per-layer
attention weights (`output_attentions=True`) need `"eager"`; SDPA computes none (the library then warns).
"""

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoModel, PreTrainedModel
from transformers import initialization as init
from transformers.activations import ACT2FN
from transformers.conversion_mapping import register_checkpoint_conversion_mapping
from transformers.core_model_loading import ConversionOps, WeightConverter, WeightRenaming
from transformers.masking_utils import create_bidirectional_mask
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import SequenceClassifierOutput
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS
from transformers.processing_utils import Unpack
from transformers.utils import ModelOutput, TransformersKwargs, logging
from transformers.utils.generic import can_return_tuple
from transformers.utils.output_capturing import capture_outputs

from .configuration_merit import MeritConfig, MeritECGConfig


logger = logging.get_logger(__name__)


# --------------------------------------------------------------------------------------------------------------------
# Outputs
# --------------------------------------------------------------------------------------------------------------------


@dataclass
class MeritECGModelOutput(ModelOutput):
    r"""
    last_hidden_state (`torch.FloatTensor` of shape `(B, S, H)`):
        Final (LayerNorm-ed) token states, lead-major: tokens `l * (K + 2)` to `(l + 1) * (K + 2) - 1` belong to lead
        `l`, the first and last of them being its separator tokens. Tokens of missing leads carry no meaning.
    pooler_output (`torch.FloatTensor` of shape `(B, H)`):
        Mean of the patch tokens of the present leads (separators excluded), followed by a LayerNorm.
    mask (`torch.FloatTensor` of shape `(B, L, N)`, *optional*):
        Returned when masking was applied: 1 for a hidden patch, 0 for a visible one.
    ids_restore (`torch.LongTensor` of shape `(B, L, N)`, *optional*):
        Returned when masking was applied: for each lead, the permutation that puts the shuffled patches back in
        time order.
    hidden_states (`tuple(torch.FloatTensor)`, *optional*, returned when `output_hidden_states=True`):
        The embeddings and the output of every layer (before the final LayerNorm), each `(B, S, H)`.
    attentions (`tuple(torch.FloatTensor)`, *optional*, returned when `output_attentions=True`):
        The attention probabilities of every layer, each `(B, A, S, S)`; keys of missing leads get 0. Only the eager
        attention implementation computes them.
    """

    last_hidden_state: torch.FloatTensor | None = None
    pooler_output: torch.FloatTensor | None = None
    mask: torch.FloatTensor | None = None
    ids_restore: torch.LongTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    attentions: tuple[torch.FloatTensor, ...] | None = None


@dataclass
class MeritOutput(ModelOutput):
    r"""
    loss (`torch.FloatTensor` of shape `()`, *optional*, returned when `return_loss=True`):
        Symmetric ECG-text contrastive loss (mean of the ECG->text and text->ECG cross-entropies).
    logits_per_ecg (`torch.FloatTensor` of shape `(B, B_all)`):
        Scaled cosine similarities between the ECGs of this batch and the reports of the (global, in a distributed
        run with `B_all = world_size * B`) batch.
    logits_per_text (`torch.FloatTensor` of shape `(B, B_all)`):
        Scaled cosine similarities between the reports of this batch and the ECGs of the (global) batch.
    ecg_embeds (`torch.FloatTensor` of shape `(B, E)`):
        L2-normalised projected ECG embeddings.
    text_embeds (`torch.FloatTensor` of shape `(B, E)`):
        L2-normalised projected report embeddings.
    ecg_model_output ([`MeritECGModelOutput`]):
        Output of the ECG tower (with its `hidden_states` / `attentions` when asked for).
    text_model_output (`ModelOutput`):
        Output of the text tower (with its `hidden_states` / `attentions` when asked for).
    """

    loss: torch.FloatTensor | None = None
    logits_per_ecg: torch.FloatTensor | None = None
    logits_per_text: torch.FloatTensor | None = None
    ecg_embeds: torch.FloatTensor | None = None
    text_embeds: torch.FloatTensor | None = None
    ecg_model_output: MeritECGModelOutput | None = None
    text_model_output: ModelOutput | None = None

    def to_tuple(self) -> tuple:
        # the nested tower outputs become tuples too, as in CLIPOutput
        return tuple(v.to_tuple() if isinstance(v, ModelOutput) else v for v in self.values())


@dataclass
class MeritForPreTrainingOutput(ModelOutput):
    r"""
    loss (`torch.FloatTensor` of shape `()`):
        `reconstruction_loss_weight * reconstruction_loss + contrastive_loss_weight * contrastive_loss` (the
        contrastive term only when reports were given).
    reconstruction_loss (`torch.FloatTensor` of shape `()`, *optional*):
        Mean squared error over the hidden patches of the present leads; `None` when
        `config.reconstruction_loss_weight` is 0.
    contrastive_loss (`torch.FloatTensor` of shape `()`, *optional*):
        Symmetric ECG-report InfoNCE loss on `config.contrastive_view`; `None` without reports or when
        `config.contrastive_loss_weight` is 0.
    logits_per_ecg (`torch.FloatTensor` of shape `(B, B_all)`, *optional*):
        See [`MeritOutput`].
    logits_per_text (`torch.FloatTensor` of shape `(B, B_all)`, *optional*):
        See [`MeritOutput`].
    ecg_embeds (`torch.FloatTensor` of shape `(B, E)`, *optional*):
        L2-normalised projected ECG embeddings of the contrastive view.
    text_embeds (`torch.FloatTensor` of shape `(B, E)`, *optional*):
        L2-normalised projected report embeddings.
    reconstruction (`torch.FloatTensor` of shape `(B, L, N, P)`, *optional*):
        Predicted patches (every patch, visible ones included; the loss uses the hidden ones); `None` when
        `config.reconstruction_loss_weight` is 0.
    mask (`torch.FloatTensor` of shape `(B, L, N)`):
        1 for a hidden patch, 0 for a visible one.
    hidden_states (`tuple(torch.FloatTensor)`, *optional*, returned when `output_hidden_states=True`):
        Those of the masked encoder pass (see [`MeritECGModelOutput`]), each `(B, S, H)` with `K` visible patches.
    attentions (`tuple(torch.FloatTensor)`, *optional*, returned when `output_attentions=True`):
        Those of the masked encoder pass, each `(B, A, S, S)`.
    """

    loss: torch.FloatTensor | None = None
    reconstruction_loss: torch.FloatTensor | None = None
    contrastive_loss: torch.FloatTensor | None = None
    logits_per_ecg: torch.FloatTensor | None = None
    logits_per_text: torch.FloatTensor | None = None
    ecg_embeds: torch.FloatTensor | None = None
    text_embeds: torch.FloatTensor | None = None
    reconstruction: torch.FloatTensor | None = None
    mask: torch.FloatTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    attentions: tuple[torch.FloatTensor, ...] | None = None


# --------------------------------------------------------------------------------------------------------------------
# Building blocks
# --------------------------------------------------------------------------------------------------------------------


def sincos_position_table(num_positions: int, dim: int) -> torch.Tensor:
    """Fixed 1-D sine-cosine position embeddings of shape `(num_positions, dim)` (`dim` must be even)."""
    if dim % 2 != 0:
        raise ValueError(f"Sine-cosine position embeddings need an even width, got {dim}.")
    positions = torch.arange(num_positions, dtype=torch.float64)[:, None]
    frequencies = 1.0 / 10000 ** (torch.arange(dim // 2, dtype=torch.float64) / (dim // 2))
    angles = positions * frequencies[None, :]
    return torch.cat([angles.sin(), angles.cos()], dim=1).float()


def random_lead_masking(
    num_leads_batch: tuple[int, int], num_patches: int, num_keep: int, noise: torch.Tensor | None, device
) -> tuple[torch.LongTensor, torch.FloatTensor, torch.LongTensor]:
    """
    Independent random masking of the patches of every lead.

    Args:
        num_leads_batch: `(B, L)`.
        num_patches: N, patches per lead.
        num_keep: K, visible patches per lead.
        noise (`torch.FloatTensor` of shape `(B, L, N)`, *optional*): the patches with the K smallest values stay
            visible; uniform random noise when `None`. Passing it makes masking deterministic.

    Returns:
        ids_keep `(B, L, K)` (indices of the visible patches, in time order), mask `(B, L, N)` (1 = hidden) and
        ids_restore `(B, L, N)`.
    """
    batch_size, num_leads = num_leads_batch
    if noise is None:
        noise = torch.rand(batch_size, num_leads, num_patches, device=device)
    elif noise.shape != (batch_size, num_leads, num_patches):
        raise ValueError(
            f"`noise` must have shape (batch, leads, patches) = {(batch_size, num_leads, num_patches)}, "
            f"got {tuple(noise.shape)}."
        )
    ids_shuffle = torch.argsort(noise.to(device), dim=-1)
    ids_restore = torch.argsort(ids_shuffle, dim=-1)
    mask = torch.ones(batch_size, num_leads, num_patches, device=device)
    mask.scatter_(-1, ids_shuffle[..., :num_keep], 0.0)
    return visible_patch_indices(mask, num_keep), mask, ids_restore


def visible_patch_indices(mask: torch.Tensor, num_keep: int) -> torch.LongTensor:
    """Indices `(B, L, K)` of the visible patches (mask == 0), in time order, from a `(B, L, N)` patch mask."""
    return torch.argsort(mask, dim=-1, stable=True)[..., :num_keep]


class MeritECGEmbeddings(nn.Module):
    """Patch, lead and time embeddings of the ECG tokens, plus the separator tokens at both ends of each lead."""

    def __init__(self, config: MeritECGConfig):
        super().__init__()
        self.config = config
        norm = config.patch_embedding_norm
        self.patch_norm = (
            nn.LayerNorm(config.patch_size, eps=config.layer_norm_eps) if norm == "pre_and_post" else None
        )
        self.patch_embedding = nn.Linear(config.patch_size, config.hidden_size)
        self.patch_embedding_norm = (
            nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps) if norm != "none" else None
        )
        self.lead_embedding = nn.Parameter(torch.zeros(config.num_leads, config.hidden_size))
        self.separator_token = nn.Parameter(torch.zeros(config.hidden_size))
        # positions 0 and N + 1 are the separators, 1..N the patches
        self.register_buffer(
            "time_position_embedding",
            sincos_position_table(config.num_patches_per_lead + 2, config.hidden_size),
            persistent=False,
        )

    def embed_patches(self, patches: torch.Tensor) -> torch.Tensor:
        """`(..., P)` patches -> `(..., H)` content embeddings, normalised as `config.patch_embedding_norm` says."""
        if self.patch_norm is not None:
            patches = self.patch_norm(patches)
        embedded = self.patch_embedding(patches)
        if self.patch_embedding_norm is not None:
            embedded = self.patch_embedding_norm(embedded)
        return embedded

    def forward(self, patches: torch.Tensor, ids_keep: torch.LongTensor | None = None) -> torch.Tensor:
        """
        Args:
            patches (`torch.FloatTensor` of shape `(B, L, N, P)`): the patchified ECG.
            ids_keep (`torch.LongTensor` of shape `(B, L, K)`, *optional*): visible patches; all when `None`.

        Returns:
            `torch.FloatTensor` of shape `(B, L, K + 2, H)`: per lead, separator, visible patches, separator.
        """
        batch_size, num_leads, num_patches, _ = patches.shape
        lead = self.lead_embedding[None, :, None, :]
        tokens = self.embed_patches(patches) + self.time_position_embedding[1 : num_patches + 1] + lead
        if ids_keep is not None:
            tokens = torch.gather(tokens, 2, ids_keep[..., None].expand(-1, -1, -1, tokens.shape[-1]))
        start = self.separator_token + self.time_position_embedding[0] + lead
        end = self.separator_token + self.time_position_embedding[num_patches + 1] + lead
        start = start.expand(batch_size, num_leads, 1, -1)
        end = end.expand(batch_size, num_leads, 1, -1)
        return torch.cat([start, tokens, end], dim=2)


def eager_attention_forward(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float,
    dropout: float = 0.0,
    **kwargs: Unpack[TransformersKwargs],
) -> tuple[torch.Tensor, torch.Tensor]:
    """
    Plain `softmax(Q K^T * scaling + mask) V`, the reference the other attention implementations must match.

    Args:
        query, key, value (`torch.FloatTensor` of shape `(B, A, S, D / A)`).
        attention_mask (`torch.FloatTensor` of shape `(B, 1, S, S)`, *optional*): additive (0 for a key that may be
            attended to, the dtype's minimum for one that may not), as `create_bidirectional_mask` makes it for
            `"eager"`.

    Returns:
        `(attn_output, attn_weights)`: `(B, S, A, D / A)` and the probabilities `(B, A, S, S)`.
    """
    attn_weights = torch.matmul(query, key.transpose(2, 3)) * scaling
    if attention_mask is not None:
        attn_weights = attn_weights + attention_mask
    attn_weights = F.softmax(attn_weights, dim=-1, dtype=torch.float32).to(query.dtype)
    attn_weights = F.dropout(attn_weights, p=dropout, training=module.training)
    attn_output = torch.matmul(attn_weights, value).transpose(1, 2).contiguous()
    return attn_output, attn_weights


class MeritAttention(nn.Module):
    """
    Multi-head self-attention over `(B, S, D)` tokens, computed by the kernel `config._attn_implementation` names
    (`ALL_ATTENTION_FUNCTIONS`; [`eager_attention_forward`] for `"eager"`).
    """

    def __init__(self, config: MeritECGConfig, hidden_size: int, num_heads: int):
        super().__init__()
        self.config = config
        self.num_heads = num_heads
        self.head_dim = hidden_size // num_heads
        self.scaling = self.head_dim**-0.5
        self.attention_dropout = config.attention_probs_dropout_prob
        self.is_causal = False  # read by the SDPA and flash kernels
        self.qkv = nn.Linear(hidden_size, 3 * hidden_size, bias=config.qkv_bias)
        self.output = nn.Linear(hidden_size, hidden_size)

    def forward(
        self,
        hidden_states: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """
        Args:
            hidden_states (`torch.FloatTensor` of shape `(B, S, D)`).
            attention_mask (*optional*): the mask `create_bidirectional_mask` made for the configured attention
                implementation (additive `(B, 1, S, S)` floats for eager, booleans for SDPA), or `None` (no padding).

        Returns:
            `(output, attn_weights)`: `(B, S, D)`, and the probabilities `(B, A, S, S)` (`None` unless eager).
        """
        batch_size, seq_len, _ = hidden_states.shape
        qkv = self.qkv(hidden_states).view(batch_size, seq_len, 3, self.num_heads, self.head_dim)
        query, key, value = qkv.permute(2, 0, 3, 1, 4).unbind(0)
        attention_interface: Callable = ALL_ATTENTION_FUNCTIONS.get_interface(
            self.config._attn_implementation, eager_attention_forward
        )
        attn_output, attn_weights = attention_interface(
            self,
            query,
            key,
            value,
            attention_mask,
            dropout=self.attention_dropout if self.training else 0.0,
            scaling=self.scaling,
            **kwargs,
        )
        attn_output = attn_output.reshape(batch_size, seq_len, -1).contiguous()
        return self.output(attn_output), attn_weights


class MeritLayer(GradientCheckpointingLayer):
    """Pre-norm transformer block (attention + MLP) used by the encoder and the decoder."""

    def __init__(self, config: MeritECGConfig, hidden_size: int, num_heads: int, intermediate_size: int):
        super().__init__()
        self.attention_norm = nn.LayerNorm(hidden_size, eps=config.layer_norm_eps)
        self.attention = MeritAttention(config, hidden_size, num_heads)
        self.mlp_norm = nn.LayerNorm(hidden_size, eps=config.layer_norm_eps)
        self.mlp_in = nn.Linear(hidden_size, intermediate_size)
        self.activation = ACT2FN[config.hidden_act]
        self.mlp_out = nn.Linear(intermediate_size, hidden_size)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(
        self,
        hidden_states: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> torch.Tensor:
        """`(B, S, D)` -> `(B, S, D)`; `attention_mask` as in [`MeritAttention`]."""
        attention_output, _ = self.attention(self.attention_norm(hidden_states), attention_mask, **kwargs)
        hidden_states = hidden_states + self.dropout(attention_output)
        mlp = self.mlp_out(self.activation(self.mlp_in(self.mlp_norm(hidden_states))))
        return hidden_states + self.dropout(mlp)


def lead_padding_mask(config: MeritECGConfig, hidden_states: torch.Tensor, token_lead_present: torch.Tensor):
    """
    The attention mask that keeps the tokens of missing leads out of the keys, in the form the configured attention
    implementation takes (see `create_bidirectional_mask`), or `None` when every lead is present.

    Args:
        hidden_states (`torch.FloatTensor` of shape `(B, S, D)`): the tokens (for the batch size, dtype and device).
        token_lead_present (`torch.BoolTensor` of shape `(B, S)`): True for a token of a present lead.
    """
    return create_bidirectional_mask(config=config, inputs_embeds=hidden_states, attention_mask=token_lead_present)


# --------------------------------------------------------------------------------------------------------------------
# Pretrained base
# --------------------------------------------------------------------------------------------------------------------


class MeritPreTrainedModel(PreTrainedModel):
    """Weight initialisation and loading conventions shared by the MERIT models."""

    config_class = MeritConfig
    base_model_prefix = "merit"
    main_input_name = "input_values"
    input_modalities = ("ecg", "text")
    supports_gradient_checkpointing = True
    _supports_sdpa = True
    _no_split_modules = ["MeritLayer"]
    # what `capture_outputs` (on MeritECGModel.forward) records for `output_hidden_states` / `output_attentions`
    _can_record_outputs = {"hidden_states": MeritLayer, "attentions": MeritAttention}

    def save_pretrained(self, save_directory, *args, **kwargs):
        """`PreTrainedModel.save_pretrained`, with an `auto_map` that names every MERIT Auto class of this config.

        `auto_map` otherwise records only the class being saved, so a pretraining checkpoint could not be opened
        with `AutoModel.from_pretrained(path, trust_remote_code=True)`.
        """
        if hasattr(self.config, "ecg_config"):  # a MeritConfig (duck-typed, see _init_weights)
            auto_map = {
                "AutoConfig": "configuration_merit.MeritConfig",
                "AutoModel": "modeling_merit.MeritModel",
                "AutoModelForPreTraining": "modeling_merit.MeritForPreTraining",
            }
        else:
            auto_map = {
                "AutoConfig": "configuration_merit.MeritECGConfig",
                "AutoModel": "modeling_merit.MeritECGModel",
            }
        self.config.auto_map = {**(getattr(self.config, "auto_map", None) or {}), **auto_map}
        from .pipeline_merit import add_pipelines_to_checkpoint  # lazy: transformers.pipelines is a slow import

        # custom_pipelines in config.json + pipeline/handler files
        add_pipelines_to_checkpoint(self, save_directory, kwargs.get("is_main_process", True))
        return super().save_pretrained(save_directory, *args, **kwargs)

    @torch.no_grad()
    def _init_weights(self, module):
        # duck-typed: under trust_remote_code the config class may come from another copy of configuration_merit
        ecg_config = getattr(self.config, "ecg_config", self.config)
        std = ecg_config.initializer_range
        if isinstance(module, nn.Linear):
            init.trunc_normal_(module.weight, std=std)
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, (nn.LayerNorm, nn.BatchNorm1d)):
            if module.weight is not None:  # a BatchNorm1d without affine parameters has none
                init.ones_(module.weight)
                init.zeros_(module.bias)
            if isinstance(module, nn.BatchNorm1d):
                init.zeros_(module.running_mean)
                init.ones_(module.running_var)
                init.zeros_(module.num_batches_tracked)
        elif isinstance(module, MeritECGEmbeddings):
            init.trunc_normal_(module.lead_embedding, std=std)
            init.trunc_normal_(module.separator_token, std=std)
            init.copy_(module.time_position_embedding, sincos_position_table(*module.time_position_embedding.shape))
        elif isinstance(module, MeritDecoder):
            init.trunc_normal_(module.mask_token, std=std)
            init.trunc_normal_(module.lead_embedding, std=std)
            init.copy_(module.time_position_embedding, sincos_position_table(*module.time_position_embedding.shape))
        elif isinstance(module, MeritModel):
            init.constant_(module.logit_scale, self.config.logit_scale_init_value)


# --------------------------------------------------------------------------------------------------------------------
# ECG tower
# --------------------------------------------------------------------------------------------------------------------

# Keys of a MERIT checkpoint that are not the ECG tower's: the ECG-only models leave them out without listing them.
# `merit.` is where MeritForPreTraining holds its MeritModel (checkpoints from before that have no prefix).
OTHER_TOWER_KEYS = [
    r"^(merit\.)?(text_model|text_projection|ecg_projection)\.",
    r"^(merit\.)?logit_scale$",
    r"^decoder\.",
]


class MeritECGModel(MeritPreTrainedModel):
    r"""
    The MERIT ECG encoder: a per-lead patch transformer over 12-lead ECGs of shape `(B, 12, num_samples)`.

    Tokens of missing leads (`lead_mask == 0`) are excluded from attention (as keys) and from pooling, and their
    input samples are replaced by zeros first, so whatever a missing lead contains cannot change the output.

    Example:

    ```python
    >>> import torch
    >>> from modeling_merit import MeritECGConfig, MeritECGModel

    >>> model = MeritECGModel(MeritECGConfig.from_preset("tiny"))
    >>> out = model(torch.randn(2, 12, 1000))
    >>> out.pooler_output.shape
    torch.Size([2, 64])

    ```
    """

    config_class = MeritECGConfig
    base_model_prefix = "ecg_model"
    input_modalities = ("ecg",)
    _keys_to_ignore_on_load_unexpected = OTHER_TOWER_KEYS + [r"^classifier\."]

    def __init__(self, config: MeritECGConfig):
        super().__init__(config)
        self.embeddings = MeritECGEmbeddings(config)
        self.layers = nn.ModuleList(
            MeritLayer(config, config.hidden_size, config.num_attention_heads, config.intermediate_size)
            for _ in range(config.num_hidden_layers)
        )
        self.layernorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.pooler_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.post_init()

    def patchify(self, input_values: torch.Tensor) -> torch.Tensor:
        """`(B, L, T)` -> `(B, L, N, P)`; raises a `ValueError` quoting expected vs actual sizes."""
        if input_values.dim() != 3:
            raise ValueError(
                f"`input_values` must have 3 dimensions (batch, leads, samples), got shape {tuple(input_values.shape)}."
            )
        _, num_leads, num_samples = input_values.shape
        if num_leads != self.config.num_leads or num_samples != self.config.num_samples:
            raise ValueError(
                f"`input_values` must have {self.config.num_leads} leads x {self.config.num_samples} samples "
                f"(config.num_leads x config.num_samples), got {num_leads} x {num_samples}. "
                "Use the MERIT processor to reorder, resample and crop/pad ECGs."
            )
        return input_values.unflatten(-1, (self.config.num_patches_per_lead, self.config.patch_size))

    def unpatchify(self, patches: torch.Tensor) -> torch.Tensor:
        """`(B, L, N, P)` -> `(B, L, T)`; raises a `ValueError` quoting expected vs actual sizes."""
        expected = (self.config.num_leads, self.config.num_patches_per_lead, self.config.patch_size)
        if patches.dim() != 4 or tuple(patches.shape[1:]) != expected:
            raise ValueError(
                f"`patches` must have shape (batch, {', '.join(map(str, expected))}), got {tuple(patches.shape)}."
            )
        return patches.flatten(-2)

    def _checked_lead_mask(self, input_values: torch.Tensor, lead_mask: torch.Tensor | None) -> torch.Tensor:
        """Validates `lead_mask` `(B, L)` and returns it as bool (all True when `None`)."""
        batch_size, num_leads = input_values.shape[:2]
        if lead_mask is None:
            return torch.ones(batch_size, num_leads, dtype=torch.bool, device=input_values.device)
        if tuple(lead_mask.shape) != (batch_size, num_leads):
            raise ValueError(
                f"`lead_mask` must have shape (batch, leads) = {(batch_size, num_leads)}, got {tuple(lead_mask.shape)}."
            )
        lead_mask = lead_mask.to(device=input_values.device).bool()
        # A check on tensor values cannot be part of an exported graph (torch.export / ONNX); there the caller's
        # preprocessing guarantees a lead per record (the feature extractor refuses records without one).
        if not torch.compiler.is_exporting() and not bool(lead_mask.any(dim=1).all()):
            empty = torch.nonzero(~lead_mask.any(dim=1)).flatten().tolist()
            raise ValueError(f"`lead_mask` marks every lead as missing for batch item(s) {empty}.")
        return lead_mask

    @capture_outputs(tie_last_hidden_states=False)
    def forward(
        self,
        input_values: torch.Tensor,
        lead_mask: torch.Tensor | None = None,
        apply_masking: bool = False,
        noise: torch.Tensor | None = None,
        num_patches_to_keep: int | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> MeritECGModelOutput:
        r"""
        Args:
            input_values (`torch.FloatTensor` of shape `(B, L, T)`):
                Preprocessed ECGs from [`MeritFeatureExtractor`] (canonical lead order, model rate and length).
            lead_mask (`torch.LongTensor` or `torch.BoolTensor` of shape `(B, L)`, *optional*):
                1 for a recorded lead, 0 for a missing one. All leads present when `None`.
            apply_masking (`bool`, *optional*, defaults to `False`):
                Hide `config.mask_ratio` of the patches of every lead (masked ECG modelling); the output then also
                has `mask` and `ids_restore`.
            noise (`torch.FloatTensor` of shape `(B, L, N)`, *optional*):
                Makes the masking deterministic (see [`random_lead_masking`]); implies `apply_masking=True`.
            num_patches_to_keep (`int`, *optional*):
                Visible patches per lead when masking; `config.num_patches_to_keep` (from `mask_ratio`) when `None`.
            output_hidden_states (`bool`, *optional*):
                Also return the input and output of every layer.
            output_attentions (`bool`, *optional*):
                Also return the attention probabilities of every layer (eager attention only).
            return_dict (`bool`, *optional*):
                Return a [`MeritECGModelOutput`] rather than a tuple.
        """
        patches = self.patchify(input_values)
        lead_mask = self._checked_lead_mask(input_values, lead_mask)
        patches = torch.where(
            lead_mask[:, :, None, None], patches, torch.zeros((), dtype=patches.dtype, device=patches.device)
        )
        batch_size, num_leads, num_patches, _ = patches.shape

        mask = ids_restore = ids_keep = None
        if apply_masking or noise is not None:
            if num_patches_to_keep is None:
                num_patches_to_keep = self.config.num_patches_to_keep
            elif not 1 <= num_patches_to_keep <= num_patches:
                raise ValueError(
                    f"`num_patches_to_keep` must be between 1 and the {num_patches} patches of a lead, got "
                    f"{num_patches_to_keep}."
                )
            ids_keep, mask, ids_restore = random_lead_masking(
                (batch_size, num_leads), num_patches, num_patches_to_keep, noise, patches.device
            )
        tokens = self.embeddings(patches, ids_keep)  # (B, L, K + 2, H)
        tokens_per_lead = tokens.shape[2]
        hidden_states = tokens.flatten(1, 2)
        token_present = lead_mask[:, :, None].expand(-1, -1, tokens_per_lead).flatten(1)
        attention_mask = lead_padding_mask(self.config, hidden_states, token_present)

        for layer in self.layers:
            hidden_states = layer(hidden_states, attention_mask, **kwargs)
        hidden_states = self.layernorm(hidden_states)

        patch_tokens = hidden_states.unflatten(1, (num_leads, tokens_per_lead))[:, :, 1:-1]  # (B, L, K, H)
        weights = lead_mask[:, :, None, None].to(patch_tokens.dtype)
        pooled = (patch_tokens * weights).sum(dim=(1, 2)) / (weights.sum(dim=(1, 2)) * patch_tokens.shape[2])
        pooled = self.pooler_norm(pooled)

        return MeritECGModelOutput(
            last_hidden_state=hidden_states, pooler_output=pooled, mask=mask, ids_restore=ids_restore
        )


# A checkpoint of MeritForPreTraining holds the ECG tower under `merit.ecg_model.`, one level deeper than the
# `base_model_prefix` the library adds or strips on its own; this renaming lets MeritECGModel and
# MeritForECGClassification read it. Scoped to the tower (keys already under its prefix are left alone), it does
# nothing to MeritModel / MeritForPreTraining, and its reverse (applied on save) matches no key, so it never changes
# what any model writes.
register_checkpoint_conversion_mapping(
    "MeritECGModel", [WeightRenaming(r"^merit\.ecg_model\.", "ecg_model.")], overwrite=True
)


class MeritDecoder(nn.Module):
    """Light transformer that reconstructs every patch from the visible tokens of the masked encoder pass."""

    def __init__(self, config: MeritECGConfig):
        super().__init__()
        self.config = config
        width = config.decoder_hidden_size
        self.embed = nn.Linear(config.hidden_size, width)
        self.mask_token = nn.Parameter(torch.zeros(width))
        self.lead_embedding = nn.Parameter(torch.zeros(config.num_leads, width))
        self.register_buffer(
            "time_position_embedding", sincos_position_table(config.num_patches_per_lead + 2, width), persistent=False
        )
        self.layers = nn.ModuleList(
            MeritLayer(config, width, config.decoder_num_attention_heads, config.decoder_intermediate_size)
            for _ in range(config.decoder_num_hidden_layers)
        )
        self.norm = nn.LayerNorm(width, eps=config.layer_norm_eps)
        self.prediction = nn.Linear(width, config.patch_size)

    def forward(
        self, encoder_hidden_states: torch.Tensor, ids_keep: torch.LongTensor, lead_mask: torch.Tensor
    ) -> torch.Tensor:
        """
        Args:
            encoder_hidden_states (`torch.FloatTensor` of shape `(B, S, H)`): output of the masked encoder pass.
            ids_keep (`torch.LongTensor` of shape `(B, L, K)`): the visible patches.
            lead_mask (`torch.BoolTensor` of shape `(B, L)`).

        Returns:
            `torch.FloatTensor` of shape `(B, L, N, P)`: the predicted patches.
        """
        batch_size, num_leads, num_keep = ids_keep.shape
        num_patches = self.config.num_patches_per_lead
        tokens = self.embed(encoder_hidden_states).unflatten(1, (num_leads, num_keep + 2))
        patches = self.mask_token.expand(batch_size, num_leads, num_patches, -1).clone()
        patches = patches.scatter(2, ids_keep[..., None].expand(-1, -1, -1, tokens.shape[-1]), tokens[:, :, 1:-1])
        hidden_states = torch.cat([tokens[:, :, :1], patches, tokens[:, :, -1:]], dim=2)
        hidden_states = hidden_states + self.time_position_embedding + self.lead_embedding[None, :, None, :]

        if self.config.decoder_mode == "axial":
            hidden_states = self._axial_layers(hidden_states, lead_mask)
        else:
            if self.config.decoder_mode == "lead_wise":
                hidden_states, attention_mask = hidden_states.flatten(0, 1), None
            else:
                hidden_states = hidden_states.flatten(1, 2)
                token_present = lead_mask[:, :, None].expand(-1, -1, num_patches + 2).flatten(1)
                attention_mask = lead_padding_mask(self.config, hidden_states, token_present)
            for layer in self.layers:
                hidden_states = layer(hidden_states, attention_mask)
        hidden_states = self.norm(hidden_states).reshape(batch_size, num_leads, num_patches + 2, -1)
        return self.prediction(hidden_states[:, :, 1:-1])

    def _axial_layers(self, hidden_states: torch.Tensor, lead_mask: torch.Tensor) -> torch.Tensor:
        """
        The layers of the `"axial"` decoder: even layers attend across the present leads at one time position (patch
        tokens only), odd layers along the time of one lead (with its separators).

        Args:
            hidden_states (`torch.FloatTensor` of shape `(B, L, N + 2, W)`).
            lead_mask (`torch.BoolTensor` of shape `(B, L)`).

        Returns:
            `torch.FloatTensor` of shape `(B, L, N + 2, W)`.
        """
        batch_size, num_leads, num_positions, _ = hidden_states.shape
        num_patches = num_positions - 2
        # (B N, L): which leads each time position's sequence may attend to
        lead_present = lead_mask[:, None, :].expand(-1, num_patches, -1).flatten(0, 1).bool()
        # one mask for every across-lead layer (None when every lead is present); built from a stand-in of the
        # layers' (B N, L, W) input, which the mask takes only for its shape, dtype and device
        stand_in = hidden_states.new_empty(1, 1, 1).expand(
            batch_size * num_patches, num_leads, hidden_states.shape[-1]
        )
        across_mask = lead_padding_mask(self.config, stand_in, lead_present)
        for index, layer in enumerate(self.layers):
            if index % 2 == 0:
                across_leads = hidden_states[:, :, 1:-1].transpose(1, 2).flatten(0, 1)  # (B N, L, W)
                patches = layer(across_leads, across_mask).unflatten(0, (batch_size, num_patches)).transpose(1, 2)
                hidden_states = torch.cat([hidden_states[:, :, :1], patches, hidden_states[:, :, -1:]], dim=2)
            else:
                hidden_states = layer(hidden_states.flatten(0, 1)).unflatten(0, (batch_size, num_leads))
        return hidden_states


# --------------------------------------------------------------------------------------------------------------------
# ECG-text model
# --------------------------------------------------------------------------------------------------------------------


def global_batch_norm(
    norm: nn.BatchNorm1d, features: torch.Tensor, row_mask: torch.Tensor | None = None
) -> torch.Tensor:
    """
    `norm` applied to `(B, D)` features; in training mode with the statistics of the global batch of a distributed run
    (gathered with gradient, like `SyncBatchNorm`, whose torch implementation refuses CPU tensors), so N processes
    compute exactly what one process holding the whole batch would. With `row_mask` `(B,)` (`True` = the record takes
    part, e.g. it has a report) the batch statistics are those of the records that take part (of the whole batch when
    fewer than 2 of the global batch do). In training mode the global batch needs at least 2 records.
    """
    if not norm.training:
        return norm(features)
    all_features, _ = gather_across_processes(features, with_grad=True)
    if row_mask is not None:
        all_rows, _ = gather_across_processes(row_mask.bool(), with_grad=False)
        if int(all_rows.sum()) >= 2:
            all_features = all_features[all_rows]
    elif all_features is features:
        return norm(features)
    mean = all_features.mean(dim=0)
    variance = all_features.var(dim=0, unbiased=False)
    with torch.no_grad():
        count = all_features.shape[0]
        norm.num_batches_tracked += 1
        norm.running_mean.lerp_(mean.detach(), norm.momentum)
        norm.running_var.lerp_(variance.detach() * count / max(count - 1, 1), norm.momentum)
    normalised = (features - mean) * torch.rsqrt(variance + norm.eps)
    return normalised * norm.weight + norm.bias if norm.affine else normalised


class MeritProjectionHead(nn.Module):
    """
    `Linear -> BatchNorm1d -> ReLU -> Linear` projection of pooled features `(B, D)` into the shared space `(B, E)`
    (`config.projection_head="mlp_bn"`). The batch normalisation centres every feature over the batch, so the
    component that all records share at initialisation cannot dominate the contrastive logits. Its statistics are
    those of the global batch of a distributed run ([`global_batch_norm`]).
    """

    def __init__(self, input_size: int, output_size: int):
        super().__init__()
        self.dense = nn.Linear(input_size, input_size, bias=False)
        self.norm = nn.BatchNorm1d(input_size)
        self.activation = nn.ReLU()
        self.output = nn.Linear(input_size, output_size)

    def forward(self, features: torch.Tensor, row_mask: torch.Tensor | None = None) -> torch.Tensor:
        """`(B, D)` -> `(B, E)`; `row_mask` `(B,)` as in [`global_batch_norm`]."""
        return self.output(self.activation(global_batch_norm(self.norm, self.dense(features), row_mask)))


class MeritStandardizationHead(nn.Module):
    """
    A projection without weights (`config.text_projection_head="standardize"`): each feature of `(B, D)` centred and
    scaled by batch statistics in training and by their running averages in evaluation (`BatchNorm1d` without affine
    parameters; global-batch statistics as in [`global_batch_norm`]). The output keeps the geometry of the frozen
    text tower's sentence space, minus the component that every report shares; only the other tower learns to meet it
    (as in locked-image tuning, LiT, with the locked side being the text).
    """

    def __init__(self, size: int):
        super().__init__()
        self.norm = nn.BatchNorm1d(size, affine=False)

    def forward(self, features: torch.Tensor, row_mask: torch.Tensor | None = None) -> torch.Tensor:
        """`(B, D)` -> `(B, D)`; `row_mask` `(B,)` as in [`global_batch_norm`]."""
        return global_batch_norm(self.norm, features, row_mask)


def project(projection: nn.Module, features: torch.Tensor, row_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Applies a projection of [`build_projection`] to `(B, D)` features; `row_mask` `(B,)` restricts the batch
    statistics of a [`MeritProjectionHead`] or [`MeritStandardizationHead`] to the records that take part (a linear
    projection has none)."""
    if isinstance(projection, (MeritProjectionHead, MeritStandardizationHead)):
        return projection(features, row_mask)
    return projection(features)


def build_projection(head: str, input_size: int, output_size: int) -> nn.Module:
    """
    The projection of one tower: `"mlp_bn"` ([`MeritProjectionHead`]), `"linear"` (bias-free `nn.Linear`) or
    `"standardize"` ([`MeritStandardizationHead`], which keeps `input_size`; `MeritConfig` requires `projection_dim`
    to equal the text width for it).
    """
    if head == "mlp_bn":
        return MeritProjectionHead(input_size, output_size)
    if head == "linear":
        return nn.Linear(input_size, output_size, bias=False)
    if head == "standardize":
        return MeritStandardizationHead(input_size)
    raise ValueError(f"A projection head must be 'mlp_bn', 'linear' or 'standardize', got {head!r}.")


def gather_across_processes(tensor: torch.Tensor, with_grad: bool) -> tuple[torch.Tensor, int]:
    """
    Concatenates `tensor` `(B, ...)` over the processes of a distributed run (equal `B` on every process).

    This is the only place the MERIT models touch `torch.distributed`: the contrastive negatives
    ([`contrastive_logits`]) and the batch statistics of [`MeritProjectionHead`] are gathered here, and outside a
    distributed run (or with one process) it is the identity.

    With `with_grad`, gradients flow back to every process's slice (differentiable functional all-gather); without it
    only this process's slice is differentiable. Returns the gathered `(world_size * B, ...)` tensor and this
    process's rank (0 and the input itself outside a distributed run).
    """
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return tensor, 0
    rank = dist.get_rank()
    if with_grad:
        from torch.distributed._functional_collectives import all_gather_single_autograd

        return all_gather_single_autograd(tensor.contiguous(), 0, dist.group.WORLD), rank
    gathered = [torch.empty_like(tensor) for _ in range(dist.get_world_size())]
    dist.all_gather(gathered, tensor.detach().contiguous())
    gathered[rank] = tensor
    return torch.cat(gathered, dim=0), rank


def contrastive_logits(
    ecg_embeds: torch.Tensor,
    text_embeds: torch.Tensor,
    logit_scale: torch.Tensor,
    gather_with_grad: bool = True,
    excluded: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """
    Scaled cosine similarities between L2-normalised ECG and report embeddings `(B, E)`; in a distributed run, the
    columns are the embeddings of every process. Entries where `excluded` `(B, B_all)` (from
    [`contrastive_exclusions`]) is `True` are `-inf`: those records are no candidates for that row.

    Returns `(logits_per_ecg, logits_per_text, rank)`: the logits of shape `(B, B_all)`, and this process's rank
    (its own pairs are columns `rank * B` to `(rank + 1) * B - 1`).
    """
    all_ecg, rank = gather_across_processes(ecg_embeds, gather_with_grad)
    all_text, _ = gather_across_processes(text_embeds, gather_with_grad)
    scale = logit_scale.exp()
    logits_per_ecg = scale * ecg_embeds @ all_text.t()
    logits_per_text = scale * text_embeds @ all_ecg.t()
    if excluded is not None:
        logits_per_ecg = logits_per_ecg.masked_fill(excluded, float("-inf"))
        logits_per_text = logits_per_text.masked_fill(excluded, float("-inf"))
    return logits_per_ecg, logits_per_text, rank


def report_keys(input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.LongTensor:
    """
    A 64-bit key per report `(B,)`: a polynomial hash of its token ids `(B, text_length)` (padding excluded), equal
    for identical reports whatever their padding, and different for different reports except with probability
    about 2**-64.
    """
    if attention_mask is None:
        attention_mask = torch.ones_like(input_ids)
    length = input_ids.shape[1]
    # odd multiplier, powers modulo 2**64 as signed int64: integer tensor arithmetic wraps around
    powers = [pow(0x9E3779B97F4A7C15, position + 1, 2**64) for position in range(length)]
    powers = torch.tensor([power - 2**64 if power >= 2**63 else power for power in powers], device=input_ids.device)
    tokens = (input_ids.long() + 1) * attention_mask.long()
    return (tokens * powers).sum(dim=1) + attention_mask.long().sum(dim=1)


def contrastive_exclusions(
    report_mask: torch.Tensor | None, keys: torch.LongTensor | None, batch_size: int
) -> tuple[torch.Tensor | None, torch.Tensor]:
    """
    Which pairs of the contrastive logits `(B, B_all)` are no candidates, and which rows of the global batch count.

    Column `j` is excluded from row `i` when record `j` has no report (`report_mask` `(B,)`, gathered over the
    processes), or when `j != i` and the two reports are identical (`keys` `(B,)` of [`report_keys`]; a false
    negative). A row's own pair is never excluded.

    Returns `(excluded, all_rows)`: `excluded` `(B, B_all)` (`None` when nothing is excluded) and `all_rows`
    `(B_all,)`, `True` for the records of the global batch that have a report.
    """
    device = keys.device if keys is not None else report_mask.device
    if report_mask is None:
        report_mask = torch.ones(batch_size, dtype=torch.bool, device=device)
    all_rows, rank = gather_across_processes(report_mask.bool(), with_grad=False)
    own = torch.arange(batch_size, device=device) + rank * batch_size
    excluded = ~all_rows[None, :].expand(batch_size, -1).clone()
    if keys is not None:
        all_keys, _ = gather_across_processes(keys, with_grad=False)
        excluded |= keys[:, None] == all_keys[None, :]
    excluded[torch.arange(batch_size, device=device), own] = False
    return (excluded if bool(excluded.any()) else None), all_rows


def contrastive_loss(
    logits_per_ecg: torch.Tensor,
    logits_per_text: torch.Tensor,
    rank: int = 0,
    all_rows: torch.Tensor | None = None,
) -> torch.Tensor:
    """
    Symmetric InfoNCE of the logits `(B, B_all)` of [`contrastive_logits`]: the mean of the ECG->text and text->ECG
    cross-entropies, pair `i` being the positive of row `i`.

    With `all_rows` `(B_all,)` (the records of the global batch that have a report), only those rows count and the
    mean is over all of them in the global batch: in a distributed run each process returns its rows' share scaled by
    the number of processes, so that the average over the processes (what DDP does to gradients) is the loss of one
    process holding the whole batch, whatever the number of reports on each process.
    """
    batch_size = logits_per_ecg.shape[0]
    targets = torch.arange(batch_size, device=logits_per_ecg.device) + rank * batch_size
    if all_rows is None:
        return (F.cross_entropy(logits_per_ecg, targets) + F.cross_entropy(logits_per_text, targets)) / 2
    rows = all_rows[rank * batch_size : (rank + 1) * batch_size]
    world_size = all_rows.shape[0] // batch_size
    per_row = (
        F.cross_entropy(logits_per_ecg, targets, reduction="none")
        + F.cross_entropy(logits_per_text, targets, reduction="none")
    ) / 2
    count = all_rows.sum()
    if int(count) == 0:  # no report in the global batch: a zero that keeps the graph (DDP needs every gradient)
        return logits_per_ecg.diagonal(offset=rank * batch_size).sum() * 0.0
    return per_row.masked_fill(~rows, 0.0).sum() * world_size / count


class LogitScaleAsVector(ConversionOps):
    """
    Loads a 0-d `logit_scale` (checkpoints written before it became a vector, tests/fixtures/merit-tiny-v0.*) as the 1-element vector of shape
    `(1,)` it is now (FSDP2's `fully_shard` shards along dim 0 and refuses 0-d parameters). A tensor already of shape
    `(1,)` passes unchanged, and saving writes the parameter as it is (the reverse is the identity).
    """

    @torch.no_grad()
    def convert(
        self,
        input_dict: dict[str, list[torch.Tensor]],
        source_patterns: list[str],
        target_patterns: list[str],
        **kwargs,
    ) -> dict[str, torch.Tensor]:
        tensors = next(iter(input_dict.values()))
        tensor = tensors[0] if isinstance(tensors, list) else tensors
        return {target_patterns[0]: tensor.reshape(1) if tensor.dim() == 0 else tensor}

    @property
    def reverse_op(self) -> ConversionOps:
        return _KeepAsSaved()


class _KeepAsSaved(ConversionOps):
    """The reverse of [`LogitScaleAsVector`] when saving: the tensor is written as the model holds it."""

    def convert(self, input_dict: dict, source_patterns: list[str], target_patterns: list[str], **kwargs) -> dict:
        tensors = next(iter(input_dict.values()))
        return {target_patterns[0]: tensors[0] if isinstance(tensors, list) else tensors}

    @property
    def reverse_op(self) -> ConversionOps:
        return LogitScaleAsVector()


def _logit_scale_as_vector_pre_hook(module, state_dict, prefix, *args) -> None:
    # the same conversion for `nn.Module.load_state_dict` (accelerate's `load_state` of a training checkpoint)
    key = prefix + "logit_scale"
    if key in state_dict and state_dict[key].dim() == 0:
        state_dict[key] = state_dict[key].reshape(1)


register_checkpoint_conversion_mapping(
    "MeritModel", [WeightConverter("logit_scale", "logit_scale", operations=[LogitScaleAsVector()])], overwrite=True
)


class MeritModel(MeritPreTrainedModel):
    r"""
    The MERIT dual encoder: the ECG tower, a BERT-like text tower and linear projections into a shared space,
    with a learnable temperature. `get_ecg_features` is what a downstream user of the ECG encoder needs.

    Nothing is frozen at construction or by `from_pretrained`; [`freeze_text_tower`] applies `config.text_freeze`.

    Example:

    ```python
    >>> import torch
    >>> from modeling_merit import MeritConfig, MeritModel

    >>> model = MeritModel(MeritConfig.from_preset("tiny"))
    >>> ecg = torch.randn(2, 12, 1000)
    >>> input_ids = torch.randint(1000, 2000, (2, 8))
    >>> out = model(input_values=ecg, input_ids=input_ids, return_loss=True)
    >>> out.logits_per_ecg.shape, out.loss.shape
    (torch.Size([2, 2]), torch.Size([]))

    ```
    """

    _keys_to_ignore_on_load_unexpected = [r"^decoder\."]

    def __init__(self, config: MeritConfig):
        super().__init__(config)
        self.ecg_model = MeritECGModel._from_config(config.ecg_config)
        self.text_model = AutoModel.from_config(config.text_config, **self._text_model_kwargs(config))
        self.ecg_projection = build_projection(
            config.projection_head, config.ecg_config.hidden_size, config.projection_dim
        )
        self.text_projection = build_projection(
            config.resolved_text_projection_head,
            config.text_config.hidden_size,
            config.projection_dim,
        )
        # shape (1,), not a 0-d scalar: FSDP2 (`fully_shard`) cannot shard 0-d parameters
        self.logit_scale = nn.Parameter(torch.tensor([config.logit_scale_init_value]))
        self.register_load_state_dict_pre_hook(_logit_scale_as_vector_pre_hook)
        self.enable_text_feature_cache(False)
        self.post_init()

    @staticmethod
    def _text_model_kwargs(config: MeritConfig) -> dict:
        # BERT-like models build a pooler by default; it must not exist unless it is used, or it would be a
        # parameter without gradient (DDP fails on those).
        if config.text_config.model_type in {"bert", "roberta", "xlm-roberta", "electra", "camembert"}:
            return {"add_pooling_layer": config.text_pooling == "pooler"}
        return {}

    # ------------------------------------------------------------------------------------------------ freezing

    def frozen_text_parameter_names(self, layers: str | int | None = None) -> list[str]:
        """
        Names (within `text_model`) of the text parameters that [`freeze_text_tower`] freezes for `layers`
        (default: `config.text_freeze`).
        """
        layers = self.config.text_freeze if layers is None else layers
        num_text_layers = getattr(self.config.text_config, "num_hidden_layers", None)
        is_layer_count = isinstance(layers, int) and not isinstance(layers, bool)
        in_range = is_layer_count and layers >= 0 and (num_text_layers is None or layers <= num_text_layers)
        if layers not in ("none", "all") and not in_range:
            raise ValueError(
                f"`layers` must be 'none', 'all' or a number of text layers in [0, {num_text_layers}] (the text "
                f"model's num_hidden_layers), got {layers!r}."
            )
        names = [name for name, _ in self.text_model.named_parameters()]
        if layers == "none":
            return []
        if layers == "all":
            return names
        prefixes = (self._text_embeddings_prefix(),) + tuple(
            f"{self._text_layers_prefix(layers)}.{index}." for index in range(layers)
        )
        return [name for name in names if name.startswith(prefixes)]

    def _text_embeddings_prefix(self) -> str:
        """Parameter-name prefix of the module holding the text input embeddings (e.g. `embeddings.` for BERT)."""
        word_embeddings = self.text_model.get_input_embeddings()
        module_name = next(name for name, module in self.text_model.named_modules() if module is word_embeddings)
        return (module_name.rsplit(".", 1)[0] if "." in module_name else module_name) + "."

    def _text_layers_prefix(self, layers: int) -> str:
        """Parameter-name prefix of the text transformer layers (e.g. `encoder.layer` for BERT)."""
        for prefix in ("encoder.layer", "encoder.layers", "layers", "transformer.layer"):
            module = self.text_model
            for part in prefix.split("."):
                module = getattr(module, part, None)
            if isinstance(module, nn.ModuleList):
                return prefix
        raise ValueError(
            f"Freezing the first {layers} text layers needs the transformer layers of the text model, but "
            f"{type(self.text_model).__name__} has none of encoder.layer / encoder.layers / layers / "
            "transformer.layer; use 'none' or 'all'."
        )

    def freeze_text_tower(self, layers: str | int | None = None) -> "MeritModel":
        """
        Freezes (`requires_grad=False`) part of the text tower and makes the rest of it trainable; the ECG tower, the
        projections and the temperature are left as they are. Frozen parameters take no gradient, and their
        activations are not kept for the backward pass.

        Loading re-creates every parameter trainable, so call it after `from_pretrained` as well as after
        construction; `train_merit.py` does so with the config's policy.

        Args:
            layers (`str` or `int`, *optional*): `"none"`, `"all"` (the whole text model), or `k` (the embeddings and
                the first `k` transformer layers). Defaults to `config.text_freeze`.

        Returns:
            The model itself (like `nn.Module.requires_grad_`).

        Example:

        ```python
        >>> from modeling_merit import MeritConfig, MeritModel

        >>> model = MeritModel(MeritConfig.from_preset("tiny", text_freeze=1)).freeze_text_tower()
        >>> sorted({name.split(".")[0] for name, p in model.text_model.named_parameters() if not p.requires_grad})
        ['embeddings', 'encoder']
        >>> model.freeze_text_tower("none").text_model.embeddings.word_embeddings.weight.requires_grad
        True

        ```
        """
        frozen = set(self.frozen_text_parameter_names(layers))
        for name, parameter in self.text_model.named_parameters():
            parameter.requires_grad_(name not in frozen)
        return self

    # ------------------------------------------------------------------------------------------------ features

    def get_ecg_features(
        self, input_values: torch.Tensor, lead_mask: torch.Tensor | None = None, **kwargs: Unpack[TransformersKwargs]
    ) -> torch.FloatTensor:
        """
        Projected, un-normalised ECG embeddings.

        Args:
            input_values (`torch.FloatTensor` of shape `(B, L, T)`): preprocessed ECGs.
            lead_mask (`torch.Tensor` of shape `(B, L)`, *optional*): 1 = recorded lead.

        Returns:
            `torch.FloatTensor` of shape `(B, E)`.
        """
        ecg_output = self.ecg_model(input_values, lead_mask=lead_mask, return_dict=True, **kwargs)
        return self.ecg_projection(ecg_output.pooler_output)

    def _pool_text(self, text_output: ModelOutput, attention_mask: torch.Tensor | None) -> torch.Tensor:
        if self.config.text_pooling == "pooler":
            return text_output.pooler_output
        hidden_states = text_output.last_hidden_state
        if self.config.text_pooling == "cls":
            return hidden_states[:, 0]
        if attention_mask is None:
            return hidden_states.mean(dim=1)
        weights = attention_mask[:, :, None].to(hidden_states.dtype)
        return (hidden_states * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)

    def _text_forward(
        self, input_ids, attention_mask=None, token_type_ids=None, **kwargs: Unpack[TransformersKwargs]
    ) -> tuple[ModelOutput, torch.Tensor]:
        """The text tower's output and the pooled report features `(B, H_text)` (`config.text_pooling`)."""
        if token_type_ids is not None:
            kwargs["token_type_ids"] = token_type_ids
        text_output = self.text_model(input_ids=input_ids, attention_mask=attention_mask, return_dict=True, **kwargs)
        return text_output, self._pool_text(text_output, attention_mask)

    def get_text_features(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
    ) -> torch.FloatTensor:
        """
        Projected, un-normalised report embeddings.

        Args:
            input_ids (`torch.LongTensor` of shape `(B, text_length)`): tokenised reports.
            attention_mask (`torch.Tensor` of shape `(B, text_length)`, *optional*): 1 = real token.

        Returns:
            `torch.FloatTensor` of shape `(B, E)`.
        """
        _, pooled = self._text_forward(input_ids, attention_mask, token_type_ids)
        return self.text_projection(pooled)

    def enable_text_feature_cache(self, enabled: bool = True) -> "MeritModel":
        """
        Switches the cache of [`pooled_text_features`] on (empty) or off. While the text tower is entirely frozen,
        each distinct report is then embedded once (in eval mode: no dropout; alone, without padding, so that its
        features do not depend on the batch it came in) and reused, e.g. every epoch of a pretraining run and in its
        validation; the cache empties itself when a text weight changes (loading, an in-place update). Its memory is
        one `H_text` vector per distinct report.
        """
        self._text_feature_cache = {} if enabled else None
        self._text_cache_versions = None
        return self

    def pooled_text_features(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
    ) -> torch.FloatTensor:
        """
        Pooled report features `(B, H_text)` (`config.text_pooling`, before the projection), from the cache of
        [`enable_text_feature_cache`] when it is on and no text parameter requires a gradient.
        """
        cache = getattr(self, "_text_feature_cache", None)
        text_parameters = list(self.text_model.parameters())
        if cache is None or any(parameter.requires_grad for parameter in text_parameters):
            return self._text_forward(input_ids, attention_mask, token_type_ids)[1]
        versions = tuple(parameter._version for parameter in text_parameters)
        if versions != self._text_cache_versions:
            cache.clear()
            self._text_cache_versions = versions
        mask = torch.ones_like(input_ids) if attention_mask is None else attention_mask
        types = torch.zeros_like(input_ids) if token_type_ids is None else token_type_ids
        keys = [
            (tuple(ids[row.bool()].tolist()), tuple(kinds[row.bool()].tolist()))
            for ids, kinds, row in zip(input_ids, types, mask)
        ]
        missing = list({key: index for index, key in enumerate(keys) if key not in cache}.values())
        if missing:
            was_training = self.text_model.training
            self.text_model.eval()
            with torch.no_grad():
                # one report at a time, without padding: its features do not depend on the batch it first came in,
                # so a resumed run (whose cache is filled by other batches) computes bitwise what an uninterrupted
                # one does
                for index in missing:
                    real = mask[index].bool()
                    cache[keys[index]] = self._text_forward(
                        input_ids[index][real][None],
                        mask[index][real][None],
                        None if token_type_ids is None else token_type_ids[index][real][None],
                    )[1][0]
            self.text_model.train(was_training)
        return torch.stack([cache[key] for key in keys])

    def clamped_logit_scale(self) -> torch.Tensor:
        """The log inverse temperature, clamped at `config.logit_scale_max`."""
        return self.logit_scale.clamp(max=self.config.logit_scale_max)

    def align(
        self,
        ecg_pooled: torch.Tensor,
        text_pooled: torch.Tensor,
        return_loss: bool = True,
        report_mask: torch.Tensor | None = None,
        keys: torch.LongTensor | None = None,
    ) -> tuple[torch.Tensor | None, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """
        Projects and L2-normalises pooled ECG `(B, H)` and report `(B, H_text)` features and computes their logits
        (negatives gathered across processes in a distributed run) and, with `return_loss`, the symmetric
        contrastive loss.

        `report_mask` `(B,)` (`True` = the record has a report) leaves report-less records out of the loss, the
        candidates and the projections' batch statistics; `keys` `(B,)` ([`report_keys`]) keeps identical reports
        from being each other's negatives (see [`contrastive_exclusions`]).

        Returns `(loss, logits_per_ecg, logits_per_text, ecg_embeds, text_embeds)`; `loss` is `None` without
        `return_loss`.
        """
        ecg_embeds = F.normalize(project(self.ecg_projection, ecg_pooled, report_mask), dim=-1)
        text_embeds = F.normalize(project(self.text_projection, text_pooled, report_mask), dim=-1)
        excluded = all_rows = None
        if report_mask is not None or keys is not None:
            excluded, all_rows = contrastive_exclusions(report_mask, keys, ecg_pooled.shape[0])
        logits_per_ecg, logits_per_text, rank = contrastive_logits(
            ecg_embeds, text_embeds, self.clamped_logit_scale(), self.config.gather_with_grad, excluded
        )
        loss = None
        if return_loss:
            loss = contrastive_loss(
                logits_per_ecg, logits_per_text, rank, all_rows if report_mask is not None else None
            )
        return loss, logits_per_ecg, logits_per_text, ecg_embeds, text_embeds

    @can_return_tuple
    def forward(
        self,
        input_values: torch.Tensor | None = None,
        input_ids: torch.Tensor | None = None,
        lead_mask: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        return_loss: bool | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> MeritOutput:
        r"""
        Args:
            input_values (`torch.FloatTensor` of shape `(B, L, T)`): preprocessed ECGs.
            input_ids (`torch.LongTensor` of shape `(B, text_length)`): tokenised reports.
            lead_mask (`torch.Tensor` of shape `(B, L)`, *optional*): 1 = recorded lead.
            attention_mask (`torch.Tensor` of shape `(B, text_length)`, *optional*): 1 = real token.
            token_type_ids (`torch.LongTensor` of shape `(B, text_length)`, *optional*).
            return_loss (`bool`, *optional*): also compute the symmetric contrastive loss.
            output_hidden_states, output_attentions (`bool`, *optional*): passed to both towers; their outputs are
                in `ecg_model_output` / `text_model_output`.
            return_dict (`bool`, *optional*): return a [`MeritOutput`] rather than a tuple.
        """
        if input_values is None or input_ids is None:
            raise ValueError("MeritModel.forward needs both `input_values` (ECGs) and `input_ids` (reports).")
        ecg_output = self.ecg_model(input_values, lead_mask=lead_mask, return_dict=True, **kwargs)
        text_output, text_pooled = self._text_forward(input_ids, attention_mask, token_type_ids, **kwargs)
        loss, logits_per_ecg, logits_per_text, ecg_embeds, text_embeds = self.align(
            ecg_output.pooler_output, text_pooled, return_loss=bool(return_loss)
        )
        return MeritOutput(
            loss=loss,
            logits_per_ecg=logits_per_ecg,
            logits_per_text=logits_per_text,
            ecg_embeds=ecg_embeds,
            text_embeds=text_embeds,
            ecg_model_output=ecg_output,
            text_model_output=text_output,
        )


class MeritForPreTraining(MeritPreTrainedModel):
    r"""
    MERIT pretraining: masked ECG modelling (per-lead random masking, a light decoder, MSE on the hidden patches)
    plus ECG-report contrastive alignment on `config.contrastive_view`, weighted by the config's loss weights.
    Without `input_ids` only the reconstruction loss is computed.

    It holds a [`MeritModel`] (`merit`, the weights under `merit.` in its checkpoints) and the reconstruction decoder
    (`decoder`). A checkpoint saved before it held one (MERIT <= 0.2, keys without `merit.`) loads as well: the
    library adds the `base_model_prefix` itself.

    Example:

    ```python
    >>> import torch
    >>> from modeling_merit import MeritConfig, MeritForPreTraining

    >>> model = MeritForPreTraining(MeritConfig.from_preset("tiny"))
    >>> out = model(input_values=torch.randn(2, 12, 1000), input_ids=torch.randint(1000, 2000, (2, 8)))
    >>> out.loss.shape, out.mask.shape
    (torch.Size([]), torch.Size([2, 12, 20]))

    ```
    """

    def __init__(self, config: MeritConfig):
        super().__init__(config)
        self.merit = MeritModel(config)
        self.decoder = MeritDecoder(config.ecg_config)
        self.post_init()

    @property
    def ecg_model(self) -> MeritECGModel:
        """The ECG tower (`merit.ecg_model`)."""
        return self.merit.ecg_model

    @property
    def text_model(self) -> PreTrainedModel:
        """The text tower (`merit.text_model`)."""
        return self.merit.text_model

    def get_ecg_features(
        self, input_values: torch.Tensor, lead_mask: torch.Tensor | None = None, **kwargs: Unpack[TransformersKwargs]
    ) -> torch.FloatTensor:
        """[`MeritModel.get_ecg_features`]: projected, un-normalised ECG embeddings `(B, E)`."""
        return self.merit.get_ecg_features(input_values, lead_mask, **kwargs)

    def get_text_features(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
    ) -> torch.FloatTensor:
        """[`MeritModel.get_text_features`]: projected, un-normalised report embeddings `(B, E)`."""
        return self.merit.get_text_features(input_ids, attention_mask, token_type_ids)

    def freeze_text_tower(self, layers: str | int | None = None) -> "MeritForPreTraining":
        """[`MeritModel.freeze_text_tower`] (default: `config.text_freeze`); returns the model itself."""
        self.merit.freeze_text_tower(layers)
        return self

    def contrastive_patches_to_keep(self) -> int | None:
        """Patches per lead of the full contrastive view in this forward: `None` (all) in eval mode or when
        `config.contrastive_patch_keep_ratio` is 1, else that fraction of `num_patches_per_lead`, at least 1."""
        ratio = self.config.contrastive_patch_keep_ratio
        if not self.training or ratio >= 1:
            return None
        return max(1, round(ratio * self.config.ecg_config.num_patches_per_lead))

    def contrastive_lead_mask(self, lead_mask: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        """
        The leads `(B, L)` the full contrastive view encodes in this forward: `lead_mask` in eval mode or when
        `config.contrastive_lead_dropout` is 0; else each recorded lead is hidden with that probability, drawn from
        the last patch of the caller's masking `noise` `(B, L, N)` when given (deterministic), and a record that would
        lose every lead keeps them all.
        """
        probability = self.config.contrastive_lead_dropout
        if not self.training or probability <= 0:
            return lead_mask
        draw = torch.rand(lead_mask.shape, device=lead_mask.device) if noise is None else noise[..., -1]
        kept = lead_mask & (draw.to(lead_mask.device) >= probability)
        return torch.where(kept.any(dim=1, keepdim=True), kept, lead_mask)

    def contrastive_time_shifted(self, input_values: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        """
        The ECGs `(B, L, T)` the full contrastive view encodes in this forward: `input_values` in eval mode or when
        `config.contrastive_time_shift` is 0; else each record rolled along time (all leads alike) by a whole number of
        samples drawn uniformly from [-s * T, s * T], from the first patch of the caller's masking `noise` `(B, L, N)`
        when given (deterministic).
        """
        max_shift = int(self.config.contrastive_time_shift * input_values.shape[-1])
        if not self.training or max_shift < 1:
            return input_values
        batch, _, length = input_values.shape
        draw = (
            torch.rand(batch, device=input_values.device) if noise is None else noise[:, 0, 0].to(input_values.device)
        )
        shifts = (draw * (2 * max_shift + 1)).long().clamp(max=2 * max_shift) - max_shift
        # torch.roll semantics per record: output[t] = input[(t - shift) mod T]
        index = (torch.arange(length, device=input_values.device)[None, :] - shifts[:, None]) % length
        return input_values.gather(2, index[:, None, :].expand_as(input_values))

    def reconstruction_target(self, input_values: torch.Tensor) -> torch.Tensor:
        """
        The patches `(B, L, N, P)` the decoder must predict: the input's patches, each normalised by its own mean and
        variance when `config.ecg_config.norm_patch_loss`.
        """
        target = self.ecg_model.patchify(input_values)
        if self.config.ecg_config.norm_patch_loss:
            mean = target.mean(dim=-1, keepdim=True)
            var = target.var(dim=-1, keepdim=True)
            target = (target - mean) / (var + 1.0e-6) ** 0.5
        return target

    def reconstruction_loss(
        self, input_values: torch.Tensor, reconstruction: torch.Tensor, mask: torch.Tensor, lead_mask: torch.Tensor
    ) -> torch.Tensor:
        """
        Mean squared error over the hidden patches of the present leads.

        Args:
            input_values (`torch.FloatTensor` of shape `(B, L, T)`).
            reconstruction (`torch.FloatTensor` of shape `(B, L, N, P)`).
            mask (`torch.FloatTensor` of shape `(B, L, N)`): 1 = hidden patch.
            lead_mask (`torch.BoolTensor` of shape `(B, L)`).
        """
        target = self.reconstruction_target(input_values)
        if reconstruction.shape != target.shape:
            raise ValueError(
                f"`reconstruction` must have the patch shape of the input {tuple(target.shape)}, "
                f"got {tuple(reconstruction.shape)}."
            )
        per_patch = ((reconstruction - target) ** 2).mean(dim=-1)
        weights = mask * lead_mask[:, :, None].to(mask.dtype)
        # where(), not a product: a missing lead may hold NaNs, and NaN * 0 is NaN
        per_patch = torch.where(
            weights > 0, per_patch, torch.zeros((), dtype=per_patch.dtype, device=per_patch.device)
        )
        return (per_patch * weights).sum() / weights.sum().clamp(min=1.0)

    @can_return_tuple
    def forward(
        self,
        input_values: torch.Tensor | None = None,
        input_ids: torch.Tensor | None = None,
        lead_mask: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        noise: torch.Tensor | None = None,
        report_mask: torch.Tensor | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> MeritForPreTrainingOutput:
        r"""
        The losses are always computed.

        Args:
            input_values (`torch.FloatTensor` of shape `(B, L, T)`): preprocessed ECGs.
            input_ids (`torch.LongTensor` of shape `(B, text_length)`, *optional*): tokenised reports; without them
                only the reconstruction loss is computed.
            lead_mask (`torch.Tensor` of shape `(B, L)`, *optional*): 1 = recorded lead.
            attention_mask (`torch.Tensor` of shape `(B, text_length)`, *optional*): 1 = real token.
            token_type_ids (`torch.LongTensor` of shape `(B, text_length)`, *optional*).
            noise (`torch.FloatTensor` of shape `(B, L, N)`, *optional*): makes the masking deterministic, and the
                contrastive view's patch dropout in training (`config.contrastive_patch_keep_ratio` < 1) too.
            report_mask (`torch.BoolTensor` of shape `(B,)`, *optional*): `False` for records without a report
                (their `input_ids` are a placeholder): they take part in masked modelling only, not in the contrastive
                loss, its candidates or its projections' batch statistics.
            output_hidden_states, output_attentions (`bool`, *optional*): those of the masked encoder pass.
            return_dict (`bool`, *optional*): return a [`MeritForPreTrainingOutput`] rather than a tuple.
        """
        if input_values is None:
            raise ValueError("MeritForPreTraining.forward needs `input_values` (ECGs).")
        lead_mask = self.ecg_model._checked_lead_mask(input_values, lead_mask)
        masked = self.ecg_model(
            input_values, lead_mask=lead_mask, apply_masking=True, noise=noise, return_dict=True, **kwargs
        )
        # a branch whose loss weight is 0 (the single-objective ablations) is not computed at all
        loss = reconstruction = reconstruction_loss = None
        if self.config.reconstruction_loss_weight > 0:
            ids_keep = visible_patch_indices(masked.mask, self.config.ecg_config.num_patches_to_keep)
            reconstruction = self.decoder(masked.last_hidden_state, ids_keep, lead_mask)
            reconstruction_loss = self.reconstruction_loss(input_values, reconstruction, masked.mask, lead_mask)
            loss = self.config.reconstruction_loss_weight * reconstruction_loss

        contrastive_loss = logits_per_ecg = logits_per_text = ecg_embeds = text_embeds = None
        if input_ids is not None and self.config.contrastive_loss_weight > 0:
            if self.config.contrastive_view == "full":
                keep = self.contrastive_patches_to_keep()
                # with the caller's `noise` the patch dropout is deterministic too: it keeps the patches with the
                # largest noise (those the masked pass hides first)
                ecg_pooled = self.ecg_model(
                    self.contrastive_time_shifted(input_values, noise),
                    lead_mask=self.contrastive_lead_mask(lead_mask, noise),
                    apply_masking=keep is not None,
                    noise=None if keep is None or noise is None else 1.0 - noise,
                    num_patches_to_keep=keep,
                    return_dict=True,
                ).pooler_output
            else:
                ecg_pooled = masked.pooler_output
            text_pooled = self.merit.pooled_text_features(input_ids, attention_mask, token_type_ids)
            keys = report_keys(input_ids, attention_mask) if self.config.exclude_duplicate_reports else None
            contrastive_loss, logits_per_ecg, logits_per_text, ecg_embeds, text_embeds = self.merit.align(
                ecg_pooled, text_pooled, return_loss=True, report_mask=report_mask, keys=keys
            )
            weighted = self.config.contrastive_loss_weight * contrastive_loss
            loss = weighted if loss is None else loss + weighted
        if loss is None:
            raise ValueError(
                "With `reconstruction_loss_weight=0` MeritForPreTraining needs `input_ids` (reports) for the "
                "contrastive loss, its only objective."
            )

        return MeritForPreTrainingOutput(
            loss=loss,
            reconstruction_loss=reconstruction_loss,
            contrastive_loss=contrastive_loss,
            logits_per_ecg=logits_per_ecg,
            logits_per_text=logits_per_text,
            ecg_embeds=ecg_embeds,
            text_embeds=text_embeds,
            reconstruction=reconstruction,
            mask=masked.mask,
            hidden_states=masked.hidden_states,
            attentions=masked.attentions,
        )


# --------------------------------------------------------------------------------------------------------------------
# Classification head
# --------------------------------------------------------------------------------------------------------------------


class MeritForECGClassification(MeritPreTrainedModel):
    r"""
    A linear head on the pooled ECG features, for multi-label (`problem_type="multi_label_classification"`, BCE)
    or single-label (`"single_label_classification"`, cross-entropy) ECG classification. Loads the ECG tower of any
    MERIT checkpoint (pretraining, dual encoder, classifier or bare ECG tower); the text tower is not built. For
    linear probing, [`freeze_ecg_encoder`] leaves only the head trainable (`config.freeze_ecg_encoder` records the
    choice for the scripts; nothing is frozen at construction or by `from_pretrained`).

    Example:

    ```python
    >>> import torch
    >>> from modeling_merit import MeritConfig, MeritForECGClassification

    >>> config = MeritConfig.from_preset("tiny", problem_type="multi_label_classification",
    ...                                  id2label={0: "NORM", 1: "MI"}, label2id={"NORM": 0, "MI": 1})
    >>> model = MeritForECGClassification(config)
    >>> out = model(torch.randn(2, 12, 1000), labels=torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
    >>> out.logits.shape
    torch.Size([2, 2])
    >>> probe = model.freeze_ecg_encoder()  # linear probing
    >>> [name for name, p in probe.named_parameters() if p.requires_grad]
    ['classifier.weight', 'classifier.bias']

    ```
    """

    # the ECG tower is the base model: a bare MeritECGModel checkpoint gets `ecg_model.` added by the library
    base_model_prefix = "ecg_model"
    _keys_to_ignore_on_load_unexpected = OTHER_TOWER_KEYS

    def __init__(self, config: MeritConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.ecg_model = MeritECGModel._from_config(config.ecg_config)
        self.dropout = nn.Dropout(config.classifier_dropout)
        self.classifier = nn.Linear(config.ecg_config.hidden_size, config.num_labels)
        self.post_init()

    def freeze_ecg_encoder(self, frozen: bool = True) -> "MeritForECGClassification":
        """
        Linear probing: sets `requires_grad=not frozen` on every ECG encoder parameter, so that only the head is
        trained (a frozen encoder takes no gradient and keeps no activations for the backward pass). Loading
        re-creates every parameter trainable, so call it after `from_pretrained` as well as after construction.

        Returns:
            The model itself (like `nn.Module.requires_grad_`).
        """
        self.ecg_model.requires_grad_(not frozen)
        return self

    @can_return_tuple
    def forward(
        self,
        input_values: torch.Tensor,
        lead_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> SequenceClassifierOutput:
        r"""
        Args:
            input_values (`torch.FloatTensor` of shape `(B, L, T)`): preprocessed ECGs.
            lead_mask (`torch.Tensor` of shape `(B, L)`, *optional*): 1 = recorded lead.
            labels (`torch.Tensor`, *optional*): `(B, num_labels)` multi-hot floats for multi-label, `(B,)` class
                indices for single-label classification. When `config.problem_type` is unset it is inferred from
                them (and stored in the config).
            output_hidden_states (`bool`, *optional*): also return every encoder layer's states.
            output_attentions (`bool`, *optional*): also return every encoder layer's attention probabilities
                (eager attention only).
            return_dict (`bool`, *optional*): return a `SequenceClassifierOutput` rather than a tuple.

        Returns:
            `SequenceClassifierOutput` with `logits` of shape `(B, num_labels)`.
        """
        ecg_output = self.ecg_model(input_values, lead_mask=lead_mask, return_dict=True, **kwargs)
        logits = self.classifier(self.dropout(ecg_output.pooler_output))

        loss = None
        if labels is not None:
            loss = self.classification_loss(logits, labels.to(logits.device))
        return SequenceClassifierOutput(
            loss=loss, logits=logits, hidden_states=ecg_output.hidden_states, attentions=ecg_output.attentions
        )

    def classification_loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """BCE-with-logits (multi-label) or cross-entropy (single-label) of `logits` `(B, C)` against `labels`."""
        if self.config.problem_type is None:
            is_multi_hot = labels.dim() == 2 and labels.shape == logits.shape and labels.is_floating_point()
            self.config.problem_type = "multi_label_classification" if is_multi_hot else "single_label_classification"
        if self.config.problem_type == "multi_label_classification":
            if labels.shape != logits.shape:
                raise ValueError(
                    f"Multi-label `labels` must have shape (batch, num_labels) = {tuple(logits.shape)}, "
                    f"got {tuple(labels.shape)}."
                )
            return F.binary_cross_entropy_with_logits(logits, labels.to(logits.dtype))
        if self.config.problem_type == "single_label_classification":
            if labels.dim() != 1 or labels.shape[0] != logits.shape[0] or labels.is_floating_point():
                raise ValueError(
                    f"Single-label `labels` must be integer class indices of shape ({logits.shape[0]},), "
                    f"got {labels.dtype} {tuple(labels.shape)}."
                )
            return F.cross_entropy(logits, labels)
        raise ValueError(
            f"`problem_type` must be 'multi_label_classification' or 'single_label_classification', "
            f"got {self.config.problem_type!r}."
        )


__all__ = [
    "MeritPreTrainedModel",
    "MeritProjectionHead",
    "MeritStandardizationHead",
    "MeritECGModel",
    "MeritModel",
    "MeritForPreTraining",
    "MeritForECGClassification",
]
