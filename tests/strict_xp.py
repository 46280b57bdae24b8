"""A strict, CuPy-like array module for tests: NumPy underneath, but no implicit host conversion.

CPU/GPU-agnostic code breaks on CuPy in a few typical ways, all silent on NumPy:
a stray ``np.exp(x)`` / ``np.concatenate([x])`` / ``np.asarray(x)`` on a device array,
iterating over an array on the host, ``float()`` of a non-scalar, or mixing a host
(NumPy) array into device arithmetic.  :class:`StrictArray` wraps a NumPy array and
refuses all of these with TypeError, while supporting everything an ``xp``-style
program legitimately does (operators, indexing, methods, ``xp.<function>``).

    from strict_xp import strict_xp, StrictArray
    backend = Backend("strict", "float64", module=strict_xp)
    x = strict_xp.asarray(np.ones(3))      # host -> "device"
    y = strict_xp.exp(x) * 2.0             # fine
    x.get()                                # device -> host copy, as CuPy
    np.exp(x)                              # TypeError

Like CuPy, reductions and scalar indexing give 0-d arrays (never NumPy scalars), and
``float()`` / ``int()`` / ``bool()`` work on single-element arrays only.

Every explicit device -> host read (``.get()``, ``float()``, ``int()``, ``bool()``, ``.item()``,
``.tolist()``, formatting) is a transfer, and on a GPU a sync; ``counting_reads()`` lists them:

    with counting_reads() as reads:
        loss, grads = model.loss_and_grads(idx, targets)
    assert reads == []                      # nothing was read back
"""
import contextlib
import operator
import types

import numpy

# numpy functions that may take host (NumPy) arrays: the explicit host -> device copies (they copy)
HOST_INPUT_FUNCTIONS = frozenset({"asarray", "array", "asanyarray", "ascontiguousarray"})
# array methods whose result is host data (device -> host reads, counted by counting_reads)
HOST_RESULT_METHODS = frozenset({"item", "tolist", "tobytes"})


class StrictError(TypeError):
    """An operation that would silently move data between host and "device"."""


_reads = None          # inside counting_reads(): the list of reads so far


@contextlib.contextmanager
def counting_reads():
    """Inside, every device -> host read is recorded as (what, shape); yields that list."""
    global _reads
    outer, _reads = _reads, []
    try:
        yield _reads
    finally:
        _reads = outer


def _record_read(what, shape):
    if _reads is not None:
        _reads.append((what, shape))


def _unwrap(value, allow_host=True, what="argument"):
    """StrictArray -> its ndarray, recursively inside lists/tuples/dicts; host ndarrays refused
    unless allow_host ("copy": accepted as a copy, so device and host memory never alias, as on a GPU)."""
    if isinstance(value, StrictArray):
        return value._a
    if isinstance(value, numpy.ndarray):
        if not allow_host:
            raise StrictError(f"a host numpy.ndarray {value.shape} was passed as a device {what}; "
                              f"copy it with xp.asarray first (CuPy refuses this too)")
        return value.copy() if allow_host == "copy" else value
    if isinstance(value, (list, tuple)):
        return type(value)(_unwrap(v, allow_host, what) for v in value)
    if isinstance(value, dict):
        return {k: _unwrap(v, allow_host, what) for k, v in value.items()}
    return value


def _wrap(value):
    """ndarray / NumPy scalar -> StrictArray (0-d for scalars, as CuPy), also inside tuples/lists."""
    if isinstance(value, numpy.ndarray):
        return StrictArray(value)
    if isinstance(value, numpy.generic):
        return StrictArray(numpy.asarray(value))
    if isinstance(value, tuple):
        return tuple(_wrap(v) for v in value)
    if isinstance(value, list):
        return [_wrap(v) for v in value]
    if isinstance(value, (numpy.random.Generator, numpy.random.RandomState)):
        return StrictNamespace(value)
    return value


def _call(func, args, kwargs, allow_host=False, out_passthrough=True):
    """Call a NumPy callable on unwrapped arguments and wrap the result.  When the result is
    the ``out=`` array, the caller's own StrictArray is returned (in-place semantics kept)."""
    raw_args = _unwrap(args, allow_host)
    raw_kwargs = _unwrap(kwargs, allow_host)
    result = func(*raw_args, **raw_kwargs)
    out = kwargs.get("out")
    if out_passthrough and isinstance(out, StrictArray) and result is out._a:
        return out
    return _wrap(result)


