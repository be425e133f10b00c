#include "core/kernels/int8_window.h"

#include <algorithm>

#include "core/kernels/isa/isa.h"

namespace mserve {

Int8Window Int8Window::around(int32_t x_zero, bool x_signed) {
  Int8Window w;
  w.flip = x_signed;
  const int32_t z = x_signed ? x_zero + 128 : x_zero;
  w.lo = std::clamp(z - 64, 0, 128);
  w.zero = z - w.lo;
  return w;
}

std::vector<int64_t> outside_weight_strides(int64_t M, int64_t Cg, int64_t group, int64_t kh, int64_t kw) {
  const int64_t Mg = M / group;
  // dims [M, Cg, kh, kw], or [group, Mg, Cg, kh, kw] when grouped
  std::vector<int64_t> s = {1, Mg, kw * Cg * Mg, Cg * Mg};
  if (group > 1) s.insert(s.begin(), kh * kw * Cg * Mg);
  return s;
}

std::vector<int8_t> outside_weights(const int8_t* w, int64_t M, int64_t Cg, int64_t group, int64_t kh, int64_t kw) {
  const int64_t Mg = M / group;
  std::vector<int8_t> t(static_cast<size_t>(M * Cg * kh * kw));
  for (int64_t m = 0; m < M; ++m) {
    const int64_t g = m / Mg, mg = m % Mg;
    for (int64_t c = 0; c < Cg; ++c)
      for (int64_t i = 0; i < kh; ++i)
        for (int64_t j = 0; j < kw; ++j)
          t[(((g * kh + i) * kw + j) * Cg + c) * Mg + mg] = w[((m * Cg + c) * kh + i) * kw + j];
  }
  return t;
}

void add_outside(const Int8WindowConv& g, const Int8Window& win, const uint8_t* x, const uint8_t* flags,
                 const int8_t* wt, int64_t oh0, int64_t oh1, int32_t* acc) {
  const int64_t Cg = g.C / g.group, Mg = g.M / g.group;
  std::vector<int32_t> channel(static_cast<size_t>(g.C)), excess(static_cast<size_t>(g.C));  // one pixel's
  for (int64_t oh = oh0; oh < oh1; ++oh)
    for (int64_t i = 0; i < g.k[0]; ++i) {
      const int64_t ih = oh * g.s[0] - g.pb[0] + i * g.d[0];
      if (ih < 0 || ih >= g.H) continue;
      for (int64_t iw = 0; iw < g.W; ++iw) {
        if (!flags[ih * g.W + iw]) continue;
        const int64_t n =
            outside_window(x + (ih * g.W + iw) * g.C, g.C, win.flip, win.lo, channel.data(), excess.data());
        for (int64_t j = 0; j < g.k[1]; ++j) {
          const int64_t at = iw + g.pb[1] - j * g.d[1];  // ow * s
          if (at < 0 || at % g.s[1] != 0 || at / g.s[1] >= g.OW) continue;
          int32_t* a = acc + (oh * g.OW + at / g.s[1]) * g.M;
          for (int64_t t = 0; t < n; ++t) {
            const int64_t grp = channel[t] / Cg;
            add_scaled_int8(a + grp * Mg, wt + (((grp * g.k[0] + i) * g.k[1] + j) * Cg + channel[t] % Cg) * Mg,
                            excess[t], Mg);
          }
        }
      }
    }
}

}  // namespace mserve
