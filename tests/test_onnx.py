"""ONNX export (`merit_cli.onnx_export`): ONNX Runtime against PyTorch on real PTB-XL records of the excerpt (fp32
within 1e-4, batch sizes 1 and 5, a record with missing leads), the text encoder and the precomputed zero-shot
labels against the zero-shot pipeline's code, `preprocessing.json` against the feature extractor, and the int8
variants."""

import json

import numpy as np
import pytest
import torch
import wfdb


pytestmark = pytest.mark.slow  # one export of a tiny model takes 10-20 s on one thread
onnxruntime = pytest.importorskip("onnxruntime", reason="the ONNX tests need the `onnx` extra: pip install -e .[onnx]")

from merit_cli.onnx_export import (  # noqa: E402
    ECG_ENCODER_FILE,
    PREPROCESSING_FILE,
    TEXT_ENCODER_FILE,
    ZERO_SHOT_LABELS_FILE,
    default_zero_shot_labels,
    export_onnx,
    preprocessing_config,
)
from modeling_merit import MeritConfig, MeritFeatureExtractor, MeritModel, MeritProcessor  # noqa: E402
from modeling_merit.zero_shot_merit import DEFAULT_TEMPLATES, build_class_prompts, embed_class_prompts  # noqa: E402


TOLERANCE = 1e-4
RECORDS = ["00001_hr", "00002_hr", "00003_hr", "00008_hr", "00017_hr"]
MISSING_LEADS = ["V4", "V5", "V6"]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, tokenizer):
    """A tiny random dual encoder with the demo's projections: `mlp_bn` on the ECG side, `standardize` (batch norm
    without affine parameters) on the text side, both on running statistics in inference."""
    torch.manual_seed(0)
    model = MeritModel(MeritConfig.from_preset("tiny", text_projection_head="standardize"))
    with torch.no_grad():  # statistics that are not the identity, so a mistake in eval-mode batch norm would show
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm1d):
                module.running_mean.normal_(0.0, 0.5)
                module.running_var.uniform_(0.5, 2.0)
    directory = tmp_path_factory.mktemp("onnx") / "checkpoint"
    model.save_pretrained(directory)
    MeritProcessor(MeritFeatureExtractor(), tokenizer).save_pretrained(directory)
    return directory


@pytest.fixture(scope="module")
def exported(checkpoint, tmp_path_factory):
    output_dir = tmp_path_factory.mktemp("onnx-export")
    return output_dir, export_onnx(checkpoint, output_dir, int8=True)


@pytest.fixture(scope="module")
def model(checkpoint):
    return MeritModel.from_pretrained(checkpoint).eval()


@pytest.fixture(scope="module")
def real_batch(checkpoint, ptbxl_sample_dir):
    """Five real 500 Hz PTB-XL records preprocessed by the checkpoint's processor; the last one without V4-V6."""
    processor = MeritProcessor.from_pretrained(checkpoint)
    paths = [str(ptbxl_sample_dir / "records500" / "00000" / name) for name in RECORDS]
    signal, fields = wfdb.rdsamp(paths[-1])
    kept = [index for index, name in enumerate(fields["sig_name"]) if name.upper() not in MISSING_LEADS]
    partial = {"ecg": signal[:, kept].T, "lead_names": [fields["sig_name"][index] for index in kept]}
    whole = processor.feature_extractor(paths[:-1], return_tensors="np")
    missing = processor.feature_extractor(
        partial["ecg"], sampling_rate=fields["fs"], lead_names=partial["lead_names"], return_tensors="np"
    )
    return {
        name: np.concatenate([whole[name], missing[name]]).astype(np.float32 if name == "input_values" else np.int64)
        for name in ("input_values", "lead_mask")
    }


def session(path):
    return onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def torch_ecg_outputs(model, batch):
    with torch.inference_mode():
        inputs = {name: torch.from_numpy(value) for name, value in batch.items()}
        pooled = model.ecg_model(**inputs, return_dict=True).pooler_output
        embedding = torch.nn.functional.normalize(model.get_ecg_features(**inputs), dim=-1)
    return pooled.numpy(), embedding.numpy()


