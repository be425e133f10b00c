// The arithmetic of the fused MultiHeadAttention kernel (flash_attention.cu), in the order the
// device evaluates it: nvcc builds it into the kernel, g++ into tests/cpp/gpu, which runs
// flash_attention_host (the kernel's schedule replayed lane by lane) against the CPU kernel.
//
// Y = softmax(scale * Q K^T + mask) V without the scores in memory. A block owns one query tile
// of kFlashRows rows of one (batch, head): its Q rows, then one tile of kFlashKeys keys at a time
// of K and V, sit in shared memory. Warp w owns rows w * kFlashRowsPerWarp ... of the tile and
// lane l the key j0 + l of each key tile, so a tile's scores of a row are one value per lane:
//   s = fmaf(scale, q . k, add)  (the dot product a sequential fmaf over d; -inf where masked)
//   t = max over the lanes       (MaxF, combined as rows_math.h's combine_lanes / warp_combine)
//   m' = max(m, t); mu = m' or 0 while every key so far is masked (so exp never sees -inf - -inf)
//   a = exp(m - mu); p = exp(s - mu); l' = fmaf(l, a, sum over the lanes of p)
//   acc[c] = acc[c] * a, then acc[c] = fmaf(p_j, v_j[c], acc[c]) for the tile's keys j in order
// where lane l owns the output columns l, l + 32, l + 64, l + 96. The row is y = acc / l, or 0
// when every key was masked (m stays -inf), as the CPU kernel gives a fully masked row.
//
// Multiply-adds are written as fmaf, as in rows_math.h, so g++ and nvcc round them alike; expf
// is the one operation whose last bits may differ between the host and the device.
#pragma once
#include <math.h>

#include <cstdint>
#include <vector>

#include "gpu/ops/host_device.h"
#include "gpu/ops/rows_math.h"

