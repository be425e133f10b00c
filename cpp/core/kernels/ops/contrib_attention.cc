// com.microsoft Attention and MultiHeadAttention (onnxruntime's contrib operators, as its
// transformer optimizer writes them), float32, on the attention core of ops/attention.cc.
//
// Attention: input [B, S, Din] times weights [Din, Dq + Dk + Dv] plus bias [Dq + Dk + Dv] gives
//   Q, K, V (sizes from qkv_hidden_sizes, default three equal thirds), split into num_heads
//   heads; output [B, S, Dv]. past [2, B, N, P, H] is prepended to K and V; present
//   [2, B, N, P + S, H] is the concatenation.
// MultiHeadAttention: query [B, S, D], key / value [B, L, D] / [B, L, Dv] (bias [D + D + Dv]
//   added), or key / value [B, N, L, H] already split into heads (no bias, no past);
//   past_key / past_value [B, N, P, H] and present_key / present_value [B, N, P + L, H].
//
// Both: scores scale * Q K^T (scale default 1 / sqrt(H)) plus attention_bias [B or 1, N or 1, S,
// T] (T = P + L keys) plus the mask, then softmax. The mask is additive, as onnxruntime's CPU
// kernel builds it: mask_filter_value (default -10000) where a key is padding, the lowest float
// where unidirectional hides a later key (key j > P + i, when S > 1). Padding comes from
// mask_index (key_padding_mask), int32:
//   [B]          keys j >= mask_index[b] are padding (right padding)
//   [2B]         also keys j < mask_index[B + b] (left padding)
//   [B, T]       raw mask: key j is padding where mask[b, j] <= 0
//   [B, S, T]    per query: padding where mask[b, i, j] <= 0
// The 4-D mask [B, 1, M, M] (Megatron) is refused: onnxruntime's CPU kernel does not run it.
#include <algorithm>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>

#include "core/kernels/attention_core.h"
#include "core/kernels/common.h"
#include "core/kernels/gemm.h"
#include "core/kernels/registry.h"
#include "core/parallel/thread_pool.h"

namespace mserve {
namespace {

size_t align64(size_t n) { return (n + 63) / 64 * 64; }

// The additive mask of one call: [B, N or 1, S, T] floats.
struct MaskPlan {
  bool any = false;  // padding, causal or attention_bias
  bool per_head = false;
  int64_t floats(const AttentionDims& d) const { return any ? d.B * (per_head ? d.Hq : 1) * d.Lq * d.total() : 0; }
};

class ContribAttentionBase : public Kernel {
 protected:
  explicit ContribAttentionBase(const Node& n)
      : heads_(n.attr_int("num_heads", 0)),
        unidirectional_(n.attr_int("unidirectional", 0) != 0),
        filter_(n.attr_float("mask_filter_value", -10000.0f)),
        scale_(n.attr_float("scale", 0.0f)) {}

  // Checks mask_index (input `mi`) and attention_bias (input `ab`) against the sizes in `d`.
  template <class Ctx>
  StatusOr<MaskPlan> plan_mask(const Ctx& ctx, int mi, int ab, const AttentionDims& d) const {
    MaskPlan m;
    const int64_t T = d.total();
    if (ctx.has_input(mi)) {
      const Shape& s = shape_of(ctx, mi);
      const DType t = dtype_of(ctx, mi);
      MS_CHECK_ARG(t == DType::kInt32 || t == DType::kInt64, "mask_index must be int32");
      if (s.rank() == 4)
        return Unsupported("the 4-D mask_index [batch, 1, max_sequence, max_sequence] is not supported");
      const bool ok = (s.rank() == 1 && (s[0] == d.B || s[0] == 2 * d.B)) ||
                      (s.rank() == 2 && s[0] == d.B && s[1] == T) ||
                      (s.rank() == 3 && s[0] == d.B && s[1] == d.Lq && s[2] == T);
      MS_CHECK_ARG(ok, "mask_index " + s.str() +
                           " must be [batch], [2 * batch], [batch, total_sequence] or [batch, "
                           "sequence, total_sequence] with batch " +
                           std::to_string(d.B) + ", sequence " + std::to_string(d.Lq) + ", total_sequence " +
                           std::to_string(T));
      m.any = true;
    }
    if (ctx.has_input(ab)) {
      const Shape& s = shape_of(ctx, ab);
      MS_CHECK_ARG(dtype_of(ctx, ab) == DType::kFloat32, "attention_bias must be float32");
      const bool ok =
          s.rank() == 4 && (s[0] == 1 || s[0] == d.B) && (s[1] == 1 || s[1] == d.Hq) && s[2] == d.Lq && s[3] == T;
      MS_CHECK_ARG(ok, "attention_bias " + s.str() + " must be [batch or 1, num_heads or 1, sequence, total_sequence]");
      m.any = true;
      m.per_head = true;
    }
    if (unidirectional_ && d.Lq > 1) m.any = true;
    return m;
  }

