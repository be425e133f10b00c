// Flatten, Reshape, Transpose, Unsqueeze, Squeeze, Identity, Shape, Size, Dropout: ops that keep
// the input's elements and change at most their shape or order, or report the input's shape.
//
// All but Size and Dropout work for every dtype, strings included: they only move bytes (strings
// are assigned element-wise). Shape and Size read only the input's shape. Dropout runs as
// inference: the output is the input and the optional mask is all true (ones before opset 10);
// training mode with a nonzero ratio draws random numbers and is Unsupported.
// Shape-changing views copy the input bytes into the preallocated output, unless the planner
// gave both the same arena memory (output_is_input_view). Negative axes are accepted at every opset (the spec allows
// them from opset 11; earlier models that use them are invalid, but their meaning is unambiguous).
#include <algorithm>
#include <string>
#include <vector>

#include "core/kernels/common.h"
#include "core/kernels/copy_view.h"
#include "core/kernels/registry.h"
#include "core/parallel/thread_pool.h"

namespace mserve {
namespace {

// ---------------------------------------------------------------------------------- Flatten

class FlattenKernel final : public Kernel {
 public:
  bool supports_strings() const override { return true; }
  explicit FlattenKernel(int64_t axis) : axis_(axis) {}
  Status infer(InferContext& ctx) const override {
    MS_CHECK_ARG(ctx.has_input(0), "needs an input");
    const Shape& s = ctx.shape(0);
    const int r = s.rank();
    // Unlike most axes, Flatten's axis may equal the rank (everything goes to the first dim).
    const int64_t a = axis_ < 0 ? axis_ + r : axis_;
    if (a < 0 || a > r)
      return InvalidArgument("axis " + std::to_string(axis_) + " is out of range for rank " + std::to_string(r));
    const int ai = static_cast<int>(a);
    ctx.set_output(0, ctx.dtype(0), Shape{s.prod(0, ai), s.prod(ai, r)});
    return Status::OK();
  }
  Status compute(const ComputeContext& ctx) const override { return copy_input_to_output(ctx); }
  bool output_is_input_view() const override { return true; }

 private:
  int64_t axis_;
};

// ---------------------------------------------------------------------------------- Reshape

class ReshapeKernel final : public Kernel {
 public:
  bool supports_strings() const override { return true; }
  explicit ReshapeKernel(bool allowzero) : allowzero_(allowzero) {}
  Status infer(InferContext& ctx) const override {
    MS_CHECK_ARG(ctx.has_input(0) && ctx.has_input(1), "needs data and shape inputs");
    const Tensor* st = ctx.value(1);
    if (!st) return ctx.need_value();
    MS_ASSIGN_OR_RETURN(std::vector<int64_t> req, read_ints(*st, "shape"));
    if (!Shape::fits(req.size()))
      return Unsupported("target rank " + std::to_string(req.size()) + " exceeds the maximum " +
                         std::to_string(Shape::kMaxRank));
    const Shape& in = ctx.shape(0);
    Shape out;
    int infer_at = -1;
    bool has_zero = false;
    for (size_t i = 0; i < req.size(); ++i) {
      int64_t d = req[i];
      if (d == -1) {
        if (infer_at >= 0) return InvalidArgument("shape " + ints_str(req) + " has more than one -1");
        infer_at = static_cast<int>(i);
        d = 1;  // placeholder, replaced below
      } else if (d < -1) {
        return InvalidArgument("shape " + ints_str(req) + " has invalid dimension " + std::to_string(d));
      } else if (d == 0) {
        if (allowzero_) {
          has_zero = true;
        } else {
          if (static_cast<int>(i) >= in.rank())
            return InvalidArgument("shape " + ints_str(req) + " copies dimension " + std::to_string(i) +
                                   " (0) which input shape " + in.str() + " does not have");
          d = in[static_cast<int>(i)];
        }
      }
      out.push_back(d);
    }
    if (allowzero_ && has_zero && infer_at >= 0)
      return InvalidArgument("shape " + ints_str(req) + " has both 0 and -1 while allowzero=1");
    const int64_t total = in.numel();
    if (infer_at >= 0) {
      const int64_t known = out.numel();  // the placeholder counts as 1
      if (known == 0 || total % known != 0)
        return InvalidArgument("cannot reshape input of shape " + in.str() + " to " + ints_str(req));
      out[infer_at] = total / known;
    }
    if (out.numel() != total)
      return InvalidArgument("cannot reshape input of shape " + in.str() + " (" + std::to_string(total) +
                             " elements) to " + out.str());
    ctx.set_output(0, ctx.dtype(0), out);
    return Status::OK();
  }
  Status compute(const ComputeContext& ctx) const override { return copy_input_to_output(ctx); }
  bool output_is_input_view() const override { return true; }

