// GridSample (opsets 16, 20, 22) and AffineGrid (opset 20).
//
// GridSample: X [N, C, D1..Dr], grid [N, O1..Or, r] of normalized coordinates (the last
// component indexes the first spatial axis: (x, y[, z]) = (W, H[, D])) -> Y [N, C, O1..Or].
// A coordinate n maps to ((n + 1) * L - 1) / 2 (align_corners: (n + 1) / 2 * (L - 1)).
// nearest rounds it half to even (at every rank, as the node test data do). Coordinates
// outside [-0.5, L - 0.5] ([0, L - 1] with align_corners) are clamped to
// [0, L - 1] (border) or reflected back (reflection). Then linear uses taps floor(x), +1, cubic
// floor(x) - 1 .. + 2 (Keys, A = -0.75); taps outside the input read 0 (zeros), the edge
// (border) or their reflection (reflection). Mode names: bilinear/bicubic (16), linear/cubic (20);
// both are accepted. Opset 16 is 2-D in the spec; N-D runs at every opset.
//
// AffineGrid: theta [N, 2, 3] (2-D) or [N, 3, 4] (3-D), size [N, C, H, W] or [N, C, D, H, W]
// -> grid [N, H, W, 2] / [N, D, H, W, 3] = theta @ (x, y[, z], 1) over the base grid of
// normalized pixel centers (-1 + (2i + 1) / L; align_corners: -1 + 2i / (L - 1)).
#include <algorithm>
#include <cmath>

#include "core/kernels/common.h"
#include "core/kernels/registry.h"
#include "core/parallel/thread_pool.h"

namespace mserve {
namespace {

enum class GMode { kNearest, kLinear, kCubic };
enum class Pad { kZeros, kBorder, kReflection };

template <class A, class T>
A to_a(T v) {
  if constexpr (std::is_same_v<T, Eigen::half>)
    return static_cast<A>(static_cast<float>(v));
  else
    return static_cast<A>(v);
}
template <class T, class A>
T from_a(A v) {
  if constexpr (std::is_same_v<T, Eigen::half>)
    return static_cast<T>(static_cast<float>(v));
  else
    return static_cast<T>(v);
}

template <class A>
A reflect(A x, A lo, A hi) {
  const A rng = hi - lo;
  if (x < lo) {
    const A dx = lo - x;
    const int64_t n = static_cast<int64_t>(dx / rng);
    const A r = dx - static_cast<A>(n) * rng;
    return n % 2 == 0 ? lo + r : hi - r;
  }
  if (x > hi) {
    const A dx = x - hi;
    const int64_t n = static_cast<int64_t>(dx / rng);
    const A r = dx - static_cast<A>(n) * rng;
    return n % 2 == 0 ? hi - r : lo + r;
  }
  return x;
}

template <class A>
void cubic_coeffs(A t, A* c) {
  const A a = A(-0.75);
  t = std::abs(t);
  c[0] = ((a * (t + 1) - 5 * a) * (t + 1) + 8 * a) * (t + 1) - 4 * a;
  c[1] = ((a + 2) * t - (a + 3)) * t * t + 1;
  c[2] = ((a + 2) * (1 - t) - (a + 3)) * (1 - t) * (1 - t) + 1;
  c[3] = ((a * (2 - t) - 5 * a) * (2 - t) + 8 * a) * (2 - t) - 4 * a;
}

class GridSampleKernel final : public Kernel {
 public:
  GridSampleKernel(GMode m, Pad p, bool ac) : mode_(m), pad_(p), align_(ac) {}

  Status infer(InferContext& ctx) const override {
    MS_CHECK_ARG(ctx.has_input(0) && ctx.has_input(1), "GridSample needs X and grid");
    const DType t = ctx.dtype(0), g = ctx.dtype(1);
    if (t == DType::kBool || t == DType::kUndefined)
      return Unsupported(std::string("dtype ") + dtype_name(t) + " is not supported");
    if (!dtype_is_float(g)) return Unsupported(std::string("grid dtype ") + dtype_name(g) + " is not supported");
    const Shape& xs = ctx.shape(0);
    const Shape& gs = ctx.shape(1);
    MS_CHECK_ARG(xs.rank() >= 3, "X must have rank >= 3, got " + xs.str());
    const int r = xs.rank() - 2;
    MS_CHECK_ARG(gs.rank() == r + 2 && gs[0] == xs[0] && gs[r + 1] == r,
                 "grid shape " + gs.str() + " does not fit X shape " + xs.str());
    Shape out{xs[0], xs[1]};
    for (int i = 1; i <= r; ++i) out.push_back(gs[i]);
    ctx.set_output(0, t, out);
    return Status::OK();
  }

  Status compute(const ComputeContext& ctx) const override {
    const Tensor& x = ctx.input(0);
    if (ctx.output(0).numel() == 0) return Status::OK();
    switch (x.dtype()) {
      case DType::kFloat32: run<float, float>(ctx); break;
      case DType::kFloat16: run<Eigen::half, float>(ctx); break;
      default: MS_SWITCH_NUMERIC(x.dtype(), T, return Unsupported("dtype"), run<T, double>(ctx));
    }
    return Status::OK();
  }

