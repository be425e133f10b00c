#include "core/kernels/registry.h"

namespace mserve {

namespace {
using Factory = StatusOr<KernelPtr> (*)(const Node&, const KernelInit&);
struct Row {
  OpInfo info;
  Factory factory;
};
const Row kRows[] = {
#define MS_OP(DOMID, DOMAIN, NAME, SINCE, FAMILY) \
  {{DOMAIN, #NAME, SINCE, #FAMILY}, &create_##DOMID##_##NAME},
#include "core/kernels/op_list.inc"
#undef MS_OP
};
}  // namespace

const std::vector<OpInfo>& all_ops() {
  static const std::vector<OpInfo> ops = [] {
    std::vector<OpInfo> v;
    for (const Row& r : kRows) v.push_back(r.info);
    return v;
  }();
  return ops;
}

StatusOr<KernelPtr> create_kernel(const Node& node, const KernelInit& init) {
  if (!node.unsupported.empty()) return Unsupported(node.unsupported);
  if (node.opset <= 0) return Unsupported("domain '" + node.domain + "' is not imported by the model");
  const std::string& dom = node.domain;
  for (const Row& r : kRows) {
    if (node.op_type != r.info.name || dom != r.info.domain) continue;
    if (node.opset < r.info.since)
      return Unsupported("opset " + std::to_string(node.opset) + " is older than the first "
                         "supported version " + std::to_string(r.info.since));
    return r.factory(node, init);
  }
  return Unsupported("operator is not supported");
}

const Tensor* KernelInit::constant(const Node& node, int input) const {
  if (input >= static_cast<int>(node.inputs.size()) || node.inputs[input] == kNoValue)
    return nullptr;
  auto it = graph_.initializers.find(node.inputs[input]);
  return it == graph_.initializers.end() ? nullptr : &it->second;
}

}  // namespace mserve
