#include <stdlib.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/engine/model_file/internal/gguf_parser.h"
#include "common/engine/model_file/model_file.h"
#include "gtest/gtest.h"
#include "tests/fakes/gguf_writer.h"

namespace dspark::engine {
namespace {

using ::dspark::testing::GgufWriter;
using internal::GgufContents;
using internal::ParseGguf;

class TempDir {
 public:
  TempDir() {
    const char* root = std::getenv("TEST_TMPDIR");
    std::string tmpl = absl::StrCat(root != nullptr ? root : "/tmp", "/dspark_gguf_XXXXXX");
    path_ = mkdtemp(tmpl.data()) != nullptr ? tmpl : "";
  }
  ~TempDir() {
    if (!path_.empty()) std::filesystem::remove_all(path_);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

absl::StatusOr<GgufContents> ParseBytes(const std::string& bytes, size_t len = std::string::npos) {
  return ParseGguf("mem.gguf", reinterpret_cast<const uint8_t*>(bytes.data()),
                   std::min(len, bytes.size()));
}

// Checks code, that the message starts with the path and contains `needle`.
void ExpectError(const absl::Status& s, absl::StatusCode code, const std::string& path,
                 const std::string& needle) {
  ASSERT_FALSE(s.ok()) << "expected an error containing '" << needle << "'";
  EXPECT_EQ(s.code(), code) << s;
  EXPECT_TRUE(absl::StartsWith(s.message(), path + ": ")) << s;
  EXPECT_TRUE(absl::StrContains(s.message(), needle)) << s;
}

std::string Bytes(size_t n, uint8_t seed) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>(seed + i * 7);
  return s;
}

// A well-formed file with every kind of metadata and a few tensor types.
GgufWriter MakeValidWriter(uint32_t version = 3) {
  GgufWriter w(version);
  w.AddString("general.architecture", "llama");
  w.AddInt("u8", GgufWriter::kUint8, 255);
  w.AddInt("i8", GgufWriter::kInt8, -128);
  w.AddInt("u16", GgufWriter::kUint16, 65535);
  w.AddInt("i16", GgufWriter::kInt16, -32768);
  w.AddInt("u32", GgufWriter::kUint32, 4294967295LL);
  w.AddInt("i32", GgufWriter::kInt32, std::numeric_limits<int32_t>::min());
  w.AddUint64("u64", uint64_t{1} << 62);
  w.AddInt("i64", GgufWriter::kInt64, std::numeric_limits<int64_t>::min());
  w.AddFloat32("f32", 0.5f);
  w.AddFloat64("f64", 1e-300);
  w.AddBool("yes", true);
  w.AddBool("no", false);
  w.AddString("utf8", std::string("h\xC3\xA9llo\0x", 8));
  w.AddString("empty", "");
  w.AddIntArray("arr.i32", GgufWriter::kInt32, {1, -2, 3});
  w.AddIntArray("arr.u8", GgufWriter::kUint8, {0, 200});
  w.AddIntArray("arr.i64", GgufWriter::kInt64, {std::numeric_limits<int64_t>::max()});
  w.AddFloat32Array("arr.f32", {0.25f, -1.5f});
  w.AddFloat64Array("arr.f64", {3.0});
  w.AddBoolArray("arr.bool", {true, false, true});
  w.AddStringArray("arr.str", {"<s>", "", "\xE2\x96\x81the"});
  w.AddIntArray("arr.empty", GgufWriter::kUint32, {});
  w.AddTensor("token_embd.weight", GgmlType::kF32, {3, 4}, Bytes(3 * 4 * 4, 1));  // [vocab, dim]
  w.AddTensor("blk.0.attn_q.weight", GgmlType::kQ4_0, {2, 64}, Bytes(2 * 2 * 18, 2));
  w.AddTensor("blk.0.attn_norm.weight", GgmlType::kF16, {5}, Bytes(10, 3));
  w.AddTensor("output.weight", GgmlType::kBF16, {1, 2, 3, 4}, Bytes(48, 4));
  return w;
}

TEST(GgufTest, RoundTripsEveryMetadataType) {
  TempDir dir;
  const std::string path = dir.path() + "/m.gguf";
  ASSERT_TRUE(MakeValidWriter().WriteToFile(path).ok());
  auto file = OpenGguf(path);
  ASSERT_TRUE(file.ok()) << file.status();
  const ModelFile& f = **file;
  EXPECT_EQ(f.format(), "gguf");
  EXPECT_EQ(f.path(), path);
  EXPECT_EQ(*f.GetString("general.architecture"), "llama");
  EXPECT_EQ(*f.GetInt("u8"), 255);
  EXPECT_EQ(*f.GetInt("i8"), -128);
  EXPECT_EQ(*f.GetInt("u16"), 65535);
  EXPECT_EQ(*f.GetInt("i16"), -32768);
  EXPECT_EQ(*f.GetInt("u32"), 4294967295LL);
  EXPECT_EQ(*f.GetInt("i32"), std::numeric_limits<int32_t>::min());
  EXPECT_EQ(*f.GetInt("u64"), int64_t{1} << 62);
  EXPECT_EQ(*f.GetInt("i64"), std::numeric_limits<int64_t>::min());
  EXPECT_EQ(*f.GetFloat("f32"), 0.5);
  EXPECT_EQ(*f.GetFloat("f64"), 1e-300);
  EXPECT_EQ(f.FindMeta("yes")->kind, MetaValue::Kind::kBool);
  EXPECT_TRUE(f.GetBoolOr("yes", false));
  EXPECT_FALSE(f.GetBoolOr("no", true));
  EXPECT_EQ(*f.GetString("utf8"), std::string("h\xC3\xA9llo\0x", 8));
  EXPECT_EQ(*f.GetString("empty"), "");

  const MetaValue* a = f.FindMeta("arr.i32");
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->kind, MetaValue::Kind::kArray);
  EXPECT_EQ(a->elem_kind, MetaValue::Kind::kInt);
  EXPECT_EQ(a->ints, (std::vector<int64_t>{1, -2, 3}));
  EXPECT_EQ(f.FindMeta("arr.u8")->ints, (std::vector<int64_t>{0, 200}));
  EXPECT_EQ(f.FindMeta("arr.i64")->ints, (std::vector<int64_t>{INT64_MAX}));
  EXPECT_EQ(f.FindMeta("arr.f32")->elem_kind, MetaValue::Kind::kFloat);
  EXPECT_EQ(f.FindMeta("arr.f32")->floats, (std::vector<double>{0.25, -1.5}));
  EXPECT_EQ(f.FindMeta("arr.f64")->floats, (std::vector<double>{3.0}));
  EXPECT_EQ(f.FindMeta("arr.bool")->elem_kind, MetaValue::Kind::kBool);
  EXPECT_EQ(f.FindMeta("arr.bool")->ints, (std::vector<int64_t>{1, 0, 1}));
  EXPECT_EQ(f.FindMeta("arr.str")->elem_kind, MetaValue::Kind::kString);
  EXPECT_EQ(f.FindMeta("arr.str")->strings,
            (std::vector<std::string>{"<s>", "", "\xE2\x96\x81the"}));
  EXPECT_EQ(f.FindMeta("arr.empty")->kind, MetaValue::Kind::kArray);
  EXPECT_TRUE(f.FindMeta("arr.empty")->ints.empty());
  EXPECT_EQ(f.metadata().size(), 23u);
}

TEST(GgufTest, ReadsVersion2) {
  const std::string bytes = MakeValidWriter(/*version=*/2).Serialize();
  auto g = ParseBytes(bytes);
  ASSERT_TRUE(g.ok()) << g.status();
  EXPECT_EQ(g->version, 2u);
  EXPECT_EQ(g->tensors.size(), 4u);
}

TEST(GgufTest, TensorShapesOffsetsAndAlignment) {
  for (uint32_t alignment : {0u, 1u, 8u, 64u, 4096u}) {
    SCOPED_TRACE(alignment);
    GgufWriter w = MakeValidWriter();
    if (alignment != 0) w.SetAlignment(alignment);
    const uint64_t expect_align = alignment == 0 ? 32 : alignment;
    const std::string bytes = w.Serialize();
    auto g = ParseBytes(bytes);
    ASSERT_TRUE(g.ok()) << g.status();
    EXPECT_EQ(g->alignment, expect_align);
    EXPECT_EQ(g->data_offset, w.DataOffset());
    EXPECT_EQ(g->data_offset % expect_align, 0u);
    const auto* base = reinterpret_cast<const uint8_t*>(bytes.data());
    const std::vector<uint64_t> offsets = w.TensorOffsets();
    ASSERT_EQ(g->tensors.size(), 4u);
    for (size_t i = 0; i < offsets.size(); ++i) {
      EXPECT_EQ(g->tensors[i].data, base + g->data_offset + offsets[i]) << i;
      EXPECT_EQ(offsets[i] % expect_align, 0u);
    }
    const TensorView& embd = g->tensors[0];
    EXPECT_EQ(embd.name, "token_embd.weight");
    EXPECT_EQ(embd.type, GgmlType::kF32);
    EXPECT_EQ(embd.shape, (std::vector<int64_t>{3, 4}));  // outermost first
    EXPECT_EQ(embd.nbytes, 48);
    EXPECT_EQ(std::string(reinterpret_cast<const char*>(embd.data), 48), Bytes(48, 1));
    const TensorView& q = g->tensors[1];
    EXPECT_EQ(q.type, GgmlType::kQ4_0);
    EXPECT_EQ(q.shape, (std::vector<int64_t>{2, 64}));
    EXPECT_EQ(q.nbytes, 2 * 2 * 18);
    EXPECT_EQ(q.rows(), 2);
    EXPECT_EQ(q.cols(), 64);
    EXPECT_EQ(std::string(reinterpret_cast<const char*>(q.data), 72), Bytes(72, 2));
    EXPECT_EQ(g->tensors[2].shape, (std::vector<int64_t>{5}));
    EXPECT_EQ(g->tensors[2].nbytes, 10);
    EXPECT_EQ(g->tensors[3].shape, (std::vector<int64_t>{1, 2, 3, 4}));
    EXPECT_EQ(g->tensors[3].type, GgmlType::kBF16);
  }
}

TEST(GgufTest, OpenThroughFileKeepsDataMapped) {
  TempDir dir;
  const std::string path = dir.path() + "/m.gguf";
  ASSERT_TRUE(MakeValidWriter().WriteToFile(path).ok());
  auto file = OpenModelFile(path);
  ASSERT_TRUE(file.ok()) << file.status();
  const TensorView* t = (*file)->FindTensor("output.weight");
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(t->data), 48), Bytes(48, 4));
  EXPECT_EQ((*file)->FindTensor("nope"), nullptr);
}

