"""CuPy fused kernels: the plain math of a few layers (and AdamW's update), each chain of
elementwise steps as one GPU kernel (fusion.py says how a kernel is written).  Each function names
the plain one it replaces; tests/test_gpu_kernels.py compiles every kernel body as C++ and holds it
to that function without a GPU, tests/test_nvrtc.py compiles it as CUDA.

``CUDA`` is the layers' table (layers/kernels.py) with the fused functions in their slots.
``KERNELS`` lists every kernel by name, built here from the modules' declarations (a name used
twice is an error): the tests compile and check each one.
"""
from ..layers.kernels import PLAIN
from ..fast.embedding import embedding_backward_grouped
from . import adamw, cross_entropy, dropout, gelu, layernorm, rows, softmax
from .fusion import kernel_registry

CUDA = PLAIN._replace(name="cuda", gelu_forward=gelu.gelu_forward_fused, gelu_backward=gelu.gelu_backward_fused,
                      layernorm_forward=layernorm.layernorm_forward_fused,
                      layernorm_backward=layernorm.layernorm_backward_fused,
                      softmax=softmax.softmax_fused, softmax_backward=softmax.softmax_backward_fused,
                      dropout_forward=dropout.dropout_forward_fused,
                      cross_entropy_backward=cross_entropy.cross_entropy_backward_fused,
                      embedding_backward=embedding_backward_grouped)     # NumPy's and CuPy's alike

KERNELS = kernel_registry(gelu.GELU_FORWARD, gelu.GELU_BACKWARD, layernorm.LAYERNORM_FORWARD,
                          layernorm.LAYERNORM_BACKWARD, softmax.SOFTMAX_EXP, softmax.SOFTMAX_BACKWARD,
                          rows.ROW_DOT, dropout.DROPOUT, cross_entropy.CROSS_ENTROPY_BACKWARD, adamw.ADAMW)
