// NHWC pooling rows for one instruction set (see isa.h): each window is a max or sum of whole
// channel rows, a loop over C the compiler vectorizes for this variant's registers.
#include <limits>

#include "core/kernels/isa/isa.h"
#include "core/kernels/window_taps.h"

namespace mserve::MSERVE_ISA {

template <class T>
void nhwc_pool_rows(const NhwcPoolGeo& g, const T* x, T* y, int64_t q0, int64_t q1) {
  const int64_t C = g.C;
  for (int64_t q = q0; q < q1; ++q) {
    const int64_t n = q / g.OH, oh = q % g.OH;
    const int64_t sh = oh * g.s[0] - g.pb[0];
    int64_t h_lo, h_hi;
    taps(sh, g.d[0], g.k[0], g.H, &h_lo, &h_hi);
    for (int64_t ow = 0; ow < g.OW; ++ow) {
      const int64_t sw = ow * g.s[1] - g.pb[1];
      int64_t w_lo, w_hi;
      taps(sw, g.d[1], g.k[1], g.W, &w_lo, &w_hi);
      T* o = y + ((n * g.OH + oh) * g.OW + ow) * C;
      const T init = g.max ? std::numeric_limits<T>::lowest() : T(0);
      for (int64_t c = 0; c < C; ++c) o[c] = init;
      for (int64_t kh = h_lo; kh < h_hi; ++kh) {
        const T* row = x + ((n * g.H + sh + kh * g.d[0]) * g.W) * C;
        for (int64_t kw = w_lo; kw < w_hi; ++kw) {
          const T* p = row + (sw + kw * g.d[1]) * C;
          if (g.max) {
            for (int64_t c = 0; c < C; ++c) o[c] = (p[c] > o[c] || p[c] != p[c]) ? p[c] : o[c];  // NaN wins
          } else {
            for (int64_t c = 0; c < C; ++c) o[c] += p[c];
          }
        }
      }
      if (!g.max) {
        const int64_t count = g.count_include_pad ? padded_taps(sh, g.d[0], g.k[0], g.H, g.pe[0]) *
                                                        padded_taps(sw, g.d[1], g.k[1], g.W, g.pe[1])
                                                  : (h_hi - h_lo) * (w_hi - w_lo);
        const T inv = T(1) / static_cast<T>(count);
        for (int64_t c = 0; c < C; ++c) o[c] *= inv;
      }
    }
  }
}
template void nhwc_pool_rows<float>(const NhwcPoolGeo&, const float*, float*, int64_t, int64_t);
template void nhwc_pool_rows<double>(const NhwcPoolGeo&, const double*, double*, int64_t, int64_t);

}  // namespace mserve::MSERVE_ISA
