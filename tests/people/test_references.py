"""Reference suggestions: quality first, then pose diversity; reasons in words; the user's picks win."""

from __future__ import annotations

import numpy as np

from engine.catalog.models import Assignment, AssignmentOrigin, Face, Person, Photo
from engine.people import references
from engine.people.quality import face_quality, pose


def _face(session, person, n, size, quality, yaw, sharp=0.8, digest=None, origin=AssignmentOrigin.machine):
    photo = Photo(path=f"/album/{n}.jpg", size=1, mtime_ns=1, content_hash=digest or f"{n:064d}")
    face = Face(x1=0, y1=0, x2=size, y2=size, score=1, landmarks=[], quality=quality, sharpness=sharp,
                frontalness=1 - 2 * abs(yaw), yaw=yaw, embedding=b"", embedding_model="m")
    photo.faces.append(face)
    session.add(photo)
    session.flush()
    session.add(Assignment(face_id=face.id, person_id=person.id, origin=origin))
    session.flush()
    return face


def test_suggestions_rank_quality_then_pose(catalog):
    with catalog.transaction() as s:
        person = Person(name="Ann", embedding_model="m")
        s.add(person)
        s.flush()
        best = _face(s, person, 1, 300, 0.90, 0.0)
        same_pose = _face(s, person, 2, 300, 0.85, 0.02)
        turned = _face(s, person, 3, 300, 0.70, 0.25)
        copy = _face(s, person, 4, 300, 0.99, 0.0, digest=f"{1:064d}")  # a copy of photo 1: never twice
        tiny = _face(s, person, 5, 30, 0.95, -0.3)  # too small to be a reference
        chosen = references.suggest(s, person, count=3)
        ids = [c.face.id for c in chosen]
        assert tiny.id not in ids and len(ids) == 3
        assert (best.id in ids) != (copy.id in ids)  # one photo's content, once
        assert ids[1] == turned.id  # a new pose beats a near-duplicate of the best one's pose
        assert same_pose.id in ids
        assert chosen[0].reason.startswith("best overall quality") and "300 px" in chosen[0].reason
        assert "different pose" in chosen[1].reason and "turned right" in chosen[1].reason
        # the user's picks replace the suggestions and stay until cleared
        picked = references.set_references(s, person, [same_pose])
        assert [(c.face.id, c.picked_by_user, c.reason) for c in picked] == [(same_pose.id, True, "picked by you")]
        assert [c.face.id for c in references.references(s, person)] == [same_pose.id]
        references.set_references(s, person, [])
        assert references.references(s, person)[0].face.id == ids[0]  # back to the suggestions


def test_quality_measures_on_a_real_face(shared):
    from engine.faces.dlib_backend import DlibFaceAnalyzer
    from engine.imageio import read_image

    image = read_image(shared / "data" / "deepface_ids" / "images" / "person_01" / "img1.jpg").pixels
    face = DlibFaceAnalyzer().detect(image, embed=False)[0]
    sharp = face_quality(image, face.box, face.landmarks)
    import cv2

    blurred_image = cv2.GaussianBlur(image, (0, 0), 6)
    blurred = face_quality(blurred_image, face.box, face.landmarks)
    assert sharp.sharpness > blurred.sharpness + 0.2 and sharp.score > blurred.score
    assert sharp.size == 1.0 and abs(sharp.yaw) < 0.15  # a large, roughly frontal face
    mirrored = face.landmarks.copy()
    mirrored[2, 0] = mirrored[1, 0]  # nose under the right eye: strongly turned
    yaw, _ = pose(mirrored)
    assert yaw > 0.4 and np.isfinite(yaw)
