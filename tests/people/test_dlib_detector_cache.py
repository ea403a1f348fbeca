"""dlib's HOG detector is kept serialised in the cache folder (2 ms to load instead of 0.4 s) and the
cached copy detects exactly what dlib's built-in one does."""

from __future__ import annotations

from engine.faces.dlib_backend import frontal_face_detector
from engine.imageio import read_image


def _detections(detector, pixels):
    rects, scores, kinds = detector.run(pixels, 1, -0.5)
    return [(r.left(), r.top(), r.right(), r.bottom()) for r in rects], list(scores), list(kinds)


def test_the_cached_detector_finds_what_dlibs_own_finds(shared, tmp_path):
    import dlib

    built_in = dlib.get_frontal_face_detector()
    first = frontal_face_detector(tmp_path)  # builds it and writes the cache
    cached = list(tmp_path.glob("dlib-*-frontal_face_detector.svm"))
    assert len(cached) == 1 and not list(tmp_path.glob("*.partial"))
    second = frontal_face_detector(tmp_path)  # reads the cache
    for name in ("dlib_2007_007763.jpg", "deepface_selfie-many-people.jpg"):
        pixels = read_image(shared / "data" / "group_photos" / "images" / name).pixels
        expected = _detections(built_in, pixels)
        assert len(expected[0]) >= 4
        assert _detections(first, pixels) == expected
        assert _detections(second, pixels) == expected


def test_a_damaged_cache_file_is_built_again(shared, tmp_path):
    frontal_face_detector(tmp_path)
    [path] = tmp_path.glob("dlib-*-frontal_face_detector.svm")
    whole = path.read_bytes()
    path.write_bytes(whole[: len(whole) // 3])  # a copy cut short (a full disk, a kill)
    pixels = read_image(shared / "data" / "group_photos" / "images" / "dlib_2008_001009.jpg").pixels
    import dlib

    assert _detections(frontal_face_detector(tmp_path), pixels) == _detections(dlib.get_frontal_face_detector(), pixels)
    assert path.read_bytes() == whole


def test_a_cache_folder_that_cant_be_made_still_gives_a_detector(shared, tmp_path):
    blocked = tmp_path / "cache"
    blocked.write_bytes(b"a file where the cache folder should be")
    detector = frontal_face_detector(blocked)
    pixels = read_image(shared / "data" / "group_photos" / "images" / "dlib_2008_001009.jpg").pixels
    assert len(_detections(detector, pixels)[0]) >= 1
    assert blocked.read_bytes() == b"a file where the cache folder should be"
