// The engine's logits on the three real GGUF models against Hugging Face
// transformers' (the GGUF de-quantized to f32, teacher-forced over twelve
// prompts; testdata/refs_<model>.json, made by tools/make_references.py, which
// also stored how far llama.cpp lands from the same reference).
//
// Needs the models `dspark pull` puts in $DSPARK_HOME/models (default
// ~/.cache/dspark/models); a missing one skips its tests.
//
// Exact mode (f32 activations over the de-quantized weights, the same
// arithmetic as the reference up to summation order), at every position:
//   err = max_{i in ref top-20} |dspark[i] - ref[i]| / max(max_{i in ref top-20} |ref[i]|, 1)
//   must be <= 1e-3, and dspark's argmax over the whole vocabulary must be the
//   reference's top-1 (or tie with it: within 2 * 1e-3 * scale of it).
// Fast mode (int8 activations, as llama.cpp): dspark's argmax equals the
// reference's top-1 at >= 95% of positions and lies within the reference's
// top-3 at every position, except near-ties int8 noise may flip (the
// reference ranks the pick within 0.25 of its std below its top-1; printed).
// Its error over the reference's top-20, in units of the reference logits'
// standard deviation, is printed beside llama.cpp's.

#include <sys/stat.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "common/engine/model/model.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace dspark::engine {
namespace {

using nlohmann::json;

constexpr double kExactTolerance = 1e-3;
constexpr double kFastTop1Agreement = 0.95;
// Int8 activations move the top-20 logits by up to ~0.5 reference std
// (llama.cpp: 0.39-0.58, stored in the refs); a pick outside the reference's
// top-3 passes only when the reference puts it within this many std of its
// top-1 (gemma-3-270m, a base model with flat distributions, has such ties).
constexpr double kFastNearTieStd = 0.25;
constexpr int kThreads = 2;

std::string DsparkHome() {
  if (const char* home = std::getenv("DSPARK_HOME"); home != nullptr && *home != '\0') {
    return home;
  }
  const char* user_home = std::getenv("HOME");
  return std::string(user_home != nullptr ? user_home : "") + "/.cache/dspark";
}

int64_t FileSize(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) ? st.st_size : -1;
}

json ReadJson(const std::string& path) {
  std::ifstream in(path);
  if (!in) return json();
  std::stringstream text;
  text << in.rdbuf();
  return json::parse(text.str(), nullptr, /*allow_exceptions=*/false);
}

// One position of the reference.
struct RefRow {
  std::vector<int32_t> top_ids;   // [20], best first
  std::vector<float> top_logits;  // [20]
  double std = 0;                 // reference logits' std over the vocabulary
};

struct RefPrompt {
  std::vector<int32_t> ids;  // [n]
  std::vector<RefRow> rows;  // [n]
};

struct Stats {
  int positions = 0;
  int top1_agree = 0;
  int top1_in_ref_top3 = 0;
  int ties_accepted = 0;         // exact mode: reference near-ties resolved the other way
  int near_ties = 0;             // fast mode: outside the reference top-3, but a near-tie
  double max_rel_err = 0;        // exact-mode metric (see the file comment)
  double top20_max_err_std = 0;  // max over positions of max_{top-20} |err| / std
  double top20_sum_err_std = 0;  // sum over positions of mean_{top-20} |err| / std
  std::string worst;             // where max_rel_err happened
};

class ReferenceTest : public ::testing::TestWithParam<const char*> {
 protected:
  void SetUp() override {
    const std::string name = GetParam();
    const std::string refs_path = std::string(DSPARK_SOURCE_DIR) +
                                  "/tests/common/engine/model/testdata/refs_" + name + ".json";
    refs_ = ReadJson(refs_path);
    ASSERT_TRUE(refs_.is_object())
        << "cannot read " << refs_path << " (regenerate with tools/make_references.py)";
    model_path_ = DsparkHome() + "/models/" + name + ".gguf";
    const int64_t size = FileSize(model_path_);
    if (size < 0) {
      GTEST_SKIP() << model_path_ << " is missing; run `dspark pull " << name
                   << "` (or set DSPARK_HOME) to test against " << name;
    }
    ASSERT_EQ(size, refs_["file"]["size"].get<int64_t>())
        << model_path_ << " is not the file the references were made from ("
        << refs_["file"]["sha256"].get<std::string>()
        << "); re-pull it or regenerate with tools/make_references.py";
    for (const json& p : refs_["prompts"]) {
      RefPrompt prompt;
      prompt.ids = p["ids"].get<std::vector<int32_t>>();
      for (const json& r : p["positions"]) {
        prompt.rows.push_back({r["top_ids"].get<std::vector<int32_t>>(),
                               r["top_logits"].get<std::vector<float>>(), r["std"].get<double>()});
      }
      ASSERT_EQ(prompt.rows.size(), prompt.ids.size());
      prompts_.push_back(std::move(prompt));
    }
    ASSERT_FALSE(prompts_.empty());
  }

