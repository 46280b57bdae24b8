"""``python cli.py experiment NAME``: train GPT-2 and a variant that differs in one thing, with
everything else equal, and draw both on one picture (numpy_llm/experiments.py).

The picture goes to runs/experiments/NAME.png (``--out``), its curves to the same path with
``.json``; stdout gets a table of the final numbers and the two paths, stderr the progress.
The post-ln experiment trains the learner's own post-LN block: exercises/post_ln_block.py
(``--block``), loaded as ``python cli.py check`` loads it, once its backward passes that check.
The bpe experiment trains a byte model and a BPE model for the same time (``--seconds``) and
draws validation bits per byte against training time (numpy_llm/experiment_bpe.py).
The learner-gpt experiment trains a GPT made of the learner's exercise files (``--exercises``)
beside the package's, once every file passes its check (numpy_llm/learner_gpt.py).
The staircase experiment trains GPT-2 built up one piece at a time (numpy_llm/staircase.py).
"""
import argparse
import os
from dataclasses import replace

from gradcheck.exercise_specs import POST_LN_BLOCK
from gradcheck.exercises import grade_file, load

from ..errors import UsageError
from ..experiment_bpe import BPE, draw_timed, print_timed_table, run_bpe_experiment, save_timed_curves
from ..experiments import EXPERIMENTS, LEARNER_BLOCK, draw, run_experiment, save_curves
from ..learner_gpt import LEARNER_GPT, load_pieces, refuse_failing, run_capstone, save_and_draw
from ..plots import pyplot
from ..runner import available_cores, check_workers, default_workers
from ..staircase import STAIRCASE, draw_staircase, print_staircase_table, run_staircase, save_staircase
from ..variants import exercise_block

DEFAULT_BLOCK = os.path.join("exercises", "post_ln_block.py")
ALL = {**EXPERIMENTS, BPE.name: BPE, LEARNER_GPT.name: LEARNER_GPT, STAIRCASE.name: STAIRCASE}


def configure(parser):
    parser.formatter_class = argparse.RawDescriptionHelpFormatter      # each help text names its default
    parser.add_argument("name", nargs="?", metavar="NAME", help=f"the experiment: {', '.join(ALL)}")
    parser.add_argument("--list", action="store_true", help="list the experiments and what each shows")
    parser.add_argument("--out", default=None,
                        help="the picture's path; the curves go beside it as .json "
                             "(default: runs/experiments/NAME.png)")
    parser.add_argument("--steps", type=int, default=None,
                        help="optimizer steps of each arm (default: the experiment's, shown by --list)")
    parser.add_argument("--seconds", type=float, default=None,
                        help=f"bpe only: training seconds of each arm (default: {BPE.seconds:g})")
    parser.add_argument("--lr", type=float, default=None,
                        help="peak learning rate of both arms (default: the experiment's)")
    parser.add_argument("--warmup-steps", type=int, default=None,
                        help="warmup steps of both arms, except the warmup experiment's arm without "
                             "warmup (default: the experiment's)")
    parser.add_argument("--n-layer", type=int, default=None,
                        help="transformer blocks of both arms' model (default: the experiment's)")
    parser.add_argument("--data", default=None,
                        help="training text (default: the experiment's, the built-in Shakespeare sample)")
    parser.add_argument("--workers", type=int, default=None,
                        help=f"threads that share each batch (default: one per CPU core, {available_cores()} here)")
    parser.add_argument("--seed", type=int, default=None,
                        help="seed of the initialisation and the batches, the same for both arms "
                             "(default: the experiment's)")
    parser.add_argument("--block", default=None,
                        help=f"post-ln only: your exercise file with post_ln_block_backward written "
                             f"(default: {DEFAULT_BLOCK})")
    parser.add_argument("--exercises", default=None,
                        help="learner-gpt only: the folder of your exercise files (default: exercises)")


