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

namespace {

// For each initializer whose bytes can go as soon as its readers have packed it, how many
// readers it has. Only readers that constant folding will neither evaluate nor create again
// count: nodes with an input that no folding makes constant, whose other inputs are initializers
// already (fold_constants creates again the kernels whose inputs it folded, and those read their
// weights anew). Graph outputs and strings are kept.
std::unordered_map<int, int> releasable_readers(const Program& p) {
  const Graph& g = p.graph;
  std::vector<bool> maybe_const(g.values.size(), false);  // initializers, or outputs folding may make
  for (const auto& [v, t] : g.initializers) maybe_const[v] = true;
  std::vector<bool> stable(g.nodes.size(), false);
  for (int ni : p.order) {
    const Node& n = g.nodes[ni];
    bool all_const = true, folded_input = false;
    for (int v : n.inputs) {
      if (v == kNoValue) continue;
      all_const = all_const && maybe_const[v];
      folded_input = folded_input || (maybe_const[v] && !g.initializers.count(v));
    }
    if (all_const)
      for (int v : n.outputs)
        if (v != kNoValue) maybe_const[v] = true;
    stable[ni] = !all_const && !folded_input;
  }
  std::unordered_map<int, int> readers;
  for (const auto& [v, t] : g.initializers)
    if (t.dtype() != DType::kString && t.raw() != nullptr) readers[v] = 0;
  for (int v : g.outputs) readers.erase(v);
  for (size_t ni = 0; ni < g.nodes.size(); ++ni)
    for (int v : g.nodes[ni].inputs) {
      auto it = readers.find(v);
      if (it == readers.end()) continue;
      if (stable[ni])
        ++it->second;
      else
        readers.erase(it);
    }
  return readers;
}

}  // namespace

Status create_kernels(Program& p, bool release_packed) {
  std::vector<std::string> unsupported;
  p.kernels.clear();
  p.kernels.resize(p.graph.nodes.size());
  KernelInit init(p.graph, /*prepack=*/true, p.packs);
  std::unordered_map<int, int> readers;
  if (release_packed) readers = releasable_readers(p);
  for (size_t i = 0; i < p.graph.nodes.size(); ++i) {
    const Node& n = p.graph.nodes[i];
    auto k = create_kernel(n, init);
    if (k.ok())
      p.kernels[i] = std::move(k).value();
    else if (k.status().code() == Code::kUnsupported)
      unsupported.push_back(n.describe() + ": " + k.status().message());
    else  // a malformed node (missing or invalid attributes) is a load error
      return LoadError(n.where() + k.status().message());
    // A weight whose last reader just packed it drops its bytes now, before the next kernel
    // packs another: a model's weights and their packed forms are not all held at once.
    for (size_t j = 0; j < n.inputs.size() && !readers.empty(); ++j) {
      auto it = readers.find(n.inputs[j]);
      if (it == readers.end()) continue;
      if (!k.ok() || !p.kernels[i]->packed_constant(static_cast<int>(j))) {
        readers.erase(it);  // read as stored
      } else if (--it->second == 0) {
        Tensor& t = p.graph.initializers.at(it->first);
        t = Tensor(t.dtype(), t.shape(), nullptr);
        readers.erase(it);
      }
    }
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
  std::vector<bool> folded(g.values.size(), false);  // values that became initializers here
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
      folded[v] = true;
    }
    p.kernels[ni].reset();
  }
  p.order = std::move(kept);
  // Kernels whose inputs just became constant are created again so they can prepack them; the
  // others keep what they packed (created again, every weight was packed twice).
  KernelInit init(g, /*prepack=*/true, p.packs);
  for (int ni : p.order) {
    const auto& in = g.nodes[ni].inputs;
    if (std::none_of(in.begin(), in.end(), [&](int v) { return v != kNoValue && folded[v]; })) continue;
    MS_ASSIGN_OR_RETURN(p.kernels[ni], create_kernel(g.nodes[ni], init));
  }
  return Status::OK();
}

