"""Choosing a tool by its name alone.

Under the call grammar a forced call always starts with the same text, `{"name":"`,
and the only choice the model makes before the arguments is the tool's name. So the
decision can be read without generating the call: decode as generation does (the
forced start is read with the prompt in one prefill) and stop a row as soon as its name
is unique: `search...` after one token, `get_recommend...` after three
(`SteeredChatModel.choose_tools`). Decision-position steering acts on those same
tokens (`deciding_prefix` is where its vectors are read).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

FORCED_START = '{"name":"'  # what the call grammar admits alone before the name


def named_tool(text: str, names: Sequence[str]) -> str | None:
    """The one tool of `names` that a call's text so far can still name (None: none
    yet, or the text is not a call)."""
    if not text.startswith(FORCED_START):
        return None
    written = text[len(FORCED_START):]
    fits = [name for name in names if f'{name}"'.startswith(written) or written.startswith(f'{name}"')]
    return fits[0] if len(fits) == 1 else None


def deciding_prefix(tokenizer: Any, name: str, names: Sequence[str]) -> str:
    """The start of `name`, in whole tokens, up to the first token that tells it apart
    from every other name: what the model writes while it decides (`search`,
    `get_recommend`). Steering vectors are read on these tokens, not on the whole call,
    whose arguments would otherwise dominate the mean."""
    ids = tokenizer(name, add_special_tokens=False)["input_ids"]
    others = [n for n in names if n != name]
    for count in range(1, len(ids) + 1):
        text = tokenizer.decode(ids[:count])
        if not any(other.startswith(text) for other in others):
            return text
    return name
