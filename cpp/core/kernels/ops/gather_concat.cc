// Concat (opset 4+) and Gather. Both only move bytes, so they work for every dtype (strings are
// assigned element-wise).
// Negative axes and negative Gather indices are accepted at every opset (the spec allows them
// from opset 11; their meaning in older models is unambiguous).
#include <algorithm>
#include <cstring>
#include <string>

#include "core/kernels/common.h"
#include "core/kernels/registry.h"
#include "core/parallel/thread_pool.h"

namespace mserve {
namespace {

// ----------------------------------------------------------------------------------- Concat

class ConcatKernel final : public Kernel {
 public:
  bool supports_strings() const override { return true; }
  explicit ConcatKernel(int64_t axis) : axis_(axis) {}

  Status infer(InferContext& ctx) const override {
    const int n = ctx.num_inputs();
    MS_CHECK_ARG(n > 0, "needs at least one input");
    for (int i = 0; i < n; ++i) MS_CHECK_ARG(ctx.has_input(i), "input " + std::to_string(i) + " is missing");
    const DType dt = ctx.dtype(0);
    const Shape& s0 = ctx.shape(0);
    const int r = s0.rank();
    MS_ASSIGN_OR_RETURN(int axis, normalize_axis(axis_, r));
    Shape out = s0;
    for (int i = 1; i < n; ++i) {
      if (ctx.dtype(i) != dt)
        return InvalidArgument("input " + std::to_string(i) + " has dtype " + dtype_name(ctx.dtype(i)) +
                               ", input 0 has " + dtype_name(dt));
      const Shape& s = ctx.shape(i);
      bool ok = s.rank() == r;
      for (int d = 0; ok && d < r; ++d) ok = d == axis || s[d] == s0[d];
      if (!ok)
        return InvalidArgument("input " + std::to_string(i) + " has shape " + s.str() +
                               ", incompatible with input 0 shape " + s0.str() + " along axis " + std::to_string(axis));
      out[axis] += s[axis];
    }
    ctx.set_output(0, dt, out);
    return Status::OK();
  }

  Status compute(const ComputeContext& ctx) const override {
    Tensor& out = ctx.output(0);
    if (out.numel() == 0) return Status::OK();
    const int n = ctx.num_inputs();
    const int r = out.rank();
    const int axis = static_cast<int>(axis_ < 0 ? axis_ + r : axis_);
    if (out.dtype() == DType::kString) {
      const int64_t outer = out.shape().prod(0, axis), inner = out.shape().prod(axis + 1, r);
      int64_t k = 0;
      for (int64_t o = 0; o < outer; ++o)
        for (int i = 0; i < n; ++i) {
          const Tensor& in = ctx.input(i);
          const int64_t len = in.dim(axis) * inner;
          for (int64_t j = 0; j < len; ++j) out.str(k++) = in.str(o * len + j);
        }
      return Status::OK();
    }
    const size_t esize = dtype_size(out.dtype());
    const int64_t outer = out.shape().prod(0, axis);
    const int64_t inner_bytes = out.shape().prod(axis + 1, r) * static_cast<int64_t>(esize);
    const int64_t row_bytes = out.dim(axis) * inner_bytes;  // one outer slice of the output
    char* dst = static_cast<char*>(out.raw());
    ThreadPool& pool = ctx.pool();
    if (outer == 1) {
      // Each input is one contiguous block: split the big copies instead of the (single) row.
      int64_t off = 0;
      for (int i = 0; i < n; ++i) {
        const Tensor& in = ctx.input(i);
        const char* src = static_cast<const char*>(in.raw());
        const int64_t bytes = in.dim(axis) * inner_bytes;
        char* d = dst + off;
        pool.parallel_for(bytes, 1 << 20,
                          [&](int64_t b, int64_t e) { std::memcpy(d + b, src + b, static_cast<size_t>(e - b)); });
        off += bytes;
      }
      return Status::OK();
    }
    const int64_t grain = std::max<int64_t>(1, (int64_t{1} << 16) / std::max<int64_t>(row_bytes, 1));
    pool.parallel_for(outer, grain, [&](int64_t b, int64_t e) {
      for (int64_t o = b; o < e; ++o) {
        char* d = dst + o * row_bytes;
        for (int i = 0; i < n; ++i) {
          const Tensor& in = ctx.input(i);
          const int64_t bytes = in.dim(axis) * inner_bytes;
          if (bytes == 0) continue;
          std::memcpy(d, static_cast<const char*>(in.raw()) + o * bytes, static_cast<size_t>(bytes));
          d += bytes;
        }
      }
    });
    return Status::OK();
  }