Status create_device_kernels(Program& p) {
  p.device_kernels.clear();
  p.no_device_kernel.clear();
  if (!p.backend) return Status::OK();
  p.device_kernels.resize(p.graph.nodes.size());
  p.no_device_kernel.resize(p.graph.nodes.size());
  if (!p.device_constants) p.device_constants = std::make_unique<DeviceConstants>();
  KernelInit init(p.graph);
  const std::string dev = p.backend->name();
  for (int ni : p.order) {
    const Node& n = p.graph.nodes[ni];
    auto k = p.backend->create_kernel(n, init);
    if (k.ok() && k.value()) {
      p.device_kernels[ni] = std::move(k).value();
    } else if (k.ok()) {
      p.no_device_kernel[ni] = "no " + dev + " kernel for " + n.op_type;
    } else if (k.status().code() == Code::kUnsupported) {
      p.no_device_kernel[ni] = k.status().message();
    } else {
      return LoadError(n.where() + k.status().message());
    }
  }
  return Status::OK();
}

StatusOr<Tensor> upload_constant(const Tensor& host, const Backend& backend) {
  if (!host.on_host() || (host.raw() == nullptr && host.numel() > 0))
    return Internal("a constant " + host.desc() + " has no host bytes to upload");
  std::shared_ptr<Buffer> buf = backend.allocate(host.nbytes());
  if (!buf) return InvalidArgument("out of " + backend.name() + " memory uploading a constant " + host.desc());
  if (host.nbytes()) MS_RETURN_IF_ERROR(backend.upload(host.raw(), buf->data(), host.nbytes()));
  void* data = buf->data();
  return Tensor(host.dtype(), host.shape(), std::move(buf), data, backend.device());
}

StatusOr<const Tensor*> DeviceConstants::get(int value, const Tensor& host, const Backend& backend) {
  std::lock_guard<std::mutex> lk(mu_);
  auto it = uploaded_.find(value);
  if (it != uploaded_.end()) return &it->second;
  MS_ASSIGN_OR_RETURN(Tensor t, upload_constant(host, backend));
  return &uploaded_.emplace(value, std::move(t)).first->second;
}

size_t DeviceConstants::size() const {
  std::lock_guard<std::mutex> lk(mu_);
  return uploaded_.size();
}