def _binary(op, reflected=False):
    def method(self, other):
        other = _unwrap(other, allow_host=False, what="operand")
        result = op(other, self._a) if reflected else op(self._a, other)
        return _wrap(result)
    return method


def _inplace(op):
    def method(self, other):
        self._a = op(self._a, _unwrap(other, allow_host=False, what="operand"))
        return self
    return method


def _unary(op):
    def method(self):
        return _wrap(op(self._a))
    return method


class StrictArray:
    """A NumPy array in a box that CuPy-style code may use but NumPy cannot see into."""

    __slots__ = ("_a",)
    array_module = None          # set to the namespace below; numpy_llm.backend.array_module reads it
    __array_ufunc__ = None       # np.exp(x), np.add(x, y), ndarray + x -> TypeError (numpy defers, then refuses)

    def __init__(self, array):
        if not isinstance(array, numpy.ndarray):
            raise StrictError(f"StrictArray wraps a numpy.ndarray, not {type(array).__name__}")
        self._a = array

    # --- refusals: every implicit device -> host path -----------------------------------------
    def __array__(self, dtype=None, copy=None):
        raise StrictError("implicit conversion of a StrictArray to a NumPy array; use .get() "
                          "(a stray np.* call or np.asarray on a device array?)")

    def __array_function__(self, func, types, args, kwargs):
        raise StrictError(f"numpy.{func.__name__} called on a StrictArray; use xp.{func.__name__}")

    def __iter__(self):
        raise StrictError("iterating over a StrictArray on the host; use array operations")

    def _scalar(self, kind):
        if self._a.size != 1:
            raise StrictError(f"{kind}() of a StrictArray with {self._a.size} elements, shape {self._a.shape}")
        _record_read(kind, self._a.shape)
        return self._a.reshape(()).item()

    def __float__(self):
        return float(self._scalar("float"))

    def __int__(self):
        return int(self._scalar("int"))

    def __bool__(self):
        return bool(self._scalar("bool"))

    def __complex__(self):
        return complex(self._scalar("complex"))

    # --- explicit device -> host ---------------------------------------------------------------
    def get(self):
        """A NumPy copy, as ``cupy.ndarray.get()``."""
        _record_read("get", self._a.shape)
        return self._a.copy()

    # --- attributes and methods ----------------------------------------------------------------
    @property
    def shape(self):
        return self._a.shape

    @property
    def dtype(self):
        return self._a.dtype

    @property
    def ndim(self):
        return self._a.ndim

    @property
    def size(self):
        return self._a.size

    @property
    def T(self):
        return StrictArray(self._a.T)

    def __len__(self):
        return len(self._a)

    def __getattr__(self, name):
        # Dunders (__array_interface__, __array_struct__, __deepcopy__, ...) and private
        # names are never forwarded: they would open a back door into the ndarray.
        if name.startswith("_"):
            raise AttributeError(name)
        attr = getattr(self._a, name)
        if name in HOST_RESULT_METHODS:
            _record_read(name, self._a.shape)
        if callable(attr):
            def method(*args, **kwargs):
                return _call(attr, args, kwargs)
            method.__name__ = name
            return method
        return _wrap(attr)

    def __getitem__(self, index):
        return _wrap(self._a[_unwrap(index)])

    def __setitem__(self, index, value):
        self._a[_unwrap(index)] = _unwrap(value, allow_host=False, what="value")

    def __repr__(self):
        return f"StrictArray({self._a!r})"

    def __format__(self, spec):
        _record_read("format", self._a.shape)
        return format(self._a, spec)

    __hash__ = None

    # --- operators -----------------------------------------------------------------------------
    __add__, __radd__, __iadd__ = _binary(operator.add), _binary(operator.add, True), _inplace(operator.iadd)
    __sub__, __rsub__, __isub__ = _binary(operator.sub), _binary(operator.sub, True), _inplace(operator.isub)
    __mul__, __rmul__, __imul__ = _binary(operator.mul), _binary(operator.mul, True), _inplace(operator.imul)
    __truediv__, __rtruediv__, __itruediv__ = (_binary(operator.truediv), _binary(operator.truediv, True),
                                               _inplace(operator.itruediv))
    __floordiv__, __rfloordiv__, __ifloordiv__ = (_binary(operator.floordiv), _binary(operator.floordiv, True),
                                                  _inplace(operator.ifloordiv))
    __mod__, __rmod__, __imod__ = _binary(operator.mod), _binary(operator.mod, True), _inplace(operator.imod)
    __pow__, __rpow__, __ipow__ = _binary(operator.pow), _binary(operator.pow, True), _inplace(operator.ipow)
    __matmul__, __rmatmul__ = _binary(operator.matmul), _binary(operator.matmul, True)
    __and__, __rand__, __iand__ = _binary(operator.and_), _binary(operator.and_, True), _inplace(operator.iand)
    __or__, __ror__, __ior__ = _binary(operator.or_), _binary(operator.or_, True), _inplace(operator.ior)
    __xor__, __rxor__, __ixor__ = _binary(operator.xor), _binary(operator.xor, True), _inplace(operator.ixor)
    __lt__, __le__ = _binary(operator.lt), _binary(operator.le)
    __gt__, __ge__ = _binary(operator.gt), _binary(operator.ge)
    __eq__, __ne__ = _binary(operator.eq), _binary(operator.ne)
    __neg__, __pos__ = _unary(operator.neg), _unary(operator.pos)
    __abs__, __invert__ = _unary(operator.abs), _unary(operator.invert)


