// Cumulative scans along one axis: CumSum (opset 11+) and CumProd (26+).
//
// Both read the axis from a scalar int32/int64 input (negative counts from the end) and take the
// attributes exclusive (an output element leaves out its own input) and reverse (scan from the
// end of the axis). Numeric dtypes other than bool; float16 accumulates in float.
#include <algorithm>
#include <string>
#include <type_traits>

#include "core/kernels/common.h"
#include "core/kernels/registry.h"
#include "core/parallel/thread_pool.h"

namespace mserve {
namespace {

// --------------------------------------------------------------------------------- CumSum

class CumSumKernel final : public Kernel {
 public:
  CumSumKernel(bool exclusive, bool reverse) : exclusive_(exclusive), reverse_(reverse) {}

  Status infer(InferContext& ctx) const override {
    MS_CHECK_ARG(ctx.has_input(0) && ctx.has_input(1), "needs x and axis inputs");
    const DType dt = ctx.dtype(0);
    if (dt == DType::kBool || dt == DType::kUndefined)
      return Unsupported(std::string("dtype ") + dtype_name(dt) + " is not supported");
    MS_CHECK_ARG(ctx.dtype(1) == DType::kInt32 || ctx.dtype(1) == DType::kInt64,
                 std::string("axis must be int32 or int64, got ") + dtype_name(ctx.dtype(1)));
    MS_CHECK_ARG(ctx.shape(0).rank() >= 1, "x must have rank >= 1");
    if (const Tensor* a = ctx.value(1)) {
      MS_ASSIGN_OR_RETURN(int64_t axis, read_scalar_int(*a, "axis"));
      MS_RETURN_IF_ERROR(normalize_axis(axis, ctx.shape(0).rank()).status());
    }
    ctx.set_output(0, dt, ctx.shape(0));
    return Status::OK();
  }

  Status compute(const ComputeContext& ctx) const override {
    const Tensor& x = ctx.input(0);
    MS_ASSIGN_OR_RETURN(int64_t a, read_scalar_int(ctx.input(1), "axis"));
    MS_ASSIGN_OR_RETURN(int axis, normalize_axis(a, x.rank()));
    const Shape& s = x.shape();
    const int64_t outer = s.prod(0, axis), n = s[axis], inner = s.prod(axis + 1, s.rank());
    MS_SWITCH_NUMERIC(x.dtype(), T, return Unsupported("dtype"), run<T>(ctx, outer, n, inner));
    return Status::OK();
  }

 private:
  template <class T>
  void run(const ComputeContext& ctx, int64_t outer, int64_t n, int64_t inner) const {
    using Acc = std::conditional_t<std::is_same_v<T, Eigen::half>, float, T>;
    const T* x = ctx.input(0).data<T>();
    T* y = ctx.output(0).data<T>();
    constexpr int64_t kChunk = 64;  // inner positions scanned together
    const int64_t chunks = (inner + kChunk - 1) / kChunk;
    const int64_t tasks = outer * chunks;
    if (tasks == 0 || n == 0) return;
    ctx.pool().parallel_for(tasks, std::max<int64_t>(1, 8192 / std::max<int64_t>(1, n * std::min(inner, kChunk))),
                            [&](int64_t b, int64_t e) {
                              Acc acc[kChunk];
                              for (int64_t t = b; t < e; ++t) {
                                const int64_t o = t / chunks, c0 = (t % chunks) * kChunk;
                                const int64_t w = std::min(kChunk, inner - c0);
                                for (int64_t c = 0; c < w; ++c) acc[c] = Acc(0);
                                for (int64_t step = 0; step < n; ++step) {
                                  const int64_t j = reverse_ ? n - 1 - step : step;
                                  const int64_t off = (o * n + j) * inner + c0;
                                  for (int64_t c = 0; c < w; ++c) {
                                    const Acc v = static_cast<Acc>(x[off + c]);
                                    if (exclusive_) {
                                      y[off + c] = static_cast<T>(acc[c]);
                                      acc[c] = static_cast<Acc>(acc[c] + v);
                                    } else {
                                      acc[c] = static_cast<Acc>(acc[c] + v);
                                      y[off + c] = static_cast<T>(acc[c]);
                                    }
                                  }
                                }
                              }
                            });
  }
  bool exclusive_, reverse_;
};

// -------------------------------------------------------------------------------- CumProd

class CumProdKernel final : public Kernel {
 public:
  CumProdKernel(bool exclusive, bool reverse) : exclusive_(exclusive), reverse_(reverse) {}

  Status infer(InferContext& ctx) const override {
    MS_CHECK_ARG(ctx.has_input(0) && ctx.has_input(1), "needs x and axis inputs");
    const DType dt = ctx.dtype(0);
    if (dt == DType::kBool || dt == DType::kUndefined)
      return Unsupported(std::string("dtype ") + dtype_name(dt) + " is not supported");
    MS_CHECK_ARG(ctx.dtype(1) == DType::kInt32 || ctx.dtype(1) == DType::kInt64, "axis must be int32 or int64");
    MS_CHECK_ARG(ctx.shape(0).rank() >= 1, "x must have rank >= 1");
    if (const Tensor* a = ctx.value(1)) {
      MS_CHECK_ARG(a->numel() == 1, "axis must be a scalar");
      MS_RETURN_IF_ERROR(normalize_axis(a->int_at(0), ctx.shape(0).rank()).status());
    }
    ctx.set_output(0, dt, ctx.shape(0));
    return Status::OK();
  }

  Status compute(const ComputeContext& ctx) const override {
    const Tensor& x = ctx.input(0);
    MS_CHECK_ARG(ctx.input(1).numel() == 1, "axis must be a scalar");
    MS_ASSIGN_OR_RETURN(int axis, normalize_axis(ctx.input(1).int_at(0), x.rank()));
    const Shape& s = x.shape();
    const int64_t outer = s.prod(0, axis), n = s[axis], inner = s.prod(axis + 1, s.rank());
    MS_SWITCH_NUMERIC(x.dtype(), T, return Unsupported("dtype"), {
      using Acc = std::conditional_t<std::is_same_v<T, Eigen::half>, float, T>;
      const T* px = x.data<T>();
      T* py = ctx.output(0).data<T>();
      ctx.pool().parallel_for(outer * inner, 256, [&](int64_t b, int64_t e) {
        for (int64_t t = b; t < e; ++t) {
          const int64_t o = t / inner, c = t % inner;
          Acc acc = Acc(1);
          for (int64_t step = 0; step < n; ++step) {
            const int64_t j = reverse_ ? n - 1 - step : step;
            const int64_t off = (o * n + j) * inner + c;
            const Acc v = static_cast<Acc>(px[off]);
            if (exclusive_) {
              py[off] = static_cast<T>(acc);
              acc = static_cast<Acc>(acc * v);
            } else {
              acc = static_cast<Acc>(acc * v);
              py[off] = static_cast<T>(acc);
            }
          }
        }
      });
    });
    return Status::OK();
  }

 private:
  bool exclusive_, reverse_;
};

}  // namespace

StatusOr<KernelPtr> create_onnx_CumSum(const Node& node, const KernelInit&) {
  return KernelPtr(new CumSumKernel(node.attr_int("exclusive", 0) != 0, node.attr_int("reverse", 0) != 0));
}

StatusOr<KernelPtr> create_onnx_CumProd(const Node& n, const KernelInit&) {
  return KernelPtr(new CumProdKernel(n.attr_int("exclusive", 0) != 0, n.attr_int("reverse", 0) != 0));
}

}  // namespace mserve
