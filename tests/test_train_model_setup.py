"""Model set-up of `train_merit.py` (`merit_training.model_setup`): presets, config files, continued pretraining, the
pretrained text tower, the optimizer groups and the per-step seeds."""

import json

import pytest
import torch
from transformers import AutoModel, AutoTokenizer

import train_merit
from merit_training import model_setup
from merit_training.arguments import ModelArguments
from modeling_merit import MeritConfig, MeritFeatureExtractor, MeritForPreTraining, MeritProcessor


def test_merge_config_dicts_merges_nested_configs():
    base = {"projection_dim": 32, "ecg_config": {"hidden_size": 64, "mask_ratio": 0.75}}
    merged = model_setup.merge_config_dicts(base, {"ecg_config": {"mask_ratio": 0.5}, "contrastive_view": "masked"})
    assert merged == {
        "projection_dim": 32,
        "ecg_config": {"hidden_size": 64, "mask_ratio": 0.5},
        "contrastive_view": "masked",
    }
    assert base["ecg_config"]["mask_ratio"] == 0.75  # not modified in place


def test_config_file_with_nested_overrides_keeps_the_other_fields(tmp_path):
    MeritConfig.from_preset("tiny").save_pretrained(tmp_path)
    model, processor = model_setup.build_model_and_processor(
        ModelArguments(
            config_file=str(tmp_path / "config.json"), config_overrides='{"ecg_config": {"mask_ratio": 0.5}}'
        )
    )
    ecg = model.config.ecg_config
    assert (ecg.hidden_size, ecg.num_hidden_layers, ecg.mask_ratio) == (64, 2, 0.5)
    assert model.config.text_config.hidden_size == 32
    assert processor.feature_extractor.num_samples == ecg.num_samples


def test_continued_pretraining_loads_the_weights_and_applies_overrides(tmp_path, minilm_dir):
    torch.manual_seed(0)
    saved = MeritForPreTraining(MeritConfig.from_preset("tiny"))
    saved.save_pretrained(tmp_path)
    MeritProcessor(
        MeritFeatureExtractor(sampling_rate=100, num_samples=1000), AutoTokenizer.from_pretrained(minilm_dir)
    ).save_pretrained(tmp_path)

    model, processor = model_setup.build_model_and_processor(
        ModelArguments(
            model_name_or_path=str(tmp_path),
            config_overrides='{"contrastive_view": "masked", "ecg_config": {"mask_ratio": 0.5}}',
        )
    )
    assert (
        model.config.contrastive_view,
        model.config.ecg_config.mask_ratio,
        model.config.ecg_config.hidden_size,
    ) == ("masked", 0.5, 64)
    assert all(torch.equal(tensor, saved.state_dict()[name]) for name, tensor in model.state_dict().items())
    assert isinstance(processor, MeritProcessor)


def test_pretrained_text_tower_is_loaded_and_text_overrides_apply(minilm_dir):
    model, processor = model_setup.build_model_and_processor(
        ModelArguments(
            model_preset="tiny",
            text_model_name_or_path=str(minilm_dir),
            config_overrides='{"text_config": {"hidden_dropout_prob": 0.0}}',
        )
    )
    minilm = AutoModel.from_pretrained(minilm_dir)
    assert model.config.text_config.hidden_size == minilm.config.hidden_size == 384
    assert model.config.text_config.hidden_dropout_prob == 0.0
    word_embeddings = model.text_model.get_input_embeddings().weight
    assert torch.equal(word_embeddings, minilm.get_input_embeddings().weight)
    assert processor.tokenizer.vocab_size == minilm.config.vocab_size
    # the default text projection keeps the text tower's sentence space, so the shared space takes its width
    assert (model.config.text_projection_head, model.config.projection_dim) == ("standardize", 384)
    assert not list(model.merit.text_projection.parameters())


@pytest.mark.parametrize("scaling", [None, "per_lead_zscore", "per_record_zscore", "none"])
def test_ecg_scaling_reaches_the_processor_and_its_saved_config(tmp_path, scaling):
    _, processor = model_setup.build_model_and_processor(
        ModelArguments(model_preset="tiny", text_model_name_or_path="scratch", ecg_scaling=scaling)
    )
    scaling = scaling or "per_lead_zscore"  # the default of a new model
    assert processor.feature_extractor.scaling == scaling
    processor.save_pretrained(tmp_path)
    assert MeritProcessor.from_pretrained(tmp_path).feature_extractor.scaling == scaling


@pytest.mark.parametrize(
    "flag, overrides, expected",
    [
        (None, None, "axial"),  # the demo's decoder
        ("lead_wise", None, "lead_wise"),
        (None, '{"ecg_config": {"decoder_mode": "joint", "mask_ratio": 0.5}}', "joint"),  # overrides win, nested
    ],
)
def test_decoder_mode_of_a_new_model(flag, overrides, expected):
    model, _ = model_setup.build_model_and_processor(
        ModelArguments(
            model_preset="tiny", text_model_name_or_path="scratch", decoder_mode=flag, config_overrides=overrides
        )
    )
    ecg = model.config.ecg_config
    assert ecg.decoder_mode == expected
    assert ecg.hidden_size == 64  # the preset's other fields stay
    assert ecg.mask_ratio == (0.5 if overrides else 0.75)


