#include <cuda_runtime.h>

#include "gpu/ops/attention.h"
#include "gpu/ops/rows_device.cuh"

namespace mserve::gpu {
namespace {

using namespace rows;  // NOLINT(build/namespaces)

struct ScoreRows {
  float* s;
  int64_t H, Lq, Lk, rows;
  MhaMask mask;
};

__device__ __forceinline__ RowMask mask_of(const ScoreRows& g, int64_t r) {
  const int64_t i = r % g.Lq, bh = r / g.Lq, h = bh % g.H, b = bh / g.H;
  const int64_t off = b * g.mask.sb + h * g.mask.sh + i * g.mask.si;
  RowMask mk;
  mk.add = g.mask.add ? g.mask.add + off : nullptr;
  mk.keep = g.mask.keep ? g.mask.keep + off : nullptr;
  mk.stride = g.mask.sj;
  return mk;
}

// A row of scores per warp (up to 1024 keys).
__global__ void attention_softmax_warps(const ScoreRows g) {
  const int lane = threadIdx.x % kWarp;
  const int64_t per_block = blockDim.x / kWarp;
  for (int64_t r = blockIdx.x * per_block + threadIdx.x / kWarp; r < g.rows; r += gridDim.x * per_block) {
    float* s = g.s + r * g.Lk;
    const float m = warp_combine(lane_mask_max(s, g.Lk, mask_of(g, r), lane, kWarpLanes), MaxF());
    if (m == -INFINITY) {  // every key masked: the row attends nothing
      for (int64_t j = lane; j < g.Lk; j += kWarpLanes) s[j] = 0.0f;
      continue;
    }
    const float sum = warp_combine(lane_exp(s, s, g.Lk, 1, lane, kWarpLanes, m), AddF());
    lane_scale(s, g.Lk, 1, lane, kWarpLanes, 1.0f / sum);
  }
}

// A row of scores per block of kBlock threads.
__global__ void __launch_bounds__(kBlock) attention_softmax_blocks(const ScoreRows g) {
  for (int64_t r = blockIdx.x; r < g.rows; r += gridDim.x) {
    float* s = g.s + r * g.Lk;
    const float m = block_combine(lane_mask_max(s, g.Lk, mask_of(g, r), threadIdx.x, kBlockLanes), MaxF());
    if (m == -INFINITY) {
      for (int64_t j = threadIdx.x; j < g.Lk; j += kBlockLanes) s[j] = 0.0f;
      continue;
    }
    const float sum = block_combine(lane_exp(s, s, g.Lk, 1, threadIdx.x, kBlockLanes, m), AddF());
    lane_scale(s, g.Lk, 1, threadIdx.x, kBlockLanes, 1.0f / sum);
  }
}

}  // namespace

int launch_attention_softmax(float* scores, int64_t B, int64_t H, int64_t Lq, int64_t Lk, const MhaMask& mask,
                             void* stream) {
  const ScoreRows g{scores, H, Lq, Lk, B * H * Lq, mask};
  if (g.rows <= 0 || Lk <= 0) return cudaSuccess;
  cudaStream_t st = static_cast<cudaStream_t>(stream);
  if (softmax_lanes(Lk, 1) == kWarpLanes)
    attention_softmax_warps<<<grid_for(g.rows, kBlock / kWarp), kBlock, 0, st>>>(g);
  else
    attention_softmax_blocks<<<grid_for(g.rows, 1), kBlock, 0, st>>>(g);
  return static_cast<int>(cudaGetLastError());
}

}  // namespace mserve::gpu
