"""Binary arithmetic (Add, Sub, Mul, Div, Pow, Mod, BitShift) and the variadic Sum, Min, Max, Mean
(kernels/ops/elementwise.cc) on one-node models, against onnxruntime (onnx.reference where onnxruntime lacks a
kernel); float32: rtol 1e-4, atol 1e-5."""
import numpy as np
import pytest
from onnx import helper

import mserve
from op_harness import Cases, make_model, one_node, random_inputs

rand = random_inputs(1)
CASES = Cases()
case = CASES.add


def nonzero(*shape, dtype=np.int64, lo=-9, hi=9):
    x = rand(*shape, dtype=dtype, lo=lo, hi=hi)
    x[x == 0] = 1
    return x


for op in ["Add", "Sub", "Mul", "Div"]:
    case(op + "-same", op, {"a": rand(3, 4), "b": rand(3, 4, lo=0.5)}, opsets=(7, 13, 14))
    case(op + "-bcast", op, {"a": rand(2, 3, 4), "b": rand(4, lo=0.5)})
    case(op + "-bcast2", op, {"a": rand(2, 1, 5), "b": rand(3, 1, lo=0.5)})
    case(op + "-bcast-se", op, {"a": rand(2, 6, 3, 4), "b": rand(2, 6, 1, 1, lo=0.5)})  # merges to [12, 12]
    case(op + "-bcast-mixed", op, {"a": rand(2, 1, 3, 1, 4), "b": rand(1, 5, 3, 2, 1, lo=0.5)})
    case(op + "-scalar", op, {"a": rand(6, 5)}, {"b": np.array(1.5, np.float32)})
    case(op + "-int64", op, {"a": rand(4, 5, dtype=np.int64, lo=-50, hi=50), "b": rand(5, dtype=np.int64, lo=1, hi=9)})
    case(op + "-f64", op, {"a": rand(4, 5, dtype=np.float64), "b": rand(4, 1, dtype=np.float64, lo=0.5)})
    case(op + "-int32", op, {"a": rand(7, dtype=np.int32, lo=-50, hi=50), "b": rand(7, dtype=np.int32, lo=1, hi=9)})
# Pow: the output keeps the base dtype; the exponent may have another dtype from opset 12.
case("Pow-f32", "Pow", {"a": rand(3, 4, lo=0.1, hi=3), "b": rand(3, 4)}, opsets=(7, 12, 13, 15))
case("Pow-bcast", "Pow", {"a": rand(2, 3, 4, lo=0.1, hi=3), "b": rand(4)})
case("Pow-bcast2", "Pow", {"a": rand(2, 1, 5, lo=0.1, hi=3), "b": rand(3, 1)})
case("Pow-scalar-exp", "Pow", {"a": rand(6, 5)}, {"b": np.array(2.0, np.float32)})
case("Pow-f64", "Pow", {"a": rand(4, 5, dtype=np.float64, lo=0.1, hi=3), "b": rand(5, dtype=np.float64)})
case("Pow-f32-int64", "Pow", {"a": rand(4, 5), "b": rand(5, dtype=np.int64, lo=-3, hi=4)}, opsets=(12, 15))
case("Pow-f32-int32", "Pow", {"a": rand(4, 5), "b": rand(4, 1, dtype=np.int32, lo=0, hi=4)})
case("Pow-int32", "Pow", {"a": rand(4, 5, dtype=np.int32, lo=-6, hi=6), "b": rand(5, dtype=np.int32, lo=0, hi=5)})
case("Pow-int64", "Pow", {"a": rand(7, dtype=np.int64, lo=-20, hi=20), "b": rand(7, dtype=np.int64, lo=0, hi=6)})
case("Pow-int64-f32", "Pow", {"a": rand(7, dtype=np.int64, lo=1, hi=9)},
     {"b": np.array([0, 1, 2, 3, 0.5, 1.5, 2], np.float32)})
case("Pow-f16", "Pow", {"a": rand(3, 4, lo=0.5, hi=2).astype(np.float16), "b": rand(4, lo=-2, hi=2).astype(np.float16)})

