"""The output head, computed in the order that suits small batches on CPU.

Each decoding step multiplies a few hidden states (one per batch row) by the output
embedding, a 262,144 x 640 matrix on Gemma 3 270M: the largest product of the step.
Written as `x @ W.T` (what `nn.Linear` does), MKL's sgemm handles 2-8 rows far worse
than one: a 4-row decode step of the bundled model took 0.43 s against 0.18 s for one
row (two cores). The same product written as `W @ x.T` streams the matrix once for all
rows: 0.21 s for four rows. The values agree to float rounding (largest difference
2e-6 on the real model's logits).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

# Above this many rows (a prefill that keeps every position's logits) the usual
# product is as fast, so the head falls back to it.
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


def use_tall_head(model: Any) -> bool:
    """Switch a CPU model's output head to `TallHead` in place (same parameters, tying
    kept); returns whether it did. Other devices and head types are left alone."""
    head = model.get_output_embeddings()
    if type(head) is not nn.Linear or head.weight.device.type != "cpu":
        return False
    head.__class__ = TallHead
    return True
