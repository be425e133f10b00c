"""String operators and string-capable shape/copy operators, and the ai.onnx.ml categorical
encoders, on one-node models against onnxruntime (or onnx.reference where onnxruntime lacks a
kernel). String outputs must match exactly; float32 rtol 1e-4, atol 1e-5."""
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

import mserve
from conftest import make_model, ort_run

RNG = np.random.default_rng(7)


def S(*values, shape=None):
    """An object array of str (onnxruntime's string tensor type)."""
    a = np.array(list(values), dtype=object)
    return a.reshape(shape) if shape is not None else a


WORDS = S("monday", "Tuesday", "", "Straße", "école", "ÉCOLE", "a b", "MONDAY", "x,y,,z", "日本語")

# (op, runtime inputs {name: array}, constant inputs {name: array}, attrs, opset, ml opset,
# outputs, oracle); node inputs are the runtime inputs, then the constants, in dict order.
CASES = []


def case(id_, op, inputs, consts=None, attrs=None, opsets=(17,), ml=None, outputs=1, oracle="onnxruntime"):
    for opset in opsets:
        CASES.append(pytest.param(op, inputs, consts or {}, attrs or {}, opset, ml, outputs, oracle,
                                  id=f"{id_}-op{ml or opset}"))


# --- StringNormalizer (10). mserve always maps case with C.UTF-8 rules; onnxruntime is told to
# use that locale too (its default, en_US.UTF-8, need not be installed).
LOC = {"locale": "C.UTF-8"}
for action in ["NONE", "LOWER", "UPPER"]:
    case("StringNormalizer-" + action, "StringNormalizer", {"x": WORDS}, attrs={"case_change_action": action, **LOC},
         opsets=(10, 20))
    case("StringNormalizer-2d-" + action, "StringNormalizer", {"x": S("One", "TWO", "three", shape=(1, 3))},
         attrs={"case_change_action": action, "stopwords": ["two"], **LOC})
case("StringNormalizer-stop-sensitive", "StringNormalizer", {"x": WORDS},
     attrs={"stopwords": ["monday", "école"], "is_case_sensitive": 1, "case_change_action": "UPPER", **LOC})
case("StringNormalizer-stop-insensitive", "StringNormalizer", {"x": WORDS},
     attrs={"stopwords": ["MONDAY", "École", "a b"], "is_case_sensitive": 0, "case_change_action": "LOWER", **LOC})
case("StringNormalizer-all-dropped", "StringNormalizer", {"x": S("a", "A")},
     attrs={"stopwords": ["a"], "case_change_action": "LOWER", **LOC})
case("StringNormalizer-all-dropped-2d", "StringNormalizer", {"x": S("a", "A", shape=(1, 2))},
     attrs={"stopwords": ["a"], **LOC})

# --- StringConcat (20)
case("StringConcat-same", "StringConcat",
     {"a": S("a", "bc", "", "日本", shape=(2, 2)), "b": S("1", "", "x", "語", shape=(2, 2))}, opsets=(20,))
case("StringConcat-bcast", "StringConcat", {"a": S("a", "b", "c", shape=(3, 1)), "b": S("_1", "_2", shape=(2,))},
     opsets=(20,))
case("StringConcat-scalar", "StringConcat", {"a": WORDS}, {"b": np.array("!", dtype=object)}, opsets=(20,))

# --- StringSplit (20)
SPLIT = S("a,b,c", "a,,b", "", ",", "no delimiter here", "  lead and  trail  ", shape=(2, 3))
case("StringSplit-comma", "StringSplit", {"x": SPLIT}, attrs={"delimiter": ","}, opsets=(20,), outputs=2)
case("StringSplit-comma-max1", "StringSplit", {"x": SPLIT}, attrs={"delimiter": ",", "maxsplit": 1}, opsets=(20,),
     outputs=2)
case("StringSplit-whitespace", "StringSplit", {"x": SPLIT}, opsets=(20,), outputs=2)
case("StringSplit-whitespace-max1", "StringSplit", {"x": SPLIT}, attrs={"maxsplit": 1}, opsets=(20,), outputs=2)
case("StringSplit-multichar", "StringSplit", {"x": S("a::b::::c", "::", "x")}, attrs={"delimiter": "::"},
     opsets=(20,), outputs=2)

