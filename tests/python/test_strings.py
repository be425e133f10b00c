"""String tensors end to end: predict round trips (object / str_ / bytes_ arrays in, object arrays of
str out, as onnxruntime), string graph inputs/outputs/initializers, control flow passing strings
through, and the safety net: a string tensor reaching an operator that does not handle strings
fails at load with UnsupportedOperator, never a crash."""
import threading

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

import mserve
from op_harness import make_model, ort_run


def identity_model(shape=None, opset=17):
    return make_model([helper.make_node("Identity", ["x"], ["y"])], [("x", TensorProto.STRING, shape)],
                      [("y", TensorProto.STRING, shape)], opset=opset)


def concat_model():
    return make_model([helper.make_node("StringConcat", ["x", "s"], ["y"])], [("x", TensorProto.STRING, [None])],
                      [("y", TensorProto.STRING, [None])], {"s": np.array(["!"], dtype=object)}, opset=20)


def test_spec_dtype_is_object():
    m = mserve.load(identity_model([2, None]))
    assert m.inputs[0].dtype == np.dtype(object) and m.inputs[0].labels is None
    assert m.outputs[0].dtype == np.dtype(object)
    assert "object" in repr(m)


@pytest.mark.parametrize("x", [
    np.array(["a", "bb", "", "日本語"], dtype=object),
    np.array(["a", "bb", "", "日本語"]),                 # <U
    np.array([b"a", b"bb", b"", b"x"]),                 # S
    np.array([b"raw", "text"], dtype=object),          # mixed bytes and str
    np.array("scalar", dtype=object),
    np.array([["long " * 40, "x"], ["y", "z"]], dtype=object),
    np.array([], dtype=object),
], ids=["object", "unicode", "bytes", "mixed", "0d", "2d-long", "empty"])
def test_round_trip(x):
    m = mserve.load(identity_model())
    got = m.predict(x)
    assert got.dtype == object and got.shape == x.shape
    want = np.vectorize(lambda v: v.decode() if isinstance(v, bytes) else v, otypes=[object])(x) if x.size else x
    np.testing.assert_array_equal(got, want)
    if x.dtype == object and all(isinstance(v, str) for v in x.ravel()):
        np.testing.assert_array_equal(got, ort_run(identity_model(), {"x": x})[0])


def test_non_contiguous_and_list_inputs():
    m = mserve.load(concat_model())
    grid = np.array([["a", "b"], ["c", "d"]], dtype=object)
    np.testing.assert_array_equal(m.predict(grid[:, 0]), ["a!", "c!"])  # a strided view
    np.testing.assert_array_equal(m.predict(["p", "q"]), ["p!", "q!"])    # a list of str
    np.testing.assert_array_equal(m.predict(np.array([np.str_("z")])), ["z!"])


def test_utf8_and_embedded_nul_survive():
    m = mserve.load(concat_model())
    x = np.array(["a\x00b", "ünïcödé", "🙂"], dtype=object)
    np.testing.assert_array_equal(m.predict(x), [v + "!" for v in x])
    # Bytes that are not UTF-8 come back with replacement characters, never an exception.
    out = m.predict(np.array([b"\xff\xfe"], dtype=object))
    assert out[0] == "\ufffd\ufffd!"


def test_bad_string_inputs_are_invalid_argument():
    m = mserve.load(concat_model())
    with pytest.raises(mserve.InvalidArgument, match="str or bytes"):
        m.predict(np.array(["a", None], dtype=object))
    with pytest.raises(mserve.InvalidArgument, match="strings"):
        m.predict(np.array([1.0, 2.0], np.float32))
    numeric = make_model([helper.make_node("Relu", ["x"], ["y"])], [("x", np.float32, [2])], [("y", np.float32, [2])])
    with pytest.raises(mserve.InvalidArgument, match="dtype"):
        mserve.load(numeric).predict(np.array(["1", "2"], dtype=object))


def test_outputs_that_are_inputs_or_constants_are_copies():
    nodes = [helper.make_node("Constant", [], ["c"], value_strings=["k1", "k2"])]
    model = make_model(nodes, [("x", TensorProto.STRING, [2])], [("x", TensorProto.STRING, [2]),
                                                                   ("c", TensorProto.STRING, [2])], opset=13)
    x = np.array(["in", "put"], dtype=object)
    out = mserve.load(model).predict(x)
    np.testing.assert_array_equal(out["x"], x)
    np.testing.assert_array_equal(out["c"], ["k1", "k2"])
    out["c"][0] = "changed"  # the caller owns its arrays
    np.testing.assert_array_equal(mserve.load(model).predict(x)["c"], ["k1", "k2"])


def test_string_intermediates_chain_through_shape_ops():
    """Reshape -> Transpose -> Gather -> Concat -> Slice -> Squeeze on strings, then Equal."""
    nodes = [
        helper.make_node("Reshape", ["x", "shape"], ["r"]),
        helper.make_node("Transpose", ["r"], ["t"], perm=[1, 0]),
        helper.make_node("Gather", ["t", "idx"], ["g"], axis=0),
        helper.make_node("Concat", ["g", "t"], ["c"], axis=0),
        helper.make_node("Slice", ["c", "st", "en"], ["s"]),
        helper.make_node("Squeeze", ["s", "ax"], ["q"]),
        helper.make_node("Equal", ["q", "probe"], ["y"]),
    ]
    init = {"shape": np.array([2, 3], np.int64), "idx": np.array([2], np.int64), "st": np.array([0, 1], np.int64),
            "en": np.array([1, 2], np.int64), "ax": np.array([1], np.int64),
            "probe": np.array(["f"], dtype=object)}
    model = make_model(nodes, [("x", TensorProto.STRING, [6])], [("y", TensorProto.BOOL, None),
                                                                   ("q", TensorProto.STRING, None)], init, opset=19)
    x = np.array(list("abcdef"), dtype=object)
    got = mserve.load(model).predict(x)
    # onnx.reference, not onnxruntime: onnxruntime 1.31's Gather drops strings past a block's first.
    from onnx.reference import ReferenceEvaluator
    want = ReferenceEvaluator(model).run(None, {"x": x})
    np.testing.assert_array_equal(got["q"], want[1])
    np.testing.assert_array_equal(got["y"], want[0])
    np.testing.assert_array_equal(got["q"], ["f"])


