// SHA-256 (FIPS 180-4), streaming: feed any number of Update() calls, then
// Finish() once. Used to check pinned model hashes without holding a file in
// memory.
//
//   Sha256 h;
//   h.Update(chunk1);
//   h.Update(chunk2);
//   std::string hex = Sha256::ToHex(h.Finish());
//
// Thread safety: a Sha256 object is not thread-safe; use one per thread.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"

namespace dspark {

class Sha256 {
 public:
  using Digest = std::array<uint8_t, 32>;

  Sha256();

  void Update(const void* data, size_t size);
  void Update(absl::string_view data) { Update(data.data(), data.size()); }

  // Pads, returns the digest, and resets the object for a new message.
  Digest Finish();

  // Lower-case hex, 64 characters.
  static std::string ToHex(const Digest& digest);

 private:
  void Reset();
  void Compress(const uint8_t* block);  // one 64-byte block

  std::array<uint32_t, 8> state_;
  std::array<uint8_t, 64> buffer_;  // pending bytes of a partial block
  size_t buffered_ = 0;
  uint64_t total_bytes_ = 0;
};

// One-shot convenience: lower-case hex SHA-256 of `data`.
std::string Sha256Hex(absl::string_view data);

}  // namespace dspark
