"""Prompt conditioning: the fixed SDXL prompt, and the identity tokens spliced into it.

FaceMe always uses the prompt "A photo of face.". The identity prompt replaces the embedding of the
token `face` by the N identity tokens (one per reference) and cuts the sequence back to the encoders'
length (77); the plain prompt (no identity) is the unconditional branch of the guidance.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

PROMPT = "A photo of face."
IDENTITY_WORD = "face"
#: SDXL micro-conditioning: original size, crop top-left, target size.
TIME_IDS = (512, 512, 0, 0, 512, 512)


@dataclass(frozen=True)
class PromptEmbeddings:
    """SDXL text conditioning for one branch: (1, L, D) tokens, (1, P) pooled, (1, 6) time ids."""

    embeds: torch.Tensor
    pooled: torch.Tensor
    time_ids: torch.Tensor


@dataclass(frozen=True)
class EncodedPrompt:
    """The plain prompt, encoded once per loaded model, and where the identity goes."""

    plain: PromptEmbeddings
    identity_position: int


def _tokenize(tokenizer, prompt: str) -> torch.Tensor:
    return tokenizer(prompt, padding="max_length", max_length=tokenizer.model_max_length,
                     truncation=True, return_tensors="pt").input_ids


def identity_position(tokenizer, prompt: str = PROMPT, word: str = IDENTITY_WORD) -> int:
    """Index of `word`'s token in the padded ids of `prompt` (4 for the FaceMe prompt)."""
    ids = _tokenize(tokenizer, prompt)[0].tolist()
    word_ids = tokenizer(word, add_special_tokens=False).input_ids
    if len(word_ids) != 1:
        raise ValueError(f"{word!r} is not a single token for this tokenizer ({word_ids})")
    if word_ids[0] not in ids:
        raise ValueError(f"{word!r} does not occur in the tokenized prompt {prompt!r}")
    return ids.index(word_ids[0])


@torch.no_grad()
def encode_prompt(tokenizer, tokenizer_2, text_encoder, text_encoder_2, prompt: str = PROMPT,
                  device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> EncodedPrompt:
    """Standard SDXL: penultimate hidden states of both encoders concatenated, pooled from encoder 2."""
    hidden = []
    pooled = None
    for tokenizer_i, encoder in ((tokenizer, text_encoder), (tokenizer_2, text_encoder_2)):
        ids = _tokenize(tokenizer_i, prompt).to(encoder.device)
        out = encoder(ids, output_hidden_states=True)
        hidden.append(out.hidden_states[-2])
        if encoder is text_encoder_2:
            pooled = out.text_embeds
    embeds = torch.cat(hidden, dim=-1).to(device=device, dtype=dtype)
    time_ids = torch.tensor([TIME_IDS], device=device, dtype=dtype)
    plain = PromptEmbeddings(embeds, pooled.to(device=device, dtype=dtype), time_ids)
    return EncodedPrompt(plain=plain, identity_position=identity_position(tokenizer, prompt))


def splice_identity(embeds: torch.Tensor, identity_tokens: torch.Tensor, position: int) -> torch.Tensor:
    """Replace the token at `position` by the N identity tokens and keep the original length.

    embeds (1, L, D), identity_tokens (N, D) → (1, L, D).
    """
    if identity_tokens.ndim != 2 or identity_tokens.shape[-1] != embeds.shape[-1]:
        raise ValueError(f"identity tokens {tuple(identity_tokens.shape)} do not fit prompt width "
                         f"{embeds.shape[-1]}")
    tokens = identity_tokens.to(device=embeds.device, dtype=embeds.dtype).unsqueeze(0)
    spliced = torch.cat([embeds[:, :position], tokens, embeds[:, position + 1:]], dim=1)
    return spliced[:, :embeds.shape[1]]


def identity_prompt(encoded: EncodedPrompt, identity_tokens: torch.Tensor) -> PromptEmbeddings:
    plain = encoded.plain
    return PromptEmbeddings(splice_identity(plain.embeds, identity_tokens, encoded.identity_position),
                            plain.pooled, plain.time_ids)
