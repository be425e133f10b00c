// Quantization: QuantizeLinear, DequantizeLinear (opsets 10, 13 axis, 19, 21 block_size and
// output_dtype, 23+), DynamicQuantizeLinear, MatMulInteger, ConvInteger, QLinearMatMul,
// QLinearConv, onnxruntime's com.microsoft MatMulIntegerToFloat, and com.mserve
// QuantizeDequantize (a QuantizeLinear -> DequantizeLinear pair, passes/fold_qdq_pairs.cc).
//
// Quantized types: int8, uint8, int16, uint16 (and int32 for DequantizeLinear input); the narrow
// types (tensor/lowbit.h): int4, uint4, int2, uint2 (rounded half to even, plus the zero point,
// clipped to their range), float8 E4M3FN/E4M3FNUZ/E5M2/E5M2FNUZ (x / scale rounded to the
// format; `saturate` as Cast's; no zero point arithmetic, it must be zero on the way back) and
// float4 E2M1 (x / scale + zero point, always saturating), as onnx.reference computes them.
// Scale granularity: per tensor (one element), per axis (1-D of length x.shape[axis]) or
// blocked (scale of x's rank, ceil(D/block_size) along axis). Rounding is half to even.
// MatMulInteger and com.microsoft MatMulIntegerToFloat with constant weights run on packed int8
// GEMMs (kernels/int8_gemm.h); the other integer ops accumulate in int32 with plain loops; the QLinear ops requantize
// with y = saturate(rint(acc * (a_scale * b_scale / y_scale)) + y_zero_point), as onnx.reference does.
#include <algorithm>
#include <cmath>
#include <limits>
#include <mutex>
#include <string>
#include <vector>

#include "core/kernels/broadcast.h"
#include "core/kernels/common.h"
#include "core/kernels/conv_geometry.h"
#include "core/kernels/dequantize.h"
#include "core/kernels/dnnl_conv.h"
#include "core/kernels/dnnl_matmul.h"
#include "core/kernels/int8_gemm.h"
#include "core/kernels/isa/isa.h"
#include "core/kernels/qparams.h"
#include "core/kernels/registry.h"
#include "core/parallel/thread_pool.h"
#include "core/tensor/lowbit.h"

namespace mserve {
namespace {

bool is_quant_type(DType t) {
  return t == DType::kInt8 || t == DType::kUInt8 || t == DType::kInt16 || t == DType::kUInt16;
}

// The narrow types QuantizeLinear writes and DequantizeLinear reads.
bool is_narrow_quant_type(DType t) { return dtype_is_lowbit(t) && t != DType::kFloat8E8M0; }

// The integer range of a 4- or 2-bit type.
void lowbit_int_range(DType t, double* lo, double* hi) {
  const int bits = lowbit_width(t);
  const bool is_signed = t == DType::kInt4 || t == DType::kInt2;
  *lo = is_signed ? -(1 << (bits - 1)) : 0;
  *hi = is_signed ? (1 << (bits - 1)) - 1 : (1 << bits) - 1;
}

#define MS_SWITCH_QUANT(dt, Q, OTHER, ...)     \
  switch (dt) {                                \
    MS_CASE(kInt8, int8_t, Q, __VA_ARGS__)     \
    MS_CASE(kUInt8, uint8_t, Q, __VA_ARGS__)   \
    MS_CASE(kInt16, int16_t, Q, __VA_ARGS__)   \
    MS_CASE(kUInt16, uint16_t, Q, __VA_ARGS__) \
    default: OTHER;                            \
  }

// Where the scale of element i lives.
struct Granularity {
  enum Kind { kTensor, kAxis, kBlocked } kind = kTensor;
  int64_t D = 1, inner = 1, block = 1, Ds = 1;
  int64_t index(int64_t i) const {
    if (kind == kTensor) return 0;
    const int64_t d = (i / inner) % D;
    if (kind == kAxis) return d;
    const int64_t o = i / (inner * D), in = i % inner;
    return (o * Ds + d / block) * inner + in;
  }
};

Status make_granularity(const Shape& x, const Shape& scale, const Shape* zp, int64_t axis, int64_t block,
                        Granularity* g) {
  // One scale and one zero point may differ in rank (onnxruntime's quantizer writes a [1] scale
  // with a scalar zero point for biases); otherwise the shapes must match.
  const bool one_each = scale.numel() == 1 && scale.rank() <= 1 && zp && zp->numel() == 1 && zp->rank() <= 1;
  if (zp && !one_each)
    MS_CHECK_ARG(*zp == scale, "scale " + scale.str() + " and zero point " + zp->str() + " must have the same shape");
  if (block <= 0 && scale.numel() == 1 && scale.rank() <= 1) {
    g->kind = Granularity::kTensor;
    return Status::OK();
  }
  MS_ASSIGN_OR_RETURN(int a, normalize_axis(axis, x.rank()));
  g->D = x[a];
  g->inner = x.prod(a + 1, x.rank());
  if (block <= 0) {
    MS_CHECK_ARG(scale.rank() == 1 && scale[0] == x[a],
                 "per-axis scale must be 1-D of length " + std::to_string(x[a]) + ", got " + scale.str());
    g->kind = Granularity::kAxis;
    return Status::OK();
  }
  g->kind = Granularity::kBlocked;
  g->block = block;
  g->Ds = (x[a] + block - 1) / block;
  MS_CHECK_ARG(scale.rank() == x.rank(), "blocked scale " + scale.str() + " must have the rank of x " + x.str());
  for (int i = 0; i < x.rank(); ++i)
    MS_CHECK_ARG(scale[i] == (i == a ? g->Ds : x[i]), "blocked scale " + scale.str() + " does not match x " + x.str() +
                                                          " with block_size " + std::to_string(block));
  return Status::OK();
}

// NaN becomes the type's minimum, as in onnxruntime (a scale of inf from a calibration range with
// an infinity, as a causal mask's -inf, makes x / scale NaN).
template <class Q>
Q saturate(double v) {
  if (std::isnan(v)) return std::numeric_limits<Q>::lowest();
  v = std::nearbyint(v);
  v = std::min<double>(std::max<double>(v, std::numeric_limits<Q>::lowest()), std::numeric_limits<Q>::max());
  return static_cast<Q>(v);
}

// ------------------------------------------------------------------------- QuantizeLinear

class QuantizeKernel final : public Kernel {
 public:
  explicit QuantizeKernel(const Node& n)
      : axis_(n.attr_int("axis", 1)),
        block_(n.attr_int("block_size", 0)),
        out_dtype_(n.attr_int("output_dtype", 0)),
        saturate_(n.attr_int("saturate", 1) != 0) {}

  Status infer(InferContext& ctx) const override {
    MS_CHECK_ARG(ctx.has_input(0) && ctx.has_input(1), "needs x and y_scale");
    const DType xt = ctx.dtype(0), st = ctx.dtype(1);
    if (!dtype_is_float(xt) && xt != DType::kInt32)
      return Unsupported(std::string("x dtype ") + dtype_name(xt) + " is not supported");
    if (!dtype_is_float(st)) return Unsupported(std::string("y_scale dtype ") + dtype_name(st) + " is not supported");
    DType yt = DType::kUInt8;
    if (ctx.has_input(2)) {
      yt = ctx.dtype(2);
    } else if (out_dtype_ != 0) {
      yt = dtype_of_onnx(out_dtype_);
    }
    if (out_dtype_ != 0 && ctx.has_input(2))
      MS_CHECK_ARG(dtype_of_onnx(out_dtype_) == yt, "output_dtype differs from y_zero_point's dtype");
    if (!is_quant_type(yt) && !is_narrow_quant_type(yt))
      return Unsupported(std::string("output dtype ") + dtype_name(yt) + " is not supported");
    Granularity g;
    MS_RETURN_IF_ERROR(
        make_granularity(ctx.shape(0), ctx.shape(1), ctx.has_input(2) ? &ctx.shape(2) : nullptr, axis_, block_, &g));
    ctx.set_output(0, yt, ctx.shape(0));
    return Status::OK();
  }

