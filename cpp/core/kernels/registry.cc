#include "core/kernels/registry.h"

#include "core/kernels/half_as_float.h"

namespace mserve {

namespace {
struct Row {
  OpInfo info;
  KernelFactory factory;
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
  if (init.has_half()) return create_half_as_float(node, init, r->factory, r->info.family);
  return r->factory(node, init);
}

KernelInit::KernelInit(const Graph& g, bool prepack, PackStore* packs)
    : graph_(g), prepack_(prepack), packs_(packs), has_half_(needs_half_as_float(g)) {}

KernelInit KernelInit::shapes_only() const {
  KernelInit k(*this);
  k.prepack_ = false;
  return k;
}

KernelInit KernelInit::with_constants(std::vector<const Tensor*> by_input) const {
  KernelInit k(*this);
  k.by_input_ = std::move(by_input);
  return k;
}

const Tensor* KernelInit::constant(const Node& node, int input) const {
  if (input >= static_cast<int>(node.inputs.size()) || node.inputs[input] == kNoValue) return nullptr;
  if (input < static_cast<int>(by_input_.size()) && by_input_[input]) return by_input_[input];
  auto it = graph_.initializers.find(node.inputs[input]);
  return it == graph_.initializers.end() ? nullptr : &it->second;
}

}  // namespace mserve
