#include "gpu/ops/activation.h"

#include <cuda_runtime.h>

#include "gpu/ops/activation_math.h"

namespace mserve::gpu {
namespace {

using Kind = FusedActivation::Kind;

__global__ void activation_kernel(Kind k, float a, float b, const float* x, float* y, int64_t n) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride)
    y[i] = activate(k, x[i], a, b);
}

}  // namespace

int launch_activation(const FusedActivation& act, const float* x, float* y, int64_t n, void* stream) {
  if (n <= 0) return cudaSuccess;
  constexpr int kThreads = 256;
  // A grid-stride loop: enough blocks to fill the device many times over, never more than needed.
  const int64_t blocks = (n + kThreads - 1) / kThreads;
  const unsigned grid = static_cast<unsigned>(blocks < 65536 ? blocks : 65536);
  activation_kernel<<<grid, kThreads, 0, static_cast<cudaStream_t>(stream)>>>(act.kind, act.alpha, act.beta, x, y, n);
  return static_cast<int>(cudaGetLastError());
}

}  // namespace mserve::gpu
