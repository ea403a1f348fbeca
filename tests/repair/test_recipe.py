"""The whole recipe on the old and scratched photos of ../shared (small crops, tiny models), and
`faceme restore` / `faceme repair-mask` with it."""

import numpy as np
import pytest

from engine.repair.recipe import Recipe, run_recipe

PHOTOS = ["bop_old_a", "bop_old_b", "bop_old_c", "bop_old_e", "bop_scratch_a", "bop_scratch_b", "bop_scratch_c",
          "bop_scratch_d"]


def _crop(whole, name, size=32):
    from engine.imageio import read_image

    pixels = read_image(whole / f"{name}.png").pixels
    y, x = pixels.shape[0] // 3, pixels.shape[1] // 3
    return np.ascontiguousarray(pixels[y:y + size, x:x + size])


def test_every_old_and_scratched_photo_through_the_damage_detector_fade_and_upscale(repair_models, whole):
    """LaMa (51 M parameters at any size in spandrel) runs in the tests below; here each photo's damage
    mask is found and the fade and upscale steps run on it."""
    from engine.repair.damage_mask import detect_damage

    recipe = Recipe(fade=1.0, upscale=2)
    for name in PHOTOS:
        crop = _crop(whole, name)
        mask = detect_damage(crop, repair_models.scratch_detector())
        assert mask.shape == (32, 32) and mask.dtype == np.uint8
        seen = []
        result = run_recipe(crop, recipe, repair_models, progress=lambda d, t, m: seen.append((d, t)))
        assert result.pixels.shape == (64, 64, 3) and result.scale == 2, name
        assert seen[-1] == (2000, 2000) and all(d <= t for d, t in seen)


def test_the_whole_recipe_with_colour_on_an_old_photo(repair_models, whole):
    crop = _crop(whole, "bop_scratch_d", 24)
    result = run_recipe(crop, Recipe(repair=True, fade=0.8, upscale=4, colourise=True), repair_models,
                        keep_stages=True)
    outside = result.mask == 0
    assert np.array_equal(result.stages[0][1][outside], crop[outside])
    assert [s for s, _ in result.stages] == ["repair", "fade", "upscale", "colourise"]
    assert result.colourised and result.pixels.shape == (96, 96, 3)


def test_a_cancel_stops_the_recipe(repair_models, whole):
    from engine.errors import CancelledError

    with pytest.raises(CancelledError):
        run_recipe(_crop(whole, "bop_old_a"), Recipe(fade=1.0, upscale=2), repair_models, cancel=lambda: True)


def test_the_recipe_is_stored_with_the_options_of_a_job():
    from engine.restore.options import RestoreOptions

    options = RestoreOptions(recipe=Recipe(repair=True, fade=0.5, upscale=4, colourise=True))
    assert RestoreOptions.from_dict(options.to_dict()) == options
    assert RestoreOptions.from_dict({"steps": 3}).recipe is None
    with pytest.raises(Exception, match="×2 or ×4"):
        Recipe(upscale=3)


def test_restore_cli_repairs_upscales_and_keeps_metadata_of_a_photo_without_a_face(repair_pack, whole, tmp_path,
                                                                                   run_cli):
    """A photo with no face (a crop of the curtain) still gets the whole-photo steps and is written."""
    from engine.imageio import read_image, write_image
    from engine.repair.colourise import is_labelled_colourised

    source = read_image(whole / "bop_scratch_a.png")
    photo = tmp_path / "curtain.png"
    write_image(photo, np.ascontiguousarray(source.pixels[230:278, 400:448]), like=source)
    mask = tmp_path / "mask.png"
    code, out, err = run_cli("repair-mask", photo, "-o", mask, "--models", repair_pack)
    assert code == 0, err
    assert read_image(mask).pixels.shape[:2] == (48, 48) and "marked as damage" in out
    output = tmp_path / "out.png"
    code, out, err = run_cli("restore", photo, "-o", output, "--models", repair_pack, "--repair", "--mask", mask,
                             "--fade", "--upscale", "2", "--colourise", "--steps", "2")
    assert code == 0, err
    assert "no face was found" in out
    written = read_image(output)
    assert written.pixels.shape == (96, 96, 3)
    assert is_labelled_colourised(written.xmp)
    assert read_image(photo).pixels.shape == (48, 48, 3)  # the original is never changed
