// Element types a Tensor can hold, and compile-time dispatch over them.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <type_traits>

#include <Eigen/Core>  // Eigen::half and Eigen::bfloat16 are the 16-bit float element types

namespace mserve {

enum class DType : uint8_t {
  kUndefined,
  kFloat32,
  kFloat64,
  kFloat16,
  kInt8,
  kInt16,
  kInt32,
  kInt64,
  kUInt8,
  kUInt16,
  kUInt32,
  kUInt64,
  kBool,
  // ONNX TensorProto.STRING: elements are std::string objects. String tensors live only in
  // owned string buffers (Buffer::allocate_strings), never in the arena or borrowed memory, and
  // are never copied with memcpy. The MS_SWITCH_* macros leave strings out, so every numeric
  // kernel rejects them; kernels that move strings say so with Kernel::supports_strings().
  kString,
  // bfloat16 is a storage type: tensors hold it, Cast/CastLike convert it (rounding to nearest
  // even, as ml_dtypes does), and every other kernel computes it in float32 (HalfAsFloat,
  // kernels/half_as_float.h). The MS_SWITCH_* macros leave it out, except MS_SWITCH_CONVERTIBLE.
  kBFloat16,
  // The narrow ONNX types (core/tensor/lowbit.h), stored unpacked, one byte per element (the
  // element types below, LowBit<D>, hold the code). Cast/CastLike convert them and
  // QuantizeLinear/DequantizeLinear produce and read them; kernels that only move bytes handle
  // them, every MS_SWITCH_* macro leaves them out so arithmetic kernels refuse them.
  kFloat8E4M3FN,
  kFloat8E4M3FNUZ,
  kFloat8E5M2,
  kFloat8E5M2FNUZ,
  kUInt4,
  kInt4,
  kFloat4E2M1,
  kFloat8E8M0,
  kUInt2,
  kInt2,
};
constexpr int kNumDTypes = static_cast<int>(DType::kInt2) + 1;
// The narrow types (float8, float4, 4- and 2-bit integers).
inline bool dtype_is_lowbit(DType t) { return t >= DType::kFloat8E4M3FN && t <= DType::kInt2; }

// One element of a narrow type: its code.
template <DType D>
struct LowBit {
  uint8_t bits;
};
using Float8E4M3FN = LowBit<DType::kFloat8E4M3FN>;
using Float8E4M3FNUZ = LowBit<DType::kFloat8E4M3FNUZ>;
using Float8E5M2 = LowBit<DType::kFloat8E5M2>;
using Float8E5M2FNUZ = LowBit<DType::kFloat8E5M2FNUZ>;
using UInt4 = LowBit<DType::kUInt4>;
using Int4 = LowBit<DType::kInt4>;
using Float4E2M1 = LowBit<DType::kFloat4E2M1>;
using Float8E8M0 = LowBit<DType::kFloat8E8M0>;
using UInt2 = LowBit<DType::kUInt2>;
using Int2 = LowBit<DType::kInt2>;

template <class T>
struct IsLowBit : std::false_type {};
template <DType D>
struct IsLowBit<LowBit<D>> : std::true_type {};
template <class T>
inline constexpr bool is_lowbit_v = IsLowBit<T>::value;

// The DType of an ONNX TensorProto.DataType number (the numbers are the ONNX spec's); kUndefined
// for 0 and for the types tensors do not hold (complex, float6).
DType dtype_of_onnx(int64_t code);
// The spec's name of a DataType number with the number ("COMPLEX64 (14)"), for messages.
std::string onnx_type_name(int64_t code);

// Bytes per element (sizeof(std::string) for kString).
size_t dtype_size(DType t);
// Lower-case numpy name ("float32", "bool", ...); "string" for kString, "undefined" for kUndefined.
const char* dtype_name(DType t);
// float32, float64 and float16: the types kernels compute in (bfloat16 is storage only).
bool dtype_is_float(DType t);
// float16 or bfloat16: the 16-bit floats a kernel may compute in float32 (HalfAsFloat).
inline bool dtype_is_half(DType t) { return t == DType::kFloat16 || t == DType::kBFloat16; }

template <class T>
struct DTypeOf;
#define MS_DTYPE_OF(T, D)             \
  template <>                         \
  struct DTypeOf<T> {                 \
    static constexpr DType value = D; \
  }
MS_DTYPE_OF(float, DType::kFloat32);
MS_DTYPE_OF(double, DType::kFloat64);
MS_DTYPE_OF(Eigen::half, DType::kFloat16);
MS_DTYPE_OF(Eigen::bfloat16, DType::kBFloat16);
MS_DTYPE_OF(int8_t, DType::kInt8);
MS_DTYPE_OF(int16_t, DType::kInt16);
MS_DTYPE_OF(int32_t, DType::kInt32);
MS_DTYPE_OF(int64_t, DType::kInt64);
MS_DTYPE_OF(uint8_t, DType::kUInt8);
MS_DTYPE_OF(uint16_t, DType::kUInt16);
MS_DTYPE_OF(uint32_t, DType::kUInt32);
MS_DTYPE_OF(uint64_t, DType::kUInt64);
MS_DTYPE_OF(bool, DType::kBool);
MS_DTYPE_OF(std::string, DType::kString);
MS_DTYPE_OF(Float8E4M3FN, DType::kFloat8E4M3FN);
MS_DTYPE_OF(Float8E4M3FNUZ, DType::kFloat8E4M3FNUZ);
MS_DTYPE_OF(Float8E5M2, DType::kFloat8E5M2);
MS_DTYPE_OF(Float8E5M2FNUZ, DType::kFloat8E5M2FNUZ);
MS_DTYPE_OF(UInt4, DType::kUInt4);
MS_DTYPE_OF(Int4, DType::kInt4);
MS_DTYPE_OF(Float4E2M1, DType::kFloat4E2M1);
MS_DTYPE_OF(Float8E8M0, DType::kFloat8E8M0);
MS_DTYPE_OF(UInt2, DType::kUInt2);
MS_DTYPE_OF(Int2, DType::kInt2);
#undef MS_DTYPE_OF

// Dispatch helpers: MS_SWITCH_<SET>(dtype, T, on_other, body...). `body` is compiled once per
// type with `T` bound to the element type; `on_other` runs for types outside the set.
#define MS_CASE(D, C, T, ...) \
  case ::mserve::DType::D: {  \
    using T = C;              \
    __VA_ARGS__;              \
  } break;

#define MS_FLOAT_CASES(T, ...)              \
  MS_CASE(kFloat32, float, T, __VA_ARGS__)  \
  MS_CASE(kFloat64, double, T, __VA_ARGS__) \
  MS_CASE(kFloat16, Eigen::half, T, __VA_ARGS__)

#define MS_INT_CASES(T, ...)                 \
  MS_CASE(kInt8, int8_t, T, __VA_ARGS__)     \
  MS_CASE(kInt16, int16_t, T, __VA_ARGS__)   \
  MS_CASE(kInt32, int32_t, T, __VA_ARGS__)   \
  MS_CASE(kInt64, int64_t, T, __VA_ARGS__)   \
  MS_CASE(kUInt8, uint8_t, T, __VA_ARGS__)   \
  MS_CASE(kUInt16, uint16_t, T, __VA_ARGS__) \
  MS_CASE(kUInt32, uint32_t, T, __VA_ARGS__) \
  MS_CASE(kUInt64, uint64_t, T, __VA_ARGS__)

// Floating types only.
#define MS_SWITCH_FLOAT(dt, T, OTHER, ...) \
  switch (dt) {                            \
    MS_FLOAT_CASES(T, __VA_ARGS__)         \
    default: OTHER;                        \
  }

// Floating and integer types (no bool).
#define MS_SWITCH_NUMERIC(dt, T, OTHER, ...) \
  switch (dt) {                              \
    MS_FLOAT_CASES(T, __VA_ARGS__)           \
    MS_INT_CASES(T, __VA_ARGS__)             \
    default: OTHER;                          \
  }

// Every numeric type, bool included (never kString).
#define MS_SWITCH_ALL(dt, T, OTHER, ...) \
  switch (dt) {                          \
    MS_FLOAT_CASES(T, __VA_ARGS__)       \
    MS_INT_CASES(T, __VA_ARGS__)         \
    MS_CASE(kBool, bool, T, __VA_ARGS__) \
    default: OTHER;                      \
  }

// Every numeric type and bfloat16: for code that only converts elements (Cast, CastLike,
// HalfAsFloat), never for arithmetic.
#define MS_SWITCH_CONVERTIBLE(dt, T, OTHER, ...)        \
  switch (dt) {                                         \
    MS_FLOAT_CASES(T, __VA_ARGS__)                      \
    MS_INT_CASES(T, __VA_ARGS__)                        \
    MS_CASE(kBool, bool, T, __VA_ARGS__)                \
    MS_CASE(kBFloat16, Eigen::bfloat16, T, __VA_ARGS__) \
    default: OTHER;                                     \
  }

// Element <-> double, the 16-bit floats through float (Eigen::half and Eigen::bfloat16 convert
// only to and from float).
template <class T>
inline constexpr bool is_16bit_float_v = std::is_same_v<T, Eigen::half> || std::is_same_v<T, Eigen::bfloat16>;
template <class T>
inline double to_double(T v) {
  if constexpr (is_16bit_float_v<T>)
    return static_cast<double>(static_cast<float>(v));
  else
    return static_cast<double>(v);
}
template <class T>
inline T from_double(double v) {
  if constexpr (is_16bit_float_v<T>)
    return T(static_cast<float>(v));
  else
    return static_cast<T>(v);
}

}  // namespace mserve