# --- RegexFullMatch (20)
case("RegexFullMatch-digits", "RegexFullMatch", {"x": S("123", "12a", "", "007", shape=(2, 2))},
     attrs={"pattern": r"\d+"}, opsets=(20,))
case("RegexFullMatch-email", "RegexFullMatch",
     {"x": S("someone@example.com", "a@b", "bad@", "x.y@mail.example.org")},
     attrs={"pattern": r"[\w.+-]+@([\w-]+\.)+[a-z]{2,}"}, opsets=(20,))
case("RegexFullMatch-alternation", "RegexFullMatch", {"x": WORDS}, attrs={"pattern": "(?i)monday|tuesday"},
     opsets=(20,))

# --- Equal, Where on strings
case("Equal-strings", "Equal", {"a": S("a", "b", "", "d"), "b": S("a", "c", "", "D")}, opsets=(19,))
case("Equal-strings-bcast", "Equal", {"a": S("a", "b", "c", "a", shape=(2, 2)), "b": S("a", "c")}, opsets=(19,))
case("Where-strings", "Where", {"c": np.array([[True, False], [False, True]]), "a": S("x1", "x2", shape=(1, 2)),
                                 "b": S("y1", "y2", shape=(2, 1))}, opsets=(9, 16))

# --- Cast to and from strings
FLOATS = np.array([0.0, -0.0, 1.0, 0.1, -2.5, 1e-5, 123456789.0, 3.4e38, np.nan, np.inf, -np.inf, 1 / 3], np.float32)
case("Cast-float-string", "Cast", {"x": FLOATS}, attrs={"to": TensorProto.STRING}, opsets=(9, 13, 19))
case("Cast-double-string", "Cast", {"x": FLOATS.astype(np.float64) / 7}, attrs={"to": TensorProto.STRING})
case("Cast-half-string", "Cast", {"x": np.array([0.1, 2.0, -3.5, 65504], np.float16)}, attrs={"to": TensorProto.STRING})
case("Cast-int64-string", "Cast", {"x": np.array([-5, 0, 2**62, -(2**63)], np.int64)}, attrs={"to": TensorProto.STRING})
case("Cast-int8-string", "Cast", {"x": np.array([-128, 0, 127], np.int8)}, attrs={"to": TensorProto.STRING})
case("Cast-uint32-string", "Cast", {"x": np.array([0, 4294967295], np.uint32)}, attrs={"to": TensorProto.STRING})
case("Cast-bool-string", "Cast", {"x": np.array([True, False])}, attrs={"to": TensorProto.STRING})
NUMS = S("1.5", "-2", "1e3", "  7", "NaN", "inf", "-INF", "+INF", "0x10", "3.25abc", "-0", "1e-40")
case("Cast-string-float", "Cast", {"x": NUMS}, attrs={"to": TensorProto.FLOAT}, opsets=(9, 19))
case("Cast-string-double", "Cast", {"x": NUMS}, attrs={"to": TensorProto.DOUBLE})
case("Cast-string-int64", "Cast", {"x": S("12", "-3", "+4", "1e3", "7.9", " 42", "9223372036854775807")},
     attrs={"to": TensorProto.INT64})
case("Cast-string-int32", "Cast", {"x": S("12", "-3", "100000")}, attrs={"to": TensorProto.INT32})
case("Cast-string-uint8", "Cast", {"x": S("0", "255", "7")}, attrs={"to": TensorProto.UINT8})
case("Cast-string-string", "Cast", {"x": WORDS}, attrs={"to": TensorProto.STRING})
case("CastLike-float-string", "CastLike", {"x": FLOATS[:6]}, {"like": S("")}, opsets=(15,))
case("CastLike-string-double", "CastLike", {"x": NUMS[:4]}, {"like": np.array([0.0])}, opsets=(15,))

