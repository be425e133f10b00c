// Gathers and scatters by index tensors: GatherElements, GatherND (batch_dims), ScatterND,
// ScatterElements (reduction none/add/mul from opset 16, max/min from opset 18) and Scatter (9,
// deprecated in 11: ScatterElements without a reduction, run by its kernel) and TensorScatter (24:
// a KV-cache update writing `update` into a copy of `past_cache` along the sequence axis, from
// each batch entry's write index; mode "circular" wraps the positions modulo the cache length).
//
// Indices may be int32 or int64 and negative (counting from the end of their axis); an index
// outside [-size, size-1] is InvalidArgument at compute time. Gathers and reduction-free scatters
// only move bytes, so they run for every dtype; reductions run for numeric types and bool
// (add = or, mul = and, as numpy does). Duplicate scatter indices apply in index order (the last
// write wins with reduction none), like onnxruntime.
#include <algorithm>
#include <atomic>
#include <cstring>
#include <string>

#include "core/kernels/common.h"
#include "core/kernels/registry.h"
#include "core/parallel/thread_pool.h"

namespace mserve {
namespace {

bool is_index_dtype(DType t) { return t == DType::kInt32 || t == DType::kInt64; }

Status check_index_dtype(DType t) {
  if (is_index_dtype(t)) return Status::OK();
  return InvalidArgument(std::string("indices must be int32 or int64, got ") + dtype_name(t));
}

Status index_error(int64_t v, int64_t size, int axis) {
  return InvalidArgument("index " + std::to_string(v) + " is out of range for axis " + std::to_string(axis) +
                         " of size " + std::to_string(size));
}

// Calls f(U{}) with U an unsigned type of the element size (every dtype is 1, 2, 4 or 8 bytes).
template <class F>
void with_elem_type(size_t esize, F&& f) {
  switch (esize) {
    case 1: f(uint8_t{}); break;
    case 2: f(uint16_t{}); break;
    case 4: f(uint32_t{}); break;
    default: f(uint64_t{}); break;
  }
}

// Parallel copy of a tensor's bytes into a same-sized output.
void copy_bytes(const Tensor& in, Tensor& out, ThreadPool& pool) {
  const char* src = static_cast<const char*>(in.raw());
  char* dst = static_cast<char*>(out.raw());
  pool.parallel_for(static_cast<int64_t>(in.nbytes()), 1 << 20,
                    [&](int64_t b, int64_t e) { std::memcpy(dst + b, src + b, static_cast<size_t>(e - b)); });
}

// Walks the positions of a row-major `shape` and tracks an offset with strides `st`.
struct Walker {
  int rank = 0;
  int64_t dims[Shape::kMaxRank] = {};
  int64_t st[Shape::kMaxRank] = {};
  int64_t coord[Shape::kMaxRank] = {};
  int64_t off = 0;
  void start(int64_t t) {
    off = 0;
    for (int d = rank - 1; d >= 0; --d) {
      coord[d] = t % dims[d];
      t /= dims[d];
      off += coord[d] * st[d];
    }
  }
  void next() {
    for (int d = rank - 1; d >= 0; --d) {
      off += st[d];
      if (++coord[d] < dims[d]) return;
      off -= dims[d] * st[d];
      coord[d] = 0;
    }
  }
};

void row_major_strides(const Shape& s, int64_t* st) {
  int64_t acc = 1;
  for (int d = s.rank() - 1; d >= 0; --d) {
    st[d] = acc;
    acc *= s[d];
  }
}

// A walker over `ishape` whose offset is into `dshape` (row-major) with the `axis` term left out.
Walker elements_walker(const Shape& ishape, const Shape& dshape, int axis) {
  Walker w;
  w.rank = ishape.rank();
  row_major_strides(dshape, w.st);
  for (int d = 0; d < w.rank; ++d) w.dims[d] = ishape[d];
  w.st[axis] = 0;
  return w;
}

// Elements shapes: indices (and updates) have data's rank, no dim larger than data's except on
// the axis (GatherElements) — onnxruntime's rule.
Status check_elements_shapes(const Shape& ds, const Shape& is, int axis) {
  if (is.rank() != ds.rank())
    return InvalidArgument("indices rank " + std::to_string(is.rank()) + " differs from data rank " +
                           std::to_string(ds.rank()));
  for (int d = 0; d < ds.rank(); ++d)
    if (d != axis && is[d] > ds[d])
      return InvalidArgument("indices shape " + is.str() + " exceeds data shape " + ds.str() + " on axis " +
                             std::to_string(d));
  return Status::OK();
}

// ------------------------------------------------------------------------- GatherElements

class GatherElementsKernel final : public Kernel {
 public:
  explicit GatherElementsKernel(int64_t axis) : axis_(axis) {}

