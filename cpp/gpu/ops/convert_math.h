// float32 <-> the 16-bit operands of products and convolutions (GpuOptions::operand), round to
// nearest even, through CUDA's cuda_fp16 / cuda_bf16: the conversion instructions on the device,
// their host versions here (weights converted once at load, and the tests).
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

#include "gpu/ops/host_device.h"
#include "gpu/options.h"

namespace mserve::gpu {

// t is kF16 or kBf16.
MS_HD uint16_t to_bits16(float x, Operand t) {
  if (t == Operand::kBf16) return __bfloat16_as_ushort(__float2bfloat16_rn(x));
  return __half_as_ushort(__float2half_rn(x));
}

MS_HD float from_bits16(uint16_t b, Operand t) {
  if (t == Operand::kBf16) return __bfloat162float(__ushort_as_bfloat16(b));
  return __half2float(__ushort_as_half(b));
}

// Bytes of one element of an operand type.
MS_HD int operand_bytes(Operand t) { return t == Operand::kF32 ? 4 : 2; }

}  // namespace mserve::gpu
