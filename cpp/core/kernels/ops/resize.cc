// Resize (opsets 10, 11, 13, 18, 19). Upsample (opsets 7 and 9) is rewritten into Resize-10 by the
// importer (onnx/normalize.h).
//
// Output sizes: floor(in * scale) from `scales`, or `sizes` (scale = out / in; with
// keep_aspect_ratio_policy not_larger/not_smaller one scale, the min/max over the resized axes,
// and out = round_half_up(scale * in)). `axes` (18+) names the axes scales/sizes/roi refer to.
//
// Each output coordinate x of an axis maps to x_ori in the input (coordinate_transformation_mode;
// the float output length scale * in is used, as the ONNX reference does). With
// base = ceil(x_ori) - 1 and ratio = x_ori - base in (0, 1]:
//   nearest — base or base + 1 by nearest_mode (opset < 11: floor when upsampling,
//             ceil when downsampling, coordinates asymmetric);
//   linear  — taps base, base + 1 with weights 1 - ratio, ratio;
//   cubic   — taps base - 1 .. base + 2 (Keys kernel with cubic_coeff_a);
//   antialias (18+, linear/cubic, downscaling) — the kernel stretched by 1 / scale, normalized.
// Taps outside the input read the edge value (exclude_outside: they get weight 0 and the rest
// is renormalized). tf_crop_and_resize maps into roi and writes extrapolation_value where x_ori
// leaves the input. Axes are interpolated one at a time, last axis first (like the reference);
// identity axes are skipped. Nearest is a pure gather (exact for every dtype).
#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/kernels/common.h"
#include "core/kernels/registry.h"
#include "core/parallel/thread_pool.h"