TEST(GgufTest, MissingAndEmptyFiles) {
  TempDir dir;
  EXPECT_EQ(OpenGguf(dir.path() + "/absent.gguf").status().code(), absl::StatusCode::kNotFound);
  const std::string path = dir.path() + "/empty.gguf";
  {
    std::FILE* f = std::fopen(path.c_str(), "wb");
    std::fclose(f);
  }
  ExpectError(OpenGguf(path).status(), absl::StatusCode::kDataLoss, path, "magic");
}

TEST(GgufTest, TruncatedAtEveryByteFailsCleanly) {
  const std::string bytes = MakeValidWriter().Serialize();
  ASSERT_TRUE(ParseBytes(bytes).ok());
  for (size_t len = 0; len < bytes.size(); ++len) {
    auto g = ParseBytes(bytes, len);
    ASSERT_FALSE(g.ok()) << "prefix of " << len << " bytes parsed";
    EXPECT_EQ(g.status().code(), absl::StatusCode::kDataLoss) << len << ": " << g.status();
    EXPECT_TRUE(absl::StartsWith(g.status().message(), "mem.gguf: ")) << g.status();
  }
}

TEST(GgufTest, TruncatedFilesOnDiskFailCleanly) {
  TempDir dir;
  GgufWriter w = MakeValidWriter();
  const std::string bytes = w.Serialize();
  const std::string path = dir.path() + "/t.gguf";
  // Every byte is covered in memory above; on disk, the header densely, then
  // a stride through the rest, the data section start and the last byte.
  std::vector<size_t> lengths;
  for (size_t len = 0; len < 48; ++len) lengths.push_back(len);
  for (size_t len = 48; len < bytes.size(); len += 11) lengths.push_back(len);
  for (size_t len : {w.DataOffset() - 1, w.DataOffset(), w.DataOffset() + 1, bytes.size() - 1}) {
    lengths.push_back(len);
  }
  for (size_t len : lengths) {
    std::FILE* f = std::fopen(path.c_str(), "wb");
    ASSERT_NE(f, nullptr);
    std::fwrite(bytes.data(), 1, len, f);
    std::fclose(f);
    auto file = OpenGguf(path);
    ASSERT_FALSE(file.ok()) << len;
    EXPECT_EQ(file.status().code(), absl::StatusCode::kDataLoss) << file.status();
    EXPECT_TRUE(absl::StartsWith(file.status().message(), path + ": ")) << file.status();
  }
}

