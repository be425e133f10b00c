#include "core/kernels/copy_view.h"

#include <algorithm>
#include <cstring>
#include <string>

#include "core/parallel/thread_pool.h"

namespace mserve {
namespace {

// Calls row(q, off) for the rows q in [b, e) of the leading `nd` dims (sizes `dims`, source
// strides `st` in bytes), taken row-major, with `off` the source offset of row q. The index is
// carried from row to row as an odometer: one division per dim for the first row only.
template <class Row>
void for_rows(int nd, const int64_t* dims, const int64_t* st, int64_t b, int64_t e, Row&& row) {
  int64_t idx[StridedView::kMaxDims];
  int64_t off = 0, rem = b;
  for (int d = nd - 1; d >= 0; --d) {
    idx[d] = rem % dims[d];
    rem /= dims[d];
    off += idx[d] * st[d];
  }
  for (int64_t q = b; q < e; ++q) {
    row(q, off);
    for (int d = nd - 1; d >= 0; --d) {
      off += st[d];
      if (++idx[d] < dims[d]) break;
      off -= idx[d] * st[d];
      idx[d] = 0;
    }
  }
}

int64_t count_rows(int nd, const int64_t* dims) {
  int64_t rows = 1;
  for (int d = 0; d < nd; ++d) rows *= dims[d];
  return rows;
}

// A 16-byte element (Transpose moves runs of 4 floats, or 2 doubles, as one).
struct Bytes16 {
  unsigned char b[16];
};

// Copies rows of `len` elements of U, `lstride` bytes apart in the source, walking the leading
// `nd` dims.
template <class U>
void walk(const char* src, char* dst, int nd, const int64_t* dims, const int64_t* st, int64_t len, int64_t lstride,
          ThreadPool& pool) {
  const int64_t row_bytes = len * static_cast<int64_t>(sizeof(U));
  const int64_t grain = std::max<int64_t>(1, (int64_t{1} << 15) / std::max<int64_t>(row_bytes, 1));
  pool.parallel_for(count_rows(nd, dims), grain, [&](int64_t b, int64_t e) {
    for_rows(nd, dims, st, b, e, [&](int64_t q, int64_t off) {
      U* out = reinterpret_cast<U*>(dst + q * row_bytes);
      const char* in = src + off;
      if (lstride == static_cast<int64_t>(sizeof(U))) {
        std::memcpy(out, in, static_cast<size_t>(row_bytes));
      } else if (lstride == 0) {
        U v;
        std::memcpy(&v, in, sizeof(U));
        std::fill(out, out + len, v);
      } else {
        for (int64_t i = 0; i < len; ++i) std::memcpy(out + i, in + i * lstride, sizeof(U));
      }
    });
  });
}

// walk() for elements of `esize` bytes that no builtin type matches.
void walk_bytes(const char* src, char* dst, int nd, const int64_t* dims, const int64_t* st, int64_t len,
                int64_t lstride, size_t esize, ThreadPool& pool) {
  const int64_t es = static_cast<int64_t>(esize), row_bytes = len * es;
  const int64_t grain = std::max<int64_t>(1, (int64_t{1} << 15) / std::max<int64_t>(row_bytes, 1));
  pool.parallel_for(count_rows(nd, dims), grain, [&](int64_t b, int64_t e) {
    for_rows(nd, dims, st, b, e, [&](int64_t q, int64_t off) {
      char* out = dst + q * row_bytes;
      const char* in = src + off;
      if (lstride == es) {
        std::memcpy(out, in, static_cast<size_t>(row_bytes));
      } else {
        for (int64_t i = 0; i < len; ++i) std::memcpy(out + i * es, in + i * lstride, esize);
      }
    });
  });
}

// walk() for std::string elements: assignment, never memcpy.
void walk_strings(const char* src, std::string* dst, int nd, const int64_t* dims, const int64_t* st, int64_t len,
                  int64_t lstride, ThreadPool& pool) {
  const int64_t grain = std::max<int64_t>(1, 4096 / std::max<int64_t>(len, 1));
  pool.parallel_for(count_rows(nd, dims), grain, [&](int64_t b, int64_t e) {
    for_rows(nd, dims, st, b, e, [&](int64_t q, int64_t off) {
      std::string* out = dst + q * len;
      for (int64_t i = 0; i < len; ++i) out[i] = *reinterpret_cast<const std::string*>(src + off + i * lstride);
    });
  });
}

// Drops unit dims and merges a dim into the next when they are contiguous in the source.
// Returns the number of dims left, or -1 when the view is empty.
int simplify(const StridedView& view, int64_t* dims, int64_t* st) {
  int nd = 0;
  for (int d = 0; d < view.nd; ++d) {
    if (view.dims[d] == 0) return -1;
    if (view.dims[d] == 1) continue;
    dims[nd] = view.dims[d];
    st[nd] = view.strides[d];
    ++nd;
  }
  int m = 0;
  for (int d = 0; d < nd; ++d) {
    if (m > 0 && st[m - 1] == st[d] * dims[d]) {
      dims[m - 1] *= dims[d];
      st[m - 1] = st[d];
    } else {
      dims[m] = dims[d];
      st[m] = st[d];
      ++m;
    }
  }
  return m;
}

}  // namespace

void strided_copy(const char* src, char* dst, const StridedView& view, DType dtype, ThreadPool& pool) {
  if (dtype != DType::kString) return strided_copy(src, dst, view, dtype_size(dtype), pool);
  int64_t dims[StridedView::kMaxDims], st[StridedView::kMaxDims];
  const int nd = simplify(view, dims, st);
  if (nd < 0) return;
  auto* out = reinterpret_cast<std::string*>(dst);
  if (nd == 0) {
    *out = *reinterpret_cast<const std::string*>(src);
    return;
  }
  walk_strings(src, out, nd - 1, dims, st, dims[nd - 1], st[nd - 1], pool);
}

void strided_copy(const char* src, char* dst, const StridedView& view, size_t esize, ThreadPool& pool) {
  int64_t dims[StridedView::kMaxDims], st[StridedView::kMaxDims];
  const int nd = simplify(view, dims, st);
  if (nd < 0) return;
  if (nd == 0) {
    std::memcpy(dst, src, esize);
    return;
  }
  const int64_t len = dims[nd - 1], lstride = st[nd - 1];
  switch (esize) {
    case 1: walk<uint8_t>(src, dst, nd - 1, dims, st, len, lstride, pool); break;
    case 2: walk<uint16_t>(src, dst, nd - 1, dims, st, len, lstride, pool); break;
    case 4: walk<uint32_t>(src, dst, nd - 1, dims, st, len, lstride, pool); break;
    case 8: walk<uint64_t>(src, dst, nd - 1, dims, st, len, lstride, pool); break;
    case 16: walk<Bytes16>(src, dst, nd - 1, dims, st, len, lstride, pool); break;
    default: walk_bytes(src, dst, nd - 1, dims, st, len, lstride, esize, pool); break;
  }
}

void fill_bytes(void* dst, int64_t n, const void* v, size_t esize, ThreadPool& pool) {
  auto run = [&](auto tag) {
    using U = decltype(tag);
    U x;
    std::memcpy(&x, v, sizeof(U));
    U* d = static_cast<U*>(dst);
    pool.parallel_for(n, 1 << 16, [&](int64_t b, int64_t e) { std::fill(d + b, d + e, x); });
  };
  switch (esize) {
    case 1: run(uint8_t{}); break;
    case 2: run(uint16_t{}); break;
    case 4: run(uint32_t{}); break;
    default: run(uint64_t{}); break;
  }
}

int read_ints_fixed(const Tensor& t, int64_t* out, int cap) {
  if (t.dtype() != DType::kInt64 && t.dtype() != DType::kInt32) return -1;
  if (t.rank() > 1 || t.numel() > cap) return -1;
  for (int64_t i = 0; i < t.numel(); ++i) out[i] = t.int_at(i);
  return static_cast<int>(t.numel());
}

}  // namespace mserve