 private:
  bool allowzero_;
};

// -------------------------------------------------------------------------------- Transpose

// out[b][c][r] = in[b][r][c] for in [B, R, C]. In 32x32 tiles so both sides stay in cache (an
// element-wise walk strides through one side: NCHW -> NHWC of a 32x3x64x64 image batch took
// 280 us that way); with few rows or columns (image channels), long runs along the other side.
template <class T>
void transpose_tiles(const T* in, T* out, int64_t B, int64_t R, int64_t C, ThreadPool& pool) {
  const bool narrow_c = C <= 16, narrow_r = !narrow_c && R <= 16;
  const int64_t tr = narrow_c ? 1024 : (narrow_r ? R : 32), tc = narrow_r ? 1024 : (narrow_c ? C : 32);
  const int64_t tiles_r = (R + tr - 1) / tr, tiles_c = (C + tc - 1) / tc;
  pool.parallel_for(B * tiles_r * tiles_c, std::max<int64_t>(1, 16384 / (tr * tc)), [&](int64_t q0, int64_t q1) {
    for (int64_t q = q0; q < q1; ++q) {
      const int64_t b = q / (tiles_r * tiles_c), rest = q % (tiles_r * tiles_c);
      const int64_t r0 = rest / tiles_c * tr, r1 = std::min(R, r0 + tr);
      const int64_t c0 = rest % tiles_c * tc, c1 = std::min(C, c0 + tc);
      const T* src = in + b * R * C;
      T* dst = out + b * R * C;
      if (narrow_c) {  // each output row (fixed c) is written contiguously
        for (int64_t c = c0; c < c1; ++c)
          for (int64_t r = r0; r < r1; ++r) dst[c * R + r] = src[r * C + c];
      } else {  // each input row (fixed r) is read contiguously
        for (int64_t r = r0; r < r1; ++r)
          for (int64_t c = c0; c < c1; ++c) dst[c * R + r] = src[r * C + c];
      }
    }
  });
}

class TransposeKernel final : public Kernel {
 public:
  bool supports_strings() const override { return true; }
  explicit TransposeKernel(std::vector<int64_t> perm) : perm_(std::move(perm)) {}

  Status infer(InferContext& ctx) const override {
    MS_CHECK_ARG(ctx.has_input(0), "needs an input");
    const Shape& s = ctx.shape(0);
    const int r = s.rank();
    if (!perm_.empty()) {
      if (static_cast<int>(perm_.size()) != r)
        return InvalidArgument("perm " + ints_str(perm_) + " has " + std::to_string(perm_.size()) +
                               " entries for an input of rank " + std::to_string(r));
      bool seen[Shape::kMaxRank] = {};
      for (int64_t p : perm_) {
        if (p < 0 || p >= r || seen[p]) return InvalidArgument("perm " + ints_str(perm_) + " is not a permutation");
        seen[p] = true;
      }
    }
    int perm[Shape::kMaxRank];
    fill_perm(r, perm);
    Shape out;
    for (int i = 0; i < r; ++i) out.push_back(s[perm[i]]);
    ctx.set_output(0, ctx.dtype(0), out);
    return Status::OK();
  }

