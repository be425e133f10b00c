#include "core/exec/session.h"

#include <malloc.h>

#include <algorithm>
#include <chrono>
#include <cstring>

#include "core/onnx/loader.h"
#include "core/passes/passes.h"

namespace mserve {

struct Session::RunContext {
  std::shared_ptr<Buffer> arena;  // lent by the session for one run (take_arena / give_arena)
  void* views_base = nullptr;     // the arena the views in `values` point into
  std::vector<Tensor> values;     // per value id; constants are set once, arena views per arena
  // The device's stream, handles and arena, for plans that use the device; kept with the
  // context, so the device views in `values` are set once.
  std::unique_ptr<DeviceContext> device;
  std::vector<const Tensor*> in_ptrs;
  std::vector<Tensor*> out_ptrs;
  int runs = 0;               // runs started on this context
  bool graph_ready = false;   // the device holds this context's graph
  bool graph_failed = false;  // recording failed once: this context runs step by step
};

struct Session::CachedPlan {
  std::shared_ptr<const Plan> plan;
  uint64_t last_used = 0;
  std::mutex mu;
  std::vector<std::unique_ptr<RunContext>> idle;  // contexts ready for reuse
};

namespace {

// The string safety net at load time from declared types (graph inputs and outputs,
// initializers); the trial plan and every later plan check inferred types too.
Status check_declared_strings(const Program& p) {
  const Graph& g = p.graph;
  std::vector<ValueInfo> declared(g.values.size());
  for (size_t v = 0; v < g.values.size(); ++v) declared[v].dtype = g.values[v].dtype;
  for (const auto& [v, t] : g.initializers) declared[v].dtype = t.dtype();
  std::vector<std::string> refused;
  for (int ni : p.order) {
    const Node& node = g.nodes[ni];
    const Kernel& k = *p.kernels[ni];
    std::vector<const ValueInfo*> in;
    for (int v : node.inputs) in.push_back(v == kNoValue ? nullptr : &declared[v]);
    Status st = check_string_support(node, k, in, nullptr);
    for (int v : node.outputs)
      if (st.ok() && v != kNoValue && declared[v].dtype == DType::kString && !k.supports_strings())
        st = Unsupported(node.describe() + ": string tensors are not supported by this operator");
    if (!st.ok()) refused.push_back(st.message());
  }
  if (refused.empty()) return Status::OK();
  std::string msg = std::to_string(refused.size()) + " unsupported node(s):";
  for (const auto& r : refused) msg += "\n  " + r;
  return Unsupported(msg);
}

}  // namespace

namespace {

// Weights held once: an initializer that every node reading it has packed into its own form
// (Kernel::packed_constant) keeps its dtype and shape but drops its bytes (freed with the last
// view: the loader's protobuf bytes, or an owned copy).
void release_packed_constants(Program& p) {
  Graph& g = p.graph;
  std::unordered_map<int, bool> needed;
  for (const auto& [v, t] : g.initializers) needed[v] = t.dtype() == DType::kString || t.raw() == nullptr;
  for (int v : g.outputs)
    if (needed.count(v)) needed[v] = true;
  for (int ni : p.order) {
    const Node& n = g.nodes[ni];
    const Kernel* k = p.kernels[ni].get();
    if (!k) continue;  // folded: it never runs
    const Kernel* dk = p.device_kernels.empty() ? nullptr : p.device_kernels[ni].get();
    for (size_t i = 0; i < n.inputs.size(); ++i) {
      auto it = needed.find(n.inputs[i]);
      // The device's kernel uploads what it reads from the original at plan time.
      if (it != needed.end() && (!k->packed_constant(static_cast<int>(i)) || dk)) it->second = true;
    }
  }
  for (const auto& [v, need] : needed) {
    if (need) continue;
    Tensor& t = g.initializers.at(v);
    t = Tensor(t.dtype(), t.shape(), nullptr);
  }
}

}  // namespace

StatusOr<std::shared_ptr<Session>> Session::create(Graph graph, const SessionOptions& opts) {
  std::shared_ptr<Session> s(new Session());
  s->opts_ = opts;
  s->pool_ = std::make_unique<ThreadPool>(opts.threads > 0 ? opts.threads : ThreadPool::default_threads());
  Program& p = s->prog_;
  p.graph = std::move(graph);
  p.backend = opts.backend;
  p.packs = opts.packs;
  for (int v : p.graph.inputs) {
    const Value& val = p.graph.values[v];
    if (val.dtype == DType::kUndefined && !opts.subgraph)
      return LoadError("graph input '" + val.name + "' has no element type");
    if (val.has_shape && !Shape::fits(val.dims.size()))
      return Unsupported("graph input '" + val.name + "' has rank " + std::to_string(val.dims.size()) + "; at most " +
                         std::to_string(Shape::kMaxRank) + " is supported");
  }
  if (opts.optimize) MS_RETURN_IF_ERROR(optimize_graph(p.graph));
  MS_ASSIGN_OR_RETURN(p.order, topological_order(p.graph));
  // Without a device: weights drop their bytes as soon as their readers packed them (a device
  // kernel uploads what it reads from the originals, after this).
  MS_RETURN_IF_ERROR(create_kernels(p, /*release_packed=*/!p.backend));
  if (opts.optimize) MS_RETURN_IF_ERROR(fold_constants(p, *s->pool_));
  MS_RETURN_IF_ERROR(create_device_kernels(p));
  release_packed_constants(p);
  MS_RETURN_IF_ERROR(check_declared_strings(p));
  for (int v : p.graph.inputs) s->signature_.inputs.push_back(p.graph.values[v]);
  for (int v : p.graph.outputs) s->signature_.outputs.push_back(p.graph.values[v]);

  // Trial plan with every symbolic dimension set to 1: catches unsupported dtypes and attribute
  // combinations now rather than at the first predict. Other failures are left for run time,
  // since the real shapes may well differ.
  bool static_known = !opts.subgraph;
  std::vector<Tensor> probe;
  std::vector<std::shared_ptr<Buffer>> keep;
  for (int v : p.graph.inputs) {
    const Value& val = p.graph.values[v];
    if (!val.has_shape) {
      static_known = false;
      break;
    }
    Shape sh;
    for (const Dim& d : val.dims) sh.push_back(d.known() ? d.value : 1);
    auto bytes = aligned_bytes(val.dtype, sh);
    if (!bytes.ok() || bytes.value() > (64u << 20)) {
      static_known = false;
      break;
    }
    probe.emplace_back(val.dtype, sh, nullptr);
  }
  if (static_known) {
    std::vector<ValueInfo> infos;
    for (const Tensor& t : probe) infos.push_back(ValueInfo{t.dtype(), t.shape(), nullptr});
    auto plan = make_plan(p, infos, *s->pool_);
    if (!plan.ok() && plan.status().code() == Code::kUnsupported) return plan.status();
    if (plan.ok()) s->note_placement(*plan.value());
  }
  // What loading freed inside the heap (the parse, weights copied then packed, layouts replaced)
  // goes back to the system now rather than whenever the heap's top is free.
#ifdef __GLIBC__
  if (!opts.subgraph) malloc_trim(0);
#endif
  return s;
}

StatusOr<std::shared_ptr<Session>> Session::load_file(const std::string& path, const SessionOptions& opts) {
  SessionOptions o = opts;
  std::shared_ptr<PackCache> cache;
  if (!opts.pack_cache.empty()) {
    const size_t slash = path.rfind('/');
    cache = PackCache::open(opts.pack_cache, slash == std::string::npos ? path : path.substr(slash + 1));
    o.packs = cache.get();
  }
  MS_ASSIGN_OR_RETURN(Graph g, load_onnx_file(path, o.packs));
  auto s = create(std::move(g), o);
  if (!s.ok()) return s.status().with_context("'" + path + "': ");
  if (cache) {
    (void)cache->save();  // a cache that cannot be written is reported, never a load error
    Session& session = *s.value();
    session.pack_cache_ = cache->report();
    session.opts_.packs = session.prog_.packs = nullptr;
  }
  return s;
}

StatusOr<std::shared_ptr<Session>> Session::load_bytes(const void* data, size_t size, const SessionOptions& opts,
                                                       const std::string& base_dir) {
  MS_ASSIGN_OR_RETURN(Graph g, load_onnx_bytes(data, size, base_dir));
  return create(std::move(g), opts);
}

Session::~Session() = default;

void Session::note_placement(const Plan& plan) const {
  auto p = std::make_shared<const Placement>(plan.placement);
  std::lock_guard<std::mutex> lk(cache_mu_);
  placement_ = std::move(p);
}

std::shared_ptr<const Placement> Session::placement() const {
  std::lock_guard<std::mutex> lk(cache_mu_);
  return placement_;
}

size_t Session::cached_plans() const {
  std::lock_guard<std::mutex> lk(cache_mu_);
  return cache_.size();
}

Status Session::validate(const std::vector<Tensor>& inputs) const {
  const Graph& g = prog_.graph;
  if (inputs.size() != g.inputs.size())
    return InvalidArgument("the model takes " + std::to_string(g.inputs.size()) + " input(s), got " +
                           std::to_string(inputs.size()));
  for (size_t i = 0; i < inputs.size(); ++i) {
    const Value& v = g.values[g.inputs[i]];
    const Tensor& t = inputs[i];
    if (!t.on_host() && (!prog_.backend || t.device() != prog_.backend->device() || t.dtype() == DType::kString))
      return InvalidArgument("input '" + v.name + "': a tensor on device '" + device_name(t.device()) +
                             "' given to a model on '" + device() + "'");
    if (v.dtype != DType::kUndefined && t.dtype() != v.dtype)
      return InvalidArgument("input '" + v.name + "': expected dtype " + dtype_name(v.dtype) + ", got " +
                             dtype_name(t.dtype()));
    if (!v.has_shape) continue;
    if (t.rank() != static_cast<int>(v.dims.size()))
      return InvalidArgument("input '" + v.name + "': expected rank " + std::to_string(v.dims.size()) + ", got rank " +
                             std::to_string(t.rank()) + " (shape " + t.shape().str() + ")");
    for (int d = 0; d < t.rank(); ++d)
      if (v.dims[d].known() && v.dims[d].value != t.dim(d))
        return InvalidArgument("input '" + v.name + "': dimension " + std::to_string(d) + " must be " +
                               std::to_string(v.dims[d].value) + ", got " + std::to_string(t.dim(d)) + " (shape " +
                               t.shape().str() + ")");
  }
  return Status::OK();
}

StatusOr<std::shared_ptr<Session::CachedPlan>> Session::plan_for(const std::vector<Tensor>& inputs,
                                                                 const PlanKey& plan_key) const {
  {
    std::lock_guard<std::mutex> lk(cache_mu_);
    for (auto& c : cache_) {
      const auto& key = c->plan->input_shapes;
      bool same = c->plan->key == plan_key;
      for (size_t i = 0; i < inputs.size() && same; ++i) same = key[i] == inputs[i].shape();
      if (same) {
        c->last_used = ++tick_;
        return c;
      }
    }
  }
  // Plan outside the lock: planning may fold constants and take a while.
  std::vector<ValueInfo> infos;
  for (const Tensor& t : inputs) infos.push_back(ValueInfo{t.dtype(), t.shape(), nullptr});
  MS_ASSIGN_OR_RETURN(auto plan, make_plan(prog_, infos, *pool_, plan_key));
  auto c = std::make_shared<CachedPlan>();
  c->plan = std::move(plan);
  auto placed = std::make_shared<const Placement>(c->plan->placement);
  std::lock_guard<std::mutex> lk(cache_mu_);
  placement_ = std::move(placed);
  c->last_used = ++tick_;
  if (cache_.size() >= std::max<size_t>(opts_.plan_cache_size, 1)) {
    // Evict the least recently used; runs still holding it finish undisturbed.
    auto lru =
        std::min_element(cache_.begin(), cache_.end(), [](auto& a, auto& b) { return a->last_used < b->last_used; });
    cache_.erase(lru);
  }
  cache_.push_back(c);
  return c;
}

Status Session::run(const std::vector<Tensor>& inputs, std::vector<Tensor>* outputs, ThreadPool* pool,
                    const RunOptions& options) const {
  MS_RETURN_IF_ERROR(validate(inputs));
  PlanKey key;
  key.device_outputs = options.device_outputs && prog_.backend;
  for (const Tensor& t : inputs)
    if (!t.on_host()) key.input_devices.assign(inputs.size(), DeviceType::kCpu);
  if (!key.input_devices.empty())
    for (size_t i = 0; i < inputs.size(); ++i) key.input_devices[i] = inputs[i].device();
  MS_ASSIGN_OR_RETURN(auto cached, plan_for(inputs, key));
  const Plan& plan = *cached->plan;
  std::unique_ptr<RunContext> rc;
  {
    std::lock_guard<std::mutex> lk(cached->mu);
    if (!cached->idle.empty()) {
      rc = std::move(cached->idle.back());
      cached->idle.pop_back();
    }
  }
  if (!rc) {
    rc = std::make_unique<RunContext>();
    rc->values.resize(plan.values.size());
    for (size_t v = 0; v < plan.values.size(); ++v)
      if (plan.values[v].storage == Storage::kConstant) rc->values[v] = *plan.values[v].constant;
    rc->in_ptrs.resize(plan.max_arity);
    rc->out_ptrs.resize(plan.max_arity);
    if (plan.uses_device) {
      MS_ASSIGN_OR_RETURN(rc->device, prog_.backend->new_context());
      MS_ASSIGN_OR_RETURN(void* dbase, rc->device->arena(plan.device_arena_bytes));
      for (size_t v = 0; v < plan.values.size(); ++v) {
        const ValuePlan& vp = plan.values[v];
        if (vp.storage == Storage::kArena && vp.device != DeviceType::kCpu)
          rc->values[v] = Tensor(vp.dtype, vp.shape, static_cast<char*>(dbase) + vp.offset, vp.device);
      }
    }
  }
  rc->arena = take_arena(plan.arena_bytes);
  if (!rc->arena)
    return InvalidArgument("out of memory: the plan needs " + std::to_string(plan.arena_bytes) + " bytes of scratch");
  if (rc->views_base != rc->arena->data()) {  // point the intermediates into this arena
    char* base = static_cast<char*>(rc->arena->data());
    for (size_t v = 0; v < plan.values.size(); ++v) {
      const ValuePlan& vp = plan.values[v];
      if (vp.storage == Storage::kArena && vp.device == DeviceType::kCpu)
        rc->values[v] = Tensor(vp.dtype, vp.shape, base + vp.offset);
    }
    rc->views_base = rc->arena->data();
  }
  Status st = execute(plan, *rc, inputs, outputs, pool ? *pool : *pool_);
  if (!st.ok() && rc->device) {
    // Nothing queued on the device may still use the arenas when they are handed on.
    Status idle = rc->device->synchronize();
    if (!idle.ok()) st = st.with_context(idle.message() + "; ");
  }
  give_arena(std::move(rc->arena));
  // Drop per-call references (inputs, outputs, dynamic values) before the context is reused.
  for (size_t v = 0; v < plan.values.size(); ++v) {
    Storage s = plan.values[v].storage;
    if (s == Storage::kInput || s == Storage::kOutput || s == Storage::kDynamic || s == Storage::kOwned)
      rc->values[v] = Tensor();
  }
  std::lock_guard<std::mutex> lk(cached->mu);
  cached->idle.push_back(std::move(rc));
  return st;
}

Status Session::execute(const Plan& plan, RunContext& rc, const std::vector<Tensor>& inputs,
                        std::vector<Tensor>* outputs, ThreadPool& pool) const {
  const Graph& g = prog_.graph;
  for (size_t i = 0; i < inputs.size(); ++i) rc.values[g.inputs[i]] = inputs[i];
  // The first run goes step by step (algorithm choices, weights uploaded by kernels, modules
  // loaded); from the second on, a graph plan is recorded once and replayed.
  const bool graphed = plan.graph && opts_.graphs && rc.device && rc.device->can_capture() && !rc.graph_failed;
  if (graphed && rc.runs++ > 0) return execute_graph(plan, rc, inputs, outputs, &pool);
  char* base = static_cast<char*>(rc.arena->data());
  char* device_base = nullptr;
  if (plan.uses_device) {
    MS_ASSIGN_OR_RETURN(void* d, rc.device->arena(plan.device_arena_bytes));
    device_base = static_cast<char*>(d);
  }
  for (const Step& step : plan.steps) {
    if (step.kind != StepKind::kNode) {
      const Tensor& src = rc.values[step.inputs[0]];
      Tensor& dst = rc.values[step.outputs[0]];
      if (plan.values[step.outputs[0]].storage == Storage::kOutput) {
        MS_ASSIGN_OR_RETURN(dst, Tensor::empty(src.dtype(), src.shape()));
      }
      if (src.nbytes() == 0) continue;
      if (step.kind == StepKind::kToDevice) {
        MS_RETURN_IF_ERROR(rc.device->copy_to_device(src.raw(), dst.raw(), src.nbytes()));
      } else {
        MS_RETURN_IF_ERROR(rc.device->copy_to_host(src.raw(), dst.raw(), src.nbytes()));
        if (step.sync) MS_RETURN_IF_ERROR(rc.device->synchronize());
      }
      continue;
    }
    const Node& node = g.nodes[step.node];
    const bool on_device = step.device != DeviceType::kCpu;
    const Kernel& k = on_device ? *prog_.device_kernels[step.node] : *prog_.kernels[step.node];
    for (size_t i = 0; i < step.inputs.size(); ++i)
      rc.in_ptrs[i] = step.inputs[i] == kNoValue ? nullptr : &rc.values[step.inputs[i]];
    void* ws = (on_device ? device_base : base) + step.workspace_offset;
    Tensor dyn_ws;
    if (step.dynamic && k.produces_own_outputs()) {
      for (int v : step.outputs)
        if (v != kNoValue) rc.values[v] = Tensor();
    } else if (step.dynamic) {
      // Shapes known only now: infer with every input value visible, then allocate.
      std::vector<ValueInfo> infos(step.inputs.size());
      std::vector<const ValueInfo*> ptrs(step.inputs.size(), nullptr);
      for (size_t i = 0; i < step.inputs.size(); ++i) {
        if (!rc.in_ptrs[i]) continue;
        const Tensor& t = *rc.in_ptrs[i];
        infos[i] = ValueInfo{t.dtype(), t.shape(), &t};
        ptrs[i] = &infos[i];
      }
      InferContext ctx(node, ptrs, pool.threads());
      MS_RETURN_IF_ERROR(check_string_support(node, k, ptrs, nullptr));
      MS_RETURN_IF_ERROR(k.infer(ctx).with_context(node.where()));
      MS_RETURN_IF_ERROR(check_string_support(node, k, ptrs, &ctx));
      for (size_t o = 0; o < step.outputs.size(); ++o) {
        if (step.outputs[o] == kNoValue) continue;
        MS_ASSIGN_OR_RETURN(rc.values[step.outputs[o]], Tensor::empty(ctx.output(o).dtype, ctx.output(o).shape));
      }
      MS_ASSIGN_OR_RETURN(dyn_ws, Tensor::empty(DType::kUInt8, Shape{static_cast<int64_t>(ctx.workspace())}));
      ws = dyn_ws.raw();
    } else {
      for (int v : step.outputs) {
        if (v == kNoValue) continue;
        const Storage storage = plan.values[v].storage;
        if (storage != Storage::kOutput && storage != Storage::kOwned) continue;
        if (plan.values[v].device != DeviceType::kCpu) {  // handed out on the device: its own buffer
          MS_ASSIGN_OR_RETURN(size_t bytes, aligned_bytes(plan.values[v].dtype, plan.values[v].shape));
          std::shared_ptr<Buffer> buf = prog_.backend->allocate(bytes);
          if (!buf)
            return InvalidArgument("out of " + device() + " memory for an output of " + std::to_string(bytes) +
                                   " bytes");
          void* data = buf->data();
          rc.values[v] =
              Tensor(plan.values[v].dtype, plan.values[v].shape, std::move(buf), data, plan.values[v].device);
          continue;
        }
        MS_ASSIGN_OR_RETURN(rc.values[v], Tensor::empty(plan.values[v].dtype, plan.values[v].shape));
      }
    }
    for (size_t o = 0; o < step.outputs.size(); ++o)
      rc.out_ptrs[o] = step.outputs[o] == kNoValue ? nullptr : &rc.values[step.outputs[o]];
    ComputeContext cc(rc.in_ptrs.data(), static_cast<int>(step.inputs.size()), rc.out_ptrs.data(),
                      static_cast<int>(step.outputs.size()), ws, &pool, on_device ? rc.device.get() : nullptr);
    const bool timed = profiling_.load(std::memory_order_relaxed);
    const auto t0 = timed ? std::chrono::steady_clock::now() : std::chrono::steady_clock::time_point();
    Status st = k.compute(cc);
    // (A device step's time is its launch; the device's own time shows in the final sync.)
    if (timed) add_op_time(node.op_type, std::chrono::steady_clock::now() - t0);
    if (!st.ok()) return st.with_context(node.where());  // where() allocates: only on error
    if (step.dynamic && k.produces_own_outputs())
      for (size_t o = 0; o < step.outputs.size(); ++o)
        if (step.outputs[o] != kNoValue && !rc.values[step.outputs[o]].defined())
          return Internal(node.where() + "produced no output " + std::to_string(o));
  }
  // One wait for the device at the end: the outputs' copies back to the host are in.
  if (plan.uses_device) MS_RETURN_IF_ERROR(rc.device->synchronize());
  return collect_outputs(plan, rc, nullptr, outputs);
}

Status Session::enqueue_graph(const Plan& plan, RunContext& rc, char* stage, ThreadPool* pool) const {
  const Graph& g = prog_.graph;
  MS_ASSIGN_OR_RETURN(void* d, rc.device->arena(plan.device_arena_bytes));
  char* device_base = static_cast<char*>(d);
  for (const Step& step : plan.steps) {
    if (step.kind == StepKind::kToDevice) {
      const Tensor& dst = rc.values[step.outputs[0]];
      if (dst.nbytes())
        MS_RETURN_IF_ERROR(rc.device->copy_to_device(stage + plan.staged.at(step.inputs[0]), dst.raw(), dst.nbytes()));
      continue;
    }
    if (step.kind == StepKind::kToHost) {
      const Tensor& src = rc.values[step.inputs[0]];
      if (src.nbytes())
        MS_RETURN_IF_ERROR(rc.device->copy_to_host(src.raw(), stage + plan.staged.at(step.outputs[0]), src.nbytes()));
      continue;
    }
    const Node& node = g.nodes[step.node];
    const Kernel& k = *prog_.device_kernels[step.node];
    for (size_t i = 0; i < step.inputs.size(); ++i)
      rc.in_ptrs[i] = step.inputs[i] == kNoValue ? nullptr : &rc.values[step.inputs[i]];
    for (size_t o = 0; o < step.outputs.size(); ++o)
      rc.out_ptrs[o] = step.outputs[o] == kNoValue ? nullptr : &rc.values[step.outputs[o]];
    ComputeContext cc(rc.in_ptrs.data(), static_cast<int>(step.inputs.size()), rc.out_ptrs.data(),
                      static_cast<int>(step.outputs.size()), device_base + step.workspace_offset, pool,
                      rc.device.get());
    Status st = k.compute(cc);
    if (!st.ok()) return st.with_context(node.where());
  }
  return Status::OK();
}

Status Session::execute_graph(const Plan& plan, RunContext& rc, const std::vector<Tensor>& inputs,
                              std::vector<Tensor>* outputs, ThreadPool* pool) const {
  const Graph& g = prog_.graph;
  MS_ASSIGN_OR_RETURN(void* s, rc.device->staging(plan.staging_bytes));
  char* stage = static_cast<char*>(s);
  for (size_t i = 0; i < inputs.size(); ++i) {
    auto it = plan.staged.find(g.inputs[i]);
    if (it != plan.staged.end() && inputs[i].nbytes())
      std::memcpy(stage + it->second, inputs[i].raw(), inputs[i].nbytes());
  }
  if (!rc.graph_ready) {
    // The recorded work refers only to this context, its plan and the session (the inputs are
    // read from staging), so the graph stays valid for every later run of the context.
    bool ran = false;
    Status st =
        rc.device->capture([this, &plan, &rc, stage, pool] { return enqueue_graph(plan, rc, stage, pool); }, &ran);
    if (!st.ok()) {
      // Not recordable after all (a library call that refuses capture): step by step from now on.
      rc.graph_failed = true;
      MS_RETURN_IF_ERROR(rc.device->synchronize());
      return execute(plan, rc, inputs, outputs, *pool);
    }
    rc.graph_ready = true;
    if (!ran) MS_RETURN_IF_ERROR(rc.device->replay());
  } else {
    MS_RETURN_IF_ERROR(rc.device->replay());
  }
  MS_RETURN_IF_ERROR(rc.device->synchronize());
  return collect_outputs(plan, rc, stage, outputs);
}

Status Session::collect_outputs(const Plan& plan, RunContext& rc, const char* stage,
                                std::vector<Tensor>* outputs) const {
  const Graph& g = prog_.graph;
  outputs->clear();
  for (size_t o = 0; o < g.outputs.size(); ++o) {
    const int v = g.outputs[o];
    const ValuePlan& vp = plan.values[v];
    const auto first = std::find(g.outputs.begin(), g.outputs.end(), v) - g.outputs.begin();
    if (static_cast<size_t>(first) < o) {
      // The same value listed twice as a graph output: each caller-owned array gets its bytes
      // (a device tensor is shared: its bytes are never written by the caller's host code).
      if (!(*outputs)[first].on_host()) {
        outputs->push_back((*outputs)[first]);
        continue;
      }
      MS_ASSIGN_OR_RETURN(Tensor copy, (*outputs)[first].clone());
      outputs->push_back(std::move(copy));
    } else if (stage && vp.storage == Storage::kOutput) {
      MS_ASSIGN_OR_RETURN(Tensor out, Tensor::empty(vp.dtype, vp.shape));
      if (out.nbytes()) std::memcpy(out.raw(), stage + plan.staged.at(v), out.nbytes());
      outputs->push_back(std::move(out));
    } else if (vp.storage == Storage::kOutput || vp.storage == Storage::kDynamic) {
      outputs->push_back(std::move(rc.values[v]));
    } else {
      // A graph output that is an input or a constant: hand out a copy the caller may own.
      const Tensor& src = vp.storage == Storage::kInput ? rc.values[v] : *vp.constant;
      if (!src.on_host()) {  // a device input handed back: shared, as above
        outputs->push_back(src);
        continue;
      }
      MS_ASSIGN_OR_RETURN(Tensor copy, src.clone());
      outputs->push_back(std::move(copy));
    }
  }
  return Status::OK();
}

void Session::set_profiling(bool on) {
  std::lock_guard<std::mutex> lk(profile_mu_);
  if (on) profile_.clear();
  profiling_.store(on);
}

std::vector<Session::OpTime> Session::profile() const {
  std::lock_guard<std::mutex> lk(profile_mu_);
  return profile_;
}

void Session::add_op_time(const std::string& op, std::chrono::steady_clock::duration d) const {
  std::lock_guard<std::mutex> lk(profile_mu_);
  auto it = std::find_if(profile_.begin(), profile_.end(), [&](const OpTime& t) { return t.op_type == op; });
  if (it == profile_.end()) it = profile_.insert(profile_.end(), OpTime{op, 0, 0});
  it->calls += 1;
  it->nanos += std::chrono::duration_cast<std::chrono::nanoseconds>(d).count();
}

std::shared_ptr<Buffer> Session::take_arena(size_t bytes) const {
  {
    std::lock_guard<std::mutex> lk(arena_mu_);
    // The smallest spare that fits; a too-small one is dropped for a bigger allocation.
    auto best = spare_arenas_.end();
    for (auto it = spare_arenas_.begin(); it != spare_arenas_.end(); ++it)
      if ((*it)->size() >= bytes && (best == spare_arenas_.end() || (*it)->size() < (*best)->size())) best = it;
    if (best != spare_arenas_.end()) {
      auto a = std::move(*best);
      spare_arenas_.erase(best);
      return a;
    }
    if (!spare_arenas_.empty()) spare_arenas_.erase(spare_arenas_.begin());
  }
  arena_allocations_.fetch_add(1);
  return Buffer::allocate(bytes);
}

void Session::give_arena(std::shared_ptr<Buffer> arena) const {
  if (!arena) return;
  std::lock_guard<std::mutex> lk(arena_mu_);
  spare_arenas_.push_back(std::move(arena));
  // As many spares as runs have gone on at once, up to 8: drop the smallest beyond that.
  if (spare_arenas_.size() > 8)
    spare_arenas_.erase(std::min_element(spare_arenas_.begin(), spare_arenas_.end(),
                                         [](const auto& a, const auto& b) { return a->size() < b->size(); }));
}

}  // namespace mserve
