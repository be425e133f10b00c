// Attention (opsets 23, 24; the window attributes of 25) and RotaryEmbedding (opset 23).
//
// Attention: Y = softmax(softcap(scale * Q K^T) + bias) V per (batch, query head), with
//   Q [B, Hq, Lq, D] / K [B, Hkv, Lk, D] / V [B, Hkv, Lk, Dv] (4-D), or 3-D [B, L, heads * size]
//   with the head counts from q_num_heads / kv_num_heads. Query head h reads KV head
//   h / (Hq / Hkv) (grouped-query attention). past_key / past_value [B, Hkv, P, *] are prepended
//   to K / V; present_key / present_value are the concatenations. The bias is -inf where a key
//   is masked and the attn_mask value (0 for true booleans) elsewhere: attn_mask broadcasts to
//   [B, Hq, Lq, P + Lk] with a last dim that may be shorter (the rest is masked); is_causal masks
//   key j > i + offset, offset = P (past cache), nonpad_kv_seqlen[b] - Lq (opset 24 external
//   cache) or 0; nonpad_kv_seqlen masks keys j >= nonpad_kv_seqlen[b]; left/right_window_size
//   (opset 25) mask keys outside [i + offset - left, i + offset + right]. A query row whose
//   keys are all masked attends nothing: its probabilities and output are 0.
//   Optional output 3 (qk_matmul_output, [B, Hq, Lq, P + Lk]) as the ONNX reference defines
//   qk_matmul_output_mode: 0 and 1 the scaled (softcapped) product, 2 with the bias added,
//   3 the probabilities. Computation runs in float (double for float64 inputs).
//
// com.mserve.MultiHeadAttention (passes/fuse_attention.cc): the same kernel for the pattern
//   softmax(scale * Q K^T + mask) V, with Q / K / V 4-D, layout "bhsd" ([B, H, L, D], as the
//   ONNX op) or "bshd" ([B, L, H, D]: the head split's Transposes left out, the output
//   [B, Lq, H, Dv]); scale always given; the mask (float: added, bool: true attends) broadcasts
//   as numpy broadcasts it to [B, H, Lq, Lk] (a last dim of 1 covers every key).
//
// RotaryEmbedding: rotates the first rotary_embedding_dim (default head size) channels of each
//   head by the angles whose cos / sin come from the caches, indexed by position_ids [B, S]
//   (caches [max_pos, rot/2]) or given per token (caches [B, S, rot/2]). The pairs are
//   (k, k + rot/2), or (2k, 2k + 1) when interleaved. X is [B, H, S, D] or [B, S, H * D]
//   (num_heads attribute).
#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <type_traits>

#include "core/kernels/attention_core.h"
#include "core/kernels/common.h"
#include "core/kernels/gemm.h"
#include "core/kernels/isa/isa.h"
#include "core/kernels/registry.h"
#include "core/parallel/thread_pool.h"

namespace mserve {
namespace {

template <class T>
using AccOf = std::conditional_t<std::is_same_v<T, double>, double, float>;

template <class A, class T>
inline A to_acc(T v) {
  if constexpr (std::is_same_v<T, Eigen::half>)
    return static_cast<A>(static_cast<float>(v));
  else
    return static_cast<A>(v);
}
template <class T, class A>
inline T from_acc(A v) {
  if constexpr (std::is_same_v<T, Eigen::half>)
    return Eigen::half(static_cast<float>(v));
  else
    return static_cast<T>(v);
}

// Sizes of one Attention call, derived from the input shapes.
using Dims = AttentionDims;

size_t per_task_bytes(const Dims& d, DType t) {
  const size_t acc = t == DType::kFloat64 ? 8 : 4;
  size_t n = static_cast<size_t>(d.Lq * d.total());
  if (t == DType::kFloat16)  // converted Q, K, V and the output of one head
    n += static_cast<size_t>(d.Lq * d.D + d.total() * d.D + d.total() * d.Dv + d.Lq * d.Dv);
  return (n * acc + 63) / 64 * 64;
}

// With mul != 1, each element is multiplied by mul in T (as the reference scales Q and K).
template <class A, class T>
void gather(const T* src, int64_t rows, int64_t cols, int64_t ld, A* dst, T mul = T(1)) {
  const bool scaled = mul != T(1);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c)
      dst[r * cols + c] = to_acc<A>(scaled ? static_cast<T>(src[r * ld + c] * mul) : src[r * ld + c]);
}

}  // namespace

