// Which taps of a pooling / convolution window land inside the input (pool.cc and its per-ISA
// NHWC rows, kernels/isa/variant_pool.cc).
#pragma once
#include <algorithm>
#include <cstdint>

namespace mserve {

// Kernel taps [lo, hi) of a window starting at `start` that land inside [0, in).
inline void taps(int64_t start, int64_t d, int64_t k, int64_t in, int64_t* lo, int64_t* hi) {
  int64_t l = start >= 0 ? 0 : (-start + d - 1) / d;
  int64_t h = in - start <= 0 ? 0 : std::min(k, (in - start + d - 1) / d);
  *lo = std::min(l, h);
  *hi = h;
}

// Taps of a window starting at `start` (>= -pad_begin) that land before in + pad_end.
inline int64_t padded_taps(int64_t start, int64_t d, int64_t k, int64_t in, int64_t pe) {
  const int64_t room = in + pe - start;
  return room <= 0 ? 0 : std::min(k, (room + d - 1) / d);
}

}  // namespace mserve
