// Kernel registry, generated from op_list.inc.
#pragma once
#include <string>
#include <vector>

#include "core/kernels/kernel.h"

namespace mserve {

#define MS_OP(DOMID, DOMAIN, NAME, SINCE, FAMILY, ELEMENTWISE) \
  StatusOr<KernelPtr> create_##DOMID##_##NAME(const Node& node, const KernelInit& init);
#include "core/kernels/op_list.inc"
#undef MS_OP

struct OpInfo {
  enum class Elementwise { kNo, kUnary, kNary };  // see op_list.inc
  const char* domain;
  const char* name;
  int since;  // first opset version supported
  const char* family;
  Elementwise elementwise;
};

const std::vector<OpInfo>& all_ops();

// The row of `node`'s operator (any opset), or nullptr when mserve does not run it.
const OpInfo* op_info(const Node& node);
// op_info(node)'s element-wise column; kNo for an operator mserve does not run.
OpInfo::Elementwise elementwise(const Node& node);

// Creates the kernel for `node`. Unsupported when the op (or its opset) isn't in the list.
StatusOr<KernelPtr> create_kernel(const Node& node, const KernelInit& init);

}  // namespace mserve
