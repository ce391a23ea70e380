"""The public surfaces under hostile or oversized input (`modeling_merit/limits_merit.py`): every finding of the probe
of the Inference Endpoints handler, the pipelines and the processor (issue 19) as a regression test that asserts the
clear `ValueError` and a bounded peak of the memory the call allocates (`tracemalloc`, which sees every NumPy buffer
and Python object; the tiny model's torch tensors are not counted). Speed is measured in
`benchmarks/bench_limits.py`, never asserted here.

Records are real PTB-XL records of the shipped excerpt; long records are a real record repeated end to end, so that
"read over the central `max_record_seconds`" can be compared with the central stretch written on its own."""

import base64
import json
import tempfile
import threading
import tracemalloc
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import wfdb
from checkpoint_helpers import save_tiny_dual_checkpoint, tiny_report_generator
from transformers import pipeline

from modeling_merit import (
    ECGFeatureExtractionPipeline,
    ECGReportGenerationPipeline,
    MeritFeatureExtractor,
    MeritModel,
    ZeroShotECGClassificationPipeline,
)
from modeling_merit.feature_extraction_merit import parse_wfdb_header, read_wfdb_record
from modeling_merit.handler import EndpointHandler
from modeling_merit.limits_merit import MeritLimits
from modeling_merit.pipeline_merit import ecg_record_arguments


MB = 1 << 20
LABELS = ["normal ECG", "atrial fibrillation", "myocardial infarction"]


@contextmanager
def traced_peak():
    """Measures the peak of the memory allocated inside the block (`tracemalloc`), in bytes: `peak["bytes"]`."""
    peak = {}
    tracemalloc.start()
    try:
        yield peak
    finally:
        peak["bytes"] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()


@pytest.fixture(scope="module")
def record(ptbxl_sample_dir) -> str:
    """A real 10 s, 12-lead PTB-XL record at 500 Hz."""
    return str(ptbxl_sample_dir / "records500" / "00000" / "00001_hr")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, processor):
    return save_tiny_dual_checkpoint(tmp_path_factory.mktemp("dual"), processor, seed=0)


@pytest.fixture(scope="module")
def handler(checkpoint):
    return EndpointHandler(str(checkpoint))


@pytest.fixture(scope="module")
def zero_shot(checkpoint, processor):
    return ZeroShotECGClassificationPipeline(
        model=MeritModel.from_pretrained(checkpoint).eval(), processor=processor, device=-1
    )


def upload(header: str, data: bytes) -> dict:
    """An uploaded WFDB record as the handler receives it (base64 strings)."""
    return {"hea": base64.b64encode(header.encode()).decode(), "dat": base64.b64encode(data).decode()}


def record_files(record: str) -> tuple[str, bytes]:
    return Path(record + ".hea").read_text(), Path(record + ".dat").read_bytes()


def scores(answer) -> dict[str, float]:
    return {entry["label"]: entry["score"] for entry in answer}


# ---------------------------------------------------------------------------------------------------------------
# The limits themselves
# ---------------------------------------------------------------------------------------------------------------


def test_limits_defaults_environment_and_validation(monkeypatch):
    assert MeritLimits.from_env({}) == MeritLimits()
    limits = MeritLimits.from_env({"MERIT_MAX_BATCH_SIZE": "4", "MERIT_MAX_RECORD_SECONDS": "30.5"})
    assert (limits.max_batch_size, limits.max_record_seconds) == (4, 30.5)
    assert MeritLimits.resolve({"max_new_tokens": 8}).max_new_tokens == 8
    with pytest.raises(ValueError, match="environment variable MERIT_MAX_BATCH_SIZE must be an integer, got 'many'"):
        MeritLimits.from_env({"MERIT_MAX_BATCH_SIZE": "many"})
    with pytest.raises(ValueError, match="`max_batch_size` must be a positive integer, got 0"):
        MeritLimits(max_batch_size=0)
    with pytest.raises(ValueError, match="`max_record_seconds` must be a positive finite number, got nan"):
        MeritLimits(max_record_seconds=float("nan"))
    with pytest.raises(ValueError, match="`min_sampling_rate` \\(500\\) must be below `max_sampling_rate`"):
        MeritLimits(min_sampling_rate=500, max_sampling_rate=400)
    with pytest.raises(ValueError, match=r"Unknown limit\(s\) \['max_everything'\]"):
        MeritLimits.resolve({"max_everything": 1})
    # the environment is read when a pipeline is built, and when the processor is called without limits
    monkeypatch.setenv("MERIT_MAX_LEADS_PER_RECORD", "3")
    with pytest.raises(ValueError, match="has 12 leads, more than the limit `max_leads_per_record` = 3"):
        MeritFeatureExtractor()(np.zeros((12, 1000)), sampling_rate=100)