  Status compute(const ComputeContext& ctx) const override {
    const Tensor& x = ctx.input(0);
    const Tensor& s = ctx.input(1);
    const Tensor* zp = ctx.has_input(2) ? &ctx.input(2) : nullptr;
    Granularity g;
    MS_RETURN_IF_ERROR(make_granularity(x.shape(), s.shape(), zp ? &zp->shape() : nullptr, axis_, block_, &g));
    Tensor& y = ctx.output(0);
    const bool dbl = s.dtype() == DType::kFloat64;
    if (dtype_is_lowbit(y.dtype())) return quantize_narrow(x, s, zp, g, y, ctx.pool());
    if (g.kind == Granularity::kTensor && x.dtype() == DType::kFloat32 && s.dtype() == DType::kFloat32 &&
        (y.dtype() == DType::kUInt8 || y.dtype() == DType::kInt8)) {  // activations: vectorized
      const float scale = s.data<float>()[0];
      const float z = zp ? static_cast<float>(zp->int_at(0)) : 0.0f;
      const float* p = x.data<float>();
      auto* out = static_cast<uint8_t*>(y.raw());
      const bool is_signed = y.dtype() == DType::kInt8;
      ctx.pool().parallel_for(x.numel(), 16384,
                              [&](int64_t b, int64_t e) { quantize_8bit(p + b, e - b, scale, z, is_signed, out + b); });
      return Status::OK();
    }
    MS_SWITCH_QUANT(y.dtype(), Q, return Unsupported("dtype"), {
      Q* out = y.data<Q>();
      const Q* z = zp ? zp->data<Q>() : nullptr;
      const int64_t n = x.numel();
      ctx.pool().parallel_for(n, 16384, [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) {
          const int64_t k = g.index(i);
          double q;
          if (dbl) {
            q = std::nearbyint(x.float_at(i) / s.data<double>()[k]);
          } else {
            q = std::nearbyint(static_cast<float>(x.float_at(i)) / static_cast<float>(s.float_at(k)));
          }
          out[i] = saturate<Q>(q + (z ? static_cast<double>(z[k]) : 0.0));
        }
      });
    });
    return Status::OK();
  }

 private:
  Status quantize_narrow(const Tensor& x, const Tensor& s, const Tensor* zp, const Granularity& g, Tensor& y,
                         ThreadPool& pool) const {
    const DType t = y.dtype();
    auto* out = static_cast<uint8_t*>(y.raw());
    const auto* z = zp ? static_cast<const uint8_t*>(zp->raw()) : nullptr;
    const bool integer = dtype_is_lowbit_int(t), float4 = t == DType::kFloat4E2M1;
    double lo = 0, hi = 0;
    if (integer) lowbit_int_range(t, &lo, &hi);
    const LowBitCast opt{saturate_ || float4};
    const bool dbl = s.dtype() == DType::kFloat64;
    pool.parallel_for(x.numel(), 16384, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        const int64_t k = g.index(i);
        const double v = dbl ? x.float_at(i) / s.data<double>()[k]
                             : static_cast<float>(x.float_at(i)) / static_cast<float>(s.float_at(k));
        const double zero = z ? lowbit_to_float(t, z[k]) : 0.0;
        if (integer) {
          const double q = std::min(std::max(std::nearbyint(v) + zero, lo), hi);
          out[i] = lowbit_from_int(t, static_cast<int64_t>(q));
        } else {  // float8 ignores the zero point (it must be zero); float4 adds it
          out[i] = lowbit_from_double(t, float4 ? v + zero : v, opt);
        }
      }
    });
    return Status::OK();
  }

  int64_t axis_, block_, out_dtype_;
  bool saturate_;
};

// ----------------------------------------------------------------------- DequantizeLinear

class DequantizeKernel final : public Kernel {
 public:
  explicit DequantizeKernel(const Node& n)
      : axis_(n.attr_int("axis", 1)), block_(n.attr_int("block_size", 0)), out_dtype_(n.attr_int("output_dtype", 0)) {}

  Status infer(InferContext& ctx) const override {
    MS_CHECK_ARG(ctx.has_input(0) && ctx.has_input(1), "needs x and x_scale");
    const DType xt = ctx.dtype(0), st = ctx.dtype(1);
    if (!is_quant_type(xt) && !is_narrow_quant_type(xt) && xt != DType::kInt32)
      return Unsupported(std::string("x dtype ") + dtype_name(xt) + " is not supported");
    if (!dtype_is_float(st)) return Unsupported(std::string("x_scale dtype ") + dtype_name(st) + " is not supported");
    if (ctx.has_input(2)) MS_CHECK_ARG(ctx.dtype(2) == xt, "x_zero_point must have x's dtype");
    DType yt = st;
    if (out_dtype_ != 0) {
      yt = dtype_of_onnx(out_dtype_);
      if (!dtype_is_float(yt)) return Unsupported("output_dtype " + std::to_string(out_dtype_) + " is not supported");
    }
    Granularity g;
    MS_RETURN_IF_ERROR(
        make_granularity(ctx.shape(0), ctx.shape(1), ctx.has_input(2) ? &ctx.shape(2) : nullptr, axis_, block_, &g));
    ctx.set_output(0, yt, ctx.shape(0));
    return Status::OK();
  }

  Status compute(const ComputeContext& ctx) const override {
    return dequantize(ctx.input(0), ctx.input(1), ctx.has_input(2) ? &ctx.input(2) : nullptr, axis_, block_,
                      ctx.output(0), ctx.pool());
  }

 private:
  int64_t axis_, block_, out_dtype_;
};

// ------------------------------------------------- com.mserve QuantizeDequantize (fold_qdq_pairs)

// DequantizeLinear(QuantizeLinear(x, s, z), s, z) of a static QDQ model's activations, per
// tensor: y = (clamp(nearbyint(x / s) + z) - z) * s as float32 (the clamp to z's type; NaN to its
// minimum), the same floats as the two operators, in one pass and without the 8-bit tensor.
class QuantizeDequantizeKernel final : public Kernel {
 public:
  Status infer(InferContext& ctx) const override {
    MS_CHECK_ARG(ctx.num_inputs() == 3 && ctx.has_input(0) && ctx.has_input(1) && ctx.has_input(2),
                 "needs x, scale and zero_point");
    if (ctx.dtype(0) != DType::kFloat32 || ctx.dtype(1) != DType::kFloat32)
      return Unsupported("x and scale must be float32");
    MS_CHECK_ARG(ctx.dtype(2) == DType::kUInt8 || ctx.dtype(2) == DType::kInt8, "zero_point must be uint8 or int8");
    MS_CHECK_ARG(ctx.shape(1).numel() == 1 && ctx.shape(2).numel() == 1, "scale and zero_point must be one value");
    ctx.set_output(0, DType::kFloat32, ctx.shape(0));
    return Status::OK();
  }

  Status compute(const ComputeContext& ctx) const override {
    const Tensor& x = ctx.input(0);
    const float scale = ctx.input(1).data<float>()[0];
    const Tensor& zp = ctx.input(2);
    const float z = static_cast<float>(zp.int_at(0));
    const bool is_signed = zp.dtype() == DType::kInt8;
    const float* p = x.data<float>();
    float* out = ctx.output(0).data<float>();
    ctx.pool().parallel_for(x.numel(), 16384, [&](int64_t b, int64_t e) {
      quantize_dequantize_8bit(p + b, e - b, scale, z, is_signed, out + b);
    });
    return Status::OK();
  }
};

// ------------------------------------------------------------------ Lookup8

// com.mserve Lookup8 (passes/fuse_lookup8.cc): y = table[x] for 8-bit x, indexed by x's bits
// (an int8 -1 reads table[255]); table: 256 values of y's 8-bit type.
class Lookup8Kernel final : public Kernel {
 public:
  Status infer(InferContext& ctx) const override {
    MS_CHECK_ARG(ctx.num_inputs() == 2 && ctx.has_input(0) && ctx.has_input(1), "Lookup8 needs x and table");
    MS_CHECK_ARG(ctx.dtype(0) == DType::kUInt8 || ctx.dtype(0) == DType::kInt8, "Lookup8 takes 8-bit x");
    MS_CHECK_ARG(ctx.dtype(1) == DType::kUInt8 || ctx.dtype(1) == DType::kInt8, "Lookup8's table must be 8-bit");
    MS_CHECK_ARG(ctx.shape(1).numel() == 256, "Lookup8's table must hold 256 values, got " + ctx.shape(1).str());
    ctx.set_output(0, ctx.dtype(1), ctx.shape(0));
    return Status::OK();
  }

