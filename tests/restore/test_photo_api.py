"""The library API the batch runner and the GUI call: restore_photo_file / restore_photo."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engine.errors import CancelledError, NoFaceError, UsageError
from engine.restore.options import RestoreOptions
from engine.restore.photo import restore_photo, restore_photo_file
from engine.restore.plan import PersonReferences


@pytest.fixture(scope="module")
def tiny_pipeline(tiny_pack):
    """The tiny pack's pipeline, through the per-process restoration service (shared with the CLI tests)."""
    from engine.restore.service import get_service
    from engine.settings import Settings

    settings = Settings()
    return get_service(Path(tiny_pack).resolve(), settings.device, settings.dtype).pipeline


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


def test_only_the_given_faces_are_restored(shared, tiny_pipeline):
    """faces=[one of the detected faces]: that face changes, the others stay pixel for pixel (the GUI's
    ticked faces); the photo is not analysed again."""
    from engine.imageio import read_image

    photo = read_image(shared / "data/group_photos/images/deepface_selfie-many-people.jpg")
    detected = tiny_pipeline.face_analyzer.detect(photo.pixels)
    assert len(detected) >= 2
    chosen = max(detected, key=lambda f: f.size)
    events = []
    result = restore_photo(photo, [], tiny_pipeline, options=RestoreOptions(steps=1, seed=1, min_face_size=0),
                           faces=[chosen], progress=lambda done, total, message: events.append(message))
    assert [o.face for o in result.faces] == [chosen] and result.restored_count == 1
    assert "finding faces" not in events

    def region(pixels, face):
        x1, y1, x2, y2 = (int(round(v)) for v in face.box)
        return pixels[max(y1, 0):y2, max(x1, 0):x2]

    assert not np.array_equal(region(result.pixels, chosen), region(photo.pixels, chosen))
    # every changed pixel lies in the chosen face's neighbourhood (its pasted crop) ...
    reach = 0.8 * chosen.size
    cx, cy = (chosen.box[0] + chosen.box[2]) / 2, (chosen.box[1] + chosen.box[3]) / 2
    changed = np.argwhere(np.any(result.pixels != photo.pixels, axis=-1))
    assert np.abs(changed[:, 1] - cx).max() <= reach and np.abs(changed[:, 0] - cy).max() <= reach
    # ... so the faces outside it, detected but not passed, are untouched
    apart = [f for f in detected if f.box[2] < cx - reach or f.box[0] > cx + reach
             or f.box[3] < cy - reach or f.box[1] > cy + reach]
    assert apart, "the photo needs a face away from the chosen one"
    for face in apart:
        assert np.array_equal(region(result.pixels, face), region(photo.pixels, face))

    with pytest.raises(UsageError, match="no face was chosen"):
        restore_photo(photo, [], tiny_pipeline, options=RestoreOptions(steps=1), faces=[])


def test_crop_around_face_reaches_margin_face_sizes_and_stays_inside_the_photo():
    from engine.restore.plan import crop_around_face

    pixels = np.arange(100 * 200 * 3, dtype=np.uint32).reshape(100, 200, 3)
    crop = crop_around_face(pixels, (50.0, 40.0, 70.0, 60.0), margin=0.5)  # 20 px face, 10 px around it
    assert crop.shape == (40, 40, 3) and np.array_equal(crop, pixels[30:70, 40:80])
    # the one reference margin rule (half a face size around the box), clipped to the photo
    assert crop_around_face(pixels, (0.0, 0.0, 100.0, 90.0)).shape == (100, 150, 3)
