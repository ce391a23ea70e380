"""MeritECGConfig / MeritConfig: presets, serialisation round trip and validation errors."""

import pytest

from modeling_merit import MeritConfig, MeritECGConfig


def test_presets_have_documented_shapes():
    for name, (hidden, layers, heads) in {"tiny": (64, 2, 2), "small": (384, 12, 6), "base": (768, 12, 12)}.items():
        config = MeritConfig.from_preset(name)
        ecg = config.ecg_config
        assert (ecg.hidden_size, ecg.num_hidden_layers, ecg.num_attention_heads) == (hidden, layers, heads)
    assert MeritConfig.from_preset("small").text_config.hidden_size == 384  # all-MiniLM-L6-v2 shape


def test_preset_overrides_merge_into_towers():
    config = MeritConfig.from_preset(
        "tiny", projection_dim=16, ecg_config={"sampling_rate": 500, "num_samples": 5000, "patch_size": 100}
    )
    assert config.projection_dim == 16
    assert config.ecg_config.hidden_size == 64  # preset value kept
    assert config.ecg_config.num_patches_per_lead == 50
    assert config.ecg_config.duration == 10.0


def test_unknown_preset():
    with pytest.raises(ValueError, match="Unknown preset 'huge'.*'base', 'compact', 'small', 'tiny'"):
        MeritConfig.from_preset("huge")


def test_round_trip(tmp_path):
    config = MeritConfig.from_preset("tiny", text_freeze=1, contrastive_view="masked", text_pooling="cls")
    config.save_pretrained(tmp_path)
    loaded = MeritConfig.from_pretrained(tmp_path)
    assert loaded.to_dict() == config.to_dict()
    assert isinstance(loaded.ecg_config, MeritECGConfig)
    assert loaded.text_config.model_type == "bert"
    # the ECG tower's config can be read on its own from a composite checkpoint
    assert MeritECGConfig.from_pretrained(tmp_path).to_dict() == config.ecg_config.to_dict()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"num_samples": 1001}, r"`num_samples` \(1001\) must be divisible by `patch_size` \(50\)"),
        (
            {"hidden_size": 100, "num_attention_heads": 6},
            r"`hidden_size` \(100\) must be divisible by `num_attention_heads` \(6\)",
        ),
        ({"mask_ratio": 1.0}, r"`mask_ratio` must be in \[0, 1\), got 1.0"),
        ({"mask_ratio": -0.1}, r"`mask_ratio` must be in \[0, 1\), got -0.1"),
        ({"mask_ratio": 0.99}, r"leaves no visible patch out of the 20 patches"),
        ({"patch_size": 0}, r"`patch_size` must be a positive integer, got 0"),
        (
            {"decoder_mode": "diagonal"},
            r"`decoder_mode` must be one of \['axial', 'joint', 'lead_wise'\], got 'diagonal'",
        ),
        (
            {"decoder_hidden_size": 30, "decoder_num_attention_heads": 4},
            r"`decoder_hidden_size` \(30\) must be divisible by `decoder_num_attention_heads` \(4\)",
        ),
    ],
)
def test_ecg_config_validation(kwargs, message):
    with pytest.raises(ValueError, match=message):
        MeritECGConfig(**kwargs)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"text_pooling": "max"}, r"`text_pooling` must be one of \['cls', 'mean', 'pooler'\], got 'max'"),
        ({"text_freeze": "some"}, r"`text_freeze` must be one of \['all', 'none'\], got 'some'"),
        ({"text_freeze": 7}, r"`text_freeze` as a number of layers must be in \[0, 6\]"),
        ({"contrastive_view": "both"}, r"`contrastive_view` must be one of \['full', 'masked'\], got 'both'"),
        ({"contrastive_patch_keep_ratio": 0.0}, r"`contrastive_patch_keep_ratio` must be in \(0, 1\].*got 0.0"),
        ({"contrastive_patch_keep_ratio": 1.5}, r"`contrastive_patch_keep_ratio` must be in \(0, 1\].*got 1.5"),
        ({"contrastive_lead_dropout": 1.0}, r"`contrastive_lead_dropout` must be in \[0, 1\).*got 1.0"),
        ({"contrastive_lead_dropout": -0.1}, r"`contrastive_lead_dropout` must be in \[0, 1\).*got -0.1"),
        ({"contrastive_time_shift": 0.6}, r"`contrastive_time_shift` must be in \[0, 0.5\].*got 0.6"),
        ({"projection_dim": 0}, r"`projection_dim` must be a positive integer, got 0"),
        ({"contrastive_loss_weight": -1.0}, r"`contrastive_loss_weight` must be >= 0, got -1.0"),
        (
            {"contrastive_loss_weight": 0.0, "reconstruction_loss_weight": 0.0},
            "cannot both be 0",
        ),
        ({"logit_scale_init_value": 5.0}, r"`logit_scale_init_value` \(5.0\) exceeds `logit_scale_max`"),
        ({"ecg_config": {"num_samples": 999}}, r"`num_samples` \(999\) must be divisible"),
        ({"text_projection_head": "identity"}, "text_projection_head"),
        ({"text_projection_head": "standardize"}, r"`projection_dim` must equal its hidden_size \(384\), got 256"),
    ],
)
def test_config_validation(kwargs, message):
    with pytest.raises(ValueError, match=message):
        MeritConfig(**kwargs)
