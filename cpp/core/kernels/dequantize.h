// DequantizeLinear's arithmetic, for the kernel (ops/quant.cc) and for the pass that folds the
// dequantization of constant weights at load (passes/fold_dequantize.cc):
//   y = (x - zero_point) * scale
// per tensor, per axis or blocked (opset 21 block_size > 0), x of any quantized type, y float.
#pragma once
#include <cstdint>

#include "core/status.h"
#include "core/tensor/tensor.h"

namespace mserve {

class ThreadPool;

// y: allocated with x's shape and the output float dtype.
Status dequantize(const Tensor& x, const Tensor& scale, const Tensor* zero_point, int64_t axis, int64_t block,
                  Tensor& y, ThreadPool& pool);

}  // namespace mserve