namespace mserve {
namespace {

enum class Mode { kNearest, kLinear, kCubic };
enum class Ctm { kHalfPixel, kHalfPixelSym, kPytorchHalfPixel, kAlignCorners, kAsymmetric, kTfCrop, kTfHalfPixelNN };
enum class Nearest { kRoundPreferFloor, kRoundPreferCeil, kFloor, kCeil, kSimple };
enum class Aspect { kStretch, kNotLarger, kNotSmaller };

struct Attrs {
  Mode mode = Mode::kNearest;
  Ctm ctm = Ctm::kHalfPixel;
  Nearest nearest = Nearest::kRoundPreferFloor;
  Aspect aspect = Aspect::kStretch;
  double cubic_a = -0.75;
  bool exclude_outside = false;
  bool antialias = false;
  double extrapolation = 0;
  std::vector<int64_t> axes;
  // Input positions (-1: absent).
  int roi_in = -1, scales_in = -1, sizes_in = -1;
};

struct AxisPlan {
  int64_t in = 0, out = 0;
  double scale = 1;
  int ntaps = 1;
  double roi_start = 0, roi_end = 1;
};
struct Plan {
  int rank = 0;
  AxisPlan ax[Shape::kMaxRank];
};

bool given(const Tensor* t) { return t != nullptr && t->numel() > 0; }

// Output sizes and scales; `scales`/`sizes` are the known input values (null when absent).
Status make_plan(const Attrs& a, const Shape& xs, const Tensor* scales, const Tensor* sizes, Plan* p) {
  const int r = xs.rank();
  p->rank = r;
  int axes[Shape::kMaxRank];
  int naxes = r;
  if (a.axes.empty()) {
    for (int i = 0; i < r; ++i) axes[i] = i;
  } else {
    MS_CHECK_ARG(static_cast<int>(a.axes.size()) <= r, "more axes than the input's rank");
    naxes = static_cast<int>(a.axes.size());
    for (int i = 0; i < naxes; ++i) {
      auto ax = normalize_axis(a.axes[i], r);
      MS_RETURN_IF_ERROR(ax.status());
      axes[i] = ax.value();
      for (int j = 0; j < i; ++j) MS_CHECK_ARG(axes[j] != axes[i], "axes has duplicates");
    }
  }
  for (int i = 0; i < r; ++i) {
    p->ax[i] = AxisPlan();
    p->ax[i].in = p->ax[i].out = xs[i];
  }
  const bool has_scales = given(scales);
  const bool has_sizes = given(sizes);
  MS_CHECK_ARG(has_scales != has_sizes,
               has_scales ? "only one of scales and sizes may be given" : "one of scales and sizes must be given");
  if (has_scales) {
    const int64_t n = scales->numel();
    MS_CHECK_ARG(n == naxes, "scales has " + std::to_string(n) + " values, expected " + std::to_string(naxes));
    for (int i = 0; i < naxes; ++i) {
      const double s = scales->float_at(i);
      MS_CHECK_ARG(s > 0 && std::isfinite(s), "scales must be positive");
      AxisPlan& ap = p->ax[axes[i]];
      ap.scale = s;
      ap.out = static_cast<int64_t>(std::floor(s * static_cast<double>(ap.in)));
    }
  } else {
    MS_CHECK_ARG(sizes->numel() == naxes,
                 "sizes has " + std::to_string(sizes->numel()) + " values, expected " + std::to_string(naxes));
    for (int i = 0; i < naxes; ++i) {
      AxisPlan& ap = p->ax[axes[i]];
      ap.out = sizes->int_at(i);
      MS_CHECK_ARG(ap.out >= 0, "sizes must be non-negative");
      ap.scale = ap.in > 0 ? static_cast<double>(ap.out) / static_cast<double>(ap.in) : 1.0;
    }
    if (a.aspect != Aspect::kStretch) {
      double s = p->ax[axes[0]].scale;
      for (int i = 1; i < naxes; ++i)
        s = a.aspect == Aspect::kNotLarger ? std::min(s, p->ax[axes[i]].scale) : std::max(s, p->ax[axes[i]].scale);
      for (int i = 0; i < naxes; ++i) {
        AxisPlan& ap = p->ax[axes[i]];
        ap.scale = s;
        ap.out = static_cast<int64_t>(s * static_cast<double>(ap.in) + 0.5);
      }
    }
  }
  for (int i = 0; i < r; ++i) {
    AxisPlan& ap = p->ax[i];
    if (a.mode == Mode::kNearest) {
      ap.ntaps = 1;
    } else {
      const int base = a.mode == Mode::kLinear ? 2 : 4;
      ap.ntaps = base;
      if (a.antialias && ap.scale < 1) {
        const double s = static_cast<float>(ap.scale);
        const int64_t start = static_cast<int64_t>(std::floor(-(base / 2) / s)) + 1;
        MS_CHECK_ARG(2 - 2 * start <= (int64_t{1} << 20), "antialias kernel too wide");
        ap.ntaps = static_cast<int>(2 - 2 * start);
      }
    }
  }
  return Status::OK();
}

// Roi values into the plan (tf_crop_and_resize only).
Status read_roi(const Attrs& a, const Tensor* roi, Plan* p) {
  if (a.ctm != Ctm::kTfCrop) return Status::OK();
  MS_CHECK_ARG(given(roi), "tf_crop_and_resize needs roi");
  const int r = p->rank;
  const int naxes = a.axes.empty() ? r : static_cast<int>(a.axes.size());
  MS_CHECK_ARG(roi->numel() == 2 * naxes,
               "roi has " + std::to_string(roi->numel()) + " values, expected " + std::to_string(2 * naxes));
  for (int i = 0; i < naxes; ++i) {
    const int ax = a.axes.empty() ? i : static_cast<int>(a.axes[i] < 0 ? a.axes[i] + r : a.axes[i]);
    p->ax[ax].roi_start = roi->float_at(i);
    p->ax[ax].roi_end = roi->float_at(naxes + i);
  }
  return Status::OK();
}

double cubic_w(double x, double A) {
  x = std::abs(x);
  if (x <= 1) return ((A + 2) * x - (A + 3)) * x * x + 1;
  if (x < 2) return ((A * x - 5 * A) * x + 8 * A) * x - 4 * A;
  return 0;
}

// Input coordinate of output position x; false when tf_crop_and_resize leaves the input.
bool source_coord(const Attrs& a, const AxisPlan& ap, int64_t x, double* out) {
  const double W = static_cast<double>(ap.in);
  const double s = ap.scale;
  const double ow = s * W;  // the float output length, as the reference uses
  const double xd = static_cast<double>(x);
  double xo = 0;
  switch (a.ctm) {
    case Ctm::kAlignCorners: xo = ow == 1 ? 0.0 : xd * (W - 1) / (ow - 1); break;
    case Ctm::kAsymmetric: xo = xd / s; break;
    case Ctm::kTfCrop: {
      const double r0 = ap.roi_start, r1 = ap.roi_end;
      xo = ow == 1 ? (r1 - r0) * (W - 1) / 2 : xd * (r1 - r0) * (W - 1) / (ow - 1);
      xo += r0 * (W - 1);
      if (xo < 0 || xo > W - 1) return false;
      break;
    }
    case Ctm::kPytorchHalfPixel: xo = ow == 1 ? -0.5 : (xd + 0.5) / s - 0.5; break;
    case Ctm::kHalfPixel: xo = (xd + 0.5) / s - 0.5; break;
    case Ctm::kHalfPixelSym: {
      const double adj = static_cast<double>(ap.out) / ow;
      const double offset = W / 2 * (1 - adj);
      xo = offset + (xd + 0.5) / s - 0.5;
      break;
    }
    case Ctm::kTfHalfPixelNN: xo = (xd + 0.5) / s; break;
  }
  *out = xo;
  return true;
}

// Tap table of one axis: idx[out * ntaps], w[out * ntaps], valid[out].
void build_taps(const Attrs& a, const AxisPlan& ap, int64_t* idx, double* w, uint8_t* valid) {
  const int n = ap.ntaps;
  const int64_t last = ap.in - 1;
  for (int64_t x = 0; x < ap.out; ++x) {
    double xo;
    int64_t* ix = idx + x * n;
    double* wx = w + x * n;
    valid[x] = source_coord(a, ap, x, &xo) ? 1 : 0;
    if (!valid[x]) {
      for (int k = 0; k < n; ++k) ix[k] = 0, wx[k] = 0;
      continue;
    }
    const double c = std::ceil(xo);
    const int64_t base = static_cast<int64_t>(c) - 1;
    const double ratio = xo - static_cast<double>(base);
    if (a.mode == Mode::kNearest) {
      int64_t i = base + 1;
      const bool integral = xo == c;
      switch (a.nearest) {
        case Nearest::kRoundPreferFloor:
          if (!integral && ratio <= 0.5) i = base;
          break;
        case Nearest::kRoundPreferCeil:
          if (!integral && ratio < 0.5) i = base;
          break;
        case Nearest::kFloor:
          if (!integral) i = base;
          break;
        case Nearest::kCeil: break;
        case Nearest::kSimple: i = ap.scale < 1 ? static_cast<int64_t>(std::ceil(xo)) : static_cast<int64_t>(xo); break;
      }
      ix[0] = std::min(std::max<int64_t>(i, 0), last);
      wx[0] = 1;
      continue;
    }
    int64_t first;
    if (n == 2 && a.mode == Mode::kLinear) {
      first = base;
      wx[0] = 1 - ratio;
      wx[1] = ratio;
    } else if (n == 4 && a.mode == Mode::kCubic && !(a.antialias && ap.scale < 1)) {
      first = base - 1;
      for (int k = 0; k < 4; ++k) wx[k] = cubic_w(static_cast<double>(k - 1) - ratio, a.cubic_a);
    } else {  // antialias
      const double s = std::min(static_cast<double>(static_cast<float>(ap.scale)), 1.0);
      const int64_t start = 1 - n / 2;
      first = base + start;
      double sum = 0;
      for (int k = 0; k < n; ++k) {
        const double arg = s * (static_cast<double>(start + k) - ratio);
        wx[k] = a.mode == Mode::kLinear ? std::min(std::max(1 - std::abs(arg), 0.0), 1.0) : cubic_w(arg, a.cubic_a);
        sum += wx[k];
      }
      for (int k = 0; k < n; ++k) wx[k] /= sum;
    }
    if (a.exclude_outside) {
      double sum = 0;
      for (int k = 0; k < n; ++k) {
        const int64_t i = first + k;
        if (i < 0 || i > last) wx[k] = 0;
        sum += wx[k];
      }
      for (int k = 0; k < n; ++k) wx[k] /= sum;
    }
    for (int k = 0; k < n; ++k) ix[k] = std::min(std::max<int64_t>(first + k, 0), last);
  }
}

bool identity_axis(const AxisPlan& ap, const int64_t* idx, const double* w, const uint8_t* valid) {
  if (ap.in != ap.out) return false;
  for (int64_t x = 0; x < ap.out; ++x) {
    if (!valid[x]) return false;
    double sum = 0;
    for (int k = 0; k < ap.ntaps; ++k) {
      const double wk = w[x * ap.ntaps + k];
      if (wk != 0 && idx[x * ap.ntaps + k] != x) return false;
      sum += wk;
    }
    if (sum != 1) return false;
  }
  return true;
}

size_t align16(size_t b) { return (b + 15) & ~size_t{15}; }

size_t table_bytes(const AxisPlan& ap) {
  const size_t t = static_cast<size_t>(ap.out) * ap.ntaps;
  return align16(t * sizeof(int64_t)) + align16(t * sizeof(double)) + align16(static_cast<size_t>(ap.out));
}

// Largest intermediate (axes k.. resized, axes ..k not yet), in elements.
int64_t max_intermediate(const Plan& p) {
  int64_t m = 0;
  for (int k = 0; k <= p.rank; ++k) {
    int64_t n = 1;
    for (int i = 0; i < p.rank; ++i) n *= i < k ? p.ax[i].in : p.ax[i].out;
    m = std::max(m, n);
  }
  return m;
}

template <class A, class T>
A to_acc(T v) {
  if constexpr (std::is_same_v<T, Eigen::half>)
    return static_cast<A>(static_cast<float>(v));
  else
    return static_cast<A>(v);
}
template <class T, class A>
T from_acc(A v) {
  if constexpr (std::is_same_v<T, Eigen::half>)
    return static_cast<T>(static_cast<float>(v));
  else
    return static_cast<T>(v);
}

class ResizeKernel final : public Kernel {
 public:
  explicit ResizeKernel(Attrs a) : a_(std::move(a)) {}