size_t attention_workspace(const AttentionDims& d, DType t, int threads) {
  return static_cast<size_t>(std::max(1, threads)) * per_task_bytes(d, t) + 64;
}

template <class T>
Status attention_run(const AttentionArgs<T>& a, const AttentionDims& d, const AttentionOptions& opt, ThreadPool& pool,
                     void* workspace) {
  using A = AccOf<T>;
  const int64_t Tk = d.total();
  const T* pk = d.P ? a.past_k : nullptr;
  const T* pv = d.P ? a.past_v : nullptr;
  const int64_t* nonpad = a.nonpad;
  if (nonpad)
    for (int64_t b = 0; b < d.B; ++b) MS_CHECK_ARG(nonpad[b] >= 0 && nonpad[b] <= Tk, "nonpad_kv_seqlen out of range");
  T* qk_out = a.qk;
  const bool mask_bool = d.has_mask && a.mask_bool;
  const void* mask = d.has_mask ? a.mask : nullptr;
  const int64_t k_ld = a.k.rs, v_ld = a.v.rs;
  auto k_new = [&](int64_t b, int64_t h) { return a.k.p + b * a.k.bs + h * a.k.hs; };
  auto v_new = [&](int64_t b, int64_t h) { return a.v.p + b * a.v.bs + h * a.v.hs; };
  // present_key / present_value.
  for (int o = 1; o <= 2; ++o) {
    T* dst = o == 1 ? a.present_k : a.present_v;
    if (!dst) continue;
    const int64_t w = o == 1 ? d.D : d.Dv, ld = o == 1 ? k_ld : v_ld;
    const T* past = o == 1 ? pk : pv;
    for (int64_t b = 0; b < d.B; ++b)
      for (int64_t h = 0; h < d.Hkv; ++h) {
        T* p = dst + (b * d.Hkv + h) * Tk * w;
        if (d.P) std::copy(past + (b * d.Hkv + h) * d.P * w, past + (b * d.Hkv + h + 1) * d.P * w, p);
        const T* src = o == 1 ? k_new(b, h) : v_new(b, h);
        for (int64_t r = 0; r < d.Lk; ++r) std::copy(src + r * ld, src + r * ld + w, p + (d.P + r) * w);
      }
  }
  if (d.B * d.Hq * d.Lq * d.Dv == 0 && !qk_out) return Status::OK();

  const A scale = opt.has_scale ? static_cast<A>(opt.scale) : A(1) / std::sqrt(static_cast<A>(d.D));
  const A cap = static_cast<A>(opt.softcap);
  const int64_t group = d.Hq / d.Hkv, tasks = d.B * d.Hq;
  const size_t per_task = per_task_bytes(d, std::is_same_v<T, double>  ? DType::kFloat64
                                            : std::is_same_v<T, float> ? DType::kFloat32
                                                                       : DType::kFloat16);
  const int nthreads = pool.threads();
  const bool outer = tasks >= nthreads;  // heads in parallel, else each product in parallel
  const int64_t nchunks = outer ? std::min<int64_t>(tasks, nthreads) : 1;
  const A ninf = -std::numeric_limits<A>::infinity();
  const bool fast_rows =
      std::is_same_v<T, A> && !(cap > A(0)) && !opt.causal && opt.left < 0 && opt.right < 0 && !nonpad && !qk_out;

  // Rounds to T where T is narrower than A (the reference's half-precision steps).
  auto rt = [](A x) { return std::is_same_v<T, A> ? x : to_acc<A>(from_acc<T>(x)); };
  auto task = [&](int64_t t, char* ws, ThreadPool& gpool) {
    const int64_t b = t / d.Hq, h = t % d.Hq, hk = h / group;
    A* s = reinterpret_cast<A*>(ws);  // scores [Lq, Tk]
    // Views (pointer, leading dim) of Q, the past and new K / V rows, and Y.
    const A *qa, *pka = nullptr, *ka, *pva = nullptr, *va;
    int64_t q_lda, k_lda, v_lda, pk_lda = d.D, pv_lda = d.Dv, y_lda;
    A* ya;
    const T* qh = a.q.p + b * a.q.bs + h * a.q.hs;
    const int64_t q_ld = a.q.rs;
    T* yh = a.y.p + b * a.y.bs + h * a.y.hs;
    const int64_t y_ld = a.y.rs;
    if constexpr (std::is_same_v<T, A>) {
      qa = qh, q_lda = q_ld;
      ka = k_new(b, hk), k_lda = k_ld;
      va = v_new(b, hk), v_lda = v_ld;
      if (d.P) pka = pk + (b * d.Hkv + hk) * d.P * d.D, pva = pv + (b * d.Hkv + hk) * d.P * d.Dv;
      ya = yh, y_lda = y_ld;
    } else {
      A* qb = s + d.Lq * Tk;
      A* kb = qb + d.Lq * d.D;
      A* vb = kb + Tk * d.D;
      A* yb = vb + Tk * d.Dv;
      // Reduced precision follows the reference: Q and K each scaled by sqrt(scale) in T, the
      // product rounded to T.
      const T rs = from_acc<T>(std::sqrt(scale));
      gather(qh, d.Lq, d.D, q_ld, qb, rs);
      if (d.P) gather(pk + (b * d.Hkv + hk) * d.P * d.D, d.P, d.D, d.D, kb, rs);
      gather(k_new(b, hk), d.Lk, d.D, k_ld, kb + d.P * d.D, rs);
      if (d.P) gather(pv + (b * d.Hkv + hk) * d.P * d.Dv, d.P, d.Dv, d.Dv, vb);
      gather(v_new(b, hk), d.Lk, d.Dv, v_ld, vb + d.P * d.Dv);
      qa = qb, q_lda = d.D;
      pka = kb, pk_lda = d.D, ka = kb + d.P * d.D, k_lda = d.D;
      pva = vb, pv_lda = d.Dv, va = vb + d.P * d.Dv, v_lda = d.Dv;
      ya = yb, y_lda = d.Dv;
    }
    const A alpha = std::is_same_v<T, A> ? scale : A(1);
    if (d.P) gemm<A>(false, true, d.Lq, d.P, d.D, alpha, qa, q_lda, pka, pk_lda, A(0), s, Tk, gpool);
    gemm<A>(false, true, d.Lq, d.Lk, d.D, alpha, qa, q_lda, ka, k_lda, A(0), s + d.P, Tk, gpool);
    if constexpr (!std::is_same_v<T, A>)
      for (int64_t j = 0; j < d.Lq * Tk; ++j) s[j] = to_acc<A>(from_acc<T>(s[j]));
    const int64_t off = nonpad ? nonpad[b] - d.Lq : d.P;
    const int64_t limit = nonpad ? nonpad[b] : Tk;
    if (fast_rows) {  // the plain mask-and-softmax, vectorized for this CPU (kernels/isa)
      for (int64_t i = 0; i < d.Lq; ++i) {
        A* row = s + i * Tk;
        const A* add = nullptr;
        if (d.has_mask) {
          const int64_t mrow = b * d.ms_b + h * d.ms_h + i * d.ms_i;
          if (mask_bool) {
            const bool* mb = static_cast<const bool*>(mask) + mrow;
            for (int64_t j = 0; j < d.mlen; ++j)
              if (!mb[j * d.ms_j]) row[j] = ninf;
          } else if (d.ms_j && d.mlen == Tk) {
            add = static_cast<const A*>(mask) + mrow;
          } else if (d.ms_j) {
            for (int64_t j = 0; j < d.mlen; ++j) row[j] += static_cast<const A*>(mask)[mrow + j];
          } else {
            const A m = static_cast<const A*>(mask)[mrow];
            for (int64_t j = 0; j < Tk; ++j) row[j] += m;
          }
          for (int64_t j = d.mlen; j < Tk; ++j) row[j] = ninf;
        }
        softmax_row(row, Tk, add);
      }
    }
    for (int64_t i = 0; i < (fast_rows ? 0 : d.Lq); ++i) {
      A* row = s + i * Tk;
      T* qrow = qk_out ? qk_out + (t * d.Lq + i) * Tk : nullptr;
      const int64_t mrow = b * d.ms_b + h * d.ms_h + i * d.ms_i;
      A mx = ninf;
      bool any = false;
      for (int64_t j = 0; j < Tk; ++j) {
        A x = row[j];
        if (cap > A(0)) x = cap * std::tanh(x / cap);
        if (qrow && opt.qk_mode <= 1) qrow[j] = from_acc<T>(x);
        // Bias: -inf where masked, else the mask value.
        bool ok = j < limit;
        A bias = 0;
        if (opt.causal && j > i + off) ok = false;
        if (opt.left >= 0 && i + off - j > opt.left) ok = false;
        if (opt.right >= 0 && j - (i + off) > opt.right) ok = false;
        if (ok && d.has_mask) {
          if (j >= d.mlen)
            ok = false;
          else if (mask_bool)
            ok = static_cast<const bool*>(mask)[mrow + j * d.ms_j];
          else
            bias = to_acc<A>(static_cast<const T*>(mask)[mrow + j * d.ms_j]);
          if (ok && bias == ninf) ok = false;
        }
        x = ok ? rt(x + bias) : ninf;
        if (qrow && opt.qk_mode == 2) qrow[j] = from_acc<T>(x);
        row[j] = x;
        if (ok) {
          any = true;
          if (x > mx || std::isnan(x)) mx = x;
        }
      }
      if (!any) {
        std::fill(row, row + Tk, A(0));
      } else {
        A sum = 0;
        if (mx == ninf) mx = 0;
        for (int64_t j = 0; j < Tk; ++j) {
          const A e = row[j] == ninf ? A(0) : rt(std::exp(rt(row[j] - mx)));
          row[j] = e;
          sum += e;
        }
        sum = rt(sum);
        if (sum == A(0)) sum = A(1);
        for (int64_t j = 0; j < Tk; ++j) row[j] = row[j] / sum;
      }
      if constexpr (!std::is_same_v<T, A>)  // the probabilities are rounded to T before P V
        for (int64_t j = 0; j < Tk; ++j) row[j] = to_acc<A>(from_acc<T>(row[j]));
      if (qrow && opt.qk_mode == 3)
        for (int64_t j = 0; j < Tk; ++j) qrow[j] = from_acc<T>(row[j]);
    }
    if (d.P) gemm<A>(false, false, d.Lq, d.Dv, d.P, A(1), s, Tk, pva, pv_lda, A(0), ya, y_lda, gpool);
    gemm<A>(false, false, d.Lq, d.Dv, d.Lk, A(1), s + d.P, Tk, va, v_lda, d.P ? A(1) : A(0), ya, y_lda, gpool);
    if constexpr (!std::is_same_v<T, A>)
      for (int64_t i = 0; i < d.Lq; ++i)
        for (int64_t c = 0; c < d.Dv; ++c) yh[i * y_ld + c] = from_acc<T>(ya[i * d.Dv + c]);
  };

  char* ws = static_cast<char*>(workspace);
  if (outer) {
    pool.parallel_for(nchunks, 1, [&](int64_t cb, int64_t ce) {
      ThreadPool serial(1);
      for (int64_t c = cb; c < ce; ++c)
        for (int64_t t = c * tasks / nchunks; t < (c + 1) * tasks / nchunks; ++t) task(t, ws + c * per_task, serial);
    });
  } else {
    for (int64_t t = 0; t < tasks; ++t) task(t, ws, pool);
  }
  return Status::OK();
}
template Status attention_run<float>(const AttentionArgs<float>&, const AttentionDims&, const AttentionOptions&,
                                     ThreadPool&, void*);
