"""End-to-end models against onnxruntime: linear regression, MLP, Keras-style NHWC CNN."""
import numpy as np
import pytest

import mserve
from mserve import examples
from op_harness import ort_run


@pytest.mark.parametrize("name", sorted(examples.EXAMPLES))
@pytest.mark.parametrize("batch", [1, 7, 32])
def test_example_model_matches_onnxruntime(name, batch, tmp_model):
    model = examples.EXAMPLES[name]()
    path = tmp_model(model, name + ".onnx")
    m = mserve.load(path)
    x = examples.example_input(name, batch)
    got = m.predict(x)
    (want,) = ort_run(model, {m.inputs[0].name: x})
    assert got.shape == want.shape and got.dtype == want.dtype
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_many_batch_sizes_reuse_bounded_plans():
    m = mserve.load(examples.mlp())
    for batch in range(1, 60):
        y = m.predict(examples.example_input("mlp", batch))
        assert y.shape == (batch, 10)
        np.testing.assert_allclose(y.sum(axis=1), 1.0, rtol=1e-5)
    assert m._s.cached_plans <= 32


def test_cnn_specs_and_repr():
    m = mserve.load(examples.cnn_nhwc())
    assert m.inputs[0].name == "image"
    assert m.inputs[0].dtype == np.float32
    assert m.inputs[0].shape == ("N", 32, 32, 3)
    assert m.outputs[0].shape == ("N", 10)
    assert "image" in repr(m) and "float32" in repr(m)
    html = m._repr_html_()
    assert "<table>" in html and "probs" in html
