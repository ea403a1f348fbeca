"""The training degradation of FaceMe (paper Eq. 6) with the ranges of the official release.

    LQ = up_bilinear( JPEG_q( down_bilinear_r( GT ⊛ k_sigma ) + n_delta ) )

1. Gaussian blur with a 41×41 kernel: isotropic or anisotropic (probability 0.5 each), each sigma
   uniform in [0.2, 10], the anisotropic kernel rotated by an angle uniform in [-π, π];
2. bilinear downsample by a factor uniform in [1, 16];
3. additive Gaussian noise, sigma uniform in [0, 15] on the 0–255 scale (independent per channel);
4. JPEG compression with quality uniform (integer) in [30, 100];
5. bilinear upsample back to the input size (512 px in training).

It lives in the engine because learning a person from the album (engine.learn) trains on the same
pairs the released model was trained on; training/ (training.degrade) uses this module.

`sample_degradation(rng)` draws the parameters, `apply_degradation(image, params)` applies them
deterministically (noise comes from the seed stored in the parameters), and `degrade(image, rng)` does
both. Each step is its own function, so the order can be checked and a step reused.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import cv2
import numpy as np

KERNEL_SIZE = 41


@dataclass(frozen=True)
class DegradationRanges:
    """The ranges a degradation is drawn from; the defaults are the released training settings."""

    kernel_size: int = KERNEL_SIZE
    anisotropic_prob: float = 0.5
    blur_sigma: tuple[float, float] = (0.2, 10.0)
    downsample: tuple[float, float] = (1.0, 16.0)
    noise_sigma: tuple[float, float] = (0.0, 15.0)  # on the 0–255 scale
    jpeg_quality: tuple[int, int] = (30, 100)


@dataclass(frozen=True)
class DegradationParams:
    """One sampled degradation: everything needed to replay it exactly."""

    kernel_size: int
    anisotropic: bool
    sigma_x: float
    sigma_y: float
    rotation: float  # radians; 0 for isotropic kernels
    downsample: float
    noise_sigma: float  # 0–255 scale
    noise_seed: int
    jpeg_quality: int

    def as_dict(self) -> dict:
        return asdict(self)


def sample_degradation(rng: np.random.Generator | int | None = None,
                       ranges: DegradationRanges = DegradationRanges()) -> DegradationParams:
    """Draw one degradation from `ranges`. The same seed gives the same parameters."""
    rng = np.random.default_rng(rng)
    anisotropic = bool(rng.uniform() < ranges.anisotropic_prob)
    sigma_x = float(rng.uniform(*ranges.blur_sigma))
    if anisotropic:
        sigma_y = float(rng.uniform(*ranges.blur_sigma))
        rotation = float(rng.uniform(-math.pi, math.pi))
    else:
        sigma_y, rotation = sigma_x, 0.0
    return DegradationParams(
        kernel_size=ranges.kernel_size,
        anisotropic=anisotropic,
        sigma_x=sigma_x,
        sigma_y=sigma_y,
        rotation=rotation,
        downsample=float(rng.uniform(*ranges.downsample)),
        noise_sigma=float(rng.uniform(*ranges.noise_sigma)),
        noise_seed=int(rng.integers(0, 2**31 - 1)),
        jpeg_quality=int(rng.integers(ranges.jpeg_quality[0], ranges.jpeg_quality[1] + 1)),
    )


def gaussian_kernel(size: int, sigma_x: float, sigma_y: float, rotation: float) -> np.ndarray:
    """A normalised (sums to 1) bivariate Gaussian kernel of odd `size`, its axes rotated by `rotation`."""
    if size % 2 != 1:
        raise ValueError(f"kernel size must be odd, got {size}")
    cos, sin = math.cos(rotation), math.sin(rotation)
    rot = np.array([[cos, -sin], [sin, cos]])
    cov = rot @ np.diag([sigma_x**2, sigma_y**2]) @ rot.T
    inv = np.linalg.inv(cov)
    half = size // 2
    ax = np.arange(-half, half + 1, dtype=np.float64)
    xx, yy = np.meshgrid(ax, ax)
    grid = np.stack([xx, yy], axis=-1)
    kernel = np.exp(-0.5 * np.einsum("...i,ij,...j->...", grid, inv, grid))
    return (kernel / kernel.sum()).astype(np.float32)


def blur(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Convolve a float HxWxC image with `kernel` (reflected borders, as cv2.filter2D does)."""
    return cv2.filter2D(image, -1, kernel)


