// onnxruntime's quantized contrib operators (domain com.microsoft), the ones its quantizer writes in
// QOperator format: QLinearAdd, QLinearMul, QLinearSigmoid, QLinearLeakyRelu,
// QLinearGlobalAveragePool, QLinearConcat, QLinearSoftmax and QGemm.
//
// Quantized tensors are int8 or uint8 with per-tensor scales (float32) and zero points (the data's
// dtype; an omitted zero point is 0); QGemm also takes a per-column scale and zero point for B.
// The arithmetic follows onnxruntime's CPU kernels, in float32 where they compute in float32, so
// that results agree bit for bit except where a value lands on a rounding tie:
//   quantize(v) = clamp(nearbyint(v / y_scale) + y_zero_point), NaN to the type's minimum;
//   QLinearAdd  c = quantize'((a_scale / c_scale) * (a - za) + (b_scale / c_scale) * (b - zb));
//   QLinearMul  c = quantize'((a_scale * (a - za)) * (b_scale * (b - zb)) / c_scale);
//   the unary ops (and QLinearConcat's rescaling) use a 256-entry table of
//   quantize(f(x_scale * (x - zx)));
//   QLinearGlobalAveragePool and QGemm accumulate in int32 and requantize with
//   clamp(nearbyint(float(acc) * multiplier)) + y_zero_point;
//   QLinearSoftmax uses onnxruntime's table of scaled exponentials (exact float sums).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "core/kernels/common.h"
#include "core/kernels/qparams.h"
#include "core/kernels/registry.h"
#include "core/parallel/thread_pool.h"

namespace mserve {
namespace {

#define MS_SWITCH_Q8(dt, Q, OTHER, ...)      \
  switch (dt) {                              \
    MS_CASE(kInt8, int8_t, Q, __VA_ARGS__)   \
    MS_CASE(kUInt8, uint8_t, Q, __VA_ARGS__) \
    default: OTHER;                          \
  }

// clamp(nearbyint(v) + zp) in Q's range; NaN becomes the minimum, as in onnxruntime.
template <class Q>
Q round_sat(float v, int32_t zp) {
  constexpr float lo = std::numeric_limits<Q>::lowest(), hi = std::numeric_limits<Q>::max();
  if (std::isnan(v)) return std::numeric_limits<Q>::lowest();
  const float r = std::nearbyint(v) + static_cast<float>(zp);
  return static_cast<Q>(std::min(std::max(r, lo), hi));
}

// onnxruntime's requantization: clamp before rounding, in float.
template <class Q>
Q requantize(int32_t acc, float mult, int32_t zp) {
  const float lo = static_cast<float>(std::numeric_limits<Q>::lowest() - zp);
  const float hi = static_cast<float>(std::numeric_limits<Q>::max() - zp);
  float v = static_cast<float>(acc) * mult;
  if (std::isnan(v)) return std::numeric_limits<Q>::lowest();
  v = std::min(std::max(v, lo), hi);
  return static_cast<Q>(static_cast<int32_t>(std::nearbyint(v)) + zp);
}

// ------------------------------------------------------------- QLinearAdd and QLinearMul

template <bool kMul>
class QLinearBinaryKernel final : public Kernel {
 public:
  // Inputs: A, A_scale, A_zero_point, B, B_scale, B_zero_point, C_scale, C_zero_point.
  Status infer(InferContext& ctx) const override {
    MS_RETURN_IF_ERROR(check_q8(ctx, 0, "A"));
    MS_RETURN_IF_ERROR(check_q8(ctx, 3, "B"));
    const DType t = ctx.dtype(0);
    MS_CHECK_ARG(ctx.dtype(3) == t, "A and B must have one dtype");
    MS_RETURN_IF_ERROR(check_qparams(ctx, 1, 2, t, "A"));
    MS_RETURN_IF_ERROR(check_qparams(ctx, 4, 5, t, "B"));
    MS_RETURN_IF_ERROR(check_qparams(ctx, 6, 7, t, "C"));
    MS_ASSIGN_OR_RETURN(Shape out, broadcast_shapes(ctx.shape(0), ctx.shape(3)));
    ctx.set_output(0, t, out);
    return Status::OK();
  }

