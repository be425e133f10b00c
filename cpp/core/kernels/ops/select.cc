// Selections of elements by value or position: NonZero, Compress, TopK, Trilu, Unique.
//
// NonZero, Compress, TopK and Unique have output shapes that depend on input values (the data,
// the condition, k): their infer asks the planner for the value when it is not known at plan
// time. Unique sizes its outputs by running on the known values at infer, and runs again into
// the workspace at compute. Compress and Trilu only move bytes and run for every dtype.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <type_traits>
#include <vector>

#include "core/kernels/common.h"
#include "core/kernels/registry.h"
#include "core/parallel/thread_pool.h"

namespace mserve {
namespace {

// -------------------------------------------------------------------------------- NonZero

template <class T>
inline bool nonzero(T v) {
  return v != T(0);
}

class NonZeroKernel final : public Kernel {
 public:
  Status infer(InferContext& ctx) const override {
    MS_CHECK_ARG(ctx.has_input(0), "needs an input");
    const Tensor* x = ctx.value(0);
    if (!x) return ctx.need_value();
    int64_t nnz = 0;
    MS_SWITCH_ALL(x->dtype(), T, return Unsupported(std::string("dtype ") + dtype_name(x->dtype())), {
      const T* p = x->data<T>();
      for (int64_t i = 0, n = x->numel(); i < n; ++i) nnz += nonzero(p[i]);
    });
    // A scalar counts as shape [1] (numpy's atleast_1d behaviour, as onnxruntime does).
    ctx.set_output(0, DType::kInt64, Shape{std::max(1, ctx.shape(0).rank()), nnz});
    return Status::OK();
  }

  Status compute(const ComputeContext& ctx) const override {
    const Tensor& x = ctx.input(0);
    Tensor& out = ctx.output(0);
    const int64_t nnz = out.dim(1);
    int64_t* o = out.data<int64_t>();
    const Shape& s = x.shape();
    const int r = s.rank();
    int64_t coord[Shape::kMaxRank] = {};
    int64_t j = 0;
    MS_SWITCH_ALL(x.dtype(), T, return Unsupported("dtype"), {
      const T* p = x.data<T>();
      for (int64_t i = 0, n = x.numel(); i < n; ++i) {
        if (nonzero(p[i])) {
          if (j >= nnz) return InvalidArgument("input changed since its nonzeros were counted");
          if (r == 0) o[j] = 0;
          for (int d = 0; d < r; ++d) o[d * nnz + j] = coord[d];
          ++j;
        }
        for (int d = r - 1; d >= 0; --d) {
          if (++coord[d] < s[d]) break;
          coord[d] = 0;
        }
      }
    });
    MS_CHECK_ARG(j == nnz, "input changed since its nonzeros were counted");
    return Status::OK();
  }
};

// ------------------------------------------------------------------------------- Compress

class CompressKernel final : public Kernel {
 public:
  CompressKernel(bool has_axis, int64_t axis) : has_axis_(has_axis), axis_(axis) {}

  Status infer(InferContext& ctx) const override {
    MS_CHECK_ARG(ctx.has_input(0) && ctx.has_input(1), "needs input and condition");
    MS_CHECK_ARG(ctx.dtype(1) == DType::kBool, std::string("condition must be bool, got ") + dtype_name(ctx.dtype(1)));
    MS_CHECK_ARG(ctx.shape(1).rank() == 1, "condition must be 1-D, got shape " + ctx.shape(1).str());
    const Shape& s = ctx.shape(0);
    int axis = 0;
    if (has_axis_) {
      MS_ASSIGN_OR_RETURN(axis, normalize_axis(axis_, s.rank()));
    }
    const Tensor* c = ctx.value(1);
    if (!c) return ctx.need_value();
    const int64_t len = has_axis_ ? s[axis] : s.numel();
    const bool* p = c->data<bool>();
    int64_t count = 0;
    for (int64_t i = 0; i < c->numel(); ++i) {
      if (!p[i]) continue;
      MS_CHECK_ARG(i < len, "condition selects index " + std::to_string(i) + ", beyond the length " +
                                std::to_string(len) + " of the selected axis");
      ++count;
    }
    Shape out = s;
    if (has_axis_)
      out[axis] = count;
    else
      out = Shape{count};
    ctx.set_output(0, ctx.dtype(0), out);
    return Status::OK();
  }

