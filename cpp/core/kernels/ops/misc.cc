// Misc math: CumProd (opset 26), Einsum (12), Unique (11), Det (11), NonMaxSuppression (10).
//
// Einsum parses the equation into one index letter per operand dimension (ellipsis expanded to
// its dims; repeated letters in one operand walk its diagonal), then computes each output
// element as the sum over the letters absent from the output of the product of the operands.
// Unique and NonMaxSuppression have value-dependent output shapes: infer runs them on the known
// values to size the outputs (asking the planner for the values otherwise); compute runs them
// again into the workspace.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <string>
#include <type_traits>
#include <vector>

#include "core/parallel/thread_pool.h"
#include "core/kernels/common.h"
#include "core/kernels/registry.h"

namespace mserve {
namespace {

// -------------------------------------------------------------------------------- CumProd

class CumProdKernel final : public Kernel {
 public:
  CumProdKernel(bool exclusive, bool reverse) : exclusive_(exclusive), reverse_(reverse) {}

  Status infer(InferContext& ctx) const override {
    MS_CHECK_ARG(ctx.has_input(0) && ctx.has_input(1), "needs x and axis inputs");
    const DType dt = ctx.dtype(0);
    if (dt == DType::kBool || dt == DType::kUndefined)
      return Unsupported(std::string("dtype ") + dtype_name(dt) + " is not supported");
    MS_CHECK_ARG(ctx.dtype(1) == DType::kInt32 || ctx.dtype(1) == DType::kInt64, "axis must be int32 or int64");
    MS_CHECK_ARG(ctx.shape(0).rank() >= 1, "x must have rank >= 1");
    if (const Tensor* a = ctx.value(1)) {
      MS_CHECK_ARG(a->numel() == 1, "axis must be a scalar");
      MS_RETURN_IF_ERROR(normalize_axis(a->int_at(0), ctx.shape(0).rank()).status());
    }
    ctx.set_output(0, dt, ctx.shape(0));
    return Status::OK();
  }

  Status compute(const ComputeContext& ctx) const override {
    const Tensor& x = ctx.input(0);
    MS_CHECK_ARG(ctx.input(1).numel() == 1, "axis must be a scalar");
    MS_ASSIGN_OR_RETURN(int axis, normalize_axis(ctx.input(1).int_at(0), x.rank()));
    const Shape& s = x.shape();
    const int64_t outer = s.prod(0, axis), n = s[axis], inner = s.prod(axis + 1, s.rank());
    MS_SWITCH_NUMERIC(x.dtype(), T, return Unsupported("dtype"), {
      using Acc = std::conditional_t<std::is_same_v<T, Eigen::half>, float, T>;
      const T* px = x.data<T>();
      T* py = ctx.output(0).data<T>();
      ctx.pool().parallel_for(outer * inner, 256, [&](int64_t b, int64_t e) {
        for (int64_t t = b; t < e; ++t) {
          const int64_t o = t / inner, c = t % inner;
          Acc acc = Acc(1);
          for (int64_t step = 0; step < n; ++step) {
            const int64_t j = reverse_ ? n - 1 - step : step;
            const int64_t off = (o * n + j) * inner + c;
            const Acc v = static_cast<Acc>(px[off]);
            if (exclusive_) {
              py[off] = static_cast<T>(acc);
              acc = static_cast<Acc>(acc * v);
            } else {
              acc = static_cast<Acc>(acc * v);
              py[off] = static_cast<T>(acc);
            }
          }
        }
      });
    });
    return Status::OK();
  }