  // Fills the mask of `plan` into `out` and points `d` at it.
  void build_mask(const ComputeContext& ctx, int mi, int ab, const MaskPlan& plan, AttentionDims& d, float* out) const {
    if (!plan.any) return;
    const int64_t B = d.B, S = d.Lq, T = d.total(), P = d.P, H = plan.per_head ? d.Hq : 1;
    const float lowest = std::numeric_limits<float>::lowest();
    const Tensor* mask = ctx.has_input(mi) ? &ctx.input(mi) : nullptr;
    const Tensor* bias = ctx.has_input(ab) ? &ctx.input(ab) : nullptr;
    for (int64_t b = 0; b < B; ++b) {
      float* mb = out + b * H * S * T;
      // Head 0's rows: padding, then causal.
      for (int64_t i = 0; i < S; ++i) {
        float* row = mb + i * T;
        for (int64_t j = 0; j < T; ++j) {
          bool keep = true;
          if (mask && mask->rank() == 1) {
            keep = j < mask->int_at(b);
            if (mask->dim(0) == 2 * B) keep = keep && j >= std::min(mask->int_at(B + b), T);
          } else if (mask && mask->rank() == 2) {
            keep = mask->int_at(b * T + j) > 0;
          } else if (mask) {
            keep = mask->int_at((b * S + i) * T + j) > 0;
          }
          row[j] = keep ? 0.0f : filter_;
          if (unidirectional_ && S > 1 && j > P + i) row[j] = lowest;
        }
      }
      for (int64_t h = H - 1; h >= 0; --h) {
        float* mh = mb + h * S * T;
        if (h > 0) std::copy(mb, mb + S * T, mh);
        if (!bias) continue;
        const Shape& bs = bias->shape();
        const float* bp = bias->data<float>() + (bs[0] == 1 ? 0 : b * bs[1] * S * T) + (bs[1] == 1 ? 0 : h * S * T);
        for (int64_t x = 0; x < S * T; ++x) mh[x] = bp[x] + mh[x];
      }
    }
    d.has_mask = true;
    d.ms_b = H * S * T;
    d.ms_h = plan.per_head ? S * T : 0;
    d.ms_i = T;
    d.ms_j = 1;
    d.mlen = T;
  }

  AttentionOptions options() const {
    AttentionOptions o;
    o.has_scale = scale_ != 0.0f;
    o.scale = scale_;
    return o;
  }

  template <class Ctx>
  static const Shape& shape_of(const Ctx& ctx, int i) {
    if constexpr (std::is_same_v<Ctx, InferContext>)
      return ctx.shape(i);
    else
      return ctx.input(i).shape();
  }
  template <class Ctx>
  static DType dtype_of(const Ctx& ctx, int i) {
    if constexpr (std::is_same_v<Ctx, InferContext>)
      return ctx.dtype(i);
    else
      return ctx.input(i).dtype();
  }

