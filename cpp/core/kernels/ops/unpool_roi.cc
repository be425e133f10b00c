// MaxUnpool (opsets 9, 11, 22) and RoiAlign (opsets 10, 16, 22).
//
// MaxUnpool: X [N, C, D1..Dk] and I (int64, X's shape: flat indices into the unpooled tensor, as
//   MaxPool's Indices output gives them) -> Y zero-filled with Y.flat[I[i]] = X.flat[i]. The
//   unpooled shape is Di' = (Di - 1) * stride - pad_begin - pad_end + kernel; an output_shape
//   input makes Y larger, the unpooled block sitting at its origin (indices still address the
//   unpooled shape), as the ONNX reference does.
// RoiAlign: X [N, C, H, W], rois [R, 4] (x1, y1, x2, y2), batch_indices [R] -> Y [R, C, oh, ow].
//   Each output bin averages (mode avg) or takes the max (mode max: of each sample's four
//   weighted corner values, as ONNX Runtime does) over a grid of bilinear samples
//   (sampling_ratio per side, or ceil(roi size / output size) when 0). Opset 16 adds
//   coordinate_transformation_mode: half_pixel (default; coordinates shifted by -0.5) or
//   output_half_pixel (opset 10's behaviour: no shift, rois at least 1x1).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <type_traits>

#include "core/parallel/thread_pool.h"
#include "core/kernels/common.h"
#include "core/kernels/registry.h"

namespace mserve {
namespace {

class MaxUnpoolKernel final : public Kernel {
 public:
  MaxUnpoolKernel(std::vector<int64_t> kernel, std::vector<int64_t> pads, std::vector<int64_t> strides)
      : kernel_(std::move(kernel)), pads_(std::move(pads)), strides_(std::move(strides)) {}

  Status infer(InferContext& ctx) const override {
    const Shape& s = ctx.shape(0);
    const int k = static_cast<int>(kernel_.size());
    MS_CHECK_ARG(s.rank() == k + 2, "X has shape " + s.str() + " for a " + std::to_string(k) + "-D kernel");
    MS_CHECK_ARG(ctx.shape(1) == s, "indices have shape " + ctx.shape(1).str() + ", X has " + s.str());
    MS_CHECK_ARG(ctx.dtype(1) == DType::kInt64, "indices must be int64");
    if (ctx.dtype(0) == DType::kBool || ctx.dtype(0) == DType::kUndefined)
      return Unsupported(std::string("dtype ") + dtype_name(ctx.dtype(0)) + " is not supported");
    MS_ASSIGN_OR_RETURN(Shape unpooled, unpooled_shape(s));
    Shape out = unpooled;
    if (ctx.has_input(2)) {
      const Tensor* os = ctx.value(2);
      if (!os) return ctx.need_value();
      MS_ASSIGN_OR_RETURN(std::vector<int64_t> v, read_ints(*os, "output_shape"));
      MS_CHECK_ARG(static_cast<int>(v.size()) == s.rank(),
                   "output_shape must have " + std::to_string(s.rank()) + " values");
      for (int i = 0; i < s.rank(); ++i)
        MS_CHECK_ARG(v[i] >= unpooled[i] && (i >= 2 || v[i] == unpooled[i]),
                     "output_shape " + ints_str(v) + " is smaller than the unpooled shape " + unpooled.str());
      out = Shape(v.begin(), v.end());
    }
    ctx.set_output(0, ctx.dtype(0), out);
    return Status::OK();
  }

  Status compute(const ComputeContext& ctx) const override {
    const Tensor& x = ctx.input(0);
    const Tensor& idx = ctx.input(1);
    Tensor& y = ctx.output(0);
    const Shape unpooled = unpooled_shape(x.shape()).value(), &out = y.shape();
    const int rank = out.rank();
    const size_t es = dtype_size(x.dtype());
    const int64_t total = unpooled.numel();
    std::memset(y.raw(), 0, y.nbytes());
    const int64_t* ip = idx.data<int64_t>();
    const char* src = static_cast<const char*>(x.raw());
    char* dst = static_cast<char*>(y.raw());
    for (int64_t i = 0; i < x.numel(); ++i) {
      int64_t f = ip[i];
      MS_CHECK_ARG(f >= 0 && f < total,
                   "index " + std::to_string(f) + " is outside the unpooled shape " + unpooled.str());
      // Position in the unpooled shape -> flat offset in Y.
      int64_t o = 0, stride = 1;
      for (int a = rank - 1; a >= 0; --a) {
        o += (f % unpooled[a]) * stride;
        f /= unpooled[a];
        stride *= out[a];
      }
      std::memcpy(dst + o * es, src + i * es, es);
    }
    return Status::OK();
  }