def test_pipelines_read_their_limits_and_requests_cannot_change_them(checkpoint, processor, handler, monkeypatch):
    model = MeritModel.from_pretrained(checkpoint).eval()
    monkeypatch.setenv("MERIT_MAX_BATCH_SIZE", "2")
    from_env = ECGFeatureExtractionPipeline(model=model, processor=processor, device=-1)
    given = ECGFeatureExtractionPipeline(model=model, processor=processor, device=-1, limits={"max_batch_size": 5})
    assert (from_env.limits.max_batch_size, given.limits.max_batch_size) == (2, 5)
    from_hub_code = pipeline("ecg-feature-extraction", model=str(checkpoint), trust_remote_code=True, limits={
        "max_batch_size": 7})  # fmt: skip
    assert from_hub_code.limits.max_batch_size == 7 and type(from_hub_code.limits).__name__ == "MeritLimits"
    assert (checkpoint / "limits_merit.py").is_file()  # every checkpoint carries its limits' code
    signal = np.zeros((12, 1000))
    with pytest.raises(ValueError, match="The request has 3 ECG records, more than the limit `max_batch_size` = 2"):
        from_env([signal] * 3, sampling_rate=100)
    assert len(given([signal] * 3, sampling_rate=100)) == 3
    with pytest.raises(ValueError, match=r"Unknown parameter\(s\) \['limits'\]"):
        handler({"inputs": signal.tolist(), "parameters": {"sampling_rate": 100, "limits": {"max_batch_size": 999}}})


# ---------------------------------------------------------------------------------------------------------------
# Finding 1: memory exhaustion by upsampling
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("rate", ["0.01", "0.001"])
def test_a_header_with_a_tiny_sampling_rate_is_refused_before_resampling(handler, record, rate):
    """Before: 0.01 Hz -> 2.6 GB peak (a 10,000-fold upsampling); 0.001 Hz -> killed at 5.5 GB."""
    header, data = record_files(record)
    body = {"inputs": upload(header.replace("12 500 5000", f"12 {rate} 5000"), data)}
    with traced_peak() as peak, pytest.raises(ValueError) as error:
        handler({**body, "parameters": {"candidate_labels": LABELS}})
    message = str(error.value)
    assert f"is {float(rate):g} Hz, below the limit `min_sampling_rate` = 50 Hz" in message
    assert "MERIT_MIN_SAMPLING_RATE" in message
    assert peak["bytes"] < 5 * MB


def test_a_nested_list_with_a_tiny_sampling_rate_is_refused_before_resampling(handler, record):
    signal, _ = wfdb.rdsamp(record)
    body = {"inputs": signal.T.tolist(), "parameters": {"sampling_rate": 0.01}}
    with traced_peak() as peak, pytest.raises(ValueError, match="0.01 Hz, below the limit `min_sampling_rate`"):
        handler(body)
    assert peak["bytes"] < 5 * MB


def test_resampling_ratios_are_bounded_both_ways():
    feature_extractor = MeritFeatureExtractor()  # 100 Hz model
    lenient = MeritLimits(min_sampling_rate=1, max_upsampling_ratio=10, max_downsampling_ratio=10)
    slow_record = np.zeros((12, 200_000))
    with traced_peak() as peak, pytest.raises(ValueError, match="multiplies its samples by 20, more than the limit "
                                                                "`max_upsampling_ratio` = 10"):  # fmt: skip
        feature_extractor(slow_record, sampling_rate=5, limits=lenient)
    assert peak["bytes"] < 2 * MB  # refused before the 20x longer record was allocated
    with pytest.raises(ValueError, match="divides its samples by 20, more than the limit `max_downsampling_ratio`"):
        feature_extractor(np.zeros((12, 2000)), sampling_rate=2000, limits=lenient)
    with pytest.raises(ValueError, match="2e\\+06 Hz, more than the limit `max_sampling_rate` = 10000"):
        feature_extractor(np.zeros((12, 2000)), sampling_rate=2e6)
    # within the limits nothing changes
    assert feature_extractor(np.zeros((12, 200)), sampling_rate=5, limits=MeritLimits(min_sampling_rate=1,
                             max_upsampling_ratio=20))["input_values"].shape == (1, 12, 1000)  # fmt: skip


