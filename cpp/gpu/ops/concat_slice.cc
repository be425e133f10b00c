// Concat, Split, Slice, Pad, Expand and Tile on the GPU, for every dtype of 1, 2, 4 or 8 bytes
// (only bytes move; strings are refused). Their parameters (starts/ends/axes/steps, split, pads
// and the constant, the target shape, repeats) are read on the host, as the CPU kernels' infer
// reads them, so the planner keeps those inputs in host memory: host_input.
//
// Concat and Split copy one pitched block per input or output (a plain copy where the axis is
// the outermost non-trivial dim); Slice, Expand and Tile are strided copies (transpose.h); Pad
// walks the output and maps each element back through the padding mode.
#include "gpu/ops/concat_slice.h"

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "core/kernels/copy_view.h"
#include "gpu/cuda_status.h"
#include "gpu/ops/families.h"
#include "gpu/ops/gpu_kernel.h"
#include "gpu/ops/transpose.h"
#include "gpu/ops/views.h"

namespace mserve::gpu {
namespace {

constexpr int kMaxRank = Shape::kMaxRank;

uint64_t addr(const void* p) { return reinterpret_cast<uintptr_t>(p); }

// A strided map in elements of `in`, launched in the widest words it allows.
Status run_strided(StridedMap m, const Tensor& in, Tensor& out, void* stream, const char* what) {
  if (out.numel() == 0) return Status::OK();
  simplify(m);
  const int word = widen(m, static_cast<int>(dtype_size(in.dtype())), addr(in.raw()), addr(out.raw()));
  return cuda_status(launch_strided_copy(m, word, in.raw(), out.raw(), stream), what);
}

// ----------------------------------------------------------------------------------- Concat

class ConcatKernel final : public GpuKernel {
 public:
  ConcatKernel(KernelPtr cpu, int64_t axis) : GpuKernel(std::move(cpu)), axis_(axis) {}

  Status compute(const ComputeContext& ctx) const override {
    Tensor& out = ctx.output(0);
    if (out.numel() == 0) return Status::OK();
    const int r = out.rank();
    const int axis = static_cast<int>(axis_ < 0 ? axis_ + r : axis_);
    const int64_t outer = out.shape().prod(0, axis);
    const int64_t inner_bytes = out.shape().prod(axis + 1, r) * static_cast<int64_t>(dtype_size(out.dtype()));
    void* stream = cuda_context(ctx).stream();
    int64_t at = 0;
    for (int i = 0; i < ctx.num_inputs(); ++i) {
      const Tensor& in = ctx.input(i);
      Pitched p = concat_part(outer, inner_bytes, out.dim(axis), at, in.dim(axis), false);
      at += in.dim(axis);
      if (p.width == 0) continue;
      if (p.rows == 1) {
        MS_CUDA_RETURN_IF_ERROR(
            copy_device_bytes(static_cast<char*>(out.raw()) + p.dst_offset, in.raw(), p.width, stream), "Concat copy");
        continue;
      }
      const int word = pitched_words(p, addr(in.raw()), addr(out.raw()));
      MS_CUDA_RETURN_IF_ERROR(launch_pitched_copy(p, word, in.raw(), out.raw(), stream), "Concat kernel");
    }
    return Status::OK();
  }

 protected:
  Status accept(InferContext& ctx) const override {
    for (int i = 0; i < ctx.num_inputs(); ++i) MS_RETURN_IF_ERROR(accept_movable(ctx, i));
    return Status::OK();
  }

 private:
  int64_t axis_;
};

// ------------------------------------------------------------------------------------ Split

class SplitKernel final : public GpuKernel {
 public:
  SplitKernel(KernelPtr cpu, int64_t axis) : GpuKernel(std::move(cpu)), axis_(axis) {}
  bool host_input(int i) const override { return i == 1; }

