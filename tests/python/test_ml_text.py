"""scikit-learn text pipelines exported by skl2onnx (StringNormalizer, com.microsoft Tokenizer,
TfIdfVectorizer, then the estimator), against scikit-learn's own features and predictions and
against onnxruntime.

Tolerances: the exported graph computes in float32 (TF-IDF weights, the l1/l2 norms, the linear
model's dot products over a few hundred features), scikit-learn in float64. Each value carries a
relative rounding error of a few float32 epsilons (1.2e-7) per operation, over at most a few
hundred terms: the features (at most 1 in magnitude after the norm; idf-weighted counts below
20 without it) and the probabilities (in [0, 1]) stay within 1e-5 of scikit-learn's, a bound
with a hundredfold margin that a wrong count (a feature off by at least 1/|row|) or a wrong
weight would still break. onnxruntime runs the same float32 graph, so mserve matches it to 1e-6.
Labels are compared where scikit-learn's top two probabilities differ by more than 1e-4, where
float32 rounding cannot flip them.

skl2onnx's tokenization is not scikit-learn's in every case, and the tests say where they use
which oracle: its default tokenexp [a-zA-Z0-9_]+ keeps 1-character words that scikit-learn's
default token_pattern drops, and its StringNormalizer removes stop words as whole input strings,
so with stop words scikit-learn's n-grams of 2+ words (built after dropping them) differ. And
for sublinear_tf it computes log(1 + tf), not scikit-learn's 1 + log(tf): after the norm the two
agree on documents whose n-grams all occur once, the rows scikit-learn checks there.
"""
import warnings

import numpy as np
import pytest

import mserve
from op_harness import ort_run

pytest.importorskip("sklearn")
skl2onnx = pytest.importorskip("skl2onnx")
from skl2onnx.common.data_types import StringTensorType  # noqa: E402
from sklearn.base import clone  # noqa: E402
from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer  # noqa: E402
from sklearn.linear_model import LogisticRegression, SGDClassifier  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402

TOL = {"rtol": 0, "atol": 1e-5}
ORT_TOL = {"rtol": 0, "atol": 1e-6}

SUBJECTS = ["the cat", "my dog", "our neighbour", "the old man", "this robot", "the bird", "your teacher"]
VERBS = ["eats", "likes", "sees", "builds", "paints", "reads", "finds", "loves"]
OBJECTS = ["fresh bread", "the red car", "the blue sky", "old books", "small stones", "green apples",
           "the river"]
ENDINGS = ["today", "slowly", "again", "at night", "with joy", "quietly", "", "", "."]
PUNCT = ["", "", ".", "!", "?", ","]


def corpus(rng, n, one_letter_words=False):
    """English sentences, some capitalized, some punctuated; with one_letter_words some also hold
    "a" and "I"."""
    out = []
    for _ in range(n):
        s = f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(OBJECTS)}{rng.choice(PUNCT)} {rng.choice(ENDINGS)}"
        if one_letter_words and rng.random() < 0.5:
            s = s.replace("the ", "a ", 1) if rng.random() < 0.5 else "I think " + s
        if rng.random() < 0.3:
            s = s.capitalize()
        out.append(s.strip())
    return out


def labels(texts):
    """Three classes from the words, so the model has something to learn."""
    return np.array([(("cat" in t or "dog" in t or "bird" in t) + 2 * ("book" in t or "reads" in t)) % 3
                     for t in texts])


RNG = np.random.default_rng(0)
TRAIN, TEST = corpus(RNG, 200), corpus(RNG, 60) + ["", "Nothing known here", "THE CAT EATS"]
TRAIN1, TEST1 = corpus(RNG, 200, True), corpus(RNG, 60, True) + ["a", "I"]
SEPARATORS = [" ", "[.]", "\\?", ",", ";", ":", "\\!"]  # skl2onnx's documented default separators
RE2_TOKEN_PATTERN = r"\b\w\w+\b"  # scikit-learn's default token_pattern, without RE2's unknown (?u)


