#include "common/engine/model_store/zip_reader.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "common/base/status_macros.h"

namespace dspark {
namespace {

constexpr uint32_t kEndOfCentralDirSig = 0x06054b50;
constexpr uint32_t kZip64EndLocatorSig = 0x07064b50;
constexpr uint32_t kCentralHeaderSig = 0x02014b50;
constexpr uint32_t kLocalHeaderSig = 0x04034b50;
constexpr size_t kEndOfCentralDirSize = 22;
constexpr size_t kZip64EndLocatorSize = 20;
constexpr size_t kCentralHeaderSize = 46;
constexpr size_t kLocalHeaderSize = 30;
constexpr size_t kMaxCommentSize = 0xffff;
constexpr uint16_t kMethodStored = 0;
constexpr uint16_t kMethodDeflate = 8;
constexpr uint16_t kFlagEncrypted = 0x0001;
constexpr uint16_t kFlagStrongEncryption = 0x0040;
constexpr size_t kChunkSize = size_t{1} << 20;

uint16_t Load16(const uint8_t* p) { return uint16_t(p[0] | (p[1] << 8)); }
uint32_t Load32(const uint8_t* p) {
  return uint32_t{p[0]} | (uint32_t{p[1]} << 8) | (uint32_t{p[2]} << 16) | (uint32_t{p[3]} << 24);
}

}  // namespace

absl::StatusOr<std::unique_ptr<ZipReader>> ZipReader::Open(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return absl::NotFoundError(absl::StrCat(path, ": ", std::strerror(errno)));
  }
  struct stat st;
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return absl::InvalidArgumentError(absl::StrCat(path, ": not a regular file"));
  }
  std::unique_ptr<ZipReader> zip(new ZipReader(path, fd, static_cast<uint64_t>(st.st_size)));
  DSPARK_RETURN_IF_ERROR(zip->ParseCentralDirectory());
  return zip;
}

ZipReader::~ZipReader() { ::close(fd_); }

absl::Status ZipReader::ReadAt(uint64_t offset, void* out, size_t size) const {
  if (offset > file_size_ || size > file_size_ - offset) {
    return absl::DataLossError(absl::StrCat(path_, ": truncated ZIP (read of ", size, " bytes at ",
                                            offset, " past end ", file_size_, ")"));
  }
  uint8_t* dst = static_cast<uint8_t*>(out);
  while (size > 0) {
    ssize_t n = ::pread(fd_, dst, size, static_cast<off_t>(offset));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      return absl::DataLossError(
          absl::StrCat(path_, ": read failed: ", n < 0 ? std::strerror(errno) : "short read"));
    }
    dst += n;
    offset += static_cast<uint64_t>(n);
    size -= static_cast<size_t>(n);
  }
  return absl::OkStatus();
}

