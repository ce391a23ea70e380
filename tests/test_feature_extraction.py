"""Tests of `MeritFeatureExtractor`: lead mapping, resampling, filtering, cropping, windows, NaN handling, scaling,
input validation and save/load, on the real PTB-XL excerpt and on synthetic signals."""

import json

import numpy as np
import pytest
import torch
import wfdb

from modeling_merit import MeritFeatureExtractor


CANONICAL = ["I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"]
PTBXL_HEADER_NAMES = ["I", "II", "III", "AVR", "AVL", "AVF", "V1", "V2", "V3", "V4", "V5", "V6"]


def record_path(sample_dir, number: int, rate: int):
    """Record name (no extension) of PTB-XL record `number` at 100 or 500 Hz."""
    folder, suffix = ("records100", "lr") if rate == 100 else ("records500", "hr")
    return sample_dir / folder / "00000" / f"{number:05d}_{suffix}"


def read_record(sample_dir, number: int, rate: int):
    """(signal as leads x time, sampling rate, lead names) of a PTB-XL record, read with wfdb directly."""
    signal, fields = wfdb.rdsamp(str(record_path(sample_dir, number, rate)))
    return signal.T, fields["fs"], fields["sig_name"]


def synthetic_ecg(num_leads=12, num_samples=1000, seed=0):
    """Distinct smooth-ish random signals per lead, with lead-specific offsets and amplitudes."""
    rng = np.random.default_rng(seed)
    scale = np.linspace(0.5, 2.0, num_leads)[:, None]
    offset = np.linspace(-1.0, 1.0, num_leads)[:, None]
    return rng.normal(size=(num_leads, num_samples)) * scale + offset


# ---------------------------------------------------------------------------------------------------------------------
# Real PTB-XL records


def test_wfdb_record_is_mapped_to_canonical_lead_order(ptbxl_sample_dir):
    signal, _rate, names = read_record(ptbxl_sample_dir, 1, 100)
    assert names == PTBXL_HEADER_NAMES  # upper-case aVR/aVL/aVF in the header
    output = MeritFeatureExtractor(scaling="none")(str(record_path(ptbxl_sample_dir, 1, 100)))
    assert output["input_values"].shape == (1, 12, 1000)
    assert output["lead_mask"].tolist() == [[1] * 12]
    # 100 Hz, 1000 samples: no resampling or cropping, so every canonical lead is the header lead of the same name.
    np.testing.assert_allclose(output["input_values"][0], signal.astype(np.float32))


def test_100hz_and_500hz_versions_of_a_record_agree(ptbxl_sample_dir):
    feature_extractor = MeritFeatureExtractor(scaling="none")
    for number in range(1, 21):
        low = feature_extractor(str(record_path(ptbxl_sample_dir, number, 100)) + ".hea")["input_values"][0]
        high = feature_extractor(str(record_path(ptbxl_sample_dir, number, 500)) + ".hea")["input_values"][0]
        # PTB-XL's own 100 Hz files have an artefact in their last few samples; compare the interior (0.1 s margins).
        low, high = low[:, 10:-10].astype(np.float64), high[:, 10:-10].astype(np.float64)
        correlation = [np.corrcoef(low[lead], high[lead])[0, 1] for lead in range(12)]
        difference = np.abs(low - high)
        assert min(correlation) > 0.99, (number, correlation)
        assert np.percentile(difference, 99) < 0.15, number  # mV; QRS amplitudes are ~1-3 mV
        assert difference.max() < 0.5, number