 private:
  bool exclusive_, reverse_;
};

// --------------------------------------------------------------------------------- Einsum

constexpr int kMaxOperands = 16;
constexpr int kMaxLetters = 64;  // 52 letters + ellipsis dims

struct EinsumSpec {
  // Per operand: letter id of each dimension; ellipsis dims get ids 52.. (52 + k).
  std::vector<std::vector<int>> in;
  std::vector<int> out;
  int ellipsis_rank = -1;  // -1: no ellipsis seen yet
};

int letter_id(char c) { return c >= 'A' && c <= 'Z' ? c - 'A' : (c >= 'a' && c <= 'z' ? 26 + c - 'a' : -1); }

// Parses `eq` against the operand ranks. Ellipsis dims are right-aligned: an operand whose
// ellipsis covers fewer dims than the widest one uses the trailing ellipsis ids.
Status parse_einsum(const std::string& eq0, const std::vector<int>& ranks, EinsumSpec* sp) {
  std::string eq;
  for (char c : eq0)
    if (c != ' ') eq += c;
  const size_t arrow = eq.find("->");
  const std::string lhs = eq.substr(0, arrow);
  std::vector<std::string> terms;
  size_t st = 0;
  while (true) {
    size_t comma = lhs.find(',', st);
    terms.push_back(lhs.substr(st, comma == std::string::npos ? std::string::npos : comma - st));
    if (comma == std::string::npos) break;
    st = comma + 1;
  }
  MS_CHECK_ARG(terms.size() == ranks.size(), "equation '" + eq0 + "' has " + std::to_string(terms.size()) +
                                                 " operands but the node has " + std::to_string(ranks.size()) + " inputs");
  MS_CHECK_ARG(ranks.size() <= static_cast<size_t>(kMaxOperands), "too many Einsum operands");
  // Ellipsis width: max over operands.
  int ell = -1;
  for (size_t i = 0; i < terms.size(); ++i) {
    const size_t p = terms[i].find("...");
    if (p == std::string::npos) continue;
    const int named = static_cast<int>(terms[i].size()) - 3;
    MS_CHECK_ARG(ranks[i] >= named, "operand " + std::to_string(i) + " has rank " + std::to_string(ranks[i]) +
                                        " but the equation names " + std::to_string(named) + " dims");
    ell = std::max(ell, ranks[i] - named);
  }
  sp->ellipsis_rank = ell;
  sp->in.assign(terms.size(), {});
  int count[kMaxLetters] = {};
  for (size_t i = 0; i < terms.size(); ++i) {
    const std::string& t = terms[i];
    const size_t p = t.find("...");
    for (size_t j = 0; j < t.size(); ++j) {
      if (p != std::string::npos && j == p) {
        const int w = ranks[i] - (static_cast<int>(t.size()) - 3);
        for (int k = 0; k < w; ++k) sp->in[i].push_back(52 + (ell - w) + k);
        j += 2;
        continue;
      }
      const int id = letter_id(t[j]);
      MS_CHECK_ARG(id >= 0, std::string("bad character '") + t[j] + "' in equation '" + eq0 + "'");
      sp->in[i].push_back(id);
      ++count[id];
    }
    MS_CHECK_ARG(static_cast<int>(sp->in[i].size()) == ranks[i],
                 "operand " + std::to_string(i) + " term '" + t + "' does not match its rank " + std::to_string(ranks[i]));
  }
  sp->out.clear();
  if (arrow != std::string::npos) {
    const std::string rhs = eq.substr(arrow + 2);
    for (size_t j = 0; j < rhs.size(); ++j) {
      if (rhs.compare(j, 3, "...") == 0) {
        for (int k = 0; k < std::max(ell, 0); ++k) sp->out.push_back(52 + k);
        j += 2;
        continue;
      }
      const int id = letter_id(rhs[j]);
      MS_CHECK_ARG(id >= 0 && count[id] > 0, "output letter '" + std::string(1, rhs[j]) + "' not in the inputs");
      sp->out.push_back(id);
    }
  } else {
    for (int k = 0; k < std::max(ell, 0); ++k) sp->out.push_back(52 + k);
    for (int id = 0; id < 52; ++id)
      if (count[id] == 1) sp->out.push_back(id);
  }
  MS_CHECK_ARG(Shape::fits(sp->out.size()), "Einsum output rank too large");
  return Status::OK();
}

class EinsumKernel final : public Kernel {
 public:
  explicit EinsumKernel(std::string eq) : eq_(std::move(eq)) {}