  Status infer(InferContext& ctx) const override {
    MS_CHECK_ARG(ctx.has_input(0), "missing input X");
    const DType t = ctx.dtype(0);
    if (a_.mode == Mode::kNearest) {
      if (t == DType::kUndefined) return Unsupported("dtype undefined");
    } else if (t == DType::kBool || t == DType::kUndefined) {
      return Unsupported(std::string("dtype ") + dtype_name(t) + " is not supported for linear/cubic");
    }
    const Tensor* scales = nullptr;
    const Tensor* sizes = nullptr;
    if (a_.scales_in >= 0 && ctx.has_input(a_.scales_in) && ctx.shape(a_.scales_in).numel() > 0) {
      scales = ctx.value(a_.scales_in);
      if (!scales) return ctx.need_value();
    }
    if (a_.sizes_in >= 0 && ctx.has_input(a_.sizes_in) && ctx.shape(a_.sizes_in).numel() > 0) {
      sizes = ctx.value(a_.sizes_in);
      if (!sizes) return ctx.need_value();
    }
    Plan p;
    MS_RETURN_IF_ERROR(make_plan(a_, ctx.shape(0), scales, sizes, &p));
    Shape out;
    for (int i = 0; i < p.rank; ++i) out.push_back(p.ax[i].out);
    size_t ws = 0;
    for (int i = 0; i < p.rank; ++i) ws += table_bytes(p.ax[i]);
    if (a_.mode != Mode::kNearest) {
      const size_t acc = t == DType::kFloat64 || (t != DType::kFloat32 && t != DType::kFloat16) ? 8 : 4;
      ws += 2 * align16(static_cast<size_t>(max_intermediate(p)) * acc);
    }
    ctx.set_workspace(ws);
    ctx.set_output(0, t, out);
    return Status::OK();
  }