namespace {

struct Interval {
  int value;  // value id, or -1 - step index for a step's workspace
  size_t bytes;
  int first, last;  // step indices
  DeviceType device = DeviceType::kCpu;
  size_t offset = 0;
};

// Greedy by size, per device: biggest blocks first, each at the lowest offset that doesn't
// overlap a placed block of the same device whose lifetime intersects its own. Returns the arena
// size of `device`.
size_t assign_offsets(std::vector<Interval>& blocks, DeviceType device) {
  std::vector<Interval*> order;
  for (auto& b : blocks)
    if (b.device == device) order.push_back(&b);
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

// Whether the device kernel `dk` takes node `ni` for these input infos: OK with its inferred
// outputs and workspace in `dctx`, or the reason it stays on the CPU (`why`).
Status try_device(const Node& node, const Kernel& dk, const std::vector<const ValueInfo*>& in, const InferContext& cpu,
                  InferContext& dctx, std::string* why) {
  Status st = check_string_support(node, dk, in, nullptr);
  if (st.ok()) st = dk.infer(dctx);
  if (st.ok() && dctx.deferred()) st = InferContext::refuse("its output shapes depend on values known at run time");
  if (st.ok()) st = check_string_support(node, dk, in, &dctx);
  if (st.code() == Code::kUnsupported) {
    *why = st.message();
    return Status::OK();
  }
  MS_RETURN_IF_ERROR(st.with_context(node.where()));
  for (int o = 0; o < cpu.num_outputs(); ++o) {
    if (node.outputs[o] == kNoValue) continue;
    if (dctx.output(o).dtype != cpu.output(o).dtype || !(dctx.output(o).shape == cpu.output(o).shape))
      return Internal(node.where() + "the device kernel infers output " + std::to_string(o) + " differently (" +
                      dtype_name(dctx.output(o).dtype) + dctx.output(o).shape.str() + " vs " +
                      dtype_name(cpu.output(o).dtype) + cpu.output(o).shape.str() + ")");
  }
  return Status::OK();
}

// Whether `plan` can run as one recorded graph (Plan::graph), and its staging layout.
Status plan_graph(const Program& prog, Plan& plan) {
  auto no = [&](std::string why) {
    plan.placement.no_graph = std::move(why);
    plan.graph = false;
    plan.staged.clear();
    plan.staging_bytes = 0;
    return Status::OK();
  };
  if (!prog.backend) return no("no device");
  if (!plan.uses_device) return no("no node runs on the device");
  for (const ValuePlan& vp : plan.values)
    if ((vp.storage == Storage::kInput || vp.storage == Storage::kOutput) && vp.device != DeviceType::kCpu)
      return no("inputs or outputs live on the device (their addresses change with every call)");
  for (const Step& s : plan.steps) {
    if (s.kind == StepKind::kNode) {
      const Node& node = prog.graph.nodes[s.node];
      if (s.device == DeviceType::kCpu) return no("a node runs on the CPU: " + node.describe());
      for (int v : s.inputs)
        if (v != kNoValue && plan.values[v].device == DeviceType::kCpu && plan.values[v].storage != Storage::kConstant)
          return no("a device kernel reads a host value known only at run time: " + node.describe());
      continue;
    }
    const int host = s.kind == StepKind::kToDevice ? s.inputs[0] : s.outputs[0];
    const Storage want = s.kind == StepKind::kToDevice ? Storage::kInput : Storage::kOutput;
    if (plan.values[host].storage != want || s.sync) return no("a value crosses between host and device mid-run");
    MS_ASSIGN_OR_RETURN(size_t bytes, aligned_bytes(plan.values[host].dtype, plan.values[host].shape));
    if (plan.staged.emplace(host, plan.staging_bytes).second) plan.staging_bytes += bytes;
  }
  plan.graph = true;
  plan.placement.no_graph.clear();
  return Status::OK();
}

}  // namespace

StatusOr<std::shared_ptr<const Plan>> make_plan(const Program& prog, const std::vector<ValueInfo>& inputs,
                                                ThreadPool& pool, const PlanKey& key) {
  const Graph& g = prog.graph;
  const Backend* backend = prog.backend.get();
  const DeviceType dev = backend ? backend->device() : DeviceType::kCpu;
  auto plan = std::make_shared<Plan>();
  plan->key = key;
  plan->values.resize(g.values.size());
  for (DeviceType d : key.input_devices)
    if (d != DeviceType::kCpu && d != dev) return Internal("an input on a device the session does not have");
  if (backend) plan->placement.device = backend->name();
  std::vector<ValueInfo> infos(g.values.size());
  std::vector<bool> known(g.values.size(), false);  // dtype and shape known at plan time

  for (size_t i = 0; i < g.inputs.size(); ++i) {
    int v = g.inputs[i];
    infos[v] = ValueInfo{inputs[i].dtype, inputs[i].shape, nullptr};
    known[v] = true;
    plan->values[v] = ValuePlan{Storage::kInput, inputs[i].dtype, inputs[i].shape};
    if (i < key.input_devices.size()) plan->values[v].device = key.input_devices[i];
    plan->input_shapes.push_back(inputs[i].shape);
  }
  for (auto& [v, t] : g.initializers) {
    // Released weights (no bytes: packed by their readers) are shapes only, never folded over.
    const bool released = t.raw() == nullptr && t.numel() > 0;
    infos[v] = ValueInfo{t.dtype(), t.shape(), released ? nullptr : &t};
    known[v] = true;
    plan->values[v] = ValuePlan{Storage::kConstant, t.dtype(), t.shape(), DeviceType::kCpu, 0, &t};
  }
  std::vector<bool> is_output(g.values.size(), false);
  for (int v : g.outputs) is_output[v] = true;

  std::vector<Interval> blocks;
  std::map<int, size_t> block_of;              // value id -> index in blocks
  std::map<std::pair<int, int>, int> copy_of;  // (value id, device) -> the id of its copy there
  std::map<int, int> to_host_step;             // host copy id -> the kToHost step writing it

  // A new value id: `v`'s bytes on `d` (a copy, or a device output handed back to the host).
  auto add_value = [&](int v, DeviceType d, Storage storage) {
    const int id = static_cast<int>(plan->values.size());
    ValuePlan vp = plan->values[v];
    vp.storage = storage;
    vp.device = d;
    vp.constant = nullptr;
    plan->values.push_back(vp);
    return id;
  };
  auto add_arena_block = [&](int id, int step) -> Status {
    const ValuePlan& vp = plan->values[id];
    MS_ASSIGN_OR_RETURN(size_t bytes, aligned_bytes(vp.dtype, vp.shape));
    block_of[id] = blocks.size();
    blocks.push_back(Interval{id, bytes, step, step, vp.device});
    return Status::OK();
  };
  auto add_copy = [&](int src, int dst, StepKind kind) {
    Step s;
    s.kind = kind;
    s.device = plan->values[dst].device;
    s.inputs = {src};
    s.outputs = {dst};
    const int step = static_cast<int>(plan->steps.size());
    if (block_of.count(src)) blocks[block_of[src]].last = step;
    if (kind == StepKind::kToHost) to_host_step[dst] = step;
    plan->steps.push_back(std::move(s));
    plan->placement.copies += 1;
    return step;
  };
  // The id of value `v` on device `d`: itself where it lives there, else its copy (a constant is
  // uploaded once; anything else is copied by a step added now).
  auto value_on = [&](int v, DeviceType d) -> StatusOr<int> {
    if (plan->values[v].device == d) return v;
    auto key = std::make_pair(v, static_cast<int>(d));
    auto it = copy_of.find(key);
    if (it != copy_of.end()) return it->second;
    const Tensor* host_constant = plan->values[v].constant;  // add_value moves plan->values
    int id;
    if (plan->values[v].storage == Storage::kConstant) {
      if (d == DeviceType::kCpu) return Internal("a device constant read on the host");
      id = add_value(v, d, Storage::kConstant);
      if (plan->folded.count(v)) {  // folded for this plan: uploaded for this plan
        MS_ASSIGN_OR_RETURN(Tensor up, upload_constant(*host_constant, *backend));
        plan->values[id].constant = &(plan->device_folded[id] = std::move(up));
      } else {
        MS_ASSIGN_OR_RETURN(plan->values[id].constant, prog.device_constants->get(v, *host_constant, *backend));
      }
      plan->placement.uploads += 1;
    } else {
      id = add_value(v, d, Storage::kArena);
      const int step = add_copy(v, id, d == DeviceType::kCpu ? StepKind::kToHost : StepKind::kToDevice);
      MS_RETURN_IF_ERROR(add_arena_block(id, step));
    }
    copy_of[key] = id;
    return id;
  };

  for (int ni : prog.order) {
    const Node& node = g.nodes[ni];
    const Kernel& cpu_kernel = *prog.kernels[ni];
    std::vector<const ValueInfo*> in;
    bool inputs_known = true, all_values = true;
    for (int v : node.inputs) {
      in.push_back(v == kNoValue ? nullptr : &infos[v]);
      if (v == kNoValue) continue;
      inputs_known = inputs_known && known[v];
      all_values = all_values && (infos[v].value != nullptr || !cpu_kernel.reads_input_data());
    }
    plan->max_arity = std::max({plan->max_arity, node.inputs.size(), node.outputs.size()});
    bool dynamic = !inputs_known || cpu_kernel.produces_own_outputs();
    InferContext ctx(node, in, pool.threads());
    MS_RETURN_IF_ERROR(check_string_support(node, cpu_kernel, in, nullptr));
    if (!dynamic) {
      MS_RETURN_IF_ERROR(cpu_kernel.infer(ctx).with_context(node.where()));
      dynamic = ctx.deferred();
    }
    if (!dynamic) {
      MS_RETURN_IF_ERROR(check_string_support(node, cpu_kernel, in, &ctx));
      MS_RETURN_IF_ERROR(check_outputs(node, ctx).with_context(node.where()));
    }

    if (!dynamic && all_values) {
      // Every input is known now (shapes of inputs feed Shape, so shape arithmetic folds away).
      std::vector<Tensor> outs;
      MS_RETURN_IF_ERROR(evaluate(node, cpu_kernel, in, pool, ctx, outs).with_context(node.where()));
      for (size_t o = 0; o < outs.size(); ++o) {
        int v = node.outputs[o];
        if (v == kNoValue) continue;
        Tensor& t = plan->folded[v] = std::move(outs[o]);
        infos[v] = ValueInfo{t.dtype(), t.shape(), &t};
        known[v] = true;
        plan->values[v] = ValuePlan{Storage::kConstant, t.dtype(), t.shape(), DeviceType::kCpu, 0, &t};
      }
      continue;
    }

    // Placement: the device when it has a kernel that takes these shapes, else the CPU.
    DeviceType where = DeviceType::kCpu;
    std::string why;
    InferContext dctx(node, in, pool.threads());
    const Kernel* dk = backend ? prog.device_kernels[ni].get() : nullptr;
    if (backend && !dk) {
      why = prog.no_device_kernel[ni];
    } else if (dk && dynamic) {
      why = cpu_kernel.produces_own_outputs() ? "control flow runs on the CPU" : "shapes known only at run time";
    } else if (dk) {
      MS_RETURN_IF_ERROR(try_device(node, *dk, in, ctx, dctx, &why));
      if (why.empty()) where = dev;
    }
    if (backend && where == DeviceType::kCpu)
      plan->placement.fallbacks.push_back(Placement::Fallback{node.describe(), node.op_type, why});
    const Kernel& k = where == DeviceType::kCpu ? cpu_kernel : *dk;
    const size_t workspace = where == DeviceType::kCpu ? ctx.workspace() : dctx.workspace();

    Step st;
    st.node = ni;
    st.dynamic = dynamic;
    st.device = where;
    for (size_t i = 0; i < node.inputs.size(); ++i) {
      const int v = node.inputs[i];
      int id = v;
      if (v != kNoValue) {
        const DeviceType read_on =
            where != DeviceType::kCpu && k.host_input(static_cast<int>(i)) ? DeviceType::kCpu : where;
        MS_ASSIGN_OR_RETURN(id, value_on(v, read_on));
        // Host code reading what a device copied back waits for that copy.
        auto h = to_host_step.find(id);
        if (read_on == DeviceType::kCpu && h != to_host_step.end()) plan->steps[h->second].sync = true;
      }
      st.inputs.push_back(id);
    }
    const int step = static_cast<int>(plan->steps.size());
    if (!dynamic && workspace > 0) {
      blocks.push_back(Interval{-1 - step, (workspace + kAlignment - 1) / kAlignment * kAlignment, step, step, where});
    }
    for (int id : st.inputs)
      if (id != kNoValue && block_of.count(id)) blocks[block_of[id]].last = step;
    std::vector<std::pair<int, int>> hand_back;  // (device id, host output id)
    for (size_t o = 0; o < node.outputs.size(); ++o) {
      const int v = node.outputs[o];
      st.outputs.push_back(v);
      if (v == kNoValue) continue;
      ValuePlan& vp = plan->values[v];
      if (dynamic) {
        vp.storage = Storage::kDynamic;
        continue;
      }
      const ValueInfo& out = where == DeviceType::kCpu ? ctx.output(o) : dctx.output(o);
      if (!Shape::fits(out.shape.rank())) return Unsupported(node.where() + "rank too large");
      infos[v] = ValueInfo{out.dtype, out.shape, nullptr};
      known[v] = true;
      vp.dtype = out.dtype;
      vp.shape = out.shape;
      if (is_output[v] && where != DeviceType::kCpu && key.device_outputs) {
        vp.storage = Storage::kOutput;  // a fresh device buffer per call, handed out as it is
        vp.device = where;
      } else if (is_output[v] && where != DeviceType::kCpu) {
        // A graph output made on the device: computed into the device arena, then copied into
        // the caller's host buffer right after.
        vp.storage = Storage::kOutput;
        const int d = add_value(v, where, Storage::kArena);
        MS_RETURN_IF_ERROR(add_arena_block(d, step));
        copy_of[std::make_pair(v, static_cast<int>(where))] = d;
        st.outputs.back() = d;
        hand_back.emplace_back(d, v);
      } else if (is_output[v]) {
        vp.storage = Storage::kOutput;
      } else if (out.dtype == DType::kString) {
        vp.storage = Storage::kOwned;  // std::string objects never live in the arena
      } else {
        vp.storage = Storage::kArena;
        vp.device = where;
        MS_ASSIGN_OR_RETURN(size_t bytes, aligned_bytes(out.dtype, out.shape));
        const int src = st.inputs.empty() ? kNoValue : st.inputs[0];
        if (o == 0 && k.output_is_input_view() && src != kNoValue && block_of.count(src) &&
            blocks[block_of[src]].bytes == bytes && blocks[block_of[src]].device == where) {
          block_of[v] = block_of[src];  // a view: the same memory, live until both are done
          continue;
        }
        block_of[v] = blocks.size();
        blocks.push_back(Interval{v, bytes, step, step, where});
      }
    }
    if (where == DeviceType::kCpu)
      plan->placement.cpu_nodes += 1;
    else
      plan->placement.device_nodes += 1;
    plan->steps.push_back(std::move(st));
    for (auto [d, host] : hand_back) add_copy(d, host, StepKind::kToHost);
  }
  plan->arena_bytes = assign_offsets(blocks, DeviceType::kCpu);
  if (backend) plan->device_arena_bytes = assign_offsets(blocks, dev);
  plan->uses_device = plan->placement.device_nodes > 0 || plan->placement.copies > 0;
  MS_RETURN_IF_ERROR(plan_graph(prog, *plan));
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