  Status compute(const ComputeContext& ctx) const override {
    const Tensor &a = ctx.input(0), &b = ctx.input(3);
    Tensor& c = ctx.output(0);
    const QParam pa = qparam(ctx, 1, 2), pb = qparam(ctx, 4, 5), pc = qparam(ctx, 6, 7);
    const Shape& out = c.shape();
    int64_t sa[Shape::kMaxRank] = {}, sb[Shape::kMaxRank] = {};
    broadcast_strides(a.shape(), out, sa);
    broadcast_strides(b.shape(), out, sb);
    const int rank = out.rank();
    const float ra = pa.scale / pc.scale, rb = pb.scale / pc.scale;
    MS_SWITCH_Q8(c.dtype(), Q, return Unsupported("dtype"), {
      const Q* pa_data = a.data<Q>();
      const Q* pb_data = b.data<Q>();
      Q* y = c.data<Q>();
      ctx.pool().parallel_for(out.numel(), 16384, [&](int64_t lo, int64_t hi) {
        for (int64_t i = lo; i < hi; ++i) {
          int64_t ia = 0, ib = 0, r = i;
          for (int d = rank - 1; d >= 0; --d) {
            const int64_t k = r % out[d];
            r /= out[d];
            ia += k * sa[d];
            ib += k * sb[d];
          }
          const int32_t qa = static_cast<int32_t>(pa_data[ia]) - pa.zp;
          const int32_t qb = static_cast<int32_t>(pb_data[ib]) - pb.zp;
          if constexpr (kMul) {
            const float v = (pa.scale * static_cast<float>(qa)) * (pb.scale * static_cast<float>(qb)) / pc.scale;
            y[i] = round_sat<Q>(v, pc.zp);
          } else {
            y[i] = round_sat<Q>(ra * static_cast<float>(qa) + rb * static_cast<float>(qb), pc.zp);
          }
        }
      });
    });
    return Status::OK();
  }
};

// --------------------------------------------- table ops: QLinearSigmoid, QLinearLeakyRelu

// table[x - lowest] = quantize(f(x_scale * (x - zx)), y_scale, zy) for every value x of Q.
template <class Q, class F>
void build_table(const QParam& px, const QParam& py, F f, Q* table) {
  for (int v = std::numeric_limits<Q>::lowest(); v <= std::numeric_limits<Q>::max(); ++v) {
    const float x = px.scale * static_cast<float>(v - px.zp);
    table[v - std::numeric_limits<Q>::lowest()] = round_sat<Q>(f(x) / py.scale, py.zp);
  }
}

enum class TableOp { kSigmoid, kLeakyRelu };

class QLinearTableKernel final : public Kernel {
 public:
  QLinearTableKernel(TableOp op, float alpha) : op_(op), alpha_(alpha) {}

  // Inputs: X, X_scale, X_zero_point, Y_scale, Y_zero_point.
  Status infer(InferContext& ctx) const override {
    MS_RETURN_IF_ERROR(check_q8(ctx, 0, "X"));
    MS_RETURN_IF_ERROR(check_qparams(ctx, 1, 2, ctx.dtype(0), "X"));
    MS_RETURN_IF_ERROR(check_qparams(ctx, 3, 4, ctx.dtype(0), "Y"));
    ctx.set_output(0, ctx.dtype(0), ctx.shape(0));
    return Status::OK();
  }

  Status compute(const ComputeContext& ctx) const override {
    const QParam px = qparam(ctx, 1, 2), py = qparam(ctx, 3, 4);
    const Tensor& x = ctx.input(0);
    const float alpha = alpha_;
    MS_SWITCH_Q8(x.dtype(), Q, return Unsupported("dtype"), {
      Q table[256];
      if (op_ == TableOp::kSigmoid) {
        build_table<Q>(
            px, py, [](float v) { return 1.0f / (1.0f + std::exp(-v)); }, table);
      } else {
        build_table<Q>(
            px, py, [alpha](float v) { return v >= 0 ? v : v * alpha; }, table);
      }
      const Q* in = x.data<Q>();
      Q* y = ctx.output(0).data<Q>();
      const int64_t n = x.numel();
      for (int64_t i = 0; i < n; ++i) y[i] = table[static_cast<int>(in[i]) - std::numeric_limits<Q>::lowest()];
    });
    return Status::OK();
  }

 private:
  TableOp op_;
  float alpha_;
};

// ------------------------------------------------------------ QLinearGlobalAveragePool

class QLinearGlobalAveragePoolKernel final : public Kernel {
 public:
  explicit QLinearGlobalAveragePoolKernel(bool channels_last) : channels_last_(channels_last) {}

