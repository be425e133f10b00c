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
//
// com.microsoft (onnxruntime's contrib operators; LayerNormalization before opset 17 is its
// default-domain form of the opset-17 operator, computed by the same kernel):
// SkipLayerNormalization / SkipSimplifiedLayerNormalization: the last axis of
//   s = input + skip (+ bias) normalized, LayerNorm (* gamma + beta) or RMS norm (* gamma).
//   Inputs (input [.., H] of rank 2 or 3, skip of its shape or a suffix of it, gamma [H], then
//   beta [H] and bias [H] (SkipLayerNormalization) or bias [H] (Simplified)); outputs (Y, mean,
//   inv_std_var ([.., 1], float32; mean only for SkipLayerNormalization), s).
// EmbedLayerNormalization: LayerNorm of word_embedding[input_ids] + position_embedding[position]
//   (+ segment_embedding[segment_ids]), position the token's index or position_ids [B, S] / [1, S];
//   outputs (Y [B, S, H], mask_index [B] int32 = number of ones in each row of mask (0 without a
//   mask), the embedding sum).
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

// com.microsoft SkipLayerNormalization (simplified: SkipSimplifiedLayerNormalization).
class ContribSkipNormKernel final : public Kernel {
 public:
  ContribSkipNormKernel(double eps, bool simplified)
      : eps_(eps), simplified_(simplified), beta_(simplified ? -1 : 3), bias_(simplified ? 3 : 4) {}

  Status infer(InferContext& ctx) const override {
    MS_CHECK_ARG(ctx.has_input(0) && ctx.has_input(1) && ctx.has_input(2), "needs inputs input, skip and gamma");
    const DType t = ctx.dtype(0);
    if (!dtype_is_float(t)) return Unsupported(std::string("dtype ") + dtype_name(t) + " is not supported");
    const Shape &x = ctx.shape(0), &sk = ctx.shape(1);
    MS_CHECK_ARG(x.rank() == 2 || x.rank() == 3, "input must be 2-D or 3-D, got " + x.str());
    const int64_t h = x[x.rank() - 1];
    // skip: input's shape, or a suffix of it after leading ones ([1, S, H], [S, H]).
    int lead = 0;
    while (lead < sk.rank() - 1 && sk[lead] == 1) ++lead;
    bool suffix = sk.rank() <= x.rank() && sk.rank() >= 1;
    for (int i = lead; suffix && i < sk.rank(); ++i) suffix = sk[i] == x[x.rank() - sk.rank() + i];
    MS_CHECK_ARG(suffix && ctx.dtype(1) == t,
                 "skip " + sk.str() + " must have input's dtype and shape " + x.str() + " (or [1, S, H] / [S, H])");
    for (int i : {2, beta_, bias_}) {
      if (i < 0 || !ctx.has_input(i)) continue;
      const char* what = i == 2 ? "gamma" : i == beta_ ? "beta" : "bias";
      MS_CHECK_ARG(ctx.dtype(i) == t && ctx.shape(i).rank() == 1 && ctx.shape(i)[0] == h,
                   std::string(what) + " must be 1-D [" + std::to_string(h) + "] of the input's dtype, got " +
                       ctx.shape(i).str());
    }
    if (simplified_ && ctx.num_outputs() > 1 && ctx.node().outputs[1] != kNoValue)
      return Unsupported("SkipSimplifiedLayerNormalization has no mean output");
    Shape stat = x;
    stat[x.rank() - 1] = 1;
    ctx.set_output(0, t, x);
    for (int o = 1; o < ctx.num_outputs() && o < 3; ++o) ctx.set_output(o, DType::kFloat32, stat);
    if (ctx.num_outputs() > 3) ctx.set_output(3, t, x);
    return Status::OK();
  }

  Status compute(const ComputeContext& ctx) const override {
    MS_SWITCH_FLOAT(ctx.input(0).dtype(), T, return Unsupported("dtype"), run<T>(ctx));
    return Status::OK();
  }

