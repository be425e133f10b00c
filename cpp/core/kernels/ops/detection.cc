// Object detection over boxes of 4 coordinates per row: NonMaxSuppression (opsets 10, 11) and
// RoiAlign (10, 16, 22).
//
// NonMaxSuppression: boxes [B, N, 4] (corners in either order, or center and size with
//   center_point_box), scores [B, C, N] -> [n, 3] (batch, class, box) rows. Per batch and class,
//   boxes scoring above score_threshold (when given) are taken in descending score, each kept
//   unless it overlaps a kept box by an IoU above iou_threshold, up to
//   max_output_boxes_per_class. The output shape depends on the values: infer runs the selection
//   on the known values to size it (asking the planner for the values otherwise); compute runs it
//   again into the workspace.
// RoiAlign: X [N, C, H, W], rois [R, 4] (x1, y1, x2, y2), batch_indices [R] -> Y [R, C, oh, ow].
//   Each output bin averages (mode avg) or takes the max (mode max: of each sample's four
//   weighted corner values, as ONNX Runtime does) over a grid of bilinear samples
//   (sampling_ratio per side, or ceil(roi size / output size) when 0). Opset 16 adds
//   coordinate_transformation_mode: half_pixel (default; coordinates shifted by -0.5) or
//   output_half_pixel (opset 10's behaviour: no shift, rois at least 1x1).
#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>

#include "core/kernels/common.h"
#include "core/kernels/registry.h"
#include "core/parallel/thread_pool.h"

namespace mserve {
namespace {

// ---------------------------------------------------------------------- NonMaxSuppression

class NmsKernel final : public Kernel {
 public:
  explicit NmsKernel(bool center) : center_(center) {}

  struct Params {
    int64_t max_out = 0;
    float iou = 0.f, score = -std::numeric_limits<float>::infinity();
    bool has_score = false;
  };

  static Params params(const Tensor* mo, const Tensor* iou, const Tensor* sc) {
    Params p;
    if (mo && mo->numel() > 0) p.max_out = mo->int_at(0);
    if (iou && iou->numel() > 0) p.iou = static_cast<float>(iou->float_at(0));
    if (sc && sc->numel() > 0) {
      p.score = static_cast<float>(sc->float_at(0));
      p.has_score = true;
    }
    return p;
  }

  // Runs NMS; writes triples to `out` when non-null; ws holds 2 * N int64. Returns the count.
  int64_t run(const Tensor& boxes, const Tensor& scores, const Params& p, int64_t* ws, int64_t* out) const {
    const int64_t B = boxes.dim(0), N = boxes.dim(1), C = scores.dim(1);
    const float* bx = boxes.data<float>();
    const float* sc = scores.data<float>();
    int64_t* cand = ws;
    int64_t* sel = ws + N;
    int64_t total = 0;
    auto corners = [&](const float* q, float* c) {
      if (center_) {
        c[0] = q[1] - q[3] / 2;
        c[1] = q[0] - q[2] / 2;
        c[2] = q[1] + q[3] / 2;
        c[3] = q[0] + q[2] / 2;
      } else {
        c[0] = std::min(q[0], q[2]);
        c[1] = std::min(q[1], q[3]);
        c[2] = std::max(q[0], q[2]);
        c[3] = std::max(q[1], q[3]);
      }
    };
    auto suppress = [&](const float* q1, const float* q2) {
      float a[4], b[4];
      corners(q1, a);
      corners(q2, b);
      const float area1 = (a[2] - a[0]) * (a[3] - a[1]), area2 = (b[2] - b[0]) * (b[3] - b[1]);
      if (area1 <= 0 || area2 <= 0) return false;
      const float ih = std::min(a[2], b[2]) - std::max(a[0], b[0]);
      const float iw = std::min(a[3], b[3]) - std::max(a[1], b[1]);
      if (ih <= 0 || iw <= 0) return false;
      const float inter = ih * iw;
      return inter / (area1 + area2 - inter) > p.iou;
    };
    for (int64_t b = 0; b < B; ++b)
      for (int64_t c = 0; c < C; ++c) {
        const float* s = sc + (b * C + c) * N;
        int64_t nc = 0;
        for (int64_t i = 0; i < N; ++i)
          if (!p.has_score || s[i] > p.score) cand[nc++] = i;
        std::sort(cand, cand + nc, [&](int64_t x, int64_t y) { return s[x] != s[y] ? s[x] > s[y] : x < y; });
        int64_t ns = 0;
        for (int64_t k = 0; k < nc && ns < p.max_out; ++k) {
          const float* q = bx + (b * N + cand[k]) * 4;
          bool keep = true;
          for (int64_t j = 0; j < ns && keep; ++j)
            if (suppress(q, bx + (b * N + sel[j]) * 4)) keep = false;
          if (!keep) continue;
          sel[ns++] = cand[k];
          if (out) {
            out[total * 3] = b;
            out[total * 3 + 1] = c;
            out[total * 3 + 2] = cand[k];
          }
          ++total;
        }
      }
    return total;
  }

  Status infer(InferContext& ctx) const override {
    MS_CHECK_ARG(ctx.has_input(0) && ctx.has_input(1), "needs boxes and scores");
    if (ctx.dtype(0) != DType::kFloat32 || ctx.dtype(1) != DType::kFloat32)
      return Unsupported("only float32 boxes and scores are supported");
    const Shape &bs = ctx.shape(0), &ss = ctx.shape(1);
    MS_CHECK_ARG(bs.rank() == 3 && bs[2] == 4, "boxes must be [B, N, 4], got " + bs.str());
    MS_CHECK_ARG(ss.rank() == 3 && ss[0] == bs[0] && ss[2] == bs[1],
                 "scores must be [B, C, N] matching boxes " + bs.str() + ", got " + ss.str());
    for (int i = 0; i < 5; ++i)
      if (ctx.has_input(i) && !ctx.value(i)) return ctx.need_value();
    std::vector<int64_t> ws(2 * static_cast<size_t>(bs[1]) + 1);
    const Params p = params(ctx.value(2), ctx.value(3), ctx.value(4));
    const int64_t n = run(*ctx.value(0), *ctx.value(1), p, ws.data(), nullptr);
    ctx.set_output(0, DType::kInt64, Shape{n, 3});
    ctx.set_workspace(ws.size() * sizeof(int64_t));
    return Status::OK();
  }

  Status compute(const ComputeContext& ctx) const override {
    auto opt = [&](int i) { return ctx.has_input(i) ? &ctx.input(i) : nullptr; };
    const Params p = params(opt(2), opt(3), opt(4));
    run(ctx.input(0), ctx.input(1), p, static_cast<int64_t*>(ctx.workspace()), ctx.output(0).data<int64_t>());
    return Status::OK();
  }

 private:
  bool center_;
};

// ------------------------------------------------------------------------------- RoiAlign

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

StatusOr<KernelPtr> create_onnx_NonMaxSuppression(const Node& n, const KernelInit&) {
  return KernelPtr(new NmsKernel(n.attr_int("center_point_box", 0) != 0));
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
