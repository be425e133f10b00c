"""Every fusable activation (kernels/activation_table.h) computes the same fused into a MatMul,
Gemm or Conv as stand-alone (optimize=False), over edge values, and what onnxruntime computes
where the input is finite."""
import numpy as np
import pytest
from onnx import helper

import mserve
from op_harness import make_model, ort_run

INF, NAN = np.float32(np.inf), np.float32(np.nan)


def edge_values(*marks):
    v = [NAN, INF, -INF, 0.0, -0.0, 1e30, -1e30, 3e38, -3e38, 1e-30, -1e-30, 1e-45, 0.5, -0.5, 3, -3, 16, -16, 88,
         -88, 100, -100]
    for m in marks + (0.0, 1.0, -1.0, 6.0, -6.0):
        m = np.float32(m)
        v += [m, np.nextafter(m, INF), np.nextafter(m, -INF)]
    return np.array(v, np.float32)


# (id, activation node on "p" -> "y", initializers, marks)
ACTIVATIONS = [
    ("relu", helper.make_node("Relu", ["p"], ["y"]), {}, ()),
    ("leaky", helper.make_node("LeakyRelu", ["p"], ["y"], alpha=0.25), {}, (0.25,)),
    ("clip", helper.make_node("Clip", ["p", "lo", "hi"], ["y"]),
     {"lo": np.array(-1, np.float32), "hi": np.array(6, np.float32)}, ()),
    ("hardswish", helper.make_node("HardSwish", ["p"], ["y"]), {}, (3.0, -3.0)),
    ("gelu", helper.make_node("Gelu", ["p"], ["y"]), {}, ()),
    ("gelu-tanh", helper.make_node("Gelu", ["p"], ["y"], approximate="tanh"), {}, ()),
    ("tanh", helper.make_node("Tanh", ["p"], ["y"]), {}, ()),
    ("sigmoid", helper.make_node("Sigmoid", ["p"], ["y"]), {}, ()),
]


def producer(kind, consts):
    """A node computing p = x exactly (weight 1, one term), NaN and infinities included."""
    if kind == "Conv":
        return helper.make_node("Conv", ["x", "w"], ["p"]), dict(consts, w=np.ones((1, 1, 1, 1), np.float32))
    return helper.make_node(kind, ["x", "w"], ["p"]), dict(consts, w=np.ones((1, 1), np.float32))


@pytest.mark.parametrize("kind", ["MatMul", "Gemm", "Conv"])
@pytest.mark.parametrize("node,consts,marks", [pytest.param(*a[1:], id=a[0]) for a in ACTIVATIONS])
def test_fused_activation_matches_unfused(node, consts, marks, kind):
    x = edge_values(*marks)
    shape = [1, 1, len(x), 1] if kind == "Conv" else [len(x), 1]
    p, consts = producer(kind, consts)
    m = make_model([p, node], [("x", np.float32, shape)], [("y", np.float32, None)], consts, opset=20)
    fused = mserve.load(m.SerializeToString())
    plain = mserve.load(m.SerializeToString(), optimize=False)
    assert len([op for op in fused._s.node_ops if op != "Transpose"]) == 1  # the activation was fused
    x = x.reshape(shape)
    got, want = fused.predict(x), plain.predict(x)
    if kind == "Conv" and node.op_type in ("Relu", "Clip"):
        # oneDNN's convolution post-ops eltwise_relu and eltwise_clip_v2 turn NaN into 0 and
        # into min; the stand-alone operators keep NaN, as ONNX defines them.
        keep = ~np.isnan(x)
        got, want = got[keep], want[keep]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6, equal_nan=True)
    finite = np.isfinite(x)
    np.testing.assert_allclose(plain.predict(x)[finite], ort_run(m, {"x": x})[0][finite], rtol=1e-5, atol=1e-6)


def test_recurrent_thresholded_relu_is_strict():
    # y = RNN gate with W = 1, R = 0: ThresholdedRelu(x) = x for x > alpha, else 0.
    alpha = np.float32(0.5)
    x = edge_values(alpha)
    n = len(x)
    rnn = helper.make_node("RNN", ["x", "w", "r"], ["y"], hidden_size=1, activations=["ThresholdedRelu"],
                           activation_alpha=[float(alpha)])
    m = make_model([rnn], [("x", np.float32, [1, n, 1])], [("y", np.float32, None)],
                   {"w": np.ones((1, 1, 1), np.float32), "r": np.zeros((1, 1, 1), np.float32)}, opset=14)
    got = mserve.load(m.SerializeToString()).predict(x.reshape(1, n, 1)).reshape(n)
    xd = x.astype(np.float64)
    want = np.where(xd > np.float64(alpha), xd, 0.0)
    np.testing.assert_array_equal(got, want.astype(np.float32))
