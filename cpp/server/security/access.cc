#include "server/security/access.h"

#include <arpa/inet.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <sys/stat.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <set>
#include <sstream>

#include "server/repository/config.h"

namespace mserve::server {

using Digest = std::array<unsigned char, 32>;

namespace {

Digest sha256(std::string_view s) {
  Digest d{};
  unsigned int n = 0;
  EVP_Digest(s.data(), s.size(), d.data(), &n, EVP_sha256(), nullptr);
  return d;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\r')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
  return s;
}

}  // namespace

struct AccessControl::Tokens {
  struct Entry {
    Digest digest;
    std::string identity;
    std::set<std::string> models;  // empty: every model
  };
  std::vector<Entry> entries;

  // Adds the lines of `text` (separated by '\n' or, with `semicolons`, ';').
  Status add(const std::string& text, bool semicolons, const std::string& where) {
    size_t line_no = 0;
    size_t i = 0;
    while (i <= text.size()) {
      size_t j = i;
      while (j < text.size() && text[j] != '\n' && !(semicolons && text[j] == ';')) ++j;
      std::string_view line = std::string_view(text).substr(i, j - i);
      i = j + 1;
      ++line_no;
      const size_t hash = line.find('#');
      if (hash != std::string_view::npos) line = line.substr(0, hash);
      line = trim(line);
      if (line.empty()) continue;
      std::istringstream words{std::string(line)};
      std::string token, word;
      words >> token;
      Entry e;
      e.digest = sha256(token);
      e.identity = "token-" + std::to_string(line_no);
      bool named = false;
      while (words >> word) {
        if (word.rfind("models=", 0) == 0) {
          std::string list = word.substr(7);
          size_t k = 0;
          while (k <= list.size()) {
            size_t c = list.find(',', k);
            if (c == std::string::npos) c = list.size();
            if (c > k) e.models.insert(list.substr(k, c - k));
            k = c + 1;
          }
          if (e.models.empty())
            return InvalidArgument(where + " line " + std::to_string(line_no) + ": models= lists no model");
        } else if (!named) {
          e.identity = word;
          named = true;
        } else {
          return InvalidArgument(where + " line " + std::to_string(line_no) +
                                 ": expected '<token> [identity] "
                                 "[models=a,b]', got an extra word '" +
                                 word + "'");
        }
      }
      if (token.size() < 8)
        return InvalidArgument(where + " line " + std::to_string(line_no) + ": a token needs at least 8 characters");
      entries.push_back(std::move(e));
    }
    return Status::OK();
  }
};

struct AccessControl::Network {
  bool v6 = false;
  std::array<unsigned char, 16> addr{};
  int prefix = 0;

  static StatusOr<Network> parse(const std::string& cidr) {
    Network n;
    std::string ip = cidr;
    int prefix = -1;
    const size_t slash = cidr.find('/');
    if (slash != std::string::npos) {
      ip = cidr.substr(0, slash);
      const std::string p = cidr.substr(slash + 1);
      if (p.empty() || p.size() > 3 || p.find_first_not_of("0123456789") != std::string::npos)
        return InvalidArgument("allow-list entry '" + cidr + "': the prefix length is not a number");
      prefix = std::stoi(p);
    }
    if (inet_pton(AF_INET, ip.c_str(), n.addr.data()) == 1) {
      n.prefix = prefix < 0 ? 32 : prefix;
      if (n.prefix > 32) return InvalidArgument("allow-list entry '" + cidr + "': an IPv4 prefix is at most 32");
    } else if (inet_pton(AF_INET6, ip.c_str(), n.addr.data()) == 1) {
      n.v6 = true;
      n.prefix = prefix < 0 ? 128 : prefix;
      if (n.prefix > 128) return InvalidArgument("allow-list entry '" + cidr + "': an IPv6 prefix is at most 128");
    } else {
      return InvalidArgument("allow-list entry '" + cidr + "' is not an IP address or CIDR block");
    }
    return n;
  }

