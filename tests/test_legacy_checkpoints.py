"""Checkpoints written by MERIT 0.1.0 (before `patch_embedding_norm` and `projection_head` existed) still load as
what they were. `tests/fixtures/merit-tiny-v0.1.0` was saved by the 0.1.0 code, with its outputs on a fixed input."""

import json

import numpy as np
import pytest
import torch

from modeling_merit import MeritConfig, MeritECGConfig, MeritForPreTraining, MeritModel


@pytest.fixture(scope="module")
def legacy_dir(repo_root):
    return repo_root / "tests" / "fixtures" / "merit-tiny-v0.1.0"


def test_a_0_1_0_config_loads_with_the_legacy_architecture(legacy_dir):
    saved = json.loads((legacy_dir / "config.json").read_text())
    assert "projection_head" not in saved and "patch_embedding_norm" not in saved["ecg_config"]
    config = MeritConfig.from_pretrained(legacy_dir)
    assert config.projection_head == "linear" and config.ecg_config.patch_embedding_norm == "none"
    # a config made today gets the new defaults, and writes them, so it never loads as legacy
    assert MeritConfig().projection_head == "mlp_bn" and MeritECGConfig().patch_embedding_norm == "post"
    assert MeritECGConfig.from_dict(MeritECGConfig().to_dict()).patch_embedding_norm == "post"