def test_reading_a_path_equals_reading_the_array(ptbxl_sample_dir):
    feature_extractor = MeritFeatureExtractor(bandpass=[0.5, 40.0])
    path = record_path(ptbxl_sample_dir, 2, 500)
    signal, rate, names = read_record(ptbxl_sample_dir, 2, 500)
    from_array = feature_extractor(signal, sampling_rate=rate, lead_names=names)
    for form in (path, str(path), str(path) + ".hea", path.with_suffix(".hea")):
        from_path = feature_extractor(form)
        np.testing.assert_array_equal(from_path["input_values"], from_array["input_values"])
        np.testing.assert_array_equal(from_path["lead_mask"], from_array["lead_mask"])
    # Metadata given explicitly for a WFDB record is accepted when it agrees with the header.
    agreeing = feature_extractor(path, sampling_rate=500, lead_names=[name.lower() for name in names])
    np.testing.assert_array_equal(agreeing["input_values"], from_array["input_values"])


def test_shuffled_and_lower_case_lead_names_give_identical_output(ptbxl_sample_dir):
    feature_extractor = MeritFeatureExtractor()
    signal, rate, names = read_record(ptbxl_sample_dir, 3, 100)
    reference = feature_extractor(signal, sampling_rate=rate, lead_names=names)["input_values"]
    order = np.random.default_rng(0).permutation(12)
    for transform in (str.lower, str.upper, lambda name: name):
        shuffled_names = [transform(names[index]) for index in order]
        shuffled = feature_extractor(signal[order], sampling_rate=rate, lead_names=shuffled_names)["input_values"]
        np.testing.assert_array_equal(shuffled, reference)
    # Without lead names, a 12-lead array is taken to be in canonical order.
    np.testing.assert_array_equal(feature_extractor(signal, sampling_rate=rate)["input_values"], reference)


def test_extra_frank_leads_of_a_15_lead_record_are_ignored(ptbxl_sample_dir, tmp_path):
    signal, rate, names = read_record(ptbxl_sample_dir, 4, 500)
    frank = np.stack([signal[0] + signal[6], signal[1] - signal[9], 0.5 * signal[11]])
    # Interleave the Frank leads, as lower-case names like the PTB Diagnostic ECG Database uses.
    leads_15 = np.concatenate([frank[:1], signal[:6], frank[1:], signal[6:]])
    names_15 = ["vx"] + [name.lower() for name in names[:6]] + ["vy", "vz"] + [name.lower() for name in names[6:]]

    def write(record_name, leads, lead_names):
        wfdb.wrsamp(
            record_name, fs=rate, units=["mV"] * len(lead_names), sig_name=lead_names, p_signal=leads.T,
            fmt=["16"] * len(lead_names), adc_gain=[1000.0] * len(lead_names), baseline=[0] * len(lead_names),
            write_dir=str(tmp_path),
        )  # fmt: skip

    write("rec12", signal, names)
    write("rec15", leads_15, names_15)
    assert wfdb.rdheader(str(tmp_path / "rec15")).sig_name == names_15

    feature_extractor = MeritFeatureExtractor()
    output_15 = feature_extractor(tmp_path / "rec15.hea")
    output_12 = feature_extractor(tmp_path / "rec12.hea")
    np.testing.assert_array_equal(output_15["input_values"], output_12["input_values"])
    assert output_15["lead_mask"].tolist() == [[1] * 12]
    from_array = feature_extractor(signal, sampling_rate=rate, lead_names=names)
    np.testing.assert_allclose(output_15["input_values"], from_array["input_values"], atol=1e-5)


@pytest.mark.slow
def test_all_400_real_records_by_path(ptbxl_sample_dir):
    paths = sorted((ptbxl_sample_dir / "records100" / "00000").glob("*.hea"))[:400]  # ids 1-400
    assert paths[-1].name == "00400_lr.hea"
    feature_extractor = MeritFeatureExtractor()
    by_path = feature_extractor(paths, return_nan_counts=True)
    assert by_path["input_values"].shape == (400, 12, 1000)
    assert np.isfinite(by_path["input_values"]).all()
    assert by_path["lead_mask"].all() and not by_path["nan_samples"].any()
    arrays = [wfdb.rdsamp(str(path.with_suffix("")))[0] for path in paths[:40]]
    by_array = feature_extractor(arrays, sampling_rate=100, lead_names=PTBXL_HEADER_NAMES, channels_last=True)
    np.testing.assert_array_equal(by_path["input_values"][:40], by_array["input_values"])


