#include "server/security/integrity.h"

#include "server/security/digest.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>

#include "server/repository/config.h"

namespace mserve::server {
namespace {

namespace fs = std::filesystem;

constexpr char kMagic[] = "MSERVE-ENC1\n";
constexpr size_t kMagicLen = sizeof kMagic - 1, kNonce = 12, kTag = 16;

struct PkeyFree {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
struct MdFree {
  void operator()(EVP_MD_CTX* p) const { EVP_MD_CTX_free(p); }
};
struct CipherFree {
  void operator()(EVP_CIPHER_CTX* p) const { EVP_CIPHER_CTX_free(p); }
};
struct BioFree {
  void operator()(BIO* p) const { BIO_free(p); }
};
using Pkey = std::unique_ptr<EVP_PKEY, PkeyFree>;

std::string openssl_error() {
  char buf[256];
  const unsigned long e = ERR_get_error();
  if (!e) return "unknown OpenSSL error";
  ERR_error_string_n(e, buf, sizeof buf);
  ERR_clear_error();
  return buf;
}

std::string b64_encode(const std::string& s) {
  std::string o(4 * ((s.size() + 2) / 3) + 1, '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(o.data()),
                                reinterpret_cast<const unsigned char*>(s.data()), static_cast<int>(s.size()));
  o.resize(static_cast<size_t>(n));
  return o;
}

bool b64_decode(std::string s, std::string* out) {
  s.erase(std::remove_if(s.begin(), s.end(), [](char c) { return c == '\n' || c == '\r' || c == ' '; }), s.end());
  if (s.empty() || s.size() % 4) return false;
  std::string o(3 * s.size() / 4, '\0');
  const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(o.data()),
                                reinterpret_cast<const unsigned char*>(s.data()), static_cast<int>(s.size()));
  if (n < 0) return false;
  size_t pad = 0;
  while (pad < 2 && s[s.size() - 1 - pad] == '=') ++pad;
  o.resize(static_cast<size_t>(n) - pad);
  *out = std::move(o);
  return true;
}

StatusOr<Pkey> read_pem(const std::string& pem, bool is_private) {
  std::unique_ptr<BIO, BioFree> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  Pkey k(is_private ? PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr)
                    : PEM_read_bio_PUBKEY(bio.get(), nullptr, nullptr, nullptr));
  if (!k)
    return InvalidArgument(std::string("not a PEM ") + (is_private ? "private" : "public") +
                           " key: " + openssl_error());
  if (EVP_PKEY_id(k.get()) != EVP_PKEY_ED25519) return InvalidArgument("the key is not an Ed25519 key");
  return k;
}

std::string pem_of(EVP_PKEY* k, bool is_private) {
  std::unique_ptr<BIO, BioFree> bio(BIO_new(BIO_s_mem()));
  if (is_private)
    PEM_write_bio_PrivateKey(bio.get(), k, nullptr, nullptr, 0, nullptr, nullptr);
  else
    PEM_write_bio_PUBKEY(bio.get(), k);
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(n));
}

