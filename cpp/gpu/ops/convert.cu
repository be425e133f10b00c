#include <cuda_runtime.h>

#include "gpu/ops/convert.h"
#include "gpu/ops/convert_math.h"
#include "gpu/ops/rows_device.cuh"

namespace mserve::gpu {
namespace {

__global__ void to_bits16_kernel(const float* x, uint16_t* y, int64_t n, Operand t) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride)
    y[i] = to_bits16(x[i], t);
}

}  // namespace

int launch_to_bits16(const float* x, uint16_t* y, int64_t n, Operand t, void* stream) {
  if (n <= 0) return cudaSuccess;
  constexpr int kThreads = 256;
  to_bits16_kernel<<<rows::grid_for(n, kThreads), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(x, y, n, t);
  return static_cast<int>(cudaGetLastError());
}

}  // namespace mserve::gpu