  Status compute(const ComputeContext& ctx) const override {
    const Tensor& in = ctx.input(0);
    Tensor& out = ctx.output(0);
    if (in.numel() == 0) return Status::OK();
    const int r = in.rank();
    int perm[Shape::kMaxRank];
    fill_perm(r, perm);

    // Simplify: drop size-1 input dims, then merge output-adjacent dims that are also adjacent
    // (in the same order) in the input. Often turns e.g. NCHW->NHWC into a 3-D problem.
    int newpos[Shape::kMaxRank];
    int n = 0;
    for (int d = 0; d < r; ++d) newpos[d] = in.dim(d) == 1 ? -1 : n++;
    int p[Shape::kMaxRank];
    int m = 0;
    for (int i = 0; i < r; ++i)
      if (newpos[perm[i]] >= 0) p[m++] = newpos[perm[i]];
    int64_t sdims[Shape::kMaxRank];
    for (int d = 0; d < r; ++d)
      if (newpos[d] >= 0) sdims[newpos[d]] = in.dim(d);
    // Groups of output positions: group g starts at input dim gstart[g], spans glen[g] dims.
    int gstart[Shape::kMaxRank], glen[Shape::kMaxRank];
    int ng = 0;
    for (int i = 0; i < m; ++i) {
      if (ng > 0 && p[i] == gstart[ng - 1] + glen[ng - 1]) {
        ++glen[ng - 1];
      } else {
        gstart[ng] = p[i];
        glen[ng] = 1;
        ++ng;
      }
    }
    const size_t esize = dtype_size(in.dtype());
    bool identity = true;
    for (int g = 1; g < ng; ++g) identity = identity && gstart[g] > gstart[g - 1];
    if (identity) return copy_input_to_output(ctx);  // order preserved: same bytes
    if (in.dtype() == DType::kString) {
      // Strings are assigned one by one: output dim i walks input dim perm[i].
      int64_t in_stride[Shape::kMaxRank];
      int64_t s = static_cast<int64_t>(sizeof(std::string));
      for (int d = r - 1; d >= 0; --d) {
        in_stride[d] = s;
        s *= in.dim(d);
      }
      StridedView v;
      for (int i = 0; i < r; ++i) v.push(in.dim(perm[i]), in_stride[perm[i]]);
      strided_copy(static_cast<const char*>(in.raw()), static_cast<char*>(out.raw()), v, DType::kString, ctx.pool());
      return Status::OK();
    }

    // Input stride (elements) of each group: product of input dims after the group's last dim.
    int64_t gdim[Shape::kMaxRank], gstride[Shape::kMaxRank];
    for (int g = 0; g < ng; ++g) {
      gdim[g] = 1;
      for (int k = 0; k < glen[g]; ++k) gdim[g] *= sdims[gstart[g] + k];
      gstride[g] = 1;
      for (int d = gstart[g] + glen[g]; d < n; ++d) gstride[g] *= sdims[d];
    }
    // A (batched) matrix transpose, [B, R, C] -> [B, C, R] (NCHW <-> NHWC is one): in tiles.
    const bool matrix = ng == 2;  // output (C, R) of input (R, C)
    const bool batched = ng == 3 && gstart[0] < gstart[2] && gstart[2] < gstart[1];
    if ((matrix || batched) && (esize == 4 || esize == 8 || esize == 2 || esize == 1)) {
      const int64_t B = batched ? gdim[0] : 1, R = matrix ? gdim[1] : gdim[2], C = matrix ? gdim[0] : gdim[1];
      const void* src = in.raw();
      void* dst = out.raw();
      switch (esize) {
        case 1:
          transpose_tiles(static_cast<const uint8_t*>(src), static_cast<uint8_t*>(dst), B, R, C, ctx.pool());
          break;
        case 2:
          transpose_tiles(static_cast<const uint16_t*>(src), static_cast<uint16_t*>(dst), B, R, C, ctx.pool());
          break;
        case 4:
          transpose_tiles(static_cast<const uint32_t*>(src), static_cast<uint32_t*>(dst), B, R, C, ctx.pool());
          break;
        default:
          transpose_tiles(static_cast<const uint64_t*>(src), static_cast<uint64_t*>(dst), B, R, C, ctx.pool());
          break;
      }
      return Status::OK();
    }
    // When the last output group is the input's innermost (stride 1), whole runs of it are
    // contiguous on both sides: treat each as one unit.
    size_t unit = esize;
    int nd = ng;
    if (gstride[ng - 1] == 1) {
      unit = esize * static_cast<size_t>(gdim[ng - 1]);
      nd = ng - 1;
      for (int g = 0; g < nd; ++g) gstride[g] /= gdim[ng - 1];
    }
    StridedView v;
    for (int g = 0; g < nd; ++g) v.push(gdim[g], gstride[g] * static_cast<int64_t>(unit));
    strided_copy(static_cast<const char*>(in.raw()), static_cast<char*>(out.raw()), v, unit, ctx.pool());
    return Status::OK();
  }