# ---------------------------------------------------------------------------------------------------------------
# Finding 2: no size limits (files are read over their central stretch; arrays over the limit are refused)
# ---------------------------------------------------------------------------------------------------------------


def write_repeated_record(record: str, directory: Path, name: str, repeats: int) -> str:
    """The real record repeated `repeats` times end to end, written as a format-16 WFDB record."""
    source = wfdb.rdrecord(record, physical=False)
    wfdb.wrsamp(
        name, fs=source.fs, units=source.units, sig_name=source.sig_name, d_signal=np.tile(source.d_signal, (repeats, 1)),
        fmt=source.fmt, adc_gain=source.adc_gain, baseline=source.baseline, write_dir=str(directory),
    )  # fmt: skip
    return str(directory / name)


@pytest.mark.slow
def test_a_two_hour_wfdb_record_is_read_over_its_central_window_only(zero_shot, ptbxl_sample_dir, tmp_path):
    """Before: a 2-hour 12-lead record was read in full (1.9 GB peak at 500 Hz) before the 10 s crop."""
    source = str(ptbxl_sample_dir / "records100" / "00000" / "00001_lr")  # 10 s at 100 Hz
    two_hours = write_repeated_record(source, tmp_path, "two_hours", 720)
    central = write_repeated_record(source, tmp_path, "central", 12)  # the central 120 s (the window is aligned)
    with traced_peak() as peak:
        answer = zero_shot(two_hours, candidate_labels=LABELS)
    assert peak["bytes"] < 16 * MB  # the whole record would be 720,000 x 12 x 8 bytes = 66 MB as float64
    assert answer == zero_shot(central, candidate_labels=LABELS)
    signal, header = read_wfdb_record(two_hours)
    assert signal.shape == (12, 12_000) and header.num_samples == 720_000


@pytest.mark.slow
def test_a_csv_of_a_million_rows_is_read_over_its_central_window_only(zero_shot, tmp_path):
    """Before: a 1e6-row CSV was parsed in full (2.2 GB, 13 s)."""
    rows = 1_000_000
    signal = np.sin(np.arange(rows) / 50.0)
    lines = "\n".join(f"{value:.4f},{-value:.4f}" for value in signal)
    (tmp_path / "long.csv").write_text("I,II\n" + lines + "\n")
    start = (rows - 12_000) // 2  # 120 s at 100 Hz
    (tmp_path / "central.csv").write_text("I,II\n" + "\n".join(lines.split("\n")[start : start + 12_000]) + "\n")
    with traced_peak() as peak:
        answer = zero_shot(str(tmp_path / "long.csv"), candidate_labels=LABELS, sampling_rate=100)
    assert peak["bytes"] < 8 * MB  # the whole file would be 1e6 rows of Python objects (2.2 GB before)
    assert answer == zero_shot(str(tmp_path / "central.csv"), candidate_labels=LABELS, sampling_rate=100)


def test_a_nested_list_over_the_sample_limit_is_refused_before_conversion(handler):
    """Before: a 12 x 1e6 nested list was converted and resampled in full (1.4 GB)."""
    body = {"inputs": [[0.0] * 1_000_000] * 12, "parameters": {"sampling_rate": 500}}
    with traced_peak() as peak, pytest.raises(ValueError) as error:
        handler(body)
    assert "has 1000000 samples per lead, more than the limit `max_samples_per_record` = 600000" in str(error.value)
    assert "MERIT_MAX_SAMPLES_PER_RECORD" in str(error.value)
    assert peak["bytes"] < 1 * MB  # nothing converted
    with pytest.raises(ValueError, match="has 30 leads, more than the limit `max_leads_per_record` = 24"):
        handler({"inputs": [[0.0] * 1000] * 30, "parameters": {"sampling_rate": 100}})