  Status compute(const ComputeContext& ctx) const override {
    const auto* x = static_cast<const uint8_t*>(ctx.input(0).raw());
    const auto* table = static_cast<const uint8_t*>(ctx.input(1).raw());
    auto* y = static_cast<uint8_t*>(ctx.output(0).raw());
    ctx.pool().parallel_for(ctx.input(0).numel(), 65536,
                            [&](int64_t b, int64_t e) { lookup_8bit(x + b, e - b, table, y + b); });
    return Status::OK();
  }
};

// ------------------------------------------------------------------ QuantizedAdd, QuantizedMul

// com.mserve QuantizedAdd / QuantizedMul (passes/fuse_qdq_binary.cc): a static QDQ model's
// residual sum or broadcast product (squeeze-excitation's scaling),
//   y = QuantizeLinear([Relu](DequantizeLinear(a) op DequantizeLinear(b)))
// in one pass with the same float operations. Inputs: a, a_scale, a_zero_point, b, b_scale,
// b_zero_point, y_scale, y_zero_point (one value each; zero points of the data's 8-bit type, 0
// when absent); attribute relu. a and b broadcast; rows along which both advance run vectorized.
class QuantizedBinaryKernel final : public Kernel {
 public:
  QuantizedBinaryKernel(bool mul, bool relu) : mul_(mul), relu_(relu) {}

  Status infer(InferContext& ctx) const override {
    MS_RETURN_IF_ERROR(check_q8(ctx, 0, "a"));
    MS_RETURN_IF_ERROR(check_q8(ctx, 3, "b"));
    const DType t = ctx.dtype(0);
    MS_CHECK_ARG(ctx.dtype(3) == t, "a and b must have one dtype");
    MS_RETURN_IF_ERROR(check_qparams(ctx, 1, 2, t, "a"));
    MS_RETURN_IF_ERROR(check_qparams(ctx, 4, 5, t, "b"));
    MS_RETURN_IF_ERROR(check_qparams(ctx, 6, 7, t, "y"));
    MS_ASSIGN_OR_RETURN(Shape out, broadcast_shapes(ctx.shape(0), ctx.shape(3)));
    ctx.set_output(0, t, out);
    return Status::OK();
  }

  Status compute(const ComputeContext& ctx) const override {
    const Tensor &a = ctx.input(0), &b = ctx.input(3);
    Tensor& y = ctx.output(0);
    QuantizedBinary q;
    q.mul = mul_;
    q.relu = relu_;
    q.is_signed = a.dtype() == DType::kInt8;
    const QParam qa = qparam(ctx, 1, 2), qb = qparam(ctx, 4, 5), qy = qparam(ctx, 6, 7);
    q.sa = qa.scale, q.za = qa.zp, q.sb = qb.scale, q.zb = qb.zp, q.sy = qy.scale, q.zy = static_cast<float>(qy.zp);
    const auto* pa = static_cast<const uint8_t*>(a.raw());
    const auto* pb = static_cast<const uint8_t*>(b.raw());
    auto* py = static_cast<uint8_t*>(y.raw());
    for_each_broadcast_row<2>({&a.shape(), &b.shape()}, y.shape(), ctx.pool(),
                              [&](int64_t o, const int64_t* off, const int64_t* rs, int64_t n) {
                                if (rs[0] == 1 && rs[1] == 1) {
                                  quantized_binary_8bit(q, pa + off[0], pb + off[1], n, py + o);
                                  return;
                                }
                                for (int64_t j = 0; j < n; ++j)  // one side broadcast along the row
                                  quantized_binary_8bit(q, pa + off[0] + j * rs[0], pb + off[1] + j * rs[1], 1,
                                                        py + o + j);
                              });
    return Status::OK();
  }

 private:
  bool mul_, relu_;
};

// ------------------------------------------------------------------ QuantizedMean

// com.mserve QuantizedMean (passes/fuse_qdq_binary.cc): a static QDQ model's global pooling
// (squeeze-excitation's squeeze), y = QuantizeLinear(ReduceMean(DequantizeLinear(x), axes)), over
// the 8-bit data: the codes summed exactly in int32, then mean = float(sum - n * x_zero) * x_scale
// / n, rounded as QuantizeLinear rounds. (The graph sums n dequantized floats, each sum rounded:
// a mean next to a rounding tie may land one step away.) Inputs: x, x_scale, x_zero_point, axes
// (constant, consecutive), y_scale, y_zero_point; attribute keepdims.
class QuantizedMeanKernel final : public Kernel {
 public:
  explicit QuantizedMeanKernel(bool keepdims) : keepdims_(keepdims) {}

  Status infer(InferContext& ctx) const override {
    MS_RETURN_IF_ERROR(check_q8(ctx, 0, "x"));
    const DType t = ctx.dtype(0);
    MS_RETURN_IF_ERROR(check_qparams(ctx, 1, 2, t, "x"));
    MS_RETURN_IF_ERROR(check_qparams(ctx, 4, 5, t, "y"));
    MS_CHECK_ARG(ctx.has_input(3), "QuantizedMean needs axes");
    const Tensor* axes = ctx.value(3);
    if (!axes) return ctx.need_value();
    MS_CHECK_ARG(axes->dtype() == DType::kInt64, "QuantizedMean's axes must be int64");
    const Shape& x = ctx.shape(0);
    int64_t first = 0, last = 0;
    MS_RETURN_IF_ERROR(block(*axes, x.rank(), &first, &last));
    std::vector<int64_t> dims;
    for (int d = 0; d < x.rank(); ++d) {
      if (d < first || d > last)
        dims.push_back(x[d]);
      else if (keepdims_)
        dims.push_back(1);
    }
    ctx.set_output(0, t, Shape(dims.begin(), dims.end()));
    return Status::OK();
  }

  Status compute(const ComputeContext& ctx) const override {
    const Tensor& x = ctx.input(0);
    int64_t first = 0, last = 0;
    MS_RETURN_IF_ERROR(block(ctx.input(3), x.rank(), &first, &last));
    int64_t outer = 1, n = 1, inner = 1;
    for (int d = 0; d < x.rank(); ++d) (d < first ? outer : d > last ? inner : n) *= x.dim(d);
    MS_CHECK_ARG(n > 0 && n < (int64_t{1} << 23), "QuantizedMean reduces 1 to 2^23 values");
    const bool is_signed = x.dtype() == DType::kInt8;
    const QParam px = qparam(ctx, 1, 2), py = qparam(ctx, 4, 5);
    const float xs = px.scale, ys = py.scale, yz = static_cast<float>(py.zp);
    const int32_t xz = px.zp;
    const auto* in = static_cast<const uint8_t*>(x.raw());
    auto* out = static_cast<uint8_t*>(ctx.output(0).raw());
    ctx.pool().parallel_for(outer, std::max<int64_t>(1, 65536 / (n * inner)), [&](int64_t b, int64_t e) {
      std::vector<int32_t> sum(static_cast<size_t>(inner));
      std::vector<float> mean(static_cast<size_t>(inner));
      for (int64_t o = b; o < e; ++o) {
        std::fill(sum.begin(), sum.end(), 0);
        for (int64_t r = 0; r < n; ++r) {
          const uint8_t* row = in + (o * n + r) * inner;
          if (is_signed)
            for (int64_t i = 0; i < inner; ++i) sum[i] += static_cast<int8_t>(row[i]);
          else
            for (int64_t i = 0; i < inner; ++i) sum[i] += row[i];
        }
        for (int64_t i = 0; i < inner; ++i)
          mean[i] = static_cast<float>(sum[i] - static_cast<int32_t>(n) * xz) * xs / static_cast<float>(n);
        quantize_8bit(mean.data(), inner, ys, yz, is_signed, out + o * inner);
      }
    });
    return Status::OK();
  }

