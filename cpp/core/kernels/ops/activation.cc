// Elementwise activations.
// Relu, Sigmoid, Tanh, Clip: Relu takes ints from opset 14, Clip from opset 12; Clip reads min/max
// from attributes before opset 11 and from optional inputs after.
// LeakyRelu, Elu, Selu, Celu, Softplus, HardSigmoid, HardSwish, Mish, Gelu (approximate none or
// tanh), ThresholdedRelu, Shrink, Swish: attribute-parameterized, float types (Shrink: every
// numeric type); float32/float64 run as Eigen array expressions, float16 through float32 chunks.
// PRelu: the slope broadcasts unidirectionally to X (opset 7+); ints from opset 9.
#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>

#include <unsupported/Eigen/SpecialFunctions>  // Eigen's (vectorized) erf, for Gelu

#include "core/parallel/thread_pool.h"
#include "core/kernels/common.h"
#include "core/kernels/registry.h"

namespace mserve {
namespace {

enum class Act { kRelu, kSigmoid, kTanh };

template <Act A, class T>
void run_act(const T* x, T* y, int64_t n) {
  if constexpr (A == Act::kRelu) {
    for (int64_t i = 0; i < n; ++i) y[i] = x[i] > T(0) ? x[i] : T(0);
  } else if constexpr (std::is_same_v<T, float> || std::is_same_v<T, double>) {
    // Eigen's vectorized tanh/logistic; both are accurate to a few ulp.
    Eigen::Map<const Eigen::Array<T, Eigen::Dynamic, 1>> in(x, n);
    Eigen::Map<Eigen::Array<T, Eigen::Dynamic, 1>> out(y, n);
    if constexpr (A == Act::kTanh) out = in.tanh();
    else out = in.logistic();
  } else {
    for (int64_t i = 0; i < n; ++i) {
      float v = static_cast<float>(x[i]);
      y[i] = static_cast<T>(A == Act::kTanh ? std::tanh(v) : 1.0f / (1.0f + std::exp(-v)));
    }
  }
}

template <Act A>
class ActKernel final : public Kernel {
 public:
  Status infer(InferContext& ctx) const override {
    DType t = ctx.dtype(0);
    bool ok = dtype_is_float(t) || (A == Act::kRelu && t != DType::kBool && ctx.node().opset >= 14);
    if (!ok) return Unsupported(std::string("dtype ") + dtype_name(t) + " is not supported");
    ctx.set_output(0, t, ctx.shape(0));
    return Status::OK();
  }
  Status compute(const ComputeContext& ctx) const override {
    const Tensor& x = ctx.input(0);
    Tensor& y = ctx.output(0);
    MS_SWITCH_NUMERIC(x.dtype(), T, return Unsupported("dtype"),
                      ctx.pool().parallel_for(x.numel(), 1 << 14, [&](int64_t b, int64_t e) {
                        run_act<A, T>(x.data<T>() + b, y.data<T>() + b, e - b);
                      }));
    return Status::OK();
  }
};

class ClipKernel final : public Kernel {
 public:
  explicit ClipKernel(const Node& n) : attr_form_(n.opset < 11) {
    lo_ = n.attr_float("min", -std::numeric_limits<float>::infinity());
    hi_ = n.attr_float("max", std::numeric_limits<float>::infinity());
  }
  Status infer(InferContext& ctx) const override {
    DType t = ctx.dtype(0);
    if (t == DType::kBool || (!dtype_is_float(t) && ctx.node().opset < 12))
      return Unsupported(std::string("dtype ") + dtype_name(t) + " is not supported");
    for (int i = 1; i <= 2; ++i) {
      if (!ctx.has_input(i)) continue;
      if (ctx.dtype(i) != t) return InvalidArgument("min/max must have the input's dtype");
      if (ctx.shape(i).numel() != 1) return InvalidArgument("min/max must be scalars");
    }
    ctx.set_output(0, t, ctx.shape(0));
    return Status::OK();
  }
  Status compute(const ComputeContext& ctx) const override {
    const Tensor& x = ctx.input(0);
    Tensor& y = ctx.output(0);
    MS_SWITCH_NUMERIC(x.dtype(), T, return Unsupported("dtype"), clip<T>(ctx, x, y));
    return Status::OK();
  }