absl::Status ZipReader::ParseCentralDirectory() {
  if (file_size_ < kEndOfCentralDirSize) {
    return absl::DataLossError(absl::StrCat(path_, ": not a ZIP file (too small)"));
  }
  // The end-of-central-directory record sits in the last 22 + comment bytes.
  const uint64_t tail_size = std::min<uint64_t>(file_size_, kEndOfCentralDirSize + kMaxCommentSize);
  const uint64_t tail_offset = file_size_ - tail_size;
  std::string tail(tail_size, '\0');
  DSPARK_RETURN_IF_ERROR(ReadAt(tail_offset, tail.data(), tail.size()));
  const uint8_t* t = reinterpret_cast<const uint8_t*>(tail.data());
  int64_t eocd = -1;
  for (int64_t i = static_cast<int64_t>(tail_size - kEndOfCentralDirSize); i >= 0; --i) {
    if (Load32(t + i) == kEndOfCentralDirSig &&
        i + kEndOfCentralDirSize + Load16(t + i + 20) <= tail_size) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) {
    return absl::DataLossError(
        absl::StrCat(path_, ": not a ZIP file (no end of central directory)"));
  }
  const uint8_t* e = t + eocd;
  const uint16_t disk = Load16(e + 4), cd_disk = Load16(e + 6);
  const uint16_t entries_here = Load16(e + 8), entries_total = Load16(e + 10);
  const uint32_t cd_size = Load32(e + 12), cd_offset = Load32(e + 16);
  const uint64_t eocd_offset = tail_offset + static_cast<uint64_t>(eocd);
  const bool has_zip64_locator = eocd >= static_cast<int64_t>(kZip64EndLocatorSize) &&
                                 Load32(e - kZip64EndLocatorSize) == kZip64EndLocatorSig;
  if (has_zip64_locator || entries_total == 0xffff || cd_size == 0xffffffff ||
      cd_offset == 0xffffffff) {
    return absl::UnimplementedError(absl::StrCat(path_, ": zip64 archives are not supported"));
  }
  if (disk != 0 || cd_disk != 0 || entries_here != entries_total) {
    return absl::UnimplementedError(
        absl::StrCat(path_, ": multi-disk ZIP archives are not supported"));
  }
  if (uint64_t{cd_offset} + cd_size > eocd_offset) {
    return absl::DataLossError(absl::StrCat(path_, ": central directory lies outside the file"));
  }
  central_directory_offset_ = cd_offset;

  std::string cd(cd_size, '\0');
  DSPARK_RETURN_IF_ERROR(ReadAt(cd_offset, cd.data(), cd.size()));
  const uint8_t* p = reinterpret_cast<const uint8_t*>(cd.data());
  size_t pos = 0;
  entries_.reserve(entries_total);
  for (int i = 0; i < entries_total; ++i) {
    if (pos + kCentralHeaderSize > cd.size() || Load32(p + pos) != kCentralHeaderSig) {
      return absl::DataLossError(absl::StrCat(path_, ": corrupt central directory at entry ", i));
    }
    const uint8_t* h = p + pos;
    const size_t name_len = Load16(h + 28), extra_len = Load16(h + 30),
                 comment_len = Load16(h + 32);
    if (pos + kCentralHeaderSize + name_len + extra_len + comment_len > cd.size()) {
      return absl::DataLossError(absl::StrCat(path_, ": corrupt central directory at entry ", i));
    }
    ZipEntry entry;
    entry.flags = Load16(h + 8);
    entry.method = Load16(h + 10);
    entry.crc32 = Load32(h + 16);
    entry.compressed_size = Load32(h + 20);
    entry.uncompressed_size = Load32(h + 24);
    entry.local_header_offset = Load32(h + 42);
    entry.name.assign(reinterpret_cast<const char*>(h + kCentralHeaderSize), name_len);
    if (entry.compressed_size == 0xffffffff || entry.uncompressed_size == 0xffffffff ||
        entry.local_header_offset == 0xffffffff) {
      return absl::UnimplementedError(
          absl::StrCat(path_, ": member ", entry.name, " needs zip64 (> 4 GiB), not supported"));
    }
    entries_.push_back(std::move(entry));
    pos += kCentralHeaderSize + name_len + extra_len + comment_len;
  }
  return absl::OkStatus();
}

const ZipEntry* ZipReader::Find(absl::string_view name) const {
  for (const ZipEntry& e : entries_) {
    if (e.name == name) return &e;
  }
  return nullptr;
}

absl::Status ZipReader::Extract(absl::string_view name, Sink sink) const {
  const ZipEntry* entry = Find(name);
  if (entry == nullptr) {
    return absl::NotFoundError(absl::StrCat(path_, ": no member named ", name));
  }
  return Extract(*entry, sink);
}

absl::Status ZipReader::Extract(const ZipEntry& entry, Sink sink) const {
  const std::string where = absl::StrCat(path_, ": member ", entry.name);
  if (entry.flags & (kFlagEncrypted | kFlagStrongEncryption)) {
    return absl::UnimplementedError(absl::StrCat(where, " is encrypted"));
  }
  if (entry.method != kMethodStored && entry.method != kMethodDeflate) {
    return absl::UnimplementedError(absl::StrCat(where, " uses compression method ", entry.method,
                                                 " (only stored and deflate)"));
  }
  // Every member's header and data must end before the central directory.
  const uint64_t limit = central_directory_offset_;
  if (entry.local_header_offset + kLocalHeaderSize > limit) {
    return absl::DataLossError(absl::StrCat(where, ": local header out of bounds"));
  }
  uint8_t local[kLocalHeaderSize];
  DSPARK_RETURN_IF_ERROR(ReadAt(entry.local_header_offset, local, sizeof(local)));
  if (Load32(local) != kLocalHeaderSig) {
    return absl::DataLossError(absl::StrCat(where, ": bad local header signature"));
  }
  const size_t name_len = Load16(local + 26), extra_len = Load16(local + 28);
  const uint64_t name_offset = entry.local_header_offset + kLocalHeaderSize;
  const uint64_t data_offset = name_offset + name_len + extra_len;
  if (data_offset > limit || entry.compressed_size > limit - data_offset) {
    return absl::DataLossError(absl::StrCat(where, ": data out of bounds"));
  }
  std::string local_name(name_len, '\0');
  DSPARK_RETURN_IF_ERROR(ReadAt(name_offset, local_name.data(), name_len));
  if (local_name != entry.name) {
    return absl::DataLossError(
        absl::StrCat(where, ": local header names a different member: ", local_name));
  }
  if (entry.method == kMethodStored) return ExtractStored(entry, data_offset, sink);
  return ExtractDeflate(entry, data_offset, sink);
}

