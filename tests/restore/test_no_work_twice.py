"""Issue 22, item 2: no work is done twice between the denoisings, and the results stay the same.

Each test counts the work the old code did twice (warps, embeddings, decodes, detector conversions)
and checks that what comes out is equal to the old way's result. The album-path tests reuse
test_album_restoration's two-person album (real photos, real dlib scan)."""

from __future__ import annotations

import hashlib
import io

import numpy as np
import pytest
from PIL import Image

from engine.faces.align import align_face, warp_to_crop
from engine.restore import pasteback
from engine.restore.plan import DETECTION_SIZES, detect_faces

from test_album_restoration import album, analyzer, catalog  # noqa: F401 (the two-person album and its fixtures)

#: FFHQ-like 5 landmarks of a face about 40 px wide at (0, 0); shifted/scaled per test
LANDMARKS = np.array([[-12.0, -8.0], [12.0, -8.0], [0.0, 4.0], [-9.0, 16.0], [9.0, 16.0]], np.float32)


@pytest.fixture
def counted_warps(monkeypatch):
    calls = []

    def counting(image, alignment, *args, **kwargs):
        calls.append(alignment)
        return warp_to_crop(image, alignment, *args, **kwargs)

    monkeypatch.setattr(pasteback, "warp_to_crop", counting)
    return calls


def _faces(rng, photo, centres):
    alignments = [align_face(LANDMARKS * scale + centre, size=128) for centre, scale in centres]
    crops = [warp_to_crop(photo, a) for a in alignments]
    restored = [rng.integers(0, 256, (128, 128, 3), dtype=np.uint8) for _ in alignments]
    return alignments, crops, restored


def test_paste_back_reuses_the_crop_where_nothing_was_pasted_before(counted_warps):
    rng = np.random.default_rng(0)
    photo = rng.integers(0, 256, (240, 400, 3), dtype=np.uint8)
    # two faces far apart (one runs past the left edge: its warp reads a mirrored strip), and a larger
    # face overlapping the second, pasted after it (larger faces go last)
    alignments, crops, restored = _faces(rng, photo, [((20.0, 120.0), 1.0), ((250.0, 100.0), 0.8),
                                                      ((275.0, 120.0), 1.4)])
    pairs = list(zip(restored, alignments))
    before = pasteback.paste_faces(photo, pairs)  # the old way: every face warped from the canvas
    assert len(counted_warps) == 3
    counted_warps.clear()
    reused = pasteback.paste_faces(photo, pairs, unrestored=crops)
    assert np.array_equal(reused, before)
    # only the face under which an earlier face was pasted is warped again
    assert counted_warps == [alignments[2]]


def test_the_crop_is_not_reused_on_a_gray_canvas(counted_warps):
    rng = np.random.default_rng(1)
    gray = rng.integers(0, 256, (200, 200), dtype=np.uint8)
    alignments, _, restored = _faces(rng, np.repeat(gray[..., None], 3, axis=2), [((100.0, 100.0), 1.0)])
    crops = [np.zeros((128, 128, 3), np.uint8)]  # not the canvas's crop: must not be used
    pairs = list(zip(restored, alignments))
    assert np.array_equal(pasteback.paste_faces(gray, pairs, unrestored=crops), pasteback.paste_faces(gray, pairs))
    assert len(counted_warps) == 2


def test_warp_reads_covers_every_pixel_the_warp_reads():
    """Changing a pixel outside `warp_reads` never changes the crop (so reuse is exact)."""
    rng = np.random.default_rng(2)
    photo = rng.integers(0, 256, (120, 160, 3), dtype=np.uint8)
    for centre, scale in (((10.0, 60.0), 1.0), ((150.0, 110.0), 1.3), ((80.0, 60.0), 0.5)):
        alignment = align_face(LANDMARKS * scale + centre, size=64)
        x0, y0, x1, y1 = pasteback.warp_reads(alignment, photo.shape)
        outside = photo.copy()
        mask = np.ones(photo.shape[:2], bool)
        mask[y0:y1, x0:x1] = False
        outside[mask] = 255 - outside[mask]
        assert np.array_equal(warp_to_crop(outside, alignment), warp_to_crop(photo, alignment))