 private:
  template <class T>
  void clip(const ComputeContext& ctx, const Tensor& x, Tensor& y) const {
    T lo = std::numeric_limits<T>::lowest(), hi = std::numeric_limits<T>::max();
    if constexpr (!std::is_integral_v<T>) {
      lo = static_cast<T>(-std::numeric_limits<float>::infinity());
      hi = static_cast<T>(std::numeric_limits<float>::infinity());
    }
    if (attr_form_) {
      lo = static_cast<T>(lo_);
      hi = static_cast<T>(hi_);
    } else {
      if (ctx.has_input(1)) lo = ctx.input(1).data<T>()[0];
      if (ctx.has_input(2)) hi = ctx.input(2).data<T>()[0];
    }
    const T* in = x.data<T>();
    T* out = y.data<T>();
    ctx.pool().parallel_for(x.numel(), 1 << 15, [&](int64_t b, int64_t e) {
      // ONNX: min is applied first, then max (so min > max yields max everywhere).
      for (int64_t i = b; i < e; ++i) {
        T v = in[i] < lo ? lo : in[i];
        out[i] = v > hi ? hi : v;
      }
    });
  }
  bool attr_form_;
  float lo_, hi_;
};

// --- attribute-parameterized activations ----------------------------------------------------

enum class PA {
  kLeakyRelu, kElu, kSelu, kCelu, kSoftplus, kHardSigmoid, kHardSwish, kMish, kGelu, kGeluTanh,
  kThresholdedRelu, kShrink, kSwish,
};

struct ActParams {
  float alpha = 0, beta = 0, gamma = 0;
};

template <class C>
using Arr = Eigen::Array<C, Eigen::Dynamic, 1>;

// y = op(x) over n floats or doubles; y may alias x (every expression is coefficient-wise).
template <class C>
void param_eval(PA op, const ActParams& p, const C* xp, C* yp, int64_t n) {
  Eigen::Map<const Arr<C>> x(xp, n);
  Eigen::Map<Arr<C>> y(yp, n);
  const C a = static_cast<C>(p.alpha), b = static_cast<C>(p.beta), g = static_cast<C>(p.gamma);
  const C zero(0), one(1);
  switch (op) {
    case PA::kLeakyRelu: y = (x >= zero).select(x, x * a); break;
    case PA::kElu: y = (x >= zero).select(x, a * (x.exp() - one)); break;
    case PA::kSelu: y = g * (x > zero).select(x, a * x.exp() - a); break;
    case PA::kCelu: y = x.max(zero) + (a * ((x / a).exp() - one)).min(zero); break;
    // log(1 + e^x) without overflow: max(x, 0) + log1p(e^-|x|).
    case PA::kSoftplus: y = x.max(zero) + (-x.abs()).exp().log1p(); break;
    case PA::kHardSigmoid: y = (a * x + b).max(zero).min(one); break;
    case PA::kHardSwish: y = x * (x * C(1.0 / 6.0) + C(0.5)).max(zero).min(one); break;
    case PA::kMish: y = x * (x.max(zero) + (-x.abs()).exp().log1p()).tanh(); break;
    case PA::kGelu: y = C(0.5) * x * (one + (x * C(0.70710678118654752440)).erf()); break;
    case PA::kGeluTanh:
      y = C(0.5) * x * (one + (C(0.79788456080286535588) * (x + C(0.044715) * x.cube())).tanh());
      break;
    case PA::kThresholdedRelu: y = (x > a).select(x, zero); break;
    case PA::kShrink: {
      const C lambd = a, bias = b;
      for (int64_t i = 0; i < n; ++i) {
        const C v = xp[i];
        yp[i] = v < -lambd ? v + bias : (v > lambd ? v - bias : zero);
      }
      break;
    }
    case PA::kSwish: y = x * (a * x).logistic(); break;
  }
}

template <class T>
void param_run(PA op, const ActParams& p, const T* x, T* y, int64_t n) {
  if constexpr (std::is_same_v<T, float> || std::is_same_v<T, double>) {
    param_eval<T>(op, p, x, y, n);
  } else if constexpr (std::is_same_v<T, Eigen::half>) {
    constexpr int64_t kChunk = 256;
    float buf[kChunk];
    for (int64_t s = 0; s < n; s += kChunk) {
      const int64_t m = std::min(kChunk, n - s);
      for (int64_t j = 0; j < m; ++j) buf[j] = static_cast<float>(x[s + j]);
      param_eval<float>(op, p, buf, buf, m);
      for (int64_t j = 0; j < m; ++j) y[s + j] = static_cast<Eigen::half>(buf[j]);
    }
  } else {  // integer Shrink: computed in double, then cast back (as the reference does)
    const double lambd = p.alpha, bias = p.beta;
    for (int64_t i = 0; i < n; ++i) {
      const double v = static_cast<double>(x[i]);
      y[i] = static_cast<T>(v < -lambd ? v + bias : (v > lambd ? v - bias : 0.0));
    }
  }
}

class ParamActKernel final : public Kernel {
 public:
  ParamActKernel(PA op, ActParams p) : op_(op), p_(p) {}
  Status infer(InferContext& ctx) const override {
    MS_CHECK_ARG(ctx.has_input(0), "needs one input");
    const DType t = ctx.dtype(0);
    const bool ok = dtype_is_float(t) || (op_ == PA::kShrink && t != DType::kBool && t != DType::kUndefined);
    if (!ok) return Unsupported(std::string("dtype ") + dtype_name(t) + " is not supported");
    ctx.set_output(0, t, ctx.shape(0));
    return Status::OK();
  }
  Status compute(const ComputeContext& ctx) const override {
    const Tensor& x = ctx.input(0);
    Tensor& y = ctx.output(0);
    MS_SWITCH_NUMERIC(x.dtype(), T, return Unsupported("dtype"), {
      const T* in = x.data<T>();
      T* out = y.data<T>();
      ctx.pool().parallel_for(x.numel(), 1 << 13, [&](int64_t b, int64_t e) {
        param_run<T>(op_, p_, in + b, out + b, e - b);
      });
    });
    return Status::OK();
  }

