"""``python cli.py generate``: continue a prompt with a trained model, streaming to stdout."""
import math
import sys

import numpy as np

from ..backend import Backend
from ..bpe import ENDOFTEXT
from ..checkpoint import load_model, step_text
from ..errors import UsageError
from ..files import check_readable_file
from ..generate import generate, write_stream
from ..tokenizer import StreamDecoder
from .options import add_array_module_flags, array_module_name

PROMPT_LIMIT = 1 << 20          # bytes read from --prompt-file at most


def configure(parser):
    parser.add_argument("--ckpt", default="ckpt.npz", help="checkpoint to load")
    parser.add_argument("--prompt", default="", help="text to continue (empty: start from <|endoftext|> when the tokenizer has it, else a newline)")
    parser.add_argument("--prompt-file", default=None, help="read the prompt from this file (raw bytes) instead")
    parser.add_argument("--max-new-tokens", type=int, default=300, help="tokens to generate per sample (bytes, for a byte model)")
    parser.add_argument("--temperature", type=float, default=0.8,
                        help="divide the logits by this; 0 = greedy (always the most likely token)")
    parser.add_argument("--top-k", type=int, default=None, help="sample only among the k most likely tokens")
    parser.add_argument("--top-p", type=float, default=None,
                        help="then only among the most likely tokens whose mass reaches p (nucleus), in (0, 1]")
    parser.add_argument("--seed", type=int, default=1337, help="random seed: the same seed gives the same text")
    parser.add_argument("--num-samples", type=int, default=1, help="independent samples to print")
    add_array_module_flags(parser)
    parser.add_argument("--no-stop", action="store_true",
                        help=f"go on past the end-of-text token {ENDOFTEXT} of a BPE model (default: stop there, "
                             f"as transformers' generate does)")
    parser.add_argument("--no-cache", action="store_true",
                        help="recompute the whole context for every token instead of using the KV cache")


def run(args):
    _validate(args)
    prompt_text = _read_prompt(args)
    model, meta, tokenizer = load_model(args.ckpt, Backend(array_module_name(args), "float32"))
    prompt = tokenizer.encode(prompt_text) if prompt_text else np.array([tokenizer.start_id])
    block_size = model.config.block_size
    if len(prompt) > block_size:
        print(f"note: the prompt has {len(prompt)} tokens; the model sees its last {block_size}",
              file=sys.stderr)
    print(f"loaded {args.ckpt} ({step_text(meta)}, {model.num_params():,} parameters)",
          file=sys.stderr)
    rng = np.random.default_rng(args.seed)
    stop_id = None if args.no_stop else tokenizer.special.get(ENDOFTEXT)
    out = sys.stdout
    for sample in range(args.num_samples):
        if args.num_samples > 1:
            print(f"--- sample {sample + 1} ---", file=out, flush=True)
        new_ids = generate(model, prompt, args.max_new_tokens, temperature=args.temperature, top_k=args.top_k,
                           top_p=args.top_p, rng=rng, use_cache=not args.no_cache, stop_id=stop_id)
        tokens = write_stream(prompt, new_ids, StreamDecoder(tokenizer.shown), out)
        if tokens and tokens[-1] == stop_id:
            print(f"(stopped at {ENDOFTEXT} after {len(tokens)} tokens; --no-stop goes on)", file=sys.stderr)
    return 0


def _validate(args):
    if not math.isfinite(args.temperature) or args.temperature < 0:
        raise UsageError(f"--temperature must be 0 (greedy) or positive, not {args.temperature}")
    if args.top_k is not None and args.top_k < 1:
        raise UsageError(f"--top-k must be at least 1, not {args.top_k}")
    if args.top_p is not None and not 0.0 < args.top_p <= 1.0:
        raise UsageError(f"--top-p must be in (0, 1], not {args.top_p}")
    if args.max_new_tokens < 1:
        raise UsageError(f"--max-new-tokens must be positive, not {args.max_new_tokens}")
    if args.prompt_file is not None and args.prompt:
        raise UsageError("give --prompt or --prompt-file, not both")
    if args.num_samples < 1:
        raise UsageError(f"--num-samples must be positive, not {args.num_samples}")
    if args.seed < 0:
        raise UsageError(f"--seed must be 0 or more, not {args.seed}")


def _read_prompt(args):
    if args.prompt_file is not None:
        check_readable_file(args.prompt_file, "prompt file")
        try:
            with open(args.prompt_file, "rb") as f:
                data = f.read(PROMPT_LIMIT + 1)
            if len(data) > PROMPT_LIMIT:
                raise UsageError(f"prompt file {args.prompt_file} holds more than {PROMPT_LIMIT:,} bytes; "
                                 f"the model sees only its last context's worth anyway")
        except OSError as exc:
            raise UsageError(f"cannot read prompt file {args.prompt_file}: {exc.strerror or exc}") from None
    else:
        data = args.prompt.encode("utf-8", errors="surrogateescape")
    return data
