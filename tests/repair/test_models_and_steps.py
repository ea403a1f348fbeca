"""The repair steps with tiny random-weight models in the released checkpoint formats, loaded through
the users' path (the pack's part folders, install records, spandrel / the scratch detector's reader)."""

import sys

import numpy as np
import pytest

from engine.errors import ModelPackError


@pytest.fixture(scope="module")
def scratched(whole):
    from engine.imageio import read_image

    return np.ascontiguousarray(read_image(whole / "bop_scratch_a.png").pixels[220:284, 392:472])  # a scratch


def test_spandrel_loads_without_torchvision_and_leaves_no_stand_in(repair_models):
    from engine.repair.spandrel_loading import registry

    repair_models.upscaler("realesrgan-x4")
    assert "torchvision" not in sys.modules  # the stand-in is gone once spandrel is imported
    assert {"ESRGAN", "SwinIR", "LaMa", "DDColor"} <= {str(a.architecture.id) for a in registry()}


def test_tiled_upscaling_equals_untiled_and_a_short_overlap_shows_its_seams(repair_models, scratched):
    from engine.repair.upscale import Tiling, run_model, upscale, upscale_tiled

    model = repair_models.upscaler("realesrgan-x4")
    crop = scratched[:40, :56]
    whole = run_model(model, crop)
    tiled = upscale_tiled(model, crop, Tiling(tile=16, overlap=48))  # half the overlap > the tiny net's reach
    assert tiled.shape == whole.shape == (160, 224, 3)
    assert np.abs(tiled - whole).max() < 1e-5
    # the seam measure: with too little context the tiles' edges differ from the untiled result
    short = upscale_tiled(model, crop, Tiling(tile=16, overlap=2))
    assert np.abs(short - whole).max() > 100 * np.abs(tiled - whole).max()
    out = upscale(np.dstack([crop, np.full(crop.shape[:2], 77, np.uint8)]), model, 2, Tiling(tile=32, overlap=16))
    assert out.shape == (80, 112, 4) and out.dtype == np.uint8 and (out[..., 3] == 77).all()


def test_inpainting_leaves_every_pixel_outside_the_mask_byte_identical(repair_models, scratched):
    from engine.repair.inpaint import inpaint

    mask = np.zeros(scratched.shape[:2], np.uint8)
    mask[20:30, 10:50] = 255
    mask[50:54, 70:76] = 255
    out = inpaint(scratched, mask, repair_models.inpainter())
    assert np.array_equal(out[mask == 0], scratched[mask == 0])
    assert not np.array_equal(out[mask > 0], scratched[mask > 0])


def test_damage_mask_and_its_iou_with_the_reference_masks(repair_models, whole, shared):
    """With random weights the IoU means nothing (pending real weights): this checks the plumbing."""
    from pathlib import Path

    from engine.imageio import read_image
    from engine.repair.damage_mask import detect_damage, mask_iou, read_mask

    data = Path(__file__).resolve().parents[1] / "data" / "repair"
    for name in ("bop_scratch_a", "bop_scratch_d"):
        pixels = read_image(whole / f"{name}.png").pixels
        reference = read_mask(data / f"{name}_damage.png", pixels.shape[:2])
        assert 0.02 < (reference > 0).mean() < 0.15
        mask = detect_damage(pixels[:128, :128], repair_models.scratch_detector())
        assert mask.shape == (128, 128) and set(np.unique(mask)) <= {0, 255}
        assert 0.0 <= mask_iou(mask, reference[:128, :128]) <= 1.0
    assert mask_iou(reference, reference) == 1.0


def test_a_checkpoint_of_another_kind_is_refused_naming_the_file(repair_parts):
    from engine.models.layout import part_dir
    from engine.repair.spandrel_loading import load_descriptor

    esrgan = next(part_dir(repair_parts, "realesrgan-x2").glob("*.pth"))
    with pytest.raises(ModelPackError, match="inpaint needs one of LaMa") as info:
        load_descriptor(esrgan, "inpaint", "lama")
    assert str(esrgan) in str(info.value)


def test_a_missing_repair_part_says_how_to_get_it(tmp_path):
    from engine.repair.models import RepairModels

    with pytest.raises(ModelPackError, match="faceme models download lama"):
        RepairModels(tmp_path).inpainter()
