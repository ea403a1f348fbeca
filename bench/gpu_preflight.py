"""What the GPU machine has, before the benchmark spends time there: versions, the GPU, and which of the
packages bench/faceme_gpu.py imports are missing (to carry as wheels next time).

    python3 bench/gpu_preflight.py [--json PATH]

Exit status 0 when everything the benchmark needs imports, 1 otherwise (each missing package is named
with the version constraints.txt pins, ready for `pip download`). Nothing is installed or fetched.

Carried as wheels today (pure Python, see bench/faceme_gpu.py's docstring for the download line):
diffusers, insightface. Expected there: torch (CUDA), transformers, safetensors, huggingface_hub,
numpy, Pillow, opencv-python-headless, scipy, scikit-image, onnx, onnxruntime, tqdm, requests, and
nvidia-ml-py (pynvml: the process's GPU memory; without it nvidia-smi is asked).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import shutil
import sys
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: (import name, distribution, why the benchmark needs it)
REQUIRED = (
    ("torch", "torch", "the models"),
    ("numpy", "numpy", "everything"),
    ("PIL", "pillow", "photos"),
    ("cv2", "opencv-python-headless", "alignment, paste-back"),
    ("scipy", "scipy", "insightface"),
    ("skimage", "scikit-image", "insightface's face_align"),
    ("safetensors", "safetensors", "diffusers"),
    ("huggingface_hub", "huggingface_hub", "diffusers, transformers"),
    ("transformers", "transformers", "CLIP text and image encoders, tokenizers"),
    ("diffusers", "diffusers", "UNet, ControlNet, VAE, schedulers, group offloading"),
    ("onnx", "onnx", "insightface"),
    ("onnxruntime", "onnxruntime", "SCRFD detection, ArcFace"),
    ("insightface", "insightface", "SCRFD / ArcFace model_zoo"),
    ("tqdm", "tqdm", "insightface, diffusers"),
    ("requests", "requests", "insightface"),
)
OPTIONAL = (("pynvml", "nvidia-ml-py", "the process's GPU memory through NVML"),)
#: the engine modules the benchmark runs (their imports must all be there)
ENGINE_MODULES = ("engine.faceme.pipeline", "engine.faces.insightface_backend", "engine.restore.photo",
                  "engine.imageio")


def pinned_versions(constraints: Path = ROOT / "constraints.txt") -> dict[str, str]:
    """constraints.txt as {normalised name: version}."""
    pins = {}
    if constraints.is_file():
        for line in constraints.read_text(encoding="utf-8").splitlines():
            name, sep, version = line.strip().partition("==")
            if sep:
                pins[name.lower().replace("_", "-")] = version.strip()
    return pins


def distribution_version(dist: str) -> str | None:
    for name in (dist, dist.replace("-", "_"), dist.replace("_", "-")):
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return None


def check_modules(entries) -> list[dict]:
    found = []
    for module, dist, why in entries:
        entry = {"module": module, "distribution": dist, "why": why, "version": distribution_version(dist)}
        try:
            importlib.import_module(module)
            entry["imports"] = True
        except Exception as exc:  # any import failure (missing, broken binary) is what this reports
            entry.update(imports=False, error=f"{exc.__class__.__name__}: {exc}"[:300])
        found.append(entry)
    return found


def gpu_facts() -> dict:
    facts: dict = {"nvidia_smi": shutil.which("nvidia-smi")}
    try:
        import torch

        facts.update(torch=torch.__version__, torch_cuda=torch.version.cuda,
                     cuda_available=torch.cuda.is_available())
        if torch.cuda.is_available():
            props = torch.cuda.get_device_properties(0)
            facts.update(gpu=props.name, gpu_memory_gib=round(props.total_memory / (1 << 30), 1),
                         capability=f"{props.major}.{props.minor}", cudnn=torch.backends.cudnn.version())
    except Exception as exc:  # reported, not raised
        facts["torch_error"] = f"{exc.__class__.__name__}: {exc}"[:300]
    try:
        import pynvml

        pynvml.nvmlInit()
        driver = pynvml.nvmlSystemGetDriverVersion()
        facts["nvml_driver"] = driver.decode() if isinstance(driver, bytes) else driver
    except Exception as exc:  # noqa: BLE001
        facts["nvml"] = f"unavailable ({exc.__class__.__name__})"
    try:
        import onnxruntime

        facts["onnxruntime_providers"] = onnxruntime.get_available_providers()
    except Exception:  # noqa: BLE001 - listed as missing above
        pass
    return facts


def report(required: list[dict], optional: list[dict], engine: list[dict], facts: dict) -> list[str]:
    pins = pinned_versions()
    lines = [f"python {platform.python_version()} ({sys.executable}), {platform.platform()}, {os.cpu_count()} CPUs",
             f"HF_HUB_OFFLINE={os.environ.get('HF_HUB_OFFLINE', 'unset')}",
             "gpu: " + ", ".join(f"{k}={v}" for k, v in facts.items())]
    for title, entries in (("required", required), ("optional", optional), ("engine", engine)):
        for e in entries:
            state = "ok" if e["imports"] else f"MISSING ({e.get('error')})"
            lines.append(f"{title:<8} {e['module']:<34} {e.get('version') or '-':<14} {state}")
    missing = [e for e in required + optional if not e["imports"]]
    if missing:
        wheels = " ".join(f"{e['distribution']}=={pins.get(e['distribution'].lower().replace('_', '-'), 'VERSION')}"
                          for e in missing)
        lines.append(f"carry as wheels (pip download --no-deps --only-binary=:all: --python-version "
                     f"{sys.version_info.major}.{sys.version_info.minor} ...): {wheels}")
    else:
        lines.append("nothing missing")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", type=Path, help="also write the findings as JSON")
    args = parser.parse_args(argv)
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    required = check_modules(REQUIRED)
    optional = check_modules(OPTIONAL)
    engine = check_modules((name, "faceme-studio", "the benchmark's engine code") for name in ENGINE_MODULES)
    facts = gpu_facts()
    for line in report(required, optional, engine, facts):
        print(line, flush=True)
    if args.json:
        args.json.write_text(json.dumps({"python": platform.python_version(), "facts": facts, "required": required,
                                         "optional": optional, "engine": engine}, indent=2), encoding="utf-8")
    return 0 if all(e["imports"] for e in required + engine) else 1


if __name__ == "__main__":
    sys.exit(main())
