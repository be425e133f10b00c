"""Classic-ML pipelines as data scientists ship them, exported by today's skl2onnx and onnxmltools
(LightGBM, XGBoost), fitted here on small seeded data and checked against the framework's own
predictions and against onnxruntime. test_ml.py covers the basics (linear models, scalers,
imputer, binarizer, normalizer, random forests, gradient boosting, string labels and categories)
and test_ml_text.py the TF-IDF pipelines; this file covers what they leave out.

Tolerances. The exported graphs compute in float32, the frameworks in float64 (LightGBM and
XGBoost sum their trees in double too). Each score carries a relative rounding error of a few
float32 epsilons (1.2e-7) per operation, over at most a few hundred terms, on values of order 1:
probabilities and standardized scores stay within TOL (1e-5 absolute, 1e-5 relative) of the
framework's, a hundredfold margin that a wrong weight, class order or missing-value branch would
still break. Where a pipeline adds a longer float32 chain the test says why it loosens. onnxruntime
runs the same float32 graph, so mserve matches it to ORT_TOL. Labels must be equal.

Trees: the inputs are float32 and the exporters round each float64 threshold to the nearest
float32, so a float32 feature lies on the same side of the rounded threshold as of the exact one
(a value strictly between them would be a float32 nearer to the threshold than its rounding):
the splits agree with the framework's on every row, and the tree tests compare all rows.
"""
import warnings

import numpy as np
import pytest

import mserve
from op_harness import ort_run

pytest.importorskip("sklearn")
skl2onnx = pytest.importorskip("skl2onnx")
from skl2onnx.common.data_types import FloatTensorType, Int64TensorType, StringTensorType  # noqa: E402
from sklearn.calibration import CalibratedClassifierCV  # noqa: E402
from sklearn.cluster import KMeans  # noqa: E402
from sklearn.compose import ColumnTransformer  # noqa: E402
from sklearn.decomposition import PCA, TruncatedSVD  # noqa: E402
from sklearn.ensemble import (  # noqa: E402
    ExtraTreesClassifier,
    ExtraTreesRegressor,
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    IsolationForest,
)
from sklearn.impute import SimpleImputer  # noqa: E402
from sklearn.linear_model import LogisticRegression, Ridge  # noqa: E402
from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor  # noqa: E402
from sklearn.neural_network import MLPClassifier  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import MinMaxScaler, OneHotEncoder, PolynomialFeatures, StandardScaler  # noqa: E402
from sklearn.svm import SVC, SVR, LinearSVC, OneClassSVM  # noqa: E402

TOL = {"rtol": 1e-5, "atol": 1e-5}
ORT_TOL = {"rtol": 1e-5, "atol": 1e-6}
OPSETS = {"": 17, "ai.onnx.ml": 3}

RNG = np.random.default_rng(7)
X = RNG.standard_normal((120, 5)).astype(np.float32)
X_NAN = X.copy()
X_NAN[::4, 1] = np.nan
X_NAN[1::5, 3] = np.nan
Y_REG = X @ np.float32([1.0, -2.0, 0.5, 0.0, 3.0]) + 0.3
Y_BIN = (X[:, 0] + X[:, 1] > 0).astype(np.int64)
Y_MULTI = np.digitize(X[:, 0] - X[:, 2], [-0.6, 0.6]).astype(np.int64) * 3 + 1  # labels 1, 4, 7
Y_STR = np.array(["low", "mid", "high"])[np.digitize(X[:, 0] - X[:, 2], [-0.6, 0.6])]
LABELS = {"binary": Y_BIN, "multiclass": Y_MULTI, "strings": Y_STR}


def to_onnx(model, zipmap=True, x=X):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        opts = None if zipmap else {id(model): {"zipmap": False}}
        return skl2onnx.to_onnx(model, x[:1], options=opts, target_opset=OPSETS)


def proba_matrix(p, classes):
    """ZipMap output (a list of {label: probability}) as a matrix in `classes` order."""
    if isinstance(p, list):
        assert all(list(row) == list(classes) for row in p)
        return np.array([[row[c] for c in classes] for row in p], np.float64)
    return np.asarray(p, np.float64)


