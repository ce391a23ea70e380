# Copyright 2026 The MERIT authors.
# Licensed under the Apache License, Version 2.0.
"""Export a MERIT dual encoder to ONNX, for ONNX Runtime (Python, C#, Java, C++) and onnxruntime-web in a browser.

`export_onnx(checkpoint, output_dir)` writes into `output_dir`:

- `ecg_encoder.onnx`: `input_values` `(B, 12, T)` float32 + `lead_mask` `(B, 12)` int64 (1 = recorded lead) ->
  `pooled` `(B, hidden_size)` (the encoder's pooled output, what a linear probe is trained on) and `embedding`
  `(B, projection_dim)` (the projected ECG embedding, L2-normalised: what zero-shot scoring compares). The batch
  size is dynamic; missing leads are handled exactly as in PyTorch (their samples and tokens are ignored).
- `text_encoder.onnx`: `input_ids` + `attention_mask` `(B, S)` int64 -> `text_embedding` `(B, projection_dim)`, the
  L2-normalised projected text embedding; batch and sequence length are dynamic. The tokenizer files are saved
  beside it (`tokenizer.json`, `vocab.txt`, ...), so new labels can be embedded without Python.
- `zero_shot_labels.json`: the default candidate labels (the PTB-XL superclasses in words), the prompts each one
  expands to (`DEFAULT_TEMPLATES`, as the `zero-shot-ecg-classification` pipeline builds them) and their class
  embeddings, so that a client can score ECGs before (or without) running the text encoder.
- `preprocessing.json`: everything `MeritFeatureExtractor` does (target rate, length, lead order, ignored leads,
  resampling and band-pass filter, crop, scaling, NaN policy), written from the checkpoint's feature extractor,
  with the band-pass filter's coefficients, so that a re-implementation (the static Space's JavaScript) cannot
  drift from it.
- with `int8=True`: `ecg_encoder.int8.onnx` and `text_encoder.int8.onnx`, dynamically quantised (int8 weights of
  the matrix multiplications, activations quantised at run time) with `onnxruntime.quantization`.

The export uses `torch.onnx.export(..., dynamo=True)` (torch.export) at opset `OPSET`, and is checked against
PyTorch with ONNX Runtime on the example batch before it returns.
"""

from __future__ import annotations

import json
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from modeling_merit import CANONICAL_LEADS, MeritConfig, MeritModel, MeritProcessor
from modeling_merit.feature_extraction_merit import (
    _MAX_RESAMPLING_DENOMINATOR,
    _MIN_STD,
    _bandpass_sos,
)
from modeling_merit.zero_shot_merit import DEFAULT_TEMPLATES, build_class_prompts, embed_class_prompts


OPSET = 18
ECG_ENCODER_FILE = "ecg_encoder.onnx"
TEXT_ENCODER_FILE = "text_encoder.onnx"
PREPROCESSING_FILE = "preprocessing.json"
ZERO_SHOT_LABELS_FILE = "zero_shot_labels.json"
PREPROCESSING_FORMAT_VERSION = 1
# The largest difference between ONNX Runtime (fp32) and PyTorch that the export accepts on its example batch.
EXPORT_TOLERANCE = 1e-4


def default_zero_shot_labels() -> list[str]:
    """The PTB-XL diagnostic superclasses in words (`normal ECG`, `myocardial infarction`, ...), in class-code order:
    the classes of the project's zero-shot benchmark, named as the registry describes them."""
    from dataset_scripts.ptbxl.descriptions import PTBXL_SUPERCLASS_DESCRIPTIONS

    return [PTBXL_SUPERCLASS_DESCRIPTIONS[code] for code in sorted(PTBXL_SUPERCLASS_DESCRIPTIONS)]


