#include "core/kernels/dnnl_conv.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <cmath>
#include <map>
#include <mutex>
#include <vector>

#include "core/kernels/dnnl_common.h"
#include "core/kernels/dnnl_matmul.h"
#include "core/kernels/int8_window.h"
#include "core/kernels/isa/isa.h"
#include "core/parallel/thread_pool.h"

namespace mserve {

using dnnl::memory;
using dnnl_util::align64;
using dnnl_util::cpu_engine;
using tag = dnnl::memory::format_tag;
constexpr auto f32 = dnnl::memory::data_type::f32;

using dt = dnnl::memory::data_type;

struct DnnlConv::Impl {
  Params p;
  dt x_t = f32, w_t = f32, y_t = f32;
  memory::dims wdims;
  memory bias;  // [M] f32, or empty
  // Weights in the nominal layout (make), then in the first primitive's (make_entry); both
  // written under the entry cache's lock.
  mutable memory packed;
  mutable bool first_entry = true;
  std::shared_ptr<const void> packed_keep;  // what holds `packed` when a PackStore had it
  // int8: the weights as given (oihw / goihw; in a 7-bit window, outside_weights' layout, which
  // add_outside reads). A packed int8 layout carries the zero-point compensation its primitive's
  // attributes asked for, so another layout is made from these, never from `packed`.
  memory plain;
  // int8 without VNNI (int8_window.h): the primitive convolves the clamped activations into int32
  // sums, which run() completes and requantizes with these (one bias and scale per channel).
  bool windowed = false;
  Int8Window win;
  std::vector<int32_t> bias_m;
  std::vector<float> scales_m;
  dt acc_t() const { return windowed ? dt::s32 : y_t; }  // the primitive's Y
  // Float32 convs with a spatial kernel run on oneDNN's blocked layout (nChw8c) on AVX2 CPUs,
  // reordered from and to the caller's: oneDNN 2.6's AVX2 convolutions take channels-last data
  // slower than blocked, by more than the two reorders cost where a pixel's products outweigh its
  // bytes (3x3, 2 threads, channels-last vs reorder + blocked + reorder: 128 -> 128 at 28x28 1.76
  // vs 1.53 ms, 512 -> 512 at 7x7 2.38 vs 2.09; batch 8: 64 -> 64 at 56x56 17.5 vs 11.8, 256 ->
  // 256 at 14x14 16.2 vs 12.7; but 32 -> 32 at 64x64, batch 8: 4.51 vs 4.75). So only where
  // C * M * kh * kw / (C + M), a pixel's multiply-adds per reordered channel, is 192 or more:
  // 1x1 convs are as fast or faster channels-last (256 -> 64 at 56x56 0.59 vs 0.69 ms without
  // reorders), depthwise ones 2-4x slower with the reorders, and a residual sum would need Y
  // reordered in too.
  bool blocked() const {
    static const bool avx2_class = dnnl::get_effective_cpu_isa() >= dnnl::cpu_isa::avx2 &&
                                   dnnl::get_effective_cpu_isa() < dnnl::cpu_isa::avx512_core;
    const int64_t taps = p.k[0] * p.k[1];
    return avx2_class && x_t == f32 && p.group == 1 && taps > 1 && !p.residual && p.C % 8 == 0 && p.M % 8 == 0 &&
           p.C * p.M * taps >= 192 * (p.C + p.M);
  }
  struct Entry {
    dnnl::convolution_forward conv;
    dnnl::reorder to_prim, to_user;  // where the caller's layout is not the primitive's
    memory::desc x_user, y_user, x_prim, y_prim, scratch;
    memory weights;         // `packed`, or a copy in another layout this shape needs
    bool reorders = false;  // X and Y reordered through the workspace
    // Workspace offsets: X and Y in the primitive's layout (reorders), or in a 7-bit window the
    // clamped X, its pixels' flags (f_off) and the int32 sums; then oneDNN's scratchpad.
    size_t x_off = 0, y_off = 0, f_off = 0, s_off = 0, bytes = 0;
    int threads = 1;  // the primitive's team size
    uint64_t id = dnnl_util::next_entry_id();
  };
  dnnl_util::EntryCache<std::array<int64_t, 10>, Entry> entries;  // by geometry and threads