  Status compute(const ComputeContext& ctx) const override {
    // The outputs' shapes (inferred from `split` or num_outputs) say where each part starts.
    const Tensor& in = ctx.input(0);
    if (in.numel() == 0) return Status::OK();
    const int r = in.rank();
    const int axis = static_cast<int>(axis_ < 0 ? axis_ + r : axis_);
    const int64_t outer = in.shape().prod(0, axis);
    const int64_t inner_bytes = in.shape().prod(axis + 1, r) * static_cast<int64_t>(dtype_size(in.dtype()));
    void* stream = cuda_context(ctx).stream();
    int64_t at = 0;
    for (int o = 0; o < ctx.num_outputs(); ++o) {
      if (!ctx.has_output(o)) return Internal("split output " + std::to_string(o) + " is missing");
      Tensor& out = ctx.output(o);
      Pitched p = concat_part(outer, inner_bytes, in.dim(axis), at, out.dim(axis), true);
      at += out.dim(axis);
      if (p.width == 0) continue;
      if (p.rows == 1) {
        MS_CUDA_RETURN_IF_ERROR(
            copy_device_bytes(out.raw(), static_cast<const char*>(in.raw()) + p.src_offset, p.width, stream),
            "Split copy");
        continue;
      }
      const int word = pitched_words(p, addr(in.raw()), addr(out.raw()));
      MS_CUDA_RETURN_IF_ERROR(launch_pitched_copy(p, word, in.raw(), out.raw(), stream), "Split kernel");
    }
    return Status::OK();
  }

 protected:
  Status accept(InferContext& ctx) const override { return accept_movable(ctx); }

 private:
  int64_t axis_;
};

// ------------------------------------------------------------------------------------ Slice

// starts, ends, axes, steps (inputs 1 to 4) against `in`: per axis the first element, step and
// length. The CPU's infer has checked the same values; errors here mean they changed.
Status slice_spec(const ComputeContext& ctx, const Shape& in, int64_t* start, int64_t* step, int64_t* len) {
  int64_t v[4][kMaxRank];
  int n[4] = {0, 0, -1, -1};
  const char* names[4] = {"starts", "ends", "axes", "steps"};
  for (int i = 0; i < 4; ++i) {
    if (!ctx.has_input(i + 1)) continue;
    n[i] = read_ints_fixed(ctx.input(i + 1), v[i], kMaxRank);
    if (n[i] < 0) return InvalidArgument(std::string(names[i]) + " must be a 1-D int32/int64 tensor");
  }
  if (n[1] != n[0]) return InvalidArgument("starts and ends must have the same length");
  for (int i = 2; i < 4; ++i)
    if (n[i] >= 0 && n[i] != n[0]) return InvalidArgument(std::string(names[i]) + " must have the length of starts");
  const int r = in.rank();
  bool seen[kMaxRank] = {};
  for (int d = 0; d < r; ++d) start[d] = 0, step[d] = 1, len[d] = in[d];
  for (int i = 0; i < n[0]; ++i) {
    const int64_t a0 = n[2] >= 0 ? v[2][i] : i, a = a0 < 0 ? a0 + r : a0;
    if (a < 0 || a >= r || seen[a])
      return InvalidArgument("axis " + std::to_string(a0) + " is out of range or repeated");
    seen[a] = true;
    const int64_t s = n[3] >= 0 ? v[3][i] : 1;
    if (s == 0) return InvalidArgument("steps must not be 0");
    const SliceAxis sa = slice_axis(in[static_cast<int>(a)], v[0][i], v[1][i], s);
    start[a] = sa.start;
    step[a] = s;
    len[a] = sa.len;
  }
  return Status::OK();
}

class SliceKernel final : public GpuKernel {
 public:
  explicit SliceKernel(KernelPtr cpu) : GpuKernel(std::move(cpu)) {}
  bool host_input(int i) const override { return i >= 1 && i <= 4; }

