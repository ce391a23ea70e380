"""The static Space (`space-static/`): its JavaScript (readers, preprocessing, tokenizer) against the Python processor
and tokenizer on the same files (Node), and the built page in headless Chromium, served from a loopback HTTP server
with the headers a static Space sets (COOP/COEP, `.wasm` as `application/wasm`): scores of real records equal to the
`zero-shot-ecg-classification` pipeline's, clear messages for bad uploads, and the page's timings.

The Node tests need `node`; the browser tests need onnxruntime-web (`make test` installs it into `space-static/` with
`npm ci` from the committed lockfile; without it the build runs `npm ci` in a temporary folder) and the Debian
packages `chromium` and `chromium-driver` (`make browser`).
Each is skipped, saying which, only where it is absent. Set `MERIT_SPACE_STATIC_SCREENSHOT=<path>` to copy the
browser test's screenshot there (`docs/space_static_screenshot.png` is made that way).
"""

import csv
import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import wfdb
from scipy import signal as scipy_signal

from modeling_merit import MeritFeatureExtractor, MeritProcessor
from modeling_merit.pipeline_merit import ecg_record_arguments


REPO_ROOT = Path(__file__).resolve().parents[1]
SPACE_STATIC = REPO_ROOT / "space-static"
RUNNER = Path(__file__).with_name("js") / "preprocess_runner.mjs"
NODE = shutil.which("node")
needs_node = pytest.mark.skipif(NODE is None, reason="the static Space's JavaScript tests need Node.js (`node`)")