  Status compute(const ComputeContext& ctx) const override {
    const Tensor& x = ctx.input(0);
    const Tensor& c = ctx.input(1);
    Tensor& out = ctx.output(0);
    const Shape& s = x.shape();
    int64_t outer = 1, len = s.numel(), inner = 1;
    if (has_axis_) {
      const int axis = static_cast<int>(axis_ < 0 ? axis_ + s.rank() : axis_);
      outer = s.prod(0, axis);
      len = s[axis];
      inner = s.prod(axis + 1, s.rank());
    }
    const int64_t nc = std::min(len, c.numel());
    const bool* p = c.data<bool>();
    int64_t count = 0;
    for (int64_t i = 0; i < nc; ++i) count += p[i];
    const int64_t want = has_axis_ ? out.dim(static_cast<int>(axis_ < 0 ? axis_ + s.rank() : axis_)) : out.numel();
    MS_CHECK_ARG(count == want, "condition changed since the output shape was inferred");
    const size_t block = static_cast<size_t>(inner) * dtype_size(x.dtype());
    const char* src = static_cast<const char*>(x.raw());
    char* dst = static_cast<char*>(out.raw());
    if (block == 0 || count == 0) return Status::OK();
    ctx.pool().parallel_for(outer, std::max<int64_t>(1, (1 << 16) / static_cast<int64_t>(block * nc + 1)),
                            [&](int64_t b, int64_t e) {
                              for (int64_t o = b; o < e; ++o) {
                                char* d = dst + o * count * block;
                                const char* sr = src + o * len * block;
                                for (int64_t i = 0; i < nc; ++i)
                                  if (p[i]) {
                                    std::memcpy(d, sr + i * block, block);
                                    d += block;
                                  }
                              }
                            });
    return Status::OK();
  }

 private:
  bool has_axis_;
  int64_t axis_;
};

// ----------------------------------------------------------------------------------- TopK

// Strict order "a comes before b" for the k largest (or smallest); NaN ranks above every number
// (as onnxruntime does); equal values keep the lower index first.
template <class T>
struct TopKLess {
  const T* v;
  int64_t stride;
  bool largest;
  bool operator()(int64_t a, int64_t b) const {
    // Through double: exact for every dtype but the 64-bit integers (specialized below).
    const double x = static_cast<double>(v[a * stride]), y = static_cast<double>(v[b * stride]);
    const bool xn = std::isnan(x), yn = std::isnan(y);
    if (xn || yn) return xn && yn ? a < b : (largest ? xn : yn);
    if (x != y) return largest ? x > y : x < y;
    return a < b;
  }
};

template <>
struct TopKLess<int64_t> {
  const int64_t* v;
  int64_t stride;
  bool largest;
  bool operator()(int64_t a, int64_t b) const {
    const int64_t x = v[a * stride], y = v[b * stride];
    if (x != y) return largest ? x > y : x < y;
    return a < b;
  }
};

template <>
struct TopKLess<uint64_t> {
  const uint64_t* v;
  int64_t stride;
  bool largest;
  bool operator()(int64_t a, int64_t b) const {
    const uint64_t x = v[a * stride], y = v[b * stride];
    if (x != y) return largest ? x > y : x < y;
    return a < b;
  }
};

class TopKKernel final : public Kernel {
 public:
  TopKKernel(int64_t axis, bool largest, bool sorted) : axis_(axis), largest_(largest), sorted_(sorted) {}

