// com.mserve.MultiHeadAttention on the GPU (float32): S = scale * Q K^T as one batched cuBLASLt
// product, the masked softmax of rows_math.h over S in place, then Y = S V as another. Callable
// from host code compiled by g++ (no CUDA headers here).
#pragma once
#include <cstddef>
#include <cstdint>

#include "core/status.h"
#include "core/tensor/shape.h"
#include "gpu/lib/blas.h"

namespace mserve::gpu {

// The mask of the scores [B, H, Lq, Lk]: key j of query row (b, h, i) reads element
// b * sb + h * sh + i * si + j * sj (0 strides broadcast). At most one of add / keep is set.
struct MhaMask {
  const float* add = nullptr;           // float mask: added to the scores
  const unsigned char* keep = nullptr;  // bool mask: true attends
  int64_t sb = 0, sh = 0, si = 0, sj = 1;
};

// The mask strides of a mask of shape `m` (right-aligned to [B, H, Lq, Lk], dims of 1 broadcast;
// a last dim of 1 covers every key, as the CPU kernel takes it). Pointers are left null.
MhaMask mha_mask_strides(const Shape& m);

// The two products of one MultiHeadAttention shape. Layout "bhsd": Q [B, H, Lq, D], K
// [B, H, Lk, D], V [B, H, Lk, Dv], Y [B, H, Lq, Dv], one product of B * H matrices each. Layout
// "bshd": Q [B, Lq, H, D], ..., Y [B, Lq, H, Dv]: a head is every H-th row slice of D, so one
// product of H matrices per batch entry, `runs` = B of them at the offsets below. The scores are
// [B, H, Lq, Lk] in the workspace either way.
struct MhaGeometry {
  bool bshd = false;
  int64_t B = 0, H = 0, Lq = 0, Lk = 0, D = 0, Dv = 0;
  GemmShape qk, pv;
  int64_t runs = 1;
  int64_t q_run = 0, k_run = 0, v_run = 0, y_run = 0, s_run = 0;  // elements between runs
  size_t workspace_bytes = 0;                                     // the scores
};

// Unsupported (the node stays on the CPU) for shapes the GPU kernel does not run: grouped-query
// heads (K / V with fewer heads than Q) and empty dims.
StatusOr<MhaGeometry> mha_geometry(const Shape& q, const Shape& k, const Shape& v, bool bshd, float scale);

// The masked softmax of rows_math.h over every row of scores [B, H, Lq, Lk], in place.
// Returns the launch's cudaError_t as an int (0: queued). `stream` is a cudaStream_t.
int launch_attention_softmax(float* scores, int64_t B, int64_t H, int64_t Lq, int64_t Lk, const MhaMask& mask,
                             void* stream);

}  // namespace mserve::gpu
