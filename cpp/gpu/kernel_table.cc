#include "gpu/kernel_table.h"

#include "core/kernels/registry.h"
#include "gpu/ops/families.h"

namespace mserve::gpu {

namespace {

struct Row {
  const char* domain;
  const char* op;
  GpuFactory create;
};

const std::vector<Row>& table() {
  static const std::vector<Row> rows = {
#define MS_GPU_OP(DOMAIN, NAME, FAMILY) {DOMAIN, #NAME, &create_gpu_##FAMILY},
#include "gpu/ops/op_list.inc"
#undef MS_GPU_OP
  };
  return rows;
}

}  // namespace

StatusOr<KernelPtr> create_gpu_kernel(const Node& node, const KernelInit& init, const GpuOptions& opts) {
  for (const Row& r : table()) {
    if (node.op_type != r.op || node.domain != r.domain) continue;
    // The CPU's kernel infers the shapes (one source of truth); the family adds the GPU's part.
    // Made for shapes only: no packed host copies of weights the GPU reads from its own upload.
    MS_ASSIGN_OR_RETURN(KernelPtr cpu, create_kernel(node, init.shapes_only()));
    return r.create(node, init, std::move(cpu), opts);
  }
  return KernelPtr();
}

std::vector<std::pair<std::string, std::string>> gpu_ops() {
  std::vector<std::pair<std::string, std::string>> ops;
  for (const Row& r : table()) ops.emplace_back(r.domain, r.op);
  return ops;
}

}  // namespace mserve::gpu
