"""Tests of the local fake Hub (`tests/infra/fake_hub.py`), alone and with the real `huggingface_hub`, `transformers`
and `datasets` clients.

Hugging Face code runs in subprocesses started with `FakeHub.client_env`, because `HF_ENDPOINT` is read
when the libraries are imported. Every subprocess prints one JSON line with what the test checks.

These test the test infrastructure, not MERIT, so they are all marked `slow`: `make test-fast` skips them.
"""

import base64
import hashlib
import json
import signal
import subprocess
import sys
import textwrap
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from tests.infra.fake_hub import INITIAL_GITATTRIBUTES, FakeHub, git_blob_id


REPO_ROOT = Path(__file__).resolve().parents[2]
# Talk to the server directly, ignoring any proxy configured in the environment.
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))

pytestmark = pytest.mark.slow


@pytest.fixture
def hub(tmp_path):
    with FakeHub(tmp_path / "hub-storage") as server:
        yield server


def run_client(hub: FakeHub, code: str, hf_home: Path, token: str | None, **extra_env: str) -> dict:
    """Run `code` in a fresh Python process pointed at `hub`; return the JSON object on its last stdout line."""
    env = hub.client_env(hf_home, token=token)
    env.update(extra_env)
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, f"client failed:\n{result.stderr[-6000:]}"
    return json.loads(result.stdout.strip().splitlines()[-1])


def request(
    hub: FakeHub,
    method: str,
    path: str,
    body: bytes | None = None,
    token: str | None = None,
    headers: dict[str, str] | None = None,
):
    """Send one HTTP request to `hub`; return `(status, headers, body)` without raising on HTTP errors."""
    headers = dict(headers or {})
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(hub.endpoint + path, data=body, method=method, headers=headers)
    try:
        with _DIRECT.open(req, timeout=10) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


def create_repo(hub: FakeHub, name: str, private: bool, token: str | None = None):
    """POST /api/repos/create for a model repo in the user's namespace, as `HfApi.create_repo` does."""
    payload = {"name": name, "organization": None, "visibility": "private" if private else "public"}
    return request(hub, "POST", "/api/repos/create", json.dumps(payload).encode(), token=token or hub.token)


def commit_regular_files(hub: FakeHub, repo_id: str, files: dict[str, bytes], parent: str | None = None):
    """POST an NDJSON commit with inline (base64) files, as `huggingface_hub` does for "regular" uploads."""
    header = {"summary": "add files", "description": ""}
    if parent is not None:
        header["parentCommit"] = parent
    lines = [{"key": "header", "value": header}] + [
        {"key": "file", "value": {"path": path, "content": base64.b64encode(data).decode(), "encoding": "base64"}}
        for path, data in files.items()
    ]
    body = b"".join(json.dumps(line).encode() + b"\n" for line in lines)
    headers = {"Content-Type": "application/x-ndjson"}
    return request(hub, "POST", f"/api/models/{repo_id}/commit/main", body, token=hub.token, headers=headers)


# ---------------------------------------------------------------------------------------------------- server


def test_create_repo_and_auth_answers(hub):
    status, _, body = create_repo(hub, "tiny", private=True)
    assert status == 200 and json.loads(body)["url"] == f"{hub.endpoint}/fake-user/tiny"
    status, _, body = create_repo(hub, "tiny", private=True)
    assert status == 409 and json.loads(body)["url"] == f"{hub.endpoint}/fake-user/tiny"  # read by exist_ok=True
    assert hub.is_private("fake-user/tiny")
    assert hub.repo_files("fake-user/tiny") == {".gitattributes": INITIAL_GITATTRIBUTES}

    assert create_repo(hub, "other", private=False, token="not-a-hub-token")[0] == 401
    assert request(hub, "GET", "/api/whoami-v2")[0] == 401
    status, _, body = request(hub, "GET", "/api/whoami-v2", token=hub.token)
    assert status == 200 and json.loads(body)["name"] == "fake-user"

    # Private repo: anonymous -> 401 RepoNotFound; missing repo -> 404 RepoNotFound.
    status, headers, _ = request(hub, "GET", "/api/models/fake-user/tiny")
    assert (status, headers["X-Error-Code"]) == (401, "RepoNotFound")
    status, _, body = request(hub, "GET", "/api/models/fake-user/tiny", token=hub.token)
    assert status == 200 and json.loads(body)["private"] is True
    status, headers, _ = request(hub, "GET", "/api/models/fake-user/missing", token=hub.token)
    assert (status, headers["X-Error-Code"]) == (404, "RepoNotFound")
    assert [entry.status for entry in hub.requests][:2] == [200, 409]