def check_classifier(onx, est, feeds, x_fw, zipmap=True, tol=TOL, proba=True):
    """mserve's labels and probabilities against the framework's predict / predict_proba and against
    onnxruntime; returns mserve's outputs."""
    m = mserve.load(onx)
    out = m.predict(feeds)
    names = [o.name for o in m.outputs]
    label, probs = out[names[0]], out[names[1]]
    classes = [c.item() if hasattr(c, "item") else c for c in est.classes_]
    if zipmap:
        assert m.outputs[1].labels == classes
    np.testing.assert_array_equal(np.asarray(label).ravel(), est.predict(x_fw))
    ort_label, ort_probs = ort_run(onx, feeds)
    np.testing.assert_array_equal(label, ort_label)
    np.testing.assert_allclose(proba_matrix(probs, classes), proba_matrix(ort_probs, classes), **ORT_TOL)
    if proba:
        np.testing.assert_allclose(proba_matrix(probs, classes), est.predict_proba(x_fw), **tol)
    return out


def check_regressor(onx, want, feeds, tol=TOL):
    got = mserve.load(onx).predict(feeds)
    got = got if not isinstance(got, dict) else next(iter(got.values()))
    np.testing.assert_allclose(got.ravel(), want, **tol)
    np.testing.assert_allclose(got, ort_run(onx, feeds)[0], **ORT_TOL)


# --- a mixed-type table: one ONNX input per column, as skl2onnx exports a DataFrame pipeline

def table(n, seed, unseen=False):
    rng = np.random.default_rng(seed)
    color = rng.choice(["red", "green", "blue"], n).astype(object)
    rooms = rng.integers(1, 5, n).astype(np.int64)
    if unseen:
        color[::5] = "teal"  # categories never seen at fit time: handle_unknown="ignore" zeroes them
        rooms[1::6] = 9
    area = rng.normal(50, 10, n).astype(np.float32)
    age = rng.normal(20, 5, n).astype(np.float32)
    age[::6] = np.nan
    feeds = {"color": color[:, None], "rooms": rooms[:, None], "area": area[:, None], "age": age[:, None]}
    frame = np.empty((n, 4), object)
    for j, v in enumerate((color, rooms, area, age)):
        frame[:, j] = v
    return feeds, frame


TABLE_TYPES = [("color", StringTensorType([None, 1])), ("rooms", Int64TensorType([None, 1])),
               ("area", FloatTensorType([None, 1])), ("age", FloatTensorType([None, 1]))]


def table_pipeline(est):
    pre = ColumnTransformer([("cat", OneHotEncoder(handle_unknown="ignore"), [0, 1]),
                             ("num", make_pipeline(SimpleImputer(), StandardScaler()), [2]),
                             ("mm", make_pipeline(SimpleImputer(strategy="median"), MinMaxScaler()), [3])])
    return make_pipeline(pre, est)


def convert_table(pipe, zipmap=True):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        opts = None if zipmap else {id(pipe.steps[-1][1]): {"zipmap": False}}
        return skl2onnx.convert_sklearn(pipe, initial_types=TABLE_TYPES, options=opts, target_opset=OPSETS)


def table_target(frame):
    area, rooms = frame[:, 2].astype(np.float64), frame[:, 1].astype(np.float64)
    return area - 50 + 5 * (frame[:, 0] == "red") + 2 * rooms


@pytest.mark.parametrize("zipmap", [True, False], ids=["zipmap", "no-zipmap"])
def test_column_transformer_logistic_regression(zipmap):
    _, train = table(150, 1)
    feeds, frame = table(40, 2, unseen=True)
    y = np.where(table_target(train) > 3, "buy", "skip")
    pipe = table_pipeline(LogisticRegression(max_iter=1000)).fit(train, y)
    check_classifier(convert_table(pipe, zipmap), pipe, feeds, frame, zipmap)


def test_column_transformer_ridge():
    _, train = table(150, 3)
    feeds, frame = table(40, 4, unseen=True)
    pipe = table_pipeline(Ridge(alpha=0.3)).fit(train, table_target(train))
    # Targets of order 10: the same relative error bound, scaled.
    check_regressor(convert_table(pipe), pipe.predict(frame), feeds, tol={"rtol": 1e-5, "atol": 1e-4})


@pytest.mark.parametrize("y", ["binary", "multiclass", "strings"])
def test_linear_svc(y):
    """LinearSVC exports as LinearClassifier; its scores are decision_function's."""
    est = LinearSVC(C=0.5).fit(X, LABELS[y])
    out = check_classifier(to_onnx(est), est, {"X": X}, X, zipmap=False, proba=False)
    want = est.decision_function(X)
    got = out["probabilities"]
    np.testing.assert_allclose(got[:, -1] if want.ndim == 1 else got, want, **TOL)  # binary: [N, 1]