def write_csv(path: Path, signal: np.ndarray, names: list[str], rate: float | None) -> Path:
    """`signal` (leads, samples) as a time x leads CSV, with a time column when `rate` is given."""
    with open(path, "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow((["time"] if rate else []) + names)
        for index, row in enumerate(signal.T):
            values = ["nan" if np.isnan(value) else repr(float(value)) for value in row]
            writer.writerow(([f"{index / rate:.6f}"] if rate else []) + values)
    return path


def preprocessing_json(processor: MeritProcessor, path: Path) -> Path:
    from merit_cli.onnx_export import preprocessing_config

    path.write_text(json.dumps(preprocessing_config(processor)))
    return path


def run_node(config: Path, cases: list[dict], tmp_path: Path) -> list[dict]:
    cases_path = tmp_path / "cases.json"
    cases_path.write_text(json.dumps(cases))
    result = subprocess.run(
        [NODE, str(RUNNER), str(config), str(cases_path)], capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def record_files(ptbxl_sample_dir, tmp_path_factory):
    """Real PTB-XL records as the page receives them: WFDB format 16 (500 Hz and 100 Hz), the 500 Hz record rewritten
    in format 212, CSVs (250 Hz with a time column, 11 leads, NaNs and an ignored Frank lead; 360 Hz without a time
    column; 6 s at 100 Hz, shorter than the model's 10 s)."""
    directory = tmp_path_factory.mktemp("static-records")
    base500 = ptbxl_sample_dir / "records500" / "00000" / "00001_hr"
    base100 = ptbxl_sample_dir / "records100" / "00000" / "00003_lr"
    signal, fields = wfdb.rdsamp(str(base500))
    names = fields["sig_name"]
    wfdb.wrsamp(
        "r212", fs=500, units=["mV"] * 12, sig_name=names, p_signal=signal, fmt=["212"] * 12, write_dir=str(directory)
    )
    half = signal[::2].T.copy()  # 250 Hz
    half[3, 100:140] = np.nan
    eleven = [name for name in names if name != "V6"]
    csv250 = write_csv(
        directory / "r250.csv",
        np.vstack([half[[names.index(name) for name in eleven]], half[:1] * 0.5]),
        eleven + ["vx"],
        250,
    )
    csv360 = write_csv(directory / "r360.csv", scipy_signal.resample_poly(signal, 18, 25, axis=0).T, names, None)
    short = write_csv(directory / "short.csv", wfdb.rdsamp(str(base100))[0][:600].T, names, 100)
    return {
        "wfdb500": {"kind": "wfdb", "hea": f"{base500}.hea", "dat": f"{base500}.dat", "python": str(base500)},
        "wfdb100": {"kind": "wfdb", "hea": f"{base100}.hea", "dat": f"{base100}.dat", "python": str(base100)},
        "wfdb212": {"kind": "wfdb", "hea": str(directory / "r212.hea"), "dat": str(directory / "r212.dat"),
                    "python": str(directory / "r212")},
        "csv250": {"kind": "csv", "path": str(csv250), "python": str(csv250)},
        "csv360": {"kind": "csv", "path": str(csv360), "sampling_rate": 360, "python": str(csv360)},
        "short": {"kind": "csv", "path": str(short), "python": str(short)},
    }  # fmt: skip


def python_features(processor: MeritProcessor, case: dict) -> dict:
    """What the Python side (the pipelines' reader + the feature extractor) gives for one case."""
    arguments = ecg_record_arguments(case["python"], sampling_rate=case.get("sampling_rate"))
    return processor.feature_extractor(
        arguments["ecg"], sampling_rate=arguments["sampling_rate"], lead_names=arguments["lead_names"]
    )


@needs_node
@pytest.mark.parametrize(
    "extractor_kwargs",
    [{}, {"sampling_rate": 250, "num_samples": 2500, "bandpass": [0.5, 40.0], "scaling": "per_record_zscore"}],
    ids=["default", "250Hz-bandpass-record-zscore"],
)
def test_javascript_preprocessing_equals_the_python_processor(record_files, tokenizer, tmp_path, extractor_kwargs):
    processor = MeritProcessor(MeritFeatureExtractor(**extractor_kwargs), tokenizer)
    config = preprocessing_json(processor, tmp_path / "preprocessing.json")
    names = list(record_files)
    results = run_node(config, [record_files[name] for name in names], tmp_path)
    for name, result in zip(names, results, strict=True):
        assert "error" not in result, (name, result)
        expected = python_features(processor, record_files[name])
        got = np.asarray(result["inputValues"], dtype=np.float32).reshape(expected["input_values"].shape[1:])
        assert result["leadMask"] == expected["lead_mask"][0].tolist(), name
        np.testing.assert_allclose(got, expected["input_values"][0], atol=2e-5, rtol=0, err_msg=name)
    assert results[names.index("csv250")]["missingLeads"] == ["V6"]
    assert results[names.index("csv250")]["samplingRate"] == 250


@needs_node
def test_javascript_tokenizer_equals_the_python_tokenizer(tokenizer, minilm_dir, tmp_path):
    texts = [
        "normal ECG", "ST/T change", "12-lead ECG with left bundle branch block.", "vorhofflimmern, QRS(T) abnormal",
        "linksventrikuläre Hypertrophie", "sinusrhythmus   normales ekg", "Findings consistent with AV-block I°.",
        "an electrocardiogram " * 40,
    ]  # fmt: skip
    config = preprocessing_json(MeritProcessor(MeritFeatureExtractor(), tokenizer), tmp_path / "preprocessing.json")
    case = {"kind": "tokenize", "tokenizer": str(minilm_dir / "tokenizer.json"), "texts": texts, "max_length": 128}
    (result,) = run_node(config, [case], tmp_path)
    expected = tokenizer(texts, padding="longest", truncation=True, max_length=128, return_tensors="np")
    assert result["length"] == expected["input_ids"].shape[1]
    assert result["inputIds"] == expected["input_ids"].flatten().tolist()
    assert result["attentionMask"] == expected["attention_mask"].flatten().tolist()


@needs_node
def test_javascript_readers_reject_bad_files_with_a_clear_message(record_files, tokenizer, tmp_path):
    config = preprocessing_json(MeritProcessor(MeritFeatureExtractor(), tokenizer), tmp_path / "preprocessing.json")
    source = record_files["wfdb500"]
    truncated = tmp_path / "truncated.dat"
    truncated.write_bytes(Path(source["dat"]).read_bytes()[:5000])
    garbage = tmp_path / "garbage.hea"
    garbage.write_bytes(bytes(range(256)) * 4)
    wrong_header = tmp_path / "wrong.hea"
    wrong_header.write_text("this is not a header\n")
    unknown = write_csv(tmp_path / "unknown.csv", np.zeros((3, 500)), ["lead1", "lead2", "lead3"], 500)
    no_rate = write_csv(tmp_path / "no_rate.csv", np.zeros((3, 500)), ["I", "II", "III"], None)
    cases = [
        ({"kind": "wfdb", "hea": source["hea"], "dat": str(truncated)}, "is truncated"),
        ({"kind": "wfdb", "hea": str(garbage), "dat": source["dat"]}, "not a text WFDB header"),
        ({"kind": "wfdb", "hea": str(wrong_header), "dat": source["dat"]}, "is not a WFDB header"),
        ({"kind": "csv", "path": str(unknown)}, "Unknown lead name 'lead1'"),
        ({"kind": "csv", "path": str(no_rate)}, "has no time column"),
        ({"kind": "csv", "path": str(garbage)}, "not a text CSV file"),
        # a rate that disagrees with the time column (as the Python reader says)
        (
            {"kind": "csv", "path": str(unknown), "sampling_rate": 100},
            "gives 500 Hz, but the sampling rate given is 100",
        ),
    ]
    results = run_node(config, [case for case, _ in cases], tmp_path)
    for (case, message), result in zip(cases, results, strict=True):
        assert message in result.get("error", ""), (case, result)


# ------------------------------------------------------------------------------------------------ the built page

SCORE_TOLERANCE = 1e-3
EDITED_LABELS = ["sinus rhythm", "atrial fibrillation", "normal ECG"]


@pytest.fixture(scope="module")
def static_checkpoint(tmp_path_factory, tokenizer):
    """A tiny random dual encoder saved with its processor."""
    import torch

    from modeling_merit import MeritConfig, MeritModel

    torch.manual_seed(3)
    checkpoint = tmp_path_factory.mktemp("static-space") / "checkpoint"
    MeritModel(MeritConfig.from_preset("tiny")).save_pretrained(checkpoint)
    MeritProcessor(MeritFeatureExtractor(), tokenizer).save_pretrained(checkpoint)
    return checkpoint


def load_script(relative_path: str):
    """A script of the repository (`space-static/build_space.py`, `benchmarks/bench_space_static.py`) as a module."""
    import importlib.util

    path = REPO_ROOT / relative_path
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


BENCH = load_script("benchmarks/bench_space_static.py")  # the page helpers: server, browser, page actions
page_action = BENCH.page_action
CHROMIUM, CHROMEDRIVER = BENCH.CHROMIUM, BENCH.CHROMEDRIVER


@pytest.fixture(scope="module")
def runtime_dir(tmp_path_factory):
    """Where the builds find onnxruntime-web: `space-static/` when `make test` has installed it there (read only),
    otherwise a temporary folder where the build runs `npm ci` (tests write nothing into the checkout)."""
    lock = json.loads((SPACE_STATIC / "package-lock.json").read_text())
    installed = SPACE_STATIC / "node_modules" / "onnxruntime-web" / "package.json"
    locked = lock["packages"]["node_modules/onnxruntime-web"]["version"]
    if installed.is_file() and json.loads(installed.read_text())["version"] == locked:
        return SPACE_STATIC
    return tmp_path_factory.mktemp("npm-runtime")


@pytest.fixture(scope="module")
def built_space(static_checkpoint, tmp_path_factory, runtime_dir):
    """`make space-static` on the tiny checkpoint, with fp32 encoders (scores comparable to PyTorch's at 1e-3)."""
    pytest.importorskip("onnxruntime", reason="building the static Space needs the `onnx` extra")
    if shutil.which("npm") is None:
        pytest.skip("building the static Space needs npm (Node.js) for `npm ci` of onnxruntime-web")
    builder = load_script("space-static/build_space.py")
    site = tmp_path_factory.mktemp("static-site") / "site"
    return builder.build(static_checkpoint, site, precision="fp32", runtime_dir=runtime_dir)


@pytest.fixture(scope="module")
def page_url(built_space):
    """The built folder served on loopback with a static Space's headers (COOP/COEP, `.wasm` as application/wasm)."""
    with BENCH.serve(built_space["output_dir"]) as url:
        yield url


@pytest.fixture(scope="module")
def browser(page_url):
    """Headless Chromium with the page loaded (ECG encoder ready); yields the driver."""
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.skip("needs the Debian packages chromium and chromium-driver (`make browser` installs them as root)")
    driver = BENCH.open_page(page_url)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def python_pipelines(static_checkpoint):
    from transformers import pipeline

    zero_shot = pipeline("zero-shot-ecg-classification", model=str(static_checkpoint), trust_remote_code=True)
    features = pipeline("ecg-feature-extraction", model=str(static_checkpoint), trust_remote_code=True)
    return zero_shot, features


def assert_scores_match(answer: dict, record, python_pipelines, labels: list[str]):
    zero_shot, features = python_pipelines
    assert answer["error"] is None, answer
    expected = {entry["label"]: entry["score"] for entry in zero_shot(record, candidate_labels=labels)}
    got = {entry["label"]: entry["score"] for entry in answer["result"]["scores"]}
    assert set(got) == set(labels)
    assert max(abs(got[label] - expected[label]) for label in labels) <= SCORE_TOLERANCE, (got, expected)
    embedding = np.asarray(features(record, embedding="projected", normalize=True))
    assert np.abs(np.asarray(answer["result"]["embedding"]) - embedding).max() <= SCORE_TOLERANCE


@pytest.mark.slow
def test_page_scores_real_records_like_the_python_pipeline(
    browser, built_space, record_files, python_pipelines, ptbxl_sample_dir, tmp_path
):
    """Three real records (an example, a WFDB upload at 500 Hz, a CSV at 250 Hz) and a record with missing leads
    (V4-V6 dropped, WFDB format 212), then edited labels embedded by the page's text encoder."""
    from merit_cli.onnx_export import default_zero_shot_labels

    defaults = default_zero_shot_labels()
    example = page_action(browser, "analyse-example")
    assert_scores_match(
        example, str(SPACE_STATIC.parent / "space" / "examples" / "00003_hr"), python_pipelines, defaults
    )

    wfdb500 = record_files["wfdb500"]
    upload = page_action(browser, "analyse-upload", files=[Path(wfdb500["hea"]), Path(wfdb500["dat"])])
    assert_scores_match(upload, wfdb500["python"], python_pipelines, defaults)

    table = page_action(browser, "analyse-upload", files=[Path(record_files["csv250"]["path"])])
    assert_scores_match(table, record_files["csv250"]["python"], python_pipelines, defaults)
    assert table["result"]["missingLeads"] == ["V6"]

    signal, fields = wfdb.rdsamp(str(ptbxl_sample_dir / "records500" / "00000" / "00008_hr"))
    kept = [index for index, name in enumerate(fields["sig_name"]) if name not in ("V4", "V5", "V6")]
    wfdb.wrsamp(
        "missing", fs=500, units=["mV"] * len(kept), sig_name=[fields["sig_name"][index] for index in kept],
        p_signal=signal[:, kept], fmt=["212"] * len(kept), write_dir=str(tmp_path),
    )  # fmt: skip
    missing = page_action(browser, "analyse-upload", files=[tmp_path / "missing.hea", tmp_path / "missing.dat"])
    assert_scores_match(missing, str(tmp_path / "missing"), python_pipelines, defaults)
    assert missing["result"]["leadMask"] == [1] * 9 + [0] * 3
    assert any("Only 9 of 12 leads" in message["text"] for message in missing["messages"])

    edited = page_action(browser, "rescore", labels=EDITED_LABELS)
    assert_scores_match(edited, str(tmp_path / "missing"), python_pipelines, EDITED_LABELS)
    assert browser.execute_script("return window.merit.textEncoderReady") is True


@pytest.mark.slow
@pytest.mark.parametrize(
    ("make_files", "kind", "message"),
    [
        (lambda tmp, rec: [tmp / "wrong.hea", Path(rec["dat"])], "error", "is not a WFDB header"),
        (lambda tmp, rec: [Path(rec["hea"]), tmp / "00001_hr.dat"], "error", "The .dat file is truncated"),
        (lambda tmp, rec: [tmp / "three_leads.csv"], "warning", "Only 3 of 12 leads recorded (I, II, III)"),
        (lambda tmp, rec: [tmp / "garbage.csv"], "error", "is not a text CSV file"),
        (lambda tmp, rec: [tmp / "garbage.bin"], "error", "Unsupported file garbage.bin"),
        (lambda tmp, rec: [Path(rec["hea"])], "error", "upload a WFDB record as its .hea and .dat files together"),
    ],
    ids=["wrong-header", "truncated-dat", "three-lead-csv", "garbage-csv", "garbage-file", "header-only"],
)
def test_bad_uploads_show_a_clear_message(browser, record_files, tmp_path, make_files, kind, message):
    source = record_files["wfdb500"]
    (tmp_path / "wrong.hea").write_text("this is not a header\n")
    (tmp_path / "00001_hr.dat").write_bytes(Path(source["dat"]).read_bytes()[:7000])
    signal = wfdb.rdsamp(source["python"])[0][:, :3].T
    write_csv(tmp_path / "three_leads.csv", signal, ["I", "II", "III"], 500)
    garbage = np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes()
    (tmp_path / "garbage.csv").write_bytes(garbage)
    (tmp_path / "garbage.bin").write_bytes(garbage)
    answer = page_action(browser, "analyse-upload", files=make_files(tmp_path, source))
    shown = [entry for entry in answer["messages"] if entry["kind"] == kind]
    assert any(message in entry["text"] for entry in shown), answer["messages"]
    if kind == "error":
        assert message in answer["error"]


@pytest.mark.slow
def test_page_timings_and_screenshot(browser, built_space, tmp_path):
    """Prints the page's cold start (model loaded) and one analysis in headless Chromium; saves a screenshot."""
    from merit_cli.onnx_export import default_zero_shot_labels

    answer = page_action(browser, "analyse-example", labels=default_zero_shot_labels())
    assert answer["error"] is None
    timings = browser.execute_script("return window.merit.timings")
    threads = browser.execute_script("return [window.merit.threads, self.crossOriginIsolated]")
    assert threads[1] is True  # the COOP/COEP headers give cross-origin isolation, so WASM threads are available
    print(
        f"\nstatic Space in headless Chromium: cold start (ECG model loaded) {timings['coldStartMs'] / 1000:.2f} s, "
        f"one analysis {timings['analysisMs'] / 1000:.3f} s, {threads[0]} WASM thread(s), "
        f"site {built_space['sizes']['total'] / 1e6:.1f} MB"
    )
    browser.set_window_size(
        1250, min(browser.execute_script("return document.documentElement.scrollHeight") + 40, 3000)
    )
    screenshot = tmp_path / "space_static_screenshot.png"
    assert browser.save_screenshot(str(screenshot))
    from PIL import Image

    with Image.open(screenshot) as image:
        assert image.width >= 1000
        pixels = np.asarray(image.convert("L"))
    assert pixels.std() > 10  # something was drawn, not a blank page
    target = os.environ.get("MERIT_SPACE_STATIC_SCREENSHOT")
    if target:
        shutil.copyfile(screenshot, target)


@pytest.mark.slow
def test_bench_space_static_runs(tmp_path, runtime_dir):
    """benchmarks/bench_space_static.py on a tiny random checkpoint: builds, serves, opens and times the page."""
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.skip("needs the Debian packages chromium and chromium-driver (`make browser` installs them as root)")
    pytest.importorskip("onnxruntime", reason="building the static Space needs the `onnx` extra")
    report = BENCH.main(
        [
            "--preset",
            "tiny",
            "--precision",
            "fp32",
            "--rounds",
            "1",
            "--output",
            str(tmp_path / "bench.json"),
            "--runtime_dir",
            str(runtime_dir),
        ]
    )
    assert report["cold_start_s"] > 0 and report["analysis_median_s"] > 0 and report["analyses"] == 3
    assert report["site_bytes"]["total"] > report["site_bytes"]["vendor"] > 10e6  # the WASM runtime is vendored
    assert json.loads((tmp_path / "bench.json").read_text()) == report


@needs_node
def test_embedding_download_is_a_numpy_file(tokenizer, tmp_path):
    config = preprocessing_json(MeritProcessor(MeritFeatureExtractor(), tokenizer), tmp_path / "preprocessing.json")
    for length in (1, 7, 256):  # header padding differs with the shape's text
        values = np.random.default_rng(length).normal(size=length).astype(np.float32)
        path = tmp_path / f"embedding{length}.npy"
        run_node(config, [{"kind": "npy", "values": values.tolist(), "path": str(path)}], tmp_path)
        loaded = np.load(path, allow_pickle=False)
        assert loaded.dtype == np.float32 and loaded.shape == (length,)
        np.testing.assert_array_equal(loaded, values)


def test_space_card_front_matter():
    """The Space card declares a static Space with the cross-origin isolation headers WASM threads need."""
    import yaml

    card = (SPACE_STATIC / "README.md").read_text()
    front_matter = yaml.safe_load(card.split("---")[1])
    assert front_matter["sdk"] == "static" and front_matter["app_file"] == "index.html"
    assert front_matter["custom_headers"] == {
        "cross-origin-embedder-policy": "require-corp",
        "cross-origin-opener-policy": "same-origin",
        "cross-origin-resource-policy": "cross-origin",
    }
    assert "Research code, not a medical device" in card
    assert "Creative Commons Attribution 4.0" in card and "https://doi.org/10.13026/kfzx-aw45" in card  # PTB-XL
    page = (SPACE_STATIC / "index.html").read_text()
    assert "Research code, not a medical device" in page and "https://" not in page  # no CDN
