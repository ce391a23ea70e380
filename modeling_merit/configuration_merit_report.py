# Copyright 2026 The MERIT authors. Licensed under the Apache License, Version 2.0.
"""Configuration of MERIT ECG-conditioned report generation: a MERIT ECG tower, a projector and a causal LM."""

from transformers import AutoConfig, PreTrainedConfig
from transformers.configuration_utils import SubConfigSpec

from .configuration_merit import MeritECGConfig, _check_choice, _check_positive_int


# The shape of SmolLM2-135M-Instruct, the offline default language model (see merit_training/language_models.py).
SMOLLM2_135M_CONFIG = dict(
    model_type="llama",
    vocab_size=49152,
    hidden_size=576,
    intermediate_size=1536,
    num_hidden_layers=30,
    num_attention_heads=9,
    num_key_value_heads=3,
    head_dim=64,
    max_position_embeddings=8192,
    rms_norm_eps=1e-5,
    rope_parameters={"rope_theta": 100000.0, "rope_type": "default"},
    tie_word_embeddings=True,
    bos_token_id=1,
    eos_token_id=2,
    pad_token_id=2,
)

PREFIX_FEATURES = ("pooled", "per_lead", "time_tokens")
PROJECTOR_INPUT_NORMS = ("batch_norm", "standardize", "none")
RETRIEVAL_SPACES = ("encoder", "ecg-text")
RETRIEVAL_PROJECTION_HEADS = ("mlp_bn", "linear")
PER_CALL_GENERATION_ARGUMENTS = {"max_length", "max_new_tokens", "num_return_sequences"}
"""`generate` arguments that `generation_defaults` may not hold (they size one call's output)."""


