// Shape: a fixed-capacity list of dimensions. Lives inline (no heap), so building tensors on
// the predict hot path never allocates. Rank is capped at kMaxRank; the planner rejects more.
#pragma once
#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

namespace mserve {

class Shape {
 public:
  static constexpr int kMaxRank = 8;
  Shape() = default;
  Shape(std::initializer_list<int64_t> dims) {
    for (int64_t d : dims) push_back(d);
  }
  template <class It>
  Shape(It begin, It end) {
    for (; begin != end; ++begin) push_back(*begin);
  }
  static bool fits(size_t rank) { return rank <= kMaxRank; }

  int rank() const { return rank_; }
  int64_t operator[](int i) const { return dims_[i]; }
  int64_t& operator[](int i) { return dims_[i]; }
  const int64_t* begin() const { return dims_; }
  const int64_t* end() const { return dims_ + rank_; }
  int64_t* begin() { return dims_; }
  int64_t* end() { return dims_ + rank_; }
  // Precondition: rank() < kMaxRank (callers check with fits()).
  void push_back(int64_t d) { dims_[rank_++] = d; }
  void insert(int pos, int64_t d);
  void erase(int pos);
  void resize(int rank, int64_t fill = 1);
  int64_t numel() const;
  // Product of dims [from, to).
  int64_t prod(int from, int to) const;
  std::vector<int64_t> vec() const { return {begin(), end()}; }
  std::string str() const;  // "[2, 3, 4]"
  bool operator==(const Shape& o) const;
  bool operator!=(const Shape& o) const { return !(*this == o); }

 private:
  int64_t dims_[kMaxRank] = {};
  int rank_ = 0;
};

}  // namespace mserve
