// MaxPool (opsets 1, 8, 10, 11, 12, 22), AveragePool (7, 10, 11, 19, 22), LpPool (1, 2, 11, 18,
// 22: p a float attribute at opset 1, an int from 2; ceil_mode and dilations from 18),
// GlobalAveragePool, GlobalMaxPool, GlobalLpPool (1, 2: p as in LpPool).
// LpPool: (sum of |x|^p over the window's taps inside the input)^(1/p); padding adds nothing.
// NCHW with 1-D, 2-D or 3-D spatial dims, run as 3-D with missing leading dims of size 1.
// Attributes by opset: MaxPool storage_order (8+), ceil_mode and dilations (10+), int8/uint8
// (12+); AveragePool ceil_mode (10+), dilations (19+). Padding never enters a max, and enters
// an average only with count_include_pad (then only cells inside the explicitly padded extent:
// windows that ceil_mode lets run past the end count the padded part, not the overhang).
// dtypes: float32, float64, float16 (accumulated in float), MaxPool also int8/uint8.
// MaxUnpool (9, 11, 22) inverts MaxPool: X [N, C, D1..Dk] and I (int64, X's shape: flat indices
// into the unpooled tensor, as MaxPool's Indices output gives them) -> Y zero-filled with
// Y.flat[I[i]] = X.flat[i], for every dtype but bool. The unpooled shape is Di' = (Di - 1) *
// stride - pad_begin - pad_end + kernel; an output_shape input makes Y larger, the unpooled block
// sitting at its origin (indices still address the unpooled shape), as the ONNX reference does.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>

#include "core/kernels/common.h"
#include "core/kernels/conv_geometry.h"
#include "core/kernels/isa/isa.h"
#include "core/kernels/registry.h"
#include "core/kernels/window_taps.h"
#include "core/parallel/thread_pool.h"

