// Signal processing: HannWindow, HammingWindow, BlackmanWindow (17), DFT (17, 20), STFT (17).
//
// Windows: a 1-D tensor of `size` values w[n] (n in [0, size)) of output_datatype (default
//   float), N = size when periodic (default) else size - 1:
//   Hann 0.5 - 0.5 cos(2 pi n / N), Hamming 25/46 - 21/46 cos(2 pi n / N),
//   Blackman 0.42 - 0.5 cos(2 pi n / N) + 0.08 cos(4 pi n / N).
// DFT: input [..., L, ..., 1 | 2] (last dimension: real, or real and imaginary parts) transformed
//   along `axis` (opset 17: attribute, default 1; opset 20: optional input, default -2; never the
//   last dimension) with length n = dft_length (default L; truncating or zero-padding the signal).
//   Forward: y[k] = sum_t x[t] e^{-2 pi i k t / n}, k < n (onesided: k <= n / 2); inverse:
//   x[t] = 1/n sum_k y[k] e^{2 pi i k t / n}. Inverse with onesided (IRFFT): the input holds the
//   first n / 2 + 1 bins of a Hermitian spectrum (n defaults to 2 (L - 1)) and the output is real.
// STFT: signal [batch, L, 1 | 2], frame_step, optional window [W] and frame_length (default W,
//   else L) -> [batch, frames, bins, 2], frames = 1 + (L - frame_length) / frame_step, each frame
//   x[f * step + t] * window[t] transformed with length frame_length (onesided, the default:
//   frame_length / 2 + 1 bins).
// Transforms are direct O(n^2) sums in double over a table of the n roots of unity.
#include <algorithm>
#include <cmath>
#include <type_traits>

#include "core/kernels/common.h"
#include "core/kernels/registry.h"
#include "core/parallel/thread_pool.h"

namespace mserve {
namespace {

StatusOr<int64_t> scalar_int(const Tensor& t, const char* what) {
  MS_CHECK_ARG(t.numel() == 1 && (t.dtype() == DType::kInt64 || t.dtype() == DType::kInt32),
               std::string(what) + " must be an int32 or int64 scalar");
  return t.int_at(0);
}

// ---- windows

enum class Window { kHann, kHamming, kBlackman };

class WindowKernel final : public Kernel {
 public:
  WindowKernel(Window w, DType out, bool periodic) : w_(w), out_(out), periodic_(periodic) {}

  Status infer(InferContext& ctx) const override {
    const Tensor* size = ctx.value(0);
    if (!size) return ctx.need_value();
    MS_ASSIGN_OR_RETURN(int64_t n, scalar_int(*size, "size"));
    MS_CHECK_ARG(n >= 0, "size must not be negative, got " + std::to_string(n));
    ctx.set_output(0, out_, Shape{n});
    return Status::OK();
  }

  Status compute(const ComputeContext& ctx) const override {
    Tensor& y = ctx.output(0);
    const int64_t size = y.dim(0);
    const double N = static_cast<double>(periodic_ ? size : size - 1);
    MS_SWITCH_NUMERIC(y.dtype(), T, return Unsupported("dtype"), {
      T* out = y.data<T>();
      for (int64_t i = 0; i < size; ++i) {
        const double a = 2 * M_PI * static_cast<double>(i) / N;
        double v = 0;
        switch (w_) {
          case Window::kHann: v = 0.5 - 0.5 * std::cos(a); break;
          case Window::kHamming: v = 25.0 / 46.0 - (1 - 25.0 / 46.0) * std::cos(a); break;
          case Window::kBlackman: v = 0.42 - 0.5 * std::cos(a) + 0.08 * std::cos(2 * a); break;
        }
        out[i] = from_double<T>(v);
      }
    });
    return Status::OK();
  }

