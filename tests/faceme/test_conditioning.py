"""Prompt conditioning: SDXL encoding of the fixed prompt and the identity splice at `face`."""

from __future__ import annotations

import pytest
import torch

from engine.faceme.conditioning import PROMPT, TIME_IDS, identity_prompt, splice_identity


def test_tokenizers_tokenize_like_the_released_ones(pipeline):
    ids = pipeline.tokenizer(PROMPT).input_ids
    assert ids == [49406, 320, 1125, 539, 1710, 269, 49407]
    padded_1 = pipeline.tokenizer(PROMPT, padding="max_length", max_length=77).input_ids
    padded_2 = pipeline.tokenizer_2(PROMPT, padding="max_length", max_length=77).input_ids
    assert len(padded_1) == len(padded_2) == 77
    assert padded_1[7:] == [49407] * 70  # tokenizer 1 pads with <|endoftext|>
    assert padded_2[7:] == [0] * 70  # tokenizer 2 pads with "!"
    assert pipeline.prompt.identity_position == 4


@pytest.mark.parametrize("n", [1, 2, 4])
def test_splice_puts_n_tokens_at_position_4_and_keeps_77(n):
    embeds = torch.arange(77, dtype=torch.float32)[None, :, None].expand(1, 77, 6).clone()
    tokens = -torch.arange(1, n + 1, dtype=torch.float32)[:, None].expand(n, 6)
    out = splice_identity(embeds, tokens, 4)
    assert out.shape == (1, 77, 6)
    column = out[0, :, 0].tolist()
    assert column[:4] == [0, 1, 2, 3]
    assert column[4:4 + n] == [-(i + 1) for i in range(n)]
    assert column[4 + n:] == list(range(5, 77 - n + 1))  # `face` removed, the rest shifted, cut to 77


def test_prompt_is_encoded_once_and_follows_sdxl(pipeline):
    prompt = pipeline.prompt
    assert pipeline.prompt is prompt  # cached per loaded model
    ids_1 = pipeline.tokenizer(PROMPT, padding="max_length", max_length=77, return_tensors="pt").input_ids
    ids_2 = pipeline.tokenizer_2(PROMPT, padding="max_length", max_length=77, return_tensors="pt").input_ids
    with torch.no_grad():
        out_1 = pipeline.text_encoder(ids_1, output_hidden_states=True)
        out_2 = pipeline.text_encoder_2(ids_2, output_hidden_states=True)
    expected = torch.cat([out_1.hidden_states[-2], out_2.hidden_states[-2]], dim=-1)
    torch.testing.assert_close(prompt.plain.embeds, expected)
    torch.testing.assert_close(prompt.plain.pooled, out_2.text_embeds)
    assert prompt.plain.time_ids.tolist() == [list(TIME_IDS)] == [[512, 512, 0, 0, 512, 512]]


def test_identity_prompt_changes_only_the_sequence(pipeline, identity):
    plain = pipeline.prompt.plain
    ident = identity_prompt(pipeline.prompt, identity)
    assert ident.embeds.shape == plain.embeds.shape
    torch.testing.assert_close(ident.embeds[0, 4:4 + len(identity)], identity)
    torch.testing.assert_close(ident.embeds[0, :4], plain.embeds[0, :4])
    torch.testing.assert_close(ident.embeds[0, 4 + len(identity):], plain.embeds[0, 5:77 - len(identity) + 1])
    assert ident.pooled is plain.pooled
