"""The layers, in the order a learner meets them; each is a ``*_forward`` / ``*_backward`` pair.

    forward(inputs..., params...) -> (out, cache)        cache: a named tuple (cache.py)
    backward(dout, cache)         -> (dinput, {param_name: grad})

Every layer's backward only reads its cache; cache.py states the contract.
"""
from .embedding import embedding_backward, embedding_forward
from .linear import linear_backward, linear_forward
from .layernorm import layernorm_backward, layernorm_forward
from .gelu import gelu_backward, gelu_forward
from .dropout import dropout_backward, dropout_forward
from .attention import (causal_attention_backward, causal_attention_forward,
                        self_attention_backward, self_attention_forward)
from .mlp import mlp_backward, mlp_forward
from .block import block_backward, block_forward
from .cross_entropy import cross_entropy_backward, cross_entropy_forward