  // Dims of every letter; InvalidArgument on mismatch (dims of 1 broadcast in the ellipsis).
  Status letter_dims(const EinsumSpec& sp, const std::vector<const Shape*>& shapes, int64_t* dims) const {
    for (int i = 0; i < kMaxLetters; ++i) dims[i] = -1;
    for (size_t i = 0; i < sp.in.size(); ++i)
      for (size_t j = 0; j < sp.in[i].size(); ++j) {
        const int id = sp.in[i][j];
        const int64_t d = (*shapes[i])[static_cast<int>(j)];
        if (dims[id] < 0 || dims[id] == 1) {
          if (dims[id] == 1 && id < 52 && d != 1)
            return InvalidArgument("dimension mismatch for a letter in '" + eq_ + "'");
          dims[id] = d;
        } else if (d != dims[id] && !(id >= 52 && d == 1)) {
          return InvalidArgument("dimension mismatch in Einsum '" + eq_ + "'");
        }
      }
    return Status::OK();
  }

  Status infer(InferContext& ctx) const override {
    std::vector<int> ranks;
    std::vector<const Shape*> shapes;
    const DType dt = ctx.dtype(0);
    for (int i = 0; i < ctx.num_inputs(); ++i) {
      MS_CHECK_ARG(ctx.has_input(i), "Einsum inputs are not optional");
      MS_CHECK_ARG(ctx.dtype(i) == dt, "Einsum inputs must share one dtype");
      ranks.push_back(ctx.shape(i).rank());
      shapes.push_back(&ctx.shape(i));
    }
    if (dt == DType::kBool || dt == DType::kUndefined)
      return Unsupported(std::string("dtype ") + dtype_name(dt) + " is not supported");
    EinsumSpec sp;
    MS_RETURN_IF_ERROR(parse_einsum(eq_, ranks, &sp));
    int64_t dims[kMaxLetters];
    MS_RETURN_IF_ERROR(letter_dims(sp, shapes, dims));
    Shape out;
    for (int id : sp.out) out.push_back(dims[id]);
    ctx.set_output(0, dt, out);
    return Status::OK();
  }

  Status compute(const ComputeContext& ctx) const override {
    // Parsing allocates small vectors; einsum equations are short and this path is cold
    // compared with the contraction itself.
    std::vector<int> ranks;
    std::vector<const Shape*> shapes;
    const int nin = ctx.num_inputs();
    for (int i = 0; i < nin; ++i) {
      ranks.push_back(ctx.input(i).rank());
      shapes.push_back(&ctx.input(i).shape());
    }
    EinsumSpec sp;
    MS_RETURN_IF_ERROR(parse_einsum(eq_, ranks, &sp));
    int64_t dims[kMaxLetters];
    MS_RETURN_IF_ERROR(letter_dims(sp, shapes, dims));
    // Letters: output letters first, then the reduced ones.
    int letters[kMaxLetters];
    int nl = 0;
    bool in_out[kMaxLetters] = {};
    for (int id : sp.out) {
      letters[nl++] = id;
      in_out[id] = true;
    }
    const int nout = nl;
    for (int id = 0; id < kMaxLetters; ++id)
      if (!in_out[id] && dims[id] >= 0) letters[nl++] = id;
    // strides[op][l]: element stride of letter l in operand op (summed for repeated letters).
    int64_t strides[kMaxOperands][kMaxLetters] = {};
    for (int op = 0; op < nin; ++op) {
      const Shape& s = *shapes[op];
      int64_t st = 1;
      for (int j = s.rank() - 1; j >= 0; --j) {
        const int id = sp.in[op][j];
        int l = 0;
        while (letters[l] != id) ++l;
        if (s[j] != 1 || dims[id] == 1) strides[op][l] += st;
        st *= s[j];
      }
    }
    int64_t ld[kMaxLetters];
    for (int l = 0; l < nl; ++l) ld[l] = dims[letters[l]];
    int64_t red = 1;
    for (int l = nout; l < nl; ++l) red *= ld[l];
    Tensor& y = ctx.output(0);
    const int64_t nel = y.numel();
    MS_SWITCH_NUMERIC(y.dtype(), T, return Unsupported("dtype"), {
      using Acc = std::conditional_t<std::is_same_v<T, Eigen::half> || std::is_same_v<T, float>, double, T>;
      const T* ptr[kMaxOperands];
      for (int op = 0; op < nin; ++op) ptr[op] = ctx.input(op).data<T>();
      T* out = y.data<T>();
      ctx.pool().parallel_for(nel, std::max<int64_t>(1, 4096 / std::max<int64_t>(1, red)), [&](int64_t b, int64_t e) {
        for (int64_t o = b; o < e; ++o) {
          int64_t base[kMaxOperands] = {};
          int64_t rem = o;
          for (int l = nout - 1; l >= 0; --l) {
            const int64_t c = rem % ld[l];
            rem /= ld[l];
            for (int op = 0; op < nin; ++op) base[op] += c * strides[op][l];
          }
          Acc sum = Acc(0);
          int64_t idx[kMaxLetters] = {};
          int64_t off[kMaxOperands];
          for (int op = 0; op < nin; ++op) off[op] = base[op];
          for (int64_t r = 0; r < red; ++r) {
            Acc p = Acc(1);
            for (int op = 0; op < nin; ++op) p = static_cast<Acc>(p * static_cast<Acc>(ptr[op][off[op]]));
            sum = static_cast<Acc>(sum + p);
            for (int l = nl - 1; l >= nout; --l) {  // odometer over reduced letters
              for (int op = 0; op < nin; ++op) off[op] += strides[op][l];
              if (++idx[l] < ld[l]) break;
              for (int op = 0; op < nin; ++op) off[op] -= strides[op][l] * ld[l];
              idx[l] = 0;
            }
          }
          out[o] = static_cast<T>(sum);
        }
      });
    });
    return Status::OK();
  }

