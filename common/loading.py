"""Loading a Hugging Face model without transformers' progress bars."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def quiet_loading(progress: bool = True) -> Iterator[None]:
    """Transformers' own progress bars off while a model loads.

    A load from the cache takes a few seconds and showed a "Loading weights" bar per
    model; the first GGUF load showed three bars (convert, load, write shards) for one
    step. Only the dequantizing bar is left, the one step that is long, and with
    `progress` False (`fints eval --no-progress`) that one goes too: transformers draws
    it with its own module's plain tqdm, which its progress-bar switch does not reach,
    so that name is swapped for a silent tqdm while the model loads. The previous
    settings are restored afterwards.
    """
    from transformers import modeling_gguf_pytorch_utils as gguf_utils
    from transformers.utils import logging as hf_logging

    was_on = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    bar = gguf_utils.tqdm
    if not progress:
        gguf_utils.tqdm = functools.partial(bar, disable=True)
    try:
        yield
    finally:
        gguf_utils.tqdm = bar
        if was_on:
            hf_logging.enable_progress_bar()
