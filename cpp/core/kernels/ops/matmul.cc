// Gemm and MatMul (and com.mserve FusedMatMul, and com.microsoft FusedMatMul: the same kernel
// for alpha * op(A) op(B), attributes alpha, transA, transB; transBatchA / transBatchB, which
// move the first axis behind the batch axes, are refused).
// Gemm: Y = alpha * op(A) * op(B) + beta * C, A and B 2-D, C unidirectionally broadcast to
// [M, N] (optional from opset 11). MatMul: numpy matmul semantics (1-D operands promoted and
// the added dimension removed; batch dimensions broadcast).
#include <algorithm>
#include <string>
#include <vector>

#include "core/kernels/common.h"
#include "core/kernels/dnnl_matmul.h"
#include "core/kernels/gemm.h"
#include "core/kernels/registry.h"
#include "core/parallel/thread_pool.h"

namespace mserve {
namespace {

bool gemm_dtype(DType t) { return t == DType::kFloat32 || t == DType::kFloat64; }

// float32 products with constant weights run on oneDNN (kernels/dnnl_matmul.h) where it takes
// the shape; infer decides per row count and compute follows the same answer.
std::unique_ptr<DnnlMatMul> packed_gemm(const Tensor* b, bool trans_b, float alpha, const Tensor* c, float beta,
                                        const FusedActivation& act, PackStore* store) {
  if (!b || b->dtype() != DType::kFloat32 || b->rank() != 2) return nullptr;
  const int64_t K = trans_b ? b->dim(1) : b->dim(0), N = trans_b ? b->dim(0) : b->dim(1);
  std::vector<float> bias;
  if (c) {
    const bool row = c->rank() == 1 || (c->rank() == 2 && c->dim(0) == 1);
    if (c->dtype() != DType::kFloat32 || c->numel() != N || !row) return nullptr;
    bias.assign(c->data<float>(), c->data<float>() + N);
    for (float& v : bias) v *= beta;
  }
  const float* w = b->data<float>();
  std::vector<float> scaled;
  if (alpha != 1.0f) {
    scaled.assign(w, w + b->numel());
    for (float& v : scaled) v *= alpha;
    w = scaled.data();
  }
  return DnnlMatMul::create(K, N, w, trans_b, c ? bias.data() : nullptr, act, store);
}

class GemmKernel final : public Kernel {
 public:
  GemmKernel(const Node& n, std::unique_ptr<DnnlMatMul> packed)
      : ta_(n.attr_int("transA", 0) != 0),
        tb_(n.attr_int("transB", 0) != 0),
        alpha_(n.attr_float("alpha", 1.0f)),
        beta_(n.attr_float("beta", 1.0f)),
        act_(FusedActivation::of(n)),
        packed_(ta_ ? nullptr : std::move(packed)),
        dnnl_only_(packed_ && DnnlMatMul::always_takes(packed_->K(), packed_->N())) {}

  // Weights big enough that oneDNN takes every row count: B and C live only in oneDNN's copy.
  bool packed_constant(int i) const override { return dnnl_only_ && (i == 1 || i == 2); }

  Status infer(InferContext& ctx) const override {
    const DType t = ctx.dtype(0);
    if (!gemm_dtype(t)) return Unsupported(std::string("dtype ") + dtype_name(t) + " is not supported");
    MS_CHECK_ARG(ctx.dtype(1) == t, "A and B dtypes differ");
    const Shape &a = ctx.shape(0), &b = ctx.shape(1);
    MS_CHECK_ARG(a.rank() == 2 && b.rank() == 2, "A and B must be 2-D, got " + a.str() + " and " + b.str());
    const int64_t M = ta_ ? a[1] : a[0], K = ta_ ? a[0] : a[1];
    const int64_t Kb = tb_ ? b[1] : b[0], N = tb_ ? b[0] : b[1];
    MS_CHECK_ARG(K == Kb, "inner dimensions differ: A " + a.str() + (ta_ ? " (transposed)" : "") + ", B " + b.str() +
                              (tb_ ? " (transposed)" : ""));
    const Shape out{M, N};
    if (ctx.has_input(2)) {
      MS_CHECK_ARG(ctx.dtype(2) == t, "C dtype differs from A");
      auto bc = broadcast_shapes(ctx.shape(2), out);
      MS_CHECK_ARG(ctx.shape(2).rank() <= 2 && bc.ok() && bc.value() == out,
                   "C of shape " + ctx.shape(2).str() + " does not broadcast to " + out.str());
    }
    ctx.set_output(0, t, out);
    if (packed_ && t == DType::kFloat32 && K == packed_->K() && N == packed_->N() && M > 0) {
      auto ws = packed_->prepare(M, ctx.threads());
      if (ws.ok())
        ctx.set_workspace(ws.value());
      else if (dnnl_only_)
        return ws.status();  // no Eigen path: the original weights are gone
    }
    return Status::OK();
  }