# --- trees

@pytest.mark.parametrize("y", ["binary", "multiclass", "strings"])
def test_hist_gradient_boosting_classifier_with_nan(y):
    est = HistGradientBoostingClassifier(max_iter=15, max_leaf_nodes=8, random_state=0).fit(X_NAN, LABELS[y])
    check_classifier(to_onnx(est, x=X_NAN), est, {"X": X_NAN}, X_NAN)


def test_hist_gradient_boosting_regressor_with_nan():
    est = HistGradientBoostingRegressor(max_iter=15, max_leaf_nodes=8, random_state=0).fit(X_NAN, Y_REG)
    check_regressor(to_onnx(est, x=X_NAN), est.predict(X_NAN), {"X": X_NAN}, tol={"rtol": 1e-5, "atol": 1e-4})


@pytest.mark.parametrize("zipmap", [True, False], ids=["zipmap", "no-zipmap"])
@pytest.mark.parametrize("y", ["binary", "strings"])
def test_extra_trees_classifier(y, zipmap):
    est = ExtraTreesClassifier(8, max_depth=5, random_state=0).fit(X, LABELS[y])
    check_classifier(to_onnx(est, zipmap), est, {"X": X}, X, zipmap)


def test_extra_trees_regressor():
    est = ExtraTreesRegressor(8, max_depth=5, random_state=0).fit(X, Y_REG)
    check_regressor(to_onnx(est), est.predict(X), {"X": X}, tol={"rtol": 1e-5, "atol": 1e-4})


def test_isolation_forest():
    est = IsolationForest(n_estimators=10, random_state=0).fit(X)
    onx = to_onnx(est)
    out = mserve.load(onx).predict(X)
    np.testing.assert_array_equal(out["label"].ravel(), est.predict(X))
    np.testing.assert_allclose(out["scores"].ravel(), est.decision_function(X), **TOL)
    ort_label, ort_scores = ort_run(onx, {"X": X})
    np.testing.assert_array_equal(out["label"], ort_label)
    np.testing.assert_allclose(out["scores"], ort_scores, **ORT_TOL)


# --- distance, kernel and neural models

@pytest.mark.parametrize("y", ["binary", "multiclass", "strings"])
def test_knn_classifier(y):
    est = KNeighborsClassifier(5).fit(X[:80], LABELS[y][:80])
    check_classifier(to_onnx(est), est, {"X": X[80:]}, X[80:])


def test_knn_regressor():
    est = KNeighborsRegressor(4).fit(X[:80], Y_REG[:80])
    check_regressor(to_onnx(est), est.predict(X[80:]), {"X": X[80:]}, tol={"rtol": 1e-5, "atol": 1e-4})


def test_knn_regressor_distance_weights_against_onnxruntime():
    """skl2onnx 1.20's graph for weights="distance" does not reproduce scikit-learn 1.9's predictions
    (onnxruntime computes the same values as mserve, up to 0.4 away from scikit-learn's), so only
    onnxruntime is the oracle here."""
    est = KNeighborsRegressor(4, weights="distance").fit(X[:80], Y_REG[:80])
    onx = to_onnx(est)
    got = mserve.load(onx).predict(X[80:])
    np.testing.assert_allclose(got, ort_run(onx, {"X": X[80:]})[0], **ORT_TOL)


@pytest.mark.parametrize("zipmap", [True, False], ids=["zipmap", "no-zipmap"])
@pytest.mark.parametrize("y", ["binary", "multiclass", "strings"])
def test_svc_rbf_probabilities(y, zipmap):
    """SVMClassifier with Platt scaling: libsvm's pairwise coupling, which ONNX runs in float32 and
    libsvm in double, over an iteration that stops at a residual of 0.005 / classes; the
    probabilities agree to 1e-4 (a wrong pairwise sign or class order moves them by > 0.01)."""
    est = SVC(probability=True, random_state=0).fit(X, LABELS[y])
    check_classifier(to_onnx(est, zipmap), est, {"X": X}, X, zipmap, tol={"rtol": 0, "atol": 1e-4})


@pytest.mark.parametrize("kernel", ["rbf", "poly", "sigmoid", "linear"])
def test_svc_decision_values(kernel):
    est = SVC(kernel=kernel, degree=3, coef0=0.5, gamma=0.2).fit(X, Y_MULTI)
    out = check_classifier(to_onnx(est, zipmap=False), est, {"X": X}, X, zipmap=False, proba=False)
    # skl2onnx turns the one-vs-one decision values into decision_function's one-vs-rest shape.
    np.testing.assert_allclose(out["probabilities"], est.decision_function(X), rtol=1e-5, atol=1e-4)


