"""MERIT model classes on tiny configs: shapes, masking, missing leads, losses, attention implementations and
weights, freezing, save/load across heads."""

import copy
import inspect

import numpy as np
import pandas as pd
import pytest
import torch
import wfdb

from modeling_merit import (
    MeritConfig,
    MeritECGConfig,
    MeritECGModel,
    MeritForECGClassification,
    MeritForPreTraining,
    MeritModel,
)
from modeling_merit.modeling_merit import random_lead_masking


BATCH = 3


def tiny_config(**overrides) -> MeritConfig:
    return MeritConfig.from_preset("tiny", **overrides)


def ecg_batch(batch_size: int = BATCH, seed: int = 0) -> torch.Tensor:
    return torch.randn(batch_size, 12, 1000, generator=torch.Generator().manual_seed(seed))


def text_batch(batch_size: int = BATCH, length: int = 9, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    input_ids = torch.randint(1000, 5000, (batch_size, length), generator=torch.Generator().manual_seed(seed))
    attention_mask = torch.ones_like(input_ids)
    attention_mask[0, -3:] = 0
    return input_ids, attention_mask


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


# ---------------------------------------------------------------------------------------------------------------- shapes


def test_ecg_model_shapes():
    config = tiny_config()
    model = MeritECGModel(config.ecg_config).eval()
    out = model(ecg_batch(), output_hidden_states=True)
    tokens = 12 * (20 + 2)
    assert out.last_hidden_state.shape == (BATCH, tokens, 64)
    assert out.pooler_output.shape == (BATCH, 64)
    assert out.mask is None and out.ids_restore is None
    assert len(out.hidden_states) == config.ecg_config.num_hidden_layers + 1

    masked = model(ecg_batch(), apply_masking=True)
    keep = config.ecg_config.num_patches_to_keep
    assert masked.last_hidden_state.shape == (BATCH, 12 * (keep + 2), 64)
    assert masked.mask.shape == masked.ids_restore.shape == (BATCH, 12, 20)
    assert torch.all(masked.mask.sum(-1) == 20 - keep)


def test_dual_encoder_shapes_and_features():
    model = MeritModel(tiny_config()).eval()
    input_ids, attention_mask = text_batch()
    out = model(input_values=ecg_batch(), input_ids=input_ids, attention_mask=attention_mask, return_loss=True)
    assert out.logits_per_ecg.shape == out.logits_per_text.shape == (BATCH, BATCH)
    torch.testing.assert_close(out.logits_per_ecg, out.logits_per_text.t())
    assert out.ecg_embeds.shape == out.text_embeds.shape == (BATCH, 32)
    torch.testing.assert_close(out.ecg_embeds.norm(dim=-1), torch.ones(BATCH))
    assert out.loss.shape == () and out.loss > 0
    assert model(input_values=ecg_batch(), input_ids=input_ids).loss is None

    ecg_features = model.get_ecg_features(ecg_batch())
    text_features = model.get_text_features(input_ids, attention_mask)
    assert ecg_features.shape == text_features.shape == (BATCH, 32)
    # projected but not normalised; normalising gives the forward's embeddings
    torch.testing.assert_close(torch.nn.functional.normalize(ecg_features, dim=-1), out.ecg_embeds)
    torch.testing.assert_close(torch.nn.functional.normalize(text_features, dim=-1), out.text_embeds)

    with pytest.raises(ValueError, match="needs both `input_values`"):
        model(input_values=ecg_batch())


@pytest.mark.parametrize("decoder_mode", ["lead_wise", "joint", "axial"])
@pytest.mark.parametrize("contrastive_view", ["full", "masked"])
def test_pretraining_shapes(decoder_mode, contrastive_view):
    config = tiny_config(
        contrastive_view=contrastive_view, ecg_config={"decoder_mode": decoder_mode, "decoder_num_hidden_layers": 2}
    )
    model = MeritForPreTraining(config)
    input_ids, attention_mask = text_batch()
    out = model(input_values=ecg_batch(), input_ids=input_ids, attention_mask=attention_mask)
    assert out.reconstruction.shape == (BATCH, 12, 20, 50)
    assert out.mask.shape == (BATCH, 12, 20)
    assert out.logits_per_ecg.shape == (BATCH, BATCH)
    torch.testing.assert_close(out.loss, out.reconstruction_loss + out.contrastive_loss)
    out.loss.backward()
    assert model.decoder.prediction.weight.grad is not None

    ecg_only = model(input_values=ecg_batch())
    assert ecg_only.contrastive_loss is None and ecg_only.logits_per_ecg is None
    torch.testing.assert_close(ecg_only.loss, ecg_only.reconstruction_loss)


def test_contrastive_patch_dropout_keeps_a_fraction_in_training_and_every_patch_in_eval():
    model = MeritForPreTraining(tiny_config(contrastive_view="full", contrastive_patch_keep_ratio=0.3))
    token_counts = []
    model.ecg_model.register_forward_hook(lambda module, args, output: token_counts.append(output[0].shape[1]))
    input_ids, attention_mask = text_batch()
    inputs = {"input_values": ecg_batch(), "input_ids": input_ids, "attention_mask": attention_mask}
    keep = model.config.ecg_config.num_patches_to_keep  # masked pass: 5 of 20 patches per lead

    assert model.train().contrastive_patches_to_keep() == 6  # round(0.3 * 20)
    model(**inputs, noise=torch.rand(BATCH, 12, 20)).loss.backward()
    assert token_counts == [12 * (keep + 2), 12 * (6 + 2)]  # masked pass, then 6 random patches per lead

    token_counts.clear()
    assert model.eval().contrastive_patches_to_keep() is None
    with torch.no_grad():
        dropped = model(**inputs, noise=torch.rand(BATCH, 12, 20, generator=torch.Generator().manual_seed(1)))
    assert token_counts == [12 * (keep + 2), 12 * (20 + 2)]  # eval: the contrastive view sees every patch
    every_patch = MeritForPreTraining(tiny_config(contrastive_view="full")).eval()
    every_patch.load_state_dict(model.state_dict())
    with torch.no_grad():
        reference = every_patch(**inputs, noise=torch.rand(BATCH, 12, 20, generator=torch.Generator().manual_seed(1)))
    torch.testing.assert_close(dropped.contrastive_loss, reference.contrastive_loss)

    with pytest.raises(ValueError, match=r"`num_patches_to_keep` must be between 1 and the 20 patches"):
        model.ecg_model(ecg_batch(), apply_masking=True, num_patches_to_keep=21)


def test_contrastive_patch_dropout_follows_the_callers_noise():
    """With `noise` the training forward is deterministic, patch dropout included (distributed equality checks pass
    the same noise to N processes and to one)."""
    no_dropout = {"hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}
    config = tiny_config(contrastive_view="full", contrastive_patch_keep_ratio=0.5, text_config=no_dropout)
    model = MeritForPreTraining(config).train()
    input_ids, attention_mask = text_batch()
    inputs = {"input_values": ecg_batch(), "input_ids": input_ids, "attention_mask": attention_mask}
    noise = torch.rand(BATCH, 12, 20, generator=torch.Generator().manual_seed(3))
    losses = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        losses.append(model(**inputs, noise=noise).contrastive_loss)
    torch.testing.assert_close(losses[0], losses[1])
    other = model(**inputs, noise=torch.rand(BATCH, 12, 20, generator=torch.Generator().manual_seed(4)))
    assert not torch.allclose(other.contrastive_loss, losses[0])


def test_contrastive_lead_dropout_hides_leads_in_training_only_and_keeps_one():
    model = MeritForPreTraining(tiny_config(contrastive_view="full", contrastive_lead_dropout=0.5))
    lead_mask = torch.ones(BATCH, 12, dtype=torch.bool)
    lead_mask[0, 1:] = False  # a one-lead record: it can lose no lead
    noise = torch.rand(BATCH, 12, 20, generator=torch.Generator().manual_seed(5))
    noise[1, :, -1] = 0.0  # every lead of record 1 drawn below 0.5: it would lose them all, so it keeps them all
    noise[2, :6, -1], noise[2, 6:, -1] = 0.9, 0.1  # record 2 keeps its first six leads

    kept = model.train().contrastive_lead_mask(lead_mask, noise)
    assert kept[0].tolist() == lead_mask[0].tolist() and bool(kept[1].all())
    assert kept[2].tolist() == [True] * 6 + [False] * 6
    torch.testing.assert_close(kept, model.contrastive_lead_mask(lead_mask, noise))  # deterministic given noise
    assert bool(model.eval().contrastive_lead_mask(lead_mask, noise).eq(lead_mask).all())

    seen = []
    model.ecg_model.register_forward_pre_hook(
        lambda module, args, kwargs: seen.append(kwargs["lead_mask"]), with_kwargs=True
    )
    input_ids, attention_mask = text_batch()
    model.train()(ecg_batch(), input_ids, lead_mask, attention_mask, noise=noise)
    assert seen[0].tolist() == lead_mask.tolist() and seen[1].tolist() == kept.tolist()  # masked pass, then dropout


def test_contrastive_time_shift_rolls_each_record_in_training_only():
    model = MeritForPreTraining(tiny_config(contrastive_view="full", contrastive_time_shift=0.1))
    ecg = ecg_batch()
    length = ecg.shape[-1]
    noise = torch.rand(BATCH, 12, 20, generator=torch.Generator().manual_seed(6))
    noise[0, 0, 0], noise[1, 0, 0], noise[2, 0, 0] = 0.0, 0.5, 0.9999  # the smallest, no and the largest shift
    max_shift = int(0.1 * length)

    shifted = model.train().contrastive_time_shifted(ecg, noise)
    for record, shift in enumerate((-max_shift, 0, max_shift)):  # every lead of a record rolled alike
        torch.testing.assert_close(shifted[record], torch.roll(ecg[record], shift, dims=-1))
    torch.testing.assert_close(shifted, model.contrastive_time_shifted(ecg, noise))  # deterministic given noise
    assert model.eval().contrastive_time_shifted(ecg, noise) is ecg
    unshifted = MeritForPreTraining(tiny_config(contrastive_view="full")).train()
    assert unshifted.contrastive_time_shifted(ecg, noise) is ecg

    seen = []
    model.ecg_model.register_forward_pre_hook(lambda module, args, kwargs: seen.append(args[0]), with_kwargs=True)
    input_ids, attention_mask = text_batch()
    model.train()(ecg, input_ids, attention_mask=attention_mask, noise=noise)
    assert seen[0] is ecg and torch.equal(seen[1], shifted)  # the masked pass sees the record as recorded


def test_pretraining_losses_are_always_computed_and_tuples_on_request():
    model = MeritForPreTraining(tiny_config())
    assert "return_loss" not in inspect.signature(MeritForPreTraining.forward).parameters  # no dead argument
    out = model(input_values=ecg_batch(), noise=torch.rand(BATCH, 12, 20), return_dict=False)
    assert isinstance(out, tuple) and out[0].shape == ()
    dual = MeritModel(tiny_config()).eval()
    as_tuple = dual(input_values=ecg_batch(), input_ids=text_batch()[0], return_loss=True, return_dict=False)
    assert as_tuple[0].shape == () and isinstance(as_tuple[-1], tuple)  # the nested tower outputs become tuples too


def test_loss_weights():
    config = tiny_config(reconstruction_loss_weight=0.25, contrastive_loss_weight=2.0)
    model = MeritForPreTraining(config)
    input_ids, _ = text_batch()
    out = model(input_values=ecg_batch(), input_ids=input_ids)
    torch.testing.assert_close(out.loss, 0.25 * out.reconstruction_loss + 2.0 * out.contrastive_loss)


def test_classification_heads():
    labels = ["MI", "NORM", "STTC"]
    config = tiny_config(id2label=dict(enumerate(labels)), label2id={n: i for i, n in enumerate(labels)})
    single_config = copy.deepcopy(config)
    model = MeritForECGClassification(config)
    multi_hot = torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0], [0.0, 0.0, 0.0]])
    out = model(ecg_batch(), labels=multi_hot)
    assert out.logits.shape == (BATCH, 3)
    assert model.config.problem_type == "multi_label_classification"
    torch.testing.assert_close(out.loss, torch.nn.functional.binary_cross_entropy_with_logits(out.logits, multi_hot))

    single = MeritForECGClassification(single_config)
    class_index = torch.tensor([2, 0, 1])
    out = single(ecg_batch(), labels=class_index)
    assert single.config.problem_type == "single_label_classification"
    torch.testing.assert_close(out.loss, torch.nn.functional.cross_entropy(out.logits, class_index))
    with pytest.raises(ValueError, match="Single-label `labels` must be integer class indices"):
        single(ecg_batch(), labels=multi_hot)


