// Recurrent layers: RNN, GRU, LSTM (one layer; forward, reverse or bidirectional).
//
// Inputs  X, W, R, B, sequence_lens, initial_h (, initial_c, P for LSTM); outputs Y, Y_h
// (, Y_c), all outputs optional. Gate order in W/R/B: RNN i; GRU z, r, h; LSTM i, o, f, c
// (peepholes P: i, o, f). layout (opset 14+): 0 = X [seq, batch, in], Y [seq, dirs, batch, H],
// states [dirs, batch, H]; 1 = X [batch, seq, in], Y [batch, seq, dirs, H], states
// [batch, dirs, H].
//
// Per direction: one gemm projects every time step at once (X * W^T), then each step runs a
// gemm of the previous hidden state with R^T and an elementwise gate update. With
// sequence_lens, batch entry b runs steps 0..len_b-1 (reverse: from len_b-1 down to 0); Y is
// zero past len_b and Y_h/Y_c hold the state after the last valid step (zero when len_b == 0).
// `clip` clamps every gate's pre-activation to [-clip, clip]. float16 computes in float
// (inputs are converted into the workspace).
//
// com.microsoft DynamicQuantizeLSTM (what onnxruntime's quantize_dynamic writes for an LSTM) is
// the LSTM with 8-bit weights stored transposed, W [dirs, in, 4H] and R [dirs, H, 4H] (int8 or
// uint8), and inputs 8-11 W_scale, W_zero_point, R_scale, R_zero_point, each [dirs] (per tensor)
// or [dirs, 4H] (per gate row). The weights are dequantized, (q - zero_point) * scale, into the
// float32 layout of LSTM (at creation when they are constants, else per call) and the cell runs
// in float32: onnxruntime's kernel also quantizes X and each step's hidden state to uint8 at run
// time, which this does not, so its answers carry that rounding and these do not.
#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>

#include "core/kernels/common.h"
#include "core/kernels/dnnl_matmul.h"
#include "core/kernels/fused_activation.h"
#include "core/kernels/gemm.h"
#include "core/kernels/registry.h"
#include "core/parallel/thread_pool.h"

namespace mserve {
namespace {

enum class Cell { kRNN, kGRU, kLSTM };

int gates_of(Cell c) { return c == Cell::kRNN ? 1 : c == Cell::kGRU ? 3 : 4; }
int acts_of(Cell c) { return c == Cell::kRNN ? 1 : c == Cell::kGRU ? 2 : 3; }
const char* cell_name(Cell c) { return c == Cell::kRNN ? "RNN" : c == Cell::kGRU ? "GRU" : "LSTM"; }

// A gate activation: a recurrent row of kernels/activation_table.h, applied in place and
// vectorized for this CPU by FusedActivation::apply.
using Activation = FusedActivation;
using Act = FusedActivation::Kind;

// Parses one activation name (any case); alpha/beta are consumed in order by the functions that
// take them (the table's defaults when the lists run out).
StatusOr<Activation> parse_activation(const std::string& name, const std::vector<float>& alphas,
                                      const std::vector<float>& betas, size_t& ai, size_t& bi) {
  Activation a = FusedActivation::named(name, /*any_case=*/true);
  if (a.kind == Act::kNone || !FusedActivation::info(a.kind).recurrent)
    return Unsupported("activation '" + name + "' is not supported");
  const FusedActivation::Info& in = FusedActivation::info(a.kind);
  if (in.alpha_attr && ai < alphas.size()) a.alpha = alphas[ai++];
  if (in.beta_attr && bi < betas.size()) a.beta = betas[bi++];
  return a;
}

// Workspace layout, in bytes from the start (each block 64-byte aligned).
struct WsPlan {
  enum Block { kX, kW, kR, kB, kH0, kC0, kP, kXW, kHR, kH, kC, kRH, kBias, kLens, kScratch, kT1, kT2, kCount };
  size_t off[kCount] = {};
  size_t lane[kCount] = {};  // a direction's share of a per-lane block (lanes of them)
  int lanes = 1;
  size_t total = 0;
};

size_t round_up(size_t n) { return (n + kAlignment - 1) / kAlignment * kAlignment; }

// float32 W and R that are constants of the graph, packed per direction for oneDNN
// (kernels/dnnl_matmul.h): the input projection X * W^T and each step's H * R^T. Empty when the
// weights are not constant float32.
struct PackedWeights {
  std::vector<std::unique_ptr<DnnlMatMul>> w, r;  // per direction; r null for GRU without lbr
};

// DynamicQuantizeLSTM's weight q [dirs, K, N] (int8 or uint8) as float32 [dirs, N, K]:
// (q - zero_point) * scale, scale and zero point [dirs] or [dirs, N]. Shapes checked by infer.
void dequantize_transposed(const Tensor& q, const Tensor& scale, const Tensor* zp, float* out) {
  const int64_t D = q.dim(0), K = q.dim(1), N = q.dim(2);
  const bool per_row = scale.rank() == 2;
  const float* s = scale.data<float>();
  const bool u8 = q.dtype() == DType::kUInt8;
  auto at = [&](const Tensor& t, int64_t i) -> int32_t {
    return u8 ? static_cast<int32_t>(t.data<uint8_t>()[i]) : static_cast<int32_t>(t.data<int8_t>()[i]);
  };
  for (int64_t d = 0; d < D; ++d)
    for (int64_t n = 0; n < N; ++n) {
      const int64_t si = per_row ? d * N + n : d;
      const int32_t z = zp ? at(*zp, si) : 0;
      float* row = out + (d * N + n) * K;
      for (int64_t k = 0; k < K; ++k) row[k] = static_cast<float>(at(q, (d * K + k) * N + n) - z) * s[si];
    }
}

class RecurrentKernel final : public Kernel {
 public:
  RecurrentKernel(Cell cell, int dirs, bool reverse, int64_t hidden, int layout, float clip, bool input_forget,
                  bool lbr, std::vector<Activation> acts, PackedWeights packed, bool quantized = false,
                  Tensor w_float = {}, Tensor r_float = {})
      : cell_(cell),
        dirs_(dirs),
        reverse_(reverse),
        hidden_(hidden),
        layout_(layout),
        clip_(clip),
        input_forget_(input_forget),
        lbr_(lbr),
        acts_(std::move(acts)),
        packed_(std::move(packed)),
        quantized_(quantized),
        w_float_(std::move(w_float)),
        r_float_(std::move(r_float)) {}

