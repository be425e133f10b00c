// BatchNormalization, inference form (opsets 7, 9, 14, 15):
//   Y = (X - mean) / sqrt(var + epsilon) * scale + B
// folded to Y = X * a + b per parameter, with a = scale / sqrt(var + epsilon), b = B - mean * a.
// X is [N, C, D1, ...] with the channel on axis 1; [N, C] and [N] (one channel) work too.
// Opsets 7 and 8 also have `spatial`: with spatial = 0 the parameters hold one value per element
// of a sample, [C, D1, ...], rather than per channel. Only Y is produced; training mode (opset
// 14+) and the running/saved statistics outputs are unsupported. X is float32, float64 or
// float16; the parameters may be any float type (opset 15 allows them to differ from X).
#include <algorithm>
#include <cmath>
#include <string>
#include <type_traits>
#include <vector>

#include "core/kernels/common.h"
#include "core/kernels/norm_rows.h"
#include "core/kernels/registry.h"
#include "core/parallel/thread_pool.h"

namespace mserve {
namespace {

// Parameter inputs: scale, B, mean, var.
constexpr int kFirstParam = 1, kNumParams = 4;
const char* const kParamNames[kNumParams] = {"scale", "B", "mean", "var"};

// Fills a[i], b[i] for the P parameters.
template <class Acc, class Get>
void fold(double eps, int64_t P, Get get, Acc* a, Acc* b) {
  for (int64_t i = 0; i < P; ++i) {
    const double m = get(2, i), v = get(3, i);
    const double ai = get(0, i) / std::sqrt(v + eps);
    a[i] = static_cast<Acc>(ai);
    b[i] = static_cast<Acc>(get(1, i) - m * ai);
  }
}

template <class T>
using AccOf = std::conditional_t<std::is_same_v<T, double>, double, float>;

class BatchNormKernel final : public Kernel {
 public:
  BatchNormKernel(double eps, bool spatial) : eps_(eps), spatial_(spatial) {}

  // Folds constant parameters once at load time.
  void prepack(const Tensor* const* p) {
    const int64_t P = p[0]->numel();
    a32_.resize(P), b32_.resize(P), a64_.resize(P), b64_.resize(P);
    auto get = [&](int k, int64_t i) { return p[k]->float_at(i); };
    fold<float>(eps_, P, get, a32_.data(), b32_.data());
    fold<double>(eps_, P, get, a64_.data(), b64_.data());
  }

  Status infer(InferContext& ctx) const override {
    MS_CHECK_ARG(ctx.has_input(0), "missing input X");
    const DType t = ctx.dtype(0);
    if (!dtype_is_float(t)) return Unsupported(std::string("dtype ") + dtype_name(t) + " is not supported");
    const Shape& x = ctx.shape(0);
    MS_CHECK_ARG(x.rank() >= 1, "X must have rank >= 1, got a scalar");
    const int64_t P = params(x);
    for (int k = 0; k < kNumParams; ++k) {
      const int i = kFirstParam + k;
      MS_CHECK_ARG(ctx.has_input(i), std::string("missing input ") + kParamNames[k]);
      MS_CHECK_ARG(dtype_is_float(ctx.dtype(i)),
                   std::string(kParamNames[k]) + " must be a float tensor, got " + dtype_name(ctx.dtype(i)));
      const Shape& s = ctx.shape(i);
      const bool ok = spatial_ ? (s.rank() == 1 && s[0] == P) : s.numel() == P;
      MS_CHECK_ARG(ok, std::string(kParamNames[k]) + " must have " + std::to_string(P) + " values (" +
                           (spatial_ ? "one per channel" : "one per element of a sample") + ") for X " + x.str() +
                           ", got shape " + s.str());
    }
    if (!prepacked()) ctx.set_workspace(2 * static_cast<size_t>(P) * sizeof(double));
    ctx.set_output(0, t, x);
    return Status::OK();
  }