 private:
  template <class T>
  void run(const ComputeContext& ctx) const {
    const Tensor& xt = ctx.input(0);
    const int64_t h = xt.dim(xt.rank() - 1), rows = h ? xt.numel() / h : 0, skip_n = ctx.input(1).numel();
    const T* x = xt.data<T>();
    const T* skip = ctx.input(1).data<T>();
    const T* gamma = ctx.input(2).data<T>();
    const T* beta = beta_ > 0 && ctx.has_input(beta_) ? ctx.input(beta_).data<T>() : nullptr;
    const T* bias = ctx.has_input(bias_) ? ctx.input(bias_).data<T>() : nullptr;
    T* y = ctx.output(0).data<T>();
    float* mean_out = ctx.has_output(1) ? ctx.output(1).data<float>() : nullptr;
    float* inv_out = ctx.has_output(2) ? ctx.output(2).data<float>() : nullptr;
    T* sum_out = ctx.has_output(3) ? ctx.output(3).data<T>() : nullptr;
    ctx.pool().parallel_for(rows, std::max<int64_t>(1, 16384 / std::max<int64_t>(1, h)), [&](int64_t b, int64_t e) {
      for (int64_t r = b; r < e; ++r) {
        const T* xr = x + r * h;
        const T* sr = skip + (r * h) % skip_n;  // skip repeats over the leading dims it lacks
        T* yr = y + r * h;
        for (int64_t c = 0; c < h; ++c) {
          double v = to_double(xr[c]) + to_double(sr[c]);
          if (bias) v += to_double(bias[c]);
          yr[c] = from_double<T>(v);
        }
        if (sum_out) std::copy(yr, yr + h, sum_out + r * h);
        double mean = 0, inv;
        if (simplified_)
          inv = row_inv_rms(yr, h, eps_);
        else
          row_mean_inv_std(yr, h, eps_, &mean, &inv);
        if (mean_out) mean_out[r] = static_cast<float>(mean);
        if (inv_out) inv_out[r] = static_cast<float>(inv);
        for (int64_t c = 0; c < h; ++c) {
          double v = (to_double(yr[c]) - mean) * inv * to_double(gamma[c]);
          if (beta) v += to_double(beta[c]);
          yr[c] = from_double<T>(v);
        }
      }
    });
  }

  double eps_;
  bool simplified_;
  int beta_, bias_;  // input indices (-1: none)
};

// com.microsoft EmbedLayerNormalization.
class EmbedLayerNormKernel final : public Kernel {
 public:
  explicit EmbedLayerNormKernel(double eps) : eps_(eps) {}

  Status infer(InferContext& ctx) const override {
    for (int i : {0, 2, 3, 5, 6})
      MS_CHECK_ARG(ctx.has_input(i),
                   "needs input_ids, word_embedding, position_embedding, gamma and beta (inputs 0, 2, 3, 5, 6)");
    MS_CHECK_ARG(ctx.has_input(1) == ctx.has_input(4), "segment_ids and segment_embedding must be given together");
    const Shape& ids = ctx.shape(0);
    MS_CHECK_ARG(ids.rank() == 2, "input_ids must be 2-D [batch, sequence], got " + ids.str());
    for (int i : {0, 1, 7, 8}) {
      if (!ctx.has_input(i)) continue;
      const char* what = i == 0 ? "input_ids" : i == 1 ? "segment_ids" : i == 7 ? "mask" : "position_ids";
      MS_CHECK_ARG(ctx.dtype(i) == DType::kInt32 || ctx.dtype(i) == DType::kInt64,
                   std::string(what) + " must be int32");
      const Shape& s = ctx.shape(i);
      const bool ok = s == ids || (i == 8 && s.rank() == 2 && s[0] == 1 && s[1] == ids[1]);
      MS_CHECK_ARG(ok, std::string(what) + " " + s.str() + " must have the shape of input_ids " + ids.str());
    }
    const DType t = ctx.dtype(2);
    if (t != DType::kFloat32 && t != DType::kFloat64 && t != DType::kFloat16)
      return Unsupported(std::string("dtype ") + dtype_name(t) + " is not supported");
    const int64_t h = ctx.shape(2).rank() == 2 ? ctx.shape(2)[1] : -1;
    for (int i : {2, 3, 4}) {
      if (!ctx.has_input(i)) continue;
      MS_CHECK_ARG(ctx.dtype(i) == t && ctx.shape(i).rank() == 2 && ctx.shape(i)[1] == h,
                   "the embeddings must be 2-D tables of one dtype and one hidden size, got " + ctx.shape(i).str());
    }
    for (int i : {5, 6})
      MS_CHECK_ARG(ctx.dtype(i) == t && ctx.shape(i).rank() == 1 && ctx.shape(i)[0] == h,
                   std::string(i == 5 ? "gamma" : "beta") + " must be 1-D [hidden size], got " + ctx.shape(i).str());
    const Shape out{ids[0], ids[1], h};
    ctx.set_output(0, t, out);
    if (ctx.num_outputs() > 1) ctx.set_output(1, DType::kInt32, Shape{ids[0]});
    if (ctx.num_outputs() > 2) ctx.set_output(2, t, out);
    return Status::OK();
  }