def test_resolve_headers_errors_and_ranges(hub):
    create_repo(hub, "files", private=False)
    content = bytes(range(256)) * 4
    status, _, body = commit_regular_files(hub, "fake-user/files", {"weights/a.bin": content, "config.json": b"{}"})
    assert status == 200
    commit_id = json.loads(body)["commitOid"]

    status, headers, body = request(hub, "HEAD", "/fake-user/files/resolve/main/weights/a.bin")
    assert status == 200 and body == b""
    assert headers["X-Repo-Commit"] == commit_id
    assert headers["ETag"] == f'"{git_blob_id(content)}"'
    assert int(headers["Content-Length"]) == len(content)

    weights_url = f"/fake-user/files/resolve/{commit_id}/weights/a.bin"
    status, headers, body = request(hub, "GET", weights_url, headers={"Range": "bytes=10-19"})
    assert (status, body, headers["Content-Range"]) == (206, content[10:20], f"bytes 10-19/{len(content)}")
    assert request(hub, "GET", weights_url, headers={"Range": "bytes=5000-"})[0] == 416

    # A missing file in an existing repo is EntryNotFound (transformers skips optional files on it).
    status, headers, _ = request(hub, "HEAD", "/fake-user/files/resolve/main/adapter_config.json")
    assert (status, headers["X-Error-Code"], headers["X-Repo-Commit"]) == (404, "EntryNotFound", commit_id)
    status, headers, _ = request(hub, "HEAD", f"/fake-user/files/resolve/{'0' * 40}/config.json")
    assert (status, headers["X-Error-Code"]) == (404, "RevisionNotFound")

    # A commit based on an outdated parent is refused (datasets retries on 412).
    assert commit_regular_files(hub, "fake-user/files", {"x.txt": b"x"}, parent="0" * 40)[0] == 412
    assert hub.commit_summaries("fake-user/files") == ["initial commit", "add files"]


def test_preupload_modes_and_lfs_upload(hub):
    create_repo(hub, "lfs", private=False)

    def post_json(path: str, payload: dict) -> dict:
        status, _, body = request(hub, "POST", path, json.dumps(payload).encode(), token=hub.token)
        assert status == 200, body
        return json.loads(body)

    preupload_url, batch_url = "/api/models/fake-user/lfs/preupload/main", "/fake-user/lfs.git/info/lfs/objects/batch"
    files = [
        {"path": "config.json", "size": 2, "sample": "e30="},  # b"{}"
        {"path": "model.safetensors", "size": 2, "sample": "e30="},  # tracked by .gitattributes
        {"path": "data.raw", "size": 3, "sample": "AAEC"},  # binary sample
    ]
    answers = post_json(preupload_url, {"files": files})["files"]
    assert [(file["uploadMode"], file["oid"]) for file in answers] == [("regular", None), ("lfs", None), ("lfs", None)]

    content = b"\x00\x01\x02"
    oid = hashlib.sha256(content).hexdigest()
    batch = {"operation": "upload", "transfers": ["basic"], "objects": [{"oid": oid, "size": 3}]}
    upload_path = post_json(batch_url, batch)["objects"][0]["actions"]["upload"]["href"][len(hub.endpoint) :]
    assert request(hub, "PUT", upload_path, b"wrong content")[0] == 400
    assert request(hub, "PUT", upload_path, content)[0] == 200
    lfs_line = {"key": "lfsFile", "value": {"path": "data.raw", "algo": "sha256", "oid": oid, "size": 3}}
    body = json.dumps({"key": "header", "value": {"summary": "lfs"}}) + "\n" + json.dumps(lfs_line) + "\n"
    assert request(hub, "POST", "/api/models/fake-user/lfs/commit/main", body.encode(), token=hub.token)[0] == 200
    assert hub.repo_files("fake-user/lfs")["data.raw"] == content
    _status, headers, _ = request(hub, "HEAD", "/fake-user/lfs/resolve/main/data.raw")
    assert (headers["X-Linked-Etag"], headers["X-Linked-Size"]) == (f'"{oid}"', "3")

    # Once stored: no upload action for the object, and preupload reports its oid (unchanged files are skipped).
    assert "actions" not in post_json(batch_url, batch)["objects"][0]
    assert post_json(preupload_url, {"files": files})["files"][2]["oid"] == oid


