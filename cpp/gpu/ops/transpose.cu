#include "gpu/ops/transpose.h"

#include <cuda_runtime.h>

namespace mserve::gpu {
namespace {

constexpr int kThreads = 256;

// A grid-stride loop over the output; 32-bit indices where they fit (see strided_source).
template <class W, class I>
__global__ void strided_copy_kernel(StridedMap m, const W* __restrict__ src, W* __restrict__ dst, I n) {
  const I stride = static_cast<I>(gridDim.x) * blockDim.x;
  for (I i = static_cast<I>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride)
    dst[i] = src[strided_source<I>(m, i)];
}

unsigned grid_for(int64_t n) {
  const int64_t blocks = (n + kThreads - 1) / kThreads;
  return static_cast<unsigned>(blocks < 65536 ? blocks : 65536);
}

template <class W>
int strided_copy(const StridedMap& m, const void* src, void* dst, cudaStream_t stream) {
  const int64_t n = m.numel();
  if (n <= 0) return cudaSuccess;
  const W* s = static_cast<const W*>(src);
  W* d = static_cast<W*>(dst);
  // The grid-stride loop adds at most 2^31 to an index below 2^31: no uint32 overflow.
  if (n < (int64_t{1} << 31))
    strided_copy_kernel<W, uint32_t><<<grid_for(n), kThreads, 0, stream>>>(m, s, d, static_cast<uint32_t>(n));
  else
    strided_copy_kernel<W, int64_t><<<grid_for(n), kThreads, 0, stream>>>(m, s, d, n);
  return static_cast<int>(cudaGetLastError());
}

// One block per tile (grid-stride over tiles): kTransposeTile x kTransposeTileRows threads read the tile row by
// row (coalesced along C), then write it column by column (coalesced along R). The padding
// column keeps the column reads free of shared-memory bank conflicts.
template <class T>
__global__ void transpose_tiles_kernel(const T* __restrict__ in, T* __restrict__ out, int64_t B, int64_t R, int64_t C) {
  __shared__ T tile[kTransposeTile][kTransposeTile + 1];
  const int64_t ntiles = B * tiles_along(R) * tiles_along(C);
  const int tx = threadIdx.x, ty = threadIdx.y;
  for (int64_t t = blockIdx.x; t < ntiles; t += gridDim.x) {
    const TileCoords tc = tile_coords(t, R, C);
    for (int k = ty; k < kTransposeTile; k += kTransposeTileRows) {
      const int64_t r = tc.r0 + k, c = tc.c0 + tx;
      if (r < R && c < C) tile[k][tx] = in[tile_in_offset(R, C, tc.b, r, c)];
    }
    __syncthreads();
    for (int k = ty; k < kTransposeTile; k += kTransposeTileRows) {
      const int64_t c = tc.c0 + k, r = tc.r0 + tx;
      if (r < R && c < C) out[tile_out_offset(R, C, tc.b, r, c)] = tile[tx][k];
    }
    __syncthreads();  // the next tile overwrites this one
  }
}

template <class T>
int transpose_tiles(int64_t B, int64_t R, int64_t C, const void* src, void* dst, cudaStream_t stream) {
  const int64_t ntiles = B * tiles_along(R) * tiles_along(C);
  if (ntiles <= 0) return cudaSuccess;
  const unsigned grid = static_cast<unsigned>(ntiles < (1 << 20) ? ntiles : (1 << 20));
  transpose_tiles_kernel<T><<<grid, dim3(kTransposeTile, kTransposeTileRows), 0, stream>>>(
      static_cast<const T*>(src), static_cast<T*>(dst), B, R, C);
  return static_cast<int>(cudaGetLastError());
}

}  // namespace

int launch_strided_copy(const StridedMap& map, int word, const void* src, void* dst, void* stream) {
  const auto s = static_cast<cudaStream_t>(stream);
  switch (word) {
    case 1: return strided_copy<uint8_t>(map, src, dst, s);
    case 2: return strided_copy<uint16_t>(map, src, dst, s);
    case 4: return strided_copy<uint32_t>(map, src, dst, s);
    case 8: return strided_copy<uint64_t>(map, src, dst, s);
    case 16: return strided_copy<uint4>(map, src, dst, s);
    default: return static_cast<int>(cudaErrorInvalidValue);
  }
}

int launch_transpose_tiles(int64_t B, int64_t R, int64_t C, int esize, const void* src, void* dst, void* stream) {
  const auto s = static_cast<cudaStream_t>(stream);
  switch (esize) {
    case 1: return transpose_tiles<uint8_t>(B, R, C, src, dst, s);
    case 2: return transpose_tiles<uint16_t>(B, R, C, src, dst, s);
    case 4: return transpose_tiles<uint32_t>(B, R, C, src, dst, s);
    case 8: return transpose_tiles<uint64_t>(B, R, C, src, dst, s);
    default: return static_cast<int>(cudaErrorInvalidValue);
  }
}

}  // namespace mserve::gpu