def test_a_record_with_swapped_axes_is_named_as_such_not_as_too_many_leads(handler, tmp_path):
    """A (time, leads) array given as (leads, time): raising the lead limit would not help, so the message says what
    is wrong instead (for nested lists, arrays and .npy files alike)."""
    message = r"has 1000 leads of 12 samples each: its axes look swapped.*`--channels_last` for the `merit` command"
    with pytest.raises(ValueError, match=message):
        handler({"inputs": [[0.0] * 12] * 1000, "parameters": {"sampling_rate": 100}})
    with pytest.raises(ValueError, match=message):
        MeritFeatureExtractor()(np.zeros((1000, 12)), sampling_rate=100)
    np.save(tmp_path / "time_first.npy", np.zeros((1000, 12)))
    with pytest.raises(ValueError, match=message):
        ecg_record_arguments(str(tmp_path / "time_first.npy"), sampling_rate=100)
    # with channels_last=True the same arrays are read
    assert (
        MeritFeatureExtractor()(np.zeros((1000, 12)), sampling_rate=100, channels_last=True)["input_values"].shape[1]
        == 12
    )


def test_a_long_npy_file_is_read_over_its_central_window_only(zero_shot, tmp_path):
    signal = np.sin(np.arange(720_000) / 30.0)[None].repeat(2, axis=0)  # 2 h at 100 Hz, 11.5 MB
    np.save(tmp_path / "long.npy", signal)
    np.save(tmp_path / "central.npy", signal[:, 354_000:366_000])
    arguments = {"candidate_labels": LABELS, "sampling_rate": 100, "lead_names": ["I", "II"]}
    with traced_peak() as peak:
        answer = zero_shot(str(tmp_path / "long.npy"), **arguments)
    assert peak["bytes"] < 4 * MB
    assert answer == zero_shot(str(tmp_path / "central.npy"), **arguments)


# ---------------------------------------------------------------------------------------------------------------
# Finding 3: no request limits
# ---------------------------------------------------------------------------------------------------------------


def test_request_limits(handler, record):
    signal = np.zeros((12, 1000)).tolist()
    with pytest.raises(ValueError, match="The request has 200 ECG records, more than the limit `max_batch_size` = 32"):
        handler({"inputs": [signal] * 200, "parameters": {"sampling_rate": 100}})
    labels = [f"label {index}" for index in range(1000)]
    with pytest.raises(ValueError, match="`candidate_labels` has 1000 labels, more than the limit `max_candidate_lab"):
        handler({"inputs": signal, "parameters": {"sampling_rate": 100, "candidate_labels": labels}})
    with pytest.raises(ValueError, match="has 600 characters, more than the limit `max_prompt_characters` = 500"):
        handler({"inputs": signal, "parameters": {"sampling_rate": 100, "candidate_labels": ["a" * 600]}})
    templates = [f"{{}} ({index})" for index in range(20)]
    with pytest.raises(
        ValueError, match="has 20 prompts \\(templates\\), more than the limit `max_prompts_per_label`"
    ):
        handler({"inputs": signal, "parameters": {"sampling_rate": 100, "candidate_labels": ["a"],
                                                  "hypothesis_template": templates}})  # fmt: skip
    with pytest.raises(ValueError, match="has 17 prompts"):
        handler({"inputs": signal, "parameters": {"sampling_rate": 100, "candidate_labels": {"a": ["x"] * 17}}})


@pytest.fixture(scope="module")
def report_generator(processor, tokenizer):
    model = tiny_report_generator(tokenizer, seed=2)
    return ECGReportGenerationPipeline(model=model, processor=processor, device=-1)


def test_report_generation_limits(report_generator, record, monkeypatch):
    """Before: a 40,000-character instruction became 8,022 prompt tokens (62 s) and steered the output."""
    calls = []
    generate = report_generator.model.generate
    monkeypatch.setattr(report_generator.model, "generate", lambda *a, **k: calls.append(k) or generate(*a, **k))
    with pytest.raises(ValueError, match="has 40000 characters, more than the limit `max_instruction_characters`"):
        report_generator(record, prompt="Ignore the ECG. " * 2500)
    with pytest.raises(ValueError, match="`max_new_tokens` is 100000, more than the limit `max_new_tokens` = 256"):
        report_generator(record, max_new_tokens=100_000)
    assert calls == []  # refused before the model ran
    capped = ECGReportGenerationPipeline(
        model=report_generator.model, processor=report_generator.processor, device=-1, limits={"max_new_tokens": 8}
    )
    capped(record)
    assert calls[-1]["max_new_tokens"] == 8  # the default of 64 never exceeds the deployment's ceiling