# --- shape and copy operators on strings
GRID = np.array([f"s{i}" for i in range(24)], dtype=object).reshape(2, 3, 4)
case("Identity-strings", "Identity", {"x": GRID})
case("Reshape-strings", "Reshape", {"x": GRID}, {"s": np.array([4, -1], np.int64)}, opsets=(13, 14))
case("Flatten-strings", "Flatten", {"x": GRID}, attrs={"axis": 2}, opsets=(13,))
case("Squeeze-strings", "Squeeze", {"x": GRID.reshape(2, 1, 12)}, {"a": np.array([1], np.int64)}, opsets=(13,))
case("Unsqueeze-strings", "Unsqueeze", {"x": GRID}, {"a": np.array([0, 4], np.int64)}, opsets=(13,))
case("Unsqueeze-strings-attr", "Unsqueeze", {"x": GRID}, attrs={"axes": [1]}, opsets=(11,))
case("Transpose-strings", "Transpose", {"x": GRID}, attrs={"perm": [2, 0, 1]})
case("Transpose-strings-default", "Transpose", {"x": GRID})
case("Concat-strings-0", "Concat", {"a": GRID, "b": GRID[:1]}, attrs={"axis": 0})
case("Concat-strings-2", "Concat", {"a": GRID, "b": GRID[:, :, :1], "c": GRID[:, :, 2:]}, attrs={"axis": -1})
# onnxruntime 1.31's Gather copies only the first string of each gathered block: use the reference.
case("Gather-strings-0", "Gather", {"x": GRID}, {"i": np.array([1, 0, -1], np.int64)}, attrs={"axis": 0},
     oracle="reference")
case("Gather-strings-1", "Gather", {"x": GRID}, {"i": np.array([[2, 0], [1, 1]], np.int32)}, attrs={"axis": 1},
     oracle="reference")
case("Gather-strings-last", "Gather", {"x": GRID}, {"i": np.array([3, 0], np.int64)}, attrs={"axis": 2})
case("Slice-strings", "Slice", {"x": GRID},
     {"s": np.array([0, 3], np.int64), "e": np.array([2, 0], np.int64), "ax": np.array([1, 2], np.int64),
      "st": np.array([1, -2], np.int64)}, opsets=(13,))
case("Expand-strings", "Expand", {"x": S("a", "b", "c", shape=(3, 1))}, {"s": np.array([2, 3, 4], np.int64)},
     opsets=(13,))
case("Tile-strings", "Tile", {"x": S("a", "b", "c", "d", shape=(2, 2))}, {"r": np.array([2, 3], np.int64)},
     opsets=(13,))
case("Split-strings", "Split", {"x": GRID}, {"sp": np.array([1, 3], np.int64)}, attrs={"axis": 2}, opsets=(13,),
     outputs=2)

# --- ai.onnx.ml: LabelEncoder (1, 2, 4), CategoryMapper, OneHotEncoder
LABELS = S("cat", "dog", "bird", "cow", "dog", "fish", shape=(2, 3))
case("LabelEncoder-v1-str-int", "LabelEncoder", {"x": LABELS},
     attrs={"classes_strings": ["bird", "cat", "dog"], "default_int64": 99}, ml=1)
case("LabelEncoder-v1-int-str", "LabelEncoder", {"x": np.array([0, 2, 5, -1], np.int64)},
     attrs={"classes_strings": ["bird", "cat", "dog"], "default_string": "?"}, ml=1)
case("LabelEncoder-v2-str-float", "LabelEncoder", {"x": LABELS},
     attrs={"keys_strings": ["cat", "dog"], "values_floats": [0.5, -1.5]}, ml=2)
case("LabelEncoder-v2-int-str", "LabelEncoder", {"x": np.array([[3, 7], [9, 3]], np.int64)},
     attrs={"keys_int64s": [3, 9], "values_strings": ["three", "nine"], "default_string": "none"}, ml=2)
case("LabelEncoder-v2-float-int", "LabelEncoder", {"x": np.array([0.5, 1.5, -0.0, 2.5], np.float32)},
     attrs={"keys_floats": [0.5, 2.5, 0.0], "values_int64s": [1, 2, 3], "default_int64": -7}, ml=2)
