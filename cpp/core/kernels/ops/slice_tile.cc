// Slice (inputs with steps, opset 10+), Split (split input, opset 13+; num_outputs from 18), Tile
// (6+), Expand (8+). The importer rewrites the attribute forms of older Slice and Split into these
// (onnx/normalize.h). Pad lives in pad.cc.
//
// All of these only move bytes, so they run for every dtype (strings element-wise). Values that decide output shapes
// (starts/ends/axes/steps, split, repeats, shape) are read at plan time when known; otherwise the
// node is inferred again at run time. compute reads them again into fixed-size arrays (it must
// not allocate).
#include <algorithm>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "core/kernels/common.h"
#include "core/kernels/copy_view.h"
#include "core/kernels/registry.h"
#include "core/parallel/thread_pool.h"

namespace mserve {
namespace {

constexpr int kMaxRank = Shape::kMaxRank;

// ------------------------------------------------------------------------------------ Slice

struct SliceSpec {
  int64_t start[kMaxRank];
  int64_t step[kMaxRank];
  int64_t len[kMaxRank];
};

// Resolves starts/ends/axes/steps (n entries; axes/steps may be null) against `in` with the
// spec's clamping rules.
Status make_slice_spec(const Shape& in, int n, const int64_t* starts, const int64_t* ends, const int64_t* axes,
                       const int64_t* steps, SliceSpec& spec) {
  const int r = in.rank();
  for (int d = 0; d < r; ++d) {
    spec.start[d] = 0;
    spec.step[d] = 1;
    spec.len[d] = in[d];
  }
  bool seen[kMaxRank] = {};
  for (int i = 0; i < n; ++i) {
    const int64_t a0 = axes ? axes[i] : i;
    const int64_t a = a0 < 0 ? a0 + r : a0;
    if (a < 0 || a >= r)
      return InvalidArgument("axis " + std::to_string(a0) + " is out of range for rank " + std::to_string(r));
    if (seen[a]) return InvalidArgument("axis " + std::to_string(a0) + " is repeated");
    seen[a] = true;
    const int64_t step = steps ? steps[i] : 1;
    if (step == 0) return InvalidArgument("steps must not be 0");
    const int64_t dim = in[static_cast<int>(a)];
    int64_t s = starts[i], e = ends[i];
    if (s < 0) s += dim;
    if (e < 0) e += dim;
    int64_t len;
    if (step > 0) {
      s = std::clamp<int64_t>(s, 0, dim);
      e = std::clamp<int64_t>(e, 0, dim);
      len = e > s ? (e - s - 1) / step + 1 : 0;
    } else {
      s = std::clamp<int64_t>(s, 0, std::max<int64_t>(dim - 1, 0));
      e = std::clamp<int64_t>(e, -1, dim - 1);
      len = s > e && dim > 0 ? (s - e - 1) / -step + 1 : 0;
    }
    spec.start[a] = s;
    spec.step[a] = step;
    spec.len[a] = len;
  }
  return Status::OK();
}

class SliceKernel final : public Kernel {
 public:
  bool supports_strings() const override { return true; }
  Status infer(InferContext& ctx) const override {
    MS_CHECK_ARG(ctx.has_input(0), "needs a data input");
    MS_CHECK_ARG(ctx.has_input(1) && ctx.has_input(2), "needs starts and ends inputs");
    for (int i = 1; i <= 4; ++i)
      if (ctx.has_input(i) && !ctx.value(i)) return ctx.need_value();
    SliceSpec spec;
    MS_RETURN_IF_ERROR(resolve(
        ctx.shape(0), [&](int i) { return ctx.value(i); }, spec));
    Shape out = ctx.shape(0);
    for (int d = 0; d < out.rank(); ++d) out[d] = spec.len[d];
    ctx.set_output(0, ctx.dtype(0), out);
    return Status::OK();
  }