namespace mserve {
namespace {

enum class PoolKind { kMax, kAvg };

struct PoolAttrs {
  WindowAttrs win;
  bool ceil_mode = false;
  bool count_include_pad = false;
  bool col_major = false;  // storage_order = 1: Indices flattened with the first spatial dim fastest
};

// The geometry of one call (a plane per channel: N * C planes).
Status make_geo(const PoolAttrs& a, const Shape& x, ConvGeometry* g) { return pool_geometry(a.win, x, a.ceil_mode, g); }

template <class T>
inline bool is_nan(T v) {
  if constexpr (std::is_integral_v<T>)
    return false;
  else
    return !(v == v);
}

template <class T>
using AccOf = std::conditional_t<std::is_same_v<T, double>, double, float>;

// acc[i] = max(acc[i], p[i*stride]) or acc[i] += p[i*stride]; S is the stride when nonzero.
template <PoolKind K, int S, class T, class Acc>
inline void accumulate(const T* p, int64_t n, int64_t stride, Acc* acc, bool& nan) {
  const int64_t st = S ? S : stride;
  if constexpr (K == PoolKind::kMax) {
    bool any = false;
    for (int64_t i = 0; i < n; ++i) {
      const T v = p[i * st];
      acc[i] = acc[i] < v ? v : acc[i];
      any |= is_nan(v);
    }
    nan |= any;
  } else {
    for (int64_t i = 0; i < n; ++i) acc[i] += static_cast<Acc>(p[i * st]);
  }
}

// Outputs [ow_in, ow_end) of one row, whose windows lie inside the input along w.
template <PoolKind K, class T>
void interior_run(const PoolAttrs& a, const ConvGeometry& g, const T* src, int64_t sd, int64_t sh, int64_t d_lo,
                  int64_t d_hi, int64_t h_lo, int64_t h_hi, int64_t padded_dh, int64_t ow_in, int64_t ow_end, T* dst) {
  using Acc = std::conditional_t<K == PoolKind::kMax, T, AccOf<T>>;
  const int64_t n = ow_end - ow_in, s = g.s[2];
  // Accumulate in dst for max (T) or in place as Acc when T == Acc; float16 sums go through
  // a small stack buffer chunk by chunk.
  constexpr int64_t kChunk = 256;
  Acc acc[kChunk];
  for (int64_t c0 = 0; c0 < n; c0 += kChunk) {
    const int64_t cn = std::min(kChunk, n - c0);
    const Acc init = K == PoolKind::kMax ? static_cast<Acc>(std::numeric_limits<T>::lowest()) : Acc(0);
    std::fill(acc, acc + cn, init);
    bool nan = false;
    for (int64_t kd = d_lo; kd < d_hi; ++kd)
      for (int64_t kh = h_lo; kh < h_hi; ++kh) {
        const T* row = src + ((sd + kd * g.d[0]) * g.in[1] + sh + kh * g.d[1]) * g.in[2];
        for (int64_t kw = 0; kw < g.k[2]; ++kw) {
          const T* p = row + (ow_in + c0) * s - g.pb[2] + kw * g.d[2];
          // Strides 1 and 2 as constants let the compiler vectorize (strided loads become
          // shuffles); they cover nearly every pooling layer in practice.
          if (s == 1)
            accumulate<K, 1>(p, cn, s, acc, nan);
          else if (s == 2)
            accumulate<K, 2>(p, cn, s, acc, nan);
          else
            accumulate<K, 0>(p, cn, s, acc, nan);
        }
      }
    T* out = dst + ow_in + c0;
    if constexpr (K == PoolKind::kMax) {
      if (nan) {
        // Rare: redo this chunk exactly, window by window, so NaN lands where numpy puts it.
        for (int64_t i = 0; i < cn; ++i) {
          bool any = false;
          for (int64_t kd = d_lo; kd < d_hi; ++kd)
            for (int64_t kh = h_lo; kh < h_hi; ++kh) {
              const T* row = src + ((sd + kd * g.d[0]) * g.in[1] + sh + kh * g.d[1]) * g.in[2];
              for (int64_t kw = 0; kw < g.k[2]; ++kw) any |= is_nan(row[(ow_in + c0 + i) * s - g.pb[2] + kw * g.d[2]]);
            }
          out[i] = any ? std::numeric_limits<T>::quiet_NaN() : acc[i];
        }
      } else {
        std::copy(acc, acc + cn, out);
      }
    } else {
      const int64_t count = a.count_include_pad ? padded_dh * g.k[2] : (d_hi - d_lo) * (h_hi - h_lo) * g.k[2];
      const Acc inv = Acc(1) / static_cast<Acc>(count);
      for (int64_t i = 0; i < cn; ++i) out[i] = static_cast<T>(acc[i] * inv);
    }
  }
}

// One row of outputs (fixed plane, od, oh; all ow). NaN propagates into a max, as in numpy.
template <PoolKind K, class T>
void pool_row(const PoolAttrs& a, const ConvGeometry& g, const T* src, int64_t plane, int64_t od, int64_t oh, T* dst,
              int64_t* idx) {
  const int64_t sd = od * g.s[0] - g.pb[0], sh = oh * g.s[1] - g.pb[1];
  int64_t d_lo, d_hi, h_lo, h_hi;
  taps(sd, g.d[0], g.k[0], g.in[0], &d_lo, &d_hi);
  taps(sh, g.d[1], g.k[1], g.in[1], &h_lo, &h_hi);
  const int64_t padded_dh =
      K == PoolKind::kAvg && a.count_include_pad
          ? padded_taps(sd, g.d[0], g.k[0], g.in[0], g.pe[0]) * padded_taps(sh, g.d[1], g.k[1], g.in[1], g.pe[1])
          : 0;
  // Windows in [ow_in, ow_end) lie wholly inside the row: their taps need no divisions.
  const int64_t ow_in = (g.pb[2] + g.s[2] - 1) / g.s[2];
  const int64_t last_start = g.in[2] - 1 - (g.k[2] - 1) * g.d[2] + g.pb[2];  // largest interior ow * s
  const int64_t ow_end = last_start < 0 ? 0 : std::min(g.out[2], last_start / g.s[2] + 1);
  if (!idx && ow_in < ow_end) {
    // Interior windows, tap by tap across the whole run of outputs: short inner loops over
    // kernel taps would cost more in loop overhead than in arithmetic.
    interior_run<K, T>(a, g, src, sd, sh, d_lo, d_hi, h_lo, h_hi, padded_dh, ow_in, ow_end, dst);
  }
  for (int64_t ow = 0; ow < g.out[2]; ++ow) {
    if (!idx && ow == ow_in && ow_in < ow_end) {
      ow = ow_end - 1;  // done above
      continue;
    }
    const int64_t sw = ow * g.s[2] - g.pb[2];
    int64_t w_lo = 0, w_hi = g.k[2];
    if (ow < ow_in || ow >= ow_end) taps(sw, g.d[2], g.k[2], g.in[2], &w_lo, &w_hi);
    if constexpr (K == PoolKind::kMax) {
      if (!idx) {
        // Branch-free max (compiles to max instructions); NaN is tracked on the side.
        T best = std::numeric_limits<T>::lowest();
        bool nan = false;
        for (int64_t kd = d_lo; kd < d_hi; ++kd)
          for (int64_t kh = h_lo; kh < h_hi; ++kh) {
            const T* row = src + ((sd + kd * g.d[0]) * g.in[1] + sh + kh * g.d[1]) * g.in[2] + sw;
            for (int64_t kw = w_lo; kw < w_hi; ++kw) {
              const T v = row[kw * g.d[2]];
              best = best < v ? v : best;
              nan |= is_nan(v);
            }
          }
        dst[ow] = nan ? std::numeric_limits<T>::quiet_NaN() : best;
        continue;
      }
      T best = std::numeric_limits<T>::lowest();
      int64_t bd = -1, bh = 0, bw = 0;
      for (int64_t kd = d_lo; kd < d_hi; ++kd) {
        const int64_t id = sd + kd * g.d[0];
        for (int64_t kh = h_lo; kh < h_hi; ++kh) {
          const int64_t ih = sh + kh * g.d[1];
          const T* row = src + (id * g.in[1] + ih) * g.in[2];
          for (int64_t kw = w_lo; kw < w_hi; ++kw) {
            const int64_t iw = sw + kw * g.d[2];
            const T v = row[iw];
            if (bd < 0 || v > best || (is_nan(v) && !is_nan(best))) {
              best = v;
              bd = id, bh = ih, bw = iw;
            }
          }
        }
      }
      dst[ow] = best;
      if (idx) {
        int64_t flat = -1;  // a window entirely in padding has no element
        if (bd >= 0) {
          flat = a.col_major ? bd + (bh + bw * g.in[1]) * g.in[0] : (bd * g.in[1] + bh) * g.in[2] + bw;
          flat += plane * g.in_size();
        }
        idx[ow] = flat;
      }
    } else {
      using Acc = AccOf<T>;
      Acc sum = 0;
      for (int64_t kd = d_lo; kd < d_hi; ++kd) {
        const int64_t id = sd + kd * g.d[0];
        for (int64_t kh = h_lo; kh < h_hi; ++kh) {
          const int64_t ih = sh + kh * g.d[1];
          const T* row = src + (id * g.in[1] + ih) * g.in[2];
          for (int64_t kw = w_lo; kw < w_hi; ++kw) sum += static_cast<Acc>(row[sw + kw * g.d[2]]);
        }
      }
      const int64_t count = a.count_include_pad ? padded_dh * padded_taps(sw, g.d[2], g.k[2], g.in[2], g.pe[2])
                                                : (d_hi - d_lo) * (h_hi - h_lo) * (w_hi - w_lo);
      dst[ow] = static_cast<T>(sum / static_cast<Acc>(count));
    }
  }
}

// ---- 2-D pools over many small planes: separable passes over padded planes ----------------
// A window max or sum over kh x kw is a max/sum over kw columns, then over kh rows. A chunk of
// planes is copied with its padding into the workspace, laid out flat, so each pass is one long
// vectorized loop over the whole chunk (values that run into the next row or plane land only in
// positions no output reads); strided outputs are then picked out. Per-row loops lose to this
// on the 8x8 to 32x32 planes of CNNs (measured: a 3x3 average over 2048 8x8 planes, 850 us
// per-row vs 90 us here). Used for float dtypes without dilation or Indices.
struct PlaneGeo {
  int64_t H, W, OH, OW, kh, kw, sh, sw, pt, pl, Hp, Wp, chunk, slack;
  int64_t HW() const { return Hp * Wp; }
  // Elements of one thread's workspace: two chunks of padded planes with slack, and 1/count
  // per output row and column.
  int64_t slot() const { return (2 * (chunk * HW() + slack) + OH + OW + 15) / 16 * 16; }
};

bool plane_geo(const ConvGeometry& g, PlaneGeo* p) {
  if (g.in[0] != 1 || g.k[0] != 1 || g.d[1] != 1 || g.d[2] != 1) return false;
  p->H = g.in[1], p->W = g.in[2], p->OH = g.out[1], p->OW = g.out[2];
  p->kh = g.k[1], p->kw = g.k[2], p->sh = g.s[1], p->sw = g.s[2], p->pt = g.pb[1], p->pl = g.pb[2];
  p->Hp = (p->OH - 1) * p->sh + p->kh;
  p->Wp = (p->OW - 1) * p->sw + p->kw;
  if (p->HW() > (1 << 16)) return false;  // big planes: the per-row path streams them fine
  p->chunk = std::max<int64_t>(1, 16384 / p->HW());
  p->slack = p->kw + p->kh * p->Wp;
  return true;
}

// Valid (or, with count_include_pad, padded-extent) taps of output o along one axis.
inline int64_t axis_count(int64_t o, int64_t s, int64_t pb, int64_t k, int64_t in, int64_t pe, bool include_pad) {
  const int64_t lo_lim = include_pad ? -pb : 0, hi_lim = include_pad ? in + pe : in;
  const int64_t b = std::max(o * s - pb, lo_lim), e = std::min(o * s - pb + k, hi_lim);
  return std::max<int64_t>(0, e - b);
}

template <PoolKind K, class T>
inline T combine(T acc, T v) {
  if constexpr (K == PoolKind::kMax)
    return (v > acc || v != v) ? v : acc;  // NaN wins, as in numpy
  else
    return acc + v;
}

// Planes [p0, p1) of x into y; ws: p.slot() elements.
template <PoolKind K, class T>
void pool_planes(const PoolAttrs& a, const ConvGeometry& g, const PlaneGeo& p, const T* x, T* y, int64_t p0, int64_t p1,
                 T* ws) {
  const int64_t HW = p.HW(), n_max = p.chunk * HW + p.slack;
  T* P = ws;
  T* Q = ws + n_max;
  T* inv_h = Q + n_max;
  T* inv_w = inv_h + p.OH;
  const T fill = K == PoolKind::kMax ? std::numeric_limits<T>::lowest() : T(0);
  if constexpr (K == PoolKind::kAvg) {
    for (int64_t o = 0; o < p.OH; ++o)
      inv_h[o] = T(1) / T(axis_count(o, p.sh, p.pt, p.kh, p.H, g.pe[1], a.count_include_pad));
    for (int64_t o = 0; o < p.OW; ++o)
      inv_w[o] = T(1) / T(axis_count(o, p.sw, p.pl, p.kw, p.W, g.pe[2], a.count_include_pad));
  }
  const int64_t c_lo = std::min(p.Wp, p.pl), c_hi = std::min(p.Wp, p.pl + p.W);  // copied columns
  for (int64_t c0 = p0; c0 < p1; c0 += p.chunk) {
    const int64_t cn = std::min(p.chunk, p1 - c0), n = cn * HW;
    for (int64_t q = 0; q < cn; ++q) {
      const T* src = x + (c0 + q) * p.H * p.W;
      T* dst = P + q * HW;
      for (int64_t r = 0; r < p.Hp; ++r) {
        const int64_t ir = r - p.pt;
        T* d = dst + r * p.Wp;
        if (ir < 0 || ir >= p.H) {
          std::fill(d, d + p.Wp, fill);
          continue;
        }
        std::fill(d, d + c_lo, fill);
        std::copy(src + ir * p.W, src + ir * p.W + (c_hi - c_lo), d + c_lo);
        std::fill(d + c_hi, d + p.Wp, fill);
      }
    }
    std::fill(P + n, P + n + p.slack, fill);
    std::copy(P + n, P + n + p.slack, Q + n);
    if (p.kw == 1)
      std::copy(P, P + n, Q);
    else
      for (int64_t i = 0; i < n; ++i) Q[i] = combine<K>(P[i], P[i + 1]);  // along w
    for (int64_t j = 2; j < p.kw; ++j) {
      const T* pj = P + j;
      for (int64_t i = 0; i < n; ++i) Q[i] = combine<K>(Q[i], pj[i]);
    }
    // Along h: rows of 32 or more run only where outputs start (skipping the rows a stride
    // jumps over); shorter rows run as one flat pass over the chunk (measured faster on 8x8).
    const bool by_row = p.Wp >= 32;
    if (!by_row) {
      if (p.kh == 1)
        std::copy(Q, Q + n, P);
      else
        for (int64_t i = 0; i < n; ++i) P[i] = combine<K>(Q[i], Q[i + p.Wp]);
      for (int64_t j = 2; j < p.kh; ++j) {
        const T* qj = Q + j * p.Wp;
        for (int64_t i = 0; i < n; ++i) P[i] = combine<K>(P[i], qj[i]);
      }
    }
    for (int64_t q = 0; q < cn; ++q) {
      const T* src = (by_row ? Q : P) + q * HW;
      T* out = y + (c0 + q) * p.OH * p.OW;
      for (int64_t oh = 0; oh < p.OH; ++oh) {
        const T* row = src + oh * p.sh * p.Wp;
        if (by_row) {
          T* acc = P;  // scratch: one row
          std::copy(row, row + p.Wp, acc);
          for (int64_t j = 1; j < p.kh; ++j) {
            const T* qj = row + j * p.Wp;
            for (int64_t i = 0; i < p.Wp; ++i) acc[i] = combine<K>(acc[i], qj[i]);
          }
          row = acc;
        }
        T* o = out + oh * p.OW;
        if constexpr (K == PoolKind::kAvg) {
          const T ih = inv_h[oh];
          for (int64_t ow = 0; ow < p.OW; ++ow) o[ow] = row[ow * p.sw] * (ih * inv_w[ow]);
        } else {
          for (int64_t ow = 0; ow < p.OW; ++ow) o[ow] = row[ow * p.sw];
        }
      }
    }
  }
}

bool pool_dtype(PoolKind k, DType t, int opset) {
  if (dtype_is_float(t)) return true;
  return k == PoolKind::kMax && opset >= 12 && (t == DType::kInt8 || t == DType::kUInt8);
}

template <PoolKind K>
class PoolKernel final : public Kernel {
 public:
  explicit PoolKernel(PoolAttrs a) : a_(std::move(a)) {}

