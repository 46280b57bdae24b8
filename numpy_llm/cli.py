"""Command line: ``python cli.py <command> [flags]`` (or ``python -m numpy_llm``).

Each command lives in ``numpy_llm/commands/<name>.py`` with two functions:
``configure(parser)`` adds its flags, ``run(args) -> exit code`` does the work.
Bad input (UsageError, BackendError, InvalidSetting) becomes one line on stderr and exit code 2.
"""
import argparse
import importlib
import os
import sys

from .backend import BackendError
from .errors import InvalidSetting, UsageError
from .stopping import Stopped, stop_on_signals

COMMANDS = {
    "train": "train a model on a text (or any) file",
    "tokenizer": "learn a byte-level BPE vocabulary from a text (train), or encode a text into token ids (encode)",
    "generate": "generate text from a checkpoint",
    "gradcheck": "check every handwritten backward against finite differences",
    "check": "grade a backward you wrote in an exercises/ file against finite differences",
    "bench": "benchmark training and generation speed",
    "plot": "draw a run's loss curves and learning rate into a PNG",
    "attention": "draw every layer's and head's attention pattern over a prompt into a PNG",
    "eval": "score every byte of a file with a checkpoint: loss in nats and bits per byte, perplexity",
    "baselines": "the loss of uniform, unigram and bigram byte counts on a text's validation split",
    "export": "write a checkpoint as a Hugging Face GPT-2 folder, or (--from-hf) read one back",
    "experiment": "train GPT-2 and a variant that differs in one thing; draw both loss curves into a PNG",
}


class Parser(argparse.ArgumentParser):
    """argparse, with a usage error as one line that points to --help (not the whole usage)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


class DefaultsFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Every flag's default in its help, once: a help text that names its own default keeps it as written."""

    def _get_help_string(self, action):
        return action.help if "default" in (action.help or "") else super()._get_help_string(action)


def build_parser(prog="cli.py"):
    parser = Parser(prog=prog, description="numpy_llm: GPT-2 in NumPy with handwritten gradients "
                                           "(bytes or a BPE tokenizer).")
    sub = parser.add_subparsers(dest="command", metavar="command", required=True)
    for name, help_text in COMMANDS.items():
        command = sub.add_parser(name, help=help_text, description=help_text[0].upper() + help_text[1:] + ".",
                                 formatter_class=DefaultsFormatter)
        command.set_defaults(module=_command_module(name))
        _command_module(name).configure(command)
    return parser


def _command_module(name):
    return importlib.import_module(f"numpy_llm.commands.{name}")


def main(argv=None, prog=None):
    if prog is None:
        script = os.path.basename(sys.argv[0])
        prog = "python -m numpy_llm" if script == "__main__.py" else script
    args = build_parser(prog).parse_args(argv)
    try:
        with stop_on_signals():
            return args.module.run(args)
    except (UsageError, BackendError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except InvalidSetting as exc:      # a ModelConfig / TrainSettings range check: named as its flag
        print(f"error: --{exc.name.replace('_', '-')} {exc.rule}", file=sys.stderr)
        return 2
    except Stopped as exc:             # SIGINT, SIGTERM or SIGHUP (train saves on the first one: stopping.py)
        print(f"\nstopped by {exc.name}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:            # `generate ... | head` closed the pipe: not an error
        return 0


if __name__ == "__main__":
    sys.exit(main())