 private:
  Window w_;
  DType out_;
  bool periodic_;
};

StatusOr<KernelPtr> make_window(const Node& n, Window w) {
  const int64_t dt = n.attr_int("output_datatype", 1);
  static const std::pair<int64_t, DType> kTypes[] = {{1, DType::kFloat32}, {2, DType::kUInt8},    {3, DType::kInt8},
                                                     {4, DType::kUInt16},  {5, DType::kInt16},    {6, DType::kInt32},
                                                     {7, DType::kInt64},   {10, DType::kFloat16}, {11, DType::kFloat64},
                                                     {12, DType::kUInt32}, {13, DType::kUInt64}};
  for (auto [code, t] : kTypes)
    if (code == dt) return KernelPtr(new WindowKernel(w, t, n.attr_int("periodic", 1) != 0));
  return Unsupported("output_datatype " + std::to_string(dt) + " is not supported");
}

// ---- DFT core

// Roots of unity e^{-2 pi i j / n}, j < n, as (cos, sin) pairs in `tw`.
void roots(int64_t n, double* tw) {
  for (int64_t j = 0; j < n; ++j) {
    const double a = 2 * M_PI * static_cast<double>(j) / static_cast<double>(n);
    tw[2 * j] = std::cos(a);
    tw[2 * j + 1] = -std::sin(a);
  }
}

// One line: `len` input values at x (complex when `cx`, element stride `xs`, each value scaled by
// win[t] when win), transformed with length n into `bins` outputs at y (stride ys, complex).
// inverse conjugates the roots and divides by n. Input beyond `len` (or n) reads 0.
template <class T, class W>
void dft_line(const T* x, int64_t xs, bool cx, int64_t len, const W* win, int64_t n, bool inverse, int64_t bins, T* y,
              int64_t ys, const double* tw) {
  const int64_t m = std::min(len, n);
  const double sign = inverse ? -1.0 : 1.0;
  for (int64_t k = 0; k < bins; ++k) {
    double re = 0, im = 0;
    int64_t j = 0;  // (k * t) mod n
    for (int64_t t = 0; t < m; ++t, j = (j + k) % n) {
      const double w = win ? to_double(win[t]) : 1.0;
      const double a = to_double(x[t * xs]) * w, b = cx ? to_double(x[t * xs + 1]) * w : 0.0;
      const double c = tw[2 * j], s = sign * tw[2 * j + 1];
      re += a * c - b * s;
      im += a * s + b * c;
    }
    if (inverse) {
      re /= static_cast<double>(n);
      im /= static_cast<double>(n);
    }
    y[k * ys] = from_double<T>(re);
    y[k * ys + 1] = from_double<T>(im);
  }
}

// IRFFT of one line: `len` complex bins at x (stride xs) -> n real values at y (stride ys).
template <class T>
void irfft_line(const T* x, int64_t xs, int64_t len, int64_t n, T* y, int64_t ys, const double* tw) {
  const int64_t half = n / 2, m = std::min(len, half + 1);
  for (int64_t t = 0; t < n; ++t) {
    double acc = 0;
    for (int64_t k = 0; k < m; ++k) {
      const double a = to_double(x[k * xs]), b = to_double(x[k * xs + 1]);
      const int64_t j = (k * t) % n;
      // Re(X_k e^{+2 pi i k t / n}); bin 0 and (n even) bin n/2 count once, with no imaginary part.
      if (k == 0 || (n % 2 == 0 && k == half))
        acc += a * tw[2 * j];
      else
        acc += 2 * (a * tw[2 * j] + b * tw[2 * j + 1]);
    }
    y[t * ys] = from_double<T>(acc / static_cast<double>(n));
  }
}

class DftKernel final : public Kernel {
 public:
  DftKernel(int opset, int64_t axis, bool inverse, bool onesided)
      : opset_(opset), axis_(axis), inverse_(inverse), onesided_(onesided) {}