 private:
  // The reduced axes as one block [first, last] of consecutive dims.
  static Status block(const Tensor& axes, int rank, int64_t* first, int64_t* last) {
    MS_CHECK_ARG(axes.numel() > 0, "QuantizedMean needs axes");
    std::vector<int64_t> a;
    for (int64_t i = 0; i < axes.numel(); ++i) {
      const int64_t v = axes.data<int64_t>()[i];
      MS_CHECK_ARG(v >= -rank && v < rank, "QuantizedMean: axis out of range");
      a.push_back(v < 0 ? v + rank : v);
    }
    std::sort(a.begin(), a.end());
    for (size_t i = 1; i < a.size(); ++i) MS_CHECK_ARG(a[i] == a[i - 1] + 1, "QuantizedMean reduces consecutive axes");
    *first = a.front();
    *last = a.back();
    return Status::OK();
  }
  bool keepdims_;
};

// ------------------------------------------------------------------ DynamicQuantizeLinear

class DynamicQuantizeKernel final : public Kernel {
 public:
  Status infer(InferContext& ctx) const override {
    MS_CHECK_ARG(ctx.has_input(0), "needs x");
    if (ctx.dtype(0) != DType::kFloat32)
      return Unsupported(std::string("dtype ") + dtype_name(ctx.dtype(0)) + " is not supported");
    ctx.set_output(0, DType::kUInt8, ctx.shape(0));
    if (ctx.num_outputs() > 1) ctx.set_output(1, DType::kFloat32, Shape{});
    if (ctx.num_outputs() > 2) ctx.set_output(2, DType::kUInt8, Shape{});
    return Status::OK();
  }

  Status compute(const ComputeContext& ctx) const override {
    const Tensor& x = ctx.input(0);
    const float* p = x.data<float>();
    const int64_t n = x.numel();
    // The range over chunks (their extremes merged under a lock), then the rounding; the range
    // always includes 0.
    constexpr int64_t kGrain = 16384;
    float mx = 0.f, mn = 0.f;
    std::mutex mu;
    ctx.pool().parallel_for(n, kGrain, [&](int64_t b, int64_t e) {
      float lo = 0.f, hi = 0.f;
      min_max(p + b, e - b, &lo, &hi);
      std::lock_guard<std::mutex> lk(mu);
      mn = std::min(mn, lo);
      mx = std::max(mx, hi);
    });
    const float scale = (mx == mn ? 1.0f : (mx - mn)) / 255.0f;
    const float zp0 = std::min(255.0f, std::max(0.0f, 0.0f - mn / scale));
    const float zp = std::nearbyint(zp0);
    uint8_t* y = ctx.output(0).data<uint8_t>();
    ctx.pool().parallel_for(n, kGrain,
                            [&](int64_t b, int64_t e) { quantize_8bit(p + b, e - b, scale, zp, false, y + b); });
    if (ctx.has_output(1)) ctx.output(1).data<float>()[0] = scale;
    if (ctx.has_output(2)) ctx.output(2).data<uint8_t>()[0] = static_cast<uint8_t>(zp);
    return Status::OK();
  }
};

// ---------------------------------------------------- MatMulInteger and QLinearMatMul

// numpy matmul shapes: 1-D operands are promoted and the promoted dims dropped again.
struct MMGeo {
  Shape out;
  int64_t M = 1, K = 1, N = 1, batch = 1;
  int64_t a_str[Shape::kMaxRank] = {}, b_str[Shape::kMaxRank] = {};  // batch strides in matrices
  Shape bshape;
};

Status mm_geo(const Shape& a0, const Shape& b0, MMGeo* g) {
  MS_CHECK_ARG(a0.rank() >= 1 && b0.rank() >= 1, "matmul operands must have rank >= 1");
  Shape a = a0, b = b0;
  if (a.rank() == 1) a.insert(0, 1);
  if (b.rank() == 1) b.push_back(1);
  MS_CHECK_ARG(a[a.rank() - 1] == b[b.rank() - 2], "inner dimensions differ: " + a0.str() + " x " + b0.str());
  g->M = a[a.rank() - 2];
  g->K = a[a.rank() - 1];
  g->N = b[b.rank() - 1];
  Shape ab(a.begin(), a.end() - 2), bb(b.begin(), b.end() - 2);
  MS_ASSIGN_OR_RETURN(g->bshape, broadcast_shapes(ab, bb));
  broadcast_strides(ab, g->bshape, g->a_str);
  broadcast_strides(bb, g->bshape, g->b_str);
  g->batch = g->bshape.numel();
  g->out = g->bshape;
  MS_CHECK_ARG(Shape::fits(g->out.rank() + 2), "result rank too large");
  if (a0.rank() > 1) g->out.push_back(g->M);
  if (b0.rank() > 1) g->out.push_back(g->N);
  return Status::OK();
}

// Offsets (in matrices) of batch item t of a and b.
void mm_batch(const MMGeo& g, int64_t t, int64_t* oa, int64_t* ob) {
  *oa = 0;
  *ob = 0;
  for (int d = g.bshape.rank() - 1; d >= 0; --d) {
    const int64_t c = t % g.bshape[d];
    t /= g.bshape[d];
    *oa += c * g.a_str[d];
    *ob += c * g.b_str[d];
  }
}

// acc[M, N] for batch item t: sum_k (a - za[m]) * (b - zb[n]). Zero points: scalar or 1-D.
template <class A, class B>
void mm_int(const MMGeo& g, const Tensor& a, const Tensor& b, const Tensor* za, const Tensor* zb, int64_t t, int64_t m0,
            int64_t m1, int32_t* acc) {
  int64_t oa, ob;
  mm_batch(g, t, &oa, &ob);
  const A* pa = a.data<A>() + oa * g.M * g.K;
  const B* pb = b.data<B>() + ob * g.K * g.N;
  for (int64_t m = m0; m < m1; ++m) {
    const int32_t zam = za ? static_cast<int32_t>(za->int_at(za->numel() == 1 ? 0 : m)) : 0;
    int32_t* row = acc + (m - m0) * g.N;
    for (int64_t n = 0; n < g.N; ++n) row[n] = 0;
    for (int64_t k = 0; k < g.K; ++k) {
      const int32_t av = static_cast<int32_t>(pa[m * g.K + k]) - zam;
      if (av == 0) continue;
      const B* brow = pb + k * g.N;
      for (int64_t n = 0; n < g.N; ++n) row[n] += av * static_cast<int32_t>(brow[n]);
    }
    if (zb) {
      // subtract av * zb[n] summed over k
      int32_t sa = 0;
      for (int64_t k = 0; k < g.K; ++k) sa += static_cast<int32_t>(pa[m * g.K + k]) - zam;
      for (int64_t n = 0; n < g.N; ++n) row[n] -= sa * static_cast<int32_t>(zb->int_at(zb->numel() == 1 ? 0 : n));
    }
  }
}

#define MS_SWITCH_8BIT(dt, Q, OTHER, ...)    \
  switch (dt) {                              \
    MS_CASE(kInt8, int8_t, Q, __VA_ARGS__)   \
    MS_CASE(kUInt8, uint8_t, Q, __VA_ARGS__) \
    default: OTHER;                          \
  }

// The int32 products of MatMulInteger and MatMulIntegerToFloat: kernels/int8_gemm.h where B is
// a constant matrix and A's zero point one value (packed weights, oneDNN's int8 matmul), the
// plain loops of mm_int otherwise.
class IntegerProduct {
 public:
  IntegerProduct(const Node& n, const KernelInit& init, int a_zp, int b_zp) : a_zp_(a_zp), b_zp_(b_zp) {
    const Tensor* b = init.prepack() ? init.constant(n, 1) : nullptr;
    const bool zb_known =
        static_cast<int>(n.inputs.size()) <= b_zp || n.inputs[b_zp] == kNoValue || init.constant(n, b_zp) != nullptr;
    if (b && zb_known && b->rank() == 2 && (b->dtype() == DType::kInt8 || b->dtype() == DType::kUInt8)) {
      const Tensor* zb = static_cast<int>(n.inputs.size()) > b_zp ? init.constant(n, b_zp) : nullptr;
      auto g = Int8Gemm::create(*b, zb, init.packs());
      if (g.ok()) gemm_ = std::move(g).value();
    }
  }

