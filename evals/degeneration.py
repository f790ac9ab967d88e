"""What counts as a degenerate decision: the failure mode of steering too hard.

Strong steering makes a small model repeat itself ("adidas adidas adidas") or emit
nothing useful. A decision is degenerate when it is malformed (no valid call), when a
required argument is empty, or when a text argument repeats tokens: the same word three
times in a row, or fewer than half of its words distinct once it has six or more.
"""

from __future__ import annotations

import re
from typing import Any

from tools.registry import RECOMMEND, REQUIRED_ARGUMENT

WORD = re.compile(r"\w+", re.UNICODE)


def repeats_tokens(text: str, run: int = 3, min_words: int = 6) -> bool:
    """True when a word repeats `run` times in a row, or most words are repeats."""
    words = [w.lower() for w in WORD.findall(text)]
    streak = 1
    for previous, word in zip(words, words[1:]):
        streak = streak + 1 if word == previous else 1
        if streak >= run:
            return True
    return len(words) >= min_words and len(set(words)) < len(words) / 2


def is_degenerate(call: dict[str, Any] | None, malformed: bool = False) -> bool:
    """Malformed, empty required argument, or repeated tokens in a text argument."""
    if malformed or call is None:
        return True
    args = call.get("args") or {}
    required = REQUIRED_ARGUMENT.get(call.get("name", ""))
    if required is not None:
        value = args.get(required)
        if value is None or (isinstance(value, (str, list)) and not value):
            return True
        if isinstance(value, str) and not value.strip():
            return True
    if call.get("name") == RECOMMEND:
        sequence = args.get("product_sequence") or []
        if len(sequence) >= 3 and len(set(sequence)) < len(sequence) / 2:
            return True
    return any(isinstance(v, str) and repeats_tokens(v) for v in args.values())
