"""A small local stand-in for the Hugging Face Hub, for offline tests of pushing and loading.

`FakeHub` serves, on 127.0.0.1, the subset of the Hub HTTP API that `huggingface_hub` (2.x) uses to
create repos, commit files and download them, so that `push_to_hub`, `upload_folder`,
`hf_hub_download`, `snapshot_download`, `AutoModel.from_pretrained` and `DatasetDict.push_to_hub` can be
exercised without contacting huggingface.co. Point a client at it with `HF_ENDPOINT` **before** any
Hugging Face library is imported (the endpoint is read at import time), i.e. in a subprocess started
with `FakeHub.client_env(...)`:

```python
with FakeHub(tmp_path / "hub") as hub:
    env = hub.client_env(tmp_path / "hf_home", token=hub.token)
    subprocess.run([sys.executable, "-c", "..."], env=env, check=True)
    files = hub.repo_files("fake-user/tiny-model")  # {path: bytes}
```

What it mimics, and what it simplifies:

- Uploads: `preupload` says `"lfs"` for binary, large (> 10 MiB) or `.gitattributes`-tracked files and
  `"regular"` for the others, like the Hub. Regular files come inline (base64) in the NDJSON commit; LFS
  files go through the git LFS batch API (`basic` transfer, a PUT per object, content checked against its
  SHA-256). The Xet protocol is not implemented: with `hf_xet` installed, clients must run with
  `HF_HUB_DISABLE_XET=1` (which `client_env` sets), otherwise they fail with an explicit 400 from the Xet
  token endpoint. `datasets` needs the LFS path: it deletes its parquet shards right after `preupload`.
- Downloads answer without `X-Xet-Hash`, so clients use plain HTTP even with Xet enabled.
- Any bearer token starting with `hf_` is valid and belongs to the one user `username`, who may write to
  every namespace; other tokens get 401 "Invalid credentials". Private repos answer 401 `RepoNotFound`
  to anonymous requests, missing repos 404 `RepoNotFound`.
- Only the `main` branch exists (no pull requests, tags or other branches); a revision is `main` or a
  full commit id. New repos start with one commit holding a `.gitattributes` file, as on the Hub.

Run it by hand with `python -m tests.infra.fake_hub --port 8080 --storage /tmp/fake-hub`.
"""

from __future__ import annotations

import argparse
import base64
import dataclasses
import fnmatch
import hashlib
import json
import logging
import os
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit


logger = logging.getLogger(__name__)

REPO_TYPES = ("model", "dataset", "space")
DEFAULT_BRANCH = "main"
LFS_SIZE_THRESHOLD = 10 * 1024 * 1024  # bytes; bigger files always go to LFS, as on the Hub
_INITIAL_LFS_PATTERNS = (
    "*.arrow", "*.bin", "*.ckpt", "*.gz", "*.h5", "*.npy", "*.npz", "*.onnx", "*.parquet", "*.pickle", "*.pkl",
    "*.pt", "*.pth", "*.safetensors", "*.tar", "*.zip", "*tfevents*",
)  # fmt: skip
INITIAL_GITATTRIBUTES = b"".join(
    b"%s filter=lfs diff=lfs merge=lfs -text\n" % pattern.encode() for pattern in _INITIAL_LFS_PATTERNS
)


# Variables that would send a client offline or to caches / a token outside the `hf_home` of `client_env`.
_CLIENT_ENV_UNSET = (
    "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE", "HF_TOKEN", "HF_TOKEN_PATH", "HF_HUB_CACHE",
    "HUGGINGFACE_HUB_CACHE", "HF_DATASETS_CACHE", "HF_MODULES_CACHE", "HF_XET_CACHE",
)  # fmt: skip


def git_blob_id(content: bytes) -> str:
    """Git object id (SHA-1 of `blob <size>\\0<content>`) of `content`, the id the Hub reports for regular files."""
    return hashlib.sha1(b"blob %d\x00" % len(content) + content).hexdigest()


def lfs_pointer(sha256: str, size: int) -> bytes:
    """The git LFS pointer file that stands in git for an LFS-stored file."""
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()


def is_lfs_file(path: str, size: int, sample: bytes, gitattributes: bytes) -> bool:
    """Whether the Hub stores a file in LFS: binary `sample` (its first 512 bytes), size over 10 MiB, or a path
    matching a `filter=lfs` pattern of the repo's `.gitattributes` content."""
    if b"\x00" in sample or size > LFS_SIZE_THRESHOLD:
        return True
    for line in gitattributes.decode(errors="replace").splitlines():
        pattern, *attributes = line.split() or [""]
        if "filter=lfs" in attributes:
            target = path if "/" in pattern else path.rsplit("/", 1)[-1]
            if fnmatch.fnmatchcase(target, pattern):
                return True
    return False


def _utc_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())


