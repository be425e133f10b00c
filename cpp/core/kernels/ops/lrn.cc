// LRN (opsets 1, 13): local response normalization across channels. For X [N, C, D1, ...],
//   Y[n, c, d] = X[n, c, d] / (bias + alpha / size * sum(X[n, c', d]^2))^beta
// with c' over [c - floor((size - 1) / 2), c + ceil((size - 1) / 2)] clipped to [0, C). Opset 13
// only adds bfloat16, which tensors do not hold. float16 is computed in float.
#include <algorithm>
#include <cmath>
#include <type_traits>

#include "core/kernels/common.h"
#include "core/kernels/registry.h"
#include "core/parallel/thread_pool.h"

namespace mserve {
namespace {

class LrnKernel final : public Kernel {
 public:
  LrnKernel(float alpha, float beta, float bias, int64_t size) : alpha_(alpha), beta_(beta), bias_(bias), size_(size) {}

  Status infer(InferContext& ctx) const override {
    if (!dtype_is_float(ctx.dtype(0)))
      return Unsupported(std::string("dtype ") + dtype_name(ctx.dtype(0)) + " is not supported");
    const Shape& s = ctx.shape(0);
    MS_CHECK_ARG(s.rank() >= 2, "X must have at least 2 dimensions (N, C, ...), got " + s.str());
    ctx.set_output(0, ctx.dtype(0), s);
    return Status::OK();
  }

  Status compute(const ComputeContext& ctx) const override {
    const Tensor& x = ctx.input(0);
    MS_SWITCH_FLOAT(x.dtype(), T, return Unsupported("dtype"), run<T>(ctx, x, ctx.output(0)));
    return Status::OK();
  }

 private:
  template <class T>
  void run(const ComputeContext& ctx, const Tensor& x, Tensor& y) const {
    using Acc = std::conditional_t<std::is_same_v<T, double>, double, float>;
    const Shape& s = x.shape();
    const int64_t n = s[0], c = s[1], inner = s.prod(2, s.rank());
    const int64_t lo = (size_ - 1) / 2, hi = size_ - 1 - lo;  // floor and ceil of (size - 1) / 2
    const T* xs = x.data<T>();
    T* ys = y.data<T>();
    const Acc scale = static_cast<Acc>(alpha_) / static_cast<Acc>(size_);
    ctx.pool().parallel_for(
        n * c, std::max<int64_t>(1, 4096 / std::max<int64_t>(inner * size_, 1)), [&](int64_t b, int64_t e) {
          for (int64_t nc = b; nc < e; ++nc) {
            const int64_t in = nc / c, ic = nc % c;
            const int64_t c0 = std::max<int64_t>(0, ic - lo), c1 = std::min<int64_t>(c - 1, ic + hi);
            const T* base = xs + in * c * inner;
            for (int64_t d = 0; d < inner; ++d) {
              Acc sum = 0;
              for (int64_t k = c0; k <= c1; ++k) {
                const Acc v = static_cast<Acc>(base[k * inner + d]);
                sum += v * v;
              }
              const Acc v = static_cast<Acc>(base[ic * inner + d]);
              ys[nc * inner + d] =
                  static_cast<T>(v / std::pow(static_cast<Acc>(bias_) + scale * sum, static_cast<Acc>(beta_)));
            }
          }
        });
  }

  float alpha_, beta_, bias_;
  int64_t size_;
};

}  // namespace

StatusOr<KernelPtr> create_onnx_LRN(const Node& n, const KernelInit&) {
  MS_CHECK_ARG(n.attr("size") != nullptr, "the size attribute is required");
  const int64_t size = n.attr_int("size", 1);
  MS_CHECK_ARG(size >= 1, "size must be positive, got " + std::to_string(size));
  return KernelPtr(
      new LrnKernel(n.attr_float("alpha", 1e-4f), n.attr_float("beta", 0.75f), n.attr_float("bias", 1.0f), size));
}

}  // namespace mserve