  Status infer(InferContext& ctx) const override {
    MS_CHECK_ARG(ctx.has_input(0), "missing input X");
    const DType t = ctx.dtype(0);
    if (!pool_dtype(K, t, ctx.node().opset)) {
      const bool later = K == PoolKind::kMax && (t == DType::kInt8 || t == DType::kUInt8);
      return Unsupported(std::string("dtype ") + dtype_name(t) + " is not supported" +
                         (later ? " before opset 12" : ""));
    }
    ConvGeometry g;
    MS_RETURN_IF_ERROR(make_geo(a_, ctx.shape(0), &g));
    const Shape& x = ctx.shape(0);
    Shape out{x[0], x[1]};
    const int sp = x.rank() - 2;
    for (int i = 3 - sp; i < 3; ++i) out.push_back(g.out[i]);
    ctx.set_output(0, t, out);
    if (K == PoolKind::kMax && wants_indices(ctx.node())) ctx.set_output(1, DType::kInt64, out);
    PlaneGeo pg;
    if (planes_ok(wants_indices(ctx.node()), t) && plane_geo(g, &pg)) {
      const int64_t slots = std::min<int64_t>(ctx.threads(), std::max<int64_t>(1, g.N * g.C));
      ctx.set_workspace(static_cast<size_t>(slots * pg.slot()) * (t == DType::kFloat64 ? 8 : 4));
    }
    return Status::OK();
  }