  Status infer(InferContext& ctx) const override {
    MS_CHECK_ARG(ctx.has_input(0), "needs an input");
    const DType dt = ctx.dtype(0);
    if (dt == DType::kBool || dt == DType::kUndefined)
      return Unsupported(std::string("dtype ") + dtype_name(dt) + " is not supported");
    const Shape& s = ctx.shape(0);
    MS_ASSIGN_OR_RETURN(int axis, normalize_axis(axis_, s.rank()));
    MS_CHECK_ARG(ctx.has_input(1), "needs the K input");
    const Tensor* kt = ctx.value(1);
    if (!kt) return ctx.need_value();
    MS_ASSIGN_OR_RETURN(int64_t k, read_scalar_int(*kt, "K"));
    MS_CHECK_ARG(k >= 0 && k <= s[axis], "k = " + std::to_string(k) + " is out of range for axis " +
                                             std::to_string(axis) + " of size " + std::to_string(s[axis]));
    Shape out = s;
    out[axis] = k;
    ctx.set_output(0, dt, out);
    ctx.set_output(1, DType::kInt64, out);
    ctx.set_workspace(static_cast<size_t>(std::max(1, ctx.threads())) * static_cast<size_t>(s[axis]) * sizeof(int64_t));
    return Status::OK();
  }

  Status compute(const ComputeContext& ctx) const override {
    const Tensor& x = ctx.input(0);
    MS_SWITCH_NUMERIC(x.dtype(), T, return Unsupported("dtype"), run<T>(ctx));
    return Status::OK();
  }

 private:
  template <class T>
  void run(const ComputeContext& ctx) const {
    const Tensor& x = ctx.input(0);
    const Shape& s = x.shape();
    const int axis = static_cast<int>(axis_ < 0 ? axis_ + s.rank() : axis_);
    const int64_t outer = s.prod(0, axis), n = s[axis], inner = s.prod(axis + 1, s.rank());
    const int64_t k = ctx.has_output(0) ? ctx.output(0).dim(axis) : ctx.output(1).dim(axis);
    T* vals = ctx.has_output(0) ? ctx.output(0).data<T>() : nullptr;
    int64_t* inds = ctx.has_output(1) ? ctx.output(1).data<int64_t>() : nullptr;
    const T* xp = x.data<T>();
    const int64_t rows = outer * inner;
    if (rows == 0 || k == 0) return;
    int64_t* ws = static_cast<int64_t*>(ctx.workspace());
    const int64_t slots = std::min<int64_t>(ctx.pool().threads(), rows);
    ctx.pool().parallel_for(slots, 1, [&](int64_t sb, int64_t se) {
      for (int64_t sl = sb; sl < se; ++sl) {
        int64_t* order = ws + sl * n;
        for (int64_t r = sl; r < rows; r += slots) {
          const int64_t o = r / inner, i = r % inner;
          const T* row = xp + o * n * inner + i;
          for (int64_t j = 0; j < n; ++j) order[j] = j;
          TopKLess<T> less{row, inner, largest_};
          sort_k(order, n, k, less);
          const int64_t base = o * k * inner + i;
          for (int64_t j = 0; j < k; ++j) {
            if (vals) vals[base + j * inner] = row[order[j] * inner];
            if (inds) inds[base + j * inner] = order[j];
          }
        }
      }
    });
  }

  template <class Less>
  void sort_k(int64_t* order, int64_t n, int64_t k, const Less& less) const {
    if (sorted_) {
      std::partial_sort(order, order + k, order + n, less);
    } else {
      // Unsorted output: the k selected elements, in index order.
      if (k < n) std::nth_element(order, order + (k - 1), order + n, less);
      std::sort(order, order + k);
    }
  }

  int64_t axis_;
  bool largest_, sorted_;
};

// ---------------------------------------------------------------------------------- Trilu

class TriluKernel final : public Kernel {
 public:
  explicit TriluKernel(bool upper) : upper_(upper) {}

  Status infer(InferContext& ctx) const override {
    MS_CHECK_ARG(ctx.has_input(0), "needs an input");
    MS_CHECK_ARG(ctx.shape(0).rank() >= 2, "input must have rank >= 2, got shape " + ctx.shape(0).str());
    if (const Tensor* k = ctx.value(1)) MS_RETURN_IF_ERROR(read_scalar_int(*k, "k").status());
    ctx.set_output(0, ctx.dtype(0), ctx.shape(0));
    return Status::OK();
  }