def test_linear_probe_freezes_encoder_only():
    config = tiny_config(freeze_ecg_encoder=True, num_labels=4)
    model = MeritForECGClassification(config)
    assert all(p.requires_grad for p in model.parameters())  # the config records the policy; the method applies it
    assert model.freeze_ecg_encoder() is model
    out = model(ecg_batch(), labels=torch.tensor([0, 1, 3]))
    out.loss.backward()
    assert all(p.grad is None and not p.requires_grad for p in model.ecg_model.parameters())
    assert model.classifier.weight.grad is not None


# ------------------------------------------------------------------------------------------------------------- masking


def test_masking_is_deterministic_with_noise():
    config = tiny_config()
    model = MeritForPreTraining(config).eval()
    noise = torch.rand(BATCH, 12, 20, generator=torch.Generator().manual_seed(3))
    first = model(input_values=ecg_batch(), noise=noise)
    second = model(input_values=ecg_batch(), noise=noise)
    torch.testing.assert_close(first.reconstruction, second.reconstruction)
    assert torch.equal(first.mask, second.mask)
    # the visible patches are the ones with the smallest noise, independently per lead
    keep = config.ecg_config.num_patches_to_keep
    expected_visible = torch.zeros_like(noise)
    expected_visible.scatter_(-1, noise.argsort(-1)[..., :keep], 1.0)
    assert torch.equal(first.mask, 1.0 - expected_visible)
    # masks differ between leads (independent masking) and change with the noise
    assert not torch.equal(first.mask[:, 0], first.mask[:, 1])
    other = model(input_values=ecg_batch(), noise=torch.rand(BATCH, 12, 20))
    assert not torch.equal(first.mask, other.mask)

    with pytest.raises(ValueError, match=r"`noise` must have shape \(batch, leads, patches\) = \(3, 12, 20\)"):
        model(input_values=ecg_batch(), noise=torch.rand(BATCH, 20))