def test_detection_converts_the_photo_once_and_embeds_only_when_asked(scrfd_analyzer, shared, monkeypatch):
    from engine.faces import insightface_backend
    from engine.imageio import read_image

    conversions = []
    original = insightface_backend._bgr
    monkeypatch.setattr(insightface_backend, "_bgr", lambda image: conversions.append(1) or original(image))
    embeddings = []
    get_feat = scrfd_analyzer.recognizer.get_feat
    monkeypatch.setattr(scrfd_analyzer.recognizer, "get_feat", lambda img: embeddings.append(1) or get_feat(img))

    no_face = read_image(shared / "data/realworld_degraded/whole/bop_old_e.png").pixels
    assert detect_faces(scrfd_analyzer, no_face) == []
    assert len(conversions) == 1  # all seven sizes tried on one BGR copy (was one copy per size)

    photo = read_image(shared / "data/group_photos/images/dlib_2008_001009.jpg").pixels
    conversions.clear()
    with_embeddings = detect_faces(scrfd_analyzer, photo)
    old_way = next(f for f in (scrfd_analyzer.detect(photo, det_size=s) for s in DETECTION_SIZES) if f)
    assert len(embeddings) == 2 * len(old_way) > 0
    embeddings.clear()
    geometry = detect_faces(scrfd_analyzer, photo, embed=False)
    assert embeddings == []
    for a, b, c in zip(geometry, with_embeddings, old_way):
        assert a.box == b.box == c.box and np.array_equal(a.landmarks, c.landmarks)
        assert a.embedding is None and np.array_equal(b.embedding, c.embedding)


def test_the_album_plan_refines_geometry_without_embedding(album, catalog, scrfd_analyzer, tiny_pack, monkeypatch):
    from types import SimpleNamespace

    from engine.imageio import read_image
    from engine.restore.options import RestoreOptions
    from engine.restore.service import RestorationService

    embeddings = []
    get_feat = scrfd_analyzer.recognizer.get_feat
    monkeypatch.setattr(scrfd_analyzer.recognizer, "get_feat", lambda img: embeddings.append(1) or get_feat(img))
    service = RestorationService(tiny_pack, pipeline=SimpleNamespace(face_analyzer=scrfd_analyzer))
    pixels = read_image(album["folder"] / "two.png").pixels
    plan = service.plan_album_photo(catalog, album["photo"], pixels, RestoreOptions(min_face_size=0))
    assert embeddings == []  # was one ArcFace run per detected face
    assert [f.person_name for f in plan.faces] == ["Anna", "Ben"]
    assert all("did not find" not in f.reason for f in plan.faces)  # geometry came from the detector


@pytest.fixture
def counted_reads(monkeypatch):
    import engine.imageio

    reads = []
    original = engine.imageio.read_image

    def counting(path, *args, **kwargs):
        reads.append(str(path))
        return original(path, *args, **kwargs)

    monkeypatch.setattr(engine.imageio, "read_image", counting)
    return reads


def test_album_references_are_read_once_and_the_checks_embeddings_kept_in_the_catalog(album, catalog,
                                                                                      counted_reads):
    from sqlalchemy import func, select

    from engine.catalog.models import IdentityTokens as Row
    from engine.catalog.models import Person
    from engine.restore.album import person_identity
    from engine.restore.identity import CheckReferences, IdentityTokens, ReferenceImages
    from engine.restore.identity_check import shared_check

    with catalog.session() as session:
        identity = person_identity(session, session.get(Person, album["anna"]))
    check = shared_check(None)
    images = ReferenceImages()
    encoded = []

    def encode(pixels):  # FaceMe's encoder is not what is counted here: the reads are
        encoded.append(len(pixels))
        return np.stack([np.full(8, float(p.mean()), np.float32) for p in pixels])

    IdentityTokens("pack-fingerprint", catalog, images).tokens(identity, encode)
    first = CheckReferences(check, images)
    embedded = first.for_catalog(catalog)(identity)
    photos = {str(r.photo_path) for r in identity.faces}
    assert sorted(counted_reads) == sorted(photos)  # each reference photo read once for both (was twice)
    assert first.embedded == 1 and encoded == [len(identity.faces)]

    # another process: the check's embeddings come from the catalog, nothing is read or embedded
    counted_reads.clear()
    again = CheckReferences(shared_check(None))
    stored = again.for_catalog(catalog)(identity)
    assert again.embedded == 0 and counted_reads == []
    assert np.array_equal(stored.embeddings, embedded.embeddings) and stored.embedding_model == check.model
    with catalog.session() as session:
        kinds = dict(session.execute(select(Row.pack_fingerprint, func.count()).group_by(Row.pack_fingerprint)).all())
    assert kinds == {"pack-fingerprint": 1, again.fingerprint: 1}
    assert again.fingerprint.startswith("check:") and len(again.fingerprint) == 64  # the column's width