  Status infer(InferContext& ctx) const override {
    MS_CHECK_ARG(ctx.has_input(0) && ctx.has_input(1), "needs data and indices inputs");
    MS_RETURN_IF_ERROR(check_index_dtype(ctx.dtype(1)));
    MS_ASSIGN_OR_RETURN(int axis, normalize_axis(axis_, ctx.shape(0).rank()));
    MS_RETURN_IF_ERROR(check_elements_shapes(ctx.shape(0), ctx.shape(1), axis));
    ctx.set_output(0, ctx.dtype(0), ctx.shape(1));
    return Status::OK();
  }

  Status compute(const ComputeContext& ctx) const override {
    const Tensor& data = ctx.input(0);
    const Tensor& idx = ctx.input(1);
    const int axis = static_cast<int>(axis_ < 0 ? axis_ + data.rank() : axis_);
    Status st;
    with_elem_type(dtype_size(data.dtype()), [&](auto u) {
      using U = decltype(u);
      st = idx.dtype() == DType::kInt32 ? run<U, int32_t>(ctx, axis) : run<U, int64_t>(ctx, axis);
    });
    return st;
  }

 private:
  template <class U, class I>
  static Status run(const ComputeContext& ctx, int axis) {
    const Tensor& data = ctx.input(0);
    const Tensor& idx = ctx.input(1);
    const U* src = data.data<U>();
    const I* ind = idx.data<I>();
    U* dst = ctx.output(0).data<U>();
    const int64_t n = idx.numel();
    const int64_t size = data.dim(axis);
    const int64_t astride = data.shape().prod(axis + 1, data.rank());
    const Walker proto = elements_walker(idx.shape(), data.shape(), axis);
    std::atomic<bool> failed{false};
    std::atomic<int64_t> bad{0};
    ctx.pool().parallel_for(n, 1 << 14, [&](int64_t b, int64_t e) {
      Walker w = proto;
      w.start(b);
      for (int64_t t = b; t < e; ++t, w.next()) {
        int64_t v = static_cast<int64_t>(ind[t]);
        if (v < -size || v >= size) {
          bad.store(v, std::memory_order_relaxed);
          failed.store(true, std::memory_order_relaxed);
          return;
        }
        if (v < 0) v += size;
        dst[t] = src[w.off + v * astride];
      }
    });
    if (failed.load()) return index_error(bad.load(), size, axis);
    return Status::OK();
  }
  int64_t axis_;
};

// ------------------------------------------------------------------------------- GatherND

struct NDGeometry {
  int64_t k = 0;                          // index tuple length
  int64_t tuples = 0;                     // number of index tuples
  int64_t per_batch = 0;                  // tuples per batch
  int64_t batch_stride = 0;               // data elements per batch
  int64_t slice = 0;                      // elements of one gathered/scattered slice
  int64_t dstride[Shape::kMaxRank] = {};  // data strides of the indexed dims
  int64_t dsize[Shape::kMaxRank] = {};
};

NDGeometry nd_geometry(const Shape& ds, const Shape& is, int b) {
  NDGeometry g;
  const int r = ds.rank(), q = is.rank();
  g.k = is[q - 1];
  g.tuples = is.prod(0, q - 1);
  const int64_t batches = is.prod(0, b);
  g.per_batch = batches ? g.tuples / batches : 0;
  g.batch_stride = ds.prod(b, r);
  g.slice = ds.prod(b + static_cast<int>(g.k), r);
  int64_t st[Shape::kMaxRank];
  row_major_strides(ds, st);
  for (int j = 0; j < g.k; ++j) {
    g.dstride[j] = st[b + j];
    g.dsize[j] = ds[b + j];
  }
  return g;
}

// Offset (in data elements) of tuple n; false (with the bad index in *badv) when out of range.
template <class I>
inline bool nd_offset(const NDGeometry& g, const I* ind, int64_t n, int64_t* off, int64_t* badv, int* bada) {
  int64_t o = g.per_batch ? (n / g.per_batch) * g.batch_stride : 0;
  const I* t = ind + n * g.k;
  for (int j = 0; j < g.k; ++j) {
    int64_t v = static_cast<int64_t>(t[j]);
    if (v < -g.dsize[j] || v >= g.dsize[j]) {
      *badv = v;
      *bada = j;
      return false;
    }
    if (v < 0) v += g.dsize[j];
    o += v * g.dstride[j];
  }
  *off = o;
  return true;
}

class GatherNDKernel final : public Kernel {
 public:
  explicit GatherNDKernel(int64_t batch_dims) : b_(batch_dims) {}