  Status compute(const ComputeContext& ctx) const override {
    const Tensor& x = ctx.input(0);
    ConvGeometry g;
    MS_RETURN_IF_ERROR(make_geo(a_, x.shape(), &g));
    PlaneGeo pg;
    if (planes_ok(ctx.has_output(1), x.dtype()) && plane_geo(g, &pg)) {
      if (x.dtype() == DType::kFloat32)
        run_planes<float>(ctx, g, pg);
      else
        run_planes<double>(ctx, g, pg);
      return Status::OK();
    }
    switch (x.dtype()) {
      case DType::kFloat32: run<float>(ctx, g); return Status::OK();
      case DType::kFloat64: run<double>(ctx, g); return Status::OK();
      case DType::kFloat16: run<Eigen::half>(ctx, g); return Status::OK();
      default: break;
    }
    if constexpr (K == PoolKind::kMax) {
      if (x.dtype() == DType::kInt8) {
        run<int8_t>(ctx, g);
        return Status::OK();
      }
      if (x.dtype() == DType::kUInt8) {
        run<uint8_t>(ctx, g);
        return Status::OK();
      }
    }
    return Unsupported(std::string("dtype ") + dtype_name(x.dtype()) + " is not supported");
  }

 private:
  static bool wants_indices(const Node& n) { return n.outputs.size() > 1 && n.outputs[1] != kNoValue; }
  static bool planes_ok(bool indices, DType t) {
    return (t == DType::kFloat32 || t == DType::kFloat64) && !(K == PoolKind::kMax && indices);
  }

