"""The dlib analyser's two-pass detection and its trip to a worker process (pickling)."""

from __future__ import annotations

import pickle

from engine.faces.dlib_backend import DlibFaceAnalyzer
from engine.imageio import read_image


def _boxes(faces):
    return [tuple(round(v, 1) for v in f.box) for f in faces]


def test_two_passes_find_the_one_pass_faces_on_group_and_portrait_photos(shared):
    one_pass = DlibFaceAnalyzer(first_pass_pixels=None)
    two_pass = DlibFaceAnalyzer()
    # a VOC group photo (small faces: fits the first pass whole) and a large portrait (stops after it)
    group = read_image(shared / "data" / "group_photos" / "images" / "dlib_2007_007763.jpg").pixels
    assert _boxes(two_pass.detect(group, embed=False)) == _boxes(one_pass.detect(group, embed=False))
    portrait = read_image(shared / "data" / "deepface_ids" / "images" / "person_01" / "img4.jpg").pixels
    found = two_pass.detect(portrait, embed=False)
    reference = one_pass.detect(portrait, embed=False)
    assert len(found) == len(reference) >= 1
    for a, b in zip(found, reference):
        inter = max(0, min(a.box[2], b.box[2]) - max(a.box[0], b.box[0])) * \
            max(0, min(a.box[3], b.box[3]) - max(a.box[1], b.box[1]))
        union = a.area + b.area - inter
        assert inter / union > 0.7


def test_the_analyser_travels_to_a_worker_without_its_models(shared):
    analyzer = DlibFaceAnalyzer(max_detect_pixels=2_000_000)
    pixels = read_image(shared / "data" / "group_photos" / "images" / "dlib_2008_001009.jpg").pixels
    before = analyzer.detect(pixels)
    blob = pickle.dumps(analyzer)
    assert len(blob) < 2000  # settings only: the models load again in the worker
    copy = pickle.loads(blob)
    assert copy.max_detect_pixels == 2_000_000 and copy.decode_pixels == 250_000 and copy.second_pass_pixels == 500_000
    after = copy.detect(pixels)
    assert _boxes(after) == _boxes(before)
    assert all((a.embedding == b.embedding).all() for a, b in zip(after, before))


def test_a_photo_the_first_pass_scanned_whole_is_not_scanned_again(shared):
    # a small VOC group photo: the 1 MP first pass scans it at its own size (upsampled once), so the
    # second pass, wanted for its small faces, would scan the very same pixels
    analyzer = DlibFaceAnalyzer()
    passes = []
    find_at = analyzer._find_at
    analyzer._find_at = lambda image, upsample, budget: passes.append(budget) or find_at(image, upsample, budget)
    group = read_image(shared / "data" / "group_photos" / "images" / "dlib_2007_007763.jpg").pixels
    assert group.shape[0] * group.shape[1] * 4 <= analyzer.first_pass_pixels
    found = analyzer.detect(group, embed=False)
    assert passes == [analyzer.first_pass_pixels]
    assert _boxes(found) == _boxes(DlibFaceAnalyzer(first_pass_pixels=None).detect(group, embed=False))