  // Inputs: X, x_scale, x_zero_point, y_scale, y_zero_point.
  Status infer(InferContext& ctx) const override {
    MS_RETURN_IF_ERROR(check_q8(ctx, 0, "X"));
    MS_RETURN_IF_ERROR(check_qparams(ctx, 1, 2, ctx.dtype(0), "x"));
    MS_RETURN_IF_ERROR(check_qparams(ctx, 3, 4, ctx.dtype(0), "y"));
    const Shape& x = ctx.shape(0);
    MS_CHECK_ARG(x.rank() >= 3, "X must have rank >= 3, got " + x.str());
    Shape out = x;
    for (int d = channels_last_ ? 1 : 2; d < (channels_last_ ? x.rank() - 1 : x.rank()); ++d) out[d] = 1;
    ctx.set_output(0, ctx.dtype(0), out);
    return Status::OK();
  }

  Status compute(const ComputeContext& ctx) const override {
    const Tensor& x = ctx.input(0);
    const Shape& s = x.shape();
    const int64_t n = s[0], c = channels_last_ ? s[s.rank() - 1] : s[1];
    const int64_t image = n * c == 0 ? 0 : s.numel() / (n * c);
    const QParam px = qparam(ctx, 1, 2), py = qparam(ctx, 3, 4);
    MS_CHECK_ARG(image > 0, "empty image");
    const float mult = px.scale / (py.scale * static_cast<float>(image));
    const int32_t bias = -px.zp * static_cast<int32_t>(image);
    MS_SWITCH_Q8(x.dtype(), Q, return Unsupported("dtype"), {
      const Q* in = x.data<Q>();
      Q* y = ctx.output(0).data<Q>();
      ctx.pool().parallel_for(n * c, std::max<int64_t>(1, 16384 / image), [&](int64_t lo, int64_t hi) {
        for (int64_t r = lo; r < hi; ++r) {
          const int64_t b = r / c, ch = r % c;
          int32_t acc = bias;
          if (channels_last_) {
            const Q* p = in + b * image * c + ch;
            for (int64_t i = 0; i < image; ++i) acc += p[i * c];
          } else {
            const Q* p = in + r * image;
            for (int64_t i = 0; i < image; ++i) acc += p[i];
          }
          y[r] = requantize<Q>(acc, mult, py.zp);
        }
      });
    });
    return Status::OK();
  }

 private:
  bool channels_last_;
};

// ------------------------------------------------------------------------ QLinearConcat

class QLinearConcatKernel final : public Kernel {
 public:
  explicit QLinearConcatKernel(int64_t axis) : axis_(axis) {}

  // Inputs: Y_scale, Y_zero_point, then (X, X_scale, X_zero_point) for each input.
  Status infer(InferContext& ctx) const override {
    const int n = ctx.num_inputs();
    MS_CHECK_ARG(n >= 5 && (n - 2) % 3 == 0,
                 "QLinearConcat needs Y_scale, Y_zero_point and (X, scale, zero point) "
                 "triples, got " +
                     std::to_string(n) + " inputs");
    MS_RETURN_IF_ERROR(check_q8(ctx, 1, "Y_zero_point"));
    const DType t = ctx.dtype(1);
    MS_RETURN_IF_ERROR(check_qparams(ctx, 0, 1, t, "Y"));
    Shape out;
    int axis = 0;
    for (int i = 2; i < n; i += 3) {
      const std::string what = "input " + std::to_string((i - 2) / 3);
      MS_RETURN_IF_ERROR(check_q8(ctx, i, what));
      MS_CHECK_ARG(ctx.dtype(i) == t, what + " must have Y_zero_point's dtype " + dtype_name(t));
      MS_RETURN_IF_ERROR(check_qparams(ctx, i + 1, i + 2, t, what));
      const Shape& s = ctx.shape(i);
      if (i == 2) {
        MS_ASSIGN_OR_RETURN(axis, normalize_axis(axis_, s.rank()));
        out = s;
        continue;
      }
      MS_CHECK_ARG(s.rank() == out.rank(), "inputs of QLinearConcat must have one rank");
      for (int d = 0; d < s.rank(); ++d)
        if (d != axis) MS_CHECK_ARG(s[d] == out[d], "shapes " + out.str() + " and " + s.str() + " differ off the axis");
      out[axis] += s[axis];
    }
    ctx.set_output(0, t, out);
    return Status::OK();
  }