  Status compute(const ComputeContext& ctx) const override {
    const Tensor& in = ctx.input(0);
    Tensor& out = ctx.output(0);
    if (out.numel() == 0) return Status::OK();
    SliceSpec spec;
    MS_RETURN_IF_ERROR(resolve(
        in.shape(), [&](int i) { return ctx.has_input(i) ? &ctx.input(i) : nullptr; }, spec));
    const int r = in.rank();
    const int64_t esize = static_cast<int64_t>(dtype_size(in.dtype()));
    int64_t stride = esize, offset = 0;
    StridedView v;
    v.nd = r;
    for (int d = r - 1; d >= 0; --d) {
      offset += spec.start[d] * stride;
      v.dims[d] = spec.len[d];
      v.strides[d] = spec.step[d] * stride;
      stride *= in.dim(d);
    }
    strided_copy(static_cast<const char*>(in.raw()) + offset, static_cast<char*>(out.raw()), v, in.dtype(), ctx.pool());
    return Status::OK();
  }

 private:
  template <class Get>
  Status resolve(const Shape& in, Get get, SliceSpec& spec) const {
    int64_t v[4][kMaxRank];
    int n[4] = {0, 0, -2, -2};  // -2: input absent
    const char* names[4] = {"starts", "ends", "axes", "steps"};
    for (int i = 0; i < 4; ++i) {
      const Tensor* t = get(i + 1);
      if (!t) continue;
      n[i] = read_ints_fixed(*t, v[i], kMaxRank);
      if (n[i] < 0)
        return InvalidArgument(std::string(names[i]) + " must be a 1-D int32/int64 tensor of at most " +
                               std::to_string(kMaxRank) + " values, got " + t->desc());
    }
    if (n[1] != n[0]) return InvalidArgument("starts and ends must have the same length");
    for (int i = 2; i < 4; ++i)
      if (n[i] != -2 && n[i] != n[0]) return InvalidArgument(std::string(names[i]) + " must have the length of starts");
    return make_slice_spec(in, n[0], v[0], v[1], n[2] >= 0 ? v[2] : nullptr, n[3] >= 0 ? v[3] : nullptr, spec);
  }
};

// ------------------------------------------------------------------------------------ Split

class SplitKernel final : public Kernel {
 public:
  bool supports_strings() const override { return true; }
  // num_outputs: the opset-18 attribute, 0 when absent (then a split without the split input
  // must be even).
  SplitKernel(int64_t axis, int64_t num_outputs) : axis_(axis), num_outputs_(num_outputs) {}

  Status infer(InferContext& ctx) const override {
    MS_CHECK_ARG(ctx.has_input(0), "needs an input");
    const Shape& in = ctx.shape(0);
    MS_ASSIGN_OR_RETURN(int axis, normalize_axis(axis_, in.rank()));
    const int64_t dim = in[axis];
    const int nout = ctx.num_outputs();
    std::vector<int64_t> split;
    if (ctx.has_input(1)) {
      const Tensor* t = ctx.value(1);
      if (!t) return ctx.need_value();
      MS_ASSIGN_OR_RETURN(split, read_ints(*t, "split"));
    }
    if (!split.empty()) {
      if (static_cast<int>(split.size()) != nout)
        return InvalidArgument("split " + ints_str(split) + " has " + std::to_string(split.size()) + " entries for " +
                               std::to_string(nout) + " outputs");
      int64_t sum = 0;
      for (int64_t s : split) {
        if (s < 0) return InvalidArgument("split " + ints_str(split) + " has a negative size");
        sum += s;
      }
      if (sum != dim)
        return InvalidArgument("split " + ints_str(split) + " sums to " + std::to_string(sum) + ", axis " +
                               std::to_string(axis) + " has size " + std::to_string(dim));
    } else {
      const int64_t parts = num_outputs_ > 0 ? num_outputs_ : nout;
      if (parts != nout)
        return InvalidArgument("num_outputs is " + std::to_string(num_outputs_) + " but the node has " +
                               std::to_string(nout) + " outputs");
      if (parts <= 0) return InvalidArgument("needs at least one output");
      if (dim % parts == 0) {
        split.assign(parts, dim / parts);
      } else {
        if (num_outputs_ == 0)
          return InvalidArgument("axis " + std::to_string(axis) + " of size " + std::to_string(dim) +
                                 " cannot be split evenly into " + std::to_string(parts) + " parts");
        const int64_t chunk = dim / parts + 1;
        const int64_t last = dim - chunk * (parts - 1);
        if (last < 0)
          return InvalidArgument("axis " + std::to_string(axis) + " of size " + std::to_string(dim) +
                                 " cannot be split into " + std::to_string(parts) + " chunks");
        split.assign(parts, chunk);
        split.back() = last;
      }
    }
    for (int o = 0; o < nout; ++o) {
      Shape s = in;
      s[axis] = split[o];
      ctx.set_output(o, ctx.dtype(0), s);
    }
    return Status::OK();
  }