def test_export_reports_files_sizes_and_parity(exported):
    output_dir, result = exported
    for name in ("ecg_encoder", "text_encoder", "preprocessing", "zero_shot_labels", "ecg_encoder_int8"):
        assert result["sizes"][name] == (output_dir / result["files"][name].split("/")[-1]).stat().st_size > 0
    assert (output_dir / "tokenizer.json").is_file()
    assert max(result["max_abs_diff"].values()) <= TOLERANCE


@pytest.mark.parametrize("rows", [[0], [4], [0, 1, 2, 3, 4]], ids=["batch1", "batch1-missing-leads", "batch5"])
def test_ecg_encoder_matches_pytorch_on_real_records(exported, model, real_batch, rows, single_torch_thread):
    output_dir, _ = exported
    batch = {name: value[rows] for name, value in real_batch.items()}
    assert batch["lead_mask"][-1].sum() == (12 - len(MISSING_LEADS) if rows[-1] == 4 else 12)
    pooled, embedding = session(output_dir / ECG_ENCODER_FILE).run(["pooled", "embedding"], batch)
    expected_pooled, expected_embedding = torch_ecg_outputs(model, batch)
    assert pooled.shape == expected_pooled.shape and embedding.shape == (len(rows), model.config.projection_dim)
    assert np.abs(pooled - expected_pooled).max() <= TOLERANCE
    assert np.abs(embedding - expected_embedding).max() <= TOLERANCE
    np.testing.assert_allclose(np.linalg.norm(embedding, axis=1), 1.0, atol=1e-5)


def test_missing_leads_are_ignored_whatever_they_contain(exported, real_batch):
    """The lead-mask semantics survive the export: a missing lead's samples cannot change the output."""
    output_dir, _ = exported
    batch = {name: value[[4]].copy() for name, value in real_batch.items()}
    encoder = session(output_dir / ECG_ENCODER_FILE)
    reference = encoder.run(["embedding"], batch)[0]
    batch["input_values"][0, -len(MISSING_LEADS) :] = np.random.default_rng(0).normal(size=(3, 1000)) * 5
    assert np.abs(encoder.run(["embedding"], batch)[0] - reference).max() <= 1e-6
    batch["lead_mask"][0, -1] = 1  # ... while marking the lead present does change it
    assert np.abs(encoder.run(["embedding"], batch)[0] - reference).max() > 1e-3


def test_text_encoder_and_default_labels_match_the_zero_shot_code(exported, model, checkpoint):
    output_dir, _ = exported
    processor = MeritProcessor.from_pretrained(checkpoint)
    labels = json.loads((output_dir / ZERO_SHOT_LABELS_FILE).read_text())
    assert labels["labels"] == default_zero_shot_labels()[: len(labels["labels"])] and len(labels["labels"]) == 5
    prompts = build_class_prompts({label: label for label in labels["labels"]}, DEFAULT_TEMPLATES)
    assert labels["prompts"] == prompts
    expected = embed_class_prompts(model, processor, prompts).numpy()
    assert np.abs(np.asarray(labels["embeddings"]) - expected).max() <= TOLERANCE

    texts = ["sinus rhythm", "Findings consistent with ST/T change.", "vorhofflimmern mit schneller überleitung"]
    tokens = processor(text=texts, return_tensors="np")
    feeds = {name: tokens[name].astype(np.int64) for name in ("input_ids", "attention_mask")}
    (embedding,) = session(output_dir / TEXT_ENCODER_FILE).run(["text_embedding"], feeds)
    with torch.inference_mode():
        reference = model.get_text_features(**{name: torch.from_numpy(value) for name, value in feeds.items()})
    assert np.abs(embedding - torch.nn.functional.normalize(reference, dim=-1).numpy()).max() <= TOLERANCE


