"""A failed download says what happened in one plain sentence, how far it got and what to do; each retry
is announced once (issue 19, item 6b). The HTTP client's own words (connection pools, errno) stay in
the log. Tested against a closed port on 127.0.0.1: the connection is refused, as with no network."""

from __future__ import annotations

import json
import logging
import socket
import subprocess
import sys
import time
import types

import pytest

from engine.models import fetch

TECHNICAL = ("HTTPConnectionPool", "HTTPSConnectionPool", "Max retries", "Errno", "NewConnectionError",
             "Traceback", "thrown while requesting", "Retrying in")


def _closed_port() -> int:
    """A port on 127.0.0.1 nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _download(served, *parts):
    return ("models", "download", *parts, "--models", served.models, "--manifest", served.manifest_path,
            "--accept-licenses")


@pytest.fixture
def hub_retries_without_waiting(monkeypatch):
    """huggingface_hub waits 1, 2, 4, 8, 8 s between its retries; the test does not."""
    import huggingface_hub.utils._http as hub_http

    monkeypatch.setattr(hub_http, "time", types.SimpleNamespace(sleep=lambda seconds: None))


def test_an_unreachable_hub_is_one_sentence_with_how_far_it_got(served, run_cli, monkeypatch, caplog,
                                                                 hub_retries_without_waiting):
    # photomaker's file is complete in the HF cache (downloaded, then the part removed): not fetched again
    assert run_cli(*_download(served, "photomaker"))[0] == 0
    assert run_cli("models", "remove", "photomaker", "--models", served.models)[0] == 0
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{_closed_port()}")

    with caplog.at_level(logging.DEBUG):
        code, out, err = run_cli(*_download(served, "photomaker", "faceme-mix"))
    assert code == 1
    assert err.strip().splitlines()[-1] == (
        "faceme: error: could not reach 127.0.0.1 (no network connection?); 1 of 2 files downloaded, "
        "run the same command again to resume")
    assert not [word for word in TECHNICAL if word in err], err

    # huggingface_hub's own retry warnings reach no handler (neither its stderr one nor the root's) ...
    shown = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert not [r for r in shown if r.name.startswith("huggingface_hub")]
    # ... each retry is one warning of ours, once; the technical words are in the debug log
    retries = [r.getMessage() for r in shown if r.name == "engine.models.fetch"]
    assert retries and len(retries) == len(set(retries)), retries
    assert "mix.safetensors: could not reach 127.0.0.1; trying again in 1 s (retry 1 of 5)" in retries
    assert not [m for m in retries for word in TECHNICAL if word in m]
    assert any("thrown while requesting" in r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG)


def test_a_refused_zip_download_in_a_real_process_prints_each_retry_once(served, tmp_path):
    manifest = served.manifest
    manifest["parts"]["antelopev2"]["source"]["url"] = f"http://127.0.0.1:{_closed_port()}/antelopev2.zip"
    served.manifest_path.write_text(json.dumps(manifest))
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-c", "import sys; from engine.cli import main; sys.exit(main())",
                           *map(str, _download(served, "antelopev2"))],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stderr
    lines = done.stderr.strip().splitlines()
    assert lines[-1] == ("faceme: error: could not reach 127.0.0.1 (no network connection?); 0 of 1 file "
                         "downloaded, run the same command again to resume")
    retries = [line for line in lines if "trying again" in line]
    assert retries == [f"WARNING engine.models.fetch: could not download antelopev2.zip from 127.0.0.1 "
                       f"(connection refused); trying again (retry {n} of 3)" for n in (1, 2, 3)], done.stderr
    assert not [word for word in TECHNICAL if word in done.stderr], done.stderr
    assert time.monotonic() - started < 60


def test_network_errors_in_plain_words():
    import requests

    assert fetch.host_of("https://huggingface.co/org/repo/resolve/main/x") == "huggingface.co"
    refused = requests.ConnectionError("HTTPConnectionPool(host='x', port=1): Max retries exceeded "
                                       "(Caused by NewConnectionError('[Errno 111] Connection refused'))")
    assert fetch._what_went_wrong(refused) == "connection refused"
    assert fetch._what_went_wrong(requests.ReadTimeout("read timed out")) == "no answer in time"
    assert fetch._what_went_wrong(requests.exceptions.ChunkedEncodingError("eof")) == "the connection dropped"
    assert fetch._what_went_wrong(fetch._Truncated("closed at byte 5 of 9")) == "the connection dropped"
