// DsparkDrafter against the PyTorch reference (tools/dspark_drafter/model.py):
// tools/make_random_drafter.py writes a random-weight drafter for a target,
// tools/make_dspark_reference.py the reference's greedy drafts for random
// context features; the engine (exact mode) must draft the same tokens, with
// logits and confidences within 1e-4 relative:
//   logits: max_i |dspark_i - ref_i| / max_i |ref_i| over each block position;
//   confidences: |dspark - ref| / |ref|.
// Targets: a tiny random llama GGUF (always, f32 drafter; plus a bf16
// two-layer drafter with a draft vocabulary) and the catalogue models that are
// pulled, with random drafters and with the committed trained drafters. Needs the venv (tools/setup.sh test); skips without it. Also prints
// the drafter's speed on SmolLM2 (not asserted).
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/engine/model_store/model_store.h"
#include "draft_worker/dspark/dspark_drafter.h"
#include "nlohmann/json.hpp"
#include "tests/draft_worker/dspark/dspark_test_util.h"

namespace dspark::drafter {
namespace {

using nlohmann::json;

constexpr double kTolerance = 1e-4;

std::string Python() { return std::string(DSPARK_SOURCE_DIR) + "/.venv/bin/python"; }
bool Readable(const std::string& p) { return ::access(p.c_str(), R_OK) == 0; }

// Runs a tools/ script with the venv's python; its output goes to `log`.
bool RunTool(const std::string& script, const std::string& args, const std::string& log) {
  const std::string cmd = absl::StrCat("'", Python(), "' '", DSPARK_SOURCE_DIR, "/tools/", script,
                                       "' ", args, " > '", log, "' 2>&1");
  return std::system(cmd.c_str()) == 0;
}

std::string ReadAll(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

std::vector<float> ReadF32(const std::string& path) {
  const std::string bytes = ReadAll(path);
  std::vector<float> v(bytes.size() / sizeof(float));
  std::memcpy(v.data(), bytes.data(), v.size() * sizeof(float));
  return v;
}

struct Target {
  std::string name;
  std::string gguf;
  std::string drafter_args;  // extra make_random_drafter.py flags
  std::string trained;       // a trained checkpoint to check instead of a random one
};

class DsparkReferenceTest : public ::testing::TestWithParam<Target> {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::string(dspark::testing::MakeTempDir("dspark_model_test"));
    ASSERT_TRUE(dspark::testing::WriteTinyTarget(*dir_ + "/tiny.gguf", {.tied = false}, 3).ok());
  }
  static void TearDownTestSuite() {
    if (dir_ != nullptr && !dir_->empty()) std::filesystem::remove_all(*dir_);
    delete dir_;
  }

  static std::string* dir_;
};
std::string* DsparkReferenceTest::dir_ = nullptr;

TEST_P(DsparkReferenceTest, MatchesPyTorchReference) {
  const Target& t = GetParam();
  if (!Readable(Python())) GTEST_SKIP() << "no venv at " << Python() << ": run tools/setup.sh test";
  const std::string gguf = t.gguf.empty() ? *dir_ + "/tiny.gguf" : t.gguf;
  if (!Readable(gguf)) GTEST_SKIP() << "run `dspark pull " << t.name << "` first";
  const std::string work = absl::StrCat(*dir_, "/", t.name);
  const std::string drafter_dir = t.trained.empty() ? work + "/drafter" : t.trained;
  const std::string ref_dir = work + "/ref";
  if (t.trained.empty()) {
    ASSERT_TRUE(
        RunTool("make_random_drafter.py",
                absl::StrCat("--target '", gguf, "' --out '", drafter_dir, "' ", t.drafter_args),
                *dir_ + "/drafter.log"))
        << ReadAll(*dir_ + "/drafter.log");
  }
  ASSERT_TRUE(RunTool(
      "make_dspark_reference.py",
      absl::StrCat("--target '", gguf, "' --drafter '", drafter_dir, "' --out '", ref_dir, "'"),
      *dir_ + "/ref.log"))
      << ReadAll(*dir_ + "/ref.log");

  auto model =
      engine::Model::Load(gguf, {.mode = engine::cpu::ActivationMode::kExact, .threads = 2});
  ASSERT_TRUE(model.ok()) << model.status();
  auto drafter = DsparkDrafter::Load(drafter_dir, model->get());
  ASSERT_TRUE(drafter.ok()) << drafter.status();
  DsparkDrafter& d = **drafter;
  const json ref = json::parse(ReadAll(ref_dir + "/reference.json"));
  const int B = ref["block_size"];
  const int64_t V = ref["head_vocab"];
  ASSERT_EQ(B, d.max_block());
  ASSERT_EQ(V, d.head_vocab());

  // All cases in one batched call (ragged context lengths).
  std::vector<DraftRequest> requests;
  for (size_t c = 0; c < ref["cases"].size(); ++c) {
    const json& rc = ref["cases"][c];
    const std::vector<float> features = ReadF32(ref_dir + "/" + rc["features"].get<std::string>());
    const int L = rc["context_len"];
    ASSERT_TRUE(d.Open(c).ok());
    ASSERT_TRUE(d.Extend(c, std::vector<int32_t>(L, 0), features).ok());
    requests.push_back({.session = static_cast<SessionId>(c),
                        .last_token = rc["last_token"].get<int32_t>(),
                        .max_tokens = B});
  }
  std::vector<DraftBlock> blocks;
  std::vector<float> logits;
  ASSERT_TRUE(d.DraftWithLogits(requests, &blocks, &logits).ok());

  double worst_logits = 0, worst_conf = 0;
  for (size_t c = 0; c < requests.size(); ++c) {
    SCOPED_TRACE(absl::StrCat(t.name, " case ", c));
    const json& rc = ref["cases"][c];
    const std::vector<float> ref_logits = ReadF32(ref_dir + "/" + rc["logits"].get<std::string>());
    ASSERT_EQ(ref_logits.size(), static_cast<size_t>(B * V));
    const std::vector<int32_t> ref_tokens = rc["tokens"];
    const std::vector<double> ref_conf = rc["confidences"];
    const std::vector<double> gap = rc["top2_gap"];
    for (int i = 0; i < B; ++i) {
      double max_err = 0, max_ref = 0;
      for (int64_t v = 0; v < V; ++v) {
        const double a = logits[(c * B + i) * V + v], b = ref_logits[i * V + v];
        max_err = std::max(max_err, std::fabs(a - b));
        max_ref = std::max(max_ref, std::fabs(b));
      }
      const double err = max_err / max_ref;
      const double conf_err = std::fabs(blocks[c].confidence[i] - ref_conf[i]) / ref_conf[i];
      worst_logits = std::max(worst_logits, err);
      worst_conf = std::max(worst_conf, conf_err);
      EXPECT_LE(err, kTolerance) << "position " << i;
      EXPECT_LE(conf_err, kTolerance) << "position " << i;
      if (blocks[c].tokens[i] != ref_tokens[i]) {
        // Only a near-tie may flip the argmax within the tolerance; later
        // positions then see another previous token and are not comparable.
        ASSERT_LE(gap[i], 2 * kTolerance * max_ref)
            << "position " << i << " drafted " << blocks[c].tokens[i] << ", reference "
            << ref_tokens[i];
        std::printf("%s case %zu: near-tie flipped position %d\n", t.name.c_str(), c, i);
        break;
      }
    }
  }
  std::printf("%s: max relative error logits %.3g, confidences %.3g (tokens %s)\n", t.name.c_str(),
              worst_logits, worst_conf, json(blocks[0].tokens).dump().c_str());
}

std::string Catalogue(const std::string& name) { return ModelPath(ModelCacheDir(), name); }

INSTANTIATE_TEST_SUITE_P(
    Targets, DsparkReferenceTest,
    ::testing::Values(
        Target{"tiny", "", ""},
        Target{"tiny_bf16_d2t", "",
               "--layers 2 --markov-rank 4 --block-size 5 --dtype bf16 --draft-vocab 120 "
               "--target-layers 3,0,2"},
        Target{"smollm2-135m-instruct", Catalogue("smollm2-135m-instruct"), ""},
        Target{"smollm2-135m-instruct-committed", Catalogue("smollm2-135m-instruct"), "",
               std::string(DSPARK_SOURCE_DIR) + "/models/drafters/smollm2-135m-instruct"},
        Target{"qwen2.5-coder-0.5b-instruct", Catalogue("qwen2.5-coder-0.5b-instruct"), ""},
        Target{"qwen2.5-coder-0.5b-instruct-committed", Catalogue("qwen2.5-coder-0.5b-instruct"),
               "", std::string(DSPARK_SOURCE_DIR) + "/models/drafters/qwen2.5-coder-0.5b-instruct"},
        Target{"gemma-3-270m", Catalogue("gemma-3-270m"), "--draft-vocab 32000"}),
    [](const ::testing::TestParamInfo<Target>& info) {
      std::string n = info.param.name;
      for (char& ch : n) {
        if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
      }
      return n;
    });

// Draft latency with a SmolLM2-shaped one-layer drafter (B = 7), 1 and 16
// sessions of 64 context tokens, in both activation modes. Printed only.
TEST(DsparkDrafterSpeed, SmolLM2OneLayer) {
  const std::string gguf = Catalogue("smollm2-135m-instruct");
  if (!Readable(Python())) GTEST_SKIP() << "no venv: run tools/setup.sh test";
  if (!Readable(gguf)) GTEST_SKIP() << "run `dspark pull smollm2-135m-instruct` first";
  const std::string dir = dspark::testing::MakeTempDir("dspark_speed");
  ASSERT_TRUE(RunTool("make_random_drafter.py",
                      absl::StrCat("--target '", gguf, "' --out '", dir, "/drafter'"),
                      dir + "/log"))
      << ReadAll(dir + "/log");
  struct Cleanup {
    std::string dir;
    ~Cleanup() { std::filesystem::remove_all(dir); }
  } cleanup{dir};
  for (auto mode : {engine::cpu::ActivationMode::kExact, engine::cpu::ActivationMode::kInt8}) {
    auto model = engine::Model::Load(gguf, {.mode = mode, .threads = 0});
    ASSERT_TRUE(model.ok()) << model.status();
    auto drafter = DsparkDrafter::Load(dir + "/drafter", model->get());
    ASSERT_TRUE(drafter.ok()) << drafter.status();
    DsparkDrafter& d = **drafter;
    const int64_t fdim = static_cast<int64_t>(d.context_layers().size()) * d.config().hidden_size;
    for (int sessions : {1, 16}) {
      std::vector<DraftRequest> reqs;
      for (int s = 0; s < sessions; ++s) {
        const SessionId id = sessions * 100 + s;
        ASSERT_TRUE(d.Open(id).ok());
        ASSERT_TRUE(d.Extend(id, std::vector<int32_t>(64, 1),
                             dspark::testing::RandomFloats(64 * fdim, s, 1.0f))
                        .ok());
        reqs.push_back({.session = id, .last_token = 100 + s, .max_tokens = d.max_block()});
      }
      std::vector<DraftBlock> blocks;
      ASSERT_TRUE(d.Draft(reqs, &blocks).ok());  // warm-up
      // The machine is shared: report the fastest and the median of 20.
      std::vector<double> ms;
      for (int it = 0; it < 20; ++it) {
        const auto start = std::chrono::steady_clock::now();
        ASSERT_TRUE(d.Draft(reqs, &blocks).ok());
        ms.push_back(
            std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
                .count());
      }
      std::sort(ms.begin(), ms.end());
      std::printf(
          "dspark draft, SmolLM2 1-layer B=%d, %s, %d session(s): %.2f ms per Draft (median "
          "%.2f)\n",
          d.max_block(), mode == engine::cpu::ActivationMode::kExact ? "exact" : "int8", sessions,
          ms[0], ms[ms.size() / 2]);
    }
  }
}

}  // namespace
}  // namespace dspark::drafter
