"""The model pack: a documented folder layout holding the parts FaceMe needs.

    <models>/
      realvisxl_v3.0/          SG161222/RealVisXL_V3.0, diffusers folders (unet/, vae/, text_encoder/,
                               text_encoder_2/, tokenizer/, tokenizer_2/, scheduler/, model_index.json)
      photomaker/              TencentARC/PhotoMaker: photomaker-v1.bin (or .safetensors)
      faceme/controlnet/       thomas2modyu/FaceMe controlnet/: config.json + diffusion_pytorch_model.*
      faceme/mix/              thomas2modyu/FaceMe mix/: mix.safetensors
      insightface/antelopev2/  InsightFace antelopev2: scrfd_10g_bnkps.onnx, glintr100.onnx (flat)
      insightface/buffalo_l/   optional, for album-level face analysis
      repair/<part>/           optional, whole-photo repair (REPAIR_PARTS): one released checkpoint each

Each folder mirrors its upstream repository, so an existing download can be adopted as it is.
Where each part comes from (sources, sizes, hashes, licences) is data: `manifest.json`, read by
`manifest.py`; installing, importing and removing parts is `install.py`. A part folder installed by
`faceme models download|import` also holds `.faceme-part.json`, the record `check_part` compares with.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from pathlib import Path

#: A required file is a tuple of acceptable alternatives (first found wins), relative to the part.
FileSpec = tuple[str, ...]


@dataclass(frozen=True)
class PackPart:
    name: str
    title: str
    folder: str
    files: tuple[FileSpec, ...]
    where_to_get: str
    license_name: str
    license_url: str
    non_commercial: bool
    required_for_restoration: bool = True


def _diffusers_weights(sub: str, stem: str) -> FileSpec:
    return tuple(f"{sub}/{stem}{variant}.{ext}" for variant in (".fp16", "")
                 for ext in ("safetensors", "bin"))


PARTS: dict[str, PackPart] = {
    part.name: part
    for part in (
        PackPart(
            name="realvisxl",
            title="RealVisXL V3.0 (SDXL base model)",
            folder="realvisxl_v3.0",
            files=(
                ("model_index.json",),
                ("unet/config.json",), _diffusers_weights("unet", "diffusion_pytorch_model"),
                ("vae/config.json",), _diffusers_weights("vae", "diffusion_pytorch_model"),
                ("text_encoder/config.json",), _diffusers_weights("text_encoder", "model"),
                ("text_encoder_2/config.json",), _diffusers_weights("text_encoder_2", "model"),
                ("tokenizer/vocab.json",), ("tokenizer/merges.txt",),
                ("tokenizer_2/vocab.json",), ("tokenizer_2/merges.txt",),
                ("scheduler/scheduler_config.json",),
            ),
            where_to_get="Hugging Face hub SG161222/RealVisXL_V3.0 (diffusers folders); "
                         "`faceme models download realvisxl`",
            license_name="CreativeML Open RAIL++-M",
            license_url="https://huggingface.co/stabilityai/stable-diffusion-xl-base-1.0/blob/main/LICENSE.md",
            non_commercial=False,
        ),
        PackPart(
            name="photomaker",
            title="PhotoMaker v1 (its CLIP image encoder)",
            folder="photomaker",
            files=(("photomaker-v1.bin", "photomaker-v1.safetensors"),),
            where_to_get="Hugging Face hub TencentARC/PhotoMaker, file photomaker-v1.bin; "
                         "`faceme models download photomaker`",
            license_name="Apache-2.0",
            license_url="https://huggingface.co/TencentARC/PhotoMaker",
            non_commercial=False,
        ),
        PackPart(
            name="faceme-controlnet",
            title="FaceMe ControlNet",
            folder="faceme/controlnet",
            files=(("config.json",),
                   ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin")),
            where_to_get="Hugging Face hub thomas2modyu/FaceMe, folder controlnet/; "
                         "`faceme models download faceme-controlnet`",
            license_name="Pi-Lab License 1.0",
            license_url="https://github.com/modyu-liu/FaceMe/blob/main/LICENSE",
            non_commercial=True,
        ),
        PackPart(
            name="faceme-mix",
            title="FaceMe identity fusion (Mix)",
            folder="faceme/mix",
            files=(("mix.safetensors",),),
            where_to_get="Hugging Face hub thomas2modyu/FaceMe, file mix/mix.safetensors; "
                         "`faceme models download faceme-mix`",
            license_name="Pi-Lab License 1.0",
            license_url="https://github.com/modyu-liu/FaceMe/blob/main/LICENSE",
            non_commercial=True,
        ),
        PackPart(
            name="antelopev2",
            title="InsightFace antelopev2 (face detector + ArcFace)",
            folder="insightface/antelopev2",
            files=(("scrfd_10g_bnkps.onnx",), ("glintr100.onnx",)),
            where_to_get="InsightFace model pack antelopev2 (GitHub release of deepinsight/insightface); "
                         "`faceme models download antelopev2`",
            license_name="InsightFace pretrained models: non-commercial research only",
            license_url="https://github.com/deepinsight/insightface/tree/master/python-package#license",
            non_commercial=True,
        ),
        PackPart(
            name="buffalo_l",
            title="InsightFace buffalo_l (face analysis for albums)",
            folder="insightface/buffalo_l",
            files=(("det_10g.onnx",), ("w600k_r50.onnx",)),
            where_to_get="InsightFace model pack buffalo_l (GitHub release of deepinsight/insightface); "
                         "`faceme models download buffalo_l`",
            license_name="InsightFace pretrained models: non-commercial research only",
            license_url="https://github.com/deepinsight/insightface/tree/master/python-package#license",
            non_commercial=True,
            required_for_restoration=False,
        ),
        # Repair of the whole print (engine/repair, issue 24): optional, each read through spandrel
        # except the scratch detector (engine/repair/scratch_detector.py).
        *(PackPart(name=name, title=title, folder=f"repair/{folder}", files=((file,),),
                   where_to_get=f"{where}; `faceme models download {name}`", license_name=lic, license_url=url,
                   non_commercial=False, required_for_restoration=False)
          for name, title, folder, file, where, lic, url in (
              ("scratch-detector", "Scratch detector (Bringing Old Photos Back to Life)", "scratch_detector",
               "FT_Epoch_latest.pt", "microsoft/Bringing-Old-Photos-Back-to-Life release v1.0, "
               "global_checkpoints.zip (checkpoints/detection/FT_Epoch_latest.pt)", "MIT",
               "https://github.com/microsoft/Bringing-Old-Photos-Back-to-Life/blob/master/LICENSE"),
              ("lama", "LaMa inpainting (big-lama)", "lama", "big-lama.pt",
               "big-lama.pt (TorchScript) of the Sanster/models GitHub release add_big_lama", "Apache-2.0",
               "https://github.com/advimman/lama/blob/main/LICENSE"),
              ("realesrgan-x2", "Real-ESRGAN x2plus (whole-photo ×2)", "realesrgan_x2", "RealESRGAN_x2plus.pth",
               "xinntao/Real-ESRGAN GitHub release v0.2.1", "BSD-3-Clause",
               "https://github.com/xinntao/Real-ESRGAN/blob/master/LICENSE"),
              ("realesrgan-x4", "Real-ESRGAN x4plus (whole-photo ×4)", "realesrgan_x4", "RealESRGAN_x4plus.pth",
               "xinntao/Real-ESRGAN GitHub release v0.1.0", "BSD-3-Clause",
               "https://github.com/xinntao/Real-ESRGAN/blob/master/LICENSE"),
              ("swinir-x4", "SwinIR-L real-world ×4 (alternative upscaler)", "swinir_x4",
               "003_realSR_BSRGAN_DFOWMFC_s64w8_SwinIR-L_x4_GAN.pth", "JingyunLiang/SwinIR GitHub release v0.0",
               "Apache-2.0", "https://github.com/JingyunLiang/SwinIR/blob/main/LICENSE"),
              ("ddcolor", "DDColor tiny (colourisation)", "ddcolor", "pytorch_model.bin",
               "Hugging Face hub piddnad/ddcolor_paper_tiny", "Apache-2.0",
               "https://github.com/piddnad/DDColor/blob/master/LICENSE"),
          )),
    )
}

#: the repair parts (engine/repair): never needed to restore faces
REPAIR_PARTS = ("scratch-detector", "lama", "realesrgan-x2", "realesrgan-x4", "swinir-x4", "ddcolor")

RESTORATION_PARTS = tuple(name for name, part in PARTS.items() if part.required_for_restoration)


def part_dir(models_dir: Path, name: str) -> Path:
    return Path(models_dir) / PARTS[name].folder


def find_file(models_dir: Path, name: str, spec: FileSpec) -> Path | None:
    """The first existing alternative of `spec` inside part `name`, or None."""
    base = part_dir(models_dir, name)
    for candidate in spec:
        path = base / candidate
        if path.is_file():
            return path
    return None


@dataclass(frozen=True)
class PartStatus:
    name: str
    state: str  # "present" | "missing" | "invalid"
    detail: str
    where_to_get: str

    @property
    def ok(self) -> bool:
        return self.state == "present"


def _check_file(path: Path) -> str | None:
    """A light validity check that reads only headers; returns a problem or None."""
    try:
        size = path.stat().st_size
        if size == 0:
            return "empty file"
        if path.suffix == ".json":
            json.loads(path.read_text(encoding="utf-8"))
        elif path.suffix == ".safetensors":
            with path.open("rb") as f:
                (header_len,) = struct.unpack("<Q", f.read(8))
                if header_len <= 0 or header_len > size - 8:
                    return "not a safetensors file (bad header length)"
                json.loads(f.read(header_len))
    except (OSError, ValueError, struct.error) as exc:
        return f"unreadable ({exc.__class__.__name__}: {exc})"
    return None


def check_part(models_dir: Path, name: str, full: bool = False) -> PartStatus:
    """Present, missing or invalid. With an installed record (see `integrity.py`), each file's stamp is
    compared too (re-hashed when it changed; with `full=True` always), and files the record does not
    list make the part invalid."""
    return check_part_folder(part_dir(models_dir, name), name, full=full)


def check_part_folder(base: Path, name: str, full: bool = False) -> PartStatus:
    """`check_part` for a part laid out in any folder (e.g. a staging folder before it is installed)."""
    from engine.errors import ModelPackError
    from engine.models.integrity import read_record  # integrity imports nothing from here

    part = PARTS[name]
    base = Path(base)
    missing, invalid = [], []
    for spec in part.files:
        found = next((base / c for c in spec if (base / c).is_file()), None)
        if found is None:
            missing.append(" or ".join(spec))
            continue
        problem = _check_file(found)
        if problem:
            invalid.append(f"{found.relative_to(base)}: {problem}")
    if missing and len(missing) == len(part.files):
        return PartStatus(name, "missing", f"{base} not found or empty", part.where_to_get)
    try:
        record = read_record(base)
    except ModelPackError as exc:  # a damaged record makes the part invalid, not the command crash
        record = None
        invalid.append(str(exc))
    if record is not None:
        invalid += [str(problem) for problem in _changed_files(base, record, full)]
    if missing or invalid:
        detail = "; ".join([*(f"missing {m}" for m in missing), *invalid])
        return PartStatus(name, "invalid", f"{base}: {detail}", part.where_to_get)
    return PartStatus(name, "present", str(base), part.where_to_get)


@dataclass(frozen=True)
class FileProblem:
    """One way a part folder differs from its installed record."""

    rel: str
    problem: str
    #: True when the file must go (it is not part of the pack), False when the part must be reinstalled
    remove: bool = False

    def __str__(self) -> str:
        return f"{self.rel}: {self.problem}"


def _changed_files(base: Path, record, full: bool) -> list[FileProblem]:
    """What differs from the installed record: a missing file, another size, another SHA-256 (hashed
    when the file's stamp changed, or always with `full`), or a file the record does not list. Files
    found unchanged under a new stamp get it recorded, so the next check costs a stat again."""
    from engine.models.integrity import hash_with_stamp, stamp_of, unrecorded_entries, write_record

    problems, restamped = [], {}
    for rel, entry in sorted(record.files.items()):
        path = base / rel
        if not path.is_file():
            problems.append(FileProblem(rel, "recorded at install but missing now"))
            continue
        stamp = stamp_of(path)
        if stamp.size != entry.size:
            problems.append(FileProblem(rel, f"size {stamp.size} differs from the installed {entry.size}"))
        elif full or stamp != entry.stamp:
            digest, hashed_stamp = hash_with_stamp(path)
            if digest != entry.sha256:
                problems.append(FileProblem(rel, "content changed since install (SHA-256 differs)"))
            elif hashed_stamp is not None and hashed_stamp != entry.stamp:
                restamped[rel] = hashed_stamp
    problems += [FileProblem(rel, "not part of the installed pack (added after install; a loader could pick it "
                                  "instead of the checked files); remove it", remove=True)
                 for rel in unrecorded_entries(base, record)]
    if restamped and not problems:
        from dataclasses import replace

        files = {rel: f.with_stamp(restamped[rel]) if rel in restamped else f for rel, f in record.files.items()}
        try:
            write_record(base, replace(record, files=files))
        except OSError:  # a read-only pack: it is re-hashed next time instead
            pass
    return problems


def check_before_loading(models_dir: Path, names: tuple[str, ...] = RESTORATION_PARTS) -> None:
    """The check before a pipeline loads weights: each part present and valid, every file compared with
    its install record (its stamp; re-hashed when that changed), no file the record does not list.
    ModelPackError (exit 4) naming the first file found wrong. A part without a record gets one now
    (`record_first_use`, with a warning)."""
    from engine.errors import ModelPackError
    from engine.models.integrity import read_record, record_first_use

    for name in names:
        base = part_dir(models_dir, name)
        status = check_part(models_dir, name)
        record = read_record(base) if status.state != "missing" else None
        if not status.ok:
            changed = _changed_files(base, record, full=False) if record is not None else []
            if changed:  # name the file (hashes are cached: this costs nothing more)
                first = changed[0]
                hint = None if first.remove else f"reinstall it: `faceme models download {name}`"
                raise ModelPackError(f"{PARTS[name].title}: {first.problem}", base / first.rel, part=name, hint=hint)
            raise ModelPackError(f"{PARTS[name].title} is {status.state}: {status.detail}", part=name,
                                 hint=f"get it: {status.where_to_get}")
        if record is None:
            record_first_use(base, name)


def verify_pack(models_dir: Path, names: tuple[str, ...] = RESTORATION_PARTS,
                full: bool = False) -> list[PartStatus]:
    return [check_part(models_dir, name, full=full) for name in names]
