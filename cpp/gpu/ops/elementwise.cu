#include "gpu/ops/elementwise.h"

#include <cuda_runtime.h>

namespace mserve::gpu {
namespace {

constexpr int kThreads = 256;

// A grid-stride loop's grid: enough blocks to fill the device many times over, never more than
// the elements need.
unsigned grid_for(int64_t n) {
  const int64_t blocks = (n + kThreads - 1) / kThreads;
  return static_cast<unsigned>(blocks < 65536 ? blocks : 65536);
}

int launched() { return static_cast<int>(cudaGetLastError()); }

// ---- Kernels over broadcast inputs ------------------------------------------------------------
// Each comes in a flat form (every input full-size or one element: offset i or 0) and a general
// form that turns the output index into input offsets with the plan, in 32- or 64-bit indices.

template <class F, class TI, class TO>
__global__ void binary_flat(F f, const TI* a, int sa, const TI* b, int sb, TO* out, int64_t n) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride)
    out[i] = f(a[i * sa], b[i * sb]);
}

template <class F, class TI, class TO, class I>
__global__ void binary_broadcast(F f, const BroadcastPlan<2> p, const TI* a, const TI* b, TO* out) {
  const I n = static_cast<I>(p.n);
  const I stride = static_cast<I>(gridDim.x) * blockDim.x;
  for (I i = static_cast<I>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    I off[2];
    broadcast_offsets<2, I>(p, i, off);
    out[i] = f(a[off[0]], b[off[1]]);
  }
}

template <class F, class TI, class TO>
int launch_binary(F f, const BroadcastPlan<2>& p, const void* a, const void* b, void* out, void* stream) {
  if (p.n <= 0) return cudaSuccess;
  const auto s = static_cast<cudaStream_t>(stream);
  const TI* pa = static_cast<const TI*>(a);
  const TI* pb = static_cast<const TI*>(b);
  TO* po = static_cast<TO*>(out);
  const unsigned grid = grid_for(p.n);
  if (p.flat) {
    binary_flat<F, TI, TO>
        <<<grid, kThreads, 0, s>>>(f, pa, static_cast<int>(p.step[0]), pb, static_cast<int>(p.step[1]), po, p.n);
  } else if (p.n < kIndex32Limit) {
    binary_broadcast<F, TI, TO, uint32_t><<<grid, kThreads, 0, s>>>(f, p, pa, pb, po);
  } else {
    binary_broadcast<F, TI, TO, uint64_t><<<grid, kThreads, 0, s>>>(f, p, pa, pb, po);
  }
  return launched();
}

template <class W>
__global__ void where_flat(const bool* c, int sc, const W* x, int sx, const W* y, int sy, W* out, int64_t n) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride)
    out[i] = c[i * sc] ? x[i * sx] : y[i * sy];
}

template <class W, class I>
__global__ void where_broadcast(const BroadcastPlan<3> p, const bool* c, const W* x, const W* y, W* out) {
  const I n = static_cast<I>(p.n);
  const I stride = static_cast<I>(gridDim.x) * blockDim.x;
  for (I i = static_cast<I>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    I off[3];
    broadcast_offsets<3, I>(p, i, off);
    out[i] = c[off[0]] ? x[off[1]] : y[off[2]];
  }
}

template <class W>
int launch_where_words(const BroadcastPlan<3>& p, const bool* c, const void* x, const void* y, void* out,
                       void* stream) {
  const auto s = static_cast<cudaStream_t>(stream);
  const W* px = static_cast<const W*>(x);
  const W* py = static_cast<const W*>(y);
  W* po = static_cast<W*>(out);
  const unsigned grid = grid_for(p.n);
  if (p.flat) {
    where_flat<W><<<grid, kThreads, 0, s>>>(c, static_cast<int>(p.step[0]), px, static_cast<int>(p.step[1]), py,
                                            static_cast<int>(p.step[2]), po, p.n);
  } else if (p.n < kIndex32Limit) {
    where_broadcast<W, uint32_t><<<grid, kThreads, 0, s>>>(p, c, px, py, po);
  } else {
    where_broadcast<W, uint64_t><<<grid, kThreads, 0, s>>>(p, c, px, py, po);
  }
  return launched();
}

// ---- Same-shape kernels ------------------------------------------------------------------------

// The op is uniform across a launch, so its switch costs one branch per warp, not divergence.
__global__ void unary_kernel(UnaryOp op, float lo, float hi, const float* x, float* y, int64_t n) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride)
    y[i] = unary(op, x[i], lo, hi);
}

__global__ void not_kernel(const bool* x, bool* y, int64_t n) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) y[i] = !x[i];
}

template <class To, class From>
__global__ void cast_kernel(const From* x, To* y, int64_t n) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride)
    y[i] = cast_value<To, From>(x[i]);
}

