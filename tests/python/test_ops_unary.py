"""Unary math and activation operators, on one-node models, against onnxruntime (or onnx.reference where
onnxruntime lacks a kernel). float32: rtol 1e-4, atol 1e-5."""
import numpy as np
import pytest
from onnx import helper

import mserve
from conftest import make_model, ort_run

RNG = np.random.default_rng(1)


def rand(*shape, dtype=np.float32, lo=-2.0, hi=2.0):
    if np.issubdtype(dtype, np.integer):
        return RNG.integers(int(lo), int(hi) + 1, size=shape).astype(dtype)
    return RNG.uniform(lo, hi, size=shape).astype(dtype)


CASES = []


def case(id_, op, inputs, consts=None, attrs=None, opsets=(17,), oracle="onnxruntime"):
    """inputs: runtime inputs {name: array}; consts: initializer inputs, after the runtime ones."""
    for opset in opsets:
        CASES.append(pytest.param(op, inputs, consts or {}, attrs or {}, opset, oracle, id=f"{id_}-op{opset}"))


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

# Activations.
x_act = rand(3, 4, 5, lo=-6, hi=6)
ACT = [
    ("LeakyRelu", {}, (6, 16)), ("LeakyRelu", {"alpha": 0.3}, (16,)),
    ("Elu", {}, (6, 22)), ("Elu", {"alpha": 0.5}, (6,)),
    ("Selu", {}, (6, 22)), ("Selu", {"alpha": 2.0, "gamma": 3.0}, (6,)),
    ("Celu", {}, (12,)), ("Celu", {"alpha": 2.0}, (12,)),
    ("Softplus", {}, (1, 22)),
    ("HardSigmoid", {}, (6, 22)), ("HardSigmoid", {"alpha": 0.5, "beta": 0.6}, (6,)),
    ("HardSwish", {}, (14, 22)), ("Mish", {}, (18, 22)),
    ("Gelu", {}, (20,)), ("Gelu", {"approximate": "tanh"}, (20,)), ("Gelu", {"approximate": "none"}, (20,)),
    ("ThresholdedRelu", {}, (10, 22)), ("ThresholdedRelu", {"alpha": 2.0}, (10,)),
    ("Shrink", {}, (9,)), ("Shrink", {"lambd": 1.5, "bias": 1.5}, (9,)),
]
for op, attrs, opsets in ACT:
    tag = "-".join(f"{k}{v}" for k, v in attrs.items()) or "default"
    case(f"{op}-{tag}", op, {"x": x_act}, attrs=attrs, opsets=opsets)
    case(f"{op}-{tag}-long", op, {"x": rand(1029, lo=-6, hi=6)}, attrs=attrs, opsets=opsets[-1:])
for op in ["LeakyRelu", "Elu", "Selu", "Softplus", "HardSigmoid", "HardSwish", "Mish", "ThresholdedRelu", "Shrink"]:
    case(op + "-f64", op, {"x": rand(2, 9, dtype=np.float64, lo=-6, hi=6)}, opsets=(18,), oracle="reference")
    case(op + "-f16", op, {"x": rand(2, 9, lo=-6, hi=6).astype(np.float16)}, opsets=(18,), oracle="reference")
case("Gelu-f64", "Gelu", {"x": rand(2, 9, dtype=np.float64, lo=-6, hi=6)}, opsets=(20,), oracle="reference")
case("Softplus-large", "Softplus", {"x": np.array([-100, -30, 0, 30, 100], np.float32)})
case("Shrink-int32", "Shrink", {"x": rand(12, dtype=np.int32, lo=-5, hi=5)}, attrs={"lambd": 1.5, "bias": 1.0},
     opsets=(9,), oracle="reference")
case("Shrink-int8", "Shrink", {"x": rand(12, dtype=np.int8, lo=-5, hi=5)}, attrs={"lambd": 2.0, "bias": 2.0},
     opsets=(9,), oracle="reference")
case("Swish", "Swish", {"x": x_act}, opsets=(24,), oracle="reference")
case("Swish-alpha", "Swish", {"x": x_act}, attrs={"alpha": 0.7}, opsets=(24,), oracle="reference")

