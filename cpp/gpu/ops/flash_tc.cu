// The fused MultiHeadAttention kernel on the tensor cores (precision fp16 / bf16): every step
// but the two products is flash_tc_math.h's; the products are WMMA 16x16x16 tiles with float32
// accumulators, S = Q K^T (K read as a column-major B) and O += P V (O's tile loaded from and
// stored back to shared memory around the MMA, so the per-row rescaling in between is plain
// shared-memory arithmetic).
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <mma.h>

#include <mutex>

#include "gpu/ops/flash_attention.h"
#include "gpu/ops/flash_tc_math.h"
#include "gpu/ops/rows_device.cuh"

namespace mserve::gpu {
namespace {

using namespace flash;  // NOLINT(build/namespaces)
namespace wmma = nvcuda::wmma;

template <class T>
__global__ void __launch_bounds__(kTcThreads) flash_tc_kernel(const FlashParams p, Operand t) {
  extern __shared__ __align__(128) unsigned char smem[];
  const TcLayout L = tc_layout(p.D, p.Dv);
  uint16_t* qs = reinterpret_cast<uint16_t*>(smem + L.q);
  uint16_t* ks = reinterpret_cast<uint16_t*>(smem + L.k);
  uint16_t* vs = reinterpret_cast<uint16_t*>(smem + L.v);
  const T* qt = reinterpret_cast<const T*>(qs);
  const T* kt = reinterpret_cast<const T*>(ks);
  const T* vt = reinterpret_cast<const T*>(vs);
  const int lane = threadIdx.x % rows::kWarp, warp = threadIdx.x / rows::kWarp;
  float* S = reinterpret_cast<float*>(smem + L.s) + warp * kTcTile * L.lds;
  uint16_t* P = reinterpret_cast<uint16_t*>(smem + L.p) + warp * kTcTile * L.ldp;
  const T* pt = reinterpret_cast<const T*>(P);
  float* O = reinterpret_cast<float*>(smem + L.o) + warp * kTcTile * L.ldo;
  const int r = lane / kTcLanesPerRow, half = lane % kTcLanesPerRow, c0 = half * kTcColsPerLane;
  const int64_t units = tc_units(p);
  for (int64_t n = blockIdx.x; n < units; n += gridDim.x) {
    const FlashUnit u = tc_unit(p, n);
    __syncthreads();  // the previous unit's readers are done with qs
    tc_load_q(p, u, qs, L, t, threadIdx.x, kTcThreads);
    for (int e = lane; e < kTcTile * L.ldo; e += rows::kWarp) O[e] = 0.0f;
    TcRow st;
    const int64_t i = u.i0 + warp * kTcTile + r;
    for (int64_t j0 = 0; j0 < p.Lk; j0 += kTcKeys) {
      __syncthreads();  // every warp is done with the previous tile (and Q is loaded)
      tc_load_kv(p, u, j0, ks, vs, L, t, threadIdx.x, kTcThreads);
      __syncthreads();
      for (int nb = 0; nb < kTcKeys / kTcTile; ++nb) {  // S = Q K^T
        wmma::fragment<wmma::accumulator, kTcTile, kTcTile, kTcTile, float> acc;
        wmma::fill_fragment(acc, 0.0f);
        for (int kb = 0; kb < L.dp / kTcTile; ++kb) {
          wmma::fragment<wmma::matrix_a, kTcTile, kTcTile, kTcTile, T, wmma::row_major> a;
          wmma::fragment<wmma::matrix_b, kTcTile, kTcTile, kTcTile, T, wmma::col_major> b;
          wmma::load_matrix_sync(a, qt + warp * kTcTile * L.ldq + kb * kTcTile, L.ldq);
          wmma::load_matrix_sync(b, kt + nb * kTcTile * L.ldk + kb * kTcTile, L.ldk);
          wmma::mma_sync(acc, a, b, acc);
        }
        wmma::store_matrix_sync(S + nb * kTcTile, acc, L.lds, wmma::mem_row_major);
      }
      __syncwarp();
      float* srow = S + r * L.lds;
      float tmax = tc_scores(p, u, i, j0, c0, srow);
      tmax = rows::MaxF()(tmax, __shfl_xor_sync(rows::kFullMask, tmax, 1));
      float a;
      const float mu = tc_rescale(st, tmax, &a);
      float sum = tc_probs(srow, P + r * L.ldp, c0, mu, t);
      sum += __shfl_xor_sync(rows::kFullMask, sum, 1);
      tc_add_sum(st, a, sum);
      tc_rescale_acc(O + r * L.ldo, half, L.dvp, a);
      __syncwarp();
      for (int cb = 0; cb < L.dvp / kTcTile; ++cb) {  // O += P V
        wmma::fragment<wmma::accumulator, kTcTile, kTcTile, kTcTile, float> acc;
        wmma::load_matrix_sync(acc, O + cb * kTcTile, L.ldo, wmma::mem_row_major);
        for (int kb = 0; kb < kTcKeys / kTcTile; ++kb) {
          wmma::fragment<wmma::matrix_a, kTcTile, kTcTile, kTcTile, T, wmma::row_major> a;
          wmma::fragment<wmma::matrix_b, kTcTile, kTcTile, kTcTile, T, wmma::row_major> b;
          wmma::load_matrix_sync(a, pt + kb * kTcTile, L.ldp);
          wmma::load_matrix_sync(b, vt + kb * kTcTile * L.ldv + cb * kTcTile, L.ldv);
          wmma::mma_sync(acc, a, b, acc);
        }
        wmma::store_matrix_sync(O + cb * kTcTile, acc, L.ldo, wmma::mem_row_major);
      }
      __syncwarp();
    }
    tc_store(p, u, i, st, O + r * L.ldo, half);
  }
}

// Dynamic shared memory past the 48 KiB a launch gets by default, asked for once per type with
// the largest layout (D = Dv = 128).
template <class T>
int allow_smem() {
  static std::once_flag once;
  static cudaError_t err = cudaSuccess;
  std::call_once(once, [] {
    err = cudaFuncSetAttribute(flash_tc_kernel<T>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                               static_cast<int>(tc_layout(kFlashMaxHead, kFlashMaxHead).bytes));
  });
  return static_cast<int>(err);
}

}  // namespace

int launch_flash_attention_tc(const FlashParams& p, Operand t, void* stream) {
  if (!flash_fits(p.D, p.Dv, p.Lk) || p.B < 1 || p.H < 1 || p.Lq < 1 || t == Operand::kF32)
    return cudaErrorInvalidValue;
  const size_t smem = static_cast<size_t>(tc_layout(p.D, p.Dv).bytes);
  cudaStream_t st = static_cast<cudaStream_t>(stream);
  const unsigned grid = rows::grid_for(tc_units(p), 1);
  if (t == Operand::kBf16) {
    if (int e = allow_smem<__nv_bfloat16>()) return e;
    flash_tc_kernel<__nv_bfloat16><<<grid, kTcThreads, smem, st>>>(p, t);
  } else {
    if (int e = allow_smem<__half>()) return e;
    flash_tc_kernel<__half><<<grid, kTcThreads, smem, st>>>(p, t);
  }
  return static_cast<int>(cudaGetLastError());
}

}  // namespace mserve::gpu
