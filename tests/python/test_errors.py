"""Every bad input gets a clear mserve error (never a crash)."""
import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

import mserve
from op_harness import make_model


@pytest.fixture(scope="module")
def relu_model():
    return make_model([helper.make_node("Relu", ["x"], ["y"])], [("x", np.float32, ["batch", 4])],
                      [("y", np.float32, ["batch", 4])])


def test_error_hierarchy():
    for cls in (mserve.InvalidArgument, mserve.ModelLoadError, mserve.UnsupportedOperator):
        assert issubclass(cls, mserve.Error)
    assert issubclass(mserve.InvalidArgument, ValueError)


@pytest.mark.parametrize("x,fragment", [
    (np.zeros((2, 4), np.float64), "expected dtype float32, got float64"),
    (np.zeros((2, 4, 1), np.float32), "expected rank 2"),
    (np.zeros((2, 5), np.float32), "dimension 1 must be 4, got 5"),
    (np.zeros(4, np.int32), "expected dtype float32"),
    ({"x": np.zeros((1, 4), np.float32), "extra": np.zeros(1)}, "unknown input(s) ['extra']"),
    ({}, "missing input(s) ['x']"),
    ([np.zeros((1, 4), np.float32)] * 2, "takes 1 input"),
    ("not numbers", "cannot convert"),
])
def test_bad_inputs_name_the_input(relu_model, x, fragment):
    m = mserve.load(relu_model)
    with pytest.raises(mserve.InvalidArgument) as e:
        m.predict(x)
    assert fragment in str(e.value)


def test_unknown_output_name(relu_model):
    with pytest.raises(mserve.InvalidArgument, match="unknown output 'nope'"):
        mserve.load(relu_model).predict(np.zeros((1, 4), np.float32), outputs="nope")


def test_not_onnx(tmp_path):
    p = tmp_path / "junk.onnx"
    p.write_bytes(b"GIF89a this is an image, not a model \x00\xff\xfe" * 10)
    with pytest.raises(mserve.ModelLoadError, match="not an ONNX model"):
        mserve.load(str(p))
    with pytest.raises(mserve.ModelLoadError):
        mserve.load(b"")


def test_missing_file(tmp_path):
    with pytest.raises(mserve.ModelLoadError, match="cannot open"):
        mserve.load(str(tmp_path / "nope.onnx"))


def test_truncated_file(tmp_path):
    from mserve import examples
    data = examples.mlp().SerializeToString()
    for cut in (len(data) // 4, len(data) // 2, len(data) - 10):
        with pytest.raises(mserve.ModelLoadError):
            mserve.load(data[:cut])


def test_ir_version_too_new(relu_model):
    m = onnx.ModelProto()
    m.CopyFrom(relu_model)
    m.ir_version = 99
    with pytest.raises(mserve.ModelLoadError, match="IR version 99 is newer"):
        mserve.load(m)


def test_missing_initializer_data():
    w = helper.make_tensor("w", 1, [2, 4], [1.0] * 8)
    del w.float_data[3:]
    g = helper.make_graph([helper.make_node("Add", ["x", "w"], ["y"])], "g",
                          [helper.make_tensor_value_info("x", 1, [2, 4])], [helper.make_tensor_value_info("y", 1,
                                                                                                          None)], [w])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    with pytest.raises(mserve.ModelLoadError, match="missing initializer data"):
        mserve.load(model)


def _external_model(location):
    w = numpy_helper.from_array(np.ones((2, 4), np.float32), "w")
    w.ClearField("raw_data")
    w.data_location = onnx.TensorProto.EXTERNAL
    for k, v in (("location", location), ("offset", "0"), ("length", "32")):
        e = w.external_data.add()
        e.key, e.value = k, v
    g = helper.make_graph([helper.make_node("Add", ["x", "w"], ["y"])], "g",
                          [helper.make_tensor_value_info("x", 1, [2, 4])], [helper.make_tensor_value_info("y", 1,
                                                                                                          None)], [w])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])