  // Runs every prompt as one prefill and compares each position.
  Stats Compare(cpu::ActivationMode mode) {
    Stats s;
    auto model_or = Model::Load(model_path_, {.mode = mode, .threads = kThreads});
    EXPECT_TRUE(model_or.ok()) << model_or.status();
    if (!model_or.ok()) return s;
    std::unique_ptr<Model> model = std::move(*model_or);
    const int vocab = model->config().vocab_size;
    EXPECT_EQ(vocab, refs_["vocab_size"].get<int>());
    auto cache = model->NewKvCache({});
    for (size_t pi = 0; pi < prompts_.size(); ++pi) {
      const RefPrompt& prompt = prompts_[pi];
      const SeqId seq = cache->CreateSequence();
      ForwardBatch batch;
      SequenceInput input;
      input.seq = seq;
      input.tokens = prompt.ids;
      for (size_t i = 0; i < prompt.ids.size(); ++i) input.logit_rows.push_back(i);
      batch.seqs.push_back(std::move(input));
      ForwardOutput out;
      const absl::Status st = model->Forward(batch, cache.get(), &out);
      EXPECT_TRUE(st.ok()) << st;
      cache->FreeSequence(seq);
      if (!st.ok()) continue;
      EXPECT_EQ(out.logits.size(), prompt.ids.size() * vocab);
      if (out.logits.size() != prompt.ids.size() * vocab) continue;

      for (size_t p = 0; p < prompt.rows.size(); ++p) {
        const RefRow& ref = prompt.rows[p];
        const float* got = out.logits.data() + p * vocab;
        const int32_t top1 = static_cast<int32_t>(std::max_element(got, got + vocab) - got);
        double scale = 1.0, max_abs = 0, sum_abs = 0;
        for (float r : ref.top_logits) scale = std::max(scale, std::fabs(static_cast<double>(r)));
        for (size_t k = 0; k < ref.top_ids.size(); ++k) {
          const double e = std::fabs(static_cast<double>(got[ref.top_ids[k]]) - ref.top_logits[k]);
          max_abs = std::max(max_abs, e);
          sum_abs += e;
        }
        ++s.positions;
        if (top1 == ref.top_ids[0]) {
          ++s.top1_agree;
        } else if (mode == cpu::ActivationMode::kExact) {
          // A reference near-tie may legitimately flip within the tolerance.
          const auto it = std::find(ref.top_ids.begin(), ref.top_ids.end(), top1);
          const bool tie = it != ref.top_ids.end() &&
                           ref.top_logits[0] - ref.top_logits[it - ref.top_ids.begin()] <=
                               2 * kExactTolerance * scale;
          s.ties_accepted += tie;
          EXPECT_TRUE(tie) << GetParam() << " prompt " << pi << " position " << p
                           << ": dspark top-1 " << top1 << " (" << got[top1] << "), reference "
                           << ref.top_ids[0] << " (" << ref.top_logits[0] << ")";
        }
        if (std::find(ref.top_ids.begin(), ref.top_ids.begin() + 3, top1) !=
            ref.top_ids.begin() + 3) {
          ++s.top1_in_ref_top3;
        } else if (mode == cpu::ActivationMode::kInt8) {
          // Outside the top-3 is allowed only as a near-tie: the reference
          // ranks dspark's pick within kFastNearTieStd of its own top-1.
          const auto it = std::find(ref.top_ids.begin(), ref.top_ids.end(), top1);
          const double gap =
              it == ref.top_ids.end()
                  ? INFINITY
                  : (ref.top_logits[0] - ref.top_logits[it - ref.top_ids.begin()]) / ref.std;
          if (gap <= kFastNearTieStd) {
            ++s.near_ties;
            std::printf(
                "  near-tie: prompt %zu position %zu: dspark top-1 %d is the reference's "
                "#%d, %.3f std below its top-1 %d (dspark has %.4f vs %.4f there)\n",
                pi, p, top1, static_cast<int>(it - ref.top_ids.begin()) + 1, gap, ref.top_ids[0],
                got[top1], got[ref.top_ids[0]]);
          } else {
            ADD_FAILURE() << GetParam() << " prompt " << pi << " position " << p
                          << ": dspark top-1 " << top1 << " is outside the reference's top-3 ("
                          << ref.top_ids[0] << ", " << ref.top_ids[1] << ", " << ref.top_ids[2]
                          << ") and " << gap << " std below its top-1";
          }
        }
        if (max_abs / scale > s.max_rel_err) {
          s.max_rel_err = max_abs / scale;
          s.worst = "prompt " + std::to_string(pi) + " position " + std::to_string(p);
        }
        s.top20_max_err_std = std::max(s.top20_max_err_std, max_abs / ref.std);
        s.top20_sum_err_std += sum_abs / ref.top_ids.size() / ref.std;
      }
    }
    return s;
  }