StatusOr<std::string> read_bytes(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  if (!f) return LoadError("cannot read '" + p.string() + "'");
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// Every regular file under `dir` but the manifest and its signature, as sorted relative paths.
std::vector<std::string> folder_files(const fs::path& dir) {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& e : fs::recursive_directory_iterator(dir, ec)) {
    if (!e.is_regular_file(ec)) continue;
    const std::string rel = fs::relative(e.path(), dir, ec).generic_string();
    if (rel == kManifestName || rel == kSignatureName) continue;
    out.push_back(rel);
  }
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace

Status validate(const IntegrityOptions& opts) {
  if (opts.require_signatures && opts.trusted_keys.empty())
    return InvalidArgument("signatures are required but no trusted public key is given");
  for (size_t i = 0; i < opts.trusted_keys.size(); ++i) {
    auto k = read_pem(opts.trusted_keys[i], false);
    if (!k.ok()) return InvalidArgument("trusted key " + std::to_string(i + 1) + ": " + k.status().message());
  }
  return Status::OK();
}

StatusOr<std::pair<std::string, std::string>> generate_signing_key() {
  std::unique_ptr<EVP_PKEY_CTX, decltype(&EVP_PKEY_CTX_free)> ctx(EVP_PKEY_CTX_new_id(EVP_PKEY_ED25519, nullptr),
                                                                  EVP_PKEY_CTX_free);
  EVP_PKEY* raw = nullptr;
  if (!ctx || EVP_PKEY_keygen_init(ctx.get()) != 1 || EVP_PKEY_keygen(ctx.get(), &raw) != 1)
    return Internal("cannot make an Ed25519 key: " + openssl_error());
  Pkey k(raw);
  return std::make_pair(pem_of(k.get(), true), pem_of(k.get(), false));
}

Status sign_folder(const std::string& dir, const std::string& private_key_pem) {
  MS_ASSIGN_OR_RETURN(Pkey key, read_pem(private_key_pem, true));
  const fs::path d(dir);
  std::error_code ec;
  if (!fs::is_directory(d, ec)) return InvalidArgument("'" + dir + "' is not a folder");
  std::string manifest;
  const auto files = folder_files(d);
  if (files.empty()) return InvalidArgument("'" + dir + "' holds no files to sign");
  for (const std::string& rel : files) {
    MS_ASSIGN_OR_RETURN(std::string bytes, read_bytes(d / rel));
    manifest += "sha256 " + sha256_hex(bytes) + "  " + rel + "\n";
  }
  std::unique_ptr<EVP_MD_CTX, MdFree> md(EVP_MD_CTX_new());
  size_t n = 64;
  std::string sig(n, '\0');
  if (EVP_DigestSignInit(md.get(), nullptr, nullptr, nullptr, key.get()) != 1 ||
      EVP_DigestSign(md.get(), reinterpret_cast<unsigned char*>(sig.data()), &n,
                     reinterpret_cast<const unsigned char*>(manifest.data()), manifest.size()) != 1)
    return Internal("cannot sign: " + openssl_error());
  sig.resize(n);
  for (const auto& [name, text] :
       {std::make_pair(kManifestName, manifest), std::make_pair(kSignatureName, b64_encode(sig) + "\n")}) {
    const fs::path tmp = d / (std::string(name) + ".tmp");
    {
      std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
      f << text;
      if (!f) return InvalidArgument("cannot write '" + tmp.string() + "'");
    }
    fs::rename(tmp, d / name, ec);
    if (ec) return InvalidArgument("cannot write '" + (d / name).string() + "': " + ec.message());
  }
  return Status::OK();
}

bool has_manifest(const std::string& dir) {
  std::error_code ec;
  return fs::is_regular_file(fs::path(dir) / kManifestName, ec);
}

namespace {

std::string key_id(EVP_PKEY* key) {
  unsigned char* der = nullptr;
  const int n = i2d_PUBKEY(key, &der);
  if (n <= 0) return "";
  const std::string id = sha256_hex(std::string_view(reinterpret_cast<const char*>(der), static_cast<size_t>(n)));
  OPENSSL_free(der);
  return id.substr(0, 16);
}

}  // namespace

Status verify_folder(const std::string& dir, const IntegrityOptions& opts, const std::string& model_file,
                     const std::string* model_bytes, std::string* signer) {
  const fs::path d(dir);
  std::error_code ec;
  const bool manifest_present = fs::is_regular_file(d / kManifestName, ec);
  if (!manifest_present) {
    if (opts.require_signatures)
      return LoadError("'" + dir + "' has no " + kManifestName +
                       " (signatures are required; sign it with `mserve sign`)");
    return Status::OK();
  }
  MS_ASSIGN_OR_RETURN(std::string manifest, read_bytes(d / kManifestName));
  if (opts.active()) {
    if (!fs::is_regular_file(d / kSignatureName, ec))
      return LoadError("'" + dir + "' has no " + kSignatureName + " (signatures are required)");
    MS_ASSIGN_OR_RETURN(std::string sig_text, read_bytes(d / kSignatureName));
    std::string sig;
    if (!b64_decode(sig_text, &sig) || sig.size() != 64)
      return LoadError(std::string(kSignatureName) + " in '" + dir + "' is not a base64 Ed25519 signature");
    bool verified = false;
    for (const std::string& pem : opts.trusted_keys) {
      auto key = read_pem(pem, false);
      if (!key.ok()) continue;
      std::unique_ptr<EVP_MD_CTX, MdFree> md(EVP_MD_CTX_new());
      if (EVP_DigestVerifyInit(md.get(), nullptr, nullptr, nullptr, key.value().get()) == 1 &&
          EVP_DigestVerify(md.get(), reinterpret_cast<const unsigned char*>(sig.data()), sig.size(),
                           reinterpret_cast<const unsigned char*>(manifest.data()), manifest.size()) == 1) {
        verified = true;
        if (signer) *signer = key_id(key.value().get());
      }
      ERR_clear_error();
    }
    if (!verified)
      return LoadError("the signature of '" + dir +
                       "' does not verify with any trusted key (tampered, or signed "
                       "with another key)");
  }
  // The files must be exactly those listed, with those digests.
  std::map<std::string, std::string> listed;
  std::istringstream lines(manifest);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.empty()) continue;
    if (line.rfind("sha256 ", 0) != 0 || line.size() < 7 + 64 + 3 || line.compare(7 + 64, 2, "  ") != 0)
      return LoadError(std::string(kManifestName) + " in '" + dir + "' has a malformed line: " + line.substr(0, 80));
    const std::string rel = line.substr(7 + 64 + 2);
    if (rel.empty() || rel[0] == '/' || rel.find("..") != std::string::npos)
      return LoadError(std::string(kManifestName) + " in '" + dir + "' names a path outside the folder: " + rel);
    listed[rel] = line.substr(7, 64);
  }
  const std::string model_rel = model_file.empty() ? "" : fs::relative(fs::path(model_file), d, ec).generic_string();
  for (const std::string& rel : folder_files(d))
    if (!listed.count(rel)) return LoadError("'" + (d / rel).string() + "' is not in the signed manifest");
  for (const auto& [rel, digest] : listed) {
    std::string got;
    if (model_bytes && rel == model_rel) {
      got = sha256_hex(*model_bytes);
    } else {
      auto bytes = read_bytes(d / rel);
      if (!bytes.ok()) return LoadError("'" + (d / rel).string() + "' is listed in the manifest but missing");
      got = sha256_hex(bytes.value());
    }
    if (got != digest) return LoadError("'" + (d / rel).string() + "' does not match its manifest digest (altered)");
  }
  return Status::OK();
}

