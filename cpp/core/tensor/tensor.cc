#include "core/tensor/tensor.h"

#include "core/tensor/lowbit.h"

#include <cmath>
#include <cstdlib>
#include <limits>
#include <new>
#include <sstream>

namespace mserve {

size_t dtype_size(DType t) {
  switch (t) {
    case DType::kFloat64:
    case DType::kInt64:
    case DType::kUInt64: return 8;
    case DType::kFloat32:
    case DType::kInt32:
    case DType::kUInt32: return 4;
    case DType::kFloat16:
    case DType::kBFloat16:
    case DType::kInt16:
    case DType::kUInt16: return 2;
    case DType::kInt8:
    case DType::kUInt8:
    case DType::kBool:
    case DType::kFloat8E4M3FN:  // the narrow types are stored one byte per element
    case DType::kFloat8E4M3FNUZ:
    case DType::kFloat8E5M2:
    case DType::kFloat8E5M2FNUZ:
    case DType::kUInt4:
    case DType::kInt4:
    case DType::kFloat4E2M1:
    case DType::kFloat8E8M0:
    case DType::kUInt2:
    case DType::kInt2: return 1;
    case DType::kString: return sizeof(std::string);
    case DType::kUndefined: return 0;
  }
  return 0;
}

const char* dtype_name(DType t) {
  switch (t) {
    case DType::kFloat32: return "float32";
    case DType::kFloat64: return "float64";
    case DType::kFloat16: return "float16";
    case DType::kBFloat16: return "bfloat16";
    case DType::kInt8: return "int8";
    case DType::kInt16: return "int16";
    case DType::kInt32: return "int32";
    case DType::kInt64: return "int64";
    case DType::kUInt8: return "uint8";
    case DType::kUInt16: return "uint16";
    case DType::kUInt32: return "uint32";
    case DType::kUInt64: return "uint64";
    case DType::kBool: return "bool";
    case DType::kString: return "string";
    case DType::kFloat8E4M3FN: return "float8_e4m3fn";  // the narrow types by their ml_dtypes names
    case DType::kFloat8E4M3FNUZ: return "float8_e4m3fnuz";
    case DType::kFloat8E5M2: return "float8_e5m2";
    case DType::kFloat8E5M2FNUZ: return "float8_e5m2fnuz";
    case DType::kUInt4: return "uint4";
    case DType::kInt4: return "int4";
    case DType::kFloat4E2M1: return "float4_e2m1fn";
    case DType::kFloat8E8M0: return "float8_e8m0fnu";
    case DType::kUInt2: return "uint2";
    case DType::kInt2: return "int2";
    case DType::kUndefined: return "undefined";
  }
  return "undefined";
}

namespace {
// Indexed by ONNX DataType number (onnx.proto's TensorProto.DataType).
constexpr struct {
  const char* name;
  DType dtype;
} kOnnxTypes[] = {
    {"UNDEFINED", DType::kUndefined},
    {"FLOAT", DType::kFloat32},
    {"UINT8", DType::kUInt8},
    {"INT8", DType::kInt8},
    {"UINT16", DType::kUInt16},
    {"INT16", DType::kInt16},
    {"INT32", DType::kInt32},
    {"INT64", DType::kInt64},
    {"STRING", DType::kString},
    {"BOOL", DType::kBool},
    {"FLOAT16", DType::kFloat16},
    {"DOUBLE", DType::kFloat64},
    {"UINT32", DType::kUInt32},
    {"UINT64", DType::kUInt64},
    {"COMPLEX64", DType::kUndefined},
    {"COMPLEX128", DType::kUndefined},
    {"BFLOAT16", DType::kBFloat16},
    {"FLOAT8E4M3FN", DType::kFloat8E4M3FN},
    {"FLOAT8E4M3FNUZ", DType::kFloat8E4M3FNUZ},
    {"FLOAT8E5M2", DType::kFloat8E5M2},
    {"FLOAT8E5M2FNUZ", DType::kFloat8E5M2FNUZ},
    {"UINT4", DType::kUInt4},
    {"INT4", DType::kInt4},
    {"FLOAT4E2M1", DType::kFloat4E2M1},
    {"FLOAT8E8M0", DType::kFloat8E8M0},
    {"UINT2", DType::kUInt2},
    {"INT2", DType::kInt2},
    {"FLOAT6E2M3", DType::kUndefined},
    {"FLOAT6E3M2", DType::kUndefined},
};
constexpr int64_t kNumOnnxTypes = sizeof(kOnnxTypes) / sizeof(kOnnxTypes[0]);
}  // namespace

DType dtype_of_onnx(int64_t code) {
  return code >= 0 && code < kNumOnnxTypes ? kOnnxTypes[code].dtype : DType::kUndefined;
}

std::string onnx_type_name(int64_t code) {
  if (code >= 0 && code < kNumOnnxTypes) return std::string(kOnnxTypes[code].name) + " (" + std::to_string(code) + ")";
  return "type " + std::to_string(code);
}

bool dtype_is_float(DType t) { return t == DType::kFloat32 || t == DType::kFloat64 || t == DType::kFloat16; }

// ---- Shape ----

void Shape::insert(int pos, int64_t d) {
  for (int i = rank_; i > pos; --i) dims_[i] = dims_[i - 1];
  dims_[pos] = d;
  ++rank_;
}

void Shape::erase(int pos) {
  for (int i = pos; i + 1 < rank_; ++i) dims_[i] = dims_[i + 1];
  --rank_;
}

void Shape::resize(int rank, int64_t fill) {
  for (int i = rank_; i < rank; ++i) dims_[i] = fill;
  rank_ = rank;
}

int64_t Shape::numel() const { return prod(0, rank_); }

int64_t Shape::prod(int from, int to) const {
  int64_t n = 1;
  for (int i = from; i < to; ++i) n *= dims_[i];
  return n;
}

std::string Shape::str() const {
  std::string s = "[";
  for (int i = 0; i < rank_; ++i) {
    if (i) s += ", ";
    s += std::to_string(dims_[i]);
  }
  return s + "]";
}

bool Shape::operator==(const Shape& o) const {
  if (rank_ != o.rank_) return false;
  for (int i = 0; i < rank_; ++i)
    if (dims_[i] != o.dims_[i]) return false;
  return true;
}

// ---- Buffer ----

std::shared_ptr<Buffer> Buffer::allocate(size_t bytes) {
  size_t rounded = (bytes + kAlignment - 1) / kAlignment * kAlignment;
  void* p = std::aligned_alloc(kAlignment, rounded ? rounded : kAlignment);
  if (!p) return nullptr;
  std::shared_ptr<Buffer> b(new Buffer());
  b->data_ = p;
  b->size_ = bytes;
  b->owned_ = true;
  return b;
}

std::shared_ptr<Buffer> Buffer::borrow(void* data, size_t bytes, std::shared_ptr<void> keepalive) {
  std::shared_ptr<Buffer> b(new Buffer());
  b->data_ = data;
  b->size_ = bytes;
  b->keepalive_ = std::move(keepalive);
  return b;
}

std::shared_ptr<Buffer> Buffer::allocate_strings(int64_t count) {
  if (count < 0) return nullptr;
  auto b = allocate(static_cast<size_t>(count) * sizeof(std::string));
  if (!b) return nullptr;
  auto* p = static_cast<std::string*>(b->data_);
  for (int64_t i = 0; i < count; ++i) new (p + i) std::string();  // noexcept
  b->strings_ = count;
  return b;
}

Buffer::~Buffer() {
  auto* p = static_cast<std::string*>(data_);
  for (int64_t i = 0; i < strings_; ++i) p[i].~basic_string();
  if (owned_) std::free(data_);
}

// ---- Tensor ----

StatusOr<size_t> aligned_bytes(DType dtype, const Shape& shape) {
  size_t n = 1;
  for (int64_t d : shape) {
    if (d < 0) return InvalidArgument("negative dimension in shape " + shape.str());
    if (d != 0 && n > std::numeric_limits<size_t>::max() / 16 / static_cast<size_t>(d))
      return InvalidArgument("shape " + shape.str() + " is too large");
    n *= static_cast<size_t>(d);
  }
  n *= dtype_size(dtype);
  return (n + kAlignment - 1) / kAlignment * kAlignment;
}

StatusOr<Tensor> Tensor::empty(DType dtype, const Shape& shape) {
  MS_ASSIGN_OR_RETURN(size_t bytes, aligned_bytes(dtype, shape));
  auto buf = dtype == DType::kString ? Buffer::allocate_strings(shape.numel()) : Buffer::allocate(bytes);
  if (!buf) return InvalidArgument("out of memory allocating " + std::to_string(bytes) + " bytes");
  void* p = buf->data();
  return Tensor(dtype, shape, std::move(buf), p);
}

const char* device_name(DeviceType d) {
  switch (d) {
    case DeviceType::kCpu: return "cpu";
    case DeviceType::kCuda: return "cuda";
    case DeviceType::kMock: return "mock";
  }
  return "cpu";
}

StatusOr<Tensor> Tensor::clone() const {
  if (!on_host()) return InvalidArgument(std::string("clone() of a tensor on device '") + device_name(device_) + "'");
  MS_ASSIGN_OR_RETURN(Tensor t, empty(dtype_, shape_));
  copy_data(*this, t);
  return t;
}

void copy_data(const Tensor& src, Tensor& dst) {
  if (src.raw() == dst.raw()) return;
  if (src.dtype() == DType::kString) {
    for (int64_t i = 0; i < src.numel(); ++i) dst.str(i) = src.str(i);
  } else if (src.nbytes()) {
    std::memcpy(dst.raw(), src.raw(), src.nbytes());
  }
}

int64_t Tensor::int_at(int64_t i) const {
  if (dtype_is_lowbit(dtype_)) {
    const float v = lowbit_to_float(dtype_, data<uint8_t>()[i]);
    return std::isfinite(v) ? static_cast<int64_t>(v) : 0;
  }
  MS_SWITCH_CONVERTIBLE(dtype_, T, return 0, {
    if constexpr (is_16bit_float_v<T>)
      return static_cast<int64_t>(static_cast<float>(data<T>()[i]));
    else
      return static_cast<int64_t>(data<T>()[i]);  // exact for every int64
  });
  return 0;
}

double Tensor::float_at(int64_t i) const {
  if (dtype_is_lowbit(dtype_)) return lowbit_to_float(dtype_, data<uint8_t>()[i]);
  MS_SWITCH_CONVERTIBLE(dtype_, T, return 0, return to_double(data<T>()[i]));
  return 0;
}

std::string Tensor::desc() const { return std::string(dtype_name(dtype_)) + shape_.str(); }

}  // namespace mserve