  Status infer(InferContext& ctx) const override {
    MS_CHECK_ARG(ctx.has_input(0) && ctx.has_input(1), "needs data and indices inputs");
    MS_RETURN_IF_ERROR(check_index_dtype(ctx.dtype(1)));
    const Shape& ds = ctx.shape(0);
    const Shape& is = ctx.shape(1);
    const int r = ds.rank(), q = is.rank();
    MS_CHECK_ARG(r >= 1 && q >= 1, "data and indices must have rank >= 1");
    MS_CHECK_ARG(b_ >= 0 && b_ < std::min(q, r), "batch_dims " + std::to_string(b_) + " must be in [0, min(" +
                                                     std::to_string(q) + ", " + std::to_string(r) + "))");
    const int b = static_cast<int>(b_);
    for (int d = 0; d < b; ++d)
      MS_CHECK_ARG(ds[d] == is[d], "batch dimensions of data " + ds.str() + " and indices " + is.str() + " differ");
    const int64_t k = is[q - 1];
    MS_CHECK_ARG(k >= 1 && k <= r - b,
                 "indices.shape[-1] = " + std::to_string(k) + " must be in [1, " + std::to_string(r - b) + "]");
    Shape out;
    for (int d = 0; d < q - 1; ++d) out.push_back(is[d]);
    for (int d = b + static_cast<int>(k); d < r; ++d) {
      if (!Shape::fits(static_cast<size_t>(out.rank()) + 1)) return Unsupported("output rank exceeds the maximum");
      out.push_back(ds[d]);
    }
    ctx.set_output(0, ctx.dtype(0), out);
    return Status::OK();
  }

  Status compute(const ComputeContext& ctx) const override {
    const Tensor& idx = ctx.input(1);
    return idx.dtype() == DType::kInt32 ? run<int32_t>(ctx) : run<int64_t>(ctx);
  }

