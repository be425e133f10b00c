// LayerNormalization (opset 17), com.mserve SkipLayerNormalization and MeanVarianceNormalization
// (opsets 9, 13).
//
// LayerNormalization: X is viewed as [prod(dims[:axis]), prod(dims[axis:])] (axis default -1);
// each row is standardized, (x - mean) / sqrt(var + epsilon), then multiplied by Scale and
// shifted by the optional B, both unidirectionally broadcast to X. Optional outputs Mean and
// InvStdDev have shape dims[:axis] + [1] * (rank - axis) and dtype float32 (stash_type 1, the
// only one supported). Statistics are computed in float where Scale and B hold one value per
// column of a float32 row (vectorized), in double otherwise.
//
// MeanVarianceNormalization: (X - mean) / (sqrt(E[X^2] - mean^2) + 1e-9), the statistics taken
// over `axes` (default [0, 2, 3]).
#include <algorithm>
#include <cmath>
#include <string>
#include <type_traits>
#include <vector>

#include "core/kernels/broadcast.h"
#include "core/kernels/common.h"
#include "core/kernels/isa/isa.h"
#include "core/kernels/norm_rows.h"
#include "core/kernels/registry.h"
#include "core/parallel/thread_pool.h"

namespace mserve {
namespace {

// LayerNormalization, and com.mserve SkipLayerNormalization (passes/fuse_layer_norm.cc): the
// same over A + B (the residual Add before a transformer's LayerNorm), inputs (A, B, Scale, Bias),
// outputs (Y, the sum A + B when something else reads it). The sum is formed in Y's row, in
// cache, and normalized in place.
class LayerNormKernel final : public Kernel {
 public:
  LayerNormKernel(int64_t axis, double eps, bool skip) : axis_(axis), eps_(eps), skip_(skip), s_(skip ? 2 : 1) {}

