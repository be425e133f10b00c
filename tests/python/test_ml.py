"""ai.onnx.ml models exported by skl2onnx, against scikit-learn's own predictions and onnxruntime."""
import warnings

import numpy as np
import pytest

import mserve
from conftest import ort_run

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


def test_string_labels_are_refused_at_load():
    est = LogisticRegression(max_iter=500).fit(X, np.where(Y_BIN, "yes", "no"))
    with pytest.raises(mserve.UnsupportedOperator, match="string"):
        mserve.load(convert(est))


from sklearn.ensemble import (  # noqa: E402
    GradientBoostingClassifier, GradientBoostingRegressor, RandomForestClassifier, RandomForestRegressor)
from sklearn.tree import DecisionTreeRegressor  # noqa: E402


@pytest.mark.parametrize("est", [DecisionTreeRegressor(max_depth=5), RandomForestRegressor(8, max_depth=4, random_state=0),
                                 GradientBoostingRegressor(n_estimators=10, random_state=0)],
                         ids=["tree", "forest", "boosting"])
def test_tree_regressors(est):
    est.fit(X, Y_REG)
    onx = convert(est)
    got = mserve.load(onx).predict(X)
    np.testing.assert_allclose(got.ravel(), est.predict(X), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(got, ort_run(onx, {"X": X})[0], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("est", [RandomForestClassifier(6, max_depth=4, random_state=0),
                                 GradientBoostingClassifier(n_estimators=8, random_state=0)], ids=["forest", "boosting"])
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