def test_external_data_loads_and_cannot_escape(tmp_path):
    d = tmp_path / "model"
    d.mkdir()
    (d / "weights.bin").write_bytes(np.arange(8, dtype=np.float32).tobytes())
    (tmp_path / "secret.bin").write_bytes(b"\0" * 32)
    good = d / "good.onnx"
    good.write_bytes(_external_model("weights.bin").SerializeToString())
    y = mserve.load(str(good)).predict(np.zeros((2, 4), np.float32))
    np.testing.assert_array_equal(y.ravel(), np.arange(8))
    for loc in ("../secret.bin", "/etc/passwd"):
        bad = d / "bad.onnx"
        bad.write_bytes(_external_model(loc).SerializeToString())
        with pytest.raises(mserve.ModelLoadError, match="leaves the model's directory|absolute"):
            mserve.load(str(bad))
    with pytest.raises(mserve.ModelLoadError, match="does not exist"):
        bad.write_bytes(_external_model("missing.bin").SerializeToString())
        mserve.load(str(bad))


def test_unsupported_operators_all_listed_at_load():
    nodes = [helper.make_node("Frobnicate", ["x"], ["a"], name="first_bad"),
             helper.make_node("Relu", ["a"], ["b"]),
             helper.make_node("Zorch", ["b"], ["y"], name="second_bad", domain="com.example")]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", 1, [2])],
                          [helper.make_tensor_value_info("y", 1, [2])])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.example", 1)])
    with pytest.raises(mserve.UnsupportedOperator) as e:
        mserve.load(model)
    msg = str(e.value)
    assert "2 unsupported node(s)" in msg
    assert "op Frobnicate, domain 'ai.onnx', opset 17, node 'first_bad'" in msg
    assert "op Zorch, domain 'com.example', opset 1, node 'second_bad'" in msg


def test_unsupported_dtype_reported_at_load():
    # Conv on int32 is not supported: detected at load, not at the first predict.
    g = helper.make_graph([helper.make_node("Conv", ["x", "w"], ["y"])], "g",
                          [helper.make_tensor_value_info("x", 6, [1, 1, 3, 3])],
                          [helper.make_tensor_value_info("y", 6, None)],
                          [helper.make_tensor("w", 6, [1, 1, 1, 1], [1])])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    with pytest.raises(mserve.UnsupportedOperator, match="int32"):
        mserve.load(model)


def test_opset_too_new(relu_model):
    m = onnx.ModelProto()
    m.CopyFrom(relu_model)
    m.opset_import[0].version = 99
    with pytest.raises(mserve.UnsupportedOperator, match="opset 99"):
        mserve.load(m)


def test_runtime_shape_errors_are_clear():
    # Reshape to a runtime shape whose element count doesn't match.
    model = make_model([helper.make_node("Reshape", ["x", "s"], ["y"])],
                       [("x", np.float32, [2, 3]), ("s", np.int64, [2])], [("y", np.float32, None)])
    m = mserve.load(model)
    with pytest.raises(mserve.InvalidArgument, match="Reshape"):
        m.predict({"x": np.zeros((2, 3), np.float32), "s": np.array([4, 4], np.int64)})
    # Gather index out of range.
    model = make_model([helper.make_node("Gather", ["x", "i"], ["y"])],
                       [("x", np.float32, [3]), ("i", np.int64, [1])], [("y", np.float32, None)])
    with pytest.raises(mserve.InvalidArgument, match="out of range"):
        mserve.load(model).predict({"x": np.zeros(3, np.float32), "i": np.array([7], np.int64)})


def test_bad_load_arguments(relu_model):
    with pytest.raises(mserve.InvalidArgument):
        mserve.load(12345)
    with pytest.raises(mserve.InvalidArgument, match="device"):
        mserve.load(relu_model, device="tpu")
    with pytest.raises(mserve.InvalidArgument, match="threads"):
        mserve.load(relu_model, threads=0)
