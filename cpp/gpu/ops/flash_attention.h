// The fused MultiHeadAttention kernels (float32, and on the tensor cores in 16 bits): Y = softmax(scale * Q K^T + mask)
// V in one pass over K and V with an online softmax, the scores never written to memory (flash_attention_math.h has the
// arithmetic and the schedule). attention.cc chooses it for head sizes up to 128 and up to 512 keys; callable from host
// code compiled by g++ (no CUDA headers).
#pragma once
#include "gpu/ops/flash_attention_math.h"
#include "gpu/options.h"

namespace mserve::gpu {

using flash::FlashMask;
using flash::FlashParams;

// Queues the kernel on `stream` (a cudaStream_t) for sizes flash::flash_fits accepts. Returns
// the launch's cudaError_t as an int (0: queued; cudaErrorInvalidValue for sizes it does not run).
int launch_flash_attention(const FlashParams& p, void* stream);

// The same on the tensor cores (flash_tc.cu, flash_tc_math.h): Q, K, V and the probabilities
// rounded to t (kF16 or kBf16), float32 accumulation, softmax and output.
int launch_flash_attention_tc(const FlashParams& p, Operand t, void* stream);

}  // namespace mserve::gpu