def test_preprocessing_json_is_the_feature_extractor_config(exported, tokenizer):
    output_dir, _ = exported
    written = json.loads((output_dir / PREPROCESSING_FILE).read_text())
    extractor = MeritFeatureExtractor()
    assert written["sampling_rate"] == extractor.sampling_rate and written["num_samples"] == extractor.num_samples
    assert written["lead_names"] == extractor.lead_names and written["bandpass"] is None
    assert written["scaling"] == "per_lead_zscore" and written["nan_policy"] == "interpolate"

    custom = MeritFeatureExtractor(
        sampling_rate=250, num_samples=2500, bandpass=[0.5, 40.0], scaling="per_record_zscore"
    )
    config = preprocessing_config(MeritProcessor(custom, tokenizer, max_text_length=64))
    assert (config["sampling_rate"], config["num_samples"], config["scaling"]) == (250.0, 2500, "per_record_zscore")
    assert config["max_text_length"] == 64 and config["bandpass"]["padlen"] == 500
    # the written filter reproduces the extractor's band-pass step on a real lead (filter applied to the whole record)
    from scipy import signal as scipy_signal

    lead = np.random.default_rng(1).normal(size=3000).cumsum()
    sos = np.asarray(config["bandpass"]["sos"])
    expected = scipy_signal.sosfiltfilt(sos, lead, padlen=500)
    features = custom(lead[None].repeat(12, 0), sampling_rate=250, return_tensors="np")["input_values"][0, 0]
    cropped = expected[250:2750]  # centre crop of 2500 from 3000 samples
    np.testing.assert_allclose(features, (cropped - cropped.mean()) / cropped.std(), atol=1e-4)
    np.testing.assert_allclose(np.asarray(config["bandpass"]["zi"]), scipy_signal.sosfilt_zi(sos))


def test_int8_encoder_is_smaller_and_close(exported, model, real_batch):
    _, result = exported
    assert result["sizes"]["ecg_encoder_int8"] < 0.6 * result["sizes"]["ecg_encoder"]
    assert result["sizes"]["text_encoder_int8"] < 0.6 * result["sizes"]["text_encoder"]
    (embedding,) = session(result["files"]["ecg_encoder_int8"]).run(["embedding"], real_batch)
    _, expected = torch_ecg_outputs(model, real_batch)
    cosine = (embedding * expected).sum(axis=1)
    assert cosine.min() > 0.95, cosine


def test_readme_onnx_snippet_runs(exported, checkpoint, model, repo_root):
    """The README's ONNX Runtime example runs as written (paths pointed at this test's checkpoint and export)."""
    import re

    section = (repo_root / "README.md").read_text().split("### ONNX export", 1)[1]
    snippet = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    output_dir, _ = exported
    assert '"outputs/merit-ptbxl-sample"' in snippet and '"onnx/ecg_encoder.int8.onnx"' in snippet
    snippet = snippet.replace('"outputs/merit-ptbxl-sample"', repr(str(checkpoint)))
    snippet = snippet.replace('"onnx/ecg_encoder.int8.onnx"', repr(str(output_dir / "ecg_encoder.int8.onnx")))
    namespace = {}
    exec(compile(snippet, "README.md", "exec"), namespace)
    assert namespace["pooled"].shape == (1, model.config.ecg_config.hidden_size)
    assert namespace["embedding"].shape == (1, model.config.projection_dim)


def test_export_refuses_an_ecg_only_checkpoint(tmp_path, tokenizer):
    from modeling_merit import MeritECGConfig, MeritECGModel

    MeritECGModel(MeritECGConfig.from_preset("tiny")).save_pretrained(tmp_path / "ecg-only")
    with pytest.raises(ValueError, match="is a 'merit_ecg' checkpoint; export_onnx needs a MERIT dual encoder"):
        export_onnx(tmp_path / "ecg-only", tmp_path / "onnx")
    assert not (tmp_path / "onnx").exists()
