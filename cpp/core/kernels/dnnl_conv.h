// float32 2-D convolution on oneDNN (Debian's libdnnl), with weights packed once at load.
//
// oneDNN picks its kernel by the CPU's instruction set at run time (AVX2, AVX-512, AMX) and is
// fastest on channels-last data, so a call reorders X from NCHW to NHWC, convolves with the
// bias fused, and reorders Y back, all inside the caller's workspace. Measured on a 2-core
// AVX-512 Xeon: ~215 GFLOP/s for 3x3 convs and 50-80 for depthwise ones on one thread, where
// im2col + Eigen GEMM reached ~110 and ~2 (see docs/design.md).
//
// Thread safety: prepare() and run() may be called concurrently. A batch runs as chunks of 32,
// 16, ..., 1 images, with one primitive per chunk size and input geometry, created on first
// prepare() and kept (at most 64, least recently used dropped).
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "core/kernels/conv_geometry.h"
#include "core/kernels/fused_activation.h"
#include "core/kernels/pack_store.h"
#include "core/status.h"

namespace mserve {

class DnnlConv {
 public:
  struct Params {
    int64_t C = 0, M = 0, group = 1;                      // input channels, output channels, groups
    int64_t k[2] = {1, 1}, s[2] = {1, 1}, d[2] = {1, 1};  // kernel, stride, dilation (H, W)
    FusedActivation act;                                  // a post-op on Y
    bool residual = false;                                // Y += what Y holds before the call (set by the caller)
    FusedActivation after;                                // a post-op after the residual sum
    bool nhwc = false;                                    // X and Y are channels-last ([N, H, W, C]): no reorders
    bool always = false;                                  // take small convs too (callers with no other path)
    // int8 (create_int8): X and Y 8-bit with one zero point each, Y = saturate(nearbyint(
    // scales[m] * (conv(X - x_zero, W) + bias[m])) + y_zero); scales one or M values; then
    // table[Y] where a table is given.
    struct Int8 {
      bool x_signed = false, y_signed = false;
      int32_t x_zero = 0, y_zero = 0;
      std::vector<float> scales;
      std::vector<uint8_t> table;  // 256 codes: Y's codes mapped through it (a Lookup8 after the conv), or empty
      bool window = false;  // the 7-bit window (int8_window.h) on any CPU: tests (without VNNI it is always taken)
    };
    Int8 q;
  };
  // Fills p's channels, group, kernel, strides and dilations for weights of shape w ([M, C /
  // group, k...], 1 or 2 spatial dims) and the conv's attributes; false where they do not fit
  // (the kernel's infer reports why).
  static bool set_window(const WindowAttrs& win, const Shape& w, Params* p);
  // w: [M, C / group, kh, kw] (copied into oneDNN's layout; not kept); bias: [M] or null.
  // Null when oneDNN has no implementation for these parameters (the caller falls back).
  // With a store, the packed weights come from it when it has them and go to it when packed here.
  static std::unique_ptr<DnnlConv> create(const Params& p, const float* w, const float* bias,
                                          PackStore* store = nullptr);
  // The int8 convolution of Params::q: w int8 [M, C / group, kh, kw], bias in the products'
  // units (QLinearConv's int32 B as float) or null. Channels-last only (Params::nhwc), and only
  // where int8_supported(). Exact on every such CPU: without VNNI (DnnlMatMul::has_vnni), where
  // oneDNN's int8 products saturate, it convolves activations narrowed to 7 bits and adds the
  // rest back (int8_window.h).
  static std::unique_ptr<DnnlConv> create_int8(const Params& p, const int8_t* w, const float* bias,
                                               PackStore* store = nullptr);
  // Whether create_int8 can work here (oneDNN's int8 convolutions on AVX2 or later).
  static bool int8_supported();
  ~DnnlConv();

  // One call's geometry: input [N, C, H, W] -> output [N, M, OH, OW] (channels-last when
  // Params::nhwc), with pad_begin / pad_end (H, W) rows and columns of zeros around the image.
  struct Geometry {
    int64_t N, H, W, OH, OW, pad_begin[2], pad_end[2];
  };
  // The geometry of a 2-D call (the last two of ConvGeometry's three spatial dims).
  static Geometry geometry(const ConvGeometry& g) {
    return Geometry{g.N, g.in[1], g.in[2], g.out[1], g.out[2], {g.pb[1], g.pb[2]}, {g.pe[1], g.pe[2]}};
  }
  // Plans a shape on `threads` threads (oneDNN fixes a primitive's team when it is created):
  // returns the workspace bytes run() needs, or an error when oneDNN cannot take the shape or
  // it is too small to pay off (the caller then runs it another way). Repeats are cheap.
  StatusOr<size_t> prepare(const Geometry& g, int threads) const;
  // Y = after(act(conv(X) + bias) [+ Y as it was, with Params::residual]). Returns Unsupported, having done nothing,
  // exactly when prepare() fails for the same arguments. `workspace`: prepare()'s bytes, 64-byte aligned.
  // x, y: float32, or the 8-bit types of Params::q for an int8 convolution.
  Status run(const void* x, void* y, const Geometry& g, void* workspace, int threads) const;
  // Primitives made so far (shapes refused included).
  size_t cached_primitives() const;
  // Whether the primitives run on oneDNN's blocked layout, X and Y reordered from and to the
  // caller's (float32 dense convs with a spatial kernel on AVX2 CPUs; dnnl_conv.cc says why).
  bool runs_blocked() const;

 private:
  struct Impl;
  explicit DnnlConv(std::unique_ptr<Impl> impl);
  // One chunk of the batch (run() splits it: at most a few primitives per conv).
  Status run_chunk(const void* x, void* y, const Geometry& g, void* workspace, int threads) const;
  static std::unique_ptr<DnnlConv> make(std::unique_ptr<Impl> impl, const void* w, const float* bias, PackStore* store);
  std::unique_ptr<Impl> impl_;
};

}  // namespace mserve