def test_reconstruction_loss_counts_only_hidden_patches_of_present_leads():
    model = MeritForPreTraining(tiny_config())
    input_values = ecg_batch()
    patches = model.ecg_model.patchify(input_values)
    mask = torch.zeros(BATCH, 12, 20)
    mask[:, :, :5] = 1.0
    lead_mask = torch.ones(BATCH, 12, dtype=torch.bool)
    lead_mask[:, 3] = False
    perfect_on_hidden = patches.clone()
    perfect_on_hidden[:, :, 5:] += 100.0  # errors on visible patches must not count
    perfect_on_hidden[:, 3] += 100.0  # nor errors on the missing lead
    assert model.reconstruction_loss(input_values, perfect_on_hidden, mask, lead_mask).item() == 0.0
    off_by_one = patches.clone()
    off_by_one[:, :, :5] += 1.0
    torch.testing.assert_close(model.reconstruction_loss(input_values, off_by_one, mask, lead_mask), torch.tensor(1.0))
    with pytest.raises(ValueError, match="`reconstruction` must have the patch shape of the input"):
        model.reconstruction_loss(input_values, off_by_one[:, :, :4], mask, lead_mask)


# ------------------------------------------------------------------------------------------------------- missing leads


@pytest.mark.parametrize("attn_implementation", ["sdpa", "eager"])
def test_missing_leads_cannot_change_the_output(attn_implementation):
    config = tiny_config()
    config.ecg_config._attn_implementation = attn_implementation
    model = MeritECGModel(config.ecg_config).eval()
    lead_mask = torch.ones(BATCH, 12, dtype=torch.long)
    lead_mask[0, [2, 7]] = 0
    lead_mask[1, 0] = 0
    clean = ecg_batch()
    garbage = clean.clone()
    garbage[0, 2] = float("nan")
    garbage[0, 7] = 1e6
    garbage[1, 0] = torch.randn(1000) * 50
    out_clean = model(clean, lead_mask=lead_mask)
    out_garbage = model(garbage, lead_mask=lead_mask)
    torch.testing.assert_close(out_clean.pooler_output, out_garbage.pooler_output)
    present_tokens = lead_mask[:, :, None].expand(-1, -1, 22).flatten(1).bool()
    torch.testing.assert_close(
        out_clean.last_hidden_state[present_tokens], out_garbage.last_hidden_state[present_tokens]
    )
    assert torch.isfinite(out_garbage.pooler_output).all()
    # ... while the lead mask itself does matter
    assert not torch.allclose(model(clean).pooler_output[0], out_clean.pooler_output[0])

    for decoder_mode in ("joint", "axial"):  # the decoders whose attention crosses leads
        # 3 layers: axial has two across-lead layers, which share one mask
        ecg_config = {"decoder_mode": decoder_mode, "decoder_num_hidden_layers": 3}
        pretraining = MeritForPreTraining(tiny_config(ecg_config=ecg_config)).eval()
        noise = torch.rand(BATCH, 12, 20)
        loss_clean = pretraining(input_values=clean, lead_mask=lead_mask, noise=noise).loss
        loss_garbage = pretraining(input_values=garbage, lead_mask=lead_mask, noise=noise).loss
        torch.testing.assert_close(loss_clean, loss_garbage, msg=decoder_mode)