  Status compute(const ComputeContext& ctx) const override {
    int64_t k = 0;
    if (ctx.has_input(1)) {
      MS_ASSIGN_OR_RETURN(k, read_scalar_int(ctx.input(1), "k"));
    }
    const Tensor& x = ctx.input(0);
    Tensor& out = ctx.output(0);
    const Shape& s = x.shape();
    const int r = s.rank();
    const int64_t N = s[r - 2], M = s[r - 1];
    const int64_t rows = s.prod(0, r - 1);
    const size_t es = dtype_size(x.dtype());
    const char* src = static_cast<const char*>(x.raw());
    char* dst = static_cast<char*>(out.raw());
    ctx.pool().parallel_for(rows, std::max<int64_t>(1, 16384 / std::max<int64_t>(1, M)), [&](int64_t b, int64_t e) {
      for (int64_t row = b; row < e; ++row) {
        const int64_t i = row % N;
        // Kept columns: j - i >= k (upper) or j - i <= k (lower).
        int64_t lo = 0, hi = M;  // [lo, hi) kept
        if (upper_)
          lo = std::clamp<int64_t>(i + k, 0, M);
        else
          hi = std::clamp<int64_t>(i + k + 1, 0, M);
        char* d = dst + row * M * es;
        const char* sr = src + row * M * es;
        if (lo > 0) std::memset(d, 0, static_cast<size_t>(lo) * es);
        if (hi > lo) std::memcpy(d + lo * es, sr + lo * es, static_cast<size_t>(hi - lo) * es);
        if (hi < M) std::memset(d + std::max(hi, lo) * es, 0, static_cast<size_t>(M - std::max(hi, lo)) * es);
      }
    });
    return Status::OK();
  }

 private:
  bool upper_;
};

// --------------------------------------------------------------------------------- Unique

// Unique slices of x along axis (axis < 0: flattened). ws holds 4 * n int64: perm, inverse
// (group id in sorted order), first (first index of each group), cnt (count). Returns the
// number of groups; with `sorted_out` false the group ids are then renumbered in order of
// first occurrence. Outputs written when out != nullptr.
template <class T>
int64_t unique_run(const Tensor& x, int axis, bool sorted_out, int64_t* ws, Tensor* const* out) {
  const Shape& s = x.shape();
  int64_t outer = 1, n = x.numel(), inner = 1;
  if (axis >= 0) {
    outer = s.prod(0, axis);
    n = s[axis];
    inner = s.prod(axis + 1, s.rank());
  }
  const T* p = x.data<T>();
  auto cmp3 = [&](int64_t a, int64_t b) -> int {
    for (int64_t o = 0; o < outer; ++o)
      for (int64_t c = 0; c < inner; ++c) {
        const T va = p[(o * n + a) * inner + c], vb = p[(o * n + b) * inner + c];
        if (va < vb) return -1;
        if (vb < va) return 1;
      }
    return 0;
  };
  int64_t* perm = ws;
  int64_t* inv = ws + n;
  int64_t* first = ws + 2 * n;
  int64_t* cnt = ws + 3 * n;
  for (int64_t i = 0; i < n; ++i) perm[i] = i;
  std::sort(perm, perm + n, [&](int64_t a, int64_t b) {
    const int c = cmp3(a, b);
    return c != 0 ? c < 0 : a < b;
  });
  int64_t u = 0;
  for (int64_t i = 0; i < n; ++i) {
    if (i == 0 || cmp3(perm[i - 1], perm[i]) != 0) {
      first[u] = perm[i];
      cnt[u] = 0;
      ++u;
    }
    inv[perm[i]] = u - 1;
    ++cnt[u - 1];
  }
  if (!out) return u;
  // rank[g]: output position of sorted group g. perm is free now: reuse it.
  int64_t* rank = perm;
  if (sorted_out) {
    for (int64_t g = 0; g < u; ++g) rank[g] = g;
  } else {
    // Groups in order of first occurrence: walk x in order.
    for (int64_t g = 0; g < u; ++g) rank[g] = -1;
    int64_t next = 0;
    for (int64_t i = 0; i < n; ++i)
      if (rank[inv[i]] < 0) rank[inv[i]] = next++;
  }
  T* y = out[0] ? out[0]->data<T>() : nullptr;
  for (int64_t g = 0; g < u; ++g) {
    const int64_t r = rank[g];
    if (y)
      for (int64_t o = 0; o < outer; ++o)
        for (int64_t c = 0; c < inner; ++c) y[(o * u + r) * inner + c] = p[(o * n + first[g]) * inner + c];
    if (out[1]) out[1]->data<int64_t>()[r] = first[g];
    if (out[3]) out[3]->data<int64_t>()[r] = cnt[g];
  }
  if (out[2])
    for (int64_t i = 0; i < n; ++i) out[2]->data<int64_t>()[i] = rank[inv[i]];
  return u;
}

class UniqueKernel final : public Kernel {
 public:
  UniqueKernel(bool has_axis, int64_t axis, bool sorted) : has_axis_(has_axis), axis_(axis), sorted_(sorted) {}

