# Copyright 2026 The MERIT authors. Licensed under the Apache License, Version 2.0.
"""MERIT ECG-conditioned report generation: the MERIT ECG encoder, a projector into soft prefix tokens and a causal LM.

Shape conventions used in the docstrings (see also `modeling_merit.py`):
    B = batch size, L = leads, T = samples per lead, H = ECG encoder width, F = encoder feature vectors per ECG
    (`config.num_prefix_features`), P = `config.num_prefix_tokens`, D = language model width, R = report tokens,
    S = LLM input length (prompt + prefix + report, padded).
"""

import copy
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoModelForCausalLM
from transformers.utils import ModelOutput, logging

from .configuration_merit import MeritECGConfig
from .configuration_merit_report import MeritReportGenerationConfig
from .modeling_merit import MeritECGModel, MeritPreTrainedModel, MeritProjectionHead, build_projection


logger = logging.get_logger(__name__)

ECG_PLACEHOLDER = "<ecg>"
"""Where the ECG prefix goes in the rendered prompt (the text is split there; the placeholder is never tokenised)."""

LORA_KEY_MARKERS = ("lora_A", "lora_B", "base_layer", "base_model.model")

RETRIEVAL_CONTEXT_TEMPLATE = "\nReport of a similar ECG: {report}"
"""How each retrieved training report is written into the prompt (after the ECG prefix, before the instruction)."""

FINDINGS_CONTEXT_HEADER = "\nECG classifier findings:"
FINDINGS_PHRASE_TEMPLATE = " {phrase}."
FINDINGS_NONE = " none."
"""How the predicted findings are written into the prompt (after the ECG prefix, before any retrieved report): the
header, then each predicted statement's phrase, or `FINDINGS_NONE` when none is predicted."""


@dataclass
class MeritReportGenerationOutput(ModelOutput):
    r"""
    loss (`torch.FloatTensor` of shape `()`, *optional*, returned when `labels` or `input_ids` are given):
        Mean next-token cross-entropy over the report tokens (prompt, ECG prefix and padding positions excluded).
    logits (`torch.FloatTensor` of shape `(B, S, vocab_size)`):
        The language model's logits over the whole input (prompt, prefix, report).
    labels (`torch.LongTensor` of shape `(B, S)`):
        The labels aligned with `logits` (before the one-position shift): the report tokens, -100 elsewhere.
    attention_mask (`torch.LongTensor` of shape `(B, S)`):
        1 for the positions the language model attended to.
    """

    loss: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None
    labels: torch.LongTensor | None = None
    attention_mask: torch.LongTensor | None = None


def tokenize_prompt(tokenizer, instruction: str, system_prompt: str | None = None) -> tuple[list[int], list[int]]:
    """
    The token ids of the prompt before and after the ECG prefix.

    With a chat template, the prompt is the template applied to `system_prompt` (if any) and one user turn
    `"<ecg>\\n{instruction}"`, with the assistant turn opened; without one, `"<ecg>\\n{instruction}\\n"` preceded by the
    tokenizer's BOS token (if any). The text is split at the ECG placeholder and both halves are tokenised without
    further special tokens.
    """
    content = f"{ECG_PLACEHOLDER}\n{instruction}"
    if getattr(tokenizer, "chat_template", None):
        messages = [{"role": "system", "content": system_prompt}] if system_prompt else []
        messages.append({"role": "user", "content": content})
        text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        bos = []
    else:
        text = content + "\n"
        bos = [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []
    before, after = text.split(ECG_PLACEHOLDER, 1)
    before_ids = bos + (tokenizer(before, add_special_tokens=False)["input_ids"] if before else [])
    return before_ids, tokenizer(after, add_special_tokens=False)["input_ids"]


def tokenize_reports(
    tokenizer, reports: list[str], eos_token_id: int, max_length: int | None = None
) -> list[list[int]]:
    """Token ids of each report (no special tokens), truncated to `max_length - 1`, then the end-of-report id."""
    ids = tokenizer(list(reports), add_special_tokens=False)["input_ids"]
    if max_length is not None:
        ids = [report[: max_length - 1] for report in ids]
    return [report + [eos_token_id] for report in ids]


class MeritFeatureStandardizer(nn.Module):
    """`(x - mean) / sqrt(var + eps)` per feature dimension, with the statistics stored as buffers (fitted once)."""

    def __init__(self, num_features: int, eps: float, unfitted_hint: str | None = None):
        super().__init__()
        self.eps = eps
        self.unfitted_hint = unfitted_hint or (
            "projector_input_norm='standardize' but its statistics were never fitted; call "
            "model.fit_projector_statistics(features) with training-set encoder features first."
        )
        self.register_buffer("mean", torch.zeros(num_features))
        self.register_buffer("var", torch.ones(num_features))
        self.register_buffer("num_fitted_samples", torch.zeros((), dtype=torch.long))

    @torch.no_grad()
    def fit(self, features: torch.Tensor) -> None:
        """Sets the statistics from training features `(N, H)` (N > 1)."""
        if features.dim() != 2 or features.shape[1] != self.mean.shape[0] or features.shape[0] < 2:
            raise ValueError(
                f"Standardisation statistics need features of shape (N >= 2, {self.mean.shape[0]}), got "
                f"{tuple(features.shape)}."
            )
        features = features.to(device=self.mean.device, dtype=torch.float64)
        self.mean.copy_(features.mean(0))
        self.var.copy_(features.var(0))
        self.num_fitted_samples.fill_(features.shape[0])

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        if int(self.num_fitted_samples) == 0:
            raise ValueError(self.unfitted_hint)
        return (features - self.mean) / torch.sqrt(self.var + self.eps)


class MeritReportProjector(nn.Module):
    """Encoder features `(B, F, H)` -> soft prefix tokens `(B, F * tokens_per_feature, D)` for the language model."""

    def __init__(self, config: MeritReportGenerationConfig):
        super().__init__()
        ecg_width, text_width = config.ecg_config.hidden_size, config.text_config.hidden_size
        self.tokens_per_feature = config.tokens_per_feature
        if config.projector_input_norm == "batch_norm":
            self.input_norm = nn.BatchNorm1d(ecg_width, eps=config.projector_norm_eps)
        elif config.projector_input_norm == "standardize":
            self.input_norm = MeritFeatureStandardizer(ecg_width, config.projector_norm_eps)
        else:
            self.input_norm = nn.Identity()
        output_width = self.tokens_per_feature * text_width
        if config.projector_num_layers == 1:
            self.layers = nn.Sequential(nn.Linear(ecg_width, output_width))
        else:
            self.layers = nn.Sequential(
                nn.Linear(ecg_width, config.projector_hidden_size),
                nn.GELU(),
                nn.Linear(config.projector_hidden_size, output_width),
            )

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        batch_size, num_features, width = features.shape
        normalized = self.input_norm(features.reshape(batch_size * num_features, width))
        tokens = self.layers(normalized)
        return tokens.reshape(batch_size, num_features * self.tokens_per_feature, -1)


class MeritFindingsHead(nn.Module):
    """Linear classifier of the `config.findings_labels` statements: the pooled ECG vector `(B, H)`, standardised
    with statistics of the training ECGs, -> logits `(B, C)`. Fitted by the training script (logistic regression)."""

    def __init__(self, config: MeritReportGenerationConfig):
        super().__init__()
        width = config.ecg_config.hidden_size
        self.standardizer = MeritFeatureStandardizer(
            width,
            config.projector_norm_eps,
            "The findings classifier was never fitted; fit it on training ECGs (merit_training.findings.fit_findings "
            "and install_findings) or load a checkpoint trained with --findings.",
        )
        self.classifier = nn.Linear(width, config.num_findings)

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.standardizer(pooled.to(self.classifier.weight.dtype)))


