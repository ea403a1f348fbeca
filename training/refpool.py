"""Building an FFHQRef-style reference pool: same identity, varied pose and expression.

The paper fits EMOCA v2 to every FFHQ image (6 pose + 50 expression numbers), clusters the poses into
c1 = 3 groups with K-means and the expressions inside each into c2 = 3, and for every FFHQ identity and
every one of the 9 subsets synthesises a face with Arc2Face (identity from the ArcFace embedding, pose
from a ControlNet) that must reach an ArcFace similarity δ to the source within 3 attempts.

Estimator used here, and why: EMOCA v2 (a FLAME fit with learned encoders) has no weights that can be
obtained offline on this machine and no CPU-only package, so pose and expression come from dlib's 68
landmarks, which do run offline:
- pose (6 numbers, like EMOCA's global + jaw rotation): head pitch, yaw, roll from `cv2.solvePnP` of
  14 landmarks against a generic 3D face model, plus three jaw numbers (mouth opening, chin lateral
  offset, chin drop), each normalised by the inter-ocular distance;
- expression (50 numbers, like EMOCA's): the inner-face landmarks (brows, eyes, nose, mouth) brought to
  a canonical frame by a similarity (Procrustes) fit to their mean shape, minus the mean shape, reduced
  to 50 principal components over the dataset.
Landmark geometry mixes identity (face shape) into "expression" more than a 3D morphable model does;
clusters are therefore coarser than the paper's, which matters little for the purpose (varied
references), and any estimator with the same outputs can be swapped in (`FaceFeatures`).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from engine.errors import NoFaceError, UsageError
from engine.progress import ProgressCallback, report
from training.landmarks import aligned_face_landmarks, five_points
from training.prepare import list_images, read_rgb, write_rgb

log = logging.getLogger(__name__)

#: A generic 3D face (mm; x right, y up, z towards the camera) at dlib indices, for head pose.
MODEL_POINTS_3D = {
    30: (0.0, 0.0, 0.0),  # nose tip
    8: (0.0, -63.6, -12.5),  # chin
    36: (-43.3, 32.7, -26.0), 39: (-14.0, 31.0, -24.0),  # left eye outer / inner corner
    42: (14.0, 31.0, -24.0), 45: (43.3, 32.7, -26.0),  # right eye inner / outer corner
    48: (-28.9, -28.9, -24.1), 54: (28.9, -28.9, -24.1),  # mouth corners
    31: (-10.0, -5.0, -8.0), 35: (10.0, -5.0, -8.0),  # nostrils
    17: (-50.0, 45.0, -35.0), 26: (50.0, 45.0, -35.0),  # brow outer ends
    0: (-70.0, 25.0, -90.0), 16: (70.0, 25.0, -90.0),  # jaw at the ears
}
INNER_FACE = np.arange(17, 68)
EXPRESSION_DIM = 50


@dataclass(frozen=True)
class FaceFeatures:
    pose: np.ndarray  # (6,)
    expression_raw: np.ndarray  # (102,) canonical inner-face geometry; `expression_codes` reduces a set to 50


def head_pose(landmarks: np.ndarray, image_size: tuple[int, int]) -> np.ndarray:
    """(pitch, yaw, roll) in radians from 68 landmarks (pinhole camera, focal length = image width)."""
    h, w = image_size
    ids = sorted(MODEL_POINTS_3D)
    object_points = np.array([MODEL_POINTS_3D[i] for i in ids], np.float64)
    # OpenCV's camera looks down +z with y pointing down; the model has y up and z towards the camera.
    image_points = np.asarray(landmarks, np.float64)[ids]
    camera = np.array([[w, 0, w / 2], [0, w, h / 2], [0, 0, 1]], np.float64)
    flip = np.diag([1.0, -1.0, -1.0])
    # Start from a frontal face at the distance its eye span implies, which keeps the iterative
    # solver away from the mirrored solution.
    span = max(float(np.linalg.norm(image_points[ids.index(45)] - image_points[ids.index(36)])), 1.0)
    rvec0 = np.zeros((3, 1))
    tvec0 = np.array([[0.0], [0.0], [w * 86.6 / span]])
    ok, rvec, _ = cv2.solvePnP(object_points @ flip, image_points, camera, None, rvec0, tvec0,
                               useExtrinsicGuess=True, flags=cv2.SOLVEPNP_ITERATIVE)
    if not ok:
        raise ValueError("solvePnP failed")
    rot, _ = cv2.Rodrigues(rvec)  # model (in OpenCV's camera axes) → camera; identity for a frontal face
    pitch = np.arctan2(rot[2, 1], rot[2, 2])
    yaw = np.arcsin(-np.clip(rot[2, 0], -1, 1))
    roll = np.arctan2(rot[1, 0], rot[0, 0])
    return np.array([pitch, yaw, roll])


def jaw_features(landmarks: np.ndarray) -> np.ndarray:
    """(mouth opening, chin lateral offset, chin drop), in inter-ocular distances."""
    lm = np.asarray(landmarks, np.float64)
    left_eye, right_eye = lm[36:42].mean(0), lm[42:48].mean(0)
    iod = max(np.linalg.norm(right_eye - left_eye), 1e-6)
    axis_x = (right_eye - left_eye) / iod
    axis_y = np.array([-axis_x[1], axis_x[0]])
    opening = np.linalg.norm(lm[66] - lm[62]) / iod
    mid_eyes = (left_eye + right_eye) / 2
    chin = lm[8] - mid_eyes
    return np.array([opening, chin @ axis_x / iod, chin @ axis_y / iod])


def canonical_inner_face(landmarks: np.ndarray) -> np.ndarray:
    """Inner-face landmarks (51 × 2), centred and scaled to unit RMS size."""
    pts = np.asarray(landmarks, np.float64)[INNER_FACE]
    pts = pts - pts.mean(0)
    return pts / max(np.sqrt((pts**2).sum(1).mean()), 1e-9)


def rotate_onto(shape: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """`shape` rotated (no reflection) to best match `reference` (both centred): orthogonal Procrustes."""
    u, _, vt = np.linalg.svd(shape.T @ reference)
    d = np.sign(np.linalg.det(u @ vt))
    return shape @ (u @ np.diag([1.0, d]) @ vt)


def face_features(image: np.ndarray) -> tuple[FaceFeatures, np.ndarray]:
    """(features, 68 landmarks) of an aligned face crop."""
    lm = aligned_face_landmarks(image)
    pose = np.concatenate([head_pose(lm, image.shape[:2]), jaw_features(lm)])
    return FaceFeatures(pose, canonical_inner_face(lm).ravel()), lm


def expression_codes(raw: np.ndarray, dim: int = EXPRESSION_DIM) -> np.ndarray:
    """Procrustes-align the raw inner-face shapes to their mean, subtract it, keep `dim` principal
    components (fewer when there are fewer images)."""
    shapes = raw.reshape(len(raw), -1, 2)
    mean = shapes.mean(0)
    for _ in range(2):  # generalised Procrustes: align to the mean, recompute the mean
        shapes = np.stack([rotate_onto(s, mean) for s in shapes])
        mean = shapes.mean(0)
    flat = (shapes - mean).reshape(len(shapes), -1)
    _, _, vt = np.linalg.svd(flat - flat.mean(0), full_matrices=False)
    k = min(dim, vt.shape[0])
    codes = flat @ vt[:k].T
    return np.pad(codes, ((0, 0), (0, dim - k)))


def kmeans(features: np.ndarray, k: int, seed: int, per_dimension: bool = True) -> np.ndarray:
    """Labels of K-means (k-means++ initialisation); k shrinks to the sample count.

    Features are standardised per dimension when their units differ (pose: angles and ratios), or with
    one scale for all when they share one (expression PCA codes, whose small trailing components would
    otherwise be blown up to the weight of the main ones)."""
    from scipy.cluster.vq import kmeans2

    x = np.asarray(features, np.float64)
    k = max(1, min(k, len(x)))
    if k == 1:
        return np.zeros(len(x), int)
    x = x - x.mean(0)
    std = x.std(0) if per_dimension else np.full(x.shape[1], x.std())
    x = x / np.where(std > 1e-12, std, 1.0)
    _, labels = kmeans2(x, k, minit="++", seed=np.random.default_rng(seed))
    return labels.astype(int)


def two_level_clusters(pose: np.ndarray, expression: np.ndarray, c1: int, c2: int, seed: int = 0) -> np.ndarray:
    """(N, 2) labels: K-means on pose into c1 groups, then on expression inside each into c2."""
    pose_labels = kmeans(pose, c1, seed)
    labels = np.zeros((len(pose), 2), int)
    labels[:, 0] = pose_labels
    for i in np.unique(pose_labels):
        members = np.flatnonzero(pose_labels == i)
        labels[members, 1] = kmeans(expression[members], c2, seed + 1 + int(i), per_dimension=False)
    return labels


# ---- synthesis ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class PoseCondition:
    """What the generator is asked to reproduce: a pose image and its landmarks."""

    image: np.ndarray
    landmarks: np.ndarray


class ReferenceGenerator(Protocol):
    """(source image, its ArcFace embedding, pose condition, seed) → a synthetic face (RGB uint8)."""

    def __call__(self, source: np.ndarray, arcface: np.ndarray, condition: PoseCondition, seed: int) -> np.ndarray: ...


def landmark_condition_image(landmarks: np.ndarray, size: int) -> np.ndarray:
    """The 68 landmarks drawn as coloured contours on black: the pose image given to a ControlNet."""
    canvas = np.zeros((size, size, 3), np.uint8)
    groups = ((range(0, 17), (255, 255, 255)), (range(17, 22), (255, 128, 0)), (range(22, 27), (255, 128, 0)),
              (range(27, 36), (0, 255, 0)), (range(36, 42), (0, 128, 255)), (range(42, 48), (0, 128, 255)),
              (range(48, 60), (255, 0, 128)), (range(60, 68), (255, 0, 255)))
    lm = np.asarray(landmarks, np.float64)
    for idx, color in groups:
        pts = np.round(lm[list(idx)]).astype(np.int32)
        closed = idx.start in (36, 42, 48, 60)
        cv2.polylines(canvas, [pts], closed, color, max(1, size // 256), cv2.LINE_AA)
    return canvas


class StandInGenerator:
    """A generator with Arc2Face's interface for tests and dry runs: the source face is warped onto the
    pose image's 5 landmarks (similarity transform) and disturbed by seeded noise of random strength
    (up to `max_noise` of 255), so that some attempts fail the identity filter."""

    def __init__(self, max_noise: float = 120.0):
        self.max_noise = float(max_noise)

    def __call__(self, source: np.ndarray, arcface: np.ndarray, condition: PoseCondition, seed: int) -> np.ndarray:
        rng = np.random.default_rng(seed)
        src_lm = aligned_face_landmarks(source)
        matrix, _ = cv2.estimateAffinePartial2D(five_points(src_lm), five_points(condition.landmarks))
        h, w = condition.image.shape[:2]
        warped = cv2.warpAffine(source, matrix, (w, h), borderMode=cv2.BORDER_REFLECT).astype(np.float32)
        sigma = rng.uniform(0, self.max_noise)
        noisy = warped + rng.standard_normal(warped.shape).astype(np.float32) * sigma
        return np.clip(noisy, 0, 255).astype(np.uint8)


class Arc2FaceGenerator:
    """Arc2Face (SD 1.5 UNet + CLIP text encoder fine-tuned for ArcFace ids) with a pose ControlNet,
    through diffusers' StableDiffusionControlNetPipeline.

    Folders (the layout of the FoivosPar/Arc2Face release): `arc2face_dir/arc2face/` (UNet),
    `arc2face_dir/encoder/` (CLIPTextModel), the ControlNet folder, and a Stable Diffusion 1.5 folder
    for the VAE, tokenizer and scheduler. The identity enters as in Arc2Face: the prompt
    "photo of a id person" with the token `id`'s input embedding replaced by the L2-normalised ArcFace
    embedding zero-padded to the text width. The release's pose ControlNet was trained on EMOCA renders;
    this class is given the landmark drawing of `landmark_condition_image` — substitute a renderer of
    the same kind as the release's for faithful poses. Not run here (the weights cannot be downloaded).
    """

    PROMPT = "photo of a id person"

    def __init__(self, arc2face_dir: str | Path, controlnet_dir: str | Path, base_model_dir: str | Path,
                 device: str = "cuda", steps: int = 25, guidance_scale: float = 3.0):
        import torch
        from diffusers import (ControlNetModel, DPMSolverMultistepScheduler, StableDiffusionControlNetPipeline,
                               UNet2DConditionModel)
        from transformers import CLIPTextModel

        dtype = torch.float16 if str(device).startswith("cuda") else torch.float32
        arc2face_dir = Path(arc2face_dir)
        for folder in (arc2face_dir / "arc2face", arc2face_dir / "encoder", Path(controlnet_dir), Path(base_model_dir)):
            if not folder.is_dir():
                raise UsageError("Arc2Face generator folder not found (see refpool.* in the config)", folder)
        self.text_encoder = CLIPTextModel.from_pretrained(arc2face_dir / "encoder", torch_dtype=dtype)
        unet = UNet2DConditionModel.from_pretrained(arc2face_dir / "arc2face", torch_dtype=dtype)
        controlnet = ControlNetModel.from_pretrained(controlnet_dir, torch_dtype=dtype)
        self.pipe = StableDiffusionControlNetPipeline.from_pretrained(
            base_model_dir, unet=unet, text_encoder=self.text_encoder, controlnet=controlnet, torch_dtype=dtype,
            safety_checker=None, requires_safety_checker=False)
        self.pipe.scheduler = DPMSolverMultistepScheduler.from_config(self.pipe.scheduler.config)
        self.pipe.to(device)
        self.device, self.dtype = device, dtype
        self.steps, self.guidance_scale = steps, guidance_scale

    def __call__(self, source: np.ndarray, arcface: np.ndarray, condition: PoseCondition, seed: int) -> np.ndarray:
        import torch
        from PIL import Image

        size = 512
        cond = landmark_condition_image(condition.landmarks * (size / condition.image.shape[1]), size)
        embeds = arc2face_prompt_embeds(self.pipe.tokenizer, self.text_encoder, arcface, self.PROMPT)
        generator = torch.Generator("cpu").manual_seed(int(seed))
        image = self.pipe(prompt_embeds=embeds.to(self.device, self.dtype), image=Image.fromarray(cond),
                          num_inference_steps=self.steps, guidance_scale=self.guidance_scale,
                          generator=generator).images[0]
        return np.asarray(image.convert("RGB"))


def arc2face_prompt_embeds(tokenizer, text_encoder, arcface: np.ndarray, prompt: str = Arc2FaceGenerator.PROMPT):
    """Arc2Face's identity prompt: the `id` token's input embedding replaced by the normalised, zero-padded
    ArcFace embedding, then the text encoder's transformer (causal mask) and final layer norm."""
    import torch
    import torch.nn.functional as F
    from transformers.masking_utils import create_causal_mask

    model = getattr(text_encoder, "text_model", text_encoder)
    ids = tokenizer(prompt, padding="max_length", max_length=tokenizer.model_max_length, truncation=True,
                    return_tensors="pt").input_ids.to(model.embeddings.token_embedding.weight.device)
    id_token = tokenizer("id", add_special_tokens=False).input_ids[0]
    with torch.no_grad():
        tokens = model.embeddings.token_embedding(ids)
        emb = torch.as_tensor(np.asarray(arcface, np.float32), device=tokens.device)
        emb = emb / emb.norm().clamp_min(1e-12)
        emb = F.pad(emb, (0, tokens.shape[-1] - emb.shape[0])).to(tokens.dtype)
        tokens[ids == id_token] = emb
        hidden = model.embeddings(inputs_embeds=tokens)
        mask = create_causal_mask(config=model.config, inputs_embeds=hidden, attention_mask=None,
                                  past_key_values=None)
        out = model.encoder(inputs_embeds=hidden, attention_mask=mask, is_causal=True)
        return model.final_layer_norm(out.last_hidden_state)


