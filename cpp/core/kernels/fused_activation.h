// An activation of activation_table.h with its two parameters, and the node attributes that
// carry one fused into the node producing its input. passes/fuse_activation.cc writes them
// (write / write_residual) and the Conv, Gemm and MatMul kernels read them (of / has_residual);
// no other code names them:
//   mserve_activation        the Kind's name ("Relu", "GeluTanh", ...): applied to the output
//   mserve_activation_alpha  parameter A (LeakyRelu's alpha, Clip's min)
//   mserve_activation_beta   parameter B (Clip's max)
//   mserve_residual          1: an NhwcConv adds its input 3 to the activated output
//   mserve_after_activation  (and _alpha, _beta) applied after that sum
// The same record also describes a stand-alone activation operator and a recurrent gate.
#pragma once
#include <algorithm>
#include <cstdint>
#include <string>

#include "core/kernels/activation_table.h"

namespace mserve {

struct Node;

struct FusedActivation {
  enum class Kind {
    kNone,
#define MSERVE_ACTIVATION_KIND(KIND, ...) k##KIND,
    MSERVE_ACTIVATIONS(MSERVE_ACTIVATION_KIND)
#undef MSERVE_ACTIVATION_KIND
  };
  // The table's rows: Kind values 1 .. kKinds.
#define MSERVE_ACTIVATION_ROW(...) +1
  static constexpr int kKinds = 0 MSERVE_ACTIVATIONS(MSERVE_ACTIVATION_ROW);
#undef MSERVE_ACTIVATION_ROW
  // A row of the table, for the code that decides rather than computes.
  struct Info {
    const char* name;
    const char* alpha_attr;  // nullptr: no parameter A
    float alpha_default;
    const char* beta_attr;  // nullptr: no parameter B
    float beta_default;
    bool fuses;
    bool recurrent;
  };

  // Attribute names on the fusing node.
  static constexpr const char* kActivationAttr = "mserve_activation";
  static constexpr const char* kAfterActivationAttr = "mserve_after_activation";
  static constexpr const char* kResidualAttr = "mserve_residual";

  Kind kind = Kind::kNone;
  float alpha = 0, beta = 0;

  // The table's row of `k` (k is not kNone).
  static const Info& info(Kind k);
  // The activation named `name` (a Kind's name; any_case: ignoring case, as recurrent layers
  // spell them) with the table's default parameters; kind kNone for a name that is none.
  static FusedActivation named(const std::string& name, bool any_case = false);
  // The activation the stand-alone operator `n` computes, parameters from its attributes (or
  // their defaults; Gelu's approximate picks Gelu or GeluTanh); kind kNone when `n` is no
  // activation of the table or has an attribute value the operator rejects.
  static FusedActivation of_operator(const Node& n);

  // Fused attributes: written under `prefix` (kActivationAttr or kAfterActivationAttr) and read
  // back (kind kNone where there are none); `fused` says whether `n` carries one under `prefix`.
  void write(Node& n, const char* prefix = kActivationAttr) const;
  static FusedActivation of(const Node& n, const char* prefix = kActivationAttr);
  static bool fused(const Node& n, const char* prefix = kActivationAttr);
  static void write_residual(Node& n);
  static bool has_residual(const Node& n);

  // y[i] = act(x[i]) for i < n (y may be x), with the ONNX operator's semantics; vectorized for
  // float and double (isa/variant_activation.cc, for the CPU's instruction set); other types
  // convert through float in chunks. kNone copies.
  void apply(const float* x, float* y, int64_t n) const;
  void apply(const double* x, double* y, int64_t n) const;
  template <class T>
  void apply(const T* x, T* y, int64_t n) const {
    constexpr int64_t kChunk = 256;
    float buf[kChunk];
    for (int64_t s = 0; s < n; s += kChunk) {
      const int64_t m = std::min(kChunk, n - s);
      for (int64_t j = 0; j < m; ++j) buf[j] = static_cast<float>(x[s + j]);
      apply(buf, buf, m);
      for (int64_t j = 0; j < m; ++j) y[s + j] = static_cast<T>(buf[j]);
    }
  }
  // In place: y[i] = act(y[i]); kNone does nothing.
  template <class T>
  void apply(T* y, int64_t n) const {
    if (kind != Kind::kNone) apply(static_cast<const T*>(y), y, n);
  }
};

}  // namespace mserve
