"""Read and write the safetensors format with NumPy alone (no ``safetensors`` package needed).

A ``.safetensors`` file is three parts, back to back:

    8 bytes      N, the header's length, an unsigned little-endian 64-bit integer
    N bytes      a JSON object (UTF-8, padded with spaces to a multiple of 8 bytes):
                     {"__metadata__": {str: str},                        (optional)
                      "<name>": {"dtype": "F32", "shape": [768, 2304],
                                 "data_offsets": [begin, end]}, ...}
    the rest     every tensor's raw bytes, little-endian, C order; [begin, end) counts from
                 the first byte after the header, and the tensors tile it with no gap or overlap

    save_file({"w": np.ones((2, 3), np.float32)}, "model.safetensors", {"format": "pt"})
    tensors = load_file("model.safetensors")            # name -> NumPy array
"""
import json
import math
import struct

import numpy as np

# safetensors dtype name -> NumPy dtype (BF16 has no NumPy dtype: it is read as float32)
DTYPES = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "I64": "<i8", "I32": "<i4", "I16": "<i2",
          "I8": "i1", "U64": "<u8", "U32": "<u4", "U16": "<u2", "U8": "u1", "BOOL": "?"}
NAMES = {np.dtype(numpy_dtype): name for name, numpy_dtype in DTYPES.items()}
MAX_HEADER_BYTES = 100_000_000


class SafetensorsError(ValueError):
    """The file is not a well-formed safetensors file."""


def save_file(tensors, path, metadata=None):
    """Write tensors (name -> NumPy array) and metadata (str -> str) to ``path``.

    Tensors are stored in name order, little-endian; a big-endian array is converted."""
    header, offset, blobs = {}, 0, []
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    for name in sorted(tensors):
        array = np.asarray(tensors[name])
        dtype = array.dtype.newbyteorder("<") if array.dtype.byteorder == ">" else array.dtype
        if dtype not in NAMES:
            raise TypeError(f"tensor {name!r}: dtype {array.dtype} has no safetensors name")
        blob = np.ascontiguousarray(array, dtype=dtype).tobytes()
        header[name] = {"dtype": NAMES[dtype], "shape": list(array.shape),
                        "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for blob in blobs:
            f.write(blob)


def read_header(f, file_size):
    """(tensor entries name -> {dtype, shape, data_offsets}, metadata, data start) from an open file."""
    prefix = f.read(8)
    if len(prefix) < 8:
        raise SafetensorsError("file is shorter than the 8-byte header length")
    (length,) = struct.unpack("<Q", prefix)
    if length > min(MAX_HEADER_BYTES, file_size - 8):
        raise SafetensorsError(f"header length {length} does not fit in a file of {file_size} bytes")
    try:
        header = json.loads(f.read(length).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SafetensorsError(f"header is not JSON ({exc})") from None
    if not isinstance(header, dict):
        raise SafetensorsError("header is not a JSON object")
    metadata = header.pop("__metadata__", None) or {}
    _check_layout(header, file_size - 8 - length)
    return header, metadata, 8 + length


def _check_layout(entries, data_size):
    """Every entry well-formed, its byte count matching its shape, and the entries tiling the data."""
    spans = []
    for name, entry in entries.items():
        try:
            dtype, shape, (begin, end) = entry["dtype"], entry["shape"], entry["data_offsets"]
            itemsize = 2 if dtype == "BF16" else np.dtype(DTYPES[dtype]).itemsize
            count = math.prod(shape)
            valid = all(type(v) is int for v in (*shape, begin, end)) and min(shape, default=0) >= 0 \
                and 0 <= begin <= end
        except (KeyError, TypeError, ValueError):
            raise SafetensorsError(f"tensor {name!r} has a malformed or unknown entry: {entry}") from None
        if not valid or end - begin != count * itemsize:
            raise SafetensorsError(f"tensor {name!r}: offsets [{begin}, {end}) do not hold "
                                   f"shape {shape} of {dtype}")
        spans.append((begin, end, name))
    position = 0
    for begin, end, name in sorted(spans):
        if begin != position:
            raise SafetensorsError(f"tensor {name!r} starts at byte {begin}, not {position} "
                                   f"(a gap or an overlap)")
        position = end
    if position != data_size:
        raise SafetensorsError(f"the tensors cover {position} bytes but the file holds {data_size}")


def load_file(path):
    """Every tensor of a safetensors file: name -> NumPy array (native byte order; BF16 as float32)."""
    with open(path, "rb") as f:
        f.seek(0, 2)
        file_size = f.tell()
        f.seek(0)
        entries, _, start = read_header(f, file_size)
        tensors = {}
        for name, entry in entries.items():
            begin, end = entry["data_offsets"]
            f.seek(start + begin)
            raw = f.read(end - begin)
            tensors[name] = _decode(raw, entry["dtype"]).reshape(entry["shape"])
    return tensors


def _decode(raw, dtype):
    """Raw little-endian bytes -> a 1-D NumPy array in native byte order."""
    if dtype == "BF16":                 # bfloat16 is the top half of a float32
        return (np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
    return np.frombuffer(raw, dtype=DTYPES[dtype]).astype(np.dtype(DTYPES[dtype]).newbyteorder("="))
