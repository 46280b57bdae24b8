"""The reference answers of the exercises (exercises/*.py): each stub's backward filled with the
package's own, reading the stub's cache.  tests/test_exercises.py grades them (they pass) and
tests/test_learner_gpt.py trains the capstone with them (it matches the package bit for bit)."""
import importlib.util
import os

import numpy as np

from gradcheck.compared_exercises import encode_by_rank, package_merge
from gradcheck.exercise_specs import COMPARED, EXERCISES
from gradcheck.optimizer_exercise import package_adamw_update, package_clip_grads
from numpy_llm.layers.attention import AttentionCache, causal_attention_backward, self_attention_backward
from numpy_llm.layers.dropout import DropoutCache
from numpy_llm.layers.layernorm import layernorm_backward
from numpy_llm.layers.mlp import mlp_backward

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BY_NAME = {exercise.name: exercise for exercise in EXERCISES + COMPARED}
NO_DROPOUT = DropoutCache(keep=None)


def stub(name):
    """The exercise file, loaded as a fresh module."""
    spec = importlib.util.spec_from_file_location(f"stub_{name}", os.path.join(ROOT, "exercises", f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def attention_solution(dout, c):
    return causal_attention_backward(dout, AttentionCache(q=c.q, k=c.k, v=c.v, probs=c.probs, dropped=c.probs,
                                                          probs_dropout=NO_DROPOUT, scale=c.scale))


def prefixed(ln_1, attn, ln_2, mlp):
    """The sublayers' gradients under the block's local names."""
    return {f"{prefix}.{name}": g for prefix, sub in (("ln_1", ln_1), ("attn", attn), ("ln_2", ln_2), ("mlp", mlp))
            for name, g in sub.items()}


def post_ln_block_backward(dout, c, residual=True):
    """The post-LN block's backward (no package layer has it); residual=False drops x1's skip path."""
    ds2, ln_2_grads = layernorm_backward(dout, c.ln_2)            # s2 = x1 + m
    dx1_mlp, mlp_grads = mlp_backward(ds2, c.mlp)
    dx1 = ds2 + dx1_mlp if residual else dx1_mlp
    ds1, ln_1_grads = layernorm_backward(dx1, c.ln_1)             # s1 = x + a
    dx_attn, attn_grads = self_attention_backward(ds1, c.attn)
    return ds1 + dx_attn, prefixed(ln_1_grads, attn_grads, ln_2_grads, mlp_grads)


# The wiring exercises' answers call the sublayer backwards of the stub ``m`` they are written into:
# the package's when it is graded, the learner's once the capstone has wired them (learner_gpt.py).
# Each does what its package layer does, step for step.

def self_attention_solution(m):
    def self_attention_backward(dout, c):
        dmerged, proj = m.linear_backward(dout, c.proj)
        B, T, C = dmerged.shape
        dy = dmerged.reshape(B, T, c.n_head, C // c.n_head).transpose(0, 2, 1, 3)        # (B, H, T, hs)
        (dq, dk, dv), _ = m.causal_attention_backward(dy, c.attention)
        dqkv = np.stack([dq, dk, dv]).transpose(1, 3, 0, 2, 4).reshape(B, T, 3 * C)      # back where split took them
        dx, qkv = m.linear_backward(dqkv, c.qkv)
        return dx, {"w_qkv": qkv["w"], "b_qkv": qkv["b"], "w_proj": proj["w"], "b_proj": proj["b"]}
    return self_attention_backward


def mlp_solution(m):
    def mlp_backward(dout, c):
        dhidden, proj = m.linear_backward(dout, c.proj)
        dpre, _ = m.gelu_backward(dhidden, c.gelu)
        dx, fc = m.linear_backward(dpre, c.fc)
        return dx, {"w_fc": fc["w"], "b_fc": fc["b"], "w_proj": proj["w"], "b_proj": proj["b"]}
    return mlp_backward


def block_solution(m):
    def block_backward(dout, c):
        dh2, mlp_grads = m.mlp_backward(dout, c.mlp)
        dx1_ln_2, ln_2_grads = m.layernorm_backward(dh2, c.ln_2)
        dx1 = dout + dx1_ln_2
        dh1, attn_grads = m.self_attention_backward(dx1, c.attn)
        dx_ln_1, ln_1_grads = m.layernorm_backward(dh1, c.ln_1)
        return dx1 + dx_ln_1, prefixed(ln_1_grads, attn_grads, ln_2_grads, mlp_grads)
    return block_backward


def gpt_solution(m):
    def gpt_backward(dlogits, c):
        B, T, V = dlogits.shape
        C = c.h.shape[-1]
        dlogits2d = dlogits.reshape(B * T, V)
        dh = (dlogits2d @ c.wte).reshape(B, T, C)
        dwte_head = dlogits2d.T @ c.h.reshape(B * T, C)                   # the LM head's part of dwte
        dx, ln_f = m.layernorm_backward(dh, c.ln_f)
        grads = {"ln_f.gamma": ln_f["gamma"], "ln_f.beta": ln_f["beta"]}
        for layer in reversed(range(len(c.blocks))):
            dx, block_grads = m.block_backward(dx, c.blocks[layer])
            grads.update({f"h.{layer}.{name}": g for name, g in block_grads.items()})
        _, embedding = m.embedding_backward(dx, c.embedding)
        return None, dict(grads, wte=embedding["wte"] + dwte_head, wpe=embedding["wpe"])
    return gpt_backward


SOLUTIONS = {"attention": attention_solution, "post_ln_block": post_ln_block_backward}
WIRING_SOLUTIONS = {"self_attention": self_attention_solution, "mlp": mlp_solution, "block": block_solution,
                    "gpt": gpt_solution}
COMPARED_SOLUTIONS = {"bpe": {"merge": package_merge, "encode_chunk": encode_by_rank},
                      "adamw": {"clip_grads": package_clip_grads, "adamw_update": package_adamw_update}}


def solution(name, module=None):
    """The reference backward of exercise ``name``; a wiring exercise's calls the sublayers of ``module``
    (default: a fresh stub, whose sublayers are the package's)."""
    if name in WIRING_SOLUTIONS:
        return WIRING_SOLUTIONS[name](module or stub(name))
    return SOLUTIONS.get(name) or BY_NAME[name].reference[1]


def solved(name):
    """The stub of exercise ``name`` with the reference answer written in."""
    module = stub(name)
    functions = COMPARED_SOLUTIONS.get(name) or {BY_NAME[name].backward: solution(name, module)}
    for function_name, function in functions.items():
        setattr(module, function_name, function)
    return module
