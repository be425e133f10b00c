#include <cuda_runtime.h>

#include "gpu/ops/conv.h"
#include "gpu/ops/convert_math.h"
#include "gpu/ops/rows_device.cuh"

namespace mserve::gpu {
namespace {

__global__ void conv_epilogue_kernel(ConvEpilogue e, float* y, int64_t n) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride)
    y[i] = conv_epilogue(e, i, y[i]);
}

__global__ void conv_epilogue16_kernel(ConvEpilogue e, const uint16_t* src, Operand t, float* y, int64_t n) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride)
    y[i] = conv_epilogue(e, i, from_bits16(src[i], t));
}

constexpr int kThreads = 256;

}  // namespace

int launch_conv_epilogue(const ConvEpilogue& e, float* y, int64_t n, void* stream) {
  if (n <= 0) return cudaSuccess;
  conv_epilogue_kernel<<<rows::grid_for(n, kThreads), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(e, y, n);
  return static_cast<int>(cudaGetLastError());
}

int launch_conv_epilogue16(const ConvEpilogue& e, const uint16_t* src, Operand t, float* y, int64_t n, void* stream) {
  if (n <= 0) return cudaSuccess;
  conv_epilogue16_kernel<<<rows::grid_for(n, kThreads), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(e, src, t, y,
                                                                                                          n);
  return static_cast<int>(cudaGetLastError());
}

}  // namespace mserve::gpu
