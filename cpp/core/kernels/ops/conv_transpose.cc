// ConvTranspose (opsets 1, 11 and 22 share one semantics) and Col2Im (opset 18).
//
// ConvTranspose: X [N, C, spatial...], W [C, M / group, k...], optional B [M]; 1-D, 2-D and
// 3-D spatial, run as 3-D with missing leading dims of size 1. The output size rules are
// conv_transpose_geometry's (kernels/conv_geometry.h); output cells no input reaches (an
// output_shape larger than the natural size) get only the bias. float32 and float64.
//
// One image, one group: col[Mg * K, IS] = W_g^T [Mg * K, Cg] * X_g [Cg, IS] (one GEMM), then
// col2im scatters every column of output channel m into Y (channels in parallel).
//
// Col2Im: X [N, C * prod(block_shape), L], image_shape and block_shape as int64 inputs (their
// values fix the output shape), attributes dilations, pads, strides; Y [N, C, image_shape...].
// The same col2im, with the sliding-block counts as "input" size. Numeric dtypes.
#include <algorithm>
#include <string>
#include <vector>

#include "core/kernels/common.h"
#include "core/kernels/conv_geometry.h"
#include "core/kernels/gemm.h"
#include "core/kernels/registry.h"
#include "core/parallel/thread_pool.h"

namespace mserve {
namespace {

// Adds K rows of IS columns (one output channel) into the image `dst` (not cleared here).
template <class T>
void col2im_channel(const T* src, T* dst, const ConvGeometry& g) {
  const int64_t iw_n = g.in[2];
  for (int64_t kd = 0; kd < g.k[0]; ++kd)
    for (int64_t kh = 0; kh < g.k[1]; ++kh)
      for (int64_t kw = 0; kw < g.k[2]; ++kw) {
        const int64_t off_w = kw * g.d[2] - g.pb[2];
        int64_t lo, hi;
        strided_range(off_w, g.s[2], g.out[2], iw_n, &lo, &hi);
        for (int64_t id = 0; id < g.in[0]; ++id) {
          const int64_t od = id * g.s[0] + kd * g.d[0] - g.pb[0];
          for (int64_t ih = 0; ih < g.in[1]; ++ih, src += iw_n) {
            const int64_t oh = ih * g.s[1] + kh * g.d[1] - g.pb[1];
            if (od < 0 || od >= g.out[0] || oh < 0 || oh >= g.out[1]) continue;
            T* row = dst + (od * g.out[1] + oh) * g.out[2] + off_w;
            if (g.s[2] == 1) {
              for (int64_t i = lo; i < hi; ++i) row[i] += src[i];
            } else {
              for (int64_t i = lo; i < hi; ++i) row[i * g.s[2]] += src[i];
            }
          }
        }
      }
}

// GEMMs run inline on this pool where the shared pool must not be re-entered.
ThreadPool& serial_pool() {
  static ThreadPool pool(1);
  return pool;
}

class ConvTransposeKernel final : public Kernel {
 public:
  explicit ConvTransposeKernel(WindowAttrs a) : a_(std::move(a)) {}

  Status infer(InferContext& ctx) const override {
    MS_CHECK_ARG(ctx.has_input(0) && ctx.has_input(1), "ConvTranspose needs inputs X and W");
    const DType t = ctx.dtype(0);
    if (t != DType::kFloat32 && t != DType::kFloat64)
      return Unsupported(std::string("dtype ") + dtype_name(t) + " is not supported (float32 and float64 are)");
    MS_CHECK_ARG(ctx.dtype(1) == t,
                 std::string("W dtype ") + dtype_name(ctx.dtype(1)) + " differs from X dtype " + dtype_name(t));
    ConvGeometry g;
    MS_RETURN_IF_ERROR(conv_transpose_geometry(a_, ctx.shape(0), ctx.shape(1), &g));
    if (ctx.has_input(2)) {
      MS_CHECK_ARG(ctx.dtype(2) == t,
                   std::string("B dtype ") + dtype_name(ctx.dtype(2)) + " differs from X dtype " + dtype_name(t));
      const Shape& b = ctx.shape(2);
      MS_CHECK_ARG(b.rank() == 1 && b[0] == g.M, "B must have shape [" + std::to_string(g.M) + "], got " + b.str());
    }
    MS_ASSIGN_OR_RETURN(size_t ws, aligned_bytes(t, Shape{g.M * g.k_size(), g.in_size()}));
    ctx.set_workspace(ws);
    ctx.set_output(0, t, g.output_shape());
    return Status::OK();
  }

