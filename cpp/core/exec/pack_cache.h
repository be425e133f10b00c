// The on-disk PackStore (kernels/pack_store.h): one file per model and build environment,
// `<dir>/<model file name>.<environment digest>.mspack`, mapped read-only by every process that
// loads the model, so they share one copy of its packed weights (the page cache's).
//
// The file (little-endian): a 64-byte header, the entries' bytes (each 64-byte aligned), then the
// table, one 40-byte row per entry: key (16 bytes), offset, size, digest of the bytes.
//   header: magic "MSPACK1\0", environment digest (16), entry count, table offset, file size,
//           digest of the header's first 48 bytes.
// The environment digest covers the file format, mserve's version, oneDNN's version and the CPU
// instruction set it packs for: a file from another build or machine is another file.
//
// Checked when opened: magic, environment, sizes and offsets against the file, the header's
// digest; an entry's bytes against their digest when first found. A file that fails a check is
// ignored (this load packs, and writes a good file over it); loading never fails for the cache.
#pragma once
#include <cstddef>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "core/kernels/pack_store.h"
#include "core/status.h"

namespace mserve {

class PackCache final : public PackStore {
 public:
  // The cache of model file `model_name` in directory `dir` (which need not exist yet).
  static std::shared_ptr<PackCache> open(const std::string& dir, const std::string& model_name);
  ~PackCache() override;

  Found find(const PackKey& key, size_t size) override;
  void add(const PackKey& key, const void* data, size_t size, std::shared_ptr<const void> keep) override;
  void offer(const PackKey& key, const void* data, size_t size, std::weak_ptr<const void> owner) override;

  // Writes the file anew when this load packed or copied weights the file lacked, holding every
  // entry this load used: a temporary file in `dir` renamed over the old one (processes that mapped the old
  // keep it). An error (a read-only directory, a full disk) leaves the old file; it is returned
  // and kept in the report, and the model works as loaded.
  Status save();

  struct Report {
    std::string path;
    size_t found = 0;   // weights taken from the file
    size_t packed = 0;  // weights packed by this load
    size_t copied = 0;  // weights used as stored that this load copied (stored when still used)
    bool written = false;
    std::string error;  // why the file was ignored or not written; empty when neither
  };
  Report report() const;

 private:
  struct Entry;
  struct Mapped;
  PackCache() = default;
  void load_file();

  std::string dir_, path_;
  std::shared_ptr<const Mapped> file_;  // the file as opened, or null
  std::vector<Entry> entries_;          // the file's
  struct Used {
    PackKey key;
    const void* data;
    size_t size;
    std::shared_ptr<const void> keep;
    std::weak_ptr<const void> owner;  // offered: stored only while this holds
  };
  std::vector<Used> used_;  // what this load found or packed, in order
  mutable std::mutex mu_;
  Report report_;
};

}  // namespace mserve
