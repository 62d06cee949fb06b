#include "tests/common/engine/model_store/test_zip_writer.h"

#include <zlib.h>

#include <cstring>
#include <fstream>

#include "absl/strings/str_cat.h"

namespace dspark::testing {
namespace {

void Put16(std::string& out, uint32_t v) {
  out.push_back(static_cast<char>(v & 0xff));
  out.push_back(static_cast<char>((v >> 8) & 0xff));
}
void Put32(std::string& out, uint32_t v) {
  Put16(out, v & 0xffff);
  Put16(out, v >> 16);
}

std::string RawDeflate(absl::string_view data) {
  z_stream zs;
  std::memset(&zs, 0, sizeof(zs));
  deflateInit2(&zs, Z_BEST_SPEED, Z_DEFLATED, -MAX_WBITS, 8, Z_DEFAULT_STRATEGY);
  std::string out(deflateBound(&zs, data.size()), '\0');
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  zs.avail_in = static_cast<uInt>(data.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = static_cast<uInt>(out.size());
  deflate(&zs, Z_FINISH);
  out.resize(zs.total_out);
  deflateEnd(&zs);
  return out;
}

}  // namespace

void TestZipWriter::Add(const std::string& name, absl::string_view data, Method method) {
  Member m;
  m.name = name;
  m.method = method == Method::kStored ? 0 : 8;
  m.payload = method == Method::kStored ? std::string(data) : RawDeflate(data);
  m.crc32 = static_cast<uint32_t>(
      crc32(0, reinterpret_cast<const Bytef*>(data.data()), static_cast<uInt>(data.size())));
  m.uncompressed_size = static_cast<uint32_t>(data.size());
  members_.push_back(std::move(m));
}

std::string TestZipWriter::Finish() const {
  std::string out, central;
  for (const Member& m : members_) {
    const uint32_t offset = static_cast<uint32_t>(out.size());
    Put32(out, 0x04034b50);
    Put16(out, 20);  // version needed
    Put16(out, 0);   // flags
    Put16(out, m.method);
    Put32(out, 0);  // time, date
    Put32(out, m.crc32);
    Put32(out, static_cast<uint32_t>(m.payload.size()));
    Put32(out, m.uncompressed_size);
    Put16(out, static_cast<uint32_t>(m.name.size()));
    Put16(out, 0);  // extra
    out += m.name;
    out += m.payload;

    Put32(central, 0x02014b50);
    Put16(central, 20);  // version made by
    Put16(central, 20);  // version needed
    Put16(central, 0);   // flags
    Put16(central, m.method);
    Put32(central, 0);  // time, date
    Put32(central, m.crc32);
    Put32(central, static_cast<uint32_t>(m.payload.size()));
    Put32(central, m.uncompressed_size);
    Put16(central, static_cast<uint32_t>(m.name.size()));
    Put16(central, 0);  // extra
    Put16(central, 0);  // comment
    Put16(central, 0);  // disk
    Put16(central, 0);  // internal attributes
    Put32(central, 0);  // external attributes
    Put32(central, offset);
    central += m.name;
  }
  const uint32_t central_offset = static_cast<uint32_t>(out.size());
  out += central;
  Put32(out, 0x06054b50);
  Put16(out, 0);
  Put16(out, 0);
  Put16(out, static_cast<uint32_t>(members_.size()));
  Put16(out, static_cast<uint32_t>(members_.size()));
  Put32(out, static_cast<uint32_t>(central.size()));
  Put32(out, central_offset);
  Put16(out, 0);  // comment
  return out;
}

absl::Status TestZipWriter::WriteTo(const std::string& path) const {
  return WriteBytes(path, Finish());
}

absl::Status WriteBytes(const std::string& path, absl::string_view bytes) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  f.close();
  if (!f) return absl::InternalError(absl::StrCat("cannot write ", path));
  return absl::OkStatus();
}

}  // namespace dspark::testing