 private:
  void fill_perm(int r, int* perm) const {
    for (int i = 0; i < r; ++i) perm[i] = perm_.empty() ? r - 1 - i : static_cast<int>(perm_[i]);
  }
  std::vector<int64_t> perm_;  // empty: reverse the dims
};

// ----------------------------------------------------------------------- Unsqueeze / Squeeze

// The axes come from input 1 (the importer turns the `axes` attribute of opsets before 13 into
// that input).

class UnsqueezeKernel final : public Kernel {
 public:
  bool supports_strings() const override { return true; }
  Status infer(InferContext& ctx) const override {
    MS_CHECK_ARG(ctx.has_input(0), "needs a data input");
    MS_CHECK_ARG(ctx.has_input(1), "needs an axes input (opset 13+)");
    const Tensor* t = ctx.value(1);
    if (!t) return ctx.need_value();
    MS_ASSIGN_OR_RETURN(std::vector<int64_t> axes, read_ints(*t, "axes"));
    const Shape& in = ctx.shape(0);
    const size_t out_rank = static_cast<size_t>(in.rank()) + axes.size();
    if (!Shape::fits(out_rank))
      return Unsupported("output rank " + std::to_string(out_rank) + " exceeds the maximum " +
                         std::to_string(Shape::kMaxRank));
    const int r = static_cast<int>(out_rank);
    bool inserted[Shape::kMaxRank] = {};
    for (int64_t a : axes) {
      auto na = normalize_axis(a, r);
      if (!na.ok()) return na.status();
      if (inserted[na.value()]) return InvalidArgument("axes " + ints_str(axes) + " repeat an axis");
      inserted[na.value()] = true;
    }
    Shape out;
    for (int i = 0, j = 0; i < r; ++i) out.push_back(inserted[i] ? 1 : in[j++]);
    ctx.set_output(0, ctx.dtype(0), out);
    return Status::OK();
  }
  Status compute(const ComputeContext& ctx) const override { return copy_input_to_output(ctx); }
  bool output_is_input_view() const override { return true; }
};

class SqueezeKernel final : public Kernel {
 public:
  bool supports_strings() const override { return true; }
  Status infer(InferContext& ctx) const override {
    MS_CHECK_ARG(ctx.has_input(0), "needs a data input");
    std::vector<int64_t> axes;
    if (ctx.has_input(1)) {
      const Tensor* t = ctx.value(1);
      if (!t) return ctx.need_value();
      MS_ASSIGN_OR_RETURN(axes, read_ints(*t, "axes"));
    }
    const Shape& in = ctx.shape(0);
    const int r = in.rank();
    bool drop[Shape::kMaxRank] = {};
    if (axes.empty()) {
      for (int i = 0; i < r; ++i) drop[i] = in[i] == 1;
    } else {
      for (int64_t a : axes) {
        MS_ASSIGN_OR_RETURN(int na, normalize_axis(a, r));
        if (drop[na]) return InvalidArgument("axes " + ints_str(axes) + " repeat an axis");
        if (in[na] != 1)
          return InvalidArgument("cannot squeeze axis " + std::to_string(a) + " of shape " + in.str() +
                                 ": its size is not 1");
        drop[na] = true;
      }
    }
    Shape out;
    for (int i = 0; i < r; ++i)
      if (!drop[i]) out.push_back(in[i]);
    ctx.set_output(0, ctx.dtype(0), out);
    return Status::OK();
  }
  Status compute(const ComputeContext& ctx) const override { return copy_input_to_output(ctx); }
  bool output_is_input_view() const override { return true; }
};

// --------------------------------------------------------------------------------- Identity

class IdentityKernel final : public Kernel {
 public:
  bool supports_strings() const override { return true; }
  Status infer(InferContext& ctx) const override {
    MS_CHECK_ARG(ctx.has_input(0), "needs an input");
    ctx.set_output(0, ctx.dtype(0), ctx.shape(0));
    return Status::OK();
  }
  Status compute(const ComputeContext& ctx) const override { return copy_input_to_output(ctx); }
  bool output_is_input_view() const override { return true; }
};

// ------------------------------------------------------------------------------------ Shape

class ShapeKernel final : public Kernel {
 public:
  ShapeKernel(bool has_end, int64_t start, int64_t end) : has_end_(has_end), start_(start), end_(end) {}
  bool reads_input_data() const override { return false; }
  Status infer(InferContext& ctx) const override {
    MS_CHECK_ARG(ctx.has_input(0), "needs an input");
    int b, e;
    range(ctx.shape(0).rank(), &b, &e);
    ctx.set_output(0, DType::kInt64, Shape{e - b});
    return Status::OK();
  }
  Status compute(const ComputeContext& ctx) const override {
    const Shape& s = ctx.input(0).shape();
    int b, e;
    range(s.rank(), &b, &e);
    int64_t* out = ctx.output(0).data<int64_t>();
    for (int i = b; i < e; ++i) out[i - b] = s[i];
    return Status::OK();
  }