// Patches the little-endian u32/u64 at `pos`.
std::string Patched32(std::string bytes, size_t pos, uint32_t v) {
  std::memcpy(bytes.data() + pos, &v, 4);
  return bytes;
}
std::string Patched64(std::string bytes, size_t pos, uint64_t v) {
  std::memcpy(bytes.data() + pos, &v, 8);
  return bytes;
}

TEST(GgufTest, BadHeaders) {
  const std::string good = MakeValidWriter().Serialize();
  std::string bad_magic = good;
  bad_magic[0] = 'X';
  ExpectError(ParseBytes(bad_magic).status(), absl::StatusCode::kInvalidArgument, "mem.gguf",
              "magic");
  ExpectError(ParseBytes(Patched32(good, 4, 1)).status(), absl::StatusCode::kInvalidArgument,
              "mem.gguf", "version 1");
  ExpectError(ParseBytes(Patched32(good, 4, 4)).status(), absl::StatusCode::kInvalidArgument,
              "mem.gguf", "version 4");
  ExpectError(ParseBytes(Patched32(good, 4, 0x03000000)).status(),
              absl::StatusCode::kInvalidArgument, "mem.gguf", "big-endian");
  ExpectError(ParseBytes(Patched64(good, 8, ~uint64_t{0})).status(), absl::StatusCode::kDataLoss,
              "mem.gguf", "tensor count 18446744073709551615");
  ExpectError(ParseBytes(Patched64(good, 16, uint64_t{1} << 40)).status(),
              absl::StatusCode::kDataLoss, "mem.gguf", "metadata count");
  // A count that fits the file but claims more entries than are there.
  auto overcount = ParseBytes(Patched64(good, 16, 30));
  ASSERT_FALSE(overcount.ok());
  EXPECT_TRUE(absl::StartsWith(overcount.status().message(), "mem.gguf: ")) << overcount.status();
  // Huge length of the first key.
  ExpectError(ParseBytes(Patched64(good, 24, uint64_t{1} << 60)).status(),
              absl::StatusCode::kDataLoss, "mem.gguf", "string length");
}

