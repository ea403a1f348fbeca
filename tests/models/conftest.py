"""A real HTTP server on 127.0.0.1 serving a model pack the way the Hugging Face hub and GitHub releases do.

Hub files are served at `/{org}/{repo}/resolve/{revision}/{path}` with the headers huggingface_hub reads
(X-Repo-Commit, ETag, Content-Length, 206 + Content-Range for Range requests, X-Error-Code on 404);
zips at `/releases/download/v0.7/NAME.zip`. The server counts every request and every body byte it
sends, can drop a connection mid-file once, and can serve different bytes than the manifest expects.
It runs in a daemon thread and shuts itself down after a time limit even if a test hangs.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import struct
import threading
import zipfile
import zlib
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from engine.models.layout import PARTS
from engine.models.manifest import load_manifest

COMMIT = "0123456789abcdef0123456789abcdef01234567"
HUB_REPOS = {  # part -> (repo, subfolder) on the test server
    "realvisxl": ("test-org/RealVisXL_V3.0", ""),
    "photomaker": ("test-org/PhotoMaker", ""),
    "faceme-controlnet": ("test-org/FaceMe", "controlnet"),
    "faceme-mix": ("test-org/FaceMe", "mix"),
}
ZIP_PARTS = {"antelopev2": "nested", "buffalo_l": "flat"}
SERVER_TIME_LIMIT_S = 120


# --- a small pack in the real layout (until/besides the engine's tiny pack) -----------------------------

def _safetensors_bytes(n_values: int, seed: int) -> bytes:
    header = json.dumps({"w": {"dtype": "F32", "shape": [n_values], "data_offsets": [0, 4 * n_values]}}).encode()
    header += b" " * (-len(header) % 8)
    values = struct.pack(f"<{n_values}f", *[(seed * 31 + i) % 97 / 97 for i in range(n_values)])
    return struct.pack("<Q", len(header)) + header + values


def make_small_pack(root: Path) -> Path:
    """Every part of the layout with small files that pass the layout's checks (first alternative of
    each required file, plus the tokenizer configs the manifest lists)."""
    for name, part in PARTS.items():
        base = root / part.folder
        for i, spec in enumerate(part.files):
            path = base / spec[0]
            path.parent.mkdir(parents=True, exist_ok=True)
            seed = zlib.crc32(f"{name}/{spec[0]}".encode()) % 1000
            if path.suffix == ".json":
                path.write_text(json.dumps({"part": name, "file": spec[0]}))
            elif path.suffix == ".safetensors":
                path.write_bytes(_safetensors_bytes(2000 + 500 * i, seed))
            else:
                path.write_bytes(bytes((seed + j) % 251 for j in range(3000 + 700 * i)))
    for tok in ("tokenizer", "tokenizer_2"):
        for extra in ("special_tokens_map.json", "tokenizer_config.json"):
            (root / PARTS["realvisxl"].folder / tok / extra).write_text(json.dumps({"tok": tok}))
    return root


# --- the server ----------------------------------------------------------------------------------------------

@dataclass
class Request:
    method: str
    path: str
    range: str | None
    status: int
    body_bytes: int


@dataclass
class PackServer:
    hub: dict[tuple[str, str], bytes] = field(default_factory=dict)  # (repo, path) -> bytes
    urls: dict[str, bytes] = field(default_factory=dict)  # url path -> bytes
    requests: list[Request] = field(default_factory=list)
    #: url path -> byte count: the next GET of it sends that many body bytes, then drops the connection
    drop_after: dict[str, int] = field(default_factory=dict)
    #: url path -> bytes served instead of the real ones (same length: only the hash can tell)
    corrupt: dict[str, bytes] = field(default_factory=dict)
    base_url: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def hub_path(self, repo: str, path: str) -> str:
        return f"/{repo}/resolve/main/{path}"

    def bytes_sent(self, url_path: str) -> int:
        return sum(r.body_bytes for r in self.requests if r.path == url_path and r.method == "GET")

    def gets(self, url_path: str) -> list[Request]:
        return [r for r in self.requests if r.path == url_path and r.method == "GET"]

    def content_for(self, url_path: str) -> tuple[bytes | None, dict[str, str]]:
        if url_path in self.urls:
            return self.corrupt.get(url_path, self.urls[url_path]), {}
        parts = url_path.lstrip("/").split("/")
        if len(parts) >= 5 and parts[2] == "resolve":
            repo, path = f"{parts[0]}/{parts[1]}", "/".join(parts[4:])
            data = self.hub.get((repo, path))
            headers = {"X-Repo-Commit": COMMIT}
            if data is None:
                headers["X-Error-Code"] = "EntryNotFound"
                return None, headers
            return self.corrupt.get(url_path, data), headers
        return None, {}


def _make_handler(state: PackServer):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        timeout = 20

        def log_message(self, *args):  # keep test output clean
            pass

        def _serve(self, send_body: bool) -> None:
            url_path = self.path.split("?", 1)[0]
            data, extra = state.content_for(url_path)
            rng = self.headers.get("Range")
            if data is None:
                self.send_response(404)
                for k, v in extra.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", "0")
                self.end_headers()
                state.requests.append(Request(self.command, url_path, rng, 404, 0))
                return
            etag = '"' + hashlib.sha256(data).hexdigest() + '"'
            start, status = 0, 200
            if rng and rng.startswith("bytes=") and (self.headers.get("If-Range") in (None, etag)):
                start = int(rng[6:].split("-", 1)[0])
                status = 206 if start < len(data) else 416
            if status == 416:
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                state.requests.append(Request(self.command, url_path, rng, 416, 0))
                return
            body = data[start:]
            self.send_response(status)
            for k, v in extra.items():
                self.send_header(k, v)
            self.send_header("ETag", etag)
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(body)))
            if status == 206:
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            self.end_headers()
            record = Request(self.command, url_path, rng, status, 0)
            state.requests.append(record)  # in arrival order, before a client could retry
            if send_body:
                with state.lock:
                    drop = state.drop_after.pop(url_path, None)
                limit = len(body) if drop is None else min(drop, len(body))
                record.body_bytes = limit
                self.wfile.write(body[:limit])
                self.wfile.flush()
                if drop is not None:
                    self.close_connection = True
                    self.connection.shutdown(2)

        def do_HEAD(self):
            self._serve(send_body=False)

        def do_GET(self):
            self._serve(send_body=True)

    return Handler


@pytest.fixture
def http_server():
    state = PackServer()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(state))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    watchdog = threading.Timer(SERVER_TIME_LIMIT_S, server.shutdown)
    watchdog.daemon = True
    watchdog.start()
    state.base_url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield state
    finally:
        watchdog.cancel()
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture
def hub_env(tmp_path, monkeypatch, http_server):
    """huggingface_hub pointed at the test server, with its cache in tmp."""
    monkeypatch.setenv("HF_ENDPOINT", http_server.base_url)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    return tmp_path / "hf-cache"


def _zip_bytes(folder: Path, name: str, layout: str) -> bytes:
    """A zip of the part folder: 'nested' puts files in NAME/NAME/ like the official antelopev2.zip.
    An extra model the engine does not use is added, as in the real packs."""
    buf = io.BytesIO()
    prefix = f"{name}/{name}/" if layout == "nested" else ""
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        if layout == "nested":
            zf.writestr(f"{name}/", b"")
            zf.writestr(f"{name}/{name}/", b"")
        for path in sorted(folder.rglob("*")):
            if path.is_file() and not path.name.startswith("."):
                zf.write(path, prefix + path.relative_to(folder).as_posix())
        zf.writestr(prefix + "1k3d68.onnx", bytes(range(256)) * 12000)  # ~3 MB, several download chunks
    return buf.getvalue()


def serve_pack(state: PackServer, pack: Path, with_hashes: bool = True) -> dict:
    """Put a pack folder on the server; returns a manifest (dict) pointing at it."""
    real = load_manifest().data
    manifest = {"format": 1, "parts": {}}
    for name, part in PARTS.items():
        folder = pack / part.folder
        if not folder.is_dir():
            continue
        entry = {"required": part.required_for_restoration, "license": real["parts"][name]["license"]}
        files = [p for p in sorted(folder.rglob("*")) if p.is_file() and not p.name.startswith(".")]
        if name in HUB_REPOS:
            repo, sub = HUB_REPOS[name]
            entry["source"] = {"kind": "hub", "repo": repo, "revision": "main", "subfolder": sub}
            for p in files:
                rel = p.relative_to(folder).as_posix()
                state.hub[(repo, f"{sub}/{rel}" if sub else rel)] = p.read_bytes()
        elif name not in ZIP_PARTS:  # a part that is one file at a URL (the repair models: engine/repair)
            (only,) = files
            url_path = f"/releases/download/v1/{only.name}"
            state.urls[url_path] = only.read_bytes()
            entry["source"] = {"kind": "url", "url": state.base_url + url_path, "size": only.stat().st_size,
                               "sha256": hashlib.sha256(only.read_bytes()).hexdigest() if with_hashes else None}
        else:
            data = _zip_bytes(folder, name, ZIP_PARTS[name])
            url_path = f"/releases/download/v0.7/{name}.zip"
            state.urls[url_path] = data
            entry["source"] = {"kind": "zip", "url": state.base_url + url_path, "size": len(data),
                               "sha256": hashlib.sha256(data).hexdigest() if with_hashes else None}
        entry["files"] = [{"path": p.relative_to(folder).as_posix(), "size": p.stat().st_size,
                           "sha256": hashlib.sha256(p.read_bytes()).hexdigest() if with_hashes else None}
                          for p in files]
        manifest["parts"][name] = entry
    return manifest


@dataclass
class ServedPack:
    server: PackServer
    pack: Path
    manifest: dict
    manifest_path: Path
    models: Path
    hf_cache: Path

    def hub_url_path(self, part: str, rel: str) -> str:
        repo, sub = HUB_REPOS[part]
        return f"/{repo}/resolve/main/{sub + '/' if sub else ''}{rel}"


def _served(tmp_path, http_server, hub_env, pack: Path, with_hashes: bool) -> ServedPack:
    manifest = serve_pack(http_server, pack, with_hashes=with_hashes)
    manifest_path = tmp_path / "manifest.json"
    manifest_path.write_text(json.dumps(manifest))
    return ServedPack(http_server, pack, manifest, manifest_path, tmp_path / "models", hub_env)


@pytest.fixture(scope="session")
def small_pack(tmp_path_factory) -> Path:
    return make_small_pack(tmp_path_factory.mktemp("small-pack"))


@pytest.fixture
def served(tmp_path, http_server, hub_env, small_pack) -> ServedPack:
    """The small pack on the test server, with a manifest that knows every SHA-256."""
    return _served(tmp_path, http_server, hub_env, small_pack, with_hashes=True)


@pytest.fixture
def served_unhashed(tmp_path, http_server, hub_env, small_pack) -> ServedPack:
    """The same, with a manifest that knows no SHA-256 (as the real one today)."""
    return _served(tmp_path, http_server, hub_env, small_pack, with_hashes=False)


@pytest.fixture
def copy_of(tmp_path):
    def copy(src: Path, name: str) -> Path:
        dst = tmp_path / name
        shutil.copytree(src, dst)
        return dst
    return copy


@pytest.fixture
def put_on_server(http_server, hub_env):
    """serve_pack bound to this test's server (test modules cannot import this conftest)."""
    return lambda pack, with_hashes=True: serve_pack(http_server, pack, with_hashes=with_hashes)
