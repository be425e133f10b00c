// Text featurization: what skl2onnx makes of scikit-learn's CountVectorizer and TfidfVectorizer
// (StringNormalizer, then these two, then the estimator's arithmetic).
//   TfIdfVectorizer (9): counts the pool's n-grams in each row of X ([C] or [B, C]; int32, int64
//     or strings) into Y [E] or [B, E] float32, E = 1 + max(ngram_indexes). n-grams of
//     min_gram_length..max_gram_length tokens are counted at every skip distance
//     1..max_skip_count+1 between consecutive tokens; 1-grams once, as skips do not change them.
//     The pool holds ngram_counts.size() groups (1-grams from ngram_counts[0], 2-grams from
//     ngram_counts[1], ...); the i-th n-gram of the pool has weight weights[i] (1 without
//     weights) and scores into column ngram_indexes[i]: TF counts, TFIDF sums the weights of the
//     hits, IDF writes the weight where there is a hit. Weights are per n-gram as the spec says
//     and ONNX Runtime reads them (onnx.reference reads them per output column instead: the
//     two agree when ngram_indexes is 0, 1, 2, ...).
//   com.microsoft Tokenizer (1): splits each UTF-8 string of X ([C] or [N, C]) into tokens along
//     a new last axis, padded with pad_value to the most tokens of any string: Y [C, T] or
//     [N, C, T]. With mark, each row starts with "\x02" and its tokens end with "\x03" (padding
//     follows the end mark), T counting both; when no string has a token, T = 0. Tokens shorter
//     than mincharnum characters are dropped. Modes, as ONNX Runtime runs them:
//       separators [""] or tokenexp ".": one token per character.
//       separators: each is an RE2 expression (leftmost-longest); the string is split on every
//         match of the first, the pieces on the second, and so on. A match of nothing ends the
//         piece before it and drops the character it stands on.
//       tokenexp: the tokens are the leftmost-longest matches of the RE2 expression, scanned
//         left to right; after a match too short to keep, the scan resumes one character on.
//     ONNX Runtime answers an empty X with Y of shape [0] or [N, 0]; here Y is X's shape plus
//     a last axis of 0, the rank every other input gets.
// Tokenizer's output shape depends on the strings: inferred when X is known (at run time).
#include <algorithm>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include <re2/re2.h>

#include "core/kernels/common.h"
#include "core/kernels/registry.h"
#include "core/parallel/thread_pool.h"

namespace mserve {
namespace {

// ---------------------------------------------------------------------------- TfIdfVectorizer

enum class Weighting { kTF, kIDF, kTFIDF };

// Where a node of the n-gram trie ends a counted n-gram: the n-gram's rank in the pool and its
// output column (-1 for a node that only prefixes longer n-grams).
struct NgramHit {
  int64_t ngram = -1;
  int64_t column = -1;
};

// The pool's n-grams as a trie over tokens (int64 or string).
template <class Key>
class NgramTrie {
 public:
  NgramTrie() : nodes_(1) {}
  // False when the n-gram is already there.
  bool insert(const Key* tokens, int64_t n, NgramHit hit) {
    int32_t at = 0;
    for (int64_t i = 0; i < n; ++i) {
      auto it = nodes_[at].next.find(tokens[i]);
      if (it == nodes_[at].next.end()) {
        const auto id = static_cast<int32_t>(nodes_.size());
        nodes_[at].next.emplace(tokens[i], id);
        nodes_.emplace_back();
        at = id;
      } else {
        at = it->second;
      }
    }
    if (nodes_[at].hit.column >= 0) return false;
    nodes_[at].hit = hit;
    return true;
  }
  bool empty() const { return nodes_.size() == 1; }
  // The child of `node` along `key`, or -1.
  int32_t child(int32_t node, const Key& key) const {
    const auto& next = nodes_[node].next;
    auto it = next.find(key);
    return it == next.end() ? -1 : it->second;
  }
  const NgramHit& hit(int32_t node) const { return nodes_[node].hit; }

