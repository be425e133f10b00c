#include "gpu/ops/layer_norm.h"

#include <cuda_runtime.h>

#include "gpu/ops/rows_device.cuh"

namespace mserve::gpu {
namespace {

using namespace rows;  // NOLINT(build/namespaces)

__device__ __forceinline__ NormRow row_of(const LayerNormArgs& g, int64_t r) {
  NormRow row;
  const int64_t o = r * g.cols;
  row.a = g.a + (g.a_period ? r % g.a_period : r) * g.cols;
  row.b = g.b ? g.b + (g.b_period ? r % g.b_period : r) * g.cols : nullptr;
  row.y = g.y + o;
  row.sum = g.sum ? g.sum + o : nullptr;
  row.scale = g.scale;
  row.bias = g.bias;
  row.n = g.cols;
  return row;
}

__device__ __forceinline__ void store_stats(const LayerNormArgs& g, int64_t r, double mean, double inv) {
  if (g.mean) g.mean[r] = static_cast<float>(mean);
  if (g.inv_std) g.inv_std[r] = static_cast<float>(inv);
}

// A row per warp (rows up to 1024 columns: BERT's 768 and the like).
__global__ void layer_norm_warp_rows(const LayerNormArgs g) {
  const int lane = threadIdx.x % kWarp;
  const int64_t per_block = blockDim.x / kWarp;
  for (int64_t r = blockIdx.x * per_block + threadIdx.x / kWarp; r < g.rows; r += gridDim.x * per_block) {
    const NormRow row = row_of(g, r);
    const double mean = norm_mean(warp_combine(lane_norm_sum(row, lane, kWarpLanes), AddD()), g.cols);
    const double inv = norm_inv_std(warp_combine(lane_norm_sq(row, mean, lane, kWarpLanes), AddD()), g.cols, g.eps);
    lane_norm_out(row, mean, inv, lane, kWarpLanes);
    if (lane == 0) store_stats(g, r, mean, inv);
  }
}

// A row per block of kBlock threads.
__global__ void __launch_bounds__(kBlock) layer_norm_block_rows(const LayerNormArgs g) {
  for (int64_t r = blockIdx.x; r < g.rows; r += gridDim.x) {
    const NormRow row = row_of(g, r);
    const double mean = norm_mean(block_combine(lane_norm_sum(row, threadIdx.x, kBlockLanes), AddD()), g.cols);
    const double inv =
        norm_inv_std(block_combine(lane_norm_sq(row, mean, threadIdx.x, kBlockLanes), AddD()), g.cols, g.eps);
    lane_norm_out(row, mean, inv, threadIdx.x, kBlockLanes);
    if (threadIdx.x == 0) store_stats(g, r, mean, inv);
  }
}

}  // namespace

int launch_layer_norm(const LayerNormArgs& g, void* stream) {
  if (g.rows <= 0) return cudaSuccess;
  cudaStream_t st = static_cast<cudaStream_t>(stream);
  if (layer_norm_lanes(g.cols) == kWarpLanes)
    layer_norm_warp_rows<<<grid_for(g.rows, kBlock / kWarp), kBlock, 0, st>>>(g);
  else
    layer_norm_block_rows<<<grid_for(g.rows, 1), kBlock, 0, st>>>(g);
  return static_cast<int>(cudaGetLastError());
}

}  // namespace mserve::gpu