template Status attention_run<double>(const AttentionArgs<double>&, const AttentionDims&, const AttentionOptions&,
                                      ThreadPool&, void*);
template Status attention_run<Eigen::half>(const AttentionArgs<Eigen::half>&, const AttentionDims&,
                                           const AttentionOptions&, ThreadPool&, void*);

namespace {

class AttentionKernel final : public Kernel {
 public:
  explicit AttentionKernel(const Node& n)
      : fused_(n.domain == "com.mserve"),
        bshd_(fused_ && n.attr_string("layout", "bhsd") == "bshd"),
        opset_(fused_ ? 23 : n.opset),
        causal_(n.attr_int("is_causal", 0) != 0),
        q_heads_(n.attr_int("q_num_heads", 0)),
        kv_heads_(n.attr_int("kv_num_heads", 0)),
        mode_(n.attr_int("qk_matmul_output_mode", 0)),
        has_scale_(n.attr("scale") != nullptr),
        scale_(n.attr_float("scale", 1.0f)),
        softcap_(n.attr_float("softcap", 0.0f)),
        left_(n.opset >= 25 ? n.attr_int("left_window_size", -1) : -1),
        right_(n.opset >= 25 ? n.attr_int("right_window_size", -1) : -1),
        heads_attrs_(n.attr("q_num_heads") != nullptr || n.attr("kv_num_heads") != nullptr) {}