  // Dequantized constant weights are the kernel's own copies: the 8-bit originals and their
  // scales are not read again.
  bool packed_constant(int i) const override {
    return quantized_ && w_float_.defined() && (i == 1 || i == 2 || (i >= 8 && i <= 11));
  }

  Status infer(InferContext& ctx) const override {
    const DType t = ctx.dtype(0);
    if (!dtype_is_float(t)) return Unsupported(std::string("dtype ") + dtype_name(t) + " is not supported");
    if (quantized_ && t != DType::kFloat32)
      return Unsupported(std::string("DynamicQuantizeLSTM with dtype ") + dtype_name(t) + " (float32 only)");
    MS_CHECK_ARG(ctx.has_input(1) && ctx.has_input(2), "W and R are required");
    const int max_in = quantized_ ? 12 : cell_ == Cell::kLSTM ? 8 : 6;
    for (int i = 0; i < ctx.num_inputs() && i < 8; ++i)
      if (ctx.has_input(i) && i != 4 && !(quantized_ && (i == 1 || i == 2)))
        MS_CHECK_ARG(ctx.dtype(i) == t, std::string("input ") + std::to_string(i) + " has dtype " +
                                            dtype_name(ctx.dtype(i)) + ", expected " + dtype_name(t));
    MS_CHECK_ARG(ctx.num_inputs() <= max_in, std::string(quantized_ ? "DynamicQuantizeLSTM" : cell_name(cell_)) +
                                                 " takes at most " + std::to_string(max_in) + " inputs");
    MS_CHECK_ARG(ctx.num_outputs() <= (cell_ == Cell::kLSTM ? 3 : 2), "too many outputs");
    const Shape& xs = ctx.shape(0);
    MS_CHECK_ARG(xs.rank() == 3, "X must be 3-D, got " + xs.str());
    MS_CHECK_ARG(ctx.shape(2).rank() == 3, "R must be 3-D, got " + ctx.shape(2).str());
    Dims d = dims(ctx.shape(0), ctx.shape(2));
    const int64_t G = gates_of(cell_), H = d.H;
    MS_CHECK_ARG(H > 0, "hidden_size must be positive");
    if (quantized_) {
      MS_RETURN_IF_ERROR(check_quantized(ctx, 1, 8, Shape({dirs_, d.I, G * H}), "W"));
      MS_RETURN_IF_ERROR(check_quantized(ctx, 2, 10, Shape({dirs_, H, G * H}), "R"));
    } else {
      MS_CHECK_ARG(ctx.shape(1) == Shape({dirs_, G * H, d.I}),
                   "W has shape " + ctx.shape(1).str() + ", expected " + Shape({dirs_, G * H, d.I}).str());
      MS_CHECK_ARG(ctx.shape(2) == Shape({dirs_, G * H, H}),
                   "R has shape " + ctx.shape(2).str() + ", expected " + Shape({dirs_, G * H, H}).str());
    }
    if (ctx.has_input(3))
      MS_CHECK_ARG(ctx.shape(3) == Shape({dirs_, 2 * G * H}),
                   "B has shape " + ctx.shape(3).str() + ", expected " + Shape({dirs_, 2 * G * H}).str());
    if (ctx.has_input(4)) {
      MS_CHECK_ARG(ctx.dtype(4) == DType::kInt32 || ctx.dtype(4) == DType::kInt64, "sequence_lens must be int32");
      MS_CHECK_ARG(ctx.shape(4) == Shape({d.batch}),
                   "sequence_lens has shape " + ctx.shape(4).str() + ", expected [" + std::to_string(d.batch) + "]");
    }
    const Shape state = layout_ ? Shape({d.batch, dirs_, H}) : Shape({dirs_, d.batch, H});
    for (int i : {5, 6}) {
      if (i == 6 && cell_ != Cell::kLSTM) break;
      if (ctx.has_input(i))
        MS_CHECK_ARG(ctx.shape(i) == state, std::string(i == 5 ? "initial_h" : "initial_c") + " has shape " +
                                                ctx.shape(i).str() + ", expected " + state.str());
    }
    if (cell_ == Cell::kLSTM && ctx.has_input(7))
      MS_CHECK_ARG(ctx.shape(7) == Shape({dirs_, 3 * H}),
                   "P has shape " + ctx.shape(7).str() + ", expected " + Shape({dirs_, 3 * H}).str());
    const Shape y = layout_ ? Shape({d.batch, d.seq, dirs_, H}) : Shape({d.seq, dirs_, d.batch, H});
    for (int o = 0; o < ctx.num_outputs(); ++o) ctx.set_output(o, t, o == 0 ? y : state);
    ctx.set_workspace(plan(t, d, ctx).total);
    return Status::OK();
  }

