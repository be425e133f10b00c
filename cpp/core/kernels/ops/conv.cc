// Conv (opsets 1, 11 and 22 share one semantics): NCHW, 1-D, 2-D and 3-D spatial, groups
// (depthwise included), dilations, explicit or automatic padding, optional bias; float32 and
// float64.
//
// Every case runs as 3-D: missing leading spatial dims become size 1 (kernel 1, stride 1,
// no padding), so one code path serves all ranks. A batch item is unfolded (im2col) into the
// workspace as a [C * K, OS] matrix (K = kernel volume, OS = output positions); the rows of group
// g are contiguous, so group g is one GEMM  Y_g[Mg, OS] = W_g[Mg, Cg * K] * col_g[Cg * K, OS].
// A pointwise conv (1x1 kernel, stride 1, no padding) reads X directly as that matrix.
#include <algorithm>
#include <string>
#include <vector>

#include "core/kernels/broadcast.h"
#include "core/kernels/common.h"
#include "core/kernels/conv_geometry.h"
#include "core/kernels/dnnl_conv.h"
#include "core/kernels/fused_activation.h"
#include "core/kernels/gemm.h"
#include "core/kernels/registry.h"
#include "core/parallel/thread_pool.h"

namespace mserve {
namespace {

struct ConvAttrs {
  WindowAttrs win;
  FusedActivation act;  // applied to Y (fuse_activation)
  // NhwcConv only (fuse_conv_residual): Y = after(act(conv) + R), R the optional input 3.
  bool residual = false;
  FusedActivation after;
};

// A 1x1 kernel with stride 1 and no padding: X is already the GEMM's column matrix.
bool pointwise(const ConvGeometry& g) {
  for (int i = 0; i < 3; ++i)
    if (g.k[i] != 1 || g.s[i] != 1 || g.pb[i] != 0 || g.out[i] != g.in[i]) return false;
  return true;
}

// Unfolds one input channel into K rows of OS columns (zeros where the kernel hits padding).
template <class T>
void im2col_channel(const T* src, T* dst, const ConvGeometry& g) {
  const int64_t ow_n = g.out[2];
  for (int64_t kd = 0; kd < g.k[0]; ++kd)
    for (int64_t kh = 0; kh < g.k[1]; ++kh)
      for (int64_t kw = 0; kw < g.k[2]; ++kw) {
        const int64_t off_w = kw * g.d[2] - g.pb[2];
        int64_t lo, hi;
        strided_range(off_w, g.s[2], g.in[2], ow_n, &lo, &hi);
        for (int64_t od = 0; od < g.out[0]; ++od) {
          const int64_t id = od * g.s[0] + kd * g.d[0] - g.pb[0];
          for (int64_t oh = 0; oh < g.out[1]; ++oh, dst += ow_n) {
            const int64_t ih = oh * g.s[1] + kh * g.d[1] - g.pb[1];
            if (id < 0 || id >= g.in[0] || ih < 0 || ih >= g.in[1]) {
              std::fill(dst, dst + ow_n, T(0));
              continue;
            }
            const T* row = src + (id * g.in[1] + ih) * g.in[2] + off_w;
            std::fill(dst, dst + lo, T(0));
            if (g.s[2] == 1) {
              std::copy(row + lo, row + hi, dst + lo);
            } else {
              for (int64_t o = lo; o < hi; ++o) dst[o] = row[o * g.s[2]];
            }
            std::fill(dst + hi, dst + ow_n, T(0));
          }
        }
      }
}

template <class T>
void add_bias(T* y, const T* b, int64_t rows, int64_t len) {
  for (int64_t r = 0; r < rows; ++r) {
    const T v = b[r];
    T* p = y + r * len;
    for (int64_t i = 0; i < len; ++i) p[i] += v;
  }
}

// GEMMs run inline on this pool inside a parallel_for body, where the shared pool must not be
// re-entered. With one thread it has no workers and no shared state.
ThreadPool& serial_pool() {
  static ThreadPool pool(1);
  return pool;
}

class ConvKernel final : public Kernel {
 public:
  ConvKernel(ConvAttrs a, std::unique_ptr<DnnlConv> dnnl) : a_(std::move(a)), dnnl_(std::move(dnnl)) {}

