#include "gpu/ops/pool.h"

#include <cuda_runtime.h>

namespace mserve::gpu {
namespace {

constexpr int kThreads = 256;

// One thread per output element: NCHW neighbours differ in ow (reads strided by the stride
// along w), NHWC neighbours in c (reads coalesced).
template <bool kMax, bool kNhwc>
__global__ void pool_kernel(PoolGeo g, const float* __restrict__ x, float* __restrict__ y, int64_t n) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride)
    y[i] = kNhwc ? pool_nhwc<kMax>(g, x, i) : pool_nchw<kMax>(g, x, i);
}

template <bool kMax>
__global__ void global_pool_kernel(const float* __restrict__ x, float* __restrict__ y, int64_t planes, int64_t len) {
  const int lane = threadIdx.x % kPoolWarp;
  const int64_t warps = static_cast<int64_t>(gridDim.x) * (blockDim.x / kPoolWarp);
  for (int64_t p = static_cast<int64_t>(blockIdx.x) * (blockDim.x / kPoolWarp) + threadIdx.x / kPoolWarp; p < planes;
       p += warps) {
    float v = global_lane_partial<kMax>(x + p * len, len, lane);
    for (int offset = kPoolWarp / 2; offset > 0; offset /= 2)
      v = global_butterfly<kMax>(v, __shfl_xor_sync(0xffffffffu, v, offset));
    if (lane == 0) y[p] = global_finish<kMax>(v, len);
  }
}

unsigned grid_for(int64_t n, int64_t per_block) {
  const int64_t blocks = (n + per_block - 1) / per_block;
  return static_cast<unsigned>(blocks < 65536 ? blocks : 65536);
}

}  // namespace

int launch_pool(const PoolGeo& g, bool max, bool nhwc, const float* x, float* y, void* stream) {
  const int64_t n = g.planes * g.channels * g.out_size();
  if (n <= 0) return cudaSuccess;
  const auto s = static_cast<cudaStream_t>(stream);
  const unsigned grid = grid_for(n, kThreads);
  if (max && nhwc)
    pool_kernel<true, true><<<grid, kThreads, 0, s>>>(g, x, y, n);
  else if (max)
    pool_kernel<true, false><<<grid, kThreads, 0, s>>>(g, x, y, n);
  else if (nhwc)
    pool_kernel<false, true><<<grid, kThreads, 0, s>>>(g, x, y, n);
  else
    pool_kernel<false, false><<<grid, kThreads, 0, s>>>(g, x, y, n);
  return static_cast<int>(cudaGetLastError());
}

int launch_global_pool(bool max, int64_t planes, int64_t len, const float* x, float* y, void* stream) {
  if (planes <= 0) return cudaSuccess;
  const auto s = static_cast<cudaStream_t>(stream);
  // Whole warps only: the butterfly needs all 32 lanes of a warp on the same plane.
  const unsigned grid = grid_for(planes, kThreads / kPoolWarp);
  if (max)
    global_pool_kernel<true><<<grid, kThreads, 0, s>>>(x, y, planes, len);
  else
    global_pool_kernel<false><<<grid, kThreads, 0, s>>>(x, y, planes, len);
  return static_cast<int>(cudaGetLastError());
}

}  // namespace mserve::gpu