  Status compute(const ComputeContext& ctx) const override {
    if (packed_ && ctx.input(0).dtype() == DType::kFloat32 && ctx.output(0).numel() > 0) {
      Status st = packed_->run(ctx.input(0).data<float>(), ctx.output(0).data<float>(), ctx.output(0).dim(0),
                               ctx.workspace(), ctx.pool().threads());
      if (st.code() != Code::kUnsupported) return st;  // else infer planned the Eigen path
    }
    MS_SWITCH_FLOAT(ctx.input(0).dtype(), T, return Unsupported("dtype"), run<T>(ctx));
    return Status::OK();
  }

 private:
  template <class T>
  void run(const ComputeContext& ctx) const {
    if constexpr (std::is_same_v<T, float> || std::is_same_v<T, double>) {
      const Tensor &a = ctx.input(0), &b = ctx.input(1);
      Tensor& y = ctx.output(0);
      const int64_t M = y.dim(0), N = y.dim(1), K = ta_ ? a.dim(0) : a.dim(1);
      T* out = y.data<T>();
      T beta = 0;
      if (ctx.has_input(2) && beta_ != 0.0f) {
        // Broadcast C into Y, then accumulate the product on top of it.
        const Tensor& c = ctx.input(2);
        int64_t st[Shape::kMaxRank];
        broadcast_strides(c.shape(), y.shape(), st);
        const T* cp = c.data<T>();
        for (int64_t i = 0; i < M; ++i)
          for (int64_t j = 0; j < N; ++j) out[i * N + j] = cp[i * st[0] + j * st[1]];
        beta = static_cast<T>(beta_);
      }
      gemm<T>(ta_, tb_, M, N, K, static_cast<T>(alpha_), a.data<T>(), a.dim(1), b.data<T>(), b.dim(1), beta, out, N,
              ctx.pool());
      act_.apply(out, M * N);
    }
  }
  bool ta_, tb_;
  float alpha_, beta_;
  FusedActivation act_;                 // fuse_activation
  std::unique_ptr<DnnlMatMul> packed_;  // B (alpha, beta * C, activation folded in) packed; null: Eigen
  bool dnnl_only_;
};

// MatMul, and com.mserve FusedMatMul: act(alpha * op(A) op(B) + bias[N]) with op() a transpose of
// the last two dims when transA / transB are set (fold_transpose_matmul), bias a constant
// float32 vector (fuse_matmul_bias: PyTorch's MatMul + Add exports of Linear on 3-D inputs) and
// the activation fused (fuse_activation). With constant weights, bias, alpha and activation are
// done by oneDNN; on the Eigen path right after the product, while it is in cache.
struct MatMulParams {
  bool ta = false, tb = false;
  float alpha = 1.0f;
  std::vector<float> bias;  // [N], or empty
  FusedActivation act;

  static MatMulParams of(const Node& n) {
    MatMulParams p;
    p.ta = n.attr_int("transA", 0) != 0;
    p.tb = n.attr_int("transB", 0) != 0;
    p.alpha = n.attr_float("alpha", 1.0f);
    p.act = FusedActivation::of(n);
    return p;
  }
  // Scaling, bias and activation are for float products; transposes for any.
  bool float_only() const { return alpha != 1.0f || !bias.empty() || act.kind != FusedActivation::Kind::kNone; }
};

class MatMulKernel final : public Kernel {
 public:
  MatMulKernel(std::unique_ptr<DnnlMatMul> packed, MatMulParams p)
      : packed_(std::move(packed)),
        p_(std::move(p)),
        dnnl_only_(packed_ && DnnlMatMul::always_takes(packed_->K(), packed_->N())) {}

