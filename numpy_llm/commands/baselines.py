"""``python cli.py baselines``: the loss of three counting models (uniform, unigram, bigram) on a
run's validation split, the yardstick for its validation loss (numpy_llm/baselines.py)."""
from ..baselines import baselines
from ..data import BUILTIN_NAME, open_corpus, split_train_val
from ..settings import TrainSettings


def configure(parser):
    parser.add_argument("--data", default=None,
                        help="the training text, as given to train (default: the built-in Shakespeare sample)")
    parser.add_argument("--val-frac", type=float, default=TrainSettings.val_frac,
                        help="the validation fraction, as given to train")


def run(args):
    name = args.data or BUILTIN_NAME
    train, val = split_train_val(open_corpus(args.data), args.val_frac, 1, name)
    results = baselines(train, val)
    print(f"fitted on the {len(train):,} training bytes of {name}, scored on its "
          f"{next(iter(results.values())).count:,} validation bytes")
    print(f"{'baseline':<10}{'nats/byte':>11}{'bits/byte':>11}{'perplexity':>12}")
    for baseline, result in results.items():
        print(f"{baseline:<10}{result.nats_per_byte:>11.4f}{result.bits_per_byte:>11.4f}{result.perplexity:>12.2f}")
    return 0
