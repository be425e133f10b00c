// Exact int8 convolutions on CPUs without VNNI: activations narrowed to a 7-bit window.
//
// Without VNNI, oneDNN's int8 convolutions multiply with vpmaddubsw, which adds the products of
// two adjacent input channels in int16 and saturates: 255 x 127 twice does not fit (measured with
// oneDNN 2.6's jit_uni_int8:avx2, a 3x3 conv over 64 channels of 255 x 127 summed to 9,436,896,
// not 18,653,760; depthwise convs over uint8, one channel per group, were exact; over int8 they
// were not, and take the window too). Two products of a 7-bit
// activation (0..127) with int8 weights always fit (127 x 128 x 2 = 32,512). So DnnlConv runs
// such a convolution on the activations clamped to a window [lo, lo + 127] around their zero
// point (in uint8 terms; int8 activations are read as uint8 after x ^ 0x80, their zero point
// moved by 128), with zero point `zero` = x_zero - lo, which oneDNN also pads with: padding is
// x_zero, inside the window, so it has nothing outside it. The values outside the window (in a
// QDQ ResNet-50's convolution inputs, ReLU outputs above 127: 0.02-0.9%) are added back here as
// (v - clamp(v)) x w into the int32 sums, pixel by pixel where clamp_to_window flagged one; then
// requantize_s32 (isa.h) turns the exact sums into 8-bit Y.
#pragma once
#include <cstdint>
#include <vector>

namespace mserve {

struct Int8Window {
  int32_t lo = 0;     // activations (as uint8) clamp to [lo, lo + 127]
  int32_t zero = 0;   // the clamped activations' zero point, 0..127
  bool flip = false;  // int8 activations: read as uint8 after x ^ 0x80
  // The window centred on x's zero point as far as [0, 255] allows.
  static Int8Window around(int32_t x_zero, bool x_signed);
};

// One image's convolution, channels-last: X [H, W, C] -> sums [OH, OW, M], `group` groups,
// kernel k, strides s, dilations d, pb rows / columns of padding before (H, W order).
struct Int8WindowConv {
  int64_t H = 0, W = 0, C = 0, OH = 0, OW = 0, M = 0, group = 1;
  int64_t k[2] = {1, 1}, s[2] = {1, 1}, d[2] = {1, 1}, pb[2] = {0, 0};
};

// The weight layout add_outside reads, [group][kh][kw][C / group][M / group], from w [M, C /
// group, kh, kw]; element strides of w's dims in it (for oneDNN's description of the same bytes).
std::vector<int8_t> outside_weights(const int8_t* w, int64_t M, int64_t Cg, int64_t group, int64_t kh, int64_t kw);
std::vector<int64_t> outside_weight_strides(int64_t M, int64_t Cg, int64_t group, int64_t kh, int64_t kw);

// Adds to the sums of output rows [oh0, oh1) the products of every flagged pixel's values outside
// the window: acc[oh, ow, m] += (v - clamp(v)) * w[m, c, i, j] for each tap (i, j) reaching it.
// x, flags: the image's input and clamp_to_window's flags; wt: outside_weights; acc: the image's.
void add_outside(const Int8WindowConv& g, const Int8Window& win, const uint8_t* x, const uint8_t* flags,
                 const int8_t* wt, int64_t oh0, int64_t oh1, int32_t* acc);

}  // namespace mserve