# ---------------------------------------------------------------------------------------------------------------
# Finding 4: silently wrong rate (and other header values that make no sense)
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("12 500 5000", "12 -500 5000", "has the sampling rate '-500'; expected a positive finite number of Hz"),
        ("12 500 5000", "12 nan 5000", "has the sampling rate 'nan'; expected a positive finite number of Hz"),
        ("12 500 5000", "12 0 5000", "has the sampling rate '0'; expected a positive finite number of Hz"),
        ("12 500 5000", "12", "gives no sampling rate (WFDB would assume 250 Hz)"),
        ("12 500 5000", "12 500 many", "has the number of samples 'many'; expected an integer"),
        ("16 1000.0(0)/mV", "16 nan(0)/mV", "has the gain 'nan'; expected a positive finite number"),
        ("16 1000.0(0)/mV", "16 -1000(0)/mV", "has the gain '-1000'; expected a positive finite number"),
        ("16 1000.0(0)/mV", "16 1000(zero)/mV", "has the baseline 'zero'; expected an integer"),
        ("16 1000.0(0)/mV", "999 1000.0(0)/mV", "has the signal format '999'; expected one of"),
        ("00001_hr 12", "00001_hr 13", "announces 13 signals but describes 12"),
    ],
)
def test_header_values_are_validated_not_defaulted(handler, record, old, new, message):
    """Before: '-500' and 'nan' were read at WFDB's default of 250 Hz, and answered without a warning."""
    header, data = record_files(record)
    assert old in header
    with traced_peak() as peak, pytest.raises(ValueError) as error:
        handler({"inputs": upload(header.replace(old, new), data), "parameters": {"candidate_labels": LABELS}})
    assert message in str(error.value)
    assert peak["bytes"] < 2 * MB


def test_a_local_record_with_a_nonsense_rate_is_refused(record, tmp_path):
    header, data = record_files(record)
    (tmp_path / "00001_hr.hea").write_text(header.replace("12 500 5000", "12 -500 5000"))
    (tmp_path / "00001_hr.dat").write_bytes(data)
    with pytest.raises(ValueError, match="Could not read the WFDB record .* sampling rate '-500'"):
        MeritFeatureExtractor()(str(tmp_path / "00001_hr"))
    (tmp_path / "00001_hr.dat").write_bytes(data[:1000])
    (tmp_path / "00001_hr.hea").write_text(header)
    with pytest.raises(ValueError, match="announces 5000 samples per signal, but its signal file '00001_hr.dat'"):
        MeritFeatureExtractor()(str(tmp_path / "00001_hr"))


# ---------------------------------------------------------------------------------------------------------------
# Finding 5: raw errors
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", [".", "..", "../x.dat", "/etc/passwd", "sub/x.dat", ".hidden"])
def test_signal_files_must_be_plain_file_names(handler, record, name):
    """Before: a signal file named '.' or '..' raised IsADirectoryError."""
    header, data = record_files(record)
    body = {"inputs": upload(header.replace("00001_hr.dat", name), data), "parameters": {"candidate_labels": LABELS}}
    with pytest.raises(ValueError, match="names files outside its folder"):
        handler(body)
    with pytest.raises(ValueError, match="names files outside its folder"):
        parse_wfdb_header(header.replace("00001_hr 12", f"{name} 12"))


def test_a_huge_integer_in_a_nested_list_is_a_value_error(handler):
    """Before: OverflowError."""
    row = "[" + ", ".join(["0.5"] * 999 + ["1" + "0" * 400]) + "]"
    body = json.loads('{"inputs": [' + ", ".join([row] * 12) + '], "parameters": {"sampling_rate": 100}}')
    with pytest.raises(ValueError, match="not a rectangular array of numbers .*too large for a 64-bit float"):
        handler(body)


def test_json_null_in_a_nested_list_is_a_missing_sample_like_nan(handler):
    """JSON has no NaN: writers send null. It is filled like a NaN sample; text is still an error."""
    signal = np.sin(np.arange(1000) / 20.0)[None].repeat(12, axis=0)
    with_nan, with_null = signal.tolist(), signal.tolist()
    with_nan[3][100], with_null[3][100] = float("nan"), None
    parameters = {"sampling_rate": 100, "candidate_labels": LABELS}
    from_null = handler({"inputs": json.loads(json.dumps(with_null)), "parameters": parameters})
    assert from_null == handler({"inputs": with_nan, "parameters": parameters})
    with_null[3][100] = "abc"
    with pytest.raises(ValueError, match="expected integer or floating-point samples"):
        handler({"inputs": with_null, "parameters": parameters})
    with_null[3][100], with_null[3][101] = None, "0.5"  # text stays refused next to a null
    with pytest.raises(ValueError, match="expected integer or floating-point samples"):
        handler({"inputs": with_null, "parameters": parameters})


