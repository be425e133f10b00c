// What the REST and gRPC front ends share: element type names and numbers of the two wire
// protocols (TensorFlow Serving, KServe v2) and the length-prefixed BYTES encoding.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "core/status.h"
#include "core/tensor/tensor.h"

namespace mserve::server {

// What the server reports about itself (KServe v2 server and model metadata).
inline constexpr const char* kServerName = "mserve";
inline constexpr const char* kServerVersion = MSERVE_VERSION;   // pyproject.toml's, set by CMakeLists.txt
inline constexpr const char* kV2Platform = "onnxruntime_onnx";  // what v2 clients expect of ONNX models

// TensorFlow's DataType: "DT_FLOAT", ... ("DT_INVALID" for types it lacks) and its number.
const char* tf_dtype_name(DType t);
int tf_dtype_number(DType t);
// The mserve type for a DataType number; nullopt for types mserve does not hold.
std::optional<DType> dtype_from_tf(int number);
const char* tf_dtype_number_name(int number);  // "DT_COMPLEX64", ... for error messages

// KServe v2 datatype names: "FP32", "INT64", "BYTES", ... ("INVALID" for none).
const char* v2_dtype(DType t);
std::optional<DType> dtype_from_v2(std::string_view name);

// BYTES elements as the KServe binary extension and raw gRPC contents carry them: each a 4-byte
// little-endian length, then its bytes. Decoding checks every length against the data and
// that the data holds exactly the shape's elements.
StatusOr<Tensor> decode_length_prefixed(const char* p, size_t size, const Shape& shape, const std::string& what);
void encode_length_prefixed(const Tensor& t, std::string* out);

}  // namespace mserve::server