  Status compute(const ComputeContext& ctx) const override {
    const Tensor& x = ctx.input(0);
    auto opt = [&](int i) -> const Tensor* { return i >= 0 && ctx.has_input(i) ? &ctx.input(i) : nullptr; };
    Plan p;
    MS_RETURN_IF_ERROR(make_plan(a_, x.shape(), opt(a_.scales_in), opt(a_.sizes_in), &p));
    MS_RETURN_IF_ERROR(read_roi(a_, opt(a_.roi_in), &p));
    Tensor& y = ctx.output(0);
    if (y.numel() == 0) return Status::OK();
    MS_CHECK_ARG(x.numel() > 0, "cannot resize an empty input to a non-empty output");
    // Tables.
    char* ws = static_cast<char*>(ctx.workspace());
    int64_t* idx[Shape::kMaxRank];
    double* w[Shape::kMaxRank];
    uint8_t* valid[Shape::kMaxRank];
    bool ident[Shape::kMaxRank];
    for (int i = 0; i < p.rank; ++i) {
      const AxisPlan& ap = p.ax[i];
      const size_t t = static_cast<size_t>(ap.out) * ap.ntaps;
      idx[i] = reinterpret_cast<int64_t*>(ws);
      ws += align16(t * sizeof(int64_t));
      w[i] = reinterpret_cast<double*>(ws);
      ws += align16(t * sizeof(double));
      valid[i] = reinterpret_cast<uint8_t*>(ws);
      ws += align16(static_cast<size_t>(ap.out));
      build_taps(a_, ap, idx[i], w[i], valid[i]);
      ident[i] = identity_axis(ap, idx[i], w[i], valid[i]);
    }
    if (a_.mode == Mode::kNearest) {
      MS_SWITCH_ALL(x.dtype(), T, return Unsupported("dtype"), gather<T>(ctx, p, idx, valid));
      return Status::OK();
    }
    switch (x.dtype()) {
      case DType::kFloat32: interp<float, float>(ctx, p, idx, w, valid, ident, ws); break;
      case DType::kFloat16: interp<Eigen::half, float>(ctx, p, idx, w, valid, ident, ws); break;
      default:
        MS_SWITCH_NUMERIC(x.dtype(), T, return Unsupported("dtype"),
                          interp<T, double>(ctx, p, idx, w, valid, ident, ws));
    }
    return Status::OK();
  }

