"""The FaceMe model: identity encoder (CLIP image encoder + ArcFace fused by Mix), prompt conditioning,
FaceMePipeline (SDXL + ControlNet restoration of an aligned 512×512 face crop) and the colour fix.

Modules, in data-flow order: `references` (reference photos → faces → identity tokens), `id_encoder`
(PhotoMaker's CLIP image encoder), `mix` (FaceMe's fusion MLPs), `conditioning` (the fixed prompt and
the identity splice), `pipeline` (loading from the model pack, DDPM with identity guidance),
`color_fix` (wavelet colour correction). Nothing is imported here, so `import engine.faceme` is cheap.
"""