  Status infer(InferContext& ctx) const override {
    MS_ASSIGN_OR_RETURN(Dims d, dims(ctx));
    const DType t = ctx.dtype(0);
    const int64_t T = d.total();
    if (d.bshd)
      ctx.set_output(0, t, Shape{d.B, d.Lq, d.Hq, d.Dv});
    else if (d.rank3)
      ctx.set_output(0, t, Shape{d.B, d.Lq, d.Hq * d.Dv});
    else
      ctx.set_output(0, t, Shape{d.B, d.Hq, d.Lq, d.Dv});
    if (ctx.num_outputs() > 1) ctx.set_output(1, t, Shape{d.B, d.Hkv, T, d.D});
    if (ctx.num_outputs() > 2) ctx.set_output(2, t, Shape{d.B, d.Hkv, T, d.Dv});
    if (ctx.num_outputs() > 3) ctx.set_output(3, t, Shape{d.B, d.Hq, d.Lq, T});
    ctx.set_workspace(attention_workspace(d, t, ctx.threads()));
    return Status::OK();
  }

  Status compute(const ComputeContext& ctx) const override {
    MS_ASSIGN_OR_RETURN(Dims d, dims(ctx));
    MS_SWITCH_FLOAT(ctx.input(0).dtype(), T, return Unsupported("dtype"), return run<T>(ctx, d));
    return Status::OK();
  }