# Mod: fmod=0 follows the divisor's sign, fmod=1 the dividend's.
mod_a = np.array([-4, 7, 5, 4, -7, 8, -9, 0], np.int64)
mod_b = np.array([2, -3, 8, -2, 3, 5, -4, 3], np.int64)
case("Mod-int64", "Mod", {"a": mod_a, "b": mod_b}, opsets=(10, 13))
case("Mod-int64-fmod", "Mod", {"a": mod_a, "b": mod_b}, attrs={"fmod": 1})
case("Mod-int32-bcast", "Mod", {"a": rand(3, 4, dtype=np.int32, lo=-50, hi=50), "b": nonzero(4, dtype=np.int32)})
case("Mod-int8", "Mod", {"a": rand(3, 4, dtype=np.int8, lo=-100, hi=100), "b": nonzero(3, 1, dtype=np.int8)})
case("Mod-uint8", "Mod", {"a": rand(10, dtype=np.uint8, lo=0, hi=255), "b": rand(10, dtype=np.uint8, lo=1, hi=20)})
case("Mod-f32-fmod", "Mod",
     {"a": rand(3, 4, lo=-9, hi=9), "b": rand(4, lo=0.5, hi=3) * np.array([1, -1, 1, -1], np.float32)},
     attrs={"fmod": 1})
case("Mod-f64-fmod", "Mod", {"a": rand(5, dtype=np.float64, lo=-9, hi=9), "b": rand(5, dtype=np.float64, lo=0.5, hi=3)},
     attrs={"fmod": 1})
case("Mod-f32-floor", "Mod",
     {"a": rand(3, 4, lo=-9, hi=9), "b": rand(4, lo=0.5, hi=3) * np.array([1, -1, 1, -1], np.float32)},
     opsets=(28,), oracle="reference")
case("Mod-f32-edges", "Mod",
     {"a": np.array([0, -0.0, -3, 3, -1, 1, np.inf, 1, np.nan, 1], np.float32),
      "b": np.array([-2, 2, np.inf, np.inf, -np.inf, -np.inf, 2, 0, 2, np.nan], np.float32)},
     opsets=(28,), oracle="reference")

# BitShift: unsigned from 11, signed from 28 (with out-of-range shifts defined).
for dt in [np.uint8, np.uint32, np.uint64]:
    for d in ["LEFT", "RIGHT"]:
        case(f"BitShift-{np.dtype(dt).name}-{d}", "BitShift",
             {"x": rand(3, 4, dtype=dt, lo=0, hi=200), "y": rand(4, dtype=dt, lo=0, hi=7)}, attrs={"direction": d},
             opsets=(11,))
for dt in [np.int8, np.int32, np.int64, np.uint16]:
    for d in ["LEFT", "RIGHT"]:
        case(f"BitShift28-{np.dtype(dt).name}-{d}", "BitShift",
             {"x": rand(3, 6, dtype=dt, lo=-100 if np.dtype(dt).kind == "i" else 0, hi=100),
              "y": np.array([0, 1, 3, 7, 70, -1 if np.dtype(dt).kind == "i" else 5], dt)},
             attrs={"direction": d}, opsets=(28,), oracle="reference")

# Variadic Sum / Min / Max / Mean.
for op in ["Sum", "Min", "Max", "Mean"]:
    case(op + "-one", op, {"a": rand(3, 4)}, opsets=(6, 8, 13))
    case(op + "-same", op, {"a": rand(3, 4), "b": rand(3, 4), "c": rand(3, 4)}, opsets=(6, 8, 13))
    case(op + "-bcast", op, {"a": rand(2, 1, 4), "b": rand(3, 1), "c": rand(4)}, opsets=(8, 13))
    case(op + "-bcast-grow", op, {"a": rand(4), "b": rand(2, 3, 1)}, opsets=(13,))
    case(op + "-f64", op, {"a": rand(5, 6, dtype=np.float64), "b": rand(6, dtype=np.float64)}, opsets=(13,),
         oracle="reference" if op == "Mean" else "onnxruntime")
    case(op + "-f16", op, {"a": rand(5, 6).astype(np.float16), "b": rand(6).astype(np.float16)}, opsets=(13,))
    case(op + "-four", op, {"a": rand(2, 3), "b": rand(1, 3), "c": rand(2, 1), "d": rand(3)}, opsets=(13,))