  // The weights (and their zero point) live in the packed copy alone.
  bool packed(int i) const { return gemm_ && (i == 1 || i == b_zp_); }

  // Checks the operands; the output shape into g.
  Status infer(InferContext& ctx, MMGeo* g) const {
    MS_CHECK_ARG(ctx.has_input(0) && ctx.has_input(1), "needs A and B");
    for (int i : {0, 1})
      if (ctx.dtype(i) != DType::kInt8 && ctx.dtype(i) != DType::kUInt8)
        return Unsupported(std::string("dtype ") + dtype_name(ctx.dtype(i)) + " is not supported");
    MS_RETURN_IF_ERROR(mm_geo(ctx.shape(0), ctx.shape(1), g));
    for (int i : {a_zp_, b_zp_})
      if (ctx.has_input(i))
        MS_CHECK_ARG(ctx.dtype(i) == ctx.dtype(i == a_zp_ ? 0 : 1), "a zero point must have its operand's dtype");
    if (ctx.has_input(a_zp_))
      MS_CHECK_ARG(ctx.shape(a_zp_).numel() == 1 || ctx.shape(a_zp_).numel() == g->M, "bad a_zero_point shape");
    if (ctx.has_input(b_zp_))
      MS_CHECK_ARG(ctx.shape(b_zp_).numel() == 1 || ctx.shape(b_zp_).numel() == g->N, "bad b_zero_point shape");
    return Status::OK();
  }

  // Whether the packed product takes this call: A of rank >= 2 times the [K, N] weights, one
  // zero point for A.
  bool fast(const InferContext& ctx) const {
    return gemm_ && ctx.shape(0).rank() >= 2 && (!ctx.has_input(a_zp_) || ctx.shape(a_zp_).numel() == 1);
  }
  bool fast(const ComputeContext& ctx) const {
    return gemm_ && ctx.input(0).rank() >= 2 && (!ctx.has_input(a_zp_) || ctx.input(a_zp_).numel() == 1);
  }

  // Workspace bytes for the int32 sums (`acc_bytes`: whether they need a buffer of their own).
  Status plan(InferContext& ctx, const MMGeo& g, bool acc_bytes) const {
    const int64_t rows = g.batch * g.M;
    if (fast(ctx)) {
      MS_ASSIGN_OR_RETURN(size_t ws, gemm_->prepare(rows, ctx.dtype(0) == DType::kInt8, ctx.threads()));
      ctx.set_workspace(ws);
    } else if (acc_bytes) {
      ctx.set_workspace(static_cast<size_t>(rows * g.N) * sizeof(int32_t));
    }
    return Status::OK();
  }

  // acc[batch * M, N]: in the caller's buffer, or (float output, fast path) handled by run_float.
  Status int32(const ComputeContext& ctx, const MMGeo& g, int32_t* acc) const {
    const Tensor* za = ctx.has_input(a_zp_) ? &ctx.input(a_zp_) : nullptr;
    if (fast(ctx))
      return gemm_->run_int32(ctx.input(0).raw(), ctx.input(0).dtype() == DType::kInt8,
                              za ? static_cast<int32_t>(za->int_at(0)) : 0, g.batch * g.M, acc, ctx.workspace(),
                              ctx.pool());
    const Tensor* zb = ctx.has_input(b_zp_) ? &ctx.input(b_zp_) : nullptr;
    MS_SWITCH_8BIT(ctx.input(0).dtype(), A, return Unsupported("dtype"), {
      MS_SWITCH_8BIT(ctx.input(1).dtype(), B, return Unsupported("dtype"), {
        ctx.pool().parallel_for(g.batch * g.M, std::max<int64_t>(1, 65536 / std::max<int64_t>(1, g.K * g.N)),
                                [&](int64_t b, int64_t e) {
                                  for (int64_t r = b; r < e; ++r) {
                                    const int64_t t = r / g.M, m = r % g.M;
                                    mm_int<A, B>(g, ctx.input(0), ctx.input(1), za, zb, t, m, m + 1, acc + r * g.N);
                                  }
                                });
      });
    });
    return Status::OK();
  }

  const Int8Gemm* gemm() const { return gemm_.get(); }

 private:
  int a_zp_, b_zp_;
  std::unique_ptr<Int8Gemm> gemm_;
};

class MatMulIntegerKernel final : public Kernel {
 public:
  MatMulIntegerKernel(const Node& n, const KernelInit& init) : p_(n, init, 2, 3) {}
  bool packed_constant(int i) const override { return p_.packed(i); }

  Status infer(InferContext& ctx) const override {
    MMGeo g;
    MS_RETURN_IF_ERROR(p_.infer(ctx, &g));
    ctx.set_output(0, DType::kInt32, g.out);
    return p_.plan(ctx, g, false);
  }

  Status compute(const ComputeContext& ctx) const override {
    MMGeo g;
    MS_RETURN_IF_ERROR(mm_geo(ctx.input(0).shape(), ctx.input(1).shape(), &g));
    return p_.int32(ctx, g, ctx.output(0).data<int32_t>());
  }

 private:
  IntegerProduct p_;
};

// com.microsoft MatMulIntegerToFloat (onnxruntime's fusion of DynamicQuantizeLinear's consumers,
// and what passes/fuse_matmul_integer.cc makes): A, B, a_scale, b_scale, a_zero_point,
// b_zero_point, bias -> float32 Y = float(acc) * float(a_scale * b_scale[n]) + bias[n].
// a_scale one value; b_scale one or N values; bias N values.
class MatMulIntegerToFloatKernel final : public Kernel {
 public:
  MatMulIntegerToFloatKernel(const Node& n, const KernelInit& init) : p_(n, init, 4, 5) {}
  bool packed_constant(int i) const override { return p_.packed(i); }

  Status infer(InferContext& ctx) const override {
    MMGeo g;
    MS_RETURN_IF_ERROR(p_.infer(ctx, &g));
    MS_CHECK_ARG(ctx.has_input(2) && ctx.has_input(3), "needs a_scale and b_scale");
    for (int i : {2, 3, 6})
      if (ctx.has_input(i) && ctx.dtype(i) != DType::kFloat32)
        return Unsupported(std::string("scales and bias of dtype ") + dtype_name(ctx.dtype(i)) + " are not supported");
    MS_CHECK_ARG(ctx.shape(2).numel() == 1, "a_scale must have one value, got shape " + ctx.shape(2).str());
    MS_CHECK_ARG(ctx.shape(3).numel() == 1 || ctx.shape(3).numel() == g.N,
                 "b_scale must have 1 or N values, got shape " + ctx.shape(3).str());
    if (ctx.has_input(6))
      MS_CHECK_ARG(ctx.shape(6).numel() == g.N, "bias must have N values, got shape " + ctx.shape(6).str());
    ctx.set_output(0, DType::kFloat32, g.out);
    return p_.plan(ctx, g, true);
  }

  Status compute(const ComputeContext& ctx) const override {
    MMGeo g;
    MS_RETURN_IF_ERROR(mm_geo(ctx.input(0).shape(), ctx.input(1).shape(), &g));
    const float a_scale = ctx.input(2).data<float>()[0];
    const Tensor& bs = ctx.input(3);
    const float* bias = ctx.has_input(6) ? ctx.input(6).data<float>() : nullptr;
    float* y = ctx.output(0).data<float>();
    const int64_t rows = g.batch * g.M, N = g.N;
    if (p_.fast(ctx)) {
      const int32_t za = ctx.has_input(4) ? static_cast<int32_t>(ctx.input(4).int_at(0)) : 0;
      return p_.gemm()->run_float(ctx.input(0).raw(), ctx.input(0).dtype() == DType::kInt8, za, rows, a_scale,
                                  bs.data<float>(), bs.numel() > 1, bias, y, ctx.workspace(), ctx.pool());
    }
    auto* acc = static_cast<int32_t*>(ctx.workspace());
    MS_RETURN_IF_ERROR(p_.int32(ctx, g, acc));
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t n = 0; n < N; ++n) {
        const float f = static_cast<float>(acc[r * N + n]) * (a_scale * bs.data<float>()[bs.numel() > 1 ? n : 0]);
        y[r * N + n] = bias ? f + bias[n] : f;
      }
    return Status::OK();
  }

 private:
  IntegerProduct p_;
};

