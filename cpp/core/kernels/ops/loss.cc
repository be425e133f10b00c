// NegativeLogLikelihoodLoss (opset 12; 13 and 22 only widen the type lists) and
// SoftmaxCrossEntropyLoss (opset 12; 13 widens the types).
//
// input [N, C, d1..dk] (float), target [N, d1..dk] (int32/int64), optional weight [C].
//   loss[n, d] = -w[t] * x[n, t, d], t = target[n, d], w = weight (or 1)
// with t == ignore_index (when the attribute is set) giving loss 0 and applied weight 0.
// SoftmaxCrossEntropyLoss first replaces x by log_softmax(x, axis=1), which its optional second
// output returns. reduction: "none" -> loss shaped like target; "sum" -> scalar sum; "mean"
// (default) -> sum(loss) / sum(applied weights) (so ignored entries leave the mean; 0/0 is NaN).
// Targets outside [0, C) that are not ignore_index are an InvalidArgument.
#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include "core/kernels/common.h"
#include "core/kernels/registry.h"
#include "core/parallel/thread_pool.h"

namespace mserve {
namespace {

enum class Reduction { kNone, kSum, kMean };

class LossKernel final : public Kernel {
 public:
  LossKernel(bool softmax, Reduction red, bool has_ii, int64_t ii)
      : softmax_(softmax), red_(red), has_ii_(has_ii), ii_(ii) {}

  Status infer(InferContext& ctx) const override {
    MS_CHECK_ARG(ctx.has_input(0) && ctx.has_input(1), "needs input and target");
    const DType dt = ctx.dtype(0);
    if (!dtype_is_float(dt)) return Unsupported(std::string("input dtype ") + dtype_name(dt) + " is not supported");
    const DType tt = ctx.dtype(1);
    if (tt != DType::kInt32 && tt != DType::kInt64)
      return Unsupported(std::string("target dtype ") + dtype_name(tt) + " is not supported");
    const Shape& xs = ctx.shape(0);
    const Shape& ts = ctx.shape(1);
    MS_CHECK_ARG(xs.rank() >= 2, "input must have rank >= 2 ([N, C, d1..dk]), got " + xs.str());
    bool ok = ts.rank() == xs.rank() - 1 && ts[0] == xs[0];
    for (int i = 1; ok && i < ts.rank(); ++i) ok = ts[i] == xs[i + 1];
    MS_CHECK_ARG(ok, "target shape " + ts.str() + " does not match input shape " + xs.str());
    if (ctx.has_input(2)) {
      MS_CHECK_ARG(ctx.dtype(2) == dt, std::string("weight dtype ") + dtype_name(ctx.dtype(2)) +
                                           " differs from input dtype " + dtype_name(dt));
      MS_CHECK_ARG(ctx.shape(2).rank() == 1 && ctx.shape(2)[0] == xs[1],
                   "weight shape " + ctx.shape(2).str() + " must be [C] = [" + std::to_string(xs[1]) + "]");
    }
    ctx.set_output(0, dt, red_ == Reduction::kNone ? ts : Shape{});
    if (ctx.num_outputs() > 1) {
      MS_CHECK_ARG(softmax_, "has one output only");
      ctx.set_output(1, dt, xs);
    }
    // Reductions keep each position's loss and applied weight, summed afterwards in a fixed
    // order (the result does not depend on the thread count).
    if (red_ != Reduction::kNone) ctx.set_workspace(static_cast<size_t>(ts.numel()) * 2 * sizeof(double));
    return Status::OK();
  }

  Status compute(const ComputeContext& ctx) const override {
    const Tensor& x = ctx.input(0);
    const Tensor& t = ctx.input(1);
    Status st;
    if (t.dtype() == DType::kInt32)
      st = check_targets(t.data<int32_t>(), t.numel(), x.dim(1));
    else
      st = check_targets(t.data<int64_t>(), t.numel(), x.dim(1));
    if (!st.ok()) return st;
    MS_SWITCH_FLOAT(x.dtype(), T, return Unsupported("dtype"),
                    if (t.dtype() == DType::kInt32) run<T>(ctx, t.data<int32_t>());
                    else run<T>(ctx, t.data<int64_t>()));
    return Status::OK();
  }

