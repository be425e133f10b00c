#include "core/kernels/dnnl_matmul.h"

#include <array>
#include <cstdio>
#include <vector>

#include "core/kernels/dnnl_common.h"

namespace mserve {

using dnnl::memory;
using dnnl_util::cpu_engine;
using tag = dnnl::memory::format_tag;
constexpr auto f32 = dnnl::memory::data_type::f32;
using dt = dnnl::memory::data_type;

struct DnnlMatMul::Impl {
  int64_t K = 0, N = 0;
  dt x_t = f32, w_t = f32, y_t = f32;
  FusedActivation act;
  memory bias;  // [1, N], or empty
  // Weights in the nominal layout (make), then in the first primitive's (make_entry); both
  // written under the entry cache's lock.
  mutable memory packed;
  mutable bool first_entry = true;
  std::shared_ptr<const void> packed_keep;  // what holds `packed` when a PackStore had it
  struct Entry {
    dnnl::matmul mm;
    memory::desc x, y, scratch;
    memory weights;  // `packed`, or a copy in the layout this M needs
    size_t bytes = 0;
    int threads = 1;
    uint64_t id = dnnl_util::next_entry_id();
  };
  dnnl_util::EntryCache<std::array<int64_t, 2>, Entry> entries;  // (M, threads)

  dnnl::matmul::primitive_desc describe(int64_t M, const memory::desc& w) const {
    return dnnl::matmul::primitive_desc(
        dnnl::matmul::desc(memory::desc({M, K}, x_t, tag::ab), w, bias ? bias.get_desc() : memory::desc(),
                           memory::desc({M, N}, y_t, tag::ab)),
        dnnl_util::attr_with(act), cpu_engine());
  }

  // The primitive for M rows with the weights layout oneDNN picks, padded where it is plain
  // (dnnl_util::padded_plain).
  dnnl::matmul::primitive_desc plan(int64_t M) const {
    auto pd = describe(M, memory::desc({K, N}, w_t, tag::any));
    const memory::desc padded = dnnl_util::padded_plain(pd.weights_desc());
    if (padded == pd.weights_desc()) return pd;
    try {
      return describe(M, padded);
    } catch (const dnnl::error&) {
      return pd;
    }
  }

  StatusOr<std::unique_ptr<Entry>> make_entry(int64_t M, int threads) const {
    // Below ~128k multiply-adds a oneDNN call's fixed cost (memory objects, the call itself)
    // exceeds what its kernel saves over Eigen (measured, one thread: 12x32x96 3.6 us on Eigen,
    // 4.3 on oneDNN; 192x32x96 12.1 vs 10.1).
    const double macs = static_cast<double>(M) * K * N;
    if (macs < kMinMacs) return Unsupported("oneDNN matmul: too small to pay off");
    const int team = dnnl_util::team_size(2 * macs, threads);
    omp_set_num_threads(team);
    auto e = std::make_unique<Entry>();
    try {
      auto pd = plan(M);
      e->mm = dnnl::matmul(pd);
      e->x = pd.src_desc();
      e->y = pd.dst_desc();
      e->scratch = pd.scratchpad_desc();
      e->weights = dnnl_util::repack(packed, pd.weights_desc());
      // The first primitive that wants another layout than the nominal packing's takes its place,
      // so the two are not both held (not when the store holds the nominal copy).
      if (first_entry && !packed_keep && e->weights.get_data_handle() != packed.get_data_handle()) packed = e->weights;
      first_entry = false;
      e->bytes = dnnl_util::align64(e->scratch.get_size());
      e->threads = team;
    } catch (const dnnl::error& err) {
      return Unsupported(std::string("oneDNN matmul: ") + err.what());
    }
    return e;
  }

