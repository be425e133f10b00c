// Mirror: a remote base path's wanted versions, kept in a local folder that ModelManager polls.
//
// Each sync() lists the source once. Version folders (numbered, holding model.onnx or one .onnx
// file) are candidates; the version policy picks which are wanted. A wanted version is brought
// in through a temporary folder: every file downloaded, its size checked against the listing and
// its content against the ETag when the ETag is a plain MD5 (single-part uploads), then renamed
// into place, so a version is either all there or not there. A version whose listing changed
// since the previous pass waits for a pass that lists it the same (an upload in progress is never
// mirrored half-done); the first pass takes what it finds. Versions already mirrored with the same
// listing are not downloaded again; versions no longer listed or wanted are removed, and leftover
// temporary folders are cleaned at start. A failed listing changes nothing locally: what is
// mirrored stays and keeps being served.
//
// Thread-safety: one sync() at a time (ModelManager polls a model from one thread).
#pragma once
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "server/remote/source.h"
#include "server/repository/config.h"

namespace mserve::server {

class Mirror {
 public:
  Mirror(std::unique_ptr<ObjectSource> source, std::string dir);
  Status sync(const VersionPolicy& policy);
  const std::string& dir() const { return dir_; }
  const std::string& uri() const { return source_->uri(); }

  struct State {
    Status last;  // the last sync's outcome
    int64_t syncs = 0, failures = 0, downloaded_bytes = 0;
    std::map<int64_t, std::string> waiting;  // versions whose upload looks in progress -> why
  };
  State state() const;

 private:
  Status bring(int64_t version, const std::vector<RemoteFile>& files, const std::string& listing);
  std::unique_ptr<ObjectSource> source_;
  const std::string dir_;
  bool first_ = true;
  std::map<int64_t, std::string> seen_;  // version -> its listing at the previous pass
  mutable std::mutex mu_;                // guards state_
  State state_;
};

}  // namespace mserve::server
