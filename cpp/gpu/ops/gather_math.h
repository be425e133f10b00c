// Gather's index arithmetic, shared by ops/gather.cu and the host tests. No CUDA headers.
//
// data [outer, size, inner] (axis in the middle) and indices of n entries give out [outer, n,
// inner]; the kernel moves words of `inner` (a whole block of `inner` elements split into words
// of up to 16 bytes), output word t reading the data word gather_source(g, t, indices[slot]).
#pragma once
#include <cstdint>

#include "gpu/ops/host_device.h"

namespace mserve::gpu {

struct GatherGeo {
  int64_t outer = 1;  // product of data dims before the axis
  int64_t size = 0;   // data dim at the axis
  int64_t nidx = 0;   // number of indices
  int64_t inner = 1;  // words per gathered block (data dims after the axis, in words)
};

// An index in [-size, size) normalized to [0, size); -1 for anything else (the device flag's
// kIndexOutOfRange).
MS_HD int64_t gather_index(int64_t v, int64_t size) {
  if (v < -size || v >= size) return -1;
  return v < 0 ? v + size : v;
}

// Which index output word t reads.
template <class I>
MS_HD I gather_slot(const GatherGeo& g, I t) {
  return t / static_cast<I>(g.inner) % static_cast<I>(g.nidx);
}

// The data word output word t copies, given the raw index value `v` of its slot; -1 when v is
// out of range (nothing may be read then).
template <class I>
MS_HD int64_t gather_source(const GatherGeo& g, I t, int64_t v) {
  const int64_t j = gather_index(v, g.size);
  if (j < 0) return -1;
  const I inner = static_cast<I>(g.inner);
  const I q = t / inner;
  const I k = t - q * inner;
  const int64_t o = static_cast<int64_t>(q / static_cast<I>(g.nidx));
  return (o * g.size + j) * g.inner + static_cast<int64_t>(k);
}

// The widest word (bytes, at most 16) that divides the block of `block_bytes` and both base
// addresses.
inline int gather_word(int64_t block_bytes, uint64_t src_addr, uint64_t dst_addr) {
  for (int w = 16; w > 1; w /= 2)
    if (block_bytes % w == 0 && src_addr % w == 0 && dst_addr % w == 0) return w;
  return 1;
}

}  // namespace mserve::gpu
