"""Activations (kernels/ops/activation.cc: Relu, Sigmoid, Tanh, Clip, LeakyRelu, Elu, Selu, Gelu,
PRelu, Swish, SwiGLU, ...) on one-node models, against onnxruntime (onnx.reference where onnxruntime lacks a kernel);
float32: rtol 1e-4, atol 1e-5."""
import numpy as np
import pytest
from onnx import helper

import mserve
from op_harness import Cases, make_model, random_inputs, run_one

rand = random_inputs(1)
CASES = Cases(oracle="auto")
case = CASES.add

for op in ["Relu", "Sigmoid", "Tanh"]:
    case(op, op, {"x": rand(3, 17, lo=-6, hi=6)}, opsets=(6, 13))
case("Relu-int", "Relu", {"x": rand(10, dtype=np.int32, lo=-5, hi=5)}, opsets=(14,))
case("Sigmoid-f64", "Sigmoid", {"x": rand(40, dtype=np.float64, lo=-9, hi=9)})
case("Clip-attrs", "Clip", {"x": rand(4, 6)}, attrs={"min": -0.5, "max": 0.7}, opsets=(6,))
case("Clip-inputs", "Clip", {"x": rand(4, 6)}, {"lo": np.array(-0.5, np.float32), "hi": np.array(0.7, np.float32)},
     opsets=(11, 13))
case("Clip-min-only", "Clip", {"x": rand(4, 6)}, {"lo": np.array(0.1, np.float32)}, opsets=(13,))
case("Clip-int", "Clip", {"x": rand(9, dtype=np.int64, lo=-9, hi=9)},
     {"lo": np.array(-2, np.int64), "hi": np.array(3, np.int64)}, opsets=(12,))
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
case("PRelu-int64", "PRelu", {"x": rand(4, 6, dtype=np.int64, lo=-9, hi=9)},
     {"s": rand(4, 1, dtype=np.int64, lo=1, hi=3)})



def swiglu_naive(a, b, alpha=1.0):
    """Y = A * sigmoid(alpha * A) * B in float64, rounded once to A's dtype."""
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    return [(a64 / (1.0 + np.exp(-alpha * a64)) * b64).astype(a.dtype)]


for tag, alpha in [("default", None), ("alpha0.5", 0.5), ("alpha-1.7", -1.7)]:
    attrs = {} if alpha is None else {"alpha": alpha}
    ab = {"a": rand(3, 4, 5, lo=-6, hi=6), "b": rand(3, 4, 5, lo=-3, hi=3)}
    case(f"SwiGLU-{tag}", "SwiGLU", ab, attrs=attrs, opsets=(28,), oracle="reference")
    case(f"SwiGLU-{tag}-naive", "SwiGLU", ab, attrs=attrs, opsets=(28,),
         oracle=lambda i, alpha=alpha: swiglu_naive(i["a"], i["b"], 1.0 if alpha is None else alpha))
case("SwiGLU-long", "SwiGLU", {"a": rand(2, 1029, lo=-30, hi=30), "b": rand(2, 1029)}, opsets=(28,),
     oracle=lambda i: swiglu_naive(i["a"], i["b"]))
case("SwiGLU-b-const", "SwiGLU", {"a": rand(4, 6, lo=-6, hi=6)}, {"b": rand(4, 6)}, opsets=(28,), oracle="reference")
case("SwiGLU-f64", "SwiGLU", {"a": rand(2, 9, dtype=np.float64, lo=-6, hi=6), "b": rand(2, 9, dtype=np.float64)},
     attrs={"alpha": 1.3}, opsets=(28,), oracle="reference", tol={"rtol": 1e-12, "atol": 1e-12})
case("SwiGLU-f16", "SwiGLU", {"a": rand(2, 9, lo=-6, hi=6).astype(np.float16), "b": rand(2, 9).astype(np.float16)},
     opsets=(28,), oracle=lambda i: swiglu_naive(i["a"], i["b"]))
case("SwiGLU-f16-ref", "SwiGLU", {"a": rand(2, 9, lo=-6, hi=6).astype(np.float16),
                                  "b": rand(2, 9).astype(np.float16)}, opsets=(28,), oracle="reference",
     f16_tol={"rtol": 4e-3, "atol": 4e-3})
case("SwiGLU-scalar", "SwiGLU", {"a": np.array(1.5, np.float32), "b": np.array(-2.0, np.float32)}, opsets=(28,),
     oracle="reference")

@pytest.mark.parametrize("c", CASES)
def test_op_matches_oracle(c):
    c.check()


def test_prelu_large_channel_broadcast():
    x, s = rand(2, 8, 64, 65, lo=-3, hi=3), rand(8, 1, 1)
    model = make_model([helper.make_node("PRelu", ["x", "s"], ["y"])], [("x", np.float32, list(x.shape))],
                       [("y", np.float32, None)], {"s": s}, opset=16)
    got = mserve.load(model.SerializeToString(), threads=4).predict(x)
    np.testing.assert_allclose(got, np.where(x < 0, x * s, x), rtol=1e-6)


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


@pytest.mark.parametrize("a,b,opset,err", [
    (rand(3, 4), rand(4), 28, mserve.InvalidArgument),                       # no broadcasting
    (rand(3, 4), rand(4, 3), 28, mserve.InvalidArgument),                    # shapes differ
    (rand(3, 4), rand(3, 4, dtype=np.float64), 28, mserve.InvalidArgument),  # dtypes differ
    (rand(3, 4, dtype=np.int32), rand(3, 4, dtype=np.int32), 28, mserve.Error),  # not a float type
    (rand(3, 4), rand(3, 4), 27, mserve.UnsupportedOperator),               # before its first opset
])
def test_swiglu_errors(a, b, opset, err):
    model = make_model([helper.make_node("SwiGLU", ["a", "b"], ["y"])],
                       [("a", a.dtype, list(a.shape)), ("b", b.dtype, list(b.shape))], [("y", a.dtype, None)],
                       opset=opset)
    with pytest.raises(err):
        mserve.load(model.SerializeToString()).predict({"a": a, "b": b})


def test_supported_ops_lists_activations():
    names = {op.op_type for op in mserve.supported_ops()}
    for op in ["PRelu", "Swish", "SwiGLU"] + [a[0] for a in ACT]:
        assert op in names, op
