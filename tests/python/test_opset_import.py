"""Old operator forms that the importer rewrites into the newest ones (cpp/core/onnx/normalize.h),
compared with onnxruntime running the original old-opset models."""
import numpy as np
import onnx
import pytest
from onnx import helper

import mserve
from op_harness import Cases, check_outputs, make_model, ort_run, random_inputs

rand = random_inputs(seed=7)
CASES = Cases(oracle="auto")  # onnx.reference where onnxruntime lacks an old kernel
case = CASES.add
x4 = rand(2, 3, 4, 5)

case("Clip-both", "Clip", {"x": x4}, attrs={"min": -0.5, "max": 0.7}, opsets=(6,))
case("Clip-min", "Clip", {"x": x4}, attrs={"min": -0.5}, opsets=(6,))
case("Clip-max", "Clip", {"x": x4}, attrs={"max": 0.2}, opsets=(6,))
case("Clip-none", "Clip", {"x": x4}, opsets=(6,))
case("Clip-f64", "Clip", {"x": rand(3, 4, dtype=np.float64)}, attrs={"min": -0.25, "max": 0.5}, opsets=(6,))
case("Split-attr", "Split", {"x": x4}, attrs={"axis": 3, "split": [1, 4]}, outputs=2, opsets=(2, 11))
case("Split-even", "Split", {"x": x4}, attrs={"axis": 1}, outputs=3, opsets=(2, 11))
case("Slice-attr", "Slice", {"x": x4}, attrs={"starts": [1, -4], "ends": [3, 100], "axes": [2, 3]}, opsets=(1,))
case("Slice-noaxes", "Slice", {"x": x4}, attrs={"starts": [1, 0], "ends": [2, 2]}, opsets=(1,))
case("Pad-value", "Pad", {"x": rand(2, 3)}, attrs={"pads": [1, 2, 0, 1], "value": 1.5}, opsets=(2,))
case("Pad-zero", "Pad", {"x": rand(2, 3)}, attrs={"pads": [0, 1, 2, 0]}, opsets=(2,))
case("Pad-reflect", "Pad", {"x": rand(3, 4)}, attrs={"pads": [1, 2, 1, 2], "mode": "reflect"}, opsets=(2,))
case("Pad-edge-f64", "Pad", {"x": rand(3, 4, dtype=np.float64)}, attrs={"pads": [1, 0, 0, 2], "mode": "edge"},
     opsets=(2,))
case("Squeeze-axes", "Squeeze", {"x": rand(2, 1, 3, 1)}, attrs={"axes": [1, -1]}, opsets=(1, 11))
case("Squeeze-all", "Squeeze", {"x": rand(2, 1, 3, 1)}, opsets=(1, 11))
case("Unsqueeze", "Unsqueeze", {"x": rand(2, 3)}, attrs={"axes": [0, 3]}, opsets=(1, 11))
case("ReduceSum-axes", "ReduceSum", {"x": x4}, attrs={"axes": [1, 3]}, opsets=(1, 11))
case("ReduceSum-all", "ReduceSum", {"x": x4}, attrs={"keepdims": 0}, opsets=(11,))
for op in ("ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2", "ReduceLogSumExp",
           "ReduceSumSquare"):
    case(op, op, {"x": x4}, attrs={"axes": [-1], "keepdims": 0}, opsets=(11, 13))
case("ReduceLogSum", "ReduceLogSum", {"x": rand(2, 3, 4, lo=0.5, hi=2.0)}, attrs={"axes": [0, 2]}, opsets=(11, 13))
case("TopK-attr", "TopK", {"x": rand(3, 7)}, attrs={"k": 3, "axis": 1}, outputs=2, opsets=(1,))
case("Upsample7-nearest", "Upsample", {"x": rand(1, 2, 3, 4)}, attrs={"scales": [1.0, 1.0, 2.0, 3.0]}, opsets=(7,))
case("Upsample9-linear", "Upsample", {"x": rand(1, 2, 3, 4)}, consts={"scales": np.array([1, 1, 2, 1.5], np.float32)},
     attrs={"mode": "linear"}, opsets=(9,))