  Status compute(const ComputeContext& ctx) const override {
    const DType t = ctx.input(0).dtype();
    Status st;
    MS_SWITCH_FLOAT(t, T, return Unsupported("dtype"), st = run<T>(ctx));
    return st;
  }

 private:
  struct Dims {
    int64_t seq, batch, I, H;
  };
  Dims dims(const Shape& x, const Shape& r) const {
    Dims d;
    d.seq = layout_ ? x[1] : x[0];
    d.batch = layout_ ? x[0] : x[1];
    d.I = x[2];
    d.H = hidden_ > 0 ? hidden_ : (r.rank() == 3 ? r[quantized_ ? 1 : 2] : 0);
    return d;
  }

  // DynamicQuantizeLSTM's 8-bit weight `q` (input qi, [dirs, K, 4H]) with its scale (input si)
  // and optional zero point (si + 1), each [dirs] or [dirs, 4H].
  Status check_quantized(const InferContext& ctx, int qi, int si, const Shape& want, const char* name) const {
    const DType qt = ctx.dtype(qi);
    MS_CHECK_ARG(qt == DType::kInt8 || qt == DType::kUInt8,
                 std::string(name) + " has dtype " + dtype_name(qt) + ", expected int8 or uint8");
    MS_CHECK_ARG(ctx.shape(qi) == want, std::string(name) + " has shape " + ctx.shape(qi).str() + ", expected " +
                                            want.str() + " ([directions, inputs, 4 * hidden_size])");
    MS_CHECK_ARG(ctx.has_input(si), std::string(name) + "_scale is required");
    MS_CHECK_ARG(ctx.dtype(si) == DType::kFloat32, std::string(name) + "_scale must be float32");
    const Shape& ss = ctx.shape(si);
    MS_CHECK_ARG(ss == Shape({dirs_}) || ss == Shape({dirs_, want[2]}),
                 std::string(name) + "_scale has shape " + ss.str() + ", expected [" + std::to_string(dirs_) +
                     "] or [" + std::to_string(dirs_) + ", " + std::to_string(want[2]) + "]");
    if (ctx.has_input(si + 1)) {
      MS_CHECK_ARG(ctx.dtype(si + 1) == qt, std::string(name) + "_zero_point has dtype " +
                                                dtype_name(ctx.dtype(si + 1)) + ", expected " + dtype_name(qt));
      MS_CHECK_ARG(ctx.shape(si + 1) == ss,
                   std::string(name) + "_zero_point has shape " + ctx.shape(si + 1).str() + ", expected " + ss.str());
    }
    return Status::OK();
  }