  void Print(const char* mode, const Stats& s) {
    const json& l = refs_["summary"]["llama_cpp"];
    std::printf(
        "%s %s over %d positions (reference: transformers, f32 de-quantized)\n"
        "                     top1 agree  in ref top3  top20 max|e|/std  top20 mean|e|/std\n"
        "  dspark %-6s       %8.1f%%  %10.1f%%  %16.4f  %17.4f\n"
        "  llama.cpp (stored)   %8.1f%%  %10.1f%%  %16.4f  %17.4f\n"
        "  dspark max |e| / max(|ref top-20|, 1) = %.3g at %s\n",
        GetParam(), mode, s.positions, mode, 100.0 * s.top1_agree / std::max(s.positions, 1),
        100.0 * s.top1_in_ref_top3 / std::max(s.positions, 1), s.top20_max_err_std,
        s.top20_sum_err_std / std::max(s.positions, 1), 100 * l["top1_agree"].get<double>(),
        100 * l["top1_in_ref_top3"].get<double>(), l["top20_max_err_over_std"].get<double>(),
        l["top20_mean_err_over_std"].get<double>(), s.max_rel_err, s.worst.c_str());
  }

  json refs_;
  std::string model_path_;
  std::vector<RefPrompt> prompts_;
};

TEST_P(ReferenceTest, ExactModeMatchesTransformers) {
  const Stats s = Compare(cpu::ActivationMode::kExact);
  Print("exact", s);
  ASSERT_GT(s.positions, 0);
  EXPECT_LE(s.max_rel_err, kExactTolerance) << "worst at " << s.worst;
  EXPECT_EQ(s.top1_agree + s.ties_accepted, s.positions);
}

TEST_P(ReferenceTest, FastModeAgreesWithTransformers) {
  const Stats s = Compare(cpu::ActivationMode::kInt8);
  Print("fast", s);
  ASSERT_GT(s.positions, 0);
  EXPECT_GE(s.top1_agree, kFastTop1Agreement * s.positions)
      << s.top1_agree << " of " << s.positions << " positions agree";
  EXPECT_EQ(s.top1_in_ref_top3 + s.near_ties, s.positions);
}

INSTANTIATE_TEST_SUITE_P(Models, ReferenceTest,
                         ::testing::Values("smollm2-135m-instruct", "qwen2.5-coder-0.5b-instruct",
                                           "gemma-3-270m"),
                         [](const ::testing::TestParamInfo<const char*>& info) {
                           std::string name;
                           for (const char* c = info.param; *c != '\0'; ++c) {
                             name += std::isalnum(static_cast<unsigned char>(*c)) ? *c : '_';
                           }
                           return name;
                         });

}  // namespace
}  // namespace dspark::engine
