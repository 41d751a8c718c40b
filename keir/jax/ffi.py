"""The XLA FFI handler that runs keir reductions inside XLA programs, in ctypes (no C++ toolchain).

One handler, registered as the CPU custom-call target `keir_reduce` with the typed FFI (api_version 1), runs
every keir reduction: its int64 attribute `reduction` is an id into `REDUCTIONS`, a process-level registry
that `register` fills, so two formulas never share an id and jit caches (keyed by the custom call and its
attributes) never mix kernels. The structures below mirror xla/ffi/api/c_api.h (API version 0.3) field for
field; XLA hands the handler a call frame, and

- at registration, a frame whose extension chain holds an XLA_FFI_Metadata_Extension: the handler writes the
  API version it speaks and its traits (none) there and returns;
- at the instantiate, prepare and initialize stages: nothing to do;
- at execute: the argument buffers are read in place as NumPy arrays, keir's compiled CPU kernel runs on them
  (`Reduction.compute`, which lays j-variables out as the kernel wants) and its outputs are copied into the
  result buffers XLA gave.

An exception becomes an XLA_FFI_Error made through the API's XLA_FFI_Error_Create, with the exception's
message: the JAX call raises it (an XlaRuntimeError) instead of the interpreter crashing.
"""

from __future__ import annotations

import ctypes
import threading
from collections.abc import Callable
from typing import Any

import numpy as np

TARGET = "keir_reduce"
_API_MAJOR, _API_MINOR = 0, 3
_EXTENSION_METADATA = 1
_STAGE_EXECUTE = 3
_ERROR_INVALID_ARGUMENT, _ERROR_INTERNAL = 3, 13
_ATTR_SCALAR = 3  # XLA_FFI_AttrType_SCALAR
# XLA_FFI_DataType codes: S32, S64, F32, F64
_DTYPES = {4: np.dtype(np.int32), 5: np.dtype(np.int64), 11: np.dtype(np.float32), 12: np.dtype(np.float64)}


class _ExtensionBase(ctypes.Structure):
    pass


_ExtensionBase._fields_ = [("struct_size", ctypes.c_size_t), ("type", ctypes.c_int),
                           ("next", ctypes.POINTER(_ExtensionBase))]


class _ApiVersion(ctypes.Structure):
    _fields_ = [("struct_size", ctypes.c_size_t), ("extension_start", ctypes.c_void_p),
                ("major_version", ctypes.c_int), ("minor_version", ctypes.c_int)]


class _Metadata(ctypes.Structure):
    _fields_ = [("struct_size", ctypes.c_size_t), ("api_version", _ApiVersion), ("traits", ctypes.c_uint32)]


class _MetadataExtension(ctypes.Structure):
    _fields_ = [("extension_base", _ExtensionBase), ("metadata", ctypes.POINTER(_Metadata))]


class _ErrorCreateArgs(ctypes.Structure):
    _fields_ = [("struct_size", ctypes.c_size_t), ("extension_start", ctypes.c_void_p),
                ("message", ctypes.c_char_p), ("errc", ctypes.c_int)]


_ErrorCreate = ctypes.CFUNCTYPE(ctypes.c_void_p, ctypes.POINTER(_ErrorCreateArgs))


class _Api(ctypes.Structure):  # the fields up to the one the handler calls
    _fields_ = [("struct_size", ctypes.c_size_t), ("extension_start", ctypes.c_void_p),
                ("api_version", _ApiVersion), ("internal_api", ctypes.c_void_p),
                ("XLA_FFI_Error_Create", _ErrorCreate)]


class _Buffer(ctypes.Structure):
    _fields_ = [("struct_size", ctypes.c_size_t), ("extension_start", ctypes.c_void_p),
                ("dtype", ctypes.c_int), ("data", ctypes.c_void_p), ("rank", ctypes.c_int64),
                ("dims", ctypes.POINTER(ctypes.c_int64))]


class _List(ctypes.Structure):  # XLA_FFI_Args and XLA_FFI_Rets have the same layout
    _fields_ = [("struct_size", ctypes.c_size_t), ("extension_start", ctypes.c_void_p), ("size", ctypes.c_int64),
                ("types", ctypes.POINTER(ctypes.c_int)), ("items", ctypes.POINTER(ctypes.c_void_p))]


class _ByteSpan(ctypes.Structure):
    _fields_ = [("ptr", ctypes.c_void_p), ("len", ctypes.c_size_t)]


class _Scalar(ctypes.Structure):
    _fields_ = [("dtype", ctypes.c_int), ("value", ctypes.c_void_p)]


