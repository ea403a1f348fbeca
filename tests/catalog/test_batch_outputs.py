"""A batch never overwrites, doubles or mislabels an output (issue 18, findings 1–4 and 7–9), with real
processes: `engine.testing.batch_runner` runs the product's own job table, claims, leases and writes
with a light stand-in for the denoising, and stops itself at a chosen moment (SIGSTOP, a hang, a sleep
after the rename) so that each race happens on purpose, not by timing luck."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from catalog_testkit import add_photos, lfw_numbers
from sqlalchemy import func, select

from engine.catalog.db import open_catalog
from engine.catalog.models import BatchItem, BatchJob, Restoration, RestorationFace

ROOT = Path(__file__).resolve().parents[2]
CLI = "import sys; from engine.cli import main; sys.exit(main())"


def _env() -> dict:
    return dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")


def _runner(db: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "engine.testing.batch_runner", str(db), *map(str, args)],
                            cwd=ROOT, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(proc: subprocess.Popen, seconds: float = 180) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=seconds)
    return proc.returncode, out, err


def _run(db: Path, *args: str) -> tuple[int, str, str]:
    return _finish(_runner(db, *args))


def _wait_for_file(path: Path, proc: subprocess.Popen, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        if proc.poll() is not None:
            raise AssertionError(f"the runner ended before {path.name}: {proc.stderr.read()[-3000:]}")
        assert time.monotonic() < deadline, f"timed out waiting for {path}"
        time.sleep(0.05)


def _end(proc: subprocess.Popen) -> None:
    """Whatever a failed test left: wake the runner (it may be suspended) and kill it."""
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGCONT)
        proc.kill()
        proc.wait()


def _wait_stopped(pid: int, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with open(f"/proc/{pid}/stat", "rb") as f:
            if f.read().rsplit(b")", 1)[1].split()[0] == b"T":
                return
        time.sleep(0.02)
    raise AssertionError(f"process {pid} did not stop")


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _items(db: Path) -> list[tuple]:
    catalog = open_catalog(db)
    try:
        with catalog.session() as session:
            return session.execute(select(BatchItem.job_id, BatchJob.out_dir, BatchItem.relative_output,
                                          BatchItem.status, BatchItem.output_sha256, BatchItem.reason)
                                   .join(BatchJob, BatchJob.id == BatchItem.job_id).order_by(BatchItem.id)).all()
    finally:
        catalog.close()


def _restorations(db: Path) -> dict[int, int]:
    catalog = open_catalog(db)
    try:
        with catalog.session() as session:
            return dict(session.execute(select(Restoration.photo_id, func.count(Restoration.id))
                                        .group_by(Restoration.photo_id)).all())
    finally:
        catalog.close()


def _album(shared: Path, folder: Path, identity: str = "Dick_Cheney", count: int = 2) -> list[Path]:
    return add_photos(shared, folder, identity, lfw_numbers(shared, identity)[:count])


def _same_name(shared: Path, folder: Path, identity: str, name: str) -> Path:
    photo = _album(shared, folder, identity, 1)[0]
    return photo.rename(folder / name)


def test_two_jobs_into_one_folder_never_share_a_file(shared, tmp_path):
    """Finding 1: c1/same.jpg (one person) and c2/same.jpg (another) batch-restored into one --out. The second
    job's claim of out/same.jpg is refused before anything is written, naming the other photo and job; the
    first job's file and records stay its own. Then one job over x/Family and y/Family: two outputs, one per
    photo, each the file whose hash was recorded."""
    db, out = tmp_path / "catalog.sqlite3", tmp_path / "out"
    first = _same_name(shared, tmp_path / "c1", "Dick_Cheney", "same.jpg")
    second = _same_name(shared, tmp_path / "c2", "Arnold_Schwarzenegger", "same.jpg")
    code, stdout, err = _run(db, "--roots", first.parent, "--out", out)
    assert code == 0, err
    written = _sha(out / "same.jpg")

    code, stdout, err = _run(db, "--roots", second.parent, "--out", out)
    assert code == 2, (stdout, err)
    assert f"is already the output of {first.resolve()} (batch 1)" in err and "Nothing was started" in err
    assert _sha(out / "same.jpg") == written
    items = _items(db)
    assert [(job, rel, status, sha) for job, _, rel, status, sha, _ in items] == [(1, "same.jpg", "done", written)]

    # one job, two roots with the same folder name: "Family" and "Family (2)"
    x, y = _same_name(shared, tmp_path / "x" / "Family", "Dick_Cheney", "p.jpg"), \
        _same_name(shared, tmp_path / "y" / "Family", "Arnold_Schwarzenegger", "p.jpg")
    out2 = tmp_path / "out2"
    code, stdout, err = _run(db, "--roots", x.parent, y.parent, "--out", out2)
    assert code == 0 and "2 restored" in stdout, (stdout, err)
    rows = [r for r in _items(db) if r[0] == 2]
    assert {rel for _, _, rel, *_ in rows} == {os.path.join("Family", "p.jpg"), os.path.join("Family (2)", "p.jpg")}
    for _, out_dir, rel, status, sha, _ in rows:
        assert status == "done" and _sha(Path(out_dir) / rel) == sha
    assert _sha(out2 / "Family" / "p.jpg") != _sha(out2 / "Family (2)" / "p.jpg")


def test_one_output_folder_spelled_two_ways_is_one_job(shared, tmp_path):
    """Finding 2: --out O and --out Olink (a link to O) while the first runs: the same job (refused, exit 6,
    while its owner lives), never a second job writing the same files."""
    db, out, link = tmp_path / "catalog.sqlite3", tmp_path / "O", tmp_path / "Olink"
    album = tmp_path / "album"
    photos = _album(shared, album, count=3)
    out.mkdir()
    link.symlink_to(out, target_is_directory=True)
    markers = tmp_path / "markers"
    holder = _runner(db, "--roots", album, "--out", out, "--markers", markers, "--suspend-before-write")
    try:
        _wait_for_file(markers / f"before-write-{photos[0].name}", holder)
        _wait_stopped(holder.pid)
        os.kill(holder.pid, signal.SIGCONT)  # alive and well: its lease counts
        code, stdout, err = _run(db, "--roots", album, "--out", link)
        assert code in (0, 6), err
        # the holder suspends itself again at each photo; let it finish
        for photo in photos[1:]:
            _wait_for_file(markers / f"before-write-{photo.name}", holder)
            _wait_stopped(holder.pid)
            os.kill(holder.pid, signal.SIGCONT)
        code_first, _, err_first = _finish(holder)
    finally:
        _end(holder)
    assert code_first == 0, err_first
    assert code == 6 and "is running in process" in err, (code, err)  # the same job, run elsewhere
    catalog = open_catalog(db)
    with catalog.session() as session:
        assert session.scalar(select(func.count(BatchJob.id))) == 1
        assert session.scalar(select(BatchJob.out_dir)) == str(out.resolve())
    catalog.close()
    assert sorted(_restorations(db).values()) == [1, 1, 1]  # 3 photos, 3 restorations
    for _, out_dir, rel, status, sha, _ in _items(db):
        assert status == "done" and _sha(Path(out_dir) / rel) == sha


def test_an_owner_that_lost_its_lease_stops_without_touching_anything(shared, tmp_path):
    """Finding 3: a batch suspended (SIGSTOP) after its denoising, past the lease's stale time; a second
    process takes over and finishes; SIGCONT: the first stops (exit 6) without writing, replacing or
    recording anything — no output overwritten, no photo restored twice, no item flipped to failed."""
    db, out, album, markers = tmp_path / "catalog.sqlite3", tmp_path / "out", tmp_path / "album", tmp_path / "m"
    photos = _album(shared, album, count=2)
    first = _runner(db, "--roots", album, "--out", out, "--markers", markers, "--suspend-before-write",
                    "--stale", "1")
    try:
        _wait_for_file(markers / f"before-write-{photos[0].name}", first)
        _wait_stopped(first.pid)
        time.sleep(1.5)  # its heartbeat is stale now: it is "suspended or hung"
        code, stdout, err = _run(db, "--job", "1", "--stale", "1")
        assert code == 0 and "2 restored" in stdout, (stdout, err)
        assert "which stopped answering" in err  # the takeover says what it found
        outputs = {p: _sha(out / p.name) for p in photos}
        mtimes = {p: (out / p.name).stat().st_mtime_ns for p in photos}
        os.kill(first.pid, signal.SIGCONT)
        code, stdout, err = _finish(first)
    finally:
        _end(first)
    assert code == 6 and "was taken over by another process" in err, (code, err)
    assert {p: _sha(out / p.name) for p in photos} == outputs
    assert {p: (out / p.name).stat().st_mtime_ns for p in photos} == mtimes
    assert sorted(_restorations(db).values()) == [1, 1]
    assert [(status, sha) for _, _, rel, status, sha, _ in _items(db)] == \
        [("done", outputs[p]) for p in photos]
    assert not list(out.rglob("*.faceme-partial"))


def test_files_already_in_the_output_folder_are_never_replaced(shared, tmp_path):
    """Finding 4: an unrelated file with an output's name, and a user's retouched copy of an output: both kept
    byte for byte; the outputs are written beside them ("name (2).jpg") and the run says so."""
    db, out, album = tmp_path / "catalog.sqlite3", tmp_path / "out", tmp_path / "album"
    photos = _album(shared, album, count=2)
    out.mkdir()
    unrelated = out / photos[0].name
    unrelated.write_bytes(b"not a photo of this album, but the user's file")
    code, stdout, err = _run(db, "--roots", album, "--out", out)
    assert code == 0, err
    beside = out / f"{photos[0].stem} (2){photos[0].suffix}"
    assert unrelated.read_bytes() == b"not a photo of this album, but the user's file"
    assert f"kept {unrelated}" in stdout and str(beside) in stdout
    assert [rel for _, _, rel, *_ in _items(db)] == [beside.name, photos[1].name]

    # the user retouches an output; a later batch of the same album into the same folder keeps the retouch
    retouched = out / photos[1].name
    retouched.write_bytes(retouched.read_bytes()[:-10] + b"retouched!")
    retouched_bytes = retouched.read_bytes()
    catalog = open_catalog(db)
    from engine.catalog.jobs import start_or_resume
    from engine.restore.options import RestoreOptions

    second = start_or_resume(catalog, [album], out, RestoreOptions(steps=3), scan_first=False)
    catalog.close()
    code, stdout, err = _run(db, "--job", second)
    assert code == 0, err
    assert retouched.read_bytes() == retouched_bytes
    assert (out / f"{photos[1].stem} (2){photos[1].suffix}").exists()
    assert unrelated.read_bytes() == b"not a photo of this album, but the user's file"


def test_a_hung_owner_goes_stale_and_its_job_is_taken_over(shared, tmp_path):
    """Finding 7: the owner's main thread hangs while its heartbeat thread runs on. Liveness is progress: with
    no progress for the stall time the lease is not renewed, goes stale, and another process takes over."""
    db, out, album, markers = tmp_path / "catalog.sqlite3", tmp_path / "out", tmp_path / "album", tmp_path / "m"
    photos = _album(shared, album, count=1)
    hung = _runner(db, "--roots", album, "--out", out, "--markers", markers, "--hang-before-write",
                   "--stale", "2", "--stall", "1")
    try:
        _wait_for_file(markers / f"before-write-{photos[0].name}", hung)
        deadline, code = time.monotonic() + 60, None
        while time.monotonic() < deadline:
            code, stdout, err = _run(db, "--job", "1", "--stale", "2")
            if code != 6:
                break
            time.sleep(0.5)
        assert hung.poll() is None  # still "running", its heartbeat thread alive
    finally:
        hung.kill()
        hung.wait()
    assert code == 0 and "1 restored" in stdout, (code, stdout, err)
    assert [(status, sha) for _, _, _, status, sha, _ in _items(db)] == [("done", _sha(out / photos[0].name))]


def test_a_kill_between_the_write_and_its_record_keeps_the_faces(shared, tmp_path):
    """Finding 8: SIGKILL after the output's rename, before its commit. The resumed run takes the verified
    file as done *with its per-face records* (recorded with the hash before the write), so its check
    verdicts are not lost."""
    db, out, album, markers = tmp_path / "catalog.sqlite3", tmp_path / "out", tmp_path / "album", tmp_path / "m"
    photos = _album(shared, album, count=2)
    victim = _runner(db, "--roots", album, "--out", out, "--markers", markers, "--sleep-after-rename")
    try:
        _wait_for_file(markers / f"after-rename-{photos[0].name}", victim)
    finally:
        victim.kill()
        victim.wait()
    written = _sha(out / photos[0].name)
    assert [status for *_, status, _, _ in _items(db)] == ["pending", "pending"]  # no commit came
    code, stdout, err = _run(db, "--job", "1")
    assert code == 0 and "1 restored" in stdout and "(1 done before this run" in stdout, (stdout, err)
    assert _sha(out / photos[0].name) == written
    catalog = open_catalog(db)
    with catalog.session() as session:
        faces = session.execute(select(Restoration.output_path, RestorationFace.reason, RestorationFace.seed)
                                .join(RestorationFace, RestorationFace.restoration_id == Restoration.id)
                                .order_by(Restoration.id)).all()
    catalog.close()
    assert faces == [(str(out.resolve() / photos[0].name), "inverted", 7),
                     (str(out.resolve() / photos[1].name), "inverted", 7)]


def test_deleted_or_truncated_outputs_of_a_finished_job_are_noticed_and_restored(shared, tmp_path, run_cli):
    """Finding 9: `faceme jobs list` says which outputs of a finished job are missing or changed; resuming the
    job restores them (a deleted one under its name; a truncated one is kept and restored beside it)."""
    db, out, album = tmp_path / "catalog.sqlite3", tmp_path / "out", tmp_path / "album"
    photos = _album(shared, album, count=3)
    code, stdout, err = _run(db, "--roots", album, "--out", out)
    assert code == 0, err
    (out / photos[0].name).unlink()
    truncated = out / photos[1].name
    truncated.write_bytes(truncated.read_bytes()[:1000])
    listing = subprocess.run([sys.executable, "-c", CLI, "jobs", "list", "--catalog", str(db)], cwd=ROOT,
                             env=_env(), capture_output=True, text=True, timeout=120)
    assert listing.returncode == 0, listing.stderr
    assert "2 outputs missing or changed" in listing.stdout and "faceme jobs resume 1" in listing.stdout
    assert f"{out / photos[0].name}: missing" in listing.stdout
    assert f"{truncated}: changed since it was written" in listing.stdout

    code, stdout, err = _run(db, "--job", "1")
    assert code == 0 and "2 restored" in stdout, (stdout, err)
    assert (out / photos[0].name).exists() and truncated.stat().st_size == 1000
    assert (out / f"{photos[1].stem} (2){photos[1].suffix}").exists()
    for _, out_dir, rel, status, sha, _ in _items(db):
        assert status == "done" and _sha(Path(out_dir) / rel) == sha
    listing = subprocess.run([sys.executable, "-c", CLI, "jobs", "list", "--catalog", str(db)], cwd=ROOT,
                             env=_env(), capture_output=True, text=True, timeout=120)
    assert "missing or changed" not in listing.stdout


@pytest.mark.parametrize("spelling", ["link", "dotdot"])
def test_the_same_album_spelled_another_way_resumes_its_job_and_a_clash_is_refused_while_unfinished(
        shared, tmp_path, spelling):
    """The same album and output folder spelled another way (a link to the album, or with ..) resume the same
    job; another photo of the same name into that folder is refused while the first job is unfinished."""
    from engine.catalog.jobs import start_or_resume
    from engine.catalog.outputs import OutputClaimedError
    from engine.restore.options import RestoreOptions

    album = tmp_path / "album"
    photo = _same_name(shared, album, "Dick_Cheney", "p.jpg")
    (album / "sub").mkdir()
    other = _same_name(shared, tmp_path / "other", "Arnold_Schwarzenegger", "p.jpg")
    catalog = open_catalog(tmp_path / "catalog.sqlite3")
    try:
        first = start_or_resume(catalog, [album], tmp_path / "out", RestoreOptions(), scan_first=True)
        link = tmp_path / "albumlink"
        link.symlink_to(album, target_is_directory=True)
        spelled = link if spelling == "link" else album / "sub" / ".."
        assert start_or_resume(catalog, [spelled], tmp_path / "out", RestoreOptions(), scan_first=False) == first
        with pytest.raises(OutputClaimedError, match=f"is already the output of {photo.resolve()} \\(batch {first}\\)"):
            start_or_resume(catalog, [other.parent], tmp_path / "out", RestoreOptions(), scan_first=True)
        with catalog.session() as session:
            assert session.scalar(select(func.count(BatchJob.id))) == 1  # the refused job was not created
    finally:
        catalog.close()