def test_the_kept_try_is_not_embedded_again(shared):
    from engine.imageio import read_image
    from engine.restore.identity_check import best_of_n, shared_check

    check = shared_check(None)
    face = read_image(shared / "data/deepface_ids/images/person_01/img5.jpg").pixels
    lq = warp_to_crop(face, align_face(check.recognizer.detect(face, embed=False)[0].landmarks, size=256))
    tries = {s: np.clip(lq.astype(int) + s, 0, 255).astype(np.uint8) for s in (0, 9, 25)}
    references = check.references("anna", [lq])
    for refs in (references, None):
        calls = []
        original = check.embed_crop
        check.embed_crop = lambda crop: calls.append(1) or original(crop)
        try:
            scorer = check.scorer(lq, refs)
            kept, crop, _ = best_of_n(tries.__getitem__, list(tries), scorer)
            verdict = scorer.check(crop)
        finally:
            del check.embed_crop
        # three tries scored; then only the unrestored face for the references' baseline (was: the kept
        # try and the unrestored face embedded again)
        assert len(calls) == (3 + 1 if refs is not None else 1 + 3)
        assert verdict == check.check(crop, lq, refs)


def test_jpeg_outputs_skip_the_second_huffman_pass_and_keep_every_pixel(tmp_path):
    from engine.imageio import encode_image

    rng = np.random.default_rng(3)
    pixels = rng.integers(0, 256, (64, 96, 3), dtype=np.uint8)
    encoded = encode_image(tmp_path / "out.jpg", pixels)
    plain, optimized = io.BytesIO(), io.BytesIO()
    Image.fromarray(pixels).save(plain, "JPEG", quality=95, subsampling=0)
    Image.fromarray(pixels).save(optimized, "JPEG", quality=95, subsampling=0, optimize=True)
    assert encoded.data == plain.getvalue() != optimized.getvalue()
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(encoded.data))),
                          np.asarray(Image.open(io.BytesIO(optimized.getvalue()))))


def test_a_written_file_is_compared_by_its_bytes_not_decoded_again(tmp_path, monkeypatch):
    import engine.imageio as imageio

    decodes = []
    original = imageio._decode_problem
    monkeypatch.setattr(imageio, "_decode_problem", lambda data: decodes.append(1) or original(data))
    pixels = np.random.default_rng(4).integers(0, 256, (32, 48, 3), dtype=np.uint8)
    written = imageio.write_image_with_hash(tmp_path / "out.png", pixels)
    assert decodes == []  # was one full decode of what was just encoded
    assert written.sha256 == hashlib.sha256((tmp_path / "out.png").read_bytes()).hexdigest()
    assert imageio.verify_output(written.path, written.sha256)  # a resumed batch still decodes what it adopts
    assert decodes == [1]


def test_a_reference_photo_given_ad_hoc_is_read_once(shared, scrfd_analyzer, counted_reads):
    """As `faceme restore --person` runs it: the files read once (read_references), then matched, encoded
    and checked from those pixels (was one decode each)."""
    import engine.imageio
    from engine.restore.identity import CheckReferences, IdentityTokens, read_references
    from engine.restore.identity_check import shared_check
    from engine.restore.options import RestoreOptions
    from engine.restore.plan import PersonReferences, plan_ad_hoc

    reference = shared / "data/deepface_ids/images/person_01/img5.jpg"
    people = read_references([PersonReferences("anna", [reference])])
    photo = shared / "data/group_photos/images/dlib_2007_007763.jpg"
    faces = detect_faces(scrfd_analyzer, engine.imageio.read_image(photo).pixels)
    plan = plan_ad_hoc(faces[:1], people, scrfd_analyzer, RestoreOptions(match_threshold=-1.0, min_face_size=0))
    identity = plan.identities[plan.faces[0].identity]
    encoded = []
    IdentityTokens("pack").tokens(identity, lambda pixels: encoded.append(pixels) or np.ones((len(pixels), 4)))
    references = CheckReferences(shared_check(None))(identity)
    assert counted_reads.count(str(reference)) == 1
    assert references.sources == (str(reference),) and references.embeddings.shape[0] == 1
    assert len(encoded) == 1 and np.array_equal(encoded[0][0], people[0].images[0].pixels)
