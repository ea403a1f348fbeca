"""A tiny FaceMe model pack in exactly the released formats, for tests, training smoke runs and benches.

    python -m engine.testing.tiny_pack OUT_DIR [--scrfd PATH] [--preset tiny|interface]

Writes the layout of engine/models/layout.py with random (seeded) weights of the real architectures:
- realvisxl_v3.0/: diffusers folders (model_index.json, unet, vae with four blocks (÷8), CLIPTextModel,
  CLIPTextModelWithProjection, two CLIPTokenizers built from the real CLIP BPE vocabulary, the SDXL
  scheduler config);
- photomaker/photomaker-v1.bin: a torch pickle {"id_encoder": …, "lora_weights": …} whose id_encoder
  holds CLIPVisionModelWithProjection keys + visual_projection_2 + PhotoMaker's fuse_module keys;
- faceme/controlnet/: ControlNetModel.from_unet (small conditioning embedding), diffusers save;
- faceme/mix/mix.safetensors: the official key names at tiny widths;
- insightface/antelopev2/: the real SCRFD detector (InsightFace det_500m, copied under the antelopev2
  name scrfd_10g_bnkps.onnx) and a tiny ArcFace-signature ONNX (1×3×112×112 → 512) as glintr100.onnx.

Two presets (`PackWidths`):
- `tiny` (the default, `TINY`): interface widths follow SDXL's structure (cross-attention = text width 1
  + text width 2; added embedding = 6 time ids × time-embed width + pooled width) at small sizes, so the
  pack (about 27 MB) runs in a couple of seconds per 512 px restoration on a CPU;
- `interface` (`INTERFACE`): every tensor interface the released weights meet keeps its released width
  (CLIP ViT-L/14 vision tower hidden 1024 at 224 px with patch 14 and projections 768 + 1280; Mix at
  the released shapes; text encoders 768 and 1280 wide, pooled 1280; UNet cross-attention 2048, time
  ids embedded 256 wide, added embedding 2816; ArcFace 512), with one or two layers per encoder and
  narrow UNet/VAE blocks inside those interfaces. About 495 MB, written as fp16 (the base model as
  the `fp16` variant files RealVisXL is usually downloaded as), filled from a seeded generator
  without the libraries' slow initialisers; it tests the released Mix and CLIP shapes end to end.
"""

from __future__ import annotations

import argparse
import gzip
import importlib.util
import json
import logging
import shutil
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

log = logging.getLogger(__name__)

SEED = 20250109
REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_SCRFD = REPO_ROOT.parent / "shared" / "models" / "insightface_scrfd" / "det_500m.onnx"



@dataclass(frozen=True)
class PackWidths:
    """The widths and depths a pack is built with (the released values in comments)."""

    name: str
    text_width_1: int  # CLIP-L 768
    text_width_2: int  # OpenCLIP-bigG 1280
    text_heads_1: int  # 12
    text_heads_2: int  # 20
    text_layers: int  # 12 and 32
    pooled_width: int  # 1280 (text_encoder_2's projection)
    time_embed_width: int  # 256
    vision_hidden: int  # 1024 (heads are 64 wide, as in every OpenAI CLIP ViT)
    vision_intermediate: int  # 4096
    vision_layers: int  # 24
    vision_patch: int  # 14 (at 224 px: 16 × 16 patches + the class token = 257 positions)
    vision_projection: int  # 768
    vision_projection_2: int  # 1280
    mix_id_hidden: int  # 1024
    unet_down_blocks: tuple[str, ...]
    unet_up_blocks: tuple[str, ...]
    unet_channels: tuple[int, ...]  # (320, 640, 1280)
    unet_heads: tuple[int, ...]  # diffusers' `attention_head_dim`, which SDXL uses as the head count
    unet_norm_groups: int  # 32
    unet_sample_size: int  # 128
    controlnet_embedding_channels: tuple[int, ...]  # (16, 32, 96, 256), diffusers' default
    storage_dtype: torch.dtype  # fp16 in the release
    base_variant: str | None  # "fp16": diffusion_pytorch_model.fp16.safetensors, model.fp16.safetensors
    fast_init: bool  # seeded uniform fill of meta-built modules instead of the libraries' initialisers

    @property
    def cross_attention_width(self) -> int:
        return self.text_width_1 + self.text_width_2

    @property
    def clip_width(self) -> int:
        return self.vision_projection + self.vision_projection_2


