// The fused MultiHeadAttention kernel on the tensor cores (precision fp16 / bf16,
// flash_tc.cu): the same online softmax as flash_attention_math.h, with the two products as
// 16x16x16 MMA tiles (16-bit operands, float32 accumulation). Everything but the MMA calls is
// here, as MS_HD code both compilers build: the device kernel calls it, and flash_tc_host
// replays the kernel's schedule on the host with the MMA tiles as float32 loops, which
// tests/cpp/gpu checks against the CPU kernel and against attention in double.
//
// A block of kTcWarps warps owns kTcRows query rows of one (batch, head); warp w the 16 rows
// w * 16 ... (one MMA row tile). Shared memory holds the rows' Q, then one tile of kTcKeys keys
// of K and V at a time, all rounded to the 16-bit operand type (zeros past D, Dv, Lq and Lk),
// and per warp the tile's scores S [16, kTcKeys] (float), their probabilities P [16, kTcKeys]
// (16 bits) and the output accumulator O [16, Dv] (float). Per key tile a warp:
//   S = Q K^T                                (MMA, float32 accumulation)
//   lanes 2r and 2r + 1 take row r's 64 scores, 32 each:
//     s = fmaf(scale, S, add), -inf where masked or past Lk;  t = max over both lanes
//     m' = max(m, t); mu = m' or 0 while every key so far is masked; a = exp(m - mu)
//     p = exp(s - mu) rounded to 16 bits, into P; l' = fmaf(l, a, sum of the rounded p)
//     O's row times a (each lane half of the columns)
//   O += P V                                 (MMA, float32 accumulation)
// and at the end y = O / l, or 0 for a row whose every key was masked.
#pragma once
#include <math.h>

#include <cstdint>
#include <vector>

#include "gpu/ops/convert_math.h"
#include "gpu/ops/flash_attention_math.h"

