"""The narrow ONNX element types (float8, float4, int4/uint4, int2/uint2: core/tensor/lowbit.h):
Cast/CastLike bit-exact against onnx.reference (which converts through ml_dtypes), every code
decoded against ml_dtypes, and packed initializers in the loader."""
import ml_dtypes
import numpy as np
import pytest
from onnx import TensorProto, helper
from onnx.reference import ReferenceEvaluator

import mserve

NARROW = {
    TensorProto.FLOAT8E4M3FN: ml_dtypes.float8_e4m3fn,
    TensorProto.FLOAT8E4M3FNUZ: ml_dtypes.float8_e4m3fnuz,
    TensorProto.FLOAT8E5M2: ml_dtypes.float8_e5m2,
    TensorProto.FLOAT8E5M2FNUZ: ml_dtypes.float8_e5m2fnuz,
    TensorProto.UINT4: ml_dtypes.uint4,
    TensorProto.INT4: ml_dtypes.int4,
    TensorProto.FLOAT4E2M1: ml_dtypes.float4_e2m1fn,
    TensorProto.FLOAT8E8M0: ml_dtypes.float8_e8m0fnu,
    TensorProto.UINT2: ml_dtypes.uint2,
    TensorProto.INT2: ml_dtypes.int2,
}
IDS = [TensorProto.DataType.Name(k) for k in NARROW]


def cast_model(src, to, opset=25, **attrs):
    node = helper.make_node("Cast", ["x"], ["y"], to=to, **attrs)
    g = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", src, None)],
                          [helper.make_tensor_value_info("y", to, None)])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])


def floats(n=4000, seed=0):
    rng = np.random.default_rng(seed)
    specials = [0.0, -0.0, np.nan, -np.nan, np.inf, -np.inf, 1e30, -1e30, 1e-30, -1e-30, 448, 464, 465, 480, 240,
                248, 57344, 61440, 65536, 6, 7, 8, 0.25, 0.75, 1.5, 2.5, -2.5, 7.5, -8.5, 17, -300]
    x = np.concatenate([specials, rng.standard_normal(n) * 10.0 ** rng.integers(-12, 12, n),
                        rng.integers(-40, 40, n) / 4.0]).astype(np.float32)
    return x


def same_bits(got, want):
    assert got.dtype == want.dtype
    np.testing.assert_array_equal(got.view(np.uint8), want.view(np.uint8))


@pytest.mark.parametrize("to", list(NARROW), ids=IDS)
@pytest.mark.parametrize("saturate", [0, 1])
@pytest.mark.parametrize("src", [np.float32, np.float16, np.float64])
def test_cast_to_narrow_matches_reference(to, saturate, src):
    x = floats().astype(src)
    model = cast_model(helper.np_dtype_to_tensor_dtype(np.dtype(src)), to, saturate=saturate)
    want = ReferenceEvaluator(model).run(None, {"x": x})[0]
    got = mserve.load(model.SerializeToString()).predict({"x": x})
    same_bits(got, want)


@pytest.mark.parametrize("mode", ["up", "down", "nearest"])
@pytest.mark.parametrize("saturate", [0, 1])
def test_cast_to_e8m0_round_modes(mode, saturate):
    x = np.concatenate([floats(), np.abs(floats(seed=1)), [3e38, 1.7e38, 1e-40, 2.0**-127]]).astype(np.float32)
    model = cast_model(TensorProto.FLOAT, TensorProto.FLOAT8E8M0, saturate=saturate, round_mode=mode)
    want = ReferenceEvaluator(model).run(None, {"x": x})[0]
    got = mserve.load(model.SerializeToString()).predict({"x": x})
    same_bits(got, want)


@pytest.mark.parametrize("src", list(NARROW), ids=IDS)
@pytest.mark.parametrize("to", [TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.DOUBLE, TensorProto.INT8])
def test_cast_every_code_from_narrow(src, to):
    dt = np.dtype(NARROW[src])
    bits = {8: 256, 4: 16, 2: 4}[8 if dt.name.startswith("float8") else 4 if "4" in dt.name else 2]
    x = np.arange(bits, dtype=np.uint8).view(dt)
    want_dt = helper.tensor_dtype_to_np_dtype(to)
    f = x.astype(np.float32)
    if to == TensorProto.INT8:
        x, f = x[np.isfinite(f)], f[np.isfinite(f)]  # NaN and inf have no integer value
        want = np.trunc(f).astype(np.int8) if f.size and np.abs(f).max() < 128 else None
        if want is None:
            x = x[np.abs(f) < 128]
            want = np.trunc(f[np.abs(f) < 128]).astype(np.int8)
    else:
        want = x.astype(want_dt)  # ml_dtypes
    got = mserve.load(cast_model(src, to).SerializeToString()).predict({"x": x})
    assert got.dtype == want.dtype
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("src", list(NARROW), ids=IDS)
@pytest.mark.parametrize("to", list(NARROW), ids=IDS)
def test_cast_narrow_to_narrow(src, to):
    # Finite values (ml_dtypes' direct conversions between its own types differ from the float
    # path on NaN signs and on inf to the integers); a Cast to the same type is the identity.
    if src == to:
        pytest.skip("same type")
    dt = np.dtype(NARROW[src])
    x = np.arange(256 if dt.name.startswith("float8") else 16 if "4" in dt.name else 4, dtype=np.uint8).view(dt)
    x = x[np.isfinite(x.astype(np.float32))]
    model = cast_model(src, to, saturate=1)
    # the reference from the exact float32 values (ml_dtypes has no int4 -> int2 cast)
    want = ReferenceEvaluator(cast_model(TensorProto.FLOAT, to, saturate=1)).run(None, {"x": x.astype(np.float32)})[0]
    got = mserve.load(model.SerializeToString()).predict({"x": x})
    same_bits(got, want)


