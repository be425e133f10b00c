// Tensor: dtype + shape + a view of memory.
//
// Ownership: a Tensor either holds a shared Buffer (owned, 64-byte aligned memory; a borrowed
// numpy buffer; a slice of an mmapped file) or is a plain view (buffer() == nullptr) whose memory
// is kept alive by someone else — the executor's arena for intermediates. Copying a Tensor copies
// the view, never the bytes. Tensors are not synchronized; a const Tensor may be read from many
// threads at once.
//
// Device: every tensor carries the device its bytes live on (kCpu unless a backend made it).
// Only host tensors may be read or written by host code (data(), str(), int_at(), clone(),
// copy_data); a device tensor's bytes are reached through its backend.
//
// String tensors (DType::kString) always hold an owned string buffer (allocate_strings): its
// elements are constructed std::string objects, destroyed with the buffer. Copy them with
// copy_data / clone (element-wise assignment), never with memcpy.
#pragma once
#include <cstring>
#include <functional>
#include <memory>
#include <string>

#include "core/status.h"
#include "core/tensor/dtype.h"
#include "core/tensor/shape.h"

namespace mserve {

constexpr size_t kAlignment = 64;

// Where bytes live and kernels run. kMock is host memory that the runtime treats as a separate
// device (device/mock.h), so device placement is tested on machines without a GPU.
enum class DeviceType : uint8_t { kCpu, kCuda, kMock };
const char* device_name(DeviceType d);  // "cpu", "cuda", "mock"

class Buffer {
 public:
  // Owned memory, 64-byte aligned, uninitialized. Returns nullptr when the allocation fails.
  static std::shared_ptr<Buffer> allocate(size_t bytes);
  // Owned memory holding `count` empty std::string objects (destroyed with the buffer).
  // Returns nullptr when the allocation fails.
  static std::shared_ptr<Buffer> allocate_strings(int64_t count);
  // Borrowed memory; `keepalive` is released when the last Tensor referencing it goes away.
  static std::shared_ptr<Buffer> borrow(void* data, size_t bytes, std::shared_ptr<void> keepalive);
  ~Buffer();
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  void* data() const { return data_; }
  size_t size() const { return size_; }
  bool owned() const { return owned_; }

 private:
  Buffer() = default;
  void* data_ = nullptr;
  size_t size_ = 0;
  bool owned_ = false;
  int64_t strings_ = 0;  // constructed std::string objects at data_ (allocate_strings)
  std::shared_ptr<void> keepalive_;
};

class Tensor {
 public:
  Tensor() = default;
  // A view of `data` (not owned).
  Tensor(DType dtype, const Shape& shape, void* data, DeviceType device = DeviceType::kCpu)
      : dtype_(dtype), device_(device), shape_(shape), data_(data) {}
  // A view into `buffer` at `data`, sharing its ownership.
  Tensor(DType dtype, const Shape& shape, std::shared_ptr<Buffer> buffer, void* data,
         DeviceType device = DeviceType::kCpu)
      : dtype_(dtype), device_(device), shape_(shape), buffer_(std::move(buffer)), data_(data) {}
  // Newly allocated owned tensor (uninitialized; empty strings for kString); fails on bad
  // shapes or out of memory.
  static StatusOr<Tensor> empty(DType dtype, const Shape& shape);
  // Owned tensor from values (scalar when shape is empty).
  template <class T>
  static Tensor from(const Shape& shape, std::initializer_list<T> values);

  DType dtype() const { return dtype_; }
  DeviceType device() const { return device_; }
  bool on_host() const { return device_ == DeviceType::kCpu; }
  const Shape& shape() const { return shape_; }
  int rank() const { return shape_.rank(); }
  int64_t dim(int i) const { return shape_[i]; }
  int64_t numel() const { return shape_.numel(); }
  size_t nbytes() const { return static_cast<size_t>(numel()) * dtype_size(dtype_); }
  bool defined() const { return dtype_ != DType::kUndefined; }
  void* raw() const { return data_; }
  template <class T>
  T* data() const {
    return static_cast<T*>(data_);
  }
  const std::shared_ptr<Buffer>& buffer() const { return buffer_; }

  // Same bytes, new shape (numel must match). Shares ownership.
  Tensor reshaped(const Shape& shape) const { return Tensor(dtype_, shape, buffer_, data_, device_); }
  // Deep copy of a host tensor into an owned buffer (strings copied element-wise); an error for
  // a device tensor.
  StatusOr<Tensor> clone() const;
  // Element i of a kString tensor.
  const std::string& str(int64_t i) const { return static_cast<const std::string*>(data_)[i]; }
  std::string& str(int64_t i) { return static_cast<std::string*>(data_)[i]; }
  // Reads element i of an integer or float tensor as int64 / double (any dtype).
  int64_t int_at(int64_t i) const;
  double float_at(int64_t i) const;
  std::string desc() const;  // "float32[2, 3]"

 private:
  DType dtype_ = DType::kUndefined;
  DeviceType device_ = DeviceType::kCpu;
  Shape shape_;
  std::shared_ptr<Buffer> buffer_;
  void* data_ = nullptr;
};

template <class T>
Tensor Tensor::from(const Shape& shape, std::initializer_list<T> values) {
  auto t = empty(DTypeOf<T>::value, shape).value();
  std::copy(values.begin(), values.end(), t.template data<T>());
  return t;
}

// Copies every element of `src` into `dst` (same dtype and element count): memcpy for numeric
// dtypes, std::string assignment for kString.
void copy_data(const Tensor& src, Tensor& dst);

// Bytes needed for numel elements of dtype, rounded up to kAlignment; error on overflow.
StatusOr<size_t> aligned_bytes(DType dtype, const Shape& shape);

}  // namespace mserve