  Status infer(InferContext& ctx) const override {
    MS_CHECK_ARG(ctx.has_input(0) && ctx.has_input(s_),
                 skip_ ? "needs inputs A, B and Scale" : "needs inputs X and Scale");
    const DType t = ctx.dtype(0);
    if (!dtype_is_float(t)) return Unsupported(std::string("dtype ") + dtype_name(t) + " is not supported");
    Shape x = ctx.shape(0);
    if (skip_) {
      MS_CHECK_ARG(ctx.has_input(1) && ctx.dtype(1) == t, "A and B must have the same dtype");
      auto sum = broadcast_shapes(ctx.shape(0), ctx.shape(1));
      MS_CHECK_ARG(sum.ok(), "A " + ctx.shape(0).str() + " and B " + ctx.shape(1).str() + " do not broadcast");
      x = sum.value();
    }
    MS_ASSIGN_OR_RETURN(int a, normalize_axis(axis_, x.rank()));
    for (int i = s_; i <= s_ + 1; ++i) {
      if (!ctx.has_input(i)) continue;
      const char* what = i == s_ ? "Scale" : "B";
      MS_CHECK_ARG(ctx.dtype(i) == t, std::string(what) + " must have the dtype of X");
      auto b = broadcast_shapes(ctx.shape(i), x);
      MS_CHECK_ARG(b.ok() && b.value() == x,
                   std::string(what) + " of shape " + ctx.shape(i).str() + " does not broadcast to X " + x.str());
    }
    ctx.set_output(0, t, x);
    if (skip_) {
      if (ctx.num_outputs() > 1) ctx.set_output(1, t, x);
    } else {
      Shape stat = x;
      for (int d = a; d < x.rank(); ++d) stat[d] = 1;
      for (int o = 1; o < ctx.num_outputs() && o < 3; ++o) ctx.set_output(o, DType::kFloat32, stat);
    }
    // Input offsets of Scale and B for each column of a row.
    ctx.set_workspace(2 * static_cast<size_t>(x.prod(a, x.rank())) * sizeof(int64_t));
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
    const Shape& s = ctx.output(0).shape();
    const int a = normalize_axis(axis_, s.rank()).value(), rank = s.rank();
    const int64_t rows = s.prod(0, a), cols = s.prod(a, rank);
    const bool has_b = ctx.has_input(s_ + 1);
    const Tensor& scale_t = ctx.input(s_);
    const T* x = ctx.input(0).data<T>();
    const T* x2 = nullptr;  // B of A + B, when it has A's shape (added row by row below)
    T* y = ctx.output(0).data<T>();
    if (skip_) {
      if (ctx.input(0).shape() == s && ctx.input(1).shape() == s) {
        x2 = ctx.input(1).data<T>();
      } else {  // broadcast: the sum goes to Y first, and is normalized in place
        const Shape &sa = ctx.input(0).shape(), &sb = ctx.input(1).shape();
        const T* pa = ctx.input(0).data<T>();
        const T* pb = ctx.input(1).data<T>();
        for_each_broadcast_row<2>(
            {&sa, &sb}, s, ctx.pool(), [&](int64_t o, const int64_t* off, const int64_t* st, int64_t n) {
              for (int64_t j = 0; j < n; ++j)
                y[o + j] = from_double<T>(to_double(pa[off[0] + j * st[0]]) + to_double(pb[off[1] + j * st[1]]));
            });
        x = y;
      }
    }
    T* sum_out = skip_ && ctx.has_output(1) ? ctx.output(1).data<T>() : nullptr;
    const T* scale = scale_t.data<T>();
    const T* bias = has_b ? ctx.input(s_ + 1).data<T>() : nullptr;
    const int64_t grain = std::max<int64_t>(1, 16384 / std::max<int64_t>(1, cols));
    int64_t sst[Shape::kMaxRank] = {}, bst[Shape::kMaxRank] = {};
    broadcast_strides(scale_t.shape(), s, sst);
    if (has_b) broadcast_strides(ctx.input(s_ + 1).shape(), s, bst);
    // One value per column: as many values as a row has and the same for every row (a Scale of
    // [rows, 1] has as many values when rows == cols, but varies by row).
    auto per_column = [&](const Tensor& t, const int64_t* st) {
      if (t.numel() != cols) return false;
      for (int d = 0; d < a; ++d)
        if (st[d] != 0) return false;
      return true;
    };
    // Scale and B of one value per column: the common case, in float, vectorized for this CPU.
    if constexpr (std::is_same_v<T, float>) {
      if (per_column(scale_t, sst) && (!has_b || per_column(ctx.input(s_ + 1), bst)) &&
          !(!skip_ && ctx.num_outputs() > 1)) {
        ctx.pool().parallel_for(rows, grain, [&](int64_t b, int64_t e) {
          for (int64_t r = b; r < e; ++r)
            layer_norm_row(x + r * cols, x2 ? x2 + r * cols : nullptr, y + r * cols,
                           sum_out ? sum_out + r * cols : nullptr, scale, bias, cols, static_cast<float>(eps_));
        });
        return;
      }
    }
    int64_t* scol = static_cast<int64_t*>(ctx.workspace());
    int64_t* bcol = scol + cols;
    auto split = [&](int64_t idx, int from, int to, const int64_t* st) {
      int64_t off = 0;
      for (int d = to - 1; d >= from; --d) {
        off += (idx % s[d]) * st[d];
        idx /= s[d];
      }
      return off;
    };
    for (int64_t c = 0; c < cols; ++c) {
      scol[c] = split(c, a, rank, sst);
      bcol[c] = has_b ? split(c, a, rank, bst) : 0;
    }
    float* mean_out = !skip_ && ctx.has_output(1) ? ctx.output(1).data<float>() : nullptr;
    float* inv_out = !skip_ && ctx.has_output(2) ? ctx.output(2).data<float>() : nullptr;
    ctx.pool().parallel_for(rows, grain, [&](int64_t b, int64_t e) {
      for (int64_t r = b; r < e; ++r) {
        const T* xr = x + r * cols;
        T* yr = y + r * cols;
        if (x2) {
          for (int64_t c = 0; c < cols; ++c) yr[c] = from_double<T>(to_double(xr[c]) + to_double(x2[r * cols + c]));
          xr = yr;
        }
        if (sum_out) std::copy(xr, xr + cols, sum_out + r * cols);
        double mean, inv;
        row_mean_inv_std(xr, cols, eps_, &mean, &inv);
        if (mean_out) mean_out[r] = static_cast<float>(mean);
        if (inv_out) inv_out[r] = static_cast<float>(inv);
        const T* sr = scale + split(r, 0, a, sst);
        const T* br = has_b ? bias + split(r, 0, a, bst) : nullptr;
        for (int64_t c = 0; c < cols; ++c) {
          double v = (to_double(xr[c]) - mean) * inv * to_double(sr[scol[c]]);
          if (br) v += to_double(br[bcol[c]]);
          yr[c] = from_double<T>(v);
        }
      }
    });
  }

  int64_t axis_;
  double eps_;
  bool skip_;
  int s_;  // input index of Scale
};

class MvnKernel final : public Kernel {
 public:
  explicit MvnKernel(std::vector<int64_t> axes) : axes_(std::move(axes)) {}

