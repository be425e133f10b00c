// Byte-moving helpers shared by the slicing/padding/tiling kernels (slice_tile.cc, pad.cc),
// Transpose and Dropout (shape_ops.cc) and the generators (generate.cc).
#pragma once
#include <cstdint>

#include "core/kernels/kernel.h"

namespace mserve {

// A strided view of a source: dims (outermost first) and the source stride of each, in bytes
// (negative and zero strides allowed). Up to twice the max rank, so Tile can split every axis
// into (repeat, dim).
struct StridedView {
  static constexpr int kMaxDims = 2 * Shape::kMaxRank;
  int nd = 0;
  int64_t dims[kMaxDims];
  int64_t strides[kMaxDims];
  void push(int64_t d, int64_t s) {
    dims[nd] = d;
    strides[nd] = s;
    ++nd;
  }
};

// Copies the elements of `view` over `src` (row-major over view.dims) contiguously into `dst`.
// Elements of any size: those of 1, 2, 4, 8 and 16 bytes move as words, others byte-wise (a
// caller may merge a contiguous run of elements into one). Never allocates.
void strided_copy(const char* src, char* dst, const StridedView& view, size_t esize, ThreadPool& pool);
// The same for elements of `dtype`: std::string assignment for kString (strides still in bytes),
// strided_copy with dtype_size(dtype) otherwise.
void strided_copy(const char* src, char* dst, const StridedView& view, DType dtype, ThreadPool& pool);

// Fills `n` elements of `dst` with the `esize`-byte value at `v` (esize 1, 2, 4 or 8).
void fill_bytes(void* dst, int64_t n, const void* v, size_t esize, ThreadPool& pool);

// Reads a 1-D (or scalar) int32/int64 tensor into `out` (capacity `cap`) without allocating.
// Returns the count, or -1 when the tensor is not integer or too long.
int read_ints_fixed(const Tensor& t, int64_t* out, int cap);

}  // namespace mserve
