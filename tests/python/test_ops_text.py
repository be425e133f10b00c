"""TfIdfVectorizer and com.microsoft Tokenizer (kernels/ops/text.cc) on one-node models, against
onnxruntime (and onnx.reference for TfIdfVectorizer); counts and strings exactly."""
import concurrent.futures

import numpy as np
import pytest
from onnx import TensorProto, helper

import mserve
from op_harness import Cases, build_model, ort_run, reference_run, strings

CASES = Cases(opsets=(9, 17))
case = CASES.add

# --- TfIdfVectorizer: the ONNX node suite's pool (four 1-grams, three 2-grams), then larger ones.
POOL = {"pool_int64s": [2, 3, 5, 4, 5, 6, 7, 8, 6, 7], "ngram_counts": [0, 4], "ngram_indexes": list(range(7))}
X1 = np.array([1, 1, 3, 3, 3, 7, 8, 6, 7, 5, 6, 8], np.int64)
X2 = np.array([[1, 1, 3, 3, 3, 7], [8, 6, 7, 5, 6, 8]], np.int64)
W7 = [0.5, 1.5, 2.0, 0.25, 3.0, 1.0, 4.0]
for mode in ["TF", "IDF", "TFIDF"]:
    for lo, hi, skip in [(1, 1, 0), (2, 2, 0), (1, 2, 0), (1, 2, 3), (2, 2, 5)]:
        attrs = {**POOL, "mode": mode, "min_gram_length": lo, "max_gram_length": hi, "max_skip_count": skip}
        tag = f"{mode}-{lo}{hi}-skip{skip}"
        case("TfIdf-int64-" + tag, "TfIdfVectorizer", {"x": X1}, attrs={**attrs, "weights": W7})
        case("TfIdf-int32-batch-" + tag, "TfIdfVectorizer", {"x": X2.astype(np.int32)}, attrs=attrs)
    case(f"TfIdf-noweights-{mode}", "TfIdfVectorizer", {"x": X2},
         attrs={**POOL, "mode": mode, "min_gram_length": 1, "max_gram_length": 2, "max_skip_count": 1})

# Output columns permuted, with gaps (columns no n-gram maps to stay 0), two n-grams sharing one.
case("TfIdf-indexes-permuted-gaps", "TfIdfVectorizer", {"x": X2},
     attrs={**POOL, "ngram_indexes": [9, 0, 4, 4, 2, 7, 1], "mode": "TF", "min_gram_length": 1,
            "max_gram_length": 2, "max_skip_count": 2})
for mode in ["IDF", "TFIDF"]:  # shared columns: TFIDF sums the weights of the hits, IDF keeps the last hit's
    case(f"TfIdf-shared-columns-{mode}", "TfIdfVectorizer", {"x": X2},
         attrs={**POOL, "ngram_indexes": [0, 0, 1, 2, 2, 3, 2], "weights": W7, "mode": mode, "min_gram_length": 1,
                "max_gram_length": 2, "max_skip_count": 1})
# 1-grams and 3-grams only: the (empty) 2-gram level, and a pool prefix before ngram_counts[0].
case("TfIdf-levelempty-3grams", "TfIdfVectorizer", {"x": np.array([[5, 1, 2, 3, 1, 2, 3, 9]], np.int64)},
     attrs={"pool_int64s": [99, 1, 2, 1, 2, 3, 2, 3, 9], "ngram_counts": [1, 3, 3], "ngram_indexes": [0, 1, 2, 3],
            "mode": "TF", "min_gram_length": 1, "max_gram_length": 3, "max_skip_count": 1})

# Random: a vocabulary of 12 words, pools of 1- to 3-grams drawn from sequences, texts with many hits.
VOCAB = [f"w{i}" for i in range(10)] + ["é", "日本"]
RANDOM_ATTRS = []
for seed, (lo, hi, skip, mode) in enumerate([(1, 3, 0, "TF"), (1, 3, 2, "TFIDF"), (2, 3, 1, "IDF"), (3, 3, 4, "TF")]):
    rng = np.random.default_rng(seed)
    grams = {n: sorted({tuple(map(str, rng.choice(VOCAB, n))) for _ in range(8 * n)}) for n in (1, 2, 3)}
    pool, counts = [], []
    for n in (1, 2, 3):
        counts.append(len(pool))
        pool += [t for g in grams[n] for t in g]
    n_grams = sum(len(g) for g in grams.values())
    idx = rng.permutation(n_grams).tolist()
    attrs = {"pool_strings": pool, "ngram_counts": counts, "ngram_indexes": idx, "mode": mode,
             "min_gram_length": lo, "max_gram_length": hi, "max_skip_count": skip,
             "weights": rng.uniform(0.1, 3, n_grams).astype(np.float32).tolist()}
    RANDOM_ATTRS.append(attrs)
    text = np.array(rng.choice(VOCAB, (3, 40)), dtype=object)
    case(f"TfIdf-strings-random{seed}", "TfIdfVectorizer", {"x": text}, attrs=attrs)
    case(f"TfIdf-strings-random{seed}-1d", "TfIdfVectorizer", {"x": text[0]}, attrs=attrs)
    ints = {**{k: v for k, v in attrs.items() if k != "pool_strings"},
            "pool_int64s": [VOCAB.index(t) for t in pool]}
    case(f"TfIdf-ints-random{seed}", "TfIdfVectorizer",
         {"x": np.vectorize(VOCAB.index)(text).astype(np.int64)}, attrs=ints)