 private:
  std::string eq_;
};

// --------------------------------------------------------------------------------- Unique

// Unique slices of x along axis (axis < 0: flattened). ws holds 4 * n int64: perm, inverse
// (group id in sorted order), first (first index of each group), cnt (count). Returns the
// number of groups; with `sorted_out` false the group ids are then renumbered in order of
// first occurrence. Outputs written when out != nullptr.
template <class T>
int64_t unique_run(const Tensor& x, int axis, bool sorted_out, int64_t* ws, Tensor* const* out) {
  const Shape& s = x.shape();
  int64_t outer = 1, n = x.numel(), inner = 1;
  if (axis >= 0) {
    outer = s.prod(0, axis);
    n = s[axis];
    inner = s.prod(axis + 1, s.rank());
  }
  const T* p = x.data<T>();
  auto cmp3 = [&](int64_t a, int64_t b) -> int {
    for (int64_t o = 0; o < outer; ++o)
      for (int64_t c = 0; c < inner; ++c) {
        const T va = p[(o * n + a) * inner + c], vb = p[(o * n + b) * inner + c];
        if (va < vb) return -1;
        if (vb < va) return 1;
      }
    return 0;
  };
  int64_t* perm = ws;
  int64_t* inv = ws + n;
  int64_t* first = ws + 2 * n;
  int64_t* cnt = ws + 3 * n;
  for (int64_t i = 0; i < n; ++i) perm[i] = i;
  std::sort(perm, perm + n, [&](int64_t a, int64_t b) {
    const int c = cmp3(a, b);
    return c != 0 ? c < 0 : a < b;
  });
  int64_t u = 0;
  for (int64_t i = 0; i < n; ++i) {
    if (i == 0 || cmp3(perm[i - 1], perm[i]) != 0) {
      first[u] = perm[i];
      cnt[u] = 0;
      ++u;
    }
    inv[perm[i]] = u - 1;
    ++cnt[u - 1];
  }
  if (!out) return u;
  // rank[g]: output position of sorted group g. perm is free now: reuse it.
  int64_t* rank = perm;
  if (sorted_out) {
    for (int64_t g = 0; g < u; ++g) rank[g] = g;
  } else {
    // Groups in order of first occurrence: walk x in order.
    for (int64_t g = 0; g < u; ++g) rank[g] = -1;
    int64_t next = 0;
    for (int64_t i = 0; i < n; ++i)
      if (rank[inv[i]] < 0) rank[inv[i]] = next++;
  }
  T* y = out[0] ? out[0]->data<T>() : nullptr;
  for (int64_t g = 0; g < u; ++g) {
    const int64_t r = rank[g];
    if (y)
      for (int64_t o = 0; o < outer; ++o)
        for (int64_t c = 0; c < inner; ++c) y[(o * u + r) * inner + c] = p[(o * n + first[g]) * inner + c];
    if (out[1]) out[1]->data<int64_t>()[r] = first[g];
    if (out[3]) out[3]->data<int64_t>()[r] = cnt[g];
  }
  if (out[2])
    for (int64_t i = 0; i < n; ++i) out[2]->data<int64_t>()[i] = rank[inv[i]];
  return u;
}

class UniqueKernel final : public Kernel {
 public:
  UniqueKernel(bool has_axis, int64_t axis, bool sorted) : has_axis_(has_axis), axis_(axis), sorted_(sorted) {}

