"""NumPy fast twins: the plain math of a few layers (and AdamW's update) computed in place, with
fewer passes over memory.  Each one names the plain function it replaces, and a test holds it to
that function (tests/test_layers.py, tests/test_optim.py); each is kept because it buys more than
2% of a training step (docs/performance.md).

``FAST`` is the layers' table (layers/kernels.py) with the twins in their slots; dropout and the
cross-entropy backward keep their plain functions; the embedding's gradient groups positions by
token for a large vocabulary.
"""
from ..layers.kernels import PLAIN
from .embedding import embedding_backward_grouped
from .gelu import gelu_backward_fast, gelu_forward_fast
from .layernorm import layernorm_backward_fast, layernorm_forward_fast
from .softmax import softmax_backward_inplace, softmax_inplace

FAST = PLAIN._replace(name="fast", gelu_forward=gelu_forward_fast, gelu_backward=gelu_backward_fast,
                      layernorm_forward=layernorm_forward_fast, layernorm_backward=layernorm_backward_fast,
                      softmax=softmax_inplace, softmax_backward=softmax_backward_inplace,
                      embedding_backward=embedding_backward_grouped)
