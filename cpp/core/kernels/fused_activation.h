// An activation fused into the node that produces its input (passes/fuse_activation.cc moves an
// activation that is a Conv's, Gemm's or MatMul's only consumer into it as the attributes
// below); the kernel applies it to its output before anyone reads it.
//   mserve_activation        "Relu" | "LeakyRelu" | "Clip" | "HardSwish" | "Gelu" | "GeluTanh" |
//                            "Tanh" | "Sigmoid"
//   mserve_activation_alpha  LeakyRelu's alpha, Clip's min
//   mserve_activation_beta   Clip's max
#pragma once
#include <cmath>
#include <cstdint>
#include <string>

namespace mserve {

struct Node;

struct FusedActivation {
  enum class Kind { kNone, kRelu, kLeakyRelu, kClip, kHardSwish, kGelu, kGeluTanh, kTanh, kSigmoid };
  Kind kind = Kind::kNone;
  float alpha = 0, beta = 0;

  // The kind named by a mserve_activation value; false for a name that is not one.
  static bool kind_of(const std::string& name, Kind* kind);

  // From the attributes <prefix>, <prefix>_alpha, <prefix>_beta ("mserve_activation"; a Conv
  // with a fused residual Add also has "mserve_after_activation", applied after the sum).
  static FusedActivation of(const Node& n, const std::string& prefix = "mserve_activation");

  // y[i] = act(y[i]) for i < n, with the ONNX operator's semantics (NaN stays NaN); vectorized
  // for float and double (isa/variant_activation.cc, for the CPU's instruction set), element by
  // element in float for other types.
  void apply(float* y, int64_t n) const;
  void apply(double* y, int64_t n) const;
  template <class T>
  void apply(T* y, int64_t n) const {
    if (kind == Kind::kNone) return;
    for (int64_t i = 0; i < n; ++i) {
      float v = static_cast<float>(y[i]);
      apply(&v, 1);
      y[i] = static_cast<T>(v);
    }
  }
};

}  // namespace mserve