  Status infer(InferContext& ctx) const override {
    MS_CHECK_ARG(ctx.has_input(0), "needs X");
    const Shape& s = ctx.shape(0);
    int axis = -1;
    if (has_axis_) {
      MS_ASSIGN_OR_RETURN(axis, normalize_axis(axis_, s.rank()));
    }
    const Tensor* x = ctx.value(0);
    if (!x) return ctx.need_value();
    const int64_t n = axis >= 0 ? s[axis] : s.numel();
    std::vector<int64_t> ws(4 * static_cast<size_t>(std::max<int64_t>(n, 1)));
    int64_t u = 0;
    MS_SWITCH_NUMERIC(x->dtype(), T, return Unsupported(std::string("dtype ") + dtype_name(x->dtype())),
                      u = unique_run<T>(*x, axis, sorted_, ws.data(), nullptr));
    Shape ys = Shape{u};
    if (axis >= 0) {
      ys = s;
      ys[axis] = u;
    }
    ctx.set_output(0, x->dtype(), ys);
    for (int i = 1; i < ctx.num_outputs(); ++i) ctx.set_output(i, DType::kInt64, Shape{i == 2 ? n : u});
    ctx.set_workspace(4 * sizeof(int64_t) * static_cast<size_t>(std::max<int64_t>(n, 1)));
    return Status::OK();
  }

  Status compute(const ComputeContext& ctx) const override {
    const Tensor& x = ctx.input(0);
    int axis = -1;
    if (has_axis_) {
      MS_ASSIGN_OR_RETURN(axis, normalize_axis(axis_, x.rank()));
    }
    Tensor* outs[4] = {};
    for (int i = 0; i < 4; ++i) outs[i] = ctx.has_output(i) ? &ctx.output(i) : nullptr;
    MS_SWITCH_NUMERIC(x.dtype(), T, return Unsupported("dtype"),
                      unique_run<T>(x, axis, sorted_, static_cast<int64_t*>(ctx.workspace()), outs));
    return Status::OK();
  }

 private:
  bool has_axis_;
  int64_t axis_;
  bool sorted_;
};

// ------------------------------------------------------------------------------------ Det

class DetKernel final : public Kernel {
 public:
  Status infer(InferContext& ctx) const override {
    MS_CHECK_ARG(ctx.has_input(0), "needs X");
    if (!dtype_is_float(ctx.dtype(0)))
      return Unsupported(std::string("dtype ") + dtype_name(ctx.dtype(0)) + " is not supported");
    const Shape& s = ctx.shape(0);
    MS_CHECK_ARG(s.rank() >= 2 && s[s.rank() - 1] == s[s.rank() - 2], "X must be [..., M, M], got " + s.str());
    const int64_t m = s[s.rank() - 1];
    ctx.set_output(0, ctx.dtype(0), Shape(s.begin(), s.end() - 2));
    ctx.set_workspace(static_cast<size_t>(m * m) * sizeof(double) + 64);
    return Status::OK();
  }

