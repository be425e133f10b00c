// What the oneDNN-backed kernels (dnnl_conv.cc, dnnl_matmul.cc) share. Included only by them:
// it pulls in oneDNN's headers.
#pragma once
#include <omp.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <map>
#include <memory>
#include <mutex>
#include <oneapi/dnnl/dnnl.hpp>
#include <string>
#include <unordered_map>

#include "core/kernels/fused_activation.h"
#include "core/kernels/pack_store.h"
#include "core/parallel/thread_pool.h"
#include "core/status.h"

namespace mserve::dnnl_util {

inline dnnl::engine& cpu_engine() {
  static dnnl::engine eng = [] {
    // Our kernels keep the primitives they use (EntryCache); oneDNN's own cache of up to 1,024
    // more, JIT code included, only grew memory with every new shape.
    dnnl::set_primitive_cache_capacity(16);
    return dnnl::engine(dnnl::engine::kind::cpu, 0);
  }();
  return eng;
}

// One stream per calling thread (a CPU stream is only an execution context).
inline dnnl::stream& thread_stream() {
  thread_local dnnl::stream s(cpu_engine());
  return s;
}

inline size_t align64(size_t n) { return (n + 63) / 64 * 64; }

// Debian builds oneDNN on OpenMP, and a primitive fixes its thread team when it is created:
// the team is set on the calling thread before creating a primitive and before each call.
// Below ~1 MFLOP per thread a team costs more than it saves (measured: a 16-channel 1x1 conv
// on 8x8 took 6.0 us on one thread, 10.8 us on two).
inline int team_size(double flops, int threads) {
  return static_cast<int>(std::max<double>(1.0, std::min<double>(threads, flops / 1e6)));
}

// The primitive a call runs: the planned one, or on a crowded machine (ThreadPool::crowded: a
// worker of the team would start a time slice late and the region's barrier wait for it) its
// one-thread twin, made on first need, where its scratchpad fits in the planned workspace.
template <class Entry, class OneThread>
std::shared_ptr<const Entry> uncrowded(std::shared_ptr<const Entry> planned, OneThread&& one_thread) {
  if (planned->threads <= 1 || !ThreadPool::crowded()) return planned;
  auto solo = one_thread();
  return solo.ok() && solo.value()->bytes <= planned->bytes ? std::move(solo).value() : planned;
}

// An activation as an eltwise post-op: the activation table's oneDNN algorithm with alpha and
// beta its parameters A and B (none: nothing appended; fuse_activation fuses only rows that
// name one).
inline void append_activation(dnnl::post_ops& po, const FusedActivation& act) {
  static const dnnl::algorithm kAlgorithms[] = {dnnl::algorithm::undef,  // kNone
#define MSERVE_ACTIVATION_ALGORITHM(KIND, A_ATTR, A_DEF, B_ATTR, B_DEF, FUSES, RECURRENT, DNNL, Y) \
  dnnl::algorithm::DNNL,
                                                MSERVE_ACTIVATIONS(MSERVE_ACTIVATION_ALGORITHM)
#undef MSERVE_ACTIVATION_ALGORITHM
  };
  const dnnl::algorithm alg = kAlgorithms[static_cast<int>(act.kind)];
  if (alg != dnnl::algorithm::undef) po.append_eltwise(1.0f, alg, act.alpha, act.beta);
}

// Scratchpad in the caller's workspace (so concurrent calls never share one), and the fused
// post-ops: `act`, then (residual) the sum with what the destination holds, then `after`.
inline dnnl::primitive_attr attr_with(const FusedActivation& act, bool residual = false,
                                      const FusedActivation& after = {}) {
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  dnnl::post_ops po;
  append_activation(po, act);
  if (residual) po.append_sum(1.0f);
  append_activation(po, after);
  attr.set_post_ops(po);
  return attr;
}

// Runs a primitive through the C API, which takes its arguments as an array (the C++ API
// builds a hash map per call).
inline dnnl_status_t exec(const dnnl::primitive& p, dnnl_stream_t s, std::initializer_list<dnnl_exec_arg_t> args) {
  return dnnl_primitive_execute(p.get(), s, static_cast<int>(args.size()), args.begin());
}

// A convolution or matmul call: src, packed weights, optional bias (empty memory: none), dst,
// scratchpad.
inline dnnl_status_t exec_weighted(const dnnl::primitive& p, dnnl_stream_t s, const dnnl::memory& src,
                                   const dnnl::memory& weights, const dnnl::memory& bias, const dnnl::memory& dst,
                                   const dnnl::memory& scratch) {
  if (bias)
    return exec(p, s,
                {{DNNL_ARG_SRC, src.get()},
                 {DNNL_ARG_WEIGHTS, weights.get()},
                 {DNNL_ARG_BIAS, bias.get()},
                 {DNNL_ARG_DST, dst.get()},
                 {DNNL_ARG_SCRATCHPAD, scratch.get()}});
  return exec(p, s,
              {{DNNL_ARG_SRC, src.get()},
               {DNNL_ARG_WEIGHTS, weights.get()},
               {DNNL_ARG_DST, dst.get()},
               {DNNL_ARG_SCRATCHPAD, scratch.get()}});
}

// A plain 2-D weights layout (oneDNN's reference GEMM path takes weights as a strided matrix:
// its choice on CPUs without AVX-512) with 64 bytes of padding after each outer row; `desc`
// itself when it is blocked or not 2-D. The GEMM packs the weights it reads on every call,
// walking down their columns: rows whose stride is a multiple of 1 KB (768, 1024, 3072 floats:
// every transformer) fall into a few cache sets and halve its speed (measured on AVX2, one
// thread, weights page-aligned: 128x768x3072 13.7 ms dense vs 6.5 ms padded, 128x768x768 1.78
// vs 1.57 ms; M = 512: 26.3 vs 26.9 ms).
inline dnnl::memory::desc padded_plain(const dnnl::memory::desc& desc) {
  const dnnl_memory_desc_t& d = desc.data;
  if (d.ndims != 2 || d.format_kind != dnnl_blocked || d.format_desc.blocking.inner_nblks != 0) return desc;
  const dnnl_dim_t* st = d.format_desc.blocking.strides;
  const int inner = st[1] == 1 ? 1 : 0, outer = 1 - inner;
  if (st[inner] != 1 || st[outer] != d.dims[inner] || d.dims[0] <= 1) return desc;  // not dense
  const int64_t pad = 64 / static_cast<int64_t>(dnnl::memory::data_type_size(desc.data_type()));
  dnnl::memory::dims strides(2);
  strides[inner] = 1;
  strides[outer] = d.dims[inner] + pad;
  return dnnl::memory::desc(desc.dims(), desc.data_type(), strides);
}

// `from` copied into a new memory of layout `desc` (its padding, if any, zero).
inline dnnl::memory reordered(const dnnl::memory& from, const dnnl::memory::desc& desc) {
  dnnl::memory to(desc, cpu_engine()), src = from;
  size_t dense = dnnl::memory::data_type_size(desc.data_type());
  for (int i = 0; i < desc.data.ndims; ++i) dense *= static_cast<size_t>(desc.data.dims[i]);
  if (desc.get_size() > dense) std::memset(to.get_data_handle(), 0, desc.get_size());
  dnnl::stream s(cpu_engine());
  dnnl::reorder(src, to).execute(s, src, to);
  s.wait();
  return to;
}

// `from` in layout `desc` (weights packed for another primitive): itself when it has it already.
inline dnnl::memory repack(const dnnl::memory& from, const dnnl::memory::desc& desc) {
  return from.get_desc() == desc ? from : reordered(from, desc);
}

// Weights `user` packed into layout `desc`: the bytes `store` holds under `key` when it has them
// (a read-only mapping, which `keep` then holds alive; oneDNN only reads weights), else a new
// copy, which the store is given. Without a store, always a new copy.
inline dnnl::memory packed_weights(const dnnl::memory& user, const dnnl::memory::desc& desc, PackStore* store,
                                   const PackKey& key, std::shared_ptr<const void>& keep) {
  if (store) {
    PackStore::Found found = store->find(key, desc.get_size());
    if (found.data) {
      keep = std::move(found.keep);
      return dnnl::memory(desc, cpu_engine(), const_cast<void*>(found.data));
    }
  }
  dnnl::memory to = reordered(user, desc);
  if (store) store->add(key, to.get_data_handle(), desc.get_size(), std::make_shared<const dnnl::memory>(to));
  return to;
}

// A unique id per planned primitive (never reused), keying the per-thread memory objects.
inline uint64_t next_entry_id() {
  static std::atomic<uint64_t> next{1};
  return next.fetch_add(1, std::memory_order_relaxed);
}

// Memory objects reused by the calls on this thread: one per (primitive id, argument slot),
// re-pointed at each call's buffer. Creating dnnl::memory objects per call allocated ~10 blocks
// per oneDNN call. Bounded: the cache restarts when it holds many primitives.
inline dnnl::memory& thread_memory(uint64_t id, int slot, const dnnl::memory::desc& desc, void* ptr) {
  constexpr int kSlots = 5;
  thread_local std::unordered_map<uint64_t, std::array<dnnl::memory, kSlots>> cache;
  auto it = cache.find(id);
  if (it == cache.end()) {
    if (cache.size() >= 256) cache.clear();
    it = cache.emplace(id, std::array<dnnl::memory, kSlots>{}).first;
  }
  dnnl::memory& m = it->second[slot];
  if (!m)
    m = dnnl::memory(desc, cpu_engine(), ptr);
  else
    m.set_data_handle(ptr);
  return m;
}

// Primitives by shape, made on first use and kept for the most recently used kMax shapes, so
// a model served with ever-changing shapes holds bounded memory (each primitive owns JIT code).
// A shape oneDNN refused is remembered as refused (`why`), so it is not retried per call.
// Thread-safe; an entry stays alive while a caller holds it even if it is dropped meanwhile.
template <class Key, class Entry>
class EntryCache {
 public:
  static constexpr size_t kMax = 64;

