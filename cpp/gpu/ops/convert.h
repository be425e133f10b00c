// Conversions of float32 values to the 16-bit operands of products and convolutions
// (ops/convert_math.h): per run on the GPU for activations, once on the host for weights; and
// the kernels' own copies of weights on the GPU. No CUDA headers.
#pragma once
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <vector>

#include "core/status.h"
#include "gpu/options.h"

namespace mserve {
class Shape;
class Tensor;
}  // namespace mserve

// Host code only past launch_to_bits16 (nvcc compiles this header without the runtime's
// tensor headers): shapes and tensors are declared, not included.
namespace mserve::gpu {

// y[i] = to_bits16(x[i], t) for i < n, on `stream`. Returns the launch's cudaError_t as an int.
int launch_to_bits16(const float* x, uint16_t* y, int64_t n, Operand t, void* stream);

// The same on the host: weights converted once when their kernel is created.
std::vector<uint16_t> to_bits16(const float* x, int64_t n, Operand t);

// Bytes rounded up to the 256 that cuBLASLt and cuDNN like their operands aligned to: the
// offsets of the converted operands in a kernel's device workspace.
inline size_t aligned256(size_t bytes) { return (bytes + 255) / 256 * 256; }

// The workspace a 16-bit copy of a float32 tensor of this shape takes (plan time).
size_t bytes16(const Shape& s);

// A kernel's 16-bit copies of its float32 operands, one after another in its device workspace
// (after `skip` bytes of other use), each taking bytes16 of its shape (run time).
class Workspace16 {
 public:
  explicit Workspace16(void* workspace, size_t skip = 0) : at_(static_cast<char*>(workspace) + skip) {}
  // Room for n 16-bit values.
  uint16_t* reserve(int64_t n);
  // t rounded to `t16` into the next room, queued on `stream`.
  StatusOr<const uint16_t*> convert(const Tensor& t, Operand t16, void* stream);

 private:
  char* at_;
};

// Weights a kernel made its own host copy of at load (repacked, converted to 16 bits), kept on
// the GPU by the kernel: uploaded by the first run that asks (a context's first run, never one
// a graph records), the host copy then dropped; freed with the kernel. Thread-safe.
class DeviceWeights {
 public:
  DeviceWeights() = default;
  template <class T>
  explicit DeviceWeights(const std::vector<T>& host)
      : host_(reinterpret_cast<const char*>(host.data()),
              reinterpret_cast<const char*>(host.data()) + host.size() * sizeof(T)),
        bytes_(host_.size()) {}
  ~DeviceWeights();
  DeviceWeights(const DeviceWeights&) = delete;
  DeviceWeights& operator=(const DeviceWeights&) = delete;
  DeviceWeights(DeviceWeights&& o) noexcept : host_(std::move(o.host_)), bytes_(o.bytes_), device_(o.device_) {
    o.bytes_ = 0;
    o.device_ = nullptr;
  }
  DeviceWeights& operator=(DeviceWeights&& o) noexcept;

  // Whether the kernel holds weights of its own (before and after the upload).
  bool empty() const { return bytes_ == 0; }
  size_t bytes() const { return bytes_; }
  // The device copy; `what` names them in errors.
  StatusOr<const void*> get(const char* what) const;

 private:
  mutable std::vector<char> host_;  // until uploaded
  size_t bytes_ = 0;
  mutable std::mutex mu_;
  mutable void* device_ = nullptr;
};

}  // namespace mserve::gpu
