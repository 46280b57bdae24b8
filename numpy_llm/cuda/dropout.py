"""Dropout as one CuPy fused kernel: ``layers/dropout.py: dropout_forward`` with the mask drawn on
the device and applied in the same launch (fusion.py).  Element i's uniform number is a hash of
(seed, i): SplitMix64, whose top 24 bits give a float in [0, 1); no generator state, no host copy.
The host generator gives one seed per mask, so a GPU run is as reproducible (same seed, same
masks, also after a resume) but drops different elements than the NumPy function."""
import numpy as np

from ..layers.dropout import DropoutCache
from . import fusion

DROPOUT = fusion.fused_kernel("dropout", "T x, uint64 seed, T p, T scale", "T out, T keep", """
    unsigned long long z = seed + (unsigned long long)(i + 1) * 0x9E3779B97F4A7C15ULL;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    z ^= z >> 31;
    T uniform = T(z >> 40) * T(1.0 / 16777216.0);
    keep = uniform >= p ? scale : T(0);
    out = x * keep;""")


def dropout_forward_fused(x, p, rng):
    """Replaces layers/dropout.py: dropout_forward."""
    if p == 0.0 or rng is None:
        return x, DropoutCache(keep=None)
    seed = rng.integers(0, 2 ** 63, dtype=np.uint64)          # the host generator's one draw per mask
    out, keep = fusion.launch(DROPOUT, x, seed, x.dtype.type(p), x.dtype.type(1.0 / (1.0 - p)))
    return out, DropoutCache(keep=keep)
