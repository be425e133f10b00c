#include "core/kernels/registry.h"

namespace mserve {

namespace {
using Factory = StatusOr<KernelPtr> (*)(const Node&, const KernelInit&);
struct Row {
  OpInfo info;
  Factory factory;
};
const Row kRows[] = {
#define MS_OP(DOMID, DOMAIN, NAME, SINCE, FAMILY, ELEMENTWISE) \
  {{DOMAIN, #NAME, SINCE, #FAMILY, OpInfo::Elementwise::ELEMENTWISE}, &create_##DOMID##_##NAME},
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

namespace {
const Row* row_of(const Node& node) {
  for (const Row& r : kRows)
    if (node.op_type == r.info.name && node.domain == r.info.domain) return &r;
  return nullptr;
}
}  // namespace

const OpInfo* op_info(const Node& node) {
  const Row* r = row_of(node);
  return r ? &r->info : nullptr;
}

OpInfo::Elementwise elementwise(const Node& node) {
  const OpInfo* info = op_info(node);
  return info ? info->elementwise : OpInfo::Elementwise::kNo;
}

StatusOr<KernelPtr> create_kernel(const Node& node, const KernelInit& init) {
  if (!node.unsupported.empty()) return Unsupported(node.unsupported);
  if (node.opset <= 0) return Unsupported("domain '" + node.domain + "' is not imported by the model");
  const Row* r = row_of(node);
  if (!r) return Unsupported("operator is not supported");
  if (node.opset < r->info.since)
    return Unsupported("opset " + std::to_string(node.opset) +
                       " is older than the first "
                       "supported version " +
                       std::to_string(r->info.since));
  return r->factory(node, init);
}

const Tensor* KernelInit::constant(const Node& node, int input) const {
  if (input >= static_cast<int>(node.inputs.size()) || node.inputs[input] == kNoValue) return nullptr;
  auto it = graph_.initializers.find(node.inputs[input]);
  return it == graph_.initializers.end() ? nullptr : &it->second;
}

}  // namespace mserve
