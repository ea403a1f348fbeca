"""A tiny ONNX model with the interface of InsightFace's gender/age model (`genderage.onnx`), for tests.

    python -m engine.testing.tiny_genderage OUT.onnx

InsightFace routes a model by its signature: input (N, 3, 96, 96) → the attribute model, one output
of width 3 → "genderage": [gender logits (2), age / 100]. The pixels arrive normalised (x − 127.5) / 128
(RGB, InsightFace's box-centred crop). This one's gender logits come from a seeded convolution; its
age is not random: it rises with the crop's mean brightness (0 for black, 80 for white), so a test can
make a face look older or younger by brightening or darkening a copy of a real photo and see the
scan store a different apparent age. Exported with the TorchScript exporter (dynamo=False), which
writes one file with the weights inside.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import torch
from torch import nn

SEED = 20250123
SIDE = 96
#: the age a white crop gets (a black one gets 0)
OLDEST = 80.0


class TinyGenderAge(nn.Module):
    """(N, 3, 96, 96) normalised pixels → (N, 3): gender logits (2), age / 100."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 8, 8, stride=8), nn.ReLU(), nn.Conv2d(8, 8, 4, stride=4), nn.ReLU())
        self.gender = nn.Linear(8 * 3 * 3, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.gender(torch.flatten(self.features(x), 1))
        # the normalised mean is in about [-1, 1]: age / 100 in [0, OLDEST / 100]
        brightness = (x.mean(dim=(1, 2, 3)) + 1.0) / 2.0
        age = torch.clamp(brightness, 0.0, 1.0) * (OLDEST / 100.0)
        return torch.cat([logits, age[:, None]], dim=1)


def export_tiny_genderage(path: str | Path) -> Path:
    path = Path(path)
    torch.manual_seed(SEED)
    model = TinyGenderAge().eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the TorchScript exporter says it is the legacy one
        torch.onnx.export(model, (torch.zeros(1, 3, SIDE, SIDE),), str(path), dynamo=False, opset_version=17,
                          input_names=["data"], output_names=["fc1"],
                          dynamic_axes={"data": {0: "None"}, "fc1": {0: "None"}})
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m engine.testing.tiny_genderage", description=__doc__.split("\n")[0])
    parser.add_argument("out", type=Path, help="the .onnx file to write")
    args = parser.parse_args(argv)
    export_tiny_genderage(args.out)
    print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