 private:
  // Index of tap i along an axis of length L, or -1 for a zero (padding) tap.
  template <class A>
  int64_t tap_index(int64_t i, int64_t L, A lo, A hi) const {
    if (pad_ == Pad::kZeros) return i >= 0 && i < L ? i : -1;
    if (pad_ == Pad::kBorder) return std::min<int64_t>(std::max<int64_t>(i, 0), L - 1);
    const int64_t j = static_cast<int64_t>(reflect<A>(static_cast<A>(i), lo, hi));
    return std::min<int64_t>(std::max<int64_t>(j, 0), L - 1);
  }

  template <class T, class A>
  void run(const ComputeContext& ctx) const {
    const Tensor& xt = ctx.input(0);
    const Tensor& gt = ctx.input(1);
    const T* x = xt.template data<T>();
    T* y = ctx.output(0).template data<T>();
    const int r = xt.rank() - 2;
    const int64_t N = xt.dim(0), C = xt.dim(1);
    int64_t L[Shape::kMaxRank], stride[Shape::kMaxRank];
    int64_t plane = 1;
    for (int d = r - 1; d >= 0; --d) {
      L[d] = xt.dim(d + 2);
      stride[d] = plane;
      plane *= L[d];
    }
    int64_t P = 1;
    for (int d = 1; d <= r; ++d) P *= gt.dim(d);
    const int nt = mode_ == GMode::kNearest ? 1 : mode_ == GMode::kLinear ? 2 : 4;
    int64_t combos = 1;
    for (int d = 0; d < r; ++d) combos *= nt;
    const DType gd = gt.dtype();
    const void* graw = gt.raw();
    auto gval = [&](int64_t i) -> A {
      switch (gd) {
        case DType::kFloat32: return static_cast<A>(static_cast<const float*>(graw)[i]);
        case DType::kFloat64: return static_cast<A>(static_cast<const double*>(graw)[i]);
        default: return static_cast<A>(static_cast<float>(static_cast<const Eigen::half*>(graw)[i]));
      }
    };
    ctx.pool().parallel_for(N * P, std::max<int64_t>(1, 1024 / std::max<int64_t>(1, C * combos)),
                            [&](int64_t b, int64_t e) {
                              int64_t idx[Shape::kMaxRank][4];
                              A w[Shape::kMaxRank][4];
                              for (int64_t q = b; q < e; ++q) {
                                const int64_t n = q / P, p = q % P;
                                for (int d = 0; d < r; ++d) {
                                  // grid component k indexes spatial axis r - 1 - k.
                                  const A g = gval(q * r + (r - 1 - d));
                                  const A len = static_cast<A>(L[d]);
                                  A lo, hi, c;
                                  if (align_) {
                                    c = (g + 1) / 2 * (len - 1);
                                    lo = 0;
                                    hi = len - 1;
                                  } else {
                                    c = ((g + 1) * len - 1) / 2;
                                    lo = A(-0.5);
                                    hi = len - A(0.5);
                                  }
                                  if (mode_ == GMode::kNearest) c = std::nearbyint(c);
                                  if (c < lo || c > hi) {
                                    if (pad_ == Pad::kBorder)
                                      c = std::min(std::max(c, A(0)), len - 1);
                                    else if (pad_ == Pad::kReflection)
                                      c = reflect<A>(c, lo, hi);
                                  }
                                  if (mode_ == GMode::kNearest) {
                                    // Truncation, as the reference's int cast; NaN reads as a zero tap.
                                    const int64_t i = std::isfinite(c) ? static_cast<int64_t>(c) : -(int64_t{1} << 40);
                                    idx[d][0] = tap_index<A>(i, L[d], lo, hi);
                                    w[d][0] = 1;
                                    continue;
                                  }
                                  const A f = std::isfinite(c) ? std::floor(c) : A(-(int64_t{1} << 40));
                                  const int64_t i0 = static_cast<int64_t>(f);
                                  const A t = c - f;
                                  if (mode_ == GMode::kLinear) {
                                    w[d][0] = 1 - t;
                                    w[d][1] = t;
                                    idx[d][0] = tap_index<A>(i0, L[d], lo, hi);
                                    idx[d][1] = tap_index<A>(i0 + 1, L[d], lo, hi);
                                  } else {
                                    cubic_coeffs<A>(t, w[d]);
                                    for (int k = 0; k < 4; ++k) idx[d][k] = tap_index<A>(i0 - 1 + k, L[d], lo, hi);
                                  }
                                }
                                for (int64_t ch = 0; ch < C; ++ch) {
                                  const T* xc = x + (n * C + ch) * plane;
                                  A acc = 0;
                                  for (int64_t m = 0; m < combos; ++m) {
                                    int64_t rem = m, off = 0;
                                    A wt = 1;
                                    bool zero = false;
                                    for (int d = r - 1; d >= 0; --d) {
                                      const int k = static_cast<int>(rem % nt);
                                      rem /= nt;
                                      const int64_t i = idx[d][k];
                                      if (i < 0) {
                                        zero = true;
                                        break;
                                      }
                                      off += i * stride[d];
                                      wt *= w[d][k];
                                    }
                                    if (!zero) acc += wt * to_a<A>(xc[off]);
                                  }
                                  y[(n * C + ch) * P + p] = from_a<T>(acc);
                                }
                              }
                            });
  }