def test_command_line_server(tmp_path):
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.infra.fake_hub", "--port", "0", "--storage", str(tmp_path / "storage")],
        cwd=REPO_ROOT,
        stderr=subprocess.PIPE,
        text=True,
        # a child inherits an ignored SIGINT (some library imported earlier in the suite ignores it), and Python then
        # installs no KeyboardInterrupt handler: restore the default so the server can be stopped as a user would
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        line = ""
        while "HF_ENDPOINT=" not in line:
            line = process.stderr.readline()
            assert line, "the server exited before printing its endpoint"
        endpoint = line.split("HF_ENDPOINT=")[1].split()[0]
        req = urllib.request.Request(endpoint + "/api/whoami-v2", headers={"Authorization": "Bearer hf_x"})
        with _DIRECT.open(req, timeout=10) as response:
            assert json.loads(response.read())["name"] == "fake-user"
    finally:
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 0


# ---------------------------------------------------------------------------------------------------- clients

UPLOAD_AND_DOWNLOAD = """
    import json, os
    from pathlib import Path
    from huggingface_hub import HfApi, hf_hub_download, snapshot_download

    folder = Path(os.environ["TEST_FOLDER"])
    api = HfApi()
    private_url = api.create_repo("fake-user/private-model", private=True)
    public_url = api.create_repo("public-model")  # namespace taken from the token's user
    api.create_repo("fake-user/private-model", exist_ok=True)
    api.upload_folder(repo_id="fake-user/private-model", folder_path=folder, commit_message="upload weights")
    future = api.upload_folder(repo_id=public_url.repo_id, folder_path=folder, run_as_future=True)
    future_commit = future.result(timeout=120)

    downloaded = {
        repo: {
            "single": hf_hub_download(repo, "model.safetensors"),
            "snapshot": snapshot_download(repo),
        }
        for repo in ("fake-user/private-model", "fake-user/public-model")
    }
    print(json.dumps({
        "urls": [private_url, public_url],
        "future_commit": future_commit.oid,
        "downloaded": downloaded,
    }))
"""


def _write_model_folder(folder: Path) -> dict[str, bytes]:
    """A folder like a saved model: a ~2 MB binary weights file, JSON files and a subfolder."""
    files = {
        "model.safetensors": np.random.default_rng(0).bytes(2_000_000),
        "config.json": json.dumps({"hidden_size": 32}).encode(),
        "processor/preprocessor_config.json": json.dumps({"sampling_rate": 100}).encode(),
    }
    for path, content in files.items():
        (folder / path).parent.mkdir(parents=True, exist_ok=True)
        (folder / path).write_bytes(content)
    return files


def test_upload_folder_then_download(hub, tmp_path):
    folder = tmp_path / "saved-model"
    files = _write_model_folder(folder)
    result = run_client(hub, UPLOAD_AND_DOWNLOAD, tmp_path / "home", token=hub.token, TEST_FOLDER=str(folder))

    assert result["urls"] == [f"{hub.endpoint}/fake-user/private-model", f"{hub.endpoint}/fake-user/public-model"]
    assert hub.is_private("fake-user/private-model") and not hub.is_private("fake-user/public-model")
    for repo_id in ("fake-user/private-model", "fake-user/public-model"):
        stored = hub.repo_files(repo_id)
        assert {path: stored[path] for path in files} == files
        assert Path(result["downloaded"][repo_id]["single"]).read_bytes() == files["model.safetensors"]
        snapshot = Path(result["downloaded"][repo_id]["snapshot"])
        assert {path: (snapshot / path).read_bytes() for path in files} == files
    assert hub.commit_summaries("fake-user/private-model")[-1] == "upload weights"
    assert result["future_commit"] == hub.storage.resolve("model", "fake-user/public-model", "main")[0]
    # The weights went through the LFS batch API (one PUT per repo), the JSON files inline in the commit.
    lfs_uploads = [entry for entry in hub.requests if entry.method == "PUT"]
    assert len(lfs_uploads) == 2 and all(entry.status == 200 for entry in lfs_uploads)
    stored_records = hub.storage.resolve("model", "fake-user/public-model", "main")[1]["files"]
    assert {path: stored_records[path]["lfs"] for path in files} == {
        "model.safetensors": True,
        "config.json": False,
        "processor/preprocessor_config.json": False,
    }