  StatusOr<std::shared_ptr<const Entry>> entry(int64_t M, int threads) const {
    return entries.get({M, threads}, [&] { return make_entry(M, threads); });
  }
};

DnnlMatMul::DnnlMatMul(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
DnnlMatMul::~DnnlMatMul() = default;
int64_t DnnlMatMul::K() const { return impl_->K; }
int64_t DnnlMatMul::N() const { return impl_->N; }

// Packs w ([K, N], or [N, K] when trans_w, of impl's weight type) for a nominal 64 rows: oneDNN's
// weight layout follows K, N and the ISA, so other row counts normally reuse this copy.
std::unique_ptr<DnnlMatMul> DnnlMatMul::make(std::unique_ptr<Impl> impl, const void* w, bool trans_w,
                                             PackStore* store) {
  const int64_t K = impl->K, N = impl->N;
  try {
    auto& eng = cpu_engine();
    omp_set_num_threads(1);  // packing is a one-off copy
    auto pd = impl->plan(64);
    memory user(memory::desc({K, N}, impl->w_t, trans_w ? tag::ba : tag::ab), eng, const_cast<void*>(w));
    PackKey key;
    if (store) {
      const memory::desc& wd = pd.weights_desc();
      const int64_t shape[5] = {K, N, trans_w, static_cast<int64_t>(impl->w_t),
                                static_cast<int64_t>(wd.get_size())};  // layouts differ in size
      const int32_t act[2] = {static_cast<int32_t>(impl->act.kind), impl->bias ? 1 : 0};
      PackKeyBuilder b("dnnl_matmul");
      b.pod(shape).pod(act).add(&impl->act.alpha, sizeof(float)).add(&impl->act.beta, sizeof(float));
      key = b.add(w, user.get_desc().get_size()).key();
    }
    impl->packed = dnnl_util::packed_weights(user, pd.weights_desc(), store, key, impl->packed_keep);
  } catch (const dnnl::error&) {
    return nullptr;
  }
  return std::unique_ptr<DnnlMatMul>(new DnnlMatMul(std::move(impl)));
}

std::unique_ptr<DnnlMatMul> DnnlMatMul::create(int64_t K, int64_t N, const float* w, bool trans_w, const float* bias,
                                               const FusedActivation& act, PackStore* store) {
  if (K <= 0 || N <= 0) return nullptr;
  auto impl = std::make_unique<Impl>();
  impl->K = K;
  impl->N = N;
  impl->act = act;
  if (bias) {
    try {
      impl->bias = memory(memory::desc({1, N}, f32, tag::ab), cpu_engine());
    } catch (const dnnl::error&) {
      return nullptr;
    }
    std::copy(bias, bias + N, static_cast<float*>(impl->bias.get_data_handle()));
  }
  return make(std::move(impl), w, trans_w, store);
}

bool DnnlMatMul::has_vnni() {
  // The cpu_isa values are bit sets: 0x40 is AVX512-VNNI (set in avx512_core_vnni, _bf16, _amx).
  // avx2_vnni is left out: not every int8 kernel of this oneDNN uses its vpdpbusd.
  static const bool vnni = (static_cast<unsigned>(dnnl::get_effective_cpu_isa()) & 0x40u) != 0;
  return vnni;
}

std::string DnnlMatMul::packing_environment() {
  const dnnl_version_t* v = dnnl::version();
  char isa[32];
  std::snprintf(isa, sizeof isa, "%x", static_cast<unsigned>(dnnl::get_effective_cpu_isa()));
  return "oneDNN " + std::to_string(v->major) + "." + std::to_string(v->minor) + "." + std::to_string(v->patch) + " " +
         v->hash + ", isa 0x" + isa;
}

std::unique_ptr<DnnlMatMul> DnnlMatMul::create_u8s8(int64_t K, int64_t N, const int8_t* w, PackStore* store) {
  if (K <= 0 || N <= 0) return nullptr;
  auto impl = std::make_unique<Impl>();
  impl->K = K;
  impl->N = N;
  impl->x_t = dt::u8;
  impl->w_t = dt::s8;
  impl->y_t = dt::s32;
  return make(std::move(impl), w, false, store);
}

StatusOr<size_t> DnnlMatMul::prepare(int64_t M, int threads) const {
  MS_ASSIGN_OR_RETURN(auto e, impl_->entry(M, threads));
  return e->bytes;
}

Status DnnlMatMul::run(const float* x, float* y, int64_t M, void* workspace, int threads) const {
  if (impl_->x_t != f32) return Internal("DnnlMatMul::run on int8 weights");
  return run_raw(x, y, M, workspace, threads);
}

Status DnnlMatMul::run_u8s8(const uint8_t* x, int32_t* y, int64_t M, void* workspace, int threads) const {
  if (impl_->x_t != dt::u8) return Internal("DnnlMatMul::run_u8s8 on float32 weights");
  return run_raw(x, y, M, workspace, threads);
}

Status DnnlMatMul::run_raw(const void* x, void* y, int64_t M, void* workspace, int threads) const {
  MS_ASSIGN_OR_RETURN(auto planned, impl_->entry(M, threads));
  auto e = dnnl_util::uncrowded(planned, [&] { return impl_->entry(M, 1); });
  try {
    memory& xm = dnnl_util::thread_memory(e->id, 0, e->x, const_cast<void*>(x));
    memory& ym = dnnl_util::thread_memory(e->id, 1, e->y, y);
    memory& scratch = dnnl_util::thread_memory(e->id, 2, e->scratch, workspace);
    omp_set_num_threads(e->threads);
    dnnl_stream_t s = dnnl_util::thread_stream().get();
    dnnl_status_t st = dnnl_util::exec_weighted(e->mm, s, xm, e->weights, impl_->bias, ym, scratch);
    if (st == dnnl_success) st = dnnl_stream_wait(s);
    if (st != dnnl_success) return Internal("oneDNN matmul failed with status " + std::to_string(st));
  } catch (const dnnl::error& err) {
    return Internal(std::string("oneDNN matmul failed: ") + err.what());
  }
  return Status::OK();
}

}  // namespace mserve