  Status compute(const ComputeContext& ctx) const override {
    const Tensor& x = ctx.input(0);
    const int64_t m = x.dim(x.rank() - 1);
    const int64_t nb = x.numel() / std::max<int64_t>(1, m * m);
    double* a = static_cast<double*>(ctx.workspace());
    MS_SWITCH_FLOAT(x.dtype(), T, return Unsupported("dtype"), {
      const T* px = x.data<T>();
      T* y = ctx.output(0).data<T>();
      for (int64_t b = 0; b < ctx.output(0).numel(); ++b) {
        if (m == 0) {
          y[b] = T(1.0);
          continue;
        }
        for (int64_t i = 0; i < m * m; ++i) a[i] = static_cast<double>(px[b * m * m + i]);
        double det = 1.0;
        for (int64_t c = 0; c < m; ++c) {
          int64_t piv = c;
          for (int64_t r = c + 1; r < m; ++r)
            if (std::fabs(a[r * m + c]) > std::fabs(a[piv * m + c])) piv = r;
          if (a[piv * m + c] == 0.0) {
            det = 0.0;
            break;
          }
          if (piv != c) {
            for (int64_t k = 0; k < m; ++k) std::swap(a[c * m + k], a[piv * m + k]);
            det = -det;
          }
          det *= a[c * m + c];
          for (int64_t r = c + 1; r < m; ++r) {
            const double f = a[r * m + c] / a[c * m + c];
            for (int64_t k = c; k < m; ++k) a[r * m + k] -= f * a[c * m + k];
          }
        }
        y[b] = static_cast<T>(det);
      }
      (void)nb;
    });
    return Status::OK();
  }
};

// ---------------------------------------------------------------------- NonMaxSuppression

class NmsKernel final : public Kernel {
 public:
  explicit NmsKernel(bool center) : center_(center) {}

  struct Params {
    int64_t max_out = 0;
    float iou = 0.f, score = -std::numeric_limits<float>::infinity();
    bool has_score = false;
  };

  static Params params(const Tensor* mo, const Tensor* iou, const Tensor* sc) {
    Params p;
    if (mo && mo->numel() > 0) p.max_out = mo->int_at(0);
    if (iou && iou->numel() > 0) p.iou = static_cast<float>(iou->float_at(0));
    if (sc && sc->numel() > 0) {
      p.score = static_cast<float>(sc->float_at(0));
      p.has_score = true;
    }
    return p;
  }

  // Runs NMS; writes triples to `out` when non-null; ws holds 2 * N int64. Returns the count.
  int64_t run(const Tensor& boxes, const Tensor& scores, const Params& p, int64_t* ws, int64_t* out) const {
    const int64_t B = boxes.dim(0), N = boxes.dim(1), C = scores.dim(1);
    const float* bx = boxes.data<float>();
    const float* sc = scores.data<float>();
    int64_t* cand = ws;
    int64_t* sel = ws + N;
    int64_t total = 0;
    auto corners = [&](const float* q, float* c) {
      if (center_) {
        c[0] = q[1] - q[3] / 2;
        c[1] = q[0] - q[2] / 2;
        c[2] = q[1] + q[3] / 2;
        c[3] = q[0] + q[2] / 2;
      } else {
        c[0] = std::min(q[0], q[2]);
        c[1] = std::min(q[1], q[3]);
        c[2] = std::max(q[0], q[2]);
        c[3] = std::max(q[1], q[3]);
      }
    };
    auto suppress = [&](const float* q1, const float* q2) {
      float a[4], b[4];
      corners(q1, a);
      corners(q2, b);
      const float area1 = (a[2] - a[0]) * (a[3] - a[1]), area2 = (b[2] - b[0]) * (b[3] - b[1]);
      if (area1 <= 0 || area2 <= 0) return false;
      const float ih = std::min(a[2], b[2]) - std::max(a[0], b[0]);
      const float iw = std::min(a[3], b[3]) - std::max(a[1], b[1]);
      if (ih <= 0 || iw <= 0) return false;
      const float inter = ih * iw;
      return inter / (area1 + area2 - inter) > p.iou;
    };
    for (int64_t b = 0; b < B; ++b)
      for (int64_t c = 0; c < C; ++c) {
        const float* s = sc + (b * C + c) * N;
        int64_t nc = 0;
        for (int64_t i = 0; i < N; ++i)
          if (!p.has_score || s[i] > p.score) cand[nc++] = i;
        std::sort(cand, cand + nc, [&](int64_t x, int64_t y) { return s[x] != s[y] ? s[x] > s[y] : x < y; });
        int64_t ns = 0;
        for (int64_t k = 0; k < nc && ns < p.max_out; ++k) {
          const float* q = bx + (b * N + cand[k]) * 4;
          bool keep = true;
          for (int64_t j = 0; j < ns && keep; ++j)
            if (suppress(q, bx + (b * N + sel[j]) * 4)) keep = false;
          if (!keep) continue;
          sel[ns++] = cand[k];
          if (out) {
            out[total * 3] = b;
            out[total * 3 + 1] = c;
            out[total * 3 + 2] = cand[k];
          }
          ++total;
        }
      }
    return total;
  }