 private:
  PA op_;
  ActParams p_;
};

// --- PRelu ------------------------------------------------------------------------------------

template <class T>
inline void prelu_row(const T* x, const T* s, int64_t ss, T* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const T v = x[i];
    y[i] = v < T(0) ? static_cast<T>(v * s[i * ss]) : v;
  }
}

class PReluKernel final : public Kernel {
 public:
  Status infer(InferContext& ctx) const override {
    MS_CHECK_ARG(ctx.has_input(0) && ctx.has_input(1), "needs X and slope");
    const DType t = ctx.dtype(0);
    const bool ok = dtype_is_float(t) || (ctx.node().opset >= 9 && t != DType::kBool && t != DType::kUndefined);
    if (!ok) return Unsupported(std::string("dtype ") + dtype_name(t) + " is not supported");
    if (ctx.dtype(1) != t)
      return InvalidArgument(std::string("slope dtype ") + dtype_name(ctx.dtype(1)) + " differs from X's " +
                             dtype_name(t));
    auto b = broadcast_shapes(ctx.shape(0), ctx.shape(1));
    if (!b.ok() || b.value() != ctx.shape(0))
      return InvalidArgument("slope " + ctx.shape(1).str() + " does not broadcast to X " + ctx.shape(0).str());
    ctx.set_output(0, t, ctx.shape(0));
    return Status::OK();
  }
  Status compute(const ComputeContext& ctx) const override {
    const Tensor& x = ctx.input(0);
    Tensor& y = ctx.output(0);
    MS_SWITCH_NUMERIC(x.dtype(), T, return Unsupported("dtype"), run<T>(ctx, x, ctx.input(1), y));
    return Status::OK();
  }

 private:
  template <class T>
  static void run(const ComputeContext& ctx, const Tensor& tx, const Tensor& ts, Tensor& ty) {
    const T* x = tx.data<T>();
    const T* s = ts.data<T>();
    T* y = ty.data<T>();
    const int64_t n = tx.numel();
    if (n == 0) return;
    if (ts.numel() == n || ts.numel() == 1) {  // same layout, or one slope for all
      const int64_t ss = ts.numel() == 1 ? 0 : 1;
      ctx.pool().parallel_for(n, 1 << 15, [&](int64_t b, int64_t e) {
        prelu_row<T>(x + b, s + b * ss, ss, y + b, e - b);
      });
      return;
    }
    const Shape& os = tx.shape();
    const int r = os.rank();  // >= 1 here: a scalar X has one element
    int64_t st[Shape::kMaxRank];
    broadcast_strides(ts.shape(), os, st);
    const int64_t row = os[r - 1], rows = n / row;
    ctx.pool().parallel_for(rows, std::max<int64_t>(1, (1 << 15) / row), [&](int64_t b, int64_t e) {
      for (int64_t q = b; q < e; ++q) {
        int64_t rem = q, off = 0;
        for (int d = r - 2; d >= 0; --d) {
          off += (rem % os[d]) * st[d];
          rem /= os[d];
        }
        prelu_row<T>(x + q * row, s + off, st[r - 1], y + q * row, row);
      }
    });
  }
};


}  // namespace

