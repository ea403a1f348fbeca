from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from catalog_testkit import analyzer, catalog  # noqa: E402,F401 (shared fixtures)




def _postgres_bin() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"))
    return found[-1].parent if found else None


@pytest.fixture(scope="session")
def postgres_url(tmp_path_factory):
    """A throw-away PostgreSQL server on a unix socket (Debian's `postgresql` package)."""
    bindir = _postgres_bin()
    if bindir is None:
        pytest.skip("PostgreSQL server binaries not installed (apt-get install postgresql; .ci/run does it)")
    import tempfile

    # not under pytest's tmp folder: that is private to root, and the server runs as another user
    base = Path(tempfile.mkdtemp(prefix="faceme-pg-"))
    data, sock = base / "data", base / "sock"
    sock.mkdir()
    run_as: list[str] = []
    if os.geteuid() == 0:  # initdb refuses to run as root
        user = "nobody"
        runner = shutil.which("runuser") or shutil.which("su")
        if runner is None:
            pytest.skip("running as root and neither runuser nor su is available to drop privileges")
        os.chmod(base, 0o777)
        os.chmod(sock, 0o777)
        run_as = [runner, "-u", user, "--"] if runner.endswith("runuser") else None
        if run_as is None:
            pytest.skip("running as root without runuser")
    env = dict(os.environ, LC_ALL="C")
    try:
        subprocess.run([*run_as, str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "faceme", "-E", "UTF8", "--locale=C",
                        "--no-sync"], check=True, capture_output=True, env=env, timeout=120)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        pytest.skip(f"initdb failed: {getattr(exc, 'stderr', b'')!r}")
    server = subprocess.Popen([*run_as, str(bindir / "postgres"), "-D", str(data), "-k", str(sock),
                               "-c", "listen_addresses=", "-c", "fsync=off", "-p", "54329"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    deadline = time.monotonic() + 30
    while not (sock / ".s.PGSQL.54329").exists():
        if server.poll() is not None or time.monotonic() > deadline:
            server.kill()
            shutil.rmtree(base, ignore_errors=True)
            pytest.skip(f"postgres did not start: {server.stderr.read()[-500:]!r}")
        time.sleep(0.1)
    subprocess.run([*run_as, str(bindir / "createdb"), "-h", str(sock), "-p", "54329", "-U", "faceme", "faceme"],
                   check=True, capture_output=True, env=env)
    yield f"postgresql+psycopg://faceme@/faceme?host={sock}&port=54329"
    server.terminate()
    try:
        server.wait(timeout=20)
    except subprocess.TimeoutExpired:
        server.kill()
    shutil.rmtree(base, ignore_errors=True)