 private:
  template <class TI>
  Status check_targets(const TI* t, int64_t n, int64_t C) const {
    for (int64_t i = 0; i < n; ++i) {
      const int64_t v = static_cast<int64_t>(t[i]);
      if (has_ii_ && v == ii_) continue;
      if (v < 0 || v >= C)
        return InvalidArgument("target value " + std::to_string(v) + " at " + std::to_string(i) + " is outside [0, " +
                               std::to_string(C) + ")" +
                               (has_ii_ ? " and is not ignore_index " + std::to_string(ii_) : ""));
    }
    return Status::OK();
  }

  template <class T, class TI>
  void run(const ComputeContext& ctx, const TI* tgt) const {
    using Acc = std::conditional_t<std::is_same_v<T, double>, double, float>;
    const Tensor& xt = ctx.input(0);
    const T* x = xt.data<T>();
    const T* w = ctx.has_input(2) ? ctx.input(2).data<T>() : nullptr;
    const int64_t N = xt.dim(0), C = xt.dim(1);
    const int64_t D = xt.shape().prod(2, xt.rank());
    const int64_t P = N * D;
    T* logp = softmax_ && ctx.has_output(1) ? ctx.output(1).data<T>() : nullptr;
    T* out = ctx.output(0).data<T>();
    double* ws_l = red_ == Reduction::kNone ? nullptr : static_cast<double*>(ctx.workspace());
    double* ws_w = ws_l ? ws_l + P : nullptr;
    const int64_t grain = std::max<int64_t>(1, 4096 / std::max<int64_t>(C, 1));
    ctx.pool().parallel_for(P, grain, [&](int64_t b, int64_t e) {
      for (int64_t p = b; p < e; ++p) {
        const int64_t n = p / D, d = p % D;
        const T* xp = x + n * C * D + d;  // x[n, c, d] = xp[c * D]
        const int64_t tv = static_cast<int64_t>(tgt[p]);
        const bool ignored = has_ii_ && tv == ii_;
        Acc val = 0;  // -log p(target) (or -x[target])
        if (softmax_) {
          Acc m = -std::numeric_limits<Acc>::infinity();
          for (int64_t c = 0; c < C; ++c) m = std::max(m, static_cast<Acc>(xp[c * D]));
          Acc s = 0;
          for (int64_t c = 0; c < C; ++c) s += std::exp(static_cast<Acc>(xp[c * D]) - m);
          const Acc lse = m + std::log(s);
          if (logp) {
            T* lp = logp + n * C * D + d;
            for (int64_t c = 0; c < C; ++c) lp[c * D] = static_cast<T>(static_cast<Acc>(xp[c * D]) - lse);
          }
          if (!ignored) val = lse - static_cast<Acc>(xp[tv * D]);
        } else if (!ignored) {
          val = -static_cast<Acc>(xp[tv * D]);
        }
        const double wt = ignored ? 0.0 : (w ? static_cast<double>(static_cast<Acc>(w[tv])) : 1.0);
        const double l = ignored ? 0.0 : wt * static_cast<double>(val);
        if (ws_l) {
          ws_l[p] = l;
          ws_w[p] = wt;
        } else {
          out[p] = static_cast<T>(l);
        }
      }
    });
    if (!ws_l) return;
    double sum = 0, wsum = 0;
    for (int64_t p = 0; p < P; ++p) {
      sum += ws_l[p];
      wsum += ws_w[p];
    }
    out[0] = static_cast<T>(red_ == Reduction::kSum ? sum : sum / wsum);
  }

  bool softmax_;
  Reduction red_;
  bool has_ii_;
  int64_t ii_;
};

StatusOr<KernelPtr> make_loss(const Node& n, bool softmax) {
  const std::string r = n.attr_string("reduction", "mean");
  Reduction red;
  if (r == "none")
    red = Reduction::kNone;
  else if (r == "sum")
    red = Reduction::kSum;
  else if (r == "mean")
    red = Reduction::kMean;
  else
    return InvalidArgument("reduction must be none, sum or mean, got '" + r + "'");
  const bool has_ii = n.attr("ignore_index") != nullptr;
  return KernelPtr(new LossKernel(softmax, red, has_ii, n.attr_int("ignore_index", 0)));
}

}  // namespace

StatusOr<KernelPtr> create_onnx_NegativeLogLikelihoodLoss(const Node& n, const KernelInit&) {
  return make_loss(n, false);
}
StatusOr<KernelPtr> create_onnx_SoftmaxCrossEntropyLoss(const Node& n, const KernelInit&) { return make_loss(n, true); }

}  // namespace mserve