 private:
  template <class I>
  Status run(const ComputeContext& ctx) const {
    const Tensor& data = ctx.input(0);
    const Tensor& idx = ctx.input(1);
    const NDGeometry g = nd_geometry(data.shape(), idx.shape(), static_cast<int>(b_));
    const I* ind = idx.data<I>();
    const size_t esize = dtype_size(data.dtype());
    const size_t slice_bytes = static_cast<size_t>(g.slice) * esize;
    const char* src = static_cast<const char*>(data.raw());
    char* dst = static_cast<char*>(ctx.output(0).raw());
    std::atomic<bool> failed{false};
    std::atomic<int64_t> badv{0};
    std::atomic<int> bada{0};
    const int64_t grain = std::max<int64_t>(1, (int64_t{1} << 15) / std::max<int64_t>(1, g.slice));
    ctx.pool().parallel_for(g.tuples, grain, [&](int64_t b, int64_t e) {
      for (int64_t n = b; n < e; ++n) {
        int64_t off, v;
        int a;
        if (!nd_offset(g, ind, n, &off, &v, &a)) {
          badv = v;
          bada = a;
          failed = true;
          return;
        }
        if (slice_bytes) std::memcpy(dst + n * slice_bytes, src + off * static_cast<int64_t>(esize), slice_bytes);
      }
    });
    if (failed) return index_error(badv, g.dsize[bada.load()], static_cast<int>(b_) + bada.load());
    return Status::OK();
  }
  int64_t b_;
};

// -------------------------------------------------------------------------------- Scatters

enum class Reduction { kNone, kAdd, kMul, kMax, kMin };

StatusOr<Reduction> parse_reduction(const Node& node) {
  const std::string r = node.attr_string("reduction", "none");
  Reduction red;
  int since;
  if (r == "none") return Reduction::kNone;
  if (r == "add")
    red = Reduction::kAdd, since = 16;
  else if (r == "mul")
    red = Reduction::kMul, since = 16;
  else if (r == "max")
    red = Reduction::kMax, since = 18;
  else if (r == "min")
    red = Reduction::kMin, since = 18;
  else
    return InvalidArgument("unknown reduction '" + r + "'");
  if (node.opset < since)
    return InvalidArgument("reduction '" + r + "' needs opset " + std::to_string(since) + ", the model imports " +
                           std::to_string(node.opset));
  return red;
}

template <class T>
inline T reduce(Reduction r, T a, T b) {
  switch (r) {
    case Reduction::kAdd: return static_cast<T>(a + b);
    case Reduction::kMul: return static_cast<T>(a * b);
    case Reduction::kMax: return b > a ? b : a;
    case Reduction::kMin: return b < a ? b : a;
    default: return b;
  }
}

class ScatterNDKernel final : public Kernel {
 public:
  explicit ScatterNDKernel(Reduction r) : red_(r) {}

  Status infer(InferContext& ctx) const override {
    MS_CHECK_ARG(ctx.has_input(0) && ctx.has_input(1) && ctx.has_input(2), "needs data, indices and updates inputs");
    MS_RETURN_IF_ERROR(check_index_dtype(ctx.dtype(1)));
    MS_CHECK_ARG(ctx.dtype(2) == ctx.dtype(0), "updates dtype differs from data dtype");
    const Shape& ds = ctx.shape(0);
    const Shape& is = ctx.shape(1);
    const Shape& us = ctx.shape(2);
    const int r = ds.rank(), q = is.rank();
    MS_CHECK_ARG(r >= 1 && q >= 1, "data and indices must have rank >= 1");
    const int64_t k = is[q - 1];
    MS_CHECK_ARG(k >= 1 && k <= r,
                 "indices.shape[-1] = " + std::to_string(k) + " must be in [1, " + std::to_string(r) + "]");
    Shape want;
    for (int d = 0; d < q - 1; ++d) want.push_back(is[d]);
    for (int d = static_cast<int>(k); d < r; ++d) {
      if (!Shape::fits(static_cast<size_t>(want.rank()) + 1)) return InvalidArgument("updates rank is too large");
      want.push_back(ds[d]);
    }
    MS_CHECK_ARG(us == want, "updates shape " + us.str() + " must be " + want.str());
    ctx.set_output(0, ctx.dtype(0), ds);
    return Status::OK();
  }

  Status compute(const ComputeContext& ctx) const override {
    const Tensor& idx = ctx.input(1);
    return idx.dtype() == DType::kInt32 ? run<int32_t>(ctx) : run<int64_t>(ctx);
  }

