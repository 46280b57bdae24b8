"""The optimizer's exercise (``python cli.py check exercises/adamw.py``): global-norm clipping and
one tensor's AdamW update, compared with numpy_llm/optim.py on many inputs (no gradient to check).

The package's functions update in place; ``package_clip_grads`` and ``package_adamw_update`` call
them on copies and return what the stub's functions return, so each is the stub's answer.
"""
import numpy as np

from numpy_llm.optim import adamw_update, clip_grads_on_device

from .compared_exercises import ComparedExercise, Function

SHAPES = ((3, 4), (5,), (2, 3, 2))      # a matrix, a bias, a 3-axis tensor


def package_clip_grads(grads, max_norm):
    clipped = {name: g.copy() for name, g in grads.items()}
    norm = clip_grads_on_device(clipped, max_norm)
    return clipped, norm


def package_adamw_update(p, g, m, v, step, lr, weight_decay, betas, eps):
    p, m, v = p.copy(), m.copy(), v.copy()
    beta1, beta2 = betas
    adamw_update(p, g, m, v, beta1, beta2, 1.0 - beta1 ** step, 1.0 - beta2 ** step, lr, eps, 1.0 - lr * weight_decay)
    return p, m, v


def clip_inputs(rng):
    """Gradients of norm about 0.1 to 30, against max_norm 1 (clipped or not) and 0 (clipping off)."""
    cases = []
    for _ in range(30):
        arrays = np.random.default_rng(rng.randrange(2 ** 32))
        size = 10.0 ** rng.uniform(-1.5, 1.0)
        grads = {f"g{i}": size * arrays.standard_normal(shape) for i, shape in enumerate(SHAPES)}
        cases.append((grads, rng.choice((1.0, 1.0, 0.0))))
    return cases


def update_inputs(rng):
    """p, g, m, v of one tensor at steps 1 to 50, with and without weight decay, two sets of betas."""
    cases = []
    for _ in range(40):
        arrays = np.random.default_rng(rng.randrange(2 ** 32))
        shape = rng.choice(SHAPES)
        p, g, m = (arrays.standard_normal(shape) for _ in range(3))
        v = arrays.random(shape)
        cases.append((p, g, 0.1 * m, 0.01 * v, rng.randint(1, 50), 10.0 ** rng.uniform(-3, -1),
                      rng.choice((0.0, 0.1)), rng.choice(((0.9, 0.99), (0.8, 0.95))), 1e-8))
    return cases


def as_arrays(result):
    """(clipped dict, norm) or (p, m, v) -> a list of float64 arrays, in order."""
    first, *rest = result
    arrays = list(first.values()) if isinstance(first, dict) else [first]
    return [np.asarray(a, dtype=np.float64) for a in arrays + rest]


def agree(mine, expected):
    return len(mine) == len(expected) and all(
        a.shape == b.shape and np.allclose(a, b, rtol=1e-10, atol=1e-14) for a, b in zip(mine, expected))


def show_difference(names):
    def show(args, mine, expected):
        for name, a, b in zip(names(args), mine, expected):
            if a.shape != b.shape:
                return f"{name} has shape {a.shape}, expected {b.shape}"
            if not np.allclose(a, b, rtol=1e-10, atol=1e-14):
                at = tuple(int(i) for i in np.unravel_index(np.argmax(np.abs(a - b)), a.shape))
                return f"{name}{list(at) if at else ''} is {a[at]:.9g}, expected {b[at]:.9g}"
        return f"returned {len(mine)} values, expected {len(expected)}"
    return show


def clip_names(args):
    return [f"clipped[{name!r}]" for name in args[0]] + ["norm"]


def update_names(args):
    return ["p", "m", "v"]


def clip_per_tensor(grads, max_norm):
    """Each tensor clipped by its own norm."""
    clipped = {name: package_clip_grads({name: g}, max_norm)[0][name] for name, g in grads.items()}
    return clipped, package_clip_grads(grads, max_norm)[1]


def adamw_without_correction(p, g, m, v, step, lr, weight_decay, betas, eps):
    """m_hat = m, v_hat = v."""
    p, m, v = p.copy(), m.copy(), v.copy()
    adamw_update(p, g, m, v, betas[0], betas[1], 1.0, 1.0, lr, eps, 1.0 - lr * weight_decay)
    return p, m, v


def adam_with_l2(p, g, m, v, step, lr, weight_decay, betas, eps):
    """weight_decay p added into the gradient (L2 regularisation) instead of decayed apart."""
    return package_adamw_update(p, g + weight_decay * p, m, v, step, lr, 0.0, betas, eps)


ADAMW = ComparedExercise("adamw", (
    Function("clip_grads", package_clip_grads, clip_inputs, mistakes=(
        (clip_per_tensor, "one norm for all the gradients together: sqrt of the sum over every tensor of sum(g^2), "
                          "and every tensor scaled by the same factor; clipping each tensor by its own norm "
                          "changes the direction of the step"),),
        normalise=as_arrays, agree=agree, show=show_difference(clip_names)),
    Function("adamw_update", package_adamw_update, update_inputs, mistakes=(
        (adamw_without_correction, "the bias correction is missing: m_hat = m / (1 - beta1^step), "
                                   "v_hat = v / (1 - beta2^step)"),
        (adam_with_l2, "weight decay is decoupled in AdamW: p = p - lr weight_decay p, apart from the gradient, "
                       "not weight_decay p added into g (that is L2 regularisation, which Adam rescales)")),
        normalise=as_arrays, agree=agree, show=show_difference(update_names)),
), source="numpy_llm/optim.py")