// Requantization multiplier a_scale * b_scale / y_scale, in the scales' precision.
template <class S>
double requant_mult(const Tensor& as, const Tensor& bs, int64_t j, const Tensor& ys, int64_t jy) {
  const S a = as.data<S>()[as.numel() == 1 ? 0 : j];
  const S b = bs.data<S>()[bs.numel() == 1 ? 0 : j];
  const S y = ys.data<S>()[ys.numel() == 1 ? 0 : jy];
  return static_cast<double>(static_cast<S>(static_cast<S>(a * b) / y));
}

class QLinearMatMulKernel final : public Kernel {
 public:
  Status infer(InferContext& ctx) const override {
    for (int i = 0; i < 8; ++i) MS_CHECK_ARG(ctx.has_input(i), "QLinearMatMul needs 8 inputs");
    for (int i : {0, 3, 7})
      if (ctx.dtype(i) != DType::kInt8 && ctx.dtype(i) != DType::kUInt8)
        return Unsupported(std::string("dtype ") + dtype_name(ctx.dtype(i)) + " is not supported");
    for (int i : {1, 4, 6})
      if (!dtype_is_float(ctx.dtype(i)) || ctx.dtype(i) != ctx.dtype(1))
        return Unsupported("scales must share one float dtype");
    MS_CHECK_ARG(ctx.dtype(2) == ctx.dtype(0), "a_zero_point must have a's dtype");
    MS_CHECK_ARG(ctx.dtype(5) == ctx.dtype(3), "b_zero_point must have b's dtype");
    MMGeo g;
    MS_RETURN_IF_ERROR(mm_geo(ctx.shape(0), ctx.shape(3), &g));
    MS_CHECK_ARG(ctx.shape(1).numel() == 1 && ctx.shape(2).numel() == 1, "a_scale and a_zero_point must be scalars");
    MS_CHECK_ARG(ctx.shape(6).numel() == ctx.shape(7).numel(), "y_scale and y_zero_point differ in size");
    MS_CHECK_ARG(ctx.shape(4).numel() == ctx.shape(5).numel(), "b_scale and b_zero_point differ in size");
    for (int i : {4, 5, 6, 7})
      MS_CHECK_ARG(ctx.shape(i).numel() == 1 || ctx.shape(i).numel() == g.N, "per-column scales must have N elements");
    ctx.set_output(0, ctx.dtype(7), g.out);
    return Status::OK();
  }

  Status compute(const ComputeContext& ctx) const override {
    const Tensor &a = ctx.input(0), &b = ctx.input(3), &yz = ctx.input(7);
    MMGeo g;
    MS_RETURN_IF_ERROR(mm_geo(a.shape(), b.shape(), &g));
    Tensor& y = ctx.output(0);
    MS_SWITCH_8BIT(a.dtype(), A, return Unsupported("dtype"), {
      MS_SWITCH_8BIT(b.dtype(), B, return Unsupported("dtype"), {
        MS_SWITCH_8BIT(y.dtype(), Y, return Unsupported("dtype"), {
          ctx.pool().parallel_for(
              g.batch * g.M, std::max<int64_t>(1, 65536 / std::max<int64_t>(1, g.K * g.N)),
              [&](int64_t lo, int64_t hi) {
                for (int64_t r = lo; r < hi; ++r) {
                  const int64_t t = r / g.M, m = r % g.M;
                  Y* out = y.data<Y>() + r * g.N;
                  for (int64_t n0 = 0; n0 < g.N; n0 += 256) {
                    const int64_t n1 = std::min(g.N, n0 + 256);
                    int32_t buf[256];
                    // accumulate the columns [n0, n1) of row m
                    int64_t oa, ob;
                    mm_batch(g, t, &oa, &ob);
                    const A* pa = a.data<A>() + oa * g.M * g.K + m * g.K;
                    const B* pb = b.data<B>() + ob * g.K * g.N;
                    const int32_t za = static_cast<int32_t>(ctx.input(2).int_at(0));
                    for (int64_t n = n0; n < n1; ++n) buf[n - n0] = 0;
                    for (int64_t k = 0; k < g.K; ++k) {
                      const int32_t av = static_cast<int32_t>(pa[k]) - za;
                      for (int64_t n = n0; n < n1; ++n) {
                        const int32_t zb = static_cast<int32_t>(ctx.input(5).int_at(ctx.input(5).numel() == 1 ? 0 : n));
                        buf[n - n0] += av * (static_cast<int32_t>(pb[k * g.N + n]) - zb);
                      }
                    }
                    for (int64_t n = n0; n < n1; ++n) {
                      double mult = 0;
                      MS_SWITCH_FLOAT(ctx.input(1).dtype(), S, ,
                                      mult = requant_mult<S>(ctx.input(1), ctx.input(4), n, ctx.input(6), n));
                      const double zy = static_cast<double>(yz.int_at(yz.numel() == 1 ? 0 : n));
                      out[n] = saturate<Y>(std::nearbyint(buf[n - n0] * mult) + zy);
                    }
                  }
                }
              });
        });
      });
    });
    return Status::OK();
  }
};

// ------------------------------------------------------------ ConvInteger and QLinearConv

// acc[OS] for batch n and output channel m: sum (x - zx) * (w - zw[m]) over the window.
template <class X, class W>
void conv_int(const ConvGeometry& g, const X* x, int32_t zx, const W* w, int32_t zw, int64_t n, int64_t m,
              int32_t* acc) {
  const int64_t grp = m / g.Mg;
  const int64_t os = g.out_size(), isz = g.in_size(), ksz = g.k_size();
  for (int64_t o = 0; o < os; ++o) acc[o] = 0;
  for (int64_t c = 0; c < g.Cg; ++c) {
    const X* xc = x + (n * g.C + grp * g.Cg + c) * isz;
    const W* wc = w + (m * g.Cg + c) * ksz;
    for (int64_t k0 = 0; k0 < g.k[0]; ++k0)
      for (int64_t k1 = 0; k1 < g.k[1]; ++k1)
        for (int64_t k2 = 0; k2 < g.k[2]; ++k2) {
          const int32_t wv = static_cast<int32_t>(wc[(k0 * g.k[1] + k1) * g.k[2] + k2]) - zw;
          if (wv == 0) continue;
          for (int64_t o0 = 0; o0 < g.out[0]; ++o0) {
            const int64_t i0 = o0 * g.s[0] - g.pb[0] + k0 * g.d[0];
            if (i0 < 0 || i0 >= g.in[0]) continue;
            for (int64_t o1 = 0; o1 < g.out[1]; ++o1) {
              const int64_t i1 = o1 * g.s[1] - g.pb[1] + k1 * g.d[1];
              if (i1 < 0 || i1 >= g.in[1]) continue;
              int32_t* ar = acc + (o0 * g.out[1] + o1) * g.out[2];
              const X* xr = xc + (i0 * g.in[1] + i1) * g.in[2];
              for (int64_t o2 = 0; o2 < g.out[2]; ++o2) {
                const int64_t i2 = o2 * g.s[2] - g.pb[2] + k2 * g.d[2];
                if (i2 < 0 || i2 >= g.in[2]) continue;
                ar[o2] += wv * (static_cast<int32_t>(xr[i2]) - zx);
              }
            }
          }
        }
  }
}

template <bool kQLinear>
class ConvIntKernel final : public Kernel {
 public:
  explicit ConvIntKernel(WindowAttrs a) : a_(std::move(a)) {}
  // Input positions: x, w and their zero points (and scales for QLinearConv).
  static constexpr int kX = 0, kW = kQLinear ? 3 : 1;

