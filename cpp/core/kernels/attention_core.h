// The scaled-dot-product attention core shared by ONNX Attention and com.mserve
// MultiHeadAttention (ops/attention.cc) and com.microsoft Attention and MultiHeadAttention
// (ops/contrib_attention.cc): Y = softmax(softcap(scale * Q K^T) + mask) V per (batch, query head),
// the callers' inputs seen through strides, so that projections packed in one buffer, 3-D
// [B, L, heads * size] and 4-D [B, H, L, D] inputs are read where they lie.
#pragma once
#include <cstddef>
#include <cstdint>

#include "core/status.h"
#include "core/tensor/dtype.h"

namespace mserve {

class ThreadPool;

// Sizes of one call. Query head h reads KV head h / (Hq / Hkv). The keys are the P past rows
// then the Lk new ones.
struct AttentionDims {
  bool rank3 = false;  // rows of all heads interleaved: 3-D inputs, or 4-D "bshd"
  bool bshd = false;
  int64_t B = 0, Hq = 0, Hkv = 0, Lq = 0, Lk = 0, P = 0, D = 0, Dv = 0;
  int64_t total() const { return P + Lk; }
  // Mask (added to the scores, or bool: true attends): strides over (b, h, i, j) (0 where
  // broadcast) and its last dim; keys j >= mlen are masked.
  bool has_mask = false;
  int64_t ms_b = 0, ms_h = 0, ms_i = 0, ms_j = 1, mlen = 0;
};

// Where a tensor of rows lies: element (b, h, row, c) at p + b * bs + h * hs + row * rs + c.
template <class T>
struct AttentionView {
  T* p = nullptr;
  int64_t bs = 0, hs = 0, rs = 0;
};

template <class T>
struct AttentionArgs {
  AttentionView<const T> q, k, v;  // the new rows (Lq of Q, Lk of K and V)
  const T* past_k = nullptr;       // [B, Hkv, P, D] and [B, Hkv, P, Dv], or null
  const T* past_v = nullptr;
  const void* mask = nullptr;  // T (added) or bool, laid out as AttentionDims says
  bool mask_bool = false;
  const int64_t* nonpad = nullptr;  // [B] keys j >= nonpad[b] masked (checked in [0, total])
  AttentionView<T> y;               // output rows [Lq, Dv] per (b, query head)
  T* present_k = nullptr;           // [B, Hkv, P + Lk, D] and [.., Dv], or null
  T* present_v = nullptr;
  T* qk = nullptr;  // [B, Hq, Lq, P + Lk] per qk_mode, or null
};

struct AttentionOptions {
  bool has_scale = false;  // else 1 / sqrt(D)
  float scale = 1.0f;
  float softcap = 0.0f;           // > 0: softcap * tanh(x / softcap)
  bool causal = false;            // key j > i + offset masked (offset P, or nonpad[b] - Lq)
  int64_t left = -1, right = -1;  // window around i + offset (-1: none)
  int64_t qk_mode = 0;            // what qk receives: 0, 1 scaled product; 2 with mask; 3 probabilities
};

// Workspace bytes of attention_run for `threads` threads.
size_t attention_workspace(const AttentionDims& d, DType t, int threads);

// Runs one call (T: float, double or Eigen::half; the softmax in float, double for double).
// A masked key (mask -inf, false, or outside mlen / nonpad / causal / window) gets probability 0;
// a query row with every key masked gets probabilities and output 0.
template <class T>
Status attention_run(const AttentionArgs<T>& a, const AttentionDims& d, const AttentionOptions& o, ThreadPool& pool,
                     void* workspace);

}  // namespace mserve
