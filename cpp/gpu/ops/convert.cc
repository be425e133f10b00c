#include "gpu/ops/convert.h"

#include <cuda_runtime.h>

#include "gpu/cuda_status.h"
#include "gpu/ops/convert_math.h"

namespace mserve::gpu {

std::vector<uint16_t> to_bits16(const float* x, int64_t n, Operand t) {
  std::vector<uint16_t> y(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) y[i] = to_bits16(x[i], t);
  return y;
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
