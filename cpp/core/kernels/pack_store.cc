#include "core/kernels/pack_store.h"

#define XXH_INLINE_ALL  // header-only: no library to ship in the wheels
#include <xxhash.h>

namespace mserve {

uint64_t pack_digest64(const void* data, size_t bytes) { return XXH3_64bits(data, bytes); }

PackKeyBuilder::PackKeyBuilder(std::string_view what) : state_(XXH3_createState()) {
  XXH3_128bits_reset(static_cast<XXH3_state_t*>(state_));
  const uint64_t n = what.size();
  add(&n, sizeof n);
  add(what.data(), what.size());
}

PackKeyBuilder::~PackKeyBuilder() { XXH3_freeState(static_cast<XXH3_state_t*>(state_)); }

PackKeyBuilder& PackKeyBuilder::add(const void* data, size_t bytes) {
  XXH3_128bits_update(static_cast<XXH3_state_t*>(state_), data, bytes);
  return *this;
}

PackKey PackKeyBuilder::key() const {
  const XXH128_hash_t h = XXH3_128bits_digest(static_cast<const XXH3_state_t*>(state_));
  return {h.low64, h.high64};
}

}  // namespace mserve
