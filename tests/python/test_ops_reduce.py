"""Reductions and ArgMax/ArgMin (kernels/ops/reduce.cc) on one-node models, against onnxruntime
(onnx.reference where onnxruntime lacks a kernel); float32: rtol 1e-4, atol 1e-5."""
import numpy as np
import pytest
from onnx import helper

import mserve
from op_harness import Cases, make_model, random_inputs

rand = random_inputs(1)
CASES = Cases(opsets=(18,))
case = CASES.add

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
# float16 (compared at rtol/atol 1e-3 below).
x16 = rand(3, 4, 5, lo=0.1, hi=1.5).astype(np.float16)
for op in ["ReduceSum", "ReduceMean", "ReduceMax", "ReduceL2", "ReduceLogSumExp"]:
    case(f"{op}-f16", op, {"x": x16}, attrs={"axes": [1]}, opsets=(11 if op == "ReduceSum" else 13,))
case("ArgMax-f16", "ArgMax", {"x": x16}, attrs={"axis": 2}, opsets=(13,))


@pytest.mark.parametrize("c", CASES)
def test_op_matches_oracle(c):
    c.check()


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


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(3, 7), (2, 3, 129), (4, 0), (0, 5)])
def test_softmax_last_axis_against_reference(dtype, shape):
    # The vectorized row path: rows of -inf (NaN, as the operator defines it), masked entries,
    # large values, empty tensors.
    from onnx.reference import ReferenceEvaluator
    node = helper.make_node("Softmax", ["x"], ["y"], axis=-1)
    model = make_model([node], [("x", dtype, [None] * len(shape))], [("y", dtype, None)], opset=13)
    x = (np.random.default_rng(3).standard_normal(shape) * 30).astype(dtype)
    if x.size:
        x.reshape(-1, shape[-1])[0] = -np.inf
        x.reshape(-1, shape[-1])[1, ::2] = -np.inf
        x.reshape(-1, shape[-1])[-1, 0] = 1e30
    with np.errstate(invalid="ignore"):
        want = ReferenceEvaluator(model).run(None, {"x": x})[0]
    got = mserve.load(model.SerializeToString()).predict(x)
    assert got.shape == want.shape and got.dtype == want.dtype
    np.testing.assert_allclose(got, want, rtol=1e-5 if dtype == np.float32 else 1e-12, atol=1e-7)


def test_supported_ops_lists_reduce_family():
    names = {op.op_type for op in mserve.supported_ops()}
    for op in REDUCES + ["ArgMax", "ArgMin", "LayerNormalization", "InstanceNormalization", "GroupNormalization",
                         "LpNormalization", "MeanVarianceNormalization", "LogSoftmax", "Hardmax"]:
        assert op in names
