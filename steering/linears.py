"""The model's linear layers, computed in the form that suits a CPU.

A decode step of a small model is a chain of matrix-vector products: it reads every
weight once, so on a CPU its time is the time to stream the weights from memory. On
Gemma 3 270M the output head alone (262,144 x 640) is 63% of those bytes.

Where the CPU multiplies bfloat16 natively (AVX512-BF16 or AMX), every linear layer keeps
its weights in bfloat16: half the bytes per step, and oneDNN's kernels handle 1-64 rows
well. The residual stream, the norms, attention, the KV cache and the steering vectors
stay float32: only each product's input is rounded to bfloat16, and its result is
float32 again. Measured on the bundled model, two cores: a decode step 96 -> 46 ms, the
head alone 56 -> 20 ms (one row) and 129 -> 27 ms (two rows).

Elsewhere only the output head changes, to `TallHead`: MKL's float32 `x @ W.T` handles
2-8 rows far worse than one (a 4-row decode step 0.43 s against 0.18 s for one row),
while `W @ x.T` streams the matrix once for all rows (0.21 s for four).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

LINEAR_DTYPES = ("auto", "bfloat16", "float32")
# Above this many rows (a prefill that keeps every position's logits) the usual
# product is as fast, so the tall head falls back to it.
MAX_TALL_ROWS = 64


class TallHead(nn.Linear):
    """An `nn.Linear` whose product is taken as `W @ x.T` for a few rows."""

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        flat = input.reshape(-1, self.in_features)
        if flat.shape[0] > MAX_TALL_ROWS:
            return super().forward(input)
        out = (self.weight @ flat.T).T.contiguous()  # callers (logits masks) expect rows contiguous
        if self.bias is not None:
            out = out + self.bias
        return out.reshape(*input.shape[:-1], self.out_features)


class BFloat16Linear(nn.Linear):
    """An `nn.Linear` with bfloat16 weights that takes and returns its input's dtype."""

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        # 2-D and contiguous: a strided 3-D input (the last position of a prefill) would
        # send F.linear to a batched product that copies the whole weight first
        flat = input.reshape(-1, self.in_features).to(self.weight.dtype)
        out = F.linear(flat, self.weight, self.bias)
        return out.to(input.dtype).reshape(*input.shape[:-1], self.out_features)


def native_bfloat16() -> bool:
    """Whether this CPU multiplies bfloat16 in hardware (else bf16 weights are slower)."""
    return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())


def resolve_linear_dtype(linear_dtype: str) -> str:
    """"auto" as what this CPU does best; a clear error for a name that is not allowed."""
    if linear_dtype not in LINEAR_DTYPES:
        raise ValueError(f"linear_dtype (load_model's argument or $FINTS_LINEAR_DTYPE) must be "
                         f"one of {', '.join(LINEAR_DTYPES)}, got {linear_dtype!r}")
    if linear_dtype == "auto":
        return "bfloat16" if native_bfloat16() else "float32"
    return linear_dtype


def use_cpu_linears(model: Any, linear_dtype: str) -> str:
    """Switch a CPU float32 model's linear layers in place; returns what it did.

    "bfloat16": every plain `nn.Linear` (the head included, given its own bfloat16 copy
    so the input embedding stays float32) becomes `BFloat16Linear`. "float32": only the
    head becomes `TallHead`. Other devices and dtypes, and layer types other than
    `nn.Linear`, are left alone ("unchanged").
    """
    head = model.get_output_embeddings()
    if type(head) is not nn.Linear or head.weight.device.type != "cpu" or head.weight.dtype != torch.float32:
        return "unchanged"
    if resolve_linear_dtype(linear_dtype) == "float32":
        head.__class__ = TallHead
        return "float32-tall-head"
    for module in list(model.modules()):
        if type(module) is nn.Linear:
            module.weight = nn.Parameter(module.weight.detach().to(torch.bfloat16), requires_grad=False)
            if module.bias is not None:
                module.bias = nn.Parameter(module.bias.detach().to(torch.bfloat16), requires_grad=False)
            module.__class__ = BFloat16Linear
    return "bfloat16"