 private:
  int64_t axis_;
};

// ----------------------------------------------------------------------------------- Gather

// Copies `block` bytes; fixed sizes become single loads/stores.
inline void copy_block(char* dst, const char* src, int64_t block) {
  switch (block) {
    case 1: *dst = *src; break;
    case 2: std::memcpy(dst, src, 2); break;
    case 4: std::memcpy(dst, src, 4); break;
    case 8: std::memcpy(dst, src, 8); break;
    case 16: std::memcpy(dst, src, 16); break;
    default: std::memcpy(dst, src, static_cast<size_t>(block)); break;
  }
}

template <class I>
Status gather(const Tensor& data, const Tensor& indices, Tensor& out, int axis, ThreadPool& pool) {
  const I* idx = indices.data<I>();
  const int64_t nidx = indices.numel();
  const int64_t size = data.dim(axis);
  // Validate first so the parallel copy below cannot fail.
  for (int64_t j = 0; j < nidx; ++j) {
    const int64_t v = static_cast<int64_t>(idx[j]);
    if (v < -size || v >= size)
      return InvalidArgument("index " + std::to_string(v) + " is out of range for axis " + std::to_string(axis) +
                             " of size " + std::to_string(size) + " (data shape " + data.shape().str() + ")");
  }
  if (out.numel() == 0) return Status::OK();
  const int64_t outer = data.shape().prod(0, axis);
  if (data.dtype() == DType::kString) {
    const int64_t inner = data.shape().prod(axis + 1, data.rank());
    for (int64_t t = 0; t < outer * nidx; ++t) {
      const int64_t o = t / nidx, j = t % nidx;
      int64_t v = static_cast<int64_t>(idx[j]);
      if (v < 0) v += size;
      for (int64_t k = 0; k < inner; ++k) out.str(t * inner + k) = data.str((o * size + v) * inner + k);
    }
    return Status::OK();
  }
  const int64_t block = data.shape().prod(axis + 1, data.rank()) * static_cast<int64_t>(dtype_size(data.dtype()));
  const char* src = static_cast<const char*>(data.raw());
  char* dst = static_cast<char*>(out.raw());
  const int64_t grain = std::max<int64_t>(1, (int64_t{1} << 16) / std::max<int64_t>(block, 1));
  pool.parallel_for(outer * nidx, grain, [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; ++t) {
      const int64_t o = t / nidx, j = t % nidx;
      int64_t v = static_cast<int64_t>(idx[j]);
      if (v < 0) v += size;
      copy_block(dst + t * block, src + (o * size + v) * block, block);
    }
  });
  return Status::OK();
}

class GatherKernel final : public Kernel {
 public:
  bool supports_strings() const override { return true; }
  explicit GatherKernel(int64_t axis) : axis_(axis) {}

  Status infer(InferContext& ctx) const override {
    MS_CHECK_ARG(ctx.has_input(0) && ctx.has_input(1), "needs data and indices inputs");
    const DType it = ctx.dtype(1);
    if (it != DType::kInt32 && it != DType::kInt64)
      return InvalidArgument(std::string("indices must be int32 or int64, got ") + dtype_name(it));
    const Shape& ds = ctx.shape(0);
    const Shape& is = ctx.shape(1);
    MS_ASSIGN_OR_RETURN(int axis, normalize_axis(axis_, ds.rank()));
    const size_t out_rank = static_cast<size_t>(ds.rank() - 1 + is.rank());
    if (!Shape::fits(out_rank))
      return Unsupported("output rank " + std::to_string(out_rank) + " exceeds the maximum " +
                         std::to_string(Shape::kMaxRank));
    Shape out;
    for (int d = 0; d < axis; ++d) out.push_back(ds[d]);
    for (int64_t d : is) out.push_back(d);
    for (int d = axis + 1; d < ds.rank(); ++d) out.push_back(ds[d]);
    ctx.set_output(0, ctx.dtype(0), out);
    return Status::OK();
  }

  Status compute(const ComputeContext& ctx) const override {
    const Tensor& data = ctx.input(0);
    const Tensor& indices = ctx.input(1);
    Tensor& out = ctx.output(0);
    const int axis = static_cast<int>(axis_ < 0 ? axis_ + data.rank() : axis_);
    if (indices.dtype() == DType::kInt32) return gather<int32_t>(data, indices, out, axis, ctx.pool());
    if (indices.dtype() == DType::kInt64) return gather<int64_t>(data, indices, out, axis, ctx.pool());
    return InvalidArgument(std::string("indices must be int32 or int64, got ") + dtype_name(indices.dtype()));
  }

 private:
  int64_t axis_;
};

}  // namespace

StatusOr<KernelPtr> create_onnx_Concat(const Node& node, const KernelInit&) {
  if (!node.attr("axis")) return InvalidArgument("attribute 'axis' is required");
  return KernelPtr(new ConcatKernel(node.attr_int("axis", 0)));
}

StatusOr<KernelPtr> create_onnx_Gather(const Node& node, const KernelInit&) {
  return KernelPtr(new GatherKernel(node.attr_int("axis", 0)));
}

}  // namespace mserve