# Enough rows that compute splits them across threads.
BIG = np.array(np.random.default_rng(9).choice(VOCAB, (500, 12)), dtype=object)
case("TfIdf-strings-many-rows", "TfIdfVectorizer", {"x": BIG}, attrs=RANDOM_ATTRS[1])


@pytest.mark.parametrize("c", CASES)
def test_op_matches_oracle(c):
    c.check()


def per_column_weights_agree(c):
    """onnx.reference reads weights per output column, the spec and onnxruntime per n-gram: the
    two agree for TF, or when the i-th n-gram is column i."""
    identity = c.attrs["ngram_indexes"] == list(range(len(c.attrs["ngram_indexes"])))
    return c.attrs["mode"] == "TF" or (identity and "weights" in c.attrs)  # it needs weights for IDF, TFIDF


@pytest.mark.parametrize("c", [p for p in CASES if per_column_weights_agree(p.values[0])][::3])
def test_tfidf_reference_agrees(c):
    """onnx.reference, a second oracle, on a sample of the cases."""
    model, _ = c.build()
    np.testing.assert_array_equal(mserve.load(model).predict(dict(c.inputs)), reference_run(model, c.inputs)[0])


TFIDF = {**POOL, "mode": "TF", "min_gram_length": 1, "max_gram_length": 2, "max_skip_count": 0}


def test_tfidf_empty_rows():
    model, _ = build_model("TfIdfVectorizer", {"x": np.zeros((2, 0), np.int64)}, attrs=TFIDF)
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_param = "B"
    model.graph.input[0].type.tensor_type.shape.dim[1].dim_param = "C"
    m = mserve.load(model)
    x = np.zeros((2, 0), np.int64)
    np.testing.assert_array_equal(m.predict(x), ort_run(model, {"x": x})[0])
    # No rows: onnxruntime refuses B = 0; mserve answers zero rows (an empty batch).
    assert m.predict(np.zeros((0, 3), np.int64)).shape == (0, 7)


@pytest.mark.parametrize("attrs, match", [
    ({"mode": "BM25"}, "mode must be TF, IDF or TFIDF"),
    ({"min_gram_length": 0}, "min_gram_length must be at least 1"),
    ({"min_gram_length": 2, "max_gram_length": 1}, "less than min_gram_length"),
    ({"max_gram_length": 3}, "exceeds the n-gram lengths of ngram_counts"),
    ({"max_skip_count": -1}, "max_skip_count must be non-negative"),
    ({"ngram_indexes": [0, 1, -2, 3, 4, 5, 6]}, "ngram_indexes must be non-negative"),
    ({"ngram_indexes": [0, 1, 2, 3, 4, 5]}, "fewer than the pool's n-grams"),
    ({"ngram_counts": [0, 11]}, "does not split the pool"),
    ({"ngram_counts": [4, 0]}, "does not split the pool"),
    ({"ngram_counts": [0, 3]}, "not whole 2-grams"),
    ({"pool_int64s": [2, 3, 5, 2, 5, 6, 7, 8, 6, 7]}, "holds the 1-gram at item 3 twice"),
    ({"pool_strings": ["a"] * 10}, "exactly one of pool_strings and pool_int64s"),
    ({"mode": "IDF", "weights": [1.0] * 6}, "weights has 6 values, ngram_indexes 7"),
])
def test_tfidf_bad_attributes_are_load_errors(attrs, match):
    model, _ = build_model("TfIdfVectorizer", {"x": X1}, attrs={**TFIDF, **attrs})
    with pytest.raises(mserve.Error, match=match):
        mserve.load(model)


def test_tfidf_missing_attributes_are_load_errors():
    for name in ["mode", "min_gram_length", "max_gram_length", "max_skip_count", "ngram_counts", "ngram_indexes"]:
        attrs = {k: v for k, v in TFIDF.items() if k != name}
        node = helper.make_node("TfIdfVectorizer", ["x"], ["y"], **attrs)
        g = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.INT64, [None])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
        model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
        with pytest.raises(mserve.Error, match=name):
            mserve.load(model.SerializeToString())