# ---------------------------------------------------------------------------------------------------------------------
# Input forms


def test_missing_leads_are_zero_filled_and_masked():
    signal = synthetic_ecg()
    feature_extractor = MeritFeatureExtractor()
    full = feature_extractor(signal, sampling_rate=100)
    keep = [index for index in range(12) if CANONICAL[index] not in ("V1", "aVL")]
    partial = feature_extractor(signal[keep], sampling_rate=100, lead_names=[CANONICAL[index] for index in keep])
    expected_mask = [0 if name in ("V1", "aVL") else 1 for name in CANONICAL]
    assert partial["lead_mask"].tolist() == [expected_mask]
    assert partial["lead_mask"].dtype == np.int64
    assert not partial["input_values"][0, [4, 6]].any()
    # Per-lead scaling is independent per lead: the present leads are unchanged.
    np.testing.assert_array_equal(partial["input_values"][0, keep], full["input_values"][0, keep])

    # An entirely NaN lead counts as missing, not as filled samples.
    with_nan_lead = signal.copy()
    with_nan_lead[4] = np.nan
    output = feature_extractor(with_nan_lead, sampling_rate=100, return_nan_counts=True)
    assert output["lead_mask"][0, 4] == 0 and output["lead_mask"][0].sum() == 11
    assert not output["input_values"][0, 4].any()
    assert output["nan_samples"].tolist() == [0]


def test_channels_last_torch_and_int16_inputs():
    signal = synthetic_ecg(num_samples=1200)
    feature_extractor = MeritFeatureExtractor()
    reference = feature_extractor(signal, sampling_rate=100)["input_values"]
    np.testing.assert_array_equal(
        feature_extractor(signal.T, sampling_rate=100, channels_last=True)["input_values"], reference
    )
    as_tensor = feature_extractor(torch.from_numpy(signal), sampling_rate=100)["input_values"]
    np.testing.assert_array_equal(as_tensor, reference)

    digital = (signal * 1000).astype(np.int16)
    raw = MeritFeatureExtractor(scaling="none")(digital, sampling_rate=100)["input_values"]
    assert raw.dtype == np.float32
    np.testing.assert_array_equal(raw[0], digital[:, 100:1100].astype(np.float32))  # no implicit gain

    batch = np.stack([signal, 2 * signal])  # a 3-d array is a batch of equally long records
    output = feature_extractor(batch, sampling_rate=100)["input_values"]
    np.testing.assert_allclose(output, np.concatenate([reference, reference]), atol=1e-6)


def test_list_of_records_with_different_lengths_and_rates():
    feature_extractor = MeritFeatureExtractor(bandpass=[0.5, 40.0])
    records = [synthetic_ecg(num_samples=5000, seed=1), synthetic_ecg(num_samples=700, seed=2),
               synthetic_ecg(num_samples=3000, seed=3)[:8]]  # fmt: skip
    rates = [500, 100, 250]
    lead_names = [None, CANONICAL, CANONICAL[:8]]
    batch = feature_extractor(records, sampling_rate=rates, lead_names=lead_names)
    assert batch["input_values"].shape == (3, 12, 1000)
    assert batch["input_values"].dtype == np.float32
    assert batch["lead_mask"].tolist() == [[1] * 12, [1] * 12, [1] * 8 + [0] * 4]
    for index, (record, rate, names) in enumerate(zip(records, rates, lead_names, strict=True)):
        single = feature_extractor(record, sampling_rate=rate, lead_names=names)
        np.testing.assert_array_equal(batch["input_values"][index], single["input_values"][0])