def test_a_trained_text_projection_keeps_the_presets_shared_width(minilm_dir):
    model, _ = model_setup.build_model_and_processor(
        ModelArguments(model_preset="tiny", text_model_name_or_path=str(minilm_dir), text_projection_head="mlp_bn")
    )
    assert (model.config.text_projection_head, model.config.projection_dim) == ("mlp_bn", 32)
    assert model.merit.text_projection.output.weight.shape == (32, 384)


def test_optimizer_groups_decay_exactly_the_linear_weights():
    model = MeritForPreTraining(MeritConfig.from_preset("tiny", text_freeze=1)).freeze_text_tower()
    decay, no_decay = model_setup.optimizer_parameter_groups(model, weight_decay=0.05)
    names = {id(parameter): name for name, parameter in model.named_parameters()}
    decayed = {names[id(parameter)] for parameter in decay["params"]}
    not_decayed = {names[id(parameter)] for parameter in no_decay["params"]}
    assert (decay["weight_decay"], no_decay["weight_decay"]) == (0.05, 0.0)
    trainable = {name for name, parameter in model.named_parameters() if parameter.requires_grad}
    assert decayed | not_decayed == trainable and not decayed & not_decayed  # every trainable parameter, once
    linear_weights = {
        f"{module_name}.weight" for module_name, module in model.named_modules() if isinstance(module, torch.nn.Linear)
    }
    assert decayed == linear_weights & trainable
    # chosen by module type, not by name: the patch embedding is a Linear (decayed), the lead embedding and the
    # tokens are plain parameters, the norms (LayerNorm, BatchNorm) are not decayed
    assert "merit.ecg_model.embeddings.patch_embedding.weight" in decayed
    assert {"merit.logit_scale", "decoder.mask_token", "merit.ecg_model.embeddings.lead_embedding"} <= not_decayed
    assert (
        "merit.ecg_projection.norm.weight" in not_decayed
        and "merit.ecg_model.embeddings.patch_embedding_norm.weight" in not_decayed
    )
    assert not any(name.startswith("merit.text_model.embeddings") for name in trainable)  # text_freeze=1 froze them


def test_the_text_tower_gets_its_own_learning_rate():
    model = MeritForPreTraining(MeritConfig.from_preset("tiny"))
    groups = model_setup.optimizer_parameter_groups(model, weight_decay=0.05, text_learning_rate=3e-5)
    names = {id(parameter): name for name, parameter in model.named_parameters()}
    assert [group.get("lr") for group in groups] == [None, None, 3e-5, 3e-5]
    text_names = {names[id(parameter)] for group in groups[2:] for parameter in group["params"]}
    other_names = {names[id(parameter)] for group in groups[:2] for parameter in group["params"]}
    assert text_names == {name for name in names.values() if name.startswith("merit.text_model.")}
    assert any(name.startswith("merit.text_projection.") for name in other_names)  # new layers keep the main rate
    optimizer = torch.optim.AdamW(groups, lr=1e-3)
    assert [group["lr"] for group in optimizer.param_groups] == [1e-3, 1e-3, 3e-5, 3e-5]


def test_the_decoder_gets_its_own_learning_rate_after_the_text_tower():
    model = MeritForPreTraining(MeritConfig.from_preset("tiny"))
    names = {id(parameter): name for name, parameter in model.named_parameters()}
    groups = model_setup.optimizer_parameter_groups(
        model, weight_decay=0.05, text_learning_rate=3e-5, decoder_learning_rate=3e-3
    )
    assert [(group.get("lr"), group["weight_decay"]) for group in groups] == [
        (None, 0.05), (None, 0.0), (3e-5, 0.05), (3e-5, 0.0), (3e-3, 0.05), (3e-3, 0.0)
    ]  # fmt: skip
    decoder_names = {names[id(parameter)] for group in groups[4:] for parameter in group["params"]}
    assert decoder_names == {name for name in names.values() if name.startswith("decoder.")}
    assert "decoder.mask_token" in {names[id(parameter)] for parameter in groups[5]["params"]}  # a token: no decay
    # without a text rate the decoder pair follows the main pair
    groups = model_setup.optimizer_parameter_groups(model, weight_decay=0.05, decoder_learning_rate=3e-3)
    assert [group.get("lr") for group in groups] == [None, None, 3e-3, 3e-3]
    assert {names[id(parameter)] for group in groups[2:] for parameter in group["params"]} == decoder_names


def test_step_seeds_are_fixed_by_the_position_in_training():
    seeds = {
        model_setup.step_seed(42, step, batch, process)
        for step in range(20)
        for batch in range(3)
        for process in range(2)
    }
    assert len(seeds) == 120
    assert (
        model_setup.step_seed(42, 3, 1, 0) == model_setup.step_seed(42, 3, 1, 0) != model_setup.step_seed(43, 3, 1, 0)
    )
    assert all(0 <= seed < 2**63 for seed in seeds)


@pytest.mark.parametrize("suffix", [".json", ".yaml"])
def test_flags_from_a_file(tmp_path, suffix):
    flags = {"model_preset": "tiny", "max_train_steps": 7, "output_dir": str(tmp_path / "out"), "report_to": "none"}
    path = tmp_path / f"args{suffix}"
    path.write_text(json.dumps(flags))  # JSON is valid YAML
    model_args, _data_args, training_args = train_merit.parse_arguments([str(path)])
    assert (model_args.model_preset, training_args.max_train_steps, training_args.report_to) == ("tiny", 7, "none")
