// Elementwise activations.
// Relu, Sigmoid, Tanh, LeakyRelu, Elu, Selu, Celu, Softplus, HardSigmoid, HardSwish, Mish, Gelu
// (approximate none or tanh), ThresholdedRelu, Shrink, Swish: the functions of
// kernels/activation_table.h, float types (Relu also takes ints from opset 14, Shrink every
// numeric type); float32/float64 run vectorized through FusedActivation::apply, float16 through
// float32 chunks.
// Clip: ints from opset 12; min/max from attributes before opset 11 and from optional inputs after.
// PRelu: the slope broadcasts unidirectionally to X (opset 7+); ints from opset 9.
// com.microsoft (onnxruntime's contrib operators): Gelu (erf), QuickGelu (x * sigmoid(alpha * x),
// alpha default 1.702: the table's Swish), and the forms with a bias over the last axis added
// first, BiasGelu (erf) and FastGelu (tanh approximation; the bias optional).
// SwiGLU (28): Y = Swish_alpha(A) * B, A and B of one shape (no broadcasting), float32/float64
// (16-bit floats through HalfAsFloat: computed in float32, rounded once).
#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>

#include "core/kernels/activation_table.h"
#include "core/kernels/common.h"
#include "core/kernels/fused_activation.h"
#include "core/kernels/registry.h"
#include "core/parallel/thread_pool.h"

namespace mserve {
namespace {

using Kind = FusedActivation::Kind;

// y = act(x) over n integers: Relu exactly in T; Shrink in double, then cast back (as the
// reference does: its lambd and bias are floats).
template <class T>
void int_run(const FusedActivation& act, const T* x, T* y, int64_t n) {
  if (act.kind == Kind::kRelu) {
    for (int64_t i = 0; i < n; ++i) y[i] = activation_math::Relu<T>(x[i], T(0), T(0));
  } else {
    for (int64_t i = 0; i < n; ++i)
      y[i] = static_cast<T>(activation_math::Shrink<double>(static_cast<double>(x[i]), act.alpha, act.beta));
  }
}

// An operator of the activation table.
class TableActKernel final : public Kernel {
 public:
  explicit TableActKernel(FusedActivation act) : act_(act) {}
  Status infer(InferContext& ctx) const override {
    MS_CHECK_ARG(ctx.has_input(0), "needs one input");
    const DType t = ctx.dtype(0);
    const bool ints = t != DType::kBool && t != DType::kUndefined && !dtype_is_float(t) &&
                      ((act_.kind == Kind::kRelu && ctx.node().opset >= 14) || act_.kind == Kind::kShrink);
    if (!dtype_is_float(t) && !ints) return Unsupported(std::string("dtype ") + dtype_name(t) + " is not supported");
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
        if constexpr (std::is_integral_v<T>)
          int_run<T>(act_, in + b, out + b, e - b);
        else
          act_.apply(in + b, out + b, e - b);
      });
    });
    return Status::OK();
  }

 private:
  FusedActivation act_;
};