 private:
  struct Node {
    NgramHit hit;
    std::unordered_map<Key, int32_t> next;
  };
  std::vector<Node> nodes_;
};

class TfIdfVectorizerKernel final : public Kernel {
 public:
  TfIdfVectorizerKernel(Weighting w, int64_t min_n, int64_t max_n, int64_t max_skip, int64_t width,
                        std::vector<float> weights, bool strings)
      : weighting_(w),
        min_n_(min_n),
        max_n_(max_n),
        max_skip_(max_skip),
        width_(width),
        weights_(std::move(weights)),
        strings_(strings) {}
  // The pool, filled by the factory: one of the two, after X's dtype.
  NgramTrie<int64_t> int_pool;
  NgramTrie<std::string> string_pool;

  bool supports_strings() const override { return true; }

  Status infer(InferContext& ctx) const override {
    MS_CHECK_ARG(ctx.has_input(0), "needs an input");
    const DType dt = ctx.dtype(0);
    if (strings_)
      MS_CHECK_ARG(dt == DType::kString,
                   std::string("X must be a string tensor (the pool is pool_strings), got ") + dtype_name(dt));
    else
      MS_CHECK_ARG(dt == DType::kInt32 || dt == DType::kInt64,
                   std::string("X must be int32 or int64 (the pool is pool_int64s), got ") + dtype_name(dt));
    const Shape& s = ctx.shape(0);
    MS_CHECK_ARG(s.rank() == 1 || s.rank() == 2, "X must have shape [C] or [B, C], got " + s.str());
    const int64_t rows = s.rank() == 2 ? s[0] : 1;
    ctx.set_output(0, DType::kFloat32, s.rank() == 2 ? Shape{rows, width_} : Shape{width_});
    return Status::OK();
  }

  Status compute(const ComputeContext& ctx) const override {
    const Tensor& x = ctx.input(0);
    float* y = ctx.output(0).data<float>();
    const int64_t rows = x.rank() == 2 ? x.dim(0) : 1;
    const int64_t cols = x.dim(x.rank() - 1);
    const int64_t grain = std::max<int64_t>(1, 4096 / (cols * (max_skip_ + 1) + 1));
    ctx.pool().parallel_for(rows, grain, [&](int64_t b, int64_t e) {
      for (int64_t r = b; r < e; ++r) {
        float* row = y + r * width_;
        std::fill(row, row + width_, 0.0f);
        const int64_t o = r * cols;
        if (strings_)
          scan_row(
              string_pool, cols, [&](int64_t i) -> const std::string& { return x.str(o + i); }, row);
        else if (x.dtype() == DType::kInt32)
          scan_row(
              int_pool, cols, [&](int64_t i) { return static_cast<int64_t>(x.data<int32_t>()[o + i]); }, row);
        else
          scan_row(
              int_pool, cols, [&](int64_t i) { return x.data<int64_t>()[o + i]; }, row);
      }
    });
    return Status::OK();
  }

 private:
  // Scores the n-grams of one row of `cols` tokens (token(i) is the i-th) into row[column], hit
  // by hit in ONNX Runtime's order (skip distance, start, length): TF adds 1, TFIDF the
  // n-gram's weight, IDF sets the n-gram's weight (where n-grams share a column, the last hit
  // decides).
  template <class Key, class Token>
  void scan_row(const NgramTrie<Key>& trie, int64_t cols, Token&& token, float* row) const {
    if (trie.empty()) return;
    for (int64_t d = 1; d <= max_skip_ + 1; ++d) {
      // 1-grams are the same at every skip distance: counted at distance 1 only.
      const int64_t first = d == 1 ? min_n_ : std::max<int64_t>(min_n_, 2);
      if (first > max_n_) break;
      for (int64_t start = 0; start + d * (first - 1) < cols; ++start) {
        int32_t node = 0;
        int64_t pos = start;
        for (int64_t n = 1; n <= max_n_ && pos < cols; ++n, pos += d) {
          node = trie.child(node, token(pos));
          if (node < 0) break;
          const NgramHit hit = trie.hit(node);
          if (n < first || hit.column < 0) continue;
          const float w = weights_.empty() ? 1.0f : weights_[hit.ngram];
          if (weighting_ == Weighting::kTF)
            row[hit.column] += 1.0f;
          else if (weighting_ == Weighting::kTFIDF)
            row[hit.column] += w;
          else
            row[hit.column] = w;
        }
      }
    }
  }