ANONYMOUS_CLIENT = """
    import json
    from huggingface_hub import HfApi, constants, hf_hub_download, snapshot_download
    from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError, RepositoryNotFoundError
    from huggingface_hub.utils import get_session

    outcome = {"endpoint": constants.ENDPOINT}
    outcome["public_config"] = open(hf_hub_download("fake-user/public-model", "config.json")).read()
    for name, call, expected in [
        ("private_snapshot", lambda: snapshot_download("fake-user/private-model"), RepositoryNotFoundError),
        ("private_file", lambda: hf_hub_download("fake-user/private-model", "config.json"), RepositoryNotFoundError),
        ("missing_file", lambda: hf_hub_download("fake-user/public-model", "nope.json"), EntryNotFoundError),
        ("create_repo", lambda: HfApi().create_repo("fake-user/new", token=False), HfHubHTTPError),
    ]:
        try:
            call()
            outcome[name] = "no error"
        except expected as error:
            outcome[name] = type(error).__name__
    try:
        get_session().get("https://huggingface.co/api/models/gpt2", timeout=10)
        outcome["real_hub"] = "reached"
    except Exception as error:
        outcome["real_hub"] = type(error).__name__
    print(json.dumps(outcome))
"""


def test_anonymous_client_cannot_read_private_repo(hub, tmp_path):
    create_repo(hub, "private-model", private=True)
    create_repo(hub, "public-model", private=False)
    for repo_id in ("fake-user/private-model", "fake-user/public-model"):
        commit_regular_files(hub, repo_id, {"config.json": b'{"a": 1}'})

    outcome = run_client(hub, ANONYMOUS_CLIENT, tmp_path / "home", token=None)

    assert outcome["endpoint"] == hub.endpoint
    assert outcome["public_config"] == '{"a": 1}'
    assert outcome["private_snapshot"] == outcome["private_file"] == "RepositoryNotFoundError"
    assert outcome["missing_file"] == "RemoteEntryNotFoundError"
    assert outcome["create_repo"] == "HfHubHTTPError"
    assert outcome["real_hub"] != "reached", outcome["real_hub"]


DATASET_PUSH = """
    import json
    from datasets import Dataset, DatasetDict

    splits = DatasetDict({
        "train": Dataset.from_dict({"ecg_id": [1, 2, 3], "report": ["sinus rhythm", "afib", "normal ecg"]}),
        "test": Dataset.from_dict({"ecg_id": [4], "report": ["lbbb"]}),
    })
    splits.push_to_hub("fake-user/ecg-reports", config_name="reports", private=True)
    splits["train"].select([0]).push_to_hub("fake-user/ecg-reports", config_name="tiny", split="train")
    print(json.dumps({"ok": True}))
"""

DATASET_LOAD = """
    import json
    from datasets import load_dataset

    reports = load_dataset("fake-user/ecg-reports", "reports")
    tiny = load_dataset("fake-user/ecg-reports", "tiny", split="train")
    print(json.dumps({
        "reports": {split: reports[split].to_dict() for split in reports},
        "tiny": tiny.to_dict(),
    }))
"""


def test_dataset_push_to_hub_then_load_dataset(hub, tmp_path):
    run_client(hub, DATASET_PUSH, tmp_path / "home-push", token=hub.token)
    loaded = run_client(hub, DATASET_LOAD, tmp_path / "home-load", token=hub.token)

    assert loaded["reports"] == {
        "train": {"ecg_id": [1, 2, 3], "report": ["sinus rhythm", "afib", "normal ecg"]},
        "test": {"ecg_id": [4], "report": ["lbbb"]},
    }
    assert loaded["tiny"] == {"ecg_id": [1], "report": ["sinus rhythm"]}
    stored = hub.repo_files("fake-user/ecg-reports", repo_type="dataset")
    assert {"README.md", "reports/train-00000-of-00001.parquet", "tiny/train-00000-of-00001.parquet"} <= set(stored)
    assert "config_name: tiny" in stored["README.md"].decode()
    assert hub.is_private("fake-user/ecg-reports", repo_type="dataset")


TINY_CONFIGURATION = """
from transformers import PretrainedConfig


class TinyEcgConfig(PretrainedConfig):
    model_type = "tiny-ecg"

    def __init__(self, num_leads=12, hidden_size=8, **kwargs):
        self.num_leads = num_leads
        self.hidden_size = hidden_size
        super().__init__(**kwargs)
"""

TINY_MODELING = """
import torch
from transformers import PreTrainedModel

from .configuration_tiny import TinyEcgConfig


class TinyEcgModel(PreTrainedModel):
    config_class = TinyEcgConfig
    main_input_name = "signal"

    def __init__(self, config):
        super().__init__(config)
        self.projection = torch.nn.Linear(config.num_leads, config.hidden_size)
        self.post_init()

    def forward(self, signal):
        return self.projection(signal.transpose(1, 2)).mean(dim=1)
"""

