// Linear algebra: Det (opset 11+) and Einsum (12+).
//
// Det: the determinant of each trailing [M, M] matrix by Gaussian elimination with partial
// pivoting, in double. Einsum parses the equation into one index letter per operand dimension
// (ellipsis expanded to its dims; repeated letters in one operand walk its diagonal), then
// computes each output element as the sum over the letters absent from the output of the product
// of the operands (float and float16 accumulated in double).
#include <algorithm>
#include <cmath>
#include <string>
#include <type_traits>
#include <vector>

#include "core/kernels/common.h"
#include "core/kernels/registry.h"
#include "core/parallel/thread_pool.h"

namespace mserve {
namespace {

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
                                                 " operands but the node has " + std::to_string(ranks.size()) +
                                                 " inputs");
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
    MS_CHECK_ARG(
        static_cast<int>(sp->in[i].size()) == ranks[i],
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

}  // namespace

StatusOr<KernelPtr> create_onnx_Det(const Node&, const KernelInit&) { return KernelPtr(new DetKernel()); }
StatusOr<KernelPtr> create_onnx_Einsum(const Node& n, const KernelInit&) {
  if (!n.attr("equation")) return InvalidArgument("Einsum needs an equation");
  return KernelPtr(new EinsumKernel(n.attr_string("equation", "")));
}

}  // namespace mserve
