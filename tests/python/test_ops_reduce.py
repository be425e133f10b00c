"""Reductions, ArgMax/ArgMin, normalizations and softmax variants on one-node models, against
onnxruntime (onnx.reference where onnxruntime lacks a kernel); float32: rtol 1e-4, atol 1e-5."""
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


def case(id_, op, inputs, consts=None, attrs=None, opsets=(18,), outputs=1, oracle="onnxruntime"):
    for opset in opsets:
        CASES.append(pytest.param(op, inputs, consts or {}, attrs or {}, opset, outputs, oracle, id=f"{id_}-op{opset}"))


REDUCES = ["ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2",
           "ReduceLogSum", "ReduceLogSumExp", "ReduceSumSquare"]


def axes_since(op):
    return 13 if op == "ReduceSum" else 18


x4 = rand(2, 3, 4, 5, lo=0.1, hi=1.5)
for op in REDUCES:
    new = axes_since(op)
    old = (1, 11, new - 1) if new == 18 else (1, 11)
    # Axes as an attribute (old opsets) and as an input (new).
    for axes, tag in [([1], "mid"), ([-1], "last"), ([0, 2], "split"), ([0], "first"), ([1, 2, 3], "tail")]:
        case(f"{op}-attr-{tag}", op, {"x": x4}, attrs={"axes": axes}, opsets=old)
        case(f"{op}-input-{tag}", op, {"x": x4}, {"axes": np.array(axes, np.int64)}, opsets=(new, 21))
    case(f"{op}-attr-nokeep", op, {"x": x4}, attrs={"axes": [2, 0], "keepdims": 0}, opsets=(11,))
    case(f"{op}-input-nokeep", op, {"x": x4}, {"axes": np.array([3, 1], np.int64)}, attrs={"keepdims": 0},
         opsets=(new,))
    case(f"{op}-all", op, {"x": x4}, opsets=(11, new))
    case(f"{op}-all-nokeep", op, {"x": x4}, attrs={"keepdims": 0}, opsets=(11, new))
    case(f"{op}-noop", op, {"x": x4}, {"axes": np.array([], np.int64)}, attrs={"noop_with_empty_axes": 1},
         opsets=(new,))
    case(f"{op}-runtime-axes", op, {"x": x4, "axes": np.array([0, -2], np.int64)}, opsets=(new,))
    case(f"{op}-f64", op, {"x": rand(3, 6, dtype=np.float64, lo=0.1)}, attrs={"axes": [1]}, opsets=(11,))
    case(f"{op}-1d", op, {"x": rand(37, lo=0.1)}, opsets=(new,))
for op in ["ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceSumSquare"]:
    case(f"{op}-int64", op, {"x": rand(3, 4, 5, dtype=np.int64, lo=-5, hi=5)}, attrs={"axes": [1]}, opsets=(11,))
    case(f"{op}-int32", op, {"x": rand(3, 4, 5, dtype=np.int32, lo=-5, hi=5)}, attrs={"axes": [0, 2]}, opsets=(11,))
case("ReduceMax-uint8", "ReduceMax", {"x": rand(4, 6, dtype=np.uint8, lo=0, hi=255)}, attrs={"axes": [1]},
     opsets=(13,))
case("ReduceMin-int8", "ReduceMin", {"x": rand(4, 6, dtype=np.int8, lo=-100, hi=100)}, attrs={"axes": [0]},
     opsets=(13,))
case("ReduceMax-bool", "ReduceMax", {"x": rand(4, 6, dtype=np.int64, lo=0, hi=1).astype(bool)},
     {"axes": np.array([1], np.int64)}, opsets=(20,), oracle="reference")
for op in ["ReduceSum", "ReduceProd", "ReduceMax", "ReduceMin", "ReduceL1", "ReduceL2", "ReduceLogSumExp",
           "ReduceSumSquare", "ReduceLogSum"]:
    case(f"{op}-empty-set", op, {"x": np.zeros((2, 0, 4), np.float32)}, {"axes": np.array([1], np.int64)},
         opsets=(axes_since(op),), oracle="reference")
case("ReduceLogSumExp-large", "ReduceLogSumExp", {"x": rand(3, 5, lo=500, hi=800)}, attrs={"axes": [1]},
     opsets=(13,))