  template <class T>
  void run_planes(const ComputeContext& ctx, const ConvGeometry& g, const PlaneGeo& pg) const {
    const T* x = ctx.input(0).template data<T>();
    T* y = ctx.output(0).template data<T>();
    T* ws = static_cast<T*>(ctx.workspace());
    const int64_t planes = g.N * g.C;
    const int64_t slots = std::min<int64_t>(ctx.pool().threads(), std::max<int64_t>(1, planes));
    const int64_t per = (planes + slots - 1) / slots;
    ctx.pool().parallel_for(slots, 1, [&](int64_t sb, int64_t se) {
      for (int64_t sl = sb; sl < se; ++sl)
        pool_planes<K, T>(a_, g, pg, x, y, sl * per, std::min(planes, (sl + 1) * per), ws + sl * pg.slot());
    });
  }

  template <class T>
  void run(const ComputeContext& ctx, const ConvGeometry& g) const {
    const T* x = ctx.input(0).template data<T>();
    T* y = ctx.output(0).template data<T>();
    int64_t* ind = K == PoolKind::kMax && ctx.has_output(1) ? ctx.output(1).template data<int64_t>() : nullptr;
    const int64_t IS = g.in_size(), OS = g.out_size();
    const int64_t rows_per_plane = g.out[0] * g.out[1];
    const int64_t rows = g.N * g.C * rows_per_plane;
    const int64_t row_cost = std::max<int64_t>(1, g.out[2] * g.k[0] * g.k[1] * g.k[2]);
    ctx.pool().parallel_for(rows, std::max<int64_t>(1, 16384 / row_cost), [&](int64_t b, int64_t e) {
      for (int64_t r = b; r < e; ++r) {
        const int64_t plane = r / rows_per_plane, rr = r % rows_per_plane;
        const int64_t od = rr / g.out[1], oh = rr % g.out[1];
        const int64_t off = plane * OS + rr * g.out[2];
        pool_row<K, T>(a_, g, x + plane * IS, plane, od, oh, y + off, ind ? ind + off : nullptr);
      }
    });
  }

  PoolAttrs a_;
};

// Shared parsing; `ceil`/`dil` say whether this op version has those attributes.
StatusOr<PoolAttrs> parse_pool(const Node& n, bool ceil, bool dil) {
  PoolAttrs a;
  MS_ASSIGN_OR_RETURN(a.win, parse_window_attrs(n));
  if (!dil) a.win.dilations.clear();
  if (ceil) a.ceil_mode = n.attr_int("ceil_mode", 0) != 0;
  const size_t sp = a.win.kernel_shape.size();
  MS_CHECK_ARG(sp > 0, "the kernel_shape attribute is required");
  if (sp > 3)
    return Unsupported("only 1-D, 2-D and 3-D pooling is supported, kernel_shape is " + ints_str(a.win.kernel_shape));
  MS_RETURN_IF_ERROR(check_window_lengths(a.win, sp));
  return a;
}

// (sum |x|^p)^(1/p), with the common p as plain products.
template <class Acc>
inline Acc lp_term(Acc v, float p) {
  v = v < Acc(0) ? -v : v;
  if (p == 1.0f) return v;
  if (p == 2.0f) return v * v;
  return static_cast<Acc>(std::pow(v, static_cast<Acc>(p)));
}
template <class Acc>
inline Acc lp_root(Acc sum, float p) {
  if (p == 1.0f) return sum;
  if (p == 2.0f) return std::sqrt(sum);
  return static_cast<Acc>(std::pow(sum, Acc(1) / static_cast<Acc>(p)));
}

class LpPoolKernel final : public Kernel {
 public:
  LpPoolKernel(PoolAttrs a, float p) : a_(std::move(a)), p_(p) {}

  Status infer(InferContext& ctx) const override {
    MS_CHECK_ARG(ctx.has_input(0), "missing input X");
    const DType t = ctx.dtype(0);
    if (!dtype_is_float(t)) return Unsupported(std::string("dtype ") + dtype_name(t) + " is not supported");
    ConvGeometry g;
    MS_RETURN_IF_ERROR(make_geo(a_, ctx.shape(0), &g));
    const Shape& x = ctx.shape(0);
    Shape out{x[0], x[1]};
    for (int i = 3 - (x.rank() - 2); i < 3; ++i) out.push_back(g.out[i]);
    ctx.set_output(0, t, out);
    return Status::OK();
  }

  Status compute(const ComputeContext& ctx) const override {
    const Tensor& x = ctx.input(0);
    ConvGeometry g;
    MS_RETURN_IF_ERROR(make_geo(a_, x.shape(), &g));
    MS_SWITCH_FLOAT(x.dtype(), T, return Unsupported(std::string("dtype ") + dtype_name(x.dtype())), run<T>(ctx, g));
    return Status::OK();
  }