  Status compute(const ComputeContext& ctx) const override {
    const Tensor& x = ctx.input(0);
    MS_SWITCH_FLOAT(x.dtype(), T, return Unsupported(std::string("dtype ") + dtype_name(x.dtype())), run<T>(ctx));
    return Status::OK();
  }

 private:
  bool prepacked() const { return !a64_.empty(); }

  // Number of distinct (a, b) pairs for X.
  int64_t params(const Shape& x) const {
    const int64_t C = x.rank() >= 2 ? x[1] : 1;
    return spatial_ ? C : C * (x.rank() > 2 ? x.prod(2, x.rank()) : 1);
  }

  template <class T>
  void run(const ComputeContext& ctx) const {
    using Acc = AccOf<T>;
    const Tensor& xt = ctx.input(0);
    const Shape& s = xt.shape();
    const int64_t N = s[0], P = params(s);
    const int64_t inner = s.rank() > 2 && spatial_ ? s.prod(2, s.rank()) : 1;
    const Acc *a, *b;
    if (prepacked()) {
      if constexpr (std::is_same_v<Acc, double>) {
        a = a64_.data();
        b = b64_.data();
      } else {
        a = a32_.data();
        b = b32_.data();
      }
    } else {
      Acc* wa = static_cast<Acc*>(ctx.workspace());
      Acc* wb = wa + P;
      const Tensor* p[kNumParams];
      for (int k = 0; k < kNumParams; ++k) p[k] = &ctx.input(kFirstParam + k);
      fold<Acc>(
          eps_, P, [&](int k, int64_t i) { return p[k]->float_at(i); }, wa, wb);
      a = wa;
      b = wb;
    }
    const T* x = xt.data<T>();
    T* y = ctx.output(0).data<T>();
    if (inner == 1) {  // [N, P] (BatchNorm1d after a Linear): rows of P, vectorized
      ctx.pool().parallel_for(N, std::max<int64_t>(1, 16384 / std::max<int64_t>(1, P)), [&](int64_t nb, int64_t ne) {
        for (int64_t n = nb; n < ne; ++n) {
          const T* xi = x + n * P;
          T* yi = y + n * P;
          for (int64_t i = 0; i < P; ++i) yi[i] = static_cast<T>(static_cast<Acc>(xi[i]) * a[i] + b[i]);
        }
      });
      return;
    }
    // Work in runs of `inner` elements sharing one parameter pair.
    const int64_t runs = N * P, grain = std::max<int64_t>(1, 16384 / std::max<int64_t>(1, inner));
    ctx.pool().parallel_for(runs, grain, [&](int64_t rb, int64_t re) {
      for (int64_t r = rb; r < re; ++r) {
        const Acc av = a[r % P], bv = b[r % P];
        const T* xi = x + r * inner;
        T* yi = y + r * inner;
        for (int64_t i = 0; i < inner; ++i) yi[i] = static_cast<T>(static_cast<Acc>(xi[i]) * av + bv);
      }
    });
  }

  double eps_;
  bool spatial_;
  std::vector<float> a32_, b32_;
  std::vector<double> a64_, b64_;
};

// InstanceNormalization (opset 6) and GroupNormalization (opsets 18, 21): X is [N, C, D1, ...];
// mean and variance are taken per sample over each group of C / num_groups channels and all
// spatial positions, then y = (x - mean) / sqrt(var + epsilon) * scale + bias. InstanceNorm is the
// case num_groups = C. scale and bias hold one value per channel, except GroupNormalization-18
// where they hold one per group. Statistics are computed in double.
class GroupNormKernel final : public Kernel {
 public:
  GroupNormKernel(double eps, int64_t groups, bool per_group) : eps_(eps), groups_(groups), per_group_(per_group) {}

