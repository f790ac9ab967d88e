"""steering.checks: the one check of a vector's key, shape and values."""

import math

import numpy as np
import pytest
import torch

from steering import VectorError, check_vector


def test_one_check_for_tensors_and_arrays():
    """The same refusals for a torch tensor and a numpy array (memory entries)."""
    for make in (torch.tensor, np.array):
        check_vector("mlp.2", make([1.0, 2.0, 3.0, 4.0]), 4)
        with pytest.raises(VectorError, match="NaN or inf"):
            check_vector("mlp.2", make([1.0, math.nan, 3.0, 4.0]), 4)
        with pytest.raises(VectorError, match=r"shape \(3,\)"):
            check_vector("mlp.2", make([1.0, 2.0, 3.0]), 4)
        for key in ("attn+mlp.2", "attn.six", "attn.\u00b2", "mlp.2 "):
            with pytest.raises(VectorError, match="bad site key"):
                check_vector(key, make([1.0, 2.0, 3.0, 4.0]), 4)
