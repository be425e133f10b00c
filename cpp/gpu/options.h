// What a CUDA backend was asked for at load (mserve.load(..., precision=...)); every kernel of a
// session sees its backend's options when it is created.
#pragma once
#include <cstdint>
#include <string>

namespace mserve::gpu {

// The element type of the operands of matrix products and convolutions on the tensor cores.
// Everything else (activations between nodes, accumulation, bias, normalization, softmax) stays
// float32.
enum class Operand : uint8_t { kF32, kF16, kBf16 };

enum class Precision : uint8_t {
  kFp32,  // exact float32 everywhere (FMA math, no tensor cores)
  kTf32,  // float32 products and convolutions on TF32 tensor cores (10-bit mantissa, fp32 accumulation)
  kFp16,  // weights converted once to float16, activations converted per product; fp32 accumulation
  kBf16,  // the same in bfloat16 (float32's range, 8-bit mantissa)
};

// "fp32", "tf32", "fp16", "bf16"; false for anything else.
bool parse_precision(const std::string& name, Precision* out);
const char* precision_name(Precision p);

struct GpuOptions {
  Precision precision = Precision::kFp32;
  // MultiHeadAttention's fused kernel (ops/flash_attention.cu) for the sizes it runs; false keeps
  // every shape on the two cuBLASLt products (the fallback, and the oracle the fused kernel is
  // checked against); _core_cuda.backend(fused_attention=False) asks for that.
  bool fused_attention = true;

  // The operands' type of products and convolutions whose weights are constants.
  Operand operand() const {
    return precision == Precision::kFp16   ? Operand::kF16
           : precision == Precision::kBf16 ? Operand::kBf16
                                           : Operand::kF32;
  }
  // Whether float32 products (those of two activations, which the 16-bit precisions keep in
  // float32: attention's fallback) may use TF32 tensor cores: under every precision but fp32.
  bool tf32() const { return precision != Precision::kFp32; }
};

}  // namespace mserve::gpu
