#include "gpu/ops/concat_slice.h"

#include <cuda_runtime.h>

#include <cstring>

namespace mserve::gpu {
namespace {

constexpr int kThreads = 256;

unsigned grid_for(int64_t n) {
  const int64_t blocks = (n + kThreads - 1) / kThreads;
  return static_cast<unsigned>(blocks < 65536 ? blocks : 65536);
}

template <class W, class I>
__global__ void pitched_copy_kernel(Pitched p, const W* __restrict__ src, W* __restrict__ dst, I n) {
  const I stride = static_cast<I>(gridDim.x) * blockDim.x;
  for (I t = static_cast<I>(blockIdx.x) * blockDim.x + threadIdx.x; t < n; t += stride) {
    int64_t s, d;
    pitched_offsets<I>(p, t, &s, &d);
    dst[d] = src[s];
  }
}

template <class W>
int pitched_copy(const Pitched& p, const void* src, void* dst, cudaStream_t stream) {
  const int64_t n = p.rows * p.width;
  if (n <= 0) return cudaSuccess;
  const W* s = static_cast<const W*>(src);
  W* d = static_cast<W*>(dst);
  if (n < (int64_t{1} << 31))
    pitched_copy_kernel<W, uint32_t><<<grid_for(n), kThreads, 0, stream>>>(p, s, d, static_cast<uint32_t>(n));
  else
    pitched_copy_kernel<W, int64_t><<<grid_for(n), kThreads, 0, stream>>>(p, s, d, n);
  return static_cast<int>(cudaGetLastError());
}

template <class W, class I>
__global__ void pad_kernel(PadMap m, const W* __restrict__ src, W* __restrict__ dst, W value, I n) {
  const I stride = static_cast<I>(gridDim.x) * blockDim.x;
  for (I i = static_cast<I>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    const int64_t s = pad_source<I>(m, i);
    dst[i] = s < 0 ? value : src[s];
  }
}

template <class W>
int pad(const PadMap& m, const void* src, void* dst, const void* value, cudaStream_t stream) {
  const int64_t n = m.numel();
  if (n <= 0) return cudaSuccess;
  W v;
  std::memcpy(&v, value, sizeof(W));
  const W* s = static_cast<const W*>(src);
  W* d = static_cast<W*>(dst);
  if (n < (int64_t{1} << 31))
    pad_kernel<W, uint32_t><<<grid_for(n), kThreads, 0, stream>>>(m, s, d, v, static_cast<uint32_t>(n));
  else
    pad_kernel<W, int64_t><<<grid_for(n), kThreads, 0, stream>>>(m, s, d, v, n);
  return static_cast<int>(cudaGetLastError());
}

}  // namespace

int launch_pitched_copy(const Pitched& p, int word, const void* src, void* dst, void* stream) {
  const auto s = static_cast<cudaStream_t>(stream);
  switch (word) {
    case 1: return pitched_copy<uint8_t>(p, src, dst, s);
    case 2: return pitched_copy<uint16_t>(p, src, dst, s);
    case 4: return pitched_copy<uint32_t>(p, src, dst, s);
    case 8: return pitched_copy<uint64_t>(p, src, dst, s);
    case 16: return pitched_copy<uint4>(p, src, dst, s);
    default: return static_cast<int>(cudaErrorInvalidValue);
  }
}

int launch_pad(const PadMap& m, int esize, const void* src, void* dst, const void* value, void* stream) {
  const auto s = static_cast<cudaStream_t>(stream);
  switch (esize) {
    case 1: return pad<uint8_t>(m, src, dst, value, s);
    case 2: return pad<uint16_t>(m, src, dst, value, s);
    case 4: return pad<uint32_t>(m, src, dst, value, s);
    case 8: return pad<uint64_t>(m, src, dst, value, s);
    default: return static_cast<int>(cudaErrorInvalidValue);
  }
}

}  // namespace mserve::gpu
