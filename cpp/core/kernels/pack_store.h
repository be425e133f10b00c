// Packed weights that outlive a process. A kernel that packs constant weights into a layout of
// its own (oneDNN's) asks the session's store for them first and hands it what it packed. The
// store a session has is a file next to the model (exec/pack_cache.h) that every process loading
// the model maps: N processes serving one model hold one copy of its packed weights, in the page
// cache.
//
// A key digests everything the packed bytes depend on: what packs them, its parameters, and the
// source bytes (the store's file is kept apart per CPU instruction set and library version). So a
// key that matches names the same bytes, whatever the model or its file is called.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>
#include <type_traits>

namespace mserve {

struct PackKey {
  uint64_t lo = 0, hi = 0;
  bool operator==(const PackKey& o) const { return lo == o.lo && hi == o.hi; }
};

// A 64-bit digest (XXH3) of `bytes` at `data`: a pack store's check of the bytes it keeps.
uint64_t pack_digest64(const void* data, size_t bytes);

// A 128-bit digest (XXH3) of the spans added, in order.
class PackKeyBuilder {
 public:
  explicit PackKeyBuilder(std::string_view what);
  ~PackKeyBuilder();
  PackKeyBuilder(const PackKeyBuilder&) = delete;
  PackKeyBuilder& operator=(const PackKeyBuilder&) = delete;
  PackKeyBuilder& add(const void* data, size_t bytes);
  template <class T>
  PackKeyBuilder& pod(const T& v) {
    static_assert(std::is_trivially_copyable_v<T> && std::has_unique_object_representations_v<T>,
                  "a key part must have no padding bytes");
    return add(&v, sizeof v);
  }
  PackKey key() const;

 private:
  void* state_;
};

class PackStore {
 public:
  virtual ~PackStore() = default;
  struct Found {
    const void* data = nullptr;        // read-only, 64-byte aligned; null when not stored
    std::shared_ptr<const void> keep;  // holds `data` alive
  };
  // The bytes stored under `key`, when there are exactly `size` of them and they check out.
  virtual Found find(const PackKey& key, size_t size) = 0;
  // Records `size` bytes at `data` packed under `key`; `keep` holds them alive for the store.
  virtual void add(const PackKey& key, const void* data, size_t size, std::shared_ptr<const void> keep) = 0;
  // Offers weights used as stored that had to be copied (the loader's, where the file's bytes are
  // not aligned for their type): stored only if `owner` still holds them when the store is
  // saved, so weights that kernels packed and released are left out.
  virtual void offer(const PackKey& key, const void* data, size_t size, std::weak_ptr<const void> owner) = 0;
};

}  // namespace mserve