  Weighting weighting_;
  int64_t min_n_, max_n_, max_skip_, width_;
  std::vector<float> weights_;  // per n-gram of the pool; empty: all 1
  bool strings_;
};

StatusOr<int64_t> required_int(const Node& n, const char* name) {
  const Attribute* a = n.attr(name);
  if (!a || a->kind != Attribute::Kind::kInt)
    return InvalidArgument(std::string("int attribute '") + name + "' is required");
  return a->i;
}

// --------------------------------------------------------------------------------- Tokenizer

// Bytes of the UTF-8 sequence led by `c` (0 for a byte no sequence starts with).
int utf8_lead_length(unsigned char c) {
  if (c < 0x80) return 1;
  if ((c & 0xE0) == 0xC0) return c >= 0xC2 ? 2 : 0;
  if ((c & 0xF0) == 0xE0) return 3;
  if ((c & 0xF8) == 0xF0) return c <= 0xF4 ? 4 : 0;
  return 0;
}

bool valid_utf8(const std::string& s) {
  for (size_t i = 0; i < s.size();) {
    const int n = utf8_lead_length(static_cast<unsigned char>(s[i]));
    if (n == 0 || i + n > s.size()) return false;
    for (int k = 1; k < n; ++k)
      if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) return false;
    i += n;
  }
  return true;
}

// Characters of a piece of valid UTF-8: the bytes that are not continuation bytes.
size_t utf8_chars(re2::StringPiece p) {
  size_t n = 0;
  for (char c : p) n += (static_cast<unsigned char>(c) & 0xC0) != 0x80;
  return n;
}

enum class TokenMode { kChars, kSeparators, kExpression };

class TokenizerKernel final : public Kernel {
 public:
  TokenizerKernel(TokenMode mode, bool mark, std::string pad, int64_t mincharnum,
                  std::vector<std::unique_ptr<RE2>> separators, std::unique_ptr<RE2> expression)
      : mode_(mode),
        mark_(mark),
        pad_(std::move(pad)),
        mincharnum_(static_cast<size_t>(mincharnum)),
        separators_(std::move(separators)),
        expression_(std::move(expression)) {}
  bool supports_strings() const override { return true; }

  Status infer(InferContext& ctx) const override {
    MS_CHECK_ARG(ctx.has_input(0), "needs an input");
    MS_CHECK_ARG(ctx.dtype(0) == DType::kString,
                 std::string("X must be a string tensor, got ") + dtype_name(ctx.dtype(0)));
    const Shape& s = ctx.shape(0);
    MS_CHECK_ARG(s.rank() == 1 || s.rank() == 2, "X must have shape [C] or [N, C], got " + s.str());
    const Tensor* x = ctx.value(0);
    if (!x && s.numel() != 0) return ctx.need_value();
    int64_t most = 0;
    for (int64_t i = 0; x && i < x->numel(); ++i) {
      MS_ASSIGN_OR_RETURN(int64_t n, tokenize(x->str(i), i, [](re2::StringPiece) {}));
      most = std::max(most, n);
    }
    Shape y = s;
    y.push_back(most == 0 ? 0 : most + (mark_ ? 2 : 0));
    ctx.set_output(0, DType::kString, y);
    return Status::OK();
  }