# A NaN key matches NaN inputs (the spec says so for opsets 2 and 4; onnxruntime does it from 4).
case("LabelEncoder-v4-float-nan", "LabelEncoder", {"x": np.array([0.5, np.nan, 1.5], np.float32)},
     attrs={"keys_floats": [0.5, np.nan], "values_int64s": [1, 3], "default_int64": -7}, ml=4)
case("LabelEncoder-v2-str-str-default", "LabelEncoder", {"x": LABELS},
     attrs={"keys_strings": ["cat", "dog"], "values_strings": ["feline", "canine"]}, ml=2)
case("LabelEncoder-v4-str-int64", "LabelEncoder", {"x": LABELS},
     attrs={"keys_strings": ["cat", "dog"], "values_int64s": [1, 2], "default_int64": 0}, ml=4)
# "If a key is repeated, the last key takes precedence" (opset 4): onnxruntime keeps the first.
case("LabelEncoder-v4-repeated-key", "LabelEncoder", {"x": LABELS},
     attrs={"keys_strings": ["cat", "dog", "cat"], "values_int64s": [1, 2, 3], "default_int64": 0}, ml=4,
     oracle="reference")
case("LabelEncoder-v4-tensors", "LabelEncoder", {"x": np.array([1, 2, 3, 4], np.int64)},
     attrs={"keys_tensor": helper.make_tensor("k", TensorProto.INT64, [3], [1, 2, 4]),
            "values_tensor": helper.make_tensor("v", TensorProto.STRING, [3], [b"one", b"two", b"four"]),
            "default_tensor": helper.make_tensor("d", TensorProto.STRING, [1], [b"other"])}, ml=4)
case("LabelEncoder-v4-double", "LabelEncoder", {"x": np.array([1.25, 2.0, -1.0], np.float64)},
     attrs={"keys_tensor": helper.make_tensor("k", TensorProto.DOUBLE, [2], [1.25, -1.0]),
            "values_tensor": helper.make_tensor("v", TensorProto.DOUBLE, [2], [10.0, 20.0]),
            "default_tensor": helper.make_tensor("d", TensorProto.DOUBLE, [1], [-5.0])}, ml=4)
case("CategoryMapper-str-int", "CategoryMapper", {"x": LABELS},
     attrs={"cats_strings": ["cat", "dog", "cow"], "cats_int64s": [10, 20, 30], "default_int64": -9}, ml=1)
case("CategoryMapper-int-str", "CategoryMapper", {"x": np.array([[30, 10, 5]], np.int64)},
     attrs={"cats_strings": ["cat", "dog", "cow"], "cats_int64s": [10, 20, 30], "default_string": "unk"}, ml=1)
case("OneHotEncoder-strings", "OneHotEncoder", {"x": LABELS}, attrs={"cats_strings": ["dog", "cat", "cow"]}, ml=1)
case("OneHotEncoder-int64", "OneHotEncoder", {"x": np.array([[1, 5, 3]], np.int64)},
     attrs={"cats_int64s": [3, 1, 2, 5]}, ml=1)
case("OneHotEncoder-float", "OneHotEncoder", {"x": np.array([1.0, 2.7, 5.0], np.float32)},
     attrs={"cats_int64s": [1, 2, 5]}, ml=1)
case("OneHotEncoder-int32-1d", "OneHotEncoder", {"x": np.array([4, 2, 4], np.int32)},
     attrs={"cats_int64s": [2, 4]}, ml=1, oracle="reference")  # no int32 kernel in onnxruntime


def build(op, inputs, consts, attrs, opset, ml, outputs):
    names = list(inputs) + list(consts)
    out_names = ["y"] if outputs == 1 else [f"y{i}" for i in range(outputs)]
    node = helper.make_node(op, names, out_names, domain="ai.onnx.ml" if ml else "", **attrs)
    model = make_model([node], [(k, v.dtype, list(v.shape)) for k, v in inputs.items()],
                       [(o, TensorProto.UNDEFINED if not ml else 1, None) for o in out_names], consts, opset=opset)
    if ml:  # typed by onnx shape inference once the ai.onnx.ml opset is imported
        model.opset_import.append(helper.make_opsetid("ai.onnx.ml", ml))
        for o in model.graph.output:
            o.type.tensor_type.elem_type = TensorProto.UNDEFINED
        model = onnx.shape_inference.infer_shapes(model)
    return model, out_names