for op in ["Min", "Max"]:
    for dt in [np.int32, np.int64, np.uint8, np.int8]:
        lo = 0 if dt == np.uint8 else -50
        case(f"{op}-{np.dtype(dt).name}", op,
             {"a": rand(3, 4, dtype=dt, lo=lo, hi=50), "b": rand(4, dtype=dt, lo=lo, hi=50)},
             opsets=(12, 13))
    case(op + "-nan", op,
         {"a": np.array([1, np.nan, 3, np.nan], np.float32), "b": np.array([np.nan, 2, 1, np.nan], np.float32)},
         opsets=(13,), oracle="reference")
for dt in [np.int32, np.int64]:
    case(f"Sum-{np.dtype(dt).name}", "Sum",
         {"a": rand(3, 4, dtype=dt, lo=-50, hi=50), "b": rand(4, dtype=dt, lo=-50, hi=50)},
         opsets=(13,), oracle="reference")
# The existing arithmetic ops on the generalized walker: a large broadcast run in parallel.
for op in ["Add", "Sub", "Mul", "Div"]:
    case(op + "-big-bcast", op, {"a": rand(40, 3, 700), "b": rand(3, 1, lo=0.5)})
    case(op + "-big-flat", op, {"a": rand(300, 400)}, {"b": np.array(1.5, np.float32)})
    case(op + "-uint8", op, {"a": rand(3, 4, dtype=np.uint8, lo=20, hi=200), "b": rand(4, dtype=np.uint8, lo=1, hi=9)},
         opsets=(14,))


@pytest.mark.parametrize("c", CASES)
def test_op_matches_oracle(c):
    c.check()


def test_integer_mod_by_zero_is_an_error():
    inputs = {"a": np.array([1, 2], np.int64), "b": np.array([1, 0], np.int64)}
    m = mserve.load(one_node("Mod", inputs)[0].SerializeToString())
    with pytest.raises(mserve.Error, match="zero"):
        m.predict(inputs)


def test_bitshift_bad_direction_is_refused():
    inputs = {"x": np.array([1], np.uint8), "s": np.array([1], np.uint8)}
    with pytest.raises(mserve.Error, match="direction"):
        mserve.load(one_node("BitShift", inputs, attrs={"direction": "UP"}, opset=11)[0].SerializeToString())


def test_mod_bad_fmod_is_refused():
    inputs = {"a": np.array([1.0], np.float32), "b": np.array([1.0], np.float32)}
    with pytest.raises(mserve.Error, match="fmod"):
        mserve.load(one_node("Mod", inputs, attrs={"fmod": 2})[0].SerializeToString())


def test_signed_bitshift_needs_opset_28():
    inputs = {"x": np.array([1, 2], np.int32), "y": np.array([1, 1], np.int32)}
    node = helper.make_node("BitShift", ["x", "y"], ["y_"], direction="LEFT")
    model = make_model([node], [(k, v.dtype, list(v.shape)) for k, v in inputs.items()], [("y_", np.int32, [2])],
                       opset=11)
    with pytest.raises(mserve.Error):
        mserve.load(model.SerializeToString()).predict(inputs)


def test_sum6_needs_equal_shapes():
    inputs = {"a": np.ones((2, 3), np.float32), "b": np.ones((3,), np.float32)}
    node = helper.make_node("Sum", ["a", "b"], ["y"])
    model = make_model([node], [(k, v.dtype, list(v.shape)) for k, v in inputs.items()], [("y", np.float32, [2, 3])],
                       opset=6)
    with pytest.raises(mserve.Error, match="equal"):
        mserve.load(model.SerializeToString()).predict(inputs)


def test_mismatched_dtypes_are_refused():
    inputs = {"a": np.ones((2,), np.float32), "b": np.ones((2,), np.float64)}
    for op in ["Equal", "Less", "Max", "Mod", "BitwiseAnd", "And"]:
        node = helper.make_node(op, ["a", "b"], ["o"])
        model = make_model([node], [(k, v.dtype, list(v.shape)) for k, v in inputs.items()], [("o", np.float32, [2])],
                           opset=18)
        with pytest.raises(mserve.Error):
            mserve.load(model.SerializeToString()).predict(inputs)


def test_supported_ops_lists_binary_ops():
    names = {op.op_type: op for op in mserve.supported_ops()}
    for op in ["Pow", "Mod", "BitShift", "Min", "Max", "Mean", "Sum", "Equal", "Less", "Greater", "LessOrEqual",
               "GreaterOrEqual", "And", "Or", "Xor", "BitwiseAnd", "BitwiseOr", "BitwiseXor", "Where"]:
        assert op in names