def test_resampling_preserves_a_band_limited_signal():
    time_500 = np.arange(5000) / 500
    sine = np.sin(2 * np.pi * 3.0 * time_500) + 0.5 * np.sin(2 * np.pi * 11.0 * time_500)
    output = MeritFeatureExtractor(scaling="none")(np.tile(sine, (12, 1)), sampling_rate=500)["input_values"][0]
    time_100 = np.arange(1000) / 100
    expected = np.sin(2 * np.pi * 3.0 * time_100) + 0.5 * np.sin(2 * np.pi * 11.0 * time_100)
    np.testing.assert_allclose(output[:, 20:-20], np.tile(expected, (12, 1))[:, 20:-20], atol=1e-3)


# ---------------------------------------------------------------------------------------------------------------------
# Crop, pad, windows


def test_center_crop_and_seeded_random_crop():
    signal = synthetic_ecg(num_samples=1500)
    feature_extractor = MeritFeatureExtractor(scaling="none")
    center = feature_extractor(signal, sampling_rate=100)["input_values"][0]
    np.testing.assert_allclose(center, signal[:, 250:1250], rtol=1e-6)

    starts = set()
    for seed in range(8):
        first = feature_extractor(signal, sampling_rate=100, crop="random", seed=seed)["input_values"][0]
        again = feature_extractor(signal, sampling_rate=100, crop="random", seed=seed)["input_values"][0]
        np.testing.assert_array_equal(first, again)
        start = int(np.argmin(np.abs(signal[0] - first[0, 0])))
        np.testing.assert_allclose(first, signal[:, start : start + 1000], rtol=1e-6)
        starts.add(start)
    assert len(starts) > 1
    # The constructor's crop mode is the default of the call.
    random_by_default = MeritFeatureExtractor(scaling="none", crop="random")
    np.testing.assert_array_equal(
        random_by_default(signal, sampling_rate=100, seed=3)["input_values"],
        feature_extractor(signal, sampling_rate=100, crop="random", seed=3)["input_values"],
    )


def test_short_records_are_padded_at_the_end_and_scaled_on_real_samples_only():
    signal = synthetic_ecg(num_samples=600)
    padded = MeritFeatureExtractor(scaling="none", padding_value=-7.0)(signal, sampling_rate=100)["input_values"][0]
    np.testing.assert_allclose(padded[:, :600], signal, rtol=1e-6)
    assert (padded[:, 600:] == -7.0).all()

    scaled = MeritFeatureExtractor(padding_value=-7.0)(signal, sampling_rate=100)["input_values"][0]
    np.testing.assert_allclose(scaled[:, :600].mean(axis=1), 0.0, atol=1e-5)
    np.testing.assert_allclose(scaled[:, :600].std(axis=1), 1.0, atol=1e-5)
    assert (scaled[:, 600:] == -7.0).all()

    # Missing leads stay zero over the whole row, padding included.
    partial = MeritFeatureExtractor(padding_value=-7.0)(signal[:6], sampling_rate=100, lead_names=CANONICAL[:6])
    assert (partial["input_values"][0, :6, 600:] == -7.0).all()
    assert not partial["input_values"][0, 6:].any()


def test_sliding_windows():
    signal = synthetic_ecg(num_samples=2500)
    feature_extractor = MeritFeatureExtractor(scaling="none")
    windows = feature_extractor(
        [signal, signal[:, :400]], sampling_rate=100, return_windows=True, return_nan_counts=True
    )
    # Non-overlapping windows at 0 and 1000, then one aligned with the end (1500) so that no sample is lost.
    assert windows["input_values"].shape == (4, 12, 1000)
    assert windows["record_index"].tolist() == [0, 0, 0, 1]
    for row, start in enumerate([0, 1000, 1500]):
        np.testing.assert_allclose(windows["input_values"][row], signal[:, start : start + 1000], rtol=1e-6)
    np.testing.assert_allclose(windows["input_values"][3, :, :400], signal[:, :400], rtol=1e-6)
    assert (windows["input_values"][3, :, 400:] == 0).all()
    assert windows["lead_mask"].shape == (4, 12) and windows["nan_samples"].shape == (4,)

    overlapping = MeritFeatureExtractor(scaling="none", window_stride=500)(
        signal, sampling_rate=100, return_windows=True
    )
    assert overlapping["input_values"].shape == (4, 12, 1000)
    np.testing.assert_allclose(overlapping["input_values"][1], signal[:, 500:1500], rtol=1e-6)
    assert "record_index" not in feature_extractor(signal, sampling_rate=100)


