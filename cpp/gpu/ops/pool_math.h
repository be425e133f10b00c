// Window arithmetic of the pools on the GPU (ops/pool.cu), shared with the host tests. No CUDA
// headers. The rules are the CPU's (kernels/ops/pool.cc, window_taps.h): output position o of
// an axis reads input positions o * s + kk * d - pb for the taps kk < k that land inside the
// input; padding never enters a max, and enters an average only with count_include_pad, then
// only as far as the explicit end padding reaches.
#pragma once
#include <cfloat>
#include <cstdint>

#include "gpu/ops/host_device.h"

namespace mserve::gpu {

// The geometry of one call, 3-D (index 0 outermost; fewer spatial dims have leading axes of
// size 1, kernel 1, stride 1), as the CPU's ConvGeometry.
struct PoolGeo {
  int64_t planes = 0;  // NCHW: N * C; NHWC: N (the channels are `channels`)
  int64_t channels = 1;
  int64_t in[3] = {1, 1, 1}, out[3] = {1, 1, 1}, k[3] = {1, 1, 1}, s[3] = {1, 1, 1}, d[3] = {1, 1, 1};
  int64_t pb[3] = {0, 0, 0}, pe[3] = {0, 0, 0};
  bool include_pad = false;
  MS_HD int64_t in_size() const { return in[0] * in[1] * in[2]; }
  MS_HD int64_t out_size() const { return out[0] * out[1] * out[2]; }
};

// Taps [lo, hi) of a window starting at `start` that land inside [0, n).
MS_HD void window_taps(int64_t start, int64_t d, int64_t k, int64_t n, int64_t* lo, int64_t* hi) {
  const int64_t l = start >= 0 ? 0 : (-start + d - 1) / d;
  int64_t h = n - start <= 0 ? 0 : (n - start + d - 1) / d;
  h = h < k ? h : k;
  *lo = l < h ? l : h;
  *hi = h;
}

// Taps of a window starting at `start` (>= -pad_begin) that land before n + pad_end.
MS_HD int64_t window_padded_taps(int64_t start, int64_t d, int64_t k, int64_t n, int64_t pe) {
  const int64_t room = n + pe - start;
  if (room <= 0) return 0;
  const int64_t t = (room + d - 1) / d;
  return t < k ? t : k;
}

// max with NaN winning (numpy's), or a sum.
template <bool kMax>
MS_HD float pool_combine(float acc, float v) {
  if constexpr (kMax) return (v > acc || v != v) ? v : acc;
  return acc + v;
}

// The pooled value at output (od, oh, ow) of one plane: element (id, ih, iw) of the plane is
// x[((id * in1 + ih) * in2 + iw) * step] (step 1 for NCHW, C for NHWC). Taps in order d, h, w.
template <bool kMax>
MS_HD float pool_window(const PoolGeo& g, const float* x, int64_t step, int64_t od, int64_t oh, int64_t ow) {
  const int64_t sd = od * g.s[0] - g.pb[0], sh = oh * g.s[1] - g.pb[1], sw = ow * g.s[2] - g.pb[2];
  int64_t dl, dh, hl, hh, wl, wh;
  window_taps(sd, g.d[0], g.k[0], g.in[0], &dl, &dh);
  window_taps(sh, g.d[1], g.k[1], g.in[1], &hl, &hh);
  window_taps(sw, g.d[2], g.k[2], g.in[2], &wl, &wh);
  float acc = kMax ? -FLT_MAX : 0.0f;
  for (int64_t kd = dl; kd < dh; ++kd) {
    const int64_t id = sd + kd * g.d[0];
    for (int64_t kh = hl; kh < hh; ++kh) {
      const float* row = x + (id * g.in[1] + sh + kh * g.d[1]) * g.in[2] * step;
      for (int64_t kw = wl; kw < wh; ++kw) acc = pool_combine<kMax>(acc, row[(sw + kw * g.d[2]) * step]);
    }
  }
  if constexpr (kMax) return acc;
  const int64_t count = g.include_pad ? window_padded_taps(sd, g.d[0], g.k[0], g.in[0], g.pe[0]) *
                                            window_padded_taps(sh, g.d[1], g.k[1], g.in[1], g.pe[1]) *
                                            window_padded_taps(sw, g.d[2], g.k[2], g.in[2], g.pe[2])
                                      : (dh - dl) * (hh - hl) * (wh - wl);
  return acc / static_cast<float>(count);  // a window wholly in padding averages to NaN, as on the CPU
}

// Output element i of an NCHW pool (y [planes, out...]).
template <bool kMax>
MS_HD float pool_nchw(const PoolGeo& g, const float* x, int64_t i) {
  const int64_t ow = i % g.out[2], r1 = i / g.out[2];
  const int64_t oh = r1 % g.out[1], r2 = r1 / g.out[1];
  const int64_t od = r2 % g.out[0], plane = r2 / g.out[0];
  return pool_window<kMax>(g, x + plane * g.in_size(), 1, od, oh, ow);
}

// Output element i of an NHWC pool (2-D: x [N, H, W, C], y [N, OH, OW, C]).
template <bool kMax>
MS_HD float pool_nhwc(const PoolGeo& g, const float* x, int64_t i) {
  const int64_t c = i % g.channels, r1 = i / g.channels;
  const int64_t ow = r1 % g.out[2], r2 = r1 / g.out[2];
  const int64_t oh = r2 % g.out[1], n = r2 / g.out[1];
  return pool_window<kMax>(g, x + n * g.in_size() * g.channels + c, g.channels, 0, oh, ow);
}

// Global pools: one warp per plane. Lane l combines elements l, l + 32, ... of the plane; the
// 32 partial results are then combined pairwise across lanes 16, 8, 4, 2, 1 apart (a butterfly:
// every lane ends with the same value). The host tests replay the same order.
constexpr int kPoolWarp = 32;

template <bool kMax>
MS_HD float global_lane_partial(const float* plane, int64_t len, int lane) {
  float acc = kMax ? -FLT_MAX : 0.0f;
  for (int64_t j = lane; j < len; j += kPoolWarp) acc = pool_combine<kMax>(acc, plane[j]);
  return acc;
}

// The butterfly's combination of a lane's value with the one `offset` lanes away, kept in the
// order the device uses (own value first).
template <bool kMax>
MS_HD float global_butterfly(float own, float other) {
  return pool_combine<kMax>(own, other);
}

template <bool kMax>
MS_HD float global_finish(float reduced, int64_t len) {
  return kMax ? reduced : reduced / static_cast<float>(len);  // an empty plane averages to NaN
}

}  // namespace mserve::gpu