  Status compute(const ComputeContext& ctx) const override {
    const int n = ctx.num_inputs();
    Tensor& y = ctx.output(0);
    const Shape& out = y.shape();
    MS_ASSIGN_OR_RETURN(int axis, normalize_axis(axis_, out.rank()));
    const int64_t outer = out.prod(0, axis), inner = out.prod(axis + 1, out.rank());
    const QParam py = qparam(ctx, 0, 1);
    MS_SWITCH_Q8(y.dtype(), Q, return Unsupported("dtype"), {
      Q* dst = y.data<Q>();
      int64_t offset = 0;  // along the axis
      for (int i = 2; i < n; i += 3) {
        const Tensor& x = ctx.input(i);
        const QParam px = qparam(ctx, i + 1, i + 2);
        const int64_t d = x.shape()[axis], chunk = d * inner;
        const Q* src = x.data<Q>();
        const bool same = px.scale == py.scale && px.zp == py.zp;
        Q table[256];
        if (!same)
          build_table<Q>(
              px, py, [](float v) { return v; }, table);
        for (int64_t o = 0; o < outer; ++o) {
          Q* row = dst + (o * out[axis] + offset) * inner;
          const Q* from = src + o * chunk;
          if (same) {
            std::memcpy(row, from, static_cast<size_t>(chunk) * sizeof(Q));
          } else {
            for (int64_t k = 0; k < chunk; ++k)
              row[k] = table[static_cast<int>(from[k]) - std::numeric_limits<Q>::lowest()];
          }
        }
        offset += d;
      }
    });
    return Status::OK();
  }

 private:
  int64_t axis_;
};

// ----------------------------------------------------------------------- QLinearSoftmax

// onnxruntime's kernel: a table of exp((i - 255 + shift) * x_scale) for i in [0, 256) whose shift
// keeps the row sums in float range; element x of a row whose maximum is xmax reads entry
// x - xmax + 255. The zero point of X cancels.
class QLinearSoftmaxKernel final : public Kernel {
 public:
  QLinearSoftmaxKernel(int64_t axis, int64_t opset) : axis_(axis), opset_(opset) {}

  // Inputs: X, X_scale, x_zero_point, y_scale, y_zero_point.
  Status infer(InferContext& ctx) const override {
    MS_RETURN_IF_ERROR(check_q8(ctx, 0, "X"));
    MS_RETURN_IF_ERROR(check_qparams(ctx, 1, 2, ctx.dtype(0), "X"));
    MS_RETURN_IF_ERROR(check_qparams(ctx, 3, 4, ctx.dtype(0), "y"));
    MS_ASSIGN_OR_RETURN(int axis, normalize_axis(axis_, ctx.shape(0).rank()));
    (void)axis;
    ctx.set_output(0, ctx.dtype(0), ctx.shape(0));
    return Status::OK();
  }

  Status compute(const ComputeContext& ctx) const override {
    const Tensor& x = ctx.input(0);
    const Shape& s = x.shape();
    MS_ASSIGN_OR_RETURN(int axis, normalize_axis(axis_, s.rank()));
    const int64_t outer = s.prod(0, axis);
    const int64_t d = opset_ < 13 ? s.prod(axis, s.rank()) : s[axis];
    const int64_t inner = opset_ < 13 ? 1 : s.prod(axis + 1, s.rank());
    if (s.numel() == 0) return Status::OK();
    const QParam px = qparam(ctx, 1, 2), py = qparam(ctx, 3, 4);
    float table[256];
    double shift = std::log(static_cast<double>(std::numeric_limits<float>::max()) / static_cast<double>(d));
    shift = std::max(0.0, shift - 5.0) / px.scale;
    for (int i = 0; i < 256; ++i)
      table[i] = static_cast<float>(std::exp((static_cast<double>(i) - 255 + shift) * static_cast<double>(px.scale)));
    const float inv_scale = 1.0f / py.scale;
    MS_SWITCH_Q8(x.dtype(), Q, return Unsupported("dtype"), {
      const Q* in = x.data<Q>();
      Q* y = ctx.output(0).data<Q>();
      ctx.pool().parallel_for(outer * inner, std::max<int64_t>(1, 4096 / d), [&](int64_t lo, int64_t hi) {
        for (int64_t r = lo; r < hi; ++r) {
          const int64_t base = (r / inner) * d * inner + r % inner;
          int xmax = std::numeric_limits<Q>::lowest();
          for (int64_t j = 0; j < d; ++j) xmax = std::max<int>(xmax, in[base + j * inner]);
          const float* t = table + 255 - xmax;
          float sum = 0;
          for (int64_t j = 0; j < d; ++j) sum += t[in[base + j * inner]];
          for (int64_t j = 0; j < d; ++j) {
            const float v = sum == 0 ? 0.0f : (t[in[base + j * inner]] * inv_scale) / sum;
            y[base + j * inner] = round_sat<Q>(v, py.zp);
          }
        }
      });
    });
    return Status::OK();
  }

