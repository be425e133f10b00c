// The device half of rows_math.h: the lanes' partials combined in combine_lanes's order, with
// warp shuffles (__shfl_down_sync: lane l takes op(lane l, lane l + off)) and, across a block's
// warps, shared memory. Every lane gets the result back.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

#include "gpu/ops/rows_math.h"

namespace mserve::gpu::rows {

constexpr unsigned kFullMask = 0xffffffffu;
constexpr int kBlockWarps = kBlock / kWarp;

template <class T, class Op>
__device__ __forceinline__ T warp_tree(T v, Op op) {
#pragma unroll
  for (int off = kWarp / 2; off > 0; off /= 2) v = op(v, __shfl_down_sync(kFullMask, v, off));
  return v;  // the tree's value in lane 0
}

// A warp's lanes combined; every lane of the warp must call it.
template <class T, class Op>
__device__ __forceinline__ T warp_combine(T v, Op op) {
  return __shfl_sync(kFullMask, warp_tree(v, op), 0);
}

// A block's kBlock lanes combined: each warp's tree, then the tree over the warps. Every thread
// of the block must call it.
template <class T, class Op>
__device__ __forceinline__ T block_combine(T v, Op op) {
  __shared__ T part[kBlockWarps + 1];
  const int lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp;
  v = warp_tree(v, op);
  if (lane == 0) part[warp] = v;
  __syncthreads();
  if (warp == 0) {
    T w = part[lane < kBlockWarps ? lane : 0];
#pragma unroll
    for (int off = kBlockWarps / 2; off > 0; off /= 2) w = op(w, __shfl_down_sync(kFullMask, w, off));
    if (lane == 0) part[kBlockWarps] = w;
  }
  __syncthreads();
  const T r = part[kBlockWarps];
  __syncthreads();  // `part` is reused by the next combine
  return r;
}

// Blocks for `units` pieces of work, `per_block` to a block; the kernels loop over the rest.
inline unsigned grid_for(int64_t units, int64_t per_block) {
  const int64_t blocks = (units + per_block - 1) / per_block;
  return static_cast<unsigned>(blocks < (int64_t{1} << 16) ? (blocks > 0 ? blocks : 1) : (int64_t{1} << 16));
}

}  // namespace mserve::gpu::rows