namespace mserve::gpu::flash {

constexpr int kFlashWarps = 4;
constexpr int kFlashThreads = kFlashWarps * rows::kWarp;
constexpr int kFlashRowsPerWarp = 4;  // a row's state is 6 registers; 4 rows keep the kernel far from spilling
constexpr int kFlashRows = kFlashWarps * kFlashRowsPerWarp;  // query rows of a block
constexpr int kFlashKeys = rows::kWarp;                      // keys of a tile: one per lane
constexpr int kFlashMaxHead = 128;                           // D and Dv
constexpr int kFlashCols = kFlashMaxHead / rows::kWarp;      // output columns of a lane
constexpr int64_t kFlashMaxKeys = 512;                       // Lk the fused path is chosen for

// The mask of the scores [B, H, Lq, Lk], as MhaMask describes it (attention.h): key j of row
// (b, h, i) reads element b * sb + h * sh + i * si + j * sj; at most one of add / keep is set.
struct FlashMask {
  const float* add = nullptr;           // float mask: added to the scores
  const unsigned char* keep = nullptr;  // bool mask: true attends
  int64_t sb = 0, sh = 0, si = 0, sj = 1;
};

// One attention call. Layout bhsd: Q [B, H, Lq, D], K [B, H, Lk, D], V [B, H, Lk, Dv],
// Y [B, H, Lq, Dv]; bshd: [B, L, H, *] for each.
struct FlashParams {
  const float* q = nullptr;
  const float* k = nullptr;
  const float* v = nullptr;
  float* y = nullptr;
  FlashMask mask;
  int64_t B = 0, H = 0, Lq = 0, Lk = 0;
  int D = 0, Dv = 0;
  bool bshd = false;
  float scale = 1.0f;
};

// Whether the fused kernel runs these sizes (else the two-product path does).
MS_HD bool flash_fits(int64_t D, int64_t Dv, int64_t Lk) {
  return D >= 1 && D <= kFlashMaxHead && Dv >= 1 && Dv <= kFlashMaxHead && Lk >= 1 && Lk <= kFlashMaxKeys;
}

// ---- shared memory: Q [kFlashRows, D], K [kFlashKeys, key_stride], V [kFlashKeys, Dv] ----

// A K row's stride in shared memory: odd, so the 32 lanes reading 32 keys' element d hit 32
// different banks (a stride of D = 128 would put them all in one).
MS_HD int flash_key_stride(int D) { return D | 1; }
MS_HD int64_t flash_smem_floats(int D, int Dv) {
  return static_cast<int64_t>(kFlashRows) * D + static_cast<int64_t>(kFlashKeys) * flash_key_stride(D) +
         static_cast<int64_t>(kFlashKeys) * Dv;
}

// Element offset of row i (of L) of head (b, h) in a tensor whose rows are W wide.
MS_HD int64_t flash_row_offset(const FlashParams& p, int64_t b, int64_t h, int64_t i, int64_t L, int64_t W) {
  return p.bshd ? ((b * L + i) * p.H + h) * W : ((b * p.H + h) * L + i) * W;
}

// The block's work units: (b, h, query tile), the tile fastest.
MS_HD int64_t flash_query_tiles(const FlashParams& p) { return (p.Lq + kFlashRows - 1) / kFlashRows; }
MS_HD int64_t flash_units(const FlashParams& p) { return p.B * p.H * flash_query_tiles(p); }
struct FlashUnit {
  int64_t b, h, i0;
};
MS_HD FlashUnit flash_unit(const FlashParams& p, int64_t u) {
  const int64_t tiles = flash_query_tiles(p), bh = u / tiles;
  return FlashUnit{bh / p.H, bh % p.H, (u % tiles) * kFlashRows};
}

// Q rows i0 ... of the unit into qs, zeros past Lq: a warp per row, its lanes along the row.
MS_HD void flash_load_q(const FlashParams& p, const FlashUnit& u, float* qs, int warp, int lane, int warps) {
  for (int r = warp; r < kFlashRows; r += warps) {
    const int64_t i = u.i0 + r;
    const float* src = i < p.Lq ? p.q + flash_row_offset(p, u.b, u.h, i, p.Lq, p.D) : nullptr;
    for (int d = lane; d < p.D; d += rows::kWarp) qs[r * p.D + d] = src ? src[d] : 0.0f;
  }
}

// K and V rows j0 ... j0 + kFlashKeys - 1 (those below Lk) into ks / vs.
MS_HD void flash_load_kv(const FlashParams& p, const FlashUnit& u, int64_t j0, float* ks, float* vs, int warp, int lane,
                         int warps) {
  const int kst = flash_key_stride(p.D);
  for (int r = warp; r < kFlashKeys && j0 + r < p.Lk; r += warps) {
    const float* k = p.k + flash_row_offset(p, u.b, u.h, j0 + r, p.Lk, p.D);
    const float* v = p.v + flash_row_offset(p, u.b, u.h, j0 + r, p.Lk, p.Dv);
    for (int d = lane; d < p.D; d += rows::kWarp) ks[r * kst + d] = k[d];
    for (int d = lane; d < p.Dv; d += rows::kWarp) vs[r * p.Dv + d] = v[d];
  }
}

// ---- one query row's running state (each lane holds a copy; acc is the lane's columns) ----

struct FlashRow {
  float m = -INFINITY;  // the running maximum of the masked scores
  float l = 0.0f;       // the running sum of exp(s - m)
  float acc[kFlashCols] = {};
};

// Lane `lane`'s masked scores of key j0 + lane for the warp's rows r0 ... r0 + kFlashRowsPerWarp
// - 1 of the tile (s[r]); -inf for keys past Lk, rows past Lq and masked keys.
MS_HD void flash_lane_scores(const FlashParams& p, const FlashUnit& u, const float* qs, const float* ks, int r0,
                             int64_t j0, int lane, float* s) {
  const int64_t j = j0 + lane;
  if (j >= p.Lk) {
    for (int r = 0; r < kFlashRowsPerWarp; ++r) s[r] = -INFINITY;
    return;
  }
  float dot[kFlashRowsPerWarp];
  for (int r = 0; r < kFlashRowsPerWarp; ++r) dot[r] = 0.0f;
  const float* kr = ks + lane * flash_key_stride(p.D);
  for (int d = 0; d < p.D; ++d) {
    const float kd = kr[d];
    for (int r = 0; r < kFlashRowsPerWarp; ++r) dot[r] = fmaf(qs[(r0 + r) * p.D + d], kd, dot[r]);
  }
  const FlashMask& mk = p.mask;
  for (int r = 0; r < kFlashRowsPerWarp; ++r) {
    const int64_t i = u.i0 + r0 + r;
    if (i >= p.Lq) {
      s[r] = -INFINITY;
      continue;
    }
    const int64_t m = u.b * mk.sb + u.h * mk.sh + i * mk.si + j * mk.sj;
    if (mk.keep && !mk.keep[m])
      s[r] = -INFINITY;
    else
      s[r] = fmaf(p.scale, dot[r], mk.add ? mk.add[m] : 0.0f);
  }
}

// Takes the tile's maximum t of a row's scores: moves the row to the new maximum (its accumulator
// rescaled, the factor to *a for the sum) and returns the value the tile's exponents subtract.
MS_HD float flash_rescale(FlashRow& st, float t, float* a) {
  const float m = rows::MaxF()(st.m, t);
  const float mu = m == -INFINITY ? 0.0f : m;
  *a = expf(st.m - mu);
  st.m = m;
  for (int c = 0; c < kFlashCols; ++c) st.acc[c] *= *a;
  return mu;
}

MS_HD float flash_prob(float s, float mu) { return expf(s - mu); }

// The row's sum rescaled by a plus the tile's sum of probabilities (combined over the lanes), in
// one rounding: written apart, ptxas would fuse the multiply and the add anyway.
MS_HD void flash_add_sum(FlashRow& st, float a, float tile_sum) { st.l = fmaf(st.l, a, tile_sum); }

// Key j of the tile for the warp's rows: pj[r] the row's probability, vj the key's V row.
MS_HD void flash_accumulate(FlashRow* st, const float* pj, const float* vj, int lane, int Dv) {
  for (int c = 0; c < kFlashCols; ++c) {
    const int col = lane + c * rows::kWarp;
    if (col >= Dv) break;
    const float v = vj[col];
    for (int r = 0; r < kFlashRowsPerWarp; ++r) st[r].acc[c] = fmaf(pj[r], v, st[r].acc[c]);
  }
}

// The lane's columns of output row i.
MS_HD void flash_store(const FlashParams& p, const FlashUnit& u, int64_t i, const FlashRow& st, int lane) {
  float* y = p.y + flash_row_offset(p, u.b, u.h, i, p.Lq, p.Dv);
  const bool none = st.m == -INFINITY;  // every key masked: the row attends nothing
  for (int c = 0; c < kFlashCols; ++c) {
    const int col = lane + c * rows::kWarp;
    if (col >= p.Dv) break;
    y[col] = none ? 0.0f : st.acc[c] / st.l;
  }
}

// Keys of the tile at j0 that exist.
MS_HD int flash_tile_keys(const FlashParams& p, int64_t j0) {
  return p.Lk - j0 < kFlashKeys ? static_cast<int>(p.Lk - j0) : kFlashKeys;
}

// ---- the kernel's schedule on the host ----

// Y of every unit, each step in the device's order: the lanes of a warp run one after another
// between the points where the device combines or exchanges their values.
inline void flash_attention_host(const FlashParams& p) {
  constexpr int W = rows::kWarp, R = kFlashRowsPerWarp;
  std::vector<float> qs(static_cast<size_t>(kFlashRows) * p.D),
      ks(static_cast<size_t>(kFlashKeys) * flash_key_stride(p.D)), vs(static_cast<size_t>(kFlashKeys) * p.Dv);
  std::vector<FlashRow> st(static_cast<size_t>(kFlashWarps) * W * R);  // [warp][lane][row]
  float s[kFlashWarps][W][R], part[W], pj[R];
  for (int64_t n = 0; n < flash_units(p); ++n) {
    const FlashUnit u = flash_unit(p, n);
    for (int w = 0; w < kFlashWarps; ++w)
      for (int l = 0; l < W; ++l) flash_load_q(p, u, qs.data(), w, l, kFlashWarps);
    for (auto& x : st) x = FlashRow();
    for (int64_t j0 = 0; j0 < p.Lk; j0 += kFlashKeys) {
      for (int w = 0; w < kFlashWarps; ++w)
        for (int l = 0; l < W; ++l) flash_load_kv(p, u, j0, ks.data(), vs.data(), w, l, kFlashWarps);
      for (int w = 0; w < kFlashWarps; ++w) {
        FlashRow* sw = &st[static_cast<size_t>(w) * W * R];
        for (int l = 0; l < W; ++l) flash_lane_scores(p, u, qs.data(), ks.data(), w * R, j0, l, s[w][l]);
        for (int r = 0; r < R; ++r) {
          for (int l = 0; l < W; ++l) part[l] = s[w][l][r];
          const float t = rows::combine_lanes(part, W, rows::MaxF());
          float mu = 0.0f, a = 0.0f;
          for (int l = 0; l < W; ++l) mu = flash_rescale(sw[l * R + r], t, &a);
          for (int l = 0; l < W; ++l) part[l] = s[w][l][r] = flash_prob(s[w][l][r], mu);
          const float sum = rows::combine_lanes(part, W, rows::AddF());
          for (int l = 0; l < W; ++l) flash_add_sum(sw[l * R + r], a, sum);
        }
        const int nk = flash_tile_keys(p, j0);
        for (int j = 0; j < nk; ++j) {
          for (int r = 0; r < R; ++r) pj[r] = s[w][j][r];
          for (int l = 0; l < W; ++l) flash_accumulate(&sw[l * R], pj, vs.data() + j * p.Dv, l, p.Dv);
        }
      }
    }
    for (int w = 0; w < kFlashWarps; ++w)
      for (int r = 0; r < R; ++r) {
        const int64_t i = u.i0 + w * R + r;
        if (i >= p.Lq) continue;
        for (int l = 0; l < W; ++l) flash_store(p, u, i, st[(static_cast<size_t>(w) * W + l) * R + r], l);
      }
  }
}

}  // namespace mserve::gpu::flash
