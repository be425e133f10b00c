// An activation fused into the node that produces its input (passes/fuse_activation.cc moves a
// Relu, LeakyRelu, Clip or HardSwish that is a Conv's only consumer into the Conv as the
// attributes below); the kernel applies it to its output before anyone reads it.
//   mserve_activation        "Relu" | "LeakyRelu" | "Clip" | "HardSwish"
//   mserve_activation_alpha  LeakyRelu's alpha, Clip's min
//   mserve_activation_beta   Clip's max
#pragma once
#include <algorithm>
#include <cstdint>
#include <string>

#include "core/graph/graph.h"

namespace mserve {

struct FusedActivation {
  enum class Kind { kNone, kRelu, kLeakyRelu, kClip, kHardSwish };
  Kind kind = Kind::kNone;
  float alpha = 0, beta = 0;

  static FusedActivation of(const Node& n) {
    FusedActivation a;
    const std::string k = n.attr_string("mserve_activation", "");
    a.kind = k == "Relu"        ? Kind::kRelu
             : k == "LeakyRelu" ? Kind::kLeakyRelu
             : k == "Clip"      ? Kind::kClip
             : k == "HardSwish" ? Kind::kHardSwish
                                : Kind::kNone;
    a.alpha = n.attr_float("mserve_activation_alpha", 0.0f);
    a.beta = n.attr_float("mserve_activation_beta", 0.0f);
    return a;
  }

  // y[i] = act(y[i]) for i < n, with the ONNX operator's semantics (NaN stays NaN).
  template <class T>
  void apply(T* y, int64_t n) const {
    const T a = static_cast<T>(alpha), b = static_cast<T>(beta);
    switch (kind) {
      case Kind::kNone:
        return;
      case Kind::kRelu:
        for (int64_t i = 0; i < n; ++i) y[i] = y[i] < T(0) ? T(0) : y[i];
        return;
      case Kind::kLeakyRelu:
        for (int64_t i = 0; i < n; ++i) y[i] = y[i] < T(0) ? a * y[i] : y[i];
        return;
      case Kind::kClip:
        for (int64_t i = 0; i < n; ++i) y[i] = y[i] < a ? a : (y[i] > b ? b : y[i]);
        return;
      case Kind::kHardSwish:
        for (int64_t i = 0; i < n; ++i) {
          const T g = y[i] / T(6) + T(0.5);
          y[i] = y[i] * (g < T(0) ? T(0) : (g > T(1) ? T(1) : g));
        }
        return;
    }
  }
};

}  // namespace mserve