class _StrictUfunc:
    """A NumPy ufunc whose call and methods (.at, .reduce, .accumulate, .outer, .reduceat)
    take and give StrictArrays."""

    def __init__(self, ufunc):
        self._ufunc = ufunc
        self.__name__ = ufunc.__name__

    def __call__(self, *args, **kwargs):
        return _call(self._ufunc, args, kwargs)

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        attr = getattr(self._ufunc, name)
        if not callable(attr):
            return attr
        if name == "at":                                # in place: a, indices, b; returns None
            def at(a, indices, b=None):
                raw = (_unwrap(a, False), _unwrap(indices))
                raw += () if b is None else (_unwrap(b, False, "value"),)
                return attr(*raw)
            return at

        def method(*args, **kwargs):
            return _call(attr, args, kwargs)
        method.__name__ = name
        return method

    def __repr__(self):
        return f"<strict ufunc {self.__name__}>"


class StrictNamespace:
    """``xp``: attribute access on a module (or object) with every callable made strict.

    Functions unwrap StrictArray arguments (also in lists/tuples and ``out=``), refuse host
    ndarrays (except the host -> device copies in HOST_INPUT_FUNCTIONS) and wrap ndarray
    results; submodules (``xp.random``, ``xp.linalg``) are namespaces too; types, dtypes and
    constants (``xp.float32``, ``xp.newaxis``, ``xp.inf``) pass through unchanged.
    """

    def __init__(self, target, name=None):
        self._target = target
        self._name = name or getattr(target, "__name__", type(target).__name__)
        self._cache = {}

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        if name in self._cache:
            return self._cache[name]
        if name == "ndarray" and self._target is numpy:
            value = StrictArray
        else:
            value = self._strict(name, getattr(self._target, name))
        self._cache[name] = value
        return value

    def _strict(self, name, attr):
        if isinstance(attr, types.ModuleType):
            return StrictNamespace(attr, f"{self._name}.{name}")
        if isinstance(attr, numpy.ufunc):
            return _StrictUfunc(attr)
        if isinstance(attr, type) or not callable(attr):
            return attr                                # dtypes, classes, constants
        allow_host = "copy" if name in HOST_INPUT_FUNCTIONS else False

        def function(*args, **kwargs):
            return _call(attr, args, kwargs, allow_host=allow_host)
        function.__name__ = name
        function.__qualname__ = f"{self._name}.{name}"
        return function

    def __repr__(self):
        return f"<strict namespace over {self._name}>"


strict_xp = StrictNamespace(numpy, "strict_xp")
StrictArray.array_module = strict_xp