def run(args):
    if args.list:
        for experiment in ALL.values():
            length = f"{experiment.seconds:g} s each" if experiment is BPE else steps(experiment.settings.steps)
            print(f"{experiment.name:<12} {experiment.title} ({experiment.chapter}; {length})")
        return 0
    if args.name not in ALL:
        given = f"unknown experiment {args.name!r}" if args.name else "name an experiment"
        raise UsageError(f"{given}; choose one of {', '.join(ALL)} (python cli.py experiment --list)")
    is_bpe, is_capstone = args.name == BPE.name, args.name == LEARNER_GPT.name
    is_staircase = args.name == STAIRCASE.name
    if (args.seconds is not None) != is_bpe and (args.seconds is not None or args.steps is not None):
        raise UsageError("the bpe experiment trains for --seconds, the others for --steps")
    experiment = with_overrides(ALL[args.name], args)
    workers = default_workers("numpy") if args.workers is None else args.workers
    check_workers(workers, "numpy")
    out = args.out or os.path.join("runs", "experiments", f"{experiment.name}.png")
    curves_path = os.path.splitext(out)[0] + ".json"
    prepare_folder(out, curves_path)
    own_block = is_bpe or is_capstone or is_staircase or experiment.variant.block is not LEARNER_BLOCK
    if args.block is not None and own_block:
        raise UsageError(f"--block is for the post-ln experiment (your exercise block); {experiment.name} trains its own")
    if args.seconds is not None and not args.seconds > 0:
        raise UsageError(f"--seconds must be positive, not {args.seconds}")
    if args.exercises is not None and not is_capstone:
        raise UsageError("--exercises is for the learner-gpt experiment")
    block = None if own_block else learner_block(args.block or DEFAULT_BLOCK)
    if is_capstone:                             # (grades the learner's files before it asks for matplotlib)
        return run_learner_gpt(experiment, args, out, curves_path)
    pyplot()                                    # matplotlib missing: said after the flags, before training
    if is_bpe:
        return run_timed(experiment, args, workers, out, curves_path)
    if is_staircase:
        return run_stairs(experiment, args, workers, out, curves_path)
    settings, curves = run_experiment(experiment, args.steps, args.data, args.seed, workers, block)
    save_curves(curves_path, experiment, settings, curves)
    draw(out, f"{experiment.name}: {experiment.title}", curves, experiment.panel)
    print_table(experiment, settings, curves)
    print(f"picture: {out}\ncurves:  {curves_path}")
    return 0


def run_timed(experiment, args, workers, out, curves_path):
    """The bpe experiment: both arms for --seconds each, bits per byte against training time."""
    seed = {"seed": args.seed} if args.seed is not None else {}
    experiment = replace(experiment, seconds=args.seconds or experiment.seconds,
                         settings=replace(experiment.settings, **seed))
    curves = run_bpe_experiment(experiment, args.data, workers)
    save_timed_curves(curves_path, experiment, curves)
    draw_timed(out, f"{experiment.name}: {experiment.title}", curves)
    print_timed_table(experiment, curves)
    print(f"picture: {out}\ncurves:  {curves_path}")
    return 0


def run_learner_gpt(capstone, args, out, curves_path):
    """The capstone: the learner's GPT and the package's, step by step on the same batches."""
    folder = args.exercises or "exercises"
    settings = {name: value for name, value in (("steps", args.steps), ("seed", args.seed)) if value is not None}
    capstone = replace(capstone, settings=replace(capstone.settings, **settings))
    pieces = load_pieces(folder)
    refuse_failing(pieces, folder)              # the learner's pieces first, then matplotlib, then training
    pyplot()
    reference, learner = run_capstone(capstone, pieces, args.data)
    save_and_draw(out, curves_path, capstone, reference, learner)
    gap = max(abs(a - b) for a, b in zip(reference, learner))
    print(f"{capstone.name}: {capstone.title}; {steps(capstone.settings.steps)}")
    print(f"{'model':<15}{'first loss':>12}{'final loss':>12}")
    for label, losses in (("the package's", reference), ("yours", learner)):
        print(f"{label:<15}{losses[0]:>12.4f}{losses[-1]:>12.4f}")
    print("the same to the last bit at every step" if reference == learner else
          f"largest difference between the two: {gap:.3g}")
    print(f"picture: {out}\ncurves:  {curves_path}")
    return 0