 private:
  // Shapes and checks shared by infer and compute (Ctx: InferContext or ComputeContext).
  template <class Ctx>
  StatusOr<Dims> dims(const Ctx& ctx) const {
    auto has = [&](int i) { return ctx.has_input(i); };
    auto shape = [&](int i) -> const Shape& {
      if constexpr (std::is_same_v<Ctx, InferContext>)
        return ctx.shape(i);
      else
        return ctx.input(i).shape();
    };
    auto dtype = [&](int i) {
      if constexpr (std::is_same_v<Ctx, InferContext>)
        return ctx.dtype(i);
      else
        return ctx.input(i).dtype();
    };
    MS_CHECK_ARG(has(0) && has(1) && has(2), "Attention needs Q, K and V");
    const DType t = dtype(0);
    if (!dtype_is_float(t)) return Unsupported(std::string("dtype ") + dtype_name(t) + " is not supported");
    for (int i : {1, 2, 4, 5})
      if (has(i)) MS_CHECK_ARG(dtype(i) == t, "K, V, past_key and past_value must have the dtype of Q");
    const Shape &q = shape(0), &k = shape(1), &v = shape(2);
    MS_CHECK_ARG(q.rank() == k.rank() && q.rank() == v.rank() && (q.rank() == 3 || q.rank() == 4),
                 "Q, K and V must all be 3-D or all 4-D");
    MS_CHECK_ARG(!fused_ || q.rank() == 4, "Q, K and V must be 4-D");
    Dims d;
    d.B = q[0];
    MS_CHECK_ARG(k[0] == d.B && v[0] == d.B, "Q, K and V batch sizes differ");
    if (q.rank() == 3) {
      d.rank3 = true;
      MS_CHECK_ARG(q_heads_ > 0 && kv_heads_ > 0, "3-D inputs need q_num_heads and kv_num_heads");
      d.Hq = q_heads_;
      d.Hkv = kv_heads_;
      MS_CHECK_ARG(q[2] % d.Hq == 0 && k[2] % d.Hkv == 0 && v[2] % d.Hkv == 0,
                   "hidden sizes are not divisible by the head counts");
      d.Lq = q[1];
      d.Lk = k[1];
      d.D = q[2] / d.Hq;
      MS_CHECK_ARG(k[2] / d.Hkv == d.D, "K head size differs from Q head size");
      d.Dv = v[2] / d.Hkv;
      MS_CHECK_ARG(v[1] == d.Lk, "K and V sequence lengths differ");
    } else {
      // [B, H, L, D], or [B, L, H, D] (bshd: rows of all heads interleaved, as 3-D inputs).
      MS_CHECK_ARG(!(opset_ >= 25 && heads_attrs_), "q_num_heads and kv_num_heads must not be set for 4-D inputs");
      const int h = bshd_ ? 2 : 1, l = bshd_ ? 1 : 2;
      d.rank3 = d.bshd = bshd_;
      d.Hq = q[h];
      d.Hkv = k[h];
      MS_CHECK_ARG(v[h] == d.Hkv, "K and V head counts differ");
      d.Lq = q[l];
      d.Lk = k[l];
      d.D = q[3];
      MS_CHECK_ARG(k[3] == d.D, "K head size differs from Q head size");
      MS_CHECK_ARG(v[l] == d.Lk, "K and V sequence lengths differ");
      d.Dv = v[3];
    }
    MS_CHECK_ARG(d.Hkv > 0 && d.Hq % d.Hkv == 0, "q heads must be a multiple of kv heads");
    MS_CHECK_ARG(has(4) == has(5), "past_key and past_value must be given together");
    if (has(4)) {
      const Shape &pk = shape(4), &pv = shape(5);
      MS_CHECK_ARG(pk.rank() == 4 && pv.rank() == 4 && pk[0] == d.B && pv[0] == d.B && pk[1] == d.Hkv &&
                       pv[1] == d.Hkv && pk[3] == d.D && pv[3] == d.Dv && pk[2] == pv[2],
                   "past_key " + pk.str() + " / past_value " + pv.str() + " do not match K and V");
      d.P = pk[2];
    }
    if (opset_ >= 24 && has(6)) {
      MS_CHECK_ARG(!has(4), "nonpad_kv_seqlen cannot be combined with past_key / past_value");
      MS_CHECK_ARG(dtype(6) == DType::kInt64 && shape(6).rank() == 1 && shape(6)[0] == d.B,
                   "nonpad_kv_seqlen must be int64 [batch]");
    }
    if (has(3)) {
      const Shape& m = shape(3);
      const DType mt = dtype(3);
      MS_CHECK_ARG(mt == DType::kBool || mt == t, "attn_mask must be bool or the dtype of Q");
      MS_CHECK_ARG(m.rank() >= 1 && m.rank() <= 4, "attn_mask must have rank 1 to 4");
      int64_t md[4] = {1, 1, 1, 1};
      for (int i = 0; i < m.rank(); ++i) md[4 - m.rank() + i] = m[i];
      const int64_t want[3] = {d.B, d.Hq, d.Lq};
      for (int i = 0; i < 3; ++i)
        MS_CHECK_ARG(md[i] == 1 || md[i] == want[i],
                     "attn_mask " + m.str() + " does not broadcast to [batch, q_heads, q_len, kv_len]");
      if (fused_)
        MS_CHECK_ARG(md[3] == 1 || md[3] == d.total(),
                     "mask " + m.str() + " does not broadcast to [batch, heads, q_len, kv_len]");
      MS_CHECK_ARG(md[3] <= d.total(), "attn_mask " + m.str() + " is longer than the keys");
      d.has_mask = true;
      d.mlen = md[3];
      if (fused_ && md[3] == 1) d.ms_j = 0, d.mlen = d.total();  // one value for every key
      d.ms_i = md[2] == 1 ? 0 : md[3];
      d.ms_h = md[1] == 1 ? 0 : md[2] * md[3];
      d.ms_b = md[0] == 1 ? 0 : md[1] * md[2] * md[3];
    }
    MS_CHECK_ARG(mode_ >= 0 && mode_ <= 3, "qk_matmul_output_mode must be 0 to 3");
    return d;
  }

