#include "common/engine/model_store/zip_reader.h"

#include <stdlib.h>

#include <filesystem>
#include <string>

#include "gtest/gtest.h"
#include "tests/common/engine/model_store/test_zip_writer.h"

namespace dspark {
namespace {

using ::dspark::testing::TestZipWriter;
using ::dspark::testing::WriteBytes;

// Pseudo-random but deterministic bytes that deflate only a little.
std::string Bytes(size_t n, uint32_t seed) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) {
    seed = seed * 1664525u + 1013904223u;
    s[i] = static_cast<char>((seed >> 24) & (i % 3 == 0 ? 0xff : 0x0f));
  }
  return s;
}

void Patch32(std::string& s, size_t at, uint32_t v) {
  for (int i = 0; i < 4; ++i) s[at + i] = static_cast<char>((v >> (8 * i)) & 0xff);
}

class ZipReaderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = ::testing::TempDir() + "/zip_reader_test.XXXXXX";
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string Write(absl::string_view bytes) {
    std::string path = dir_ + "/a.zip";
    EXPECT_TRUE(WriteBytes(path, bytes).ok());
    return path;
  }
  // Offset of the first central directory record in `zip`.
  static size_t CentralOffset(const std::string& zip) {
    return zip.find(std::string("PK\x01\x02", 4));
  }

  std::string dir_;
};

TEST_F(ZipReaderTest, ExtractsStoredAndDeflateMembers) {
  const std::string big = Bytes(3 << 20, 7);  // several inflate chunks
  TestZipWriter w;
  w.Add("pkg/__init__.py", "print('never run')\n");
  w.Add("pkg/data/big.bin", big, TestZipWriter::Method::kDeflate);
  w.Add("pkg/empty", "");
  w.Add("pkg/small.txt", "hello", TestZipWriter::Method::kDeflate);
  auto zip = ZipReader::Open(Write(w.Finish()));
  ASSERT_TRUE(zip.ok()) << zip.status();
  ASSERT_EQ((*zip)->entries().size(), 4u);
  EXPECT_EQ((*zip)->entries()[1].method, 8);

  auto data = (*zip)->ExtractToString("pkg/data/big.bin");
  ASSERT_TRUE(data.ok()) << data.status();
  EXPECT_EQ(*data, big);
  EXPECT_EQ(*(*zip)->ExtractToString("pkg/__init__.py"), "print('never run')\n");
  EXPECT_EQ(*(*zip)->ExtractToString("pkg/empty"), "");
  EXPECT_EQ(*(*zip)->ExtractToString("pkg/small.txt"), "hello");
}

TEST_F(ZipReaderTest, StreamsInBoundedChunks) {
  TestZipWriter w;
  w.Add("big", Bytes(5 << 20, 3), TestZipWriter::Method::kDeflate);
  auto zip = ZipReader::Open(Write(w.Finish()));
  ASSERT_TRUE(zip.ok());
  size_t chunks = 0, largest = 0;
  ASSERT_TRUE((*zip)
                  ->Extract("big",
                            [&](absl::string_view c) {
                              ++chunks;
                              largest = std::max(largest, c.size());
                              return absl::OkStatus();
                            })
                  .ok());
  EXPECT_GE(chunks, 5u);
  EXPECT_LE(largest, size_t{1} << 20);
}

TEST_F(ZipReaderTest, MissingMemberIsNotFound) {
  TestZipWriter w;
  w.Add("a", "x");
  auto zip = ZipReader::Open(Write(w.Finish()));
  ASSERT_TRUE(zip.ok());
  EXPECT_EQ((*zip)->Find("b"), nullptr);
  EXPECT_EQ((*zip)->ExtractToString("b").status().code(), absl::StatusCode::kNotFound);
}

TEST_F(ZipReaderTest, SinkErrorStopsExtraction) {
  TestZipWriter w;
  w.Add("a", Bytes(100, 1));
  auto zip = ZipReader::Open(Write(w.Finish()));
  ASSERT_TRUE(zip.ok());
  absl::Status s = (*zip)->Extract(
      "a", [](absl::string_view) { return absl::ResourceExhaustedError("disk full"); });
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted);
}