  Status infer(InferContext& ctx) const override {
    MS_CHECK_ARG(ctx.has_input(0) && ctx.has_input(1), "needs boxes and scores");
    if (ctx.dtype(0) != DType::kFloat32 || ctx.dtype(1) != DType::kFloat32)
      return Unsupported("only float32 boxes and scores are supported");
    const Shape &bs = ctx.shape(0), &ss = ctx.shape(1);
    MS_CHECK_ARG(bs.rank() == 3 && bs[2] == 4, "boxes must be [B, N, 4], got " + bs.str());
    MS_CHECK_ARG(ss.rank() == 3 && ss[0] == bs[0] && ss[2] == bs[1],
                 "scores must be [B, C, N] matching boxes " + bs.str() + ", got " + ss.str());
    for (int i = 0; i < 5; ++i)
      if (ctx.has_input(i) && !ctx.value(i)) return ctx.need_value();
    std::vector<int64_t> ws(2 * static_cast<size_t>(bs[1]) + 1);
    const Params p = params(ctx.value(2), ctx.value(3), ctx.value(4));
    const int64_t n = run(*ctx.value(0), *ctx.value(1), p, ws.data(), nullptr);
    ctx.set_output(0, DType::kInt64, Shape{n, 3});
    ctx.set_workspace(ws.size() * sizeof(int64_t));
    return Status::OK();
  }

  Status compute(const ComputeContext& ctx) const override {
    auto opt = [&](int i) { return ctx.has_input(i) ? &ctx.input(i) : nullptr; };
    const Params p = params(opt(2), opt(3), opt(4));
    run(ctx.input(0), ctx.input(1), p, static_cast<int64_t*>(ctx.workspace()), ctx.output(0).data<int64_t>());
    return Status::OK();
  }

 private:
  bool center_;
};

}  // namespace

StatusOr<KernelPtr> create_onnx_CumProd(const Node& n, const KernelInit&) {
  return KernelPtr(new CumProdKernel(n.attr_int("exclusive", 0) != 0, n.attr_int("reverse", 0) != 0));
}
StatusOr<KernelPtr> create_onnx_Einsum(const Node& n, const KernelInit&) {
  if (!n.attr("equation")) return InvalidArgument("Einsum needs an equation");
  return KernelPtr(new EinsumKernel(n.attr_string("equation", "")));
}
StatusOr<KernelPtr> create_onnx_Unique(const Node& n, const KernelInit&) {
  return KernelPtr(new UniqueKernel(n.attr("axis") != nullptr, n.attr_int("axis", 0), n.attr_int("sorted", 1) != 0));
}
StatusOr<KernelPtr> create_onnx_Det(const Node&, const KernelInit&) { return KernelPtr(new DetKernel()); }
StatusOr<KernelPtr> create_onnx_NonMaxSuppression(const Node& n, const KernelInit&) {
  return KernelPtr(new NmsKernel(n.attr_int("center_point_box", 0) != 0));
}

}  // namespace mserve
