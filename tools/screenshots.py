"""Screenshots of each main view of FaceMe Studio, for docs/screenshots/ and the README.

    python tools/screenshots.py [--out docs/screenshots] [--shared ../shared] [--tiny-pack DIR]

Starts the app offscreen (QT_QPA_PLATFORM=offscreen; Qt renders real pixels) on a sample album made
only of photos whose SOURCES.md states MIT or Boost (deepface_ids, and group_photos' deepface_,
dlib_ and insightface_ images), scans it through the Library page, names a few people, opens a group
photo in Restore, runs a small batch with a tiny model pack (random weights: the Queue shows real
progress, but its pictures would be noise, so the Restore view is shot before restoring), and saves
one PNG per view. `restore_check` is the Restore page's before/after view after restoring with the
tiny pack, for its identity badges: the restored faces and the badges' figures come from that
random-weight test model (the check itself is the real dlib recogniser). `--only NAME,…` saves only
those views (and skips the batch unless `queue` is one). Everything it writes apart from the screenshots goes to a temporary folder.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

#: MIT (deepface) photos of three people, and MIT / Boost group photos (see each folder's SOURCES.md)
ALBUM = {
    "deepface_ids/images": ("person_01/img5", "person_01/img11", "person_01/img6", "person_03/img51",
                            "person_03/img50", "person_03/img8", "person_05/img62", "person_05/img16",
                            "person_05/img17", "person_11/img25", "person_11/img24"),
    "group_photos/images": ("deepface_couple", "insightface_t1", "dlib_2008_001322", "dlib_2008_002079"),
}
NAMES = ("Alex", "Sam", "Robin", "Jordan")
SIZE = (1440, 900)

log = logging.getLogger("screenshots")


def build_album(shared: Path, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for sub, names in ALBUM.items():
        for name in names:
            source = shared / "data" / sub / f"{name}.jpg"
            if source.exists():
                # portraits first and group photos after them, as the batch (by name) restores them
                target = name.replace("/", "_") if sub.startswith("deepface_ids") else f"together_{name}"
                (folder / f"{target}.jpg").symlink_to(source)
    return folder


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    parser.add_argument("--tiny-pack", type=Path, help="a tiny model pack (built in the temporary folder if absent)")
    parser.add_argument("--only", default="", metavar="NAME,…",
                        help="save only these views (models, people, library, references, restore, restore_check, "
                             "queue, settings)")
    args = parser.parse_args(argv)
    wanted = {n.strip() for n in args.only.split(",") if n.strip()}
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    logging.basicConfig(level=logging.INFO, format="%(relativeCreated)7.0f %(name)s: %(message)s")

    tmp = Path(tempfile.mkdtemp(prefix="faceme-screens-"))
    os.environ.update(FACEME_CONFIG_DIR=str(tmp / "config"), FACEME_LOG_DIR=str(tmp / "log"),
                      FACEME_CATALOG=str(tmp / "catalog.sqlite3"), FACEME_MODELS=str(tmp / "no-models"))
    pack = args.tiny_pack
    if pack is None or not pack.exists():
        from engine.testing.tiny_pack import write_tiny_pack

        pack = tmp / "tiny-pack"
        write_tiny_pack(pack, args.shared / "models" / "insightface_scrfd" / "det_500m.onnx")

    from PySide6.QtWidgets import QApplication

    from app import theme
    from app.__main__ import build_window
    from app.logs import setup_logging

    app = QApplication([])
    app.setApplicationName("FaceMe Studio")
    theme.apply(app)
    window = build_window(tmp / "config" / "studio.json", setup_logging(tmp / "log"))
    window.resize(*SIZE)
    window.show()
    context = window.context
    args.out.mkdir(parents=True, exist_ok=True)

    def settle(timeout: float = 600) -> None:
        deadline = time.monotonic() + timeout
        quiet = None
        while time.monotonic() < deadline:
            app.processEvents()
            time.sleep(0.02)
            if context.runner.is_busy():
                quiet = None
            elif quiet is None:
                quiet = time.monotonic()
            elif time.monotonic() - quiet > 0.4:
                return
        raise SystemExit("the app did not become idle")

    def shoot(name: str) -> None:
        if wanted and name not in wanted:
            return
        for _ in range(30):
            app.processEvents()
            time.sleep(0.01)
        path = args.out / f"{name}.png"
        window.grab().save(str(path))
        log.info("saved %s", path)

    settle()
    # Models first, as on a first run: nothing installed yet
    window.show_page("models")
    settle()
    shoot("models")

    album = build_album(args.shared, tmp / "Pictures" / "Family album")
    window.handle_dropped_paths([album])
    settle()
    window.show_page("people")
    settle()
    from app import people_actions

    people = [c for c in window.people.cards if not c.is_unknown]
    catalog = context.catalog()
    for card, name in zip(people, NAMES):
        people_actions.rename(catalog, card.id, name)
    context.catalog_changed.emit()
    settle()
    if window.people.cards:
        window.people.select_people([window.people.cards[0].id])
    settle()
    shoot("people")

    window.show_page("library")
    window.library.albums.setCurrentRow(1)
    settle()
    shoot("library")

    window.show_page("references")
    settle()
    shoot("references")

    # Restore, before restoring: faces found and matched with the album's own (dlib) analysis; the tiny
    # pack's random recogniser would match everyone to everyone
    window.handle_dropped_paths([args.shared / "data" / "group_photos" / "images" / "deepface_couple.jpg"])
    settle()
    shoot("restore")

    context.preferences.models_dir = str(pack)
    context.preferences.steps = 2
    context.preferences.output_dir = str(tmp / "Pictures" / "Restored")
    context.save_preferences()
    if not wanted or "restore_check" in wanted:
        # restored with the tiny pack: the before/after view with a badge per face (does it still look
        # like the person?); the faces and the figures come from its random weights
        # the album's copy of the photo: its faces and people come from the album (the tiny pack's random
        # recogniser would match everyone to everyone)
        window.handle_dropped_paths([album / "together_deepface_couple.jpg"])
        settle()
        page = window.restore
        page.steps.setValue(2)
        page.seed.setValue(7)
        page.start_restore()
        settle()
        page.compare.set_divider(0.5)
        shoot("restore_check")
    if wanted and "queue" not in wanted and "settings" not in wanted:
        window.close()
        return 0
    # the Queue while a batch runs: per-photo and overall progress, the time left
    window.show_page("queue")
    settle()
    window.queue.new_batch([str(album)], tmp / "Pictures" / "Family album (restored)")
    deadline = time.monotonic() + 1800
    while time.monotonic() < deadline:
        app.processEvents()
        time.sleep(0.02)
        job = window.queue.job(window.queue.running_id)
        if job is not None and sum(job.counts().get(s, 0) for s in ("done", "skipped", "failed")) >= 4:
            break
    shoot("queue")

    window.show_page("settings")
    for _ in range(50):
        app.processEvents()
        time.sleep(0.01)
    shoot("settings")
    window.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