  GMode mode_;
  Pad pad_;
  bool align_;
};

class AffineGridKernel final : public Kernel {
 public:
  explicit AffineGridKernel(bool ac) : align_(ac) {}

  Status infer(InferContext& ctx) const override {
    MS_CHECK_ARG(ctx.has_input(0) && ctx.has_input(1), "AffineGrid needs theta and size");
    const DType t = ctx.dtype(0);
    if (!dtype_is_float(t)) return Unsupported(std::string("dtype ") + dtype_name(t) + " is not supported");
    const Tensor* size = ctx.value(1);
    if (!size) return ctx.need_value();
    MS_ASSIGN_OR_RETURN(std::vector<int64_t> sz, read_ints(*size, "size"));
    MS_CHECK_ARG(sz.size() == 4 || sz.size() == 5, "size must have 4 or 5 values, got " + ints_str(sz));
    const int r = static_cast<int>(sz.size()) - 2;
    const Shape& th = ctx.shape(0);
    MS_CHECK_ARG(th.rank() == 3 && th[0] == sz[0] && th[1] == r && th[2] == r + 1,
                 "theta shape " + th.str() + " does not fit size " + ints_str(sz));
    Shape out{sz[0]};
    for (int i = 2; i < static_cast<int>(sz.size()); ++i) {
      MS_CHECK_ARG(sz[i] >= 0, "size must be non-negative");
      out.push_back(sz[i]);
    }
    out.push_back(r);
    ctx.set_output(0, t, out);
    return Status::OK();
  }

  Status compute(const ComputeContext& ctx) const override {
    MS_SWITCH_FLOAT(ctx.input(0).dtype(), T, return Unsupported("dtype"), run<T>(ctx));
    return Status::OK();
  }

 private:
  double base(int64_t i, int64_t L) const {
    if (align_) return L <= 1 ? -1.0 : -1.0 + 2.0 * static_cast<double>(i) / static_cast<double>(L - 1);
    const double step = 2.0 / static_cast<double>(L);
    return -1.0 + step / 2 + static_cast<double>(i) * step;
  }

  template <class T>
  void run(const ComputeContext& ctx) const {
    const Tensor& y = ctx.output(0);
    const int r = y.rank() - 2;
    const int64_t N = y.dim(0);
    int64_t L[3];
    int64_t P = 1;
    for (int d = 0; d < r; ++d) L[d] = y.dim(d + 1), P *= L[d];
    const T* th = ctx.input(0).template data<T>();
    T* out = y.template data<T>();
    ctx.pool().parallel_for(N * P, 4096, [&](int64_t b, int64_t e) {
      for (int64_t q = b; q < e; ++q) {
        const int64_t n = q / P;
        int64_t rem = q % P;
        double h[4];  // (x, y[, z], 1): x from the last spatial axis
        for (int d = r - 1; d >= 0; --d) {
          h[r - 1 - d] = base(rem % L[d], L[d]);
          rem /= L[d];
        }
        h[r] = 1;
        const T* t = th + n * r * (r + 1);
        for (int i = 0; i < r; ++i) {
          double s = 0;
          for (int j = 0; j <= r; ++j) s += to_a<double>(t[i * (r + 1) + j]) * h[j];
          out[q * r + i] = from_a<T>(s);
        }
      }
    });
  }

  bool align_;
};

}  // namespace

StatusOr<KernelPtr> create_onnx_GridSample(const Node& n, const KernelInit&) {
  const std::string m = n.attr_string("mode", n.opset < 20 ? "bilinear" : "linear");
  GMode mode;
  if (m == "bilinear" || m == "linear")
    mode = GMode::kLinear;
  else if (m == "nearest")
    mode = GMode::kNearest;
  else if (m == "bicubic" || m == "cubic")
    mode = GMode::kCubic;
  else
    return Unsupported("GridSample mode '" + m + "' is not supported");
  const std::string p = n.attr_string("padding_mode", "zeros");
  Pad pad;
  if (p == "zeros")
    pad = Pad::kZeros;
  else if (p == "border")
    pad = Pad::kBorder;
  else if (p == "reflection")
    pad = Pad::kReflection;
  else
    return Unsupported("GridSample padding_mode '" + p + "' is not supported");
  return KernelPtr(new GridSampleKernel(mode, pad, n.attr_int("align_corners", 0) != 0));
}

StatusOr<KernelPtr> create_onnx_AffineGrid(const Node& n, const KernelInit&) {
  return KernelPtr(new AffineGridKernel(n.attr_int("align_corners", 0) != 0));
}

}  // namespace mserve
