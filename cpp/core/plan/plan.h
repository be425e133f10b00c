// Program: a loaded graph with its kernels in execution order (shape-independent).
// Plan: a Program specialized to one set of input shapes: every value's dtype, shape and storage,
// plan-time-folded constants, and one arena layout that intermediates share by liveness.
#pragma once
#include <memory>
#include <unordered_map>
#include <vector>

#include "core/graph/graph.h"
#include "core/kernels/kernel.h"

namespace mserve {

class ThreadPool;

struct Program {
  Graph graph;                     // initializers include load-time-folded constants
  std::vector<KernelPtr> kernels;  // per node index of graph.nodes; null for folded nodes
  std::vector<int> order;          // node indices to run, topologically sorted
};

// Orders nodes topologically (stable w.r.t. file order); LoadError on a cycle.
StatusOr<std::vector<int>> topological_order(const Graph& g);

// Builds kernels for every node; an Unsupported error lists every unsupported node at once.
Status create_kernels(Program& p);

// Evaluates nodes whose inputs are all constant once, turning their outputs into initializers.
Status fold_constants(Program& p, ThreadPool& pool);

enum class Storage : uint8_t {
  kUnused,    // never read
  kInput,     // a graph input, borrowed from the caller
  kConstant,  // an initializer or a value folded at plan time
  kArena,     // an intermediate, at `offset` in the run's arena
  kOutput,    // a graph output: a fresh buffer per call, handed to the caller
  kDynamic,   // shape known only at run time: allocated when produced
  kOwned,     // an intermediate that cannot live in the arena (strings): a fresh owned buffer
              // per call, released when the call ends
};

struct ValuePlan {
  Storage storage = Storage::kUnused;
  DType dtype = DType::kUndefined;
  Shape shape;
  size_t offset = 0;                 // kArena
  const Tensor* constant = nullptr;  // kConstant
};

struct Step {
  int node;
  bool dynamic;  // infer at run time (an input shape or a needed value is known only then)
  size_t workspace_offset = 0;
  size_t workspace_bytes = 0;
};

struct Plan {
  std::vector<Shape> input_shapes;  // the cache key
  std::vector<ValuePlan> values;    // per value id
  std::vector<Step> steps;
  std::unordered_map<int, Tensor> folded;  // value id -> constant computed at plan time
  size_t arena_bytes = 0;
  size_t max_arity = 0;  // the most inputs or outputs of any step
};

// The string-tensor safety net: Unsupported when a string value (DType::kString) reaches a kernel
// that does not declare supports_strings() (an input it reads, or any output). `in` are the
// node's inputs (null for omitted ones); `out` its outputs' infos, or null to check inputs only.
Status check_string_support(const Node& node, const Kernel& k, const std::vector<const ValueInfo*>& in,
                            const InferContext* out);

// Plans `prog` for inputs of these dtypes/shapes (graph input order). Folding at plan time
// runs kernels on `pool`.
StatusOr<std::shared_ptr<const Plan>> make_plan(const Program& prog, const std::vector<ValueInfo>& inputs,
                                                ThreadPool& pool);

}  // namespace mserve