 private:
  template <class I>
  Status run(const ComputeContext& ctx) const {
    const Tensor& data = ctx.input(0);
    const Tensor& idx = ctx.input(1);
    const Tensor& upd = ctx.input(2);
    Tensor& out = ctx.output(0);
    const NDGeometry g = nd_geometry(data.shape(), idx.shape(), 0);
    const I* ind = idx.data<I>();
    // Validate every tuple before writing anything.
    for (int64_t n = 0; n < g.tuples; ++n) {
      int64_t off, v;
      int a;
      if (!nd_offset(g, ind, n, &off, &v, &a)) return index_error(v, g.dsize[a], a);
    }
    copy_bytes(data, out, ctx.pool());
    if (red_ == Reduction::kNone) {
      const size_t esize = dtype_size(data.dtype());
      const size_t slice_bytes = static_cast<size_t>(g.slice) * esize;
      char* dst = static_cast<char*>(out.raw());
      const char* src = static_cast<const char*>(upd.raw());
      for (int64_t n = 0; n < g.tuples; ++n) {
        int64_t off = 0, v = 0;
        int a = 0;
        nd_offset(g, ind, n, &off, &v, &a);
        if (slice_bytes) std::memcpy(dst + off * static_cast<int64_t>(esize), src + n * slice_bytes, slice_bytes);
      }
      return Status::OK();
    }
    MS_SWITCH_ALL(data.dtype(), T, return Unsupported("dtype"), {
      T* dst = out.data<T>();
      const T* src = upd.data<T>();
      for (int64_t n = 0; n < g.tuples; ++n) {
        int64_t off = 0, v = 0;
        int a = 0;
        nd_offset(g, ind, n, &off, &v, &a);
        T* d = dst + off;
        const T* s = src + n * g.slice;
        for (int64_t i = 0; i < g.slice; ++i) d[i] = reduce<T>(red_, d[i], s[i]);
      }
    });
    return Status::OK();
  }
  Reduction red_;
};

class ScatterElementsKernel final : public Kernel {
 public:
  ScatterElementsKernel(int64_t axis, Reduction r) : axis_(axis), red_(r) {}

  Status infer(InferContext& ctx) const override {
    MS_CHECK_ARG(ctx.has_input(0) && ctx.has_input(1) && ctx.has_input(2), "needs data, indices and updates inputs");
    MS_RETURN_IF_ERROR(check_index_dtype(ctx.dtype(1)));
    MS_CHECK_ARG(ctx.dtype(2) == ctx.dtype(0), "updates dtype differs from data dtype");
    const Shape& ds = ctx.shape(0);
    MS_CHECK_ARG(ds.rank() >= 1, "data must have rank >= 1");
    MS_ASSIGN_OR_RETURN(int axis, normalize_axis(axis_, ds.rank()));
    MS_CHECK_ARG(ctx.shape(2) == ctx.shape(1),
                 "updates shape " + ctx.shape(2).str() + " differs from indices shape " + ctx.shape(1).str());
    MS_RETURN_IF_ERROR(check_elements_shapes(ds, ctx.shape(1), axis));
    ctx.set_output(0, ctx.dtype(0), ds);
    return Status::OK();
  }

  Status compute(const ComputeContext& ctx) const override {
    const Tensor& idx = ctx.input(1);
    return idx.dtype() == DType::kInt32 ? run<int32_t>(ctx) : run<int64_t>(ctx);
  }

 private:
  template <class I>
  Status run(const ComputeContext& ctx) const {
    const Tensor& data = ctx.input(0);
    const Tensor& idx = ctx.input(1);
    Tensor& out = ctx.output(0);
    const int axis = static_cast<int>(axis_ < 0 ? axis_ + data.rank() : axis_);
    const I* ind = idx.data<I>();
    const int64_t n = idx.numel();
    const int64_t size = data.dim(axis);
    for (int64_t t = 0; t < n; ++t) {
      const int64_t v = static_cast<int64_t>(ind[t]);
      if (v < -size || v >= size) return index_error(v, size, axis);
    }
    copy_bytes(data, out, ctx.pool());
    if (n == 0) return Status::OK();
    const int64_t astride = data.shape().prod(axis + 1, data.rank());
    Walker w = elements_walker(idx.shape(), data.shape(), axis);
    w.start(0);
    auto target = [&](int64_t t) {
      int64_t v = static_cast<int64_t>(ind[t]);
      return w.off + (v < 0 ? v + size : v) * astride;
    };
    if (red_ == Reduction::kNone) {
      with_elem_type(dtype_size(data.dtype()), [&](auto u) {
        using U = decltype(u);
        U* dst = out.data<U>();
        const U* src = ctx.input(2).data<U>();
        for (int64_t t = 0; t < n; ++t, w.next()) dst[target(t)] = src[t];
      });
      return Status::OK();
    }
    MS_SWITCH_ALL(data.dtype(), T, return Unsupported("dtype"), {
      T* dst = out.data<T>();
      const T* src = ctx.input(2).data<T>();
      for (int64_t t = 0; t < n; ++t, w.next()) {
        T& d = dst[target(t)];
        d = reduce<T>(red_, d, src[t]);
      }
    });
    return Status::OK();
  }
  int64_t axis_;
  Reduction red_;
};

// -------------------------------------------------------------------------- TensorScatter

// present = past; then for every prefix p of the axes before `axis` (p[0] the batch entry) and
// every s < sequence_length: present[p, pos(p[0], s)] = update[p, s], where pos(b, s) is
// write_indices[b] + s (linear: must stay inside [0, max_sequence_length)) or that modulo
// max_sequence_length, floored as Python's % (circular). Each prefix row of the cache is written
// by one task (rows are disjoint), so the copy is parallel over rows.
class TensorScatterKernel final : public Kernel {
 public:
  TensorScatterKernel(int64_t axis, bool circular) : axis_(axis), circular_(circular) {}
  bool supports_strings() const override { return true; }

