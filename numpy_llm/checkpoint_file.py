"""Reading a checkpoint file from a stranger: each ``.npy`` member of the ``.npz`` (a zip file) is
checked from its header before a byte of its data is read, and only the members asked for are read.

    header: magic, version, then a dict {descr, fortran_order, shape}    (numpy.lib.format)
    data:   prod(shape) * itemsize bytes, exactly what is left of the member

The zip's directory says how many bytes each member holds once inflated, and reading never goes
past that; so a member whose header declares more data than it holds (a huge shape), or whose
data would inflate past its declared size, is refused before anything is allocated.  Nothing is
ever unpickled (``allow_pickle=False``).
"""
import math
import zipfile
from collections.abc import Mapping

import numpy as np

from .errors import UsageError

TEXT_LIMIT = 1 << 20            # bytes a text member (the JSON meta) may hold


class CheckpointArrays(Mapping):
    """The arrays of an open checkpoint by entry name (``param/wte``, ...), each read when asked
    for; ``arrays[name]`` checks the member's header, ``read`` also its shape and dtype."""

    def __init__(self, file, path):
        self.path = path
        try:
            self._zip = zipfile.ZipFile(file)
            self._members = {info.filename.removesuffix(".npy"): info for info in self._zip.infolist()}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
            raise UsageError(f"{path} is not a readable numpy_llm checkpoint (corrupt or truncated: "
                             f"{type(exc).__name__})") from None

    def __iter__(self):
        return (name for name in self._members if name != "meta")

    def __len__(self):
        return len(self._members) - ("meta" in self._members)

    def __contains__(self, name):
        return name in self._members

    def __getitem__(self, name):
        return self.read(name)

    def read(self, name, shape=None, kind=None):
        """The array stored as ``name``, after its header says it has ``shape`` (if given) and a
        dtype of ``kind`` ('f' for floats; if given) and holds exactly the data it declares."""
        if name not in self._members:
            raise KeyError(name)
        stored_shape, dtype = self.header(name)
        if shape is not None and stored_shape != tuple(shape):
            raise UsageError(f"{self.path}: {name} has shape {stored_shape}, expected {tuple(shape)}")
        if kind is not None and (dtype.kind != kind or dtype.itemsize not in (2, 4, 8)):
            raise UsageError(f"{self.path}: {name} holds {dtype} values, not floats")
        return self._guarded(name, lambda f: np.lib.format.read_array(f, allow_pickle=False))

    def read_text(self, name, limit=TEXT_LIMIT):
        """The string stored as the 0-d array ``name`` (JSON, in a checkpoint), at most ``limit`` bytes."""
        info = self._members[name]
        if info.file_size > limit:
            raise UsageError(f"{self.path}: its {name} entry holds {info.file_size:,} bytes; at most {limit:,} "
                             f"are expected")
        shape, dtype = self.header(name)
        if shape != () or dtype.kind != "U":
            raise UsageError(f"{self.path}: its {name} entry is not a string")
        return str(self.read(name))

    def header(self, name):
        """(shape, dtype) from the member's .npy header, checked against the member's size."""
        info = self._members[name]

        def parse(f):
            version = np.lib.format.read_magic(f)
            read_header = {(1, 0): np.lib.format.read_array_header_1_0,
                           (2, 0): np.lib.format.read_array_header_2_0}.get(version)
            if read_header is None:
                raise ValueError(f"npy format {version}")
            shape, _, dtype = read_header(f)
            return shape, dtype, info.file_size - f.tell()
        shape, dtype, data_bytes = self._guarded(name, parse)
        if dtype.hasobject:
            raise UsageError(f"{self.path}: {name} holds Python objects, which are never loaded")
        declared = math.prod(shape) * dtype.itemsize
        if declared != data_bytes:
            raise UsageError(f"{self.path}: {name} declares shape {shape} of {dtype} ({declared:,} bytes) "
                             f"but holds {data_bytes:,} bytes (corrupt or crafted)")
        return shape, dtype

    def _guarded(self, name, read):
        """read(member file) -> value; anything unreadable becomes one UsageError naming the entry."""
        try:
            with self._zip.open(self._members[name]) as f:
                return read(f)
        except (OSError, ValueError, TypeError, EOFError, zipfile.BadZipFile, NotImplementedError) as exc:
            raise UsageError(f"{self.path}: its {name} entry is not a readable array "
                             f"(corrupt or truncated: {type(exc).__name__})") from None

    def close(self):
        self._zip.close()