class MeritECGEncoderForOnnx(nn.Module):
    """The ECG half of a `MeritModel` with the outputs a deployment needs.

    `forward(input_values (B, L, T), lead_mask (B, L))` -> `(pooled (B, H), embedding (B, E))`, where `embedding` is
    `F.normalize(model.get_ecg_features(...))`.
    """

    def __init__(self, model: MeritModel):
        super().__init__()
        self.ecg_model = model.ecg_model
        self.ecg_projection = model.ecg_projection

    def forward(self, input_values: torch.Tensor, lead_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pooled = self.ecg_model(input_values, lead_mask=lead_mask, return_dict=True).pooler_output
        return pooled, F.normalize(self.ecg_projection(pooled), dim=-1)


class MeritTextEncoderForOnnx(nn.Module):
    """The text half of a `MeritModel`: `forward(input_ids (B, S), attention_mask (B, S))` -> `embedding (B, E)`,
    `F.normalize(model.get_text_features(...))` (token type ids are all zero for single sentences, the default)."""

    def __init__(self, model: MeritModel):
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.model.get_text_features(input_ids=input_ids, attention_mask=attention_mask), dim=-1)


def preprocessing_config(processor: MeritProcessor) -> dict:
    """What `processor.feature_extractor` does, as data (see `MeritFeatureExtractor` for each step).

    The band-pass filter runs at the target rate, so its second-order sections (and their steady-state initial
    conditions, `scipy.signal.sosfilt_zi`) are fixed by the config and written out; resampling depends on the input
    rate and is described by the rule `scipy.signal.resample_poly` follows.
    """
    from scipy import signal as scipy_signal

    extractor = processor.feature_extractor
    bandpass = None
    if extractor.bandpass is not None:
        sos = _bandpass_sos(*extractor.bandpass, extractor.filter_order, float(extractor.sampling_rate))
        bandpass = {
            "low_hz": extractor.bandpass[0],
            "high_hz": extractor.bandpass[1],
            "order": extractor.filter_order,
            "method": "zero-phase Butterworth, scipy.signal.sosfiltfilt with odd extension",
            "padlen": round(extractor.sampling_rate / extractor.bandpass[0]),
            "padlen_rule": "min(padlen, n_samples - 1)",
            "sos": sos.tolist(),
            "zi": scipy_signal.sosfilt_zi(sos).tolist(),
        }
    return {
        "format_version": PREPROCESSING_FORMAT_VERSION,
        "feature_extractor": type(extractor).__name__,
        "sampling_rate": float(extractor.sampling_rate),
        "num_samples": int(extractor.num_samples),
        "lead_names": list(extractor.lead_names),
        "ignored_lead_names": list(extractor.ignored_lead_names),
        # standard leads that are not model inputs are ignored too (relevant when `lead_names` is a subset)
        "standard_lead_names": list(CANONICAL_LEADS),
        "lead_name_matching": "case-insensitive, surrounding whitespace ignored",
        "padding_value": float(extractor.padding_value),
        "nan_policy": extractor.nan_policy,
        "resampling": {
            "method": "scipy.signal.resample_poly",
            "ratio": "Fraction(target / source).limit_denominator(max_denominator)",
            "max_denominator": _MAX_RESAMPLING_DENOMINATOR,
            "window": ["kaiser", 5.0],
            "padtype": "line",
            "padtype_single_sample": "edge",
        },
        "bandpass": bandpass,
        "crop": "center",
        "scaling": extractor.scaling,
        "min_std": _MIN_STD,
        "max_text_length": int(processor.max_text_length),
    }


def _export(module: nn.Module, args: tuple, path: Path, input_names, output_names, dynamic_shapes) -> None:
    with warnings.catch_warnings():
        # torch.onnx notes that inputs sharing one Dim share its name, and torch.export that a tree-spec check is
        # deprecated: neither concerns the exported graph.
        warnings.filterwarnings("ignore", message=".*(axis name|LeafSpec).*")
        program = torch.onnx.export(
            module,
            args,
            dynamo=True,
            opset_version=OPSET,
            input_names=input_names,
            output_names=output_names,
            dynamic_shapes=dynamic_shapes,
            external_data=False,
            verbose=False,
        )
    program.save(str(path))


