"""`train_merit.py --push_to_hub` end to end against the local fake Hub (`tests/infra/fake_hub.py`), never the real one.

Training runs in a subprocess whose environment points `HF_ENDPOINT` at the fake server before any Hugging Face
import; the pushed repository is then loaded with `trust_remote_code=True` in a fresh process that cannot import
the local `modeling_merit` package, from a folder outside the repository.
"""

import json
import subprocess
import sys
import textwrap
import threading
import time
from concurrent.futures import Future

import pytest
from train_helpers import REPO_ROOT, subprocess_env, tiny_train_args

from merit_training.hub import HUB_IGNORE_PATTERNS, HubPusher
from merit_training.model_card import template_placeholders
from tests.infra.fake_hub import FakeHub, _HubRequestHandler


REPO_ID = "user/merit-test"
COMMIT_DELAY_SECONDS = 2.5
MAX_STEPS = 6


@pytest.fixture
def slow_hub(tmp_path, monkeypatch):
    """The fake Hub, answering every commit after a delay, so that a push that blocked training would show."""
    original_commit = _HubRequestHandler._handle_commit

    def slow_commit(self, *args, **kwargs):
        time.sleep(COMMIT_DELAY_SECONDS)
        return original_commit(self, *args, **kwargs)

    monkeypatch.setattr(_HubRequestHandler, "_handle_commit", slow_commit)
    with FakeHub(tmp_path / "hub-storage") as hub:
        yield hub


LOAD_FROM_HUB = """
    import json, sys
    sys.modules["modeling_merit"] = None  # the local package must not be what gets loaded
    import numpy as np
    import torch
    from transformers import AutoModel, AutoProcessor

    model = AutoModel.from_pretrained(REPO_ID, trust_remote_code=True, token=TOKEN).eval()
    processor = AutoProcessor.from_pretrained(REPO_ID, trust_remote_code=True, token=TOKEN)
    leads = ["I", "II", "III", "AVR", "AVL", "AVF", "V1", "V2", "V3", "V4", "V5", "V6"]
    ecg = np.random.default_rng(0).standard_normal((12, 5000)).astype(np.float32)
    inputs = processor(ecg=[ecg], sampling_rate=500, lead_names=leads, text=["sinus rhythm"], return_tensors="pt")
    with torch.no_grad():
        ecg_features = model.get_ecg_features(inputs["input_values"], inputs["lead_mask"])
        text_features = model.get_text_features(inputs["input_ids"], inputs["attention_mask"])
    print(json.dumps({
        "model_class": type(model).__name__, "model_module": type(model).__module__,
        "processor_class": type(processor).__name__, "ecg_shape": list(ecg_features.shape),
        "text_shape": list(text_features.shape), "finite": bool(torch.isfinite(ecg_features).all()),
    }))
"""