  // Shared by infer (sizes) and compute (offsets); `has(i)`/`numel(i)` describe the inputs.
  template <class Ctx>
  WsPlan plan(DType t, const Dims& d, const Ctx& ctx) const {
    const bool convert = t == DType::kFloat16;
    const size_t acc = t == DType::kFloat64 ? sizeof(double) : sizeof(float);
    const int64_t G = gates_of(cell_), H = d.H;
    WsPlan p;
    size_t pos = 0;
    auto add = [&](int block, size_t bytes) {
      p.off[block] = pos;
      pos += round_up(bytes);
    };
    const int in_block[] = {WsPlan::kX, WsPlan::kW, WsPlan::kR, WsPlan::kB, -1, WsPlan::kH0, WsPlan::kC0, WsPlan::kP};
    for (int i = 0; i < 8; ++i) {
      const bool dequantize = quantized_ && !w_float_.defined() && (i == 1 || i == 2);
      if (in_block[i] < 0 || !(convert || dequantize) || !has(ctx, i)) continue;
      add(in_block[i], static_cast<size_t>(numel(ctx, i)) * acc);
    }
    // A direction's state, once per lane (directions run at once: concurrent()).
    const int lanes = concurrent(threads(ctx)) ? static_cast<int>(dirs_) : 1;
    const int team = lanes > 1 ? 1 : threads(ctx);
    auto lane = [&](int block, size_t bytes) {
      p.lane[block] = round_up(bytes);
      add(block, p.lane[block] * lanes);
    };
    lane(WsPlan::kXW, static_cast<size_t>(d.seq * d.batch * G * H) * acc);
    lane(WsPlan::kHR, static_cast<size_t>(d.batch * G * H) * acc);
    lane(WsPlan::kH, static_cast<size_t>(d.batch * H) * acc);
    if (cell_ == Cell::kLSTM) {
      lane(WsPlan::kC, static_cast<size_t>(d.batch * H) * acc);
      lane(WsPlan::kT1, static_cast<size_t>(d.batch * H) * acc);  // lstm_step: candidates, then tanh(c)
    }
    if (cell_ == Cell::kGRU && !lbr_) lane(WsPlan::kRH, static_cast<size_t>(d.batch * H) * acc);
    lane(WsPlan::kBias, static_cast<size_t>(2 * G * H) * acc);
    add(WsPlan::kLens, static_cast<size_t>(d.batch) * sizeof(int64_t));
    // oneDNN's scratchpad, shared by a lane's projections (they run one after another).
    size_t scratch = 0;
    if (t == DType::kFloat32 && !packed_.w.empty()) {
      auto need = [&](const std::unique_ptr<DnnlMatMul>& m, int64_t rows) {
        if (!m) return;
        auto bytes = m->prepare(rows, team);
        if (bytes.ok()) scratch = std::max(scratch, bytes.value());
      };
      for (int dir = 0; dir < dirs_; ++dir) {
        need(packed_.w[dir], d.seq * d.batch);
        need(packed_.r[dir], d.batch);
      }
    }
    lane(WsPlan::kScratch, scratch);
    p.lanes = lanes;
    p.total = pos;
    return p;
  }
  // Whether a bidirectional layer runs its two directions at once, one thread each: they share
  // nothing, and a step's products are too small to split (a 64-unit LSTM at batch 8: 130k
  // multiply-adds), so a team per step mostly waits at its barriers.
  bool concurrent(int threads) const { return dirs_ == 2 && threads >= 2; }
  static int threads(const InferContext& c) { return c.threads(); }
  static int threads(const ComputeContext& c) { return c.pool().threads(); }

  // C[M, N] = A[M, K] * packed^T on oneDNN when it takes the shape, else with Eigen.
  template <class A>
  void project(const DnnlMatMul* packed, int64_t M, int64_t N, int64_t K, const A* a, const A* w, A* c, void* scratch,
               ThreadPool& pool, int team) const {
    if constexpr (std::is_same_v<A, float>) {
      if (packed && packed->run(a, c, M, scratch, team).ok()) return;
    }
    gemm<A>(false, true, M, N, K, A(1), a, K, w, K, A(0), c, N, pool);
  }
  bool has(const InferContext& c, int i) const { return c.has_input(i) && (cell_ == Cell::kLSTM || i < 6); }
  bool has(const ComputeContext& c, int i) const { return c.has_input(i) && (cell_ == Cell::kLSTM || i < 6); }
  static int64_t numel(const InferContext& c, int i) { return c.shape(i).numel(); }
  static int64_t numel(const ComputeContext& c, int i) { return c.input(i).numel(); }

