"""``python cli.py plot``: a run's loss curves (from its metrics log) into a PNG, the learning
rate in a panel below them.

    python cli.py plot --ckpt ckpt.npz --out loss.png            reads ckpt.metrics.jsonl
    python cli.py plot --metrics ckpt.metrics.jsonl --out loss.png
    python cli.py plot --ckpt ckpt.npz --gap                     adds validation minus train loss

Needs matplotlib (``pip install matplotlib``); without it, one line on stderr and exit code 2.
"""
from ..plots import plot_losses
from ..files import companion_path


def configure(parser):
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--ckpt", default="ckpt.npz",
                        help="checkpoint whose metrics log to plot: ckpt.npz -> ckpt.metrics.jsonl")
    source.add_argument("--metrics", default=None,
                        help="the metrics log (JSON lines) to plot, instead of the one beside --ckpt")
    parser.add_argument("--out", default="loss.png", help="PNG file to write")
    parser.add_argument("--gap", action="store_true",
                        help="add a panel of validation minus train loss at each evaluation, on a scale "
                             "that shows the gap the full loss curves hide")


def run(args):
    metrics_path = args.metrics or companion_path(args.ckpt, ".metrics.jsonl")
    print(plot_losses(metrics_path, args.out, gap=args.gap))
    return 0