# ---------------------------------------------------------------------------------------------------------------------
# NaN handling, scaling, filtering


def test_nan_interpolation_and_zero_filling_are_counted():
    ramp = np.tile(np.linspace(0.0, 9.99, 1000), (12, 1))
    with_gaps = ramp.copy()
    with_gaps[2, 100:150] = np.nan  # interior gap: linear interpolation restores the ramp
    with_gaps[5, :10] = np.nan  # leading gap: held at the first finite value
    with_gaps[7, 500] = np.inf
    interpolated = MeritFeatureExtractor(scaling="none")(with_gaps, sampling_rate=100, return_nan_counts=True)
    assert interpolated["nan_samples"].tolist() == [61]
    values = interpolated["input_values"][0]
    np.testing.assert_allclose(values[2], ramp[2], atol=1e-5)
    np.testing.assert_allclose(values[5, :10], ramp[5, 10], atol=1e-5)
    np.testing.assert_allclose(values[7], ramp[7], atol=1e-5)

    zeroed = MeritFeatureExtractor(scaling="none", nan_policy="zero")(
        [with_gaps, ramp], sampling_rate=100, return_nan_counts=True
    )
    assert zeroed["nan_samples"].tolist() == [61, 0]
    assert not zeroed["input_values"][0, 2, 100:150].any() and not zeroed["input_values"][0, 5, :10].any()
    assert zeroed["input_values"][0, 7, 500] == 0
    assert np.isfinite(zeroed["input_values"]).all()


def test_scaling_modes_statistics():
    signal = synthetic_ecg()
    lead_names = CANONICAL[:10]  # V5 and V6 missing: they must neither enter the statistics nor be shifted
    per_lead = MeritFeatureExtractor(scaling="per_lead_zscore")(signal[:10], sampling_rate=100, lead_names=lead_names)
    values = per_lead["input_values"][0].astype(np.float64)
    np.testing.assert_allclose(values[:10].mean(axis=1), 0.0, atol=1e-5)
    np.testing.assert_allclose(values[:10].std(axis=1), 1.0, atol=1e-5)
    assert not values[10:].any()

    per_record = MeritFeatureExtractor(scaling="per_record_zscore")(
        signal[:10], sampling_rate=100, lead_names=lead_names
    )
    values = per_record["input_values"][0].astype(np.float64)
    assert abs(values[:10].mean()) < 1e-5 and abs(values[:10].std() - 1.0) < 1e-5
    expected = (signal[:10] - signal[:10].mean()) / signal[:10].std()
    np.testing.assert_allclose(values[:10], expected, atol=1e-5)  # relative amplitudes between leads are kept
    assert not values[10:].any()

    unscaled = MeritFeatureExtractor(scaling="none")(signal, sampling_rate=100)["input_values"][0]
    np.testing.assert_allclose(unscaled, signal, rtol=1e-6)

    flat = MeritFeatureExtractor()(np.full((12, 1000), 3.0), sampling_rate=100)["input_values"]
    assert np.isfinite(flat).all() and not flat.any()


def test_bandpass_removes_low_frequency_drift():
    time = np.arange(5000) / 500
    heart = np.sin(2 * np.pi * 8.0 * time)
    drift = 3.0 * np.sin(2 * np.pi * 0.1 * time + 0.3) + 2.0  # baseline wander and offset
    signal = np.tile(heart + drift, (12, 1))
    expected = np.sin(2 * np.pi * 8.0 * np.arange(1000) / 100)

    filtered = MeritFeatureExtractor(scaling="none", bandpass=[0.5, 40.0])(signal, sampling_rate=500)["input_values"][
        0
    ]
    unfiltered = MeritFeatureExtractor(scaling="none")(signal, sampling_rate=500)["input_values"][0]
    assert np.abs(unfiltered - expected).max() > 1.0
    error = np.abs(filtered - expected)
    assert error[:, 100:900].max() < 0.1  # a 0.5 Hz high-pass leaves a small transient in the first/last second
    assert error[:, 200:800].max() < 0.03