@pytest.mark.parametrize("x, match", [
    (np.array([1.0, 2.0], np.float32), "must be int32 or int64"),
    (strings("a", "b"), "must be int32 or int64"),
    (np.zeros((2, 2, 2), np.int64), r"shape \[C\] or \[B, C\]"),
    (np.array(5, np.int64), r"shape \[C\] or \[B, C\]"),
])
def test_tfidf_bad_input_is_an_error(x, match):
    model, _ = build_model("TfIdfVectorizer", {"x": x}, attrs=TFIDF)
    with pytest.raises(mserve.Error, match=match):
        mserve.load(model).predict(x)


def test_tfidf_string_pool_rejects_int_input():
    attrs = {**TFIDF, "pool_int64s": None, "pool_strings": [str(v) for v in POOL["pool_int64s"]]}
    attrs = {k: v for k, v in attrs.items() if v is not None}
    model, _ = build_model("TfIdfVectorizer", {"x": strings("2", "3", "5")}, attrs=attrs)
    np.testing.assert_array_equal(mserve.load(model).predict(strings("2", "3", "5")), [1, 1, 1, 0, 0, 0, 0])
    model, _ = build_model("TfIdfVectorizer", {"x": np.array([2, 3], np.int64)}, attrs=attrs)
    with pytest.raises(mserve.Error, match="must be a string tensor"):
        mserve.load(model).predict(np.array([2, 3], np.int64))


# --- com.microsoft Tokenizer, against onnxruntime (its contrib kernel is the reference).
def tokenizer_model(attrs, shape):
    node = helper.make_node("Tokenizer", ["x"], ["y"], domain="com.microsoft", **attrs)
    g = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.STRING, shape)],
                          [helper.make_tensor_value_info("y", TensorProto.STRING, None)])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)])
    m.ir_version = 8
    return m


BASE = {"mark": 0, "pad_value": "#", "mincharnum": 1}
TEXTS = [
    strings("Hello World", "I love computer science !", "", "  a  bb ccc, dd.e ", "x"),
    strings("abc def", "x", "école été", "日本語 テキスト", "a-b_c d", "hello", shape=(2, 3)),
    strings("   ", ",,", shape=(2, 1)),
]
TOKENIZER_ATTRS = {
    "space": {"separators": [" "]},
    "separators-skl2onnx": {"separators": [" ", "[.]", "\\?", ",", ";", ":", "\\!"]},
    "separators-regex-chain": {"separators": ["\\s+", "[,.]"]},
    "separators-overlapping": {"separators": ["b|bc| "]},
    "separators-mincharnum2": {"separators": [" "], "mincharnum": 2},
    "separators-mark": {"separators": [" "], "mark": 1, "pad_value": "<pad>"},
    "chars": {"separators": [""]},
    "chars-mark": {"separators": [""], "mark": 1},
    "chars-tokenexp-dot": {"tokenexp": "."},
    "tokenexp-skl2onnx-default": {"tokenexp": "[a-zA-Z0-9_]+"},
    "tokenexp-mincharnum3": {"tokenexp": "[a-zA-Z0-9_]+", "mincharnum": 3},
    "tokenexp-unicode-mark": {"tokenexp": "\\w+", "mark": 1, "pad_value": "PAD"},
    "tokenexp-punctuation": {"tokenexp": "\\w+|[^\\w\\s]"},
    "tokenexp-empty-matches": {"tokenexp": "[a-z]*"},
    "tokenexp-word-boundary": {"tokenexp": "\\b\\w\\w+\\b"},
    "tokenexp-longest-alternative": {"tokenexp": "a|ab|abc"},
}


@pytest.mark.parametrize("ti", range(len(TEXTS)), ids=["1d", "2d", "no-tokens"])
@pytest.mark.parametrize("name", TOKENIZER_ATTRS)
def test_tokenizer_matches_onnxruntime(name, ti):
    x = TEXTS[ti]
    model = tokenizer_model({**BASE, **TOKENIZER_ATTRS[name]}, list(x.shape))
    expected = ort_run(model, {"x": x})[0]
    got = mserve.load(model.SerializeToString(), threads=2).predict(x)
    assert got.dtype == expected.dtype and got.shape == expected.shape, (got.shape, expected.shape)
    np.testing.assert_array_equal(got, expected)


def test_tokenizer_marks_and_padding_layout():
    model = tokenizer_model({**BASE, "separators": [" "], "mark": 1, "pad_value": "_"}, [2])
    got = mserve.load(model.SerializeToString()).predict(strings("a b c", "d"))
    np.testing.assert_array_equal(got, [["\x02", "a", "b", "c", "\x03"], ["\x02", "d", "\x03", "_", "_"]])