  Status compute(const ComputeContext& ctx) const override {
    const Tensor& x = ctx.input(0);
    Tensor& y = ctx.output(0);
    const int64_t width = y.dim(y.rank() - 1);
    if (width == 0) return Status::OK();
    for (int64_t i = 0; i < x.numel(); ++i) {
      std::string* row = &y.str(i * width);
      int64_t k = 0;
      if (mark_) row[k++].assign(1, '\x02');
      const int64_t room = width - (mark_ ? 2 : 0);
      MS_ASSIGN_OR_RETURN(int64_t n, tokenize(x.str(i), i, [&](re2::StringPiece t) {
                            if (k < room + (mark_ ? 1 : 0)) row[k].assign(t.data(), t.size());
                            ++k;
                          }));
      if (n > room) return Internal("Tokenizer output width");
      if (mark_) row[k++].assign(1, '\x03');
      for (; k < width; ++k) row[k] = pad_;
    }
    return Status::OK();
  }

 private:
  // Calls fn(token) for each token of s (element i of X, for messages); returns the count.
  template <class F>
  StatusOr<int64_t> tokenize(const std::string& s, int64_t i, F&& fn) const {
    if (!valid_utf8(s)) return InvalidArgument("X[" + std::to_string(i) + "] is not valid UTF-8");
    int64_t count = 0;
    auto emit = [&](re2::StringPiece t) {
      fn(t);
      ++count;
    };
    const re2::StringPiece text(s);
    switch (mode_) {
      case TokenMode::kChars:
        for (size_t p = 0; p < s.size();) {
          const size_t n = static_cast<size_t>(utf8_lead_length(static_cast<unsigned char>(s[p])));
          emit(text.substr(p, n));
          p += n;
        }
        break;
      case TokenMode::kSeparators: {
        std::vector<re2::StringPiece> pieces{text}, next;
        for (const auto& sep : separators_) {
          next.clear();
          for (const re2::StringPiece piece : pieces) split(*sep, piece, next);
          pieces.swap(next);
        }
        for (const re2::StringPiece t : pieces) emit(t);
        break;
      }
      case TokenMode::kExpression: {
        size_t start = 0;
        re2::StringPiece m;
        while (start <= s.size() && expression_->Match(text, start, s.size(), RE2::UNANCHORED, &m, 1)) {
          const size_t at = static_cast<size_t>(m.data() - s.data());
          if (m.size() > 0 && utf8_chars(m) >= mincharnum_) {
            emit(m);
            start = at + m.size();
          } else {  // too short (or empty): resume one character on
            if (at >= s.size()) break;
            start = at + static_cast<size_t>(utf8_lead_length(static_cast<unsigned char>(s[at])));
          }
        }
        break;
      }
    }
    return count;
  }

  // Appends to `out` the pieces of `text` between matches of `sep` that have at least
  // mincharnum characters.
  void split(const RE2& sep, re2::StringPiece text, std::vector<re2::StringPiece>& out) const {
    size_t start = 0;
    const size_t end = text.size();
    re2::StringPiece m;
    while (start <= end && sep.Match(text, start, end, RE2::UNANCHORED, &m, 1)) {
      const size_t at = static_cast<size_t>(m.data() - text.data());
      const re2::StringPiece piece = text.substr(start, at - start);
      if (!piece.empty() && utf8_chars(piece) >= mincharnum_) out.push_back(piece);
      if (m.size() > 0) {
        start = at + m.size();
      } else {  // an empty match drops the character it stands on (ONNX Runtime does)
        if (at >= end) return;
        start = at + static_cast<size_t>(utf8_lead_length(static_cast<unsigned char>(text[at])));
      }
    }
    if (start < end) {
      const re2::StringPiece rest = text.substr(start);
      if (utf8_chars(rest) >= mincharnum_) out.push_back(rest);
    }
  }