@pytest.mark.parametrize("model_class", [MeritForPreTraining, MeritModel])
def test_a_0_1_0_checkpoint_gives_its_saved_outputs(legacy_dir, model_class):
    expected = np.load(legacy_dir / "expected_outputs.npz")
    model = model_class.from_pretrained(legacy_dir).eval()
    input_values = torch.from_numpy(expected["input_values"])
    input_ids = torch.from_numpy(expected["input_ids"])
    with torch.no_grad():
        pooled = model.ecg_model(input_values).pooler_output
        ecg_features = model.get_ecg_features(input_values)
        text_features = model.get_text_features(input_ids)
    np.testing.assert_allclose(pooled.numpy(), expected["pooler_output"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ecg_features.numpy(), expected["ecg_features"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(text_features.numpy(), expected["text_features"], rtol=1e-5, atol=1e-6)
    if model_class is MeritForPreTraining:
        with torch.no_grad():
            output = model(input_values=input_values, input_ids=input_ids, noise=torch.from_numpy(expected["noise"]))
        np.testing.assert_allclose(output.reconstruction.numpy(), expected["reconstruction"], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(output.loss.numpy(), expected["loss"], rtol=1e-5)


def test_a_0_1_0_checkpoint_re_saved_today_keeps_its_architecture(legacy_dir, tmp_path):
    MeritForPreTraining.from_pretrained(legacy_dir).save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["projection_head"] == "linear" and saved["ecg_config"]["patch_embedding_norm"] == "none"


# --------------------------------------------------------------------------------------------------------------------
# 0.2.0: `MeritForPreTraining` inherited from `MeritModel`, so its checkpoints have no `merit.` prefix on their keys.
# `tests/fixtures/merit-tiny-v0.2.0` was saved by that code (see its make_fixture.py), with its outputs.
# --------------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def v0_2_0_dir(repo_root):
    return repo_root / "tests" / "fixtures" / "merit-tiny-v0.2.0"


@pytest.mark.parametrize("model_class", [MeritForPreTraining, MeritModel])
def test_a_0_2_0_checkpoint_gives_its_saved_outputs(v0_2_0_dir, model_class):
    expected = np.load(v0_2_0_dir / "expected_outputs.npz")
    model = model_class.from_pretrained(v0_2_0_dir).eval()
    input_values = torch.from_numpy(expected["input_values"])
    input_ids = torch.from_numpy(expected["input_ids"])
    lead_mask = torch.from_numpy(expected["lead_mask"])
    with torch.no_grad():
        pooled = model.ecg_model(input_values, lead_mask=lead_mask).pooler_output
        ecg_features = model.get_ecg_features(input_values, lead_mask)
        text_features = model.get_text_features(input_ids)
    np.testing.assert_allclose(pooled.numpy(), expected["pooler_output"], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ecg_features.numpy(), expected["ecg_features"], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(text_features.numpy(), expected["text_features"], rtol=1e-5, atol=1e-5)
    if model_class is MeritForPreTraining:
        with torch.no_grad():
            output = model(
                input_values=input_values,
                input_ids=input_ids,
                lead_mask=lead_mask,
                noise=torch.from_numpy(expected["noise"]),
            )
        np.testing.assert_allclose(output.reconstruction.numpy(), expected["reconstruction"], rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(output.logits_per_ecg.numpy(), expected["logits_per_ecg"], rtol=1e-5, atol=1e-5)
        for name in ("loss", "reconstruction_loss", "contrastive_loss"):
            np.testing.assert_allclose(
                getattr(output, name).numpy(), expected[name], rtol=1e-5, atol=1e-5, err_msg=name
            )


def test_a_0_2_0_checkpoint_loads_into_every_head_and_is_re_saved_with_the_new_layout(v0_2_0_dir, tmp_path):
    from safetensors import safe_open

    from modeling_merit import MeritECGModel, MeritForECGClassification

    expected = np.load(v0_2_0_dir / "expected_outputs.npz")
    input_values, lead_mask = torch.from_numpy(expected["input_values"]), torch.from_numpy(expected["lead_mask"])
    model, info = MeritForPreTraining.from_pretrained(v0_2_0_dir, output_loading_info=True)
    assert not any(info.values())  # every flat key found its place under `merit.`
    model.save_pretrained(tmp_path)
    with safe_open(tmp_path / "model.safetensors", "pt") as saved:
        saved_keys = saved.keys()  # safe_open objects are not iterable
    assert {key.split(".")[0] for key in saved_keys} == {"merit", "decoder"}
    for model_class, kwargs in ((MeritECGModel, {}), (MeritForECGClassification, {"num_labels": 2})):
        for path in (v0_2_0_dir, tmp_path):  # the old layout and the new one
            loaded, info = model_class.from_pretrained(path, output_loading_info=True, **kwargs)
            assert not info["missing_keys"] or all(key.startswith("classifier.") for key in info["missing_keys"])
            encoder = loaded.eval() if model_class is MeritECGModel else loaded.eval().ecg_model
            with torch.no_grad():
                pooled = encoder(input_values, lead_mask=lead_mask).pooler_output
            np.testing.assert_allclose(pooled.numpy(), expected["pooler_output"], rtol=1e-5, atol=1e-5)


# --------------------------------------------------------------------------------------------------------------------
# Since then `logit_scale` became a parameter of shape (1,) (FSDP2's `fully_shard` refuses 0-d parameters); checkpoints
# with the 0-d one still load, through `from_pretrained` and through `load_state_dict` (accelerate's `load_state`).
# --------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fixture", ["merit-tiny-v0.1.0", "merit-tiny-v0.2.0"])
@pytest.mark.parametrize("model_class", [MeritForPreTraining, MeritModel])
def test_a_scalar_logit_scale_loads_as_a_one_element_parameter(repo_root, fixture, model_class, tmp_path):
    from safetensors import safe_open

    with safe_open(repo_root / "tests" / "fixtures" / fixture / "model.safetensors", "pt") as saved:
        (key,) = [key for key in saved.keys() if key.endswith("logit_scale")]  # noqa: SIM118 (not iterable)
        saved_scale = saved.get_tensor(key)
    assert saved_scale.dim() == 0  # the fixture really has the old layout
    model = model_class.from_pretrained(repo_root / "tests" / "fixtures" / fixture)
    merit = model if model_class is MeritModel else model.merit
    assert merit.logit_scale.shape == (1,) and merit.logit_scale.item() == saved_scale.item()
    model.save_pretrained(tmp_path)  # saved with today's layout, and loaded back unchanged
    with safe_open(tmp_path / "model.safetensors", "pt") as saved:
        saved_key = "logit_scale" if model_class is MeritModel else "merit.logit_scale"
        assert saved.get_tensor(saved_key).shape == (1,)
    reloaded = model_class.from_pretrained(tmp_path)
    assert (reloaded if model_class is MeritModel else reloaded.merit).logit_scale.item() == saved_scale.item()


def test_load_state_dict_takes_a_scalar_logit_scale():
    model = MeritForPreTraining(MeritConfig.from_preset("tiny"))
    state = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    state["merit.logit_scale"] = torch.tensor(3.25)  # a state dict from before the change
    model.load_state_dict(state)
    assert model.merit.logit_scale.shape == (1,) and model.merit.logit_scale.item() == 3.25