  // make() -> StatusOr<std::unique_ptr<Entry>>.
  template <class Make>
  StatusOr<std::shared_ptr<const Entry>> get(const Key& key, Make&& make) const {
    std::lock_guard<std::mutex> lk(mu_);
    auto it = slots_.find(key);
    if (it == slots_.end()) {
      Slot slot;
      auto made = make();
      if (made.ok())
        slot.entry = std::shared_ptr<const Entry>(std::move(made).value());
      else
        slot.why = made.status().message();
      if (slots_.size() >= kMax) evict_oldest();
      it = slots_.emplace(key, std::move(slot)).first;
    }
    it->second.used = ++tick_;
    if (!it->second.entry) return Unsupported(it->second.why);
    return it->second.entry;
  }
  size_t size() const {
    std::lock_guard<std::mutex> lk(mu_);
    return slots_.size();
  }

 private:
  struct Slot {
    std::shared_ptr<const Entry> entry;  // null: refused
    std::string why;
    uint64_t used = 0;
  };
  void evict_oldest() const {
    auto oldest = slots_.begin();
    for (auto it = slots_.begin(); it != slots_.end(); ++it)
      if (it->second.used < oldest->second.used) oldest = it;
    slots_.erase(oldest);
  }
  mutable std::mutex mu_;
  mutable std::map<Key, Slot> slots_;
  mutable uint64_t tick_ = 0;
};

}  // namespace mserve::dnnl_util
