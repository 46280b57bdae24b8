"""The layers, one module each, in the order a learner meets them; each is a ``*_forward`` /
``*_backward`` pair:

    forward(inputs..., params...) -> (out, cache)        cache: a named tuple (cache.py)
    backward(dout, cache)         -> (dinput, {param_name: grad})

    embedding       token and position embeddings
    linear          x W + b
    softmax         rows of scores to probabilities
    attention       causal self-attention: one head's core, then the heads split and merged
    gelu            GPT-2's tanh GELU
    mlp             widen to 4C, GELU, project back
    layernorm       each position to mean 0, variance 1, then scaled and shifted
    dropout         inverted dropout
    block           the pre-LayerNorm transformer block
    cross_entropy   the mean negative log-probability of the next token
    lm_head         the head tied to the token embedding, with the loss, chunk by chunk

Every layer's backward only reads its cache; cache.py states the contract.  kernels.py names the
steps that have faster implementations (numpy_llm/fast, numpy_llm/cuda); the plain math here is
the default.
"""
