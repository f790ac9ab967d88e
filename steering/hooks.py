"""Forward hooks on site modules, registered all-or-nothing and always removed.

Both reading activations (extraction, calibration) and adding vectors (steering) hook
the same site modules; this module holds the one piece of plumbing they share.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

# hook(module, args, output) -> new output or None
SiteHook = Callable[[nn.Module, tuple[Any, ...], Any], Any]


def hidden_of(output: Any) -> torch.Tensor:
    """The hidden-state tensor in a module's output (some blocks return tuples)."""
    return output[0] if isinstance(output, tuple) else output


def replace_hidden(output: Any, hidden: torch.Tensor) -> Any:
    return (hidden, *output[1:]) if isinstance(output, tuple) else hidden


@contextmanager
def hooked(
    forward_hooks: list[tuple[nn.Module, SiteHook]],
    pre_hooks: list[tuple[nn.Module, Callable[..., Any]]] = (),  # type: ignore[assignment]
) -> Iterator[None]:
    """Register every hook or none; remove them all on exit, whatever happened."""
    handles: list[RemovableHandle] = []
    try:
        for module, hook in pre_hooks:
            handles.append(module.register_forward_pre_hook(hook, with_kwargs=True))
        for module, hook in forward_hooks:
            handles.append(module.register_forward_hook(hook))
        yield
    finally:
        for handle in handles:
            handle.remove()