  Status infer(InferContext& ctx) const override {
    MS_CHECK_ARG(ctx.has_input(0) && ctx.has_input(1) && ctx.has_input(2), "needs inputs X, scale and bias");
    const DType t = ctx.dtype(0);
    if (!dtype_is_float(t)) return Unsupported(std::string("dtype ") + dtype_name(t) + " is not supported");
    const Shape& x = ctx.shape(0);
    MS_CHECK_ARG(x.rank() >= 2, "X must have rank >= 2 ([N, C, ...]), got " + x.str());
    const int64_t C = x[1], G = groups_ > 0 ? groups_ : C;
    MS_CHECK_ARG(G > 0 && C % G == 0,
                 "num_groups " + std::to_string(G) + " must divide the " + std::to_string(C) + " channels");
    const int64_t P = per_group_ ? G : C;
    for (int i = 1; i <= 2; ++i) {
      MS_CHECK_ARG(ctx.dtype(i) == t, std::string(i == 1 ? "scale" : "bias") + " must have the dtype of X");
      MS_CHECK_ARG(ctx.shape(i).rank() == 1 && ctx.shape(i)[0] == P, std::string(i == 1 ? "scale" : "bias") +
                                                                         " must have shape [" + std::to_string(P) +
                                                                         "], got " + ctx.shape(i).str());
    }
    ctx.set_output(0, t, x);
    return Status::OK();
  }

  Status compute(const ComputeContext& ctx) const override {
    const Tensor& x = ctx.input(0);
    MS_SWITCH_FLOAT(x.dtype(), T, return Unsupported(std::string("dtype ") + dtype_name(x.dtype())), run<T>(ctx));
    return Status::OK();
  }

 private:
  template <class T>
  void run(const ComputeContext& ctx) const {
    const Tensor& xt = ctx.input(0);
    const Shape& s = xt.shape();
    const int64_t N = s[0], C = s[1], G = groups_ > 0 ? groups_ : C, cpg = C / G;
    const int64_t S = s.prod(2, s.rank()), len = cpg * S;
    const T* x = xt.data<T>();
    const T* scale = ctx.input(1).data<T>();
    const T* bias = ctx.input(2).data<T>();
    T* y = ctx.output(0).data<T>();
    ctx.pool().parallel_for(N * G, std::max<int64_t>(1, 16384 / std::max<int64_t>(1, len)), [&](int64_t b, int64_t e) {
      for (int64_t r = b; r < e; ++r) {
        const T* xr = x + r * len;
        T* yr = y + r * len;
        double mean, inv;
        row_mean_inv_std(xr, len, eps_, &mean, &inv);
        const int64_t g = r % G;
        for (int64_t c = 0; c < cpg; ++c) {
          const int64_t p = per_group_ ? g : g * cpg + c;
          const double a = inv * to_double(scale[p]), bb = to_double(bias[p]) - mean * a;
          const T* xc = xr + c * S;
          T* yc = yr + c * S;
          for (int64_t i = 0; i < S; ++i) yc[i] = static_cast<T>(static_cast<AccOf<T>>(to_double(xc[i]) * a + bb));
        }
      }
    });
  }

  double eps_;
  int64_t groups_;  // 0: one group per channel (InstanceNormalization)
  bool per_group_;
};

// LpNormalization (opset 1): x / ||x||_p along `axis` (default -1), p = 1 or 2 (default 2);
// 0 where the norm is 0.
class LpNormKernel final : public Kernel {
 public:
  LpNormKernel(int64_t axis, int64_t p) : axis_(axis), p_(p) {}

  Status infer(InferContext& ctx) const override {
    const DType t = ctx.dtype(0);
    if (!dtype_is_float(t)) return Unsupported(std::string("dtype ") + dtype_name(t) + " is not supported");
    MS_RETURN_IF_ERROR(normalize_axis(axis_, ctx.shape(0).rank()).status());
    ctx.set_output(0, t, ctx.shape(0));
    return Status::OK();
  }

  Status compute(const ComputeContext& ctx) const override {
    const Tensor& x = ctx.input(0);
    MS_SWITCH_FLOAT(x.dtype(), T, return Unsupported(std::string("dtype ") + dtype_name(x.dtype())), run<T>(ctx));
    return Status::OK();
  }