 private:
  int64_t axis_, opset_;
};

// -------------------------------------------------------------------------------- QGemm

class QGemmKernel final : public Kernel {
 public:
  QGemmKernel(float alpha, bool trans_a, bool trans_b) : alpha_(alpha), ta_(trans_a), tb_(trans_b) {}

  // Inputs: A, a_scale, a_zero_point, B, b_scale, b_zero_point, C (int32), y_scale, y_zero_point.
  Status infer(InferContext& ctx) const override {
    MS_RETURN_IF_ERROR(check_q8(ctx, 0, "A"));
    MS_RETURN_IF_ERROR(check_q8(ctx, 3, "B"));
    MS_RETURN_IF_ERROR(check_qparams(ctx, 1, 2, ctx.dtype(0), "a"));
    const Shape &a = ctx.shape(0), &b = ctx.shape(3);
    MS_CHECK_ARG(a.rank() == 2 && b.rank() == 2, "A and B must be matrices, got " + a.str() + " and " + b.str());
    const int64_t m = ta_ ? a[1] : a[0], k = ta_ ? a[0] : a[1];
    const int64_t kb = tb_ ? b[1] : b[0], n = tb_ ? b[0] : b[1];
    MS_CHECK_ARG(k == kb, "inner dimensions differ: " + a.str() + " x " + b.str());
    MS_CHECK_ARG(ctx.has_input(4) && ctx.dtype(4) == DType::kFloat32, "b_scale must be float32");
    MS_CHECK_ARG(ctx.shape(4).numel() == 1 || (ctx.shape(4).rank() == 1 && ctx.shape(4)[0] == n),
                 "b_scale must have one element or N = " + std::to_string(n) + ", got " + ctx.shape(4).str());
    if (ctx.has_input(5)) {
      MS_CHECK_ARG(ctx.dtype(5) == ctx.dtype(3), std::string("b zero point must be ") + dtype_name(ctx.dtype(3)) +
                                                     ", got " + dtype_name(ctx.dtype(5)));
      MS_CHECK_ARG(ctx.shape(5).numel() == ctx.shape(4).numel(),
                   "b_scale " + ctx.shape(4).str() + " and b zero point " + ctx.shape(5).str() + " differ in size");
    }
    if (ctx.has_input(6)) {
      MS_CHECK_ARG(ctx.dtype(6) == DType::kInt32, std::string("C must be int32, got ") + dtype_name(ctx.dtype(6)));
      const Shape mn{m, n};
      auto bc = broadcast_shapes(ctx.shape(6), mn);
      MS_CHECK_ARG(bc.ok() && bc.value() == mn, "C " + ctx.shape(6).str() + " does not broadcast to " + mn.str());
    }
    DType yt = DType::kFloat32;
    if (ctx.has_input(7)) {
      MS_CHECK_ARG(ctx.has_input(8), "y_zero_point is required with y_scale");
      MS_RETURN_IF_ERROR(check_q8(ctx, 8, "y_zero_point"));
      yt = ctx.dtype(8);
      MS_RETURN_IF_ERROR(check_qparams(ctx, 7, 8, yt, "y"));
    } else {
      MS_CHECK_ARG(!ctx.has_input(8), "y_zero_point without y_scale");
    }
    ctx.set_output(0, yt, Shape{m, n});
    return Status::OK();
  }