def test_castlike_reads_saturate():
    x = np.array([1000.0, -1e9, np.inf, 3.0], np.float32)
    node = helper.make_node("CastLike", ["x", "like"], ["y"], saturate=0)
    g = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, None),
                                        helper.make_tensor_value_info("like", TensorProto.FLOAT8E4M3FN, None)],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT8E4M3FN, None)])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 21)])
    like = np.zeros(1, ml_dtypes.float8_e4m3fn)
    got = mserve.load(model.SerializeToString()).predict({"x": x, "like": like})
    same_bits(got, x.astype(ml_dtypes.float8_e4m3fn))  # no saturation: out of range is NaN


def test_cast_narrow_to_string_is_refused():
    model = cast_model(TensorProto.INT4, TensorProto.STRING)
    m = mserve.load(model.SerializeToString())
    with pytest.raises(mserve.Error, match="string"):
        m.predict({"x": np.zeros(3, ml_dtypes.int4)})


def test_bad_round_mode_is_refused():
    with pytest.raises(mserve.Error, match="round_mode"):
        mserve.load(cast_model(TensorProto.FLOAT, TensorProto.FLOAT8E8M0, round_mode="sideways").SerializeToString())


# --- the loader: packed initializers

def initializer_model(tensor, to):
    node = helper.make_node("Identity", ["w"], ["y"])
    g = helper.make_graph([node], "g", [], [helper.make_tensor_value_info("y", to, None)], initializer=[tensor])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 21)])


@pytest.mark.parametrize("to", [TensorProto.INT4, TensorProto.UINT4, TensorProto.FLOAT4E2M1, TensorProto.INT2,
                                TensorProto.UINT2, TensorProto.FLOAT8E4M3FN, TensorProto.FLOAT8E8M0])
@pytest.mark.parametrize("n", [1, 5, 7, 10])
@pytest.mark.parametrize("raw", [True, False])
def test_packed_initializer(to, n, raw):
    dt = np.dtype(NARROW[to])
    codes = np.random.default_rng(n).integers(0, 256, n).astype(np.uint8)
    width = 8 if dt.name.startswith("float8") else 4 if "4" in dt.name else 2
    codes &= (1 << width) - 1
    if to == TensorProto.FLOAT8E8M0:
        codes[codes == 255] = 1  # keep NaN out of the comparison
    values = codes.view(dt).reshape(1, n)
    tensor = helper.make_tensor("w", to, [1, n], values.astype(np.float32).ravel().tolist())
    if raw:
        from onnx import numpy_helper
        tensor = numpy_helper.from_array(values, "w")
    got = mserve.load(initializer_model(tensor, to).SerializeToString()).predict({})
    assert got.dtype == dt and got.shape == (1, n)
    np.testing.assert_array_equal(got.view(np.uint8) & ((1 << width) - 1), codes.reshape(1, n))


@pytest.mark.parametrize("to, nbytes", [(TensorProto.INT4, 3), (TensorProto.INT4, 5), (TensorProto.INT4, 7),
                                        (TensorProto.UINT2, 3), (TensorProto.UINT2, 1)])
def test_packed_initializer_of_wrong_size_is_refused(to, nbytes):
    tensor = TensorProto(name="w", data_type=to, dims=[7], raw_data=b"\x11" * nbytes)  # 7 need 4 or 2 bytes
    with pytest.raises(mserve.Error, match="raw data holds"):
        mserve.load(initializer_model(tensor, to).SerializeToString())


def test_arithmetic_on_narrow_types_is_refused():
    node = helper.make_node("Add", ["x", "x"], ["y"])
    g = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.INT4, [3])],
                          [helper.make_tensor_value_info("y", TensorProto.INT4, [3])])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 21)])
    with pytest.raises(mserve.Error, match="int4"):
        m = mserve.load(model.SerializeToString())
        m.predict({"x": np.zeros(3, ml_dtypes.int4)})


def test_reshape_moves_int4():
    node = helper.make_node("Transpose", ["x"], ["y"], perm=[1, 0])
    g = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.INT4, [2, 3])],
                          [helper.make_tensor_value_info("y", TensorProto.INT4, [3, 2])])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 21)])
    x = np.array([[-8, -1, 0], [1, 5, 7]], np.int8).astype(ml_dtypes.int4)
    got = mserve.load(model.SerializeToString()).predict({"x": x})
    np.testing.assert_array_equal(got.astype(np.int8), x.T.astype(np.int8))