  Status compute(const ComputeContext& ctx) const override {
    MS_SWITCH_FLOAT(ctx.input(2).dtype(), T, return Unsupported("dtype"), return run<T>(ctx));
    return Status::OK();
  }

 private:
  template <class T>
  Status run(const ComputeContext& ctx) const {
    const Tensor& ids = ctx.input(0);
    const int64_t B = ids.dim(0), S = ids.dim(1), h = ctx.input(2).dim(1);
    const bool seg = ctx.has_input(1), pos_ids = ctx.has_input(8);
    const bool pos_bcast = pos_ids && ctx.input(8).dim(0) == 1 && B != 1;
    // Every index is checked before any row is written.
    auto check = [&](int in, int table, const char* what) -> Status {
      const Tensor& t = ctx.input(in);
      const int64_t n = ctx.input(table).dim(0);
      for (int64_t i = 0; i < t.numel(); ++i) {
        const int64_t v = t.int_at(i);
        MS_CHECK_ARG(v >= 0 && v < n,
                     std::string(what) + " " + std::to_string(v) + " is out of range [0, " + std::to_string(n) + ")");
      }
      return Status::OK();
    };
    MS_RETURN_IF_ERROR(check(0, 2, "input id"));
    if (seg) MS_RETURN_IF_ERROR(check(1, 4, "segment id"));
    if (pos_ids) {
      MS_RETURN_IF_ERROR(check(8, 3, "position id"));
    } else {
      MS_CHECK_ARG(S <= ctx.input(3).dim(0), "sequence length " + std::to_string(S) + " exceeds the " +
                                                 std::to_string(ctx.input(3).dim(0)) + " positions of the table");
    }
    const T* word = ctx.input(2).data<T>();
    const T* pos = ctx.input(3).data<T>();
    const T* segt = seg ? ctx.input(4).data<T>() : nullptr;
    const T* gamma = ctx.input(5).data<T>();
    const T* beta = ctx.input(6).data<T>();
    T* y = ctx.output(0).data<T>();
    T* sum_out = ctx.has_output(2) ? ctx.output(2).data<T>() : nullptr;
    ctx.pool().parallel_for(B * S, std::max<int64_t>(1, 16384 / std::max<int64_t>(1, h)), [&](int64_t b, int64_t e) {
      for (int64_t r = b; r < e; ++r) {
        const T* w = word + ids.int_at(r) * h;
        const int64_t p = pos_ids ? ctx.input(8).int_at(pos_bcast ? r % S : r) : r % S;
        const T* pr = pos + p * h;
        const T* sr = seg ? segt + ctx.input(1).int_at(r) * h : nullptr;
        T* yr = y + r * h;
        for (int64_t c = 0; c < h; ++c) {
          double v = to_double(w[c]) + to_double(pr[c]);
          if (sr) v += to_double(sr[c]);
          yr[c] = from_double<T>(v);
        }
        if (sum_out) std::copy(yr, yr + h, sum_out + r * h);
        double mean, inv;
        row_mean_inv_std(yr, h, eps_, &mean, &inv);
        for (int64_t c = 0; c < h; ++c)
          yr[c] = from_double<T>((to_double(yr[c]) - mean) * inv * to_double(gamma[c]) + to_double(beta[c]));
      }
    });
    if (ctx.has_output(1)) {
      int32_t* mi = ctx.output(1).data<int32_t>();
      for (int64_t bi = 0; bi < B; ++bi) {
        int32_t n = 0;
        if (ctx.has_input(7))
          for (int64_t j = 0; j < S; ++j) n += ctx.input(7).int_at(bi * S + j) == 1;
        mi[bi] = n;
      }
    }
    return Status::OK();
  }

  double eps_;
};

}  // namespace

StatusOr<KernelPtr> create_microsoft_SkipLayerNormalization(const Node& n, const KernelInit&) {
  return KernelPtr(new ContribSkipNormKernel(n.attr_float("epsilon", 1e-12f), false));
}
StatusOr<KernelPtr> create_microsoft_SkipSimplifiedLayerNormalization(const Node& n, const KernelInit&) {
  return KernelPtr(new ContribSkipNormKernel(n.attr_float("epsilon", 1e-12f), true));
}
StatusOr<KernelPtr> create_microsoft_EmbedLayerNormalization(const Node& n, const KernelInit&) {
  const int64_t mt = n.attr_int("mask_index_type", 1);
  if (mt != 1) return Unsupported("mask_index_type " + std::to_string(mt) + " is not supported");
  return KernelPtr(new EmbedLayerNormKernel(n.attr_float("epsilon", 1e-12f)));
}

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