 private:
  StatusOr<Shape> unpooled_shape(const Shape& s) const {
    Shape out = s;
    const size_t k = kernel_.size();
    for (size_t d = 0; d < k; ++d) {
      const int64_t stride = strides_.empty() ? 1 : strides_[d];
      const int64_t pb = pads_.empty() ? 0 : pads_[d], pe = pads_.empty() ? 0 : pads_[k + d];
      out[static_cast<int>(d) + 2] = (s[static_cast<int>(d) + 2] - 1) * stride - pb - pe + kernel_[d];
      MS_CHECK_ARG(out[static_cast<int>(d) + 2] >= 0, "negative unpooled length");
    }
    return out;
  }

  std::vector<int64_t> kernel_, pads_, strides_;
};

class RoiAlignKernel final : public Kernel {
 public:
  RoiAlignKernel(bool max_mode, int64_t oh, int64_t ow, int64_t ratio, float scale, bool half_pixel)
      : max_(max_mode), oh_(oh), ow_(ow), ratio_(ratio), scale_(scale), half_pixel_(half_pixel) {}

  Status infer(InferContext& ctx) const override {
    if (!dtype_is_float(ctx.dtype(0)))
      return Unsupported(std::string("dtype ") + dtype_name(ctx.dtype(0)) + " is not supported");
    const Shape &x = ctx.shape(0), &r = ctx.shape(1), &b = ctx.shape(2);
    MS_CHECK_ARG(x.rank() == 4, "X must be 4-D [N, C, H, W], got " + x.str());
    MS_CHECK_ARG(r.rank() == 2 && r[1] == 4, "rois must be [num_rois, 4], got " + r.str());
    MS_CHECK_ARG(b.rank() == 1 && b[0] == r[0], "batch_indices must be [num_rois], got " + b.str());
    MS_CHECK_ARG(dtype_is_float(ctx.dtype(1)), "rois must be floating point");
    MS_CHECK_ARG(ctx.dtype(2) == DType::kInt64 || ctx.dtype(2) == DType::kInt32, "batch_indices must be int64");
    ctx.set_output(0, ctx.dtype(0), Shape{r[0], x[1], oh_, ow_});
    return Status::OK();
  }

  Status compute(const ComputeContext& ctx) const override {
    const Tensor& x = ctx.input(0);
    for (int64_t i = 0; i < ctx.input(2).numel(); ++i) {
      const int64_t b = ctx.input(2).int_at(i);
      MS_CHECK_ARG(b >= 0 && b < x.dim(0), "batch index " + std::to_string(b) + " out of range");
    }
    MS_SWITCH_FLOAT(x.dtype(), T, return Unsupported("dtype"), run<T>(ctx));
    return Status::OK();
  }

