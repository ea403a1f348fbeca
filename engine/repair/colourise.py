"""Colourisation of a black-and-white photo with DDColor (through spandrel): off unless asked for, and
the output says so in its metadata (`colourised_xmp`), so a colourised photo is never taken for a
colour original.

DDColor predicts the colour (Lab a*, b*) at its own input size and keeps the photo's own lightness at
full resolution: the detail of the print is the print's.
"""

from __future__ import annotations

import re

import numpy as np

#: the XMP namespace of FaceMe Studio's own properties
XMP_NAMESPACE = "https://github.com/faceme-studio/ns/1.0/"


def colourise(pixels: np.ndarray, descriptor) -> np.ndarray:
    """`pixels` (H×W×3 or ×4 uint8, grey or not: its lightness is used) in colour, uint8; alpha kept."""
    import cv2
    import torch

    gray = cv2.cvtColor(np.ascontiguousarray(pixels[..., :3]), cv2.COLOR_RGB2GRAY)
    device = next(descriptor.model.parameters()).device
    with torch.inference_mode():
        out = descriptor(torch.from_numpy(gray).to(device).float()[None, None] / 255.0)
    rgb = np.clip(np.round(out[0].permute(1, 2, 0).float().cpu().numpy() * 255.0), 0, 255).astype(np.uint8)
    if pixels.ndim == 3 and pixels.shape[2] == 4:
        return np.concatenate([rgb, pixels[..., 3:]], axis=2)
    return rgb


def colourised_xmp(existing: bytes | None, model: str) -> bytes:
    """An XMP packet saying the photo was colourised by `model` (FaceMe Studio's `Colourised` and
    `ColourisedBy` properties, and an `xmp:CreatorTool`-free description), added to `existing` when
    the photo had one."""
    description = (f'<rdf:Description rdf:about="" xmlns:faceme="{XMP_NAMESPACE}" faceme:Colourised="True" '
                   f'faceme:ColourisedBy="{_escape(model)}"/>')
    if existing:
        text = existing.decode("utf-8", "replace")
        if re.search(r"</rdf:RDF>", text):
            return re.sub(r"</rdf:RDF>", description + "</rdf:RDF>", text, count=1).encode("utf-8")
    return ('<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>'
            '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
            f'{description}</rdf:RDF></x:xmpmeta><?xpacket end="w"?>').encode("utf-8")


def is_labelled_colourised(xmp: bytes | None) -> bool:
    return bool(xmp) and b'faceme:Colourised="True"' in xmp


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;")