  TokenMode mode_;
  bool mark_;
  std::string pad_;
  size_t mincharnum_;
  std::vector<std::unique_ptr<RE2>> separators_;  // RE2 objects are thread-safe for matching
  std::unique_ptr<RE2> expression_;
};

StatusOr<std::unique_ptr<RE2>> compile(const std::string& pattern, const std::string& what) {
  RE2::Options opts;
  opts.set_longest_match(true);  // leftmost-longest, as ONNX Runtime matches
  opts.set_log_errors(false);
  auto re = std::make_unique<RE2>(pattern, opts);
  if (!re->ok())
    return InvalidArgument(what + " '" + pattern + "' is not an RE2 regular expression (" + re->error() +
                           "); RE2 has no lookaround, backreferences or (?u): write the pattern in RE2 syntax, "
                           "e.g. [a-zA-Z0-9_]+ for scikit-learn's default token_pattern");
  return re;
}

}  // namespace

StatusOr<KernelPtr> create_onnx_TfIdfVectorizer(const Node& n, const KernelInit&) {
  const Attribute* mode_attr = n.attr("mode");
  MS_CHECK_ARG(mode_attr && mode_attr->kind == Attribute::Kind::kString, "string attribute 'mode' is required");
  Weighting w;
  if (mode_attr->s == "TF")
    w = Weighting::kTF;
  else if (mode_attr->s == "IDF")
    w = Weighting::kIDF;
  else if (mode_attr->s == "TFIDF")
    w = Weighting::kTFIDF;
  else
    return InvalidArgument("mode must be TF, IDF or TFIDF, got '" + mode_attr->s + "'");
  MS_ASSIGN_OR_RETURN(int64_t min_n, required_int(n, "min_gram_length"));
  MS_ASSIGN_OR_RETURN(int64_t max_n, required_int(n, "max_gram_length"));
  MS_ASSIGN_OR_RETURN(int64_t max_skip, required_int(n, "max_skip_count"));
  MS_CHECK_ARG(min_n >= 1, "min_gram_length must be at least 1, got " + std::to_string(min_n));
  MS_CHECK_ARG(max_n >= min_n, "max_gram_length (" + std::to_string(max_n) + ") is less than min_gram_length (" +
                                   std::to_string(min_n) + ")");
  MS_CHECK_ARG(max_skip >= 0, "max_skip_count must be non-negative, got " + std::to_string(max_skip));

  const std::vector<int64_t> counts = n.attr_ints("ngram_counts");
  const std::vector<int64_t> indexes = n.attr_ints("ngram_indexes");
  const Attribute* ps = n.attr("pool_strings");
  const std::vector<int64_t> pool_ints = n.attr_ints("pool_int64s");
  const bool strings = ps && !ps->strings.empty();
  MS_CHECK_ARG(strings != !pool_ints.empty(), "exactly one of pool_strings and pool_int64s must be set (non-empty)");
  const int64_t pool_size = strings ? static_cast<int64_t>(ps->strings.size()) : static_cast<int64_t>(pool_ints.size());
  MS_CHECK_ARG(!counts.empty(), "ngram_counts is required (the pool offset of each n-gram length)");
  MS_CHECK_ARG(max_n <= static_cast<int64_t>(counts.size()), "max_gram_length (" + std::to_string(max_n) +
                                                                 ") exceeds the n-gram lengths of ngram_counts (" +
                                                                 std::to_string(counts.size()) + ")");
  MS_CHECK_ARG(!indexes.empty(), "ngram_indexes is required (the output column of each n-gram)");
  int64_t width = 0;
  for (int64_t v : indexes) {
    MS_CHECK_ARG(v >= 0, "ngram_indexes must be non-negative, got " + std::to_string(v));
    MS_CHECK_ARG(v < (int64_t{1} << 31), "ngram_indexes value " + std::to_string(v) + " is too large");
    width = std::max(width, v + 1);
  }
  const Attribute* wa = n.attr("weights");
  std::vector<float> weights = wa ? wa->floats : std::vector<float>{};
  if (!weights.empty()) {
    MS_CHECK_ARG(weights.size() == indexes.size(), "weights has " + std::to_string(weights.size()) +
                                                       " values, ngram_indexes " + std::to_string(indexes.size()) +
                                                       ": they must have the same length");
    if (w == Weighting::kTF) weights.clear();  // TF does not read them
  }

  auto k = std::make_unique<TfIdfVectorizerKernel>(w, min_n, max_n, max_skip, width, std::move(weights), strings);
  int64_t id = 0;  // the n-gram's rank in the pool
  for (size_t g = 0; g < counts.size(); ++g) {
    const int64_t len = static_cast<int64_t>(g) + 1;
    const int64_t begin = counts[g];
    const int64_t end = g + 1 < counts.size() ? counts[g + 1] : pool_size;
    MS_CHECK_ARG(begin >= 0 && begin <= end && end <= pool_size,
                 "ngram_counts does not split the pool (" + std::to_string(pool_size) +
                     " items) into increasing offsets: " + std::to_string(len) + "-grams at [" + std::to_string(begin) +
                     ", " + std::to_string(end) + ")");
    MS_CHECK_ARG((end - begin) % len == 0, "the pool's " + std::to_string(len) + "-grams (" +
                                               std::to_string(end - begin) + " items) are not whole " +
                                               std::to_string(len) + "-grams");
    for (int64_t p = begin; p < end; p += len, ++id) {
      MS_CHECK_ARG(id < static_cast<int64_t>(indexes.size()),
                   "ngram_indexes has " + std::to_string(indexes.size()) + " values, fewer than the pool's n-grams");
      if (len < min_n || len > max_n) continue;  // never counted
      const bool fresh = strings ? k->string_pool.insert(ps->strings.data() + p, len, {id, indexes[id]})
                                 : k->int_pool.insert(pool_ints.data() + p, len, {id, indexes[id]});
      MS_CHECK_ARG(fresh,
                   "the pool holds the " + std::to_string(len) + "-gram at item " + std::to_string(p) + " twice");
    }
  }
  return KernelPtr(std::move(k));
}

