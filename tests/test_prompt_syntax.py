"""Prompt syntax: A1111 emphasis parsing, 75-token chunks and BREAK, padding, clip skip, compel; checked by hand."""

import pytest
import torch
from transformers import CLIPTextModel, CLIPTokenizer

from pipeline.text.attention import parse_attention, plain_text
from pipeline.text.chunks import make_chunks
from pipeline.text.encoding import encode_prompt, encode_texts

# A1111's documented examples (its parse_prompt_attention docstring), then the rules the wiki states.
PARSES = [
    ("normal text", [("normal text", 1.0)]),
    ("an (important) word", [("an ", 1.0), ("important", 1.1), (" word", 1.0)]),
    ("(unbalanced", [("unbalanced", 1.1)]),
    ("\\(literal\\]", [("(literal]", 1.0)]),
    ("(unnecessary)(parens)", [("unnecessaryparens", 1.1)]),
    ("a (((house:1.3)) [on] a (hill:0.5), sun, (((sky))).",
     [("a ", 1.0), ("house", 1.573), (" ", 1.1), ("on", 1.0), (" a ", 1.1), ("hill", 0.55), (", sun, ", 1.1),
      ("sky", 1.4641), (".", 1.1)]),
    ("((word))", [("word", 1.21)]),
    ("[word]", [("word", 1 / 1.1)]),
    ("[[word]]", [("word", 1 / 1.21)]),
    ("(word:0.25)", [("word", 0.25)]),
    ("(word: 1.5 )", [("word", 1.5)]),
    ("(a (b:2) c)", [("a ", 1.1), ("b", 2.2), (" c", 1.1)]),
    ("[unbalanced", [("unbalanced", 1 / 1.1)]),
    ("closed) twice]", [("closed) twice]", 1.0)]),
    ("ratio 16:9 here", [("ratio 16:9 here", 1.0)]),
    ("x:1.2) y", [("x:1.2) y", 1.0)]),
    ("back\\\\slash", [("back\\slash", 1.0)]),
    ("", [("", 1.0)]),
    ("a BREAK b", [("a", 1.0), (None, 1.0), ("b", 1.0)]),
    ("aBREAKb break", [("aBREAKb break", 1.0)]),
    ("(a BREAK b)", [("a", 1.1), (None, 1.0), ("b", 1.1)]),
]


@pytest.mark.parametrize("prompt,expected", PARSES)
def test_parse_table(prompt, expected):
    got = [(f.text, f.weight) for f in parse_attention(prompt)]
    assert [t for t, _ in got] == [t for t, _ in expected]
    assert [w for _, w in got] == pytest.approx([w for _, w in expected], abs=1e-4)


def test_plain_text_drops_the_syntax():
    assert plain_text(parse_attention("a (red:1.3) [circle] BREAK in the \\(centre\\)")) == "a red circle in the (centre)"


@pytest.fixture(scope="module")
def encoder(tiny_model):
    tokenizer = CLIPTokenizer.from_pretrained(tiny_model / "tokenizer")
    text_encoder = CLIPTextModel.from_pretrained(tiny_model / "text_encoder").eval()
    return tokenizer, text_encoder


def by_hand(tokenizer, text_encoder, tokens):
    """One chunk encoded by hand: start, the tokens, end, padding to 77, the last hidden state."""
    ids = [tokenizer.bos_token_id, *tokens, tokenizer.eos_token_id]
    ids += [tokenizer.pad_token_id] * (77 - len(ids))
    with torch.no_grad():
        return text_encoder(torch.tensor([ids]))[0]


@pytest.mark.parametrize("clip_skip", [1, 2])
def test_plain_prompt_is_identical_to_the_plain_path(encoder, clip_skip):
    tokenizer, text_encoder = encoder
    for prompt in ["a red circle", "x" * 75, ""]:
        a1111, none = (encode_texts(tokenizer, text_encoder, [prompt], torch.device("cpu"), syntax, clip_skip)[0]
                       for syntax in ("a1111", "none"))
        assert a1111.shape == (1, 77, 32) and torch.equal(a1111, none)


def test_long_prompt_is_chunks_encoded_by_hand(encoder):
    tokenizer, text_encoder = encoder
    prompt = "abcdefghij" * 17  # 170 one-character tokens: 75 + 75 + 20, no comma to break at
    tokens = tokenizer(prompt, add_special_tokens=False).input_ids
    assert len(tokens) == 170
    z = encode_texts(tokenizer, text_encoder, [prompt], torch.device("cpu"), "a1111")[0]
    expected = torch.cat([by_hand(tokenizer, text_encoder, tokens[i:i + 75]) for i in (0, 75, 150)], dim=1)
    assert z.shape == (1, 231, 32)
    torch.testing.assert_close(z, expected, rtol=0, atol=1e-6)