 private:
  template <class T>
  void run(const ComputeContext& ctx, const ConvGeometry& g) const {
    using Acc = AccOf<T>;
    const T* x = ctx.input(0).template data<T>();
    T* y = ctx.output(0).template data<T>();
    const int64_t IS = g.in_size(), OS = g.out_size();
    const int64_t rows_per_plane = g.out[0] * g.out[1];
    const int64_t row_cost = std::max<int64_t>(1, g.out[2] * g.k[0] * g.k[1] * g.k[2]);
    const float p = p_;
    ctx.pool().parallel_for(
        g.N * g.C * rows_per_plane, std::max<int64_t>(1, 16384 / row_cost), [&](int64_t b, int64_t e) {
          for (int64_t r = b; r < e; ++r) {
            const int64_t plane = r / rows_per_plane, rr = r % rows_per_plane;
            const int64_t od = rr / g.out[1], oh = rr % g.out[1];
            const T* src = x + plane * IS;
            T* dst = y + plane * OS + rr * g.out[2];
            const int64_t sd = od * g.s[0] - g.pb[0], sh = oh * g.s[1] - g.pb[1];
            int64_t d_lo, d_hi, h_lo, h_hi;
            taps(sd, g.d[0], g.k[0], g.in[0], &d_lo, &d_hi);
            taps(sh, g.d[1], g.k[1], g.in[1], &h_lo, &h_hi);
            for (int64_t ow = 0; ow < g.out[2]; ++ow) {
              const int64_t sw = ow * g.s[2] - g.pb[2];
              int64_t w_lo, w_hi;
              taps(sw, g.d[2], g.k[2], g.in[2], &w_lo, &w_hi);
              Acc sum = 0;
              for (int64_t kd = d_lo; kd < d_hi; ++kd)
                for (int64_t kh = h_lo; kh < h_hi; ++kh) {
                  const T* row = src + ((sd + kd * g.d[0]) * g.in[1] + sh + kh * g.d[1]) * g.in[2] + sw;
                  for (int64_t kw = w_lo; kw < w_hi; ++kw) sum += lp_term(static_cast<Acc>(row[kw * g.d[2]]), p);
                }
              dst[ow] = static_cast<T>(lp_root(sum, p));
            }
          }
        });
  }

  PoolAttrs a_;
  float p_;
};

enum class GlobalKind { kAvg, kMax, kLp };

class GlobalPoolKernel final : public Kernel {
 public:
  explicit GlobalPoolKernel(GlobalKind k, float p = 2.0f) : kind_(k), p_(p) {}

  Status infer(InferContext& ctx) const override {
    MS_CHECK_ARG(ctx.has_input(0), "missing input X");
    const DType t = ctx.dtype(0);
    if (!dtype_is_float(t)) return Unsupported(std::string("dtype ") + dtype_name(t) + " is not supported");
    const Shape& x = ctx.shape(0);
    MS_CHECK_ARG(x.rank() >= 2, "X must have rank >= 2 (N, C, spatial...), got shape " + x.str());
    Shape out = x;
    for (int i = 2; i < out.rank(); ++i) out[i] = 1;
    ctx.set_output(0, t, out);
    return Status::OK();
  }

  Status compute(const ComputeContext& ctx) const override {
    const Tensor& x = ctx.input(0);
    MS_SWITCH_FLOAT(x.dtype(), T, return Unsupported(std::string("dtype ") + dtype_name(x.dtype())), run<T>(ctx, x));
    return Status::OK();
  }

 private:
  template <class T>
  void run(const ComputeContext& ctx, const Tensor& xt) const {
    using Acc = AccOf<T>;
    const Shape& s = xt.shape();
    const int64_t planes = s[0] * s[1], len = s.prod(2, s.rank());
    const T* x = xt.data<T>();
    T* y = ctx.output(0).data<T>();
    const GlobalKind kind = kind_;
    const float p = p_;
    ctx.pool().parallel_for(planes, std::max<int64_t>(1, 16384 / std::max<int64_t>(1, len)), [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        const T* v = x + i * len;
        if (kind == GlobalKind::kAvg) {
          Eigen::Map<const Eigen::Array<T, Eigen::Dynamic, 1>> a(v, len);
          const Acc sum = len ? a.template cast<Acc>().sum() : Acc(0);
          y[i] = static_cast<T>(sum / static_cast<Acc>(len));  // an empty plane averages to NaN
        } else if (kind == GlobalKind::kMax) {
          T best = std::numeric_limits<T>::lowest();
          bool nan = false;
          for (int64_t j = 0; j < len; ++j) {
            best = best < v[j] ? v[j] : best;
            nan |= is_nan(v[j]);
          }
          y[i] = nan ? std::numeric_limits<T>::quiet_NaN() : best;
        } else {
          Acc sum = 0;
          for (int64_t j = 0; j < len; ++j) sum += lp_term(static_cast<Acc>(v[j]), p);
          y[i] = static_cast<T>(lp_root(sum, p));
        }
      }
    });
  }

  GlobalKind kind_;
  float p_;
};

// com.mserve NhwcMaxPool / NhwcAveragePool: MaxPool / AveragePool (2-D, no Indices) on
// channels-last X [N, H, W, C] -> Y [N, OH, OW, C], made by the nhwc_convs pass between
// channels-last convs. Attributes are the original node's; mserve_source_opset says which of them
// its opset honoured. Each window is a max/sum of whole channel rows, vectorized along C for this
// CPU (kernels/isa/variant_pool.cc).
template <PoolKind K>
class NhwcPoolKernel final : public Kernel {
 public:
  explicit NhwcPoolKernel(PoolAttrs a) : a_(std::move(a)) {}