StatusOr<KernelPtr> create_microsoft_Tokenizer(const Node& n, const KernelInit&) {
  MS_ASSIGN_OR_RETURN(int64_t mark, required_int(n, "mark"));
  MS_ASSIGN_OR_RETURN(int64_t mincharnum, required_int(n, "mincharnum"));
  const Attribute* pad = n.attr("pad_value");
  MS_CHECK_ARG(pad && pad->kind == Attribute::Kind::kString, "string attribute 'pad_value' is required");
  MS_CHECK_ARG(mincharnum > 0, "mincharnum must be positive, got " + std::to_string(mincharnum));
  const Attribute* seps = n.attr("separators");
  const Attribute* exp = n.attr("tokenexp");
  MS_CHECK_ARG(!seps != !exp, "exactly one of 'separators' and 'tokenexp' must be set");
  TokenMode mode;
  std::vector<std::unique_ptr<RE2>> separators;
  std::unique_ptr<RE2> expression;
  if (seps) {
    MS_CHECK_ARG(!seps->strings.empty(), "separators must not be empty");
    if (seps->strings.size() == 1 && seps->strings[0].empty()) {
      mode = TokenMode::kChars;
    } else {
      mode = TokenMode::kSeparators;
      for (const std::string& s : seps->strings) {
        MS_CHECK_ARG(!s.empty(), "an empty separator is allowed only alone (character tokenization)");
        MS_ASSIGN_OR_RETURN(auto re, compile(s, "separator"));
        separators.push_back(std::move(re));
      }
    }
  } else {
    MS_CHECK_ARG(!exp->s.empty(), "tokenexp must not be empty");
    if (exp->s == ".") {
      mode = TokenMode::kChars;
    } else {
      mode = TokenMode::kExpression;
      MS_ASSIGN_OR_RETURN(expression, compile(exp->s, "tokenexp"));
    }
  }
  MS_CHECK_ARG(mode != TokenMode::kChars || mincharnum < 2,
               "mincharnum must be 1 for character tokenization, got " + std::to_string(mincharnum));
  return KernelPtr(
      new TokenizerKernel(mode, mark != 0, pad->s, mincharnum, std::move(separators), std::move(expression)));
}

}  // namespace mserve
