"""The model's linear layers, computed in the form that suits a CPU.

A decode step of a small model is a chain of matrix-vector products: it reads every
weight once, so on a CPU its time is the time to stream the weights from memory. On
Gemma 3 270M the output head alone (262,144 x 640) is 63% of those bytes.

Where the CPU has bfloat16 instructions (AVX512-BF16 or AMX), every linear layer keeps
its weights in bfloat16: half the bytes per step, and oneDNN's kernels handle 1-64 rows
well. The residual stream, the norms, attention, the KV cache, biases and the steering
vectors stay float32. Each product takes its input rounded to bfloat16 and returns a
bfloat16 result (CPU torch has no float32-output bfloat16 product) that is cast back to
float32: projections and logits carry bfloat16 rounding, which decides near ties
differently from float32 weights, and differently between batch shapes (oneDNN
accumulates in another order for another row count). Measured on the bundled model, two
cores: a decode step 96 -> 46 ms, the head alone 56 -> 20 ms (one row) and 129 -> 27 ms
(two rows). A CPU that only emulates bfloat16 (AVX512 without BF16) would be slower, so
there the float32 form stays.

The float32 form keeps float32 weights and changes how every linear layer multiplies a
few rows, to `TallLinear`. MKL's float32 `x @ W.T` handles 2-8 rows far worse than one
(a 4-row decode step 0.43 s against 0.18 s for one row), while `W @ x.T` streams the
matrix once for all rows (0.21 s for four). And a single row goes to MKL's
matrix-vector product, which runs on one thread: on two AVX2 cores the head took 70-80
ms for one row and 50 ms for four. Split into blocks of output rows and taken as one
batched product, the row keeps every thread busy: the head 34-38 ms, a decode step of
the bundled model 129-161 -> 84-89 ms (`fints bench steering`), the same greedy tokens.
"""

from __future__ import annotations

import platform
from typing import Literal

import torch
from torch import nn
from torch.nn import functional as F

LINEAR_DTYPES = ("auto", "bfloat16", "float32")
# What `use_cpu_linears` did, as `LoadedModel.linear_form` and reports record it.
LinearForm = Literal["bfloat16", "float32-tall", "unchanged"]
# Above this many rows (a prefill) the usual product is as fast, so the tall form falls
# back to it.
MAX_TALL_ROWS = 64
# Blocks of output rows a one-row product is split into: batched products are spread
# over the threads, where a matrix-vector product is not.
ROW_BLOCKS = 16


class TallLinear(nn.Linear):
    """An `nn.Linear` whose product is taken as `W @ x.T` for a few rows, and for a single
    row as a batched product over `ROW_BLOCKS` blocks of the weight's rows."""

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        flat = input.reshape(-1, self.in_features)
        if flat.shape[0] > MAX_TALL_ROWS:
            return super().forward(input)
        if flat.shape[0] == 1:
            out = self._one_row(flat)
        else:  # callers (logits masks) expect rows contiguous
            out = (self.weight @ flat.T).T.contiguous()
        if self.bias is not None:
            out = out + self.bias
        return out.reshape(*input.shape[:-1], self.out_features)

    def _one_row(self, row: torch.Tensor) -> torch.Tensor:
        blocked = self.out_features - self.out_features % ROW_BLOCKS
        weight = self.weight[:blocked].reshape(ROW_BLOCKS, -1, self.in_features)  # a view when contiguous
        out = torch.bmm(weight, row.T.expand(ROW_BLOCKS, -1, 1)).reshape(1, blocked)
        if blocked < self.out_features:
            out = torch.cat([out, (self.weight[blocked:] @ row.T).T], dim=1)
        return out


class BFloat16Linear(nn.Linear):
    """An `nn.Linear` with bfloat16 weights (and its input's dtype for the bias) that
    takes and returns its input's dtype."""

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        # a 2-D product: a 3-D strided input (the last position of a prefill) would send
        # F.linear to a batched product that first copies the whole weight (0.7 s a
        # prefill instead of 0.1 s on the bundled model)
        flat = input.reshape(-1, self.in_features).to(self.weight.dtype)
        out = F.linear(flat, self.weight).to(input.dtype)
        if self.bias is not None:
            out = out + self.bias
        return out.reshape(*input.shape[:-1], self.out_features)


def native_bfloat16() -> bool:
    """Whether this CPU has bfloat16 instructions. oneDNN's own check also says yes for
    AVX512 without BF16, where bfloat16 products are emulated and slower than float32."""
    if platform.machine().lower() in ("x86_64", "amd64", "i386", "i686"):
        cpu = torch.cpu
        checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
        return any(getattr(cpu, name, lambda: False)() for name in checks)
    mkldnn = torch.backends.mkldnn
    return bool(mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())


def resolve_linear_dtype(linear_dtype: str, source: str = "linear_dtype") -> str:
    """`linear_dtype` with "auto" made what this CPU does best; `source` names where the
    value came from in the error for a value that is not allowed."""
    if linear_dtype not in LINEAR_DTYPES:
        raise ValueError(f"{source} must be one of {', '.join(LINEAR_DTYPES)}, "
                         f"got {linear_dtype!r}")
    if linear_dtype == "auto":
        return "bfloat16" if native_bfloat16() else "float32"
    return linear_dtype


def use_cpu_linears(model: nn.Module, linear_dtype: str) -> LinearForm:
    """Switch a freshly loaded CPU float32 model's linear layers in place; returns the form.

    "bfloat16": every plain `nn.Linear` becomes `BFloat16Linear`. The head gets its own
    bfloat16 copy (about +335 MB on Gemma 3 270M, the float32 input embedding stays),
    so a tied head is untied: `model.tie_weights()` afterwards would tie it back to the
    float32 embedding (still correct, float32 speed). "float32": every plain `nn.Linear`
    becomes `TallLinear`, the weights unchanged. Other devices and dtypes, a model
    already switched, and layer types other than `nn.Linear` are left alone ("unchanged").
    """
    head = model.get_output_embeddings()
    if (type(head) is not nn.Linear or head.weight.device.type != "cpu"
            or head.weight.dtype != torch.float32):
        return "unchanged"
    plain = [module for module in model.modules() if type(module) is nn.Linear]
    if resolve_linear_dtype(linear_dtype) == "float32":
        for module in plain:
            module.__class__ = TallLinear
        return "float32-tall"
    for module in plain:
        weight = module.weight.detach().to(torch.bfloat16)
        module.weight = nn.Parameter(weight, requires_grad=False)
        module.__class__ = BFloat16Linear
    return "bfloat16"
