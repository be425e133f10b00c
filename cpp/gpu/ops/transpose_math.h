// Index arithmetic of the strided copies (Transpose, Slice, Expand, Tile) and of Transpose's
// tiled kernel, shared by the kernels in ops/transpose.cu and ops/concat_slice.cu and the host
// tests. No CUDA headers: nvcc and g++ both compile it.
//
// A copy writes its output contiguously, word by word; output word i reads the source word
// strided_source(map, i). The planning functions (simplify, widen, plan_transpose) run on the
// host when a kernel is launched; only strided_source and the tile coordinates run on the device.
#pragma once
#include <cstdint>

#include "gpu/ops/host_device.h"

#if defined(__CUDA_ARCH__)
#define MS_UNROLL _Pragma("unroll")
#else
#define MS_UNROLL
#endif

namespace mserve::gpu {

// Dims of a strided view, outermost first; strides and offset in words (negative and zero
// strides allowed). As many dims as a Shape may have: the device loop over them is unrolled,
// so the kernel reads them from its parameters and never indexes them at run time.
struct StridedMap {
  static constexpr int kMaxDims = 8;
  int nd = 0;
  int64_t offset = 0;
  int64_t dims[kMaxDims] = {};
  int64_t strides[kMaxDims] = {};
  void push(int64_t d, int64_t s) {
    dims[nd] = d;
    strides[nd] = s;
    ++nd;
  }
  int64_t numel() const {
    int64_t n = 1;
    for (int d = 0; d < nd; ++d) n *= dims[d];
    return n;
  }
};

// The source word of output word i. I is the index type of the division chain: uint32_t where
// the output has fewer than 2^31 words (64-bit divisions cost several times more on the GPU).
template <class I>
MS_HD int64_t strided_source(const StridedMap& m, I i) {
  int64_t off = m.offset;
  MS_UNROLL
  for (int d = StridedMap::kMaxDims - 1; d >= 0; --d) {
    if (d < m.nd) {
      const I dim = static_cast<I>(m.dims[d]);
      const I q = i / dim;
      off += static_cast<int64_t>(i - q * dim) * m.strides[d];
      i = q;
    }
  }
  return off;
}

// Drops dims of size 1 and merges neighbours that walk the source as one dim (the outer's
// stride is the inner's extent): NCHW -> NHWC of [N, C, H, W] becomes a 3-D [N, HW, C] walk.
// Precondition: no dim is 0 (an empty copy is not launched).
inline void simplify(StridedMap& m) {
  int n = 0;
  for (int d = 0; d < m.nd; ++d) {
    if (m.dims[d] == 1) continue;
    if (n > 0 && m.strides[n - 1] == m.dims[d] * m.strides[d]) {
      m.dims[n - 1] *= m.dims[d];
      m.strides[n - 1] = m.strides[d];
    } else {
      m.dims[n] = m.dims[d];
      m.strides[n] = m.strides[d];
      ++n;
    }
  }
  m.nd = n;
}

// A map in elements of `esize` bytes (1, 2, 4 or 8) becomes one in words of the returned size:
// when the innermost dim is contiguous, as many of its elements as fit in 16 bytes move as one
// word, provided every stride, the offset and both base addresses stay aligned to it.
inline int widen(StridedMap& m, int esize, uint64_t src_addr, uint64_t dst_addr) {
  if (m.nd == 0 || m.strides[m.nd - 1] != 1) return esize;
  const int last = m.nd - 1;
  for (int w = 16; w > esize; w /= 2) {
    const int64_t k = w / esize;  // elements per word
    bool ok = m.dims[last] % k == 0 && m.offset % k == 0 && src_addr % w == 0 && dst_addr % w == 0;
    for (int d = 0; ok && d < last; ++d) ok = m.strides[d] % k == 0;
    if (!ok) continue;
    m.dims[last] /= k;
    m.offset /= k;
    for (int d = 0; d < last; ++d) m.strides[d] /= k;
    return w;
  }
  return esize;
}

// ------------------------------------------------------------------------------- Transpose

// How a transpose runs: a plain copy (the permutation keeps the order of every dim longer than
// 1), a batched matrix transpose [B, R, C] -> [B, C, R] in 32x32 tiles, or a strided copy.
struct TransposePlan {
  enum Kind { kCopy, kTiles, kStrided } kind = kCopy;
  int64_t B = 1, R = 1, C = 1;  // kTiles
  StridedMap map;               // kStrided, in elements
};

// out dim i walks input dim perm[i]. Precondition: no dim is 0, rank <= StridedMap::kMaxDims.
inline TransposePlan plan_transpose(int rank, const int64_t* in_dims, const int* perm) {
  int64_t stride[StridedMap::kMaxDims];
  int64_t s = 1;
  for (int d = rank - 1; d >= 0; --d) {
    stride[d] = s;
    s *= in_dims[d];
  }
  TransposePlan p;
  for (int i = 0; i < rank; ++i) p.map.push(in_dims[perm[i]], stride[perm[i]]);
  simplify(p.map);
  const StridedMap& m = p.map;
  if (m.nd <= 1) {
    p.kind = TransposePlan::kCopy;  // a merged permutation of contiguous dims is contiguous
  } else if (m.nd == 2 && m.strides[0] == 1 && m.strides[1] == m.dims[0]) {
    p.kind = TransposePlan::kTiles;  // out [C, R] of in [R, C]
    p.C = m.dims[0];
    p.R = m.dims[1];
  } else if (m.nd == 3 && m.strides[1] == 1 && m.strides[2] == m.dims[1] && m.strides[0] == m.dims[1] * m.dims[2]) {
    p.kind = TransposePlan::kTiles;  // out [B, C, R] of in [B, R, C]
    p.B = m.dims[0];
    p.C = m.dims[1];
    p.R = m.dims[2];
  } else {
    p.kind = TransposePlan::kStrided;
  }
  return p;
}

// The tiled kernel: tile t of a [B, R, C] input covers rows [r0, r0 + 32) and columns
// [c0, c0 + 32) of matrix b. Tiles run column-fastest so neighbouring blocks read neighbouring
// input rows.
constexpr int kTransposeTile = 32;
constexpr int kTransposeTileRows =
    8;  // threads per tile column: each thread moves kTransposeTile / kTransposeTileRows elements

struct TileCoords {
  int64_t b, r0, c0;
};

MS_HD int64_t tiles_along(int64_t n) { return (n + kTransposeTile - 1) / kTransposeTile; }

MS_HD TileCoords tile_coords(int64_t t, int64_t R, int64_t C) {
  const int64_t tr = tiles_along(R), tc = tiles_along(C);
  const int64_t b = t / (tr * tc), rest = t - b * tr * tc;
  return TileCoords{b, rest / tc * kTransposeTile, rest % tc * kTransposeTile};
}

// Offsets of element (r, c) of matrix b in the input [B, R, C] and of its image in the output
// [B, C, R].
MS_HD int64_t tile_in_offset(int64_t R, int64_t C, int64_t b, int64_t r, int64_t c) { return (b * R + r) * C + c; }
MS_HD int64_t tile_out_offset(int64_t R, int64_t C, int64_t b, int64_t r, int64_t c) { return (b * C + c) * R + r; }

}  // namespace mserve::gpu