absl::Status ParseWith(void (*add)(GgufWriter&)) {
  GgufWriter w;
  w.AddString("general.architecture", "llama");
  add(w);
  return ParseBytes(w.Serialize()).status();
}

TEST(GgufTest, BadMetadata) {
  using W = GgufWriter;
  ExpectError(ParseWith([](W& w) { w.AddRawKv("k", 99, "x"); }), absl::StatusCode::kInvalidArgument,
              "mem.gguf", "'k': unknown value type id 99");
  ExpectError(ParseWith([](W& w) { w.AddRawKv("nest", W::kArray, W::U32(W::kArray) + W::U64(1)); }),
              absl::StatusCode::kInvalidArgument, "mem.gguf", "'nest': nested arrays");
  ExpectError(ParseWith([](W& w) { w.AddRawKv("a", W::kArray, W::U32(77) + W::U64(1)); }),
              absl::StatusCode::kInvalidArgument, "mem.gguf", "unknown array element type id 77");
  ExpectError(
      ParseWith([](W& w) { w.AddRawKv("a", W::kArray, W::U32(W::kInt32) + W::U64(1ull << 61)); }),
      absl::StatusCode::kDataLoss, "mem.gguf", "'a': array of 2305843009213693952 elements");
  ExpectError(ParseWith([](W& w) {
                w.AddRawKv("s", W::kArray, W::U32(W::kString) + W::U64(1) + W::U64(1ull << 50));
              }),
              absl::StatusCode::kDataLoss, "mem.gguf",
              "'s': array element 0: string value: string length");
  ExpectError(ParseWith([](W& w) { w.AddRawKv("b", W::kBool, std::string(1, '\x02')); }),
              absl::StatusCode::kInvalidArgument, "mem.gguf", "'b': bool value");
  ExpectError(ParseWith([](W& w) { w.AddUint64("big", ~uint64_t{0}); }),
              absl::StatusCode::kInvalidArgument, "mem.gguf", "'big': uint64 value");
  ExpectError(ParseWith([](W& w) { w.AddString("general.architecture", "x"); }),
              absl::StatusCode::kInvalidArgument, "mem.gguf",
              "'general.architecture': appears more than once");
  ExpectError(ParseWith([](W& w) { w.AddString("", "x"); }), absl::StatusCode::kInvalidArgument,
              "mem.gguf", "empty key");
}

