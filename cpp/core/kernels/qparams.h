// Per-tensor quantization parameters of 8-bit operators (the com.microsoft QLinear ops, mserve's
// fused QDQ ops): checking them at infer, reading them at compute.
#pragma once
#include <string>

#include "core/kernels/common.h"

namespace mserve {

inline bool is_q8(DType t) { return t == DType::kInt8 || t == DType::kUInt8; }

// Checks the (scale, zero point) pair at inputs s and z that quantizes a tensor of dtype `t`:
// a float32 scale of one element, an optional zero point of dtype t and one element.
inline Status check_qparams(const InferContext& ctx, int s, int z, DType t, const std::string& what) {
  MS_CHECK_ARG(ctx.has_input(s), what + " scale is missing");
  MS_CHECK_ARG(ctx.dtype(s) == DType::kFloat32,
               what + " scale must be float32, got " + std::string(dtype_name(ctx.dtype(s))));
  MS_CHECK_ARG(ctx.shape(s).numel() == 1,
               what + " scale must have one element (per-tensor), got shape " + ctx.shape(s).str());
  if (z >= 0 && ctx.has_input(z)) {
    MS_CHECK_ARG(ctx.dtype(z) == t,
                 what + " zero point must be " + dtype_name(t) + ", got " + dtype_name(ctx.dtype(z)));
    MS_CHECK_ARG(ctx.shape(z).numel() == 1,
                 what + " zero point must have one element (per-tensor), got shape " + ctx.shape(z).str());
  }
  return Status::OK();
}

inline Status check_q8(const InferContext& ctx, int i, const std::string& what) {
  MS_CHECK_ARG(ctx.has_input(i), what + " is missing");
  if (!is_q8(ctx.dtype(i)))
    return Unsupported(what + " dtype " + dtype_name(ctx.dtype(i)) + " is not supported (int8 or uint8)");
  return Status::OK();
}

struct QParam {
  float scale = 1.0f;
  int32_t zp = 0;
};

inline QParam qparam(const ComputeContext& ctx, int s, int z) {
  QParam p;
  p.scale = ctx.input(s).data<float>()[0];
  p.zp = z >= 0 && ctx.has_input(z) ? static_cast<int32_t>(ctx.input(z).int_at(0)) : 0;
  return p;
}

}  // namespace mserve
