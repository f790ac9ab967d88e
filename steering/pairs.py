"""The contrast a steering vector is extracted from. Torch-free, so `memory` builds
pairs without importing torch."""

from __future__ import annotations

from typing import NamedTuple


class ContrastPair(NamedTuple):
    """A request and two answers: the accepted one and the one without the user's context."""

    prompt: str
    positive: str
    negative: str