  static double flops(const Params& p, const Geometry& g) {
    return 2.0 * g.N * p.M * g.OH * g.OW * (p.C / p.group) * p.k[0] * p.k[1];
  }
  // Below ~32 kFLOP (the whole batch) the fixed cost of a oneDNN call (memory objects, two
  // reorders) exceeds a dense conv itself (a text CNN's 1-D convs over 6 tokens: 1.5 us each vs
  // 0.3 us with im2col); grouped convs always come here, im2col runs them at a few GFLOP/s.
  Status pays_off(const Geometry& g) const {
    if (flops(p, g) < 32e3 && p.group == 1 && !p.always) return Unsupported("oneDNN convolution: too small to pay off");
    return Status::OK();
  }
  StatusOr<std::unique_ptr<Entry>> make_entry(const Geometry& g, int threads) const;
  // The fused post-ops, and for int8 the output scales and zero points.
  dnnl::primitive_attr attr() const {
    dnnl::primitive_attr a = dnnl_util::attr_with(p.act, p.residual, p.after);
    if (windowed) {
      if (win.zero) a.set_zero_points(DNNL_ARG_SRC, 0, {win.zero});
    } else if (x_t != f32) {
      a.set_output_scales(p.q.scales.size() > 1 ? 1 << 1 : 0, p.q.scales);
      if (p.q.x_zero) a.set_zero_points(DNNL_ARG_SRC, 0, {p.q.x_zero});
      if (p.q.y_zero) a.set_zero_points(DNNL_ARG_DST, 0, {p.q.y_zero});
    }
    return a;
  }
  // The PackStore key of `w` packed for these parameters (everything the layout may follow).
  PackKey pack_key(const void* w, size_t bytes) const {
    const int64_t shape[13] = {p.C,
                               p.M,
                               p.group,
                               p.k[0],
                               p.k[1],
                               p.s[0],
                               p.s[1],
                               p.d[0],
                               p.d[1],
                               p.nhwc * 2 + p.residual,
                               static_cast<int64_t>(x_t),
                               static_cast<int64_t>(w_t),
                               static_cast<int64_t>(y_t)};
    const int32_t q[7] = {static_cast<int32_t>(p.act.kind),
                          static_cast<int32_t>(p.after.kind),
                          p.q.x_zero,
                          p.q.y_zero,
                          p.q.x_signed * 2 + p.q.y_signed,
                          bias ? 1 : 0,
                          windowed ? win.zero : -1};
    PackKeyBuilder b("dnnl_conv");
    b.pod(shape).pod(q);
    for (float f : {p.act.alpha, p.act.beta, p.after.alpha, p.after.beta}) b.add(&f, sizeof f);
    b.add(p.q.scales.data(), p.q.scales.size() * sizeof(float));
    return b.add(w, bytes).key();
  }
  // A 7-bit window's passes (int8_window.h) around the primitive: X clamped into xc with its
  // pixels' flags (returns how many values were outside); then the values outside added back into the
  // sums and Y requantized from them, output row by output row.
  int64_t window_in(const void* x, const Geometry& g, uint8_t* xc, uint8_t* flags, int threads) const {
    const int64_t pixels = g.N * g.H * g.W;
    std::atomic<int64_t> outside{0};
    ThreadPool(threads).parallel_for(pixels, std::max<int64_t>(1, 16384 / p.C), [&](int64_t b, int64_t e) {
      outside += clamp_to_window(static_cast<const uint8_t*>(x) + b * p.C, win.flip, e - b, p.C, win.lo, xc + b * p.C,
                                 flags + b);
    });
    return outside.load();
  }
  void window_out(const void* x, const uint8_t* flags, int64_t outside, int32_t* acc, void* y, const Geometry& g,
                  int threads) const {
    Int8WindowConv c;
    c.H = g.H, c.W = g.W, c.C = p.C, c.OH = g.OH, c.OW = g.OW, c.M = p.M, c.group = p.group;
    for (int i = 0; i < 2; ++i) c.k[i] = p.k[i], c.s[i] = p.s[i], c.d[i] = p.d[i], c.pb[i] = g.pad_begin[i];
    const auto* wt = static_cast<const int8_t*>(plain.get_data_handle());
    const int64_t x_image = g.H * g.W * p.C, y_row = g.OW * p.M;
    ThreadPool(threads).parallel_for(g.N * g.OH, std::max<int64_t>(1, 16384 / y_row), [&](int64_t b, int64_t e) {
      for (int64_t q = b; q < e; ++q) {
        const int64_t n = q / g.OH, oh = q % g.OH;
        if (outside)
          add_outside(c, win, static_cast<const uint8_t*>(x) + n * x_image, flags + n * g.H * g.W, wt, oh, oh + 1,
                      acc + n * g.OH * y_row);
      }
      uint8_t* out = static_cast<uint8_t*>(y) + b * y_row;
      requantize_s32(acc + b * y_row, (e - b) * g.OW, p.M, bias_m.data(), scales_m.data(), p.q.y_zero, p.q.y_signed,
                     out);
      if (!p.q.table.empty()) lookup_8bit(out, (e - b) * y_row, p.q.table.data(), out);
    });
  }
  StatusOr<std::shared_ptr<const Entry>> entry(const Geometry& g, int threads) const {
    return entries.get({g.N, g.H, g.W, g.OH, g.OW, g.pad_begin[0], g.pad_begin[1], g.pad_end[0], g.pad_end[1], threads},
                       [&] { return make_entry(g, threads); });
  }
};

StatusOr<std::unique_ptr<DnnlConv::Impl::Entry>> DnnlConv::Impl::make_entry(const Geometry& g, int threads) const {
  const int64_t N = g.N, H = g.H, W = g.W, OH = g.OH, OW = g.OW;
  const double flops = Impl::flops(p, g);
  const memory::dims pad_end{g.pad_end[0], g.pad_end[1]};
  const int team = dnnl_util::team_size(flops, threads);
  omp_set_num_threads(team);
  auto e = std::make_unique<Entry>();
  try {
    auto& eng = cpu_engine();
    const tag user = p.nhwc ? tag::nhwc : tag::nchw, prim = blocked() ? tag::nChw8c : tag::nhwc;
    e->reorders = user != prim;
    e->x_user = memory::desc({N, p.C, H, W}, x_t, user);
    e->y_user = memory::desc({N, p.M, OH, OW}, y_t, user);
    e->x_prim = memory::desc({N, p.C, H, W}, x_t, prim);
    e->y_prim = memory::desc({N, p.M, OH, OW}, acc_t(), prim);
    memory::desc w_any(wdims, w_t, tag::any);
    memory::desc b_desc = bias ? bias.get_desc() : memory::desc();
    dnnl::primitive_attr attr = this->attr();
    dnnl::convolution_forward::desc cd(dnnl::prop_kind::forward_inference, dnnl::algorithm::convolution_direct,
                                       e->x_prim, w_any, b_desc, e->y_prim, {p.s[0], p.s[1]}, {p.d[0] - 1, p.d[1] - 1},
                                       {g.pad_begin[0], g.pad_begin[1]}, pad_end);
    dnnl::convolution_forward::primitive_desc pd(cd, attr, eng);
    e->conv = dnnl::convolution_forward(pd);
    e->scratch = pd.scratchpad_desc();
    e->weights = dnnl_util::repack(plain && packed.get_desc() != pd.weights_desc() ? plain : packed, pd.weights_desc());
    // The first primitive that wants another layout than the nominal packing's takes its place,
    // so the two are not both held (float32 packed here: not the store's, not int8's plain copy).
    if (first_entry && !packed_keep && !plain && e->weights.get_data_handle() != packed.get_data_handle())
      packed = e->weights;
    first_entry = false;
    if (e->reorders) {
      e->to_prim = dnnl::reorder(dnnl::reorder::primitive_desc(eng, e->x_user, eng, e->x_prim));
      e->to_user = dnnl::reorder(dnnl::reorder::primitive_desc(eng, e->y_prim, eng, e->y_user));
      e->y_off = align64(e->x_prim.get_size());
      e->s_off = e->y_off + align64(e->y_prim.get_size());
    } else if (windowed) {
      e->f_off = align64(e->x_prim.get_size());
      e->y_off = e->f_off + align64(static_cast<size_t>(N * H * W));
      e->s_off = e->y_off + align64(e->y_prim.get_size());
    }
    e->bytes = e->s_off + align64(e->scratch.get_size());
    e->threads = team;
  } catch (const dnnl::error& err) {
    return Unsupported(std::string("oneDNN convolution: ") + err.what());
  }
  return e;
}

DnnlConv::DnnlConv(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
DnnlConv::~DnnlConv() = default;

bool DnnlConv::set_window(const WindowAttrs& win, const Shape& w, Params* p) {
  const int sp = w.rank() - 2;
  if (sp < 1 || sp > 2 || w[0] % win.group != 0 || w.numel() == 0) return false;
  if (!check_window_lengths(win, static_cast<size_t>(sp)).ok()) return false;
  p->M = w[0];
  p->C = w[1] * win.group;
  p->group = win.group;
  for (int i = 0; i < sp; ++i) {
    const int j = 2 - sp + i;  // a 1-D conv is a 2-D one of height 1
    p->k[j] = w[2 + i];
    p->s[j] = win.strides.empty() ? 1 : win.strides[i];
    p->d[j] = win.dilations.empty() ? 1 : win.dilations[i];
    if (!win.kernel_shape.empty() && win.kernel_shape[i] != p->k[j]) return false;
  }
  return true;
}

std::unique_ptr<DnnlConv> DnnlConv::create(const Params& p, const float* w, const float* bias, PackStore* store) {
  auto impl = std::make_unique<Impl>();
  impl->p = p;
  return make(std::move(impl), w, bias, store);
}

bool DnnlConv::int8_supported() {
  // The cpu_isa values are bit sets: AVX2's bits (0x7) are in every later x86 ISA's.
  static const bool avx2 = (static_cast<unsigned>(dnnl::get_effective_cpu_isa()) & 0x7u) == 0x7u;
  return avx2;
}

std::unique_ptr<DnnlConv> DnnlConv::create_int8(const Params& p, const int8_t* w, const float* bias, PackStore* store) {
  if (!p.nhwc || !int8_supported() || p.q.scales.empty()) return nullptr;
  if (p.q.scales.size() != 1 && static_cast<int64_t>(p.q.scales.size()) != p.M) return nullptr;
  auto impl = std::make_unique<Impl>();
  impl->p = p;
  impl->p.act = impl->p.after = FusedActivation{};
  impl->p.residual = false;
  impl->x_t = p.q.x_signed ? dt::s8 : dt::u8;
  impl->y_t = p.q.y_signed ? dt::s8 : dt::u8;
  impl->w_t = dt::s8;
  // A depthwise conv (one channel per group) over uint8 pairs no two channels' products: exact as
  // it is (measured); over int8 it was not (sums off by ~100 on AVX2), so it takes the window too.
  impl->windowed = (p.q.window || !DnnlMatMul::has_vnni()) && (p.C / p.group > 1 || p.q.x_signed);
  if (impl->windowed) {
    impl->x_t = dt::u8;
    impl->win = Int8Window::around(p.q.x_zero, p.q.x_signed);
    for (int64_t m = 0; m < p.M; ++m) {
      impl->scales_m.push_back(p.q.scales[p.q.scales.size() == 1 ? 0 : m]);
      impl->bias_m.push_back(bias ? static_cast<int32_t>(std::lrint(bias[m])) : 0);
    }
    bias = nullptr;
  }
  return make(std::move(impl), w, bias, store);
}

// Packs w (of impl's weight type) for a nominal 32x32 image: oneDNN's weight layout follows the
// channels and the ISA, not the image size, so later shapes normally reuse this copy.
std::unique_ptr<DnnlConv> DnnlConv::make(std::unique_ptr<Impl> impl, const void* w, const float* bias,
                                         PackStore* store) {
  const Params& p = impl->p;
  const int64_t Mg = p.M / p.group, Cg = p.C / p.group;
  impl->wdims = p.group > 1 ? memory::dims{p.group, Mg, Cg, p.k[0], p.k[1]} : memory::dims{p.M, p.C, p.k[0], p.k[1]};
  try {
    auto& eng = cpu_engine();
    omp_set_num_threads(1);  // packing is a one-off copy; no thread team for it
    if (bias) {
      impl->bias = memory(memory::desc({p.M}, f32, tag::x), eng);
      std::copy(bias, bias + p.M, static_cast<float*>(impl->bias.get_data_handle()));
    }
    const int64_t H = std::max<int64_t>(32, (p.k[0] - 1) * p.d[0] + 1),
                  W = std::max<int64_t>(32, (p.k[1] - 1) * p.d[1] + 1);
    const int64_t OH = (H - ((p.k[0] - 1) * p.d[0] + 1)) / p.s[0] + 1;
    const int64_t OW = (W - ((p.k[1] - 1) * p.d[1] + 1)) / p.s[1] + 1;
    memory::desc x({1, p.C, H, W}, impl->x_t, tag::nhwc), y({1, p.M, OH, OW}, impl->acc_t(), tag::nhwc);
    memory::desc w_any(impl->wdims, impl->w_t, tag::any);
    dnnl::convolution_forward::desc cd(dnnl::prop_kind::forward_inference, dnnl::algorithm::convolution_direct, x,
                                       w_any, bias ? impl->bias.get_desc() : memory::desc(), y, {p.s[0], p.s[1]},
                                       {p.d[0] - 1, p.d[1] - 1}, {0, 0}, {0, 0});
    dnnl::convolution_forward::primitive_desc pd(cd, impl->attr(), eng);
    memory user(memory::desc(impl->wdims, impl->w_t, p.group > 1 ? tag::goihw : tag::oihw), eng, const_cast<void*>(w));
    const PackKey key = store ? impl->pack_key(w, user.get_desc().get_size()) : PackKey{};
    if (impl->windowed) {  // the copy kept in add_outside's layout, described to oneDNN as such
      const auto t = outside_weights(static_cast<const int8_t*>(w), p.M, Cg, p.group, p.k[0], p.k[1]);
      const auto st = outside_weight_strides(p.M, Cg, p.group, p.k[0], p.k[1]);
      impl->plain = memory(memory::desc(impl->wdims, impl->w_t, memory::dims(st.begin(), st.end())), eng);
      std::copy(t.begin(), t.end(), static_cast<int8_t*>(impl->plain.get_data_handle()));
      user = impl->plain;
    }
    impl->packed = dnnl_util::packed_weights(user, pd.weights_desc(), store, key, impl->packed_keep);
    if (impl->x_t != f32 && !impl->windowed) {
      impl->plain = memory(user.get_desc(), eng);
      const auto* from = static_cast<const char*>(w);
      std::copy(from, from + user.get_desc().get_size(), static_cast<char*>(impl->plain.get_data_handle()));
    }
  } catch (const dnnl::error&) {
    return nullptr;
  }
  return std::unique_ptr<DnnlConv>(new DnnlConv(std::move(impl)));
}

namespace {

// A batch runs as chunks of 32, 16, 8, 4, 2 and 1 images (37 = 32 + 4 + 1): at most six
// primitives per conv and thread count, whatever batch sizes a server sees (one per batch size
// held up to 64 JIT kernels and weight copies per conv: ResNet-18 grew to 150 MB under batches
// 1..64), and a new batch size rarely needs a new primitive.
constexpr int64_t kMaxChunk = 32;
int64_t chunk_at(int64_t left) {
  int64_t c = 1;
  while (c * 2 <= std::min(left, kMaxChunk)) c *= 2;
  return c;
}

}  // namespace

size_t DnnlConv::cached_primitives() const { return impl_->entries.size(); }
bool DnnlConv::runs_blocked() const { return impl_->blocked(); }

StatusOr<size_t> DnnlConv::prepare(const Geometry& g, int threads) const {
  MS_RETURN_IF_ERROR(impl_->pays_off(g));
  size_t bytes = 0;
  for (int64_t n = 0; n < g.N;) {
    Geometry c = g;
    c.N = chunk_at(g.N - n);
    MS_ASSIGN_OR_RETURN(auto e, impl_->entry(c, threads));
    bytes = std::max(bytes, e->bytes);
    n += c.N;
  }
  return bytes;
}

Status DnnlConv::run(const void* x, void* y, const Geometry& g, void* workspace, int threads) const {
  MS_RETURN_IF_ERROR(impl_->pays_off(g));
  const Params& p = impl_->p;
  const int64_t x_image = p.C * g.H * g.W * (impl_->x_t == f32 ? 4 : 1),
                y_image = p.M * g.OH * g.OW * (impl_->y_t == f32 ? 4 : 1);  // bytes
  for (int64_t n = 0; n < g.N;) {
    Geometry c = g;
    c.N = chunk_at(g.N - n);
    MS_RETURN_IF_ERROR(run_chunk(static_cast<const char*>(x) + n * x_image, static_cast<char*>(y) + n * y_image, c,
                                 workspace, threads));
    n += c.N;
  }
  return Status::OK();
}

Status DnnlConv::run_chunk(const void* x, void* y, const Geometry& g, void* workspace, int threads) const {
  MS_ASSIGN_OR_RETURN(auto planned, impl_->entry(g, threads));
  auto e = dnnl_util::uncrowded(planned, [&] { return impl_->entry(g, 1); });
  try {
    char* ws = static_cast<char*>(workspace);
    const bool direct = !e->reorders;  // then X and Y are used in place
    using dnnl_util::thread_memory;
    memory& xh = thread_memory(e->id, 0, e->x_prim, direct ? const_cast<void*>(x) : static_cast<void*>(ws + e->x_off));
    memory& yh = thread_memory(e->id, 1, e->y_prim, direct ? static_cast<void*>(y) : static_cast<void*>(ws + e->y_off));
    memory& scratch = thread_memory(e->id, 2, e->scratch, ws + e->s_off);
    memory xs, ys;  // the caller's X and Y, around the reorders
    if (!direct) {
      xs = thread_memory(e->id, 3, e->x_user, const_cast<void*>(x));
      ys = thread_memory(e->id, 4, e->y_user, y);
    }
    const bool windowed = impl_->windowed;
    if (windowed) {
      xh.set_data_handle(ws + e->x_off);
      yh.set_data_handle(ws + e->y_off);
    }
    auto* flags = reinterpret_cast<uint8_t*>(ws + e->f_off);
    const int64_t outside =
        windowed ? impl_->window_in(x, g, reinterpret_cast<uint8_t*>(ws + e->x_off), flags, e->threads) : 0;
    omp_set_num_threads(e->threads);
    dnnl_stream_t s = dnnl_util::thread_stream().get();
    dnnl_status_t st = dnnl_success;
    if (!direct) st = dnnl_util::exec(e->to_prim, s, {{DNNL_ARG_FROM, xs.get()}, {DNNL_ARG_TO, xh.get()}});
    if (st == dnnl_success) st = dnnl_util::exec_weighted(e->conv, s, xh, e->weights, impl_->bias, yh, scratch);
    if (st == dnnl_success && !direct)
      st = dnnl_util::exec(e->to_user, s, {{DNNL_ARG_FROM, yh.get()}, {DNNL_ARG_TO, ys.get()}});
    if (st == dnnl_success) st = dnnl_stream_wait(s);
    if (st != dnnl_success) return Internal("oneDNN convolution failed with status " + std::to_string(st));
    if (!windowed && !impl_->p.q.table.empty()) {
      const int64_t n = g.N * g.OH * g.OW * impl_->p.M;
      auto* out = static_cast<uint8_t*>(y);
      ThreadPool(e->threads).parallel_for(n, 65536, [&](int64_t b, int64_t end) {
        lookup_8bit(out + b, end - b, impl_->p.q.table.data(), out + b);
      });
    }
    if (windowed) impl_->window_out(x, flags, outside, reinterpret_cast<int32_t*>(ws + e->y_off), y, g, e->threads);
  } catch (const dnnl::error& err) {
    return Internal(std::string("oneDNN convolution failed: ") + err.what());
  }
  return Status::OK();
}

}  // namespace mserve