 private:
  // [b, e) of the dims to report: negative bounds count from the end, then both are clamped
  // to [0, rank]; an empty range when b >= e.
  void range(int r, int* b, int* e) const {
    auto clamp = [r](int64_t v) {
      if (v < 0) v += r;
      return static_cast<int>(std::min<int64_t>(std::max<int64_t>(v, 0), r));
    };
    *b = clamp(start_);
    *e = has_end_ ? clamp(end_) : r;
    if (*e < *b) *e = *b;
  }
  bool has_end_;
  int64_t start_, end_;
};

// ------------------------------------------------------------------------------------- Size

class SizeKernel final : public Kernel {
 public:
  Status infer(InferContext& ctx) const override {
    MS_CHECK_ARG(ctx.has_input(0), "needs an input");
    ctx.set_output(0, DType::kInt64, Shape{});
    return Status::OK();
  }
  Status compute(const ComputeContext& ctx) const override {
    *ctx.output(0).data<int64_t>() = ctx.input(0).numel();
    return Status::OK();
  }
  bool reads_input_data() const override { return false; }
};

// ---------------------------------------------------------------------------------- Dropout

class DropoutKernel final : public Kernel {
 public:
  explicit DropoutKernel(int opset) : opset_(opset) {}

  Status infer(InferContext& ctx) const override {
    MS_CHECK_ARG(ctx.has_input(0), "needs a data input");
    if (opset_ >= 12) {
      if (ctx.has_input(1) && (ctx.shape(1).numel() != 1 || !dtype_is_float(ctx.dtype(1))))
        return InvalidArgument("ratio must be a float scalar");
      if (ctx.has_input(2) && (ctx.shape(2).numel() != 1 || ctx.dtype(2) != DType::kBool))
        return InvalidArgument("training_mode must be a bool scalar");
      if (ctx.value(2) && ctx.value(2)->int_at(0) != 0 && (!ctx.has_input(1) || ctx.value(1)))
        MS_RETURN_IF_ERROR(check_ratio(ctx.has_input(1) ? ctx.value(1)->float_at(0) : 0.5));
    }
    ctx.set_output(0, ctx.dtype(0), ctx.shape(0));
    if (ctx.num_outputs() > 1) ctx.set_output(1, opset_ >= 10 ? DType::kBool : ctx.dtype(0), ctx.shape(0));
    return Status::OK();
  }

  Status compute(const ComputeContext& ctx) const override {
    if (opset_ >= 12 && ctx.has_input(2) && ctx.input(2).int_at(0) != 0)
      MS_RETURN_IF_ERROR(check_ratio(ctx.has_input(1) ? ctx.input(1).float_at(0) : 0.5));
    MS_RETURN_IF_ERROR(copy_input_to_output(ctx));
    if (ctx.has_output(1)) {
      Tensor& mask = ctx.output(1);
      MS_SWITCH_ALL(mask.dtype(), T, return Internal("Dropout mask dtype"), {
        const T one = one_of<T>();
        fill_bytes(mask.raw(), mask.numel(), &one, sizeof(T), ctx.pool());
      });
    }
    return Status::OK();
  }

 private:
  static Status check_ratio(double ratio) {
    if (ratio != 0.0)
      return Unsupported("Dropout in training mode with ratio " + std::to_string(ratio) +
                         " (random) is not supported; only inference");
    return Status::OK();
  }
  int opset_;
};

}  // namespace

StatusOr<KernelPtr> create_onnx_Flatten(const Node& node, const KernelInit&) {
  return KernelPtr(new FlattenKernel(node.attr_int("axis", 1)));
}

StatusOr<KernelPtr> create_onnx_Reshape(const Node& node, const KernelInit&) {
  // allowzero appeared in opset 14; earlier models never set it.
  const bool allowzero = node.opset >= 14 && node.attr_int("allowzero", 0) != 0;
  return KernelPtr(new ReshapeKernel(allowzero));
}

StatusOr<KernelPtr> create_onnx_Transpose(const Node& node, const KernelInit&) {
  return KernelPtr(new TransposeKernel(node.attr_ints("perm")));
}

StatusOr<KernelPtr> create_onnx_Unsqueeze(const Node&, const KernelInit&) { return KernelPtr(new UnsqueezeKernel()); }

StatusOr<KernelPtr> create_onnx_Squeeze(const Node&, const KernelInit&) { return KernelPtr(new SqueezeKernel()); }

StatusOr<KernelPtr> create_onnx_Identity(const Node&, const KernelInit&) { return KernelPtr(new IdentityKernel()); }

StatusOr<KernelPtr> create_onnx_Shape(const Node& node, const KernelInit&) {
  // start/end appeared in opset 15.
  if (node.opset < 15) return KernelPtr(new ShapeKernel(false, 0, 0));
  return KernelPtr(new ShapeKernel(node.attr("end") != nullptr, node.attr_int("start", 0), node.attr_int("end", 0)));
}

StatusOr<KernelPtr> create_onnx_Size(const Node&, const KernelInit&) { return KernelPtr(new SizeKernel()); }

StatusOr<KernelPtr> create_onnx_Dropout(const Node& node, const KernelInit&) {
  return KernelPtr(new DropoutKernel(node.opset));
}

}  // namespace mserve
