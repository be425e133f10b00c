"""MatMul and Gemm (kernels/ops/matmul.cc) on one-node models, and on the oneDNN engine across
shapes and thread counts, against onnxruntime; float32: rtol 1e-4, atol 1e-5."""
import numpy as np
import pytest
from onnx import helper

import mserve
from op_harness import Cases, make_model, ort_run, random_inputs

rand = random_inputs(0)
CASES = Cases()
case = CASES.add

case("Gemm", "Gemm", {"a": rand(5, 7)}, {"b": rand(7, 3), "c": rand(3)}, opsets=(7, 9, 11, 13))
case("Gemm-trans", "Gemm", {"a": rand(7, 5)}, {"b": rand(3, 7), "c": rand(5, 1)},
     attrs={"transA": 1, "transB": 1, "alpha": 0.7, "beta": 1.3}, opsets=(13,))
case("Gemm-noC", "Gemm", {"a": rand(5, 7), "b": rand(7, 3)}, opsets=(11, 13))
case("Gemm-scalarC", "Gemm", {"a": rand(5, 7), "b": rand(7, 3)}, {"c": np.array(0.25, np.float32)})
case("MatMul-2d", "MatMul", {"a": rand(5, 7), "b": rand(7, 3)}, opsets=(1, 9, 13))
case("MatMul-batched", "MatMul", {"a": rand(2, 3, 5, 7), "b": rand(3, 7, 4)})
case("MatMul-bcast", "MatMul", {"a": rand(2, 1, 5, 7), "b": rand(4, 7, 2)})
case("MatMul-1d-left", "MatMul", {"a": rand(7), "b": rand(2, 7, 3)})
case("MatMul-1d-right", "MatMul", {"a": rand(4, 7), "b": rand(7)})
case("MatMul-int64", "MatMul",
     {"a": rand(3, 4, dtype=np.int64, lo=-5, hi=5), "b": rand(4, 2, dtype=np.int64, lo=-5, hi=5)})


@pytest.mark.parametrize("c", CASES)
def test_op_matches_oracle(c):
    c.check()


# MatMul and Gemm with constant weights run on oneDNN from ~128k multiply-adds (smaller ones on
# Eigen): several row counts per model, above and below that, on 1 and 2 threads.
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("a_dims", [["m", 96], ["b", "m", 96], [96]])
def test_matmul_engine_matches_onnxruntime(a_dims, threads):
    m = make_model([helper.make_node("MatMul", ["a", "B"], ["y"])], [("a", np.float32, a_dims)],
                   [("y", np.float32, None)], {"B": rand(96, 160)})
    model = mserve.load(m.SerializeToString(), threads=threads)
    for rows in [40, 3, 200, 40]:
        shape = {2: (rows, 96), 3: (2, rows // 2 + 1, 96), 1: (96,)}[len(a_dims)]
        a = rand(*shape)
        np.testing.assert_allclose(model.predict(a), ort_run(m, {"a": a})[0], rtol=1e-4, atol=1e-4)


GEMM_ENGINE = [
    ("plain", {}, None),
    ("transB-bias", {"transB": 1}, (160,)),
    ("alpha-beta-row", {"alpha": 0.5, "beta": 3.0}, (1, 160)),
    ("scalar-c", {"transB": 1}, ()),        # C broadcast from a scalar: Eigen
    ("full-c", {"beta": 0.5}, ("m", 160)),  # C [M, N]: Eigen
    ("transA", {"transA": 1}, (160,)),      # Eigen
]


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("attrs,c_shape", [pytest.param(*c[1:], id=c[0]) for c in GEMM_ENGINE])
def test_gemm_engine_matches_onnxruntime(attrs, c_shape, threads):
    trans_a, trans_b = attrs.get("transA", 0), attrs.get("transB", 0)
    consts = {"B": rand(160, 96) if trans_b else rand(96, 160)}
    inputs = [("a", np.float32, [96, "m"] if trans_a else ["m", 96])]
    names = ["a", "B"]
    if c_shape is not None and "m" not in c_shape:
        consts["C"] = rand(*c_shape) if c_shape else np.array(0.25, np.float32)
        names.append("C")
    elif c_shape is not None:
        inputs.append(("C", np.float32, list(c_shape)))
        names.append("C")
    m = make_model([helper.make_node("Gemm", names, ["y"], **attrs)], inputs, [("y", np.float32, None)], consts)
    model = mserve.load(m.SerializeToString(), threads=threads)
    for rows in [64, 5, 300]:
        feeds = {"a": rand(96, rows) if trans_a else rand(rows, 96)}
        if len(inputs) > 1:
            feeds["C"] = rand(rows, 160)
        np.testing.assert_allclose(model.predict(feeds), ort_run(m, feeds)[0], rtol=1e-4, atol=1e-4)
