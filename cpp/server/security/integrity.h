// Model integrity and encryption at rest (OpenSSL).
//
// Integrity: a version folder may carry `mserve.manifest` (one line per file of the folder,
// "sha256 <hex>  <relative path>", sorted) and `mserve.manifest.sig` (the base64 Ed25519
// signature of the manifest's bytes). sign_folder() writes both. verify_folder() checks that the
// folder holds exactly the files the manifest lists with those digests, and that the signature
// verifies with one of the trusted public keys. With require_signatures, a folder without them is
// refused; without it, a manifest that is present is still checked (and its signature, when
// trusted keys are given).
//
// Encryption: AES-256-GCM. An encrypted model file is "MSERVE-ENC1\n", a 12-byte random nonce,
// the ciphertext and the 16-byte tag (the header is authenticated too). Keys are 32 bytes given as
// 64 hex digits, 44 base64 characters, or 32 raw bytes, from a file or an environment variable.
// Decrypted models exist only in memory.
#pragma once
#include <string>
#include <utility>
#include <vector>

#include "core/status.h"

namespace mserve::server {

inline constexpr const char* kManifestName = "mserve.manifest";
inline constexpr const char* kSignatureName = "mserve.manifest.sig";

struct IntegrityOptions {
  std::vector<std::string> trusted_keys;  // PEM Ed25519 public keys (the keys' text, not paths)
  bool require_signatures = false;
  bool active() const { return require_signatures || !trusted_keys.empty(); }
};

// InvalidArgument unless every trusted key is a PEM Ed25519 public key, and signatures required
// come with at least one key.
Status validate(const IntegrityOptions& opts);
// A new Ed25519 key pair as PEM text: {private key, public key}.
StatusOr<std::pair<std::string, std::string>> generate_signing_key();
// Writes mserve.manifest and mserve.manifest.sig into `dir`, signed with the PEM private key.
Status sign_folder(const std::string& dir, const std::string& private_key_pem);
// Checks `dir` as described above. `model_file` / `model_bytes`: the model file as already read
// (its digest is taken from these bytes, so what is checked is what is loaded). LoadError on any
// mismatch, naming the file. `signer` receives the id of the trusted key that verified it (the
// first 16 hex digits of the SHA-256 of its DER SubjectPublicKeyInfo).
Status verify_folder(const std::string& dir, const IntegrityOptions& opts, const std::string& model_file = "",
                     const std::string* model_bytes = nullptr, std::string* signer = nullptr);
// Whether `dir` has a manifest.
bool has_manifest(const std::string& dir);

// A 32-byte key from text (hex, base64 or raw), from a file or the named environment variable.
StatusOr<std::string> read_key(const std::string& file, const std::string& env);
bool is_encrypted(const std::string& bytes);
StatusOr<std::string> encrypt_model(const std::string& plain, const std::string& key);
// LoadError when the key is wrong or the data was altered.
StatusOr<std::string> decrypt_model(const std::string& data, const std::string& key);

}  // namespace mserve::server
