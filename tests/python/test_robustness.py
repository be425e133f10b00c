"""Corrupted models and degenerate inputs end in an mserve.Error or a result, never a crash.
Runs in a child process, so a crash fails the test instead of killing pytest."""
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import mserve
from mserve import examples

FUZZ = textwrap.dedent("""
    import numpy as np, mserve
    from mserve import examples
    rng = np.random.default_rng(SEED)
    models = [bytearray(examples.cnn_nhwc(size=8).SerializeToString()),
              bytearray(examples.mlp(features=8, hidden=(4,), classes=3).SerializeToString())]
    loaded = failed = 0
    for it in range(COUNT):
        data = bytearray(models[it % 2])
        for _ in range(rng.integers(1, 6)):
            data[rng.integers(0, len(data))] = rng.integers(0, 256)
        if rng.random() < 0.2:
            data = data[: rng.integers(0, len(data))]
        try:
            m = mserve.load(bytes(data), threads=2)
            shapes = [[d if isinstance(d, int) else 2 for d in (s.shape or [1])] for s in m.inputs]
            if all(np.prod(s) < 1e6 for s in shapes):
                m.predict({s.name: np.ones(sh, s.dtype) for s, sh in zip(m.inputs, shapes)})
            loaded += 1
        except mserve.Error:
            failed += 1
    print(loaded, failed)
""")


def test_corrupted_models_never_crash():
    script = FUZZ.replace("SEED", "7").replace("COUNT", "300")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    loaded, failed = map(int, out.stdout.split())
    assert loaded + failed == 300 and failed > 0


def test_empty_batch():
    for name, make in examples.EXAMPLES.items():
        y = mserve.load(make()).predict(examples.example_input(name, 1)[:0])
        assert y.shape[0] == 0


def test_non_utf8_names_are_replaced_not_raised():
    model = examples.mlp(features=8, hidden=(4,), classes=3)
    for node in model.graph.node:
        node.input[:] = ["inp\u00e9" if n == "x" else n for n in node.input]
    model.graph.input[0].name = "inp\u00e9"
    data = model.SerializeToString().replace("inp\u00e9".encode(), b"inp\xff\xfe")
    m = mserve.load(data)
    assert m.inputs[0].name == "inp\ufffd\ufffd"
    y = m.predict([np.ones((1, 8), np.float32)])
    assert y.shape == (1, 3)
    with pytest.raises(mserve.InvalidArgument, match="inp"):
        m.predict([np.ones((1, 9), np.float32)])


@pytest.mark.parametrize("field,values", [("float_data", [1.0]), ("int64_data", [1]), ("int32_data", [1])])
def test_initializer_dims_its_data_cannot_fill_are_refused_before_allocating(field, values):
    """Found by fuzz_onnx_loader: dims of 2^33 elements with one value made the loader allocate
    32 GB before counting."""
    from onnx import TensorProto, helper
    dtype = {"float_data": TensorProto.FLOAT, "int64_data": TensorProto.INT64, "int32_data": TensorProto.INT32}[field]
    w = TensorProto(name="w", data_type=dtype, dims=[1 << 17, 1 << 16])
    getattr(w, field).extend(values)
    g = helper.make_graph([helper.make_node("Identity", ["w"], ["y"])], "g", [],
                          [helper.make_tensor_value_info("y", dtype, None)], [w])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    with pytest.raises(mserve.ModelLoadError, match="holds 1 values"):
        mserve.load(m.SerializeToString())