StatusOr<KernelPtr> create_onnx_Relu(const Node&, const KernelInit&) { return KernelPtr(new ActKernel<Act::kRelu>()); }
StatusOr<KernelPtr> create_onnx_Sigmoid(const Node&, const KernelInit&) {
  return KernelPtr(new ActKernel<Act::kSigmoid>());
}
StatusOr<KernelPtr> create_onnx_Tanh(const Node&, const KernelInit&) { return KernelPtr(new ActKernel<Act::kTanh>()); }
StatusOr<KernelPtr> create_onnx_Clip(const Node& n, const KernelInit&) { return KernelPtr(new ClipKernel(n)); }

namespace {
StatusOr<KernelPtr> param_act(PA op, float alpha, float beta = 0, float gamma = 0) {
  ActParams p;
  p.alpha = alpha;
  p.beta = beta;
  p.gamma = gamma;
  return KernelPtr(new ParamActKernel(op, p));
}
}  // namespace

StatusOr<KernelPtr> create_onnx_LeakyRelu(const Node& n, const KernelInit&) {
  return param_act(PA::kLeakyRelu, n.attr_float("alpha", 0.01f));
}
StatusOr<KernelPtr> create_onnx_Elu(const Node& n, const KernelInit&) {
  return param_act(PA::kElu, n.attr_float("alpha", 1.0f));
}
StatusOr<KernelPtr> create_onnx_Selu(const Node& n, const KernelInit&) {
  return param_act(PA::kSelu, n.attr_float("alpha", 1.67326319217681884765625f), 0,
                   n.attr_float("gamma", 1.05070102214813232421875f));
}
StatusOr<KernelPtr> create_onnx_Celu(const Node& n, const KernelInit&) {
  const float alpha = n.attr_float("alpha", 1.0f);
  if (alpha == 0) return InvalidArgument("Celu alpha must not be 0");
  return param_act(PA::kCelu, alpha);
}
StatusOr<KernelPtr> create_onnx_Softplus(const Node&, const KernelInit&) { return param_act(PA::kSoftplus, 0); }
StatusOr<KernelPtr> create_onnx_HardSigmoid(const Node& n, const KernelInit&) {
  return param_act(PA::kHardSigmoid, n.attr_float("alpha", 0.2f), n.attr_float("beta", 0.5f));
}
StatusOr<KernelPtr> create_onnx_HardSwish(const Node&, const KernelInit&) { return param_act(PA::kHardSwish, 0); }
StatusOr<KernelPtr> create_onnx_Mish(const Node&, const KernelInit&) { return param_act(PA::kMish, 0); }
StatusOr<KernelPtr> create_onnx_Gelu(const Node& n, const KernelInit&) {
  const std::string approx = n.attr_string("approximate", "none");
  if (approx == "none") return param_act(PA::kGelu, 0);
  if (approx == "tanh") return param_act(PA::kGeluTanh, 0);
  return InvalidArgument("Gelu approximate must be 'none' or 'tanh', got '" + approx + "'");
}
StatusOr<KernelPtr> create_onnx_ThresholdedRelu(const Node& n, const KernelInit&) {
  return param_act(PA::kThresholdedRelu, n.attr_float("alpha", 1.0f));
}
StatusOr<KernelPtr> create_onnx_Shrink(const Node& n, const KernelInit&) {
  return param_act(PA::kShrink, n.attr_float("lambd", 0.5f), n.attr_float("bias", 0.0f));
}
StatusOr<KernelPtr> create_onnx_Swish(const Node& n, const KernelInit&) {
  return param_act(PA::kSwish, n.attr_float("alpha", 1.0f));
}
StatusOr<KernelPtr> create_onnx_PRelu(const Node&, const KernelInit&) { return KernelPtr(new PReluKernel()); }

}  // namespace mserve
