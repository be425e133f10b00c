// The data-movement kernels on the GPU without a GPU: the index arithmetic the device runs
// (transpose_math.h, concat_slice_math.h, gather_math.h, compiled here by g++) is evaluated over
// whole tensors on the host, word by word as the kernels move them, and must give the CPU
// runtime's bytes exactly, on random shapes with odd and size-1 dims, empty tensors, negative
// axes and steps. Then: the CUDA backend creates each kernel, says which inputs it reads on the
// host, and refuses what it does not run at plan time.
#include <gtest/gtest.h>

#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "core/kernels/common.h"
#include "gpu/context.h"
#include "gpu/ops/concat_slice_math.h"
#include "gpu/ops/gather_math.h"
#include "gpu/ops/transpose_math.h"
#include "helpers.h"

namespace mserve::gpu {
namespace {

using mserve::testing::GraphBuilder;
using mserve::testing::int_attr;
using mserve::testing::ints_attr;
using mserve::testing::string_attr;
using Bytes = std::vector<unsigned char>;

uint64_t addr(const void* p) { return reinterpret_cast<uintptr_t>(p); }

Tensor ints(const std::vector<int64_t>& v) {
  Tensor t = Tensor::empty(DType::kInt64, Shape{static_cast<int64_t>(v.size())}).value();
  for (size_t i = 0; i < v.size(); ++i) t.data<int64_t>()[i] = v[i];
  return t;
}

// Random bytes: the kernels move bytes, whatever they mean.
Tensor random_bytes(DType t, const Shape& s, std::mt19937& rng) {
  Tensor x = Tensor::empty(t, s).value();
  auto* p = static_cast<unsigned char*>(x.raw());
  for (size_t i = 0; i < x.nbytes(); ++i) p[i] = static_cast<unsigned char>(rng());
  return x;
}

DType random_dtype(std::mt19937& rng) {
  const DType types[] = {DType::kFloat32, DType::kInt64, DType::kUInt8, DType::kInt16, DType::kFloat64};
  return types[rng() % 5];
}

std::vector<int64_t> random_dims(std::mt19937& rng, int rank, bool allow_zero) {
  const int64_t choices[] = {1, 2, 3, 4, 5, 7, 1, 6, 9, 33};
  std::vector<int64_t> d(rank);
  for (auto& v : d) v = allow_zero && rng() % 12 == 0 ? 0 : choices[rng() % 10];
  return d;
}

// Runs the graph on the CPU (one thread, no rewrites).
Status run_cpu(const Graph& g, const std::vector<Tensor>& in, std::vector<Tensor>* out) {
  SessionOptions o;
  o.threads = 1;
  o.optimize = false;
  MS_ASSIGN_OR_RETURN(auto s, Session::create(g, o));
  return s->run(in, out);
}

Bytes bytes_of(const Tensor& t) {
  const auto* p = static_cast<const unsigned char*>(t.raw());
  return Bytes(p, p + t.nbytes());
}

// The strided copy kernel on the host: simplified and widened as the launch does, output word
// i from source word strided_source(m, i), 32-bit indices as the device uses them.
Bytes eval_strided(StridedMap m, int esize, const void* src, size_t out_bytes) {
  Bytes out(out_bytes);
  if (out_bytes == 0) return out;
  simplify(m);
  const int w = widen(m, esize, addr(src), addr(out.data()));
  const int64_t n = m.numel();
  EXPECT_EQ(static_cast<size_t>(n) * w, out_bytes);
  for (int64_t i = 0; i < n; ++i) {
    const int64_t s = strided_source<uint32_t>(m, static_cast<uint32_t>(i));
    EXPECT_EQ(s, strided_source<int64_t>(m, i));
    std::memcpy(out.data() + i * w, static_cast<const char*>(src) + s * w, w);
  }
  return out;
}

// ------------------------------------------------------------------------------- Transpose

// The tiled kernel on the host, thread by thread: each tile is read into the shared array by
// rows, then written out by columns.
Bytes eval_tiles(int64_t B, int64_t R, int64_t C, int esize, const void* src) {
  Bytes out(static_cast<size_t>(B * R * C * esize));
  const auto* in = static_cast<const unsigned char*>(src);
  const int64_t ntiles = B * tiles_along(R) * tiles_along(C);
  std::vector<unsigned char> tile(kTransposeTile * (kTransposeTile + 1) * esize);
  for (int64_t t = 0; t < ntiles; ++t) {
    const TileCoords tc = tile_coords(t, R, C);
    for (int ty = 0; ty < kTransposeTileRows; ++ty)
      for (int tx = 0; tx < kTransposeTile; ++tx)
        for (int k = ty; k < kTransposeTile; k += kTransposeTileRows) {
          const int64_t r = tc.r0 + k, c = tc.c0 + tx;
          if (r < R && c < C)
            std::memcpy(&tile[(k * (kTransposeTile + 1) + tx) * esize], in + tile_in_offset(R, C, tc.b, r, c) * esize,
                        esize);
        }
    for (int ty = 0; ty < kTransposeTileRows; ++ty)
      for (int tx = 0; tx < kTransposeTile; ++tx)
        for (int k = ty; k < kTransposeTile; k += kTransposeTileRows) {
          const int64_t c = tc.c0 + k, r = tc.r0 + tx;
          if (r < R && c < C)
            std::memcpy(out.data() + tile_out_offset(R, C, tc.b, r, c) * esize,
                        &tile[(tx * (kTransposeTile + 1) + k) * esize], esize);
        }
  }
  return out;
}

Bytes eval_transpose(const Tensor& x, const std::vector<int>& perm, TransposePlan::Kind* kind) {
  const int esize = static_cast<int>(dtype_size(x.dtype()));
  if (x.numel() == 0) return {};
  const TransposePlan p = plan_transpose(x.rank(), x.shape().begin(), perm.data());
  *kind = p.kind;
  if (p.kind == TransposePlan::kCopy) return bytes_of(x);
  if (p.kind == TransposePlan::kTiles) return eval_tiles(p.B, p.R, p.C, esize, x.raw());
  return eval_strided(p.map, esize, x.raw(), x.nbytes());
}

TEST(Transpose, RandomPermutationsMatchTheCpu) {
  std::mt19937 rng(7);
  int kinds[3] = {};
  for (int it = 0; it < 300; ++it) {
    const int rank = 1 + static_cast<int>(rng() % 6);
    const auto dims = random_dims(rng, rank, true);
    std::vector<int> perm(rank);
    for (int i = 0; i < rank; ++i) perm[i] = i;
    std::shuffle(perm.begin(), perm.end(), rng);
    const bool reverse = rng() % 8 == 0;  // no perm attribute: the dims reversed
    if (reverse)
      for (int i = 0; i < rank; ++i) perm[i] = rank - 1 - i;
    const DType dt = random_dtype(rng);
    GraphBuilder b;
    b.input("x", dt, dims);
    Node& n = b.node("Transpose", {"x"}, {"y"});
    if (!reverse) n.attrs["perm"] = ints_attr(std::vector<int64_t>(perm.begin(), perm.end()));
    Graph g = b.output("y").build();
    Tensor x = random_bytes(dt, Shape(dims.begin(), dims.end()), rng);
    std::vector<Tensor> out;
    ASSERT_TRUE(run_cpu(g, {x}, &out).ok());
    TransposePlan::Kind kind = TransposePlan::kCopy;
    const Bytes got = eval_transpose(x, perm, &kind);
    ++kinds[kind];
    ASSERT_EQ(got, bytes_of(out[0])) << "shape " << x.shape().str() << " perm " << ::testing::PrintToString(perm)
                                     << " dtype " << dtype_name(dt) << " kind " << kind;
  }
  EXPECT_GT(kinds[TransposePlan::kTiles], 10);
  EXPECT_GT(kinds[TransposePlan::kStrided], 10);
}

TEST(Transpose, LargeMatricesAndRank8RunTheirPlannedKernels) {
  std::mt19937 rng(11);
  struct Case {
    std::vector<int64_t> dims;
    std::vector<int> perm;
    TransposePlan::Kind kind;
  };
  const Case cases[] = {
      {{67, 45}, {1, 0}, TransposePlan::kTiles},                                      // ragged tiles
      {{3, 40, 1, 70}, {0, 3, 2, 1}, TransposePlan::kTiles},                          // batched, size-1 dim dropped
      {{2, 3, 4, 5}, {0, 2, 3, 1}, TransposePlan::kTiles},                            // NCHW -> NHWC
      {{2, 3, 4, 8}, {1, 0, 2, 3}, TransposePlan::kStrided},                          // contiguous runs of 32 floats
      {{1, 5, 1, 7}, {2, 0, 1, 3}, TransposePlan::kCopy},                             // order kept
      {{2, 1, 3, 2, 2, 3, 1, 2}, {7, 5, 3, 1, 0, 2, 4, 6}, TransposePlan::kStrided},  // rank 8
  };
  for (const Case& c : cases) {
    Tensor x = random_bytes(DType::kFloat32, Shape(c.dims.begin(), c.dims.end()), rng);
    GraphBuilder b;
    b.input("x", DType::kFloat32, c.dims);
    b.node("Transpose", {"x"}, {"y"}).attrs["perm"] = ints_attr(std::vector<int64_t>(c.perm.begin(), c.perm.end()));
    std::vector<Tensor> out;
    ASSERT_TRUE(run_cpu(b.output("y").build(), {x}, &out).ok());
    TransposePlan::Kind kind = TransposePlan::kCopy;
    EXPECT_EQ(eval_transpose(x, c.perm, &kind), bytes_of(out[0])) << x.shape().str();
    EXPECT_EQ(kind, c.kind) << x.shape().str();
  }
}

// ----------------------------------------------------------------------------------- Slice

TEST(MovementSlice, RandomSlicesWithNegativeStepsMatchTheCpu) {
  std::mt19937 rng(3);
  const int64_t big = std::numeric_limits<int64_t>::max(), small = std::numeric_limits<int64_t>::min();
  for (int it = 0; it < 400; ++it) {
    const int rank = 1 + static_cast<int>(rng() % 5);
    const auto dims = random_dims(rng, rank, true);
    const DType dt = random_dtype(rng);
    // A random subset of the axes, in random order, some named negatively.
    std::vector<int64_t> order(rank);
    for (int i = 0; i < rank; ++i) order[i] = i;
    std::shuffle(order.begin(), order.end(), rng);
    const int k = 1 + static_cast<int>(rng() % rank);
    std::vector<int64_t> starts, ends, axes, steps;
    for (int i = 0; i < k; ++i) {
      const int64_t a = order[i], dim = dims[a];
      axes.push_back(rng() % 2 ? a : a - rank);
      const int64_t step_choices[] = {1, 2, 3, -1, -2, -3, 1, -1};
      steps.push_back(step_choices[rng() % 8]);
      auto pick = [&]() -> int64_t {
        switch (rng() % 8) {
          case 0: return big;
          case 1: return small;
          default: return static_cast<int64_t>(rng() % (2 * dim + 7)) - dim - 3;
        }
      };
      starts.push_back(pick());
      ends.push_back(pick());
    }
    GraphBuilder b;
    b.input("x", dt, dims);
    b.constant("starts", ints(starts)).constant("ends", ints(ends)).constant("axes", ints(axes));
    b.constant("steps", ints(steps));
    b.node("Slice", {"x", "starts", "ends", "axes", "steps"}, {"y"});
    Tensor x = random_bytes(dt, Shape(dims.begin(), dims.end()), rng);
    std::vector<Tensor> out;
    ASSERT_TRUE(run_cpu(b.output("y").build(), {x}, &out).ok());

    int64_t start[8], step[8], len[8];
    for (int d = 0; d < rank; ++d) start[d] = 0, step[d] = 1, len[d] = dims[d];
    for (int i = 0; i < k; ++i) {
      const int64_t a = axes[i] < 0 ? axes[i] + rank : axes[i];
      const SliceAxis s = slice_axis(dims[a], starts[i], ends[i], steps[i]);
      start[a] = s.start, step[a] = steps[i], len[a] = s.len;
    }
    const Shape want(len, len + rank);
    ASSERT_EQ(want, out[0].shape());
    if (out[0].numel() == 0) continue;
    const StridedMap m = slice_map(rank, dims.data(), start, step, len);
    ASSERT_EQ(eval_strided(m, static_cast<int>(dtype_size(dt)), x.raw(), out[0].nbytes()), bytes_of(out[0]))
        << x.shape().str() << " starts " << ints_str(starts) << " ends " << ints_str(ends) << " axes " << ints_str(axes)
        << " steps " << ints_str(steps);
  }
}

// --------------------------------------------------------------------------- Expand, Tile

TEST(MovementExpand, RandomBroadcastsMatchTheCpu) {
  std::mt19937 rng(5);
  for (int it = 0; it < 200; ++it) {
    const int out_rank = 1 + static_cast<int>(rng() % 5);
    const auto target = random_dims(rng, out_rank, true);
    const int in_rank = 1 + static_cast<int>(rng() % out_rank);
    std::vector<int64_t> in(target.end() - in_rank, target.end());
    for (auto& d : in)
      if (rng() % 2) d = 1;
    std::vector<int64_t> shape = target;  // the shape input may itself say 1 where the input is larger
    for (int d = 0; d < out_rank; ++d) {
      const int i = d - (out_rank - in_rank);
      if (i >= 0 && in[i] != 1 && rng() % 3 == 0) shape[d] = 1;
    }
    const DType dt = random_dtype(rng);
    GraphBuilder b;
    b.input("x", dt, in);
    b.constant("shape", ints(shape));
    b.node("Expand", {"x", "shape"}, {"y"});
    Tensor x = random_bytes(dt, Shape(in.begin(), in.end()), rng);
    std::vector<Tensor> out;
    ASSERT_TRUE(run_cpu(b.output("y").build(), {x}, &out).ok());
    const Shape& os = out[0].shape();
    const StridedMap m = expand_map(in_rank, in.data(), os.rank(), os.begin());
    ASSERT_EQ(eval_strided(m, static_cast<int>(dtype_size(dt)), x.raw(), out[0].nbytes()), bytes_of(out[0]))
        << x.shape().str() << " -> " << os.str();
  }
}

TEST(MovementTile, RandomRepeatsMatchTheCpu) {
  std::mt19937 rng(6);
  int refused = 0;
  for (int it = 0; it < 200; ++it) {
    const int rank = 1 + static_cast<int>(rng() % 5);
    const auto dims = random_dims(rng, rank, true);
    std::vector<int64_t> reps(rank);
    for (auto& r : reps) r = rng() % 10 == 0 ? 0 : 1 + static_cast<int64_t>(rng() % 3);
    const DType dt = random_dtype(rng);
    GraphBuilder b;
    b.input("x", dt, dims);
    b.constant("repeats", ints(reps));
    b.node("Tile", {"x", "repeats"}, {"y"});
    Tensor x = random_bytes(dt, Shape(dims.begin(), dims.end()), rng);
    std::vector<Tensor> out;
    ASSERT_TRUE(run_cpu(b.output("y").build(), {x}, &out).ok());
    if (out[0].numel() == 0) continue;
    StridedMap m;
    if (!tile_map(rank, dims.data(), reps.data(), &m)) {
      ++refused;  // the GPU kernel refuses these at plan time
      continue;
    }
    ASSERT_EQ(eval_strided(m, static_cast<int>(dtype_size(dt)), x.raw(), out[0].nbytes()), bytes_of(out[0]))
        << x.shape().str() << " repeats " << ints_str(reps);
  }
  EXPECT_LT(refused, 20);
}

// --------------------------------------------------------------------------- Concat, Split

// The pitched kernel on the host: words as pitched_words makes them.
void eval_pitched(Pitched p, const void* src, void* dst) {
  const int w = pitched_words(p, addr(src), addr(dst));
  for (int64_t t = 0; t < p.rows * p.width; ++t) {
    int64_t s, d;
    pitched_offsets<uint32_t>(p, static_cast<uint32_t>(t), &s, &d);
    std::memcpy(static_cast<char*>(dst) + d * w, static_cast<const char*>(src) + s * w, w);
  }
}

TEST(MovementConcat, RandomConcatsAndSplitsMatchTheCpu) {
  std::mt19937 rng(9);
  for (int it = 0; it < 200; ++it) {
    const int rank = 1 + static_cast<int>(rng() % 4);
    auto dims = random_dims(rng, rank, false);
    const int axis = static_cast<int>(rng() % rank);
    const int64_t axis_attr = rng() % 2 ? axis : axis - rank;
    const int parts = 1 + static_cast<int>(rng() % 4);
    std::vector<int64_t> lens(parts);
    int64_t whole = 0;
    for (auto& l : lens) whole += (l = static_cast<int64_t>(rng() % 5));  // zero-length parts too
    const DType dt = random_dtype(rng);
    const int64_t esize = static_cast<int64_t>(dtype_size(dt));
    int64_t outer = 1, inner = 1;
    for (int d = 0; d < axis; ++d) outer *= dims[d];
    for (int d = axis + 1; d < rank; ++d) inner *= dims[d];

    // Concat.
    GraphBuilder b;
    std::vector<std::string> names;
    std::vector<Tensor> ins;
    for (int i = 0; i < parts; ++i) {
      auto d = dims;
      d[axis] = lens[i];
      names.push_back("x" + std::to_string(i));
      b.input(names.back(), dt, d);
      ins.push_back(random_bytes(dt, Shape(d.begin(), d.end()), rng));
    }
    b.node("Concat", names, {"y"}).attrs["axis"] = int_attr(axis_attr);
    std::vector<Tensor> out;
    ASSERT_TRUE(run_cpu(b.output("y").build(), ins, &out).ok());
    Bytes got(out[0].nbytes());
    int64_t at = 0;
    for (int i = 0; i < parts; ++i) {
      const Pitched p = concat_part(outer, inner * esize, whole, at, lens[i], false);
      at += lens[i];
      if (p.width > 0) eval_pitched(p, ins[i].raw(), got.data());
    }
    ASSERT_EQ(got, bytes_of(out[0])) << "concat along " << axis_attr << " of " << ints_str(lens);

    // Split of the concatenation back into the parts.
    GraphBuilder s;
    auto d = dims;
    d[axis] = whole;
    s.input("x", dt, d);
    s.constant("split", ints(lens));
    std::vector<std::string> outs;
    for (int i = 0; i < parts; ++i) outs.push_back("y" + std::to_string(i));
    s.node("Split", {"x", "split"}, outs).attrs["axis"] = int_attr(axis_attr);
    for (auto& o : outs) s.output(o);
    std::vector<Tensor> split_out;
    ASSERT_TRUE(run_cpu(s.build(), {out[0]}, &split_out).ok());
    at = 0;
    for (int i = 0; i < parts; ++i) {
      Bytes part(split_out[i].nbytes());
      const Pitched p = concat_part(outer, inner * esize, whole, at, lens[i], true);
      at += lens[i];
      if (p.width > 0) eval_pitched(p, out[0].raw(), part.data());
      ASSERT_EQ(part, bytes_of(split_out[i])) << "split part " << i;
    }
  }
}

// ------------------------------------------------------------------------------------- Pad

TEST(MovementPad, RandomPadsInEveryModeMatchTheCpu) {
  std::mt19937 rng(13);
  const char* modes[] = {"constant", "reflect", "edge", "wrap"};
  const int codes[] = {kPadConstant, kPadReflect, kPadEdge, kPadWrap};
  for (int it = 0; it < 300; ++it) {
    const int rank = 1 + static_cast<int>(rng() % 4);
    const int mi = static_cast<int>(rng() % 4);
    const auto dims = random_dims(rng, rank, mi == 0);
    std::vector<int64_t> begin(rank), end(rank);
    for (int d = 0; d < rank; ++d) {
      // Crops leave at least one element in the non-constant modes; pads may exceed the axis.
      const int64_t max_crop = mi == 0 ? dims[d] : dims[d] - 1;
      begin[d] = static_cast<int64_t>(rng() % 7) - 2;
      end[d] = static_cast<int64_t>(rng() % 7) - 2;
      if (-begin[d] > max_crop) begin[d] = -max_crop;
      if (-end[d] - std::max<int64_t>(0, -begin[d]) > max_crop) end[d] = -(max_crop - std::max<int64_t>(0, -begin[d]));
    }
    // Sometimes through the axes input (18+), naming every axis once, in a random order.
    const bool with_axes = rng() % 3 == 0;
    std::vector<int64_t> axes(rank), pads(2 * rank);
    for (int i = 0; i < rank; ++i) axes[i] = i;
    if (with_axes) std::shuffle(axes.begin(), axes.end(), rng);
    for (int i = 0; i < rank; ++i) pads[i] = begin[axes[i]], pads[rank + i] = end[axes[i]];
    if (with_axes)
      for (auto& a : axes)
        if (rng() % 2) a -= rank;
    const DType dt = random_dtype(rng);
    GraphBuilder b;
    b.opset(19);
    b.input("x", dt, dims);
    b.constant("pads", ints(pads));
    Tensor value = random_bytes(dt, Shape{}, rng);
    b.constant("value", value);
    if (with_axes) b.constant("axes", ints(axes));
    std::vector<std::string> in = {"x", "pads", "value"};
    if (with_axes) in.push_back("axes");
    b.node("Pad", in, {"y"}).attrs["mode"] = string_attr(modes[mi]);
    Tensor x = random_bytes(dt, Shape(dims.begin(), dims.end()), rng);
    std::vector<Tensor> out;
    const Status st = run_cpu(b.output("y").build(), {x}, &out);
    PadMap m;
    int bad = -1;
    const bool ok = make_pad_map(rank, dims.data(), begin.data(), end.data(), codes[mi], &m, &bad);
    ASSERT_EQ(ok, st.ok()) << st.message();
    if (!ok) continue;
    ASSERT_EQ(m.numel(), out[0].numel());
    const int64_t esize = static_cast<int64_t>(dtype_size(dt));
    Bytes got(out[0].nbytes());
    for (int64_t i = 0; i < m.numel(); ++i) {
      const int64_t s = pad_source<uint32_t>(m, static_cast<uint32_t>(i));
      ASSERT_EQ(s, pad_source<int64_t>(m, i));
      std::memcpy(got.data() + i * esize, s < 0 ? value.raw() : static_cast<const char*>(x.raw()) + s * esize, esize);
    }
    ASSERT_EQ(got, bytes_of(out[0])) << modes[mi] << " " << x.shape().str() << " begin " << ints_str(begin) << " end "
                                     << ints_str(end);
  }
}

TEST(MovementPad, CropsBeyondTheAxisAreErrorsAsOnTheCpu) {
  const int64_t dims[] = {3, 2}, begin[] = {-2, 0}, end[] = {-2, 0};
  PadMap m;
  int bad = -1;
  EXPECT_FALSE(make_pad_map(2, dims, begin, end, kPadConstant, &m, &bad));
  EXPECT_EQ(bad, 0);
  const int64_t b2[] = {0, 1}, e2[] = {0, -2};  // axis 1 emptied, then padded by reflection
  EXPECT_FALSE(make_pad_map(2, dims, b2, e2, kPadReflect, &m, &bad));
  EXPECT_EQ(bad, 1);
  EXPECT_TRUE(make_pad_map(2, dims, b2, e2, kPadConstant, &m, &bad));
}

// ----------------------------------------------------------------------------------- Gather

struct GatherEval {
  Bytes out;
  bool flag = false;  // what the device's error flag would hold
};

// The gather kernel on the host: word t reads its slot's index; an index out of range raises
// the flag and writes a zero word without reading. With an empty output, the check-only pass.
template <class Idx>
GatherEval eval_gather(const Tensor& data, const Tensor& indices, int axis, size_t out_bytes) {
  GatherEval e;
  e.out.assign(out_bytes, 0xAB);
  const int64_t esize = static_cast<int64_t>(dtype_size(data.dtype()));
  const int64_t block = data.shape().prod(axis + 1, data.rank()) * esize;
  const int w = gather_word(block, addr(data.raw()), addr(e.out.data()));
  GatherGeo g;
  g.outer = data.shape().prod(0, axis);
  g.size = data.dim(axis);
  g.nidx = indices.numel();
  g.inner = block / w;
  const Idx* idx = indices.data<Idx>();
  const int64_t n = g.outer * g.nidx * g.inner;
  if (n == 0) {
    for (int64_t j = 0; j < g.nidx; ++j) e.flag = e.flag || gather_index(static_cast<int64_t>(idx[j]), g.size) < 0;
    return e;
  }
  for (int64_t t = 0; t < n; ++t) {
    const uint32_t t32 = static_cast<uint32_t>(t);
    const int64_t src = gather_source<uint32_t>(g, t32, static_cast<int64_t>(idx[gather_slot<uint32_t>(g, t32)]));
    EXPECT_EQ(src, gather_source<int64_t>(g, t, static_cast<int64_t>(idx[gather_slot<int64_t>(g, t)])));
    if (src < 0) {
      e.flag = true;
      std::memset(e.out.data() + t * w, 0, w);
    } else {
      std::memcpy(e.out.data() + t * w, static_cast<const char*>(data.raw()) + src * w, w);
    }
  }
  return e;
}

TEST(Gather, RandomGathersMatchTheCpuAndFlagBadIndices) {
  std::mt19937 rng(17);
  int flagged = 0;
  for (int it = 0; it < 300; ++it) {
    const int rank = 1 + static_cast<int>(rng() % 4);
    const auto dims = random_dims(rng, rank, true);
    const int axis = static_cast<int>(rng() % rank);
    const int64_t size = dims[axis];
    const DType types[] = {DType::kFloat32, DType::kInt64, DType::kInt32, DType::kUInt8, DType::kFloat16};
    const DType dt = types[rng() % 5];
    const DType it_type = rng() % 2 ? DType::kInt64 : DType::kInt32;
    const int irank = static_cast<int>(rng() % 3);
    const auto idims = random_dims(rng, irank, true);
    const bool bad = rng() % 6 == 0;
    Tensor indices = Tensor::empty(it_type, Shape(idims.begin(), idims.end())).value();
    for (int64_t j = 0; j < indices.numel(); ++j) {
      int64_t v = size > 0 ? static_cast<int64_t>(rng() % (2 * size)) - size : 0;  // [-size, size)
      if (bad && rng() % 3 == 0) v = rng() % 2 ? size + static_cast<int64_t>(rng() % 3) : -size - 1;
      if (it_type == DType::kInt64)
        indices.data<int64_t>()[j] = v;
      else
        indices.data<int32_t>()[j] = static_cast<int32_t>(v);
    }
    GraphBuilder b;
    b.input("x", dt, dims);
    b.input("i", it_type, idims);
    b.node("Gather", {"x", "i"}, {"y"}).attrs["axis"] = int_attr(rng() % 2 ? axis : axis - rank);
    Tensor x = random_bytes(dt, Shape(dims.begin(), dims.end()), rng);
    std::vector<Tensor> out;
    const Status st = run_cpu(b.output("y").build(), {x, indices}, &out);
    Shape os;
    for (int d = 0; d < axis; ++d) os.push_back(dims[d]);
    for (int64_t d : idims) os.push_back(d);
    for (int d = axis + 1; d < rank; ++d) os.push_back(dims[d]);
    const size_t out_bytes = static_cast<size_t>(os.numel()) * dtype_size(dt);
    const GatherEval e = it_type == DType::kInt64 ? eval_gather<int64_t>(x, indices, axis, out_bytes)
                                                  : eval_gather<int32_t>(x, indices, axis, out_bytes);
    ASSERT_EQ(e.flag, !st.ok()) << st.message() << " data " << x.shape().str() << " indices " << indices.shape().str();
    if (e.flag) {
      EXPECT_EQ(st.code(), Code::kInvalidArgument);
      ++flagged;
      continue;
    }
    ASSERT_EQ(e.out, bytes_of(out[0])) << "data " << x.shape().str() << " axis " << axis << " indices "
                                       << indices.shape().str();
  }
  EXPECT_GT(flagged, 10);
}

TEST(Gather, IndexNormalizationAndRangeCheck) {
  EXPECT_EQ(gather_index(0, 5), 0);
  EXPECT_EQ(gather_index(4, 5), 4);
  EXPECT_EQ(gather_index(-1, 5), 4);
  EXPECT_EQ(gather_index(-5, 5), 0);
  EXPECT_EQ(gather_index(5, 5), -1);
  EXPECT_EQ(gather_index(-6, 5), -1);
  EXPECT_EQ(gather_index(0, 0), -1);
  EXPECT_EQ(gather_index(std::numeric_limits<int64_t>::min(), 5), -1);
  EXPECT_EQ(gather_index(std::numeric_limits<int32_t>::max(), 5), -1);
}

// ------------------------------------------------------------------- kernels and refusals

struct OpCase {
  const char* op;
  std::vector<std::string> inputs;  // "x": data input, others constants
  std::vector<bool> host;           // host_input(i) for each input
};

Graph one_node(const OpCase& c) {
  GraphBuilder b;
  b.opset(19);
  b.input("x", DType::kFloat32, {2, 3, 4});
  b.input("x2", DType::kFloat32, {2, 3, 4});
  b.input("i", DType::kInt64, {2});
  b.constant("shape", ints({4, 6})).constant("axes", ints({0})).constant("starts", ints({0}));
  b.constant("ends", ints({1})).constant("steps", ints({1})).constant("split", ints({1, 1}));
  b.constant("pads", ints({0, 0, 1, 0, 0, 1})).constant("repeats", ints({1, 2, 1})).constant("eshape", ints({2, 3, 4}));
  b.constant("uaxes", ints({0}));
  Node& n = b.node(c.op, c.inputs,
                   std::string(c.op) == "Split" ? std::vector<std::string>{"y", "y2"} : std::vector<std::string>{"y"});
  if (std::string(c.op) == "Concat") n.attrs["axis"] = int_attr(1);
  return b.output("y").build();
}

const std::vector<OpCase>& op_cases() {
  static const std::vector<OpCase> cases = {
      {"Reshape", {"x", "shape"}, {false, true}},
      {"Flatten", {"x"}, {false}},
      {"Squeeze", {"x", "axes"}, {false, true}},
      {"Unsqueeze", {"x", "uaxes"}, {false, true}},
      {"Identity", {"x"}, {false}},
      {"Gather", {"x", "i"}, {false, false}},
      {"Transpose", {"x"}, {false}},
      {"Concat", {"x", "x2"}, {false, false}},
      {"Slice", {"x", "starts", "ends", "axes", "steps"}, {false, true, true, true, true}},
      {"Split", {"x", "split"}, {false, true}},
      {"Pad", {"x", "pads"}, {false, true, true, true}},
      {"Expand", {"x", "eshape"}, {false, true}},
      {"Tile", {"x", "repeats"}, {false, true}},
  };
  return cases;
}

TEST(MovementKernels, AreCudaKernelsReadingTheirParametersOnTheHost) {
  for (const OpCase& c : op_cases()) {
    Graph g = one_node(c);
    KernelInit init(g);
    auto k = CudaBackend().create_kernel(g.nodes[0], init);
    ASSERT_TRUE(k.ok()) << c.op << ": " << k.status().message();
    ASSERT_TRUE(k.value()) << c.op << " has no CUDA kernel";
    EXPECT_EQ(k.value()->device(), DeviceType::kCuda) << c.op;
    for (size_t i = 0; i < c.host.size(); ++i)
      EXPECT_EQ(k.value()->host_input(static_cast<int>(i)), c.host[i]) << c.op << " input " << i;
    const std::string op = c.op;
    const bool view = op == "Reshape" || op == "Flatten" || op == "Squeeze" || op == "Unsqueeze" || op == "Identity";
    EXPECT_EQ(k.value()->output_is_input_view(), view) << c.op;
  }
}

// Plan-time inference of a node on the CUDA backend, the known input values given.
Status infer_on_cuda(const Graph& g, const std::vector<ValueInfo>& infos) {
  KernelInit init(g);
  auto k = CudaBackend().create_kernel(g.nodes[0], init);
  if (!k.ok()) return k.status();
  std::vector<const ValueInfo*> in;
  for (const auto& v : infos) in.push_back(&v);
  InferContext ctx(g.nodes[0], in, 1);
  return k.value()->infer(ctx);
}

TEST(MovementKernels, RefuseStringsAtPlanTime) {
  for (const char* op : {"Transpose", "Identity", "Flatten"}) {
    GraphBuilder b;
    b.input("x", DType::kString, {2, 3});
    b.node(op, {"x"}, {"y"});
    Graph g = b.output("y").build();
    const Status st = infer_on_cuda(g, {ValueInfo{DType::kString, Shape{2, 3}, nullptr}});
    EXPECT_EQ(st.code(), Code::kUnsupported) << op;
    EXPECT_NE(st.message().find("string"), std::string::npos) << st.message();
  }
  GraphBuilder b;
  b.input("x", DType::kString, {2, 3});
  b.input("i", DType::kInt64, {2});
  b.node("Gather", {"x", "i"}, {"y"});
  Graph g = b.output("y").build();
  EXPECT_EQ(
      infer_on_cuda(g, {ValueInfo{DType::kString, Shape{2, 3}, nullptr}, ValueInfo{DType::kInt64, Shape{2}, nullptr}})
          .code(),
      Code::kUnsupported);
  // The same nodes with numbers are accepted.
  EXPECT_TRUE(
      infer_on_cuda(g, {ValueInfo{DType::kInt32, Shape{2, 3}, nullptr}, ValueInfo{DType::kInt64, Shape{2}, nullptr}})
          .ok());
}

TEST(MovementKernels, RefuseWhatTheyDoNotRun) {
  {  // a float16 Pad whose constant is float32 (the CPU converts it)
    GraphBuilder b;
    b.input("x", DType::kFloat16, {2, 3});
    b.input("c", DType::kFloat32, {});
    Tensor pads = ints({0, 1, 0, 1});
    b.constant("pads", pads);
    b.node("Pad", {"x", "pads", "c"}, {"y"});
    Graph g = b.output("y").build();
    const Status st =
        infer_on_cuda(g, {ValueInfo{DType::kFloat16, Shape{2, 3}, nullptr}, ValueInfo{DType::kInt64, Shape{4}, &pads},
                          ValueInfo{DType::kFloat32, Shape{}, nullptr}});
    EXPECT_EQ(st.code(), Code::kUnsupported) << st.message();
  }
  {  // a rank-6 tile repeating every axis needs 12 strided dims
    GraphBuilder b;
    b.input("x", DType::kFloat32, {2, 3, 2, 3, 2, 3});
    Tensor reps = ints({2, 2, 2, 2, 2, 2});
    b.constant("repeats", reps);
    b.node("Tile", {"x", "repeats"}, {"y"});
    Graph g = b.output("y").build();
    const Status st = infer_on_cuda(
        g, {ValueInfo{DType::kFloat32, Shape{2, 3, 2, 3, 2, 3}, nullptr}, ValueInfo{DType::kInt64, Shape{6}, &reps}});
    EXPECT_EQ(st.code(), Code::kUnsupported) << st.message();
    EXPECT_NE(st.message().find("Tile"), std::string::npos) << st.message();
  }
  {  // a Slice whose starts are not known yet is deferred, not refused
    GraphBuilder b;
    b.input("x", DType::kFloat32, {4});
    b.input("s", DType::kInt64, {1});
    b.input("e", DType::kInt64, {1});
    b.node("Slice", {"x", "s", "e"}, {"y"});
    Graph g = b.output("y").build();
    EXPECT_TRUE(
        infer_on_cuda(g, {ValueInfo{DType::kFloat32, Shape{4}, nullptr}, ValueInfo{DType::kInt64, Shape{1}, nullptr},
                          ValueInfo{DType::kInt64, Shape{1}, nullptr}})
            .ok());
  }
}

}  // namespace
}  // namespace mserve::gpu