TEST_F(ZipReaderTest, StoredCrcMismatchIsDataLoss) {
  TestZipWriter w;
  w.Add("a", "abcdefgh");
  std::string bytes = w.Finish();
  bytes[30 + 1 + 3] ^= 0x01;  // a byte of the data after header + name "a"
  auto zip = ZipReader::Open(Write(bytes));
  ASSERT_TRUE(zip.ok());
  absl::StatusOr<std::string> got = (*zip)->ExtractToString("a");
  EXPECT_EQ(got.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(got.status().message().find("CRC-32"), absl::string_view::npos);
}

TEST_F(ZipReaderTest, CorruptDeflateIsDataLoss) {
  TestZipWriter w;
  w.Add("a", Bytes(100000, 5), TestZipWriter::Method::kDeflate);
  std::string bytes = w.Finish();
  for (size_t i = 40; i < 200; i += 7) bytes[i] ^= 0x5a;
  auto zip = ZipReader::Open(Write(bytes));
  ASSERT_TRUE(zip.ok());
  EXPECT_EQ((*zip)->ExtractToString("a").status().code(), absl::StatusCode::kDataLoss);
}

TEST_F(ZipReaderTest, SizeMismatchIsDataLoss) {
  TestZipWriter w;
  w.Add("a", Bytes(1000, 5), TestZipWriter::Method::kDeflate);
  std::string bytes = w.Finish();
  Patch32(bytes, CentralOffset(bytes) + 24, 999);  // uncompressed size
  auto zip = ZipReader::Open(Write(bytes));
  ASSERT_TRUE(zip.ok());
  EXPECT_EQ((*zip)->ExtractToString("a").status().code(), absl::StatusCode::kDataLoss);
}

TEST_F(ZipReaderTest, TruncatedOrGarbageIsDataLoss) {
  TestZipWriter w;
  w.Add("a", Bytes(1000, 5));
  const std::string bytes = w.Finish();
  EXPECT_EQ(ZipReader::Open(Write(bytes.substr(0, bytes.size() / 2))).status().code(),
            absl::StatusCode::kDataLoss);
  EXPECT_EQ(ZipReader::Open(Write("this is not a zip file at all")).status().code(),
            absl::StatusCode::kDataLoss);
  EXPECT_EQ(ZipReader::Open(Write("")).status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(ZipReader::Open(dir_ + "/missing.zip").status().code(), absl::StatusCode::kNotFound);
}

TEST_F(ZipReaderTest, OutOfBoundsOffsetsAreDataLoss) {
  TestZipWriter w;
  w.Add("a", Bytes(1000, 5));
  std::string bytes = w.Finish();
  std::string far = bytes;
  Patch32(far, CentralOffset(far) + 42, 5000);  // local header offset
  auto zip = ZipReader::Open(Write(far));
  ASSERT_TRUE(zip.ok());
  EXPECT_EQ((*zip)->ExtractToString("a").status().code(), absl::StatusCode::kDataLoss);

  std::string big = bytes;
  Patch32(big, CentralOffset(big) + 20, 1u << 30);  // compressed size
  zip = ZipReader::Open(Write(big));
  ASSERT_TRUE(zip.ok());
  EXPECT_EQ((*zip)->ExtractToString("a").status().code(), absl::StatusCode::kDataLoss);

  std::string cd = bytes;
  Patch32(cd, cd.size() - 6, 1u << 20);  // central directory offset
  EXPECT_EQ(ZipReader::Open(Write(cd)).status().code(), absl::StatusCode::kDataLoss);
}

TEST_F(ZipReaderTest, Zip64AndEncryptionAreRejectedClearly) {
  TestZipWriter w;
  w.Add("a", "data");
  std::string bytes = w.Finish();
  std::string zip64 = bytes;
  Patch32(zip64, CentralOffset(zip64) + 24, 0xffffffff);  // size in zip64 extra
  absl::Status s = ZipReader::Open(Write(zip64)).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kUnimplemented);
  EXPECT_NE(s.message().find("zip64"), absl::string_view::npos) << s;

  std::string encrypted = bytes;
  encrypted[CentralOffset(encrypted) + 8] = 0x01;  // flags bit 0
  auto zip = ZipReader::Open(Write(encrypted));
  ASSERT_TRUE(zip.ok());
  EXPECT_EQ((*zip)->ExtractToString("a").status().code(), absl::StatusCode::kUnimplemented);
}

}  // namespace
}  // namespace dspark