absl::Status ZipReader::ExtractStored(const ZipEntry& entry, uint64_t data_offset,
                                      Sink sink) const {
  const std::string where = absl::StrCat(path_, ": member ", entry.name);
  if (entry.compressed_size != entry.uncompressed_size) {
    return absl::DataLossError(absl::StrCat(where, ": stored member with differing sizes"));
  }
  std::vector<char> buf(std::min<uint64_t>(kChunkSize, entry.compressed_size));
  uLong crc = ::crc32(0L, Z_NULL, 0);
  for (uint64_t done = 0; done < entry.compressed_size;) {
    const size_t n = std::min<uint64_t>(buf.size(), entry.compressed_size - done);
    DSPARK_RETURN_IF_ERROR(ReadAt(data_offset + done, buf.data(), n));
    crc = ::crc32(crc, reinterpret_cast<const Bytef*>(buf.data()), static_cast<uInt>(n));
    DSPARK_RETURN_IF_ERROR(sink(absl::string_view(buf.data(), n)));
    done += n;
  }
  if (crc != entry.crc32) {
    return absl::DataLossError(absl::StrCat(where, ": CRC-32 mismatch"));
  }
  return absl::OkStatus();
}

absl::Status ZipReader::ExtractDeflate(const ZipEntry& entry, uint64_t data_offset,
                                       Sink sink) const {
  const std::string where = absl::StrCat(path_, ": member ", entry.name);
  z_stream zs;
  std::memset(&zs, 0, sizeof(zs));
  if (inflateInit2(&zs, -MAX_WBITS) != Z_OK) {  // raw deflate, no zlib header
    return absl::InternalError(absl::StrCat(where, ": inflateInit2 failed"));
  }
  absl::Cleanup end_inflate = [&zs] { inflateEnd(&zs); };

  std::vector<uint8_t> in(std::min<uint64_t>(kChunkSize, entry.compressed_size + 1));
  std::vector<uint8_t> out(kChunkSize);
  uint64_t read = 0, produced = 0;
  uLong crc = ::crc32(0L, Z_NULL, 0);
  for (bool ended = false; !ended;) {
    if (zs.avail_in == 0) {
      if (read == entry.compressed_size) {
        return absl::DataLossError(absl::StrCat(where, ": deflate stream truncated"));
      }
      const size_t n = std::min<uint64_t>(in.size(), entry.compressed_size - read);
      DSPARK_RETURN_IF_ERROR(ReadAt(data_offset + read, in.data(), n));
      read += n;
      zs.next_in = in.data();
      zs.avail_in = static_cast<uInt>(n);
    }
    zs.next_out = out.data();
    zs.avail_out = static_cast<uInt>(out.size());
    const int rc = inflate(&zs, Z_NO_FLUSH);
    if (rc == Z_STREAM_END) {
      ended = true;
    } else if (rc != Z_OK && rc != Z_BUF_ERROR) {
      return absl::DataLossError(
          absl::StrCat(where, ": corrupt deflate data (", zs.msg ? zs.msg : "zlib error", ")"));
    }
    const size_t n = out.size() - zs.avail_out;
    if (n == 0) continue;
    produced += n;
    if (produced > entry.uncompressed_size) {
      return absl::DataLossError(
          absl::StrCat(where, ": inflates past its recorded size ", entry.uncompressed_size));
    }
    crc = ::crc32(crc, out.data(), static_cast<uInt>(n));
    DSPARK_RETURN_IF_ERROR(sink(absl::string_view(reinterpret_cast<const char*>(out.data()), n)));
  }
  if (produced != entry.uncompressed_size) {
    return absl::DataLossError(absl::StrCat(where, ": inflated to ", produced, " bytes, expected ",
                                            entry.uncompressed_size));
  }
  if (crc != entry.crc32) {
    return absl::DataLossError(absl::StrCat(where, ": CRC-32 mismatch"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> ZipReader::ExtractToString(absl::string_view name) const {
  std::string out;
  DSPARK_RETURN_IF_ERROR(Extract(name, [&out](absl::string_view chunk) {
    out.append(chunk.data(), chunk.size());
    return absl::OkStatus();
  }));
  return out;
}

}  // namespace dspark