  // B lives only in oneDNN's copy when oneDNN takes every row count; the bias is copied.
  bool packed_constant(int i) const override { return (i == 1 && dnnl_only_) || (i == 2 && !p_.bias.empty()); }

  Status infer(InferContext& ctx) const override {
    const DType t = ctx.dtype(0);
    const bool ok =
        gemm_dtype(t) || t == DType::kInt32 || t == DType::kInt64 || t == DType::kUInt32 || t == DType::kUInt64;
    if (!ok) return Unsupported(std::string("dtype ") + dtype_name(t) + " is not supported");
    if (p_.float_only() && !gemm_dtype(t))
      return Unsupported("FusedMatMul with alpha, bias or activation takes float32 or float64");
    MS_CHECK_ARG(ctx.dtype(1) == t, "input dtypes differ");
    MS_ASSIGN_OR_RETURN(Shape out, out_shape(ctx.shape(0), ctx.shape(1)));
    if (!p_.bias.empty())
      MS_CHECK_ARG(out.rank() >= 1 && out[out.rank() - 1] == static_cast<int64_t>(p_.bias.size()),
                   "bias of " + std::to_string(p_.bias.size()) + " values does not match the product " + out.str());
    ctx.set_output(0, t, out);
    if (packed_ && t == DType::kFloat32 && ctx.shape(1).rank() == 2 && out.numel() > 0) {
      const Shape& a = ctx.shape(0);
      auto ws = packed_->prepare(a.prod(0, a.rank() - 1), ctx.threads());
      if (ws.ok())
        ctx.set_workspace(ws.value());
      else if (dnnl_only_)
        return ws.status();  // no Eigen path: the original weights are gone
    }
    return Status::OK();
  }

  Status compute(const ComputeContext& ctx) const override {
    if (packed_ && ctx.input(0).dtype() == DType::kFloat32 && ctx.output(0).numel() > 0) {
      // B is one constant matrix: every batch of A folds into the rows of a single product.
      const Shape& a = ctx.input(0).shape();
      Status st = packed_->run(ctx.input(0).data<float>(), ctx.output(0).data<float>(), a.prod(0, a.rank() - 1),
                               ctx.workspace(), ctx.pool().threads());
      if (st.code() != Code::kUnsupported) return st;  // else infer planned the Eigen path
    }
    switch (ctx.input(0).dtype()) {
      case DType::kFloat32: return run<float>(ctx);
      case DType::kFloat64: return run<double>(ctx);
      case DType::kInt32: return run<int32_t>(ctx);
      case DType::kInt64: return run<int64_t>(ctx);
      case DType::kUInt32: return run<uint32_t>(ctx);
      case DType::kUInt64: return run<uint64_t>(ctx);
      default: return Unsupported("dtype");
    }
  }

 private:
  // Operands as [batch..., rows, cols] after 1-D promotion and the transposes of op().
  Shape promote(const Shape& s, bool is_a) const {
    Shape p = s;
    if (s.rank() == 1) {
      if (is_a)
        p.insert(0, 1);
      else
        p.push_back(1);
    } else if (is_a ? p_.ta : p_.tb) {
      std::swap(p[p.rank() - 1], p[p.rank() - 2]);
    }
    return p;
  }

  StatusOr<Shape> out_shape(const Shape& a0, const Shape& b0) const {
    MS_CHECK_ARG(a0.rank() >= 1 && b0.rank() >= 1, "MatMul operands must have rank >= 1");
    MS_CHECK_ARG((!p_.ta || a0.rank() >= 2) && (!p_.tb || b0.rank() >= 2), "a transposed operand must have rank >= 2");
    const Shape a = promote(a0, true), b = promote(b0, false);
    MS_CHECK_ARG(a[a.rank() - 1] == b[b.rank() - 2], "inner dimensions differ: " + a0.str() +
                                                         (p_.ta ? " (transposed)" : "") + " x " + b0.str() +
                                                         (p_.tb ? " (transposed)" : ""));
    Shape ba(a.begin(), a.end() - 2), bb(b.begin(), b.end() - 2);
    auto batch = broadcast_shapes(ba, bb);
    if (!batch.ok())
      return InvalidArgument("batch dimensions of " + a0.str() + " and " + b0.str() + " do not broadcast");
    Shape out = batch.value();
    if (a0.rank() > 1) out.push_back(a[a.rank() - 2]);
    if (b0.rank() > 1) out.push_back(b[b.rank() - 1]);
    return out;
  }