def run_stairs(staircase, args, workers, out, curves_path):
    """The staircase experiment: every step trained alike, drawn beside the counting baselines."""
    settings, curves, counted, finals = run_staircase(staircase, args.steps, args.data, args.seed, workers)
    save_staircase(curves_path, staircase, settings, curves, counted, finals)
    draw_staircase(out, f"{staircase.name}: {staircase.title}", curves, counted, finals)
    print_staircase_table(staircase, settings, curves, counted, finals)
    print(f"picture: {out}\ncurves:  {curves_path}")
    return 0


def with_overrides(experiment, args):
    """The experiment with the learning rate, warmup and depth given on the command line (the
    settings and the model config check them: InvalidSetting names the flag)."""
    settings = {name: getattr(args, name) for name in ("lr", "warmup_steps") if getattr(args, name) is not None}
    config = {"n_layer": args.n_layer} if args.n_layer is not None else {}
    if "lr" in settings:
        settings["min_lr"] = min(experiment.settings.min_lr, settings["lr"])
    return replace(experiment, settings=replace(experiment.settings, **settings),
                   config=replace(experiment.config, **config))


def prepare_folder(out, curves_path):
    """Make the picture's folder; UsageError if it cannot be made, or the paths are not a .png
    and its .json (a .png path cannot be a user's notes or checkpoint, overwritten by mistake)."""
    if os.path.splitext(out)[1].lower() != ".png":
        raise UsageError(f"--out {out} is not a .png path; the picture is a PNG and its curves go beside it as .json")
    for path in (out, curves_path):
        if os.path.isdir(path):
            raise UsageError(f"{path} is a folder; give --out a file path such as {os.path.join(out, 'picture.png')}")
    try:
        os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot make the folder of --out {out}: {exc.strerror or exc}") from None


def learner_block(path):
    """The learner's post-LN block from ``path``, if its backward passes the check (else UsageError)."""
    run_check = f"run `python cli.py check {path}` first"
    try:
        grade = grade_file(path)
    except UsageError as exc:
        raise UsageError(f"{exc}; {run_check}") from None
    if grade.backward != POST_LN_BLOCK.backward:
        raise UsageError(f"--block {path} is the exercise of {grade.backward}, not of {POST_LN_BLOCK.backward}")
    if not grade.passed:
        raise UsageError(f"{path}: {grade.backward} does not pass its check yet; {run_check}")
    module = load(path, POST_LN_BLOCK)
    return exercise_block("post-LN", getattr(module, POST_LN_BLOCK.forward), getattr(module, POST_LN_BLOCK.backward))


def print_table(experiment, settings, curves):
    """The numbers of the picture: each arm's loss at step 0 and at its last evaluation."""
    config = experiment.config
    print(f"{experiment.name}: {experiment.title} ({experiment.chapter}); {config.n_layer} layers of width "
          f"{config.n_embd}, {config.n_head} head(s), lr {settings.lr:g}, warmup {settings.warmup_steps}, "
          f"{steps(settings.steps)}")
    probe = "  attention peak" if experiment.panel == "attention" else ""
    width = max(len(curve.label) for curve in curves) + 2
    print(f"{'arm':<{width}}{'val @ 0':>9}{'train':>9}{'val':>9}{'best val':>10}{probe}")
    for curve in curves:
        peak = f"{curve.attention_peak[-1]:>16.3f}" if curve.attention_peak else ""
        diverged = f"  (diverged at step {curve.diverged_at})" if curve.diverged_at is not None else ""
        print(f"{curve.label:<{width}}{curve.val[0]:>9.3f}{curve.train[-1]:>9.3f}{curve.val[-1]:>9.3f}"
              f"{min(curve.val):>10.3f}{peak}{diverged}")


def steps(n):
    return f"{n} step{'' if n == 1 else 's'}"
