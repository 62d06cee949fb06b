// A small read-only ZIP reader, enough to take one file out of a Python wheel
// without installing it: reads the central directory, then streams one member
// (stored or deflate) through a callback in bounded memory, checking its
// CRC-32 and size. Zip64 and encrypted archives are rejected with a clear
// error: a wheel member above 4 GiB is not expected.
//
//   DSPARK_ASSIGN_OR_RETURN(auto zip, ZipReader::Open("x.whl"));
//   DSPARK_RETURN_IF_ERROR(zip->Extract("pkg/data.bin",
//       [&](absl::string_view chunk) { return out.Append(chunk); }));
//
// Thread safety: immutable after Open; Extract uses pread only, so one reader
// may be shared by several threads.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace dspark {

// One central-directory record.
struct ZipEntry {
  std::string name;
  uint16_t method = 0;  // 0 = stored, 8 = deflate; others are rejected
  uint16_t flags = 0;   // general-purpose bit flags (bit 0: encrypted)
  uint32_t crc32 = 0;
  uint64_t compressed_size = 0;
  uint64_t uncompressed_size = 0;
  uint64_t local_header_offset = 0;
};

class ZipReader {
 public:
  // Receives the member's bytes in order, in chunks of at most ~1 MiB; a
  // non-OK status stops the extraction and is returned by Extract.
  using Sink = absl::FunctionRef<absl::Status(absl::string_view chunk)>;

  // Opens `path` and parses its central directory. Errors: NotFound (cannot
  // open), DataLoss (not a ZIP, truncated, inconsistent), Unimplemented
  // (zip64, multi-disk).
  static absl::StatusOr<std::unique_ptr<ZipReader>> Open(const std::string& path);
  ~ZipReader();
  ZipReader(const ZipReader&) = delete;
  ZipReader& operator=(const ZipReader&) = delete;

  const std::vector<ZipEntry>& entries() const { return entries_; }
  const std::string& path() const { return path_; }

  // The entry named exactly `name`, or nullptr.
  const ZipEntry* Find(absl::string_view name) const;

  // Streams member `name` to `sink`. Errors: NotFound (no such member),
  // Unimplemented (encrypted, unknown method), DataLoss (corrupt data, CRC or
  // size mismatch), or whatever `sink` returns.
  absl::Status Extract(absl::string_view name, Sink sink) const;
  absl::Status Extract(const ZipEntry& entry, Sink sink) const;

  // Extract into a string (tests and small members).
  absl::StatusOr<std::string> ExtractToString(absl::string_view name) const;

 private:
  ZipReader(std::string path, int fd, uint64_t size)
      : path_(std::move(path)), fd_(fd), file_size_(size) {}
  absl::Status ReadAt(uint64_t offset, void* out, size_t size) const;
  absl::Status ParseCentralDirectory();
  absl::Status ExtractStored(const ZipEntry& entry, uint64_t data_offset, Sink sink) const;
  absl::Status ExtractDeflate(const ZipEntry& entry, uint64_t data_offset, Sink sink) const;

  std::string path_;
  int fd_;
  uint64_t file_size_;
  uint64_t central_directory_offset_ = 0;  // member data must end before this
  std::vector<ZipEntry> entries_;
};

}  // namespace dspark
