// Index arithmetic of Concat, Split, Slice, Pad, Expand and Tile on the GPU (ops/concat_slice.cu),
// shared with the host tests. No CUDA headers. Slice, Expand and Tile are strided copies
// (transpose_math.h's StridedMap); Concat and Split move pitched blocks; Pad has its own walk.
#pragma once
#include <cstdint>

#include "gpu/ops/host_device.h"
#include "gpu/ops/transpose_math.h"

namespace mserve::gpu {

// ----------------------------------------------------------------------------------- Slice

// One axis of a slice, with the ONNX clamping rules (the CPU's make_slice_spec): the first
// element taken and how many. step != 0.
struct SliceAxis {
  int64_t start = 0, len = 0;
};

MS_HD SliceAxis slice_axis(int64_t dim, int64_t start, int64_t end, int64_t step) {
  int64_t s = start < 0 ? start + dim : start;
  int64_t e = end < 0 ? end + dim : end;
  SliceAxis a;
  if (step > 0) {
    s = s < 0 ? 0 : (s > dim ? dim : s);
    e = e < 0 ? 0 : (e > dim ? dim : e);
    a.len = e > s ? (e - s - 1) / step + 1 : 0;
  } else {
    const int64_t top = dim - 1 > 0 ? dim - 1 : 0;
    s = s < 0 ? 0 : (s > top ? top : s);
    e = e < -1 ? -1 : (e > dim - 1 ? dim - 1 : e);
    a.len = s > e && dim > 0 ? (s - e - 1) / -step + 1 : 0;
  }
  a.start = s;
  return a;
}

// The strided map (in elements) of a slice of a contiguous [dims] source: per axis its start,
// step and length. Not simplified.
inline StridedMap slice_map(int rank, const int64_t* dims, const int64_t* start, const int64_t* step,
                            const int64_t* len) {
  StridedMap m;
  m.nd = rank;
  int64_t stride = 1;
  for (int d = rank - 1; d >= 0; --d) {
    m.offset += start[d] * stride;
    m.dims[d] = len[d];
    m.strides[d] = step[d] * stride;
    stride *= dims[d];
  }
  return m;
}

// ---------------------------------------------------------------------------- Expand, Tile

// Expand: the source [in_dims] (rank in_rank <= out_rank) broadcast to [out_dims], aligned at
// the last dim; a dim of 1 repeats (stride 0).
inline StridedMap expand_map(int in_rank, const int64_t* in_dims, int out_rank, const int64_t* out_dims) {
  StridedMap m;
  m.nd = out_rank;
  int64_t stride = 1;
  for (int d = out_rank - 1; d >= 0; --d) {
    const int i = d - (out_rank - in_rank);
    const int64_t n = i >= 0 ? in_dims[i] : 1;
    m.dims[d] = out_dims[d];
    m.strides[d] = n == 1 ? 0 : stride;
    stride *= n;
  }
  return m;
}

// Tile: each dim of [in_dims] becomes (repeat, dim), the repeat with stride 0. Simplified;
// false when more than StridedMap::kMaxDims dims remain (a tile of more than 4 dims that
// repeats along every one of them). Precondition: no dim or repeat is 0.
inline bool tile_map(int rank, const int64_t* in_dims, const int64_t* repeats, StridedMap* out) {
  int64_t dims[2 * StridedMap::kMaxDims], strides[2 * StridedMap::kMaxDims];
  int n = 0;
  int64_t stride = 1;
  int64_t st[StridedMap::kMaxDims];
  for (int d = rank - 1; d >= 0; --d) {
    st[d] = stride;
    stride *= in_dims[d];
  }
  for (int d = 0; d < rank; ++d) {
    if (repeats[d] != 1) dims[n] = repeats[d], strides[n++] = 0;
    if (in_dims[d] != 1) dims[n] = in_dims[d], strides[n++] = st[d];
  }
  // Merge as simplify does, before the dims have to fit the map.
  int k = 0;
  for (int d = 0; d < n; ++d) {
    if (k > 0 && strides[k - 1] == dims[d] * strides[d]) {
      dims[k - 1] *= dims[d];
      strides[k - 1] = strides[d];
    } else {
      dims[k] = dims[d];
      strides[k] = strides[d];
      ++k;
    }
  }
  if (k > StridedMap::kMaxDims) return false;
  *out = StridedMap();
  for (int d = 0; d < k; ++d) out->push(dims[d], strides[d]);
  return true;
}

// ---------------------------------------------------------------------------- Concat, Split

// A block of `rows` rows of `width` words, row r at src + r * src_pitch and dst + r * dst_pitch
// (words). Concat input i: rows = the product of the dims before the axis, width = its
// extent along the axis times the dims after it, src_pitch = width, dst_pitch = the output's
// row, dst = the output + the extents of the inputs before it. Split is the mirror image.
struct Pitched {
  int64_t rows = 0, width = 0, src_pitch = 0, dst_pitch = 0;
  int64_t src_offset = 0, dst_offset = 0;
};

// Word t of the block: its source and destination word offsets.
template <class I>
MS_HD void pitched_offsets(const Pitched& p, I t, int64_t* src, int64_t* dst) {
  const I w = static_cast<I>(p.width);
  const I r = t / w;
  const int64_t c = static_cast<int64_t>(t - r * w);
  *src = p.src_offset + static_cast<int64_t>(r) * p.src_pitch + c;
  *dst = p.dst_offset + static_cast<int64_t>(r) * p.dst_pitch + c;
}

// The block in bytes -> in the widest words (<= 16 bytes) every length and address allows.
inline int pitched_words(Pitched& p, uint64_t src_addr, uint64_t dst_addr) {
  int w = 16;
  for (; w > 1; w /= 2)
    if (p.width % w == 0 && p.src_pitch % w == 0 && p.dst_pitch % w == 0 && p.src_offset % w == 0 &&
        p.dst_offset % w == 0 && src_addr % w == 0 && dst_addr % w == 0)
      break;
  p.width /= w;
  p.src_pitch /= w;
  p.dst_pitch /= w;
  p.src_offset /= w;
  p.dst_offset /= w;
  return w;
}

// Concat (split false) or Split (true) part: the part has `part` elements along the axis, starts
// at `at` along the axis of the whole, which has `whole`; outer and inner_bytes as the dims
// before and after the axis (inner in bytes). In bytes.
inline Pitched concat_part(int64_t outer, int64_t inner_bytes, int64_t whole, int64_t at, int64_t part, bool split) {
  Pitched p;
  p.rows = outer;
  p.width = part * inner_bytes;
  const int64_t whole_row = whole * inner_bytes, offset = at * inner_bytes;
  p.src_pitch = split ? whole_row : p.width;
  p.dst_pitch = split ? p.width : whole_row;
  p.src_offset = split ? offset : 0;
  p.dst_offset = split ? 0 : offset;
  return p;
}

// ------------------------------------------------------------------------------------- Pad

enum PadMode : int { kPadConstant = 0, kPadReflect = 1, kPadEdge = 2, kPadWrap = 3 };

// Per axis (outermost first): the kept input range [lo, lo + n), the padding before it, the
// output extent and the input's stride (elements). Negative pads crop (lo, n); the other modes
// then pad the kept part, as the CPU kernel does.
struct PadMap {
  static constexpr int kMaxDims = StridedMap::kMaxDims;
  int nd = 0;
  int mode = kPadConstant;
  int64_t lo[kMaxDims] = {}, n[kMaxDims] = {}, before[kMaxDims] = {}, out[kMaxDims] = {}, stride[kMaxDims] = {};
  int64_t numel() const {
    int64_t k = 1;
    for (int d = 0; d < nd; ++d) k *= out[d];
    return k;
  }
};

// The input index along one axis of output index o, or -1 for the constant. reflect and wrap
// repeat periodically when a pad is longer than the axis.
MS_HD int64_t pad_source_index(int mode, int64_t lo, int64_t n, int64_t before, int64_t o) {
  int64_t i = o - before;
  if (i >= 0 && i < n) return lo + i;
  if (mode == kPadConstant || n == 0) return -1;
  if (mode == kPadEdge) {
    i = i < 0 ? 0 : n - 1;
  } else if (mode == kPadReflect) {
    if (n == 1) {
      i = 0;
    } else {
      const int64_t p = 2 * (n - 1);
      i = ((i % p) + p) % p;
      if (i >= n) i = p - i;
    }
  } else {
    i = ((i % n) + n) % n;
  }
  return lo + i;
}

// The input element of output element i, or -1 for the constant.
template <class I>
MS_HD int64_t pad_source(const PadMap& m, I i) {
  int64_t off = 0;
  bool constant = false;
  MS_UNROLL
  for (int d = PadMap::kMaxDims - 1; d >= 0; --d) {
    if (d < m.nd) {
      const I dim = static_cast<I>(m.out[d]);
      const I q = i / dim;
      const int64_t s = pad_source_index(m.mode, m.lo[d], m.n[d], m.before[d], static_cast<int64_t>(i - q * dim));
      constant = constant || s < 0;
      off += s * m.stride[d];
      i = q;
    }
  }
  return constant ? -1 : off;
}

// The pads of each axis (begin, end) of a contiguous [dims] source; false (with *bad the axis)
// when the crop removes more than the axis holds or a non-constant mode would pad an emptied
// axis (the CPU kernel's errors).
inline bool make_pad_map(int rank, const int64_t* dims, const int64_t* pad_begin, const int64_t* pad_end, int mode,
                         PadMap* m, int* bad) {
  *m = PadMap();
  m->nd = rank;
  m->mode = mode;
  int64_t stride = 1;
  for (int d = rank - 1; d >= 0; --d) {
    m->stride[d] = stride;
    stride *= dims[d];
  }
  for (int d = 0; d < rank; ++d) {
    const int64_t crop_b = pad_begin[d] < 0 ? -pad_begin[d] : 0, crop_e = pad_end[d] < 0 ? -pad_end[d] : 0;
    m->lo[d] = crop_b;
    m->n[d] = dims[d] - crop_b - crop_e;
    m->before[d] = pad_begin[d] > 0 ? pad_begin[d] : 0;
    m->out[d] = dims[d] + pad_begin[d] + pad_end[d];
    if (m->n[d] < 0 || m->out[d] < 0 || (mode != kPadConstant && m->n[d] == 0 && m->out[d] > 0)) {
      *bad = d;
      return false;
    }
  }
  return true;
}

}  // namespace mserve::gpu