  Status infer(InferContext& ctx) const override {
    MS_CHECK_ARG(ctx.has_input(0) && ctx.has_input(1), "Conv needs inputs X and W");
    const DType t = ctx.dtype(0);
    if (t != DType::kFloat32 && t != DType::kFloat64)
      return Unsupported(std::string("dtype ") + dtype_name(t) + " is not supported (float32 and float64 are)");
    MS_CHECK_ARG(ctx.dtype(1) == t,
                 std::string("W dtype ") + dtype_name(ctx.dtype(1)) + " differs from X dtype " + dtype_name(t));
    ConvGeometry g;
    MS_RETURN_IF_ERROR(conv_geometry(a_.win, ctx.shape(0), ctx.shape(1), &g));
    if (ctx.has_input(2)) {
      MS_CHECK_ARG(ctx.dtype(2) == t,
                   std::string("B dtype ") + dtype_name(ctx.dtype(2)) + " differs from X dtype " + dtype_name(t));
      const Shape& b = ctx.shape(2);
      MS_CHECK_ARG(b.rank() == 1 && b[0] == g.M, "B must have shape [" + std::to_string(g.M) + "], got " + b.str());
    }
    ctx.set_output(0, t, g.output_shape());
    if (on_dnnl(g, t)) {
      auto ws = dnnl_->prepare(DnnlConv::geometry(g), ctx.threads());
      if (ws.ok()) {
        ctx.set_workspace(ws.value());
        return Status::OK();
      }
    }
    if (!pointwise(g)) {
      // One column buffer per image computed at once (see run: images go in parallel).
      MS_ASSIGN_OR_RETURN(size_t ws,
                          aligned_bytes(t, Shape{image_slots(g, ctx.threads()), g.C * g.k_size(), g.out_size()}));
      ctx.set_workspace(ws);
    }
    return Status::OK();
  }

  // 1-D and 2-D float32 convs with constant weights run on oneDNN where it takes the shape
  // (decided once per shape in infer; compute follows the same answer).
  bool on_dnnl(const ConvGeometry& g, DType t) const {
    return dnnl_ && t == DType::kFloat32 && g.in[0] == 1 && g.k[0] == 1;
  }

  // Batches of at least `threads` images run one image per thread with single-threaded GEMMs:
  // no synchronization inside an image, and each thread keeps its own column buffer.
  static int64_t image_slots(const ConvGeometry& g, int threads) { return threads > 1 && g.N >= threads ? threads : 1; }

  Status compute(const ComputeContext& ctx) const override {
    ConvGeometry g;
    MS_RETURN_IF_ERROR(conv_geometry(a_.win, ctx.input(0).shape(), ctx.input(1).shape(), &g));
    if (on_dnnl(g, ctx.input(0).dtype()) && ctx.output(0).numel() > 0) {
      Status st = dnnl_->run(ctx.input(0).data<float>(), ctx.output(0).data<float>(), DnnlConv::geometry(g),
                             ctx.workspace(), ctx.pool().threads());
      if (st.code() != Code::kUnsupported) return st;  // else infer planned the im2col path
    }
    switch (ctx.input(0).dtype()) {
      case DType::kFloat32: run<float>(ctx, g); break;
      case DType::kFloat64: run<double>(ctx, g); break;
      default: return Unsupported(std::string("dtype ") + dtype_name(ctx.input(0).dtype()) + " is not supported");
    }
    return Status::OK();
  }