// min/max are optional scalar inputs (the importer turns the attributes of opsets before 11 into
// them) of X's dtype or, for a float X, float32: what the importer writes where X's dtype is not
// declared.
class ClipKernel final : public Kernel {
 public:
  explicit ClipKernel(const Node&) {}
  Status infer(InferContext& ctx) const override {
    DType t = ctx.dtype(0);
    if (t == DType::kBool || (!dtype_is_float(t) && ctx.node().opset < 12))
      return Unsupported(std::string("dtype ") + dtype_name(t) + " is not supported");
    for (int i = 1; i <= 2; ++i) {
      if (!ctx.has_input(i)) continue;
      if (ctx.dtype(i) != t && !(ctx.dtype(i) == DType::kFloat32 && dtype_is_float(t)))
        return InvalidArgument("min/max must have the input's dtype");
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
    auto bound = [&](int i) {
      const Tensor& b = ctx.input(i);
      if constexpr (!std::is_integral_v<T>)
        if (b.dtype() != x.dtype()) return static_cast<T>(b.data<float>()[0]);
      return b.data<T>()[0];
    };
    if (ctx.has_input(1)) lo = bound(1);
    if (ctx.has_input(2)) hi = bound(2);
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
      ctx.pool().parallel_for(n, 1 << 15,
                              [&](int64_t b, int64_t e) { prelu_row<T>(x + b, s + b * ss, ss, y + b, e - b); });
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

// act(X + bias), bias [C] added along the last axis (C = X's last dim) before the activation.
class BiasActKernel final : public Kernel {
 public:
  explicit BiasActKernel(FusedActivation act) : act_(act) {}
  Status infer(InferContext& ctx) const override {
    MS_CHECK_ARG(ctx.has_input(0), "needs an input");
    const DType t = ctx.dtype(0);
    if (t != DType::kFloat32 && t != DType::kFloat64 && t != DType::kFloat16)
      return Unsupported(std::string("dtype ") + dtype_name(t) + " is not supported");
    const Shape& x = ctx.shape(0);
    if (ctx.has_input(1)) {
      MS_CHECK_ARG(ctx.dtype(1) == t, "bias must have the dtype of the input");
      const Shape& b = ctx.shape(1);
      MS_CHECK_ARG(x.rank() >= 1 && b.rank() == 1 && b[0] == x[x.rank() - 1],
                   "bias " + b.str() + " must be 1-D of the input's last dim, input " + x.str());
    }
    ctx.set_output(0, t, x);
    return Status::OK();
  }
  Status compute(const ComputeContext& ctx) const override {
    const Tensor& x = ctx.input(0);
    MS_SWITCH_FLOAT(x.dtype(), T, return Unsupported("dtype"), run<T>(ctx));
    return Status::OK();
  }

 private:
  template <class T>
  void run(const ComputeContext& ctx) const {
    const Tensor& x = ctx.input(0);
    const T* in = x.data<T>();
    T* out = ctx.output(0).data<T>();
    if (!ctx.has_input(1)) {
      ctx.pool().parallel_for(x.numel(), 1 << 13, [&](int64_t b, int64_t e) { act_.apply(in + b, out + b, e - b); });
      return;
    }
    const T* bias = ctx.input(1).data<T>();
    const int64_t c = ctx.input(1).numel(), rows = c ? x.numel() / c : 0;
    ctx.pool().parallel_for(rows, std::max<int64_t>(1, (1 << 13) / std::max<int64_t>(1, c)), [&](int64_t b, int64_t e) {
      for (int64_t r = b; r < e; ++r) {
        T* y = out + r * c;
        for (int64_t j = 0; j < c; ++j) y[j] = static_cast<T>(in[r * c + j] + bias[j]);
        act_.apply(y, y, c);
      }
    });
  }

  FusedActivation act_;
};

// Y = Swish_alpha(A) * B: the table's Swish row over A, then the product with B in place.
class SwiGLUKernel final : public Kernel {
 public:
  explicit SwiGLUKernel(FusedActivation swish) : swish_(swish) {}
  Status infer(InferContext& ctx) const override {
    MS_CHECK_ARG(ctx.has_input(0) && ctx.has_input(1), "needs inputs A and B");
    const DType t = ctx.dtype(0);
    if (t != DType::kFloat32 && t != DType::kFloat64)
      return Unsupported(std::string("dtype ") + dtype_name(t) + " is not supported");
    MS_CHECK_ARG(ctx.dtype(1) == t,
                 std::string("B dtype ") + dtype_name(ctx.dtype(1)) + " differs from A's " + dtype_name(t));
    MS_CHECK_ARG(ctx.shape(1) == ctx.shape(0), "B shape " + ctx.shape(1).str() + " differs from A shape " +
                                                   ctx.shape(0).str() + " (SwiGLU does not broadcast)");
    ctx.set_output(0, t, ctx.shape(0));
    return Status::OK();
  }
  Status compute(const ComputeContext& ctx) const override {
    MS_SWITCH_FLOAT(ctx.input(0).dtype(), T, return Unsupported("dtype"), {
      if constexpr (std::is_same_v<T, float> || std::is_same_v<T, double>) run<T>(ctx);
    });
    return Status::OK();
  }

 private:
  template <class T>
  void run(const ComputeContext& ctx) const {
    const T* a = ctx.input(0).data<T>();
    const T* b = ctx.input(1).data<T>();
    T* y = ctx.output(0).data<T>();
    ctx.pool().parallel_for(ctx.input(0).numel(), 1 << 13, [&](int64_t lo, int64_t hi) {
      swish_.apply(a + lo, y + lo, hi - lo);
      for (int64_t i = lo; i < hi; ++i) y[i] *= b[i];
    });
  }

  FusedActivation swish_;
};

FusedActivation table_row(FusedActivation::Kind k, float alpha = 0, float beta = 0) {
  FusedActivation a;
  a.kind = k;
  a.alpha = alpha;
  a.beta = beta;
  return a;
}

}  // namespace

StatusOr<KernelPtr> create_microsoft_Gelu(const Node&, const KernelInit&) {
  return KernelPtr(new TableActKernel(table_row(Kind::kGelu)));
}
StatusOr<KernelPtr> create_microsoft_QuickGelu(const Node& n, const KernelInit&) {
  return KernelPtr(new TableActKernel(table_row(Kind::kSwish, n.attr_float("alpha", 1.702f))));
}
StatusOr<KernelPtr> create_microsoft_BiasGelu(const Node& n, const KernelInit&) {
  MS_CHECK_ARG(n.inputs.size() == 2 && n.inputs[1] != kNoValue, "BiasGelu needs inputs A and B");
  return KernelPtr(new BiasActKernel(table_row(Kind::kGelu)));
}
StatusOr<KernelPtr> create_microsoft_FastGelu(const Node&, const KernelInit&) {
  return KernelPtr(new BiasActKernel(table_row(Kind::kGeluTanh)));
}

StatusOr<KernelPtr> create_onnx_Clip(const Node& n, const KernelInit&) { return KernelPtr(new ClipKernel(n)); }

namespace {
StatusOr<KernelPtr> table_op(const Node& n) {
  const FusedActivation act = FusedActivation::of_operator(n);
  if (act.kind != Kind::kNone) return KernelPtr(new TableActKernel(act));
  if (n.op_type == "Celu") return InvalidArgument("Celu alpha must not be 0");
  return InvalidArgument("Gelu approximate must be 'none' or 'tanh', got '" + n.attr_string("approximate", "") + "'");
}
}  // namespace

StatusOr<KernelPtr> create_onnx_Relu(const Node& n, const KernelInit&) { return table_op(n); }
StatusOr<KernelPtr> create_onnx_Sigmoid(const Node& n, const KernelInit&) { return table_op(n); }
StatusOr<KernelPtr> create_onnx_Tanh(const Node& n, const KernelInit&) { return table_op(n); }
StatusOr<KernelPtr> create_onnx_LeakyRelu(const Node& n, const KernelInit&) { return table_op(n); }
StatusOr<KernelPtr> create_onnx_Elu(const Node& n, const KernelInit&) { return table_op(n); }
StatusOr<KernelPtr> create_onnx_Selu(const Node& n, const KernelInit&) { return table_op(n); }
StatusOr<KernelPtr> create_onnx_Celu(const Node& n, const KernelInit&) { return table_op(n); }
StatusOr<KernelPtr> create_onnx_Softplus(const Node& n, const KernelInit&) { return table_op(n); }
StatusOr<KernelPtr> create_onnx_HardSigmoid(const Node& n, const KernelInit&) { return table_op(n); }
StatusOr<KernelPtr> create_onnx_HardSwish(const Node& n, const KernelInit&) { return table_op(n); }
StatusOr<KernelPtr> create_onnx_Mish(const Node& n, const KernelInit&) { return table_op(n); }
StatusOr<KernelPtr> create_onnx_Gelu(const Node& n, const KernelInit&) { return table_op(n); }
StatusOr<KernelPtr> create_onnx_ThresholdedRelu(const Node& n, const KernelInit&) { return table_op(n); }
StatusOr<KernelPtr> create_onnx_Shrink(const Node& n, const KernelInit&) { return table_op(n); }
StatusOr<KernelPtr> create_onnx_Swish(const Node& n, const KernelInit&) { return table_op(n); }
StatusOr<KernelPtr> create_onnx_SwiGLU(const Node& n, const KernelInit&) {
  return KernelPtr(new SwiGLUKernel(table_row(Kind::kSwish, n.attr_float("alpha", 1.0f))));
}
StatusOr<KernelPtr> create_onnx_PRelu(const Node&, const KernelInit&) { return KernelPtr(new PReluKernel()); }

}  // namespace mserve
