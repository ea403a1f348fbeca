"""Fetching bytes: hub files through huggingface_hub, plain URLs with HTTP Range resume.

Nothing here decides what to fetch or where it ends up (that is `install.py`); these functions get one
file onto disk, report bytes through a `ByteMeter`, and stop when `cancel()` says so.

* Hub files go through `huggingface_hub.hf_hub_download`, so `HF_ENDPOINT` (read when the call is
  made), the user's token and the user's HF cache (`HF_HUB_CACHE` / `HF_HOME`) are honoured, and a
  file already in the cache is not fetched again. Within one call a connection dropped mid-file is
  resumed with a Range request by huggingface_hub itself; a file interrupted by a cancel or a crash is
  fetched again from its start next time (huggingface_hub >= 1.0 keeps no partial files), while the
  files that were complete stay in the cache. Xet transfers are switched off for these calls (plain
  HTTP, the path tested here) unless FACEME_HF_XET=1.
* Plain URLs (the InsightFace zips) are written to `NAME.part` next to the destination with a small
  `NAME.part.json` (URL, ETag); a later call resumes with `Range` + `If-Range`, and a connection dropped
  mid-file is resumed in the same call. A server that ignores Range restarts the file cleanly.

A failure reaches the user as one plain sentence naming the server ("could not reach huggingface.co (no
network connection?)"); the HTTP client's own words (connection pools, errno, URLs) go to the log only.
Each retry is announced once, by a warning of this module: huggingface_hub's own retry warnings (two
per retry, printed by its own stderr handler and again through the root logger) are kept out of sight.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import logging
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from engine.errors import CancelledError, DownloadError
from engine.progress import CancelCheck, ProgressCallback, check_cancelled, report

log = logging.getLogger(__name__)

#: network read size: a dropped connection loses at most one partial chunk, which is fetched again
_CHUNK = 64 * 1024
USER_AGENT = "faceme-studio (model pack downloader)"


class ServerUnreachable(DownloadError):
    """The server could not be reached, did not answer, or the connection kept dropping. The files
    complete so far are kept, so the same download run again later resumes."""


def host_of(url: str) -> str:
    """The server's name in a URL ("huggingface.co"), the words a person recognises."""
    return urlsplit(url).hostname or url


def file_of(url: str) -> str:
    """The file's name in a URL ("antelopev2.zip")."""
    return urlsplit(url).path.rsplit("/", 1)[-1] or url


def _network_errors() -> tuple[type[BaseException], ...]:
    """The network-level errors of the HTTP clients in use: huggingface_hub >= 1.0 uses httpx (in some
    builds packaged as httpx2), older versions and the zip downloader use requests."""
    found: list[type[BaseException]] = [ConnectionError, TimeoutError]
    for module, name in (("httpx2", "TransportError"), ("httpx", "TransportError"),
                         ("requests", "RequestException")):
        try:
            found.append(getattr(importlib.import_module(module), name))
        except (ImportError, AttributeError):
            continue
    return tuple(found)


def _what_went_wrong(exc: BaseException) -> str:
    """A network error in a few plain words (its class and text stay in the log)."""
    name = type(exc).__name__.lower()
    text = str(exc).lower()
    if "timeout" in name or "timed out" in text:
        return "no answer in time"
    if (isinstance(exc, _Truncated) or any(w in name for w in ("chunked", "read", "protocol", "incomplete"))
            or any(w in text for w in ("reset by peer", "broken pipe", "connection aborted"))):
        return "the connection dropped"
    if "refused" in text:
        return "connection refused"
    if any(w in text for w in ("name or service not known", "nodename nor servname", "getaddrinfo",
                               "name resolution")):
        return "the name was not found"
    return "no connection"


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def _human_time(seconds: float) -> str:
    seconds = int(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    if seconds >= 60:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds}s"