for op in ("Softmax", "LogSoftmax", "Hardmax"):
    case(f"{op}-default", op, {"x": x4}, opsets=(1, 11))  # axis 1: rows of [2, 60]
    case(f"{op}-axis2", op, {"x": x4}, attrs={"axis": 2}, opsets=(11,))
    case(f"{op}-axis0", op, {"x": x4}, attrs={"axis": 0}, opsets=(11,))
    case(f"{op}-last", op, {"x": x4}, attrs={"axis": 3}, opsets=(11,))
    case(f"{op}-minus1", op, {"x": x4}, attrs={"axis": -1}, opsets=(11,))
    case(f"{op}-minus2", op, {"x": x4}, attrs={"axis": -2}, opsets=(11,))
bn_params = {"scale": rand(3), "bias": rand(3), "mean": rand(3), "var": rand(3, lo=0.5, hi=1.5)}
case("BatchNorm-spatial", "BatchNormalization", {"x": rand(2, 3, 4, 4)}, consts=bn_params,
     attrs={"spatial": 1, "epsilon": 1e-3}, opsets=(7,))
case("BatchNorm-default", "BatchNormalization", {"x": rand(2, 3, 4, 4)}, consts=bn_params, opsets=(7, 9))


@pytest.mark.parametrize("c", CASES)
def test_old_form_matches_onnxruntime(c):
    c.check()


def _load(model):
    return mserve.load(model.SerializeToString())


def test_softmax_of_unknown_rank():
    # Softmax-11 over an intermediate value (its rank is not declared): the flatten rewrite.
    x = rand(2, 3, 4)
    nodes = [helper.make_node("Relu", ["x"], ["r"]), helper.make_node("Softmax", ["r"], ["y"], axis=1)]
    model = make_model(nodes, [("x", np.float32, list(x.shape))], [("y", np.float32, None)], opset=11)
    check_outputs([_load(model).predict(x)], ort_run(model, {"x": x}))


def test_old_forms_inside_a_subgraph():
    # An If whose branches hold opset-10 Clip / Softmax / Unsqueeze: subgraphs are normalized too.
    x = rand(3, 4)
    then_g = helper.make_graph([helper.make_node("Clip", ["x"], ["t"], min=-0.1, max=0.1),
                                helper.make_node("Unsqueeze", ["t"], ["o"], axes=[0])], "then", [],
                               [helper.make_tensor_value_info("o", onnx.TensorProto.FLOAT, None)])
    else_g = helper.make_graph([helper.make_node("Softmax", ["x"], ["s"]),
                                helper.make_node("Unsqueeze", ["s"], ["o2"], axes=[0])], "else", [],
                               [helper.make_tensor_value_info("o2", onnx.TensorProto.FLOAT, None)])
    nodes = [helper.make_node("If", ["c"], ["y"], then_branch=then_g, else_branch=else_g)]
    model = make_model(nodes, [("c", np.bool_, []), ("x", np.float32, [3, 4])], [("y", np.float32, None)],
                       opset=10)
    sess = _load(model)
    for c in (True, False):
        feeds = {"c": np.array(c), "x": x}
        check_outputs([sess.predict(feeds)], ort_run(model, feeds))


def test_upsample7_bilinear_is_linear():
    # onnxruntime refuses 'bilinear' (which Upsample-7 defines): it is compared with 'linear'.
    x = rand(1, 2, 3, 4)
    models = [make_model([helper.make_node("Upsample", ["x"], ["y"], scales=[1.0, 1.0, 2.0, 2.0], mode=mode)],
                         [("x", np.float32, list(x.shape))], [("y", np.float32, None)], opset=7)
              for mode in ("bilinear", "linear")]
    check_outputs([_load(models[0]).predict(x)], ort_run(models[1], {"x": x}))


@pytest.mark.parametrize("op,attrs,opset,message", [
    ("Slice", {"starts": [0]}, 9, "attribute 'ends' is required"),
    ("Unsqueeze", {}, 11, "attribute 'axes' is required"),
    ("TopK", {}, 9, "attribute 'k' is required"),
    ("Pad", {"value": 1.0}, 10, "attribute 'pads' is required"),
    ("Upsample", {}, 7, "needs the scales attribute"),
])
def test_missing_attribute_is_a_clear_error(op, attrs, opset, message):
    node = helper.make_node(op, ["x"], ["y"], **attrs)
    model = make_model([node], [("x", np.float32, [2, 3])], [("y", np.float32, None)], opset=opset)
    with pytest.raises(Exception, match=message):
        _load(model)