  // Contiguous copy of rows [rows, cols] at `src` (leading dimension ld) into `dst`.
  template <class T>
  Status run(const ComputeContext& ctx, const Dims& d) const {
    AttentionArgs<T> a;
    auto view = [&](int i, int64_t heads, int64_t len, int64_t size) {
      AttentionView<const T> w;
      w.p = ctx.input(i).data<T>();
      w.bs = heads * len * size;
      w.hs = d.rank3 ? size : len * size;
      w.rs = d.rank3 ? heads * size : size;
      return w;
    };
    a.q = view(0, d.Hq, d.Lq, d.D);
    a.k = view(1, d.Hkv, d.Lk, d.D);
    a.v = view(2, d.Hkv, d.Lk, d.Dv);
    if (d.P) a.past_k = ctx.input(4).data<T>(), a.past_v = ctx.input(5).data<T>();
    if (d.has_mask) a.mask = ctx.input(3).raw(), a.mask_bool = ctx.input(3).dtype() == DType::kBool;
    if (opset_ >= 24 && ctx.has_input(6)) a.nonpad = ctx.input(6).data<int64_t>();
    a.y.p = ctx.output(0).data<T>();
    a.y.bs = d.Hq * d.Lq * d.Dv;
    a.y.hs = d.rank3 ? d.Dv : d.Lq * d.Dv;
    a.y.rs = d.rank3 ? d.Hq * d.Dv : d.Dv;
    if (ctx.has_output(1)) a.present_k = ctx.output(1).data<T>();
    if (ctx.has_output(2)) a.present_v = ctx.output(2).data<T>();
    if (ctx.has_output(3)) a.qk = ctx.output(3).data<T>();
    AttentionOptions o;
    o.has_scale = has_scale_;
    o.scale = scale_;
    o.softcap = softcap_;
    o.causal = causal_;
    o.left = left_;
    o.right = right_;
    o.qk_mode = mode_;
    return attention_run<T>(a, d, o, ctx.pool(), ctx.workspace());
  }