  template <class T>
  Status run(const ComputeContext& ctx) const {
    using A = std::conditional_t<std::is_same_v<T, double>, double, float>;
    const Tensor& x = ctx.input(0);
    const Dims d = dims(x.shape(), ctx.input(2).shape());
    const int64_t G = gates_of(cell_), H = d.H, B = d.batch, S = d.seq, I = d.I, GH = G * H;
    const WsPlan p = plan(x.dtype(), d, ctx);
    char* ws = static_cast<char*>(ctx.workspace());
    auto buf = [&](int block) { return reinterpret_cast<A*>(ws + p.off[block]); };
    auto in = [&](int i, int block) -> const A* {
      if (!has(ctx, i)) return nullptr;
      const T* src = ctx.input(i).template data<T>();
      if constexpr (std::is_same_v<T, A>) {
        (void)block;
        return src;
      } else {
        A* dst = buf(block);
        const int64_t n = ctx.input(i).numel();
        for (int64_t k = 0; k < n; ++k) dst[k] = static_cast<A>(src[k]);
        return dst;
      }
    };
    const A* X = in(0, WsPlan::kX);
    const A* W = nullptr;
    const A* R = nullptr;
    if constexpr (std::is_same_v<T, float>) {
      if (quantized_) {
        W = w_float_.defined() ? w_float_.data<float>() : buf(WsPlan::kW);
        R = r_float_.defined() ? r_float_.data<float>() : buf(WsPlan::kR);
        if (!w_float_.defined()) {
          dequantize_transposed(ctx.input(1), ctx.input(8), ctx.has_input(9) ? &ctx.input(9) : nullptr,
                                buf(WsPlan::kW));
          dequantize_transposed(ctx.input(2), ctx.input(10), ctx.has_input(11) ? &ctx.input(11) : nullptr,
                                buf(WsPlan::kR));
        }
      }
    }
    if (!quantized_) {
      W = in(1, WsPlan::kW);
      R = in(2, WsPlan::kR);
    }
    const A* Bp = in(3, WsPlan::kB);
    const A* H0 = in(5, WsPlan::kH0);
    const A* C0 = in(6, WsPlan::kC0);
    const A* P = in(7, WsPlan::kP);
    auto packed = [](const std::vector<std::unique_ptr<DnnlMatMul>>& v, int dir) {
      return v.empty() ? nullptr : v[dir].get();
    };
    int64_t* lens = reinterpret_cast<int64_t*>(ws + p.off[WsPlan::kLens]);
    bool full = true;
    for (int64_t b = 0; b < B; ++b) {
      lens[b] = ctx.has_input(4) ? ctx.input(4).int_at(b) : S;
      MS_CHECK_ARG(lens[b] >= 0 && lens[b] <= S, "sequence_lens[" + std::to_string(b) +
                                                     "] = " + std::to_string(lens[b]) + " is outside [0, " +
                                                     std::to_string(S) + "]");
      full = full && lens[b] == S;
    }
    T* Y = ctx.has_output(0) ? ctx.output(0).template data<T>() : nullptr;
    T* Yh = ctx.has_output(1) ? ctx.output(1).template data<T>() : nullptr;
    T* Yc = cell_ == Cell::kLSTM && ctx.has_output(2) ? ctx.output(2).template data<T>() : nullptr;
    if (Y && !full) std::fill(Y, Y + ctx.output(0).numel(), T(0));
    ThreadPool& pool = ctx.pool();
    const int64_t grain = std::max<int64_t>(1, 8192 / std::max<int64_t>(GH, 1));
    const int nact = acts_of(cell_);
    auto state_index = [&](int dir, int64_t b) { return layout_ ? b * dirs_ + dir : dir * B + b; };

    // One direction on lane `ln` (its own state buffers), its work on `team` threads.
    auto direction = [&](int dir, int ln, int team) {
      auto lane_buf = [&](int block) { return reinterpret_cast<A*>(ws + p.off[block] + ln * p.lane[block]); };
      A* xw = lane_buf(WsPlan::kXW);
      A* hr = lane_buf(WsPlan::kHR);
      A* h = lane_buf(WsPlan::kH);
      A* c = cell_ == Cell::kLSTM ? lane_buf(WsPlan::kC) : nullptr;
      A* rh = cell_ == Cell::kGRU && !lbr_ ? lane_buf(WsPlan::kRH) : nullptr;
      A* bias = lane_buf(WsPlan::kBias);
      A* t1 = cell_ == Cell::kLSTM ? lane_buf(WsPlan::kT1) : nullptr;
      void* scratch = lane_buf(WsPlan::kScratch);
      const bool rev = reverse_ || dir == 1;
      const A* Wd = W + dir * GH * I;
      const A* Rd = R + dir * GH * H;
      const A* Pd = P ? P + dir * 3 * H : nullptr;
      const Activation* act = acts_.data() + dir * nact;
      if (Bp)
        std::copy(Bp + dir * 2 * GH, Bp + (dir + 1) * 2 * GH, bias);
      else
        std::fill(bias, bias + 2 * GH, A(0));
      if (S * B > 0) {
        if (I > 0)
          project<A>(packed(packed_.w, dir), S * B, GH, I, X, Wd, xw, scratch, pool, team);
        else
          std::fill(xw, xw + S * B * GH, A(0));
      }
      for (int64_t b = 0; b < B; ++b) {
        const int64_t si = state_index(dir, b) * H;
        for (int64_t j = 0; j < H; ++j) {
          h[b * H + j] = H0 ? H0[si + j] : A(0);
          if (c) c[b * H + j] = C0 ? C0[si + j] : A(0);
        }
      }
      if (rh) std::fill(rh, rh + B * H, A(0));
      for (int64_t s = 0; s < S; ++s) {
        bool any = false;
        for (int64_t b = 0; b < B; ++b) any = any || s < lens[b];
        if (!any) break;
        const bool two_phase = rh != nullptr;
        if (two_phase)
          gemm<A>(false, true, B, 2 * H, H, A(1), h, H, Rd, H, A(0), hr, GH, pool);
        else
          project<A>(packed(packed_.r, dir), B, GH, H, h, Rd, hr, scratch, pool, team);
        Step<A, T> st{this, act, Pd, bias, xw, hr, h, c, rh, Y, lens, s, S, B, H, dir, rev};
        if (cell_ == Cell::kLSTM && !Pd && default_lstm(act)) {
          lstm_step(st, t1, pool, grain);
          continue;
        }
        pool.parallel_for(B, grain, [&](int64_t b0, int64_t b1) {
          for (int64_t b = b0; b < b1; ++b) st.row(b, 0);
        });
        if (two_phase) {
          gemm<A>(false, true, B, H, H, A(1), rh, H, Rd + 2 * H * H, H, A(0), hr + 2 * H, GH, pool);
          pool.parallel_for(B, grain, [&](int64_t b0, int64_t b1) {
            for (int64_t b = b0; b < b1; ++b) st.row(b, 1);
          });
        }
      }
      for (int64_t b = 0; b < B; ++b) {
        const int64_t si = state_index(dir, b) * H;
        const bool none = lens[b] == 0;
        for (int64_t j = 0; j < H; ++j) {
          if (Yh) Yh[si + j] = static_cast<T>(none ? A(0) : h[b * H + j]);
          if (Yc) Yc[si + j] = static_cast<T>(none ? A(0) : c[b * H + j]);
        }
      }
    };
    if (p.lanes > 1 && !ThreadPool::crowded()) {
      // Each direction on a thread of its own: its steps' regions run inline (Alone), its oneDNN
      // products on one-thread primitives.
      pool.parallel_for(dirs_, 1, [&](int64_t d0, int64_t d1) {
        ThreadPool::Alone alone;
        for (int64_t dir = d0; dir < d1; ++dir) direction(static_cast<int>(dir), static_cast<int>(dir), 1);
      });
    } else {
      for (int dir = 0; dir < dirs_; ++dir) direction(dir, 0, p.lanes > 1 ? 1 : pool.threads());
    }
    return Status::OK();
  }