  Status infer(InferContext& ctx) const override {
    MS_CHECK_ARG(ctx.has_input(0) && ctx.has_input(1), "needs past_cache and update inputs");
    const Shape& ps = ctx.shape(0);
    const Shape& us = ctx.shape(1);
    MS_CHECK_ARG(ctx.dtype(1) == ctx.dtype(0), std::string("update dtype ") + dtype_name(ctx.dtype(1)) +
                                                   " differs from past_cache dtype " + dtype_name(ctx.dtype(0)));
    MS_CHECK_ARG(ps.rank() >= 2, "past_cache must have rank >= 2, got " + ps.str());
    MS_ASSIGN_OR_RETURN(int axis, normalize_axis(axis_, ps.rank()));
    MS_CHECK_ARG(axis >= 1, "axis must not be the batch axis 0");
    MS_CHECK_ARG(us.rank() == ps.rank(), "update rank " + std::to_string(us.rank()) + " differs from past_cache rank " +
                                             std::to_string(ps.rank()));
    for (int d = 0; d < ps.rank(); ++d) {
      if (d == axis)
        MS_CHECK_ARG(us[d] <= ps[d],
                     "update " + us.str() + " is longer than past_cache " + ps.str() + " on axis " + std::to_string(d));
      else
        MS_CHECK_ARG(us[d] == ps[d],
                     "update " + us.str() + " differs from past_cache " + ps.str() + " on axis " + std::to_string(d));
    }
    if (ctx.has_input(2)) {
      MS_CHECK_ARG(ctx.dtype(2) == DType::kInt64 || ctx.dtype(2) == DType::kInt32,
                   std::string("write_indices must be int64, got ") + dtype_name(ctx.dtype(2)));
      const Shape& ws = ctx.shape(2);
      MS_CHECK_ARG(ws.rank() == 1 && ws[0] == ps[0],
                   "write_indices " + ws.str() + " must be 1-D of the batch size " + std::to_string(ps[0]));
    }
    ctx.set_output(0, ctx.dtype(0), ps);
    ctx.set_workspace(static_cast<size_t>(ps[0]) * sizeof(int64_t));
    return Status::OK();
  }

