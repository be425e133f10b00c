// What a CUDA backend was asked for at load (mserve.load(..., precision=...)); every kernel of a
// session sees its backend's options when it is created.
#pragma once

namespace mserve::gpu {

struct GpuOptions {
  // TF32 tensor cores for float32 matrix products and convolutions (10-bit mantissa products,
  // float32 accumulation); false keeps them exact float32.
  bool tf32 = false;
  // MultiHeadAttention's fused kernel (ops/flash_attention.cu) for the sizes it runs; false keeps
  // every shape on the two cuBLASLt products (the fallback, and the oracle the fused kernel is
  // checked against); _core_cuda.backend(fused_attention=False) asks for that.
  bool fused_attention = true;
};

}  // namespace mserve::gpu