  Status infer(InferContext& ctx) const override {
    if (!dtype_is_float(ctx.dtype(0)))
      return Unsupported(std::string("dtype ") + dtype_name(ctx.dtype(0)) + " is not supported");
    const Shape& s = ctx.shape(0);
    const int r = s.rank();
    MS_CHECK_ARG(r >= 2 && (s[r - 1] == 1 || s[r - 1] == 2),
                 "input must end in a dimension of 1 (real) or 2 (complex), got " + s.str());
    int64_t n = -1, axis = axis_;
    if (ctx.has_input(1)) {
      const Tensor* v = ctx.value(1);
      if (!v) return ctx.need_value();
      MS_ASSIGN_OR_RETURN(n, scalar_int(*v, "dft_length"));
      MS_CHECK_ARG(n >= 1, "dft_length must be positive, got " + std::to_string(n));
    }
    if (opset_ >= 20 && ctx.has_input(2)) {
      const Tensor* v = ctx.value(2);
      if (!v) return ctx.need_value();
      MS_ASSIGN_OR_RETURN(axis, scalar_int(*v, "axis"));
    }
    const int64_t a = axis < 0 ? axis + r : axis;
    MS_CHECK_ARG(a >= 0 && a <= r - 2,
                 "axis " + std::to_string(axis) + " is out of range for rank " + std::to_string(r));
    const int64_t len = s[static_cast<int>(a)];
    if (n < 0) n = inverse_ && onesided_ ? 2 * (len - 1) : len;
    MS_CHECK_ARG(n >= 1, "the transform length must be positive");
    if (inverse_ && onesided_) MS_CHECK_ARG(s[r - 1] == 2, "the inverse one-sided DFT takes a complex input");
    Shape out = s;
    out[static_cast<int>(a)] = onesided_ && !inverse_ ? n / 2 + 1 : n;
    out[r - 1] = inverse_ && onesided_ ? 1 : 2;
    ctx.set_output(0, ctx.dtype(0), out);
    ctx.set_workspace(static_cast<size_t>(n) * 2 * sizeof(double));
    return Status::OK();
  }

  Status compute(const ComputeContext& ctx) const override {
    const Tensor& x = ctx.input(0);
    Tensor& y = ctx.output(0);
    const Shape &is = x.shape(), &os = y.shape();
    const int r = is.rank();
    int64_t axis = axis_;
    if (opset_ >= 20 && ctx.has_input(2)) axis = ctx.input(2).int_at(0);
    const int a = static_cast<int>(axis < 0 ? axis + r : axis);
    const int64_t len = is[a], outer = is.prod(0, a), inner_in = is.prod(a + 1, r), inner_out = os.prod(a + 1, r);
    const int64_t inner = inner_in / is[r - 1];  // positions between the axis and the last dimension
    const bool cx = is[r - 1] == 2;
    const int64_t bins = os[a];
    const int64_t n = inverse_ && onesided_ ? os[a] : (ctx.has_input(1) ? ctx.input(1).int_at(0) : len);
    double* tw = static_cast<double*>(ctx.workspace());
    roots(n, tw);
    MS_SWITCH_FLOAT(x.dtype(), T, return Unsupported("dtype"), {
      const T* xs = x.data<T>();
      T* ys = y.data<T>();
      ctx.pool().parallel_for(outer * inner, 1, [&](int64_t b, int64_t e) {
        for (int64_t l = b; l < e; ++l) {
          const int64_t o = l / inner, i = l % inner;
          const T* xl = xs + o * len * inner_in + i * is[r - 1];
          T* yl = ys + o * bins * inner_out + i * os[r - 1];
          if (inverse_ && onesided_)
            irfft_line(xl, inner_in, len, n, yl, inner_out, tw);
          else
            dft_line<T, T>(xl, inner_in, cx, len, nullptr, n, inverse_, bins, yl, inner_out, tw);
        }
      });
    });
    return Status::OK();
  }

 private:
  int opset_;
  int64_t axis_;
  bool inverse_, onesided_;
};

class StftKernel final : public Kernel {
 public:
  explicit StftKernel(bool onesided) : onesided_(onesided) {}

