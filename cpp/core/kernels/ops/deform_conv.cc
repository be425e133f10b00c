// DeformConv (19; 22 widens the types only): deformable convolution v1 (offsets) and v2 (offsets
// and a modulation mask), NCHW, 1-D and 2-D spatial, groups, offset groups, strides, pads,
// dilations and an optional bias; float32 and float64 (16-bit floats through HalfAsFloat).
//
// Kernel tap k of output position (oh, ow) samples input channel c at
//   h = oh * s_h - pad_top + kh * d_h + offset[n, (og * K + k) * 2, oh, ow]
//   w = ow * s_w - pad_left + kw * d_w + offset[n, (og * K + k) * 2 + 1, oh, ow]
// (og = c / (C / offset_group), K = kernel volume) by bilinear interpolation of its four
// neighbours, a neighbour outside the input counting as 0 (ONNX's reference: GridSample with
// align_corners and zero padding), times mask[n, og * K + k, oh, ow] when the mask is given.
// A batch item is unfolded into the workspace as the [C * K, OS] matrix of those samples
// (OS = output positions, the rows of group g contiguous), then each group is one float GEMM
// Y_g[Mg, OS] = W_g[Mg, Cg * K] * col_g[Cg * K, OS], the bias added to each row. A 1-D case runs
// as 2-D with height 1 (its offsets are along the width only).
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "core/kernels/common.h"
#include "core/kernels/gemm.h"
#include "core/kernels/registry.h"
#include "core/parallel/thread_pool.h"