  Status compute(const ComputeContext& ctx) const override {
    const Tensor& in = ctx.input(0);
    Tensor& out = ctx.output(0);
    if (out.numel() == 0) return Status::OK();
    int64_t start[kMaxRank], step[kMaxRank], len[kMaxRank];
    MS_RETURN_IF_ERROR(slice_spec(ctx, in.shape(), start, step, len));
    for (int d = 0; d < in.rank(); ++d)
      if (len[d] != out.dim(d)) return Internal("Slice: the output shape does not match the slice");
    return run_strided(slice_map(in.rank(), in.shape().begin(), start, step, len), in, out, cuda_context(ctx).stream(),
                       "Slice kernel");
  }

 protected:
  Status accept(InferContext& ctx) const override { return accept_movable(ctx); }
};

// ----------------------------------------------------------------------------------- Expand

class ExpandKernel final : public GpuKernel {
 public:
  explicit ExpandKernel(KernelPtr cpu) : GpuKernel(std::move(cpu)) {}
  bool host_input(int i) const override { return i == 1; }

  Status compute(const ComputeContext& ctx) const override {
    const Tensor& in = ctx.input(0);
    Tensor& out = ctx.output(0);
    if (in.rank() > out.rank()) return Internal("Expand: the output has a lower rank than the input");
    return run_strided(expand_map(in.rank(), in.shape().begin(), out.rank(), out.shape().begin()), in, out,
                       cuda_context(ctx).stream(), "Expand kernel");
  }

 protected:
  Status accept(InferContext& ctx) const override { return accept_movable(ctx); }
};

// ------------------------------------------------------------------------------------- Tile

bool tile_of(const Shape& in, const Shape& out, StridedMap* m) {
  int64_t reps[kMaxRank];
  for (int d = 0; d < in.rank(); ++d) reps[d] = out[d] / in[d];
  return tile_map(in.rank(), in.begin(), reps, m);
}

class TileKernel final : public GpuKernel {
 public:
  explicit TileKernel(KernelPtr cpu) : GpuKernel(std::move(cpu)) {}
  bool host_input(int i) const override { return i == 1; }

  Status compute(const ComputeContext& ctx) const override {
    const Tensor& in = ctx.input(0);
    Tensor& out = ctx.output(0);
    if (out.numel() == 0) return Status::OK();
    StridedMap m;
    if (!tile_of(in.shape(), out.shape(), &m)) return Internal("Tile: accepted a tiling the kernel cannot walk");
    return run_strided(m, in, out, cuda_context(ctx).stream(), "Tile kernel");
  }

 protected:
  Status accept(InferContext& ctx) const override {
    MS_RETURN_IF_ERROR(accept_movable(ctx));
    const Shape& in = ctx.shape(0);
    const Shape& out = ctx.output(0).shape;
    if (out.numel() == 0) return Status::OK();
    StridedMap m;
    if (!tile_of(in, out, &m))
      return InferContext::refuse("the GPU Tile walks at most " + std::to_string(StridedMap::kMaxDims) +
                                  " strided dims, tiling " + in.str() + " to " + out.str() + " needs more");
    return Status::OK();
  }
};

// -------------------------------------------------------------------------------------- Pad

class PadKernel final : public GpuKernel {
 public:
  PadKernel(KernelPtr cpu, int mode) : GpuKernel(std::move(cpu)), mode_(mode) {}
  bool host_input(int i) const override { return i >= 1 && i <= 3; }

