"""Unary math operators (kernels/ops/unary.cc) on one-node models, against onnxruntime
(onnx.reference where onnxruntime lacks a kernel); float32: rtol 1e-4, atol 1e-5."""
import numpy as np
import pytest
from onnx import helper

import mserve
from op_harness import Cases, make_model, random_inputs, run_one

rand = random_inputs(1)
CASES = Cases(oracle="auto")
case = CASES.add

# Domain of each float function (lo, hi) and the opsets to try.
FLOAT_UNARY = {
    "Abs": ((-5, 5), (6, 13)), "Neg": ((-5, 5), (6, 13)), "Exp": ((-10, 10), (6, 13)),
    "Log": ((0.01, 50), (6, 13)), "Sqrt": ((0, 50), (6, 13)), "Reciprocal": ((0.1, 5), (6, 13)),
    "Floor": ((-5, 5), (6, 13)), "Ceil": ((-5, 5), (6, 13)), "Round": ((-5, 5), (11, 22)),
    "Sign": ((-5, 5), (9, 13)), "Erf": ((-3, 3), (9, 13)), "Sin": ((-7, 7), (7, 22)),
    "Cos": ((-7, 7), (7, 22)), "Tan": ((-1.5, 1.5), (7, 22)), "Asin": ((-1, 1), (7, 22)),
    "Acos": ((-1, 1), (7, 22)), "Atan": ((-10, 10), (7, 22)), "Sinh": ((-5, 5), (9, 22)),
    "Cosh": ((-5, 5), (9, 22)), "Asinh": ((-10, 10), (9, 22)), "Acosh": ((1, 10), (9, 22)),
    "Atanh": ((-0.99, 0.99), (9, 22)), "Softsign": ((-5, 5), (1, 22)),
}
for op, ((lo, hi), opsets) in FLOAT_UNARY.items():
    case(op, op, {"x": rand(3, 4, 5, lo=lo, hi=hi)}, opsets=opsets)
    case(op + "-long", op, {"x": rand(1031, lo=lo, hi=hi)})  # not a multiple of the vector width
    case(op + "-f64", op, {"x": rand(2, 7, dtype=np.float64, lo=lo, hi=hi)})
    case(op + "-scalar", op, {"x": rand(dtype=np.float32, lo=lo, hi=hi)})
case("Round-halves", "Round", {"x": np.array([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 3.5, 0.49999997, -3.2], np.float32)},
     opsets=(11,))
case("Abs-f16", "Abs", {"x": rand(300, lo=-5, hi=5).astype(np.float16)})
case("Exp-f16", "Exp", {"x": rand(300, lo=-3, hi=3).astype(np.float16)})
case("Sqrt-f16", "Sqrt", {"x": rand(5, 7, lo=0, hi=9).astype(np.float16)})
case("Exp-empty", "Exp", {"x": np.zeros((0, 3), np.float32)})
case("Log-special", "Log", {"x": np.array([0.0, 1.0, np.inf, 1e-30], np.float32)})
# The edges of the float range, against numpy (IEEE): square roots exact (sqrt(4) is 2, not
# 1.9999999), inf and subnormals kept; exp underflowing to subnormals and 0; log of subnormals.
edges = np.array([np.inf, -np.inf, 0.0, -0.0, 1e-40, 3e-39, 4.0, 1.0, 2.0, 1e30, -100.0, -88.0, -104.0, np.nan, 25.0,
                  -87.0, 0.25], np.float32)
for op, fn, rtol in [("Sqrt", np.sqrt, 0.0), ("Exp", np.exp, 3e-7), ("Log", np.log, 3e-7)]:
    case(op + "-edges", op, {"x": edges}, tol={"rtol": rtol, "atol": 0.0},
         oracle=lambda feeds, fn=fn: [fn(feeds["x"])])