  Status compute(const ComputeContext& ctx) const override {
    ConvGeometry g;
    MS_RETURN_IF_ERROR(conv_transpose_geometry(a_, ctx.input(0).shape(), ctx.input(1).shape(), &g));
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
    const int64_t rows = g.Mg * KS;  // rows of one group's column matrix
    if (ctx.output(0).numel() == 0) return;
    for (int64_t n = 0; n < g.N; ++n) {
      const T* xn = x + n * g.C * IS;
      T* yn = y + n * g.M * OS;
      if (IS > 0 && g.Cg > 0) {
        for (int64_t grp = 0; grp < g.group; ++grp)
          gemm<T>(true, false, rows, IS, g.Cg, T(1), w + grp * g.Cg * rows, rows, xn + grp * g.Cg * IS, IS, T(0),
                  col + grp * rows * IS, IS, g.group > 1 && g.group >= pool.threads() ? serial_pool() : pool);
      }
      const int64_t cost = std::max<int64_t>(1, KS * IS + OS);
      pool.parallel_for(g.M, std::max<int64_t>(1, 32768 / cost), [&](int64_t mb, int64_t me) {
        for (int64_t m = mb; m < me; ++m) {
          T* plane = yn + m * OS;
          std::fill(plane, plane + OS, bias ? bias[m] : T(0));
          if (IS > 0 && g.Cg > 0) col2im_channel(col + m * KS * IS, plane, g);
        }
      });
    }
  }

  WindowAttrs a_;
};

// ---- Col2Im ----

// Reads a 1-D int64 tensor of at most 3 values into v; returns its length (or -1 when wrong).
int64_t read_small(const Tensor& t, int64_t* v) {
  if (t.dtype() != DType::kInt64 || t.shape().rank() != 1 || t.numel() > 3) return -1;
  const int64_t* p = t.data<int64_t>();
  for (int64_t i = 0; i < t.numel(); ++i) v[i] = p[i];
  return t.numel();
}

// The col2im geometry of Col2Im: the sliding-block counts of a Conv over image_shape are the
// "input" positions, the image the output.
Status col2im_geo(const WindowAttrs& a, const Shape& x, const Tensor& image, const Tensor& block, ConvGeometry* g) {
  MS_CHECK_ARG(x.rank() == 3, "Col2Im input must have rank 3 [N, C * prod(block_shape), L], got " + x.str());
  int64_t img[3], blk[3];
  const int64_t ni = read_small(image, img), nb = read_small(block, blk);
  if (ni < 0 || nb < 0 || image.dtype() != DType::kInt64 || block.dtype() != DType::kInt64) {
    if (image.numel() > 3 || block.numel() > 3)
      return Unsupported("Col2Im supports 1 to 3 spatial dims, image_shape is " + image.shape().str());
    return InvalidArgument("image_shape and block_shape must be 1-D int64 tensors, got " + image.shape().str() +
                           " and " + block.shape().str());
  }
  MS_CHECK_ARG(ni == nb && ni >= 1, "image_shape and block_shape must have the same length >= 1, got " +
                                        image.shape().str() + " and " + block.shape().str());
  const size_t sp = static_cast<size_t>(ni);
  MS_RETURN_IF_ERROR(check_window_lengths(a, sp));
  g->N = x[0];
  g->sp = static_cast<int>(sp);
  int64_t blocks = 1, ksize = 1;
  for (size_t i = 0; i < sp; ++i) {
    const int j = static_cast<int>(3 - sp + i);
    MS_CHECK_ARG(img[i] >= 1 && blk[i] >= 1, "image_shape and block_shape must be positive");
    const int64_t s = a.strides.empty() ? 1 : a.strides[i];
    const int64_t d = a.dilations.empty() ? 1 : a.dilations[i];
    const int64_t pb = a.pads.empty() ? 0 : a.pads[i], pe = a.pads.empty() ? 0 : a.pads[sp + i];
    const int64_t n = window_axis(AutoPad::kNotSet, img[i], blk[i], s, d, pb, pe, false).out;
    MS_CHECK_ARG(n > 0, "block_shape does not fit in the padded image_shape along axis " + std::to_string(i));
    g->in[j] = n;
    g->k[j] = blk[i];
    g->s[j] = s;
    g->d[j] = d;
    g->pb[j] = pb;
    g->pe[j] = pe;
    g->out[j] = img[i];
    blocks *= n;
    ksize *= blk[i];
  }
  MS_CHECK_ARG(x[1] % ksize == 0, "input dim 1 (" + std::to_string(x[1]) + ") is not divisible by the block size " +
                                      std::to_string(ksize));
  MS_CHECK_ARG(x[2] == blocks,
               "input dim 2 (" + std::to_string(x[2]) + ") must equal the number of blocks " + std::to_string(blocks));
  g->C = g->M = x[1] / ksize;
  return Status::OK();
}

class Col2ImKernel final : public Kernel {
 public:
  explicit Col2ImKernel(WindowAttrs a) : a_(std::move(a)) {}