  Status infer(InferContext& ctx) const override {
    const DType t = ctx.dtype(0);
    if (!dtype_is_float(t)) return Unsupported(std::string("dtype ") + dtype_name(t) + " is not supported");
    MS_RETURN_IF_ERROR(mask(ctx.shape(0).rank()).status());
    ctx.set_output(0, t, ctx.shape(0));
    return Status::OK();
  }

  Status compute(const ComputeContext& ctx) const override {
    const Tensor& x = ctx.input(0);
    MS_SWITCH_FLOAT(x.dtype(), T, return Unsupported(std::string("dtype ") + dtype_name(x.dtype())), run<T>(ctx));
    return Status::OK();
  }

 private:
  StatusOr<uint32_t> mask(int rank) const {
    uint32_t m = 0;
    for (int64_t a : axes_) {
      MS_ASSIGN_OR_RETURN(int d, normalize_axis(a, rank));
      m |= 1u << d;
    }
    return m;
  }

  template <class T>
  void run(const ComputeContext& ctx) const {
    const Tensor& xt = ctx.input(0);
    const Shape& s = xt.shape();
    const uint32_t m = mask(s.rank()).value();
    // Kept and reduced dims (sizes, strides); the innermost dim, when reduced, is looped over
    // contiguously.
    int64_t ks[Shape::kMaxRank], kst[Shape::kMaxRank], rs[Shape::kMaxRank], rst[Shape::kMaxRank];
    int nk = 0, nr = 0;
    int64_t stride = 1, kept_n = 1, red_n = 1;
    for (int d = s.rank() - 1; d >= 0; --d) {
      if ((m >> d) & 1u) {
        rs[nr] = s[d], rst[nr++] = stride, red_n *= s[d];
      } else {
        ks[nk] = s[d], kst[nk++] = stride, kept_n *= s[d];
      }
      stride *= s[d];
    }
    // Lists are innermost first.
    const bool inner_red = s.rank() > 0 && ((m >> (s.rank() - 1)) & 1u);
    const int64_t inner = inner_red ? rs[0] : 1;
    const int r0 = inner_red ? 1 : 0;
    const int64_t runs = inner ? red_n / inner : 0;
    const T* x = xt.data<T>();
    T* y = ctx.output(0).data<T>();
    auto off = [](int64_t idx, int from, int n, const int64_t* sz, const int64_t* st) {
      int64_t o = 0;
      for (int d = from; d < n; ++d) {
        o += (idx % sz[d]) * st[d];
        idx /= sz[d];
      }
      return o;
    };
    if (red_n == 0) return;
    ctx.pool().parallel_for(kept_n, std::max<int64_t>(1, 16384 / red_n), [&](int64_t b, int64_t e) {
      for (int64_t k = b; k < e; ++k) {
        const int64_t base = off(k, 0, nk, ks, kst);
        double sum = 0, sq = 0;
        for (int64_t q = 0; q < runs; ++q) {
          const T* xr = x + base + off(q, r0, nr, rs, rst);
          for (int64_t i = 0; i < inner; ++i) {
            const double v = to_double(xr[i]);
            sum += v;
            sq += v * v;
          }
        }
        const double mean = sum / static_cast<double>(red_n);
        const double var = std::max(0.0, sq / static_cast<double>(red_n) - mean * mean);
        const double inv = 1.0 / (std::sqrt(var) + 1e-9);
        for (int64_t q = 0; q < runs; ++q) {
          const int64_t o = base + off(q, r0, nr, rs, rst);
          for (int64_t i = 0; i < inner; ++i) y[o + i] = from_double<T>((to_double(x[o + i]) - mean) * inv);
        }
      }
    });
  }

  std::vector<int64_t> axes_;
};

}  // namespace

StatusOr<KernelPtr> create_onnx_LayerNormalization(const Node& n, const KernelInit&) {
  const int64_t stash = n.attr_int("stash_type", 1);
  if (stash != 1) return Unsupported("stash_type " + std::to_string(stash) + " is not supported");
  return KernelPtr(new LayerNormKernel(n.attr_int("axis", -1), n.attr_float("epsilon", 1e-5f), false));
}

StatusOr<KernelPtr> create_mserve_SkipLayerNormalization(const Node& n, const KernelInit&) {
  return KernelPtr(new LayerNormKernel(n.attr_int("axis", -1), n.attr_float("epsilon", 1e-5f), true));
}

StatusOr<KernelPtr> create_onnx_MeanVarianceNormalization(const Node& n, const KernelInit&) {
  std::vector<int64_t> axes = n.attr("axes") ? n.attr_ints("axes") : std::vector<int64_t>{0, 2, 3};
  return KernelPtr(new MvnKernel(std::move(axes)));
}

}  // namespace mserve