def test_a_npy_header_announcing_a_huge_array_is_a_value_error(zero_shot, tmp_path):
    """Before: MemoryError: Unable to allocate 894 GiB."""
    path = tmp_path / "liar.npy"
    with open(path, "wb") as file:
        np.lib.format.write_array_header_2_0(
            file, {"descr": "<f8", "fortran_order": False, "shape": (1, 120_000_000_000)}
        )
        file.write(np.zeros(1000).tobytes())
    with traced_peak() as peak, pytest.raises(ValueError) as error:
        zero_shot(str(path), candidate_labels=LABELS, sampling_rate=500, lead_names=["II"])
    assert "is not a .npy file of numbers: its header announces an array of shape (1, 120000000000)" in str(
        error.value
    )
    assert peak["bytes"] < 1 * MB
    np.save(tmp_path / "objects.npy", np.array([[1, None]], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match="is not a .npy file of numbers: it holds Python objects"):
        zero_shot(str(tmp_path / "objects.npy"), candidate_labels=LABELS, sampling_rate=500)


@pytest.mark.parametrize(
    ("parameters", "message"),
    [
        ({"lead_names": 5}, "`lead_names` of the record must be a list with one lead name per lead, got int 5"),
        ({"candidate_labels": 5}, "needs `candidate_labels`: a non-empty list of class names in words"),
        ({"candidate_labels": ["a"], "hypothesis_template": 5}, "`hypothesis_template` must be a template string"),
        ({"candidate_labels": ["a"], "hypothesis_template": [5]}, "`hypothesis_template` must be a template string"),
        ({"task": ["ecg-feature-extraction"]}, "Unknown `task` ['ecg-feature-extraction']"),
        ({"sampling_rate": {"hz": 100}}, "must be a positive number of Hz, got {'hz': 100}"),
    ],
)
def test_parameters_of_the_wrong_type_are_value_errors(handler, parameters, message):
    """Other cases of the probe: parameters of the wrong JSON type raised TypeErrors."""
    with pytest.raises(ValueError) as error:
        handler({"inputs": [[0.1] * 1000] * 12, "parameters": {"sampling_rate": 100, **parameters}})
    assert message in str(error.value)
    with pytest.raises(ValueError, match='"parameters" must be a JSON object, got list'):
        handler({"inputs": [[0.1] * 1000] * 12, "parameters": [100]})


# ---------------------------------------------------------------------------------------------------------------
# Concurrency: the handler answers concurrent requests exactly as sequential ones
# ---------------------------------------------------------------------------------------------------------------


def test_concurrent_requests_answer_as_sequential_ones(handler, ptbxl_sample_dir, tmp_path, monkeypatch):
    """Different records uploaded under the same record and file names at the same time: each request must read its
    own upload (every request stages its files in its own temporary folder, removed afterwards)."""
    bodies = []
    for index in range(1, 7):
        source = str(ptbxl_sample_dir / "records100" / "00000" / f"0000{index}_lr")
        header, data = record_files(source)
        header = header.replace(f"0000{index}_lr", "upload")  # the same names for every upload
        bodies.append({"inputs": upload(header, data), "parameters": {"candidate_labels": LABELS}})
        signal, fields = wfdb.rdsamp(source)
        parameters = {"sampling_rate": fields["fs"], "lead_names": fields["sig_name"]}
        bodies.append({"inputs": signal.T.tolist(), "parameters": parameters})
    sequential = [handler(json.loads(json.dumps(body))) for body in bodies]
    assert len({json.dumps(answer) for answer in sequential}) == len(bodies)  # every answer is different

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    concurrent = [None] * len(bodies) * 3
    barrier = threading.Barrier(len(concurrent))

    def request(slot):
        barrier.wait()
        concurrent[slot] = handler(json.loads(json.dumps(bodies[slot % len(bodies)])))

    threads = [threading.Thread(target=request, args=(slot,)) for slot in range(len(concurrent))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert concurrent == sequential * 3
    assert list(tmp_path.iterdir()) == []  # every request's temporary folder is gone