  bool fused_, bshd_;
  int64_t opset_;
  bool causal_;
  int64_t q_heads_, kv_heads_, mode_;
  bool has_scale_;
  float scale_, softcap_;
  int64_t left_, right_;
  bool heads_attrs_;
};

class RotaryKernel final : public Kernel {
 public:
  explicit RotaryKernel(const Node& n)
      : interleaved_(n.attr_int("interleaved", 0) != 0),
        rot_(n.attr_int("rotary_embedding_dim", 0)),
        heads_(n.attr_int("num_heads", 0)) {}

  Status infer(InferContext& ctx) const override {
    MS_CHECK_ARG(ctx.has_input(0) && ctx.has_input(1) && ctx.has_input(2),
                 "RotaryEmbedding needs X, cos_cache and sin_cache");
    const DType t = ctx.dtype(0);
    if (!dtype_is_float(t)) return Unsupported(std::string("dtype ") + dtype_name(t) + " is not supported");
    MS_CHECK_ARG(ctx.dtype(1) == t && ctx.dtype(2) == t, "cos_cache and sin_cache must have the dtype of X");
    const Shape& x = ctx.shape(0);
    MS_ASSIGN_OR_RETURN(Geo g, geo(x));
    const Shape &c = ctx.shape(1), &s = ctx.shape(2);
    MS_CHECK_ARG(c == s, "cos_cache and sin_cache shapes differ");
    const bool pos = ctx.has_input(3);
    if (pos) {
      MS_CHECK_ARG(ctx.dtype(3) == DType::kInt64 || ctx.dtype(3) == DType::kInt32, "position_ids must be int64");
      const Shape& p = ctx.shape(3);
      MS_CHECK_ARG(p.rank() == 2 && p[0] == g.B && p[1] == g.S, "position_ids must be [batch, sequence]");
      MS_CHECK_ARG(c.rank() == 2, "with position_ids the caches must be [max_position, rotary_dim / 2]");
    } else {
      MS_CHECK_ARG(c.rank() == 3 && c[0] == g.B && c[1] == g.S,
                   "without position_ids the caches must be [batch, sequence, rotary_dim / 2]");
    }
    MS_CHECK_ARG(c[c.rank() - 1] == g.rot / 2,
                 "cache last dim " + std::to_string(c[c.rank() - 1]) + " is not rotary_embedding_dim / 2");
    ctx.set_output(0, t, x);
    return Status::OK();
  }

  Status compute(const ComputeContext& ctx) const override {
    MS_SWITCH_FLOAT(ctx.input(0).dtype(), T, return Unsupported("dtype"), return run<T>(ctx));
    return Status::OK();
  }