def convert(model, vec_options=None, zipmap=False):
    """The ONNX model of `model` (a vectorizer or a pipeline) on a [N, 1] string input."""
    vec = model.steps[0][1] if hasattr(model, "steps") else model
    opts = {id(vec): dict(vec_options or {})}
    if hasattr(model, "steps") and not zipmap:
        opts[id(model.steps[-1][1])] = {"zipmap": False}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return skl2onnx.convert_sklearn(model, initial_types=[("text", StringTensorType([None, 1]))], options=opts,
                                        target_opset={"": 17, "ai.onnx.ml": 3})


def as_input(texts):
    return np.array(texts, dtype=object).reshape(-1, 1)


# onnxruntime needs the locale named (its default en_US.UTF-8 need not be installed); mserve
# lowercases with C.UTF-8 rules either way.
LOCALE = {"locale": "C.UTF-8"}
VECTORIZERS = {
    # id: (vectorizer, skl2onnx options, corpus with 1-letter words, scikit-learn is an oracle:
    #      True, False, or ONCE for the documents whose n-grams all occur once)
    "tfidf-12-default-tokenexp": (TfidfVectorizer(ngram_range=(1, 2)), {}, False, True),
    "tfidf-12-sublinear-l1": (TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, norm="l1"), {}, False, "ONCE"),
    "tfidf-13-no-norm-no-idf": (TfidfVectorizer(ngram_range=(1, 3), norm=None, use_idf=False), {}, False, True),
    "tfidf-22-smooth-off": (TfidfVectorizer(ngram_range=(2, 2), smooth_idf=False), {}, False, True),
    "tfidf-11-stop-words": (TfidfVectorizer(stop_words="english"), {}, False, True),
    "tfidf-12-stop-words": (TfidfVectorizer(ngram_range=(1, 2), stop_words=["the", "my", "our"]), {}, False, False),
    "tfidf-12-tokenexp-token-pattern": (TfidfVectorizer(ngram_range=(1, 2)), {"tokenexp": RE2_TOKEN_PATTERN}, True,
                                        True),
    "tfidf-12-default-tokenexp-1-letter": (TfidfVectorizer(ngram_range=(1, 2)), {}, True, False),
    "tfidf-12-separators": (TfidfVectorizer(ngram_range=(1, 2)), {"separators": SEPARATORS}, False, True),
    "tfidf-12-case-sensitive": (TfidfVectorizer(ngram_range=(1, 2), lowercase=False), {}, False, True),
    "tfidf-12-keep-empty-string": (TfidfVectorizer(ngram_range=(1, 2)), {"keep_empty_string": True}, False, True),
    "count-12": (CountVectorizer(ngram_range=(1, 2)), {}, False, True),
    "count-12-binary-max-features": (CountVectorizer(ngram_range=(1, 2), binary=True, max_features=60), {}, False,
                                     True),
}


def data(one_letter):
    return (TRAIN1, TEST1) if one_letter else (TRAIN, TEST)


def sklearn_rows(vec, test, oracle):
    """The rows of `test` on which scikit-learn is an oracle (see VECTORIZERS)."""
    if oracle == "ONCE":
        counts = CountVectorizer(ngram_range=vec.ngram_range, vocabulary=vec.vocabulary_).transform(test)
        return np.asarray(counts.max(axis=1).todense()).ravel() <= 1
    return np.full(len(test), bool(oracle))


@pytest.mark.parametrize("name", VECTORIZERS)
def test_vectorizer_features(name):
    vec, options, one_letter, sklearn_oracle = VECTORIZERS[name]
    train, test = data(one_letter)
    vec.fit(train)
    x = as_input(test)
    onx = convert(vec, {**options, **LOCALE})
    got = mserve.load(onx.SerializeToString()).predict(x)
    assert got.shape == (len(test), len(vec.vocabulary_))
    np.testing.assert_allclose(got, ort_run(onx, {"text": x})[0], **ORT_TOL)
    rows = sklearn_rows(vec, test, sklearn_oracle)
    if sklearn_oracle:
        assert rows.sum() > len(test) // 2
        np.testing.assert_allclose(got[rows], vec.transform(test).toarray()[rows], **TOL)
    # Without the locale option (onnxruntime cannot run that model here): the same features.
    np.testing.assert_array_equal(mserve.load(convert(vec, options).SerializeToString()).predict(x), got)