  Status compute(const ComputeContext& ctx) const override {
    const Tensor& past = ctx.input(0);
    const Tensor& upd = ctx.input(1);
    const int axis = static_cast<int>(axis_ < 0 ? axis_ + past.rank() : axis_);
    const int64_t batch = past.dim(0);
    const int64_t max_len = past.dim(axis);
    const int64_t seq = upd.dim(axis);
    // Validate every write index before writing anything.
    int64_t* w = static_cast<int64_t*>(ctx.workspace());  // the batch's start positions
    for (int64_t b = 0; b < batch; ++b) {
      int64_t v = 0;
      if (ctx.has_input(2)) {
        const Tensor& wi = ctx.input(2);
        v = wi.dtype() == DType::kInt32 ? wi.data<int32_t>()[b] : wi.data<int64_t>()[b];
      }
      if (circular_) {
        if (max_len > 0) v = ((v % max_len) + max_len) % max_len;
      } else if (v < 0 || v > max_len - seq) {
        return InvalidArgument("write_indices[" + std::to_string(b) + "] = " + std::to_string(v) + " with " +
                               std::to_string(seq) + " updates does not fit a cache of length " +
                               std::to_string(max_len) + " on axis " + std::to_string(axis) + " (mode linear)");
      }
      w[b] = v;
    }
    Tensor& out = ctx.output(0);
    MS_RETURN_IF_ERROR(copy_input_to_output(ctx));
    if (seq == 0 || past.numel() == 0) return Status::OK();
    const int64_t rows = past.shape().prod(0, axis);  // prefixes
    const int64_t per_batch = rows / batch;
    const int64_t inner = past.shape().prod(axis + 1, past.rank());
    if (past.dtype() == DType::kString) {
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t s = 0; s < seq; ++s) {
          const int64_t pos = circular_ ? (w[r / per_batch] + s) % max_len : w[r / per_batch] + s;
          for (int64_t i = 0; i < inner; ++i)
            out.str((r * max_len + pos) * inner + i) = upd.str((r * seq + s) * inner + i);
        }
      return Status::OK();
    }
    const size_t esize = dtype_size(past.dtype());
    const size_t elem_bytes = static_cast<size_t>(inner) * esize;
    const char* src = static_cast<const char*>(upd.raw());
    char* dst = static_cast<char*>(out.raw());
    const int64_t grain = std::max<int64_t>(1, (int64_t{1} << 16) / std::max<int64_t>(1, seq * inner));
    ctx.pool().parallel_for(rows, grain, [&](int64_t rb, int64_t re) {
      for (int64_t r = rb; r < re; ++r) {
        const int64_t p0 = w[r / per_batch];
        const char* s_row = src + static_cast<size_t>(r * seq) * elem_bytes;
        char* d_row = dst + static_cast<size_t>(r * max_len) * elem_bytes;
        // The run up to the end of the cache, then (circular) the rest from position 0.
        const int64_t first = std::min(seq, max_len - p0);
        std::memcpy(d_row + static_cast<size_t>(p0) * elem_bytes, s_row, static_cast<size_t>(first) * elem_bytes);
        for (int64_t done = first; done < seq;) {  // circular only: wraps, possibly more than once
          const int64_t n = std::min(seq - done, max_len);
          std::memcpy(d_row, s_row + static_cast<size_t>(done) * elem_bytes, static_cast<size_t>(n) * elem_bytes);
          done += n;
        }
      }
    });
    return Status::OK();
  }

 private:
  int64_t axis_;
  bool circular_;
};

}  // namespace

StatusOr<KernelPtr> create_onnx_GatherElements(const Node& node, const KernelInit&) {
  return KernelPtr(new GatherElementsKernel(node.attr_int("axis", 0)));
}

StatusOr<KernelPtr> create_onnx_GatherND(const Node& node, const KernelInit&) {
  return KernelPtr(new GatherNDKernel(node.attr_int("batch_dims", 0)));
}

StatusOr<KernelPtr> create_onnx_ScatterND(const Node& node, const KernelInit&) {
  MS_ASSIGN_OR_RETURN(Reduction r, parse_reduction(node));
  return KernelPtr(new ScatterNDKernel(r));
}

StatusOr<KernelPtr> create_onnx_ScatterElements(const Node& node, const KernelInit&) {
  MS_ASSIGN_OR_RETURN(Reduction r, parse_reduction(node));
  return KernelPtr(new ScatterElementsKernel(node.attr_int("axis", 0), r));
}

StatusOr<KernelPtr> create_onnx_Scatter(const Node& n, const KernelInit& init) {
  // Same inputs (data, indices, updates) and `axis` as ScatterElements; no reduction attribute.
  return create_onnx_ScatterElements(n, init);
}

StatusOr<KernelPtr> create_onnx_TensorScatter(const Node& node, const KernelInit&) {
  const std::string mode = node.attr_string("mode", "linear");
  if (mode != "linear" && mode != "circular")
    return InvalidArgument("TensorScatter mode must be 'linear' or 'circular', got '" + mode + "'");
  return KernelPtr(new TensorScatterKernel(node.attr_int("axis", -2), mode == "circular"));
}

}  // namespace mserve
