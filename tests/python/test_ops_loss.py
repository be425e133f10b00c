"""NegativeLogLikelihoodLoss and SoftmaxCrossEntropyLoss (kernels/ops/loss.cc) on one-node models,
against onnxruntime (onnx.reference where onnxruntime lacks a kernel); float32: rtol 1e-4, atol 1e-5."""
import numpy as np
import pytest

import mserve
from op_harness import Cases, build_model, random_inputs

rand = random_inputs(7, lo=-3.0, hi=3.0)
RNG = rand.rng
CASES = Cases(opsets=(13,))


def labels(shape, C, ii=None, dtype=np.int64):
    t = RNG.integers(0, C, size=shape).astype(dtype)
    if ii is not None:
        t.flat[:: 3] = ii  # every third entry ignored
    return t


def case(id_, op, inputs, attrs=None, opsets=None, **kw):
    CASES.add(id_, op, inputs, attrs=attrs, opsets=opsets, **kw)


for op in ["NegativeLogLikelihoodLoss", "SoftmaxCrossEntropyLoss"]:
    short = "NLL" if op.startswith("Neg") else "SCE"
    opsets = (12, 13)
    for red in ["none", "sum", "mean"]:
        a = {"reduction": red}
        case(f"{short}-NC-{red}", op, {"x": rand(5, 4), "t": labels((5,), 4)}, a, opsets)
        case(f"{short}-NCd1-{red}-w", op, {"x": rand(3, 5, 6), "t": labels((3, 6), 5), "w": rand(5) + 3.5}, a, opsets)
        case(f"{short}-NCd1d2-{red}-ii", op, {"x": rand(2, 3, 4, 5), "t": labels((2, 4, 5), 3, ii=1)},
             dict(a, ignore_index=1))
        case(f"{short}-NCd1d2d3-{red}-w-negii", op,
             {"x": rand(2, 4, 2, 3, 2), "t": labels((2, 2, 3, 2), 4, ii=-5), "w": rand(4) + 3.5},
             dict(a, ignore_index=-5))
        case(f"{short}-NCd1-{red}-highii-int32", op,
             {"x": rand(4, 3, 7), "t": labels((4, 7), 3, ii=10, dtype=np.int32)}, dict(a, ignore_index=10))
    case(f"{short}-f64-mean-w", op, {"x": rand(6, 5, 3, dtype=np.float64), "t": labels((6, 3), 5),
                                     "w": rand(5, dtype=np.float64) + 3.5})
    case(f"{short}-f64-none", op, {"x": rand(6, 5, dtype=np.float64), "t": labels((6,), 5, ii=0)},
         {"reduction": "none", "ignore_index": 0})
    case(f"{short}-f16-sum", op, {"x": rand(4, 3, 5, dtype=np.float16), "t": labels((4, 5), 3)},
         {"reduction": "sum"}, oracle="reference")
    case(f"{short}-default-mean", op, {"x": rand(8, 10), "t": labels((8,), 10)})
    case(f"{short}-large", op, {"x": rand(16, 7, 33), "t": labels((16, 33), 7, ii=3), "w": rand(7) + 3.5},
         {"ignore_index": 3})
case("NLL-op22", "NegativeLogLikelihoodLoss", {"x": rand(3, 4, 5), "t": labels((3, 5), 4, ii=2), "w": rand(4) + 3.5},
     {"reduction": "mean", "ignore_index": 2}, opsets=(22,), oracle="reference")
for red in ["none", "sum", "mean"]:
    case(f"SCE-logprob-{red}", "SoftmaxCrossEntropyLoss",
         {"x": rand(3, 5, 2, 4), "t": labels((3, 2, 4), 5, ii=4), "w": rand(5) + 3.5},
         {"reduction": red, "ignore_index": 4}, opsets=(12, 13), outputs=2)
case("SCE-logprob-NC", "SoftmaxCrossEntropyLoss", {"x": rand(7, 6), "t": labels((7,), 6)}, outputs=2)


@pytest.mark.parametrize("c", CASES)
def test_loss_matches_oracle(c):
    c.check()


def test_loss_all_ignored_mean_is_nan():
    x, t = rand(2, 3), np.array([1, 1], np.int64)
    model, _ = build_model("NegativeLogLikelihoodLoss", {"x": x, "t": t}, attrs={"ignore_index": 1}, opset=13)
    assert np.isnan(mserve.load(model).predict({"x": x, "t": t}))


def test_loss_target_out_of_range_is_invalid():
    x, t = rand(2, 3), np.array([0, 3], np.int64)
    for op in ["NegativeLogLikelihoodLoss", "SoftmaxCrossEntropyLoss"]:
        model, _ = build_model(op, {"x": x, "t": t}, attrs={"ignore_index": -1}, opset=13)
        m = mserve.load(model)
        with pytest.raises(mserve.Error, match="outside"):
            m.predict({"x": x, "t": t})


def test_loss_bad_shapes_and_attrs():
    x, t = rand(2, 3, 4), np.zeros((2, 5), np.int64)
    model, _ = build_model("NegativeLogLikelihoodLoss", {"x": x, "t": t}, attrs={}, opset=13)
    with pytest.raises(mserve.Error):
        mserve.load(model).predict({"x": x, "t": t})
    t = np.zeros((2, 4), np.int64)
    model, _ = build_model("SoftmaxCrossEntropyLoss", {"x": x, "t": t}, attrs={"reduction": "max"}, opset=13)
    with pytest.raises(mserve.Error):
        mserve.load(model).predict({"x": x, "t": t})