  Status infer(InferContext& ctx) const override {
    if (!dtype_is_float(ctx.dtype(0)))
      return Unsupported(std::string("dtype ") + dtype_name(ctx.dtype(0)) + " is not supported");
    const Shape& s = ctx.shape(0);
    MS_CHECK_ARG(s.rank() == 3 && (s[2] == 1 || s[2] == 2), "signal must be [batch, length, 1 | 2], got " + s.str());
    const Tensor* step = ctx.value(1);
    if (!step) return ctx.need_value();
    MS_ASSIGN_OR_RETURN(int64_t hop, scalar_int(*step, "frame_step"));
    MS_CHECK_ARG(hop >= 1, "frame_step must be positive, got " + std::to_string(hop));
    int64_t n = s[1];
    if (ctx.has_input(2)) {
      MS_CHECK_ARG(ctx.shape(2).rank() == 1, "window must be 1-D, got " + ctx.shape(2).str());
      MS_CHECK_ARG(ctx.dtype(2) == ctx.dtype(0), "window and signal must have the same dtype");
      n = ctx.shape(2)[0];
    }
    if (ctx.has_input(3)) {
      const Tensor* fl = ctx.value(3);
      if (!fl) return ctx.need_value();
      MS_ASSIGN_OR_RETURN(n, scalar_int(*fl, "frame_length"));
    }
    MS_CHECK_ARG(n >= 1 && n <= s[1],
                 "frame_length " + std::to_string(n) + " must be in [1, signal length " + std::to_string(s[1]) + "]");
    const int64_t frames = 1 + (s[1] - n) / hop;
    ctx.set_output(0, ctx.dtype(0), Shape{s[0], frames, onesided_ ? n / 2 + 1 : n, 2});
    ctx.set_workspace(static_cast<size_t>(n) * 2 * sizeof(double));
    return Status::OK();
  }

  Status compute(const ComputeContext& ctx) const override {
    const Tensor& x = ctx.input(0);
    Tensor& y = ctx.output(0);
    const int64_t batch = x.dim(0), len = x.dim(1), c = x.dim(2), frames = y.dim(1), bins = y.dim(2);
    const int64_t hop = ctx.input(1).int_at(0);
    const Tensor* win = ctx.has_input(2) ? &ctx.input(2) : nullptr;
    const int64_t n = ctx.has_input(3) ? ctx.input(3).int_at(0) : win ? win->dim(0) : len;
    const int64_t taps = win ? win->dim(0) : n;
    double* tw = static_cast<double*>(ctx.workspace());
    roots(n, tw);
    MS_SWITCH_FLOAT(x.dtype(), T, return Unsupported("dtype"), {
      const T* xs = x.data<T>();
      const T* ws = win ? win->data<T>() : nullptr;
      T* ys = y.data<T>();
      ctx.pool().parallel_for(batch * frames, 1, [&](int64_t b, int64_t e) {
        for (int64_t l = b; l < e; ++l) {
          const int64_t bi = l / frames, f = l % frames, start = f * hop;
          const int64_t avail = std::min(taps, len - start);  // samples past the end read 0
          dft_line<T, T>(xs + (bi * len + start) * c, c, c == 2, avail, ws, n, false, bins, ys + l * bins * 2, 2, tw);
        }
      });
    });
    return Status::OK();
  }

 private:
  bool onesided_;
};

}  // namespace

StatusOr<KernelPtr> create_onnx_HannWindow(const Node& n, const KernelInit&) { return make_window(n, Window::kHann); }
StatusOr<KernelPtr> create_onnx_HammingWindow(const Node& n, const KernelInit&) {
  return make_window(n, Window::kHamming);
}
StatusOr<KernelPtr> create_onnx_BlackmanWindow(const Node& n, const KernelInit&) {
  return make_window(n, Window::kBlackman);
}

StatusOr<KernelPtr> create_onnx_DFT(const Node& n, const KernelInit&) {
  const int64_t axis = n.opset >= 20 ? -2 : n.attr_int("axis", 1);
  return KernelPtr(new DftKernel(n.opset, axis, n.attr_int("inverse", 0) != 0, n.attr_int("onesided", 0) != 0));
}

StatusOr<KernelPtr> create_onnx_STFT(const Node& n, const KernelInit&) {
  return KernelPtr(new StftKernel(n.attr_int("onesided", 1) != 0));
}

}  // namespace mserve
