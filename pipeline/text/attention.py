"""AUTOMATIC1111's prompt emphasis syntax, parsed into (text, weight) fragments and BREAK marks.

Written from A1111's documented rules (wiki "Features", section "Attention/emphasis"):
`(text)` multiplies the attention to text by 1.1, `[text]` divides it by 1.1, `(text:1.3)` multiplies it by 1.3;
brackets nest and multiply; `\\(`, `\\)`, `\\[`, `\\]` and `\\\\` stand for the characters themselves; a bracket
left open applies to the rest of the prompt; a closing bracket with none open is plain text; `BREAK` (upper case,
a word of its own) ends the current 75-token chunk. Here BREAK always breaks, inside brackets too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

UP = 1.1  # A1111's factor for one pair of round brackets (and, divided, for square ones)
_TOKENS = re.compile(
    r"\\[()\[\]\\]"                     # an escaped bracket or backslash
    r"|:\s*([+-]?(?:\d+\.?\d*|\.\d+))\s*\)"  # ':1.3)' closing a weighted round bracket
    r"|[()\[\]]"                        # a bracket
    r"|[^\\()\[\]:]+|[\\:]"             # plain text, or a lone backslash or colon
)
_BREAK = re.compile(r"\s*\bBREAK\b\s*")


@dataclass(frozen=True)
class Fragment:
    """A run of prompt text and its attention weight; `text is None` marks a BREAK."""

    text: str | None
    weight: float = 1.0

    @property
    def is_break(self) -> bool:
        """True for a BREAK mark."""
        return self.text is None


BREAK = Fragment(None)


def _add_text(out: list[list], text: str) -> None:
    """Append plain text, turning each BREAK word in it into a mark."""
    for i, part in enumerate(_BREAK.split(text)):
        if i:
            out.append([None, 1.0])
        if part:
            out.append([part, 1.0])


def _scale(out: list[list], start: int, factor: float) -> None:
    """Multiply the weight of every text fragment from `start` on."""
    for item in out[start:]:
        if item[0] is not None:
            item[1] *= factor


def _merged(out: list[list]) -> list[Fragment]:
    """Fragments with neighbours of equal weight joined, as A1111's examples show."""
    fragments: list[Fragment] = []
    for text, weight in out:
        last = fragments[-1] if fragments else None
        if text is not None and last is not None and not last.is_break and last.weight == weight:
            fragments[-1] = Fragment(last.text + text, weight)
        else:
            fragments.append(BREAK if text is None else Fragment(text, weight))
    return fragments or [Fragment("", 1.0)]


def parse_attention(prompt: str) -> list[Fragment]:
    """The prompt as weighted fragments: 'an (important) word' -> an /1.0, important/1.1, ' word'/1.0."""
    out: list[list] = []
    rounds: list[int] = []
    squares: list[int] = []
    for match in _TOKENS.finditer(prompt):
        token, weight = match.group(0), match.group(1)
        if token.startswith("\\") and len(token) == 2:
            out.append([token[1], 1.0])
        elif token == "(":
            rounds.append(len(out))
        elif token == "[":
            squares.append(len(out))
        elif weight is not None and rounds:
            _scale(out, rounds.pop(), float(weight))
        elif token == ")" and rounds:
            _scale(out, rounds.pop(), UP)
        elif token == "]" and squares:
            _scale(out, squares.pop(), 1 / UP)
        else:
            _add_text(out, token)
    for start in rounds:
        _scale(out, start, UP)
    for start in squares:
        _scale(out, start, 1 / UP)
    return _merged(out)


def plain_text(fragments: list[Fragment]) -> str:
    """The words the fragments hold, without weights (BREAK as a space): what the model will read."""
    return " ".join(" ".join(f.text.split()) for f in fragments if not f.is_break and f.text.strip())