StatusOr<std::string> read_key(const std::string& file, const std::string& env) {
  std::string text;
  if (!file.empty()) {
    MS_ASSIGN_OR_RETURN(text, read_text_file(file));
  } else {
    const char* v = env.empty() ? nullptr : std::getenv(env.c_str());
    if (!v) return InvalidArgument("the model key variable " + env + " is not set");
    text = v;
  }
  const std::string where = file.empty() ? "$" + env : "'" + file + "'";
  if (text.size() == 32) return text;
  std::string t = text;
  while (!t.empty() && (t.back() == '\n' || t.back() == '\r' || t.back() == ' ')) t.pop_back();
  if (t.size() == 64 && t.find_first_not_of("0123456789abcdefABCDEF") == std::string::npos) {
    std::string k(32, '\0');
    for (size_t i = 0; i < 32; ++i) k[i] = static_cast<char>(std::stoi(t.substr(2 * i, 2), nullptr, 16));
    return k;
  }
  std::string k;
  if (b64_decode(t, &k) && k.size() == 32) return k;
  return InvalidArgument("the model key in " + where + " is not 32 bytes (64 hex digits, base64, or raw)");
}

bool is_encrypted(const std::string& bytes) { return bytes.compare(0, kMagicLen, kMagic) == 0; }