  static bool default_lstm(const Activation* act) {
    return act[0].kind == Act::kSigmoid && act[1].kind == Act::kTanh && act[2].kind == Act::kTanh;
  }

  // One time step of one batch row (phase 1 only for GRU without linear_before_reset).
  template <class A, class T>
  struct Step {
    const RecurrentKernel* k;
    const Activation* act;
    const A* P;
    const A* bias;
    const A* xw;
    A* hr;
    A* h;
    A* c;
    A* rh;
    T* Y;
    const int64_t* lens;
    int64_t s, S, B, H;
    int dir;
    bool rev;

    A cl(A v) const {
      const A m = static_cast<A>(k->clip_);
      return v < -m ? -m : (v > m ? m : v);
    }
    void row(int64_t b, int phase) const {
      const int64_t len = lens[b];
      if (s >= len) return;
      const int64_t t = rev ? len - 1 - s : s;
      const int64_t G = gates_of(k->cell_), GH = G * H;
      const A* xr = xw + (k->layout_ ? b * S + t : t * B + b) * GH;
      A* hrr = hr + b * GH;
      A* hb = h + b * H;
      const A* wb = bias;
      const A* rb = bias + GH;
      T* y = Y ? Y + (k->layout_ ? ((b * S + t) * k->dirs_ + dir) * H : ((t * k->dirs_ + dir) * B + b) * H) : nullptr;
      // Gate math runs on whole spans of H (vectorized sigmoid/tanh); `hrr` holds this row's
      // R projection and becomes the gates' pre-activations, then their values.
      A* g = hrr;
      switch (k->cell_) {
        case Cell::kRNN:
          for (int64_t j = 0; j < H; ++j) g[j] = cl(xr[j] + g[j] + wb[j] + rb[j]);
          act[0].apply(g, H);
          for (int64_t j = 0; j < H; ++j) hb[j] = g[j];
          if (y) std::transform(g, g + H, y, [](A v) { return static_cast<T>(v); });
          break;
        case Cell::kLSTM: {
          A* cb = c + b * H;
          A *gi = g, *go = g + H, *gf = g + 2 * H, *gc = g + 3 * H;
          for (int64_t j = 0; j < 4 * H; ++j) g[j] += xr[j] + wb[j] + rb[j];
          if (P) {
            for (int64_t j = 0; j < H; ++j) {
              gi[j] += P[j] * cb[j];
              gf[j] += P[2 * H + j] * cb[j];
            }
          }
          for (int64_t j = 0; j < H; ++j) {
            gi[j] = cl(gi[j]);
            gf[j] = cl(gf[j]);
            gc[j] = cl(gc[j]);
          }
          act[0].apply(gi, H);
          if (!k->input_forget_) act[0].apply(gf, H);
          act[1].apply(gc, H);
          for (int64_t j = 0; j < H; ++j) {
            const A f = k->input_forget_ ? A(1) - gi[j] : gf[j];
            cb[j] = f * cb[j] + gi[j] * gc[j];
          }
          for (int64_t j = 0; j < H; ++j) go[j] = cl(P ? go[j] + P[H + j] * cb[j] : go[j]);
          act[0].apply(go, H);
          std::copy(cb, cb + H, gc);  // h = o * act2(c)
          act[2].apply(gc, H);
          for (int64_t j = 0; j < H; ++j) hb[j] = go[j] * gc[j];
          if (y) std::transform(hb, hb + H, y, [](A v) { return static_cast<T>(v); });
          break;
        }
        case Cell::kGRU: {
          A *gz = g, *gr = g + H, *gh = g + 2 * H;
          if (phase == 0) {
            for (int64_t j = 0; j < 2 * H; ++j) g[j] = cl(g[j] + xr[j] + wb[j] + rb[j]);
            act[0].apply(g, 2 * H);  // z, r
            if (rh) {                // h~ needs (r . H) * Rh^T: finish after the second gemm (z stays in hrr)
              for (int64_t j = 0; j < H; ++j) rh[b * H + j] = gr[j] * hb[j];
              return;
            }
            for (int64_t j = 0; j < H; ++j) gh[j] = cl(xr[2 * H + j] + wb[2 * H + j] + gr[j] * (gh[j] + rb[2 * H + j]));
          } else {
            for (int64_t j = 0; j < H; ++j) gh[j] = cl(xr[2 * H + j] + gh[j] + wb[2 * H + j] + rb[2 * H + j]);
          }
          act[1].apply(gh, H);
          for (int64_t j = 0; j < H; ++j) hb[j] = (A(1) - gz[j]) * gh[j] + gz[j] * hb[j];
          if (y) std::transform(hb, hb + H, y, [](A v) { return static_cast<T>(v); });
          break;
        }
      }
    }
  };