  Status infer(InferContext& ctx) const override {
    MS_CHECK_ARG(ctx.has_input(0), "needs X");
    const Shape& s = ctx.shape(0);
    int axis = -1;
    if (has_axis_) {
      MS_ASSIGN_OR_RETURN(axis, normalize_axis(axis_, s.rank()));
    }
    const Tensor* x = ctx.value(0);
    if (!x) return ctx.need_value();
    const int64_t n = axis >= 0 ? s[axis] : s.numel();
    std::vector<int64_t> ws(4 * static_cast<size_t>(std::max<int64_t>(n, 1)));
    int64_t u = 0;
    MS_SWITCH_NUMERIC(x->dtype(), T, return Unsupported(std::string("dtype ") + dtype_name(x->dtype())),
                      u = unique_run<T>(*x, axis, sorted_, ws.data(), nullptr));
    Shape ys = Shape{u};
    if (axis >= 0) {
      ys = s;
      ys[axis] = u;
    }
    ctx.set_output(0, x->dtype(), ys);
    for (int i = 1; i < ctx.num_outputs(); ++i) ctx.set_output(i, DType::kInt64, Shape{i == 2 ? n : u});
    ctx.set_workspace(4 * sizeof(int64_t) * static_cast<size_t>(std::max<int64_t>(n, 1)));
    return Status::OK();
  }

  Status compute(const ComputeContext& ctx) const override {
    const Tensor& x = ctx.input(0);
    int axis = -1;
    if (has_axis_) {
      MS_ASSIGN_OR_RETURN(axis, normalize_axis(axis_, x.rank()));
    }
    Tensor* outs[4] = {};
    for (int i = 0; i < 4; ++i) outs[i] = ctx.has_output(i) ? &ctx.output(i) : nullptr;
    MS_SWITCH_NUMERIC(x.dtype(), T, return Unsupported("dtype"),
                      unique_run<T>(x, axis, sorted_, static_cast<int64_t*>(ctx.workspace()), outs));
    return Status::OK();
  }

 private:
  bool has_axis_;
  int64_t axis_;
  bool sorted_;
};

}  // namespace

StatusOr<KernelPtr> create_onnx_NonZero(const Node&, const KernelInit&) { return KernelPtr(new NonZeroKernel()); }

StatusOr<KernelPtr> create_onnx_Compress(const Node& node, const KernelInit&) {
  return KernelPtr(new CompressKernel(node.attr("axis") != nullptr, node.attr_int("axis", 0)));
}

StatusOr<KernelPtr> create_onnx_TopK(const Node& node, const KernelInit&) {
  return KernelPtr(
      new TopKKernel(node.attr_int("axis", -1), node.attr_int("largest", 1) != 0, node.attr_int("sorted", 1) != 0));
}

StatusOr<KernelPtr> create_onnx_Trilu(const Node& node, const KernelInit&) {
  return KernelPtr(new TriluKernel(node.attr_int("upper", 1) != 0));
}

StatusOr<KernelPtr> create_onnx_Unique(const Node& n, const KernelInit&) {
  return KernelPtr(new UniqueKernel(n.attr("axis") != nullptr, n.attr_int("axis", 0), n.attr_int("sorted", 1) != 0));
}

}  // namespace mserve
