"""``python cli.py baselines``: the loss of three counting models (uniform, unigram, bigram) on a
run's validation split, the yardstick for its validation loss (numpy_llm/baselines.py).  With
``--tokenizer`` they count that tokenizer's tokens and report per token and per byte."""
from ..baselines import baselines
from ..bpe import BYTES
from ..data import BUILTIN_NAME, split_train_val
from ..settings import TrainSettings
from ..token_data import load_tokens, spelled_bytes
from ..tokenizer_files import load_tokenizer


def configure(parser):
    parser.add_argument("--data", default=None,
                        help="the training text, as given to train (default: the built-in Shakespeare sample)")
    parser.add_argument("--val-frac", type=float, default=TrainSettings.val_frac,
                        help="the validation fraction, as given to train")
    parser.add_argument("--tokenizer", default=None, metavar="DIR",
                        help="count this tokenizer's tokens, as train --tokenizer does (default: bytes)")


def run(args):
    name = args.data or BUILTIN_NAME
    tok = BYTES if args.tokenizer is None else load_tokenizer(args.tokenizer)
    tokens = load_tokens(args.data, tok)
    train, val = split_train_val(tokens, args.val_frac, 1, name)
    val_bytes = None if tok.is_bytes else spelled_bytes(val[1:], tok)
    results = baselines(train, val, tok.vocab_size, val_bytes)
    count = next(iter(results.values())).count
    if tok.is_bytes:
        print(f"fitted on the {len(train):,} training bytes of {name}, scored on its {count:,} validation bytes")
    else:
        print(f"fitted on the {len(train):,} training tokens of {name} ({tok.vocab_size:,}-token tokenizer "
              f"{args.tokenizer}), scored on its {count:,} validation tokens ({val_bytes:,} bytes)")
    unit = "byte" if tok.is_bytes else "token"
    print(f"{'baseline':<10}{'nats/' + unit:>11}{'bits/byte':>11}{'perplexity':>12}")
    for baseline, result in results.items():
        print(f"{baseline:<10}{result.nats_per_token:>11.4f}{result.bits_per_byte:>11.4f}{result.perplexity:>12.2f}")
    return 0
