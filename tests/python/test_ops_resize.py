"""Resize and Upsample (kernels/ops/resize.cc) on one-node models, against onnxruntime (or
onnx.reference); float32: rtol 1e-4, atol 1e-5."""
import numpy as np
import pytest
from onnx import helper

import mserve
from op_harness import Cases, f32, i64, make_model, random_inputs

rand = random_inputs(7)
CASES = Cases(opsets=(19,))


def case(id_, op, inputs, consts=None, attrs=None, opsets=(19,), names=None, **kw):
    """names: the node's inputs ("" for an omitted optional input), by default the runtime inputs then the
    constants. Before opset 13 Resize's roi and scales are required: empty tensors stand for "not given"."""
    for opset in opsets:
        nm = list(names) if names is not None else list(inputs) + list(consts or {})
        cs = dict(consts or {})
        if op == "Resize" and opset < 13:
            for i, n in [(1, "roi_empty"), (2, "scales_empty")]:
                if i < len(nm) and nm[i] == "":
                    nm[i] = n
                    cs[n] = np.zeros(0, np.float32)
        CASES.add(id_, op, inputs, cs, attrs, opsets=(opset,), names=nm, **kw)


X4 = rand(1, 2, 4, 5)
X3 = rand(2, 3, 7)
XS = rand(1, 1, 6, 8)

# Resize with scales (opsets 11+: X, roi, scales[, sizes]).
for mode in ["nearest", "linear", "cubic"]:
    for ctm in ["half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric"]:
        for sc in [(1, 1, 2, 1.5), (1, 1, 0.5, 0.6), (1, 1, 1.7, 0.8)]:
            # align_corners with a fractional scale * length: the reference (and the node test
            # data) divide by scale * length - 1, onnxruntime by the integer output length - 1.
            oracle = "reference" if ctm == "align_corners" else "onnxruntime"
            case(f"Resize-{mode}-{ctm}-{sc}", "Resize", {"x": X4}, {"s": f32(*sc)},
                 {"mode": mode, "coordinate_transformation_mode": ctm}, opsets=(11, 13, 18),
                 names=["x", "", "s"], oracle=oracle)
for nm in ["round_prefer_floor", "round_prefer_ceil", "floor", "ceil"]:
    case(f"Resize-nearest-{nm}", "Resize", {"x": X4}, {"s": f32(1, 1, 2.5, 1.3)},
         {"mode": "nearest", "nearest_mode": nm}, opsets=(13,), names=["x", "", "s"])
    case(f"Resize-nearest-{nm}-asym", "Resize", {"x": X4}, {"s": f32(1, 1, 0.7, 2.2)},
         {"mode": "nearest", "nearest_mode": nm, "coordinate_transformation_mode": "asymmetric"},
         opsets=(13,), names=["x", "", "s"])
# Sizes.
for mode in ["nearest", "linear", "cubic"]:
    case(f"Resize-sizes-{mode}", "Resize", {"x": X4}, {"z": i64(1, 2, 7, 3)}, {"mode": mode},
         opsets=(11, 13, 19), names=["x", "", "", "z"])
    case(f"Resize-sizes-3d-{mode}", "Resize", {"x": X3}, {"z": i64(2, 3, 11)}, {"mode": mode},
         opsets=(13,), names=["x", "", "", "z"], oracle="reference")  # onnxruntime: cubic is 2-D/4-D only
# Cubic options.
case("Resize-cubic-A-excl", "Resize", {"x": XS}, {"s": f32(1, 1, 1.6, 0.7)},
     {"mode": "cubic", "cubic_coeff_a": -0.5, "exclude_outside": 1}, opsets=(13, 18), names=["x", "", "s"])
# tf_crop_and_resize.
for mode in ["nearest", "linear", "cubic"]:
    case(f"Resize-tfcrop-{mode}", "Resize", {"x": XS},
         {"roi": f32(0, 0, 0.2, 0.1, 1, 1, 0.9, 1.3), "z": i64(1, 1, 4, 5)},
         {"mode": mode, "coordinate_transformation_mode": "tf_crop_and_resize", "extrapolation_value": 7.5},
         opsets=(11, 13), names=["x", "roi", "", "z"])
# Opset 18: axes, keep_aspect_ratio_policy, antialias.
case("Resize-axes-scales", "Resize", {"x": X4}, {"s": f32(1.5, 2.0)}, {"mode": "linear", "axes": [3, 2]},
     opsets=(18, 19), names=["x", "", "s"], oracle="reference")
case("Resize-axes-sizes", "Resize", {"x": X4}, {"z": i64(9, 3)}, {"mode": "nearest", "axes": [2, 3]},
     opsets=(18,), names=["x", "", "", "z"])
