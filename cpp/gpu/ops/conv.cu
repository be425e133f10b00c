#include <cuda_runtime.h>

#include "gpu/ops/conv.h"

namespace mserve::gpu {
namespace {

__global__ void conv_epilogue_kernel(ConvEpilogue e, float* y, int64_t n) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride)
    y[i] = conv_epilogue(e, i, y[i]);
}

}  // namespace

int launch_conv_epilogue(const ConvEpilogue& e, float* y, int64_t n, void* stream) {
  if (n <= 0) return cudaSuccess;
  constexpr int kThreads = 256;
  const int64_t blocks = (n + kThreads - 1) / kThreads;
  const unsigned grid = static_cast<unsigned>(blocks < 65536 ? blocks : 65536);
  conv_epilogue_kernel<<<grid, kThreads, 0, static_cast<cudaStream_t>(stream)>>>(e, y, n);
  return static_cast<int>(cudaGetLastError());
}

}  // namespace mserve::gpu