  template <class T>
  Status run(const ComputeContext& ctx) const {
    const Tensor &ta = ctx.input(0), &tb = ctx.input(1);
    Tensor& ty = ctx.output(0);
    const Shape a = promote(ta.shape(), true), b = promote(tb.shape(), false);
    const int64_t M = a[a.rank() - 2], K = a[a.rank() - 1], N = b[b.rank() - 1];
    const T* ap = ta.data<T>();
    const T* bp = tb.data<T>();
    T* yp = ty.data<T>();
    if (ty.numel() == 0) return Status::OK();
    const int64_t batch_b = b.prod(0, b.rank() - 2);
    if (batch_b == 1 && !p_.ta) {
      // B is one matrix: fold every batch of A into the rows of a single product.
      mm<T>(a.prod(0, a.rank() - 1), N, K, ap, bp, yp, ctx.pool());
    } else {
      Shape ba(a.begin(), a.end() - 2), bb(b.begin(), b.end() - 2);
      const Shape batch = broadcast_shapes(ba, bb).value();
      int64_t sa[Shape::kMaxRank], sb[Shape::kMaxRank];
      broadcast_strides(ba, batch, sa);
      broadcast_strides(bb, batch, sb);
      const int64_t nb = batch.numel();
      for (int64_t q = 0; q < nb; ++q) {
        int64_t rem = q, oa = 0, ob = 0;
        for (int d = batch.rank() - 1; d >= 0; --d) {
          const int64_t idx = rem % batch[d];
          rem /= batch[d];
          oa += idx * sa[d];
          ob += idx * sb[d];
        }
        mm<T>(M, N, K, ap + oa * M * K, bp + ob * K * N, yp + q * M * N, ctx.pool());
      }
    }
    if constexpr (std::is_same_v<T, float> || std::is_same_v<T, double>) epilogue(yp, ty.numel(), ctx.pool());
    return Status::OK();
  }

  // Bias and activation over Y, in row blocks across the pool.
  template <class T>
  void epilogue(T* y, int64_t n, ThreadPool& pool) const {
    if (p_.bias.empty() && p_.act.kind == FusedActivation::Kind::kNone) return;
    const int64_t N = p_.bias.empty() ? n : static_cast<int64_t>(p_.bias.size()), rows = n / N;
    pool.parallel_for(rows, std::max<int64_t>(1, 16384 / N), [&](int64_t rb, int64_t re) {
      for (int64_t r = rb; r < re; ++r) {
        T* row = y + r * N;
        if (!p_.bias.empty())
          for (int64_t j = 0; j < N; ++j) row[j] += static_cast<T>(p_.bias[j]);
        p_.act.apply(row, N);
      }
    });
  }

  // C[M, N] = alpha * op(A) op(B) for one matrix of each (the operands' stored layouts).
  template <class T>
  void mm(int64_t M, int64_t N, int64_t K, const T* A, const T* B, T* C, ThreadPool& pool) const {
    if constexpr (std::is_same_v<T, float> || std::is_same_v<T, double>) {
      gemm<T>(p_.ta, p_.tb, M, N, K, static_cast<T>(p_.alpha), A, p_.ta ? M : K, B, p_.tb ? K : N, T(0), C, N, pool);
    } else {  // integers (never scaled or activated: infer refuses)
      // op(A)(i, k) and op(B)(k, j) as strides over the stored layouts.
      const int64_t ai = p_.ta ? 1 : K, ak = p_.ta ? M : 1, bk = p_.tb ? 1 : N, bj = p_.tb ? K : 1;
      pool.parallel_for(M, 4, [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) {
          T* c = C + i * N;
          std::fill(c, c + N, T(0));
          for (int64_t k = 0; k < K; ++k) {
            const T av = A[i * ai + k * ak];
            const T* brow = B + k * bk;
            for (int64_t j = 0; j < N; ++j) c[j] = static_cast<T>(c[j] + av * brow[j * bj]);
          }
        }
      });
    }
  }

