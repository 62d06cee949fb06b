// Test-only ZIP writer: builds small wheels in memory (stored or deflate
// members) so model_store tests need no network and no checked-in binaries,
// plus knobs to corrupt them. Not thread-safe; one per test.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace dspark::testing {

class TestZipWriter {
 public:
  enum class Method { kStored, kDeflate };

  void Add(const std::string& name, absl::string_view data, Method method = Method::kStored);
  // The archive bytes: local headers + data, central directory, end record.
  std::string Finish() const;
  absl::Status WriteTo(const std::string& path) const;

 private:
  struct Member {
    std::string name;
    std::string payload;  // as stored in the archive (maybe compressed)
    uint16_t method;
    uint32_t crc32;
    uint32_t uncompressed_size;
  };
  std::vector<Member> members_;
};

// Writes `bytes` to `path`, replacing it.
absl::Status WriteBytes(const std::string& path, absl::string_view bytes);

}  // namespace dspark::testing