TINY = PackWidths(
    name="tiny", text_width_1=32, text_width_2=32, text_heads_1=4, text_heads_2=4, text_layers=3,
    pooled_width=32, time_embed_width=8, vision_hidden=64, vision_intermediate=128, vision_layers=2,
    vision_patch=28, vision_projection=16, vision_projection_2=16, mix_id_hidden=32,
    # Attention only at the lowest resolution (16×16 latent tokens) keeps a CPU step cheap.
    unet_down_blocks=("DownBlock2D", "DownBlock2D", "CrossAttnDownBlock2D"),
    unet_up_blocks=("CrossAttnUpBlock2D", "UpBlock2D", "UpBlock2D"),
    unet_channels=(16, 32, 64), unet_heads=(2, 2, 4), unet_norm_groups=8, unet_sample_size=64,
    controlnet_embedding_channels=(4, 8, 8, 16), storage_dtype=torch.float32, base_variant=None,
    fast_init=False,
)

INTERFACE = PackWidths(
    name="interface", text_width_1=768, text_width_2=1280, text_heads_1=12, text_heads_2=20,
    # Two layers, so the penultimate hidden state SDXL takes is a transformer layer's output.
    text_layers=2,
    pooled_width=1280, time_embed_width=256, vision_hidden=1024, vision_intermediate=4096, vision_layers=1,
    vision_patch=14, vision_projection=768, vision_projection_2=1280, mix_id_hidden=1024,
    # SDXL's block types (attention in the two lower levels), one layer each, narrow channels.
    unet_down_blocks=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
    unet_up_blocks=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
    unet_channels=(32, 64, 128), unet_heads=(1, 2, 4), unet_norm_groups=32, unet_sample_size=128,
    controlnet_embedding_channels=(16, 32, 96, 256), storage_dtype=torch.float16, base_variant="fp16",
    fast_init=True,
)

PRESETS = {widths.name: widths for widths in (TINY, INTERFACE)}

# The everyday tiny widths under their historical names.
TEXT_WIDTH_1 = TINY.text_width_1
TEXT_WIDTH_2 = TINY.text_width_2
POOLED_WIDTH = TINY.pooled_width
TIME_EMBED_WIDTH = TINY.time_embed_width
VISION_HIDDEN = TINY.vision_hidden
VISION_PROJECTION = TINY.vision_projection
VISION_PROJECTION_2 = TINY.vision_projection_2
MIX_ID_HIDDEN = TINY.mix_id_hidden
ARCFACE_WIDTH = 512  # 512 in every preset (the ONNX signature is kept)

# The SDXL base scheduler config, which RealVisXL V3.0 ships (DDPM reads the same file).
SCHEDULER_CONFIG = {
    "_class_name": "EulerDiscreteScheduler",
    "_diffusers_version": "0.21.0",
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "beta_start": 0.00085,
    "clip_sample": False,
    "interpolation_type": "linear",
    "num_train_timesteps": 1000,
    "prediction_type": "epsilon",
    "sample_max_value": 1.0,
    "set_alpha_to_one": False,
    "skip_prk_steps": True,
    "steps_offset": 1,
    "timestep_spacing": "leading",
    "trained_betas": None,
    "use_karras_sigmas": False,
}

MODEL_INDEX = {
    "_class_name": "StableDiffusionXLPipeline",
    "_diffusers_version": "0.21.0",
    "force_zeros_for_empty_prompt": True,
    "add_watermarker": None,
    "scheduler": ["diffusers", "EulerDiscreteScheduler"],
    "text_encoder": ["transformers", "CLIPTextModel"],
    "text_encoder_2": ["transformers", "CLIPTextModelWithProjection"],
    "tokenizer": ["transformers", "CLIPTokenizer"],
    "tokenizer_2": ["transformers", "CLIPTokenizer"],
    "unet": ["diffusers", "UNet2DConditionModel"],
    "vae": ["diffusers", "AutoencoderKL"],
}