# ---- the whole build ----------------------------------------------------------------------------------

@dataclass
class RefPoolSummary:
    out_dir: Path
    sources: int
    subsets: int
    written: int = 0
    gave_up: int = 0
    attempts: int = 0
    similarities: list[float] = field(default_factory=list)

    def describe(self) -> str:
        sims = f", ArcFace similarity of kept references {np.mean(self.similarities):.3f} (mean)" if self.similarities else ""
        return (f"{self.written} references for {self.sources} identities × {self.subsets} subsets in {self.out_dir} "
                f"({self.attempts} generations, {self.gave_up} gave up after the attempts{sims})")


def build_refpool(source_dir: Path, out_dir: Path, generator: ReferenceGenerator, embed, c1: int = 3, c2: int = 3,
                  threshold: float = 0.5, max_attempts: int = 3, seed: int = 0, limit: int | None = None,
                  progress: ProgressCallback | None = None) -> RefPoolSummary:
    """Cluster the source images by pose/expression and synthesise one filtered reference per identity and
    subset into `out_dir/target_pose_<i>/target_pose_<i>_<j>/<id>.png`.

    `embed(image) -> ArcFace embedding or None` scores identity (the antelopev2 recognition model)."""
    from training.metrics import cosine

    paths = list_images(source_dir)[:limit] if limit else list_images(source_dir)
    if not paths:
        raise UsageError("no images in the source folder", source_dir)
    images, poses, raws, landmarks, ids, embeddings = [], [], [], [], [], []
    for i, path in enumerate(paths):
        image = read_rgb(path)
        emb = embed(image)
        if emb is None:
            log.warning("%s: no face for ArcFace; not used", path)
            continue
        feats, lm = face_features(image)
        images.append(image), poses.append(feats.pose), raws.append(feats.expression_raw)
        landmarks.append(lm), ids.append(path.stem), embeddings.append(emb)
        report(progress, i + 1, len(paths), "pose and expression")
    if not images:
        raise NoFaceError("no usable face in the source folder", source_dir)
    pose, expression = np.stack(poses), expression_codes(np.stack(raws))
    labels = two_level_clusters(pose, expression, c1, c2, seed)
    subsets = sorted({(int(a), int(b)) for a, b in labels})
    summary = RefPoolSummary(Path(out_dir), len(images), len(subsets))
    rng = np.random.default_rng(seed)
    log_rows = []
    total = len(images) * len(subsets)
    for k in range(len(images)):
        for (i, j) in subsets:
            members = np.flatnonzero((labels[:, 0] == i) & (labels[:, 1] == j))
            kept = None
            for attempt in range(max_attempts):
                pose_idx = int(rng.choice(members))
                condition = PoseCondition(images[pose_idx], landmarks[pose_idx])
                candidate = generator(images[k], embeddings[k], condition, int(rng.integers(2**31 - 1)))
                summary.attempts += 1
                emb = embed(candidate)
                sim = cosine(emb, embeddings[k]) if emb is not None else -1.0
                if sim >= threshold:
                    kept = (candidate, sim, pose_idx, attempt + 1)
                    break
            if kept is None:
                summary.gave_up += 1
                log_rows.append({"id": ids[k], "subset": [i, j], "kept": False})
            else:
                target = Path(out_dir) / f"target_pose_{i}" / f"target_pose_{i}_{j}" / f"{ids[k]}.png"
                write_rgb(target, kept[0])
                summary.written += 1
                summary.similarities.append(kept[1])
                log_rows.append({"id": ids[k], "subset": [i, j], "kept": True, "similarity": round(kept[1], 4),
                                 "pose_from": ids[kept[2]], "attempts": kept[3]})
            report(progress, len(log_rows), total, "synthesis")
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    (Path(out_dir) / "refpool.json").write_text(json.dumps({
        "estimator": "dlib 68 landmarks: solvePnP head pose + jaw (6), Procrustes inner-face PCA (50)",
        "clusters": {ids[k]: [int(labels[k, 0]), int(labels[k, 1])] for k in range(len(ids))},
        "pose": {ids[k]: [round(float(v), 5) for v in pose[k]] for k in range(len(ids))},
        "threshold": threshold, "max_attempts": max_attempts, "references": log_rows}, indent=1), encoding="utf-8")
    return summary