class ByteMeter:
    """Turns byte counts from several files into progress(done, total, message) with rate and ETA."""

    def __init__(self, progress: ProgressCallback | None, total: int, cancel: CancelCheck | None = None,
                 interval: float = 0.1):
        self.progress = progress
        self.total = max(int(total), 0)
        self.cancel = cancel
        self.interval = interval
        self.done = 0
        self.fetched = 0  # bytes that really came over the network in this run
        self.label = ""
        self._start = time.monotonic()
        self._last = 0.0

    def start(self, label: str) -> None:
        self.label = label
        self.emit(force=True)

    def add(self, n: int, fetched: bool = True) -> None:
        self.done += n
        if fetched:
            self.fetched += n
        self.emit()
        check_cancelled(self.cancel, "download")

    def message(self) -> str:
        elapsed = max(time.monotonic() - self._start, 1e-6)
        rate = self.fetched / elapsed
        text = f"{self.label}  {human_bytes(rate)}/s"
        if rate > 0 and self.total > self.done:
            text += f"  ETA {_human_time((self.total - self.done) / rate)}"
        return text

    def emit(self, force: bool = False) -> None:
        now = time.monotonic()
        if self.progress is None or (not force and now - self._last < self.interval):
            return
        self._last = now
        self.total = max(self.total, self.done)
        report(self.progress, self.done, self.total, self.message())


# --- the hub ------------------------------------------------------------------------------------------

class NotOnServer(Exception):
    """The server answered that this file does not exist (so a fallback name may be tried)."""


@dataclass(frozen=True)
class HubFile:
    pointer: Path  # the path huggingface_hub returned (a snapshot entry, usually a symlink)
    blob: Path  # the real file behind it
    commit: str


def _progress_bar_class(meter: ByteMeter):
    """A tqdm stand-in for huggingface_hub: forwards bytes written to the meter (which also cancels).

    It has `update_transfer`, so huggingface_hub's Xet reporter (if Xet is used) routes both of its byte
    counts into one bar; only `update` (bytes written to disk) is counted."""

    class _MeterBar:
        def __init__(self, *args, initial: int = 0, total: int | None = None, **kwargs):
            self.n = initial
            self.total = total
            if initial:
                meter.add(initial, fetched=False)

        def update(self, n: int | float = 1) -> None:
            self.n += int(n)
            meter.add(int(n))

        def update_transfer(self, n: int | float = 1) -> None:
            pass  # network bytes of the same download: already counted by update()

        @property
        def format_dict(self) -> dict:
            return {"n": self.n, "total": self.total, "rate": None}

        def set_postfix_str(self, *args, **kwargs) -> None:
            pass

        set_transfer_postfix_str = set_description = set_postfix_str

        def refresh(self, *args, **kwargs) -> None:
            pass

        def close(self) -> None:
            pass

        def __enter__(self):
            return self

        def __exit__(self, *exc) -> bool:
            return False

    return _MeterBar


@contextlib.contextmanager
def _plain_http_unless_xet_wanted():
    """Download hub files over plain HTTP (Range resume, progress and cancel as tested here) unless the
    user opts into huggingface_hub's Xet transfer with FACEME_HF_XET=1 (faster; its cancellation
    happens between files)."""
    from huggingface_hub import constants

    if os.environ.get("FACEME_HF_XET") == "1":
        yield
        return
    saved = constants.HF_HUB_DISABLE_XET
    constants.HF_HUB_DISABLE_XET = True
    try:
        yield
    finally:
        constants.HF_HUB_DISABLE_XET = saved


class _HubRetriesInPlainWords(logging.Filter):
    """On huggingface_hub's HTTP logger: its retry warnings ("'[Errno 111] Connection refused' thrown while
    requesting HEAD https://…", then "Retrying in 1s [Retry 1/5].") become one warning of ours per retry;
    its wording goes to the debug log."""

    _RETRY = re.compile(r"(?:Retrying in|Waiting) (?P<wait>[\d.]+)s.*\[Retry (?P<n>\d+)/(?P<of>\d+)\]")

    def __init__(self, host: str, name: str):
        super().__init__()
        self.host = host
        self.name = name

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        log.debug("huggingface_hub: %s", text)
        retry = self._RETRY.search(text)
        if retry:
            log.warning("%s: could not reach %s; trying again in %.0f s (retry %s of %s)", self.name, self.host,
                        float(retry["wait"]), retry["n"], retry["of"])
        return False  # neither its own stderr handler nor the root logger's prints the original


@contextlib.contextmanager
def _hub_retries_in_plain_words(host: str, filename: str):
    hub_http = logging.getLogger("huggingface_hub.utils._http")
    plain = _HubRetriesInPlainWords(host, filename.rsplit("/", 1)[-1])
    hub_http.addFilter(plain)
    try:
        yield
    finally:
        hub_http.removeFilter(plain)