TEST(GgufTest, BadAlignment) {
  using W = GgufWriter;
  ExpectError(ParseWith([](W& w) { w.SetAlignment(0); }), absl::StatusCode::kInvalidArgument,
              "mem.gguf", "'general.alignment': alignment 0 is not a power of two");
  ExpectError(ParseWith([](W& w) { w.SetAlignment(48); }), absl::StatusCode::kInvalidArgument,
              "mem.gguf", "alignment 48");
  ExpectError(ParseWith([](W& w) { w.AddString("general.alignment", "32"); }),
              absl::StatusCode::kInvalidArgument, "mem.gguf", "'general.alignment': must be");
}

absl::Status ParseTensor(GgufWriter::RawTensor t) {
  GgufWriter w;
  w.AddString("general.architecture", "llama");
  w.AddTensor("ok.weight", GgmlType::kF32, {2}, Bytes(8, 0));
  w.AddRawTensor(std::move(t));
  return ParseBytes(w.Serialize()).status();
}

GgufWriter::RawTensor Raw(std::vector<uint64_t> ne, uint32_t type, size_t data_bytes) {
  GgufWriter::RawTensor t;
  t.name = "blk.1.bad";
  t.ne = std::move(ne);
  t.type_id = type;
  t.data = Bytes(data_bytes, 9);
  return t;
}

