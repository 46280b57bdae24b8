"""The staircase: GPT-2 built up one piece at a time, each step trained alike: ``python cli.py
experiment staircase``.

    step                                   what the model is                     its chapter
    bigram: embeddings only                logits = (wte[x] + wpe[t]) @ wte^T    05
    + one attention head                   ... attn(x) ..., one head             06
    + multi-head                           the same, n_head heads                07
    + MLP                                  mlp(attn(x))                          08
    + residuals and LayerNorm: the block   one GPT-2 block (pre-LN)              09, 10
    GPT-2: more blocks, final LayerNorm    n_layer blocks, then ln_f             11

Every step is the same model code (model.py) in another configuration: a block from variants.py
(out = x, attn(x), mlp(attn(x))) or GPT-2's own, a number of heads and layers, and the final
LayerNorm on or off.  All steps start from the same seed and train on the same batches with the
same settings; each is evaluated as the experiments are (experiments.py: EVALS points), and at
the end on every validation byte (evaluate.py), beside the counting baselines of the same split
(baselines.py: uniform, unigram, bigram).  The picture shows validation bits per byte.
"""
import json
import math
import sys
from dataclasses import asdict, dataclass, replace

import numpy as np

from .backend import Backend
from .baselines import baselines
from .errors import UsageError
from .evaluate import evaluate as evaluate_all
from .experiments import prepared, train_curve
from .model import GPT2_BLOCK, Block, ModelConfig, TinyTransformerLM
from .params import init_params
from .plots import pyplot, save_png
from .settings import TrainSettings
from .variants import ATTENTION_MLP_BLOCK, ATTENTION_ONLY_BLOCK, EMBEDDINGS_ONLY_BLOCK


@dataclass(frozen=True)
class Stage:
    """One step of the staircase: which block, how many heads and layers, whether ln_f is there.
    ``n_head`` / ``n_layer`` None: the experiment's config's."""
    label: str
    chapter: str
    block: Block
    n_head: object = None
    n_layer: object = 1
    final_norm: bool = False


STAGES = (
    Stage("bigram: embeddings only", "docs/05-embeddings.md", EMBEDDINGS_ONLY_BLOCK, n_head=1),
    Stage("+ one attention head", "docs/06-single-head-attention.md", ATTENTION_ONLY_BLOCK, n_head=1),
    Stage("+ multi-head", "docs/07-multi-head-attention.md", ATTENTION_ONLY_BLOCK),
    Stage("+ MLP", "docs/08-mlp-and-gelu.md", ATTENTION_MLP_BLOCK),
    Stage("+ residuals and LayerNorm", "docs/10-transformer-block.md", GPT2_BLOCK),
    Stage("GPT-2: more blocks, final LayerNorm", "docs/11-full-model-and-weight-tying.md", GPT2_BLOCK,
          n_layer=None, final_norm=True),
)


@dataclass(frozen=True)
class Staircase:
    name: str
    title: str
    chapter: str
    config: ModelConfig             # n_head: the multi-head steps'; n_layer: the full GPT-2's
    settings: TrainSettings
    stages: tuple = STAGES


STAIRCASE = Staircase("staircase", "GPT-2 built one piece at a time, for the same budget",
                      "docs/README.md", ModelConfig(block_size=64, n_layer=4, n_head=4, n_embd=128),
                      TrainSettings(steps=500, batch_size=32, lr=3e-3, warmup_steps=20, eval_iters=8))


def stage_config(staircase, stage):
    """The ModelConfig of one step: the staircase's, with the stage's heads and layers."""
    config = staircase.config
    return replace(config, n_head=stage.n_head or config.n_head, n_layer=stage.n_layer or config.n_layer)


def build_model(staircase, stage, seed, backend=None):
    """The model of one step, initialised from ``seed`` (the same for every step)."""
    config = stage_config(staircase, stage)
    return TinyTransformerLM(config, backend or Backend("numpy", "float32"), params=init_params(config, seed),
                             block=stage.block, final_norm=stage.final_norm)


