"""ai.onnx.ml models exported by skl2onnx, against scikit-learn's own predictions and onnxruntime."""
import warnings

import numpy as np
import pytest

import mserve
from op_harness import ort_run

sklearn = pytest.importorskip("sklearn")
skl2onnx = pytest.importorskip("skl2onnx")
from sklearn.impute import SimpleImputer  # noqa: E402
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import Binarizer, MinMaxScaler, Normalizer, StandardScaler  # noqa: E402

RNG = np.random.default_rng(0)
X = RNG.standard_normal((60, 5)).astype(np.float32)
Y_REG = X @ np.array([1.0, -2.0, 0.5, 0.0, 3.0], np.float32) + 0.3
Y_BIN = (X[:, 0] + X[:, 1] > 0).astype(np.int64)
Y_MULTI = np.digitize(X[:, 0], [-0.5, 0.5]).astype(np.int64) * 3 + 1  # labels 1, 4, 7


def convert(model, zipmap=True):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        opts = None if zipmap else {id(model): {"zipmap": False}}
        return skl2onnx.to_onnx(model, X[:1], options=opts, target_opset={"": 17, "ai.onnx.ml": 3})


@pytest.mark.parametrize("est", [LinearRegression(), Ridge(alpha=0.5)], ids=["linear", "ridge"])
def test_regressors(est):
    est.fit(X, Y_REG)
    onx = convert(est)
    got = mserve.load(onx).predict(X)
    np.testing.assert_allclose(got.ravel(), est.predict(X), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(got, ort_run(onx, {"X": X})[0], rtol=1e-5, atol=1e-5)


def test_preprocessing_pipeline():
    Xn = X.copy()
    Xn[::7, 2] = np.nan
    pipe = make_pipeline(SimpleImputer(), StandardScaler(), Normalizer(), MinMaxScaler(), Binarizer(threshold=0.4),
                         LinearRegression())
    pipe.fit(Xn, Y_REG)
    onx = convert(pipe)
    got = mserve.load(onx).predict(Xn)
    np.testing.assert_allclose(got.ravel(), pipe.predict(Xn), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(got, ort_run(onx, {"X": Xn})[0], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("y", [Y_BIN, Y_MULTI], ids=["binary", "multiclass"])
def test_logistic_regression_labels_and_zipmap(y):
    est = LogisticRegression(max_iter=500).fit(X, y)
    onx = convert(est, zipmap=True)
    m = mserve.load(onx)
    assert m.outputs[1].dtype == np.dtype(object) and m.outputs[1].labels == [int(c) for c in est.classes_]
    out = m.predict(X)
    np.testing.assert_array_equal(out["output_label"], est.predict(X))
    probs = est.predict_proba(X)
    assert isinstance(out["output_probability"], list) and len(out["output_probability"]) == len(X)
    for row, want in zip(out["output_probability"], probs):
        assert list(row) == [int(c) for c in est.classes_]
        np.testing.assert_allclose(list(row.values()), want, rtol=1e-4, atol=1e-5)
    ort_label, ort_probs = ort_run(onx, {"X": X})
    np.testing.assert_array_equal(out["output_label"], ort_label)
    for row, want in zip(out["output_probability"], ort_probs):
        assert row.keys() == want.keys()
        np.testing.assert_allclose(list(row.values()), list(want.values()), rtol=1e-5, atol=1e-6)


def test_logistic_regression_without_zipmap():
    est = LogisticRegression(max_iter=500).fit(X, Y_MULTI)
    onx = convert(est, zipmap=False)
    out = mserve.load(onx).predict(X)
    np.testing.assert_array_equal(out["label"], est.predict(X))
    np.testing.assert_allclose(out["probabilities"], est.predict_proba(X), rtol=1e-4, atol=1e-5)


# --- string class labels and string categories

Y_STR_BIN = np.where(Y_BIN, "yes", "no")
Y_STR_MULTI = np.array(["low", "mid", "high"])[np.digitize(X[:, 0], [-0.5, 0.5])]


def check_classifier(onx, est, x, zipmap, label="output_label", proba="output_probability"):
    """mserve against scikit-learn's predict/predict_proba and against onnxruntime."""
    m = mserve.load(onx)
    out = m.predict(x)
    if not zipmap:
        label, proba = "label", "probabilities"
    assert out[label].dtype == np.dtype(object) and isinstance(out[label][0], str)
    np.testing.assert_array_equal(out[label], est.predict(x))
    ort_label, ort_probs = ort_run(onx, {m.inputs[0].name: x})
    np.testing.assert_array_equal(out[label], ort_label)
    if zipmap:
        classes = [str(c) for c in est.classes_]
        assert m.outputs[1].labels == classes
        for row, want, ort_row in zip(out[proba], est.predict_proba(x), ort_probs):
            assert list(row) == classes and row.keys() == ort_row.keys()
            np.testing.assert_allclose(list(row.values()), want, rtol=1e-4, atol=1e-5)
    else:
        np.testing.assert_allclose(out[proba], est.predict_proba(x), rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(out[proba], ort_probs, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("zipmap", [True, False], ids=["zipmap", "no-zipmap"])
@pytest.mark.parametrize("y", [Y_STR_BIN, Y_STR_MULTI], ids=["binary", "multiclass"])
def test_logistic_regression_string_labels(y, zipmap):
    est = LogisticRegression(max_iter=500).fit(X, y)
    check_classifier(convert(est, zipmap=zipmap), est, X, zipmap)


def _string_features(n, seed):
    rng = np.random.default_rng(seed)
    colors = rng.choice(["red", "green", "blue", "violet"], n)
    sizes = rng.choice(["S", "M", "L"], n)
    return np.stack([colors, sizes], axis=1).astype(object)


def _convert_strings(model, zipmap):
    from skl2onnx.common.data_types import StringTensorType
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        opts = None if zipmap else {id(model): {"zipmap": False}}
        return skl2onnx.convert_sklearn(model, initial_types=[("X", StringTensorType([None, 2]))], options=opts,
                                        target_opset={"": 17, "ai.onnx.ml": 3})


@pytest.mark.parametrize("zipmap", [True, False], ids=["zipmap", "no-zipmap"])
def test_one_hot_strings_then_logistic_regression(zipmap):
    """OneHotEncoder(handle_unknown='ignore') on string columns, then a classifier with string labels;
    prediction data holds categories never seen in training."""
    from sklearn.preprocessing import OneHotEncoder
    xs = _string_features(80, 1)
    xs[::5, 0] = "teal"  # unseen at fit time below
    train = _string_features(80, 2)
    y = np.where(train[:, 0] == "red", "warm", np.where(train[:, 1] == "L", "big", "other"))
    pipe = make_pipeline(OneHotEncoder(handle_unknown="ignore"), LogisticRegression(max_iter=500)).fit(train, y)
    check_classifier(_convert_strings(pipe, zipmap), pipe, xs, zipmap)


@pytest.mark.parametrize("zipmap", [True, False], ids=["zipmap", "no-zipmap"])
@pytest.mark.parametrize("y", [Y_STR_BIN, Y_STR_MULTI], ids=["binary", "multiclass"])
@pytest.mark.parametrize("kind", ["forest", "boosting"])
def test_tree_classifier_string_labels(kind, y, zipmap):
    from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier
    est = (RandomForestClassifier(6, max_depth=4, random_state=0) if kind == "forest"
           else GradientBoostingClassifier(n_estimators=8, random_state=0)).fit(X, y)
    check_classifier(convert(est, zipmap=zipmap), est, X, zipmap)


def test_label_encoder_maps_strings_to_ints():
    """sklearn's LabelEncoder exports as ai.onnx.ml LabelEncoder (string keys -> int64 values)."""
    from skl2onnx.common.data_types import StringTensorType
    from sklearn.preprocessing import LabelEncoder
    le = LabelEncoder().fit(["paris", "tokyo", "amsterdam", "tokyo"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        onx = skl2onnx.convert_sklearn(le, initial_types=[("X", StringTensorType([None]))],
                                       target_opset={"": 17, "ai.onnx.ml": 2})
    x = np.array(["tokyo", "amsterdam", "paris", "paris"], dtype=object)
    got = mserve.load(onx).predict(x)
    np.testing.assert_array_equal(got, le.transform(x))
    np.testing.assert_array_equal(got, ort_run(onx, {"X": x})[0])


def test_ordinal_encoder_on_string_columns():
    from sklearn.preprocessing import OrdinalEncoder
    train = _string_features(50, 3)
    enc = OrdinalEncoder().fit(train)
    onx = _convert_strings(enc, True)
    x = _string_features(20, 4)
    got = mserve.load(onx).predict(x)
    np.testing.assert_allclose(got, enc.transform(x), rtol=0, atol=0)
    np.testing.assert_allclose(got, ort_run(onx, {"X": x})[0], rtol=0, atol=0)


from sklearn.ensemble import (  # noqa: E402
    GradientBoostingClassifier,
    GradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.tree import DecisionTreeRegressor  # noqa: E402


@pytest.mark.parametrize("est",
                         [DecisionTreeRegressor(max_depth=5), RandomForestRegressor(8, max_depth=4, random_state=0),
                                 GradientBoostingRegressor(n_estimators=10, random_state=0)],
                         ids=["tree", "forest", "boosting"])
def test_tree_regressors(est):
    est.fit(X, Y_REG)
    onx = convert(est)
    got = mserve.load(onx).predict(X)
    np.testing.assert_allclose(got.ravel(), est.predict(X), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(got, ort_run(onx, {"X": X})[0], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("est", [RandomForestClassifier(6, max_depth=4, random_state=0),
                                 GradientBoostingClassifier(n_estimators=8, random_state=0)], ids=["forest",
                                                                                                   "boosting"])
@pytest.mark.parametrize("y", [Y_BIN, Y_MULTI], ids=["binary", "multiclass"])
def test_tree_classifiers(est, y):
    est.fit(X, y)
    onx = convert(est, zipmap=False)
    out = mserve.load(onx).predict(X)
    np.testing.assert_array_equal(out["label"], est.predict(X))
    np.testing.assert_allclose(out["probabilities"], est.predict_proba(X), rtol=1e-4, atol=1e-5)
    ort_label, ort_probs = ort_run(onx, {"X": X})
    np.testing.assert_array_equal(out["label"], ort_label)
    np.testing.assert_allclose(out["probabilities"], ort_probs, rtol=1e-5, atol=1e-6)


def test_tree_missing_values_follow_the_model():
    Xn = X.copy()
    Xn[::3, 0] = np.nan
    est = GradientBoostingRegressor(n_estimators=5, random_state=0).fit(X, Y_REG)
    onx = convert(est)
    np.testing.assert_allclose(mserve.load(onx).predict(Xn), ort_run(onx, {"X": Xn})[0], rtol=1e-5, atol=1e-5)