  Status compute(const ComputeContext& ctx) const override {
    const Tensor &a = ctx.input(0), &b = ctx.input(3), &bs = ctx.input(4);
    const Tensor* bz = ctx.has_input(5) ? &ctx.input(5) : nullptr;
    const Tensor* c = ctx.has_input(6) ? &ctx.input(6) : nullptr;
    const QParam pa = qparam(ctx, 0 + 1, 2);
    const int64_t m = ta_ ? a.shape()[1] : a.shape()[0], k = ta_ ? a.shape()[0] : a.shape()[1];
    const int64_t n = tb_ ? b.shape()[0] : b.shape()[1];
    int64_t cs[2] = {0, 0};
    if (c) broadcast_strides(c->shape(), Shape{m, n}, cs);
    const bool quantized = ctx.has_input(7);
    const QParam py = quantized ? qparam(ctx, 7, 8) : QParam{};
    // onnxruntime's output scale per column: alpha * a_scale * b_scale[j] (/ y_scale).
    std::vector<float> mult(static_cast<size_t>(n));
    for (int64_t j = 0; j < n; ++j) {
      mult[j] = alpha_ * pa.scale * bs.data<float>()[bs.numel() == 1 ? 0 : j];
      if (quantized) mult[j] /= py.scale;
    }
    Tensor& y = ctx.output(0);
    MS_SWITCH_Q8(a.dtype(), A, return Unsupported("dtype"), {
      MS_SWITCH_Q8(b.dtype(), B, return Unsupported("dtype"), {
        const A* pa_data = a.data<A>();
        const B* pb_data = b.data<B>();
        ctx.pool().parallel_for(
            m, std::max<int64_t>(1, 65536 / std::max<int64_t>(1, k * n)), [&](int64_t lo, int64_t hi) {
              for (int64_t i = lo; i < hi; ++i) {
                for (int64_t j = 0; j < n; ++j) {
                  const int32_t zb = bz ? static_cast<int32_t>(bz->int_at(bz->numel() == 1 ? 0 : j)) : 0;
                  int32_t acc = c ? c->data<int32_t>()[i * cs[0] + j * cs[1]] : 0;
                  for (int64_t p = 0; p < k; ++p) {
                    const int32_t av = static_cast<int32_t>(pa_data[ta_ ? p * m + i : i * k + p]) - pa.zp;
                    const int32_t bv = static_cast<int32_t>(pb_data[tb_ ? j * k + p : p * n + j]) - zb;
                    acc += av * bv;
                  }
                  if (!quantized) {
                    y.data<float>()[i * n + j] = static_cast<float>(acc) * mult[j];
                    continue;
                  }
                  MS_SWITCH_Q8(y.dtype(), Y, , { y.data<Y>()[i * n + j] = requantize<Y>(acc, mult[j], py.zp); });
                }
              }
            });
      });
    });
    return Status::OK();
  }

 private:
  float alpha_;
  bool ta_, tb_;
};

}  // namespace

StatusOr<KernelPtr> create_microsoft_QLinearAdd(const Node&, const KernelInit&) {
  return KernelPtr(new QLinearBinaryKernel<false>());
}
StatusOr<KernelPtr> create_microsoft_QLinearMul(const Node&, const KernelInit&) {
  return KernelPtr(new QLinearBinaryKernel<true>());
}
StatusOr<KernelPtr> create_microsoft_QLinearSigmoid(const Node&, const KernelInit&) {
  return KernelPtr(new QLinearTableKernel(TableOp::kSigmoid, 0.0f));
}
StatusOr<KernelPtr> create_microsoft_QLinearLeakyRelu(const Node& n, const KernelInit&) {
  return KernelPtr(new QLinearTableKernel(TableOp::kLeakyRelu, n.attr_float("alpha", 0.01f)));
}
StatusOr<KernelPtr> create_microsoft_QLinearGlobalAveragePool(const Node& n, const KernelInit&) {
  return KernelPtr(new QLinearGlobalAveragePoolKernel(n.attr_int("channels_last", 0) != 0));
}
StatusOr<KernelPtr> create_microsoft_QLinearConcat(const Node& n, const KernelInit&) {
  return KernelPtr(new QLinearConcatKernel(n.attr_int("axis", 0)));
}
StatusOr<KernelPtr> create_microsoft_QLinearSoftmax(const Node& n, const KernelInit&) {
  const int64_t opset = n.attr_int("opset", -1);
  MS_CHECK_ARG(opset > 0, "QLinearSoftmax needs its opset attribute");
  return KernelPtr(new QLinearSoftmaxKernel(n.attr_int("axis", opset < 13 ? 1 : -1), opset));
}
StatusOr<KernelPtr> create_microsoft_QGemm(const Node& n, const KernelInit&) {
  return KernelPtr(
      new QGemmKernel(n.attr_float("alpha", 1.0f), n.attr_int("transA", 0) != 0, n.attr_int("transB", 0) != 0));
}

}  // namespace mserve