for op in ["ArgMax", "ArgMin"]:
    xa = rand(3, 4, 5)
    case(f"{op}-default", op, {"x": xa}, opsets=(1, 11, 13))
    case(f"{op}-axis", op, {"x": xa}, attrs={"axis": 2, "keepdims": 0}, opsets=(11, 13))
    case(f"{op}-neg", op, {"x": xa}, attrs={"axis": -2}, opsets=(13,))
    ties = rand(4, 6, dtype=np.int32, lo=0, hi=2).astype(np.float32)
    case(f"{op}-ties-first", op, {"x": ties}, attrs={"axis": 1}, opsets=(12, 13))
    case(f"{op}-ties-last", op, {"x": ties}, attrs={"axis": 1, "select_last_index": 1}, opsets=(12, 13))
    case(f"{op}-int64", op, {"x": rand(5, 3, dtype=np.int64, lo=-9, hi=9)}, attrs={"axis": 0}, opsets=(13,))
    case(f"{op}-f64", op, {"x": rand(5, 3, dtype=np.float64)}, attrs={"axis": 1, "keepdims": 0}, opsets=(13,))

for op in ["LogSoftmax", "Hardmax", "Softmax"]:
    xs = rand(2, 3, 4, lo=-4, hi=4)
    case(f"{op}-legacy", op, {"x": xs}, opsets=(1, 11))
    case(f"{op}-legacy-axis0", op, {"x": xs}, attrs={"axis": 0}, opsets=(11,))
    case(f"{op}-legacy-axis-neg", op, {"x": xs}, attrs={"axis": -1}, opsets=(11,))
    case(f"{op}-13", op, {"x": xs}, opsets=(13,))
    case(f"{op}-13-axis1", op, {"x": xs}, attrs={"axis": 1}, opsets=(13,))
    case(f"{op}-13-axis0", op, {"x": xs}, attrs={"axis": 0}, opsets=(13,))
    case(f"{op}-f64", op, {"x": rand(3, 7, dtype=np.float64)}, opsets=(13,),
         oracle="reference" if op == "Hardmax" else "onnxruntime")
case("LogSoftmax-large", "LogSoftmax", {"x": np.array([[0, 1, 2, 3], [10000, 10001, 10002, 10003]], np.float32)},
     opsets=(13,))
case("Hardmax-ties", "Hardmax", {"x": np.array([[1, 3, 3, 2], [2, 2, 2, 2]], np.float32)}, opsets=(13,))

# LayerNormalization: Y only, and with Mean / InvStdDev.
for shape, axis in [((2, 3, 4), -1), ((2, 3, 4), 1), ((2, 3, 4), 0), ((3, 5), -2), ((2, 3, 4, 5), 2)]:
    xs = rand(*shape)
    ns = shape[axis:] if axis >= 0 else shape[len(shape) + axis:]
    case(f"LayerNorm-{len(shape)}d-axis{axis}", "LayerNormalization", {"x": xs}, {"s": rand(*ns), "b": rand(*ns)},
         attrs={"axis": axis}, opsets=(17,), outputs=3)
case("LayerNorm-noB", "LayerNormalization", {"x": rand(4, 6)}, {"s": rand(6)}, attrs={"epsilon": 1e-2},
     opsets=(17, 21))
case("LayerNorm-bcast-scale", "LayerNormalization", {"x": rand(2, 3, 4)}, {"s": rand(1, 4), "b": rand(4)},
     attrs={"axis": 1}, opsets=(17,))
case("LayerNorm-f64", "LayerNormalization", {"x": rand(3, 8, dtype=np.float64)},
     {"s": rand(8, dtype=np.float64), "b": rand(8, dtype=np.float64)}, opsets=(17,))
case("LayerNorm-runtime-scale", "LayerNormalization", {"x": rand(3, 8), "s": rand(8), "b": rand(8)}, opsets=(17,))

case("InstanceNorm", "InstanceNormalization", {"x": rand(2, 3, 5, 4)}, {"s": rand(3), "b": rand(3)},
     opsets=(6, 22))
case("InstanceNorm-eps-3d", "InstanceNormalization", {"x": rand(2, 4, 7)}, {"s": rand(4), "b": rand(4)},
     attrs={"epsilon": 0.01})
case("InstanceNorm-5d", "InstanceNormalization", {"x": rand(1, 2, 3, 4, 2)}, {"s": rand(2), "b": rand(2)})
case("GroupNorm-18", "GroupNormalization", {"x": rand(2, 6, 3, 4)}, {"s": rand(3), "b": rand(3)},
     attrs={"num_groups": 3}, opsets=(18,), oracle="reference")
case("GroupNorm-21", "GroupNormalization", {"x": rand(2, 6, 3, 4)}, {"s": rand(6), "b": rand(6)},
     attrs={"num_groups": 2, "epsilon": 1e-3}, opsets=(21,))
case("GroupNorm-21-1group", "GroupNormalization", {"x": rand(3, 4, 5)}, {"s": rand(4), "b": rand(4)},
     attrs={"num_groups": 1}, opsets=(21,))