  Status compute(const ComputeContext& ctx) const override {
    const Tensor& in = ctx.input(0);
    const int r = in.rank();
    const int axis = static_cast<int>(axis_ < 0 ? axis_ + r : axis_);
    const int64_t outer = in.shape().prod(0, axis);
    const int64_t inner = in.shape().prod(axis + 1, r) * static_cast<int64_t>(dtype_size(in.dtype()));
    const int64_t in_row = in.dim(axis) * inner;
    const char* src = static_cast<const char*>(in.raw());
    int64_t off = 0;  // byte offset of this output's block inside an input row
    const int nout = ctx.num_outputs();
    for (int o = 0; o < nout; ++o) {
      if (!ctx.has_output(o)) return Internal("split output " + std::to_string(o) + " is missing");
      Tensor& out = ctx.output(o);
      const int64_t bytes = out.dim(axis) * inner;
      char* dst = static_cast<char*>(out.raw());
      if (in.dtype() == DType::kString) {  // element-wise assignment (`inner` counts bytes)
        const int64_t es = static_cast<int64_t>(sizeof(std::string)), n = bytes / es;
        for (int64_t i = 0; i < outer; ++i)
          for (int64_t j = 0; j < n; ++j) out.str(i * n + j) = in.str((i * in_row + off) / es + j);
      } else if (bytes > 0 && outer > 0) {
        const int64_t grain = std::max<int64_t>(1, (int64_t{1} << 16) / bytes);
        ctx.pool().parallel_for(outer, grain, [&](int64_t b, int64_t e) {
          for (int64_t i = b; i < e; ++i)
            std::memcpy(dst + i * bytes, src + i * in_row + off, static_cast<size_t>(bytes));
        });
      }
      off += bytes;
    }
    return Status::OK();
  }

 private:
  int64_t axis_;
  int64_t num_outputs_;
};

// ------------------------------------------------------------------------------------- Tile

class TileKernel final : public Kernel {
 public:
  bool supports_strings() const override { return true; }
  Status infer(InferContext& ctx) const override {
    MS_CHECK_ARG(ctx.has_input(0) && ctx.has_input(1), "needs input and repeats");
    const Tensor* t = ctx.value(1);
    if (!t) return ctx.need_value();
    MS_ASSIGN_OR_RETURN(std::vector<int64_t> reps, read_ints(*t, "repeats"));
    const Shape& in = ctx.shape(0);
    if (static_cast<int>(reps.size()) != in.rank())
      return InvalidArgument("repeats " + ints_str(reps) + " must have one entry per input dimension (rank " +
                             std::to_string(in.rank()) + ")");
    Shape out = in;
    for (int d = 0; d < in.rank(); ++d) {
      if (reps[d] < 0) return InvalidArgument("repeats " + ints_str(reps) + " has a negative entry");
      out[d] = in[d] * reps[d];
    }
    ctx.set_output(0, ctx.dtype(0), out);
    return Status::OK();
  }