# ---------------------------------------------------------------------------------------------------------------------
# Validation


def _write_broken_records(directory, sample_dir):
    """Writes records with a corrupt header, a truncated signal file and a missing signal file."""
    source = record_path(sample_dir, 1, 100)
    header = source.with_suffix(".hea").read_text()
    (directory / "corrupt.hea").write_text("this is not a WFDB header\n")
    (directory / "truncated.hea").write_text(header.replace("00001_lr", "truncated"))
    (directory / "truncated.dat").write_bytes(source.with_suffix(".dat").read_bytes()[:1001])
    (directory / "nosignal.hea").write_text(header.replace("00001_lr", "nosignal"))


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda fe, x: fe(x[0], sampling_rate=100), r"has 1 dimension\(s\).*expected 2"),
        (lambda fe, x: fe(x[None, None], sampling_rate=100), r"has 4 dimension\(s\).*expected 2"),
        (lambda fe, x: fe([x, x[0]], sampling_rate=100), r"record 1 has 1 dimension"),
        (lambda fe, x: fe(x, sampling_rate=100, lead_names=CANONICAL[:11]), r"has 11 name\(s\) but the record has 12"),
        (lambda fe, x: fe(x, sampling_rate=100, lead_names="I"), r"has 1 name\(s\) but the record has 12"),
        (lambda fe, x: fe(x[:13], sampling_rate=100, lead_names=CANONICAL[:11] + ["V7x"]), r"Unknown lead name 'V7x'"),
        (lambda fe, x: fe(x, sampling_rate=100, lead_names=CANONICAL[:11] + ["AVR"]), r"Duplicate lead.*'aVR'.*'AVR'"),
        (lambda fe, x: fe(x[:3], sampling_rate=100, lead_names=["vx", "vy", "vz"]), r"None of the leads"),
        (lambda fe, x: fe(x[:10], sampling_rate=100), r"`lead_names` is required.*10 leads"),
        (lambda fe, x: fe(x), r"`sampling_rate` is required"),
        (lambda fe, x: fe(x, sampling_rate=0), r"must be a positive number of Hz, got 0"),
        (lambda fe, x: fe(x, sampling_rate=-250.0), r"must be a positive number of Hz, got -250"),
        (lambda fe, x: fe(x[:, :0], sampling_rate=100), r"is empty \(shape \(12, 0\)\)"),
        (lambda fe, x: fe(np.full_like(x, np.nan), sampling_rate=100), r"no finite sample.*entirely NaN"),
        (lambda fe, x: fe(x.astype(complex), sampling_rate=100), r"dtype complex128; expected integer or floating"),
        (lambda fe, x: fe([x, x], sampling_rate=[100]), r"`sampling_rate` has 1 entries but `ecg` has 2"),
        (lambda fe, x: fe([x, x], sampling_rate=100, lead_names=[CANONICAL]), r"`lead_names` has 1 entries but"),
        (lambda fe, x: fe([], sampling_rate=100), r"empty list"),
        (lambda fe, x: fe({"signal": x}, sampling_rate=100), r"`ecg` must be an array.*got dict"),
        (lambda fe, x: fe(x, sampling_rate=100, crop="left"), r"`crop` must be one of"),
    ],
)
def test_bad_array_inputs_raise_value_errors(call, message):
    with pytest.raises(ValueError, match=message):
        call(MeritFeatureExtractor(), synthetic_ecg(num_leads=13, num_samples=500)[:12])