def hub_cache_dir() -> str | None:
    """HF_HUB_CACHE as it is now (huggingface_hub reads it once, at import)."""
    return os.environ.get("HF_HUB_CACHE") or None


def hub_endpoint() -> str | None:
    return (os.environ.get("HF_ENDPOINT") or "").rstrip("/") or None


def cached_hub_file(repo: str, filename: str, revision: str, cache_dir: str | None = None) -> Path | None:
    """The file in the local HF cache, if it is there (no network)."""
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(repo, filename, cache_dir=cache_dir or hub_cache_dir(), revision=revision)
    return Path(found) if isinstance(found, str) else None


def fetch_hub_file(repo: str, filename: str, revision: str, meter: ByteMeter, *, cache_dir: str | None = None,
                   endpoint: str | None = None) -> HubFile:
    """Download one file of a hub repo into the HF cache (or find it there); returns where it is."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub import errors as hf_errors
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    # huggingface_hub < 1.0 names the "not on the server" error EntryNotFoundError
    remote_not_found = getattr(hf_errors, "RemoteEntryNotFoundError", hf_errors.EntryNotFoundError)

    endpoint = endpoint or hub_endpoint()
    host = host_of(endpoint or _default_hub_endpoint())
    try:
        with _plain_http_unless_xet_wanted(), _hub_retries_in_plain_words(host, filename):
            pointer = hf_hub_download(repo, filename, revision=revision, cache_dir=cache_dir or hub_cache_dir(),
                                      endpoint=endpoint, tqdm_class=_progress_bar_class(meter))
    except CancelledError:
        raise
    except LocalEntryNotFoundError as exc:  # no connection and not in the cache (checked first: in old
        # huggingface_hub versions it is a subclass of the "not on the server" error)
        log.info("%s/%s: huggingface_hub could not reach %s", repo, filename, host, exc_info=exc)
        raise ServerUnreachable(_unreachable_hub(host, exc)) from exc
    except remote_not_found as exc:
        raise NotOnServer(f"{repo}/{filename}") from exc
    except HfHubHTTPError as exc:
        log.info("%s/%s: %s refused it", repo, filename, host, exc_info=exc)
        raise DownloadError(f"{host} refused {repo}/{filename} ({_status_of(exc)})") from exc
    except _network_errors() as exc:
        log.info("%s/%s: the download from %s failed", repo, filename, host, exc_info=exc)
        raise ServerUnreachable(f"could not download {filename} from {host} ({_what_went_wrong(exc)})") from exc
    except OSError as exc:
        raise DownloadError(f"download of {repo}/{filename} failed: {exc}") from exc
    except Exception as exc:  # huggingface_hub's other errors surface with their own types
        raise DownloadError(f"download of {repo}/{filename} failed: {exc.__class__.__name__}: {exc}") from exc
    pointer_path = Path(pointer)
    parts = pointer_path.parts
    commit = parts[parts.index("snapshots") + 1] if "snapshots" in parts else revision
    return HubFile(pointer_path, Path(os.path.realpath(pointer_path)), commit)


def _default_hub_endpoint() -> str:
    from huggingface_hub import constants

    return constants.ENDPOINT


def _status_of(exc: BaseException) -> str:
    """ "HTTP 503", or "no answer" when the error carries no response."""
    status = getattr(getattr(exc, "response", None), "status_code", None)
    return f"HTTP {status}" if status else "no answer"


def _unreachable_hub(host: str, exc: BaseException) -> str:
    """huggingface_hub says "not found locally" both when the network is down and when the server answered
    errors to every retry: which one it was is in the error it chained."""
    cause = exc.__cause__
    if getattr(getattr(cause, "response", None), "status_code", None):
        return f"{host} did not answer properly ({_status_of(cause)}; it may be down for a while)"
    return f"could not reach {host} (no network connection?)"


def forget_hub_file(found: HubFile) -> None:
    """Remove a bad file from the HF cache so that the next attempt fetches it again."""
    for path in (found.pointer, found.blob):
        try:
            path.unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:
            log.warning("could not remove %s from the HF cache: %s", path, exc)


# --- plain URLs ------------------------------------------------------------------------------------------

def download_url(url: str, dest: Path, meter: ByteMeter, *, expected_size: int | None = None,
                 attempts: int = 4, timeout: float = 30.0) -> Path:
    """Download `url` to `dest`, resuming a `dest.part` left by an earlier call. Returns `dest`."""
    import requests

    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_name(dest.name + ".part")
    meta_path = dest.with_name(dest.name + ".part.json")
    meta = _read_meta(meta_path)
    if partial.exists() and meta.get("url") != url:
        partial.unlink()
        meta = {}
    have = partial.stat().st_size if partial.exists() else 0
    if have:
        meter.add(have, fetched=False)
        log.info("resuming %s at byte %d", url, have)
    session = requests.Session()
    session.headers["User-Agent"] = USER_AGENT
    total: int | None = expected_size
    last_error: Exception | None = None
    for attempt in range(attempts):
        headers = {"Accept-Encoding": "identity"}
        if have:
            headers["Range"] = f"bytes={have}-"
            if meta.get("etag"):
                headers["If-Range"] = meta["etag"]
        try:
            with session.get(url, headers=headers, stream=True, timeout=(10, timeout)) as response:
                if response.status_code == 416 and have and (total is None or have == total):
                    break  # the partial file is already complete
                if response.status_code == 416:
                    partial.unlink(missing_ok=True)
                    meter.add(-have, fetched=False)
                    have = 0
                    continue
                if response.status_code >= 400:
                    raise DownloadError(f"the server answered {response.status_code} {response.reason} for {url}")
                if have and response.status_code == 200:  # Range ignored or the file changed: start over
                    meter.add(-have, fetched=False)
                    have = 0
                elif response.status_code == 206:
                    start = _range_start(response.headers.get("Content-Range"))
                    if start != have:
                        raise DownloadError(f"the server resumed {url} at byte {start}, not {have}")
                length = response.headers.get("Content-Length")
                if length is not None:
                    total = have + int(length)
                meta = {"url": url, "etag": response.headers.get("ETag"), "size": total}
                _write_meta(meta_path, meta)
                with open(partial, "ab" if have else "wb") as out:
                    for chunk in response.iter_content(_CHUNK):
                        if chunk:
                            out.write(chunk)
                            have += len(chunk)
                            meter.add(len(chunk))
            if total is not None and have < total:
                raise _Truncated(f"connection closed at byte {have} of {total}")
            break
        except CancelledError:
            raise  # keep the partial file: the next call resumes it
        except DownloadError:
            raise
        except (requests.RequestException, _Truncated, ConnectionError) as exc:
            last_error = exc
            have = partial.stat().st_size if partial.exists() else 0
            log.debug("download of %s interrupted at byte %d: %r", url, have, exc)
            if attempt + 1 < attempts:  # announced once, and only when there is a next try
                log.warning("could not download %s from %s (%s); trying again (retry %d of %d)", file_of(url),
                            host_of(url), _what_went_wrong(exc), attempt + 1, attempts - 1)
            continue
        except OSError as exc:
            raise DownloadError(f"cannot write {partial}: {exc}") from exc
    else:
        log.info("download of %s failed after %d attempts", url, attempts, exc_info=last_error)
        raise ServerUnreachable(_unreachable_url(url, have, last_error))
    if total is not None and have != total:
        raise ServerUnreachable(f"the download of {file_of(url)} from {host_of(url)} stopped early")
    os.replace(partial, dest)
    meta_path.unlink(missing_ok=True)
    return dest


class _Truncated(Exception):
    pass


def _unreachable_url(url: str, have: int, error: BaseException | None) -> str:
    what = _what_went_wrong(error) if error is not None else "no connection"
    if have == 0 and what in ("connection refused", "the name was not found", "no connection"):
        return f"could not reach {host_of(url)} (no network connection?)"
    return f"the download from {host_of(url)} kept failing ({what})"


def _range_start(content_range: str | None) -> int | None:
    # "bytes START-END/TOTAL"
    if not content_range or not content_range.startswith("bytes "):
        return None
    try:
        return int(content_range[6:].split("-", 1)[0])
    except ValueError:
        return None


def _read_meta(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _write_meta(path: Path, meta: dict) -> None:
    path.write_text(json.dumps(meta), encoding="utf-8")