 private:
  template <class T>
  void run(const ComputeContext& ctx) const {
    using Acc = std::conditional_t<std::is_same_v<T, double>, double, float>;
    const Tensor &x = ctx.input(0), &rois = ctx.input(1), &bidx = ctx.input(2);
    Tensor& y = ctx.output(0);
    const int64_t C = x.dim(1), H = x.dim(2), W = x.dim(3), R = rois.dim(0);
    const T* xs = x.data<T>();
    T* ys = y.data<T>();
    ctx.pool().parallel_for(R * C, 1, [&](int64_t begin, int64_t end) {
      for (int64_t rc = begin; rc < end; ++rc) {
        const int64_t r = rc / C, c = rc % C;
        const Acc off = half_pixel_ ? Acc(0.5) : Acc(0);
        const Acc x1 = static_cast<Acc>(rois.float_at(r * 4 + 0)) * scale_ - off;
        const Acc y1 = static_cast<Acc>(rois.float_at(r * 4 + 1)) * scale_ - off;
        const Acc x2 = static_cast<Acc>(rois.float_at(r * 4 + 2)) * scale_ - off;
        const Acc y2 = static_cast<Acc>(rois.float_at(r * 4 + 3)) * scale_ - off;
        Acc rw = x2 - x1, rh = y2 - y1;
        if (!half_pixel_) {
          rw = std::max(rw, Acc(1));
          rh = std::max(rh, Acc(1));
        }
        const Acc bh = rh / static_cast<Acc>(oh_), bw = rw / static_cast<Acc>(ow_);
        const int64_t gh = ratio_ > 0 ? ratio_ : static_cast<int64_t>(std::ceil(rh / static_cast<Acc>(oh_)));
        const int64_t gw = ratio_ > 0 ? ratio_ : static_cast<int64_t>(std::ceil(rw / static_cast<Acc>(ow_)));
        const Acc count = static_cast<Acc>(std::max<int64_t>(gh * gw, 1));
        const T* plane = xs + (bidx.int_at(r) * C + c) * H * W;
        T* out = ys + rc * oh_ * ow_;
        for (int64_t ph = 0; ph < oh_; ++ph)
          for (int64_t pw = 0; pw < ow_; ++pw) {
            Acc acc = 0;
            bool first = true;
            for (int64_t iy = 0; iy < gh; ++iy) {
              const Acc yy =
                  y1 + static_cast<Acc>(ph) * bh + (static_cast<Acc>(iy) + Acc(0.5)) * bh / static_cast<Acc>(gh);
              for (int64_t ix = 0; ix < gw; ++ix) {
                const Acc xx =
                    x1 + static_cast<Acc>(pw) * bw + (static_cast<Acc>(ix) + Acc(0.5)) * bw / static_cast<Acc>(gw);
                Acc v1 = 0, v2 = 0, v3 = 0, v4 = 0;
                if (!(yy < -1 || yy > static_cast<Acc>(H) || xx < -1 || xx > static_cast<Acc>(W))) {
                  Acc yv = std::max(yy, Acc(0)), xv = std::max(xx, Acc(0));
                  int64_t yl = static_cast<int64_t>(yv), xl = static_cast<int64_t>(xv), yh, xh;
                  if (yl >= H - 1) {
                    yh = yl = H - 1;
                    yv = static_cast<Acc>(yl);
                  } else {
                    yh = yl + 1;
                  }
                  if (xl >= W - 1) {
                    xh = xl = W - 1;
                    xv = static_cast<Acc>(xl);
                  } else {
                    xh = xl + 1;
                  }
                  const Acc ly = yv - static_cast<Acc>(yl), lx = xv - static_cast<Acc>(xl), hy = 1 - ly, hx = 1 - lx;
                  v1 = hy * hx * static_cast<Acc>(plane[yl * W + xl]);
                  v2 = hy * lx * static_cast<Acc>(plane[yl * W + xh]);
                  v3 = ly * hx * static_cast<Acc>(plane[yh * W + xl]);
                  v4 = ly * lx * static_cast<Acc>(plane[yh * W + xh]);
                }
                if (max_) {
                  const Acc v = std::max(std::max(v1, v2), std::max(v3, v4));
                  acc = first ? v : std::max(acc, v);
                  first = false;
                } else {
                  acc += v1 + v2 + v3 + v4;
                }
              }
            }
            out[ph * ow_ + pw] = static_cast<T>(max_ ? acc : acc / count);
          }
      }
    });
  }

  bool max_;
  int64_t oh_, ow_, ratio_;
  float scale_;
  bool half_pixel_;
};

}  // namespace

StatusOr<KernelPtr> create_onnx_MaxUnpool(const Node& n, const KernelInit&) {
  std::vector<int64_t> kernel = n.attr_ints("kernel_shape"), pads = n.attr_ints("pads"),
                       strides = n.attr_ints("strides");
  MS_CHECK_ARG(!kernel.empty(), "kernel_shape is required");
  MS_CHECK_ARG(Shape::fits(kernel.size() + 2), "too many spatial dimensions");
  MS_CHECK_ARG(pads.empty() || pads.size() == 2 * kernel.size(), "pads must have 2 values per spatial axis");
  MS_CHECK_ARG(strides.empty() || strides.size() == kernel.size(), "strides must have 1 value per spatial axis");
  for (int64_t v : kernel) MS_CHECK_ARG(v >= 1, "kernel_shape values must be positive");
  for (int64_t v : strides) MS_CHECK_ARG(v >= 1, "strides must be positive");
  for (int64_t v : pads) MS_CHECK_ARG(v >= 0, "pads must not be negative");
  return KernelPtr(new MaxUnpoolKernel(std::move(kernel), std::move(pads), std::move(strides)));
}

StatusOr<KernelPtr> create_onnx_RoiAlign(const Node& n, const KernelInit&) {
  const std::string mode = n.attr_string("mode", "avg");
  MS_CHECK_ARG(mode == "avg" || mode == "max", "mode must be avg or max, got '" + mode + "'");
  const std::string ctm =
      n.opset >= 16 ? n.attr_string("coordinate_transformation_mode", "half_pixel") : "output_half_pixel";
  MS_CHECK_ARG(ctm == "half_pixel" || ctm == "output_half_pixel",
               "coordinate_transformation_mode must be half_pixel or output_half_pixel, got '" + ctm + "'");
  const int64_t oh = n.attr_int("output_height", 1), ow = n.attr_int("output_width", 1),
                ratio = n.attr_int("sampling_ratio", 0);
  MS_CHECK_ARG(oh >= 1 && ow >= 1, "output_height and output_width must be positive");
  MS_CHECK_ARG(ratio >= 0, "sampling_ratio must not be negative");
  return KernelPtr(
      new RoiAlignKernel(mode == "max", oh, ow, ratio, n.attr_float("spatial_scale", 1.0f), ctm == "half_pixel"));
}

}  // namespace mserve
