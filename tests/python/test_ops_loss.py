"""NegativeLogLikelihoodLoss and SoftmaxCrossEntropyLoss on one-node models, against onnxruntime
(onnx.reference where onnxruntime lacks a kernel); float32: rtol 1e-4, atol 1e-5."""
import numpy as np
import pytest
from onnx import helper

import mserve
from conftest import make_model, ort_run

RNG = np.random.default_rng(7)


def rand(*shape, dtype=np.float32):
    return RNG.uniform(-3.0, 3.0, size=shape).astype(dtype)


def labels(shape, C, ii=None, dtype=np.int64):
    t = RNG.integers(0, C, size=shape).astype(dtype)
    if ii is not None:
        t.flat[:: 3] = ii  # every third entry ignored
    return t


# (op, inputs, attrs, opset, n_outputs, oracle)
CASES = []


def case(id_, op, inputs, attrs=None, opsets=(13,), outputs=1, oracle="onnxruntime"):
    for opset in opsets:
        CASES.append(pytest.param(op, inputs, attrs or {}, opset, outputs, oracle, id=f"{id_}-op{opset}"))


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


def build(op, inputs, attrs, opset, outputs):
    out_names = ["y"] if outputs == 1 else [f"y{i}" for i in range(outputs)]
    node = helper.make_node(op, list(inputs), out_names, **attrs)
    return make_model([node], [(k, v.dtype, list(v.shape)) for k, v in inputs.items()],
                      [(o, 0, None) for o in out_names], opset=opset), out_names


@pytest.mark.parametrize("op,inputs,attrs,opset,outputs,oracle", CASES)
def test_loss_matches_oracle(op, inputs, attrs, opset, outputs, oracle):
    model, out_names = build(op, inputs, attrs, opset, outputs)
    if oracle == "reference":
        from onnx.reference import ReferenceEvaluator
        expected = ReferenceEvaluator(model).run(None, inputs)
    else:
        expected = ort_run(model, inputs)
    got = mserve.load(model.SerializeToString(), threads=2).predict(dict(inputs))
    got = [got] if outputs == 1 else [got[o] for o in out_names]
    for g, e in zip(got, expected):
        e = np.asarray(e)
        assert g.dtype == e.dtype, (g.dtype, e.dtype)
        assert g.shape == e.shape, (g.shape, e.shape)
        tol = dict(rtol=1e-3, atol=1e-3) if e.dtype == np.float16 else dict(rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(g, e, **tol)


def test_loss_all_ignored_mean_is_nan():
    x, t = rand(2, 3), np.array([1, 1], np.int64)
    model, _ = build("NegativeLogLikelihoodLoss", {"x": x, "t": t}, {"ignore_index": 1}, 13, 1)
    assert np.isnan(mserve.load(model).predict({"x": x, "t": t}))


def test_loss_target_out_of_range_is_invalid():
    x, t = rand(2, 3), np.array([0, 3], np.int64)
    for op in ["NegativeLogLikelihoodLoss", "SoftmaxCrossEntropyLoss"]:
        model, _ = build(op, {"x": x, "t": t}, {"ignore_index": -1}, 13, 1)
        m = mserve.load(model)
        with pytest.raises(mserve.Error, match="outside"):
            m.predict({"x": x, "t": t})


def test_loss_bad_shapes_and_attrs():
    x, t = rand(2, 3, 4), np.zeros((2, 5), np.int64)
    model, _ = build("NegativeLogLikelihoodLoss", {"x": x, "t": t}, {}, 13, 1)
    with pytest.raises(mserve.Error):
        mserve.load(model).predict({"x": x, "t": t})
    t = np.zeros((2, 4), np.int64)
    model, _ = build("SoftmaxCrossEntropyLoss", {"x": x, "t": t}, {"reduction": "max"}, 13, 1)
    with pytest.raises(mserve.Error):
        mserve.load(model).predict({"x": x, "t": t})