  Status infer(InferContext& ctx) const override {
    MS_CHECK_ARG(ctx.has_input(kX) && ctx.has_input(kW), "needs x and w");
    for (int i : {kX, kW})
      if (ctx.dtype(i) != DType::kInt8 && ctx.dtype(i) != DType::kUInt8)
        return Unsupported(std::string("dtype ") + dtype_name(ctx.dtype(i)) + " is not supported");
    ConvGeometry g;
    MS_RETURN_IF_ERROR(conv_geometry(a_, ctx.shape(kX), ctx.shape(kW), &g));
    const int zxi = kQLinear ? 2 : 2, zwi = kQLinear ? 5 : 3;
    if (ctx.has_input(zxi)) {
      MS_CHECK_ARG(ctx.shape(zxi).numel() == 1, "x_zero_point must be a scalar");
      MS_CHECK_ARG(ctx.dtype(zxi) == ctx.dtype(kX), "x_zero_point must have x's dtype");
    }
    if (ctx.has_input(zwi)) {
      MS_CHECK_ARG(ctx.shape(zwi).numel() == 1 || ctx.shape(zwi).numel() == g.M, "bad w_zero_point shape");
      MS_CHECK_ARG(ctx.dtype(zwi) == ctx.dtype(kW), "w_zero_point must have w's dtype");
    }
    DType yt = DType::kInt32;
    if constexpr (kQLinear) {
      for (int i = 0; i < 8; ++i) MS_CHECK_ARG(ctx.has_input(i), "QLinearConv needs 8 inputs");
      yt = ctx.dtype(7);
      for (int i : {1, 4, 6})
        if (ctx.dtype(i) != DType::kFloat32) return Unsupported("scales must be float32");
      MS_CHECK_ARG(ctx.shape(4).numel() == 1 || ctx.shape(4).numel() == g.M, "bad w_scale shape");
      MS_CHECK_ARG(ctx.shape(1).numel() == 1 && ctx.shape(6).numel() == 1 && ctx.shape(7).numel() == 1,
                   "x_scale, y_scale and y_zero_point must be scalars");
      MS_CHECK_ARG(is_quant_type(yt) && (yt == DType::kInt8 || yt == DType::kUInt8),
                   "y_zero_point must be int8 or uint8");
      if (ctx.has_input(8))
        MS_CHECK_ARG(ctx.dtype(8) == DType::kInt32 && ctx.shape(8).numel() == g.M, "B must be int32[M]");
    }
    ctx.set_output(0, yt, g.output_shape());
    ctx.set_workspace(kQLinear ? static_cast<size_t>(g.N * g.M * g.out_size()) * sizeof(int32_t) + 64 : 0);
    return Status::OK();
  }

  Status compute(const ComputeContext& ctx) const override {
    const Tensor &x = ctx.input(kX), &w = ctx.input(kW);
    ConvGeometry g;
    MS_RETURN_IF_ERROR(conv_geometry(a_, x.shape(), w.shape(), &g));
    const int zxi = 2, zwi = kQLinear ? 5 : 3;
    const int32_t zx = ctx.has_input(zxi) ? static_cast<int32_t>(ctx.input(zxi).int_at(0)) : 0;
    const Tensor* zw = ctx.has_input(zwi) ? &ctx.input(zwi) : nullptr;
    const int64_t os = g.out_size();
    int32_t* acc = kQLinear ? static_cast<int32_t*>(ctx.workspace()) : ctx.output(0).data<int32_t>();
    MS_SWITCH_8BIT(x.dtype(), X, return Unsupported("dtype"), {
      MS_SWITCH_8BIT(w.dtype(), W, return Unsupported("dtype"), {
        ctx.pool().parallel_for(g.N * g.M, 1, [&](int64_t b, int64_t e) {
          for (int64_t r = b; r < e; ++r) {
            const int64_t n = r / g.M, m = r % g.M;
            const int32_t zwm = zw ? static_cast<int32_t>(zw->int_at(zw->numel() == 1 ? 0 : m)) : 0;
            conv_int<X, W>(g, x.data<X>(), zx, w.data<W>(), zwm, n, m, acc + r * os);
          }
        });
      });
    });
    if constexpr (kQLinear) {
      const Tensor &xs = ctx.input(1), &ws = ctx.input(4), &ys = ctx.input(6), &yz = ctx.input(7);
      const Tensor* bias = ctx.has_input(8) ? &ctx.input(8) : nullptr;
      Tensor& y = ctx.output(0);
      MS_SWITCH_8BIT(y.dtype(), Y, return Unsupported("dtype"), {
        Y* out = y.data<Y>();
        const double zy = static_cast<double>(yz.int_at(0));
        for (int64_t r = 0; r < g.N * g.M; ++r) {
          const int64_t m = r % g.M;
          const float xsv = xs.data<float>()[0];
          const float wsv = ws.data<float>()[ws.numel() == 1 ? 0 : m];
          const double mult = static_cast<double>(static_cast<float>(xsv * wsv) / ys.data<float>()[0]);
          const int32_t bv = bias ? bias->data<int32_t>()[m] : 0;
          for (int64_t o = 0; o < os; ++o)
            out[r * os + o] = saturate<Y>(std::nearbyint(static_cast<double>(acc[r * os + o] + bv) * mult) + zy);
        }
      });
    }
    return Status::OK();
  }

 private:
  WindowAttrs a_;
};

// com.mserve NhwcQLinearConv (passes/nhwc_convs.cc): QLinearConv on channels-last data,
// X [N, H, W, C] -> Y [N, OH, OW, M], every input but X constant, weights int8 with zero zero
// points, one oneDNN int8 convolution (kernels/dnnl_conv.h: weights packed once, the
// requantization fused; without VNNI on activations in a 7-bit window, kernels/int8_window.h).
// An optional 10th input, 256 8-bit codes, maps Y's codes after it (a Lookup8 folded in by
// passes/fuse_lookup8.cc): Y then has the table's type. Rounds scale * (acc + B)
// in float32 where QLinearConv's reference rounds in double: a value within an ulp of a tie may land one step away.
class NhwcQLinearConvKernel final : public Kernel {
 public:
  NhwcQLinearConvKernel(WindowAttrs a, std::unique_ptr<DnnlConv> dnnl) : a_(std::move(a)), dnnl_(std::move(dnnl)) {}
  bool packed_constant(int i) const override { return i == 3 || i == 8 || i == 9; }

  Status infer(InferContext& ctx) const override {
    MS_CHECK_ARG(ctx.has_input(0) && ctx.has_input(3), "NhwcQLinearConv needs X and W");
    MS_CHECK_ARG(ctx.dtype(0) == DType::kUInt8 || ctx.dtype(0) == DType::kInt8, "NhwcQLinearConv takes 8-bit X");
    const Shape& x = ctx.shape(0);
    MS_CHECK_ARG(x.rank() == 4, "NhwcQLinearConv X must be [N, H, W, C], got " + x.str());
    ConvGeometry g;
    MS_RETURN_IF_ERROR(conv_geometry(a_, Shape{x[0], x[3], x[1], x[2]}, ctx.shape(3), &g));
    MS_CHECK_ARG(ctx.has_input(7), "NhwcQLinearConv needs y_zero_point");
    const DType yt = ctx.num_inputs() > 9 && ctx.has_input(9) ? ctx.dtype(9) : ctx.dtype(7);
    ctx.set_output(0, yt, Shape{g.N, g.out[1], g.out[2], g.M});
    if (!dnnl_) return Status::OK();  // shapes only
    MS_ASSIGN_OR_RETURN(size_t ws, dnnl_->prepare(DnnlConv::geometry(g), ctx.threads()));
    ctx.set_workspace(ws);
    return Status::OK();
  }

  Status compute(const ComputeContext& ctx) const override {
    if (ctx.output(0).numel() == 0) return Status::OK();
    if (!dnnl_) return Internal("a shapes-only NhwcQLinearConv kernel was asked to run");
    const Shape& x = ctx.input(0).shape();
    ConvGeometry g;
    MS_RETURN_IF_ERROR(conv_geometry(a_, Shape{x[0], x[3], x[1], x[2]}, ctx.input(3).shape(), &g));
    return dnnl_->run(ctx.input(0).raw(), ctx.output(0).raw(), DnnlConv::geometry(g), ctx.workspace(),
                      ctx.pool().threads());
  }