  // One LSTM time step for every batch row, with the default activations and no peepholes:
  // activations run once over all rows ([B, 4H] gates, [B, H] candidates and cells) instead of
  // five short calls per row, which cost more than the math at small hidden sizes (hidden 24,
  // batch 32: ~160 calls of 24 elements per step). Rows past their sequence length keep their
  // state. t1: [B, H] workspace.
  template <class A, class T>
  void lstm_step(const Step<A, T>& st, A* t1, ThreadPool& pool, int64_t grain) const {
    const int64_t B = st.B, H = st.H, GH = 4 * H;
    auto rows = [&](auto&& f) { pool.parallel_for(B, grain, [&](int64_t b0, int64_t b1) { f(b0, b1); }); };
    rows([&](int64_t b0, int64_t b1) {
      for (int64_t b = b0; b < b1; ++b) {
        const int64_t t = st.rev ? std::max<int64_t>(st.lens[b] - 1 - st.s, 0) : st.s;
        const A* xr = st.xw + (layout_ ? b * st.S + t : t * B + b) * GH;
        A* g = st.hr + b * GH;
        for (int64_t j = 0; j < GH; ++j) g[j] = st.cl(g[j] + xr[j] + st.bias[j] + st.bias[GH + j]);
        std::copy(g + 3 * H, g + 4 * H, t1 + b * H);
      }
      st.act[0].apply(st.hr + b0 * GH, (b1 - b0) * GH);  // i, o, f (c~ overwritten below)
      st.act[1].apply(t1 + b0 * H, (b1 - b0) * H);       // c~
      for (int64_t b = b0; b < b1; ++b) {
        if (st.s >= st.lens[b]) continue;
        const A* g = st.hr + b * GH;
        A* cb = st.c + b * H;
        for (int64_t j = 0; j < H; ++j) {
          const A f = input_forget_ ? A(1) - g[j] : g[2 * H + j];
          cb[j] = f * cb[j] + g[j] * t1[b * H + j];
        }
        std::copy(cb, cb + H, t1 + b * H);
      }
      st.act[2].apply(t1 + b0 * H, (b1 - b0) * H);  // tanh(c)
      for (int64_t b = b0; b < b1; ++b) {
        if (st.s >= st.lens[b]) continue;
        const int64_t t = st.rev ? st.lens[b] - 1 - st.s : st.s;
        const A* go = st.hr + b * GH + H;
        A* hb = st.h + b * H;
        for (int64_t j = 0; j < H; ++j) hb[j] = go[j] * t1[b * H + j];
        if (st.Y) {
          T* y = st.Y + (layout_ ? ((b * st.S + t) * dirs_ + st.dir) * H : ((t * dirs_ + st.dir) * B + b) * H);
          std::transform(hb, hb + H, y, [](A v) { return static_cast<T>(v); });
        }
      }
    });
  }

