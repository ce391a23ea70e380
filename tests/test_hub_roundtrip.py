"""A saved MERIT checkpoint loads with trust_remote_code in a fresh process where `modeling_merit` is not importable."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from modeling_merit import MeritConfig, MeritFeatureExtractor, MeritForPreTraining, MeritProcessor


REMOTE_LOAD = textwrap.dedent(
    """
    import sys
    sys.modules["modeling_merit"] = None  # the installed package must not be used
    try:
        import modeling_merit  # noqa: F401
    except ImportError:
        pass
    else:
        raise SystemExit("modeling_merit is importable; the test would not exercise remote code")
    import numpy as np
    import torch
    from transformers import AutoModel, AutoModelForPreTraining, AutoProcessor

    checkpoint, record, out = sys.argv[1:4]
    model, info = AutoModel.from_pretrained(checkpoint, trust_remote_code=True, output_loading_info=True)
    assert not any(info.values()), info  # the dual encoder inside the pretraining checkpoint, nothing left over
    pretraining, info = AutoModelForPreTraining.from_pretrained(checkpoint, trust_remote_code=True, output_loading_info=True)
    assert not any(info.values()), info
    eager = AutoModel.from_pretrained(checkpoint, trust_remote_code=True, attn_implementation="eager").eval()
    assert eager.ecg_model.layers[0].attention.config._attn_implementation == "eager"
    model, pretraining = model.eval(), pretraining.eval()
    processor = AutoProcessor.from_pretrained(checkpoint, trust_remote_code=True)
    inputs = processor(ecg=record, text=["sinus rhythm, normal ecg"], return_tensors="pt")
    with torch.no_grad():
        ecg = model.get_ecg_features(inputs["input_values"], inputs["lead_mask"])
        ecg_eager = eager.get_ecg_features(inputs["input_values"], inputs["lead_mask"])
        text = model.get_text_features(inputs["input_ids"], inputs["attention_mask"])
        noise = torch.linspace(0, 1, 12 * 20).reshape(1, 12, 20)
        loss = pretraining(**inputs, noise=noise).loss
    np.savez(out, input_values=inputs["input_values"].numpy(), ecg=ecg.numpy(), ecg_eager=ecg_eager.numpy(),
             text=text.numpy(), loss=loss.numpy(), model_class=type(model).__module__ + "." + type(model).__name__)
    """
)


@pytest.mark.slow
def test_trust_remote_code_in_fresh_process(tmp_path, ptbxl_sample_dir, tokenizer):
    torch.manual_seed(0)
    checkpoint = tmp_path / "checkpoint"
    model = MeritForPreTraining(MeritConfig.from_preset("tiny")).eval()
    processor = MeritProcessor(MeritFeatureExtractor(), tokenizer)
    model.save_pretrained(checkpoint)
    processor.save_pretrained(checkpoint)

    saved = {path.name for path in checkpoint.iterdir()}
    assert {"model.safetensors", "config.json", "configuration_merit.py", "modeling_merit.py"} <= saved
    assert {"feature_extraction_merit.py", "processing_merit.py", "tokenizer.json"} <= saved
    assert not any(name.endswith((".bin", ".pt", ".pkl", ".pth")) for name in saved)
    auto_map = json.loads((checkpoint / "config.json").read_text())["auto_map"]
    assert auto_map["AutoModel"] == "modeling_merit.MeritModel"
    assert auto_map["AutoModelForPreTraining"] == "modeling_merit.MeritForPreTraining"

    record = str(ptbxl_sample_dir / "records500" / "00000" / "00001_hr")
    script = tmp_path / "remote_load.py"
    script.write_text(REMOTE_LOAD)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH",)}
    env.update(HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "hf_home"), PYTHONNOUSERSITE="1")
    result = subprocess.run(
        [sys.executable, str(script), str(checkpoint), record, str(tmp_path / "remote.npz")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    remote = np.load(tmp_path / "remote.npz")
    assert str(remote["model_class"]).startswith("transformers_modules.")

    inputs = processor(ecg=record, text=["sinus rhythm, normal ecg"], return_tensors="pt")
    with torch.no_grad():
        ecg = model.get_ecg_features(inputs["input_values"], inputs["lead_mask"])
        text = model.get_text_features(inputs["input_ids"], inputs["attention_mask"])
        loss = model(**inputs, noise=torch.linspace(0, 1, 12 * 20).reshape(1, 12, 20)).loss
    np.testing.assert_array_equal(remote["input_values"], inputs["input_values"].numpy())
    np.testing.assert_allclose(remote["ecg"], ecg.numpy(), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(remote["ecg_eager"], ecg.numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(remote["text"], text.numpy(), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(remote["loss"], loss.numpy(), rtol=1e-6)