TEST(GgufTest, BadTensorInfos) {
  constexpr auto kInvalid = absl::StatusCode::kInvalidArgument;
  constexpr uint32_t kF32 = 0, kQ4_0 = 2, kQ5_1 = 7;
  EXPECT_TRUE(ParseTensor(Raw({4, 2}, kF32, 32)).ok());
  ExpectError(ParseTensor(Raw({4}, 99, 16)), kInvalid, "mem.gguf",
              "tensor 'blk.1.bad': unknown type id 99");
  ExpectError(ParseTensor(Raw({32}, kQ5_1, 24)), kInvalid, "mem.gguf",
              "tensor 'blk.1.bad': type Q5_1 (id 7) is not supported");
  ExpectError(ParseTensor(Raw({16}, kQ4_0, 9)), kInvalid, "mem.gguf",
              "row length 16 is not a multiple of the Q4_0 block size 32");
  ExpectError(ParseTensor(Raw({}, kF32, 0)), kInvalid, "mem.gguf", "n_dims is 0");
  ExpectError(ParseTensor(Raw({1, 1, 1, 1, 1}, kF32, 4)), kInvalid, "mem.gguf", "n_dims is 5");
  ExpectError(ParseTensor(Raw({4, 0}, kF32, 0)), kInvalid, "mem.gguf", "dimension 1 is 0");
  ExpectError(ParseTensor(Raw({1ull << 63}, kF32, 0)), kInvalid, "mem.gguf", "dimension 0 is");
  ExpectError(ParseTensor(Raw({1ull << 40, 1ull << 40}, kF32, 0)), kInvalid, "mem.gguf",
              "element count overflows");
  ExpectError(ParseTensor(Raw({1ull << 62}, kF32, 0)), kInvalid, "mem.gguf", "byte size overflows");
  ExpectError(ParseTensor(Raw({4, 1000}, kF32, 16)), absl::StatusCode::kDataLoss, "mem.gguf",
              "tensor 'blk.1.bad': data [");

  GgufWriter::RawTensor misaligned = Raw({4}, kF32, 16);
  misaligned.offset = 36;
  ExpectError(ParseTensor(misaligned), kInvalid, "mem.gguf", "not a multiple of the alignment 32");
  GgufWriter::RawTensor far = Raw({4}, kF32, 16);
  far.offset = uint64_t{1} << 40;
  ExpectError(ParseTensor(far), absl::StatusCode::kDataLoss, "mem.gguf", "past the end");
  GgufWriter::RawTensor wrap = Raw({4}, kF32, 16);
  wrap.offset = ~uint64_t{31};
  ExpectError(ParseTensor(wrap), kInvalid, "mem.gguf", "overflows");
  GgufWriter::RawTensor dup = Raw({2}, kF32, 8);
  dup.name = "ok.weight";
  ExpectError(ParseTensor(dup), kInvalid, "mem.gguf", "'ok.weight' appears more than once");
  GgufWriter::RawTensor unnamed = Raw({2}, kF32, 8);
  unnamed.name = "";
  ExpectError(ParseTensor(unnamed), kInvalid, "mem.gguf", "empty name");
}

TEST(GgufTest, FileWithoutTensors) {
  GgufWriter w;
  w.AddString("general.architecture", "llama");
  auto g = ParseBytes(w.Serialize());
  ASSERT_TRUE(g.ok()) << g.status();
  EXPECT_TRUE(g->tensors.empty());
}

// The real model, when `dspark pull` has fetched it.
TEST(GgufTest, OpensRealSmolLm2) {
  const char* home = std::getenv("DSPARK_HOME");
  const char* user_home = std::getenv("HOME");
  const std::string models = home != nullptr ? absl::StrCat(home, "/models")
                                             : absl::StrCat(user_home != nullptr ? user_home : "",
                                                            "/.cache/dspark/models");
  const std::string path = models + "/smollm2-135m-instruct.gguf";
  if (!std::filesystem::exists(path)) GTEST_SKIP() << path << " not present (run `dspark pull`)";
  auto file = OpenGguf(path);
  ASSERT_TRUE(file.ok()) << file.status();
  const ModelFile& f = **file;
  EXPECT_EQ(*f.GetString("general.architecture"), "llama");
  EXPECT_EQ(*f.GetInt("llama.block_count"), 30);
  const TensorView* embd = f.FindTensor("token_embd.weight");
  ASSERT_NE(embd, nullptr);
  EXPECT_EQ(embd->shape, (std::vector<int64_t>{49152, 576}));
  const MetaValue* tokens = f.FindMeta("tokenizer.ggml.tokens");
  ASSERT_NE(tokens, nullptr);
  EXPECT_EQ(tokens->strings.size(), 49152u);
  EXPECT_EQ(f.tensors().size(), 272u);  // 30 layers x 9 + token_embd + output_norm
}

}  // namespace
}  // namespace dspark::engine