  Cell cell_;
  int64_t dirs_;
  bool reverse_;
  int64_t hidden_;
  int layout_;
  float clip_;
  bool input_forget_, lbr_;
  std::vector<Activation> acts_;
  PackedWeights packed_;
  bool quantized_;
  Tensor w_float_, r_float_;  // DynamicQuantizeLSTM's constant weights, dequantized
};

// DynamicQuantizeLSTM's W (input 1) or R (input 2) dequantized as float32 [dirs, 4H, K] when it
// and its scale and zero point are constants of fitting shapes; an empty tensor otherwise (the
// kernel then dequantizes per call, after infer has checked the shapes).
StatusOr<Tensor> dequantized_constant(const Node& n, const KernelInit& init, int qi, int dirs) {
  const Tensor* q = init.constant(n, qi);
  const Tensor* s = init.constant(n, qi == 1 ? 8 : 10);
  const int zi = qi == 1 ? 9 : 11;
  const bool has_zp = static_cast<int>(n.inputs.size()) > zi && n.inputs[zi] != kNoValue;
  const Tensor* z = has_zp ? init.constant(n, zi) : nullptr;
  if (!q || !s || (has_zp && !z)) return Tensor{};
  if ((q->dtype() != DType::kInt8 && q->dtype() != DType::kUInt8) || q->rank() != 3 || q->dim(0) != dirs ||
      s->dtype() != DType::kFloat32 || !(s->shape() == Shape({dirs}) || s->shape() == Shape({dirs, q->dim(2)})) ||
      (z && (z->dtype() != q->dtype() || z->shape() != s->shape())))
    return Tensor{};
  MS_ASSIGN_OR_RETURN(Tensor out, Tensor::empty(DType::kFloat32, Shape{dirs, q->dim(2), q->dim(1)}));
  dequantize_transposed(*q, *s, z, out.data<float>());
  return out;
}

StatusOr<KernelPtr> make_recurrent(Cell cell, const Node& n, const KernelInit& init, bool quantized = false) {
  const std::string direction = n.attr_string("direction", "forward");
  int dirs = 1;
  bool reverse = false;
  if (direction == "reverse")
    reverse = true;
  else if (direction == "bidirectional")
    dirs = 2;
  else
    MS_CHECK_ARG(direction == "forward", "unknown direction '" + direction + "'");
  const int64_t hidden = n.attr_int("hidden_size", 0);
  MS_CHECK_ARG(!n.attr("hidden_size") || hidden > 0, "hidden_size must be positive");
  const int64_t layout = n.opset >= 14 ? n.attr_int("layout", 0) : 0;
  MS_CHECK_ARG(layout == 0 || layout == 1, "layout must be 0 or 1, got " + std::to_string(layout));
  float clip = std::numeric_limits<float>::infinity();
  if (const Attribute* a = n.attr("clip")) {
    MS_CHECK_ARG(a->f > 0, "clip must be positive");
    clip = a->f;
  }
  const bool input_forget = cell == Cell::kLSTM && n.attr_int("input_forget", 0) != 0;
  const bool lbr = cell == Cell::kGRU && n.attr_int("linear_before_reset", 0) != 0;
  const size_t nact = static_cast<size_t>(acts_of(cell));
  std::vector<std::string> names;
  if (const Attribute* a = n.attr("activations")) names = a->strings;
  if (names.empty()) {
    if (cell == Cell::kRNN)
      names = {"Tanh"};
    else if (cell == Cell::kGRU)
      names = {"Sigmoid", "Tanh"};
    else
      names = {"Sigmoid", "Tanh", "Tanh"};
  }
  if (names.size() == nact && dirs == 2) {
    const std::vector<std::string> one = names;
    names.insert(names.end(), one.begin(), one.end());
  }
  MS_CHECK_ARG(names.size() == nact * static_cast<size_t>(dirs),
               std::to_string(names.size()) + " activations given, expected " + std::to_string(nact * dirs));
  std::vector<float> alphas, betas;
  if (const Attribute* a = n.attr("activation_alpha")) alphas = a->floats;
  if (const Attribute* a = n.attr("activation_beta")) betas = a->floats;
  size_t ai = 0, bi = 0;
  std::vector<Activation> acts;
  for (const std::string& name : names) {
    MS_ASSIGN_OR_RETURN(Activation act, parse_activation(name, alphas, betas, ai, bi));
    acts.push_back(act);
  }
  PackedWeights packed;
  Tensor w_float, r_float;
  const Tensor* w = init.constant(n, 1);
  const Tensor* r = init.constant(n, 2);
  if (quantized) {
    MS_ASSIGN_OR_RETURN(w_float, dequantized_constant(n, init, 1, dirs));
    MS_ASSIGN_OR_RETURN(r_float, dequantized_constant(n, init, 2, dirs));
    if (!w_float.defined() || !r_float.defined()) w_float = r_float = Tensor{};
    w = w_float.defined() ? &w_float : nullptr;
    r = r_float.defined() ? &r_float : nullptr;
  }
  if (w && r && w->dtype() == DType::kFloat32 && r->dtype() == DType::kFloat32 && w->rank() == 3 && r->rank() == 3 &&
      w->dim(0) == dirs && r->dim(0) == dirs && w->dim(1) == r->dim(1) && r->dim(1) == gates_of(cell) * r->dim(2)) {
    const int64_t GH = w->dim(1), I = w->dim(2), H = r->dim(2);
    for (int dir = 0; dir < dirs; ++dir) {
      packed.w.push_back(
          DnnlMatMul::create(I, GH, w->data<float>() + dir * GH * I, true, nullptr, FusedActivation{}, init.packs()));
      const bool two_phase = cell == Cell::kGRU && !lbr;
      packed.r.push_back(two_phase ? nullptr
                                   : DnnlMatMul::create(H, GH, r->data<float>() + dir * GH * H, true, nullptr,
                                                        FusedActivation{}, init.packs()));
    }
  }
  return KernelPtr(new RecurrentKernel(cell, dirs, reverse, hidden, static_cast<int>(layout), clip, input_forget, lbr,
                                       std::move(acts), std::move(packed), quantized, std::move(w_float),
                                       std::move(r_float)));
}

}  // namespace

StatusOr<KernelPtr> create_onnx_RNN(const Node& n, const KernelInit& init) {
  return make_recurrent(Cell::kRNN, n, init);
}
StatusOr<KernelPtr> create_onnx_GRU(const Node& n, const KernelInit& init) {
  return make_recurrent(Cell::kGRU, n, init);
}
StatusOr<KernelPtr> create_onnx_LSTM(const Node& n, const KernelInit& init) {
  return make_recurrent(Cell::kLSTM, n, init);
}
StatusOr<KernelPtr> create_microsoft_DynamicQuantizeLSTM(const Node& n, const KernelInit& init) {
  return make_recurrent(Cell::kLSTM, n, init, /*quantized=*/true);
}

}  // namespace mserve