StatusOr<std::string> encrypt_model(const std::string& plain, const std::string& key) {
  if (key.size() != 32) return InvalidArgument("an AES-256 key is 32 bytes");
  if (plain.size() > static_cast<size_t>(INT32_MAX) - 64)
    return InvalidArgument("models over 2 GB cannot be encrypted");
  std::string out(kMagic, kMagicLen);
  out.resize(kMagicLen + kNonce);
  if (RAND_bytes(reinterpret_cast<unsigned char*>(&out[kMagicLen]), kNonce) != 1)
    return Internal("no random bytes: " + openssl_error());
  std::unique_ptr<EVP_CIPHER_CTX, CipherFree> c(EVP_CIPHER_CTX_new());
  int n = 0;
  const auto* k = reinterpret_cast<const unsigned char*>(key.data());
  const auto* iv = reinterpret_cast<const unsigned char*>(&out[kMagicLen]);
  std::string body(plain.size(), '\0');
  unsigned char tag[kTag];
  if (EVP_EncryptInit_ex(c.get(), EVP_aes_256_gcm(), nullptr, nullptr, nullptr) != 1 ||
      EVP_CIPHER_CTX_ctrl(c.get(), EVP_CTRL_GCM_SET_IVLEN, kNonce, nullptr) != 1 ||
      EVP_EncryptInit_ex(c.get(), nullptr, nullptr, k, iv) != 1 ||
      EVP_EncryptUpdate(c.get(), nullptr, &n, reinterpret_cast<const unsigned char*>(kMagic), kMagicLen) != 1 ||
      EVP_EncryptUpdate(c.get(), reinterpret_cast<unsigned char*>(body.data()), &n,
                        reinterpret_cast<const unsigned char*>(plain.data()), static_cast<int>(plain.size())) != 1 ||
      EVP_EncryptFinal_ex(c.get(), nullptr, &n) != 1 ||
      EVP_CIPHER_CTX_ctrl(c.get(), EVP_CTRL_GCM_GET_TAG, kTag, tag) != 1)
    return Internal("cannot encrypt: " + openssl_error());
  out += body;
  out.append(reinterpret_cast<const char*>(tag), kTag);
  return out;
}

StatusOr<std::string> decrypt_model(const std::string& data, const std::string& key) {
  if (key.size() != 32) return InvalidArgument("an AES-256 key is 32 bytes");
  if (!is_encrypted(data) || data.size() < kMagicLen + kNonce + kTag)
    return LoadError("not an mserve-encrypted model (or truncated)");
  const size_t body = data.size() - kMagicLen - kNonce - kTag;
  std::unique_ptr<EVP_CIPHER_CTX, CipherFree> c(EVP_CIPHER_CTX_new());
  std::string out(body, '\0');
  int n = 0;
  const auto* p = reinterpret_cast<const unsigned char*>(data.data());
  std::string tag = data.substr(data.size() - kTag);
  if (EVP_DecryptInit_ex(c.get(), EVP_aes_256_gcm(), nullptr, nullptr, nullptr) != 1 ||
      EVP_CIPHER_CTX_ctrl(c.get(), EVP_CTRL_GCM_SET_IVLEN, kNonce, nullptr) != 1 ||
      EVP_DecryptInit_ex(c.get(), nullptr, nullptr, reinterpret_cast<const unsigned char*>(key.data()),
                         p + kMagicLen) != 1 ||
      EVP_DecryptUpdate(c.get(), nullptr, &n, p, kMagicLen) != 1 ||
      EVP_DecryptUpdate(c.get(), reinterpret_cast<unsigned char*>(out.data()), &n, p + kMagicLen + kNonce,
                        static_cast<int>(body)) != 1 ||
      EVP_CIPHER_CTX_ctrl(c.get(), EVP_CTRL_GCM_SET_TAG, kTag, tag.data()) != 1 ||
      EVP_DecryptFinal_ex(c.get(), nullptr, &n) != 1) {
    ERR_clear_error();
    return LoadError("cannot decrypt the model: wrong key, or the file was altered");
  }
  return out;
}

}  // namespace mserve::server