def _check_with_onnxruntime(path: Path, feeds: dict[str, np.ndarray], expected: list[np.ndarray]) -> float:
    """Runs `path` with ONNX Runtime on `feeds`; returns the largest absolute difference from `expected`."""
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    outputs = session.run(None, feeds)
    return max(float(np.max(np.abs(got - want))) for got, want in zip(outputs, expected, strict=True))


def quantize_int8(source: str | os.PathLike, target: str | os.PathLike) -> None:
    """Dynamic int8 quantisation (`onnxruntime.quantization.quantize_dynamic`, signed int8 weights), after ONNX
    Runtime's recommended pre-processing (ONNX shape inference and graph optimisation, which lets every matrix
    multiplication be quantised; its symbolic shape inference does not handle the dynamo export and is skipped)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.shape_inference import quant_pre_process

    with tempfile.TemporaryDirectory(prefix="merit-onnx-") as workdir:
        prepared = os.path.join(workdir, "prepared.onnx")
        quant_pre_process(str(source), prepared, skip_symbolic_shape=True)
        quantize_dynamic(prepared, str(target), weight_type=QuantType.QInt8)


def example_ecg_inputs(processor: MeritProcessor, batch_size: int = 2, seed: int = 0) -> dict[str, np.ndarray]:
    """A synthetic preprocessed batch `(batch_size, 12, num_samples)`; the second record misses its last 3 leads."""
    extractor = processor.feature_extractor
    rng = np.random.default_rng(seed)
    input_values = rng.standard_normal((batch_size, extractor.feature_size, extractor.num_samples)).astype(np.float32)
    lead_mask = np.ones((batch_size, extractor.feature_size), dtype=np.int64)
    if batch_size > 1:
        lead_mask[1, -3:] = 0
        input_values[1, -3:] = 0.0
    return {"input_values": input_values, "lead_mask": lead_mask}


def export_onnx(
    model_name_or_path: str | os.PathLike,
    output_dir: str | os.PathLike,
    int8: bool = False,
    labels: list[str] | None = None,
) -> dict:
    """Exports the ECG and text encoders of a MERIT dual-encoder checkpoint to ONNX (see the module docstring).

    Args:
        model_name_or_path (`str` or `os.PathLike`): a `MeritModel` / `MeritForPreTraining` checkpoint (folder or Hub
            id) saved with its processor.
        output_dir (`str` or `os.PathLike`): where the files go (created if needed).
        int8 (`bool`, *optional*, defaults to `False`): also write dynamically quantised int8 encoders.
        labels (`list[str]`, *optional*): the labels precomputed in `zero_shot_labels.json`; defaults to
            `default_zero_shot_labels()`.

    Returns:
        `dict` with `files` (name -> path, `str`), `sizes` (name -> bytes) and `max_abs_diff` (name -> the largest
        ONNX Runtime vs PyTorch difference on the example batch, fp32 files only).
    """
    from transformers import PretrainedConfig

    model_type = PretrainedConfig.get_config_dict(model_name_or_path)[0].get("model_type")
    if model_type != MeritConfig.model_type:
        raise ValueError(
            f"{model_name_or_path!r} is a {model_type!r} checkpoint; export_onnx needs a MERIT dual encoder "
            f"(model_type {MeritConfig.model_type!r}: MeritModel or MeritForPreTraining, with ECG and text towers)."
        )
    model = MeritModel.from_pretrained(model_name_or_path).eval()
    try:
        processor = MeritProcessor.from_pretrained(model_name_or_path)
    except (OSError, ValueError) as error:
        raise ValueError(
            f"{model_name_or_path!r} has no loadable MeritProcessor ({error}); export_onnx needs the checkpoint saved "
            "with its processor (feature extractor and tokenizer): `processor.save_pretrained(checkpoint)`."
        ) from error
    labels = default_zero_shot_labels() if labels is None else list(labels)
    if not labels or not all(isinstance(label, str) and label.strip() for label in labels):
        raise ValueError(f"`labels` must be a non-empty list of non-empty strings, got {labels!r}.")
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    files, differences = {}, {}

    batch = torch.export.Dim("batch", min=1, max=4096)
    ecg_inputs = example_ecg_inputs(processor)
    ecg_module = MeritECGEncoderForOnnx(model).eval()
    ecg_args = (torch.from_numpy(ecg_inputs["input_values"]), torch.from_numpy(ecg_inputs["lead_mask"]))
    with torch.inference_mode():
        ecg_expected = [tensor.numpy() for tensor in ecg_module(*ecg_args)]
    files["ecg_encoder"] = output_dir / ECG_ENCODER_FILE
    _export(
        ecg_module, ecg_args, files["ecg_encoder"], ["input_values", "lead_mask"], ["pooled", "embedding"],
        {"input_values": {0: batch}, "lead_mask": {0: batch}},
    )  # fmt: skip
    differences["ecg_encoder"] = _check_with_onnxruntime(files["ecg_encoder"], ecg_inputs, ecg_expected)

    sequence = torch.export.Dim("sequence", min=2, max=processor.max_text_length)
    prompts = ["normal ECG", "The electrocardiogram shows atrial fibrillation with a rapid ventricular response."]
    tokens = processor(text=prompts, return_tensors="np")
    text_inputs = {name: tokens[name].astype(np.int64) for name in ("input_ids", "attention_mask")}
    text_module = MeritTextEncoderForOnnx(model).eval()
    text_args = tuple(torch.from_numpy(text_inputs[name]) for name in ("input_ids", "attention_mask"))
    with torch.inference_mode():
        text_expected = [text_module(*text_args).numpy()]
    files["text_encoder"] = output_dir / TEXT_ENCODER_FILE
    _export(
        text_module, text_args, files["text_encoder"], ["input_ids", "attention_mask"], ["text_embedding"],
        {"input_ids": {0: batch, 1: sequence}, "attention_mask": {0: batch, 1: sequence}},
    )  # fmt: skip
    differences["text_encoder"] = _check_with_onnxruntime(files["text_encoder"], text_inputs, text_expected)
    for name, difference in differences.items():
        if not difference <= EXPORT_TOLERANCE:
            raise ValueError(
                f"The exported {name} differs from PyTorch by {difference:.3g} on the example batch (ONNX Runtime, "
                f"fp32); expected at most {EXPORT_TOLERANCE}. Please report this with the checkpoint's config."
            )

    processor.tokenizer.save_pretrained(output_dir)
    files["preprocessing"] = output_dir / PREPROCESSING_FILE
    files["preprocessing"].write_text(json.dumps(preprocessing_config(processor), indent=2) + "\n")

    class_prompts = build_class_prompts({label: label for label in labels}, DEFAULT_TEMPLATES)
    class_embeddings = embed_class_prompts(model, processor, class_prompts).cpu().numpy()
    files["zero_shot_labels"] = output_dir / ZERO_SHOT_LABELS_FILE
    files["zero_shot_labels"].write_text(
        json.dumps(
            {
                "templates": list(DEFAULT_TEMPLATES),
                "labels": labels,
                "prompts": class_prompts,
                "embeddings": class_embeddings.tolist(),
                "score": "(1 + cosine) / 2 of the L2-normalised ECG embedding and the class embedding",
            },
            indent=1,
        )
        + "\n"
    )

    if int8:
        for name in ("ecg_encoder", "text_encoder"):
            files[f"{name}_int8"] = files[name].with_suffix(".int8.onnx")
            quantize_int8(files[name], files[f"{name}_int8"])
    return {
        "files": {name: str(path) for name, path in files.items()},
        "sizes": {name: path.stat().st_size for name, path in files.items()},
        "max_abs_diff": differences,
    }


__all__ = [
    "ECG_ENCODER_FILE",
    "MeritECGEncoderForOnnx",
    "MeritTextEncoderForOnnx",
    "OPSET",
    "PREPROCESSING_FILE",
    "TEXT_ENCODER_FILE",
    "ZERO_SHOT_LABELS_FILE",
    "default_zero_shot_labels",
    "export_onnx",
    "preprocessing_config",
    "quantize_int8",
]
