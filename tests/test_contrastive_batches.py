# Copyright 2026 The MERIT authors.
# Licensed under the Apache License, Version 2.0.
"""Contrastive batches as pretraining meets them: records without a report, identical reports, and the cache of a
frozen text tower. (Two processes with mixed batches: tests/distributed_contrastive_check.py.)"""

import copy

import pytest
import torch

from merit_training.data import ECGReportCollator
from modeling_merit import MeritConfig, MeritForPreTraining
from modeling_merit.modeling_merit import report_keys


BATCH = 8


@pytest.fixture
def model_and_batch(single_torch_thread):
    torch.manual_seed(0)
    config = MeritConfig.from_preset(
        "tiny", text_config={"hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}, contrastive_view="full"
    )
    model = MeritForPreTraining(config)
    ecg = config.ecg_config
    generator = torch.Generator().manual_seed(1)
    input_ids = torch.randint(1000, 2000, (BATCH, 10), generator=generator)
    batch = {
        "input_values": torch.randn(BATCH, ecg.num_leads, ecg.num_samples, generator=generator),
        "input_ids": input_ids,
        "attention_mask": torch.ones_like(input_ids),
        "noise": torch.rand(BATCH, ecg.num_leads, ecg.num_patches_per_lead, generator=generator),
    }
    return model, batch


def test_records_without_a_report_leave_the_contrastive_loss_as_if_absent(model_and_batch):
    model, batch = model_and_batch
    report_mask = torch.tensor([True, True, False, True, True, False, True, True])
    with_mask = model(**batch, report_mask=report_mask)
    subset = copy.deepcopy(model)(**{name: tensor[report_mask] for name, tensor in batch.items()})
    torch.testing.assert_close(with_mask.contrastive_loss, subset.contrastive_loss)
    # ... while masked modelling still uses every record
    assert not torch.allclose(with_mask.reconstruction_loss, subset.reconstruction_loss)
    # report-less records are no candidates of anyone else's row
    assert torch.isinf(with_mask.logits_per_ecg[0, 2]) and torch.isinf(with_mask.logits_per_text[3, 5])
    # and without the mask the placeholders would count
    assert not torch.allclose(model(**batch).contrastive_loss, with_mask.contrastive_loss)


def test_a_batch_without_any_report_has_a_zero_contrastive_loss_that_backpropagates(model_and_batch):
    model, batch = model_and_batch
    output = model(**batch, report_mask=torch.zeros(BATCH, dtype=torch.bool))
    assert output.contrastive_loss.item() == 0.0 and torch.isfinite(output.loss)
    output.loss.backward()
    assert model.merit.ecg_projection.output.weight.grad is not None


def test_identical_reports_are_not_each_others_negatives(model_and_batch):
    model, batch = model_and_batch
    batch["input_ids"][5] = batch["input_ids"][1]
    output = model(**batch)
    assert torch.isinf(output.logits_per_ecg[1, 5]) and torch.isinf(output.logits_per_ecg[5, 1])
    assert torch.isfinite(output.logits_per_ecg[1, 1]) and torch.isfinite(output.logits_per_ecg[5, 5])
    model.config.exclude_duplicate_reports = False
    assert torch.isfinite(model(**batch).logits_per_ecg[1, 5])


def test_standardized_text_projection_centres_the_text_space(single_torch_thread, tmp_path):
    """`text_projection_head="standardize"`: no text projection weights; the reports' pooled features centred and
    scaled by the statistics of the records with a report in training, by their running averages in evaluation."""
    torch.manual_seed(0)
    config = MeritConfig.from_preset(
        "tiny",
        text_config={"hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0},
        text_projection_head="standardize",
        contrastive_view="full",
    )
    assert config.projection_dim == config.text_config.hidden_size
    model = MeritForPreTraining(config)
    merit = model.merit
    assert not list(merit.text_projection.parameters())
    generator = torch.Generator().manual_seed(1)
    input_ids = torch.randint(1000, 2000, (BATCH, 10), generator=generator)
    ecg = torch.randn(BATCH, config.ecg_config.num_leads, config.ecg_config.num_samples, generator=generator)
    report_mask = torch.tensor([True, True, False, True, True, False, True, True])

    output = model(input_values=ecg, input_ids=input_ids, report_mask=report_mask)
    with torch.no_grad():
        pooled = merit.pooled_text_features(input_ids)
    reported = pooled[report_mask]
    mean, variance = reported.mean(0), reported.var(0, unbiased=False)
    expected = torch.nn.functional.normalize((pooled - mean) / torch.sqrt(variance + 1e-5), dim=-1)
    torch.testing.assert_close(output.text_embeds[report_mask], expected[report_mask])
    norm = merit.text_projection.norm
    torch.testing.assert_close(norm.running_mean, 0.1 * mean)
    unbiased = variance * report_mask.sum() / (report_mask.sum() - 1)
    torch.testing.assert_close(norm.running_var, 0.9 + 0.1 * unbiased)

    model.eval()
    with torch.no_grad():
        evaluated = model(input_values=ecg, input_ids=input_ids).text_embeds
    expected = torch.nn.functional.normalize(
        (pooled - norm.running_mean) / torch.sqrt(norm.running_var + 1e-5), dim=-1
    )
    torch.testing.assert_close(evaluated, expected)

    # the running statistics are saved with the weights and not re-initialised when loaded
    model.save_pretrained(tmp_path)
    loaded = MeritForPreTraining.from_pretrained(tmp_path).eval()
    torch.testing.assert_close(loaded.merit.text_projection.norm.running_var, norm.running_var)
    with torch.no_grad():
        torch.testing.assert_close(loaded(input_values=ecg, input_ids=input_ids).text_embeds, evaluated)


def test_report_keys_ignore_padding_and_tell_reports_apart():
    ids = torch.tensor([[101, 7, 8, 102, 0, 0], [101, 7, 8, 102, 0, 0], [101, 8, 7, 102, 0, 0]])
    mask = (ids != 0).long()
    keys = report_keys(ids, mask)
    assert keys[0] == keys[1] != keys[2]
    assert report_keys(ids[:1, :4], mask[:1, :4])[0] == keys[0]  # other padding, same report


def test_text_cache_equals_the_frozen_tower_and_empties_when_its_weights_change(model_and_batch):
    model, batch = model_and_batch
    merit = model.merit
    merit.freeze_text_tower("all")
    reference = merit.pooled_text_features(batch["input_ids"], batch["attention_mask"])  # cache off
    merit.enable_text_feature_cache()
    cached = merit.pooled_text_features(batch["input_ids"], batch["attention_mask"])
    torch.testing.assert_close(cached, reference)
    assert len(merit._text_feature_cache) == BATCH
    calls = []
    handle = merit.text_model.register_forward_hook(lambda *args: calls.append(1))
    merit.pooled_text_features(batch["input_ids"], batch["attention_mask"])
    assert not calls  # every report came from the cache
    state = {name: tensor + 0.01 for name, tensor in merit.text_model.state_dict().items()}
    merit.text_model.load_state_dict(state)
    changed = merit.pooled_text_features(batch["input_ids"], batch["attention_mask"])
    assert calls and not torch.allclose(changed, cached)  # recomputed with the new weights
    handle.remove()
    merit.freeze_text_tower("none")  # a trainable tower is never cached
    trainable = merit.pooled_text_features(batch["input_ids"], batch["attention_mask"])
    assert trainable.requires_grad


def test_collator_flags_empty_reports(processor):
    lead_names = ["I", "II", "III", "AVR", "AVL", "AVF", "V1", "V2", "V3", "V4", "V5", "V6"]
    rows = [
        {"ecg": torch.randn(12, 1000).numpy(), "lead_names": lead_names, "sampling_rate": 100, "report": text}
        for text in ("sinus rhythm", "  ", "")
    ]
    batch = ECGReportCollator(processor, signal_column="ecg", crop="center")(rows)
    assert batch["report_mask"].tolist() == [True, False, False]


def test_report_sentence_dropout_keeps_a_statement_and_is_seeded(processor):
    import numpy as np

    from merit_training.data import ROW_INDEX, drop_report_sentences

    rng = np.random.default_rng(0)
    english = "sinus rhythm. left axis deviation. left ventricular hypertrophy."
    german = "sinusrhythmus linkstyp qrs(t) abnormal    inferiorer infarkt     alter unbest."
    outcomes = {drop_report_sentences(english, 0.5, rng) for _ in range(200)}
    # every outcome is a non-empty, in-order subset of the three statements; several subsets occur
    statements = ["sinus rhythm.", "left axis deviation.", "left ventricular hypertrophy."]
    for outcome in outcomes:
        kept = [statement for statement in statements if statement in outcome]
        assert kept and outcome == " ".join(kept)
    assert len(outcomes) >= 5 and english in outcomes
    assert {drop_report_sentences(german, 0.99, rng) for _ in range(50)} <= {
        "sinusrhythmus linkstyp qrs(t) abnormal",
        "inferiorer infarkt",
        "alter unbest.",
    }
    for single in ("sinusrhythmus normales ekg", "", "  "):
        assert drop_report_sentences(single, 0.9, rng) == single  # one statement (or none): unchanged

    lead_names = ["I", "II", "III", "AVR", "AVL", "AVF", "V1", "V2", "V3", "V4", "V5", "V6"]
    rows = [
        {"ecg": np.zeros((12, 1000), np.float32), "lead_names": lead_names, "sampling_rate": 100, "report": text,
         ROW_INDEX: index}
        for index, text in enumerate([english, german, ""])
    ]  # fmt: skip
    augmenting = ECGReportCollator(processor, signal_column="ecg", crop="random", seed=3, report_sentence_dropout=0.5)
    first, again = augmenting(rows), augmenting(rows)
    assert torch.equal(first["input_ids"], again["input_ids"])  # seeded by the run seed and the rows, like the crops
    plain = ECGReportCollator(processor, signal_column="ecg", crop="random", seed=3)(rows)
    assert first["report_mask"].tolist() == [True, True, False]
    assert (first["attention_mask"].sum(1) <= plain["attention_mask"].sum(1)).all()
    with pytest.raises(ValueError, match="needs crop='random'"):
        ECGReportCollator(processor, signal_column="ecg", crop="center", report_sentence_dropout=0.5)(rows)
