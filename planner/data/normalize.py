"""Per-dimension affine normalizers, stored as arrays alongside the model.

Both kinds are ``x_normalized = (x - shift) / scale``: ``limits`` maps each dimension's
[min, max] to [-1, 1] (Diffuser's LimitsNormalizer), ``gaussian`` to zero mean and unit variance.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from flax import struct


@struct.dataclass
class Normalizer:
    """``shift`` [D] and ``scale`` [D]; works on numpy and JAX arrays of shape ``[..., D]``."""

    shift: np.ndarray
    scale: np.ndarray

    def normalize(self, x):
        return (x - self.shift) / self.scale

    def unnormalize(self, x):
        return x * self.scale + self.shift


def fit_normalizer(x: np.ndarray, kind: Literal["limits", "gaussian"]) -> Normalizer:
    """Fit to data ``x`` [N, D]. Constant dimensions get scale 1, so they map to 0 unchanged."""
    x = np.asarray(x, dtype=np.float64)
    if kind == "limits":
        low, high = x.min(axis=0), x.max(axis=0)
        shift, scale = (high + low) / 2, (high - low) / 2
    elif kind == "gaussian":
        shift, scale = x.mean(axis=0), x.std(axis=0)
    else:
        raise ValueError(f"normalizer kind must be limits or gaussian; got {kind!r}")
    scale = np.where(scale > 1e-8, scale, 1.0)
    return Normalizer(shift=shift.astype(np.float32), scale=scale.astype(np.float32))
