"""Comparison, logical, bitwise and Where operators (kernels/ops/compare.cc) on one-node models, numbers and
strings, against onnxruntime (onnx.reference where onnxruntime lacks a kernel); float32: rtol 1e-4, atol 1e-5."""
import numpy as np
import pytest
from onnx import helper

import mserve
from op_harness import Cases, make_model, random_inputs, strings

rand = random_inputs(1)
CASES = Cases()
case = CASES.add


def rbool(*shape):
    return rand(*shape, dtype=bool)


# Comparisons (bool output).
cmp_ops = {"Equal": (7, 11, 13, 19), "Less": (7, 9, 13), "Greater": (7, 9, 13), "LessOrEqual": (12, 16),
           "GreaterOrEqual": (12, 16)}
for op, opsets in cmp_ops.items():
    ints = lambda *s, dt=np.int32: rand(*s, dtype=dt, lo=-3, hi=3)  # noqa: E731
    # Less/Greater-7 take floats only; integers from 9.
    case(op + "-int32", op, {"a": ints(3, 4), "b": ints(3, 4)}, opsets=opsets if op == "Equal" else opsets[-2:])
    case(op + "-int64-bcast", op, {"a": ints(2, 3, 4, dt=np.int64), "b": ints(4, dt=np.int64)}, opsets=(opsets[-1],))
    f = np.round(rand(2, 1, 5), 0)
    case(op + "-f32-bcast", op, {"a": f, "b": np.round(rand(3, 1), 0)},
         opsets=(opsets[-1],) if op == "Equal" else opsets[1:])
    case(op + "-f64", op, {"a": np.round(rand(6, dtype=np.float64)), "b": np.round(rand(6, dtype=np.float64))},
         opsets=(opsets[-1],))
    case(op + "-scalar", op, {"a": ints(5, 2)}, {"b": np.array(1, np.int32)}, opsets=(opsets[-1],))
    case(op + "-uint8", op, {"a": rand(9, dtype=np.uint8, lo=0, hi=4), "b": rand(9, dtype=np.uint8, lo=0, hi=4)},
         opsets=(opsets[-1],), oracle="reference")
    case(op + "-f16", op, {"a": np.round(rand(8)).astype(np.float16), "b": np.round(rand(8)).astype(np.float16)},
         opsets=(opsets[-1],), oracle="reference")
case("Equal-bool", "Equal", {"a": rbool(3, 4), "b": rbool(4)}, opsets=(11, 13, 19))

# Logical (bool) and bitwise (integers).
for op in ["And", "Or", "Xor"]:
    case(op, op, {"a": rbool(3, 4), "b": rbool(3, 4)}, opsets=(7,))
    case(op + "-bcast", op, {"a": rbool(2, 3, 4), "b": rbool(4)}, opsets=(7,))
    case(op + "-bcast2", op, {"a": rbool(2, 1, 4), "b": rbool(3, 1)}, opsets=(7,))
    case(op + "-big", op, {"a": rbool(70, 600), "b": rbool(600)}, opsets=(7,))
for op in ["BitwiseAnd", "BitwiseOr", "BitwiseXor"]:
    case(op + "-int32", op,
         {"a": rand(3, 4, dtype=np.int32, lo=-1000, hi=1000), "b": rand(3, 4, dtype=np.int32, lo=-1000, hi=1000)},
         opsets=(18,))
    case(op + "-uint8-bcast", op,
         {"a": rand(2, 3, 4, dtype=np.uint8, lo=0, hi=255), "b": rand(4, dtype=np.uint8, lo=0, hi=255)},
         opsets=(18,))
    case(op + "-int64-bcast", op,
         {"a": rand(3, 1, dtype=np.int64, lo=-99, hi=99), "b": rand(5, dtype=np.int64, lo=-99, hi=99)},
         opsets=(18,))
    case(op + "-uint16", op,
         {"a": rand(7, dtype=np.uint16, lo=0, hi=60000), "b": rand(7, dtype=np.uint16, lo=0, hi=60000)},
         opsets=(18,), oracle="reference")

# Where: three-way broadcast, any dtype for X/Y.
case("Where", "Where", {"c": rbool(3, 4), "x": rand(3, 4), "y": rand(3, 4)}, opsets=(9, 16))
case("Where-bcast", "Where", {"c": rbool(2, 1, 4), "x": rand(3, 1), "y": rand(4)}, opsets=(9, 16))
case("Where-scalar-xy", "Where", {"c": rbool(5, 3)}, {"x": np.array(1.5, np.float32), "y": np.array(-1.0, np.float32)})
case("Where-scalar-c", "Where", {"c": np.array(True), "x": rand(3, 4), "y": rand(4)})
case("Where-int64", "Where",
     {"c": rbool(4, 1), "x": rand(4, 6, dtype=np.int64, lo=-9, hi=9), "y": rand(6, dtype=np.int64, lo=-9, hi=9)})
case("Where-int32", "Where",
     {"c": rbool(6), "x": rand(6, dtype=np.int32, lo=-9, hi=9), "y": rand(6, dtype=np.int32, lo=-9, hi=9)})
case("Where-uint8", "Where",
     {"c": rbool(6), "x": rand(6, dtype=np.uint8, lo=0, hi=9), "y": rand(6, dtype=np.uint8, lo=0, hi=9)})
case("Where-f64", "Where", {"c": rbool(2, 5), "x": rand(2, 5, dtype=np.float64), "y": rand(1, dtype=np.float64)})
case("Where-f16", "Where", {"c": rbool(2, 5), "x": rand(2, 5).astype(np.float16), "y": rand(5).astype(np.float16)},
     opsets=(16,), oracle="reference")
case("Where-bool", "Where", {"c": rbool(8), "x": rbool(8), "y": rbool(8)}, oracle="reference")
case("Where-big", "Where", {"c": rbool(50, 1000), "x": rand(50, 1000), "y": rand(1000)})
# --- Equal, Where on strings
case("Equal-strings", "Equal", {"a": strings("a", "b", "", "d"), "b": strings("a", "c", "", "D")}, opsets=(19,))
case("Equal-strings-bcast", "Equal", {"a": strings("a", "b", "c", "a", shape=(2, 2)), "b": strings("a", "c")},
     opsets=(19,))
case("Where-strings", "Where", {"c": np.array([[True, False], [False, True]]), "a": strings("x1", "x2", shape=(1, 2)),
                                 "b": strings("y1", "y2", shape=(2, 1))}, opsets=(9, 16))


@pytest.mark.parametrize("c", CASES)
def test_op_matches_oracle(c):
    c.check()


def test_where_needs_bool_condition():
    inputs = {"c": np.ones((2,), np.float32), "x": np.ones((2,), np.float32), "y": np.ones((2,), np.float32)}
    node = helper.make_node("Where", ["c", "x", "y"], ["o"])
    model = make_model([node], [(k, v.dtype, list(v.shape)) for k, v in inputs.items()], [("o", np.float32, [2])])
    with pytest.raises(mserve.Error):
        mserve.load(model.SerializeToString()).predict(inputs)