  Status infer(InferContext& ctx) const override {
    const DType t = ctx.dtype(0);
    if (t != DType::kFloat32 && t != DType::kFloat64)
      return Unsupported(std::string("dtype ") + dtype_name(t) + " is not supported");
    MS_CHECK_ARG(ctx.shape(0).rank() == 4, "X must be [N, H, W, C], got " + ctx.shape(0).str());
    ConvGeometry g;
    MS_RETURN_IF_ERROR(make_geo(a_, nchw(ctx.shape(0)), &g));
    ctx.set_output(0, t, Shape{ctx.shape(0)[0], g.out[1], g.out[2], ctx.shape(0)[3]});
    return Status::OK();
  }

  Status compute(const ComputeContext& ctx) const override {
    ConvGeometry g;
    MS_RETURN_IF_ERROR(make_geo(a_, nchw(ctx.input(0).shape()), &g));
    if (ctx.input(0).dtype() == DType::kFloat32)
      run<float>(ctx, g);
    else
      run<double>(ctx, g);
    return Status::OK();
  }

 private:
  static Shape nchw(const Shape& x) { return Shape{x[0], x[3], x[1], x[2]}; }

  template <class T>
  void run(const ComputeContext& ctx, const ConvGeometry& g) const {
    const Shape& xs = ctx.input(0).shape();
    NhwcPoolGeo n;
    n.H = xs[1], n.W = xs[2], n.C = xs[3], n.OH = g.out[1], n.OW = g.out[2];
    for (int i = 0; i < 2; ++i)
      n.k[i] = g.k[i + 1], n.s[i] = g.s[i + 1], n.d[i] = g.d[i + 1], n.pb[i] = g.pb[i + 1], n.pe[i] = g.pe[i + 1];
    n.max = K == PoolKind::kMax;
    n.count_include_pad = a_.count_include_pad;
    const T* x = ctx.input(0).template data<T>();
    T* y = ctx.output(0).template data<T>();
    const int64_t row_cost = std::max<int64_t>(1, n.OW * n.k[0] * n.k[1] * n.C);
    ctx.pool().parallel_for(xs[0] * n.OH, std::max<int64_t>(1, 32768 / row_cost),
                            [&](int64_t b, int64_t e) { nhwc_pool_rows(n, x, y, b, e); });
  }

  PoolAttrs a_;
};

// p: a float attribute at opset 1, an int from opset 2.
StatusOr<float> parse_p(const Node& n) {
  const Attribute* a = n.attr("p");
  float p = 2.0f;
  if (a) p = a->kind == Attribute::Kind::kFloat ? a->f : static_cast<float>(a->i);
  MS_CHECK_ARG(p > 0, "p must be positive, got " + std::to_string(p));
  return p;
}

// ------------------------------------------------------------------------------ MaxUnpool

class MaxUnpoolKernel final : public Kernel {
 public:
  MaxUnpoolKernel(std::vector<int64_t> kernel, std::vector<int64_t> pads, std::vector<int64_t> strides)
      : kernel_(std::move(kernel)), pads_(std::move(pads)), strides_(std::move(strides)) {}

  Status infer(InferContext& ctx) const override {
    const Shape& s = ctx.shape(0);
    const int k = static_cast<int>(kernel_.size());
    MS_CHECK_ARG(s.rank() == k + 2, "X has shape " + s.str() + " for a " + std::to_string(k) + "-D kernel");
    MS_CHECK_ARG(ctx.shape(1) == s, "indices have shape " + ctx.shape(1).str() + ", X has " + s.str());
    MS_CHECK_ARG(ctx.dtype(1) == DType::kInt64, "indices must be int64");
    if (ctx.dtype(0) == DType::kBool || ctx.dtype(0) == DType::kUndefined)
      return Unsupported(std::string("dtype ") + dtype_name(ctx.dtype(0)) + " is not supported");
    MS_ASSIGN_OR_RETURN(Shape unpooled, unpooled_shape(s));
    Shape out = unpooled;
    if (ctx.has_input(2)) {
      const Tensor* os = ctx.value(2);
      if (!os) return ctx.need_value();
      MS_ASSIGN_OR_RETURN(std::vector<int64_t> v, read_ints(*os, "output_shape"));
      MS_CHECK_ARG(static_cast<int>(v.size()) == s.rank(),
                   "output_shape must have " + std::to_string(s.rank()) + " values");
      for (int i = 0; i < s.rank(); ++i)
        MS_CHECK_ARG(v[i] >= unpooled[i] && (i >= 2 || v[i] == unpooled[i]),
                     "output_shape " + ints_str(v) + " is smaller than the unpooled shape " + unpooled.str());
      out = Shape(v.begin(), v.end());
    }
    ctx.set_output(0, ctx.dtype(0), out);
    return Status::OK();
  }

  Status compute(const ComputeContext& ctx) const override {
    const Tensor& x = ctx.input(0);
    const Tensor& idx = ctx.input(1);
    Tensor& y = ctx.output(0);
    const Shape unpooled = unpooled_shape(x.shape()).value(), &out = y.shape();
    const int rank = out.rank();
    const size_t es = dtype_size(x.dtype());
    const int64_t total = unpooled.numel();
    std::memset(y.raw(), 0, y.nbytes());
    const int64_t* ip = idx.data<int64_t>();
    const char* src = static_cast<const char*>(x.raw());
    char* dst = static_cast<char*>(y.raw());
    for (int64_t i = 0; i < x.numel(); ++i) {
      int64_t f = ip[i];
      MS_CHECK_ARG(f >= 0 && f < total,
                   "index " + std::to_string(f) + " is outside the unpooled shape " + unpooled.str());
      // Position in the unpooled shape -> flat offset in Y.
      int64_t o = 0, stride = 1;
      for (int a = rank - 1; a >= 0; --a) {
        o += (f % unpooled[a]) * stride;
        f /= unpooled[a];
        stride *= out[a];
      }
      std::memcpy(dst + o * es, src + i * es, es);
    }
    return Status::OK();
  }