 private:
  template <class T>
  void gather(const ComputeContext& ctx, const Plan& p, int64_t* const* idx, uint8_t* const* valid) const {
    const T* x = ctx.input(0).template data<T>();
    T* y = ctx.output(0).template data<T>();
    const int r = p.rank;
    const T ext = from_acc<T>(a_.extrapolation);
    if (r == 0) {
      y[0] = x[0];
      return;
    }
    int64_t stride[Shape::kMaxRank];
    int64_t s = 1;
    for (int i = r - 1; i >= 0; --i) stride[i] = s, s *= p.ax[i].in;
    const int64_t W = p.ax[r - 1].out;
    const int64_t rows = ctx.output(0).numel() / W;
    const int64_t* il = idx[r - 1];
    const uint8_t* vl = valid[r - 1];
    ctx.pool().parallel_for(rows, std::max<int64_t>(1, 16384 / W), [&](int64_t b, int64_t e) {
      for (int64_t row = b; row < e; ++row) {
        int64_t off = 0, rem = row;
        bool ok = true;
        for (int i = r - 2; i >= 0; --i) {
          const int64_t j = rem % p.ax[i].out;
          rem /= p.ax[i].out;
          ok = ok && valid[i][j];
          off += idx[i][j] * stride[i];
        }
        T* yr = y + row * W;
        if (!ok) {
          for (int64_t j = 0; j < W; ++j) yr[j] = ext;
          continue;
        }
        const T* xr = x + off;
        for (int64_t j = 0; j < W; ++j) yr[j] = vl[j] ? xr[il[j]] : ext;
      }
    });
  }