class HubError(Exception):
    """An error answer of the Hub: HTTP `status`, optional `X-Error-Code` header and a message.

    `huggingface_hub.utils.hf_raise_for_status` maps `error_code` to its exception classes:
    `RepoNotFound` -> `RepositoryNotFoundError`, `RevisionNotFound` -> `RevisionNotFoundError`,
    `EntryNotFound` -> `RemoteEntryNotFoundError` (transformers relies on the latter to skip optional files).
    `commit` becomes the `X-Repo-Commit` header; `body` adds fields to the JSON body `{"error": message}`.
    """

    def __init__(
        self,
        status: int,
        message: str,
        error_code: str | None = None,
        commit: str | None = None,
        body: dict[str, Any] | None = None,
    ):
        super().__init__(message)
        self.status = status
        self.message = message
        self.error_code = error_code
        self.commit = commit
        self.body = {"error": message, **(body or {})}


@dataclasses.dataclass(frozen=True)
class LoggedRequest:
    """One request the server answered: HTTP `method`, `path` (with query string) and response `status`."""

    method: str
    path: str
    status: int


class HubStorage:
    """Repositories on disk, one folder per repo: `<root>/<type>s/<namespace>/<name>/`.

    Each repo folder holds `repo.json` and `objects/<sha256>` (file contents, content-addressed).
    `repo.json` holds `private`, `created_at`, `refs` (branch -> commit id) and `commits` (commit id ->
    `{"parent", "summary", "date", "files"}`), where `files` maps each path to
    `{"sha256", "size", "lfs", "git_oid"}`; `git_oid` is the git blob id of the content (regular files) or
    of the LFS pointer (LFS files), as the Hub reports them. All methods are thread-safe.

    Args:
        root (`str` or `os.PathLike`): folder where repositories are stored (created if missing).
    """

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()

    def _repo_dir(self, repo_type: str, repo_id: str) -> Path:
        if repo_type not in REPO_TYPES:
            raise ValueError(f"repo_type must be one of {REPO_TYPES}, got {repo_type!r}")
        if repo_id.count("/") != 1 or any(part in ("", ".", "..") for part in repo_id.split("/")):
            raise ValueError(f"repo_id must look like 'namespace/name', got {repo_id!r}")
        return self.root / f"{repo_type}s" / repo_id

    def _read_meta(self, repo_type: str, repo_id: str) -> dict[str, Any] | None:
        meta_path = self._repo_dir(repo_type, repo_id) / "repo.json"
        return json.loads(meta_path.read_text()) if meta_path.is_file() else None

    def _write_meta(self, repo_type: str, repo_id: str, meta: dict[str, Any]) -> None:
        meta_path = self._repo_dir(repo_type, repo_id) / "repo.json"
        tmp_path = meta_path.with_suffix(".tmp")
        tmp_path.write_text(json.dumps(meta, indent=1))
        tmp_path.replace(meta_path)

    def repo_meta(self, repo_type: str, repo_id: str) -> dict[str, Any] | None:
        """The stored `repo.json` content of a repo, or `None` if the repo does not exist."""
        with self._lock:
            return self._read_meta(repo_type, repo_id)

    def create_repo(self, repo_type: str, repo_id: str, private: bool) -> bool:
        """Create an empty repo (one initial commit with `.gitattributes`); return `False` if it already exists."""
        with self._lock:
            if self._read_meta(repo_type, repo_id) is not None:
                return False
            (self._repo_dir(repo_type, repo_id) / "objects").mkdir(parents=True)
            meta = {"private": private, "created_at": _utc_now(), "refs": {}, "commits": {}}
            self._write_meta(repo_type, repo_id, meta)
            initial_files = {".gitattributes": INITIAL_GITATTRIBUTES}
            self.commit(repo_type, repo_id, DEFAULT_BRANCH, "initial commit", initial_files)
            return True

    def resolve(self, repo_type: str, repo_id: str, revision: str) -> tuple[str, dict[str, Any]]:
        """Return `(commit id, commit)` for a branch name or full commit id; raise `HubError` if unknown."""
        with self._lock:
            meta = self._read_meta(repo_type, repo_id)
            if meta is None:
                raise HubError(404, f"Repository {repo_id} not found", "RepoNotFound")
            commit_id = meta["refs"].get(revision, revision if revision in meta["commits"] else None)
            if commit_id is None:
                raise HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")
            return commit_id, meta["commits"][commit_id]

    def store_object(self, repo_type: str, repo_id: str, content: bytes) -> str:
        """Store `content` in the repo's object store and return its SHA-256 (hex)."""
        sha256 = hashlib.sha256(content).hexdigest()
        object_path = self._repo_dir(repo_type, repo_id) / "objects" / sha256
        if not object_path.exists():
            tmp_path = object_path.with_name(f"{sha256}.{threading.get_ident()}.tmp")
            tmp_path.write_bytes(content)
            tmp_path.replace(object_path)
        return sha256

    def has_object(self, repo_type: str, repo_id: str, sha256: str) -> bool:
        return (self._repo_dir(repo_type, repo_id) / "objects" / sha256).is_file()

    def read_object(self, repo_type: str, repo_id: str, sha256: str) -> bytes:
        return (self._repo_dir(repo_type, repo_id) / "objects" / sha256).read_bytes()

    def commit(
        self,
        repo_type: str,
        repo_id: str,
        branch: str,
        summary: str,
        additions: dict[str, bytes],
        lfs_additions: dict[str, str] | None = None,
        deleted_files: tuple[str, ...] = (),
        deleted_folders: tuple[str, ...] = (),
        parent_commit: str | None = None,
    ) -> str:
        """Create a commit on `branch` and return its id.

        Args:
            additions (`dict[str, bytes]`): regular files, path -> content.
            lfs_additions (`dict[str, str]`, *optional*): LFS files, path -> SHA-256 of an object already
                stored with `store_object` (400 otherwise, as on the Hub).
            deleted_files, deleted_folders (`tuple[str, ...]`): paths removed before the additions are applied;
                404 `EntryNotFound` if one does not exist.
            parent_commit (`str`, *optional*): expected head of `branch` (full id or prefix); 412 otherwise.
        """
        with self._lock:
            meta = self._read_meta(repo_type, repo_id)
            if meta is None:
                raise HubError(404, f"Repository {repo_id} not found", "RepoNotFound")
            head = meta["refs"].get(branch)
            if head is None and meta["refs"]:
                raise HubError(404, f"Invalid rev id: {branch}", "RevisionNotFound")
            if parent_commit is not None and not (head or "").startswith(parent_commit):
                raise HubError(412, f"Parent commit {parent_commit} is not the head of {branch} ({head})")
            files = dict(meta["commits"][head]["files"]) if head else {}
            for path in deleted_files:
                if files.pop(path, None) is None:
                    raise HubError(404, f"File to delete not found: {path}", "EntryNotFound")
            for folder in deleted_folders:
                prefix = folder.rstrip("/") + "/"
                removed = [path for path in files if path.startswith(prefix)]
                if not removed:
                    raise HubError(404, f"Folder to delete not found: {folder}", "EntryNotFound")
                for path in removed:
                    del files[path]
            for path, content in additions.items():
                sha256 = self.store_object(repo_type, repo_id, content)
                files[path] = {"sha256": sha256, "size": len(content), "lfs": False, "git_oid": git_blob_id(content)}
            for path, sha256 in (lfs_additions or {}).items():
                if not self.has_object(repo_type, repo_id, sha256):
                    raise HubError(400, f"LFS object {sha256} of {path} was not uploaded")
                size = (self._repo_dir(repo_type, repo_id) / "objects" / sha256).stat().st_size
                pointer = lfs_pointer(sha256, size)
                files[path] = {"sha256": sha256, "size": size, "lfs": True, "git_oid": git_blob_id(pointer)}
            commit = {"parent": head, "summary": summary, "date": _utc_now(), "files": dict(sorted(files.items()))}
            commit_id = hashlib.sha1(json.dumps([commit, len(meta["commits"])]).encode()).hexdigest()
            meta["commits"][commit_id] = commit
            meta["refs"][branch] = commit_id
            self._write_meta(repo_type, repo_id, meta)
            return commit_id


