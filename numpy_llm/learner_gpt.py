"""The capstone, ``python cli.py experiment learner-gpt``: a GPT trained on the learner's own code.

Every forward and backward comes from the learner's files in exercises/ (``--exercises``): the
linear layer, the embedding, the attention core, GELU, LayerNorm, cross-entropy, multi-head
attention, the MLP, the block and the whole model, and the optimizer from adamw.py.  Each file is
graded first as ``python cli.py check`` grades it; the first one that fails is named and nothing
is trained.  Then the wiring exercises, which import their sublayers from the package, are given
the learner's sublayers instead (``wire``), so no package layer runs in the learner's model.

Beside it the package's own model (numpy_llm/model.py, the plain math, float64) trains from the
same initial parameters on the same batches with the same schedule.  Both loss curves are drawn;
with the reference answers in every file the two are equal to the last bit.
"""
import json
import os
from dataclasses import dataclass

import numpy as np

from gradcheck.exercise_specs import COMPARED, EXERCISES
from gradcheck.exercises import grade_compared, grade_module, load_exercise

from .backend import Backend
from .data import BUILTIN_NAME, get_batch, open_corpus, split_train_val
from .errors import UsageError
from .model import ModelConfig, TinyTransformerLM
from .optim import AdamW, clip_grads
from .params import init_params
from .plots import pyplot, save_png
from .settings import TrainSettings

PIECES = ("linear", "embedding", "attention", "gelu", "layernorm", "cross_entropy",    # in the chapters' order
          "self_attention", "mlp", "block", "gpt", "adamw")
BY_NAME = {exercise.name: exercise for exercise in EXERCISES + COMPARED}


@dataclass(frozen=True)
class Capstone:
    name: str
    title: str
    chapter: str
    config: ModelConfig
    settings: TrainSettings


LEARNER_GPT = Capstone("learner-gpt", "a GPT whose every forward and backward is yours, beside the package's",
                       "exercises/README.md", ModelConfig(block_size=32, n_layer=2, n_head=2, n_embd=32),
                       TrainSettings(steps=200, batch_size=8, lr=3e-3, warmup_steps=10, seed=0))


def load_pieces(folder):
    """{piece: the learner's module} from ``folder``/<piece>.py; UsageError for a missing or
    unloadable file."""
    modules = {}
    for piece in PIECES:
        path = os.path.join(folder, f"{piece}.py")
        try:
            exercise, modules[piece] = load_exercise(path)
        except UsageError as exc:
            raise UsageError(f"{exc}; check it first: python cli.py check {path}") from None
        if exercise.name != piece:
            raise UsageError(f"{path} is the exercise {exercise.name}, not {piece}")
    return modules


def refuse_failing(modules, folder):
    """Grade every piece as ``check`` does; UsageError naming the first one that does not pass."""
    for piece, module in modules.items():
        path = os.path.join(folder, f"{piece}.py")
        exercise = BY_NAME[piece]
        try:
            grade = (grade_compared if exercise in COMPARED else grade_module)(module, exercise, path)
        except UsageError as exc:
            raise UsageError(f"{exc}; check it first: python cli.py check {path}") from None
        if not grade.passed:
            failed = ", ".join(row.tensor for row in grade.rows if not row.passed) or grade.crash
            raise UsageError(f"{path}: {grade.backward} does not pass its check yet ({failed}); "
                             f"check it first: python cli.py check {path}")


def wire(modules):
    """Give every piece the learner's sublayers: each package function a stub imported (say
    ``linear_backward`` in mlp.py) is replaced by the learner's function of that name."""
    own = {}
    for piece, module in modules.items():
        names = [f.name for f in BY_NAME[piece].functions] if BY_NAME[piece] in COMPARED else \
            [BY_NAME[piece].forward, BY_NAME[piece].backward]
        own.update({name: getattr(module, name) for name in names})
    for module in modules.values():
        for name, value in list(vars(module).items()):
            if name in own and getattr(value, "__module__", "").startswith("numpy_llm."):
                setattr(module, name, own[name])
    return modules


def train_reference(config, settings, train_data):
    """The package's model, plain math in float64: the loss of every step."""
    model = TinyTransformerLM(config, Backend("numpy", "float64"), params=init_params(config, settings.seed),
                              implementation="plain")
    optimizer = AdamW(model.params, (settings.beta1, settings.beta2), settings.adam_eps, settings.weight_decay)
    rng, losses = np.random.default_rng(settings.seed), []
    for step in range(settings.steps):
        x, y = get_batch(train_data, settings.batch_size, config.block_size, rng)
        loss, grads = model.loss_and_grads(x, y)
        clip_grads(grads, settings.grad_clip)
        optimizer.step(model.params, grads, settings.lr_at(step))
        losses.append(float(loss))
    return losses


def train_learner(modules, config, settings, train_data):
    """The learner's model, from the same parameters and batches: the loss of every step."""
    gpt, cross_entropy, adamw = modules["gpt"], modules["cross_entropy"], modules["adamw"]
    params = init_params(config, settings.seed)
    optimizer = adamw.AdamW(params, (settings.beta1, settings.beta2), settings.adam_eps, settings.weight_decay)
    rng, losses = np.random.default_rng(settings.seed), []
    B, T, V = settings.batch_size, config.block_size, config.vocab_size
    for step in range(settings.steps):
        x, y = get_batch(train_data, B, T, rng)
        logits, cache = gpt.gpt_forward(x, params, config.n_layer, config.n_head)
        loss, ce_cache = cross_entropy.cross_entropy_forward(logits.reshape(B * T, V), y.reshape(-1))
        dlogits, _ = cross_entropy.cross_entropy_backward(1.0, ce_cache)
        _, grads = gpt.gpt_backward(dlogits.reshape(B, T, V), cache)
        clipped, _ = adamw.clip_grads({name: grads[name] for name in params}, settings.grad_clip)   # registry order
        optimizer.step(params, clipped, settings.lr_at(step))
        losses.append(float(loss))
    return losses


def run_capstone(capstone, modules, data=None):
    """Wire the learner's pieces (refuse_failing has passed them) and train both models; returns
    (reference, learner) losses."""
    wire(modules)
    train_data, _ = split_train_val(open_corpus(data), capstone.settings.val_frac, capstone.config.block_size,
                                    data or BUILTIN_NAME)
    return (train_reference(capstone.config, capstone.settings, train_data),
            train_learner(modules, capstone.config, capstone.settings, train_data))


def save_and_draw(out, curves_path, capstone, reference, learner):
    """The two loss curves as JSON and as a picture, the learner's over the package's."""
    with open(curves_path, "w") as f:
        json.dump({"experiment": capstone.name, "model": capstone.config.to_dict(),
                   "settings": capstone.settings.to_dict(), "package": reference, "yours": learner}, f, indent=1)
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    steps = np.arange(1, len(reference) + 1)
    ax.plot(steps, reference, "-", color="tab:blue", linewidth=3, alpha=0.5, label="the package's model")
    ax.plot(steps, learner, "--", color="tab:red", linewidth=1.2, label="your exercises")
    ax.set(xlabel="step", ylabel="train loss (nats/byte)", title=f"{capstone.name}: {capstone.title}")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    save_png(plt, fig, out)