 private:
  template <class T>
  void run(const ComputeContext& ctx, const ConvGeometry& g) const {
    const T* x = ctx.input(0).template data<T>();
    const T* w = ctx.input(1).template data<T>();
    const T* bias = ctx.has_input(2) ? ctx.input(2).template data<T>() : nullptr;
    T* y = ctx.output(0).template data<T>();
    T* col = static_cast<T*>(ctx.workspace());
    ThreadPool& pool = ctx.pool();
    const int64_t IS = g.in_size(), OS = g.out_size(), KS = g.k_size();
    const int64_t red = g.Cg * KS;  // reduction length of one group's GEMM
    const bool direct = pointwise(g);
    if (ctx.output(0).numel() == 0) return;

    // Many groups, or groups too small for the GEMM to split (depthwise convs): one task per
    // group with a single-threaded GEMM; the groups write disjoint parts of `col` and Y.
    const double group_flops = static_cast<double>(g.Mg) * static_cast<double>(red) * static_cast<double>(OS);
    const bool by_group = g.group > 1 && (g.group >= pool.threads() || group_flops < (1 << 20));

    const int64_t slots = image_slots(g, pool.threads());
    if (slots > 1) {
      pool.parallel_for(slots, 1, [&](int64_t sb, int64_t se) {
        for (int64_t s = sb; s < se; ++s) {
          T* my_col = col + s * g.C * KS * OS;
          for (int64_t n = s; n < g.N; n += slots) {
            one_image<T>(g, x + n * g.C * IS, w, bias, y + n * g.M * OS, my_col);
            a_.act.apply(y + n * g.M * OS, g.M * OS);
          }
        }
      });
      return;
    }

    for (int64_t n = 0; n < g.N; ++n) {
      const T* xn = x + n * g.C * IS;
      T* yn = y + n * g.M * OS;
      auto unfold = [&](int64_t c) { im2col_channel(xn + c * IS, col + c * KS * OS, g); };
      auto group_gemm = [&](int64_t grp, ThreadPool& gp) {
        const T* b = direct ? xn + grp * g.Cg * IS : col + grp * red * OS;
        gemm<T>(false, false, g.Mg, OS, red, T(1), w + grp * g.Mg * red, red, b, OS, T(0), yn + grp * g.Mg * OS, OS,
                gp);
      };
      if (by_group) {
        const int64_t grain = std::max<int64_t>(1, static_cast<int64_t>(65536.0 / std::max(1.0, group_flops)));
        pool.parallel_for(g.group, grain, [&](int64_t gb, int64_t ge) {
          for (int64_t grp = gb; grp < ge; ++grp) {
            if (!direct)
              for (int64_t c = grp * g.Cg; c < (grp + 1) * g.Cg; ++c) unfold(c);
            group_gemm(grp, serial_pool());
            if (bias) add_bias(yn + grp * g.Mg * OS, bias + grp * g.Mg, g.Mg, OS);
            a_.act.apply(yn + grp * g.Mg * OS, g.Mg * OS);
          }
        });
        continue;
      }
      if (!direct) {
        pool.parallel_for(g.C, std::max<int64_t>(1, 32768 / std::max<int64_t>(1, KS * OS)),
                          [&](int64_t cb, int64_t ce) {
                            for (int64_t c = cb; c < ce; ++c) unfold(c);
                          });
      }
      for (int64_t grp = 0; grp < g.group; ++grp) group_gemm(grp, pool);
      if (bias || a_.act.kind != FusedActivation::Kind::kNone) {
        pool.parallel_for(g.M, std::max<int64_t>(1, 32768 / OS), [&](int64_t rb, int64_t re) {
          if (bias) add_bias(yn + rb * OS, bias + rb, re - rb, OS);
          a_.act.apply(yn + rb * OS, (re - rb) * OS);
        });
      }
    }
  }

  // One image on the calling thread.
  template <class T>
  static void one_image(const ConvGeometry& g, const T* xn, const T* w, const T* bias, T* yn, T* col) {
    const int64_t IS = g.in_size(), OS = g.out_size(), KS = g.k_size(), red = g.Cg * KS;
    const bool direct = pointwise(g);
    if (!direct)
      for (int64_t c = 0; c < g.C; ++c) im2col_channel(xn + c * IS, col + c * KS * OS, g);
    for (int64_t grp = 0; grp < g.group; ++grp) {
      const T* b = direct ? xn + grp * g.Cg * IS : col + grp * red * OS;
      gemm<T>(false, false, g.Mg, OS, red, T(1), w + grp * g.Mg * red, red, b, OS, T(0), yn + grp * g.Mg * OS, OS,
              serial_pool());
    }
    if (bias) add_bias(yn, bias, g.M, OS);
  }

  ConvAttrs a_;
  std::unique_ptr<DnnlConv> dnnl_;  // null: im2col + GEMM for every shape
};

// oneDNN for float32 1-D/2-D convs whose weights (and bias) are constants of the graph.
std::unique_ptr<DnnlConv> make_dnnl_conv(const ConvAttrs& a, const Node& n, const KernelInit& init, bool nhwc = false) {
  if (!init.prepack()) return nullptr;
  const Tensor* w = init.constant(n, 1);
  const bool has_b = n.inputs.size() > 2 && n.inputs[2] != kNoValue;
  const Tensor* b = has_b ? init.constant(n, 2) : nullptr;
  if (!w || w->dtype() != DType::kFloat32 || (w->rank() != 3 && w->rank() != 4) || (has_b && !b)) return nullptr;
  if (b && (b->dtype() != DType::kFloat32 || b->rank() != 1 || b->dim(0) != w->dim(0))) return nullptr;
  DnnlConv::Params p;
  if (!DnnlConv::set_window(a.win, w->shape(), &p) || (nhwc && w->rank() != 4)) return nullptr;
  p.act = a.act;
  p.residual = a.residual;
  p.after = a.after;
  p.nhwc = p.always = nhwc;
  return DnnlConv::create(p, w->data<float>(), b ? b->data<float>() : nullptr, init.packs());
}

// com.mserve NhwcConv: Conv on channels-last data, X [N, H, W, C] -> Y [N, OH, OW, M], with
// Conv's attributes and inputs (W stays [M, C / group, kh, kw]). Made by the nhwc_convs pass
// for 2-D float32 convs with constant weights, so chains of convs skip the layout changes;
// runs on oneDNN only.
class NhwcConvKernel final : public Kernel {
 public:
  NhwcConvKernel(ConvAttrs a, std::unique_ptr<DnnlConv> dnnl) : a_(std::move(a)), dnnl_(std::move(dnnl)) {}
  bool packed_constant(int i) const override { return i == 1 || i == 2; }  // oneDNN holds W and B

