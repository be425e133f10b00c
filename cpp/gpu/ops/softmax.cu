#include "gpu/ops/softmax.h"

#include <cuda_runtime.h>

#include "gpu/ops/rows_device.cuh"

namespace mserve::gpu {
namespace {

using namespace rows;  // NOLINT(build/namespaces)

// A strided row per thread (softmax along a non-innermost axis): thread t takes column
// t % inner of block t / inner, so neighbouring threads read neighbouring addresses.
__global__ void softmax_columns(const float* x, float* y, int64_t outer, int64_t len, int64_t inner) {
  const int64_t n = outer * inner, step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t t = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; t < n; t += step) {
    const int64_t base = (t / inner) * len * inner + t % inner;
    const float m = lane_max(x + base, len, inner, 0, kThread);
    const float s = lane_exp(x + base, y + base, len, inner, 0, kThread, m);
    lane_scale(y + base, len, inner, 0, kThread, 1.0f / s);
  }
}

// A contiguous row per warp.
__global__ void softmax_warp_rows(const float* x, float* y, int64_t rows, int64_t len) {
  const int lane = threadIdx.x % kWarp;
  const int64_t per_block = blockDim.x / kWarp;
  const int64_t step = gridDim.x * per_block;
  for (int64_t r = blockIdx.x * per_block + threadIdx.x / kWarp; r < rows; r += step) {
    const float* xr = x + r * len;
    float* yr = y + r * len;
    const float m = warp_combine(lane_max(xr, len, 1, lane, kWarpLanes), MaxF());
    const float s = warp_combine(lane_exp(xr, yr, len, 1, lane, kWarpLanes, m), AddF());
    lane_scale(yr, len, 1, lane, kWarpLanes, 1.0f / s);
  }
}

// A contiguous row per block of kBlock threads.
__global__ void __launch_bounds__(kBlock) softmax_block_rows(const float* x, float* y, int64_t rows, int64_t len) {
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const float* xr = x + r * len;
    float* yr = y + r * len;
    const float m = block_combine(lane_max(xr, len, 1, threadIdx.x, kBlockLanes), MaxF());
    const float s = block_combine(lane_exp(xr, yr, len, 1, threadIdx.x, kBlockLanes, m), AddF());
    lane_scale(yr, len, 1, threadIdx.x, kBlockLanes, 1.0f / s);
  }
}

}  // namespace

int launch_softmax(const float* x, float* y, int64_t outer, int64_t len, int64_t inner, void* stream) {
  if (outer <= 0 || len <= 0 || inner <= 0) return cudaSuccess;
  cudaStream_t st = static_cast<cudaStream_t>(stream);
  switch (softmax_lanes(len, inner)) {
    case kThread: softmax_columns<<<grid_for(outer * inner, kBlock), kBlock, 0, st>>>(x, y, outer, len, inner); break;
    case kWarpLanes: softmax_warp_rows<<<grid_for(outer, kBlock / kWarp), kBlock, 0, st>>>(x, y, outer, len); break;
    default: softmax_block_rows<<<grid_for(outer, 1), kBlock, 0, st>>>(x, y, outer, len); break;
  }
  return static_cast<int>(cudaGetLastError());
}

}  // namespace mserve::gpu