namespace mserve {
namespace {

struct DeformAttrs {
  std::vector<int64_t> kernel_shape, strides, pads, dilations;  // empty: defaults
  int64_t group = 1;
  int64_t offset_group = 1;
};

// Shapes of one call, 1-D lifted to 2-D (h of size 1).
struct DeformGeometry {
  int spatial = 2;  // 1 or 2: the model's rank
  int64_t N = 0, C = 0, M = 0, H = 0, W = 0, OH = 0, OW = 0;
  int64_t kh = 1, kw = 1, sh = 1, sw = 1, dh = 1, dw = 1, pt = 0, pl = 0;
  int64_t group = 1, og = 1;
  int64_t K() const { return kh * kw; }
  int64_t OS() const { return OH * OW; }
};

StatusOr<DeformGeometry> deform_geometry(const DeformAttrs& a, const Shape& x, const Shape& w, const Shape& off,
                                         const Shape* bias, const Shape* mask) {
  DeformGeometry g;
  MS_CHECK_ARG(x.rank() == 3 || x.rank() == 4,
               "X must be N x C x W or N x C x H x W (1-D or 2-D deformable convolution), got " + x.str());
  const int sp = x.rank() - 2;
  g.spatial = sp;
  MS_CHECK_ARG(w.rank() == x.rank(), "W " + w.str() + " must have X's rank " + std::to_string(x.rank()));
  MS_CHECK_ARG(off.rank() == x.rank(), "offset " + off.str() + " must have X's rank " + std::to_string(x.rank()));
  MS_CHECK_ARG(a.group >= 1 && a.offset_group >= 1, "group and offset_group must be >= 1");
  g.N = x[0];
  g.C = x[1];
  g.M = w[0];
  g.group = a.group;
  g.og = a.offset_group;
  MS_CHECK_ARG(w[1] * a.group == g.C, "W " + w.str() + " has " + std::to_string(w[1]) +
                                          " input channels per group; X has " + std::to_string(g.C) + " channels in " +
                                          std::to_string(a.group) + " groups");
  MS_CHECK_ARG(g.M % a.group == 0,
               "output channels " + std::to_string(g.M) + " are not divisible by group " + std::to_string(a.group));
  MS_CHECK_ARG(g.C % a.offset_group == 0, "input channels " + std::to_string(g.C) +
                                              " are not divisible by offset_group " + std::to_string(a.offset_group));
  auto attr = [&](const std::vector<int64_t>& v, size_t n, const char* name) -> Status {
    if (!v.empty() && v.size() != n)
      return InvalidArgument(std::string(name) + " " + ints_str(v) + " must have " + std::to_string(n) + " values");
    return Status::OK();
  };
  MS_RETURN_IF_ERROR(attr(a.kernel_shape, sp, "kernel_shape"));
  MS_RETURN_IF_ERROR(attr(a.strides, sp, "strides"));
  MS_RETURN_IF_ERROR(attr(a.dilations, sp, "dilations"));
  MS_RETURN_IF_ERROR(attr(a.pads, 2 * sp, "pads"));
  for (int i = 0; i < sp; ++i)
    if (!a.kernel_shape.empty())
      MS_CHECK_ARG(a.kernel_shape[i] == w[2 + i],
                   "kernel_shape " + ints_str(a.kernel_shape) + " differs from W's spatial shape " + w.str());
  // Index j of the 2-D form: spatial axis j - (2 - sp) of the model's.
  auto at = [&](const std::vector<int64_t>& v, int j, int64_t def) {
    const int i = j - (2 - sp);
    return i < 0 || v.empty() ? def : v[i];
  };
  g.H = sp == 2 ? x[2] : 1;
  g.W = x[x.rank() - 1];
  g.kh = sp == 2 ? w[2] : 1;
  g.kw = w[w.rank() - 1];
  g.sh = at(a.strides, 0, 1);
  g.sw = at(a.strides, 1, 1);
  g.dh = at(a.dilations, 0, 1);
  g.dw = at(a.dilations, 1, 1);
  g.pt = sp == 2 && !a.pads.empty() ? a.pads[0] : 0;
  g.pl = a.pads.empty() ? 0 : a.pads[sp - 1];
  const int64_t pb = sp == 2 && !a.pads.empty() ? a.pads[2] : 0;
  const int64_t pr = a.pads.empty() ? 0 : a.pads[2 * sp - 1];
  MS_CHECK_ARG(g.sh >= 1 && g.sw >= 1 && g.dh >= 1 && g.dw >= 1, "strides and dilations must be >= 1");
  MS_CHECK_ARG(g.pt >= 0 && g.pl >= 0 && pb >= 0 && pr >= 0, "pads must be >= 0");
  MS_CHECK_ARG(g.kh >= 1 && g.kw >= 1, "W " + w.str() + " has an empty kernel");
  g.OH = (g.H + g.pt + pb - ((g.kh - 1) * g.dh + 1)) / g.sh + 1;
  g.OW = (g.W + g.pl + pr - ((g.kw - 1) * g.dw + 1)) / g.sw + 1;
  MS_CHECK_ARG(g.OH >= 1 && g.OW >= 1, "the kernel is larger than the padded input " + x.str());
  const int64_t ok = g.og * g.K() * sp;
  const bool off_ok = off[0] == g.N && off[1] == ok && (sp == 1 || off[2] == g.OH) && off[off.rank() - 1] == g.OW;
  MS_CHECK_ARG(off_ok, "offset " + off.str() + " must be [" + std::to_string(g.N) + ", " + std::to_string(ok) +
                           (sp == 2 ? ", " + std::to_string(g.OH) : std::string()) + ", " + std::to_string(g.OW) +
                           "] (offset_group * kernel volume * spatial rank, then the output size)");
  if (bias)
    MS_CHECK_ARG(bias->rank() == 1 && (*bias)[0] == g.M,
                 "B " + (*bias).str() + " must be [M] = [" + std::to_string(g.M) + "]");
  if (mask) {
    const Shape& m = *mask;
    const bool mask_ok = m.rank() == x.rank() && m[0] == g.N && m[1] == g.og * g.K() && (sp == 1 || m[2] == g.OH) &&
                         m[m.rank() - 1] == g.OW;
    MS_CHECK_ARG(mask_ok, "mask " + m.str() + " must be [" + std::to_string(g.N) + ", " + std::to_string(g.og * g.K()) +
                              (sp == 2 ? ", " + std::to_string(g.OH) : std::string()) + ", " + std::to_string(g.OW) +
                              "] (offset_group * kernel volume, then the output size)");
  }
  return g;
}

// Bilinear sample of plane [H, W] at (h, w), 0 outside.
template <class T>
inline T bilinear(const T* p, int64_t H, int64_t W, T h, T w) {
  if (!(h > T(-1)) || !(w > T(-1)) || !(h < T(H)) || !(w < T(W))) return T(0);  // NaN lands here too
  const T hf = std::floor(h), wf = std::floor(w);
  const int64_t h0 = static_cast<int64_t>(hf), w0 = static_cast<int64_t>(wf);
  const T lh = h - hf, lw = w - wf;
  const bool top = h0 >= 0, bottom = h0 + 1 < H, left = w0 >= 0, right = w0 + 1 < W;
  T v = T(0);
  if (top && left) v += (T(1) - lh) * (T(1) - lw) * p[h0 * W + w0];
  if (top && right) v += (T(1) - lh) * lw * p[h0 * W + w0 + 1];
  if (bottom && left) v += lh * (T(1) - lw) * p[(h0 + 1) * W + w0];
  if (bottom && right) v += lh * lw * p[(h0 + 1) * W + w0 + 1];
  return v;
}

class DeformConvKernel final : public Kernel {
 public:
  explicit DeformConvKernel(DeformAttrs a) : a_(std::move(a)) {}