  Status infer(InferContext& ctx) const override {
    MS_CHECK_ARG(ctx.has_input(0) && ctx.has_input(1), "NhwcConv needs inputs X and W");
    MS_CHECK_ARG(ctx.dtype(0) == DType::kFloat32, "NhwcConv takes float32");
    const Shape& x = ctx.shape(0);
    MS_CHECK_ARG(x.rank() == 4, "NhwcConv X must be [N, H, W, C], got " + x.str());
    ConvGeometry g;
    MS_RETURN_IF_ERROR(conv_geometry(a_.win, nchw(x), ctx.shape(1), &g));
    const Shape y{g.N, g.out[1], g.out[2], g.M};
    ctx.set_output(0, DType::kFloat32, y);
    if (a_.residual) {
      MS_CHECK_ARG(ctx.has_input(3) && ctx.dtype(3) == DType::kFloat32, "NhwcConv's residual must be float32");
      auto b = broadcast_shapes(ctx.shape(3), y);
      MS_CHECK_ARG(b.ok() && b.value() == y, "the residual added to the convolution, of shape " + ctx.shape(3).str() +
                                                 ", does not broadcast to its output " + y.str());
    }
    if (!dnnl_) return Status::OK();  // shapes only (KernelInit::prepack)
    MS_ASSIGN_OR_RETURN(size_t ws, dnnl_->prepare(DnnlConv::geometry(g), ctx.threads()));
    ctx.set_workspace(ws);
    return Status::OK();
  }

  Status compute(const ComputeContext& ctx) const override {
    if (ctx.output(0).numel() == 0) return Status::OK();
    if (!dnnl_) return Internal("a shapes-only NhwcConv kernel was asked to run");
    ConvGeometry g;
    MS_RETURN_IF_ERROR(conv_geometry(a_.win, nchw(ctx.input(0).shape()), ctx.input(1).shape(), &g));
    Tensor& y = ctx.output(0);
    if (a_.residual) {  // oneDNN's sum post-op adds what Y holds: the residual, broadcast
      const Tensor& r = ctx.input(3);
      float* yp = y.data<float>();
      const float* rp = r.data<float>();
      if (r.shape() == y.shape()) {
        if (rp != yp) std::copy(rp, rp + y.numel(), yp);
      } else {
        for_each_broadcast_row<1>({&r.shape()}, y.shape(), ctx.pool(),
                                  [&](int64_t o, const int64_t* off, const int64_t* st, int64_t n) {
                                    for (int64_t j = 0; j < n; ++j) yp[o + j] = rp[off[0] + j * st[0]];
                                  });
      }
    }
    return dnnl_->run(ctx.input(0).data<float>(), y.data<float>(), DnnlConv::geometry(g), ctx.workspace(),
                      ctx.pool().threads());
  }

 private:
  static Shape nchw(const Shape& x) { return Shape{x[0], x[3], x[1], x[2]}; }
  ConvAttrs a_;
  std::unique_ptr<DnnlConv> dnnl_;
};

StatusOr<ConvAttrs> parse_conv(const Node& n) {
  ConvAttrs a;
  MS_ASSIGN_OR_RETURN(a.win, parse_window_attrs(n));
  a.act = FusedActivation::of(n);
  a.residual = FusedActivation::has_residual(n);
  a.after = FusedActivation::of(n, FusedActivation::kAfterActivationAttr);
  MS_CHECK_ARG(!a.residual || (n.op_type == "NhwcConv" && n.inputs.size() > 3 && n.inputs[3] != kNoValue),
               std::string(FusedActivation::kResidualAttr) + " needs an NhwcConv with input 3");
  return a;
}

}  // namespace

StatusOr<KernelPtr> create_mserve_NhwcConv(const Node& n, const KernelInit& init) {
  MS_ASSIGN_OR_RETURN(ConvAttrs a, parse_conv(n));
  auto dnnl = make_dnnl_conv(a, n, init, true);
  if (!dnnl && init.prepack()) return Unsupported("NhwcConv needs float32 2-D constant weights oneDNN can take");
  return KernelPtr(new NhwcConvKernel(std::move(a), std::move(dnnl)));
}

StatusOr<KernelPtr> create_onnx_Conv(const Node& n, const KernelInit& init) {
  MS_ASSIGN_OR_RETURN(ConvAttrs a, parse_conv(n));
  auto dnnl = make_dnnl_conv(a, n, init);
  return KernelPtr(new ConvKernel(std::move(a), std::move(dnnl)));
}

}  // namespace mserve
