// The broadcasting row walker shared by element-wise kernels with K inputs (binary arithmetic,
// comparisons, logical and bitwise ops, Where, the variadic Sum/Min/Max/Mean).
//
// The output is walked in rows: runs of elements along which every input advances by a fixed
// stride (0 for an input broadcast along that run, 1 otherwise). When every input is either
// full-size or a single element, the whole output is one row, cut into parallel chunks;
// otherwise rows are runs along the last dimension. Allocation-free.
#pragma once
#include <algorithm>
#include <array>
#include <cstdint>

#include "core/kernels/common.h"
#include "core/parallel/thread_pool.h"

namespace mserve {

// Elements per parallel chunk.
constexpr int64_t kElementwiseGrain = int64_t{1} << 15;

// fn(out_offset, in_offsets[K], in_row_strides[K], n): element j < n of the row is output
// element out_offset + j, and reads input k at in_offsets[k] + j * in_row_strides[k].
// Precondition: every input shape broadcasts to `out`. Never called from inside a parallel_for.
template <int K, class F>
void for_each_broadcast_row(const std::array<const Shape*, K>& in, const Shape& out, ThreadPool& pool, F&& fn) {
  const int64_t n = out.numel();
  if (n == 0) return;
  bool flat = true;
  for (int k = 0; k < K; ++k) flat = flat && (in[k]->numel() == n || in[k]->numel() == 1);
  if (flat) {
    int64_t rs[K];
    for (int k = 0; k < K; ++k) rs[k] = in[k]->numel() == 1 ? 0 : 1;
    pool.parallel_for(n, kElementwiseGrain, [&](int64_t s, int64_t e) {
      int64_t off[K];
      for (int k = 0; k < K; ++k) off[k] = s * rs[k];
      fn(s, static_cast<const int64_t*>(off), static_cast<const int64_t*>(rs), e - s);
    });
    return;
  }
  // Not flat implies rank >= 1 (a rank-0 output has one element, so every input is flat).
  // Adjacent dims merge when every input walks them as one (both broadcast, or both dense), so
  // [N, C, H, W] * [N, C, 1, 1] runs as [N*C, H*W]: rows as long as possible, and the per-row
  // index arithmetic over as few dims as possible.
  const int r = out.rank();
  int64_t full[K][Shape::kMaxRank];
  for (int k = 0; k < K; ++k) broadcast_strides(*in[k], out, full[k]);
  int64_t dims[Shape::kMaxRank], st[K][Shape::kMaxRank];
  int m = 0;
  for (int d = 0; d < r; ++d) {
    if (out[d] == 1) continue;
    bool merge = m > 0;
    for (int k = 0; k < K && merge; ++k) merge = st[k][m - 1] == full[k][d] * out[d];
    if (merge) {
      dims[m - 1] *= out[d];
    } else {
      dims[m] = out[d];
      ++m;
    }
    for (int k = 0; k < K; ++k) st[k][m - 1] = full[k][d];
  }
  int64_t rs[K];
  for (int k = 0; k < K; ++k) rs[k] = st[k][m - 1];
  const int64_t row = dims[m - 1];
  const int64_t rows = n / row;
  pool.parallel_for(rows, std::max<int64_t>(1, kElementwiseGrain / row), [&](int64_t s, int64_t e) {
    int64_t off[K];
    for (int64_t q = s; q < e; ++q) {
      // Offsets of row q in each input, from its multi-index over the leading (merged) dims.
      int64_t rem = q;
      for (int k = 0; k < K; ++k) off[k] = 0;
      for (int d = m - 2; d >= 0; --d) {
        const int64_t idx = rem % dims[d];
        rem /= dims[d];
        for (int k = 0; k < K; ++k) off[k] += idx * st[k][d];
      }
      fn(q * row, static_cast<const int64_t*>(off), static_cast<const int64_t*>(rs), row);
    }
  });
}

// out[i] = f(a[i*sa], b[i*sb]) over a run of n elements; the common stride patterns get their
// own loops so the compiler can vectorize them.
template <class TA, class TB, class TO, class F>
inline void binary_row(const TA* a, int64_t sa, const TB* b, int64_t sb, TO* out, int64_t n, const F& f) {
  if (sa == 1 && sb == 1) {
    for (int64_t i = 0; i < n; ++i) out[i] = f(a[i], b[i]);
  } else if (sa == 1 && sb == 0) {
    const TB y = b[0];
    for (int64_t i = 0; i < n; ++i) out[i] = f(a[i], y);
  } else if (sa == 0 && sb == 1) {
    const TA x = a[0];
    for (int64_t i = 0; i < n; ++i) out[i] = f(x, b[i]);
  } else {
    for (int64_t i = 0; i < n; ++i) out[i] = f(a[i * sa], b[i * sb]);
  }
}

// out = f(a, b) with multidirectional broadcasting; out has the broadcast shape (or a shape both
// inputs broadcast to). `a` or `b` may be `out` itself (same element read, then written).
template <class TA, class TB, class TO, class F>
void broadcast_binary(const Tensor& a, const Tensor& b, Tensor& out, ThreadPool& pool, const F& f) {
  const TA* pa = a.data<TA>();
  const TB* pb = b.data<TB>();
  TO* po = out.data<TO>();
  for_each_broadcast_row<2>({&a.shape(), &b.shape()}, out.shape(), pool,
                            [&](int64_t o, const int64_t* off, const int64_t* rs, int64_t n) {
                              binary_row(pa + off[0], rs[0], pb + off[1], rs[1], po + o, n, f);
                            });
}

// The output shape of a multidirectional broadcast of inputs [0, n) of ctx (all present).
inline StatusOr<Shape> broadcast_inputs(const InferContext& ctx, int n) {
  Shape s = ctx.shape(0);
  for (int i = 1; i < n; ++i) {
    MS_ASSIGN_OR_RETURN(s, broadcast_shapes(s, ctx.shape(i)));
  }
  return s;
}

}  // namespace mserve
