// Sliding-window attributes and geometry: one reading of kernel_shape, strides, dilations, pads,
// auto_pad, group (and ConvTranspose's output_padding / output_shape) and one set of output size
// rules for Conv and NhwcConv (ops/conv.cc), ConvTranspose and Col2Im (ops/conv_transpose.cc),
// ConvInteger and QLinearConv (ops/quant.cc) and the pools (ops/pool.cc).
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include "core/kernels/common.h"

namespace mserve {

// The window attributes of a node; an empty vector is an absent attribute (the ops' defaults:
// kernel from W, stride 1, dilation 1, no padding, no output_padding, no output_shape).
struct WindowAttrs {
  AutoPad auto_pad = AutoPad::kNotSet;
  int64_t group = 1;
  std::vector<int64_t> kernel_shape, strides, dilations, pads;
  std::vector<int64_t> output_padding, output_shape;  // ConvTranspose only
};

// Reads auto_pad, group, kernel_shape, strides, dilations, pads, output_padding and output_shape
// from `n` and checks what holds without shapes: group, kernel_shape, strides and dilations >= 1;
// pads, output_padding and output_shape >= 0; an even number of pads. Unsupported for an unknown
// auto_pad, InvalidArgument for the rest.
StatusOr<WindowAttrs> parse_window_attrs(const Node& n);

// Checks the attribute lengths for `sp` spatial dims: kernel_shape, strides, dilations and
// output_padding have sp values and pads 2 * sp, each where given. InvalidArgument otherwise.
Status check_window_lengths(const WindowAttrs& a, size_t sp);

// One call's geometry. The spatial arrays are 3-D, index 0 outermost: a call with fewer spatial
// dims has leading axes of size 1, kernel 1, stride 1, dilation 1 and no padding, so the kernels
// run 1-D, 2-D and 3-D windows through one 3-D path.
//   Conv and pools: output position o reads input positions o * s + kk * d - pb (kk < k).
//   ConvTranspose and Col2Im: input position i adds into output position i * s + kk * d - pb.
struct ConvGeometry {
  int64_t N = 0, C = 0, M = 0;        // batch, input channels, output channels
  int64_t group = 1, Cg = 0, Mg = 0;  // groups, input and output channels per group
  int sp = 0;                         // spatial dims of the call (1 to 3)
  int64_t in[3] = {1, 1, 1}, k[3] = {1, 1, 1}, s[3] = {1, 1, 1}, d[3] = {1, 1, 1};
  int64_t pb[3] = {0, 0, 0}, pe[3] = {0, 0, 0}, out[3] = {1, 1, 1};  // pads after auto_pad
  int64_t in_size() const { return in[0] * in[1] * in[2]; }
  int64_t out_size() const { return out[0] * out[1] * out[2]; }
  int64_t k_size() const { return k[0] * k[1] * k[2]; }
  // [N, M, out...] with the call's sp spatial dims.
  Shape output_shape() const;
};

// Conv, NhwcConv (given X as NCHW), ConvInteger and QLinearConv: X [N, C, spatial...] and
// W [M, C / group, k...] with 1 to 3 spatial dims. Per axis, with the dilated extent
// dk = (k - 1) * d + 1: explicit pads (NOTSET) give out = (in + pb + pe - dk) / s + 1, VALID
// pads nothing, SAME_UPPER / SAME_LOWER give out = ceil(in / s) and split the padding that
// needs, the odd cell at the end (UPPER) or the beginning (LOWER). InvalidArgument when the
// shapes disagree with each other or the attributes, or an output dim would be empty;
// Unsupported for more than 3 spatial dims.
Status conv_geometry(const WindowAttrs& a, const Shape& x, const Shape& w, ConvGeometry* g);

// ConvTranspose: X [N, C, spatial...], W [C, M / group, k...] with 1 to 3 spatial dims. Per axis
//   natural = s * (in - 1) + output_padding + (k - 1) * d + 1
//   out     = natural - pb - pe                     (explicit pads; VALID or none: natural)
// With output_shape (its spatial values; a leading N, C is skipped) or SAME_UPPER / SAME_LOWER
// (out = in * s) the pads come from total = max(0, natural - out): SAME_UPPER puts the odd cell
// at the end, everything else at the beginning; output cells past natural - pb get no input.
// Errors as for conv_geometry.
Status conv_transpose_geometry(const WindowAttrs& a, const Shape& x, const Shape& w, ConvGeometry* g);

// MaxPool, AveragePool, LpPool: X [N, C, spatial...] with as many spatial dims as kernel_shape
// (required, checked by the caller with check_window_lengths); M = C and group = C (one plane
// per channel). The rule of conv_geometry, except that ceil_mode rounds the output up, keeping
// only windows that start inside the input or the begin padding. InvalidArgument when X's rank
// does not match or an output dim would be empty.
Status pool_geometry(const WindowAttrs& a, const Shape& x, bool ceil_mode, ConvGeometry* g);

}  // namespace mserve
