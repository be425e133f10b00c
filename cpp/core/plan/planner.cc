#include <algorithm>
#include <map>

#include "core/kernels/registry.h"
#include "core/parallel/thread_pool.h"
#include "core/plan/plan.h"

namespace mserve {

StatusOr<std::vector<int>> topological_order(const Graph& g) {
  const int n = static_cast<int>(g.nodes.size());
  std::vector<int> producer(g.values.size(), -1);
  for (int i = 0; i < n; ++i)
    for (int v : g.nodes[i].outputs)
      if (v != kNoValue) producer[v] = i;
  std::vector<int> pending(n, 0);
  std::vector<std::vector<int>> users(n);
  for (int i = 0; i < n; ++i)
    for (int v : g.nodes[i].inputs)
      if (v != kNoValue && producer[v] >= 0) {
        ++pending[i];
        users[producer[v]].push_back(i);
      }
  // Kahn's algorithm with a min-heap on file position keeps file order where it is valid.
  std::vector<int> ready, order;
  for (int i = 0; i < n; ++i)
    if (!pending[i]) ready.push_back(i);
  std::make_heap(ready.begin(), ready.end(), std::greater<int>());
  while (!ready.empty()) {
    std::pop_heap(ready.begin(), ready.end(), std::greater<int>());
    int i = ready.back();
    ready.pop_back();
    order.push_back(i);
    for (int u : users[i])
      if (--pending[u] == 0) {
        ready.push_back(u);
        std::push_heap(ready.begin(), ready.end(), std::greater<int>());
      }
  }
  if (static_cast<int>(order.size()) != n) return LoadError("the graph has a cycle");
  return order;
}

Status create_kernels(Program& p) {
  std::vector<std::string> unsupported;
  p.kernels.clear();
  p.kernels.resize(p.graph.nodes.size());
  KernelInit init(p.graph);
  for (size_t i = 0; i < p.graph.nodes.size(); ++i) {
    const Node& n = p.graph.nodes[i];
    auto k = create_kernel(n, init);
    if (k.ok())
      p.kernels[i] = std::move(k).value();
    else if (k.status().code() == Code::kUnsupported)
      unsupported.push_back(n.describe() + ": " + k.status().message());
    else  // a malformed node (missing or invalid attributes) is a load error
      return LoadError(n.where() + k.status().message());
  }
  if (unsupported.empty()) return Status::OK();
  std::string msg = std::to_string(unsupported.size()) + " unsupported node(s):";
  for (const auto& u : unsupported) msg += "\n  " + u;
  return Unsupported(msg);
}

Status check_string_support(const Node& node, const Kernel& k, const std::vector<const ValueInfo*>& in,
                            const InferContext* out) {
  if (k.supports_strings()) return Status::OK();
  bool strings = false;
  if (k.reads_input_data())
    for (const ValueInfo* vi : in) strings = strings || (vi && vi->dtype == DType::kString);
  if (out)
    for (int o = 0; o < out->num_outputs(); ++o)
      strings = strings || (node.outputs[o] != kNoValue && out->output(o).dtype == DType::kString);
  if (!strings) return Status::OK();
  return Unsupported(node.describe() + ": string tensors are not supported by this operator");
}

namespace {

// Runs one node whose input values are all known, returning owned outputs.
Status evaluate(const Node& node, const Kernel& k, const std::vector<const ValueInfo*>& infos, ThreadPool& pool,
                InferContext& ctx, std::vector<Tensor>& outs) {
  outs.assign(node.outputs.size(), Tensor());
  std::vector<Tensor*> out_ptrs(outs.size(), nullptr);
  for (size_t o = 0; o < outs.size(); ++o) {
    if (node.outputs[o] == kNoValue) continue;
    MS_ASSIGN_OR_RETURN(outs[o], Tensor::empty(ctx.output(o).dtype, ctx.output(o).shape));
    out_ptrs[o] = &outs[o];
  }
  std::vector<Tensor> placeholders(infos.size());  // inputs whose data the kernel doesn't read
  std::vector<const Tensor*> in_ptrs;
  for (size_t i = 0; i < infos.size(); ++i) {
    const ValueInfo* vi = infos[i];
    if (vi && !vi->value) placeholders[i] = Tensor(vi->dtype, vi->shape, nullptr);
    in_ptrs.push_back(!vi ? nullptr : vi->value ? vi->value : &placeholders[i]);
  }
  MS_ASSIGN_OR_RETURN(Tensor ws, Tensor::empty(DType::kUInt8, Shape{static_cast<int64_t>(ctx.workspace())}));
  ComputeContext cc(in_ptrs.data(), static_cast<int>(in_ptrs.size()), out_ptrs.data(),
                    static_cast<int>(out_ptrs.size()), ws.raw(), &pool);
  return k.compute(cc);
}

Status check_outputs(const Node& node, const InferContext& ctx) {
  for (size_t o = 0; o < node.outputs.size(); ++o) {
    if (node.outputs[o] == kNoValue) continue;
    const ValueInfo& vi = ctx.output(o);
    if (vi.dtype == DType::kUndefined) return Internal("output " + std::to_string(o) + " has no type");
    for (int64_t d : vi.shape)
      if (d < 0) return InvalidArgument("inferred a negative dimension in output shape " + vi.shape.str());
  }
  return Status::OK();
}

}  // namespace

Status fold_constants(Program& p, ThreadPool& pool) {
  Graph& g = p.graph;
  std::vector<ValueInfo> infos(g.values.size());
  for (auto& [id, t] : g.initializers) infos[id] = ValueInfo{t.dtype(), t.shape(), &t};
  std::vector<int> kept;
  for (int ni : p.order) {
    const Node& node = g.nodes[ni];
    std::vector<const ValueInfo*> in;
    bool all_const = true;
    for (int v : node.inputs) {
      in.push_back(v == kNoValue ? nullptr : &infos[v]);
      if (v != kNoValue && !g.initializers.count(v)) all_const = false;
    }
    if (!all_const || p.kernels[ni]->produces_own_outputs()) {
      kept.push_back(ni);
      continue;
    }
    InferContext ctx(node, in, pool.threads());
    MS_RETURN_IF_ERROR(check_string_support(node, *p.kernels[ni], in, nullptr));
    MS_RETURN_IF_ERROR(p.kernels[ni]->infer(ctx).with_context(node.where()));
    if (ctx.deferred()) return Internal(node.where() + "deferred with every input known");
    MS_RETURN_IF_ERROR(check_string_support(node, *p.kernels[ni], in, &ctx));
    MS_RETURN_IF_ERROR(check_outputs(node, ctx).with_context(node.where()));
    std::vector<Tensor> outs;
    MS_RETURN_IF_ERROR(evaluate(node, *p.kernels[ni], in, pool, ctx, outs).with_context(node.where()));
    for (size_t o = 0; o < outs.size(); ++o) {
      int v = node.outputs[o];
      if (v == kNoValue) continue;
      Tensor& t = g.initializers[v] = std::move(outs[o]);
      infos[v] = ValueInfo{t.dtype(), t.shape(), &t};
    }
    p.kernels[ni].reset();
  }
  p.order = std::move(kept);
  // Kernels whose inputs just became constant are created again so they can prepack them.
  KernelInit init(g);
  for (int ni : p.order) {
    MS_ASSIGN_OR_RETURN(p.kernels[ni], create_kernel(g.nodes[ni], init));
  }
  return Status::OK();
}

namespace {

struct Interval {
  int value;  // value id, or -1 - step index for a step's workspace
  size_t bytes;
  int first, last;  // step indices
  size_t offset = 0;
};

// Greedy by size: biggest blocks first, each at the lowest offset that doesn't overlap a placed
// block whose lifetime intersects its own.
size_t assign_offsets(std::vector<Interval>& blocks) {
  std::vector<Interval*> order;
  for (auto& b : blocks) order.push_back(&b);
  std::stable_sort(order.begin(), order.end(), [](auto* a, auto* b) { return a->bytes > b->bytes; });
  std::vector<Interval*> placed;
  size_t total = 0;
  for (Interval* b : order) {
    std::vector<std::pair<size_t, size_t>> busy;
    for (Interval* p : placed)
      if (p->first <= b->last && b->first <= p->last) busy.emplace_back(p->offset, p->offset + p->bytes);
    std::sort(busy.begin(), busy.end());
    size_t off = 0;
    for (auto [lo, hi] : busy) {
      if (off + b->bytes <= lo) break;
      off = std::max(off, hi);
    }
    b->offset = off;
    total = std::max(total, off + b->bytes);
    placed.push_back(b);
  }
  return total;
}

}  // namespace

StatusOr<std::shared_ptr<const Plan>> make_plan(const Program& prog, const std::vector<ValueInfo>& inputs,
                                                ThreadPool& pool) {
  const Graph& g = prog.graph;
  auto plan = std::make_shared<Plan>();
  plan->values.resize(g.values.size());
  std::vector<ValueInfo> infos(g.values.size());
  std::vector<bool> known(g.values.size(), false);  // dtype and shape known at plan time

  for (size_t i = 0; i < g.inputs.size(); ++i) {
    int v = g.inputs[i];
    infos[v] = ValueInfo{inputs[i].dtype, inputs[i].shape, nullptr};
    known[v] = true;
    plan->values[v] = ValuePlan{Storage::kInput, inputs[i].dtype, inputs[i].shape};
    plan->input_shapes.push_back(inputs[i].shape);
  }
  for (auto& [v, t] : g.initializers) {
    // Released weights (no bytes: packed by their readers) are shapes only, never folded over.
    const bool released = t.raw() == nullptr && t.numel() > 0;
    infos[v] = ValueInfo{t.dtype(), t.shape(), released ? nullptr : &t};
    known[v] = true;
    plan->values[v] = ValuePlan{Storage::kConstant, t.dtype(), t.shape(), 0, &t};
  }
  std::vector<bool> is_output(g.values.size(), false);
  for (int v : g.outputs) is_output[v] = true;

  std::vector<Interval> blocks;
  std::map<int, size_t> block_of;  // value id -> index in blocks
  for (int ni : prog.order) {
    const Node& node = g.nodes[ni];
    std::vector<const ValueInfo*> in;
    bool inputs_known = true, all_values = true;
    for (int v : node.inputs) {
      in.push_back(v == kNoValue ? nullptr : &infos[v]);
      if (v == kNoValue) continue;
      inputs_known = inputs_known && known[v];
      all_values = all_values && (infos[v].value != nullptr || !prog.kernels[ni]->reads_input_data());
    }
    plan->max_arity = std::max({plan->max_arity, node.inputs.size(), node.outputs.size()});
    bool dynamic = !inputs_known || prog.kernels[ni]->produces_own_outputs();
    InferContext ctx(node, in, pool.threads());
    MS_RETURN_IF_ERROR(check_string_support(node, *prog.kernels[ni], in, nullptr));
    if (!dynamic) {
      MS_RETURN_IF_ERROR(prog.kernels[ni]->infer(ctx).with_context(node.where()));
      dynamic = ctx.deferred();
    }
    if (!dynamic) {
      MS_RETURN_IF_ERROR(check_string_support(node, *prog.kernels[ni], in, &ctx));
      MS_RETURN_IF_ERROR(check_outputs(node, ctx).with_context(node.where()));
    }

    if (!dynamic && all_values) {
      // Every input is known now (shapes of inputs feed Shape, so shape arithmetic folds away).
      std::vector<Tensor> outs;
      MS_RETURN_IF_ERROR(evaluate(node, *prog.kernels[ni], in, pool, ctx, outs).with_context(node.where()));
      for (size_t o = 0; o < outs.size(); ++o) {
        int v = node.outputs[o];
        if (v == kNoValue) continue;
        Tensor& t = plan->folded[v] = std::move(outs[o]);
        infos[v] = ValueInfo{t.dtype(), t.shape(), &t};
        known[v] = true;
        plan->values[v] = ValuePlan{Storage::kConstant, t.dtype(), t.shape(), 0, &t};
      }
      continue;
    }
    const int step = static_cast<int>(plan->steps.size());
    plan->steps.push_back(Step{ni, dynamic});
    if (!dynamic && ctx.workspace() > 0) {
      blocks.push_back(Interval{-1 - step, (ctx.workspace() + kAlignment - 1) / kAlignment * kAlignment, step, step});
    }
    for (int v : node.inputs)
      if (v != kNoValue && block_of.count(v)) blocks[block_of[v]].last = step;
    for (size_t o = 0; o < node.outputs.size(); ++o) {
      int v = node.outputs[o];
      if (v == kNoValue) continue;
      ValuePlan& vp = plan->values[v];
      if (dynamic) {
        vp.storage = Storage::kDynamic;
        continue;
      }
      const ValueInfo& out = ctx.output(o);
      if (!Shape::fits(out.shape.rank())) return Unsupported(node.where() + "rank too large");
      infos[v] = ValueInfo{out.dtype, out.shape, nullptr};
      known[v] = true;
      vp.dtype = out.dtype;
      vp.shape = out.shape;
      if (is_output[v]) {
        vp.storage = Storage::kOutput;
      } else if (out.dtype == DType::kString) {
        vp.storage = Storage::kOwned;  // std::string objects never live in the arena
      } else {
        vp.storage = Storage::kArena;
        MS_ASSIGN_OR_RETURN(size_t bytes, aligned_bytes(out.dtype, out.shape));
        const int src = node.inputs.empty() ? kNoValue : node.inputs[0];
        if (o == 0 && prog.kernels[ni]->output_is_input_view() && src != kNoValue && block_of.count(src) &&
            blocks[block_of[src]].bytes == bytes) {
          block_of[v] = block_of[src];  // a view: the same memory, live until both are done
          continue;
        }
        block_of[v] = blocks.size();
        blocks.push_back(Interval{v, bytes, step, step});
      }
    }
  }
  plan->arena_bytes = assign_offsets(blocks);
  for (auto [v, i] : block_of) plan->values[v].offset = blocks[i].offset;  // views share their source's
  for (const Interval& b : blocks) {
    if (b.value < 0) {
      Step& s = plan->steps[-1 - b.value];
      s.workspace_offset = b.offset;
      s.workspace_bytes = b.bytes;
    }
  }
  return std::shared_ptr<const Plan>(std::move(plan));
}

}  // namespace mserve
