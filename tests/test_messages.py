"""Messages a person can read: the long-prompt warning names the dropped words once, as written, in one line;
config files in other text encodings are read (tests/bad_inputs/textdata.py has the refusals)."""

import logging
from pathlib import Path

import pytest
from transformers import CLIPTokenizer

from pipeline.run import config
from pipeline.text.encoding import SHOWN_CHARS, split_at_limit, token_count, warn_about_prompt

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def shapes_tokenizer():
    """The shipped model's word-level tokenizer: its unknown token is <|endoftext|>."""
    return CLIPTokenizer.from_pretrained(ROOT / "models" / "tiny-shapes" / "tokenizer")


@pytest.fixture(scope="module")
def byte_tokenizer(tiny_model):
    """The tiny model's tokenizer: one token per character, so the cut falls inside words."""
    return CLIPTokenizer.from_pretrained(tiny_model / "tokenizer")


def warnings_for(tokenizer, prompt, caplog, capfd) -> list[str]:
    """Every warning line a prompt causes: the pipeline's, and anything a library prints on stderr."""
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        warn_about_prompt(tokenizer, prompt, "prompt")
    return [r.getMessage() for r in caplog.records] + capfd.readouterr().err.splitlines()


@pytest.mark.parametrize("name", ["shapes_tokenizer", "byte_tokenizer"])
def test_the_cut_is_where_the_tokenizer_cuts(name, request):
    tokenizer = request.getfixturevalue(name)
    room = tokenizer.model_max_length - 2
    for prompt in ["a large red circle in the centre, blue background " * 9, "A Zebra, PLAID sky! " * 40, "short"]:
        kept, dropped = split_at_limit(tokenizer, prompt)
        assert kept + dropped == prompt.split()
        assert token_count(tokenizer, " ".join(kept)) <= room
        if dropped:
            assert token_count(tokenizer, " ".join(kept + dropped[:1])) > room


def test_dropped_words_are_named_once_as_written(shapes_tokenizer, caplog, capfd):
    prompt = "red circle " * 35 + "Zebra with a Plaid Unicorn"  # 70 tokens, 5 for Zebra: 75 fit between start and end
    dropped, unknown = warnings_for(shapes_tokenizer, prompt, caplog, capfd)
    assert dropped.endswith("tokens; its last 4 words are dropped: with a Plaid Unicorn"), dropped
    assert unknown == "prompt has words the model's vocabulary does not know: zebra", unknown
    assert "<|endoftext|>" not in dropped and "Unicorn" not in unknown


def test_a_5000_word_prompt_is_two_short_lines(shapes_tokenizer, byte_tokenizer, caplog, capfd):
    words = "a large red circle in the centre blue background zebra giraffe".split()
    prompt = " ".join(f"{words[i % len(words)]}{i // len(words)}" for i in range(5000))
    for tokenizer in (shapes_tokenizer, byte_tokenizer):
        lines = warnings_for(tokenizer, prompt, caplog, capfd)
        assert 1 <= len(lines) <= 2, lines
        assert all(len(line) < SHOWN_CHARS + 120 for line in lines), lines
        assert "words are dropped" in lines[0] and "<|endoftext|>" not in lines[0], lines[0]


def test_control_characters_are_escaped_in_the_warning(byte_tokenizer, caplog, capfd):
    prompt = "x " * 75 + "\x1b[2Jclear\u200f"
    [line] = warnings_for(byte_tokenizer, prompt, caplog, capfd)
    assert line.endswith("dropped: \\x1b[2Jclear\\u200f"), line


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-16"])
def test_config_files_in_other_text_encodings_are_read(encoding, tmp_path):
    path = tmp_path / "task.yaml"
    path.write_bytes("prompt: café 🦊\nsteps: 3\n".encode(encoding))
    cfg = config.load(path)
    assert (cfg.prompt, cfg.steps) == ("café 🦊", 3)