  int64_t heads_;
  bool unidirectional_;
  float filter_, scale_;
};

// --- Attention ----------------------------------------------------------------------------------

class MsAttentionKernel final : public ContribAttentionBase {
 public:
  MsAttentionKernel(const Node& n, std::vector<int64_t> qkv) : ContribAttentionBase(n), qkv_(std::move(qkv)) {}

  Status infer(InferContext& ctx) const override {
    MS_ASSIGN_OR_RETURN(Sizes z, sizes(ctx));
    const int64_t B = z.d.B, S = z.d.Lq;
    ctx.set_output(0, DType::kFloat32, Shape{B, S, z.dv});
    if (ctx.num_outputs() > 1) ctx.set_output(1, DType::kFloat32, Shape{2, B, heads_, z.d.total(), z.d.D});
    ctx.set_workspace(workspace(z, ctx.threads()));
    return Status::OK();
  }

  Status compute(const ComputeContext& ctx) const override {
    MS_ASSIGN_OR_RETURN(Sizes z, sizes(ctx));
    AttentionDims d = z.d;
    const int64_t B = d.B, S = d.Lq, n3 = z.dq + z.dk + z.dv, din = ctx.input(0).dim(2);
    char* ws = static_cast<char*>(ctx.workspace());
    float* qkv = reinterpret_cast<float*>(ws);
    float* mask = reinterpret_cast<float*>(ws + align64(static_cast<size_t>(B * S * n3) * 4));
    void* core_ws = ws + align64(static_cast<size_t>(B * S * n3) * 4) + align64(z.mask.floats(d) * 4);
    // Q | K | V = input weights + bias, rows of [B * S, Dq + Dk + Dv].
    gemm<float>(false, false, B * S, n3, din, 1.0f, ctx.input(0).data<float>(), din, ctx.input(1).data<float>(), n3,
                0.0f, qkv, n3, ctx.pool());
    if (ctx.has_input(2)) {
      const float* bias = ctx.input(2).data<float>();
      for (int64_t r = 0; r < B * S; ++r)
        for (int64_t c = 0; c < n3; ++c) qkv[r * n3 + c] += bias[c];
    }
    build_mask(ctx, 3, 5, z.mask, d, mask);
    AttentionArgs<float> a;
    a.q = {qkv, S * n3, d.D, n3};
    a.k = {qkv + z.dq, S * n3, d.D, n3};
    a.v = {qkv + z.dq + z.dk, S * n3, d.Dv, n3};
    if (d.P) {
      const float* past = ctx.input(4).data<float>();
      a.past_k = past;
      a.past_v = past + B * heads_ * d.P * d.D;
    }
    if (d.has_mask) a.mask = mask;
    float* y = ctx.output(0).data<float>();
    a.y = {y, S * z.dv, d.Dv, z.dv};
    if (ctx.has_output(1)) {
      a.present_k = ctx.output(1).data<float>();
      a.present_v = a.present_k + B * heads_ * d.total() * d.D;
    }
    return attention_run<float>(a, d, options(), ctx.pool(), core_ws);
  }

 private:
  struct Sizes {
    AttentionDims d;
    int64_t dq = 0, dk = 0, dv = 0;
    MaskPlan mask;
  };

  size_t workspace(const Sizes& z, int threads) const {
    const int64_t n3 = z.dq + z.dk + z.dv;
    return align64(static_cast<size_t>(z.d.B * z.d.Lq * n3) * 4) + align64(z.mask.floats(z.d) * 4) +
           attention_workspace(z.d, DType::kFloat32, threads);
  }