  // One 1-D pass along `axis`: in [outer, Lin, inner] -> out [outer, Lout, inner].
  template <class S, class D, class A>
  void pass(const ComputeContext& ctx, const S* in, D* out, int64_t outer, int64_t inner, const AxisPlan& ap,
            const int64_t* idx, const double* w, const uint8_t* valid) const {
    const int64_t Lin = ap.in, Lout = ap.out;
    const int n = ap.ntaps;
    const A ext = static_cast<A>(a_.extrapolation);
    const int64_t rows = outer * Lout;
    ctx.pool().parallel_for(rows, std::max<int64_t>(1, 8192 / std::max<int64_t>(1, inner * n)),
                            [&](int64_t b, int64_t e) {
                              for (int64_t row = b; row < e; ++row) {
                                const int64_t o = row / Lout, j = row % Lout;
                                D* yr = out + row * inner;
                                if (!valid[j]) {
                                  for (int64_t i = 0; i < inner; ++i) yr[i] = from_acc<D>(ext);
                                  continue;
                                }
                                const S* xb = in + o * Lin * inner;
                                const int64_t* ij = idx + j * n;
                                const double* wj = w + j * n;
                                for (int64_t i = 0; i < inner; ++i) {
                                  A acc = 0;
                                  for (int k = 0; k < n; ++k)
                                    acc += static_cast<A>(wj[k]) * to_acc<A>(xb[ij[k] * inner + i]);
                                  yr[i] = from_acc<D>(acc);
                                }
                              }
                            });
  }

  template <class T, class A>
  void interp(const ComputeContext& ctx, const Plan& p, int64_t* const* idx, double* const* w, uint8_t* const* valid,
              const bool* ident, char* ws) const {
    const T* x = ctx.input(0).template data<T>();
    T* y = ctx.output(0).template data<T>();
    const int r = p.rank;
    int passes[Shape::kMaxRank];
    int np = 0;
    for (int i = r - 1; i >= 0; --i)
      if (!ident[i]) passes[np++] = i;
    if (np == 0) {
      std::memcpy(y, x, ctx.input(0).nbytes());
      return;
    }
    const size_t buf = align16(static_cast<size_t>(max_intermediate(p)) * sizeof(A));
    A* bufs[2] = {reinterpret_cast<A*>(ws), reinterpret_cast<A*>(ws + buf)};
    int64_t cur[Shape::kMaxRank];
    for (int i = 0; i < r; ++i) cur[i] = p.ax[i].in;
    const A* src = nullptr;
    for (int k = 0; k < np; ++k) {
      const int ax = passes[k];
      int64_t outer = 1, inner = 1;
      for (int i = 0; i < ax; ++i) outer *= cur[i];
      for (int i = ax + 1; i < r; ++i) inner *= cur[i];
      const bool first = k == 0, last = k == np - 1;
      A* dst = bufs[k % 2];
      if (first && last)
        pass<T, T, A>(ctx, x, y, outer, inner, p.ax[ax], idx[ax], w[ax], valid[ax]);
      else if (first)
        pass<T, A, A>(ctx, x, dst, outer, inner, p.ax[ax], idx[ax], w[ax], valid[ax]);
      else if (last)
        pass<A, T, A>(ctx, src, y, outer, inner, p.ax[ax], idx[ax], w[ax], valid[ax]);
      else
        pass<A, A, A>(ctx, src, dst, outer, inner, p.ax[ax], idx[ax], w[ax], valid[ax]);
      src = dst;
      cur[ax] = p.ax[ax].out;
    }
  }