 private:
  WindowAttrs a_;
  std::unique_ptr<DnnlConv> dnnl_;
};

}  // namespace

Status dequantize(const Tensor& x, const Tensor& s, const Tensor* zp, int64_t axis, int64_t block, Tensor& y,
                  ThreadPool& pool) {
  Granularity g;
  MS_RETURN_IF_ERROR(make_granularity(x.shape(), s.shape(), zp ? &zp->shape() : nullptr, axis, block, &g));
  const DType xt = x.dtype();
  const bool narrow = dtype_is_lowbit(xt);
  if (narrow && zp && !dtype_is_lowbit_int(xt) && xt != DType::kFloat4E2M1) {
    for (int64_t k = 0; k < zp->numel(); ++k)
      if (lowbit_to_float(xt, static_cast<const uint8_t*>(zp->raw())[k]) != 0.0f)
        return InvalidArgument(std::string("x_zero_point must be zero for ") + dtype_name(xt));
  }
  const int64_t n = x.numel();
  if (g.kind == Granularity::kTensor && y.dtype() == DType::kFloat32 && s.dtype() == DType::kFloat32 &&
      (xt == DType::kUInt8 || xt == DType::kInt8)) {  // activations: vectorized
    const float scale = s.data<float>()[0];
    const int32_t z = zp ? static_cast<int32_t>(zp->int_at(0)) : 0;
    float* out = y.data<float>();
    pool.parallel_for(n, 16384, [&](int64_t b, int64_t e) {
      dequantize_8bit(static_cast<const uint8_t*>(x.raw()) + b, xt == DType::kInt8, e - b, scale, z, out + b);
    });
    return Status::OK();
  }
  MS_SWITCH_FLOAT(y.dtype(), T, return Unsupported("dtype"), {
    using Acc = std::conditional_t<std::is_same_v<T, double>, double, float>;
    T* out = y.data<T>();
    pool.parallel_for(n, 16384, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        const int64_t k = g.index(i);
        Acc v;
        if (narrow) {  // exact in float: the codes' values and their differences
          const auto* xc = static_cast<const uint8_t*>(x.raw());
          const auto* zc = zp ? static_cast<const uint8_t*>(zp->raw()) : nullptr;
          v = static_cast<Acc>(lowbit_to_float(xt, xc[i])) - (zc ? static_cast<Acc>(lowbit_to_float(xt, zc[k])) : 0);
        } else {
          v = static_cast<Acc>(x.int_at(i) - (zp ? zp->int_at(k) : 0));
        }
        out[i] = static_cast<T>(v * static_cast<Acc>(s.float_at(k)));
      }
    });
  });
  return Status::OK();
}

StatusOr<KernelPtr> create_onnx_QuantizeLinear(const Node& n, const KernelInit&) {
  return KernelPtr(new QuantizeKernel(n));
}
StatusOr<KernelPtr> create_onnx_DequantizeLinear(const Node& n, const KernelInit&) {
  return KernelPtr(new DequantizeKernel(n));
}
StatusOr<KernelPtr> create_mserve_QuantizeDequantize(const Node&, const KernelInit&) {
  return KernelPtr(new QuantizeDequantizeKernel());
}
StatusOr<KernelPtr> create_mserve_QuantizedAdd(const Node& n, const KernelInit&) {
  return KernelPtr(new QuantizedBinaryKernel(false, n.attr_int("relu", 0) != 0));
}
StatusOr<KernelPtr> create_mserve_QuantizedMean(const Node& n, const KernelInit&) {
  return KernelPtr(new QuantizedMeanKernel(n.attr_int("keepdims", 1) != 0));
}
StatusOr<KernelPtr> create_mserve_QuantizedMul(const Node& n, const KernelInit&) {
  return KernelPtr(new QuantizedBinaryKernel(true, n.attr_int("relu", 0) != 0));
}
StatusOr<KernelPtr> create_mserve_Lookup8(const Node&, const KernelInit&) { return KernelPtr(new Lookup8Kernel()); }
StatusOr<KernelPtr> create_onnx_DynamicQuantizeLinear(const Node&, const KernelInit&) {
  return KernelPtr(new DynamicQuantizeKernel());
}
StatusOr<KernelPtr> create_onnx_MatMulInteger(const Node& n, const KernelInit& init) {
  return KernelPtr(new MatMulIntegerKernel(n, init));
}
StatusOr<KernelPtr> create_microsoft_MatMulIntegerToFloat(const Node& n, const KernelInit& init) {
  return KernelPtr(new MatMulIntegerToFloatKernel(n, init));
}
StatusOr<KernelPtr> create_onnx_QLinearMatMul(const Node&, const KernelInit&) {
  return KernelPtr(new QLinearMatMulKernel());
}
StatusOr<KernelPtr> create_onnx_ConvInteger(const Node& n, const KernelInit&) {
  MS_ASSIGN_OR_RETURN(WindowAttrs a, parse_window_attrs(n));
  return KernelPtr(new ConvIntKernel<false>(std::move(a)));
}
StatusOr<KernelPtr> create_mserve_NhwcQLinearConv(const Node& n, const KernelInit& init) {
  MS_ASSIGN_OR_RETURN(WindowAttrs a, parse_window_attrs(n));
  const Tensor *xs = init.constant(n, 1), *xz = init.constant(n, 2), *w = init.constant(n, 3),
               *ws = init.constant(n, 4), *ys = init.constant(n, 6), *yz = init.constant(n, 7);
  const Tensor* b = n.inputs.size() > 8 && n.inputs[8] != kNoValue ? init.constant(n, 8) : nullptr;
  const Tensor* table = n.inputs.size() > 9 && n.inputs[9] != kNoValue ? init.constant(n, 9) : nullptr;
  if (!xs || !xz || !w || !ws || !ys || !yz || w->dtype() != DType::kInt8 || w->rank() != 4)
    return Unsupported("NhwcQLinearConv needs constant int8 weights and quantization parameters");
  const bool has_table = n.inputs.size() > 9 && n.inputs[9] != kNoValue;
  if (table && (table->numel() != 256 || (table->dtype() != DType::kUInt8 && table->dtype() != DType::kInt8)))
    return Unsupported("NhwcQLinearConv's table must be 256 8-bit codes");
  std::unique_ptr<DnnlConv> dnnl;
  // A table still to be folded (Lookup8's is computed by constant folding): shapes only until
  // the planner creates the kernel again with it.
  if (init.prepack() && (!has_table || table)) {
    DnnlConv::Params p;
    const int64_t M = w->dim(0);
    if (!DnnlConv::set_window(a, w->shape(), &p))
      return Unsupported("NhwcQLinearConv: the attributes do not fit the weights " + w->shape().str());
    p.nhwc = p.always = true;
    p.q.x_signed = xz->dtype() == DType::kInt8;
    p.q.y_signed = yz->dtype() == DType::kInt8;
    p.q.x_zero = static_cast<int32_t>(xz->int_at(0));
    p.q.y_zero = static_cast<int32_t>(yz->int_at(0));
    const float xsv = xs->data<float>()[0], ysv = ys->data<float>()[0];
    for (int64_t m = 0; m < ws->numel(); ++m) p.q.scales.push_back(xsv * ws->data<float>()[m] / ysv);
    std::vector<float> bias;
    if (b)
      for (int64_t m = 0; m < M; ++m) bias.push_back(static_cast<float>(b->data<int32_t>()[m]));
    if (table) {
      const auto* t = static_cast<const uint8_t*>(table->raw());
      p.q.table.assign(t, t + 256);
    }
    dnnl = DnnlConv::create_int8(p, w->data<int8_t>(), b ? bias.data() : nullptr, init.packs());
    if (!dnnl) return Unsupported("NhwcQLinearConv: oneDNN has no int8 convolution for these parameters");
  }
  return KernelPtr(new NhwcQLinearConvKernel(std::move(a), std::move(dnnl)));
}

StatusOr<KernelPtr> create_onnx_QLinearConv(const Node& n, const KernelInit&) {
  MS_ASSIGN_OR_RETURN(WindowAttrs a, parse_window_attrs(n));
  return KernelPtr(new ConvIntKernel<true>(std::move(a)));
}

}  // namespace mserve