TRANSFORMERS_PUSH = """
    import json, os, sys
    from pathlib import Path
    import torch
    from huggingface_hub import HfApi
    from transformers import BertConfig, BertModel, BertTokenizer

    work = Path(os.environ["TEST_WORK"])
    torch.manual_seed(0)
    bert = BertModel(BertConfig(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, vocab_size=1000
    )).eval()
    bert.push_to_hub("fake-user/tiny-bert", private=True)
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "sinus", "rhythm", "normal"]
    BertTokenizer(vocab={word: index for index, word in enumerate(words)}).push_to_hub("fake-user/tiny-bert")

    sys.path.insert(0, str(work))  # the custom-code package `tinyecg`, flat like modeling_merit/
    from tinyecg.configuration_tiny import TinyEcgConfig
    from tinyecg.modeling_tiny import TinyEcgModel
    TinyEcgConfig.register_for_auto_class()
    TinyEcgModel.register_for_auto_class("AutoModel")
    custom = TinyEcgModel(TinyEcgConfig()).eval()
    custom.save_pretrained(work / "custom-checkpoint")
    HfApi().create_repo("fake-user/tiny-custom")
    HfApi().upload_folder(
        repo_id="fake-user/tiny-custom", folder_path=work / "custom-checkpoint", run_as_future=True
    ).result(timeout=120)

    input_ids = torch.arange(10).reshape(2, 5)
    signal = torch.linspace(-1, 1, 2 * 12 * 50).reshape(2, 12, 50)
    with torch.no_grad():
        torch.save({
            "input_ids": input_ids,
            "bert_output": bert(input_ids=input_ids).last_hidden_state,
            "bert_state": bert.state_dict(),
            "signal": signal,
            "custom_output": custom(signal),
        }, work / "reference.pt")
    print(json.dumps({"ok": True}))
"""

TRANSFORMERS_LOAD = """
    import json, os
    from pathlib import Path
    import torch
    from transformers import AutoModel, AutoTokenizer

    reference = torch.load(Path(os.environ["TEST_WORK"]) / "reference.pt")
    outcome = {}
    try:
        AutoModel.from_pretrained("fake-user/tiny-bert", token=False)
        outcome["anonymous"] = "loaded"
    except OSError as error:
        outcome["anonymous"] = str(error)

    bert = AutoModel.from_pretrained("fake-user/tiny-bert").eval()
    tokenizer = AutoTokenizer.from_pretrained("fake-user/tiny-bert")
    outcome["token_ids"] = tokenizer("normal sinus rhythm")["input_ids"]
    custom = AutoModel.from_pretrained("fake-user/tiny-custom", trust_remote_code=True).eval()
    with torch.no_grad():
        outcome["bert_class"] = type(bert).__name__
        outcome["bert_state_equal"] = all(
            torch.equal(tensor, bert.state_dict()[name]) for name, tensor in reference["bert_state"].items()
        )
        outcome["bert_output_equal"] = torch.equal(
            bert(input_ids=reference["input_ids"]).last_hidden_state, reference["bert_output"]
        )
        outcome["custom_class"] = type(custom).__module__ + "." + type(custom).__name__
        outcome["custom_output_equal"] = torch.equal(custom(reference["signal"]), reference["custom_output"])
    print(json.dumps(outcome))
"""


@pytest.mark.slow
def test_transformers_push_to_hub_then_from_pretrained(hub, tmp_path):
    package = tmp_path / "tinyecg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "configuration_tiny.py").write_text(TINY_CONFIGURATION)
    (package / "modeling_tiny.py").write_text(TINY_MODELING)

    run_client(hub, TRANSFORMERS_PUSH, tmp_path / "home-push", token=hub.token, TEST_WORK=str(tmp_path))
    outcome = run_client(hub, TRANSFORMERS_LOAD, tmp_path / "home-load", token=hub.token, TEST_WORK=str(tmp_path))

    assert "is not a valid model identifier" in outcome["anonymous"]  # private repo, no token: not found
    assert outcome["bert_class"] == "BertModel"
    assert outcome["token_ids"] == [2, 7, 5, 6, 3]  # [CLS] normal sinus rhythm [SEP]
    assert outcome["bert_state_equal"] and outcome["bert_output_equal"]
    assert outcome["custom_class"].endswith("modeling_tiny.TinyEcgModel")
    assert outcome["custom_output_equal"]
    assert hub.is_private("fake-user/tiny-bert") and not hub.is_private("fake-user/tiny-custom")
    assert {"config.json", "model.safetensors", "README.md"} <= set(hub.repo_files("fake-user/tiny-bert"))
    assert {"configuration_tiny.py", "modeling_tiny.py"} <= set(hub.repo_files("fake-user/tiny-custom"))
    unanswered = [entry for entry in hub.requests if entry.status >= 500]
    assert not unanswered