def test_if_and_loop_pass_strings_through():
    then_g = helper.make_graph([helper.make_node("StringConcat", ["x", "a"], ["o"])], "then", [],
                               [helper.make_tensor_value_info("o", TensorProto.STRING, None)],
                               [onnx.numpy_helper.from_array(np.array(["+then"], dtype=object), "a")])
    else_g = helper.make_graph([helper.make_node("Identity", ["x"], ["o"])], "else", [],
                               [helper.make_tensor_value_info("o", TensorProto.STRING, None)])
    nodes = [helper.make_node("If", ["cond"], ["y"], then_branch=then_g, else_branch=else_g)]
    model = make_model(nodes, [("cond", np.bool_, []), ("x", TensorProto.STRING, [2])],
                       [("y", TensorProto.STRING, None)], opset=20)
    m = mserve.load(model)
    x = np.array(["p", "q"], dtype=object)
    for c in [True, False]:
        np.testing.assert_array_equal(m.predict({"cond": np.array(c), "x": x}),
                                      ort_run(model, {"cond": np.array(c), "x": x})[0])
    # Loop: a carried string grows each iteration; a scan output stacks the strings.
    body = helper.make_graph(
        [helper.make_node("Identity", ["c_in"], ["c_out"]),
         helper.make_node("StringConcat", ["s_in", "dot"], ["s_out"]),
         helper.make_node("Identity", ["s_out"], ["scan"])],
        "body",
        [helper.make_tensor_value_info("i", TensorProto.INT64, []),
         helper.make_tensor_value_info("c_in", TensorProto.BOOL, []),
         helper.make_tensor_value_info("s_in", TensorProto.STRING, [2])],
        [helper.make_tensor_value_info("c_out", TensorProto.BOOL, []),
         helper.make_tensor_value_info("s_out", TensorProto.STRING, [2]),
         helper.make_tensor_value_info("scan", TensorProto.STRING, [2])],
        [onnx.numpy_helper.from_array(np.array(".", dtype=object), "dot")])
    nodes = [helper.make_node("Loop", ["n", "", "x"], ["final", "all"], body=body)]
    model = make_model(nodes, [("n", np.int64, []), ("x", TensorProto.STRING, [2])],
                       [("final", TensorProto.STRING, None), ("all", TensorProto.STRING, None)], opset=20)
    feeds = {"n": np.array(3, np.int64), "x": x}
    got, want = mserve.load(model).predict(feeds), ort_run(model, feeds)
    np.testing.assert_array_equal(got["final"], want[0])
    np.testing.assert_array_equal(got["all"], want[1])


@pytest.mark.parametrize("op,extra", [("Relu", []), ("Add", ["x"]), ("Neg", []), ("ReduceSum", []),
                                      ("Softmax", []), ("Pad", ["pads"])])
def test_safety_net_refuses_string_inputs_at_load(op, extra):
    init = {"pads": np.array([1, 1], np.int64)} if extra == ["pads"] else {}
    model = make_model([helper.make_node(op, ["x"] + extra, ["y"])], [("x", TensorProto.STRING, [2])],
                       [("y", TensorProto.STRING, None)], init, opset=17)
    with pytest.raises(mserve.UnsupportedOperator, match="string tensors are not supported") as e:
        mserve.load(model)
    assert op in str(e.value)


def test_safety_net_for_inferred_string_intermediates():
    """The string reaches Relu only through an intermediate: refused by the trial plan at load,
    or by the first plan when shapes are not declared."""
    nodes = [helper.make_node("Cast", ["x"], ["s"], to=TensorProto.STRING),
             helper.make_node("Identity", ["s"], ["t"]),
             helper.make_node("Relu", ["t"], ["y"])]
    for shape in ([3], None):
        model = make_model(nodes, [("x", np.float32, shape)], [("y", np.float32, None)], opset=17)
        model.graph.output[0].type.tensor_type.elem_type = TensorProto.FLOAT
        try:
            m = mserve.load(model)
        except mserve.UnsupportedOperator as e:
            assert "Relu" in str(e) and shape is not None
            continue
        assert shape is None
        with pytest.raises(mserve.UnsupportedOperator, match="string tensors are not supported"):
            m.predict(np.ones(3, np.float32))


def test_string_initializer_into_numeric_op_is_refused():
    model = make_model([helper.make_node("Add", ["x", "w"], ["y"])], [("x", np.float32, [2])],
                       [("y", np.float32, [2])], {"w": np.array(["1", "2"], dtype=object)})
    with pytest.raises(mserve.UnsupportedOperator, match="string"):
        mserve.load(model)
    with pytest.raises(mserve.UnsupportedOperator, match="string"):
        mserve.load(model, optimize=False)


def test_concurrent_predicts_on_strings():
    m = mserve.load(concat_model())
    errors = []

    def work(k):
        try:
            for i in range(200):
                x = np.array([f"t{k}-{i}-{j}" for j in range(i % 7)], dtype=object)
                got = m.predict(x)
                assert list(got) == [v + "!" for v in x]
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[0]