  Status compute(const ComputeContext& ctx) const override {
    const Tensor& in = ctx.input(0);
    Tensor& out = ctx.output(0);
    if (out.numel() == 0) return Status::OK();
    const int r = in.rank();
    const int64_t esize = static_cast<int64_t>(dtype_size(in.dtype()));
    int64_t st[kMaxRank];
    int64_t s = esize;
    for (int d = r - 1; d >= 0; --d) {
      st[d] = s;
      s *= in.dim(d);
    }
    StridedView v;
    for (int d = 0; d < r; ++d) {
      v.push(out.dim(d) / in.dim(d), 0);
      v.push(in.dim(d), st[d]);
    }
    strided_copy(static_cast<const char*>(in.raw()), static_cast<char*>(out.raw()), v, in.dtype(), ctx.pool());
    return Status::OK();
  }
};

// ----------------------------------------------------------------------------------- Expand

class ExpandKernel final : public Kernel {
 public:
  bool supports_strings() const override { return true; }
  Status infer(InferContext& ctx) const override {
    MS_CHECK_ARG(ctx.has_input(0) && ctx.has_input(1), "needs input and shape");
    const Tensor* t = ctx.value(1);
    if (!t) return ctx.need_value();
    MS_ASSIGN_OR_RETURN(std::vector<int64_t> dims, read_ints(*t, "shape"));
    if (!Shape::fits(dims.size()))
      return Unsupported("shape rank " + std::to_string(dims.size()) + " exceeds the maximum " +
                         std::to_string(kMaxRank));
    for (int64_t d : dims)
      if (d < 0) return InvalidArgument("shape " + ints_str(dims) + " has a negative dimension");
    Shape target(dims.begin(), dims.end());
    MS_ASSIGN_OR_RETURN(Shape out, broadcast_shapes(ctx.shape(0), target));
    ctx.set_output(0, ctx.dtype(0), out);
    return Status::OK();
  }

  Status compute(const ComputeContext& ctx) const override {
    const Tensor& in = ctx.input(0);
    Tensor& out = ctx.output(0);
    if (out.numel() == 0) return Status::OK();
    const int64_t esize = static_cast<int64_t>(dtype_size(in.dtype()));
    StridedView v;
    v.nd = out.rank();
    broadcast_strides(in.shape(), out.shape(), v.strides);
    for (int d = 0; d < out.rank(); ++d) {
      v.dims[d] = out.dim(d);
      v.strides[d] *= esize;
    }
    strided_copy(static_cast<const char*>(in.raw()), static_cast<char*>(out.raw()), v, in.dtype(), ctx.pool());
    return Status::OK();
  }
};

}  // namespace

StatusOr<KernelPtr> create_onnx_Slice(const Node&, const KernelInit&) { return KernelPtr(new SliceKernel()); }

StatusOr<KernelPtr> create_onnx_Split(const Node& node, const KernelInit&) {
  const int64_t axis = node.attr_int("axis", 0);
  int64_t num_outputs = 0;
  if (node.attr("num_outputs")) {
    num_outputs = node.attr_int("num_outputs", 0);
    if (num_outputs <= 0) return InvalidArgument("num_outputs must be positive");
    if (node.inputs.size() > 1 && node.inputs[1] != kNoValue)
      return InvalidArgument("split input and num_outputs attribute must not both be given");
  }
  for (int o : node.outputs)
    if (o == kNoValue) return Unsupported("omitted Split outputs are not supported");
  return KernelPtr(new SplitKernel(axis, num_outputs));
}

StatusOr<KernelPtr> create_onnx_Tile(const Node&, const KernelInit&) { return KernelPtr(new TileKernel()); }

StatusOr<KernelPtr> create_onnx_Expand(const Node&, const KernelInit&) { return KernelPtr(new ExpandKernel()); }

}  // namespace mserve