 private:
  template <class T>
  void run(const ComputeContext& ctx) const {
    const Tensor& xt = ctx.input(0);
    const Shape& s = xt.shape();
    const int a = normalize_axis(axis_, s.rank()).value();
    const int64_t len = s[a], inner = s.prod(a + 1, s.rank()), n = s.prod(0, a) * inner;
    const T* x = xt.data<T>();
    T* y = ctx.output(0).data<T>();
    ctx.pool().parallel_for(n, std::max<int64_t>(1, 16384 / std::max<int64_t>(1, len)), [&](int64_t b, int64_t e) {
      for (int64_t r = b; r < e; ++r) {
        const int64_t base = (r / inner) * len * inner + r % inner;
        double norm = 0;
        for (int64_t i = 0; i < len; ++i) {
          const double v = to_double(x[base + i * inner]);
          norm += p_ == 1 ? std::abs(v) : v * v;
        }
        if (p_ == 2) norm = std::sqrt(norm);
        for (int64_t i = 0; i < len; ++i) {
          const int64_t k = base + i * inner;
          y[k] = norm == 0 ? T(0) : static_cast<T>(static_cast<AccOf<T>>(to_double(x[k]) / norm));
        }
      }
    });
  }

  int64_t axis_, p_;
};

}  // namespace

StatusOr<KernelPtr> create_onnx_BatchNormalization(const Node& n, const KernelInit& init) {
  if (n.opset >= 14 && n.attr_int("training_mode", 0) != 0) return Unsupported("training mode is not supported");
  for (size_t o = 1; o < n.outputs.size(); ++o)
    if (n.outputs[o] != kNoValue)
      return Unsupported("training mode is not supported: only the first output (Y) can be produced");
  // The importer leaves `spatial` only where it is 0 (opsets 7, 8).
  const bool spatial = n.attr_int("spatial", 1) != 0;
  auto kernel = std::make_unique<BatchNormKernel>(static_cast<double>(n.attr_float("epsilon", 1e-5f)), spatial);
  const Tensor* p[kNumParams];
  bool all_const = true;
  for (int k = 0; k < kNumParams; ++k) {
    p[k] = init.constant(n, kFirstParam + k);
    all_const = all_const && p[k] && dtype_is_float(p[k]->dtype()) && p[k]->numel() == p[0]->numel();
  }
  // Bad constants are left for infer to report against the shape of X.
  if (all_const && p[0]->numel() > 0) kernel->prepack(p);
  return KernelPtr(kernel.release());
}

StatusOr<KernelPtr> create_onnx_InstanceNormalization(const Node& n, const KernelInit&) {
  return KernelPtr(new GroupNormKernel(n.attr_float("epsilon", 1e-5f), 0, false));
}

StatusOr<KernelPtr> create_onnx_GroupNormalization(const Node& n, const KernelInit&) {
  const Attribute* g = n.attr("num_groups");
  if (!g) return InvalidArgument("attribute num_groups is required");
  if (g->i <= 0) return InvalidArgument("num_groups must be positive, got " + std::to_string(g->i));
  if (n.opset >= 21 && n.attr_int("stash_type", 1) != 1)
    return Unsupported("stash_type " + std::to_string(n.attr_int("stash_type", 1)) + " is not supported");
  return KernelPtr(new GroupNormKernel(n.attr_float("epsilon", 1e-5f), g->i, n.opset < 21));
}

StatusOr<KernelPtr> create_onnx_LpNormalization(const Node& n, const KernelInit&) {
  const int64_t p = n.attr_int("p", 2);
  if (p != 1 && p != 2) return InvalidArgument("p must be 1 or 2, got " + std::to_string(p));
  return KernelPtr(new LpNormKernel(n.attr_int("axis", -1), p));
}

}  // namespace mserve
