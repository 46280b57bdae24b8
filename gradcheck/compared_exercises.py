"""Exercises with no derivative to check (``python cli.py check exercises/bpe.py``): the learner's
functions are compared with the package's on many inputs, each function on its own.

A function passes when it returns what the package returns on every input.  When it does not,
the grader shows the first input it gets wrong, and the hint of every usual mistake whose
outputs the learner's equal on all the inputs (a mistake that differs from the package there).
"""
import copy
import operator
import random
import traceback
from dataclasses import dataclass
from typing import Callable

from numpy_llm.bpe import apply_merges
from numpy_llm.bpe import merge as package_merge


@dataclass(frozen=True)
class Function:
    name: str                           # in the learner's file
    reference: Callable                 # the package's answer, called as the learner's is
    inputs: Callable                    # random.Random -> [tuple of arguments]
    mistakes: tuple = ()                # (wrong function, hint)
    normalise: Callable = None          # result -> what is compared (None: normalised, below)
    agree: Callable = operator.eq       # (yours, expected) -> bool, both normalised
    show: Callable = None               # (args, yours, expected) -> what differs (None: the call, both results)


@dataclass(frozen=True)
class ComparedExercise:
    name: str
    functions: tuple                    # of Function
    source: str                         # the package file the answers come from
    allowed_imports: tuple = ()

    @property
    def written(self):
        return " and ".join(f.name for f in self.functions)


@dataclass
class Verdict:
    """One function's result: passed, what was found, the hints that apply."""
    function: str
    passed: bool
    detail: str
    hints: list


def compare(module, exercise, seed=0):
    """A Verdict per function of the exercise, or None for each that is not written yet."""
    return [compare_function(getattr(module, f.name), f, random.Random(seed), module) for f in exercise.functions]


def compare_function(mine, function, rng, module):
    cases = function.inputs(rng)
    normalise = function.normalise or normalised
    expected = [normalise(function.reference(*copied(args))) for args in cases]
    try:
        got = [normalise(mine(*copied(args))) for args in cases]
    except NotImplementedError:
        return None
    except Exception as exc:
        frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == module.__file__]
        where = f" (line {frames[-1].lineno}: {frames[-1].line})" if frames else ""
        return Verdict(function.name, False, f"raised {type(exc).__name__}: {exc}{where}", [])
    wrong = [i for i, (g, e) in enumerate(zip(got, expected)) if not function.agree(g, e)]
    if not wrong:
        return Verdict(function.name, True, f"equal to the package's on {len(cases)} inputs", [])
    first = wrong[0]
    shown = (function.show(cases[first], got[first], expected[first]) if function.show else
             f"{function.name}{call_text(cases[first])} returned {got[first]}, expected {expected[first]}")
    detail = f"wrong on {len(wrong)} of {len(cases)} inputs; first: {shown}"
    hints = [hint for mistake, hint in function.mistakes
             if all(function.agree(g, normalise(mistake(*copied(args)))) for g, args in zip(got, cases))]
    return Verdict(function.name, False, detail, hints)


def copied(args):
    """Fresh copies of the arguments: a function that changes its input in place must not change
    the next comparison."""
    return copy.deepcopy(args)


def normalised(result):
    try:
        return [int(i) for i in result]
    except (TypeError, ValueError):
        return result                   # not a sequence of ids: compared (and shown) as it is


def call_text(args):
    return "(" + ", ".join(repr(a) for a in args) + ")"


# --- BPE: the merge step and encoding (numpy_llm/bpe.py) -------------------------------------------

ALPHABET = (97, 98, 99)                 # b"abc": few symbols, so pairs repeat and overlap


def merge_inputs(rng):
    fixed = [([], (97, 97), 256), ([97], (97, 97), 256), ([97, 97, 97], (97, 97), 256),
             ([97, 97, 97, 97], (97, 97), 256), ([97, 98, 97, 98], (98, 97), 300)]
    drawn = [([rng.choice(ALPHABET) for _ in range(rng.randint(0, 12))],
              (rng.choice(ALPHABET), rng.choice(ALPHABET)), 256) for _ in range(300)]
    return fixed + drawn


def random_merges(rng, n):
    """{(a, b): new_id} of n merges over ALPHABET, ids 256.. in the order made, listed shuffled."""
    tokens, merges = list(ALPHABET), {}
    while len(merges) < n:
        pair = (rng.choice(tokens), rng.choice(tokens))
        if pair not in merges:
            merges[pair] = 256 + len(merges)
            tokens.append(merges[pair])
    pairs = list(merges)
    rng.shuffle(pairs)
    return {pair: merges[pair] for pair in pairs}


def encode_inputs(rng):
    cases = [(b"", {(97, 97): 256}), (b"aaa", {(97, 97): 256}), (b"abz", {(97, 98): 256})]
    for _ in range(15):
        merges = random_merges(rng, 12)
        cases += [(bytes(rng.choice(ALPHABET) for _ in range(rng.randint(0, 16))), merges) for _ in range(20)]
    return cases


def encode_by_rank(chunk, merges):
    return apply_merges(list(chunk), {pair: (new, new) for pair, new in merges.items()})


def merge_overlapping(ids, pair, new_id):
    """After a match, moves on by one: the right id is merged again with the next."""
    return [new_id if (a, b) == pair else a for a, b in zip(ids, ids[1:] + [None])]


def merge_dropping_the_last(ids, pair, new_id):
    out, i = [], 0
    while i < len(ids) - 1:
        out.append(new_id if (ids[i], ids[i + 1]) == pair else ids[i])
        i += 2 if (ids[i], ids[i + 1]) == pair else 1
    return out


def encode_leftmost_first(chunk, merges):
    ids = list(chunk)
    while any(p in merges for p in zip(ids, ids[1:])):
        pair = next(p for p in zip(ids, ids[1:]) if p in merges)
        ids = package_merge(ids, pair, merges[pair])
    return ids


def encode_one_merge(chunk, merges):
    ids = list(chunk)
    pairs = [p for p in zip(ids, ids[1:]) if p in merges]
    if not pairs:
        return ids
    first = min(pairs, key=merges.get)
    return package_merge(ids, first, merges[first])


def encode_in_dict_order(chunk, merges):
    ids = list(chunk)
    for pair, new_id in merges.items():
        ids = package_merge(ids, pair, new_id)
    return ids


BPE = ComparedExercise("bpe", (
    Function("merge", package_merge, merge_inputs, mistakes=(
        (merge_overlapping, "an id merged once is used up: after merging ids[i] and ids[i + 1], go on at "
                            "i + 2, so merge([97, 97, 97], (97, 97), 256) is [256, 97], not [256, 256, 97]"),
        (merge_dropping_the_last, "the last id has no right neighbour but still belongs to the output: "
                                  "a loop that stops at len(ids) - 1 must append it"))),
    Function("encode_chunk", encode_by_rank, encode_inputs, mistakes=(
        (encode_leftmost_first, "merge the pair learned first (the smallest new id), wherever it is, not the "
                                "leftmost pair that has a merge"),
        (encode_one_merge, "repeat: a merge makes new adjacent pairs, so look again and merge until no "
                           "adjacent pair has a merge"),
        (encode_in_dict_order, "the dict's order is not the order the merges were learned: the new ids are "
                               "(256, 257, ...); apply the smallest first"))),
), source="numpy_llm/bpe.py")
