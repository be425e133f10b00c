// RMSNormalization (opset 23): X is viewed as [prod(dims[:axis]), prod(dims[axis:])] (axis
// default -1); each row is divided by sqrt(mean(x^2) + epsilon) and multiplied by Scale, which
// broadcasts to X. Statistics are computed in double (stash_type 1, float32, is the only one
// the spec defines an output for; it only sets the minimum precision).
// SimplifiedLayerNormalization (onnxruntime's contrib operator, which it defines in the default
// domain): the same, with the optional output inv_std_var (dims[:axis] + [1] * (rank - axis),
// float32).
#include <algorithm>
#include <cmath>
#include <string>
#include <type_traits>

#include "core/kernels/common.h"
#include "core/kernels/norm_rows.h"
#include "core/kernels/registry.h"
#include "core/parallel/thread_pool.h"

namespace mserve {
namespace {

class RmsNormKernel final : public Kernel {
 public:
  RmsNormKernel(int64_t axis, double eps, bool inv_output) : axis_(axis), eps_(eps), inv_output_(inv_output) {}

  Status infer(InferContext& ctx) const override {
    MS_CHECK_ARG(ctx.has_input(0) && ctx.has_input(1), "needs inputs X and scale");
    const DType t = ctx.dtype(0);
    if (!dtype_is_float(t)) return Unsupported(std::string("dtype ") + dtype_name(t) + " is not supported");
    const Shape& x = ctx.shape(0);
    MS_ASSIGN_OR_RETURN(int a, normalize_axis(axis_, x.rank()));
    MS_CHECK_ARG(ctx.dtype(1) == t, "scale must have the dtype of X");
    auto b = broadcast_shapes(ctx.shape(1), x);
    MS_CHECK_ARG(b.ok() && b.value() == x,
                 "scale of shape " + ctx.shape(1).str() + " does not broadcast to X " + x.str());
    ctx.set_output(0, t, x);
    if (inv_output_ && ctx.num_outputs() > 1) {
      Shape stat = x;
      for (int d = a; d < x.rank(); ++d) stat[d] = 1;
      ctx.set_output(1, DType::kFloat32, stat);
    }
    // Scale offsets for each column of a row.
    ctx.set_workspace(static_cast<size_t>(x.prod(a, x.rank())) * sizeof(int64_t));
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
    const int a = normalize_axis(axis_, s.rank()).value(), rank = s.rank();
    const int64_t rows = s.prod(0, a), cols = s.prod(a, rank);
    int64_t sst[Shape::kMaxRank] = {};
    broadcast_strides(ctx.input(1).shape(), s, sst);
    int64_t* scol = static_cast<int64_t*>(ctx.workspace());
    auto split = [&](int64_t idx, int from, int to) {
      int64_t off = 0;
      for (int d = to - 1; d >= from; --d) {
        off += (idx % s[d]) * sst[d];
        idx /= s[d];
      }
      return off;
    };
    for (int64_t c = 0; c < cols; ++c) scol[c] = split(c, a, rank);
    const T* x = xt.data<T>();
    const T* scale = ctx.input(1).data<T>();
    T* y = ctx.output(0).data<T>();
    float* inv_out = inv_output_ && ctx.has_output(1) ? ctx.output(1).data<float>() : nullptr;
    ctx.pool().parallel_for(rows, std::max<int64_t>(1, 16384 / std::max<int64_t>(1, cols)), [&](int64_t b, int64_t e) {
      for (int64_t r = b; r < e; ++r) {
        const T* xr = x + r * cols;
        T* yr = y + r * cols;
        const double inv = row_inv_rms(xr, cols, eps_);
        if (inv_out) inv_out[r] = static_cast<float>(inv);
        const T* sr = scale + split(r, 0, a);
        for (int64_t c = 0; c < cols; ++c) yr[c] = from_double<T>(to_double(xr[c]) * inv * to_double(sr[scol[c]]));
      }
    });
  }

  int64_t axis_;
  double eps_;
  bool inv_output_;
};

}  // namespace

StatusOr<KernelPtr> create_onnx_RMSNormalization(const Node& n, const KernelInit&) {
  const int64_t stash = n.attr_int("stash_type", 1);
  if (stash != 1) return Unsupported("stash_type " + std::to_string(stash) + " is not supported");
  return KernelPtr(new RmsNormKernel(n.attr_int("axis", -1), n.attr_float("epsilon", 1e-5f), false));
}

StatusOr<KernelPtr> create_onnx_SimplifiedLayerNormalization(const Node& n, const KernelInit&) {
  const int64_t stash = n.attr_int("stash_type", 1);
  if (stash != 1) return Unsupported("stash_type " + std::to_string(stash) + " is not supported");
  return KernelPtr(new RmsNormKernel(n.attr_int("axis", -1), n.attr_float("epsilon", 1e-5f), true));
}

}  // namespace mserve