@pytest.mark.slow
def test_push_to_hub_in_the_background_and_load_with_remote_code(tmp_path, slow_hub):
    hub = slow_hub
    output_dir = tmp_path / "run"
    args = tiny_train_args(
        output_dir, tmp_path / "cache",
        "--max_train_steps", str(MAX_STEPS), "--checkpointing_steps", "1", "--report_to", "tensorboard",
        "--push_to_hub", "--hub_model_id", REPO_ID, "--hub_token", hub.token, "--hub_private_repo",
    )  # fmt: skip
    env = hub.client_env(tmp_path / "hf-home-train", token=None, base_env=subprocess_env())
    training = subprocess.run(
        [sys.executable, "train_merit.py", *args], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert training.returncode == 0, training.stderr[-6000:]
    assert (output_dir / "logs").is_dir() and list(output_dir.glob("checkpoint-*"))  # exist locally, not pushed

    assert hub.is_private(REPO_ID)
    files = hub.repo_files(REPO_ID)
    expected = {
        "README.md", "config.json", "model.safetensors", "configuration_merit.py", "modeling_merit.py",
        "feature_extraction_merit.py", "processing_merit.py", "processor_config.json", "tokenizer.json",
        "tokenizer_config.json",
    }  # fmt: skip
    assert expected <= files.keys(), sorted(files)
    assert not [path for path in files if path.startswith(("checkpoint-", "logs/")) or ".tmp" in path]
    assert files["model.safetensors"] == (output_dir / "model.safetensors").read_bytes()  # the final weights
    assert "AutoModel" in json.loads(files["config.json"])["auto_map"]
    card = files["README.md"].decode()
    assert REPO_ID in card and not template_placeholders(card) and "Optimizer steps: 6" in card

    # Background pushes during training, then the final blocking one; commits take 2.5 s each, and training went on
    # meanwhile: later checkpoints found the previous upload still running and were not pushed.
    summaries = hub.commit_summaries(REPO_ID)
    pushed_steps = [
        int(summary.rsplit(" ", 1)[1]) for summary in summaries if summary.startswith("MERIT pretraining, step")
    ]
    assert pushed_steps[-1] == MAX_STEPS and len(pushed_steps) >= 2 and pushed_steps[0] < MAX_STEPS
    assert pushed_steps == sorted(pushed_steps)
    assert "is still uploading" in training.stderr
    assert len(pushed_steps) < MAX_STEPS

    # A fresh process, outside the repository, without the local package: everything comes from the Hub repo.
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    code = f"REPO_ID, TOKEN = {REPO_ID!r}, {hub.token!r}\n" + textwrap.dedent(LOAD_FROM_HUB)
    load_env = hub.client_env(tmp_path / "hf-home-load", token=None)
    load_env.pop("PYTHONPATH", None)
    loading = subprocess.run(
        [sys.executable, "-c", code], cwd=outside, env=load_env, capture_output=True, text=True, timeout=300
    )
    assert loading.returncode == 0, loading.stderr[-6000:]
    loaded = json.loads(loading.stdout.strip().splitlines()[-1])
    assert loaded["model_class"] == "MeritModel"  # AutoModel's entry of auto_map
    assert loaded["model_module"].startswith("transformers_modules.")
    assert loaded["processor_class"] == "MeritProcessor"
    assert loaded["ecg_shape"] == loaded["text_shape"] == [1, 32] and loaded["finite"]


class RecordingApi:
    """Stands in for `HfApi`: records uploads; background uploads finish when `release` is set, or fail."""

    def __init__(self, fail_background: bool = False):
        self.uploads = []
        self.release = threading.Event()
        self.fail_background = fail_background

    def upload_folder(self, *, repo_id, folder_path, commit_message, ignore_patterns, run_as_future):
        self.uploads.append((commit_message, run_as_future, tuple(ignore_patterns)))
        if not run_as_future:
            return None
        future = Future()

        def finish():
            self.release.wait(10)
            if self.fail_background:
                future.set_exception(ConnectionError("network down"))
            else:
                future.set_result(None)

        threading.Thread(target=finish, daemon=True).start()
        return future


def make_pusher(api: RecordingApi) -> HubPusher:
    pusher = HubPusher.__new__(HubPusher)
    pusher.api, pusher.repo_id, pusher.pending = api, "user/merit-test", None
    return pusher


def test_pusher_is_busy_during_a_background_push_and_the_final_push_waits(tmp_path):
    api = RecordingApi()
    pusher = make_pusher(api)
    pusher.push(tmp_path, "step 1")
    assert pusher.busy  # the upload runs in the background; the caller went on
    api.release.set()
    pusher.push(tmp_path, "final", blocking=True)  # waits for the background push first
    assert not pusher.busy
    assert [(message, background) for message, background, _ in api.uploads] == [("step 1", True), ("final", False)]
    assert all(patterns == tuple(HUB_IGNORE_PATTERNS) for *_, patterns in api.uploads)
    assert {"checkpoint-*", "logs/**", "*.tmp"} <= set(HUB_IGNORE_PATTERNS)


def test_a_failed_background_push_does_not_stop_training(tmp_path, caplog):
    api = RecordingApi(fail_background=True)
    pusher = make_pusher(api)
    pusher.push(tmp_path, "step 1")
    api.release.set()
    pusher.wait()
    assert "failed" in caplog.text and "network down" in caplog.text
    pusher.push(tmp_path, "final", blocking=True)
    assert [message for message, *_ in api.uploads] == ["step 1", "final"]