  Status infer(InferContext& ctx) const override {
    for (int i = 0; i < 3; ++i) MS_CHECK_ARG(ctx.has_input(i), "needs inputs X, W and offset");
    const DType t = ctx.dtype(0);
    if (t != DType::kFloat32 && t != DType::kFloat64)
      return Unsupported(std::string("dtype ") + dtype_name(t) + " is not supported");
    for (int i = 1; i < 5; ++i)
      if (ctx.has_input(i))
        MS_CHECK_ARG(ctx.dtype(i) == t, "input " + std::to_string(i) + " has dtype " + dtype_name(ctx.dtype(i)) +
                                            ", X has " + dtype_name(t));
    const Shape* bias = ctx.has_input(3) ? &ctx.shape(3) : nullptr;
    const Shape* mask = ctx.has_input(4) ? &ctx.shape(4) : nullptr;
    MS_ASSIGN_OR_RETURN(DeformGeometry g, deform_geometry(a_, ctx.shape(0), ctx.shape(1), ctx.shape(2), bias, mask));
    Shape out{g.N, g.M};
    if (g.spatial == 2) out.push_back(g.OH);
    out.push_back(g.OW);
    ctx.set_output(0, t, out);
    ctx.set_workspace(static_cast<size_t>(g.C * g.K() * g.OS()) * dtype_size(t));
    return Status::OK();
  }

  Status compute(const ComputeContext& ctx) const override {
    const Tensor* bias = ctx.has_input(3) ? &ctx.input(3) : nullptr;
    const Tensor* mask = ctx.has_input(4) ? &ctx.input(4) : nullptr;
    MS_ASSIGN_OR_RETURN(DeformGeometry g,
                        deform_geometry(a_, ctx.input(0).shape(), ctx.input(1).shape(), ctx.input(2).shape(),
                                        bias ? &bias->shape() : nullptr, mask ? &mask->shape() : nullptr));
    if (ctx.input(0).dtype() == DType::kFloat64)
      run<double>(ctx, g, bias, mask);
    else
      run<float>(ctx, g, bias, mask);
    return Status::OK();
  }