def test_axial_decoder_layers_alternate_across_leads_and_along_time():
    """The first layer of the axial decoder mixes the leads at one time position and nothing else; the second mixes
    the positions of one lead. Probed by changing one token of the encoder output."""
    config = tiny_config(ecg_config={"decoder_mode": "axial", "decoder_num_hidden_layers": 2})
    decoder = MeritForPreTraining(config).decoder.eval()
    num_keep = config.ecg_config.num_patches_to_keep
    ids_keep, _, _ = random_lead_masking((BATCH, 12), 20, num_keep, torch.rand(BATCH, 12, 20), "cpu")
    lead_mask = torch.ones(BATCH, 12, dtype=torch.bool)
    hidden = torch.randn(BATCH, 12 * (num_keep + 2), config.ecg_config.hidden_size)
    changed = hidden.clone()
    lead, slot = 3, 1  # the first visible patch of lead 3 (slot 0 is its separator)
    changed.view(BATCH, 12, num_keep + 2, -1)[0, lead, slot] += 5.0
    time = int(ids_keep[0, lead, slot - 1])

    first_layer_only = copy.deepcopy(decoder)
    first_layer_only.layers = first_layer_only.layers[:1]
    with torch.no_grad():
        moved = (first_layer_only(changed, ids_keep, lead_mask) - first_layer_only(hidden, ids_keep, lead_mask)).abs()
    moved = moved[0].amax(-1) > 0  # (L, N)
    assert moved[:, time].all() and moved.sum() == 12  # every lead at that time, nothing else

    with torch.no_grad():
        moved = (decoder(changed, ids_keep, lead_mask) - decoder(hidden, ids_keep, lead_mask)).abs()[0].amax(-1)
    assert (moved > 0).all()  # through the second (along-time) layer, every position of every lead
    assert decoder(hidden, ids_keep, lead_mask).shape == (BATCH, 12, 20, 50)