def check(got, expected):
    for g, e in zip(got, expected):
        e = np.asarray(e)
        assert g.dtype == e.dtype, (g.dtype, e.dtype)
        assert g.shape == e.shape, (g.shape, e.shape)
        if np.issubdtype(e.dtype, np.floating):
            tol = dict(rtol=1e-3, atol=1e-3) if e.dtype == np.float16 else dict(rtol=1e-4, atol=1e-5)
            np.testing.assert_allclose(g, e, **tol)
        else:
            np.testing.assert_array_equal(g, e)


@pytest.mark.parametrize("op,inputs,consts,attrs,opset,ml,outputs,oracle", CASES)
def test_string_op_matches_oracle(op, inputs, consts, attrs, opset, ml, outputs, oracle):
    model, out_names = build(op, inputs, consts, attrs, opset, ml, outputs)
    if oracle == "reference":
        from onnx.reference import ReferenceEvaluator
        expected = ReferenceEvaluator(model).run(None, inputs)
    else:
        expected = ort_run(model, inputs)
    m = mserve.load(model.SerializeToString(), threads=2)
    got = m.predict(dict(inputs))
    check([got] if outputs == 1 else [got[o] for o in out_names], expected)


def test_string_constants_and_initializers():
    """Constant value_string(s) (opset 12+), a string tensor attribute and a string initializer."""
    for attrs, shape in [({"value_string": "hi"}, []), ({"value_strings": ["a", "bc", ""]}, [3]),
                         ({"value": helper.make_tensor("v", TensorProto.STRING, [2], [b"p", b"q"])}, [2])]:
        nodes = [helper.make_node("Constant", [], ["c"], **attrs), helper.make_node("StringConcat", ["x", "c"], ["y"])]
        x = np.array(["x"] * (shape[0] if shape else 1), dtype=object).reshape(shape)
        model = make_model(nodes, [("x", object, shape)], [("y", 0, None)], opset=20)
        check([mserve.load(model).predict(x)], ort_run(model, {"x": x}))
    init = {"w": np.array(["one", "two", "three"], dtype=object)}
    model = make_model([helper.make_node("Gather", ["w", "i"], ["y"])], [("i", np.int64, [2])], [("y", 0, None)],
                       init)
    i = np.array([2, 0], np.int64)
    check([mserve.load(model).predict(i)], ort_run(model, {"i": i}))


def test_zero_sized_string_tensors():
    x = np.zeros((0, 3), dtype=object)
    model, _ = build("StringSplit", {"x": x}, {}, {"delimiter": ","}, 20, None, 2)
    got = mserve.load(model).predict(x)
    assert got["y0"].shape == (0, 3, 0) and got["y1"].shape == (0, 3)
    model, _ = build("Transpose", {"x": x}, {}, {}, 17, None, 1)
    assert mserve.load(model).predict(x).shape == (3, 0)


def test_one_hot_encoder_zeros_0_rejects_unknown():
    x = np.array([1, 9], np.int64)
    model, _ = build("OneHotEncoder", {"x": x}, {}, {"cats_int64s": [1, 2], "zeros": 0}, 17, 1, 1)
    m = mserve.load(model)
    np.testing.assert_array_equal(m.predict(np.array([2, 1], np.int64)), [[0, 1], [1, 0]])
    with pytest.raises(mserve.InvalidArgument, match="categories"):
        m.predict(x)


def test_invalid_regex_is_a_load_error():
    model, _ = build("RegexFullMatch", {"x": S("a")}, {}, {"pattern": "(unclosed"}, 20, None, 1)
    with pytest.raises(mserve.ModelLoadError, match="RE2"):
        mserve.load(model)


def test_cast_unparsable_string_is_invalid_argument():
    model, _ = build("Cast", {"x": S("1")}, {}, {"to": TensorProto.FLOAT}, 17, None, 1)
    with pytest.raises(mserve.InvalidArgument, match="cannot cast"):
        mserve.load(model).predict(S("abc"))