template <class From>
int launch_cast_from(ElemType to, const void* x, void* y, int64_t n, cudaStream_t s) {
  const From* px = static_cast<const From*>(x);
  const unsigned grid = grid_for(n);
  switch (to) {
    case ElemType::kFloat32: cast_kernel<float, From><<<grid, kThreads, 0, s>>>(px, static_cast<float*>(y), n); break;
    case ElemType::kFloat64: cast_kernel<double, From><<<grid, kThreads, 0, s>>>(px, static_cast<double*>(y), n); break;
    case ElemType::kInt32: cast_kernel<int32_t, From><<<grid, kThreads, 0, s>>>(px, static_cast<int32_t*>(y), n); break;
    case ElemType::kInt64: cast_kernel<int64_t, From><<<grid, kThreads, 0, s>>>(px, static_cast<int64_t*>(y), n); break;
    case ElemType::kBool: cast_kernel<bool, From><<<grid, kThreads, 0, s>>>(px, static_cast<bool*>(y), n); break;
    default: return cudaErrorInvalidValue;
  }
  return launched();
}

size_t elem_size(ElemType t) {
  switch (t) {
    case ElemType::kFloat32:
    case ElemType::kInt32: return 4;
    case ElemType::kFloat64:
    case ElemType::kInt64: return 8;
    case ElemType::kBool: return 1;
  }
  return 0;
}

}  // namespace

int launch_arith(ArithOp op, ElemType t, const BroadcastPlan<2>& plan, const void* a, const void* b, void* out,
                 double c, void* stream) {
  switch (t) {
    case ElemType::kFloat32:
      return launch_binary<ArithFn<float>, float, float>({op, static_cast<float>(c)}, plan, a, b, out, stream);
    case ElemType::kInt32:
      if (op == ArithOp::kPow) return cudaErrorInvalidValue;
      return launch_binary<ArithFn<int32_t>, int32_t, int32_t>({op, static_cast<int32_t>(c)}, plan, a, b, out, stream);
    case ElemType::kInt64:
      if (op == ArithOp::kPow) return cudaErrorInvalidValue;
      return launch_binary<ArithFn<int64_t>, int64_t, int64_t>({op, static_cast<int64_t>(c)}, plan, a, b, out, stream);
    default: return cudaErrorInvalidValue;
  }
}

int launch_compare(CompareOp op, ElemType t, const BroadcastPlan<2>& plan, const void* a, const void* b, bool* out,
                   void* stream) {
  switch (t) {
    case ElemType::kFloat32: return launch_binary<CompareFn<float>, float, bool>({op}, plan, a, b, out, stream);
    case ElemType::kInt32: return launch_binary<CompareFn<int32_t>, int32_t, bool>({op}, plan, a, b, out, stream);
    case ElemType::kInt64: return launch_binary<CompareFn<int64_t>, int64_t, bool>({op}, plan, a, b, out, stream);
    case ElemType::kBool: return launch_binary<CompareFn<bool>, bool, bool>({op}, plan, a, b, out, stream);
    default: return cudaErrorInvalidValue;
  }
}

int launch_logic(LogicOp op, const BroadcastPlan<2>& plan, const bool* a, const bool* b, bool* out, void* stream) {
  return launch_binary<LogicFn, bool, bool>({op}, plan, a, b, out, stream);
}

int launch_where(const BroadcastPlan<3>& plan, const bool* cond, const void* x, const void* y, void* out,
                 int elem_bytes, void* stream) {
  if (plan.n <= 0) return cudaSuccess;
  switch (elem_bytes) {
    case 1: return launch_where_words<uint8_t>(plan, cond, x, y, out, stream);
    case 2: return launch_where_words<uint16_t>(plan, cond, x, y, out, stream);
    case 4: return launch_where_words<uint32_t>(plan, cond, x, y, out, stream);
    case 8: return launch_where_words<uint64_t>(plan, cond, x, y, out, stream);
    default: return cudaErrorInvalidValue;
  }
}

int launch_unary(UnaryOp op, const float* x, float* y, int64_t n, float lo, float hi, void* stream) {
  if (n <= 0) return cudaSuccess;
  unary_kernel<<<grid_for(n), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(op, lo, hi, x, y, n);
  return launched();
}

int launch_not(const bool* x, bool* y, int64_t n, void* stream) {
  if (n <= 0) return cudaSuccess;
  not_kernel<<<grid_for(n), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(x, y, n);
  return launched();
}

int launch_cast(ElemType from, ElemType to, const void* x, void* y, int64_t n, void* stream) {
  if (n <= 0) return cudaSuccess;
  const auto s = static_cast<cudaStream_t>(stream);
  if (from == to) return launch_copy(x, y, static_cast<size_t>(n) * elem_size(from), stream);
  switch (from) {
    case ElemType::kFloat32: return launch_cast_from<float>(to, x, y, n, s);
    case ElemType::kFloat64: return launch_cast_from<double>(to, x, y, n, s);
    case ElemType::kInt32: return launch_cast_from<int32_t>(to, x, y, n, s);
    case ElemType::kInt64: return launch_cast_from<int64_t>(to, x, y, n, s);
    case ElemType::kBool: return launch_cast_from<bool>(to, x, y, n, s);
  }
  return cudaErrorInvalidValue;
}

int launch_copy(const void* x, void* y, size_t bytes, void* stream) {
  if (bytes == 0 || x == y) return cudaSuccess;
  return static_cast<int>(cudaMemcpyAsync(y, x, bytes, cudaMemcpyDeviceToDevice, static_cast<cudaStream_t>(stream)));
}

}  // namespace mserve::gpu
