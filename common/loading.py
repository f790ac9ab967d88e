"""Loading a Hugging Face model without transformers' progress bars."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def quiet_loading() -> Iterator[None]:
    """Transformers' own progress bars off while a model loads.

    A load from the cache takes a few seconds and showed a "Loading weights" bar per
    model; the first GGUF load showed three bars (convert, load, write shards) for one
    step. Only the dequantizing bar is left (transformers draws it with plain tqdm),
    the one step that is long; the previous setting is restored afterwards.
    """
    from transformers.utils import logging as hf_logging

    was_on = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_on:
            hf_logging.enable_progress_bar()