class _HubRequestHandler(BaseHTTPRequestHandler):
    """Answers the Hub endpoints used by `huggingface_hub`; `self.server.hub` is the owning `FakeHub`.

    Every `_handle_*` method names the real endpoint it mimics. Handlers raise `HubError` for error
    answers; `_dispatch` turns them into responses with the Hub's `X-Error-Code`/`X-Error-Message` headers.
    """

    protocol_version = "HTTP/1.1"
    server: _FakeHubServer

    _TYPED_REPO = r"(?P<type>model|dataset|space)s/(?P<repo>[^/]+/[^/]+)"
    _API_REPO = r"/api/" + _TYPED_REPO
    _GIT_REPO = r"/(?:(?P<type>dataset|space)s/)?(?P<repo>[^/]+/[^/]+)"
    _ROUTES = (
        ("GET", r"/api/whoami-v2", "_handle_whoami"),
        ("POST", r"/api/repos/create", "_handle_create_repo"),
        ("POST", r"/api/validate-yaml", "_handle_validate_yaml"),
        ("GET", _API_REPO + r"(?:/revision/(?P<rev>[^/]+))?", "_handle_repo_info"),
        ("GET", _API_REPO + r"/tree/(?P<rev>[^/]+)(?:/(?P<path>.*))?", "_handle_tree"),
        ("POST", _API_REPO + r"/paths-info/(?P<rev>[^/]+)", "_handle_paths_info"),
        ("POST", _API_REPO + r"/preupload/(?P<rev>[^/]+)", "_handle_preupload"),
        ("POST", _API_REPO + r"/commit/(?P<rev>[^/]+)", "_handle_commit"),
        ("GET", _API_REPO + r"/xet-(?P<access>read|write)-token(?:/(?P<rev>[^/]+))?", "_handle_xet_token"),
        ("POST", _GIT_REPO + r"\.git/info/lfs/objects/batch", "_handle_lfs_batch"),
        ("PUT", r"/fake-lfs-upload/" + _TYPED_REPO + r"/(?P<oid>[0-9a-f]{64})", "_handle_lfs_upload"),
        ("HEAD", _GIT_REPO + r"/resolve/(?P<rev>[^/]+)/(?P<path>.+)", "_handle_resolve"),
        ("GET", _GIT_REPO + r"/resolve/(?P<rev>[^/]+)/(?P<path>.+)", "_handle_resolve"),
    )

    # ------------------------------------------------------------------ plumbing

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s - %s", self.address_string(), format % args)

    def _dispatch(self, method: str) -> None:
        url = urlsplit(self.path)
        self.query = parse_qs(url.query)
        self.body = self._read_body()
        try:
            for route_method, pattern, handler_name in self._ROUTES:
                if route_method == method and (match := re.fullmatch(pattern, url.path)):
                    params = {key: unquote(value) for key, value in match.groupdict().items() if value is not None}
                    getattr(self, handler_name)(**params)
                    break
            else:
                raise HubError(404, f"FakeHub does not implement {method} {url.path}")
        except HubError as error:
            headers = {"X-Error-Message": error.message}
            if error.error_code:
                headers["X-Error-Code"] = error.error_code
            if error.commit:
                headers["X-Repo-Commit"] = error.commit
            self._send_json(error.body, status=error.status, headers=headers)
        except ValueError as error:  # malformed repo id or request body
            self._send_json({"error": str(error)}, status=400, headers={"X-Error-Message": str(error)})
        except Exception as error:
            logger.exception("FakeHub failed on %s %s", method, self.path)
            self._send_json({"error": repr(error)}, status=500)

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while (size := int(self.rfile.readline().split(b";")[0], 16)) > 0:
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            self.rfile.readline()
            return b"".join(chunks)
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _send(self, status: int, body: bytes, headers: dict[str, str], content_type: str) -> None:
        # Logged before answering, so that a client that got its answer finds its request in the log.
        self.server.hub.requests.append(LoggedRequest(self.command, self.path, status))
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _send_json(self, payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(payload).encode(), dict(headers or {}), "application/json")

    @property
    def _endpoint(self) -> str:
        return self.server.hub.endpoint

    def _url_prefix(self, repo_type: str) -> str:
        return self._endpoint + ("/" if repo_type == "model" else f"/{repo_type}s/")

    # ------------------------------------------------------------------ auth

    def _user(self) -> str | None:
        """The user behind the bearer token, `None` without a token; 401 for a token not starting with `hf_`."""
        authorization = self.headers.get("Authorization", "")
        if not authorization.lower().startswith("bearer "):
            return None
        if not authorization[len("bearer ") :].strip().startswith("hf_"):
            raise HubError(401, "Invalid credentials in Authorization header")
        return self.server.hub.username

    def _require_user(self) -> str:
        user = self._user()
        if user is None:
            raise HubError(401, "You must be authenticated to access this endpoint")
        return user

    def _check_read_access(self, repo_type: str, repo_id: str) -> dict[str, Any]:
        """Repo metadata if the requester may read the repo; 404/401 `RepoNotFound` otherwise, as on the Hub."""
        user = self._user()
        meta = self.server.hub.storage.repo_meta(repo_type, repo_id)
        if meta is None:
            raise HubError(404, f"Repository {repo_id} not found", "RepoNotFound")
        if meta["private"] and user is None:
            raise HubError(401, "Invalid username or password.", "RepoNotFound")
        return meta

    def _check_write_access(self, repo_type: str, repo_id: str) -> None:
        self._require_user()
        self._check_read_access(repo_type, repo_id)

    # ------------------------------------------------------------------ endpoints

    def _handle_whoami(self) -> None:
        """GET /api/whoami-v2: the token owner (`HfApi.whoami`)."""
        name = self._require_user()
        self._send_json(
            {
                "type": "user",
                "id": hashlib.sha1(name.encode()).hexdigest()[:24],
                "name": name,
                "fullname": name,
                "orgs": [],
                "auth": {"type": "access_token", "accessToken": {"displayName": "fake", "role": "write"}},
            }
        )

    def _handle_create_repo(self) -> None:
        """POST /api/repos/create: create a repo (`HfApi.create_repo`).

        An existing repo is a 409 whose body still carries `url`: `create_repo(exist_ok=True)` reads it.
        """
        user = self._require_user()
        payload = json.loads(self.body or b"{}")
        repo_type = payload.get("type") or "model"
        if repo_type not in REPO_TYPES:
            raise HubError(400, f"Invalid repo type {repo_type!r}, expected one of {REPO_TYPES}")
        repo_id = f"{payload.get('organization') or user}/{payload['name']}"
        private = payload.get("visibility", "public") != "public" or bool(payload.get("private"))
        url = self._url_prefix(repo_type) + repo_id
        if not self.server.hub.storage.create_repo(repo_type, repo_id, private=private):
            raise HubError(409, f"You already created this {repo_type} repo", body={"url": url})
        self._send_json({"url": url, "name": repo_id, "id": repo_id})

    def _handle_validate_yaml(self) -> None:
        """POST /api/validate-yaml: README metadata check before a commit touching README.md; accepts everything."""
        self._send_json({"errors": [], "warnings": []})

    def _handle_repo_info(self, type: str, repo: str, rev: str = DEFAULT_BRANCH) -> None:
        """GET /api/{type}s/{repo}[/revision/{rev}]: repo info with `sha` and `siblings` (`HfApi.repo_info`).

        `snapshot_download` and transformers' `resolve_revision` read `sha` to pin every download to one commit.
        """
        meta = self._check_read_access(type, repo)
        commit_id, commit = self.server.hub.storage.resolve(type, repo, rev)
        siblings = []
        for path, record in commit["files"].items():
            sibling = {"rfilename": path, "size": record["size"], "blobId": record["git_oid"]}
            if record["lfs"]:
                pointer_size = len(lfs_pointer(record["sha256"], record["size"]))
                sibling["lfs"] = {"sha256": record["sha256"], "size": record["size"], "pointerSize": pointer_size}
            siblings.append(sibling)
        self._send_json(
            {
                "_id": hashlib.sha1(f"{type}/{repo}".encode()).hexdigest()[:24],
                "id": repo,
                "author": repo.split("/")[0],
                "sha": commit_id,
                "private": meta["private"],
                "gated": False,
                "disabled": False,
                "createdAt": meta["created_at"],
                "lastModified": commit["date"],
                "downloads": 0,
                "likes": 0,
                "tags": [],
                "siblings": siblings,
            }
        )

    @staticmethod
    def _tree_entries(commit_id: str, commit: dict[str, Any], expand: bool) -> dict[str, dict]:
        """Tree entries (`type`, `oid`, `size`, `path`, `lfs`) of every file and folder of a commit, by path.

        With `expand`, entries also carry `lastCommit` (here always the commit itself).
        """
        extra = {"lastCommit": {"id": commit_id, "title": commit["summary"], "date": commit["date"]}} if expand else {}
        entries: dict[str, dict] = {}
        for path, record in commit["files"].items():
            entry = {"type": "file", "oid": record["git_oid"], "size": record["size"], "path": path, **extra}
            if record["lfs"]:
                pointer_size = len(lfs_pointer(record["sha256"], record["size"]))
                entry["lfs"] = {"oid": record["sha256"], "size": record["size"], "pointerSize": pointer_size}
            entries[path] = entry
            parts = path.split("/")
            for depth in range(1, len(parts)):
                folder = "/".join(parts[:depth])
                folder_id = hashlib.sha1(f"{commit_id}:{folder}".encode()).hexdigest()
                entries.setdefault(folder, {"type": "directory", "oid": folder_id, "size": 0, "path": folder, **extra})
        return entries

    def _handle_tree(self, type: str, repo: str, rev: str, path: str = "") -> None:
        """GET /api/{type}s/{repo}/tree/{rev}[/{path}]?recursive=&expand=: folder listing (`HfApi.list_repo_tree`).

        Everything is returned in one page (no `Link` pagination header); a missing folder is 404 `EntryNotFound`.
        """
        self._check_read_access(type, repo)
        commit_id, commit = self.server.hub.storage.resolve(type, repo, rev)
        recursive = self.query.get("recursive", ["false"])[0].lower() in ("1", "true")
        expand = self.query.get("expand", ["false"])[0].lower() in ("1", "true")
        entries = self._tree_entries(commit_id, commit, expand)
        folder = path.strip("/")
        if folder and entries.get(folder, {}).get("type") != "directory":
            raise HubError(404, f"{folder} does not exist on {rev}", "EntryNotFound", commit=commit_id)
        prefix = folder + "/" if folder else ""
        listing = [
            entry
            for entry_path, entry in sorted(entries.items())
            if entry_path.startswith(prefix) and (recursive or "/" not in entry_path[len(prefix) :])
        ]
        self._send_json(listing, headers={"X-Repo-Commit": commit_id})

    def _handle_paths_info(self, type: str, repo: str, rev: str) -> None:
        """POST /api/{type}s/{repo}/paths-info/{rev}: entries of the paths that exist (`HfApi.get_paths_info`).

        The body is a form with repeated `paths` fields and `expand`.
        """
        self._check_read_access(type, repo)
        commit_id, commit = self.server.hub.storage.resolve(type, repo, rev)
        form = parse_qs(self.body.decode())
        expand = form.get("expand", ["false"])[0].lower() in ("1", "true")
        entries = self._tree_entries(commit_id, commit, expand)
        requested = [path.strip("/") for path in form.get("paths", [])]
        self._send_json([entries[path] for path in requested if path in entries])

    def _handle_preupload(self, type: str, repo: str, rev: str) -> None:
        """POST /api/{type}s/{repo}/preupload/{rev}: upload mode per file (`_commit_api._fetch_upload_modes`).

        `"lfs"` for binary / large / `.gitattributes`-tracked files (uploaded through the LFS batch API, or
        through Xet when `hf_xet` is enabled, which this server does not support), `"regular"` otherwise
        (content inline in the commit). `oid` is the current SHA-256 (LFS) or git blob id (regular), so that
        the client skips unchanged files.
        """
        self._check_write_access(type, repo)
        _, commit = self.server.hub.storage.resolve(type, repo, rev)
        gitattributes_record = commit["files"].get(".gitattributes")
        gitattributes = (
            self.server.hub.storage.read_object(type, repo, gitattributes_record["sha256"])
            if gitattributes_record
            else b""
        )
        answers = []
        for file in json.loads(self.body)["files"]:
            is_lfs = is_lfs_file(file["path"], file["size"], base64.b64decode(file["sample"]), gitattributes)
            record = commit["files"].get(file["path"])
            remote_oid = None if record is None else record["sha256"] if record["lfs"] else record["git_oid"]
            answers.append(
                {
                    "path": file["path"],
                    "uploadMode": "lfs" if is_lfs else "regular",
                    "shouldIgnore": False,
                    "oid": remote_oid,
                }
            )
        self._send_json({"files": answers})

    def _handle_lfs_batch(self, repo: str, type: str = "model") -> None:
        """POST /[{type}s/]{repo}.git/info/lfs/objects/batch: git LFS batch API (`lfs.post_lfs_batch_info`).

        Answers with the `basic` transfer. Objects already stored get no `actions` (the client skips them);
        the others get an `upload` href to `_handle_lfs_upload` (standing for the Hub's presigned storage URL).
        """
        self._check_write_access(type, repo)
        payload = json.loads(self.body)
        if payload.get("operation") != "upload":
            operation = payload.get("operation")
            raise HubError(400, f"FakeHub supports the LFS batch operation 'upload' only, got {operation!r}")
        objects = []
        for item in payload["objects"]:
            answer = {"oid": item["oid"], "size": item["size"], "authenticated": True}
            if not self.server.hub.storage.has_object(type, repo, item["oid"]):
                href = f"{self._endpoint}/fake-lfs-upload/{type}s/{repo}/{item['oid']}"
                answer["actions"] = {"upload": {"href": href}}
            objects.append(answer)
        self._send_json({"transfer": "basic", "objects": objects, "hash_algo": "sha256"})

    def _handle_lfs_upload(self, type: str, repo: str, oid: str) -> None:
        """PUT /fake-lfs-upload/{type}s/{repo}/{sha256}: where a `basic` LFS upload goes (`lfs._upload_single_part`).

        Needs no token, like the Hub's presigned URLs. The content must hash to `sha256` (400 otherwise).
        """
        if self.server.hub.storage.repo_meta(type, repo) is None:
            raise HubError(404, f"Repository {repo} not found", "RepoNotFound")
        if hashlib.sha256(self.body).hexdigest() != oid:
            raise HubError(400, f"Uploaded content does not match its LFS oid {oid}")
        self.server.hub.storage.store_object(type, repo, self.body)
        self._send(200, b"", {}, "text/plain")

    def _handle_xet_token(self, type: str, repo: str, access: str, rev: str = "") -> None:
        """GET /api/{type}s/{repo}/xet-{read|write}-token[/{rev}]: Xet is not supported; explain how to disable it."""
        raise HubError(
            400,
            "FakeHub has no Xet storage: set HF_HUB_DISABLE_XET=1 in the client environment (FakeHub.client_env does)",
        )

    def _handle_commit(self, type: str, repo: str, rev: str) -> None:
        """POST /api/{type}s/{repo}/commit/{rev}: NDJSON commit (`_commit_api._send_commit`).

        Lines are `{"key": "header"|"file"|"lfsFile"|"deletedFile"|"deletedFolder", "value": {...}}`: `file`
        carries the content (base64), `lfsFile` the SHA-256 `oid` of an object uploaded beforehand.
        """
        self._check_write_access(type, repo)
        if self.query.get("create_pr"):
            raise HubError(400, "FakeHub does not support pull requests (create_pr)")
        if rev != DEFAULT_BRANCH:
            raise HubError(400, f"FakeHub only commits to {DEFAULT_BRANCH!r}, got revision {rev!r}")
        header: dict[str, Any] = {}
        additions: dict[str, bytes] = {}
        lfs_additions: dict[str, str] = {}
        deleted_files: list[str] = []
        deleted_folders: list[str] = []
        for line in self.body.splitlines():
            if not line.strip():
                continue
            item = json.loads(line)
            key, value = item["key"], item["value"]
            if key == "header":
                header = value
            elif key == "file":
                content = value["content"]
                additions[value["path"]] = (
                    base64.b64decode(content) if value.get("encoding") == "base64" else content.encode()
                )
            elif key == "lfsFile":
                lfs_additions[value["path"]] = value["oid"]
            elif key == "deletedFile":
                deleted_files.append(value["path"])
            elif key == "deletedFolder":
                deleted_folders.append(value["path"])
            else:
                raise HubError(400, f"Unknown commit entry kind {key!r}")
        commit_id = self.server.hub.storage.commit(
            type,
            repo,
            rev,
            header.get("summary", ""),
            additions,
            lfs_additions,
            tuple(deleted_files),
            tuple(deleted_folders),
            parent_commit=header.get("parentCommit"),
        )
        self._send_json(
            {
                "success": True,
                "commitOid": commit_id,
                "commitUrl": f"{self._url_prefix(type)}{repo}/commit/{commit_id}",
                "pullRequestUrl": None,
            }
        )

    def _handle_resolve(self, repo: str, rev: str, path: str, type: str = "model") -> None:
        """HEAD/GET /[{type}s/]{repo}/resolve/{rev}/{path}: file download (`hf_hub_download`, `HfFileSystem`).

        Answers 200 with `X-Repo-Commit`, a quoted `ETag` (git blob id for regular files, SHA-256 for LFS
        files, which also get `X-Linked-Etag` / `X-Linked-Size` as on the Hub) and `Content-Length`; honours
        one `Range: bytes=start-[end]` with 206. No `X-Xet-Hash`, so clients never try Xet downloads.
        A missing file is 404 `EntryNotFound` with `X-Repo-Commit`, which transformers treats as "optional
        file absent".
        """
        self._check_read_access(type, repo)
        commit_id, commit = self.server.hub.storage.resolve(type, repo, rev)
        record = commit["files"].get(path)
        if record is None:
            raise HubError(404, "Entry not found", "EntryNotFound", commit=commit_id)
        content = self.server.hub.storage.read_object(type, repo, record["sha256"])
        headers = {"X-Repo-Commit": commit_id, "Accept-Ranges": "bytes"}
        if record["lfs"]:
            etag = f'"{record["sha256"]}"'
            headers.update({"ETag": etag, "X-Linked-Etag": etag, "X-Linked-Size": str(len(content))})
        else:
            headers["ETag"] = f'"{record["git_oid"]}"'
        status = 200
        range_match = re.fullmatch(r"bytes=(\d*)-(\d*)", self.headers.get("Range", "").strip())
        if range_match and any(range_match.groups()):
            start_text, end_text = range_match.groups()
            if start_text:
                start, end = int(start_text), min(int(end_text or len(content) - 1), len(content) - 1)
            else:
                start, end = max(len(content) - int(end_text), 0), len(content) - 1
            if start >= len(content):
                headers["Content-Range"] = f"bytes */{len(content)}"
                self._send(416, b"", headers, "application/octet-stream")
                return
            headers["Content-Range"] = f"bytes {start}-{end}/{len(content)}"
            content, status = content[start : end + 1], 206
        self._send(status, content, headers, "application/octet-stream")