  std::unique_ptr<DnnlMatMul> packed_;  // constant 2-D B (bias, alpha, activation folded in); null: Eigen
  MatMulParams p_;
  bool dnnl_only_;
};

// A constant 2-D float32 B of a MatMul, packed for oneDNN with the fused parameters; null where
// oneDNN does not take it (the Eigen path runs).
std::unique_ptr<DnnlMatMul> packed_matmul(const Node& n, const KernelInit& init, const MatMulParams& p) {
  const Tensor* b = init.constant(n, 1);
  if (!b || b->dtype() != DType::kFloat32 || b->rank() != 2 || p.ta) return nullptr;
  const int64_t K = p.tb ? b->dim(1) : b->dim(0), N = p.tb ? b->dim(0) : b->dim(1);
  if (!p.bias.empty() && static_cast<int64_t>(p.bias.size()) != N) return nullptr;
  const float* w = b->data<float>();
  std::vector<float> scaled;
  if (p.alpha != 1.0f) {
    scaled.assign(w, w + b->numel());
    for (float& v : scaled) v *= p.alpha;
    w = scaled.data();
  }
  return DnnlMatMul::create(K, N, w, p.tb, p.bias.empty() ? nullptr : p.bias.data(), p.act, init.packs());
}

}  // namespace

StatusOr<KernelPtr> create_onnx_Gemm(const Node& n, const KernelInit& init) {
  const bool has_c = n.inputs.size() > 2 && n.inputs[2] != kNoValue;
  const Tensor* c = has_c ? init.constant(n, 2) : nullptr;
  std::unique_ptr<DnnlMatMul> packed;
  if ((!has_c || c) && init.prepack())
    packed = packed_gemm(init.constant(n, 1), n.attr_int("transB", 0) != 0, n.attr_float("alpha", 1.0f), c,
                         n.attr_float("beta", 1.0f), FusedActivation::of(n), init.packs());
  return KernelPtr(new GemmKernel(n, std::move(packed)));
}

StatusOr<KernelPtr> create_mserve_FusedMatMul(const Node& n, const KernelInit& init) {
  MatMulParams p = MatMulParams::of(n);
  if (n.inputs.size() > 2 && n.inputs[2] != kNoValue) {
    const Tensor* bias = init.constant(n, 2);
    MS_CHECK_ARG(bias && bias->dtype() == DType::kFloat32 && bias->numel() >= 1,
                 "FusedMatMul needs a constant float32 bias [N]");
    p.bias.assign(bias->data<float>(), bias->data<float>() + bias->numel());
  }
  auto packed = init.prepack() ? packed_matmul(n, init, p) : nullptr;
  return KernelPtr(new MatMulKernel(std::move(packed), std::move(p)));
}

StatusOr<KernelPtr> create_microsoft_FusedMatMul(const Node& n, const KernelInit& init) {
  MS_CHECK_ARG(n.inputs.size() == 2, "FusedMatMul takes two inputs, A and B");
  for (const char* a : {"transBatchA", "transBatchB"})
    if (n.attr_int(a, 0) != 0) return Unsupported(std::string(a) + " is not supported");
  MatMulParams p = MatMulParams::of(n);
  auto packed = init.prepack() ? packed_matmul(n, init, p) : nullptr;
  return KernelPtr(new MatMulKernel(std::move(packed), std::move(p)));
}

StatusOr<KernelPtr> create_onnx_MatMul(const Node& n, const KernelInit& init) {
  MatMulParams p = MatMulParams::of(n);
  p.ta = p.tb = false;  // ONNX MatMul has no such attributes
  p.alpha = 1.0f;
  auto packed = init.prepack() ? packed_matmul(n, init, p) : nullptr;
  return KernelPtr(new MatMulKernel(std::move(packed), std::move(p)));
}

}  // namespace mserve
