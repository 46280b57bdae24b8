"""``assert_same_sequence(got, expected)``: equality of long sequences (token ids, bytes, text),
reported as the place where they first differ.

pytest's own report of a failed ``==`` between two sequences diffs their whole printed forms line
by line when the ``CI`` variable is set, which takes minutes for two lists of 400,000 ids: long
enough to time out a test that is meant to fail quickly (the tokenizer chapter's exercise does).
"""
import pytest

SHOWN = 4       # items shown on each side of the first difference


def assert_same_sequence(got, expected):
    if got == expected:
        return
    first = next((i for i, (a, b) in enumerate(zip(got, expected)) if a != b), min(len(got), len(expected)))
    window = slice(max(0, first - SHOWN), first + SHOWN)
    pytest.fail(f"{len(got)} items against {len(expected)} expected; the first difference is at {first}:\n"
                f"  got      [{window.start}:{window.stop}] = {got[window]!r}\n"
                f"  expected [{window.start}:{window.stop}] = {expected[window]!r}")