def run_staircase(staircase, steps=None, data=None, seed=None, workers=1, log=None):
    """Train every step; returns (settings, [Curve], {baseline: bits/byte}, [final bits/byte])."""
    log = log or (lambda line: print(line, file=sys.stderr, flush=True))
    settings, train_data, val_data = prepared(staircase.settings, staircase.config.block_size, steps, data, seed)
    counted = {name: result.bits_per_byte for name, result in baselines(train_data, val_data).items()}
    curves, finals = [], []
    for stage in staircase.stages:
        model = build_model(staircase, stage, settings.seed)
        log(f"staircase: training {stage.label} ({settings.steps} steps)")
        curves.append(train_curve(model, stage.label, settings, train_data, val_data, workers, log))
        finals.append(evaluate_all(model, val_data).bits_per_byte)
        log(f"  {stage.label}: {finals[-1]:.3f} bits/byte on all {len(val_data) - 1:,} validation bytes")
    return settings, curves, counted, finals


BASELINE_LABELS = {"uniform": "uniform guess", "unigram": "unigram counts", "bigram": "bigram counts"}


def bits(nats):
    return [value / math.log(2) for value in nats]


def save_staircase(path, staircase, settings, curves, counted, finals):
    """The measurements as JSON: the settings, the baselines, and each step's Curve and final score."""
    record = {"experiment": staircase.name, "title": staircase.title, "model": staircase.config.to_dict(),
              "settings": settings.to_dict(), "baselines_bits_per_byte": counted,
              "stages": [dict(asdict(curve), final_bits_per_byte=final) for curve, final in zip(curves, finals)]}
    try:
        with open(path, "w") as f:
            json.dump(record, f, indent=1)
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from None


def draw_staircase(path, title, curves, counted, finals):
    """Left: each step's validation bits per byte against the step, the baselines as dotted lines;
    right: the final score of each step on every validation byte, as bars."""
    plt = pyplot()
    fig, (curve_ax, bar_ax) = plt.subplots(1, 2, figsize=(13, 4.8))
    colors = plt.get_cmap("viridis")(np.linspace(0.0, 0.9, len(curves)))
    for curve, color in zip(curves, colors):
        curve_ax.plot(curve.steps, bits(curve.val), "-", color=color, linewidth=2, label=curve.label)
    for (name, value), style in zip(counted.items(), (":", "-.", "--")):
        for ax in (curve_ax, bar_ax):
            ax.axhline(value, color="grey", linestyle=style, linewidth=1, label=f"{BASELINE_LABELS[name]}: {value:.2f}")
    curve_ax.set(xlabel="step", ylabel="validation bits per byte", title=title, ylim=(0, 8.5))
    bar_ax.bar(range(len(finals)), finals, color=colors)
    bar_ax.set_xticks(range(len(finals)), [curve.label for curve in curves], rotation=25, ha="right", fontsize=8)
    bar_ax.set(ylabel="bits per byte, every validation byte", title="where each step ends",
               ylim=(0, 1.15 * max(max(finals), counted["unigram"])))
    for ax in (curve_ax, bar_ax):
        ax.grid(alpha=0.3)
    curve_ax.legend(fontsize=8)
    fig.tight_layout()
    save_png(plt, fig, path)
    return path


def print_staircase_table(staircase, settings, curves, counted, finals):
    """The picture's numbers: every baseline and every step, in bits per validation byte."""
    config = staircase.config
    print(f"{staircase.name}: {staircase.title}; width {config.n_embd}, context {config.block_size}, "
          f"batch {settings.batch_size}, lr {settings.lr:g}, {settings.steps} steps each")
    width = max(len(curve.label) for curve in curves) + 2
    print(f"{'model':<{width}}{'bits/byte':>10}")
    for name, value in counted.items():
        print(f"{BASELINE_LABELS[name]:<{width}}{value:>10.3f}")
    for curve, final in zip(curves, finals):
        diverged = f"  (diverged at step {curve.diverged_at})" if curve.diverged_at is not None else ""
        print(f"{curve.label:<{width}}{final:>10.3f}{diverged}")