 private:
  struct Geo {
    int64_t B, S, H, D, rot;
    bool rank4;
  };
  StatusOr<Geo> geo(const Shape& x) const {
    Geo g{};
    if (x.rank() == 4) {
      g = {x[0], x[2], x[1], x[3], 0, true};
    } else if (x.rank() == 3) {
      MS_CHECK_ARG(heads_ > 0, "3-D input needs num_heads");
      MS_CHECK_ARG(x[2] % heads_ == 0, "hidden size is not divisible by num_heads");
      g = {x[0], x[1], heads_, x[2] / heads_, 0, false};
    } else {
      return InvalidArgument("RotaryEmbedding input must be 3-D or 4-D, got " + x.str());
    }
    g.rot = rot_ > 0 ? rot_ : g.D;
    MS_CHECK_ARG(g.rot <= g.D && g.rot % 2 == 0, "rotary_embedding_dim must be even and at most the head size");
    return g;
  }

  template <class T>
  Status run(const ComputeContext& ctx) const {
    using A = AccOf<T>;
    const Tensor& xt = ctx.input(0);
    MS_ASSIGN_OR_RETURN(Geo g, geo(xt.shape()));
    const T* x = xt.data<T>();
    const T* cc = ctx.input(1).data<T>();
    const T* sc = ctx.input(2).data<T>();
    T* y = ctx.output(0).data<T>();
    const bool pos = ctx.has_input(3);
    const int64_t half = g.rot / 2, max_pos = ctx.input(1).dim(0);
    if (pos) {
      const Tensor& p = ctx.input(3);
      for (int64_t i = 0; i < p.numel(); ++i) {
        const int64_t v = p.int_at(i);
        MS_CHECK_ARG(v >= 0 && v < max_pos, "position id " + std::to_string(v) + " out of range");
      }
    }
    const Tensor* pt = pos ? &ctx.input(3) : nullptr;
    ctx.pool().parallel_for(
        g.B * g.S, std::max<int64_t>(1, 8192 / std::max<int64_t>(1, g.H * g.D)), [&](int64_t b0, int64_t e0) {
          for (int64_t bs = b0; bs < e0; ++bs) {
            const int64_t b = bs / g.S, si = bs % g.S;
            const int64_t row = pt ? pt->int_at(bs) : bs;
            const T* c = cc + row * half;
            const T* sn = sc + row * half;
            for (int64_t h = 0; h < g.H; ++h) {
              const int64_t o = g.rank4 ? ((b * g.H + h) * g.S + si) * g.D : (bs * g.H + h) * g.D;
              const T* xi = x + o;
              T* yi = y + o;
              for (int64_t kk = 0; kk < half; ++kk) {
                const int64_t i1 = interleaved_ ? 2 * kk : kk, i2 = interleaved_ ? 2 * kk + 1 : kk + half;
                const A x1 = to_acc<A>(xi[i1]), x2 = to_acc<A>(xi[i2]);
                const A cv = to_acc<A>(c[kk]), sv = to_acc<A>(sn[kk]);
                yi[i1] = from_acc<T>(cv * x1 - sv * x2);
                yi[i2] = from_acc<T>(sv * x1 + cv * x2);
              }
              for (int64_t kk = g.rot; kk < g.D; ++kk) yi[kk] = xi[kk];
            }
          }
        });
    return Status::OK();
  }

  bool interleaved_;
  int64_t rot_, heads_;
};

}  // namespace

StatusOr<KernelPtr> create_onnx_Attention(const Node& n, const KernelInit&) {
  const int64_t mode = n.attr_int("qk_matmul_output_mode", 0);
  if (mode < 0 || mode > 3) return InvalidArgument("qk_matmul_output_mode must be 0 to 3");
  if (n.attr("softmax_precision")) {
    const int64_t p = n.attr_int("softmax_precision", 1);
    // float, float16, double, bfloat16: the softmax runs in float (double for float64) anyway.
    if (p != 1 && p != 10 && p != 11 && p != 16) return Unsupported("softmax_precision " + std::to_string(p));
  }
  return KernelPtr(new AttentionKernel(n));
}
StatusOr<KernelPtr> create_mserve_MultiHeadAttention(const Node& n, const KernelInit&) {
  const std::string layout = n.attr_string("layout", "bhsd");
  MS_CHECK_ARG(layout == "bhsd" || layout == "bshd", "layout must be 'bhsd' or 'bshd', got '" + layout + "'");
  MS_CHECK_ARG(n.attr("scale") != nullptr, "MultiHeadAttention needs its scale");
  return KernelPtr(new AttentionKernel(n));
}
StatusOr<KernelPtr> create_onnx_RotaryEmbedding(const Node& n, const KernelInit&) {
  return KernelPtr(new RotaryKernel(n));
}

}  // namespace mserve
