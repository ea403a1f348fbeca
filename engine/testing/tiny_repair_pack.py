"""Tiny random-weight versions of the repair models, each in its released checkpoint format, laid out
as the model pack's repair parts (`engine.models.layout`), so tests load them through the users' code.

| part | released file | format written here |
|---|---|---|
| realesrgan-x2 / -x4 | RealESRGAN_x2plus.pth / _x4plus.pth | torch pickle {"params_ema": basicsr RRDBNet keys}; 1 block, 8 channels (growth 32, as spandrel reads it) |
| swinir-x4 | 003_realSR_BSRGAN_DFOWMFC_s64w8_SwinIR-L_x4_GAN.pth | {"params_ema": SwinIR keys}; one stage of width 12 |
| lama | big-lama.pt | TorchScript archive of the LaMa generator (spandrel builds LaMa at its one released size: 51 M parameters, stored in fp16 here, about 100 MB) |
| ddcolor | pytorch_model.bin | plain state dict (the hub's PyTorchModelHubMixin form); ConvNeXt-T encoder (the smallest spandrel reads), one decoder layer, 8 queries, fp16 |
| scratch-detector | FT_Epoch_latest.pt | {"model_state": state dict, "epoch": 0}; 4 channels at the stem, depth 4 |

Weights are seeded: the same files every time (the TorchScript archive's bytes may still differ).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import torch

log = logging.getLogger(__name__)

SEED = 24


def _random(shape, generator: torch.Generator, std: float = 0.05) -> torch.Tensor:
    bound = std * 3 ** 0.5
    return torch.empty(shape).uniform_(-bound, bound, generator=generator)


def rrdbnet_state(scale: int, num_feat: int = 8, num_block: int = 1, num_grow: int = 32,
                  seed: int = SEED) -> dict[str, torch.Tensor]:
    """A Real-ESRGAN RRDBNet state dict with basicsr's key names (×2 models see the photo pixel-unshuffled
    into 12 channels, ×4 ones the 3 channels)."""
    generator = torch.Generator().manual_seed(seed)
    in_ch = 3 * {1: 16, 2: 4, 4: 1}[scale]
    state: dict[str, torch.Tensor] = {}

    def conv(name: str, cin: int, cout: int, std: float = 0.05) -> None:
        state[f"{name}.weight"] = _random((cout, cin, 3, 3), generator, std)
        state[f"{name}.bias"] = torch.zeros(cout)

    conv("conv_first", in_ch, num_feat)
    for b in range(num_block):
        for r in (1, 2, 3):
            for c in range(1, 6):
                conv(f"body.{b}.rdb{r}.conv{c}", num_feat + (c - 1) * num_grow, num_feat if c == 5 else num_grow)
    for name in ("conv_body", "conv_up1", "conv_up2", "conv_hr"):
        conv(name, num_feat, num_feat)
    conv("conv_last", num_feat, 3)
    return state


def swinir_state(seed: int = SEED) -> dict[str, torch.Tensor]:
    from engine.repair.spandrel_loading import import_spandrel

    import_spandrel()
    from spandrel.architectures.SwinIR import SwinIR

    torch.manual_seed(seed)
    model = SwinIR(upscale=4, in_chans=3, img_size=64, window_size=8, img_range=1.0, depths=[1], embed_dim=12,
                   num_heads=[1], mlp_ratio=2, upsampler="nearest+conv", resi_connection="1conv")
    return {k: v.contiguous() for k, v in model.state_dict().items()}


def write_lama(path: Path, seed: int = SEED) -> None:
    """big-lama.pt as a TorchScript archive (traced once at 64 px; parameters stored in fp16)."""
    from engine.repair.spandrel_loading import import_spandrel

    import_spandrel()
    from spandrel.architectures.LaMa import LaMa

    torch.manual_seed(seed)
    model = LaMa(in_nc=4, out_nc=3).eval()
    image, mask = torch.rand(1, 3, 64, 64), (torch.rand(1, 1, 64, 64) > 0.8).float()
    with torch.no_grad():
        traced = torch.jit.trace(model, (image, mask), check_trace=False)
    traced.half().save(str(path))


def ddcolor_state(seed: int = SEED) -> dict[str, torch.Tensor]:
    from engine.repair.spandrel_loading import import_spandrel

    import_spandrel()
    from spandrel_extra_arches.architectures.DDColor import DDColor

    torch.manual_seed(seed)
    model = DDColor(encoder_name="convnext-t", decoder_name="MultiScaleColorDecoder", nf=512, num_queries=8,
                    num_scales=3, dec_layers=1, last_norm="Spectral", input_size=(256, 256), num_output_channels=2)
    return {k: (v.half() if v.is_floating_point() else v).contiguous() for k, v in model.state_dict().items()}


def scratch_detector_checkpoint(seed: int = SEED) -> dict:
    from engine.repair.scratch_detector import DetectorShape, ScratchDetector

    torch.manual_seed(seed)
    model = ScratchDetector(DetectorShape(in_channels=1, stem_width=4, depth=4, conv_num=2))
    return {"model_state": model.state_dict(), "epoch": 0}


def write_repair_parts(out_dir: str | Path) -> Path:
    """Write every repair part into the pack folder `out_dir` (the parts' folders must not exist yet)."""
    from engine.models.layout import PARTS, part_dir

    out = Path(out_dir)
    started = time.monotonic()
    files = {name: part_dir(out, name) / PARTS[name].files[0][0] for name in
             ("realesrgan-x2", "realesrgan-x4", "swinir-x4", "lama", "ddcolor", "scratch-detector")}
    for path in files.values():
        path.parent.mkdir(parents=True, exist_ok=False)
    torch.save({"params_ema": rrdbnet_state(2)}, files["realesrgan-x2"])
    torch.save({"params_ema": rrdbnet_state(4, seed=SEED + 1)}, files["realesrgan-x4"])
    torch.save({"params_ema": swinir_state()}, files["swinir-x4"])
    torch.save(ddcolor_state(), files["ddcolor"])
    torch.save(scratch_detector_checkpoint(), files["scratch-detector"])
    write_lama(files["lama"])
    log.info("tiny repair models written to %s in %.1f s", out, time.monotonic() - started)
    return out