namespace mserve::gpu::flash {

constexpr int kTcWarps = 4;
constexpr int kTcThreads = kTcWarps * rows::kWarp;
constexpr int kTcTile = 16;                               // the MMA's M, N and K
constexpr int kTcRows = kTcWarps * kTcTile;               // query rows of a block
constexpr int kTcKeys = 64;                               // keys of a tile
constexpr int kTcLanesPerRow = rows::kWarp / kTcTile;     // 2
constexpr int kTcColsPerLane = kTcKeys / kTcLanesPerRow;  // a lane's scores of its row: 32

MS_HD int tc_pad16(int d) { return (d + kTcTile - 1) / kTcTile * kTcTile; }

// Shared memory of a block: leading dimensions padded (8 16-bit or 4 float elements) so the
// rows of a tile start in different banks, each region 128-byte aligned; every MMA tile then
// starts on the 32 bytes the MMA loads need.
struct TcLayout {
  int dp = 0, dvp = 0;            // D and Dv rounded up to 16
  int ldq = 0, ldk = 0, ldv = 0;  // Q [kTcRows][ldq], K [kTcKeys][ldk], V [kTcKeys][ldv]: 16-bit
  int lds = 0, ldp = 0, ldo = 0;  // per warp: S [16][lds] float, P [16][ldp] 16-bit, O [16][ldo] float
  int64_t q = 0, k = 0, v = 0, s = 0, p = 0, o = 0;  // byte offsets
  int64_t bytes = 0;
};

MS_HD int64_t tc_align128(int64_t b) { return (b + 127) / 128 * 128; }

MS_HD TcLayout tc_layout(int D, int Dv) {
  TcLayout L;
  L.dp = tc_pad16(D), L.dvp = tc_pad16(Dv);
  L.ldq = L.ldk = L.dp + 8;
  L.ldv = L.dvp + 8;
  L.lds = kTcKeys + 4, L.ldp = kTcKeys + 8, L.ldo = L.dvp + 4;
  int64_t at = 0;
  L.q = at, at = tc_align128(at + int64_t{kTcRows} * L.ldq * 2);
  L.k = at, at = tc_align128(at + int64_t{kTcKeys} * L.ldk * 2);
  L.v = at, at = tc_align128(at + int64_t{kTcKeys} * L.ldv * 2);
  L.s = at, at = tc_align128(at + int64_t{kTcWarps} * kTcTile * L.lds * 4);
  L.p = at, at = tc_align128(at + int64_t{kTcWarps} * kTcTile * L.ldp * 2);
  L.o = at, at = tc_align128(at + int64_t{kTcWarps} * kTcTile * L.ldo * 4);
  L.bytes = at;
  return L;
}

// The block's work units: (b, h, tile of kTcRows query rows), the tile fastest.
MS_HD int64_t tc_query_tiles(const FlashParams& p) { return (p.Lq + kTcRows - 1) / kTcRows; }
MS_HD int64_t tc_units(const FlashParams& p) { return p.B * p.H * tc_query_tiles(p); }
MS_HD FlashUnit tc_unit(const FlashParams& p, int64_t n) {
  const int64_t tiles = tc_query_tiles(p), bh = n / tiles;
  return FlashUnit{bh / p.H, bh % p.H, (n % tiles) * kTcRows};
}

// Q rows i0 ... of the unit, rounded to t, zeros past Lq and D: thread `tid` of `threads` takes
// every threads-th element, so neighbouring threads read neighbouring columns.
MS_HD void tc_load_q(const FlashParams& p, const FlashUnit& u, uint16_t* qs, const TcLayout& L, Operand t, int tid,
                     int threads) {
  for (int e = tid; e < kTcRows * L.dp; e += threads) {
    const int r = e / L.dp, d = e % L.dp;
    const int64_t i = u.i0 + r;
    const float x = i < p.Lq && d < p.D ? p.q[flash_row_offset(p, u.b, u.h, i, p.Lq, p.D) + d] : 0.0f;
    qs[r * L.ldq + d] = to_bits16(x, t);
  }
}

// K and V rows j0 ... j0 + kTcKeys - 1, rounded to t, zeros past Lk, D and Dv.
MS_HD void tc_load_kv(const FlashParams& p, const FlashUnit& u, int64_t j0, uint16_t* ks, uint16_t* vs,
                      const TcLayout& L, Operand t, int tid, int threads) {
  for (int e = tid; e < kTcKeys * L.dp; e += threads) {
    const int r = e / L.dp, d = e % L.dp;
    const int64_t j = j0 + r;
    const float x = j < p.Lk && d < p.D ? p.k[flash_row_offset(p, u.b, u.h, j, p.Lk, p.D) + d] : 0.0f;
    ks[r * L.ldk + d] = to_bits16(x, t);
  }
  for (int e = tid; e < kTcKeys * L.dvp; e += threads) {
    const int r = e / L.dvp, d = e % L.dvp;
    const int64_t j = j0 + r;
    const float x = j < p.Lk && d < p.Dv ? p.v[flash_row_offset(p, u.b, u.h, j, p.Lk, p.Dv) + d] : 0.0f;
    vs[r * L.ldv + d] = to_bits16(x, t);
  }
}

// A query row's running state (both of its lanes hold the same copy).
struct TcRow {
  float m = -INFINITY;  // the running maximum of the masked scores
  float l = 0.0f;       // the running sum of the rounded exp(s - m)
};

// The lane's 32 scores of row i (srow holds the row's dot products Q K^T of the tile): replaced
// by the masked, scaled scores (-inf past Lq, past Lk and where masked); returns their maximum.
MS_HD float tc_scores(const FlashParams& p, const FlashUnit& u, int64_t i, int64_t j0, int c0, float* srow) {
  const FlashMask& mk = p.mask;
  float t = -INFINITY;
  for (int c = c0; c < c0 + kTcColsPerLane; ++c) {
    const int64_t j = j0 + c;
    float s = -INFINITY;
    if (j < p.Lk && i < p.Lq) {
      const int64_t m = u.b * mk.sb + u.h * mk.sh + i * mk.si + j * mk.sj;
      if (!mk.keep || mk.keep[m]) s = fmaf(p.scale, srow[c], mk.add ? mk.add[m] : 0.0f);
    }
    srow[c] = s;
    t = rows::MaxF()(t, s);
  }
  return t;
}

// Moves the row to the tile's maximum t (over both lanes): the factor its sum and accumulator
// are rescaled by to *a; returns what the tile's exponents subtract.
MS_HD float tc_rescale(TcRow& st, float t, float* a) {
  const float m = rows::MaxF()(st.m, t);
  const float mu = m == -INFINITY ? 0.0f : m;
  *a = expf(st.m - mu);
  st.m = m;
  return mu;
}

// The lane's probabilities exp(s - mu), rounded to t, into prow; returns the sum of the rounded
// values (the ones P V multiplies).
MS_HD float tc_probs(const float* srow, uint16_t* prow, int c0, float mu, Operand t) {
  float sum = 0.0f;
  for (int c = c0; c < c0 + kTcColsPerLane; ++c) {
    const uint16_t b = to_bits16(expf(srow[c] - mu), t);
    prow[c] = b;
    sum += from_bits16(b, t);
  }
  return sum;
}

MS_HD void tc_add_sum(TcRow& st, float a, float tile_sum) { st.l = fmaf(st.l, a, tile_sum); }

// The lane's half of the row's accumulator (every other column) times a.
MS_HD void tc_rescale_acc(float* orow, int half, int dvp, float a) {
  for (int c = half; c < dvp; c += kTcLanesPerRow) orow[c] *= a;
}

// The lane's half of output row i (every other column).
MS_HD void tc_store(const FlashParams& p, const FlashUnit& u, int64_t i, const TcRow& st, const float* orow, int half) {
  if (i >= p.Lq) return;
  float* y = p.y + flash_row_offset(p, u.b, u.h, i, p.Lq, p.Dv);
  const bool none = st.m == -INFINITY;  // every key masked: the row attends nothing
  for (int c = half; c < p.Dv; c += kTcLanesPerRow) y[c] = none ? 0.0f : orow[c] / st.l;
}

// ---- the kernel's schedule on the host, the MMA tiles as float32 loops ----

inline void flash_tc_host(const FlashParams& p, Operand t) {
  const TcLayout L = tc_layout(p.D, p.Dv);
  std::vector<uint16_t> qs(size_t(kTcRows) * L.ldq), ks(size_t(kTcKeys) * L.ldk), vs(size_t(kTcKeys) * L.ldv),
      P(size_t(kTcTile) * L.ldp);
  std::vector<float> S(size_t(kTcTile) * L.lds), O(size_t(kTcWarps) * kTcTile * L.ldo);
  std::vector<TcRow> st(kTcRows);
  auto f = [&](uint16_t b) { return from_bits16(b, t); };
  for (int64_t n = 0; n < tc_units(p); ++n) {
    const FlashUnit u = tc_unit(p, n);
    tc_load_q(p, u, qs.data(), L, t, 0, 1);
    for (float& x : O) x = 0.0f;
    for (TcRow& r : st) r = TcRow();
    for (int64_t j0 = 0; j0 < p.Lk; j0 += kTcKeys) {
      tc_load_kv(p, u, j0, ks.data(), vs.data(), L, t, 0, 1);
      for (int w = 0; w < kTcWarps; ++w) {
        float* Ow = O.data() + size_t(w) * kTcTile * L.ldo;
        for (int r = 0; r < kTcTile; ++r)  // S = Q K^T
          for (int c = 0; c < kTcKeys; ++c) {
            float acc = 0.0f;
            for (int d = 0; d < L.dp; ++d) acc = fmaf(f(qs[(w * kTcTile + r) * L.ldq + d]), f(ks[c * L.ldk + d]), acc);
            S[r * L.lds + c] = acc;
          }
        for (int r = 0; r < kTcTile; ++r) {
          const int64_t i = u.i0 + w * kTcTile + r;
          float* srow = S.data() + r * L.lds;
          const float t0 = tc_scores(p, u, i, j0, 0, srow), t1 = tc_scores(p, u, i, j0, kTcColsPerLane, srow);
          float a = 0.0f;
          const float mu = tc_rescale(st[w * kTcTile + r], rows::MaxF()(t0, t1), &a);
          const float s0 = tc_probs(srow, P.data() + r * L.ldp, 0, mu, t);
          const float s1 = tc_probs(srow, P.data() + r * L.ldp, kTcColsPerLane, mu, t);
          tc_add_sum(st[w * kTcTile + r], a, s0 + s1);
          for (int h = 0; h < kTcLanesPerRow; ++h) tc_rescale_acc(Ow + r * L.ldo, h, L.dvp, a);
        }
        for (int r = 0; r < kTcTile; ++r)  // O += P V
          for (int e = 0; e < L.dvp; ++e) {
            float acc = Ow[r * L.ldo + e];
            for (int c = 0; c < kTcKeys; ++c) acc = fmaf(f(P[r * L.ldp + c]), f(vs[c * L.ldv + e]), acc);
            Ow[r * L.ldo + e] = acc;
          }
      }
    }
    for (int w = 0; w < kTcWarps; ++w)
      for (int r = 0; r < kTcTile; ++r)
        for (int h = 0; h < kTcLanesPerRow; ++h)
          tc_store(p, u, u.i0 + w * kTcTile + r, st[w * kTcTile + r], O.data() + (size_t(w) * kTcTile + r) * L.ldo, h);
  }
}

}  // namespace mserve::gpu::flash
