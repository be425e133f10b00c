"""The model zoo (tests/models): real PyTorch and scikit-learn exports, against the outputs their own
framework computed when the zoo was generated (tests/models/generate.py). Needs neither torch nor
scikit-learn: every expected output is in the model's .npz file."""
from pathlib import Path

import numpy as np
import pytest

import mserve

ZOO = Path(__file__).resolve().parent.parent / "models"
NAMES = sorted(p.stem for p in ZOO.glob("*.onnx") if p.with_suffix(".npz").exists())
RTOL_L2 = 1e-4   # float32 outputs: relative L2 error ||got - want|| / ||want||


def load_sets(name):
    """[(inputs, outputs), ...], {ZipMap output name: labels}, framework string."""
    data = np.load(ZOO / f"{name}.npz")
    sets, zipmap = {}, {}
    for key in data.files:
        if key.startswith("meta:"):
            continue
        if key.startswith("zipmap:"):
            zipmap[key.split(":", 1)[1]] = data[key].tolist()
            continue
        i, kind, tensor = key.split(":", 2)
        sets.setdefault(int(i), ({}, {}))[0 if kind == "in" else 1][tensor] = data[key]
    return [sets[i] for i in sorted(sets)], zipmap, str(data["meta:framework"])


def rel_l2(got, want):
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    norm = np.linalg.norm(want)
    return float(np.linalg.norm(got - want) / (norm if norm > 0 else 1.0))


def as_matrix(rows, labels):
    """A ZipMap result (list of {label: probability}) as a matrix, checking the labels of every row."""
    assert isinstance(rows, list)
    for row in rows:
        assert isinstance(row, dict) and list(row) == labels
    return np.array([list(row.values()) for row in rows], np.float32).reshape(len(rows), len(labels))


def check_output(name, out, got, want, zipmap):
    if out in zipmap:
        got = as_matrix(got, zipmap[out])
    got = np.asarray(got)
    assert got.shape == want.shape, f"{name}/{out}: shape {got.shape}, want {want.shape}"
    if want.dtype.kind in "iub":                       # labels, ids: exactly equal
        assert got.dtype == want.dtype, f"{name}/{out}: dtype {got.dtype}, want {want.dtype}"
        np.testing.assert_array_equal(got, want, err_msg=f"{name}/{out}")
        return 0.0
    assert got.dtype == want.dtype, f"{name}/{out}: dtype {got.dtype}, want {want.dtype}"
    assert np.all(np.isfinite(got)), f"{name}/{out}: non-finite values"
    return rel_l2(got, want)


def ort_session(name):
    ort = pytest.importorskip("onnxruntime")
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    return ort.InferenceSession(str(ZOO / f"{name}.onnx"), so, providers=["CPUExecutionProvider"])


def test_zoo_is_complete_and_small():
    expected = {"linear_regression", "mlp", "cnn_nhwc", "fasttext", "textcnn", "bilstm", "bert_encoder",
                "gpt_decoder", "gru_recommender", "dlrm", "resnet18", "mobilenet_v2", "mobilenet_v3_small",
                "sk_linear_regression", "sk_logistic", "sk_logistic_zipmap", "sk_random_forest_zipmap",
                "sk_random_forest_regressor", "sk_gradient_boosting", "sk_gradient_boosting_binary_zipmap",
                "sk_gradient_boosting_regressor", "sk_scaler_pipeline", "sk_scaler_logistic_zipmap",
                "sk_scaler_regression"}
    assert expected <= set(NAMES), sorted(expected - set(NAMES))
    assert sum(p.stat().st_size for p in ZOO.iterdir() if p.is_file()) < 20 * 2**20


@pytest.mark.parametrize("optimize", [True, False], ids=["optimized", "as-exported"])
@pytest.mark.parametrize("name", NAMES)
def test_zoo_model_matches_its_framework(name, optimize):
    model = mserve.load(str(ZOO / f"{name}.onnx"), optimize=optimize)    # one Model for every input set
    sets, zipmap, framework = load_sets(name)
    assert len(sets) >= 2
    sess = ort_session(name)
    report = []
    for i, (inputs, want) in enumerate(sets):
        got = model.predict(inputs, outputs=list(want))
        ort_out = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, inputs)))
        for out, w in want.items():
            err = check_output(name, out, got[out], w, zipmap)
            ort_err = check_output(name + " (onnxruntime)", out, ort_out[out], w, zipmap)
            report.append(f"set {i} {out}: mserve {err:.2e}, onnxruntime {ort_err:.2e}")
            assert err < RTOL_L2, f"{name}/{out} set {i}: relative L2 error {err:.3e} vs {framework}"
            # The sanity check that the committed file and outputs agree: onnxruntime too.
            assert ort_err < RTOL_L2, f"{name}/{out} set {i}: onnxruntime's relative L2 error {ort_err:.3e}"
    print(f"\n{name} ({framework}, optimize={optimize}): " + "; ".join(report))


def _dims(sets):
    return [{k: v.shape for k, v in inputs.items()} for inputs, _ in sets]


@pytest.mark.parametrize("name", ["bert_encoder", "gpt_decoder", "bilstm", "fasttext", "textcnn", "gru_recommender",
                                  "dlrm", "resnet18", "mobilenet_v3_small", "mlp"])
def test_zoo_dynamic_axes(name):
    """Several batch sizes (and sequence lengths) through the same loaded Model, interleaved, each
    result equal to the one computed first."""
    sets, zipmap, _ = load_sets(name)
    shapes = [next(iter(inputs.values())).shape for inputs, _ in sets]
    assert len({s[0] for s in shapes}) >= 2, f"{name}: input sets need two batch sizes, have {shapes}"
    seq_models = {"bert_encoder", "gpt_decoder", "bilstm", "fasttext", "textcnn", "gru_recommender"}
    if name in seq_models:
        lengths = {inputs[k].shape[1] for inputs, _ in sets for k in inputs if inputs[k].ndim == 2}
        assert len(lengths) >= 2, f"{name}: input sets need two sequence lengths, have {_dims(sets)}"
    model = mserve.load(str(ZOO / f"{name}.onnx"))
    dims = [d for d in model.inputs[0].shape]
    assert isinstance(dims[0], str), f"{name}: batch axis is not symbolic: {model.inputs[0]}"
    first = [model.predict(inputs) for inputs, _ in sets]
    for k in [len(sets) - 1, 0, len(sets) - 1] + list(range(len(sets))):
        again = model.predict(sets[k][0])
        a, b = (again, first[k]) if isinstance(again, dict) else ({"y": again}, {"y": first[k]})
        for out in a:
            np.testing.assert_array_equal(a[out], b[out])
            want = sets[k][1][out] if isinstance(again, dict) else next(iter(sets[k][1].values()))
            assert np.asarray(a[out]).shape == want.shape