  template <class Ctx>
  StatusOr<Sizes> sizes(const Ctx& ctx) const {
    MS_CHECK_ARG(ctx.has_input(0) && ctx.has_input(1), "Attention needs input and weights");
    for (int i : {0, 1, 2, 4})
      if (ctx.has_input(i) && dtype_of(ctx, i) != DType::kFloat32)
        return Unsupported(std::string("dtype ") + dtype_name(dtype_of(ctx, i)) + " is not supported (float32 only)");
    if (ctx.has_input(6)) return Unsupported("past_sequence_length is not supported");
    const Shape &x = shape_of(ctx, 0), &w = shape_of(ctx, 1);
    MS_CHECK_ARG(x.rank() == 3, "input must be 3-D [batch, sequence, hidden], got " + x.str());
    MS_CHECK_ARG(w.rank() == 2 && w[0] == x[2],
                 "weights " + w.str() + " must be 2-D [" + std::to_string(x[2]) + ", 3 * hidden]");
    Sizes z;
    if (qkv_.empty()) {
      MS_CHECK_ARG(w[1] % 3 == 0, "weights " + w.str() + " must have 3 * hidden columns");
      z.dq = z.dk = z.dv = w[1] / 3;
    } else {
      z.dq = qkv_[0], z.dk = qkv_[1], z.dv = qkv_[2];
      MS_CHECK_ARG(w[1] == z.dq + z.dk + z.dv, "weights " + w.str() + " do not have the columns of qkv_hidden_sizes");
    }
    if (ctx.has_input(2)) {
      const Shape& b = shape_of(ctx, 2);
      MS_CHECK_ARG(b.rank() == 1 && b[0] == w[1], "bias " + b.str() + " must be 1-D [" + std::to_string(w[1]) + "]");
    }
    MS_CHECK_ARG(z.dq == z.dk, "Q and K hidden sizes differ");
    MS_CHECK_ARG(z.dq % heads_ == 0 && z.dv % heads_ == 0, "hidden sizes are not divisible by num_heads");
    AttentionDims& d = z.d;
    d.rank3 = true;
    d.B = x[0];
    d.Lq = d.Lk = x[1];
    d.Hq = d.Hkv = heads_;
    d.D = z.dq / heads_;
    d.Dv = z.dv / heads_;
    if (ctx.has_input(4)) {
      const Shape& p = shape_of(ctx, 4);
      MS_CHECK_ARG(d.D == d.Dv, "past needs equal K and V head sizes");
      MS_CHECK_ARG(p.rank() == 5 && p[0] == 2 && p[1] == d.B && p[2] == heads_ && p[4] == d.D,
                   "past " + p.str() + " must be [2, batch, num_heads, past_sequence, head_size]");
      d.P = p[3];
    }
    if (ctx.num_outputs() > 1) MS_CHECK_ARG(d.D == d.Dv, "present needs equal K and V head sizes");
    MS_ASSIGN_OR_RETURN(z.mask, plan_mask(ctx, 3, 5, d));
    return z;
  }

  std::vector<int64_t> qkv_;
};

// --- MultiHeadAttention -------------------------------------------------------------------------

class MsMultiHeadAttentionKernel final : public ContribAttentionBase {
 public:
  explicit MsMultiHeadAttentionKernel(const Node& n) : ContribAttentionBase(n) {}

  Status infer(InferContext& ctx) const override {
    if (ctx.num_outputs() > 3 && ctx.node().outputs[3] != kNoValue) return Unsupported("output_qk is not supported");
    MS_ASSIGN_OR_RETURN(Sizes z, sizes(ctx));
    const AttentionDims& d = z.d;
    ctx.set_output(0, DType::kFloat32, Shape{d.B, d.Lq, heads_ * d.Dv});
    if (ctx.num_outputs() > 1) ctx.set_output(1, DType::kFloat32, Shape{d.B, heads_, d.total(), d.D});
    if (ctx.num_outputs() > 2) ctx.set_output(2, DType::kFloat32, Shape{d.B, heads_, d.total(), d.Dv});
    ctx.set_workspace(workspace(z, ctx.threads()));
    return Status::OK();
  }

