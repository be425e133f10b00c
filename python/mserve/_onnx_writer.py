"""Writes small ONNX models as protobuf bytes without the ``onnx`` package, so that the example
models (mserve.examples) need nothing but numpy. Only what the examples use: nodes with int,
float, string and int-list attributes, float32 initializers, tensor inputs and outputs with
numeric or symbolic dims, one opset import. Field numbers are those of onnx.proto."""
from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Any, Union

import numpy as np

FLOAT = 1  # TensorProto.DataType.FLOAT
_ELEM_TYPES = {np.dtype(np.float32): 1, np.dtype(np.int64): 7}
Dim = Union[int, str]


def _varint(v: int) -> bytes:
    v &= (1 << 64) - 1  # int64 fields carry negative values as ten-byte two's complement
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _key(field: int, wire: int) -> bytes:
    return _varint(field << 3 | wire)


def _int(field: int, v: int) -> bytes:
    return _key(field, 0) + _varint(v)


def _bytes(field: int, v: bytes | str) -> bytes:
    data = v.encode() if isinstance(v, str) else v
    return _key(field, 2) + _varint(len(data)) + data


def _float(field: int, v: float) -> bytes:
    return _key(field, 5) + struct.pack("<f", v)


def _attribute(name: str, value: Any) -> bytes:
    a = _bytes(1, name)
    if isinstance(value, bool) or isinstance(value, int):
        return a + _int(3, int(value)) + _int(20, 2)  # INT
    if isinstance(value, float):
        return a + _float(2, value) + _int(20, 1)  # FLOAT
    if isinstance(value, str):
        return a + _bytes(4, value) + _int(20, 3)  # STRING
    if isinstance(value, (list, tuple)) and all(isinstance(x, int) for x in value):
        return a + b"".join(_int(8, x) for x in value) + _int(20, 7)  # INTS
    raise TypeError(f"attribute {name}: unsupported value {value!r}")


def node(op_type: str, inputs: Sequence[str], outputs: Sequence[str], **attrs: Any) -> bytes:
    """A NodeProto of the default domain."""
    body = b"".join(_bytes(1, i) for i in inputs) + b"".join(_bytes(2, o) for o in outputs)
    body += _bytes(4, op_type)
    body += b"".join(_bytes(5, _attribute(k, v)) for k, v in sorted(attrs.items()))
    return body


def tensor(array: np.ndarray[Any, Any], name: str) -> bytes:
    """A TensorProto holding `array` (float32 or int64) as raw little-endian data."""
    a = np.asarray(array)  # np.ascontiguousarray would make a scalar 1-D
    body = b"".join(_int(1, d) for d in a.shape) + _int(2, _ELEM_TYPES[a.dtype]) + _bytes(8, name)
    return body + _bytes(9, a.astype(a.dtype.newbyteorder("<")).tobytes())


def value_info(name: str, elem_type: int, dims: Sequence[Dim]) -> bytes:
    """A ValueInfoProto of a tensor; a str dim is symbolic (dim_param)."""
    shape = b"".join(_bytes(1, _int(1, d) if isinstance(d, int) else _bytes(2, d)) for d in dims)
    tensor_type = _int(1, elem_type) + _bytes(2, shape)
    return _bytes(1, name) + _bytes(2, _bytes(1, tensor_type))


def model(nodes: Sequence[bytes], name: str, inputs: Sequence[bytes], outputs: Sequence[bytes],
          initializers: Sequence[bytes], opset: int, producer: str, ir_version: int = 10) -> bytes:
    """A serialized ModelProto with one graph importing the default domain at `opset`."""
    graph = b"".join(_bytes(1, n) for n in nodes) + _bytes(2, name)
    graph += b"".join(_bytes(5, t) for t in initializers)
    graph += b"".join(_bytes(11, v) for v in inputs) + b"".join(_bytes(12, v) for v in outputs)
    opset_import = _bytes(1, "") + _int(2, opset)
    return _int(1, ir_version) + _bytes(2, producer) + _bytes(7, graph) + _bytes(8, opset_import)
