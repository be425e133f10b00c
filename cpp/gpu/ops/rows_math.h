// Row arithmetic of the CUDA Softmax, LayerNormalization, SkipLayerNormalization, Reduce* and
// MultiHeadAttention kernels, in the form the device evaluates it: nvcc builds it into the
// kernels and g++ into tests/cpp/gpu, which compares it with the CPU kernels without a GPU.
//
// A row is split across `lanes` partial accumulators: lane l takes elements l, l + lanes, ...
// in order. The partials are combined as the device combines them: a pairwise tree within each
// group of 32 (a warp: lane l takes op(lane l, lane l + off) for off = 16, 8, 4, 2, 1, which
// __shfl_down_sync gives), then the same tree over the groups' results (a block's warps).
// combine_lanes is that order on the host; rows_device.cuh is it on the device.
//
// Multiply-adds are written as fma / fmaf: nvcc contracts a * b + c into one rounding by default
// and g++ on x86-64 does not, so both compilers are given the fused form explicitly. The one
// difference left between host and device is expf (CUDA's is within 2 ulp, glibc's rounded).
#pragma once
#include <math.h>

#include <cstdint>
#include <type_traits>

#include "gpu/ops/host_device.h"

namespace mserve::gpu::rows {

constexpr int kWarp = 32;
constexpr int kBlock = 256;  // threads of a block that owns one row (8 warps)

// Lanes of one row: one thread (1), a warp (32) or a block (256).
enum Lanes : int { kThread = 1, kWarpLanes = kWarp, kBlockLanes = kBlock };

// ---- combining operators (the first argument is the lower lane) ----
struct AddF {
  MS_HD float operator()(float a, float b) const { return a + b; }
};
struct AddD {
  MS_HD double operator()(double a, double b) const { return a + b; }
};
// std::max(m, v) as the CPU's softmax takes it: a NaN never becomes the maximum.
struct MaxF {
  MS_HD float operator()(float m, float v) const { return m < v ? v : m; }
};
// The CPU reductions' Max / Min steps: a NaN propagates.
struct MaxNanF {
  MS_HD float operator()(float a, float v) const { return (v > a || v != v) ? v : a; }
};
struct MinNanF {
  MS_HD float operator()(float a, float v) const { return (v < a || v != v) ? v : a; }
};

// The device's combine order on the host: p[0, lanes) holds the partials (overwritten).
template <class T, class Op>
inline T combine_lanes(T* p, int lanes, Op op) {
  const int group = lanes < kWarp ? lanes : kWarp;
  for (int g = 0; g < lanes; g += group)
    for (int off = group / 2; off > 0; off /= 2)
      for (int l = 0; l < off; ++l) p[g + l] = op(p[g + l], p[g + l + off]);
  const int groups = lanes / group;
  for (int off = groups / 2; off > 0; off /= 2)
    for (int w = 0; w < off; ++w) p[w * group] = op(p[w * group], p[(w + off) * group]);
  return p[0];
}

// ---- Softmax (core/kernels/ops/softmax.cc): m = max, e = exp(x - m), y = e * (1 / sum(e)) ----

// Lanes for rows of `len` elements `inner` apart: a thread walks a strided row (neighbouring
// threads take neighbouring rows, so loads coalesce, and the order is the CPU's); a warp takes a
// contiguous row of up to 1024, a block a longer one.
MS_HD int softmax_lanes(int64_t len, int64_t inner) {
  if (inner != 1) return kThread;
  return len <= 1024 ? kWarpLanes : kBlockLanes;
}

MS_HD float lane_max(const float* x, int64_t len, int64_t stride, int lane, int lanes) {
  float m = -INFINITY;
  for (int64_t i = lane; i < len; i += lanes) m = MaxF()(m, x[i * stride]);
  return m;
}

// Writes e = exp(x - m) to y and returns the lane's sum of e.
MS_HD float lane_exp(const float* x, float* y, int64_t len, int64_t stride, int lane, int lanes, float m) {
  float s = 0.0f;
  for (int64_t i = lane; i < len; i += lanes) {
    const float e = expf(x[i * stride] - m);
    y[i * stride] = e;
    s += e;
  }
  return s;
}

MS_HD void lane_scale(float* y, int64_t len, int64_t stride, int lane, int lanes, float inv) {
  for (int64_t i = lane; i < len; i += lanes) y[i * stride] *= inv;
}

// One row on the host, as the device computes it with `lanes` lanes.
inline void softmax_row(const float* x, float* y, int64_t len, int64_t stride, int lanes) {
  float p[kBlock];
  for (int l = 0; l < lanes; ++l) p[l] = lane_max(x, len, stride, l, lanes);
  const float m = combine_lanes(p, lanes, MaxF());
  for (int l = 0; l < lanes; ++l) p[l] = lane_exp(x, y, len, stride, l, lanes, m);
  const float inv = 1.0f / combine_lanes(p, lanes, AddF());
  for (int l = 0; l < lanes; ++l) lane_scale(y, len, stride, l, lanes, inv);
}

// ---- masked softmax of the attention scores (the CPU's fused fast path, isa softmax_row) ----
// v = s + mask (float mask), or -inf where a bool mask is false; then softmax, except that a
// row with every v = -inf (every key masked) becomes zeros. The mask element of key j is
// mask[j * mask_stride] (stride 0: one value for the whole row).

struct RowMask {
  const float* add = nullptr;           // float mask row, or null
  const unsigned char* keep = nullptr;  // bool mask row, or null
  int64_t stride = 1;
};

MS_HD float masked_value(float s, const RowMask& mk, int64_t j) {
  if (mk.add) return s + mk.add[j * mk.stride];
  if (mk.keep && !mk.keep[j * mk.stride]) return -INFINITY;
  return s;
}

// Replaces s by v and returns the lane's maximum of v.
MS_HD float lane_mask_max(float* s, int64_t len, const RowMask& mk, int lane, int lanes) {
  float m = -INFINITY;
  for (int64_t j = lane; j < len; j += lanes) {
    const float v = masked_value(s[j], mk, j);
    s[j] = v;
    m = MaxF()(m, v);
  }
  return m;
}

// Softmax of one masked row of scores, in place, on the host.
inline void masked_softmax_row(float* s, int64_t len, const RowMask& mk, int lanes) {
  float p[kBlock];
  for (int l = 0; l < lanes; ++l) p[l] = lane_mask_max(s, len, mk, l, lanes);
  const float m = combine_lanes(p, lanes, MaxF());
  if (m == -INFINITY) {
    for (int64_t j = 0; j < len; ++j) s[j] = 0.0f;
    return;
  }
  for (int l = 0; l < lanes; ++l) p[l] = lane_exp(s, s, len, 1, l, lanes, m);
  const float inv = 1.0f / combine_lanes(p, lanes, AddF());
  for (int l = 0; l < lanes; ++l) lane_scale(s, len, 1, l, lanes, inv);
}

// ---- LayerNormalization / SkipLayerNormalization (core/kernels/ops/layer_norm.cc) ----
// The CPU's row statistics (core/kernels/norm_rows.h): two passes in double, mean = sum(x) / n,
// var = sum((x - mean)^2) / n, inv = 1 / sqrt(var + eps); y = (x - mean) * inv * scale (+ bias)
// in double, rounded to float. x = a (+ b, in float, for SkipLayerNormalization, whose sum may be
// written out). The CPU's vectorized float32 row takes the statistics in float; double keeps rows
// far from zero (an offset of 1e4 loses three digits of the mean in float) and rows of huge values
// (whose squares overflow float) exact, at no cost to a kernel that waits on memory.

MS_HD int layer_norm_lanes(int64_t cols) { return cols <= 1024 ? kWarpLanes : kBlockLanes; }

struct NormRow {
  const float* a = nullptr;
  const float* b = nullptr;  // the skip input, or null
  float* y = nullptr;
  float* sum = nullptr;  // a + b written here when not null
  const float* scale = nullptr;
  const float* bias = nullptr;  // null: no bias
  int64_t n = 0;
};

MS_HD float norm_x(const NormRow& r, int64_t i) { return r.b ? r.a[i] + r.b[i] : r.a[i]; }

MS_HD double lane_norm_sum(const NormRow& r, int lane, int lanes) {
  double s = 0.0;
  for (int64_t i = lane; i < r.n; i += lanes) s += norm_x(r, i);
  return s;
}

MS_HD double lane_norm_sq(const NormRow& r, double mean, int lane, int lanes) {
  double s = 0.0;
  for (int64_t i = lane; i < r.n; i += lanes) {
    const double d = norm_x(r, i) - mean;
    s = fma(d, d, s);
  }
  return s;
}

MS_HD double norm_mean(double sum, int64_t n) { return n ? sum / static_cast<double>(n) : 0.0; }
MS_HD double norm_inv_std(double sq, int64_t n, float eps) {
  return 1.0 / sqrt((n ? sq / static_cast<double>(n) : 0.0) + static_cast<double>(eps));
}

MS_HD void lane_norm_out(const NormRow& r, double mean, double inv, int lane, int lanes) {
  for (int64_t i = lane; i < r.n; i += lanes) {
    const float x = norm_x(r, i);
    if (r.sum) r.sum[i] = x;
    const double d = (x - mean) * inv;
    r.y[i] = static_cast<float>(r.bias ? fma(d, static_cast<double>(r.scale[i]), static_cast<double>(r.bias[i]))
                                       : d * r.scale[i]);
  }
}

// One row on the host as the device computes it; its mean and 1 / std (as float) to *mean_out /
// *inv_out when they are not null.
inline void layer_norm_row(const NormRow& r, float eps, int lanes, float* mean_out, float* inv_out) {
  double p[kBlock];
  for (int l = 0; l < lanes; ++l) p[l] = lane_norm_sum(r, l, lanes);
  const double mean = norm_mean(combine_lanes(p, lanes, AddD()), r.n);
  for (int l = 0; l < lanes; ++l) p[l] = lane_norm_sq(r, mean, l, lanes);
  const double inv = norm_inv_std(combine_lanes(p, lanes, AddD()), r.n, eps);
  for (int l = 0; l < lanes; ++l) lane_norm_out(r, mean, inv, l, lanes);
  if (mean_out) *mean_out = static_cast<float>(mean);
  if (inv_out) *inv_out = static_cast<float>(inv);
}

// ---- ReduceSum / ReduceMean / ReduceMax / ReduceMin (core/kernels/ops/reduce.cc) ----
// Sums accumulate in double, as the CPU's; Max / Min propagate NaN. The input is viewed as runs
// of kept and reduced dims (size-1 dims dropped, neighbours of one kind merged), outermost first.

enum class ReduceKind : int { kSum, kMean, kMax, kMin };

constexpr int kMaxRank = 8;

struct ReducePlan {
  int nk = 0, nr = 0;
  int64_t ks[kMaxRank] = {}, kst[kMaxRank] = {};  // kept run sizes, input strides
  int64_t rs[kMaxRank] = {}, rst[kMaxRank] = {};  // reduced run sizes, input strides
  bool last_kept = true;                          // the innermost run is kept
  int64_t out_n = 1, red_n = 1;
};

// dims[0, rank) of the input; bit d of `mask` set when axis d is reduced.
inline ReducePlan make_reduce_plan(const int64_t* dims, int rank, uint32_t mask) {
  ReducePlan p;
  int64_t sz[kMaxRank];
  bool red[kMaxRank];
  int n = 0;
  for (int d = 0; d < rank; ++d) {
    const bool r = (mask >> d) & 1u;
    (r ? p.red_n : p.out_n) *= dims[d];
    if (dims[d] == 1) continue;
    if (n > 0 && red[n - 1] == r) {
      sz[n - 1] *= dims[d];
    } else {
      sz[n] = dims[d];
      red[n++] = r;
    }
  }
  int64_t st[kMaxRank];
  int64_t stride = 1;
  for (int i = n - 1; i >= 0; --i) {
    st[i] = stride;
    stride *= sz[i];
  }
  for (int i = 0; i < n; ++i) {  // outermost first
    if (red[i]) {
      p.rs[p.nr] = sz[i];
      p.rst[p.nr++] = st[i];
    } else {
      p.ks[p.nk] = sz[i];
      p.kst[p.nk++] = st[i];
    }
  }
  p.last_kept = n == 0 || !red[n - 1];
  return p;
}

// Input offset of element `idx` of the row-major index space sizes[0, n) with strides.
MS_HD int64_t offset_of(int64_t idx, int n, const int64_t* sizes, const int64_t* strides) {
  int64_t off = 0;
  for (int d = n - 1; d >= 0; --d) {
    off += (idx % sizes[d]) * strides[d];
    idx /= sizes[d];
  }
  return off;
}

// Lanes of one output: the outputs of a kept innermost run are neighbours in memory, so a
// thread each (the CPU's order); a contiguous reduced run is a row, for a warp or a block.
MS_HD int reduce_lanes(const ReducePlan& p) {
  if (p.last_kept) return kThread;
  return p.red_n <= 1024 ? kWarpLanes : kBlockLanes;
}

template <ReduceKind K>
struct Reducer {
  static constexpr bool kSum = K == ReduceKind::kSum || K == ReduceKind::kMean;
  using Acc = typename std::conditional<kSum, double, float>::type;
  MS_HD static Acc init() {
    if constexpr (K == ReduceKind::kMax) return -INFINITY;
    if constexpr (K == ReduceKind::kMin) return INFINITY;
    return Acc(0);
  }
  MS_HD static Acc op(Acc a, Acc v) {
    if constexpr (K == ReduceKind::kMax) return MaxNanF()(a, v);
    if constexpr (K == ReduceKind::kMin) return MinNanF()(a, v);
    return a + v;
  }
  MS_HD static float fin(Acc a, int64_t n) {
    if constexpr (K == ReduceKind::kMean) return static_cast<float>(a / static_cast<double>(n));
    return static_cast<float>(a);
  }
};

// Reducer<K>::op as a combining operator.
template <ReduceKind K>
struct ReduceOp {
  MS_HD typename Reducer<K>::Acc operator()(typename Reducer<K>::Acc a, typename Reducer<K>::Acc v) const {
    return Reducer<K>::op(a, v);
  }
};

// The lane's partial of output o when the innermost run is reduced: element e of the reduction
// is inner element e % inner of reduced run e / inner.
template <ReduceKind K>
MS_HD typename Reducer<K>::Acc lane_reduce(const float* x, const ReducePlan& p, int64_t o, int lane, int lanes) {
  using R = Reducer<K>;
  const float* xo = x + offset_of(o, p.nk, p.ks, p.kst);
  const int64_t inner = p.rs[p.nr - 1];
  typename R::Acc a = R::init();
  for (int64_t e = lane; e < p.red_n; e += lanes) {
    const int64_t q = e / inner;
    a = R::op(a, static_cast<typename R::Acc>(xo[offset_of(q, p.nr - 1, p.rs, p.rst) + (e - q * inner)]));
  }
  return a;
}

// Output o when the innermost run is kept: one thread, every reduced element in the CPU's order.
template <ReduceKind K>
MS_HD float reduce_kept(const float* x, const ReducePlan& p, int64_t o) {
  using R = Reducer<K>;
  const int64_t row = p.nk ? p.ks[p.nk - 1] : 1;
  const int64_t r = o / row;
  const float* xo = x + (p.nk ? offset_of(r, p.nk - 1, p.ks, p.kst) : 0) + (o - r * row);
  typename R::Acc a = R::init();
  for (int64_t q = 0; q < p.red_n; ++q) a = R::op(a, static_cast<typename R::Acc>(xo[offset_of(q, p.nr, p.rs, p.rst)]));
  return R::fin(a, p.red_n);
}

// Output o on the host, as the device computes it.
template <ReduceKind K>
inline float reduce_output(const float* x, const ReducePlan& p, int64_t o) {
  using R = Reducer<K>;
  const int lanes = reduce_lanes(p);
  if (lanes == kThread || p.red_n == 0) return reduce_kept<K>(x, p, o);
  typename R::Acc part[kBlock];
  for (int l = 0; l < lanes; ++l) part[l] = lane_reduce<K>(x, p, o, l, lanes);
  return R::fin(combine_lanes(part, lanes, ReduceOp<K>()), p.red_n);
}

}  // namespace mserve::gpu::rows