  Status compute(const ComputeContext& ctx) const override {
    MS_ASSIGN_OR_RETURN(Sizes z, sizes(ctx));
    AttentionDims d = z.d;
    const int64_t B = d.B, S = d.Lq, L = d.Lk, N = heads_, dq = N * d.D, dv = N * d.Dv;
    char* ws = static_cast<char*>(ctx.workspace());
    float* qb = reinterpret_cast<float*>(ws);
    float* kb = qb + z.q_floats;
    float* vb = kb + z.k_floats;
    float* mask = reinterpret_cast<float*>(ws + align64(static_cast<size_t>(z.q_floats + z.k_floats + z.v_floats) * 4));
    void* core_ws = reinterpret_cast<char*>(mask) + align64(z.mask.floats(d) * 4);
    const float* bias = ctx.has_input(3) ? ctx.input(3).data<float>() : nullptr;
    // Rows [B * len, width] of `in` plus bias[off, off + width) into `dst`.
    auto add_bias = [&](const float* in, int64_t rows, int64_t width, int64_t off, float* dst) {
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t c = 0; c < width; ++c) dst[r * width + c] = in[r * width + c] + bias[off + c];
    };
    AttentionArgs<float> a;
    const float* q = ctx.input(0).data<float>();
    if (bias) add_bias(q, B * S, dq, 0, qb), q = qb;
    a.q = {q, S * dq, d.D, dq};
    const float* k = ctx.input(1).data<float>();
    const float* v = ctx.input(2).data<float>();
    if (z.bnsh_kv) {
      a.k = {k, N * L * d.D, L * d.D, d.D};
      a.v = {v, N * L * d.Dv, L * d.Dv, d.Dv};
    } else {
      if (bias) add_bias(k, B * L, dq, dq, kb), k = kb;
      if (bias) add_bias(v, B * L, dv, 2 * dq, vb), v = vb;
      a.k = {k, L * dq, d.D, dq};
      a.v = {v, L * dv, d.Dv, dv};
    }
    if (d.P) a.past_k = ctx.input(6).data<float>(), a.past_v = ctx.input(7).data<float>();
    build_mask(ctx, 4, 5, z.mask, d, mask);
    if (d.has_mask) a.mask = mask;
    a.y = {ctx.output(0).data<float>(), S * dv, d.Dv, dv};
    if (ctx.has_output(1)) a.present_k = ctx.output(1).data<float>();
    if (ctx.has_output(2)) a.present_v = ctx.output(2).data<float>();
    return attention_run<float>(a, d, options(), ctx.pool(), core_ws);
  }

 private:
  struct Sizes {
    AttentionDims d;
    bool bnsh_kv = false;
    int64_t q_floats = 0, k_floats = 0, v_floats = 0;  // bias-added copies
    MaskPlan mask;
  };

  size_t workspace(const Sizes& z, int threads) const {
    return align64(static_cast<size_t>(z.q_floats + z.k_floats + z.v_floats) * 4) + align64(z.mask.floats(z.d) * 4) +
           attention_workspace(z.d, DType::kFloat32, threads);
  }

