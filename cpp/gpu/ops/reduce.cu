#include "gpu/ops/reduce.h"

#include <cuda_runtime.h>

#include "gpu/ops/rows_device.cuh"

namespace mserve::gpu {
namespace {

using namespace rows;  // NOLINT(build/namespaces)

// An output per thread: the innermost run is kept (neighbouring outputs read neighbouring
// inputs), or nothing is reduced at all.
template <ReduceKind K>
__global__ void reduce_threads(const float* x, float* y, const ReducePlan p) {
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t o = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; o < p.out_n; o += step)
    y[o] = reduce_kept<K>(x, p, o);
}

template <ReduceKind K>
__global__ void reduce_warps(const float* x, float* y, const ReducePlan p) {
  using R = Reducer<K>;
  const int lane = threadIdx.x % kWarp;
  const int64_t per_block = blockDim.x / kWarp;
  for (int64_t o = blockIdx.x * per_block + threadIdx.x / kWarp; o < p.out_n; o += gridDim.x * per_block) {
    const auto a = warp_combine(lane_reduce<K>(x, p, o, lane, kWarpLanes), ReduceOp<K>());
    if (lane == 0) y[o] = R::fin(a, p.red_n);
  }
}

template <ReduceKind K>
__global__ void __launch_bounds__(kBlock) reduce_blocks(const float* x, float* y, const ReducePlan p) {
  using R = Reducer<K>;
  for (int64_t o = blockIdx.x; o < p.out_n; o += gridDim.x) {
    const auto a = block_combine(lane_reduce<K>(x, p, o, threadIdx.x, kBlockLanes), ReduceOp<K>());
    if (threadIdx.x == 0) y[o] = R::fin(a, p.red_n);
  }
}

template <ReduceKind K>
void launch(const float* x, float* y, const ReducePlan& p, cudaStream_t st) {
  const int lanes = p.red_n == 0 ? kThread : reduce_lanes(p);
  if (lanes == kThread)
    reduce_threads<K><<<grid_for(p.out_n, kBlock), kBlock, 0, st>>>(x, y, p);
  else if (lanes == kWarpLanes)
    reduce_warps<K><<<grid_for(p.out_n, kBlock / kWarp), kBlock, 0, st>>>(x, y, p);
  else
    reduce_blocks<K><<<grid_for(p.out_n, 1), kBlock, 0, st>>>(x, y, p);
}

}  // namespace

int launch_reduce(ReduceKind kind, const float* x, float* y, const ReducePlan& p, void* stream) {
  if (p.out_n <= 0) return cudaSuccess;
  cudaStream_t st = static_cast<cudaStream_t>(stream);
  switch (kind) {
    case ReduceKind::kSum: launch<ReduceKind::kSum>(x, y, p, st); break;
    case ReduceKind::kMean: launch<ReduceKind::kMean>(x, y, p, st); break;
    case ReduceKind::kMax: launch<ReduceKind::kMax>(x, y, p, st); break;
    case ReduceKind::kMin: launch<ReduceKind::kMin>(x, y, p, st); break;
  }
  return static_cast<int>(cudaGetLastError());
}

}  // namespace mserve::gpu