def test_lead_mask_validation():
    model = MeritECGModel(tiny_config().ecg_config)
    with pytest.raises(ValueError, match=r"`lead_mask` must have shape \(batch, leads\) = \(3, 12\), got \(3, 11\)"):
        model(ecg_batch(), lead_mask=torch.ones(BATCH, 11))
    empty = torch.ones(BATCH, 12)
    empty[1] = 0
    with pytest.raises(ValueError, match=r"marks every lead as missing for batch item\(s\) \[1\]"):
        model(ecg_batch(), lead_mask=empty)
    with pytest.raises(ValueError, match=r"must have 12 leads x 1000 samples .* got 12 x 999"):
        model(torch.randn(2, 12, 999))
    with pytest.raises(ValueError, match=r"must have 3 dimensions \(batch, leads, samples\)"):
        model(torch.randn(12, 1000))
    with pytest.raises(ValueError, match=r"`patches` must have shape \(batch, 12, 20, 50\)"):
        model.unpatchify(torch.randn(2, 12, 20, 49))
    torch.testing.assert_close(model.unpatchify(model.patchify(ecg_batch())), ecg_batch())


def test_sdpa_matches_eager_attention():
    ecg_config = tiny_config().ecg_config
    sdpa = MeritECGModel(ecg_config).eval()
    eager_config = copy.deepcopy(ecg_config)
    eager_config._attn_implementation = "eager"
    eager = MeritECGModel(eager_config).eval()
    eager.load_state_dict(sdpa.state_dict())
    lead_mask = torch.ones(BATCH, 12)
    lead_mask[2, 5:] = 0
    torch.testing.assert_close(
        sdpa(ecg_batch(), lead_mask=lead_mask).pooler_output, eager(ecg_batch(), lead_mask=lead_mask).pooler_output
    )


def _lead_mask_with_missing_leads() -> torch.Tensor:
    lead_mask = torch.ones(BATCH, 12, dtype=torch.long)
    lead_mask[0, [1, 6, 11]] = 0
    lead_mask[2, 5:] = 0
    return lead_mask


@pytest.mark.parametrize("decoder_mode", ["joint", "axial"])
def test_attn_implementation_selects_the_kernel_and_sdpa_equals_eager(tmp_path, decoder_mode):
    """`from_pretrained(attn_implementation=...)` reaches every attention layer (encoder, decoder, text tower), and the
    two kernels agree on every output, with missing leads (key padding) in the encoder and in a decoder whose
    attention crosses leads (joint, or axial's layer across the leads)."""
    # 3 decoder layers: axial has two across-lead layers, which share one mask
    ecg_config = {"decoder_mode": decoder_mode, "decoder_num_hidden_layers": 3}
    MeritForPreTraining(tiny_config(ecg_config=ecg_config)).save_pretrained(tmp_path)
    models = {
        implementation: MeritForPreTraining.from_pretrained(tmp_path, attn_implementation=implementation).eval()
        for implementation in ("eager", "sdpa")
    }
    for implementation, model in models.items():
        assert model.config._attn_implementation == implementation
        attention_layers = [module for module in model.modules() if type(module).__name__ == "MeritAttention"]
        assert len(attention_layers) == 2 + 3  # encoder + decoder
        assert {layer.config._attn_implementation for layer in attention_layers} == {implementation}
        assert model.text_model.config._attn_implementation == implementation
    input_ids, attention_mask = text_batch()
    inputs = dict(
        input_values=ecg_batch(),
        input_ids=input_ids,
        attention_mask=attention_mask,
        lead_mask=_lead_mask_with_missing_leads(),
        noise=torch.rand(BATCH, 12, 20),
    )
    with torch.no_grad():
        eager, sdpa = (models[implementation](**inputs) for implementation in ("eager", "sdpa"))
        for name in ("loss", "reconstruction", "logits_per_ecg", "ecg_embeds", "text_embeds"):
            torch.testing.assert_close(sdpa[name], eager[name], atol=1e-5, rtol=1e-5, msg=name)
        encoder_outputs = [
            models[implementation].ecg_model(inputs["input_values"], lead_mask=inputs["lead_mask"])
            for implementation in ("eager", "sdpa")
        ]
    torch.testing.assert_close(
        encoder_outputs[1].last_hidden_state, encoder_outputs[0].last_hidden_state, atol=1e-5, rtol=1e-5
    )