def test_bad_wfdb_inputs_raise_value_errors(ptbxl_sample_dir, tmp_path):
    feature_extractor = MeritFeatureExtractor()
    _write_broken_records(tmp_path, ptbxl_sample_dir)
    with pytest.raises(ValueError, match=r"Could not read the WFDB record '.*missing.hea'.*FileNotFoundError"):
        feature_extractor(tmp_path / "missing.hea")
    with pytest.raises(ValueError, match=r"Could not read the WFDB record '.*corrupt.hea'"):
        feature_extractor(str(tmp_path / "corrupt.hea"))
    with pytest.raises(ValueError, match=r"Could not read the WFDB record '.*truncated'"):
        feature_extractor(tmp_path / "truncated")
    with pytest.raises(ValueError, match=r"Could not read the WFDB record '.*nosignal'.*nosignal.dat"):
        feature_extractor([record_path(ptbxl_sample_dir, 1, 100), tmp_path / "nosignal"])
    path = record_path(ptbxl_sample_dir, 1, 500)
    with pytest.raises(ValueError, match=r"`sampling_rate`=100 disagrees with the header .*\(500.0 Hz\)"):
        feature_extractor(path, sampling_rate=100)
    with pytest.raises(ValueError, match=r"`lead_names`=.* disagree with the header"):
        feature_extractor(path, lead_names=CANONICAL[::-1])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"scaling": "minmax"}, r"`scaling` must be one of .*'minmax'"),
        ({"crop": "left"}, r"`crop` must be one of .*'left'"),
        ({"nan_policy": "drop"}, r"`nan_policy` must be one of .*'drop'"),
        ({"bandpass": [0.5, 50.0]}, r"`bandpass` must be .*< sampling_rate / 2 = 50.0 Hz"),
        ({"bandpass": [0.0, 40.0]}, r"`bandpass` must be \[low_hz, high_hz\] with 0 < low_hz"),
        ({"bandpass": [40.0, 0.5]}, r"`bandpass` must be"),
        ({"bandpass": [0.5]}, r"`bandpass` must be"),
        ({"bandpass": 40.0}, r"`bandpass` must be .*got 40.0"),
        ({"bandpass": ["low", "high"]}, r"`bandpass` must be"),
        ({"num_samples": 0}, r"`num_samples` must be a positive integer, got 0"),
        ({"num_samples": 10.5}, r"`num_samples` must be a positive integer, got 10.5"),
        ({"sampling_rate": -1}, r"`sampling_rate` must be a positive number"),
        ({"feature_size": 8}, r"`feature_size` \(8\) must equal the number of `lead_names` \(12"),
        ({"lead_names": ["I", "i"], "feature_size": 2}, r"`lead_names` must not repeat a lead"),
        ({"ignored_lead_names": ["vx", "V1"]}, r"`ignored_lead_names` must not contain output leads.*'v1'"),
        ({"window_stride": 0}, r"`window_stride` must be a positive integer or None, got 0"),
        ({"filter_order": 0}, r"`filter_order` must be a positive integer, got 0"),
        ({"padding_value": float("nan")}, r"`padding_value` must be a finite number"),
    ],
)
def test_bad_constructor_values_raise_value_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        MeritFeatureExtractor(**kwargs)


def test_custom_lead_subset_and_bandpass_at_a_higher_target_rate():
    feature_extractor = MeritFeatureExtractor(
        lead_names=["I", "II", "V2"], feature_size=3, sampling_rate=500, num_samples=2500, bandpass=[0.5, 150.0]
    )
    output = feature_extractor(synthetic_ecg(num_samples=1000), sampling_rate=100, lead_names=CANONICAL)
    assert output["input_values"].shape == (1, 3, 2500) and output["lead_mask"].tolist() == [[1, 1, 1]]


# ---------------------------------------------------------------------------------------------------------------------
# Serialisation and tensors