def test_svr_and_one_class_svm():
    est = SVR(C=2.0).fit(X, Y_REG)
    check_regressor(to_onnx(est), est.predict(X), {"X": X}, tol={"rtol": 1e-5, "atol": 1e-4})
    oc = OneClassSVM(nu=0.2, gamma=0.3).fit(X)
    onx = to_onnx(oc)
    out = mserve.load(onx).predict(X)
    want = oc.decision_function(X)
    np.testing.assert_allclose(out["scores"].ravel(), want, rtol=1e-5, atol=1e-4)
    # A row whose decision value is within float32 rounding of 0 may take either side.
    clear = np.abs(want) > 1e-4
    assert clear.sum() > 100
    np.testing.assert_array_equal(out["label"].ravel()[clear], oc.predict(X)[clear])
    ort_label, ort_scores = ort_run(onx, {"X": X})
    np.testing.assert_array_equal(out["label"], ort_label)
    np.testing.assert_allclose(out["scores"], ort_scores, **ORT_TOL)


@pytest.mark.parametrize("y", ["multiclass", "strings"])
def test_mlp_classifier(y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # not converged in 200 iterations: irrelevant here
        est = MLPClassifier((16, 8), max_iter=200, random_state=0).fit(X, LABELS[y])
    check_classifier(to_onnx(est), est, {"X": X}, X)


# --- decompositions, feature expansion, clustering, calibration

def test_pca_then_logistic_regression():
    est = make_pipeline(StandardScaler(), PCA(3, random_state=0), LogisticRegression(max_iter=500)).fit(X, Y_STR)
    check_classifier(to_onnx(est), est, {"X": X}, X)


def test_truncated_svd_then_ridge():
    est = make_pipeline(TruncatedSVD(3, random_state=0), Ridge(alpha=0.1)).fit(X, Y_REG)
    check_regressor(to_onnx(est), est.predict(X), {"X": X}, tol={"rtol": 1e-5, "atol": 1e-4})


def test_polynomial_features_then_logistic_regression():
    est = make_pipeline(PolynomialFeatures(2), StandardScaler(), LogisticRegression(max_iter=2000)).fit(X, Y_MULTI)
    check_classifier(to_onnx(est), est, {"X": X}, X)


def test_kmeans_transform_and_predict():
    est = KMeans(4, n_init=2, random_state=0).fit(X)
    onx = to_onnx(est)
    out = mserve.load(onx).predict(X)
    np.testing.assert_array_equal(out["label"], est.predict(X))
    # Distances of order 3 from |x|^2 - 2 x.c + |c|^2 in float32: a few 1e-6 absolute.
    np.testing.assert_allclose(out["scores"], est.transform(X), rtol=1e-5, atol=1e-5)
    ort_label, ort_scores = ort_run(onx, {"X": X})
    np.testing.assert_array_equal(out["label"], ort_label)
    np.testing.assert_allclose(out["scores"], ort_scores, **ORT_TOL)


@pytest.mark.parametrize("base", ["logistic", "linear_svc"])
def test_calibrated_classifier(base):
    clf = LogisticRegression(max_iter=500) if base == "logistic" else LinearSVC(C=0.5)
    est = CalibratedClassifierCV(clf, cv=3, method="sigmoid").fit(X, Y_MULTI)
    check_classifier(to_onnx(est), est, {"X": X}, X)


def test_isotonic_calibration_against_onnxruntime():
    """skl2onnx 1.20's isotonic calibration does not reproduce scikit-learn 1.9's probabilities
    (onnxruntime computes the same as mserve, 0.1-0.2 away from scikit-learn's), so only
    onnxruntime is the oracle here."""
    est = CalibratedClassifierCV(LogisticRegression(max_iter=500), cv=3, method="isotonic").fit(X, Y_MULTI)
    onx = to_onnx(est, zipmap=False)
    out = mserve.load(onx).predict(X)
    ort_label, ort_probs = ort_run(onx, {"X": X})
    np.testing.assert_array_equal(out["label"], ort_label)
    np.testing.assert_allclose(out["probabilities"], ort_probs, **ORT_TOL)


# --- LightGBM and XGBoost through onnxmltools

def boosting_data():
    """Float features with NaN and an integer-coded categorical column (4)."""
    rng = np.random.default_rng(11)
    x = rng.standard_normal((200, 5)).astype(np.float32)
    x[:, 4] = rng.integers(0, 6, len(x))
    x[::7, 1] = np.nan
    x[3::11, 2] = np.nan
    y_reg = x[:, 0] * 2 - np.nan_to_num(x[:, 2]) + np.isin(x[:, 4], [1, 4]) * 3
    return x, y_reg


def lightgbm_onnx(est, x, zipmap=True):
    from onnxmltools import convert_lightgbm
    from onnxmltools.convert.common.data_types import FloatTensorType as FT
    kw = {} if zipmap is None else {"zipmap": zipmap}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return convert_lightgbm(est, initial_types=[("X", FT([None, x.shape[1]]))], target_opset=15, **kw)


# min_data_per_group, cat_smooth: LightGBM's defaults (100, 10) allow no categorical split on 200 rows.
LGBM = dict(n_estimators=12, num_leaves=7, min_child_samples=5, min_data_per_group=5, cat_smooth=1, verbose=-1,
            random_state=0)


@pytest.mark.parametrize("zipmap", [True, False], ids=["zipmap", "no-zipmap"])
@pytest.mark.parametrize("kind", ["binary", "multiclass"])
def test_lightgbm_classifier(kind, zipmap):
    lgb = pytest.importorskip("lightgbm")
    pytest.importorskip("onnxmltools")
    x, y_reg = boosting_data()
    y = (y_reg > 0).astype(np.int64) if kind == "binary" else np.digitize(y_reg, [-1, 1.5]).astype(np.int64)
    est = lgb.LGBMClassifier(**LGBM).fit(x, y, categorical_feature=[4])
    assert any(t["num_cat"] > 0 for t in est.booster_.dump_model()["tree_info"])  # categorical splits exported
    check_classifier(lightgbm_onnx(est, x, zipmap), est, {"X": x}, x, zipmap)


def test_lightgbm_regressor():
    lgb = pytest.importorskip("lightgbm")
    pytest.importorskip("onnxmltools")
    x, y_reg = boosting_data()
    est = lgb.LGBMRegressor(**LGBM).fit(x, y_reg, categorical_feature=[4])
    check_regressor(lightgbm_onnx(est, x, None), est.predict(x), {"X": x}, tol={"rtol": 1e-5, "atol": 1e-4})


def xgboost_onnx(est, x):
    from onnxmltools import convert_xgboost
    from onnxmltools.convert.common.data_types import FloatTensorType as FT
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return convert_xgboost(est, initial_types=[("X", FT([None, x.shape[1]]))], target_opset=15)


@pytest.mark.parametrize("kind", ["binary", "multiclass", "regressor"])
def test_xgboost(kind):
    xgb = pytest.importorskip("xgboost")
    pytest.importorskip("onnxmltools")
    x, y_reg = boosting_data()
    params = dict(n_estimators=12, max_depth=3, random_state=0)
    if kind == "regressor":
        est = xgb.XGBRegressor(**params).fit(x, y_reg)
        check_regressor(xgboost_onnx(est, x), est.predict(x), {"X": x}, tol={"rtol": 1e-5, "atol": 1e-4})
        return
    y = (y_reg > 0).astype(np.int64) if kind == "binary" else np.digitize(y_reg, [-1, 1.5]).astype(np.int64)
    est = xgb.XGBClassifier(**params).fit(x, y)
    check_classifier(xgboost_onnx(est, x), est, {"X": x}, x, zipmap=False)


# --- bad input

def test_bad_input_is_a_clear_error():
    feeds, frame = table(10, 5)
    _, train = table(60, 6)
    pipe = table_pipeline(LogisticRegression(max_iter=500)).fit(train, table_target(train) > 0)
    m = mserve.load(convert_table(pipe))
    m.predict(feeds)
    with pytest.raises(mserve.Error, match="area"):  # missing column
        m.predict({k: v for k, v in feeds.items() if k != "area"})
    with pytest.raises(mserve.Error, match="rooms"):  # float where int64 is declared
        m.predict({**feeds, "rooms": feeds["rooms"].astype(np.float32)})
    with pytest.raises(mserve.Error, match="color"):  # numbers where strings are declared
        m.predict({**feeds, "color": np.zeros((10, 1), np.float32)})
    svc = mserve.load(to_onnx(SVC().fit(X, Y_MULTI)))
    with pytest.raises(mserve.Error, match="features|shape|dimension"):  # 4 features for 5
        svc.predict(X[:, :4])
