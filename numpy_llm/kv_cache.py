"""The KV cache: each layer's keys and values of the positions already processed.

During generation the past never changes, so its keys and values need not be
recomputed: a new position computes only its own q, k, v, appends k and v here,
and attends over everything stored.  One new token then costs O(context) work
instead of a full forward pass over the context.

    per layer: k, v (B, H, block_size, hs), preallocated; the first ``length`` positions are filled
"""


class LayerKVCache:
    """One layer's keys and values; ``append`` is called by self-attention."""

    def __init__(self, xp, batch, n_head, block_size, head_size, dtype):
        self.k = xp.empty((batch, n_head, block_size, head_size), dtype=dtype)
        self.v = xp.empty((batch, n_head, block_size, head_size), dtype=dtype)
        self.length = 0

    def append(self, k_new, v_new):
        """Store (B, H, T_new, hs) keys and values; return all of them so far, (B, H, length, hs)."""
        start, end = self.length, self.length + k_new.shape[2]
        if end > self.k.shape[2]:
            raise ValueError(f"KV cache overflow: {end} positions > block_size {self.k.shape[2]}")
        self.k[:, :, start:end] = k_new
        self.v[:, :, start:end] = v_new
        self.length = end
        return self.k[:, :, :end], self.v[:, :, :end]


class KVCache:
    """The whole model's cache: one LayerKVCache per transformer block."""

    def __init__(self, config, xp, dtype, batch=1):
        head_size = config.n_embd // config.n_head
        self.layers = [LayerKVCache(xp, batch, config.n_head, config.block_size, head_size, dtype)
                       for _ in range(config.n_layer)]

    @property
    def length(self):
        """Positions stored (the next new token's position)."""
        return self.layers[0].length

    def reset(self):
        for layer in self.layers:
            layer.length = 0