  Status compute(const ComputeContext& ctx) const override {
    const Tensor& in = ctx.input(0);
    Tensor& out = ctx.output(0);
    if (out.numel() == 0) return Status::OK();
    const int r = in.rank();
    int64_t pads[2 * kMaxRank], axes[kMaxRank];
    const int np = read_ints_fixed(ctx.input(1), pads, 2 * kMaxRank);
    if (np < 0) return InvalidArgument("pads must be a 1-D int tensor of at most 16 values");
    int na = -1;
    if (ctx.has_input(3)) {
      na = read_ints_fixed(ctx.input(3), axes, kMaxRank);
      if (na < 0) return InvalidArgument("axes must be a 1-D int tensor of at most 8 values");
    }
    const int k = na >= 0 ? na : r;
    if (np != 2 * k) return InvalidArgument("pads must have 2 values per padded axis");
    int64_t begin[kMaxRank] = {}, end[kMaxRank] = {};
    bool seen[kMaxRank] = {};
    for (int i = 0; i < k; ++i) {
      const int64_t a0 = na >= 0 ? axes[i] : i, a = a0 < 0 ? a0 + r : a0;
      if (a < 0 || a >= r || seen[a])
        return InvalidArgument("axis " + std::to_string(a0) + " is out of range or repeated");
      seen[a] = true;
      begin[a] = pads[i];
      end[a] = pads[k + i];
    }
    PadMap m;
    int bad = 0;
    if (!make_pad_map(r, in.shape().begin(), begin, end, mode_, &m, &bad))
      return InvalidArgument("pads cannot be applied to dimension " + std::to_string(bad) + " of shape " +
                             in.shape().str());
    // The constant in the data's dtype (accept refused the conversions not done here).
    alignas(8) unsigned char value[8] = {};
    if (ctx.has_input(2) && ctx.input(2).numel() > 0) {
      const Tensor& c = ctx.input(2);
      if (c.dtype() == in.dtype()) {
        std::memcpy(value, c.raw(), dtype_size(in.dtype()));
      } else if (c.dtype() == DType::kFloat32 && in.dtype() == DType::kFloat64) {
        const double v = c.data<float>()[0];
        std::memcpy(value, &v, sizeof(v));
      } else {
        return Internal("Pad: constant_value of an unexpected dtype");
      }
    }
    return cuda_status(
        launch_pad(m, static_cast<int>(dtype_size(in.dtype())), in.raw(), out.raw(), value, cuda_context(ctx).stream()),
        "Pad kernel");
  }

 protected:
  Status accept(InferContext& ctx) const override {
    MS_RETURN_IF_ERROR(accept_movable(ctx));
    if (ctx.has_input(2) && ctx.dtype(2) != ctx.dtype(0) &&
        !(ctx.dtype(2) == DType::kFloat32 && ctx.dtype(0) == DType::kFloat64))
      return InferContext::refuse(std::string("the GPU Pad takes a constant_value of the data's dtype (or float32 "
                                              "for float64 data), got ") +
                                  dtype_name(ctx.dtype(2)) + " for " + dtype_name(ctx.dtype(0)));
    return Status::OK();
  }

 private:
  int mode_;
};

}  // namespace

StatusOr<KernelPtr> create_gpu_concat_slice(const Node& node, const KernelInit&, KernelPtr cpu, const GpuOptions&) {
  const std::string& op = node.op_type;
  if (op == "Concat") return KernelPtr(new ConcatKernel(std::move(cpu), node.attr_int("axis", 0)));
  if (op == "Split") return KernelPtr(new SplitKernel(std::move(cpu), node.attr_int("axis", 0)));
  if (op == "Slice") return KernelPtr(new SliceKernel(std::move(cpu)));
  if (op == "Expand") return KernelPtr(new ExpandKernel(std::move(cpu)));
  if (op == "Tile") return KernelPtr(new TileKernel(std::move(cpu)));
  if (op == "Pad") {
    // The CPU's factory has accepted the mode for this opset.
    const std::string m = node.attr_string("mode", "constant");
    const int mode = m == "reflect" ? kPadReflect : m == "edge" ? kPadEdge : m == "wrap" ? kPadWrap : kPadConstant;
    return KernelPtr(new PadKernel(std::move(cpu), mode));
  }
  return Unsupported(op + " is not in the GPU concat_slice family");
}

}  // namespace mserve::gpu