case("LpNorm", "LpNormalization", {"x": rand(3, 4, 5)}, opsets=(1, 22))
case("LpNorm-l1-axis0", "LpNormalization", {"x": rand(3, 4, 5)}, attrs={"p": 1, "axis": 0}, opsets=(1,))
case("LpNorm-axis1-zero", "LpNormalization", {"x": np.array([[0, 0, 0], [1, 2, 2]], np.float32)},
     attrs={"axis": 1}, opsets=(1,), oracle="reference")
case("MVN", "MeanVarianceNormalization", {"x": rand(2, 3, 4, 5)}, opsets=(9, 13))
case("MVN-axes", "MeanVarianceNormalization", {"x": rand(2, 3, 4, 5)}, attrs={"axes": [1, 3]}, opsets=(13,))
case("MVN-last", "MeanVarianceNormalization", {"x": rand(4, 7)}, attrs={"axes": [-1]}, opsets=(13,))

# float16 (compared at rtol/atol 1e-3 below).
x16 = rand(3, 4, 5, lo=0.1, hi=1.5).astype(np.float16)
for op in ["ReduceSum", "ReduceMean", "ReduceMax", "ReduceL2", "ReduceLogSumExp"]:
    case(f"{op}-f16", op, {"x": x16}, attrs={"axes": [1]}, opsets=(11 if op == "ReduceSum" else 13,))
case("ArgMax-f16", "ArgMax", {"x": x16}, attrs={"axis": 2}, opsets=(13,))
case("Softmax-f16", "Softmax", {"x": x16}, opsets=(13,))
case("LogSoftmax-f16", "LogSoftmax", {"x": x16}, opsets=(13,))
case("LayerNorm-f16", "LayerNormalization", {"x": x16}, {"s": rand(5).astype(np.float16), "b": rand(5).astype(np.float16)},
     opsets=(17,), outputs=3)
case("InstanceNorm-f16", "InstanceNormalization", {"x": x16}, {"s": rand(4).astype(np.float16),
                                                                 "b": rand(4).astype(np.float16)}, opsets=(6,))


@pytest.mark.parametrize("op,inputs,consts,attrs,opset,outputs,oracle", CASES)
def test_op_matches_oracle(op, inputs, consts, attrs, opset, outputs, oracle):
    names = list(inputs) + list(consts)
    out_names = ["y"] if outputs == 1 else [f"y{i}" for i in range(outputs)]
    node = helper.make_node(op, names, out_names, **attrs)
    model = make_model([node], [(k, v.dtype, list(v.shape)) for k, v in inputs.items()],
                       [(o, 0, None) for o in out_names], consts, opset=opset)
    for o in model.graph.output:
        if o.type.tensor_type.elem_type == 0:  # ONNX infers no type for some functions (GroupNormalization)
            o.type.tensor_type.elem_type = helper.np_dtype_to_tensor_dtype(next(iter(inputs.values())).dtype)
    if oracle == "reference":
        from onnx.reference import ReferenceEvaluator
        expected = ReferenceEvaluator(model).run(None, inputs)
    else:
        expected = ort_run(model, inputs)
    m = mserve.load(model.SerializeToString(), threads=2)
    got = m.predict(dict(inputs))
    got = [got] if outputs == 1 else [got[o] for o in out_names]
    for g, e in zip(got, expected):
        assert g.dtype == e.dtype, (g.dtype, e.dtype)
        assert g.shape == e.shape, (g.shape, e.shape)
        if np.issubdtype(e.dtype, np.floating):
            tol = dict(rtol=1e-3, atol=1e-3) if e.dtype == np.float16 else dict(rtol=1e-4, atol=1e-5)
            np.testing.assert_allclose(g, e, **tol)
        else:
            np.testing.assert_array_equal(g, e)


def test_bad_axes_are_invalid_argument():
    node = helper.make_node("ReduceSum", ["x", "axes"], ["y"])
    model = make_model([node], [("x", np.float32, [2, 3]), ("axes", np.int64, [1])], [("y", 0, None)], opset=13)
    m = mserve.load(model.SerializeToString())
    with pytest.raises(mserve.Error):
        m.predict({"x": rand(2, 3), "axes": np.array([5], np.int64)})


def test_argmax_empty_axis_is_invalid():
    node = helper.make_node("ArgMax", ["x"], ["y"], axis=1)
    model = make_model([node], [("x", np.float32, [2, None])], [("y", 0, None)], opset=13)
    m = mserve.load(model.SerializeToString())
    with pytest.raises(mserve.Error):
        m.predict({"x": np.zeros((2, 0), np.float32)})


def test_supported_ops_lists_reduce_family():
    names = {op.op_type for op in mserve.supported_ops()}
    for op in REDUCES + ["ArgMax", "ArgMin", "LayerNormalization", "InstanceNormalization", "GroupNormalization",
                         "LpNormalization", "MeanVarianceNormalization", "LogSoftmax", "Hardmax"]:
        assert op in names
