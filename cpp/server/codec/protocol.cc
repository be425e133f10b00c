#include "server/codec/protocol.h"

namespace mserve::server {
namespace {

// One row per mserve type: TensorFlow name and number, KServe v2 name.
struct Names {
  DType dtype;
  const char* tf;
  int tf_number;
  const char* v2;
};
constexpr Names kNames[] = {
    {DType::kFloat32, "DT_FLOAT", 1, "FP32"},    {DType::kFloat64, "DT_DOUBLE", 2, "FP64"},
    {DType::kInt32, "DT_INT32", 3, "INT32"},     {DType::kUInt8, "DT_UINT8", 4, "UINT8"},
    {DType::kInt16, "DT_INT16", 5, "INT16"},     {DType::kInt8, "DT_INT8", 6, "INT8"},
    {DType::kString, "DT_STRING", 7, "BYTES"},   {DType::kInt64, "DT_INT64", 9, "INT64"},
    {DType::kBool, "DT_BOOL", 10, "BOOL"},       {DType::kUInt16, "DT_UINT16", 17, "UINT16"},
    {DType::kFloat16, "DT_HALF", 19, "FP16"},    {DType::kUInt32, "DT_UINT32", 22, "UINT32"},
    {DType::kUInt64, "DT_UINT64", 23, "UINT64"}, {DType::kBFloat16, "DT_BFLOAT16", 14, "BF16"},
};

const Names* find(DType t) {
  for (const Names& n : kNames)
    if (n.dtype == t) return &n;
  return nullptr;
}

}  // namespace

const char* tf_dtype_name(DType t) {
  const Names* n = find(t);
  return n ? n->tf : "DT_INVALID";
}

int tf_dtype_number(DType t) {
  const Names* n = find(t);
  return n ? n->tf_number : 0;
}

std::optional<DType> dtype_from_tf(int number) {
  for (const Names& n : kNames)
    if (n.tf_number == number) return n.dtype;
  return std::nullopt;
}

const char* tf_dtype_number_name(int number) {
  static const char* const kAll[] = {"DT_INVALID",  "DT_FLOAT",   "DT_DOUBLE", "DT_INT32",      "DT_UINT8",
                                     "DT_INT16",    "DT_INT8",    "DT_STRING", "DT_COMPLEX64",  "DT_INT64",
                                     "DT_BOOL",     "DT_QINT8",   "DT_QUINT8", "DT_QINT32",     "DT_BFLOAT16",
                                     "DT_QINT16",   "DT_QUINT16", "DT_UINT16", "DT_COMPLEX128", "DT_HALF",
                                     "DT_RESOURCE", "DT_VARIANT", "DT_UINT32", "DT_UINT64"};
  return number >= 0 && number < static_cast<int>(sizeof kAll / sizeof kAll[0]) ? kAll[number] : "an unknown dtype";
}

const char* v2_dtype(DType t) {
  const Names* n = find(t);
  return n ? n->v2 : "INVALID";
}

std::optional<DType> dtype_from_v2(std::string_view name) {
  for (const Names& n : kNames)
    if (name == n.v2) return n.dtype;
  return std::nullopt;
}

StatusOr<Tensor> decode_length_prefixed(const char* p, size_t size, const Shape& shape, const std::string& what) {
  // Each element takes at least its 4-byte length: a shape the data cannot hold is refused before
  // any element is made.
  MS_RETURN_IF_ERROR(aligned_bytes(DType::kString, shape).status());
  if (shape.numel() < 0 || static_cast<uint64_t>(shape.numel()) > size / 4)
    return InvalidArgument(what + ": " + std::to_string(size) + " bytes of BYTES data cannot hold shape " +
                           shape.str());
  MS_ASSIGN_OR_RETURN(Tensor t, Tensor::empty(DType::kString, shape));
  std::string* out = t.data<std::string>();
  size_t off = 0;
  for (int64_t i = 0; i < t.numel(); ++i) {
    if (size - off < 4) return InvalidArgument(what + ": BYTES data ends before element " + std::to_string(i));
    const auto* u = reinterpret_cast<const uint8_t*>(p + off);
    const uint32_t len = u[0] | u[1] << 8 | u[2] << 16 | static_cast<uint32_t>(u[3]) << 24;
    off += 4;
    if (len > size - off) return InvalidArgument(what + ": BYTES element " + std::to_string(i) + " runs past its data");
    out[i].assign(p + off, len);
    off += len;
  }
  if (off != size) return InvalidArgument(what + ": the BYTES data holds more than the shape's elements");
  return t;
}

void encode_length_prefixed(const Tensor& t, std::string* out) {
  const std::string* s = t.data<std::string>();
  for (int64_t i = 0; i < t.numel(); ++i) {
    const uint32_t n = static_cast<uint32_t>(s[i].size());
    const char len[4] = {char(n & 0xff), char((n >> 8) & 0xff), char((n >> 16) & 0xff), char(n >> 24)};
    out->append(len, 4);
    out->append(s[i]);
  }
}

}  // namespace mserve::server