  Status infer(InferContext& ctx) const override {
    MS_CHECK_ARG(ctx.has_input(0) && ctx.has_input(1) && ctx.has_input(2),
                 "Col2Im needs inputs input, image_shape and block_shape");
    const DType t = ctx.dtype(0);
    bool ok = false;
    MS_SWITCH_NUMERIC(t, T, break, ok = sizeof(T) > 0);
    if (!ok) return Unsupported(std::string("dtype ") + dtype_name(t) + " is not supported");
    if (!ctx.value(1) || !ctx.value(2)) return ctx.need_value();
    ConvGeometry g;
    MS_RETURN_IF_ERROR(col2im_geo(a_, ctx.shape(0), *ctx.value(1), *ctx.value(2), &g));
    ctx.set_output(0, t, g.output_shape());
    return Status::OK();
  }

  Status compute(const ComputeContext& ctx) const override {
    ConvGeometry g;
    MS_RETURN_IF_ERROR(col2im_geo(a_, ctx.input(0).shape(), ctx.input(1), ctx.input(2), &g));
    const Tensor& x = ctx.input(0);
    MS_SWITCH_NUMERIC(x.dtype(), T, return Unsupported(std::string("dtype ") + dtype_name(x.dtype())), run<T>(ctx, g));
    return Status::OK();
  }

 private:
  template <class T>
  static void run(const ComputeContext& ctx, const ConvGeometry& g) {
    const T* x = ctx.input(0).template data<T>();
    T* y = ctx.output(0).template data<T>();
    const int64_t IS = g.in_size(), OS = g.out_size(), KS = g.k_size();
    const int64_t planes = g.N * g.C;
    ctx.pool().parallel_for(planes, std::max<int64_t>(1, 32768 / std::max<int64_t>(1, KS * IS + OS)),
                            [&](int64_t b, int64_t e) {
                              for (int64_t p = b; p < e; ++p) {
                                T* plane = y + p * OS;
                                std::fill(plane, plane + OS, T(0));
                                col2im_channel(x + p * KS * IS, plane, g);
                              }
                            });
  }

  WindowAttrs a_;
};

}  // namespace

StatusOr<KernelPtr> create_onnx_ConvTranspose(const Node& n, const KernelInit&) {
  MS_ASSIGN_OR_RETURN(WindowAttrs a, parse_window_attrs(n));
  return KernelPtr(new ConvTransposeKernel(std::move(a)));
}

StatusOr<KernelPtr> create_onnx_Col2Im(const Node& n, const KernelInit&) {
  MS_ASSIGN_OR_RETURN(WindowAttrs a, parse_window_attrs(n));
  return KernelPtr(new Col2ImKernel(std::move(a)));
}

}  // namespace mserve
