"""What the numbers of a wrong gradient say: the grader's diagnosis of a failing tensor.

Given the learner's gradient ``mine`` and the numeric one (finite differences, every coordinate),
it looks, in this order, for

    a zero gradient                     mine = 0 where numeric is not
    a constant factor                   mine = c numeric: c = -1 is a sign flip; c = 1/B, 1/N, H, ...
                                        is named from the exercise's sizes
    a transposed gradient               mine with its last two axes swapped = numeric
    a shift along an axis               mine[i] = numeric[i + s]: a row written at the wrong place
    the indices that are right          along each axis, the slices that agree and those that do not
    zero slices                         mine is 0 at an index of an axis where numeric is not
    right near a value of 0             right where the tensor's value is nearest 0, wrong elsewhere:
                                        a term that vanishes at 0 is off

and, when no pattern fits, the range of the ratio yours / numeric.  Each finding is one line.
"""
import numpy as np

AGREE = 1e-5        # two arrays agree when max |a - b| <= AGREE * max |b|
TINY = 1e-12


def agree(mine, numeric, scale):
    return float(np.max(np.abs(mine - numeric), initial=0.0)) <= AGREE * scale


def diagnose(mine, numeric, sizes, values=None, fallback=True):
    """Lines that say how ``mine`` differs from ``numeric`` (same shape); ``sizes``: {name: size} a
    gradient may be off by; ``values``: the tensor itself; ``fallback``: the ratio's range when no
    pattern fits (a row with a hint does without it)."""
    scale = float(np.max(np.abs(numeric), initial=0.0))
    if scale < TINY:
        return ["the numeric gradient is zero everywhere (this tensor does not change the output); yours is not"]
    if not np.any(mine):
        return ["yours is zero everywhere and the numeric gradient is not: nothing reaches this tensor"]
    whole = constant_factor(mine, numeric, scale, sizes) or transposed(mine, numeric, scale) \
        or shifted(mine, numeric, scale, sizes)
    if whole:
        return [whole]
    found = split_by_index(mine, numeric, scale) + zero_slices(mine, numeric)
    found += near_zero_values(mine, numeric, values) if values is not None else []
    return found or ([ratio_range(mine, numeric, scale)] if fallback else [])


def constant_factor(mine, numeric, scale, sizes):
    c = float(np.sum(mine * numeric) / np.sum(numeric * numeric))        # least squares: mine ~ c numeric
    if not agree(mine, c * numeric, scale * max(1.0, abs(c))):
        return ""
    if abs(c + 1.0) < 1e-4:
        return "yours is -1 x the numeric gradient everywhere: a sign is flipped"
    return f"yours is {c:.4g} x the numeric gradient everywhere: off by {factor_name(c, sizes)}"


def factor_name(c, sizes):
    """"1/B (B = 2)", "the number of heads", ...: the sizes c (or 1/c) equals, else c itself."""
    names = [f"{name} ({name} = {value:g})" for name, value in sizes.items() if value != 1 and close(c, value)]
    names += [f"1/{divisor(name)} ({name} = {value:g})" for name, value in sizes.items()
              if value != 1 and close(c, 1 / value)]
    names += [f"-{name}" for name, value in sizes.items() if value != 1 and close(c, -value)]
    names += [f"-1/{name}" for name, value in sizes.items() if value != 1 and close(c, -1 / value)]
    return " or ".join(names) if names else f"the constant factor {c:.4g}"


def divisor(name):
    """B*T -> (B*T): a product under 1/ in brackets."""
    return f"({name})" if "*" in name else name


def close(a, b):
    return abs(a - b) <= 1e-4 * abs(b)


def transposed(mine, numeric, scale):
    if mine.ndim < 2 or mine.shape[-1] != mine.shape[-2] or not agree(mine.swapaxes(-1, -2), numeric, scale):
        return ""
    return ("yours is the numeric gradient transposed (its last two axes swapped): let the shapes choose "
            "the order of the product, e.g. x^T @ dout, not dout^T @ x")


def shifted(mine, numeric, scale, sizes):
    for axis, n in enumerate(mine.shape):
        for s in [s for d in range(1, n) for s in (d, -d)]:
            moved = np.zeros_like(numeric)
            target = [slice(None)] * mine.ndim
            source = [slice(None)] * mine.ndim
            target[axis], source[axis] = (slice(0, n - s), slice(s, n)) if s > 0 else (slice(-s, n), slice(0, n + s))
            moved[tuple(target)] = numeric[tuple(source)]
            if agree(mine, moved, scale):
                named = " or ".join(f"{name} = {value}" for name, value in sizes.items() if value == abs(s))
                named = f" ({named})" if named else ""
                where = f"i - {s}" if s > 0 else f"i + {-s}"
                return (f"yours is the numeric gradient moved by {-s:+d} along axis {axis}{named}: "
                        f"what belongs at index i is at index {where}")
    return ""


def split_by_index(mine, numeric, scale):
    """Along each axis, the indices whose slices agree and those that do not, when some do."""
    lines = []
    for axis, n in enumerate(mine.shape):
        if n < 2:
            continue
        right = [i for i in range(n) if agree(np.take(mine, i, axis), np.take(numeric, i, axis), scale)]
        if 0 < len(right) < n:
            wrong = [i for i in range(n) if i not in right]
            if wrong == list(range(wrong[0], n)):
                lines.append(f"only indices >= {wrong[0]} of axis {axis} are wrong (0..{wrong[0] - 1} are right)")
            elif wrong == list(range(0, wrong[-1] + 1)):
                lines.append(f"only indices <= {wrong[-1]} of axis {axis} are wrong ({wrong[-1] + 1}..{n - 1} are right)")
            else:
                lines.append(f"along axis {axis}, indices {spans(wrong)} are wrong and {spans(right)} are right")
    return lines


def zero_slices(mine, numeric):
    lines = []
    for axis, n in enumerate(mine.shape):
        zero = [i for i in range(n) if not np.any(np.take(mine, i, axis)) and np.any(np.take(numeric, i, axis))]
        if zero and mine.ndim > 1:
            lines.append(f"yours is 0 at index {spans(zero)} of axis {axis}, where the numeric gradient is not")
    return lines


def near_zero_values(mine, numeric, values):
    """Nearly right at the value nearest 0 and wrong elsewhere: the terms that vanish at 0 are off."""
    ok = np.abs(numeric) > 1e-3 * np.max(np.abs(numeric))
    error = np.abs(mine - numeric)[ok] / np.abs(numeric)[ok]
    nearest = int(np.argmin(np.abs(values[ok])))
    if error[nearest] < 0.05 and np.median(error) > 4 * error[nearest]:
        return [f"yours is nearly right at the value nearest 0 ({values[ok][nearest]:.2g}: off by "
                f"{error[nearest]:.1%}) and off by up to {np.max(error):.0%} elsewhere: the terms of the "
                f"derivative that vanish at 0 are off, the one that remains at 0 is right"]
    return []


def ratio_range(mine, numeric, scale):
    ok = np.abs(numeric) > 1e-3 * scale
    ratio = mine[ok] / numeric[ok]
    return (f"yours / numeric is not one constant: it runs from {np.min(ratio):.3g} to {np.max(ratio):.3g} "
            f"(median {np.median(ratio):.3g})")


def spans(indices):
    """[0, 1, 2, 5] -> "0..2, 5"."""
    groups, start = [], indices[0]
    for a, b in zip(indices, indices[1:] + [None]):
        if b != a + 1:
            groups.append(f"{start}..{a}" if a > start else f"{a}")
            start = b
    return ", ".join(groups)
