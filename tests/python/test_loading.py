"""Loading a model file: weights read from the file a chunk at a time (tensors larger than a
chunk, at every offset), truncated files, and weights that drop their bytes once packed (shared
with readers that need them as stored, or with nodes that constant folding evaluates), checked
against numpy."""
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import mserve


def _save(tmp_path, nodes, inputs, outputs, initializers, name="m.onnx"):
    g = helper.make_graph(nodes, "g", inputs, outputs, initializer=[numpy_helper.from_array(a, n) for n, a in
                                                                     initializers.items()])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    path = tmp_path / name
    onnx.save(model, str(path))
    return path


@pytest.mark.parametrize("pad", [0, 1, 3])
def test_weights_larger_than_a_read_chunk(tmp_path, pad):
    """A 24 MB weight (three read chunks) after a small one of `pad` values lands at every
    alignment in the file and reads back exactly."""
    rng = np.random.default_rng(pad)
    big = rng.standard_normal((6_000_000,), np.float32)
    small = rng.standard_normal((pad + 1,), np.float32)
    nodes = [helper.make_node("Add", ["x", "big"], ["y"]), helper.make_node("ReduceSum", ["small"], ["s"])]
    path = _save(tmp_path, nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [6_000_000])],
                 [helper.make_tensor_value_info("y", TensorProto.FLOAT, [6_000_000]),
                  helper.make_tensor_value_info("s", TensorProto.FLOAT, [1])],
                 {"small": small, "big": big})
    m = mserve.load(str(path))
    x = rng.standard_normal((6_000_000,), np.float32)
    out = m.predict({"x": x})
    np.testing.assert_array_equal(out["y"], x + big)
    np.testing.assert_allclose(out["s"], [small.sum()], rtol=1e-6)


def test_truncated_file_is_a_load_error(tmp_path):
    big = np.ones((3_000_000,), np.float32)
    path = _save(tmp_path, [helper.make_node("Add", ["x", "big"], ["y"])],
                 [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3_000_000])],
                 [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3_000_000])], {"big": big})
    data = path.read_bytes()
    for cut in (len(data) // 2, len(data) - 1, 10):
        bad = tmp_path / f"cut{cut}.onnx"
        bad.write_bytes(data[:cut])
        with pytest.raises(mserve.ModelLoadError, match="not an ONNX model"):
            mserve.load(str(bad))


def test_packed_weights_shared_with_readers_that_need_them(tmp_path):
    """W is packed by two MatMuls, read as stored by an Add, and by a MatMul whose other input
    constant folding computes; V only by one MatMul (its bytes go as soon as it is packed); U by
    a folded node only. Every answer matches numpy."""
    rng = np.random.default_rng(0)
    w = rng.standard_normal((64, 64), np.float32)
    v = rng.standard_normal((64, 32), np.float32)
    u = rng.standard_normal((64, 64), np.float32)
    c = rng.standard_normal((64, 64), np.float32)
    nodes = [
        helper.make_node("MatMul", ["x", "W"], ["a"]),
        helper.make_node("MatMul", ["a", "W"], ["b"]),
        helper.make_node("Add", ["b", "W"], ["y1"]),            # W as stored, at run time
        helper.make_node("Relu", ["C"], ["rc"]),                # folded: rc becomes constant
        helper.make_node("MatMul", ["rc", "W"], ["cw"]),        # folded too
        helper.make_node("MatMul", ["rc", "U"], ["cu"]),        # folded, U's only reader
        helper.make_node("Add", ["b", "cw"], ["bw"]),
        helper.make_node("Add", ["bw", "cu"], ["y2"]),
        helper.make_node("MatMul", ["x", "V"], ["y3"]),         # V: one packing reader
    ]
    path = _save(tmp_path, nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [64, 64])],
                 [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in ("y1", "y2", "y3")],
                 {"W": w, "V": v, "U": u, "C": c})
    x = rng.standard_normal((64, 64), np.float32)
    xd, wd, rc = x.astype(np.float64), w.astype(np.float64), np.maximum(c, 0).astype(np.float64)
    b = xd @ wd @ wd
    for optimize in (True, False):
        out = mserve.load(str(path), optimize=optimize).predict({"x": x})
        np.testing.assert_allclose(out["y1"], b + wd, rtol=1e-4, atol=1e-3)
        np.testing.assert_allclose(out["y2"], b + rc @ wd + rc @ u, rtol=1e-4, atol=1e-3)
        np.testing.assert_allclose(out["y3"], xd @ v, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("op", ["Gemm", "Conv"])
def test_weights_of_a_node_whose_other_input_is_folded(tmp_path, op):
    """The node's weight comes from a folded Relu, so folding creates its kernel again, and it
    reads its bias anew: the bias keeps its bytes until then."""
    rng = np.random.default_rng(1)
    if op == "Gemm":
        w = rng.standard_normal((32, 16), np.float32)
        bias = rng.standard_normal((16,), np.float32)
        x = rng.standard_normal((4, 32), np.float32)
        node = helper.make_node("Gemm", ["x", "wr", "B"], ["y"])
        want = x.astype(np.float64) @ np.maximum(w, 0) + bias
        xin, yshape = [4, 32], [4, 16]
    else:
        w = rng.standard_normal((8, 3, 3, 3), np.float32)
        bias = rng.standard_normal((8,), np.float32)
        x = rng.standard_normal((1, 3, 6, 6), np.float32)
        node = helper.make_node("Conv", ["x", "wr", "B"], ["y"])
        wr = np.maximum(w, 0).astype(np.float64)
        want = np.zeros((1, 8, 4, 4))
        for o in range(8):
            for i in range(4):
                for j in range(4):
                    want[0, o, i, j] = (x[0, :, i:i + 3, j:j + 3] * wr[o]).sum() + bias[o]
        xin, yshape = [1, 3, 6, 6], [1, 8, 4, 4]
    path = _save(tmp_path, [helper.make_node("Relu", ["W"], ["wr"]), node],
                 [helper.make_tensor_value_info("x", TensorProto.FLOAT, xin)],
                 [helper.make_tensor_value_info("y", TensorProto.FLOAT, yshape)], {"W": w, "B": bias})
    np.testing.assert_allclose(mserve.load(str(path)).predict(x), want, rtol=1e-4, atol=1e-4)
