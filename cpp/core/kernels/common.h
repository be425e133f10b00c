// Small helpers shared by kernel families: axis handling, broadcasting, attribute reading.
#pragma once
#include <string>
#include <type_traits>
#include <vector>

#include "core/kernels/kernel.h"

namespace mserve {

// Normalizes a possibly negative axis into [0, rank); InvalidArgument when out of range.
StatusOr<int> normalize_axis(int64_t axis, int rank);

// numpy/ONNX multidirectional broadcast of two shapes; InvalidArgument when incompatible.
StatusOr<Shape> broadcast_shapes(const Shape& a, const Shape& b);

// Strides (in elements) of `in` broadcast to `out`: 0 along broadcast dimensions.
// Precondition: `in` broadcasts to `out`.
void broadcast_strides(const Shape& in, const Shape& out, int64_t* strides);

// Reads a 1-D int tensor (int32 or int64) into a vector.
StatusOr<std::vector<int64_t>> read_ints(const Tensor& t, const char* what);

// Reads a scalar (or one-element) integer tensor.
StatusOr<int64_t> read_scalar_int(const Tensor& t, const char* what);

// 1 in T (true for bool).
template <class T>
T one_of() {
  if constexpr (std::is_same_v<T, Eigen::half>)
    return Eigen::half(1.0f);
  else
    return T(1);
}

// The value of a Constant node (any of its attribute forms), as an owned tensor (ops/constant.cc).
StatusOr<Tensor> constant_node_value(const Node& node);

// A kernel for ops whose output is a new view of the input bytes (Reshape, Flatten, Squeeze,
// Unsqueeze, Identity): compute copies the bytes (outputs never alias inputs); string tensors
// are copied element by element.
Status copy_input_to_output(const ComputeContext& ctx);

// "[1, 2, 3]", for error messages.
std::string ints_str(const std::vector<int64_t>& v);

// Sliding windows (Conv, MaxPool, AveragePool): the auto_pad attribute and the size rule of one
// spatial axis.
enum class AutoPad { kNotSet, kSameUpper, kSameLower, kValid };
StatusOr<AutoPad> parse_auto_pad(const std::string& s);

struct WindowAxis {
  int64_t out = 0;        // output length (may be <= 0: callers report empty outputs)
  int64_t pad_begin = 0;  // effective padding, after auto_pad
  int64_t pad_end = 0;
};
// Input length `in`, kernel `k`, stride `s`, dilation `d`, explicit pads (used with NOTSET).
// ceil_mode rounds the output up, keeping only windows that start inside the input or the
// begin padding.
WindowAxis window_axis(AutoPad ap, int64_t in, int64_t k, int64_t s, int64_t d, int64_t pad_begin, int64_t pad_end,
                       bool ceil_mode);

// Indices [lo, hi) of i in [0, count) for which i * s + off lands in [0, limit): the part of a
// strided sweep that stays inside a buffer (im2col, col2im).
inline void strided_range(int64_t off, int64_t s, int64_t limit, int64_t count, int64_t* lo, int64_t* hi) {
  const int64_t l = off >= 0 ? 0 : (-off + s - 1) / s;
  int64_t h = limit - off <= 0 ? 0 : (limit - off + s - 1) / s;
  h = h < count ? h : count;
  *lo = l < h ? l : h;
  *hi = h;
}

#define MS_CHECK_ARG(cond, msg)                         \
  do {                                                  \
    if (!(cond)) return ::mserve::InvalidArgument(msg); \
  } while (0)

}  // namespace mserve