class _FakeHubServer(ThreadingHTTPServer):
    daemon_threads = True
    hub: FakeHub


class FakeHub:
    """A local Hub server on `host`, started in a background thread; use it as a context manager.

    Args:
        storage_dir (`str` or `os.PathLike`): folder where repositories are stored (kept after stopping).
        host (`str`, *optional*, defaults to `"127.0.0.1"`): interface to listen on.
        port (`int`, *optional*, defaults to 0): port to listen on; 0 picks a free one.
        username (`str`, *optional*, defaults to `"fake-user"`): the user every valid token belongs to,
            and the namespace of repos created without one.

    Attributes:
        endpoint (`str`): base URL to use as `HF_ENDPOINT`, e.g. `"http://127.0.0.1:54321"` (set once started).
        token (`str`): a token the server accepts (any token starting with `hf_` is accepted).
        storage (`HubStorage`): the stored repositories.
        requests (`list[LoggedRequest]`): every answered request, in order.
    """

    token = "hf_fakehubtesttoken"

    def __init__(
        self, storage_dir: str | os.PathLike, *, host: str = "127.0.0.1", port: int = 0, username: str = "fake-user"
    ):
        self.storage = HubStorage(storage_dir)
        self.host = host
        self.port = port
        self.username = username
        self.requests: list[LoggedRequest] = []
        self.endpoint = ""
        self._server: _FakeHubServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> FakeHub:
        """Bind the port and serve in a daemon thread; return `self`."""
        if self._server is not None:
            raise RuntimeError(f"FakeHub is already running at {self.endpoint}")
        self._server = _FakeHubServer((self.host, self.port), _HubRequestHandler)
        self._server.hub = self
        self.port = self._server.server_address[1]
        self.endpoint = f"http://{self.host}:{self.port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-hub", daemon=True
        )
        self._thread.start()
        logger.info("FakeHub serving %s from %s", self.endpoint, self.storage.root)
        return self

    def stop(self) -> None:
        """Stop serving and release the port (stored repos are kept)."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join()
            self._server = self._thread = None

    def __enter__(self) -> FakeHub:
        return self.start()

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()

    def repo_files(self, repo_id: str, repo_type: str = "model", revision: str = DEFAULT_BRANCH) -> dict[str, bytes]:
        """Contents of every file of a repo at `revision` (including the initial `.gitattributes`), by path.

        Raises `KeyError` if the repo or revision does not exist.
        """
        try:
            _, commit = self.storage.resolve(repo_type, repo_id, revision)
        except HubError as error:
            raise KeyError(f"{repo_type} repo {repo_id!r} at {revision!r}: {error.message}") from None
        return {
            path: self.storage.read_object(repo_type, repo_id, record["sha256"])
            for path, record in commit["files"].items()
        }

    def is_private(self, repo_id: str, repo_type: str = "model") -> bool:
        """Whether a repo was created private; raises `KeyError` if it does not exist."""
        meta = self.storage.repo_meta(repo_type, repo_id)
        if meta is None:
            raise KeyError(f"{repo_type} repo {repo_id!r} does not exist")
        return meta["private"]

    def commit_summaries(self, repo_id: str, repo_type: str = "model") -> list[str]:
        """Summaries of the commits on `main`, oldest first (starting with `"initial commit"`)."""
        meta = self.storage.repo_meta(repo_type, repo_id)
        if meta is None:
            raise KeyError(f"{repo_type} repo {repo_id!r} does not exist")
        summaries, commit_id = [], meta["refs"][DEFAULT_BRANCH]
        while commit_id is not None:
            summaries.append(meta["commits"][commit_id]["summary"])
            commit_id = meta["commits"][commit_id]["parent"]
        return summaries[::-1]

    def client_env(
        self, hf_home: str | os.PathLike, token: str | None = None, base_env: dict[str, str] | None = None
    ) -> dict[str, str]:
        """Environment for a subprocess whose Hugging Face libraries must talk to this server only.

        Sets `HF_ENDPOINT`, `HF_HOME` (and the hub, datasets and modules caches under it), `HF_TOKEN` (removed
        when `token` is `None`) and `HF_HUB_DISABLE_XET=1` (LFS files then go through the LFS batch API this
        server implements), unsets the offline switches, and routes every other host through a dead proxy
        (`127.0.0.1:9`) so that no request can reach the real Hub.

        Args:
            hf_home (`str` or `os.PathLike`): fresh folder for caches and the token file.
            token (`str`, *optional*): token to expose as `HF_TOKEN`, e.g. `hub.token`.
            base_env (`dict[str, str]`, *optional*): environment to start from; defaults to `os.environ`.
        """
        if not self.endpoint:
            raise RuntimeError("FakeHub is not running: call start() or use it as a context manager first")
        env = dict(os.environ if base_env is None else base_env)
        for name in _CLIENT_ENV_UNSET:
            env.pop(name, None)
        dead_proxy = "http://127.0.0.1:9"
        local_hosts = f"{self.host},localhost,127.0.0.1"
        env.update(
            {
                "HF_ENDPOINT": self.endpoint,
                "HF_HOME": str(hf_home),
                "HF_HUB_CACHE": str(Path(hf_home) / "hub"),
                "HF_HUB_DISABLE_TELEMETRY": "1",
                "HF_HUB_DISABLE_XET": "1",
                "HTTP_PROXY": dead_proxy,
                "HTTPS_PROXY": dead_proxy,
                "ALL_PROXY": dead_proxy,
                "http_proxy": dead_proxy,
                "https_proxy": dead_proxy,
                "all_proxy": dead_proxy,
                "NO_PROXY": local_hosts,
                "no_proxy": local_hosts,
            }
        )
        if token is not None:
            env["HF_TOKEN"] = token
        return env


def main() -> None:
    """`python -m tests.infra.fake_hub --port N --storage DIR`: serve until interrupted."""
    parser = argparse.ArgumentParser(description="Serve a local fake Hugging Face Hub for manual testing.")
    parser.add_argument("--port", type=int, default=8080, help="port to listen on (0 picks a free one)")
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on")
    parser.add_argument("--storage", required=True, help="folder where repositories are stored")
    parser.add_argument("--username", default="fake-user", help="user that every hf_* token belongs to")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    hub = FakeHub(args.storage, host=args.host, port=args.port, username=args.username)
    with hub:
        try:  # the endpoint is announced inside the try: a Ctrl-C right after it must still stop cleanly
            logger.info("export HF_ENDPOINT=%s HF_TOKEN=%s  (Ctrl-C to stop)", hub.endpoint, hub.token)
            threading.Event().wait()
        except KeyboardInterrupt:
            logger.info("stopping")


if __name__ == "__main__":
    main()