def _require_peft():
    try:
        import peft
    except ImportError as error:
        raise ImportError(
            "LoRA needs the `peft` package (`pip install peft`, or the `report` extra of merit-ecg)."
        ) from error
    return peft


class MeritForReportGeneration(MeritPreTrainedModel):
    r"""
    ECG-conditioned report generation: the MERIT ECG encoder, a projector that turns its features into
    `config.num_prefix_tokens` soft tokens, and any causal language model that reads
    `[prompt before the ECG] [ECG tokens] [prompt after the ECG]` and writes the report (LLaVA-style prefix).

    Training follows the usual recipe: with the encoder frozen (`config.freeze_ecg_encoder`), first the projector
    alone, then the projector with LoRA adapters on the language model ([`enable_lora`]); adapters are merged into
    the weights when the model is saved. `ecg_model` is the ECG encoder (a [`MeritECGModel`]), `language_model` the
    LLM.

    Build one from a MERIT checkpoint and a language model folder with [`from_merit_and_language_model`]; load a
    saved one with `AutoModel.from_pretrained(path)` and decode its output with the saved processor.

    Example:

    ```python
    >>> import torch
    >>> from modeling_merit import MeritForReportGeneration, MeritReportGenerationConfig

    >>> config = MeritReportGenerationConfig(
    ...     ecg_config={"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 128},
    ...     text_config={"model_type": "llama", "vocab_size": 1000, "hidden_size": 32, "intermediate_size": 64,
    ...                  "num_hidden_layers": 2, "num_attention_heads": 2, "num_key_value_heads": 1,
    ...                  "eos_token_id": 2, "pad_token_id": 0},
    ...     projector_hidden_size=64, prompt_ids_before_ecg=[1, 5], prompt_ids_after_ecg=[6, 7])
    >>> model = MeritForReportGeneration(config)
    >>> reports = torch.tensor([[11, 12, 2], [13, 2, 0]])
    >>> out = model(torch.randn(2, 12, 1000), input_ids=reports, attention_mask=(reports > 0).long())
    >>> out.loss.shape, out.logits.shape  # 2 + 4 prefix + 2 + 3 report positions
    (torch.Size([]), torch.Size([2, 11, 1000]))
    >>> model.eval().generate(torch.randn(1, 12, 1000), max_new_tokens=3).shape
    torch.Size([1, 3])

    ```
    """

    config_class = MeritReportGenerationConfig
    base_model_prefix = "merit_report"
    input_modalities = ("ecg",)
    _supports_sdpa = True

    def __init__(self, config: MeritReportGenerationConfig):
        super().__init__(config)
        self.ecg_model = MeritECGModel._from_config(config.ecg_config)
        self.projector = MeritReportProjector(config)
        self.language_model = AutoModelForCausalLM.from_config(config.text_config)
        self.retrieval_projection = None
        if config.num_retrieved_reports:
            # the bank (set_retrieval_bank), saved with the weights: unit-norm keys (pooled features of the training
            # ECGs, or their reports' embeddings in the ECG-text space) and the token ids of each one's context text,
            # right-padded with -1
            bank_size, length = config.retrieval_bank_size, config.retrieval_context_length
            key_size = config.retrieval_key_size or config.ecg_config.hidden_size
            self.register_buffer("retrieval_keys", torch.zeros(bank_size, key_size))
            self.register_buffer("retrieval_context_ids", torch.full((bank_size, length), -1, dtype=torch.long))
            if config.retrieval_projection_head is not None:
                self.retrieval_projection = build_projection(
                    config.retrieval_projection_head, config.ecg_config.hidden_size, key_size
                ).requires_grad_(False)
        self.findings_head = MeritFindingsHead(config) if config.num_findings else None
        self.post_init()
        # `config.freeze_ecg_encoder` is part of what this model computes (`encode_ecg` runs without gradient, the
        # encoder stays in eval mode); its parameters are created frozen to match
        self.freeze_ecg_encoder(config.freeze_ecg_encoder)

    # ------------------------------------------------------------------------------------------------ set-up

    @classmethod
    def from_merit_and_language_model(
        cls,
        merit_model_name_or_path: str,
        language_model_name_or_path: str,
        tokenizer=None,
        **config_kwargs,
    ) -> "MeritForReportGeneration":
        """
        A new report generator with the ECG encoder of any MERIT checkpoint (pretraining, dual encoder, classifier,
        ECG tower or report generator), the weights of a causal LM checkpoint, and a freshly initialised projector.

        Args:
            merit_model_name_or_path (`str`): folder or Hub id of the MERIT checkpoint.
            language_model_name_or_path (`str`): folder or Hub id of the causal LM (`AutoModelForCausalLM`).
            tokenizer (*optional*): the LLM's tokenizer, used to tokenise the prompt; loaded from
                `language_model_name_or_path` when `None`.
            config_kwargs: fields of [`MeritReportGenerationConfig`] (e.g. `prefix_features`, `instruction`).
        """
        from transformers import AutoTokenizer

        ecg_model = load_ecg_encoder(merit_model_name_or_path)
        language_model = AutoModelForCausalLM.from_pretrained(language_model_name_or_path, dtype=torch.float32)
        if tokenizer is None:
            tokenizer = AutoTokenizer.from_pretrained(language_model_name_or_path)
        text_config = language_model.config.to_dict()
        if text_config.get("pad_token_id") is None and tokenizer.pad_token_id is not None:
            text_config["pad_token_id"] = tokenizer.pad_token_id
        if text_config.get("eos_token_id") is None and tokenizer.eos_token_id is not None:
            text_config["eos_token_id"] = tokenizer.eos_token_id
        config = cls.config_class(ecg_config=ecg_model.config.to_dict(), text_config=text_config, **config_kwargs)
        # Built normally (not on the meta device), so non-persistent buffers (sin-cos tables, rotary frequencies) are
        # computed, then the pretrained weights are copied in: every tensor is either loaded or freshly initialised.
        model = cls(config)
        model.ecg_model.load_state_dict(ecg_model.state_dict())
        model.language_model.load_state_dict(language_model.state_dict())
        model.set_prompt(tokenizer)
        return model

    def set_prompt(self, tokenizer, instruction: str | None = None, system_prompt: str | None = None) -> None:
        """Tokenises the default prompt (`config.instruction`, `config.system_prompt`, or the given ones) into the
        config's `prompt_ids_before_ecg` / `prompt_ids_after_ecg`."""
        if instruction is not None:
            self.config.instruction = instruction
        if system_prompt is not None:
            self.config.system_prompt = system_prompt
        before, after = tokenize_prompt(tokenizer, self.config.instruction, self.config.system_prompt)
        self.config.prompt_ids_before_ecg, self.config.prompt_ids_after_ecg = before, after
        if self.config.num_findings:
            pieces = [FINDINGS_CONTEXT_HEADER]
            pieces += [FINDINGS_PHRASE_TEMPLATE.format(phrase=phrase) for phrase in self.config.findings_phrases]
            pieces.append(FINDINGS_NONE)
            self.config.findings_phrase_ids = [
                tokenizer(piece, add_special_tokens=False)["input_ids"] for piece in pieces
            ]

    def set_findings(self, labels: list[str], phrases: list[str], thresholds: list[float], tokenizer) -> None:
        """
        Turns on findings-conditioned generation (see `MeritReportGenerationConfig.findings_labels`): sets the C
        statements, their prompt phrases and decision thresholds, creates a new (unfitted) `findings_head` and
        tokenises the findings text. The training script then fits the head on training ECGs.

        Args:
            labels (`list[str]`): the C statement names; phrases (`list[str]`): their words in the prompt;
            thresholds (`list[float]`): their probability thresholds; tokenizer: the language model's tokenizer.
        """
        self.config.findings_labels, self.config.findings_phrases = list(labels), list(phrases)
        self.config.findings_thresholds = [float(value) for value in thresholds]
        self.config.findings_phrase_ids = None
        self.config._check_findings()
        device = next(self.projector.parameters()).device
        self.findings_head = MeritFindingsHead(self.config).to(device)
        self.set_prompt(tokenizer)

    def freeze_ecg_encoder(self, frozen: bool = True) -> "MeritForReportGeneration":
        """
        Sets `requires_grad=not frozen` on every ECG encoder parameter (and puts a frozen encoder in eval mode).

        Construction applies `config.freeze_ecg_encoder`; `from_pretrained` re-creates every parameter trainable, so
        call it again on a loaded model that is to be trained further. Whether `encode_ecg` computes gradients and
        whether `train()` leaves the encoder in eval mode follow `config.freeze_ecg_encoder`.

        Returns:
            The model itself (like `nn.Module.requires_grad_`).
        """
        self.ecg_model.requires_grad_(not frozen)
        if frozen:
            self.ecg_model.eval()
        return self

    def train(self, mode: bool = True):
        super().train(mode)
        if self.config.freeze_ecg_encoder:
            self.ecg_model.eval()
        return self

    def fit_projector_statistics(self, features: torch.Tensor, feature_mask: torch.Tensor | None = None) -> None:
        """
        Fits the stored standardisation of the projector input (`projector_input_norm="standardize"`).

        Args:
            features (`torch.FloatTensor` of shape `(N, F, H)`): encoder features of training ECGs
                ([`encode_ecg`]).
            feature_mask (`torch.BoolTensor` of shape `(N, F)`, *optional*): features to use (missing leads out).
        """
        if not isinstance(self.projector.input_norm, MeritFeatureStandardizer):
            raise ValueError(
                f"fit_projector_statistics needs projector_input_norm='standardize', the config says "
                f"{self.config.projector_input_norm!r}."
            )
        flat = features.reshape(-1, features.shape[-1])
        if feature_mask is not None:
            flat = flat[feature_mask.reshape(-1).bool()]
        self.projector.input_norm.fit(flat)

    # ------------------------------------------------------------------------------------------------ ECG prefix

    def encode_ecg(
        self, input_values: torch.Tensor, lead_mask: torch.Tensor | None = None, return_pooled: bool = False
    ) -> tuple[torch.FloatTensor, torch.BoolTensor] | tuple[torch.FloatTensor, torch.BoolTensor, torch.FloatTensor]:
        """
        The encoder features that feed the projector (`config.prefix_features`).

        Args:
            input_values (`torch.FloatTensor` of shape `(B, L, T)`): preprocessed ECGs.
            lead_mask (`torch.Tensor` of shape `(B, L)`, *optional*): 1 = recorded lead.
            return_pooled (`bool`, *optional*, defaults to `False`): also return the pooled ECG vector `(B, H)`
                (the encoder's `pooler_output`, the key of retrieval, see [`retrieve`]).

        Returns:
            `(features, feature_mask)`: `(B, F, H)` floats and `(B, F)` bools (False for a missing lead's feature).
            With a frozen encoder they can be computed once and passed as `ecg_features` / `ecg_feature_mask`.
        """
        lead_mask = self.ecg_model._checked_lead_mask(input_values, lead_mask)
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.config.freeze_ecg_encoder):
            output = self.ecg_model(input_values, lead_mask=lead_mask, return_dict=True)
        batch_size, num_leads = lead_mask.shape
        prefix_features = self.config.prefix_features
        if prefix_features == "pooled":
            features = output.pooler_output[:, None]
        else:
            patch_tokens = output.last_hidden_state.unflatten(1, (num_leads, -1))[:, :, 1:-1]  # (B, L, N, H)
        if prefix_features == "per_lead":
            features, feature_mask = patch_tokens.mean(dim=2), lead_mask
        elif prefix_features == "time_tokens":
            weights = lead_mask[:, :, None, None].to(patch_tokens.dtype)
            over_leads = (patch_tokens * weights).sum(dim=1) / weights.sum(dim=1)  # (B, N, H)
            pooled = F.adaptive_avg_pool1d(over_leads.transpose(1, 2), self.config.num_prefix_tokens)
            features = pooled.transpose(1, 2)
        if prefix_features != "per_lead":
            feature_mask = torch.ones(batch_size, features.shape[1], dtype=torch.bool, device=features.device)
        return (features, feature_mask, output.pooler_output) if return_pooled else (features, feature_mask)

    def ecg_prefix(
        self, ecg_features: torch.Tensor, ecg_feature_mask: torch.Tensor | None = None
    ) -> tuple[torch.FloatTensor, torch.BoolTensor]:
        """
        Projects encoder features `(B, F, H)` into the prefix embeddings `(B, P, D)` and their mask `(B, P)`.
        """
        expected = (self.config.num_prefix_features, self.config.ecg_config.hidden_size)
        if ecg_features.dim() != 3 or tuple(ecg_features.shape[1:]) != expected:
            raise ValueError(
                f"`ecg_features` must have shape (batch, {expected[0]}, {expected[1]}) for prefix_features="
                f"{self.config.prefix_features!r}, got {tuple(ecg_features.shape)}; compute them with encode_ecg()."
            )
        if ecg_feature_mask is None:
            ecg_feature_mask = torch.ones(ecg_features.shape[:2], dtype=torch.bool, device=ecg_features.device)
        embeds = self.projector(ecg_features.to(self.projector_dtype))
        prefix_mask = ecg_feature_mask.bool().repeat_interleave(self.config.tokens_per_feature, dim=1)
        return embeds, prefix_mask

    @property
    def projector_dtype(self) -> torch.dtype:
        return next(self.projector.parameters()).dtype

    def _prefix_inputs(
        self, input_values, lead_mask, ecg_features, ecg_feature_mask, retrieved_indices=None, findings=None
    ):
        """The prefix embeddings and mask, the retrieved bank entries `(B, k)` (`None` without retrieval) and the
        predicted findings `(B, C)` (`None` without findings)."""
        pooled = None
        if ecg_features is None:
            if input_values is None:
                raise ValueError("Give the ECGs as `input_values` (or precomputed `ecg_features` from encode_ecg()).")
            ecg_features, ecg_feature_mask, pooled = self.encode_ecg(input_values, lead_mask, return_pooled=True)
        if pooled is None and self.config.prefix_features == "pooled":
            pooled = ecg_features[:, 0]

        def needs_pooled(feature: str, argument: str, method: str) -> torch.Tensor:
            if pooled is None:
                raise ValueError(
                    f"{feature} needs the pooled ECG features: pass `input_values`, or `{argument}` (from "
                    f"{method}()) with precomputed `ecg_features`."
                )
            return pooled

        if self.config.num_retrieved_reports and retrieved_indices is None:
            retrieved_indices = self.retrieve(needs_pooled("Retrieval", "retrieved_indices", "retrieve"))
        if self.config.num_findings and findings is None:
            findings = self.predict_findings(
                needs_pooled("Findings-conditioned generation", "findings", "predict_findings")
            )
        prefix_embeds, prefix_mask = self.ecg_prefix(ecg_features, ecg_feature_mask)
        return prefix_embeds, prefix_mask, retrieved_indices, findings

    # ------------------------------------------------------------------------------------------------ findings

    def findings_probabilities(self, pooled: torch.Tensor) -> torch.FloatTensor:
        """
        The findings classifier's probabilities `(B, C)` of the `config.findings_labels` statements, from the pooled
        ECG vectors `(B, H)` (the encoder's `pooler_output`, see [`encode_ecg`]).
        """
        if not self.config.num_findings:
            raise ValueError(
                "This model has no findings classifier (config.findings_labels is None); train one with "
                "train_merit.py --task report_generation --findings ..."
            )
        hidden = self.config.ecg_config.hidden_size
        if pooled.dim() != 2 or pooled.shape[1] != hidden:
            raise ValueError(f"`pooled` must have shape (batch, {hidden}), got {tuple(pooled.shape)}.")
        return torch.sigmoid(self.findings_head(pooled.detach()).float())

    def predict_findings(self, pooled: torch.Tensor) -> torch.BoolTensor:
        """The statements written into each ECG's prompt: `findings_probabilities >= config.findings_thresholds`,
        `(B, C)` bool (column c is `config.findings_labels[c]`)."""
        probabilities = self.findings_probabilities(pooled)
        thresholds = torch.tensor(self.config.findings_thresholds, device=probabilities.device)
        return probabilities >= thresholds

    def _findings_context(self, findings: torch.Tensor) -> list[list[int]]:
        """Per ECG, the token ids of its findings text (header, the predicted statements' phrases or "none")."""
        pieces = self.config.findings_phrase_ids
        if pieces is None:
            raise ValueError(
                "The findings text is not tokenised (config.findings_phrase_ids is None); call "
                "model.set_prompt(tokenizer) once."
            )
        expected = (findings.shape[0], self.config.num_findings)
        if findings.dim() != 2 or findings.shape[1] != self.config.num_findings:
            raise ValueError(
                f"`findings` must have shape {expected} (batch, statements), got {tuple(findings.shape)}."
            )
        contexts = []
        for row in findings.bool().tolist():
            phrases = [pieces[1 + column] for column, present in enumerate(row) if present] or [pieces[-1]]
            contexts.append(list(pieces[0]) + [token for phrase in phrases for token in phrase])
        return contexts

    # ------------------------------------------------------------------------------------------------ retrieval

    def set_retrieval_bank(
        self,
        keys: torch.Tensor,
        reports: list[str],
        tokenizer,
        max_report_tokens: int | None = None,
        projection: nn.Module | None = None,
    ):
        """
        Stores the bank of retrieval-augmented generation (`config.num_retrieved_reports` > 0): one key per training
        report and the report, written as `RETRIEVAL_CONTEXT_TEMPLATE` and tokenised.

        Args:
            keys (`torch.FloatTensor` of shape `(N, K)`): with `config.retrieval_space="encoder"`, the pooled encoder
                features (the `pooler_output` of this model's ECG encoder) of the N training ECGs (`K` = its
                `hidden_size`); with `"ecg-text"`, the N reports' embeddings in a MERIT checkpoint's ECG-text space
                (`get_text_features`, `K` = its `projection_dim`). They are stored L2-normalised.
            reports (`list[str]`): the N reports.
            tokenizer: the language model's tokenizer.
            max_report_tokens (`int`, *optional*): each report is cut to this many tokens.
            projection (`nn.Module`, *optional*): with `"ecg-text"`, that checkpoint's ECG projection
                (`MeritModel.ecg_projection`, `(B, hidden_size)` -> `(B, K)`), copied into this model, frozen; it maps
                each ECG's pooled features into the space of the keys. Not accepted with `"encoder"`.
        """
        config = self.config
        if not config.num_retrieved_reports:
            raise ValueError("set_retrieval_bank needs config.num_retrieved_reports > 0 (retrieval is off).")
        hidden = config.ecg_config.hidden_size
        if (projection is None) != (config.retrieval_space == "encoder"):
            raise ValueError(
                f"retrieval_space={config.retrieval_space!r}: "
                + (
                    "pass `projection`, the MERIT checkpoint's ECG projection (MeritModel.ecg_projection), with its "
                    "reports' embeddings as `keys`."
                    if projection is None
                    else "the keys are pooled encoder features; do not pass `projection`."
                )
            )
        key_size = hidden if projection is None else keys.shape[-1]
        if keys.dim() != 2 or keys.shape[0] != len(reports) or keys.shape[1] != key_size:
            raise ValueError(
                f"The bank needs keys of shape ({len(reports)} reports, {key_size}), got {tuple(keys.shape)}."
            )
        if len(reports) < config.num_retrieved_reports:
            raise ValueError(
                f"The bank holds {len(reports)} reports, fewer than num_retrieved_reports "
                f"({config.num_retrieved_reports})."
            )
        device = next(self.parameters()).device
        if projection is None:
            self.retrieval_projection, config.retrieval_projection_head = None, None
        else:
            if isinstance(projection, MeritProjectionHead):
                head = "mlp_bn"
            elif isinstance(projection, nn.Linear):
                head = "linear"
            else:
                raise ValueError(
                    f"`projection` must be a MERIT ECG projection (MeritProjectionHead or nn.Linear), got "
                    f"{type(projection).__name__}."
                )
            copied = build_projection(head, hidden, key_size)
            copied.load_state_dict(projection.state_dict())  # a size mismatch raises here
            self.retrieval_projection = copied.to(device).eval().requires_grad_(False)
            config.retrieval_projection_head = head
        prefix = RETRIEVAL_CONTEXT_TEMPLATE.split("{report}")[0]
        prefix_ids = tokenizer(prefix, add_special_tokens=False)["input_ids"]
        report_ids = tokenizer([str(report).strip() for report in reports], add_special_tokens=False)["input_ids"]
        if max_report_tokens is not None:
            report_ids = [ids[:max_report_tokens] for ids in report_ids]
        contexts = [prefix_ids + ids for ids in report_ids]
        length = max(map(len, contexts))
        context_ids = torch.full((len(contexts), length), -1, dtype=torch.long)
        for row, ids in enumerate(contexts):
            context_ids[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        normalized = F.normalize(keys.detach().float(), dim=-1).to(device=device, dtype=self.projector_dtype)
        self.register_buffer("retrieval_keys", normalized)
        self.register_buffer("retrieval_context_ids", context_ids.to(device))
        config.retrieval_bank_size, config.retrieval_context_length = len(contexts), length
        config.retrieval_key_size = key_size

    @torch.no_grad()
    def retrieval_queries(self, features: torch.Tensor) -> torch.FloatTensor:
        """
        The unit-norm queries `(B, K)` of pooled encoder features `(B, H)`: the features themselves
        (`retrieval_space="encoder"`) or their image under the stored ECG projection (`"ecg-text"`, always with the
        projection's evaluation statistics).
        """
        projection = self.retrieval_projection
        if projection is not None:
            weight = next(projection.parameters())
            was_training = projection.training
            projection.eval()
            features = projection(features.detach().to(device=weight.device, dtype=weight.dtype))
            projection.train(was_training)
        return F.normalize(features.detach().float(), dim=-1)

    def retrieve(self, features: torch.Tensor, exclude: torch.Tensor | None = None) -> torch.LongTensor:
        """
        The `config.num_retrieved_reports` bank entries whose keys are most cosine-similar to each ECG's query
        ([`retrieval_queries`]), most similar first.

        Args:
            features (`torch.FloatTensor` of shape `(B, H)`): pooled encoder features of the ECGs.
            exclude (`torch.Tensor`, *optional*): bank entries the ECGs may not retrieve, when the ECGs are the
                bank's training records: a `torch.LongTensor` of shape `(B,)` (one entry each, its own:
                leave-one-out) or a `torch.BoolTensor` of shape `(B, N)` (True = excluded, e.g. every record of the
                same patient: leave-patient-out). Each ECG must keep at least `num_retrieved_reports` entries.

        Returns:
            `torch.LongTensor` of shape `(B, k)`: indices into the bank.
        """
        if not self.config.num_retrieved_reports or not self.config.retrieval_bank_size:
            raise ValueError(
                "This model has no retrieval bank: set config.num_retrieved_reports > 0 and call "
                "set_retrieval_bank(keys, reports, tokenizer) with the training records."
            )
        keys = self.retrieval_keys.float()
        queries = self.retrieval_queries(features)
        similarity = queries.to(keys.device) @ keys.T
        if exclude is not None:
            exclude = exclude.to(similarity.device)
            if exclude.dtype != torch.bool:  # one bank entry per ECG
                if exclude.shape != similarity.shape[:1]:
                    raise ValueError(
                        f"An index `exclude` must have shape (ECGs,) = ({similarity.shape[0]},), got "
                        f"{tuple(exclude.shape)}; pass a boolean (ECGs, bank entries) mask to exclude several."
                    )
                exclude = F.one_hot(exclude.long(), similarity.shape[1]).bool()
            if exclude.shape != similarity.shape:
                raise ValueError(
                    f"A boolean `exclude` must have shape (ECGs, bank entries) = {tuple(similarity.shape)}, got "
                    f"{tuple(exclude.shape)}."
                )
            left = (~exclude).sum(dim=1).min().item()
            if left < self.config.num_retrieved_reports:
                raise ValueError(
                    f"`exclude` leaves an ECG {left} bank entries, fewer than num_retrieved_reports "
                    f"({self.config.num_retrieved_reports})."
                )
            similarity = similarity.masked_fill(exclude, -2.0)
        return similarity.topk(self.config.num_retrieved_reports, dim=-1).indices

    def _with_context(self, prompt_ids, retrieved_indices=None, findings=None):
        """Per ECG, its findings text and then its retrieved reports' context ids, inserted between the ECG prefix
        and the instruction."""
        if retrieved_indices is None and findings is None:
            return prompt_ids
        if retrieved_indices is not None and retrieved_indices.shape != (
            len(prompt_ids),
            self.config.num_retrieved_reports,
        ):
            raise ValueError(
                f"`retrieved_indices` must have shape ({len(prompt_ids)}, {self.config.num_retrieved_reports}), got "
                f"{tuple(retrieved_indices.shape)}."
            )
        findings_contexts = (
            self._findings_context(findings) if findings is not None else [[] for _ in range(len(prompt_ids))]
        )
        if len(findings_contexts) != len(prompt_ids):
            raise ValueError(f"`findings` has {len(findings_contexts)} rows for {len(prompt_ids)} ECGs.")
        retrieved_rows = retrieved_indices.tolist() if retrieved_indices is not None else [[]] * len(prompt_ids)
        rows = []
        for (before, after), findings_context, indices in zip(prompt_ids, findings_contexts, retrieved_rows):
            retrieved = [
                token for index in indices for token in self.retrieval_context_ids[index].tolist() if token >= 0
            ]
            rows.append((before, findings_context + retrieved + list(after)))
        return rows

    # ------------------------------------------------------------------------------------------------ inputs

    def _default_prompt_ids(self) -> tuple[list[int], list[int]]:
        if self.config.prompt_ids_before_ecg is None:
            raise ValueError(
                "The model has no tokenised prompt (config.prompt_ids_before_ecg is None); call "
                "model.set_prompt(tokenizer) once, or pass `prompt` with `tokenizer`."
            )
        return list(self.config.prompt_ids_before_ecg), list(self.config.prompt_ids_after_ecg)

    def _prompt_ids(self, prompt, batch_size: int, tokenizer) -> list[tuple[list[int], list[int]]]:
        """One `(before, after)` pair of prompt token ids per ECG, from `prompt` (see [`generate`])."""
        if prompt is None:
            return [self._default_prompt_ids()] * batch_size
        prompts = [prompt] * batch_size if isinstance(prompt, str) else list(prompt)
        if len(prompts) != batch_size:
            raise ValueError(f"Got {len(prompts)} prompts for {batch_size} ECGs; give one prompt, or one per ECG.")
        if tokenizer is None:
            raise ValueError("A text `prompt` needs the `tokenizer` (e.g. `processor.tokenizer`) to tokenise it.")
        return [tokenize_prompt(tokenizer, text, self.config.system_prompt) for text in prompts]

    def build_inputs(
        self,
        prefix_embeds: torch.Tensor,
        prefix_mask: torch.Tensor,
        prompt_ids: list[tuple[list[int], list[int]]],
        report_ids: torch.Tensor | None = None,
        report_mask: torch.Tensor | None = None,
        report_labels: torch.Tensor | None = None,
        padding_side: str = "right",
    ) -> tuple[torch.FloatTensor, torch.LongTensor, torch.LongTensor]:
        """
        Assembles the language model input `[prompt before] [ECG prefix] [prompt after] [report]` of every ECG and
        pads the batch.

        Args:
            prefix_embeds (`torch.FloatTensor` of shape `(B, P, D)`) and prefix_mask (`(B, P)`): from [`ecg_prefix`].
            prompt_ids: per ECG, the prompt token ids before and after the prefix.
            report_ids (`torch.LongTensor` of shape `(B, R)`, *optional*): report tokens (padding where
                `report_mask` is 0).
            report_mask (`torch.Tensor` of shape `(B, R)`, *optional*): 1 = real report token.
            report_labels (`torch.LongTensor` of shape `(B, R)`, *optional*): targets of the report positions
                (defaults to `report_ids`, -100 at padding).
            padding_side (`str`): `"right"` for training, `"left"` for generation.

        Returns:
            `(inputs_embeds (B, S, D), attention_mask (B, S), labels (B, S))`; labels are -100 on the prompt,
            prefix and padding positions.
        """
        embedding = self.language_model.get_input_embeddings()
        device = prefix_embeds.device
        pad_id = self.config.pad_token_id_for_generation
        if report_ids is not None:
            if report_mask is None:
                report_mask = torch.ones_like(report_ids)
            if report_labels is None:
                report_labels = report_ids.masked_fill(report_mask == 0, -100)
            if report_labels.shape != report_ids.shape or report_mask.shape != report_ids.shape:
                raise ValueError(
                    f"`labels` {tuple(report_labels.shape)} and `attention_mask` {tuple(report_mask.shape)} must have "
                    f"the shape of `input_ids` {tuple(report_ids.shape)}."
                )
        rows = []
        for index, (before, after) in enumerate(prompt_ids):
            ids_before = torch.tensor(before, dtype=torch.long, device=device)
            ids_after = torch.tensor(after, dtype=torch.long, device=device)
            pieces = [embedding(ids_before), prefix_embeds[index], embedding(ids_after)]
            masks = [
                torch.ones(len(before), dtype=torch.long, device=device),
                prefix_mask[index].long(),
                torch.ones(len(after), dtype=torch.long, device=device),
            ]
            labels = [torch.full((len(before) + prefix_embeds.shape[1] + len(after),), -100, device=device)]
            if report_ids is not None:
                keep = report_mask[index].bool()
                pieces.append(embedding(report_ids[index][keep]))
                masks.append(torch.ones(int(keep.sum()), dtype=torch.long, device=device))
                labels.append(report_labels[index][keep])
            rows.append((torch.cat(pieces), torch.cat(masks), torch.cat(labels)))

        length = max(row[0].shape[0] for row in rows)
        width = prefix_embeds.shape[-1]
        pad_embed = embedding(torch.tensor(pad_id, device=device))
        inputs_embeds = pad_embed.expand(len(rows), length, width).clone()
        attention_mask = torch.zeros(len(rows), length, dtype=torch.long, device=device)
        labels = torch.full((len(rows), length), -100, dtype=torch.long, device=device)
        for index, (embeds, mask, row_labels) in enumerate(rows):
            span = slice(length - embeds.shape[0], length) if padding_side == "left" else slice(0, embeds.shape[0])
            inputs_embeds[index, span] = embeds
            attention_mask[index, span] = mask
            labels[index, span] = row_labels
        return inputs_embeds, attention_mask, labels

    # ------------------------------------------------------------------------------------------------ forward

    def forward(
        self,
        input_values: torch.Tensor | None = None,
        lead_mask: torch.Tensor | None = None,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        ecg_features: torch.Tensor | None = None,
        ecg_feature_mask: torch.Tensor | None = None,
        retrieved_indices: torch.Tensor | None = None,
        findings: torch.Tensor | None = None,
        return_dict: bool | None = None,
    ) -> MeritReportGenerationOutput | tuple:
        r"""
        Teacher-forced pass over `[prompt] [ECG prefix] [prompt] [report]` with the config's default prompt.

        Args:
            input_values (`torch.FloatTensor` of shape `(B, L, T)`): preprocessed ECGs.
            lead_mask (`torch.Tensor` of shape `(B, L)`, *optional*): 1 = recorded lead.
            input_ids (`torch.LongTensor` of shape `(B, R)`, *optional*): the report tokens, ending with the
                end-of-report id, right-padded (see [`tokenize_reports`]).
            attention_mask (`torch.Tensor` of shape `(B, R)`, *optional*): 1 = real report token.
            labels (`torch.LongTensor` of shape `(B, R)`, *optional*): targets of the report positions; default
                `input_ids` with -100 at padding. The prompt and prefix positions never count in the loss.
            ecg_features (`torch.FloatTensor` of shape `(B, F, H)`, *optional*): precomputed [`encode_ecg`]
                features instead of `input_values` (a frozen encoder's features cached once).
            ecg_feature_mask (`torch.BoolTensor` of shape `(B, F)`, *optional*): their mask.
            retrieved_indices (`torch.LongTensor` of shape `(B, k)`, *optional*): with retrieval
                (`config.num_retrieved_reports` = k), the bank entries placed in each prompt; default: [`retrieve`]
                on the pooled features (training passes indices retrieved among other patients' records, so no record
                reads its own report or its patient's).
            findings (`torch.BoolTensor` of shape `(B, C)`, *optional*): with findings-conditioned generation
                (`config.findings_labels`), the statements written into each prompt; default: [`predict_findings`]
                on the pooled features (training passes out-of-fold predictions, as noisy as at test time).
            return_dict (`bool`, *optional*): return a [`MeritReportGenerationOutput`] rather than a tuple.

        Returns:
            [`MeritReportGenerationOutput`]; `loss` is the mean cross-entropy of the next-token predictions of the
            report tokens (the first report token is predicted from the last prompt position).
        """
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        if input_ids is None and (labels is not None or attention_mask is not None):
            raise ValueError(
                "`labels` and `attention_mask` describe the report tokens: pass the reports as `input_ids`."
            )
        prefix_embeds, prefix_mask, retrieved_indices, findings = self._prefix_inputs(
            input_values, lead_mask, ecg_features, ecg_feature_mask, retrieved_indices, findings
        )
        prompt_ids = self._with_context(
            [self._default_prompt_ids()] * prefix_embeds.shape[0], retrieved_indices, findings
        )
        inputs_embeds, full_mask, full_labels = self.build_inputs(
            prefix_embeds, prefix_mask, prompt_ids, input_ids, attention_mask, labels, padding_side="right"
        )
        position_ids = position_ids_from_mask(full_mask)
        output = self.language_model(
            inputs_embeds=inputs_embeds,
            attention_mask=full_mask,
            position_ids=position_ids,
            labels=full_labels if input_ids is not None else None,
            return_dict=True,
            use_cache=False,
        )
        result = MeritReportGenerationOutput(
            loss=output.loss, logits=output.logits, labels=full_labels, attention_mask=full_mask
        )
        return result if return_dict else result.to_tuple()

    @torch.no_grad()
    def generate(
        self,
        input_values: torch.Tensor | None = None,
        lead_mask: torch.Tensor | None = None,
        prompt: str | list[str] | None = None,
        ecg_features: torch.Tensor | None = None,
        ecg_feature_mask: torch.Tensor | None = None,
        tokenizer=None,
        retrieved_indices: torch.Tensor | None = None,
        findings: torch.Tensor | None = None,
        **generation_kwargs,
    ) -> torch.LongTensor:
        r"""
        Writes the report of each ECG. The batch is left-padded, so each ECG gets the report it would get alone.

        Args:
            input_values (`torch.FloatTensor` of shape `(B, L, T)`): preprocessed ECGs.
            lead_mask (`torch.Tensor` of shape `(B, L)`, *optional*): 1 = recorded lead.
            prompt (`str` or `list[str]`, *optional*): an instruction replacing `config.instruction` (one for all
                ECGs, or one per ECG); needs `tokenizer`. Default: the config's tokenised prompt.
            ecg_features (`torch.FloatTensor` of shape `(B, F, H)`, *optional*): precomputed [`encode_ecg`] features
                instead of `input_values` (e.g. constant or shuffled features for ECG-blind baselines).
            ecg_feature_mask (`torch.BoolTensor` of shape `(B, F)`, *optional*): their mask.
            tokenizer (*optional*): tokenises a text `prompt`.
            retrieved_indices (`torch.LongTensor` of shape `(B, k)`, *optional*): with retrieval, the bank entries
                placed in each prompt (default: the k most similar to each ECG, [`retrieve`]).
            findings (`torch.BoolTensor` of shape `(B, C)`, *optional*): with findings-conditioned generation, the
                statements written into each prompt (default: [`predict_findings`] on the pooled features).
            generation_kwargs: passed to the language model's `generate`, on top of `config.generation_defaults`
                (`max_new_tokens` defaults to 64; greedy unless `do_sample=True`).

        Returns:
            `torch.LongTensor` of shape `(B, new_tokens)`: only the generated tokens (decode them with the
            processor's `batch_decode(..., skip_special_tokens=True)`); finished reports are padded with the pad id.
        """
        prefix_embeds, prefix_mask, retrieved_indices, findings = self._prefix_inputs(
            input_values, lead_mask, ecg_features, ecg_feature_mask, retrieved_indices, findings
        )
        prompt_ids = self._with_context(
            self._prompt_ids(prompt, prefix_embeds.shape[0], tokenizer), retrieved_indices, findings
        )
        inputs_embeds, attention_mask, _ = self.build_inputs(
            prefix_embeds, prefix_mask, prompt_ids, padding_side="left"
        )
        generation_kwargs = {**(self.config.generation_defaults or {}), **generation_kwargs}
        if "max_new_tokens" not in generation_kwargs and "max_length" not in generation_kwargs:
            generation_kwargs["max_new_tokens"] = 64
        generation_kwargs.setdefault("do_sample", False)
        generation_kwargs.setdefault("pad_token_id", self.config.pad_token_id_for_generation)
        generation_kwargs.setdefault("eos_token_id", self.config.eos_token_id_for_generation)
        return self.language_model.generate(
            inputs_embeds=inputs_embeds, attention_mask=attention_mask, **generation_kwargs
        )

    # ------------------------------------------------------------------------------------------------ LoRA

    @property
    def has_lora(self) -> bool:
        """Whether the language model carries (un-merged) LoRA adapters."""
        return hasattr(self.language_model, "peft_config")

    def enable_lora(
        self,
        rank: int = 8,
        alpha: int = 16,
        dropout: float = 0.0,
        target_modules: tuple[str, ...] | list[str] = ("q_proj", "k_proj", "v_proj", "o_proj"),
    ) -> None:
        """
        Adds LoRA adapters (through `peft`) to `target_modules` of the language model; its other weights are frozen.
        They are merged into the weights by [`merge_lora`], which `save_pretrained` applies to a copy.
        """
        peft = _require_peft()
        if self.has_lora:
            raise ValueError("The language model already has LoRA adapters; merge them (merge_lora()) first.")
        lora_config = peft.LoraConfig(
            r=rank, lora_alpha=alpha, lora_dropout=dropout, target_modules=list(target_modules), bias="none"
        )
        self.language_model = peft.get_peft_model(self.language_model, lora_config)

    def merge_lora(self) -> None:
        """Merges the LoRA adapters into the language model's weights and removes them (exact: W + scale * B A)."""
        if not self.has_lora:
            raise ValueError("The language model has no LoRA adapters to merge.")
        self.language_model = self.language_model.merge_and_unload()

    def save_pretrained(self, save_directory, *args, **kwargs):
        """
        `PreTrainedModel.save_pretrained` with the report generator's `auto_map`. LoRA adapters are merged into the
        saved weights (on a copy; this model keeps its adapters), so the checkpoint is an ordinary one.
        """
        if self.has_lora:
            if kwargs.get("state_dict") is not None:
                raise ValueError(
                    "save_pretrained got a `state_dict` while the model has un-merged LoRA adapters; call merge_lora() "
                    "first (a state dict with adapter keys would not load into MeritForReportGeneration)."
                )
            merged = copy.deepcopy(self)
            merged.merge_lora()
            return merged.save_pretrained(save_directory, *args, **kwargs)
        self.config.auto_map = {
            **(getattr(self.config, "auto_map", None) or {}),
            "AutoConfig": "configuration_merit_report.MeritReportGenerationConfig",
            "AutoModel": "modeling_merit_report.MeritForReportGeneration",
        }
        from .pipeline_merit import add_pipelines_to_checkpoint

        # custom_pipelines in config.json + pipeline/handler files
        add_pipelines_to_checkpoint(self, save_directory, kwargs.get("is_main_process", True))
        return super(MeritPreTrainedModel, self).save_pretrained(save_directory, *args, **kwargs)

    @classmethod
    def from_pretrained(cls, *args, **kwargs):
        """
        `PreTrainedModel.from_pretrained`, strict: a checkpoint that lacks weights of the model (e.g. one holding
        un-merged LoRA adapter weights under other names) raises a `ValueError` instead of loading with those weights
        silently re-initialised.
        """
        want_info = kwargs.pop("output_loading_info", False)
        model, info = super().from_pretrained(*args, output_loading_info=True, **kwargs)
        missing = sorted(info.get("missing_keys") or [])
        unexpected = sorted(info.get("unexpected_keys") or [])
        if missing or any(marker in key for key in unexpected for marker in LORA_KEY_MARKERS):
            adapter_hint = (
                " It holds LoRA adapter weights that were never merged: rebuild the model, call enable_lora() with "
                "the same settings, load the state dict, then merge_lora() and save_pretrained()."
                if any(marker in key for key in unexpected for marker in LORA_KEY_MARKERS)
                else ""
            )
            raise ValueError(
                f"The checkpoint {args[0] if args else ''} lacks {len(missing)} weight(s) of "
                f"{cls.__name__} (e.g. {missing[:3]}); loading it would leave them randomly initialised.{adapter_hint}"
            )
        return (model, info) if want_info else model


def position_ids_from_mask(attention_mask: torch.Tensor) -> torch.LongTensor:
    """Positions `(B, S)` counting only attended tokens (0 on padding), as `generate` computes them."""
    return (attention_mask.long().cumsum(-1) - 1).masked_fill(attention_mask == 0, 0)


def load_ecg_encoder(model_name_or_path: str, **kwargs) -> MeritECGModel:
    """
    The ECG encoder of any MERIT checkpoint (its `ecg_config` and `ecg_model.*` weights, or a bare ECG tower), with
    every encoder weight loaded (a `ValueError` names missing ones).
    """
    ecg_config = MeritECGConfig.from_pretrained(model_name_or_path, **kwargs)
    verbosity = logging.get_verbosity()
    logging.set_verbosity_error()  # the other towers' weights are expected to be left out; do not list them
    try:
        encoder, info = MeritECGModel.from_pretrained(
            model_name_or_path, config=ecg_config, output_loading_info=True, **kwargs
        )
    finally:
        logging.set_verbosity(verbosity)
    if info.get("missing_keys"):
        raise ValueError(
            f"{model_name_or_path} does not hold a complete MERIT ECG encoder: missing {sorted(info['missing_keys'])[:5]}."
        )
    return encoder


__all__ = ["MeritForReportGeneration", "tokenize_prompt", "tokenize_reports", "load_ecg_encoder"]
