"""Cast and CastLike (kernels/ops/cast.cc) on one-node models, between numeric types and to and from
strings, against onnxruntime; strings exactly."""
import numpy as np
import pytest
from onnx import TensorProto

import mserve
from op_harness import Cases, build_model, random_inputs, strings

rand = random_inputs(0)
CASES = Cases()
case = CASES.add

for to, dt in [(1, np.float32), (11, np.float64), (10, np.float16), (7, np.int64), (6, np.int32), (3, np.int8),
               (2, np.uint8), (9, np.bool_), (12, np.uint32)]:
    case(f"Cast-f32-to-{np.dtype(dt).name}", "Cast", {"x": rand(3, 5, lo=-3, hi=200)}, attrs={"to": to},
         opsets=(6, 13, 19, 21))
case("Cast-int-to-f32", "Cast", {"x": rand(9, dtype=np.int64, lo=-9, hi=9)}, attrs={"to": 1})
case("Cast-bool-to-f32", "Cast", {"x": rand(9, dtype=np.int64, lo=0, hi=1).astype(bool)}, attrs={"to": 1})
case("Cast-f16-to-f32", "Cast", {"x": rand(9).astype(np.float16)}, attrs={"to": 1})
WORDS = strings("monday", "Tuesday", "", "Straße", "école", "ÉCOLE", "a b", "MONDAY", "x,y,,z", "日本語")
# --- Cast to and from strings
FLOATS = np.array([0.0, -0.0, 1.0, 0.1, -2.5, 1e-5, 123456789.0, 3.4e38, np.nan, np.inf, -np.inf, 1 / 3], np.float32)
case("Cast-float-string", "Cast", {"x": FLOATS}, attrs={"to": TensorProto.STRING}, opsets=(9, 13, 19))
case("Cast-double-string", "Cast", {"x": FLOATS.astype(np.float64) / 7}, attrs={"to": TensorProto.STRING})
case("Cast-half-string", "Cast", {"x": np.array([0.1, 2.0, -3.5, 65504], np.float16)}, attrs={"to": TensorProto.STRING})
case("Cast-int64-string", "Cast", {"x": np.array([-5, 0, 2**62, -(2**63)], np.int64)}, attrs={"to": TensorProto.STRING})
case("Cast-int8-string", "Cast", {"x": np.array([-128, 0, 127], np.int8)}, attrs={"to": TensorProto.STRING})
case("Cast-uint32-string", "Cast", {"x": np.array([0, 4294967295], np.uint32)}, attrs={"to": TensorProto.STRING})
case("Cast-bool-string", "Cast", {"x": np.array([True, False])}, attrs={"to": TensorProto.STRING})
NUMS = strings("1.5", "-2", "1e3", "  7", "NaN", "inf", "-INF", "+INF", "0x10", "3.25abc", "-0", "1e-40")
case("Cast-string-float", "Cast", {"x": NUMS}, attrs={"to": TensorProto.FLOAT}, opsets=(9, 19))
case("Cast-string-double", "Cast", {"x": NUMS}, attrs={"to": TensorProto.DOUBLE})
case("Cast-string-int64", "Cast", {"x": strings("12", "-3", "+4", "1e3", "7.9", " 42", "9223372036854775807")},
     attrs={"to": TensorProto.INT64})
case("Cast-string-int32", "Cast", {"x": strings("12", "-3", "100000")}, attrs={"to": TensorProto.INT32})
case("Cast-string-uint8", "Cast", {"x": strings("0", "255", "7")}, attrs={"to": TensorProto.UINT8})
case("Cast-string-string", "Cast", {"x": WORDS}, attrs={"to": TensorProto.STRING})
# --- CastLike: to the dtype of its second input
for src, dst in [(np.float32, np.float64), (np.float32, np.int32), (np.float64, np.float16), (np.float16, np.float32),
                 (np.int64, np.float32), (np.float32, np.bool_), (np.bool_, np.float32), (np.int32, np.int8)]:
    name = f"CastLike-{np.dtype(src).name}-{np.dtype(dst).name}"
    case(name, "CastLike", {"x": rand(3, 4, dtype=src, lo=-20, hi=20)}, {"t": np.zeros(1, dst)}, opsets=(15, 19, 21))
case("CastLike-float-string", "CastLike", {"x": FLOATS[:6]}, {"like": strings("")}, opsets=(15,))
case("CastLike-string-double", "CastLike", {"x": NUMS[:4]}, {"like": np.array([0.0])}, opsets=(15,))


@pytest.mark.parametrize("c", CASES)
def test_op_matches_oracle(c):
    c.check()


def test_cast_unparsable_string_is_invalid_argument():
    model, _ = build_model("Cast", {"x": strings("1")}, attrs={"to": TensorProto.FLOAT})
    with pytest.raises(mserve.InvalidArgument, match="cannot cast"):
        mserve.load(model).predict(strings("abc"))


@pytest.mark.parametrize("src,dst", [(np.float32, np.int32), (np.float16, "bfloat16"), (np.uint64, np.float64),
                                     (np.int8, np.uint8), (np.uint16, np.float16), ("int4", "uint4"),
                                     ("uint4", "int4"), ("float8_e4m3fn", np.uint8)])
def test_bitcast_keeps_the_bits(src, dst):
    import ml_dtypes
    from onnx import helper
    src = np.dtype(getattr(ml_dtypes, src)) if isinstance(src, str) else np.dtype(src)
    dst = np.dtype(getattr(ml_dtypes, dst)) if isinstance(dst, str) else np.dtype(dst)
    raw = np.random.default_rng(3).integers(0, 256, size=24, dtype=np.uint8)
    x = raw.view(src) if src.itemsize > 1 or src.kind != "V" else raw.astype(np.float32).astype(src)
    if src.name in ("int4", "uint4"):
        x = (raw % 16).astype(np.int64).astype(np.int8).astype(np.float32).astype(src)
    model, _ = build_model("BitCast", {"x": x}, attrs={"to": helper.np_dtype_to_tensor_dtype(dst)}, opset=26)
    got = mserve.load(model).predict(x)
    assert got.dtype == dst and got.shape == x.shape
    if src.name in ("int4", "uint4"):  # 4-bit codes: the same low nibble, read in the other signedness
        want = (x.astype(np.int64) & 15).astype(np.int64)
        want = np.where(want >= 8, want - 16, want) if dst.name == "int4" else want
        np.testing.assert_array_equal(got.astype(np.int64), want)
    else:
        np.testing.assert_array_equal(got.view(np.uint8), x.view(np.uint8))


def test_bitcast_refuses_different_widths_and_reads_bytes_as_bools():
    from onnx import helper
    model, _ = build_model("BitCast", {"x": np.zeros(3, np.float32)}, attrs={"to": TensorProto.INT64}, opset=26)
    with pytest.raises(mserve.Error, match="widths must be equal"):
        mserve.load(model).predict(np.zeros(3, np.float32))
    model, _ = build_model("BitCast", {"x": np.zeros(3, np.uint8)}, attrs={"to": helper.np_dtype_to_tensor_dtype(
        np.dtype(np.bool_))}, opset=26)
    np.testing.assert_array_equal(mserve.load(model).predict(np.array([0, 1, 7], np.uint8)), [False, True, True])