def test_save_and_load_round_trip(tmp_path):
    feature_extractor = MeritFeatureExtractor(
        bandpass=[0.5, 40.0], filter_order=3, scaling="per_record_zscore", crop="random", nan_policy="zero",
        window_stride=500, padding_value=-1.0, num_samples=800,
    )  # fmt: skip
    feature_extractor.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "preprocessor_config.json").read_text())
    assert saved["bandpass"] == [0.5, 40.0] and saved["scaling"] == "per_record_zscore"
    assert saved["lead_names"] == CANONICAL and saved["feature_extractor_type"] == "MeritFeatureExtractor"

    loaded = MeritFeatureExtractor.from_pretrained(tmp_path)
    assert loaded.to_dict() == feature_extractor.to_dict()
    records = [synthetic_ecg(num_samples=3000, seed=5), synthetic_ecg(num_samples=500, seed=6)]
    for kwargs in ({"seed": 0}, {"return_windows": True}):
        expected = feature_extractor(records, sampling_rate=250, **kwargs)
        actual = loaded(records, sampling_rate=250, **kwargs)
        assert expected.keys() == actual.keys()
        for key in expected:
            np.testing.assert_array_equal(actual[key], expected[key])


def test_return_tensors_pt_dtypes_and_shapes():
    records = [synthetic_ecg(num_samples=2000).astype(np.float16), synthetic_ecg(num_samples=900).astype(np.int16)]
    output = MeritFeatureExtractor()(
        records, sampling_rate=[200, 100], return_tensors="pt", return_windows=True, return_nan_counts=True
    )
    assert isinstance(output["input_values"], torch.Tensor)
    assert output["input_values"].dtype == torch.float32 and output["input_values"].shape == (2, 12, 1000)
    for key in ("lead_mask", "nan_samples", "record_index"):
        assert output[key].dtype == torch.int64
    assert output["lead_mask"].shape == (2, 12) and output["record_index"].tolist() == [0, 1]


def test_filled_samples_are_reported_without_counts(caplog):
    with_gap = np.tile(np.linspace(0.0, 1.0, 1000), (12, 1))
    with_gap[3, 10:20] = np.nan
    with caplog.at_level("WARNING"):
        output = MeritFeatureExtractor()([with_gap, with_gap[:, ::-1].copy()], sampling_rate=100)
    assert "nan_samples" not in output
    assert "Filled non-finite samples (interpolate) in 2 record(s)" in caplog.text and "{0: 10, 1: 10}" in caplog.text


def test_short_records_and_flat_leads_are_warned_about_and_encoded_as_given(caplog):
    """A 100 Hz record declared as 500 Hz lasts 2 s (padded to the 10 s window): a warning says so; a flat lead (a
    disconnected electrode, or an all-zero test input) is named. Neither changes the output."""
    rng = np.random.default_rng(0)
    signal = rng.standard_normal((12, 1000))
    extractor = MeritFeatureExtractor()
    with caplog.at_level("WARNING"):
        declared_500 = extractor(signal, sampling_rate=500)
    assert "The record lasts 2 s, less than half of the model's 10 s window, and is zero-padded" in caplog.text
    assert "check `sampling_rate`" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING"):
        extractor([signal[:, :600], signal], sampling_rate=100)  # 6 s is not warned about
    assert caplog.text == ""

    flat = signal.copy()
    flat[4] = 0.25  # aVL constant
    flat[3] = np.nan  # aVR missing: masked, not a flat lead
    with caplog.at_level("WARNING"):
        output = extractor([signal, flat], sampling_rate=100)
    assert "Record 1 has leads that are a flat line: ['aVL']" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING"):
        extractor([flat, flat[:, :300]], sampling_rate=100)
    assert "2 records have leads that are a flat line: {'record 0': ['aVL'], 'record 1': ['aVL']}" in caplog.text
    assert "Record 1 lasts 3 s, less than half" in caplog.text
    assert output["lead_mask"][1].tolist() == [1, 1, 1, 0] + [1] * 8  # the flat lead stays present
    np.testing.assert_array_equal(declared_500["input_values"][0, :, 200:], 0.0)  # the padding, unchanged