def test_tokenizer_empty_input_keeps_rank():
    # onnxruntime answers [0] and [2, 0]; mserve keeps its usual rank (X's shape, then 0 tokens).
    model = tokenizer_model({**BASE, "separators": [" "]}, [None, None])
    m = mserve.load(model.SerializeToString())
    assert m.predict(np.zeros((2, 0), dtype=object)).shape == (2, 0, 0)
    assert m.predict(np.zeros((0, 3), dtype=object)).shape == (0, 3, 0)


@pytest.mark.parametrize("attrs, match", [
    ({"tokenexp": "(?u)\\b\\w\\w+\\b"}, "not an RE2 regular expression"),
    ({"tokenexp": "(a)\\1"}, "not an RE2 regular expression"),
    ({"separators": [" ", "(?=x)"]}, "not an RE2 regular expression"),
    ({"tokenexp": ""}, "tokenexp must not be empty"),
    ({"separators": [" ", ""]}, "empty separator is allowed only alone"),
    ({"separators": [" "], "tokenexp": "\\w+"}, "exactly one of 'separators' and 'tokenexp'"),
    ({}, "exactly one of 'separators' and 'tokenexp'"),
    ({"separators": [""], "mincharnum": 2}, "mincharnum must be 1 for character tokenization"),
    ({"separators": [" "], "mincharnum": 0}, "mincharnum must be positive"),
])
def test_tokenizer_bad_attributes_are_load_errors(attrs, match):
    with pytest.raises(mserve.Error, match=match):
        mserve.load(tokenizer_model({**BASE, **attrs}, [None]).SerializeToString())


@pytest.mark.parametrize("name", ["mark", "pad_value", "mincharnum"])
def test_tokenizer_required_attributes(name):
    attrs = {k: v for k, v in {**BASE, "separators": [" "]}.items() if k != name}
    with pytest.raises(mserve.Error, match=name):
        mserve.load(tokenizer_model(attrs, [None]).SerializeToString())


def test_tokenizer_bad_input_is_an_error():
    model = tokenizer_model({**BASE, "separators": [" "]}, [None])
    m = mserve.load(model.SerializeToString())
    with pytest.raises(mserve.Error, match="not valid UTF-8"):
        m.predict(np.array([b"ok", b"\xff\xfe"], dtype=object))
    model3 = tokenizer_model({**BASE, "separators": [" "]}, [1, 1, 1])
    with pytest.raises(mserve.Error, match=r"shape \[C\] or \[N, C\]"):
        mserve.load(model3.SerializeToString()).predict(strings("a b", shape=(1, 1, 1)))


def test_tokenizer_needs_the_microsoft_domain_import():
    model = tokenizer_model({**BASE, "separators": [" "]}, [None])
    del model.opset_import[1]
    with pytest.raises(mserve.UnsupportedOperator, match="com.microsoft"):
        mserve.load(model.SerializeToString())


def test_text_ops_are_listed():
    ops = {(op.domain, op.op_type, op.since_opset) for op in mserve.supported_ops()}
    assert ("", "TfIdfVectorizer", 9) in ops and ("com.microsoft", "Tokenizer", 1) in ops


def test_tokenizer_then_tfidf_in_one_model():
    """The skl2onnx chain without scikit-learn: Tokenizer -> Flatten -> TfIdfVectorizer."""
    x = strings("the cat sat", "the dog sat down", "a cat", "", shape=(4, 1))
    pool = ["a", "cat", "dog", "sat", "the", "cat", "sat", "the", "cat", "the", "dog"]
    nodes = [helper.make_node("Tokenizer", ["x"], ["t"], domain="com.microsoft", **BASE, tokenexp="[a-z]+"),
             helper.make_node("Flatten", ["t"], ["f"]),
             helper.make_node("TfIdfVectorizer", ["f"], ["y"], mode="TFIDF", min_gram_length=1, max_gram_length=2,
                              max_skip_count=0, pool_strings=pool, ngram_counts=[0, 5],
                              ngram_indexes=[4, 0, 1, 2, 3, 5, 6, 7], weights=[0.5, 1, 2, 3, 4, 5, 6, 7])]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.STRING, [None, 1])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)])
    model.ir_version = 8
    m = mserve.load(model.SerializeToString(), threads=2)
    expected = ort_run(model, {"x": x})[0]
    np.testing.assert_array_equal(m.predict(x), expected)
    # compute is const: concurrent predictions on one model agree.
    with concurrent.futures.ThreadPoolExecutor(4) as ex:
        for got in ex.map(lambda _: m.predict(x), range(32)):
            np.testing.assert_array_equal(got, expected)
