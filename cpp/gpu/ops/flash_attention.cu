// The fused MultiHeadAttention kernel: a block of kFlashWarps warps per (batch, head, tile of
// kFlashRows query rows), looping over the units when there are more than the grid. Shared
// memory holds the unit's Q rows and one tile of kFlashKeys K and V rows at a time; every step
// of the arithmetic is flash_attention_math.h's, the lanes' partials combined in
// rows_device.cuh's order, so tests/cpp/gpu replays it on the host.
#include <cuda_runtime.h>

#include "gpu/ops/flash_attention.h"
#include "gpu/ops/rows_device.cuh"

namespace mserve::gpu {
namespace {

using namespace flash;  // NOLINT(build/namespaces)

__global__ void __launch_bounds__(kFlashThreads) flash_attention_kernel(const FlashParams p) {
  extern __shared__ float smem[];
  float* qs = smem;
  float* ks = qs + kFlashRows * p.D;
  float* vs = ks + kFlashKeys * flash_key_stride(p.D);
  const int lane = threadIdx.x % rows::kWarp, warp = threadIdx.x / rows::kWarp;
  const int r0 = warp * kFlashRowsPerWarp;
  const int64_t units = flash_units(p);
  for (int64_t n = blockIdx.x; n < units; n += gridDim.x) {
    const FlashUnit u = flash_unit(p, n);
    __syncthreads();  // the previous unit's readers are done with qs, ks and vs
    flash_load_q(p, u, qs, warp, lane, kFlashWarps);
    FlashRow st[kFlashRowsPerWarp];
    for (int64_t j0 = 0; j0 < p.Lk; j0 += kFlashKeys) {
      if (j0 > 0) __syncthreads();  // every warp is done with the previous tile
      flash_load_kv(p, u, j0, ks, vs, warp, lane, kFlashWarps);
      __syncthreads();
      float s[kFlashRowsPerWarp];
      flash_lane_scores(p, u, qs, ks, r0, j0, lane, s);
#pragma unroll
      for (int r = 0; r < kFlashRowsPerWarp; ++r) {
        float a;
        const float mu = flash_rescale(st[r], rows::warp_combine(s[r], rows::MaxF()), &a);
        s[r] = flash_prob(s[r], mu);
        flash_add_sum(st[r], a, rows::warp_combine(s[r], rows::AddF()));
      }
      const int nk = flash_tile_keys(p, j0);
      for (int j = 0; j < nk; ++j) {
        float pj[kFlashRowsPerWarp];
#pragma unroll
        for (int r = 0; r < kFlashRowsPerWarp; ++r) pj[r] = __shfl_sync(rows::kFullMask, s[r], j);
        flash_accumulate(st, pj, vs + j * p.Dv, lane, p.Dv);
      }
    }
#pragma unroll
    for (int r = 0; r < kFlashRowsPerWarp; ++r)
      if (u.i0 + r0 + r < p.Lq) flash_store(p, u, u.i0 + r0 + r, st[r], lane);
  }
}

}  // namespace

int launch_flash_attention(const FlashParams& p, void* stream) {
  if (!flash_fits(p.D, p.Dv, p.Lk) || p.B < 1 || p.H < 1 || p.Lq < 1) return cudaErrorInvalidValue;
  // At most 16 * 128 + 32 * 129 + 32 * 128 floats (41,088 bytes): under the 48 KiB a launch gets
  // without opting in to more.
  const size_t smem = static_cast<size_t>(flash_smem_floats(p.D, p.Dv)) * sizeof(float);
  cudaStream_t st = static_cast<cudaStream_t>(stream);
  flash_attention_kernel<<<rows::grid_for(flash_units(p), 1), kFlashThreads, smem, st>>>(p);
  return static_cast<int>(cudaGetLastError());
}

}  // namespace mserve::gpu