for dt in [np.int8, np.int16, np.int32, np.int64]:
    name = np.dtype(dt).name
    case("Abs-" + name, "Abs", {"x": rand(4, 6, dtype=dt, lo=-100, hi=100)})
    case("Neg-" + name, "Neg", {"x": rand(4, 6, dtype=dt, lo=-100, hi=100)})
    case("Sign-" + name, "Sign", {"x": rand(4, 6, dtype=dt, lo=-3, hi=3)})
for dt in [np.uint8, np.uint16, np.uint32, np.uint64]:
    case("Abs-" + np.dtype(dt).name, "Abs", {"x": rand(9, dtype=dt, lo=0, hi=200)}, oracle="reference")
    case("Sign-" + np.dtype(dt).name, "Sign", {"x": rand(9, dtype=dt, lo=0, hi=3)})

special = np.array([np.nan, np.inf, -np.inf, 0.0, -1.5, 3.0, np.nan, -0.0], np.float32)
case("IsNaN", "IsNaN", {"x": special.reshape(2, 4)}, opsets=(9, 13, 20))
case("IsNaN-f64", "IsNaN", {"x": special.astype(np.float64)})
case("IsNaN-f16", "IsNaN", {"x": special.astype(np.float16)}, opsets=(20,), oracle="reference")
for attrs in [{}, {"detect_negative": 0}, {"detect_positive": 0}, {"detect_negative": 0, "detect_positive": 0}]:
    tag = "-".join(f"{k}{v}" for k, v in attrs.items()) or "default"
    case("IsInf-" + tag, "IsInf", {"x": special}, attrs=attrs, opsets=(10, 20))
case("IsInf-f64", "IsInf", {"x": np.append(special.astype(np.float64), [1e300, -1e300])})
case("IsNaN-f64-huge", "IsNaN", {"x": np.array([1e300, -1e300, np.nan], np.float64)})
case("IsInf-f16", "IsInf", {"x": special.astype(np.float16)}, opsets=(20,), oracle="reference")
case("Not", "Not", {"x": rand(3, 4, 5, dtype=np.int64, lo=0, hi=1).astype(bool)}, opsets=(1, 13))
for dt in [np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64]:
    lo = 0 if np.dtype(dt).kind == "u" else -100
    case("BitwiseNot-" + np.dtype(dt).name, "BitwiseNot", {"x": rand(3, 5, dtype=dt, lo=lo, hi=100)}, opsets=(18,),
         oracle="reference")


@pytest.mark.parametrize("c", CASES)
def test_unary_matches_oracle(c):
    c.check()


def test_unary_runs_in_parallel_on_large_inputs():
    x = rand(5, 40000, lo=-3, hi=3)
    for op, ref in [("Exp", np.exp), ("Sin", np.sin), ("Abs", np.abs), ("Softsign", lambda v: v / (1 + np.abs(v)))]:
        model = make_model([helper.make_node(op, ["x"], ["y"])], [("x", np.float32, list(x.shape))],
                           [("y", np.float32, None)], opset=17)
        np.testing.assert_allclose(mserve.load(model.SerializeToString(), threads=4).predict(x), ref(x),
                                   rtol=1e-5, atol=1e-6)


def test_errors():
    x = np.zeros((3, 4), np.float32)
    with pytest.raises(mserve.Error, match="int32"):
        run_one("Exp", np.zeros(3, np.int32), opset=13)
    with pytest.raises(mserve.Error, match="uint8"):
        run_one("Neg", np.zeros(3, np.uint8), opset=13)
    with pytest.raises(mserve.Error, match="int64"):
        run_one("Erf", np.zeros(3, np.int64), opset=13)
    with pytest.raises(mserve.Error, match="float32"):
        run_one("Not", x, opset=13)
    np.testing.assert_array_equal(run_one("Erf", np.array([-2, 0, 3], np.int64), opset=9), [0, 0, 0])


def test_supported_ops_lists_unary_ops():
    names = {op.op_type for op in mserve.supported_ops()}
    for op in list(FLOAT_UNARY) + ["IsNaN", "IsInf", "Not", "BitwiseNot"]:
        assert op in names, op