def test_full_chunk_breaks_after_a_near_comma(encoder):
    tokenizer, _ = encoder
    prompt = "a" * 70 + ", " + "b" * 10  # the comma is token 71; the 10 b's after it move to the next chunk
    chunks = make_chunks(tokenizer, parse_attention(prompt))
    comma = tokenizer.convert_tokens_to_ids(",</w>")
    assert len(chunks) == 2
    assert chunks[0].ids[71] == comma and chunks[0].ids[72] == tokenizer.eos_token_id
    assert tokenizer.decode(chunks[1].ids[1:11]).replace(" ", "") == "b" * 10
    far = "a" * 40 + ", " + "b" * 40  # text after the comma is 34 tokens in chunk one: too long to move
    first = make_chunks(tokenizer, parse_attention(far))[0]
    assert first.ids[76] == tokenizer.eos_token_id and first.ids[75] != tokenizer.pad_token_id


def test_break_starts_a_new_chunk(encoder):
    tokenizer, text_encoder = encoder
    z = encode_texts(tokenizer, text_encoder, ["ab BREAK cd"], torch.device("cpu"), "a1111")[0]
    ids = [tokenizer(t, add_special_tokens=False).input_ids for t in ("ab", "cd")]
    expected = torch.cat([by_hand(tokenizer, text_encoder, t) for t in ids], dim=1)
    torch.testing.assert_close(z, expected, rtol=0, atol=1e-6)


def test_negative_prompt_is_padded_with_empty_chunks(encoder):
    tokenizer, text_encoder = encoder
    text = encode_prompt(tokenizer, text_encoder, "q" * 100, "neg", 2, True, torch.device("cpu"), "a1111")
    cond, uncond = text.cond["hidden_states"], text.uncond["hidden_states"]
    assert cond.shape == uncond.shape == (2, 154, 32)
    torch.testing.assert_close(uncond[:1, :77], by_hand(tokenizer, text_encoder, tokenizer("neg").input_ids[1:-1]))
    torch.testing.assert_close(uncond[:1, 77:], by_hand(tokenizer, text_encoder, []))


def test_clip_skip_equals_an_encoder_without_its_last_layer(encoder, tiny_model):
    tokenizer, text_encoder = encoder
    shorter = CLIPTextModel.from_pretrained(tiny_model / "text_encoder", num_hidden_layers=3).eval()
    ids = tokenizer("a red circle", padding="max_length", max_length=77, return_tensors="pt").input_ids
    with torch.no_grad():
        expected = shorter(ids)[0]  # CLIP's own output after 3 of 5 layers, through the final layer norm
    for syntax in ("none", "a1111"):
        z = encode_texts(tokenizer, text_encoder, ["a red circle"], torch.device("cpu"), syntax, clip_skip=3)[0]
        torch.testing.assert_close(z, expected, rtol=0, atol=1e-6)


def test_compel_reads_a_plain_prompt_as_the_plain_path_and_weights_it(encoder):
    tokenizer, text_encoder = encoder
    cpu = torch.device("cpu")
    plain = encode_texts(tokenizer, text_encoder, ["a red circle"], cpu, "none")[0]
    compel = encode_texts(tokenizer, text_encoder, ["a red circle"], cpu, "compel")[0]
    torch.testing.assert_close(compel, plain, rtol=1e-5, atol=1e-5)
    weighted = encode_texts(tokenizer, text_encoder, ["a (red)1.5 circle"], cpu, "compel")[0]
    assert weighted.shape == plain.shape and not torch.allclose(weighted, plain, atol=1e-3)


def test_a_run_with_emphasis_and_clip_skip_records_them(tiny_model, tmp_path):
    from PIL import Image

    from pipeline.run import generate
    from conftest import make_config

    cfg = make_config(tiny_model, tmp_path, prompt="a (red:1.3) circle BREAK [blue] sky", clip_skip=2, steps=2)
    path = next(generate.run(cfg, progress=False))
    parameters = Image.open(path).info["parameters"]
    assert "Clip skip: 2" in parameters and "Emphasis" not in parameters
    none = make_config(tiny_model, tmp_path / "none", prompt="a (red) circle", prompt_syntax="none", steps=2)
    assert "Emphasis: None" in Image.open(next(generate.run(none, progress=False))).info["parameters"]