  bool contains(bool v6_addr, const unsigned char* a) const {
    if (v6_addr != v6) return false;
    const int full = prefix / 8, rest = prefix % 8;
    if (std::memcmp(a, addr.data(), static_cast<size_t>(full)) != 0) return false;
    if (rest == 0) return true;
    const unsigned char mask = static_cast<unsigned char>(0xff << (8 - rest));
    return (a[full] & mask) == (addr[full] & mask);
  }
};

struct AccessControl::State {
  std::vector<Network> networks;
  mutable std::mutex mu;                 // guards tokens, file_sig, next_check
  std::shared_ptr<const Tokens> tokens;  // null: no tokens configured
  std::string env_text;                  // the environment variable's tokens, fixed at start
  mutable std::string file_sig;          // size and mtime of the tokens file last read
  mutable std::chrono::steady_clock::time_point next_check;
};

namespace {

std::string file_signature(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return "";
  return std::to_string(st.st_size) + ":" + std::to_string(st.st_mtim.tv_sec) + "." +
         std::to_string(st.st_mtim.tv_nsec);
}

}  // namespace

AccessControl::AccessControl(AccessOptions opts) : opts_(std::move(opts)), st_(std::make_unique<State>()) {}
AccessControl::~AccessControl() = default;

StatusOr<std::unique_ptr<AccessControl>> AccessControl::create(const AccessOptions& opts) {
  std::unique_ptr<AccessControl> ac(new AccessControl(opts));
  for (const std::string& c : opts.allow_cidrs) {
    MS_ASSIGN_OR_RETURN(Network n, Network::parse(c));
    ac->st_->networks.push_back(n);
  }
  if (opts.tokens_file.empty() && opts.tokens_env.empty()) return ac;
  auto tokens = std::make_shared<Tokens>();
  if (!opts.tokens_env.empty()) {
    const char* v = std::getenv(opts.tokens_env.c_str());
    if (!v || !*v)
      return InvalidArgument("environment variable " + opts.tokens_env + " (the server's tokens) is not set");
    ac->st_->env_text = v;
    MS_RETURN_IF_ERROR(tokens->add(ac->st_->env_text, true, "$" + opts.tokens_env));
  }
  if (!opts.tokens_file.empty()) {
    ac->st_->file_sig = file_signature(opts.tokens_file);
    MS_ASSIGN_OR_RETURN(std::string text, server::read_text_file(opts.tokens_file));
    MS_RETURN_IF_ERROR(tokens->add(text, false, opts.tokens_file));
  }
  if (tokens->entries.empty()) return InvalidArgument("no tokens given: the tokens file and variable hold none");
  ac->st_->tokens = std::move(tokens);
  ac->st_->next_check = std::chrono::steady_clock::now() + std::chrono::seconds(1);
  return ac;
}

bool AccessControl::tokens_required() const {
  std::lock_guard<std::mutex> lk(st_->mu);
  return st_->tokens != nullptr;
}

void AccessControl::maybe_reload() const {
  if (opts_.tokens_file.empty()) return;
  const auto now = std::chrono::steady_clock::now();
  {
    std::lock_guard<std::mutex> lk(st_->mu);
    if (now < st_->next_check) return;
    st_->next_check = now + std::chrono::seconds(1);
  }
  const std::string sig = file_signature(opts_.tokens_file);
  {
    std::lock_guard<std::mutex> lk(st_->mu);
    if (sig == st_->file_sig) return;
    st_->file_sig = sig;  // reported once per change
  }
  auto fresh = std::make_shared<Tokens>();
  Status s = st_->env_text.empty() ? Status::OK() : fresh->add(st_->env_text, true, "$" + opts_.tokens_env);
  auto text = server::read_text_file(opts_.tokens_file);
  if (s.ok()) s = text.ok() ? fresh->add(text.value(), false, opts_.tokens_file) : text.status();
  if (s.ok() && fresh->entries.empty()) s = InvalidArgument(opts_.tokens_file + " holds no tokens");
  if (!s.ok()) {
    if (opts_.log) opts_.log("keeping the previous tokens: " + s.message());
    return;
  }
  {
    std::lock_guard<std::mutex> lk(st_->mu);
    st_->tokens = std::move(fresh);
  }
  if (opts_.log) opts_.log("tokens reloaded from " + opts_.tokens_file);
}

Status AccessControl::check(std::string_view remote, std::string_view authorization, const std::string& model,
                            bool health, std::string* identity) const {
  if (identity) identity->clear();
  if (!st_->networks.empty()) {
    // gRPC peers look like "ipv4:10.1.2.3:5000" and "ipv6:[::1]:5000".
    std::string ip(remote);
    if (ip.rfind("ipv4:", 0) == 0) {
      ip = ip.substr(5, ip.rfind(':') - 5);
    } else if (ip.rfind("ipv6:", 0) == 0) {
      ip = ip.substr(5);
      if (!ip.empty() && ip[0] == '[') ip = ip.substr(1, ip.find(']') - 1);
      const size_t pct = ip.find('%');  // zone index
      if (pct != std::string::npos) ip = ip.substr(0, pct);
    }
    unsigned char a[16];
    bool v6 = false, parsed = inet_pton(AF_INET, ip.c_str(), a) == 1;
    if (!parsed && inet_pton(AF_INET6, ip.c_str(), a) == 1) {
      parsed = true;
      v6 = true;
      static const unsigned char kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
      if (std::memcmp(a, kMapped, 12) == 0) {
        std::memmove(a, a + 12, 4);
        v6 = false;
      }
    }
    bool allowed = false;
    for (const Network& n : st_->networks) allowed = allowed || (parsed && n.contains(v6, a));
    if (!allowed) return PermissionDenied("client address " + std::string(remote) + " is not allowed");
  }
  if (health && opts_.open_health) return Status::OK();
  maybe_reload();
  std::shared_ptr<const Tokens> tokens;
  {
    std::lock_guard<std::mutex> lk(st_->mu);
    tokens = st_->tokens;
  }
  if (!tokens) return Status::OK();
  std::string_view cred = trim(authorization);
  constexpr std::string_view kBearer = "bearer ";
  bool bearer = cred.size() > kBearer.size();
  for (size_t i = 0; bearer && i < kBearer.size(); ++i)
    bearer = std::tolower(static_cast<unsigned char>(cred[i])) == kBearer[i];
  if (!bearer) return Unauthenticated("this server needs a bearer token (Authorization: Bearer <token>)");
  const Digest d = sha256(trim(cred.substr(kBearer.size())));
  const Tokens::Entry* match = nullptr;
  for (const Tokens::Entry& e : tokens->entries)  // every entry, constant time each
    if (CRYPTO_memcmp(e.digest.data(), d.data(), d.size()) == 0 && !match) match = &e;
  if (!match) return Unauthenticated("the bearer token is not valid");
  if (!match->models.empty() && !match->models.count(model)) {
    std::string list;
    for (const std::string& m : match->models) list += (list.empty() ? "" : ", ") + m;
    return PermissionDenied("'" + match->identity + "' may only call model" + (match->models.size() > 1 ? "s " : " ") +
                            list + (model.empty() ? " (this call is server-wide)" : ", not '" + model + "'"));
  }
  if (identity) *identity = match->identity;
  return Status::OK();
}

}  // namespace mserve::server
