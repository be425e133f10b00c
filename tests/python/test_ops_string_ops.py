"""StringNormalizer, StringConcat, StringSplit, RegexFullMatch (kernels/ops/string_ops.cc) on one-node
models, against onnxruntime (onnx.reference where onnxruntime lacks a kernel); strings exactly."""
import numpy as np
import pytest

import mserve
from op_harness import Cases, build_model, strings

CASES = Cases()
case = CASES.add

WORDS = strings("monday", "Tuesday", "", "Straße", "école", "ÉCOLE", "a b", "MONDAY", "x,y,,z", "日本語")
# --- StringNormalizer (10). mserve always maps case with C.UTF-8 rules; onnxruntime is told to
# use that locale too (its default, en_US.UTF-8, need not be installed).
LOC = {"locale": "C.UTF-8"}
for action in ["NONE", "LOWER", "UPPER"]:
    case("StringNormalizer-" + action, "StringNormalizer", {"x": WORDS}, attrs={"case_change_action": action, **LOC},
         opsets=(10, 20))
    case("StringNormalizer-2d-" + action, "StringNormalizer", {"x": strings("One", "TWO", "three", shape=(1, 3))},
         attrs={"case_change_action": action, "stopwords": ["two"], **LOC})
case("StringNormalizer-stop-sensitive", "StringNormalizer", {"x": WORDS},
     attrs={"stopwords": ["monday", "école"], "is_case_sensitive": 1, "case_change_action": "UPPER", **LOC})
case("StringNormalizer-stop-insensitive", "StringNormalizer", {"x": WORDS},
     attrs={"stopwords": ["MONDAY", "École", "a b"], "is_case_sensitive": 0, "case_change_action": "LOWER", **LOC})
case("StringNormalizer-all-dropped", "StringNormalizer", {"x": strings("a", "A")},
     attrs={"stopwords": ["a"], "case_change_action": "LOWER", **LOC})
case("StringNormalizer-all-dropped-2d", "StringNormalizer", {"x": strings("a", "A", shape=(1, 2))},
     attrs={"stopwords": ["a"], **LOC})

# --- StringConcat (20)
case("StringConcat-same", "StringConcat",
     {"a": strings("a", "bc", "", "日本", shape=(2, 2)), "b": strings("1", "", "x", "語", shape=(2, 2))}, opsets=(20,))
case("StringConcat-bcast", "StringConcat",
     {"a": strings("a", "b", "c", shape=(3, 1)), "b": strings("_1", "_2", shape=(2,))},
     opsets=(20,))
case("StringConcat-scalar", "StringConcat", {"a": WORDS}, {"b": np.array("!", dtype=object)}, opsets=(20,))

# --- StringSplit (20)
SPLIT = strings("a,b,c", "a,,b", "", ",", "no delimiter here", "  lead and  trail  ", shape=(2, 3))
case("StringSplit-comma", "StringSplit", {"x": SPLIT}, attrs={"delimiter": ","}, opsets=(20,), outputs=2)
case("StringSplit-comma-max1", "StringSplit", {"x": SPLIT}, attrs={"delimiter": ",", "maxsplit": 1}, opsets=(20,),
     outputs=2)
case("StringSplit-whitespace", "StringSplit", {"x": SPLIT}, opsets=(20,), outputs=2)
case("StringSplit-whitespace-max1", "StringSplit", {"x": SPLIT}, attrs={"maxsplit": 1}, opsets=(20,), outputs=2)
case("StringSplit-multichar", "StringSplit", {"x": strings("a::b::::c", "::", "x")}, attrs={"delimiter": "::"},
     opsets=(20,), outputs=2)

# --- RegexFullMatch (20)
case("RegexFullMatch-digits", "RegexFullMatch", {"x": strings("123", "12a", "", "007", shape=(2, 2))},
     attrs={"pattern": r"\d+"}, opsets=(20,))
case("RegexFullMatch-email", "RegexFullMatch",
     {"x": strings("someone@example.com", "a@b", "bad@", "x.y@mail.example.org")},
     attrs={"pattern": r"[\w.+-]+@([\w-]+\.)+[a-z]{2,}"}, opsets=(20,))
case("RegexFullMatch-alternation", "RegexFullMatch", {"x": WORDS}, attrs={"pattern": "(?i)monday|tuesday"},
     opsets=(20,))


@pytest.mark.parametrize("c", CASES)
def test_op_matches_oracle(c):
    c.check()


def test_zero_sized_string_tensors():
    x = np.zeros((0, 3), dtype=object)
    model, _ = build_model("StringSplit", {"x": x}, attrs={"delimiter": ","}, opset=20, outputs=2)
    got = mserve.load(model).predict(x)
    assert got["y0"].shape == (0, 3, 0) and got["y1"].shape == (0, 3)
    model, _ = build_model("Transpose", {"x": x})
    assert mserve.load(model).predict(x).shape == (3, 0)


def test_invalid_regex_is_a_load_error():
    model, _ = build_model("RegexFullMatch", {"x": strings("a")}, attrs={"pattern": "(unclosed"}, opset=20)
    with pytest.raises(mserve.ModelLoadError, match="RE2"):
        mserve.load(model)