  Attrs a_;
};

StatusOr<Attrs> parse(const Node& n) {
  Attrs a;
  const std::string mode = n.attr_string("mode", "nearest");
  if (mode == "nearest")
    a.mode = Mode::kNearest;
  else if (mode == "linear")
    a.mode = Mode::kLinear;
  else if (mode == "cubic" && n.opset >= 11)
    a.mode = Mode::kCubic;
  else
    return Unsupported("mode '" + mode + "' is not supported");
  if (n.opset < 11) {
    a.ctm = Ctm::kAsymmetric;
    a.nearest = Nearest::kSimple;
    a.scales_in = 1;
    return a;
  }
  a.roi_in = 1;
  a.scales_in = 2;
  a.sizes_in = 3;
  const std::string ctm = n.attr_string("coordinate_transformation_mode", "half_pixel");
  if (ctm == "half_pixel")
    a.ctm = Ctm::kHalfPixel;
  else if (ctm == "half_pixel_symmetric" && n.opset >= 19)
    a.ctm = Ctm::kHalfPixelSym;
  else if (ctm == "pytorch_half_pixel")
    a.ctm = Ctm::kPytorchHalfPixel;
  else if (ctm == "align_corners")
    a.ctm = Ctm::kAlignCorners;
  else if (ctm == "asymmetric")
    a.ctm = Ctm::kAsymmetric;
  else if (ctm == "tf_crop_and_resize")
    a.ctm = Ctm::kTfCrop;
  else if (ctm == "tf_half_pixel_for_nn" && n.opset < 13)
    a.ctm = Ctm::kTfHalfPixelNN;
  else
    return Unsupported("coordinate_transformation_mode '" + ctm + "' is not supported");
  const std::string nm = n.attr_string("nearest_mode", "round_prefer_floor");
  if (nm == "round_prefer_floor")
    a.nearest = Nearest::kRoundPreferFloor;
  else if (nm == "round_prefer_ceil")
    a.nearest = Nearest::kRoundPreferCeil;
  else if (nm == "floor")
    a.nearest = Nearest::kFloor;
  else if (nm == "ceil")
    a.nearest = Nearest::kCeil;
  else
    return Unsupported("nearest_mode '" + nm + "' is not supported");
  a.cubic_a = n.attr_float("cubic_coeff_a", -0.75f);
  a.exclude_outside = n.attr_int("exclude_outside", 0) != 0;
  a.extrapolation = n.attr_float("extrapolation_value", 0.0f);
  if (n.opset >= 18) {
    a.antialias = n.attr_int("antialias", 0) != 0 && a.mode != Mode::kNearest;
    a.axes = n.attr_ints("axes");
    const std::string k = n.attr_string("keep_aspect_ratio_policy", "stretch");
    if (k == "stretch")
      a.aspect = Aspect::kStretch;
    else if (k == "not_larger")
      a.aspect = Aspect::kNotLarger;
    else if (k == "not_smaller")
      a.aspect = Aspect::kNotSmaller;
    else
      return Unsupported("keep_aspect_ratio_policy '" + k + "' is not supported");
  }
  return a;
}

}  // namespace

StatusOr<KernelPtr> create_onnx_Resize(const Node& n, const KernelInit&) {
  MS_ASSIGN_OR_RETURN(Attrs a, parse(n));
  return KernelPtr(new ResizeKernel(std::move(a)));
}
// The importer turns every Upsample of opsets 7 and 9 into a Resize; those left are newer.
StatusOr<KernelPtr> create_onnx_Upsample(const Node&, const KernelInit&) {
  return Unsupported("Upsample is deprecated from opset 10 (use Resize)");
}

}  // namespace mserve