def _check_attentions(attentions, num_layers: int, tokens_per_lead: int, lead_mask: torch.Tensor) -> None:
    """Per-layer `(B, heads, S, S)` probabilities: rows sum to 1, keys of missing leads get nothing."""
    tokens = 12 * tokens_per_lead
    assert isinstance(attentions, tuple) and len(attentions) == num_layers
    key_present = lead_mask.bool()[:, :, None].expand(-1, -1, tokens_per_lead).flatten(1)  # (B, S)
    for weights in attentions:
        assert weights.shape == (BATCH, 2, tokens, tokens)
        torch.testing.assert_close(weights.sum(-1), torch.ones(BATCH, 2, tokens))
        assert torch.all(weights.masked_select(~key_present[:, None, None, :]) == 0)


def test_output_attentions_from_every_model():
    config = tiny_config(num_labels=3)
    config._attn_implementation = "eager"
    lead_mask = _lead_mask_with_missing_leads()
    input_ids, attention_mask = text_batch()
    keep = config.ecg_config.num_patches_to_keep

    encoder = MeritECGModel(config.ecg_config).eval()
    out = encoder(ecg_batch(), lead_mask=lead_mask, output_attentions=True, output_hidden_states=True)
    _check_attentions(out.attentions, 2, 22, lead_mask)
    assert len(out.hidden_states) == 3 and out.hidden_states[0].shape == (BATCH, 12 * 22, 64)
    # without the flags nothing is recorded
    plain = encoder(ecg_batch(), lead_mask=lead_mask)
    assert plain.attentions is None and plain.hidden_states is None
    torch.testing.assert_close(plain.last_hidden_state, out.last_hidden_state)

    dual = MeritModel(config).eval()
    out = dual(
        input_values=ecg_batch(),
        input_ids=input_ids,
        attention_mask=attention_mask,
        lead_mask=lead_mask,
        output_attentions=True,
    )
    _check_attentions(out.ecg_model_output.attentions, 2, 22, lead_mask)
    assert len(out.text_model_output.attentions) == 2  # the text tower gets the flag too, as in CLIP

    pretraining = MeritForPreTraining(config).eval()
    out = pretraining(
        input_values=ecg_batch(),
        input_ids=input_ids,
        lead_mask=lead_mask,
        output_attentions=True,
        output_hidden_states=True,
    )
    _check_attentions(out.attentions, 2, keep + 2, lead_mask)  # those of the masked pass
    assert len(out.hidden_states) == 3 and out.hidden_states[-1].shape == (BATCH, 12 * (keep + 2), 64)
    assert out.reconstruction.shape == (BATCH, 12, 20, 50)

    classifier = MeritForECGClassification(config).eval()
    out = classifier(ecg_batch(), lead_mask=lead_mask, output_attentions=True)
    _check_attentions(out.attentions, 2, 22, lead_mask)
    as_tuple = classifier(ecg_batch(), lead_mask=lead_mask, output_attentions=True, return_dict=False)
    torch.testing.assert_close(as_tuple[0], out.logits)
    assert len(as_tuple[1]) == 2


def test_sdpa_computes_no_attention_weights():
    """As in transformers 5 (ViT, CLIP): SDPA does not fall back to eager; the weights need `attn_implementation="eager"`."""
    model = MeritECGModel(tiny_config().ecg_config).eval()
    assert model.config._attn_implementation == "sdpa"
    assert model(ecg_batch(), output_attentions=True).attentions == ()


def test_gradient_checkpointing_gives_same_gradients():
    model = MeritForPreTraining(tiny_config())
    input_ids, attention_mask = text_batch()
    noise = torch.rand(BATCH, 12, 20)

    def gradients():
        torch.manual_seed(1)  # same dropout masks in the text tower
        model.zero_grad()
        model(
            input_values=ecg_batch(), input_ids=input_ids, attention_mask=attention_mask, noise=noise
        ).loss.backward()
        return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    plain = gradients()
    model.activation_checkpointing_enable()
    checkpointed = gradients()
    assert model.ecg_model.layers[0].gradient_checkpointing
    assert plain.keys() == checkpointed.keys()
    for name in plain:
        torch.testing.assert_close(plain[name], checkpointed[name], msg=name)


# ---------------------------------------------------------------------------------------------------- text freezing


