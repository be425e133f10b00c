#include "gpu/ops/convert.h"

#include <cuda_runtime.h>

#include "core/tensor/tensor.h"
#include "gpu/cuda_status.h"
#include "gpu/ops/convert_math.h"

namespace mserve::gpu {

std::vector<uint16_t> to_bits16(const float* x, int64_t n, Operand t) {
  std::vector<uint16_t> y(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) y[i] = to_bits16(x[i], t);
  return y;
}

size_t bytes16(const Shape& s) { return aligned256(static_cast<size_t>(s.numel()) * 2); }

uint16_t* Workspace16::reserve(int64_t n) {
  auto* p = reinterpret_cast<uint16_t*>(at_);
  at_ += aligned256(static_cast<size_t>(n) * 2);
  return p;
}

StatusOr<const uint16_t*> Workspace16::convert(const Tensor& t, Operand t16, void* stream) {
  uint16_t* p = reserve(t.numel());
  MS_CUDA_RETURN_IF_ERROR(launch_to_bits16(t.data<float>(), p, t.numel(), t16, stream),
                          "converting an operand to 16 bits");
  return static_cast<const uint16_t*>(p);
}

DeviceWeights::~DeviceWeights() {
  if (device_) cudaFree(device_);
}

DeviceWeights& DeviceWeights::operator=(DeviceWeights&& o) noexcept {
  if (this == &o) return *this;
  if (device_) cudaFree(device_);
  host_ = std::move(o.host_);
  bytes_ = o.bytes_;
  device_ = o.device_;
  o.bytes_ = 0;
  o.device_ = nullptr;
  return *this;
}

StatusOr<const void*> DeviceWeights::get(const char* what) const {
  std::lock_guard<std::mutex> lk(mu_);
  if (!device_) {
    void* d = nullptr;
    MS_CUDA_RETURN_IF_ERROR(cudaMalloc(&d, bytes_), (std::string("allocating ") + what).c_str());
    const cudaError_t e = cudaMemcpy(d, host_.data(), bytes_, cudaMemcpyHostToDevice);
    if (e != cudaSuccess) cudaFree(d);
    MS_CUDA_RETURN_IF_ERROR(e, (std::string("uploading ") + what).c_str());
    device_ = d;
    std::vector<char>().swap(host_);  // held once, on the device
  }
  return static_cast<const void*>(device_);
}

}  // namespace mserve::gpu