def resize_bilinear(image: np.ndarray, width: int, height: int) -> np.ndarray:
    return cv2.resize(image, (int(width), int(height)), interpolation=cv2.INTER_LINEAR)


def downsample(image: np.ndarray, factor: float) -> np.ndarray:
    h, w = image.shape[:2]
    return resize_bilinear(image, max(1, round(w / factor)), max(1, round(h / factor)))


def upsample(image: np.ndarray, width: int, height: int) -> np.ndarray:
    return resize_bilinear(image, width, height)


def add_gaussian_noise(image: np.ndarray, sigma_255: float, seed: int) -> np.ndarray:
    """Add per-channel Gaussian noise of std `sigma_255`/255 to a [0, 1] image, clipped to [0, 1]."""
    noise = np.random.default_rng(seed).standard_normal(image.shape).astype(np.float32)
    return np.clip(image + noise * (sigma_255 / 255.0), 0.0, 1.0)


def jpeg_compress(image: np.ndarray, quality: int) -> np.ndarray:
    """Encode a [0, 1] RGB float image as JPEG at `quality` and decode it again."""
    as_uint8 = np.clip(np.rint(image * 255.0), 0, 255).astype(np.uint8)
    ok, buffer = cv2.imencode(".jpg", cv2.cvtColor(as_uint8, cv2.COLOR_RGB2BGR),
                              [int(cv2.IMWRITE_JPEG_QUALITY), int(quality)])
    if not ok:
        raise RuntimeError("OpenCV could not JPEG-encode the image")
    decoded = cv2.cvtColor(cv2.imdecode(buffer, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    return decoded.astype(np.float32) / 255.0


def to_float(image: np.ndarray) -> np.ndarray:
    """uint8 RGB → float32 in [0, 1]; float input is taken as already in [0, 1]."""
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an HxWx3 RGB image, got shape {image.shape}")
    if image.dtype == np.uint8:
        return image.astype(np.float32) / 255.0
    return image.astype(np.float32)


def to_uint8(image: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(image * 255.0), 0, 255).astype(np.uint8)


def apply_degradation(image: np.ndarray, params: DegradationParams,
                      out_size: tuple[int, int] | None = None) -> np.ndarray:
    """Apply `params` to an RGB image (uint8 or [0, 1] float). Returns float32 RGB in [0, 1] of
    `out_size` (width, height), by default the input's size."""
    hq = to_float(image)
    h, w = hq.shape[:2]
    kernel = gaussian_kernel(params.kernel_size, params.sigma_x, params.sigma_y, params.rotation)
    x = blur(hq, kernel)
    x = downsample(x, params.downsample)
    x = add_gaussian_noise(x, params.noise_sigma, params.noise_seed)
    x = jpeg_compress(x, params.jpeg_quality)
    out_w, out_h = out_size if out_size is not None else (w, h)
    x = upsample(x, out_w, out_h)
    return np.clip(x, 0.0, 1.0)


@dataclass(frozen=True)
class Degraded:
    image: np.ndarray  # float32 HxWx3 RGB in [0, 1]
    params: DegradationParams


def degrade(image: np.ndarray, rng: np.random.Generator | int | None = None,
            ranges: DegradationRanges = DegradationRanges(),
            out_size: tuple[int, int] | None = None) -> Degraded:
    """Degrade one ground-truth image with freshly drawn parameters (reproducible for a seed)."""
    params = sample_degradation(rng, ranges)
    return Degraded(apply_degradation(image, params, out_size), params)
