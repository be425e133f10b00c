// Kernel registry, generated from op_list.inc.
#pragma once
#include <string>
#include <vector>

#include "core/kernels/kernel.h"

namespace mserve {

#define MS_OP(DOMID, DOMAIN, NAME, SINCE, FAMILY) \
  StatusOr<KernelPtr> create_##DOMID##_##NAME(const Node& node, const KernelInit& init);
#include "core/kernels/op_list.inc"
#undef MS_OP

struct OpInfo {
  const char* domain;
  const char* name;
  int since;  // first opset version supported
  const char* family;
};

const std::vector<OpInfo>& all_ops();

// Creates the kernel for `node`. Unsupported when the op (or its opset) isn't in the list.
StatusOr<KernelPtr> create_kernel(const Node& node, const KernelInit& init);

}  // namespace mserve
