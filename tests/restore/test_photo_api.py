"""The library API the batch runner and the GUI call: restore_photo_file / restore_photo."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engine.errors import CancelledError, NoFaceError, UsageError
from engine.restore import PersonReferences, RestoreOptions, restore_photo, restore_photo_file


@pytest.fixture(scope="module")
def tiny_pipeline(tiny_pack):
    """The tiny pack's pipeline, through the CLI's per-process cache (shared with the CLI tests)."""
    from engine.cli.restore import load_pipeline
    from engine.settings import Settings

    settings = Settings()
    return load_pipeline(Path(tiny_pack).resolve(), settings.device, settings.dtype)


def test_no_face_raises_and_writes_nothing(shared, tiny_pipeline, tmp_path):
    out = tmp_path / "out.png"
    with pytest.raises(NoFaceError) as error:
        restore_photo_file(shared / "data/realworld_degraded/whole/bop_old_e.png", out, [], tiny_pipeline)
    assert error.value.exit_code == 3 and "bop_old_e.png" in str(error.value)
    assert list(tmp_path.iterdir()) == []


def test_output_equal_to_input_is_refused_before_any_work(shared, tiny_pipeline):
    photo = shared / "data/group_photos/images/insightface_t1.jpg"
    with pytest.raises(UsageError, match="overwrite the input"):
        restore_photo_file(photo, photo, [], tiny_pipeline)


def test_cancel_stops_and_writes_nothing(shared, tiny_pipeline, tmp_path):
    out = tmp_path / "out.jpg"
    with pytest.raises(CancelledError):
        restore_photo_file(shared / "data/group_photos/images/insightface_t1.jpg", out, [], tiny_pipeline,
                           cancel=lambda: True)
    assert not out.exists()


def test_decisions_without_running_the_model(shared, tiny_pipeline, tmp_path):
    """max_faces=0: every face is decided and reported, none restored; the photo comes back unchanged."""
    from engine.imageio import read_image

    photo = read_image(shared / "data/realworld_degraded/whole/codeformer_whole_02.png")
    events = []
    result = restore_photo(photo, [], tiny_pipeline, options=RestoreOptions(max_faces=0, min_face_size=60),
                           progress=lambda done, total, message: events.append(message))
    assert np.array_equal(result.pixels, photo.pixels)
    assert len(result.faces) == 4 and result.restored_count == 0
    assert all(f.action == "skipped" for f in result.faces)
    assert any("too small" in f.reason for f in result.faces) or all("limit of 0" in f.reason for f in result.faces)
    assert events and events[0] == "finding faces"


def test_options_are_checked():
    with pytest.raises(UsageError):
        RestoreOptions(unmatched="maybe")
    with pytest.raises(UsageError):
        RestoreOptions(steps=0)
    assert PersonReferences("anna", [Path("a.jpg")]).images == [Path("a.jpg")]