class MeritReportGenerationConfig(PreTrainedConfig):
    r"""
    Configuration of [`MeritForReportGeneration`]: the MERIT ECG encoder, a projector ("bridge") that turns its
    features into `num_prefix_tokens` soft tokens in the input of a causal language model, and that language model.

    The LLM reads `[prompt before the ECG] [ECG prefix tokens] [prompt after the ECG]` and writes the report. The
    prompt is the LLM's chat template applied to `system_prompt` and a user turn holding the ECG followed by
    `instruction`; its token ids are stored in `prompt_ids_before_ecg` / `prompt_ids_after_ecg` (set with
    [`MeritForReportGeneration.set_prompt`]), so generation needs no tokenizer.

    Args:
        ecg_config (`dict` or [`MeritECGConfig`], *optional*):
            The ECG tower. Defaults to `MeritECGConfig()` (the `small` preset).
        text_config (`dict` or [`PreTrainedConfig`], *optional*):
            The language model: the config of any causal LM (`AutoModelForCausalLM`). A dict must carry a
            `model_type`; defaults to the shape of SmolLM2-135M-Instruct (Llama, 576 wide, 30 layers).
        prefix_features (`str`, *optional*, defaults to `"pooled"`):
            Which encoder features feed the prefix: `"pooled"` (the pooled ECG vector, projected to all
            `num_prefix_tokens` tokens), `"per_lead"` (the mean patch token of each lead, `num_prefix_tokens /
            num_leads` tokens per lead; missing leads are masked out of the LLM's attention) or `"time_tokens"`
            (the patch tokens averaged over the present leads, then average-pooled along time to
            `num_prefix_tokens` tokens in time order).
        num_prefix_tokens (`int`, *optional*, defaults to 4):
            Number of soft tokens the ECG occupies in the LLM input. A multiple of `ecg_config.num_leads` for
            `"per_lead"`, at most `ecg_config.num_patches_per_lead` for `"time_tokens"`.
        projector_hidden_size (`int`, *optional*, defaults to 1024):
            Width of the hidden layer of the projector MLP.
        projector_num_layers (`int`, *optional*, defaults to 2):
            1: one linear layer; 2: linear -> GELU -> linear.
        projector_input_norm (`str`, *optional*, defaults to `"batch_norm"`):
            Normalisation of the encoder features before the projector, per feature dimension: `"batch_norm"`
            (`BatchNorm1d` with running statistics), `"standardize"` (fixed mean and standard deviation stored in
            the checkpoint, fitted on training features with [`MeritForReportGeneration.fit_projector_statistics`])
            or `"none"`. With a weakly trained encoder the features of different ECGs differ by a tiny fraction of
            their common component, and without normalisation the LLM learns one report for every ECG; keep a
            normalisation unless the encoder's features are already well spread.
        projector_norm_eps (`float`, *optional*, defaults to 1e-6):
            Epsilon added to the variance by the input normalisation (small, because the spread across ECGs of a
            weak encoder's features can itself be ~1e-5).
        freeze_ecg_encoder (`bool`, *optional*, defaults to `True`):
            Keep the ECG encoder frozen (and in eval mode). Training then needs its features only once per record.
        instruction (`str`, *optional*):
            The default instruction, placed after the ECG in the user turn.
        system_prompt (`str`, *optional*, defaults to `"You are a cardiologist."`):
            System message of the chat template (`None`: the template's own default, if any).
        prompt_ids_before_ecg (`list[int]`, *optional*):
            Token ids of the prompt before the ECG prefix (set by `set_prompt`).
        prompt_ids_after_ecg (`list[int]`, *optional*):
            Token ids of the prompt between the ECG prefix and the report (set by `set_prompt`).
        generation_defaults (`dict`, *optional*):
            Decoding settings every [`MeritForReportGeneration.generate`] call starts from (e.g.
            `{"repetition_penalty": 1.3}`, chosen on a validation split); arguments given to `generate`, the pipeline
            or `eval_merit.py --generate_kwargs` override them. `None`: greedy decoding. `max_length`,
            `num_return_sequences` and `max_new_tokens` are per-call settings and not accepted here.
        num_retrieved_reports (`int`, *optional*, defaults to 0):
            Retrieval-augmented generation: with k > 0 the k training reports closest to the ECG (see
            `retrieval_space`) are placed in the prompt, after the ECG prefix, each as
            `"\nReport of a similar ECG: {report}"` (most similar first). The bank (the keys and those reports'
            token ids) is stored with the weights by [`MeritForReportGeneration.set_retrieval_bank`]. 0: off.
        retrieval_space (`str`, *optional*, defaults to `"encoder"`):
            Where the k reports are looked up. `"encoder"`: the reports of the training ECGs whose pooled encoder
            features are most cosine-similar to the ECG's (ECG to ECG). `"ecg-text"`: the training reports whose
            embeddings in a MERIT pretraining checkpoint's ECG-report space are closest to the ECG's projected
            embedding (the contrastive alignment used as the retriever; the checkpoint's ECG projection is stored in
            this model as `retrieval_projection`, frozen).
        retrieval_projection_head (`str`, *optional*):
            With `retrieval_space="ecg-text"`: the architecture of that ECG projection (`"mlp_bn"` or `"linear"`, as
            `MeritConfig.projection_head`; set by `set_retrieval_bank`).
        retrieval_key_size (`int`, *optional*, defaults to 0):
            Width of the bank's keys: the encoder's `hidden_size` (`"encoder"`) or the checkpoint's `projection_dim`
            (`"ecg-text"`); set by `set_retrieval_bank`.
        retrieval_bank_size (`int`, *optional*, defaults to 0):
            Number of entries of the retrieval bank (set by `set_retrieval_bank`; sizes its buffers).
        retrieval_context_length (`int`, *optional*, defaults to 0):
            Token length of the longest bank entry's context text (set by `set_retrieval_bank`).
        findings_labels (`list[str]`, *optional*):
            Findings-conditioned generation: the names of C statements (e.g. PTB-XL's `NORM`, `MI`, `SR`, `AFIB`)
            that a linear classifier on the pooled ECG features predicts; the predicted ones are written into the
            prompt after the ECG prefix as `"\nECG classifier findings: {phrase}. {phrase}."` (`" none."` when no
            statement passes its threshold), so the language model reads them as well as the ECG. The classifier
            (`MeritForReportGeneration.findings_head`) is saved with the weights; training fits it on the training
            ECGs (`train_merit.py --task report_generation --findings ...`). `None`: off.
        findings_phrases (`list[str]`, *optional*):
            The words written into the prompt for each of the C statements (e.g. `"atrial fibrillation"`).
        findings_thresholds (`list[float]`, *optional*):
            The C decision thresholds on the classifier's probabilities (a statement is written when its probability
            is at least its threshold).
        findings_phrase_ids (`list[list[int]]`, *optional*):
            Token ids of the C + 2 pieces of the findings text: the header, each statement's `" {phrase}."`, then
            `" none."` (set by [`MeritForReportGeneration.set_prompt`], so generation needs no tokenizer).

    Example:

    ```python
    >>> from modeling_merit import MeritReportGenerationConfig

    >>> config = MeritReportGenerationConfig(
    ...     ecg_config={"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 128},
    ...     text_config={"model_type": "llama", "vocab_size": 1000, "hidden_size": 32, "intermediate_size": 64,
    ...                  "num_hidden_layers": 2, "num_attention_heads": 2, "num_key_value_heads": 1},
    ...     prefix_features="time_tokens", num_prefix_tokens=5)
    >>> config.num_prefix_features, config.tokens_per_feature
    (5, 1)
    ```"""

    model_type = "merit_report_generation"
    sub_configs_defaults = {
        "ecg_config": MeritECGConfig,
        "text_config": SubConfigSpec(config_class=AutoConfig, model_type="llama", init_kwargs=SMOLLM2_135M_CONFIG),
    }

    ecg_config: dict | MeritECGConfig | None = None
    text_config: dict | PreTrainedConfig | None = None
    prefix_features: str = "pooled"
    num_prefix_tokens: int = 4
    projector_hidden_size: int = 1024
    projector_num_layers: int = 2
    projector_input_norm: str = "batch_norm"
    projector_norm_eps: float = 1e-6
    freeze_ecg_encoder: bool = True
    instruction: str = "Write the report of this 12-lead ECG."
    system_prompt: str | None = "You are a cardiologist."
    prompt_ids_before_ecg: list[int] | None = None
    prompt_ids_after_ecg: list[int] | None = None
    generation_defaults: dict | None = None
    num_retrieved_reports: int = 0
    retrieval_space: str = "encoder"
    retrieval_projection_head: str | None = None
    retrieval_key_size: int = 0
    retrieval_bank_size: int = 0
    retrieval_context_length: int = 0
    findings_labels: list[str] | None = None
    findings_phrases: list[str] | None = None
    findings_thresholds: list[float] | None = None
    findings_phrase_ids: list[list[int]] | None = None

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        _check_choice("prefix_features", self.prefix_features, set(PREFIX_FEATURES))
        _check_choice("projector_input_norm", self.projector_input_norm, set(PROJECTOR_INPUT_NORMS))
        for field in ("num_prefix_tokens", "projector_hidden_size"):
            _check_positive_int(field, getattr(self, field))
        _check_choice("projector_num_layers", self.projector_num_layers, {1, 2})
        if not self.projector_norm_eps > 0:
            raise ValueError(f"`projector_norm_eps` must be > 0, got {self.projector_norm_eps!r}.")
        num_leads = self.ecg_config.num_leads
        if self.prefix_features == "per_lead" and self.num_prefix_tokens % num_leads:
            raise ValueError(
                f"`num_prefix_tokens` ({self.num_prefix_tokens}) must be a multiple of the {num_leads} leads with "
                f"prefix_features='per_lead'; try {num_leads} or {2 * num_leads}."
            )
        if self.prefix_features == "time_tokens" and self.num_prefix_tokens > self.ecg_config.num_patches_per_lead:
            raise ValueError(
                f"`num_prefix_tokens` ({self.num_prefix_tokens}) cannot exceed the "
                f"{self.ecg_config.num_patches_per_lead} patches per lead with prefix_features='time_tokens'."
            )
        if not hasattr(self.text_config, "hidden_size") or not hasattr(self.text_config, "vocab_size"):
            raise ValueError(
                f"`text_config` must describe a causal language model (with `hidden_size` and `vocab_size`), got "
                f"{type(self.text_config).__name__}."
            )
        if self.generation_defaults is not None:
            if not isinstance(self.generation_defaults, dict) or not all(
                isinstance(key, str) for key in self.generation_defaults
            ):
                raise ValueError(
                    "`generation_defaults` must be a dict of `generate` arguments, e.g. {'repetition_penalty': 1.3}; "
                    f"got {self.generation_defaults!r}."
                )
            per_call = sorted(set(self.generation_defaults) & PER_CALL_GENERATION_ARGUMENTS)
            if per_call:
                raise ValueError(
                    f"`generation_defaults` cannot hold {per_call}: they are per-call settings; give them to "
                    "`generate` (or the pipeline) instead."
                )
        _check_choice("retrieval_space", self.retrieval_space, set(RETRIEVAL_SPACES))
        if self.retrieval_projection_head is not None:
            _check_choice("retrieval_projection_head", self.retrieval_projection_head, set(RETRIEVAL_PROJECTION_HEADS))
        for field in (
            "num_retrieved_reports",
            "retrieval_key_size",
            "retrieval_bank_size",
            "retrieval_context_length",
        ):
            value = getattr(self, field)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"`{field}` must be an integer >= 0, got {value!r}.")
        if self.retrieval_space == "encoder" and (
            self.retrieval_projection_head is not None
            or self.retrieval_key_size not in (0, self.ecg_config.hidden_size)
        ):
            raise ValueError(
                "retrieval_space='encoder' retrieves by the pooled encoder features: it takes no "
                f"`retrieval_projection_head` (got {self.retrieval_projection_head!r}) and keys of the encoder's "
                f"hidden_size ({self.ecg_config.hidden_size}; got `retrieval_key_size` {self.retrieval_key_size})."
            )
        bank = self.retrieval_bank_size
        if (
            bank
            and self.retrieval_space == "ecg-text"
            and (self.retrieval_projection_head is None or not self.retrieval_key_size)
        ):
            raise ValueError(
                "A bank in the 'ecg-text' retrieval space needs `retrieval_projection_head` and `retrieval_key_size` "
                "(set by MeritForReportGeneration.set_retrieval_bank with the checkpoint's ECG projection)."
            )
        if bank and self.num_retrieved_reports > bank:
            raise ValueError(
                f"`num_retrieved_reports` ({self.num_retrieved_reports}) exceeds the {bank} reports of the retrieval "
                "bank (`retrieval_bank_size`); lower it or build a larger bank."
            )
        self._check_findings()
        if (self.prompt_ids_before_ecg is None) != (self.prompt_ids_after_ecg is None):
            raise ValueError(
                "`prompt_ids_before_ecg` and `prompt_ids_after_ecg` must be set together (use "
                "MeritForReportGeneration.set_prompt(tokenizer)); got only one of them."
            )

    def _check_findings(self) -> None:
        labels = self.findings_labels
        if labels is None:
            for field in ("findings_phrases", "findings_thresholds", "findings_phrase_ids"):
                if getattr(self, field) is not None:
                    raise ValueError(f"`{field}` is set but `findings_labels` is None; set both or neither.")
            return
        if not labels or not all(isinstance(label, str) and label for label in labels):
            raise ValueError(f"`findings_labels` must be a non-empty list of statement names, got {labels!r}.")
        if len(set(labels)) != len(labels):
            raise ValueError(f"`findings_labels` repeats a statement: {labels!r}.")
        for field in ("findings_phrases", "findings_thresholds"):
            value = getattr(self, field)
            if value is None or len(value) != len(labels):
                raise ValueError(
                    f"`{field}` must give one entry per statement of `findings_labels` ({len(labels)}), got {value!r}."
                )
        if self.findings_phrase_ids is not None and len(self.findings_phrase_ids) != len(labels) + 2:
            raise ValueError(
                f"`findings_phrase_ids` must hold {len(labels) + 2} token lists (header, one per statement, none); "
                f"got {len(self.findings_phrase_ids)}. Call MeritForReportGeneration.set_prompt(tokenizer)."
            )

    @property
    def num_findings(self) -> int:
        """Number of statements of findings-conditioned generation (0: off)."""
        return len(self.findings_labels) if self.findings_labels else 0

    @property
    def num_prefix_features(self) -> int:
        """Number of encoder feature vectors the projector reads per ECG: 1, `num_leads` or `num_prefix_tokens`."""
        return {"pooled": 1, "per_lead": self.ecg_config.num_leads, "time_tokens": self.num_prefix_tokens}[
            self.prefix_features
        ]

    @property
    def tokens_per_feature(self) -> int:
        """Number of prefix tokens the projector makes from each encoder feature vector."""
        return self.num_prefix_tokens // self.num_prefix_features

    @property
    def pad_token_id_for_generation(self) -> int:
        """The LLM's padding id (its end-of-sequence id when it has none)."""
        pad = self.text_config.pad_token_id
        return pad if pad is not None else self.eos_token_id_for_generation

    @property
    def eos_token_id_for_generation(self) -> int:
        """The id that ends a report (the first of the LLM's end-of-sequence ids)."""
        eos = self.text_config.eos_token_id
        if isinstance(eos, (list, tuple)):
            eos = eos[0] if eos else None
        if eos is None:
            raise ValueError(
                "`text_config.eos_token_id` is not set: report generation needs an end-of-report token. Set it to "
                "the tokenizer's end-of-sequence (or separator) id."
            )
        return eos


__all__ = ["MeritReportGenerationConfig"]