def check_classifier(pipe, onx, test, sklearn_oracle=True):
    """mserve's labels and probabilities against onnxruntime's, and scikit-learn's on the rows
    where it is an oracle."""
    x = as_input(test)
    out = mserve.load(onx.SerializeToString()).predict(x)
    expected = ort_run(onx, {"text": x})
    np.testing.assert_array_equal(out["label"], expected[0])
    np.testing.assert_allclose(out["probabilities"], expected[1], **ORT_TOL)
    if not sklearn_oracle:
        return
    rows = sklearn_rows(pipe.steps[0][1], test, sklearn_oracle)
    proba = pipe.predict_proba(test)
    np.testing.assert_allclose(out["probabilities"][rows], proba[rows], **TOL)
    top2 = np.sort(proba, axis=1)[:, -2:]
    clear = rows & (top2[:, 1] - top2[:, 0] > 1e-4)
    assert clear.sum() > len(test) // 2
    np.testing.assert_array_equal(out["label"][clear], pipe.predict(test)[clear])


@pytest.mark.parametrize("name", ["tfidf-12-default-tokenexp", "tfidf-12-sublinear-l1", "tfidf-11-stop-words",
                                  "tfidf-12-stop-words", "tfidf-12-tokenexp-token-pattern", "tfidf-12-separators"])
def test_tfidf_logistic_regression(name):
    vec, options, one_letter, sklearn_oracle = VECTORIZERS[name]
    train, test = data(one_letter)
    pipe = make_pipeline(clone(vec), LogisticRegression(max_iter=2000)).fit(train, labels(train))
    check_classifier(pipe, convert(pipe, {**options, **LOCALE}), test, sklearn_oracle)


@pytest.mark.parametrize("name", ["count-12", "count-12-binary-max-features"])
@pytest.mark.parametrize("clf", [LogisticRegression(max_iter=2000),
                                 SGDClassifier(loss="log_loss", alpha=1e-3, random_state=0)],
                         ids=["logistic", "sgd"])
def test_count_vectorizer_linear_models(name, clf):
    vec, options, one_letter, _ = VECTORIZERS[name]
    train, test = data(one_letter)
    pipe = make_pipeline(clone(vec), clone(clf)).fit(train, labels(train))
    check_classifier(pipe, convert(pipe, {**options, **LOCALE}), test)


def test_zipmap_output_and_batches_of_one():
    pipe = make_pipeline(TfidfVectorizer(ngram_range=(1, 2)), LogisticRegression(max_iter=2000))
    pipe.fit(TRAIN, labels(TRAIN))
    m = mserve.load(convert(pipe, LOCALE, zipmap=True).SerializeToString())
    proba = pipe.predict_proba(TEST)
    for i in [0, 5, len(TEST) - 3, len(TEST) - 1]:  # one sentence at a time, the empty one included
        out = m.predict(as_input(TEST[i:i + 1]))
        got = out["output_probability"][0]
        np.testing.assert_allclose([got[c] for c in pipe.classes_], proba[i], **TOL)


def test_sklearn_default_token_pattern_is_a_clear_error():
    """skl2onnx passes a custom token_pattern through as tokenexp; RE2 has no (?u)."""
    vec = TfidfVectorizer(token_pattern=r"(?u)\b\w+\b").fit(TRAIN)
    with pytest.raises(mserve.Error, match="not an RE2 regular expression"):
        mserve.load(convert(vec, LOCALE).SerializeToString())
