"""The layer contract, and the one rule about caches.

    forward(inputs..., params...) -> (out, cache)
    backward(dout, cache)         -> (dinput, {param_name: grad})

A cache is what the forward saves for the backward: a small named tuple per layer, whose
fields (with their shapes, in its definition) say exactly what the backward reads.  Nobody
indexes a cache by position.

Every layer's backward only *reads* its cache: call it as often as you like, the answer is
the same.  The whole model's backward (``model_backward``) is the exception: it *consumes*
its cache, releasing each block's activations as soon as that block's gradients are done,
so memory falls during the backward instead of peaking.  Its cache is a
``ConsumableCache``: a second backward on it raises ``CacheConsumedError`` instead of
returning a wrong gradient.
"""


class CacheConsumedError(RuntimeError):
    """A backward that consumes its cache was called twice on the same cache."""


class ConsumableCache:
    """Base class of caches that a backward consumes (the subclass is a dataclass)."""
    consumed = False

    def consume(self, backward_name):
        """Mark the cache used; raise if it already was."""
        if self.consumed:
            raise CacheConsumedError(f"{backward_name} already ran on this cache and released its "
                                     f"activations; run the forward again to get a new cache")
        self.consumed = True
