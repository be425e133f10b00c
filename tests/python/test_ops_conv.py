"""Conv (kernels/ops/conv.cc) on one-node models, and on the oneDNN engine across shapes and thread
counts, against onnxruntime (onnx.reference where onnxruntime lacks a kernel); float32: rtol 1e-4, atol 1e-5."""
import numpy as np
import pytest
from onnx import helper

import mserve
from op_harness import Cases, make_model, ort_run, random_inputs

rand = random_inputs(0)
CASES = Cases()
case = CASES.add

conv_x = rand(2, 4, 9, 8)
case("Conv-basic", "Conv", {"x": conv_x}, {"w": rand(6, 4, 3, 3), "b": rand(6)}, opsets=(1, 11, 22))
case("Conv-pads-strides", "Conv", {"x": conv_x}, {"w": rand(6, 4, 3, 2)},
     attrs={"pads": [1, 0, 2, 1], "strides": [2, 3]})
case("Conv-dilations", "Conv", {"x": conv_x}, {"w": rand(3, 4, 2, 3)},
     attrs={"dilations": [2, 2], "pads": [1, 1, 1, 1]})
case("Conv-groups", "Conv", {"x": conv_x}, {"w": rand(6, 2, 3, 3)}, attrs={"group": 2})
case("Conv-depthwise", "Conv", {"x": conv_x}, {"w": rand(4, 1, 3, 3), "b": rand(4)},
     attrs={"group": 4, "pads": [1, 1, 1, 1]})
for ap in ["SAME_UPPER", "SAME_LOWER", "VALID"]:
    case("Conv-" + ap, "Conv", {"x": conv_x}, {"w": rand(5, 4, 4, 3)}, attrs={"auto_pad": ap, "strides": [2, 2]})
case("Conv-1x1", "Conv", {"x": conv_x}, {"w": rand(8, 4, 1, 1)})
case("Conv-1d", "Conv", {"x": rand(2, 3, 20)}, {"w": rand(5, 3, 4), "b": rand(5)},
     attrs={"pads": [1, 2], "strides": [2]})
case("Conv-1d-same", "Conv", {"x": rand(1, 3, 10)}, {"w": rand(2, 3, 3)}, attrs={"auto_pad": "SAME_UPPER"})
case("Conv-1d-same-dilated", "Conv", {"x": rand(1, 3, 10)}, {"w": rand(2, 3, 3)},
     attrs={"auto_pad": "SAME_LOWER", "dilations": [2]}, oracle="reference")
case("Conv-3d", "Conv", {"x": rand(1, 2, 5, 6, 4)}, {"w": rand(3, 2, 2, 3, 2), "b": rand(3)},
     attrs={"pads": [1, 0, 1, 0, 1, 1], "strides": [1, 2, 1]})
case("Conv-f64", "Conv", {"x": rand(1, 2, 6, 6, dtype=np.float64)}, {"w": rand(3, 2, 3, 3, dtype=np.float64)},
     oracle="reference")


@pytest.mark.parametrize("c", CASES)
def test_op_matches_oracle(c):
    c.check()


# Convs with constant weights run on oneDNN, planned per input shape and thread count; the same
# model is called with changing batch and image sizes on 1 and 2 threads (shapes as in
# ResNet/MobileNet layers: 3x3, strided, depthwise, pointwise, dilated, SAME padding, 1-D).
CONV_ENGINE = [
    ("3x3", (16, 8, 3, 3), {"pads": [1, 1, 1, 1]}, True, 2),
    ("strided-7x7", (16, 3, 7, 7), {"pads": [3, 3, 3, 3], "strides": [2, 2]}, True, 2),
    ("depthwise", (48, 1, 3, 3), {"pads": [1, 1, 1, 1], "group": 48}, True, 2),
    ("grouped", (24, 6, 3, 3), {"pads": [0, 1, 1, 0], "group": 4}, False, 2),
    ("pointwise", (32, 48, 1, 1), {}, True, 2),
    ("dilated", (16, 8, 3, 3), {"dilations": [2, 2], "pads": [2, 2, 2, 2]}, True, 2),
    ("same-upper-s2", (16, 8, 3, 3), {"auto_pad": "SAME_UPPER", "strides": [2, 2]}, False, 2),
    ("same-lower-s2", (16, 8, 4, 4), {"auto_pad": "SAME_LOWER", "strides": [2, 2]}, True, 2),
    ("ceilish-stride", (16, 8, 2, 2), {"strides": [3, 3]}, True, 2),
    ("1d", (32, 16, 5), {"pads": [2, 2], "strides": [2]}, True, 1),
]


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("wshape,attrs,bias,spatial", [pytest.param(*c[1:], id=c[0]) for c in CONV_ENGINE])
def test_conv_engine_matches_onnxruntime_across_shapes(wshape, attrs, bias, spatial, threads):
    cin = wshape[1] * attrs.get("group", 1)
    consts = {"w": rand(*wshape)}
    if bias:
        consts["b"] = rand(wshape[0])
    x_dims = ["n", cin] + [f"s{i}" for i in range(spatial)]
    m = make_model([helper.make_node("Conv", ["x"] + list(consts), ["y"], **attrs)],
                   [("x", np.float32, x_dims)], [("y", np.float32, None)], consts, opset=17)
    model = mserve.load(m.SerializeToString(), threads=threads)
    # Sizes above and below the engine's threshold (~256 kFLOP), repeated and interleaved.
    for n, size in [(1, 32), (3, 24), (1, 32), (2, 5), (4, 33) if spatial == 2 else (4, 500)]:
        x = rand(n, cin, *([size] * spatial))
        np.testing.assert_allclose(model.predict(x), ort_run(m, {"x": x})[0], rtol=1e-4, atol=1e-4)


def test_conv_engine_keeps_working_past_its_shape_cache():
    # More image sizes than the engine keeps primitives for (64): old ones are dropped and made
    # again when they come back.
    m = make_model([helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1])],
                   [("x", np.float32, [1, 8, "h", "w"])], [("y", np.float32, None)], {"w": rand(16, 8, 3, 3)})
    model = mserve.load(m.SerializeToString(), threads=1)
    for size in list(range(12, 82)) + [12, 13]:
        x = rand(1, 8, size, 12)
        np.testing.assert_allclose(model.predict(x), ort_run(m, {"x": x})[0], rtol=1e-4, atol=1e-4)
