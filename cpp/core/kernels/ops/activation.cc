// Relu, Sigmoid, Tanh, Clip: elementwise unary functions.
// Relu takes ints from opset 14, Clip from opset 12; Clip reads min/max from attributes before
// opset 11 and from optional inputs after.
#include <algorithm>
#include <cmath>
#include <limits>

#include "core/exec/thread_pool.h"
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

}  // namespace

StatusOr<KernelPtr> create_onnx_Relu(const Node&, const KernelInit&) { return KernelPtr(new ActKernel<Act::kRelu>()); }
StatusOr<KernelPtr> create_onnx_Sigmoid(const Node&, const KernelInit&) {
  return KernelPtr(new ActKernel<Act::kSigmoid>());
}
StatusOr<KernelPtr> create_onnx_Tanh(const Node&, const KernelInit&) { return KernelPtr(new ActKernel<Act::kTanh>()); }
StatusOr<KernelPtr> create_onnx_Clip(const Node& n, const KernelInit&) { return KernelPtr(new ClipKernel(n)); }

}  // namespace mserve