 private:
  StatusOr<Shape> unpooled_shape(const Shape& s) const {
    Shape out = s;
    const size_t k = kernel_.size();
    for (size_t d = 0; d < k; ++d) {
      const int64_t stride = strides_.empty() ? 1 : strides_[d];
      const int64_t pb = pads_.empty() ? 0 : pads_[d], pe = pads_.empty() ? 0 : pads_[k + d];
      out[static_cast<int>(d) + 2] = (s[static_cast<int>(d) + 2] - 1) * stride - pb - pe + kernel_[d];
      MS_CHECK_ARG(out[static_cast<int>(d) + 2] >= 0, "negative unpooled length");
    }
    return out;
  }

  std::vector<int64_t> kernel_, pads_, strides_;
};

}  // namespace

StatusOr<KernelPtr> create_onnx_MaxPool(const Node& n, const KernelInit&) {
  MS_ASSIGN_OR_RETURN(PoolAttrs a, parse_pool(n, n.opset >= 10, n.opset >= 10));
  const int64_t order = n.opset >= 8 ? n.attr_int("storage_order", 0) : 0;
  MS_CHECK_ARG(order == 0 || order == 1, "storage_order must be 0 or 1, got " + std::to_string(order));
  a.col_major = order == 1;
  return KernelPtr(new PoolKernel<PoolKind::kMax>(std::move(a)));
}

StatusOr<KernelPtr> create_onnx_AveragePool(const Node& n, const KernelInit&) {
  MS_ASSIGN_OR_RETURN(PoolAttrs a, parse_pool(n, n.opset >= 10, n.opset >= 19));
  a.count_include_pad = n.attr_int("count_include_pad", 0) != 0;
  return KernelPtr(new PoolKernel<PoolKind::kAvg>(std::move(a)));
}

StatusOr<KernelPtr> create_onnx_GlobalAveragePool(const Node&, const KernelInit&) {
  return KernelPtr(new GlobalPoolKernel(GlobalKind::kAvg));
}

StatusOr<KernelPtr> create_onnx_GlobalMaxPool(const Node&, const KernelInit&) {
  return KernelPtr(new GlobalPoolKernel(GlobalKind::kMax));
}

StatusOr<KernelPtr> create_onnx_GlobalLpPool(const Node& n, const KernelInit&) {
  MS_ASSIGN_OR_RETURN(float p, parse_p(n));
  return KernelPtr(new GlobalPoolKernel(GlobalKind::kLp, p));
}

StatusOr<KernelPtr> create_onnx_LpPool(const Node& n, const KernelInit&) {
  MS_ASSIGN_OR_RETURN(PoolAttrs a, parse_pool(n, n.opset >= 18, n.opset >= 18));
  MS_ASSIGN_OR_RETURN(float p, parse_p(n));
  return KernelPtr(new LpPoolKernel(std::move(a), p));
}

StatusOr<KernelPtr> create_mserve_NhwcMaxPool(const Node& n, const KernelInit&) {
  const int64_t opset = n.attr_int("mserve_source_opset", 12);
  MS_ASSIGN_OR_RETURN(PoolAttrs a, parse_pool(n, opset >= 10, opset >= 10));
  MS_CHECK_ARG(a.win.kernel_shape.size() == 2, "NhwcMaxPool is 2-D");
  return KernelPtr(new NhwcPoolKernel<PoolKind::kMax>(std::move(a)));
}

StatusOr<KernelPtr> create_mserve_NhwcAveragePool(const Node& n, const KernelInit&) {
  const int64_t opset = n.attr_int("mserve_source_opset", 19);
  MS_ASSIGN_OR_RETURN(PoolAttrs a, parse_pool(n, opset >= 10, opset >= 19));
  MS_CHECK_ARG(a.win.kernel_shape.size() == 2, "NhwcAveragePool is 2-D");
  a.count_include_pad = n.attr_int("count_include_pad", 0) != 0;
  return KernelPtr(new NhwcPoolKernel<PoolKind::kAvg>(std::move(a)));
}

StatusOr<KernelPtr> create_onnx_MaxUnpool(const Node& n, const KernelInit&) {
  std::vector<int64_t> kernel = n.attr_ints("kernel_shape"), pads = n.attr_ints("pads"),
                       strides = n.attr_ints("strides");
  MS_CHECK_ARG(!kernel.empty(), "kernel_shape is required");
  MS_CHECK_ARG(Shape::fits(kernel.size() + 2), "too many spatial dimensions");
  MS_CHECK_ARG(pads.empty() || pads.size() == 2 * kernel.size(), "pads must have 2 values per spatial axis");
  MS_CHECK_ARG(strides.empty() || strides.size() == kernel.size(), "strides must have 1 value per spatial axis");
  for (int64_t v : kernel) MS_CHECK_ARG(v >= 1, "kernel_shape values must be positive");
  for (int64_t v : strides) MS_CHECK_ARG(v >= 1, "strides must be positive");
  for (int64_t v : pads) MS_CHECK_ARG(v >= 0, "pads must not be negative");
  return KernelPtr(new MaxUnpoolKernel(std::move(kernel), std::move(pads), std::move(strides)));
}

}  // namespace mserve
