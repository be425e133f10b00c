// Softmax, LogSoftmax, Hardmax, opset 13+: along one `axis` (default -1). The flattened-rows
// form of older opsets is rewritten into this one by the importer (onnx/normalize.h).
// LogSoftmax: x - max - log(sum(exp(x - max))). Hardmax: 1 at the first maximum along the axis,
// 0 elsewhere.
#include <algorithm>
#include <cmath>

#include "core/kernels/common.h"
#include "core/kernels/isa/isa.h"
#include "core/kernels/registry.h"
#include "core/parallel/thread_pool.h"

namespace mserve {
namespace {

enum class Mode { kSoftmax, kLogSoftmax, kHardmax };

template <Mode M>
class SoftmaxKernel final : public Kernel {
 public:
  explicit SoftmaxKernel(const Node& n) : axis_(n.attr_int("axis", -1)) {}

  Status infer(InferContext& ctx) const override {
    if (!dtype_is_float(ctx.dtype(0)))
      return Unsupported(std::string("dtype ") + dtype_name(ctx.dtype(0)) + " is not supported");
    const Shape& s = ctx.shape(0);
    if (s.rank() == 0) return InvalidArgument("softmax of a scalar");
    MS_RETURN_IF_ERROR(normalize_axis(axis_, s.rank()).status());
    ctx.set_output(0, ctx.dtype(0), s);
    return Status::OK();
  }

  Status compute(const ComputeContext& ctx) const override {
    const Tensor& x = ctx.input(0);
    const Shape& s = x.shape();
    const int a = normalize_axis(axis_, s.rank()).value();
    const int64_t outer = s.prod(0, a), len = s[a], inner = s.prod(a + 1, s.rank());
    MS_SWITCH_FLOAT(x.dtype(), T, return Unsupported("dtype"),
                    run<T>(ctx, x.data<T>(), ctx.output(0).data<T>(), outer, len, inner));
    return Status::OK();
  }

 private:
  template <class T>
  static void run(const ComputeContext& ctx, const T* x, T* y, int64_t outer, int64_t len, int64_t inner) {
    // Accumulate in at least float; the max is subtracted for stability.
    using Acc = std::conditional_t<std::is_same_v<T, double>, double, float>;
    const int64_t grain = std::max<int64_t>(1, 4096 / std::max<int64_t>(len, 1));  // rows per chunk
    if constexpr (M == Mode::kSoftmax && (std::is_same_v<T, float> || std::is_same_v<T, double>)) {
      if (inner == 1 && len > 0) {  // rows in place: the vectorized row kernel (attention's scores)
        ctx.pool().parallel_for(outer, grain, [&](int64_t b, int64_t e) {
          for (int64_t r = b; r < e; ++r) {
            T* yi = y + r * len;
            if (x != y) std::copy(x + r * len, x + (r + 1) * len, yi);
            softmax_row<T>(yi, len, nullptr);
            // The row kernel writes zeros for a row of -inf only; the operator's exp(-inf -
            // -inf) is NaN there.
            if (yi[0] == T(0) && std::all_of(yi, yi + len, [](T v) { return v == T(0); }))
              std::fill(yi, yi + len, std::numeric_limits<T>::quiet_NaN());
          }
        });
        return;
      }
    }
    ctx.pool().parallel_for(outer * inner, grain, [&](int64_t b, int64_t e) {
      for (int64_t r = b; r < e; ++r) {
        const int64_t base = (r / inner) * len * inner + r % inner;
        const T* xi = x + base;
        T* yi = y + base;
        Acc m = -std::numeric_limits<Acc>::infinity();
        if constexpr (M == Mode::kHardmax) {
          int64_t arg = 0;
          for (int64_t i = 0; i < len; ++i) {
            const Acc v = static_cast<Acc>(xi[i * inner]);
            if (v > m) {
              m = v;
              arg = i;
            }
          }
          for (int64_t i = 0; i < len; ++i) yi[i * inner] = static_cast<T>(i == arg ? 1.0f : 0.0f);
          continue;
        }
        for (int64_t i = 0; i < len; ++i) m = std::max(m, static_cast<Acc>(xi[i * inner]));
        Acc sum = 0;
        if constexpr (M == Mode::kLogSoftmax) {
          for (int64_t i = 0; i < len; ++i) sum += std::exp(static_cast<Acc>(xi[i * inner]) - m);
          const Acc ls = std::log(sum);
          for (int64_t i = 0; i < len; ++i) yi[i * inner] = static_cast<T>((static_cast<Acc>(xi[i * inner]) - m) - ls);
          continue;
        }
        for (int64_t i = 0; i < len; ++i) {
          Acc v = std::exp(static_cast<Acc>(xi[i * inner]) - m);
          yi[i * inner] = static_cast<T>(v);
          sum += v;
        }
        const Acc inv = Acc(1) / sum;
        for (int64_t i = 0; i < len; ++i) yi[i * inner] = static_cast<T>(static_cast<Acc>(yi[i * inner]) * inv);
      }
    });
  }
  int64_t axis_;
};

}  // namespace

StatusOr<KernelPtr> create_onnx_Softmax(const Node& n, const KernelInit&) {
  return KernelPtr(new SoftmaxKernel<Mode::kSoftmax>(n));
}
StatusOr<KernelPtr> create_onnx_LogSoftmax(const Node& n, const KernelInit&) {
  return KernelPtr(new SoftmaxKernel<Mode::kLogSoftmax>(n));
}
StatusOr<KernelPtr> create_onnx_Hardmax(const Node& n, const KernelInit&) {
  return KernelPtr(new SoftmaxKernel<Mode::kHardmax>(n));
}

}  // namespace mserve