class _Attrs(ctypes.Structure):
    _fields_ = [("struct_size", ctypes.c_size_t), ("extension_start", ctypes.c_void_p), ("size", ctypes.c_int64),
                ("types", ctypes.POINTER(ctypes.c_int)), ("names", ctypes.POINTER(ctypes.POINTER(_ByteSpan))),
                ("attrs", ctypes.POINTER(ctypes.c_void_p))]


class _CallFrame(ctypes.Structure):
    _fields_ = [("struct_size", ctypes.c_size_t), ("extension_start", ctypes.POINTER(_ExtensionBase)),
                ("api", ctypes.POINTER(_Api)), ("ctx", ctypes.c_void_p), ("stage", ctypes.c_int),
                ("args", _List), ("rets", _List), ("attrs", _Attrs), ("future", ctypes.c_void_p)]


# A registered reduction: called with the argument arrays and the result arrays (views of XLA's buffers), it
# fills the results.
Runner = Callable[[list[np.ndarray], list[np.ndarray]], None]

REDUCTIONS: dict[int, Runner] = {}
_ids: dict[Any, int] = {}
_lock = threading.Lock()


def register(key: Any, runner: Runner) -> int:
    """The id of the reduction `key` (hashable, e.g. its formula and categories), registering `runner` for
    it the first time: the value of the custom call's `reduction` attribute."""
    with _lock:
        found = _ids.get(key)
        if found is None:
            found = _ids[key] = len(_ids)
            REDUCTIONS[found] = runner
        return found


def _array(address: int) -> np.ndarray:
    """An XLA buffer as a NumPy array over the same memory (row-major: XLA's default layout on the CPU)."""
    buffer = _Buffer.from_address(address)
    dtype = _DTYPES.get(buffer.dtype)
    if dtype is None:
        raise TypeError(f"keir's XLA handler got a buffer of XLA data type {buffer.dtype}")
    shape = tuple(buffer.dims[k] for k in range(buffer.rank))
    count = int(np.prod(shape, dtype=np.int64))
    if count == 0:
        return np.empty(shape, dtype=dtype)
    memory = (ctypes.c_char * (count * dtype.itemsize)).from_address(buffer.data)
    return np.frombuffer(memory, dtype=dtype).reshape(shape)


def _reduction_id(attrs: _Attrs) -> int:
    for k in range(attrs.size):
        name = attrs.names[k].contents
        if ctypes.string_at(name.ptr, name.len) == b"reduction" and attrs.types[k] == _ATTR_SCALAR:
            scalar = _Scalar.from_address(attrs.attrs[k])
            return ctypes.c_int64.from_address(scalar.value).value
    raise ValueError("keir's XLA handler was called without its `reduction` attribute")


def _fill_metadata(frame: _CallFrame) -> bool:
    """Answer XLA's metadata query if this frame carries one."""
    extension = frame.extension_start
    while extension:
        if extension.contents.type == _EXTENSION_METADATA:
            metadata = ctypes.cast(extension, ctypes.POINTER(_MetadataExtension)).contents.metadata.contents
            metadata.api_version.major_version = _API_MAJOR
            metadata.api_version.minor_version = _API_MINOR
            metadata.traits = 0
            return True
        extension = extension.contents.next
    return False


def _error(frame: _CallFrame, message: str, code: int) -> int:
    args = _ErrorCreateArgs(ctypes.sizeof(_ErrorCreateArgs), None, message.encode(errors="replace"), code)
    return frame.api.contents.XLA_FFI_Error_Create(ctypes.byref(args))


def _handle(pointer: Any) -> int | None:
    frame = pointer.contents
    if _fill_metadata(frame) or frame.stage != _STAGE_EXECUTE:
        return None
    try:
        runner = REDUCTIONS[_reduction_id(frame.attrs)]
        arguments = [_array(frame.args.items[k]) for k in range(frame.args.size)]
        results = [_array(frame.rets.items[k]) for k in range(frame.rets.size)]
        runner(arguments, results)
    except (TypeError, ValueError, KeyError) as error:
        return _error(frame, f"keir: {error}", _ERROR_INVALID_ARGUMENT)
    except Exception as error:  # never let an exception unwind into XLA's C++ frames
        return _error(frame, f"keir: {type(error).__name__}: {error}", _ERROR_INTERNAL)
    return None


# Kept for the life of the process: XLA holds the function pointer.
_HANDLER = ctypes.CFUNCTYPE(ctypes.c_void_p, ctypes.POINTER(_CallFrame))(_handle)
_registered: list[bool] = []


def register_target() -> None:
    """Register the handler with XLA as the CPU target `keir_reduce` (once per process)."""
    import jax

    with _lock:
        if not _registered:
            address = ctypes.cast(_HANDLER, ctypes.c_void_p).value
            jax.ffi.register_ffi_target(TARGET, jax.ffi.pycapsule(address), platform="cpu", api_version=1)
            _registered.append(True)
