"""Flags several commands share: where the arrays live, ``--xp numpy|cupy`` or its synonym
``--device cpu|cuda``."""
import argparse

from ..errors import UsageError

DEVICE_TO_XP = {"cpu": "numpy", "cuda": "cupy"}


def add_array_module_flags(parser, what="array module"):
    parser.add_argument("--xp", choices=("numpy", "cupy"), default=argparse.SUPPRESS,
                        help=f"{what}: numpy (CPU) or cupy (NVIDIA GPU) (default: numpy)")
    parser.add_argument("--device", choices=tuple(DEVICE_TO_XP), default=argparse.SUPPRESS,
                        help="synonym of --xp: cpu = numpy, cuda = cupy")


def array_module_name(args):
    """'numpy' or 'cupy' from --xp / --device; the two must agree when both are given."""
    xp, device = getattr(args, "xp", None), getattr(args, "device", None)
    from_device = DEVICE_TO_XP.get(device)
    if xp and from_device and xp != from_device:
        raise UsageError(f"--xp {xp} contradicts --device {device}")
    return xp or from_device or "numpy"