 private:
  template <class T>
  void run(const ComputeContext& ctx, const DeformGeometry& g, const Tensor* bias, const Tensor* mask) const {
    const T* x = ctx.input(0).data<T>();
    const T* w = ctx.input(1).data<T>();
    const T* off = ctx.input(2).data<T>();
    const T* b = bias ? bias->data<T>() : nullptr;
    const T* mk = mask ? mask->data<T>() : nullptr;
    T* y = ctx.output(0).data<T>();
    T* col = static_cast<T*>(ctx.workspace());
    const int64_t K = g.K(), OS = g.OS(), HW = g.H * g.W;
    const int64_t c_per_og = g.C / g.og, cg = g.C / g.group, mg = g.M / g.group;
    const int64_t off_ch = g.spatial == 2 ? 2 : 1;  // offset channels per tap
    for (int64_t n = 0; n < g.N; ++n) {
      const T* xn = x + n * g.C * HW;
      const T* offn = off + n * g.og * K * off_ch * OS;
      const T* mn = mk ? mk + n * g.og * K * OS : nullptr;
      // Row (c, k) of the column matrix: tap k of every output position, sampled from channel c.
      ctx.pool().parallel_for(g.C * K, std::max<int64_t>(1, 4096 / std::max<int64_t>(1, OS)),
                              [&](int64_t lo, int64_t hi) {
                                for (int64_t r = lo; r < hi; ++r) {
                                  const int64_t c = r / K, k = r % K, ki = k / g.kw, kj = k % g.kw;
                                  const int64_t tap = (c / c_per_og) * K + k;
                                  const T* oh_off = g.spatial == 2 ? offn + tap * 2 * OS : nullptr;
                                  const T* ow_off = offn + (tap * off_ch + off_ch - 1) * OS;
                                  const T* m = mn ? mn + tap * OS : nullptr;
                                  const T* plane = xn + c * HW;
                                  T* dst = col + r * OS;
                                  for (int64_t oh = 0, p = 0; oh < g.OH; ++oh) {
                                    const T h0 = static_cast<T>(oh * g.sh - g.pt + ki * g.dh);
                                    for (int64_t ow = 0; ow < g.OW; ++ow, ++p) {
                                      const T h = oh_off ? h0 + oh_off[p] : h0;
                                      const T wv = static_cast<T>(ow * g.sw - g.pl + kj * g.dw) + ow_off[p];
                                      T v = bilinear<T>(plane, g.H, g.W, h, wv);
                                      dst[p] = m ? v * m[p] : v;
                                    }
                                  }
                                }
                              });
      T* yn = y + n * g.M * OS;
      for (int64_t gi = 0; gi < g.group; ++gi) {
        T* yg = yn + gi * mg * OS;
        gemm<T>(false, false, mg, OS, cg * K, T(1), w + gi * mg * cg * K, cg * K, col + gi * cg * K * OS, OS, T(0), yg,
                OS, ctx.pool());
        if (b)
          for (int64_t m = 0; m < mg; ++m) {
            const T bv = b[gi * mg + m];
            for (int64_t p = 0; p < OS; ++p) yg[m * OS + p] += bv;
          }
      }
    }
  }

  DeformAttrs a_;
};

}  // namespace

StatusOr<KernelPtr> create_onnx_DeformConv(const Node& node, const KernelInit&) {
  DeformAttrs a;
  a.kernel_shape = node.attr_ints("kernel_shape");
  a.strides = node.attr_ints("strides");
  a.pads = node.attr_ints("pads");
  a.dilations = node.attr_ints("dilations");
  a.group = node.attr_int("group", 1);
  a.offset_group = node.attr_int("offset_group", 1);
  MS_CHECK_ARG(a.group >= 1, "group must be >= 1, got " + std::to_string(a.group));
  MS_CHECK_ARG(a.offset_group >= 1, "offset_group must be >= 1, got " + std::to_string(a.offset_group));
  return KernelPtr(new DeformConvKernel(std::move(a)));
}

}  // namespace mserve