def build_refpool_from_config(config, source: Path, out: Path, limit: int | None = None,
                              progress: ProgressCallback | None = None) -> RefPoolSummary:
    from engine.faces.insightface_backend import InsightFaceAnalyzer
    from engine.models.layout import part_dir

    rp = config.refpool
    if config.run.cpu_threads:
        import torch

        torch.set_num_threads(config.run.cpu_threads)
    analyzer = InsightFaceAnalyzer(part_dir(Path(config.models_dir), "antelopev2"), providers=["CPUExecutionProvider"])

    def embed(image: np.ndarray):
        from engine.restore.plan import detect_faces

        faces = detect_faces(analyzer, image)  # smaller detector inputs until one finds a face
        return max(faces, key=lambda f: f.area).embedding if faces else None

    if rp.generator == "standin":
        generator: ReferenceGenerator = StandInGenerator()
    elif rp.generator == "arc2face":
        import torch

        generator = Arc2FaceGenerator(rp.arc2face_dir, rp.pose_controlnet_dir, rp.base_model_dir,
                                      device="cuda" if torch.cuda.is_available() else "cpu",
                                      steps=rp.num_inference_steps, guidance_scale=rp.guidance_scale)
    else:
        raise UsageError(f"unknown refpool.generator {rp.generator!r} (arc2face or standin)")
    return build_refpool(source, out, generator, embed, rp.pose_clusters, rp.expression_clusters,
                         rp.similarity_threshold, rp.max_attempts, rp.seed, limit, progress)