def _text_gradients(text_freeze) -> tuple[MeritForPreTraining, set[str]]:
    model = MeritForPreTraining(tiny_config(text_freeze=text_freeze)).freeze_text_tower()
    input_ids, attention_mask = text_batch()
    model(input_values=ecg_batch(), input_ids=input_ids, attention_mask=attention_mask).loss.backward()
    with_grad = {n for n, p in model.text_model.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
    return model, with_grad


def test_text_freeze_none_trains_every_text_parameter():
    model, with_grad = _text_gradients("none")
    assert with_grad == {n for n, _ in model.text_model.named_parameters()}
    assert not hasattr(model.text_model, "pooler") or model.text_model.pooler is None  # unused -> not built


def test_text_freeze_all_blocks_every_text_gradient():
    model, with_grad = _text_gradients("all")
    assert with_grad == set()
    assert all(not p.requires_grad for p in model.text_model.parameters())
    assert all(p.grad is not None for p in model.merit.text_projection.parameters())
    assert model.merit.logit_scale.grad is not None
    assert all(p.grad is not None for p in model.merit.ecg_projection.parameters())


def test_text_freeze_first_layers_only():
    model, with_grad = _text_gradients(1)
    frozen = set(model.merit.frozen_text_parameter_names())
    assert frozen and all(n.startswith(("embeddings.", "encoder.layer.0.")) for n in frozen)
    assert any(n.startswith("embeddings.") for n in frozen) and any(n.startswith("encoder.layer.0.") for n in frozen)
    assert with_grad == {n for n, _ in model.text_model.named_parameters()} - frozen
    assert any(n.startswith("encoder.layer.1.") for n in with_grad)


def test_text_freezing_survives_save_and_load(tmp_path):
    MeritForPreTraining(tiny_config(text_freeze="all")).freeze_text_tower().save_pretrained(tmp_path)
    loaded = MeritForPreTraining.from_pretrained(tmp_path)
    assert loaded.config.text_freeze == "all"
    assert all(p.requires_grad for p in loaded.parameters())  # loading freezes nothing by itself ...
    loaded.freeze_text_tower()  # ... the method applies the saved policy
    assert all(not p.requires_grad for p in loaded.text_model.parameters())
    assert all(p.requires_grad for p in loaded.ecg_model.parameters())
    MeritForECGClassification(tiny_config(freeze_ecg_encoder=True, num_labels=2)).save_pretrained(tmp_path / "probe")
    probe = MeritForECGClassification.from_pretrained(tmp_path / "probe")
    probe.freeze_ecg_encoder(probe.config.freeze_ecg_encoder)
    assert not any(p.requires_grad for p in probe.ecg_model.parameters()) and probe.classifier.weight.requires_grad


def test_freeze_text_tower_takes_an_explicit_policy_and_validates_it():
    model = MeritModel(tiny_config())
    assert model.freeze_text_tower("all") is model
    assert not any(p.requires_grad for p in model.text_model.parameters())
    model.freeze_text_tower(2)
    assert not any(
        p.requires_grad for p in model.text_model.parameters()
    )  # embeddings + both layers of the tiny tower
    model.freeze_text_tower()  # the config's policy, "none": everything trainable again
    assert all(p.requires_grad for p in model.parameters())
    with pytest.raises(
        ValueError, match=r"`layers` must be 'none', 'all' or a number of text layers in \[0, 2\].*got 3"
    ):
        model.freeze_text_tower(3)
    with pytest.raises(ValueError, match=r"got 'some'"):
        model.freeze_text_tower("some")


# --------------------------------------------------------------------------------------------------------- training


def _real_batch(ptbxl_sample_dir, tokenizer, size=4):
    """The first `size` real records whose reports all differ (identical reports cannot be told apart)."""
    database = pd.read_csv(ptbxl_sample_dir / "ptbxl_database.csv", index_col="ecg_id")
    database = database.drop_duplicates("report").head(size)
    signals = []
    for filename in database.filename_lr:
        signal, _ = wfdb.rdsamp(str(ptbxl_sample_dir / filename))
        signal = signal.T.astype(np.float32)
        signals.append((signal - signal.mean(1, keepdims=True)) / (signal.std(1, keepdims=True) + 1e-6))
    text = tokenizer(list(database.report), padding=True, truncation=True, max_length=48, return_tensors="pt")
    return torch.from_numpy(np.stack(signals)), text


@pytest.mark.slow
def test_tiny_batch_overfits(ptbxl_sample_dir, tokenizer):
    """Both losses fall clearly when training on one batch of 4 real PTB-XL records and reports (fixed mask)."""
    input_values, text = _real_batch(ptbxl_sample_dir, tokenizer)
    model = MeritForPreTraining(tiny_config())
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    noise = torch.rand(len(input_values), 12, 20, generator=torch.Generator().manual_seed(0))
    history = []
    for _ in range(100):
        out = model(
            input_values=input_values, input_ids=text.input_ids, attention_mask=text.attention_mask, noise=noise
        )
        optimizer.zero_grad()
        out.loss.backward()
        optimizer.step()
        history.append((out.reconstruction_loss.item(), out.contrastive_loss.item()))
    first_reconstruction, first_contrastive = np.mean(history[:5], axis=0)
    last_reconstruction, last_contrastive = np.mean(history[-5:], axis=0)
    assert last_reconstruction < 0.9 * first_reconstruction, history
    assert last_contrastive < 0.25 * first_contrastive, history


# --------------------------------------------------------------------------------------------------------- save/load


def test_save_load_round_trip_across_heads(tmp_path):
    from transformers import AutoModel, AutoModelForPreTraining

    pretrained = MeritForPreTraining(tiny_config()).eval()
    pretrained.save_pretrained(tmp_path)
    files = {p.name for p in tmp_path.iterdir()}
    assert "model.safetensors" in files and "config.json" in files
    assert not any(name.endswith((".bin", ".pt", ".pth", ".pkl")) for name in files)

    input_values = ecg_batch()
    input_ids, attention_mask = text_batch()
    noise = torch.rand(BATCH, 12, 20)
    expected = pretrained(input_values=input_values, input_ids=input_ids, attention_mask=attention_mask, noise=noise)
    expected_features = pretrained.get_ecg_features(input_values)

    reloaded = AutoModelForPreTraining.from_pretrained(tmp_path).eval()
    assert type(reloaded) is MeritForPreTraining
    again = reloaded(input_values=input_values, input_ids=input_ids, attention_mask=attention_mask, noise=noise)
    torch.testing.assert_close(again.loss, expected.loss)
    torch.testing.assert_close(again.reconstruction, expected.reconstruction)

    dual = AutoModel.from_pretrained(tmp_path).eval()
    assert type(dual) is MeritModel
    torch.testing.assert_close(dual.get_ecg_features(input_values), expected_features)
    torch.testing.assert_close(
        dual.get_text_features(input_ids, attention_mask), pretrained.get_text_features(input_ids, attention_mask)
    )

    encoder = MeritECGModel.from_pretrained(tmp_path).eval()
    torch.testing.assert_close(pretrained.merit.ecg_projection(encoder(input_values).pooler_output), expected_features)

    classifier = MeritForECGClassification.from_pretrained(tmp_path, num_labels=5).eval()
    torch.testing.assert_close(
        classifier.ecg_model(input_values).pooler_output, pretrained.ecg_model(input_values).pooler_output
    )


def test_loading_across_heads_reports_only_the_weights_that_are_new(tmp_path):
    """No encoder weight is reported missing (or silently re-initialised) when a checkpoint of one head is loaded
    into another; what is reported is exactly what the target adds."""
    from transformers import AutoModel

    pretrained = MeritForPreTraining(tiny_config()).eval()
    pretrained.save_pretrained(tmp_path / "pretraining")
    saved_keys = set(pretrained.state_dict())
    assert {key.split(".")[0] for key in saved_keys} == {"merit", "decoder"}

    def load(model_class, path, **kwargs):
        model, info = model_class.from_pretrained(path, output_loading_info=True, **kwargs)
        return model.eval(), {name: sorted(keys) for name, keys in info.items() if keys}

    dual, info = load(AutoModel, tmp_path / "pretraining")
    assert type(dual) is MeritModel and info == {}
    torch.testing.assert_close(dual.get_ecg_features(ecg_batch()), pretrained.get_ecg_features(ecg_batch()))
    encoder, info = load(MeritECGModel, tmp_path / "pretraining")
    assert info == {}
    classifier, info = load(MeritForECGClassification, tmp_path / "pretraining", num_labels=4)
    assert info == {"missing_keys": ["classifier.bias", "classifier.weight"]}
    for model in (encoder, classifier.ecg_model):
        torch.testing.assert_close(model(ecg_batch()).pooler_output, pretrained.ecg_model(ecg_batch()).pooler_output)

    dual.save_pretrained(tmp_path / "dual")
    pretraining, info = load(MeritForPreTraining, tmp_path / "dual")
    assert info.keys() == {"missing_keys"} and all(key.startswith("decoder.") for key in info["missing_keys"])
    torch.testing.assert_close(
        pretraining.get_text_features(*text_batch()), pretrained.get_text_features(*text_batch())
    )

    classifier.save_pretrained(tmp_path / "classifier")
    assert {key.split(".")[0] for key in classifier.state_dict()} == {"ecg_model", "classifier"}
    _again, info = load(MeritForECGClassification, tmp_path / "classifier")
    assert info == {}
    encoder.save_pretrained(tmp_path / "encoder")  # a bare ECG tower: the classifier adds its `ecg_model.` prefix
    from_encoder, info = load(MeritForECGClassification, tmp_path / "encoder", config=classifier.config)
    assert info == {"missing_keys": ["classifier.bias", "classifier.weight"]}
    torch.testing.assert_close(from_encoder.ecg_model(ecg_batch()).pooler_output, encoder(ecg_batch()).pooler_output)


def test_pretraining_holds_a_dual_encoder():
    model = MeritForPreTraining(tiny_config())
    assert isinstance(model.merit, MeritModel) and model.base_model is model.merit
    assert model.ecg_model is model.merit.ecg_model and model.text_model is model.merit.text_model
    assert {name for name, _ in model.named_children()} == {"merit", "decoder"}


def test_standalone_ecg_model_round_trip(tmp_path):
    model = MeritECGModel(MeritECGConfig.from_preset("tiny")).eval()
    model.save_pretrained(tmp_path)
    from transformers import AutoModel

    reloaded = AutoModel.from_pretrained(tmp_path).eval()
    assert type(reloaded) is MeritECGModel
    torch.testing.assert_close(reloaded(ecg_batch()).pooler_output, model(ecg_batch()).pooler_output)
    torch.testing.assert_close(reloaded.embeddings.time_position_embedding, model.embeddings.time_position_embedding)
