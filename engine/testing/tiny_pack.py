"""A tiny FaceMe model pack in exactly the released formats, for tests, training smoke runs and benches.

    python -m engine.testing.tiny_pack OUT_DIR [--scrfd PATH]

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

Interface widths follow SDXL's structure (cross-attention = text width 1 + text width 2; added
embedding = 6 time ids × time-embed width + pooled width) at small sizes, so the pack runs in a couple
of seconds per 512 px restoration on a CPU.
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
from pathlib import Path

import torch
from torch import nn

log = logging.getLogger(__name__)

SEED = 20250109
REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_SCRFD = REPO_ROOT.parent / "shared" / "models" / "insightface_scrfd" / "det_500m.onnx"

# Tiny widths (the real ones in comments).
TEXT_WIDTH_1 = 32  # CLIP-L 768
TEXT_WIDTH_2 = 32  # OpenCLIP-bigG 1280
POOLED_WIDTH = 32  # 1280
TIME_EMBED_WIDTH = 8  # 256
VISION_HIDDEN = 64  # 1024 (one 64-wide head, like every OpenAI CLIP ViT head)
VISION_PROJECTION = 16  # 768
VISION_PROJECTION_2 = 16  # 1280
MIX_ID_HIDDEN = 32  # 1024
ARCFACE_WIDTH = 512  # 512 (the ONNX signature is kept)

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


# ---- the parts --------------------------------------------------------------------------------------

def build_unet():
    from diffusers import UNet2DConditionModel

    torch.manual_seed(SEED)
    return UNet2DConditionModel(
        sample_size=64,
        in_channels=4,
        out_channels=4,
        # Attention only at the lowest resolution (16×16 latent tokens) keeps a CPU step cheap.
        down_block_types=("DownBlock2D", "DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D", "UpBlock2D"),
        block_out_channels=(16, 32, 64),
        layers_per_block=1,
        attention_head_dim=(2, 2, 4),
        transformer_layers_per_block=(1, 1, 1),
        use_linear_projection=True,
        cross_attention_dim=TEXT_WIDTH_1 + TEXT_WIDTH_2,
        addition_embed_type="text_time",
        addition_time_embed_dim=TIME_EMBED_WIDTH,
        projection_class_embeddings_input_dim=6 * TIME_EMBED_WIDTH + POOLED_WIDTH,
        norm_num_groups=8,
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


def build_text_encoders():
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    common = dict(vocab_size=49408, max_position_embeddings=77, num_hidden_layers=3, hidden_act="quick_gelu",
                  bos_token_id=49406, eos_token_id=49407, pad_token_id=1)
    torch.manual_seed(SEED + 2)
    text_encoder = CLIPTextModel(CLIPTextConfig(hidden_size=TEXT_WIDTH_1, intermediate_size=4 * TEXT_WIDTH_1,
                                                num_attention_heads=4, **common))
    torch.manual_seed(SEED + 3)
    text_encoder_2 = CLIPTextModelWithProjection(CLIPTextConfig(
        hidden_size=TEXT_WIDTH_2, intermediate_size=4 * TEXT_WIDTH_2, num_attention_heads=4,
        projection_dim=POOLED_WIDTH, **{**common, "hidden_act": "gelu"}))
    return text_encoder, text_encoder_2


def build_photomaker_state() -> dict[str, dict[str, torch.Tensor]]:
    """{"id_encoder": CLIP vision + visual_projection_2 + fuse_module, "lora_weights": …} (PhotoMaker v1)."""
    from transformers import CLIPVisionConfig

    from engine.faceme.id_encoder import CLIPIdentityEncoder

    torch.manual_seed(SEED + 4)
    config = CLIPVisionConfig(hidden_size=VISION_HIDDEN, intermediate_size=2 * VISION_HIDDEN, num_hidden_layers=2,
                              num_attention_heads=VISION_HIDDEN // 64, patch_size=28, image_size=224,
                              projection_dim=VISION_PROJECTION, hidden_act="quick_gelu")
    encoder = CLIPIdentityEncoder(config, VISION_PROJECTION_2)
    id_state = {k: v.contiguous().clone() for k, v in encoder.state_dict().items()}
    # PhotoMaker's fuse module (an MLP pair over CLIP features and prompt embeddings): present, unused.
    fuse_in, fuse_w = VISION_PROJECTION + VISION_PROJECTION_2, 2 * TEXT_WIDTH_1
    for name, shape in (("mlp1.layernorm.weight", (fuse_w,)), ("mlp1.layernorm.bias", (fuse_w,)),
                        ("mlp1.fc1.weight", (fuse_in, fuse_w)), ("mlp1.fc1.bias", (fuse_in,)),
                        ("mlp1.fc2.weight", (fuse_in, fuse_in)), ("mlp1.fc2.bias", (fuse_in,)),
                        ("mlp2.layernorm.weight", (fuse_in,)), ("mlp2.layernorm.bias", (fuse_in,)),
                        ("mlp2.fc1.weight", (fuse_in, fuse_in)), ("mlp2.fc1.bias", (fuse_in,)),
                        ("mlp2.fc2.weight", (fuse_in, fuse_in)), ("mlp2.fc2.bias", (fuse_in,)),
                        ("layer_norm.weight", (fuse_in,)), ("layer_norm.bias", (fuse_in,))):
        id_state[f"fuse_module.{name}"] = torch.randn(shape) * 0.02
    lora = {}
    for block in ("down_blocks.1.attentions.0", "mid_block.attentions.0", "up_blocks.0.attentions.0"):
        for proj in ("to_q", "to_k", "to_v", "to_out"):
            prefix = f"unet.{block}.transformer_blocks.0.attn1.processor.{proj}_lora"
            lora[f"{prefix}.down.weight"] = torch.randn(4, 64) * 0.02
            lora[f"{prefix}.up.weight"] = torch.zeros(64, 4)
    return {"id_encoder": id_state, "lora_weights": lora}


def build_mix():
    from engine.faceme.mix import Mix

    torch.manual_seed(SEED + 5)
    return Mix(arcface_dim=ARCFACE_WIDTH, id_hidden_dim=MIX_ID_HIDDEN,
               clip_dim=VISION_PROJECTION + VISION_PROJECTION_2, token_dim=TEXT_WIDTH_1 + TEXT_WIDTH_2)


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

def write_tiny_pack(out_dir: str | Path, scrfd_path: str | Path | None = None) -> Path:
    """Write a complete tiny pack into `out_dir` (created; must be empty or absent). Returns it."""
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
    unet = build_unet()
    unet.save_pretrained(base / "unet")
    build_vae().save_pretrained(base / "vae")
    text_encoder, text_encoder_2 = build_text_encoders()
    text_encoder.save_pretrained(base / "text_encoder")
    text_encoder_2.save_pretrained(base / "text_encoder_2")
    vocab, merges = clip_vocab_and_merges()
    write_tokenizer(base / "tokenizer", vocab, merges, pad_token="<|endoftext|>")
    write_tokenizer(base / "tokenizer_2", vocab, merges, pad_token="!")
    (base / "scheduler").mkdir()
    (base / "scheduler" / "scheduler_config.json").write_text(json.dumps(SCHEDULER_CONFIG, indent=2),
                                                              encoding="utf-8")

    torch.manual_seed(SEED + 7)
    controlnet = ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=(4, 8, 8, 16))
    controlnet.save_pretrained(part_dir(out, "faceme-controlnet"))

    mix_dir = part_dir(out, "faceme-mix")
    mix_dir.mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in build_mix().state_dict().items()}, str(mix_dir / "mix.safetensors"))

    photomaker = part_dir(out, "photomaker")
    photomaker.mkdir(parents=True)
    torch.save(build_photomaker_state(), photomaker / "photomaker-v1.bin")

    antelope = part_dir(out, "antelopev2")
    antelope.mkdir(parents=True)
    shutil.copyfile(scrfd, antelope / "scrfd_10g_bnkps.onnx")
    export_tiny_arcface(antelope / "glintr100.onnx")
    log.info("tiny pack written to %s in %.1f s", out, time.monotonic() - started)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m engine.testing.tiny_pack", description=__doc__.split("\n")[0])
    parser.add_argument("out_dir", type=Path, help="folder to write the pack into (absent or empty)")
    parser.add_argument("--scrfd", type=Path, default=None,
                        help=f"SCRFD detector ONNX to use (default: {DEFAULT_SCRFD})")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        started = time.monotonic()
        write_tiny_pack(args.out_dir, args.scrfd)
    except (FileNotFoundError, FileExistsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    size = sum(p.stat().st_size for p in args.out_dir.rglob("*") if p.is_file())
    print(f"tiny pack: {args.out_dir} ({size / 1e6:.1f} MB, {time.monotonic() - started:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
