"""The Gradio Space (space/app.py), served on loopback in a subprocess: `gradio_client` calls (example, uploads, a bad
upload) and one real headless-Chromium session that uploads a record and waits for the plot and the scores.

The browser test needs the Debian packages `chromium` and `chromium-driver` (`make test` installs them through
`make browser` when run as root); it is skipped only where they are absent. Set `MERIT_SPACE_SCREENSHOT=<path>` to also copy its screenshot
there. The README's `docs/space_screenshot.png` is this test run against the demo's checkpoints on a test-fold record
(`MERIT_SPACE_MODEL`, `MERIT_SPACE_REPORT_MODEL` and `MERIT_SPACE_RECORD` replace the tiny random checkpoints and the
example record; see the README's "Try it" section for the command).
"""

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
import tracemalloc
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from checkpoint_helpers import tiny_report_generator
from train_helpers import free_port, subprocess_env

from modeling_merit import (
    MeritConfig,
    MeritFeatureExtractor,
    MeritModel,
    MeritProcessor,
)


REPO_ROOT = Path(__file__).resolve().parents[1]
SPACE_DIR = REPO_ROOT / "space"
EXAMPLE_RECORD = SPACE_DIR / "examples" / "00017_hr"
UPLOADED_RECORD = Path(os.environ.get("MERIT_SPACE_RECORD", EXAMPLE_RECORD)).resolve()  # WFDB record, no suffix
CANDIDATE_LABELS = ["normal ECG", "atrial fibrillation", "myocardial infarction"]
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
STARTUP_TIMEOUT_S = 120


@pytest.fixture(scope="module")
def space_checkpoint(tmp_path_factory, tokenizer):
    """A tiny random MERIT dual encoder saved with its processor and pipelines (or `MERIT_SPACE_MODEL`)."""
    if os.environ.get("MERIT_SPACE_MODEL"):
        return Path(os.environ["MERIT_SPACE_MODEL"])
    torch.manual_seed(0)
    checkpoint = tmp_path_factory.mktemp("space") / "checkpoint"
    MeritModel(MeritConfig.from_preset("tiny")).save_pretrained(checkpoint)
    MeritProcessor(MeritFeatureExtractor(), tokenizer).save_pretrained(checkpoint)
    return checkpoint


@pytest.fixture(scope="module")
def report_checkpoint(tmp_path_factory, tokenizer):
    """A tiny random report generator (tiny ECG encoder -> 2-layer Llama over the MiniLM vocabulary), or
    `MERIT_SPACE_REPORT_MODEL`."""
    if os.environ.get("MERIT_SPACE_REPORT_MODEL"):
        return Path(os.environ["MERIT_SPACE_REPORT_MODEL"])
    model = tiny_report_generator(tokenizer, seed=1)
    checkpoint = tmp_path_factory.mktemp("space-report") / "checkpoint"
    model.save_pretrained(checkpoint)
    MeritProcessor(MeritFeatureExtractor(), tokenizer).save_pretrained(checkpoint)
    return checkpoint