# ---- tokenizers from the real CLIP BPE vocabulary ---------------------------------------------------

def bpe_vocab_path() -> Path:
    """open_clip's bpe_simple_vocab_16e6.txt.gz, located without importing open_clip (needs torchvision)."""
    spec = importlib.util.find_spec("open_clip")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("open-clip-torch is not installed (its wheel carries the CLIP BPE vocabulary)")
    for location in spec.submodule_search_locations:
        path = Path(location) / "bpe_simple_vocab_16e6.txt.gz"
        if path.is_file():
            return path
    raise FileNotFoundError("bpe_simple_vocab_16e6.txt.gz not found in the open_clip package")


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP's reversible byte → printable character table."""
    printable = (list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
                 + list(range(ord("®"), ord("ÿ") + 1)))
    codes = printable[:]
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            codes.append(256 + extra)
            extra += 1
    return dict(zip(printable, map(chr, codes)))


def clip_vocab_and_merges(path: Path | None = None) -> tuple[dict[str, int], list[str]]:
    """The 49,408-entry CLIP vocabulary and its 48,894 merges, as CLIP's own tokenizer builds them."""
    lines = gzip.open(path or bpe_vocab_path()).read().decode("utf-8").split("\n")
    merges = lines[1:49152 - 256 - 2 + 1]
    symbols = list(_bytes_to_unicode().values())
    vocab = symbols + [s + "</w>" for s in symbols] + ["".join(m.split()) for m in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    return {token: i for i, token in enumerate(vocab)}, merges


def write_tokenizer(folder: Path, vocab: dict[str, int], merges: list[str], pad_token: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")
    special = {"bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>", "unk_token": "<|endoftext|>",
               "pad_token": pad_token}
    (folder / "special_tokens_map.json").write_text(json.dumps(special, indent=2), encoding="utf-8")
    config = {**special, "add_prefix_space": False, "clean_up_tokenization_spaces": True,
              "do_lower_case": True, "errors": "replace", "model_max_length": 77,
              "tokenizer_class": "CLIPTokenizer"}
    (folder / "tokenizer_config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")


# ---- fast random weights ----------------------------------------------------------------------------

def _uniform(shape, generator: torch.Generator, dtype: torch.dtype, std: float = 0.02) -> torch.Tensor:
    """Zero-mean uniform values with standard deviation `std` (uniform_ is the cheapest CPU sampler)."""
    bound = std * 3 ** 0.5
    return torch.empty(shape, dtype=dtype).uniform_(-bound, bound, generator=generator)


def fill_random(module: nn.Module, seed: int, dtype: torch.dtype) -> nn.Module:
    """Give a module built on the meta device seeded values, fast: weights uniform (std 0.02), norm
    weights 1, biases 0; then restore the non-persistent `position_ids` buffers CLIP models keep.

    The libraries' initialisers (kaiming, truncated normals, per-module init hooks) take several
    seconds for the interface widths' 230 M parameters; a tiny test model needs values, not their law.
    """
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for module_name, sub in module.named_modules():
        prefix = f"{module_name}." if module_name else ""
        for name, param in sub.named_parameters(recurse=False):
            if isinstance(sub, (nn.LayerNorm, nn.GroupNorm)) and name == "weight":
                value = torch.ones(param.shape, dtype=dtype)
            elif name == "bias":
                value = torch.zeros(param.shape, dtype=dtype)
            else:
                value = _uniform(param.shape, generator, dtype)
            state[prefix + name] = value
    module.load_state_dict(state, strict=True, assign=True)
    for module_name, sub in module.named_modules():
        for name, buffer in list(sub.named_buffers(recurse=False)):
            if not buffer.is_meta:
                continue
            if name != "position_ids":
                raise ValueError(f"{module_name}.{name}: no rule to fill this buffer")
            sub.register_buffer(name, torch.arange(buffer.shape[-1]).expand(buffer.shape), persistent=False)
    return module.requires_grad_(False)


def _save_pretrained(model, folder: Path, widths: PackWidths, variant: str | None = None) -> None:
    """save_pretrained in the storage dtype; note that nn.Module.to converts `model` in place."""
    if widths.storage_dtype != torch.float32:
        model = model.to(widths.storage_dtype)
    if variant is None:
        model.save_pretrained(folder)
    else:
        model.save_pretrained(folder, variant=variant)


# ---- the parts --------------------------------------------------------------------------------------

def build_unet(widths: PackWidths = TINY):
    from diffusers import UNet2DConditionModel

    torch.manual_seed(SEED)
    return UNet2DConditionModel(
        sample_size=widths.unet_sample_size,
        in_channels=4,
        out_channels=4,
        down_block_types=widths.unet_down_blocks,
        up_block_types=widths.unet_up_blocks,
        block_out_channels=widths.unet_channels,
        layers_per_block=1,
        attention_head_dim=widths.unet_heads,
        transformer_layers_per_block=(1,) * len(widths.unet_channels),
        use_linear_projection=True,
        cross_attention_dim=widths.cross_attention_width,
        addition_embed_type="text_time",
        addition_time_embed_dim=widths.time_embed_width,
        projection_class_embeddings_input_dim=6 * widths.time_embed_width + widths.pooled_width,
        norm_num_groups=widths.unet_norm_groups,
    )


def build_vae():
    from diffusers import AutoencoderKL

    torch.manual_seed(SEED + 1)
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(8, 16, 16, 16),
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=8,
        sample_size=512,
        scaling_factor=0.13025,
        force_upcast=True,
    )


def _build(factory, widths: PackWidths, seed: int):
    """`factory()` with the default initialisers, or (fast_init) built on the meta device and filled."""
    if not widths.fast_init:
        torch.manual_seed(seed)
        return factory()
    with torch.device("meta"):
        module = factory()
    return fill_random(module, seed, widths.storage_dtype)


def build_text_encoders(widths: PackWidths = TINY):
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    common = dict(vocab_size=49408, max_position_embeddings=77, num_hidden_layers=widths.text_layers,
                  hidden_act="quick_gelu", bos_token_id=49406, eos_token_id=49407, pad_token_id=1)
    text_encoder = _build(lambda: CLIPTextModel(CLIPTextConfig(
        hidden_size=widths.text_width_1, intermediate_size=4 * widths.text_width_1,
        num_attention_heads=widths.text_heads_1, **common)), widths, SEED + 2)
    text_encoder_2 = _build(lambda: CLIPTextModelWithProjection(CLIPTextConfig(
        hidden_size=widths.text_width_2, intermediate_size=4 * widths.text_width_2,
        num_attention_heads=widths.text_heads_2, projection_dim=widths.pooled_width,
        **{**common, "hidden_act": "gelu"})), widths, SEED + 3)
    return text_encoder, text_encoder_2


def build_photomaker_state(widths: PackWidths = TINY) -> dict[str, dict[str, torch.Tensor]]:
    """{"id_encoder": CLIP vision + visual_projection_2 + fuse_module, "lora_weights": …} (PhotoMaker v1)."""
    from transformers import CLIPVisionConfig

    from engine.faceme.id_encoder import CLIPIdentityEncoder

    config = CLIPVisionConfig(hidden_size=widths.vision_hidden, intermediate_size=widths.vision_intermediate,
                              num_hidden_layers=widths.vision_layers,
                              num_attention_heads=widths.vision_hidden // 64, patch_size=widths.vision_patch,
                              image_size=224, projection_dim=widths.vision_projection, hidden_act="quick_gelu")
    encoder = _build(lambda: CLIPIdentityEncoder(config, widths.vision_projection_2), widths, SEED + 4)
    id_state = {k: v.contiguous().clone() for k, v in encoder.state_dict().items()}
    if widths.fast_init:
        generator = torch.Generator().manual_seed(SEED + 8)

        def small_random(shape):
            return _uniform(shape, generator, widths.storage_dtype)
    else:
        def small_random(shape):
            return torch.randn(shape) * 0.02
    # PhotoMaker's fuse module (an MLP pair over CLIP features and prompt embeddings): present, unused.
    # Released: mlp1 MLP(4096 → 2048), mlp2 MLP(2048 → 2048, residual), layer_norm(2048).
    fuse_in = widths.clip_width
    fuse_w = 2 * fuse_in
    for name, shape in (("mlp1.layernorm.weight", (fuse_w,)), ("mlp1.layernorm.bias", (fuse_w,)),
                        ("mlp1.fc1.weight", (fuse_in, fuse_w)), ("mlp1.fc1.bias", (fuse_in,)),
                        ("mlp1.fc2.weight", (fuse_in, fuse_in)), ("mlp1.fc2.bias", (fuse_in,)),
                        ("mlp2.layernorm.weight", (fuse_in,)), ("mlp2.layernorm.bias", (fuse_in,)),
                        ("mlp2.fc1.weight", (fuse_in, fuse_in)), ("mlp2.fc1.bias", (fuse_in,)),
                        ("mlp2.fc2.weight", (fuse_in, fuse_in)), ("mlp2.fc2.bias", (fuse_in,)),
                        ("layer_norm.weight", (fuse_in,)), ("layer_norm.bias", (fuse_in,))):
        id_state[f"fuse_module.{name}"] = small_random(shape)
    lora = {}
    for block in ("down_blocks.1.attentions.0", "mid_block.attentions.0", "up_blocks.0.attentions.0"):
        for proj in ("to_q", "to_k", "to_v", "to_out"):
            prefix = f"unet.{block}.transformer_blocks.0.attn1.processor.{proj}_lora"
            lora[f"{prefix}.down.weight"] = small_random((4, 64))
            lora[f"{prefix}.up.weight"] = torch.zeros(64, 4, dtype=widths.storage_dtype)
    return {"id_encoder": id_state, "lora_weights": lora}


def build_mix(widths: PackWidths = TINY):
    from engine.faceme.mix import Mix

    return _build(lambda: Mix(arcface_dim=ARCFACE_WIDTH, id_hidden_dim=widths.mix_id_hidden,
                              clip_dim=widths.clip_width, token_dim=widths.cross_attention_width),
                  widths, SEED + 5)


class TinyArcFace(nn.Module):
    """ArcFace's signature: (N, 3, 112, 112), pixels normalised (x − 127.5) / 127.5 → (N, 512)."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 8, 4, stride=4), nn.PReLU(8), nn.Conv2d(8, 16, 4, stride=4),
                                      nn.PReLU(16))
        self.fc = nn.Linear(16 * 7 * 7, ARCFACE_WIDTH)
        self.bn = nn.BatchNorm1d(ARCFACE_WIDTH)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.fc(torch.flatten(self.features(x), 1)))


def export_tiny_arcface(path: Path) -> None:
    torch.manual_seed(SEED + 6)
    model = TinyArcFace().eval()
    # One file: the TorchScript exporter (dynamo=False) keeps the weights inside; it rejects purely
    # numeric output names, hence "embedding". It warns that it is the legacy exporter: expected.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(model, (torch.zeros(1, 3, 112, 112),), str(path), dynamo=False, opset_version=17,
                          input_names=["input.1"], output_names=["embedding"],
                          dynamic_axes={"input.1": {0: "None"}, "embedding": {0: "None"}})


# ---- the whole pack ---------------------------------------------------------------------------------

def write_tiny_pack(out_dir: str | Path, scrfd_path: str | Path | None = None,
                    widths: PackWidths | str = TINY) -> Path:
    """Write a complete pack of the preset `widths` (TINY, INTERFACE or their names) into `out_dir`
    (created; must be empty or absent). Returns it."""
    if isinstance(widths, str):
        if widths not in PRESETS:
            raise ValueError(f"unknown preset {widths!r} (known: {', '.join(PRESETS)})")
        widths = PRESETS[widths]
    out = Path(out_dir)
    scrfd = Path(scrfd_path) if scrfd_path else DEFAULT_SCRFD
    if not scrfd.is_file():
        raise FileNotFoundError(f"{scrfd}: the SCRFD detector (InsightFace det_500m.onnx) is needed for the "
                                "tiny pack's face detector; pass --scrfd PATH")
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out} is not empty")
    from diffusers import ControlNetModel
    from safetensors.torch import save_file

    from engine.models.layout import part_dir

    started = time.monotonic()

    base = part_dir(out, "realvisxl")
    base.mkdir(parents=True)
    (base / "model_index.json").write_text(json.dumps(MODEL_INDEX, indent=2), encoding="utf-8")
    unet = build_unet(widths)
    _save_pretrained(unet, base / "unet", widths, widths.base_variant)
    _save_pretrained(build_vae(), base / "vae", widths, widths.base_variant)
    text_encoder, text_encoder_2 = build_text_encoders(widths)
    _save_pretrained(text_encoder, base / "text_encoder", widths, widths.base_variant)
    _save_pretrained(text_encoder_2, base / "text_encoder_2", widths, widths.base_variant)
    del text_encoder, text_encoder_2
    vocab, merges = clip_vocab_and_merges()
    write_tokenizer(base / "tokenizer", vocab, merges, pad_token="<|endoftext|>")
    write_tokenizer(base / "tokenizer_2", vocab, merges, pad_token="!")
    (base / "scheduler").mkdir()
    (base / "scheduler" / "scheduler_config.json").write_text(json.dumps(SCHEDULER_CONFIG, indent=2),
                                                              encoding="utf-8")

    torch.manual_seed(SEED + 7)
    # from_unet copies the UNet's weights (saved above in the storage dtype, in place) into fp32 modules.
    controlnet = ControlNetModel.from_unet(
        unet.float(), conditioning_embedding_out_channels=widths.controlnet_embedding_channels)
    _save_pretrained(controlnet, part_dir(out, "faceme-controlnet"), widths)

    mix_dir = part_dir(out, "faceme-mix")
    mix_dir.mkdir(parents=True)
    save_file({k: v.contiguous().to(widths.storage_dtype) for k, v in build_mix(widths).state_dict().items()},
              str(mix_dir / "mix.safetensors"))

    photomaker = part_dir(out, "photomaker")
    photomaker.mkdir(parents=True)
    torch.save(build_photomaker_state(widths), photomaker / "photomaker-v1.bin")

    antelope = part_dir(out, "antelopev2")
    antelope.mkdir(parents=True)
    shutil.copyfile(scrfd, antelope / "scrfd_10g_bnkps.onnx")
    export_tiny_arcface(antelope / "glintr100.onnx")
    log.info("%s pack written to %s in %.1f s", widths.name, out, time.monotonic() - started)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m engine.testing.tiny_pack", description=__doc__.split("\n")[0])
    parser.add_argument("out_dir", type=Path, help="folder to write the pack into (absent or empty)")
    parser.add_argument("--scrfd", type=Path, default=None,
                        help=f"SCRFD detector ONNX to use (default: {DEFAULT_SCRFD})")
    parser.add_argument("--preset", choices=sorted(PRESETS), default=TINY.name,
                        help="tiny: small widths, fast (default); interface: the released tensor interfaces "
                             "(CLIP ViT-L/14, Mix, 768+1280 text, 2816 added embedding) with shallow layers")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        started = time.monotonic()
        write_tiny_pack(args.out_dir, args.scrfd, args.preset)
        from engine.testing.tiny_repair_pack import write_repair_parts

        write_repair_parts(args.out_dir)  # the whole-photo repair models (issue 24)
    except (FileNotFoundError, FileExistsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    size = sum(p.stat().st_size for p in args.out_dir.rglob("*") if p.is_file())
    print(f"{args.preset} pack: {args.out_dir} ({size / 1e6:.1f} MB, {time.monotonic() - started:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