  template <class Ctx>
  StatusOr<Sizes> sizes(const Ctx& ctx) const {
    MS_CHECK_ARG(ctx.has_input(0) && ctx.has_input(1) && ctx.has_input(2),
                 "MultiHeadAttention needs query, key and value (packed forms are not supported)");
    for (int i : {0, 1, 2, 3, 6, 7})
      if (ctx.has_input(i) && dtype_of(ctx, i) != DType::kFloat32)
        return Unsupported(std::string("dtype ") + dtype_name(dtype_of(ctx, i)) + " is not supported (float32 only)");
    if (ctx.has_input(8) || ctx.has_input(9))
      return Unsupported("past_sequence_length and cache_indirection are not supported");
    const Shape &q = shape_of(ctx, 0), &k = shape_of(ctx, 1), &v = shape_of(ctx, 2);
    MS_CHECK_ARG(q.rank() == 3, "query must be 3-D [batch, sequence, hidden], got " + q.str());
    Sizes z;
    AttentionDims& d = z.d;
    const int64_t N = heads_;
    d.rank3 = true;
    d.B = q[0];
    d.Lq = q[1];
    d.Hq = d.Hkv = N;
    MS_CHECK_ARG(q[2] % N == 0, "query hidden size is not divisible by num_heads");
    d.D = q[2] / N;
    if (k.rank() == 4) {  // [B, N, L, H]: already projected and split (cross attention)
      z.bnsh_kv = true;
      MS_CHECK_ARG(v.rank() == 4 && k[0] == d.B && v[0] == d.B && k[1] == N && v[1] == N && k[3] == d.D && v[2] == k[2],
                   "key " + k.str() + " / value " + v.str() + " must be [batch, num_heads, kv_sequence, head_size]");
      MS_CHECK_ARG(!ctx.has_input(3) && !ctx.has_input(6) && !ctx.has_input(7),
                   "key and value of [batch, num_heads, kv_sequence, head_size] take no bias and no past");
      d.Lk = k[2];
      d.Dv = v[3];
    } else {
      MS_CHECK_ARG(
          k.rank() == 3 && v.rank() == 3 && k[0] == d.B && v[0] == d.B && k[2] == q[2] && v[1] == k[1] && v[2] % N == 0,
          "key " + k.str() + " / value " + v.str() + " must be [batch, kv_sequence, hidden] matching query " + q.str() +
              " (packed forms are not supported)");
      d.Lk = k[1];
      d.Dv = v[2] / N;
    }
    if (ctx.has_input(3)) {
      const Shape& b = shape_of(ctx, 3);
      MS_CHECK_ARG(b.rank() == 1 && b[0] == 2 * N * d.D + N * d.Dv,
                   "bias " + b.str() + " must be 1-D [" + std::to_string(2 * N * d.D + N * d.Dv) + "]");
      z.q_floats = d.B * d.Lq * N * d.D;
      z.k_floats = d.B * d.Lk * N * d.D;
      z.v_floats = d.B * d.Lk * N * d.Dv;
    }
    MS_CHECK_ARG(ctx.has_input(6) == ctx.has_input(7), "past_key and past_value must be given together");
    if (ctx.has_input(6)) {
      const Shape &pk = shape_of(ctx, 6), &pv = shape_of(ctx, 7);
      MS_CHECK_ARG(pk.rank() == 4 && pv.rank() == 4 && pk[0] == d.B && pv[0] == d.B && pk[1] == N && pv[1] == N &&
                       pk[3] == d.D && pv[3] == d.Dv && pk[2] == pv[2],
                   "past_key " + pk.str() + " / past_value " + pv.str() +
                       " must be [batch, num_heads, past_sequence, head_size]");
      d.P = pk[2];
    }
    MS_ASSIGN_OR_RETURN(z.mask, plan_mask(ctx, 4, 5, d));
    return z;
  }
};

}  // namespace

StatusOr<KernelPtr> create_microsoft_Attention(const Node& n, const KernelInit&) {
  MS_CHECK_ARG(n.attr_int("num_heads", 0) > 0, "Attention needs num_heads > 0");
  if (n.attr_int("do_rotary", 0) != 0) return Unsupported("do_rotary is not supported");
  if (n.attr_int("past_present_share_buffer", 0) != 0) return Unsupported("past_present_share_buffer is not supported");
  std::vector<int64_t> qkv;
  if (n.attr("qkv_hidden_sizes")) {
    qkv = n.attr_ints("qkv_hidden_sizes");
    MS_CHECK_ARG(qkv.size() == 3 && qkv[0] > 0 && qkv[1] > 0 && qkv[2] > 0,
                 "qkv_hidden_sizes must hold three positive sizes");
  }
  return KernelPtr(new MsAttentionKernel(n, std::move(qkv)));
}

StatusOr<KernelPtr> create_microsoft_MultiHeadAttention(const Node& n, const KernelInit&) {
  MS_CHECK_ARG(n.attr_int("num_heads", 0) > 0, "MultiHeadAttention needs num_heads > 0");
  return KernelPtr(new MsMultiHeadAttentionKernel(n));
}

}  // namespace mserve
