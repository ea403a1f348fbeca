"""Mix loads the released key names and shapes strictly, and computes what the spec describes."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from engine.errors import ModelPackError
from engine.faceme.mix import Mix, load_mix


def released_mix_shapes() -> dict[str, tuple[int, ...]]:
    """Every key of the released mix.safetensors and its shape, written out from the spec's tree."""
    shapes: dict[str, tuple[int, ...]] = {}

    def mlp(prefix: str, d_in: int, d_out: int, hidden: int) -> None:
        shapes[f"{prefix}.layernorm.weight"] = (d_in,)
        shapes[f"{prefix}.layernorm.bias"] = (d_in,)
        shapes[f"{prefix}.fc1.weight"] = (hidden, d_in)
        shapes[f"{prefix}.fc1.bias"] = (hidden,)
        shapes[f"{prefix}.fc2.weight"] = (d_out, hidden)
        shapes[f"{prefix}.fc2.bias"] = (d_out,)

    mlp("pro_id.mlp1", 512, 1024, 1024)
    mlp("pro_id.mlp2", 1024, 1024, 1024)
    mlp("pro_id.mlp3", 1024, 2048, 2048)
    mlp("pro_id.mlp4", 2048, 2048, 2048)
    mlp("mlp1", 4096, 2048, 2048)
    shapes["norm1.weight"] = (2048,)
    shapes["norm1.bias"] = (2048,)
    mlp("mlp2", 2048, 2048, 2048)
    return shapes


@pytest.fixture(scope="module")
def full_width_file(tmp_path_factory):
    gen = torch.Generator().manual_seed(0)
    state = {k: torch.randn(shape, generator=gen) * 0.02 for k, shape in released_mix_shapes().items()}
    path = tmp_path_factory.mktemp("mix") / "mix.safetensors"
    save_file(state, str(path))
    return path, state


def test_full_width_released_keys_load_strictly(full_width_file):
    path, state = full_width_file
    mix = load_mix(path)
    assert mix.widths.arcface_dim == 512 and mix.widths.id_hidden_dim == 1024
    assert mix.widths.clip_dim == 2048 and mix.widths.token_dim == 2048
    loaded = mix.state_dict()
    assert set(loaded) == set(state)
    for key, value in state.items():
        assert torch.equal(loaded[key], value), key
    token = mix(torch.randn(3, 2048), F.normalize(torch.randn(3, 512), dim=-1))
    assert token.shape == (3, 2048)


def test_default_widths_are_the_released_ones():
    assert {k: tuple(v.shape) for k, v in Mix().state_dict().items()} == released_mix_shapes()


def _manual_mix(state: dict[str, torch.Tensor], clip: torch.Tensor, arc: torch.Tensor) -> torch.Tensor:
    def mlp(prefix, x, residual):
        d = x.shape[-1]
        h = F.layer_norm(x, (d,), state[f"{prefix}.layernorm.weight"], state[f"{prefix}.layernorm.bias"])
        h = F.linear(F.gelu(F.linear(h, state[f"{prefix}.fc1.weight"], state[f"{prefix}.fc1.bias"])),
                     state[f"{prefix}.fc2.weight"], state[f"{prefix}.fc2.bias"])
        return x + h if residual else h

    a = mlp("pro_id.mlp1", arc, False)
    a = mlp("pro_id.mlp2", a, True)
    a = mlp("pro_id.mlp3", a, False)
    a = mlp("pro_id.mlp4", a, True)
    x = mlp("mlp1", torch.cat([clip, a], -1), False)
    x = F.layer_norm(x, (x.shape[-1],), state["norm1.weight"], state["norm1.bias"])
    return mlp("mlp2", x, True)


def test_forward_matches_the_spec_written_out(full_width_file):
    path, state = full_width_file
    mix = load_mix(path)
    clip, arc = torch.randn(2, 2048), F.normalize(torch.randn(2, 512), dim=-1)
    torch.testing.assert_close(mix(clip, arc), _manual_mix(state, clip, arc), rtol=1e-4, atol=1e-5)
    # CLIP comes first: swapping the halves of mlp1's input must change the result.
    assert not torch.allclose(mix(clip, arc), mix(clip.flip(0), arc))


def test_tiny_widths_are_read_from_the_file(tmp_path):
    mix = Mix(arcface_dim=512, id_hidden_dim=16, clip_dim=24, token_dim=40)
    save_file({k: v.contiguous() for k, v in mix.state_dict().items()}, str(tmp_path / "mix.safetensors"))
    loaded = load_mix(tmp_path / "mix.safetensors")
    assert (loaded.widths.id_hidden_dim, loaded.widths.clip_dim, loaded.widths.token_dim) == (16, 24, 40)


@pytest.mark.parametrize("damage", ["missing", "unexpected", "renamed", "shape"])
def test_wrong_files_are_model_pack_errors(tmp_path, damage):
    state = {k: v.contiguous() for k, v in Mix(512, 16, 24, 40).state_dict().items()}
    if damage == "missing":
        del state["mlp2.fc2.bias"]
    elif damage == "unexpected":
        state["mlp3.fc1.weight"] = torch.zeros(2, 2)
    elif damage == "renamed":
        state["norm_1.weight"] = state.pop("norm1.weight")
    else:
        state["norm1.weight"] = torch.zeros(41)
    path = tmp_path / "mix.safetensors"
    save_file(state, str(path))
    with pytest.raises(ModelPackError) as info:
        load_mix(path)
    assert info.value.part == "faceme-mix"
    assert str(path) in str(info.value)


def test_not_a_safetensors_file(tmp_path):
    path = tmp_path / "mix.safetensors"
    path.write_bytes(b"not safetensors at all")
    with pytest.raises(ModelPackError, match="mix.safetensors") as info:
        load_mix(path)
    assert info.value.part == "faceme-mix"