for pol in ["not_larger", "not_smaller"]:
    case(f"Resize-aspect-{pol}", "Resize", {"x": X4}, {"z": i64(7, 7)},
         {"mode": "linear", "axes": [2, 3], "keep_aspect_ratio_policy": pol}, opsets=(18,), names=["x", "", "", "z"])
for mode in ["linear", "cubic"]:
    case(f"Resize-antialias-{mode}", "Resize", {"x": XS}, {"s": f32(1, 1, 0.4, 0.6)},
         {"mode": mode, "antialias": 1}, opsets=(18,), names=["x", "", "s"])
    case(f"Resize-antialias-sizes-{mode}", "Resize", {"x": XS}, {"z": i64(1, 1, 3, 3)},
         {"mode": mode, "antialias": 1}, opsets=(18,), names=["x", "", "", "z"])
case("Resize-half-pixel-symmetric", "Resize", {"x": X4}, {"s": f32(1, 1, 1.7, 0.7)},
     {"mode": "linear", "coordinate_transformation_mode": "half_pixel_symmetric"}, opsets=(19,),
     names=["x", "", "s"], oracle="reference")
# Runtime (non-constant) scales and sizes.
case("Resize-runtime-scales", "Resize", {"x": X4, "s": f32(1, 1, 2, 3)}, {}, {"mode": "linear"}, opsets=(13,),
     names=["x", "", "s"])
case("Resize-runtime-sizes", "Resize", {"x": X4, "z": i64(1, 2, 3, 9)}, {}, {"mode": "nearest"}, opsets=(13,),
     names=["x", "", "", "z"])
# Other dtypes.
case("Resize-nearest-int64", "Resize", {"x": rand(1, 3, 4, dtype=np.int64, lo=-1000, hi=1000)},
     {"s": f32(1, 2, 1.5)}, {"mode": "nearest"}, opsets=(13,), names=["x", "", "s"], oracle="reference")
case("Resize-nearest-uint8", "Resize", {"x": rand(2, 4, dtype=np.uint8, lo=0, hi=255)},
     {"s": f32(1, 3)}, {"mode": "nearest"}, opsets=(13,), names=["x", "", "s"])
case("Resize-linear-f64", "Resize", {"x": rand(1, 1, 3, 4, dtype=np.float64)}, {"s": f32(1, 1, 2, 2.5)},
     {"mode": "linear"}, opsets=(13,), names=["x", "", "s"], oracle="reference")
case("Resize-cubic-f16", "Resize", {"x": rand(1, 1, 3, 4, dtype=np.float16)}, {"s": f32(1, 1, 2, 2)},
     {"mode": "cubic"}, opsets=(13,), names=["x", "", "s"])
# Opset 10: X, scales; asymmetric.
for mode in ["nearest", "linear"]:
    case(f"Resize10-{mode}-up", "Resize", {"x": X4}, {"s": f32(1, 1, 2, 3)}, {"mode": mode}, opsets=(10,))
    case(f"Resize10-{mode}-down", "Resize", {"x": XS}, {"s": f32(1, 1, 0.5, 0.75)}, {"mode": mode}, opsets=(10,))
# Upsample: 7 (scales attribute), 9 (scales input).
for mode in ["nearest", "linear"]:
    case(f"Upsample7-{mode}", "Upsample", {"x": X4}, attrs={"mode": mode, "scales": [1.0, 1.0, 2.0, 3.0]},
         opsets=(7,))
    case(f"Upsample9-{mode}", "Upsample", {"x": X4}, {"s": f32(1, 1, 2, 2.5)}, {"mode": mode}, opsets=(9,))
case("Upsample9-nearest-int32", "Upsample", {"x": rand(2, 3, dtype=np.int32, lo=-9, hi=9)}, {"s": f32(2, 3)},
     {"mode": "nearest"}, opsets=(9,))


@pytest.mark.parametrize("c", CASES)
def test_op_matches_oracle(c):
    c.check()


def test_resize_errors():
    node = helper.make_node("Resize", ["x", "", "s", "z"], ["y"], mode="linear")
    model = make_model([node], [("x", np.float32, [1, 1, 2, 2])], [("y", 0, None)],
                       {"s": f32(1, 1, 2, 2), "z": i64(1, 1, 4, 4)}, opset=13)
    with pytest.raises(mserve.Error):
        mserve.load(model.SerializeToString()).predict({"x": np.ones((1, 1, 2, 2), np.float32)})
    node = helper.make_node("Resize", ["x", "", "s"], ["y"], mode="area")
    model = make_model([node], [("x", np.float32, [1, 1, 2, 2])], [("y", 0, None)], {"s": f32(1, 1, 2, 2)}, opset=13)
    with pytest.raises(Exception, match="(?i)unsupported|not supported"):
        mserve.load(model.SerializeToString())