case("PRelu-same", "PRelu", {"x": x_act, "s": rand(3, 4, 5)}, opsets=(7, 9, 16))
case("PRelu-scalar", "PRelu", {"x": x_act}, {"s": np.array([0.2], np.float32)}, opsets=(7, 16))
case("PRelu-lastdim", "PRelu", {"x": x_act}, {"s": rand(5)})
case("PRelu-channel", "PRelu", {"x": rand(2, 3, 4, 5, lo=-6, hi=6)}, {"s": rand(3, 1, 1)})
case("PRelu-middle", "PRelu", {"x": x_act, "s": rand(4, 1)})
case("PRelu-f64", "PRelu", {"x": rand(2, 7, dtype=np.float64), "s": rand(7, dtype=np.float64)})
case("PRelu-int32", "PRelu", {"x": rand(4, 6, dtype=np.int32, lo=-9, hi=9)}, {"s": rand(6, dtype=np.int32, lo=1, hi=3)},
     opsets=(9, 16))
case("PRelu-int64", "PRelu", {"x": rand(4, 6, dtype=np.int64, lo=-9, hi=9)}, {"s": rand(4, 1, dtype=np.int64, lo=1, hi=3)})


@pytest.mark.parametrize("op,inputs,consts,attrs,opset,oracle", CASES)
def test_unary_matches_oracle(op, inputs, consts, attrs, opset, oracle):
    names = list(inputs) + list(consts)
    node = helper.make_node(op, names, ["y"], **attrs)
    model = make_model([node], [(k, v.dtype, list(v.shape)) for k, v in inputs.items()], [("y", 0, None)], consts,
                       opset=opset)
    expected = None
    if oracle == "onnxruntime":
        try:
            expected = ort_run(model, inputs)[0]
        except Exception as e:  # onnxruntime has no kernel for this dtype/opset: use the reference
            if "NOT_IMPLEMENTED" not in str(e):
                raise
    if expected is None:
        from onnx.reference import ReferenceEvaluator
        expected = ReferenceEvaluator(model).run(None, inputs)[0]
    got = mserve.load(model.SerializeToString(), threads=2).predict(dict(inputs))
    assert got.dtype == expected.dtype, (got.dtype, expected.dtype)
    assert got.shape == expected.shape, (got.shape, expected.shape)
    if np.issubdtype(expected.dtype, np.floating):
        tol = dict(rtol=1e-3, atol=1e-3) if expected.dtype == np.float16 else dict(rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(got, expected, **tol)
    else:
        np.testing.assert_array_equal(got, expected)


def test_unary_runs_in_parallel_on_large_inputs():
    x = rand(5, 40000, lo=-3, hi=3)
    for op, ref in [("Exp", np.exp), ("Sin", np.sin), ("Abs", np.abs), ("Softsign", lambda v: v / (1 + np.abs(v)))]:
        model = make_model([helper.make_node(op, ["x"], ["y"])], [("x", np.float32, list(x.shape))],
                           [("y", np.float32, None)], opset=17)
        np.testing.assert_allclose(mserve.load(model.SerializeToString(), threads=4).predict(x), ref(x),
                                   rtol=1e-5, atol=1e-6)


def test_prelu_large_channel_broadcast():
    x, s = rand(2, 8, 64, 65, lo=-3, hi=3), rand(8, 1, 1)
    model = make_model([helper.make_node("PRelu", ["x", "s"], ["y"])], [("x", np.float32, list(x.shape))],
                       [("y", np.float32, None)], {"s": s}, opset=16)
    got = mserve.load(model.SerializeToString(), threads=4).predict(x)
    np.testing.assert_allclose(got, np.where(x < 0, x * s, x), rtol=1e-6)


def run_one(op, x, attrs=None, consts=None, opset=17):
    node = helper.make_node(op, ["x"] + list(consts or {}), ["y"], **(attrs or {}))
    model = make_model([node], [("x", x.dtype, list(x.shape))], [("y", 0, None)], consts or {}, opset=opset)
    return mserve.load(model.SerializeToString()).predict(x)


def test_errors():
    x = np.zeros((3, 4), np.float32)
    # The slope must broadcast one way, to X's shape.
    with pytest.raises(mserve.InvalidArgument, match="broadcast"):
        run_one("PRelu", x, consts={"s": rand(2, 3, 4)})
    with pytest.raises(mserve.InvalidArgument, match="broadcast"):
        run_one("PRelu", x, consts={"s": rand(3)})
    with pytest.raises(mserve.Error, match="approximate"):  # factory errors surface at load
        run_one("Gelu", x, attrs={"approximate": "erf"}, opset=20)
    # Ops before their first opset, and dtypes the spec does not list.
    with pytest.raises(mserve.UnsupportedOperator):
        run_one("Gelu", x, opset=19)
    with pytest.raises(mserve.UnsupportedOperator):
        run_one("Swish", x, opset=23)
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
    for op in list(FLOAT_UNARY) + ["IsNaN", "IsInf", "Not", "BitwiseNot", "PRelu", "Swish"] + [a[0] for a in ACT]:
        assert op in names, op
