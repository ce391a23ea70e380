"""Tests of `MeritProcessor`: ECG only, text only, both, keyword routing, errors and save/load."""

import json

import numpy as np
import pytest
import torch

from modeling_merit import MeritFeatureExtractor, MeritProcessor


REPORTS = ["sinus rhythm. normal ecg.", "atrial fibrillation with rapid ventricular response, left axis deviation."]


@pytest.fixture
def processor(tokenizer):
    return MeritProcessor(MeritFeatureExtractor(bandpass=[0.5, 40.0]), tokenizer, max_text_length=16)


@pytest.fixture
def ecgs():
    rng = np.random.default_rng(0)
    return [rng.normal(size=(12, 5000)), rng.normal(size=(12, 1200))]


def test_ecg_only(processor, ecgs):
    output = processor(ecg=ecgs, sampling_rate=[500, 100])
    expected = processor.feature_extractor(ecgs, sampling_rate=[500, 100])
    assert set(output.keys()) == {"input_values", "lead_mask"}
    for key in expected:
        np.testing.assert_array_equal(output[key], expected[key])


def test_text_only_pads_to_longest_and_truncates_to_max_text_length(processor, tokenizer):
    output = processor(text=REPORTS)
    assert "input_values" not in output
    assert {"input_ids", "attention_mask", "token_type_ids"} <= set(output.keys())
    expected = tokenizer(REPORTS, padding="longest", truncation=True, max_length=16)
    assert output["input_ids"] == expected["input_ids"]
    assert [len(ids) for ids in output["input_ids"]] == [16, 16]  # the long report is truncated, the short padded
    assert sum(output["attention_mask"][0]) < 16

    single = processor(text=REPORTS[0])
    assert single["input_ids"] == tokenizer(REPORTS[0])["input_ids"]
    assert processor.decode(single["input_ids"], skip_special_tokens=True) == REPORTS[0]
    assert processor.batch_decode(output["input_ids"], skip_special_tokens=True)[0] == REPORTS[0]

    # Tokenizer keyword arguments override the defaults.
    longer = processor(text=REPORTS, max_length=32, padding="max_length")
    assert [len(ids) for ids in longer["input_ids"]] == [32, 32]


def test_ecg_and_text_with_tensors(processor, ecgs, tokenizer):
    lead_names = ["i", "ii", "iii", "avr", "avl", "avf", "v1", "v2", "v3", "v4", "v5", "v6"]
    output = processor(ecg=ecgs, text=REPORTS, sampling_rate=[500, 100], lead_names=lead_names, return_tensors="pt")
    assert output["input_values"].dtype == torch.float32 and output["input_values"].shape == (2, 12, 1000)
    assert output["lead_mask"].dtype == torch.int64 and output["lead_mask"].shape == (2, 12)
    for key in ("input_ids", "attention_mask", "token_type_ids"):
        assert output[key].dtype == torch.int64 and output[key].shape == (2, 16)
    expected = processor.feature_extractor(ecgs, sampling_rate=[500, 100], lead_names=lead_names, return_tensors="pt")
    torch.testing.assert_close(output["input_values"], expected["input_values"], rtol=0, atol=0)
    tokens = tokenizer(REPORTS, padding="longest", truncation=True, max_length=16, return_tensors="pt")
    torch.testing.assert_close(output["input_ids"], tokens["input_ids"], rtol=0, atol=0)


def test_ecg_keyword_arguments_go_to_the_feature_extractor(processor, ecgs):
    kwargs = {"crop": "random", "seed": 3, "channels_last": True}
    transposed = [ecg.T for ecg in ecgs]
    output = processor(ecg=transposed, text=REPORTS, sampling_rate=[500, 100], **kwargs)
    expected = processor.feature_extractor(transposed, sampling_rate=[500, 100], **kwargs)
    np.testing.assert_array_equal(output["input_values"], expected["input_values"])
    windows = processor(ecg=ecgs, sampling_rate=[500, 100], return_windows=True)
    assert windows["record_index"].tolist() == [0, 1, 1]


def test_errors(processor, ecgs):
    with pytest.raises(ValueError, match="needs `ecg`, `text` or both; got neither"):
        processor()
    with pytest.raises(ValueError, match=r"Got 1 report\(s\) for 2 ECG record\(s\)"):
        processor(ecg=ecgs, text=REPORTS[0], sampling_rate=[500, 100])
    with pytest.raises(ValueError, match="`return_windows=True` .* cannot be combined with `text`"):
        processor(ecg=ecgs, text=REPORTS, sampling_rate=[500, 100], return_windows=True)
    with pytest.raises(ValueError, match="`sampling_rate` is required"):
        processor(ecg=ecgs[0], text=REPORTS[0])
    with pytest.raises(ValueError, match="`max_text_length` must be a positive integer, got 0"):
        MeritProcessor(processor.feature_extractor, processor.tokenizer, max_text_length=0)


def test_save_and_load_round_trip(processor, ecgs, tmp_path):
    processor.save_pretrained(tmp_path / "first")
    config = json.loads((tmp_path / "first" / "processor_config.json").read_text())
    assert config["max_text_length"] == 16
    assert config["feature_extractor"]["bandpass"] == [0.5, 40.0]
    assert config["feature_extractor"]["scaling"] == "per_lead_zscore"

    loaded = MeritProcessor.from_pretrained(tmp_path / "first")
    assert isinstance(loaded.feature_extractor, MeritFeatureExtractor)
    assert loaded.max_text_length == 16
    assert loaded.feature_extractor.to_dict() == processor.feature_extractor.to_dict()
    loaded.save_pretrained(tmp_path / "second")
    for name in ("processor_config.json", "tokenizer_config.json", "tokenizer.json"):
        assert (tmp_path / "first" / name).read_text() == (tmp_path / "second" / name).read_text(), name

    expected = processor(ecg=ecgs, text=REPORTS, sampling_rate=[500, 100], return_tensors="pt")
    actual = loaded(ecg=ecgs, text=REPORTS, sampling_rate=[500, 100], return_tensors="pt")
    assert expected.keys() == actual.keys()
    for key in expected:
        torch.testing.assert_close(actual[key], expected[key], rtol=0, atol=0)
