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
};
constexpr int kNumDTypes = static_cast<int>(DType::kBFloat16) + 1;

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