@pytest.fixture(scope="module")
def space_url(space_checkpoint, report_checkpoint, tmp_path_factory):
    """`python space/app.py --model <checkpoint> --report-model <checkpoint> --port <port>` running; yields its
    loopback URL."""
    port = free_port()
    log_path = tmp_path_factory.mktemp("space-log") / "app.log"
    env = subprocess_env(GRADIO_ANALYTICS_ENABLED="False", GRADIO_TEMP_DIR=str(tmp_path_factory.mktemp("gradio")))
    env.pop("GRADIO_SERVER_NAME", None)
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            [sys.executable, str(SPACE_DIR / "app.py"), "--model", str(space_checkpoint),
             "--report-model", str(report_checkpoint), "--port", str(port)],
            cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    try:
        while True:
            if process.poll() is not None:
                pytest.fail(f"space/app.py exited with {process.returncode}:\n{log_path.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(url + "config", timeout=5) as response:
                    if response.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if time.monotonic() > deadline:
                log = log_path.read_text()[-3000:]
                pytest.fail(f"space/app.py did not answer within {STARTUP_TIMEOUT_S} s:\n{log}")
            time.sleep(0.5)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def client(space_url):
    from gradio_client import Client

    return Client(space_url, verbose=False)


@pytest.fixture(scope="module")
def in_process_pipelines(space_checkpoint, report_checkpoint):
    """The pipelines the Space must agree with, loaded here the documented way."""
    from transformers import pipeline

    zero_shot = pipeline("zero-shot-ecg-classification", model=str(space_checkpoint), trust_remote_code=True)
    features = pipeline("ecg-feature-extraction", model=str(space_checkpoint), trust_remote_code=True)
    report = pipeline("ecg-report-generation", model=str(report_checkpoint), trust_remote_code=True)
    return zero_shot, features, report


def space_app():
    """space/app.py imported as a module (for its constants)."""
    spec = importlib.util.spec_from_file_location("merit_space_app", SPACE_DIR / "app.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def analyse(client, example=None, files=(), labels=CANDIDATE_LABELS, sampling_rate=0):
    from gradio_client import handle_file

    return client.predict(
        example, [handle_file(str(path)) for path in files], "\n".join(labels), sampling_rate, api_name="/analyse"
    )


def scores_of(label_output) -> dict[str, float]:
    return {entry["label"]: entry["confidence"] for entry in label_output["confidences"]}


def assert_answer_matches_pipelines(answer, record, in_process_pipelines, expected_name):
    plot, label_output, embedding_path, report, summary = answer
    zero_shot, features, report_generation = in_process_pipelines
    expected = {entry["label"]: entry["score"] for entry in zero_shot(record, candidate_labels=CANDIDATE_LABELS)}
    assert scores_of(label_output).keys() == expected.keys()
    for label, score in scores_of(label_output).items():
        assert score == pytest.approx(expected[label], abs=1e-6)
    np.testing.assert_allclose(np.load(embedding_path), features(record), rtol=1e-5, atol=1e-6)
    from PIL import Image

    with Image.open(plot) as image:
        assert image.format == "PNG" and image.width > 1000
    assert report and report == report_generation(record)[0]["generated_text"]
    assert summary.startswith(f"**{expected_name}**: 12 standard leads, 500 Hz, 10.0 s")


def test_space_readme_front_matter_and_requirements():
    import gradio
    from huggingface_hub import SpaceCard

    card = SpaceCard.load(SPACE_DIR / "README.md")
    assert card.data.sdk == "gradio" and card.data.sdk_version == gradio.__version__
    assert card.data.app_file == "app.py" and card.data.models
    assert "paid" in card.text and "ZeroGPU" in card.text
    constraints = dict(
        line.split("==") for line in (REPO_ROOT / "constraints.txt").read_text().splitlines() if "==" in line
    )
    requirements = [line for line in (SPACE_DIR / "requirements.txt").read_text().splitlines() if "==" in line]
    assert requirements
    for line in requirements:  # the Space runs the versions the tests run
        name, version = line.split("==")
        assert constraints.get(name) == version, line
    examples = SPACE_DIR / "examples"
    assert sorted(path.name for path in examples.glob("*.hea")) == ["00003_hr.hea", "00008_hr.hea", "00017_hr.hea"]
    assert "CC BY 4.0" in (examples / "README.md").read_text() and (examples / "LICENSE.txt").is_file()
    assert yaml.safe_load((SPACE_DIR / "README.md").read_text().split("---")[1])["sdk"] == "gradio"


def test_report_box_shows_the_findings_a_report_was_conditioned_on():
    report_text = space_app().report_text
    assert report_text([{"generated_text": "sinus rhythm."}]) == "sinus rhythm."
    findings = [{"label": "SR", "phrase": "sinus rhythm", "score": 0.93}, {"label": "MI", "phrase": "myocardial "
                "infarction", "score": 0.612}]  # fmt: skip
    assert report_text([{"generated_text": "sinus rhythm.", "findings": findings}]) == (
        "sinus rhythm.\n\nClassifier findings the report was conditioned on: sinus rhythm (0.93), myocardial "
        "infarction (0.61)."
    )
    assert report_text([{"generated_text": "x", "findings": []}]).endswith("conditioned on: none.")


def test_report_box_is_hidden_without_a_report_model(space_checkpoint):
    app = space_app()
    demo = app.MeritSpace(str(space_checkpoint)).build()
    (report,) = [block for block in demo.blocks.values() if getattr(block, "elem_id", None) == "report"]
    assert report.visible is False


@pytest.mark.slow
def test_example_record(client, in_process_pipelines):
    app = space_app()
    answer = analyse(client, example=next(iter(app.EXAMPLES)))
    record = str(app.EXAMPLES_DIR / next(iter(app.EXAMPLES.values())))
    assert_answer_matches_pipelines(answer, record, in_process_pipelines, "00003_hr")


@pytest.mark.slow
def test_uploaded_wfdb_pair_npy_and_csv(client, in_process_pipelines, tmp_path):
    answer = analyse(client, files=[EXAMPLE_RECORD.with_suffix(".hea"), EXAMPLE_RECORD.with_suffix(".dat")])
    assert_answer_matches_pipelines(answer, str(EXAMPLE_RECORD), in_process_pipelines, "00017_hr")

    import wfdb

    signal, fields = wfdb.rdsamp(str(EXAMPLE_RECORD))
    npy_path = tmp_path / "upload.npy"
    np.save(npy_path, signal.T)
    answer = analyse(client, files=[npy_path], sampling_rate=500)
    record = {"ecg": signal.T, "sampling_rate": 500, "lead_names": fields["sig_name"]}
    assert_answer_matches_pipelines(answer, record, in_process_pipelines, "upload")

    csv_path = tmp_path / "upload.csv"  # time x leads with a time column: the sampling rate comes from it
    table = np.column_stack([np.arange(signal.shape[0]) / 500, signal])
    np.savetxt(csv_path, table, delimiter=",", header=",".join(["time", *fields["sig_name"]]), comments="", fmt="%.6f")
    answer = analyse(client, files=[csv_path])
    assert_answer_matches_pipelines(answer, record, in_process_pipelines, "upload")

    eleven_leads = tmp_path / "no_v6.csv"  # a lead that was not recorded is reported, and plotted as missing
    np.savetxt(eleven_leads, signal[:, :11], delimiter=",", header=",".join(fields["sig_name"][:11]), comments="")
    *_, summary = analyse(client, files=[eleven_leads], sampling_rate=500)
    assert summary.startswith("**no_v6**: 11 standard leads, 500 Hz, 10.0 s") and summary.endswith("Not recorded: V6.")


@pytest.mark.slow
@pytest.mark.parametrize(
    ("make_files", "message"),
    [
        (lambda tmp: [tmp / "notes.txt"], "Invalid file type. Please upload a file that is one of these formats"),
        (lambda tmp: [EXAMPLE_RECORD.with_suffix(".hea")], "Upload one record: a WFDB record as its two files"),
        (lambda tmp: [tmp / "broken.csv"], "must start with a header row of lead names"),
        (lambda tmp: [tmp / "three_leads.npy"], "`lead_names` is required"),
        (lambda tmp: [tmp / "slow.hea", tmp / "slow.dat"], "0.01 Hz, below the limit `min_sampling_rate` = 50 Hz"),
        (lambda tmp: [tmp / "dots.hea", tmp / "slow.dat"], "names files outside its folder: '..'"),
    ],
)
def test_bad_upload_shows_a_clear_error(client, tmp_path, make_files, message):
    from gradio_client.exceptions import AppError

    (tmp_path / "notes.txt").write_text("not an ECG")
    (tmp_path / "broken.csv").write_text("1,2,3\n4,5,6\n")
    np.save(tmp_path / "three_leads.npy", np.zeros((3, 1000)))
    header = EXAMPLE_RECORD.with_suffix(".hea").read_text()
    (tmp_path / "slow.hea").write_text(header.replace("12 500 5000", "12 0.01 5000"))
    (tmp_path / "dots.hea").write_text(header.replace("00017_hr.dat", ".."))
    shutil.copy(EXAMPLE_RECORD.with_suffix(".dat"), tmp_path / "slow.dat")
    with pytest.raises(AppError) as error:
        analyse(client, files=make_files(tmp_path), sampling_rate=100)
    assert message in str(error.value)
    assert "Traceback" not in str(error.value)


@pytest.mark.slow
def test_space_holds_uploads_to_the_limits(space_checkpoint, ptbxl_sample_dir, tmp_path):
    """In-process: a long upload is read (for the answer and for the plot) over its central `max_record_seconds` only,
    which the summary shows; an upload over a limit is a `gr.Error` with the limit's message, not a traceback."""
    import gradio as gr
    import wfdb

    space = space_app().MeritSpace(str(space_checkpoint))
    source = wfdb.rdrecord(str(ptbxl_sample_dir / "records100" / "00000" / "00001_lr"), physical=False)
    wfdb.wrsamp(
        "two_hours", fs=source.fs, units=source.units, sig_name=source.sig_name, fmt=source.fmt,
        d_signal=np.tile(source.d_signal, (720, 1)), adc_gain=source.adc_gain, baseline=source.baseline,
        write_dir=str(tmp_path),
    )  # fmt: skip
    files = [str(tmp_path / "two_hours.hea"), str(tmp_path / "two_hours.dat")]
    *_, summary = space.analyse(None, files, "normal ECG\natrial fibrillation", 0)
    assert summary.startswith("**two_hours**: 12 standard leads, 100 Hz, 120.0 s")
    tracemalloc.start()
    signal, *_ = space._signal_for_plot({"hea": files[0], "dat": files[1]}, None)  # the Space's own read
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert signal.shape == (12, 12_000) and peak < 8 * 2**20  # the whole record: 720,000 x 12 x 8 bytes = 66 MB

    header = (tmp_path / "two_hours.hea").read_text()
    (tmp_path / "two_hours.hea").write_text(header.replace("12 100 720000", "12 0.01 720000"))
    with pytest.raises(gr.Error) as error:
        space.analyse(None, files, "normal ECG", 0)
    assert "0.01 Hz, below the limit `min_sampling_rate` = 50 Hz" in str(error.value)
    assert "Traceback" not in str(error.value)


@pytest.mark.slow
@pytest.mark.skipif(
    not (CHROMIUM.exists() and CHROMEDRIVER.exists()),
    reason="needs the Debian packages chromium and chromium-driver (installed by `make install` as root)",
)
def test_browser_upload_shows_plot_and_scores(space_url, tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1700"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    try:
        driver.get(space_url)
        wait = WebDriverWait(driver, 60)
        upload = wait.until(
            expected_conditions.presence_of_element_located((By.CSS_SELECTOR, "#upload input[type=file]"))
        )
        upload.send_keys("\n".join(str(UPLOADED_RECORD.with_suffix(suffix)) for suffix in (".hea", ".dat")))
        name = UPLOADED_RECORD.name
        wait.until(lambda browser: browser.find_element(By.ID, "upload").text.count(name) == 2)  # both files
        driver.find_element(By.ID, "analyse").click()
        plot = wait.until(expected_conditions.visibility_of_element_located((By.CSS_SELECTOR, "#ecg-plot img")))
        wait.until(
            lambda browser: all(label in browser.find_element(By.ID, "scores").text for label in CANDIDATE_LABELS)
        )
        wait.until(lambda browser: name in browser.find_element(By.ID, "summary").text)
        assert driver.execute_script("return arguments[0].complete && arguments[0].naturalWidth", plot) > 1000
        assert driver.find_element(By.CSS_SELECTOR, "#report textarea").get_attribute("value")  # report configured
        for _ in range(3):  # the page reflows when the window grows: resize until the whole page fits
            height = min(driver.execute_script("return document.documentElement.scrollHeight") + 100, 4000)
            driver.set_window_size(1400, height)
        screenshot = tmp_path / "space_screenshot.png"
        assert driver.save_screenshot(str(screenshot))
    finally:
        driver.quit()
    from PIL import Image

    with Image.open(screenshot) as image:
        assert image.width >= 1000
    target = os.environ.get("MERIT_SPACE_SCREENSHOT")
    if target:
        shutil.copyfile(screenshot, target)


@pytest.mark.slow
def test_bench_space_runs(space_checkpoint, tmp_path):
    spec = importlib.util.spec_from_file_location("bench_space", REPO_ROOT / "benchmarks" / "bench_space.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    threads = torch.get_num_threads()
    try:
        timings = bench.main(
            ["--model", str(space_checkpoint), "--repeats", "1", "--output", str(tmp_path / "b.json")]
        )
    finally:
        torch.set_num_threads(threads)
    assert set(timings) == {"zero-shot", "feature-extraction", "plot", "space"}
    assert all(len(seconds) == 1 and seconds[0] > 0 for seconds in timings.values())
    assert json.loads((tmp_path / "b.json").read_text()) == timings
