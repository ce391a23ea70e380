"""`resample_to_model_rate`: records resampled once to the model's rate give the training loader the same inputs as
resampling them in every batch (the fix for the loader cost measured by benchmarks/bench_mimic_scale.py)."""

import datasets
import numpy as np
import pytest
import torch

from merit_training.data import ROW_INDEX, ECGReportCollator, resample_to_model_rate
from modeling_merit import MeritFeatureExtractor, MeritProcessor


@pytest.fixture(scope="module")
def records_500hz(ptbxl_sample_dir, cache_dir):
    """Real 500 Hz PTB-XL records (digital int16 with gains), the layout every builder writes."""
    from dataset_scripts.ptbxl import load_ptbxl

    splits = load_ptbxl(ptbxl_sample_dir, task="all", sampling_rate=500, cache_dir=cache_dir, record_ids=range(1, 21))
    return datasets.concatenate_datasets(list(splits.values())).select(range(12))  # the excerpt's 500 Hz records


def collate(dataset, processor, seed=0):
    rows = [{**row, ROW_INDEX: index} for index, row in enumerate(dataset.with_format("numpy"))]
    return ECGReportCollator(processor, crop="random", seed=seed)(rows)


@pytest.mark.slow
@pytest.mark.parametrize("bandpass", [None, (0.5, 40.0)])
def test_resampled_once_gives_the_loader_the_same_inputs(records_500hz, tokenizer, bandpass):
    extractor = MeritFeatureExtractor(sampling_rate=100, num_samples=500, bandpass=bandpass)  # 5-s random crops
    processor = MeritProcessor(extractor, tokenizer, max_text_length=32)
    resampled = resample_to_model_rate(records_500hz, extractor)
    assert resampled[0]["sampling_rate"] == 100 and np.asarray(resampled[0]["signal"]).shape == (12, 1000)
    assert "adc_gain" not in resampled.column_names
    expected, actual = collate(records_500hz, processor), collate(resampled, processor)
    torch.testing.assert_close(actual["input_values"], expected["input_values"], rtol=0, atol=1e-5)
    for name in ("lead_mask", "input_ids", "attention_mask"):
        assert torch.equal(actual[name], expected[name])
    # the crops are random (a different seed moves them), so the equality above is not that of two constants
    assert not torch.allclose(collate(resampled, processor, seed=1)["input_values"], actual["input_values"])


def test_missing_leads_and_another_lead_order_stay_as_they_were(tokenizer):
    rng = np.random.default_rng(0)
    signal = rng.normal(size=(12, 5000)).astype(np.float32)
    signal[4] = np.nan  # aVF missing
    names = ["I", "II", "III", "aVR", "aVF", "aVL", "V1", "V2", "V3", "V4", "V5", "V6"]  # MIMIC's order
    dataset = datasets.Dataset.from_dict(
        {"signal": [signal], "lead_names": [names], "sampling_rate": [500.0], "report": ["sinus rhythm"]}
    )
    extractor = MeritFeatureExtractor(sampling_rate=100, num_samples=1000)
    processor = MeritProcessor(extractor, tokenizer, max_text_length=16)
    resampled = resample_to_model_rate(dataset, extractor)
    assert resampled[0]["lead_names"] == list(extractor.lead_names)
    expected, actual = collate(dataset, processor), collate(resampled, processor)
    assert actual["lead_mask"].tolist() == expected["lead_mask"].tolist() and expected["lead_mask"].sum() == 11
    torch.testing.assert_close(actual["input_values"], expected["input_values"], rtol=0, atol=1e-5)


@pytest.mark.slow
def test_train_merit_resample_once_trains_like_resampling_every_batch(tmp_path, single_torch_thread, caplog):
    """`--resample_once` on the 100 Hz excerpt with a 50 Hz model: the same losses as resampling in every batch."""
    from train_helpers import read_training_log_losses, tiny_train_args

    import train_merit

    overrides = '{"ecg_config": {"sampling_rate": 50, "num_samples": 250}}'  # 5-s crops of records resampled to 50 Hz
    caplog.set_level("INFO", logger="merit_training.data")
    losses = {}
    for flag in ("false", "true"):
        output_dir = tmp_path / f"resample-once-{flag}"
        args = tiny_train_args(output_dir, tmp_path / "cache", "--max_train_steps", "3", "--resample_once", flag)
        train_merit.main([*args, "--config_overrides", overrides])
        losses[flag] = read_training_log_losses(output_dir)
        resampled = "Training records resampled once to 50 Hz." in caplog.text
        assert resampled == (flag == "true")
    assert [step for step, _ in losses["true"]] == [1, 2, 3]
    np.testing.assert_allclose([loss for _, loss in losses["true"]], [loss for _, loss in losses["false"]], rtol=1e-5)
