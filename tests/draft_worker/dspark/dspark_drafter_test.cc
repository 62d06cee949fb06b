// DsparkDrafter without real models: a tiny random llama target (GGUF) and
// random drafter checkpoints written by the test. Covers checkpoint
// validation, input validation, and the invariances the engine promises
// (batch composition, max_tokens, Extend splits), sampling and the draft
// vocabulary. The agreement with the PyTorch reference is
// dspark_drafter_model_test.cc.
#include "draft_worker/dspark/dspark_drafter.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "draft_worker/drafter/draft_sampling.h"
#include "tests/draft_worker/dspark/dspark_test_util.h"

namespace dspark::drafter {
namespace {

using dspark::testing::StTensor;
using dspark::testing::TinyTarget;
using nlohmann::json;

constexpr int kB = 7;

class DsparkDrafterTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::string(dspark::testing::MakeTempDir("dspark_drafter_test"));
    ASSERT_FALSE(dir_->empty());
    const std::string path = *dir_ + "/tiny.gguf";
    ASSERT_TRUE(dspark::testing::WriteTinyTarget(path, TinyTarget{}, 1).ok());
    auto model =
        engine::Model::Load(path, {.mode = engine::cpu::ActivationMode::kExact, .threads = 2});
    ASSERT_TRUE(model.ok()) << model.status();
    target_ = model->release();
  }
  static void TearDownTestSuite() {
    delete target_;
    if (dir_ != nullptr && !dir_->empty()) std::filesystem::remove_all(*dir_);
    delete dir_;
  }

  // A checkpoint dir for `config` with random weights, edited by `edit`.
  // Tensors follow `tensor_config` when given, else `config`.
  std::string WriteCheckpoint(const json& config,
                              const std::function<void(std::vector<StTensor>*)>& edit = nullptr,
                              const json* tensor_config = nullptr) {
    const std::string d = absl::StrCat(*dir_, "/ckpt", counter_++);
    EXPECT_EQ(::mkdir(d.c_str(), 0755), 0);
    std::vector<StTensor> tensors = dspark::testing::RandomDrafterTensors(
        tensor_config != nullptr ? *tensor_config : config, 42);
    if (edit) edit(&tensors);
    EXPECT_TRUE(dspark::testing::WriteDrafter(d, config, tensors).ok());
    return d;
  }

  std::unique_ptr<DsparkDrafter> LoadDefault(const DsparkDrafterOptions& options = {}) {
    auto d = DsparkDrafter::Load(WriteCheckpoint(dspark::testing::TinyDrafterConfig({})), target_,
                                 options);
    EXPECT_TRUE(d.ok()) << d.status();
    return d.ok() ? std::move(*d) : nullptr;
  }

  static int64_t FeatureDim() { return 2 * 64; }

  // Opens `session` and extends it with `n` context tokens of features
  // drawn from `seed`.
  static void OpenWithContext(DsparkDrafter* d, SessionId session, int n, uint64_t seed) {
    ASSERT_TRUE(d->Open(session).ok());
    std::vector<int32_t> tokens(n, 7);
    std::vector<float> f = dspark::testing::RandomFloats(n * FeatureDim(), seed, 2.0f);
    ASSERT_TRUE(d->Extend(session, tokens, f).ok());
  }

  static engine::Model* target_;
  static std::string* dir_;
  static int counter_;  // checkpoint dirs made so far, across tests
};
engine::Model* DsparkDrafterTest::target_ = nullptr;
std::string* DsparkDrafterTest::dir_ = nullptr;
int DsparkDrafterTest::counter_ = 0;

TEST_F(DsparkDrafterTest, LoadsAndDescribesItself) {
  auto d = LoadDefault();
  ASSERT_NE(d, nullptr);
  EXPECT_EQ(d->name(), "dspark");
  EXPECT_EQ(d->max_block(), kB);
  EXPECT_EQ(d->context_layers(), (std::vector<int>{1, 2}));
  EXPECT_EQ(d->head_vocab(), 300);
  EXPECT_EQ(d->config().markov_rank, 8);
}

// Each malformed checkpoint is an error naming the file at fault; never a crash.
TEST_F(DsparkDrafterTest, MalformedCheckpointsAreClearErrors) {
  const json good = dspark::testing::TinyDrafterConfig({});
  struct Case {
    std::string what;
    std::function<void(json*)> edit_config;
    std::function<void(std::vector<StTensor>*)> edit_tensors;
    std::string file;     // expected in the message
    std::string message;  // expected in the message
    // Weights shaped by the edited config (else by the good one, so that
    // the config error is the first problem).
    bool tensors_follow_config = false;
  };
  auto drop = [](const std::string& name) {
    return [name](std::vector<StTensor>* t) {
      std::erase_if(*t, [&](const StTensor& x) { return x.name == name; });
    };
  };
  auto set = [](const std::string& key, json value) {
    return [key, value](json* c) { (*c)[key] = value; };
  };
  const std::vector<Case> cases = {
      {"no model_type", [](json* c) { c->erase("model_type"); }, nullptr, "config.json",
       "model_type"},
      {"missing hidden_size", [](json* c) { c->erase("hidden_size"); }, nullptr, "config.json",
       "hidden_size"},
      {"string layers", set("num_hidden_layers", "1"), nullptr, "config.json", "num_hidden_layers"},
      {"block too long", set("block_size", 17), nullptr, "config.json", "block_size"},
      {"mask out of vocab", set("mask_token_id", 300), nullptr, "config.json", "mask_token_id"},
      {"no target layers", set("target_layer_ids", json::array()), nullptr, "config.json",
       "target_layer_ids"},
      {"heads not a multiple", set("num_key_value_heads", 3), nullptr, "config.json",
       "num_key_value_heads"},
      {"other confidence head", set("confidence_head", {{"type", "mlp"}}), nullptr, "config.json",
       "confidence_head"},
      {"missing tensor", nullptr, drop("layers.0.mlp.up_proj.weight"), "model.safetensors",
       "layers.0.mlp.up_proj.weight"},
      {"missing markov", nullptr, drop("markov.b.weight"), "model.safetensors", "markov.b"},
      {"wrong shape", nullptr,
       [](std::vector<StTensor>* t) {
         for (StTensor& x : *t) {
           if (x.name == "fc.weight") x.shape = {128, 64};  // transposed
         }
       },
       "model.safetensors", "fc.weight"},
      {"stray tensor", nullptr,
       [](std::vector<StTensor>* t) {
         t->push_back({"layers.1.input_layernorm.weight", "F32", {64}, std::string(256, '\0')});
       },
       "model.safetensors", "layers.1.input_layernorm.weight"},
      {"integer weights", nullptr,
       [](std::vector<StTensor>* t) {
         for (StTensor& x : *t) {
           if (x.name == "norm.weight") x.dtype = "I32";
         }
       },
       "model.safetensors", "norm.weight"},
      {"d2t without draft vocab", nullptr,
       [](std::vector<StTensor>* t) {
         t->push_back({"d2t", "I64", {2}, std::string(16, '\0')});
       },
       "model.safetensors", "draft_vocab_size"},
      {"draft vocab without d2t", set("draft_vocab_size", 10), nullptr, "model.safetensors", "d2t"},
      {"hidden != target dim", set("target_hidden_size", 32), nullptr, "config.json",
       "target_hidden_size", true},
      {"layer out of target", set("target_layer_ids", {1, 4}), nullptr, "config.json",
       "target layer id 4"},
      {"vocab mismatch", set("vocab_size", 301), nullptr, "config.json", "vocab_size"},
      {"deep nesting",
       [](json* c) {
         json deep = 1;
         for (int i = 0; i < 50; ++i) deep = json::array({deep});
         (*c)["target_model"] = deep;
       },
       nullptr, "config.json", "JSON"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    json config = good;
    if (c.edit_config) c.edit_config(&config);
    auto d = DsparkDrafter::Load(
        WriteCheckpoint(config, c.edit_tensors, c.tensors_follow_config ? nullptr : &good),
        target_);
    ASSERT_FALSE(d.ok());
    EXPECT_EQ(d.status().code(), absl::StatusCode::kInvalidArgument) << d.status();
    EXPECT_TRUE(absl::StrContains(d.status().message(), c.file)) << d.status();
    EXPECT_TRUE(absl::StrContains(d.status().message(), c.message)) << d.status();
  }
}

TEST_F(DsparkDrafterTest, UnreadableOrTruncatedFilesAreErrors) {
  const std::string d = WriteCheckpoint(dspark::testing::TinyDrafterConfig({}));
  {
    std::ofstream f(d + "/config.json", std::ios::trunc);
    f << "{\"model_type\": \"dspark\",";  // cut short
  }
  auto bad_json = DsparkDrafter::Load(d, target_);
  EXPECT_EQ(bad_json.status().code(), absl::StatusCode::kInvalidArgument) << bad_json.status();
  EXPECT_TRUE(absl::StrContains(bad_json.status().message(), "config.json"));

  const std::string d2 = WriteCheckpoint(dspark::testing::TinyDrafterConfig({}));
  const std::string st = d2 + "/model.safetensors";
  std::ifstream in(st, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::ofstream(st, std::ios::binary | std::ios::trunc).write(bytes.data(), bytes.size() - 100);
  auto truncated = DsparkDrafter::Load(d2, target_);
  EXPECT_FALSE(truncated.ok());
  EXPECT_TRUE(absl::StrContains(truncated.status().message(), "model.safetensors"))
      << truncated.status();

  auto huge = DsparkDrafter::Load(WriteCheckpoint(dspark::testing::TinyDrafterConfig({})), target_,
                                  {.max_context_tokens = int64_t{1} << 40});
  EXPECT_EQ(huge.status().code(), absl::StatusCode::kInvalidArgument) << huge.status();

  auto missing = DsparkDrafter::Load(*dir_ + "/no-such-dir", target_);
  EXPECT_FALSE(missing.ok());
  EXPECT_TRUE(absl::StrContains(missing.status().message(), "no-such-dir")) << missing.status();
}

TEST_F(DsparkDrafterTest, BadInputIsAnErrorAndChangesNothing) {
  auto d = LoadDefault();
  ASSERT_NE(d, nullptr);
  OpenWithContext(d.get(), 1, 4, 1);
  EXPECT_EQ(d->Open(1).code(), absl::StatusCode::kAlreadyExists);
  std::vector<float> f(3 * FeatureDim(), 0.5f);
  EXPECT_EQ(d->Extend(1, {1, 2}, f).code(), absl::StatusCode::kInvalidArgument);  // 3 rows, 2 ids
  EXPECT_EQ(d->Extend(1, {1, 2, 300}, f).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(d->Extend(99, {1, 2, 3}, f).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(d->ContextLength(1), 4);

  std::vector<DraftBlock> before, blocks;
  ASSERT_TRUE(d->Draft({{.session = 1, .last_token = 9, .max_tokens = kB}}, &before).ok());
  for (const DraftRequest& bad : std::vector<DraftRequest>{
           {.session = 2, .last_token = 9, .max_tokens = 1},
           {.session = 1, .last_token = 9, .max_tokens = 0},
           {.session = 1, .last_token = 9, .max_tokens = kB + 1},
           {.session = 1, .last_token = 300, .max_tokens = 1},
           {.session = 1, .last_token = 9, .max_tokens = 1, .sampling = {.temperature = -1}}}) {
    // A bad request next to a good one fails the whole call.
    EXPECT_EQ(d->Draft({{.session = 1, .last_token = 9, .max_tokens = 3}, bad}, &blocks).code(),
              absl::StatusCode::kInvalidArgument);
  }
  EXPECT_EQ(d->ContextLength(1), 4);
  ASSERT_TRUE(d->Draft({{.session = 1, .last_token = 9, .max_tokens = kB}}, &blocks).ok());
  EXPECT_EQ(blocks[0].tokens, before[0].tokens);
  EXPECT_EQ(blocks[0].confidence, before[0].confidence);

  d->Close(1);
  d->Close(1);  // unknown ids are ignored
  EXPECT_EQ(d->Draft({{.session = 1, .last_token = 9, .max_tokens = 1}}, &blocks).code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(DsparkDrafterTest, ExtendPastCapacityIsResourceExhausted) {
  auto d = LoadDefault({.max_context_tokens = 32});
  ASSERT_NE(d, nullptr);
  OpenWithContext(d.get(), 1, 20, 1);
  ASSERT_TRUE(d->Open(2).ok());
  std::vector<float> f(20 * FeatureDim(), 0.5f);
  EXPECT_EQ(d->Extend(2, std::vector<int32_t>(20, 1), f).code(),
            absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(d->ContextLength(2), 0);
  d->Close(1);  // frees its blocks
  EXPECT_TRUE(d->Extend(2, std::vector<int32_t>(20, 1), f).ok());
}

// A session's draft is bit-identical alone or batched with sessions of other
// context lengths (including an empty context), in any order.
TEST_F(DsparkDrafterTest, BatchCompositionDoesNotChangeDrafts) {
  auto d = LoadDefault();
  ASSERT_NE(d, nullptr);
  OpenWithContext(d.get(), 1, 9, 1);
  OpenWithContext(d.get(), 2, 3, 2);
  ASSERT_TRUE(d->Open(3).ok());  // no context yet
  const std::vector<DraftRequest> reqs = {{.session = 1, .last_token = 11, .max_tokens = kB},
                                          {.session = 2, .last_token = 12, .max_tokens = kB},
                                          {.session = 3, .last_token = 13, .max_tokens = kB}};
  std::vector<DraftBlock> together;
  std::vector<float> together_logits;
  ASSERT_TRUE(d->DraftWithLogits({reqs[2], reqs[0], reqs[1]}, &together, &together_logits).ok());
  const int64_t V = d->head_vocab();
  const int order[] = {1, 2, 0};  // position of reqs[i] in the batched call
  for (int i = 0; i < 3; ++i) {
    SCOPED_TRACE(i);
    std::vector<DraftBlock> alone;
    std::vector<float> alone_logits;
    ASSERT_TRUE(d->DraftWithLogits({reqs[i]}, &alone, &alone_logits).ok());
    const DraftBlock& t = together[order[i]];
    EXPECT_EQ(alone[0].tokens, t.tokens);
    EXPECT_EQ(alone[0].confidence, t.confidence);  // exact float equality
    ASSERT_EQ(alone[0].tokens.size(), kB);
    EXPECT_EQ(0, std::memcmp(alone_logits.data(), &together_logits[order[i] * kB * V],
                             kB * V * sizeof(float)));
  }
  // Context matters: the three sessions do not all draft the same.
  EXPECT_FALSE(together[0].confidence == together[1].confidence &&
               together[1].confidence == together[2].confidence);
}

// In int8 mode the drafter runs Q8_0 copies of its float matrices: drafts
// stay independent of the batch bit for bit, and its logits stay within
// int8 rounding of the exact-mode drafter's (a wrong scale or layout would
// move them by their whole range).
TEST_F(DsparkDrafterTest, Int8ModeIsBatchInvariantAndCloseToExact) {
  auto int8_target = engine::Model::Load(
      *dir_ + "/tiny.gguf", {.mode = engine::cpu::ActivationMode::kInt8, .threads = 2});
  ASSERT_TRUE(int8_target.ok()) << int8_target.status();
  const std::string ckpt = WriteCheckpoint(dspark::testing::TinyDrafterConfig({}));
  auto exact = DsparkDrafter::Load(ckpt, target_);
  auto int8 = DsparkDrafter::Load(ckpt, int8_target->get());
  ASSERT_TRUE(exact.ok() && int8.ok());
  const std::vector<DraftRequest> reqs = {{.session = 1, .last_token = 11, .max_tokens = kB},
                                          {.session = 2, .last_token = 12, .max_tokens = kB}};
  for (DsparkDrafter* d : {exact->get(), int8->get()}) {
    OpenWithContext(d, 1, 9, 1);
    OpenWithContext(d, 2, 5, 2);
  }
  std::vector<DraftBlock> ex, together, alone;
  std::vector<float> ex_logits, together_logits, alone_logits;
  ASSERT_TRUE((*exact)->DraftWithLogits(reqs, &ex, &ex_logits).ok());
  ASSERT_TRUE((*int8)->DraftWithLogits(reqs, &together, &together_logits).ok());
  ASSERT_TRUE((*int8)->DraftWithLogits({reqs[1]}, &alone, &alone_logits).ok());
  const int64_t V = (*int8)->head_vocab();
  EXPECT_EQ(alone[0].tokens, together[1].tokens);
  EXPECT_EQ(0, std::memcmp(alone_logits.data(), &together_logits[kB * V], kB * V * sizeof(float)));
  ASSERT_EQ(ex_logits.size(), together_logits.size());
  float scale = 0, diff = 0;
  for (size_t i = 0; i < ex_logits.size(); ++i) {
    scale = std::max(scale, std::fabs(ex_logits[i]));
    diff = std::max(diff, std::fabs(ex_logits[i] - together_logits[i]));
  }
  EXPECT_GT(diff, 0.0f) << "int8 mode computed exactly: the matrices were not quantized";
  EXPECT_LE(diff, 5e-2f * scale);
}

TEST_F(DsparkDrafterTest, FewerTokensGiveAPrefixOfTheFullBlock) {
  auto d = LoadDefault();
  ASSERT_NE(d, nullptr);
  OpenWithContext(d.get(), 1, 6, 1);
  std::vector<DraftBlock> full;
  ASSERT_TRUE(d->Draft({{.session = 1, .last_token = 4, .max_tokens = kB}}, &full).ok());
  for (int n = 1; n < kB; ++n) {
    std::vector<DraftBlock> part;
    ASSERT_TRUE(d->Draft({{.session = 1, .last_token = 4, .max_tokens = n}}, &part).ok());
    ASSERT_EQ(part[0].tokens.size(), n);
    ASSERT_EQ(part[0].q.size(), n);
    ASSERT_EQ(part[0].confidence.size(), n);
    for (int i = 0; i < n; ++i) {
      EXPECT_EQ(part[0].tokens[i], full[0].tokens[i]);
      EXPECT_EQ(part[0].confidence[i], full[0].confidence[i]);
    }
  }
}

TEST_F(DsparkDrafterTest, ExtendInPiecesEqualsExtendAtOnce) {
  auto d = LoadDefault();
  ASSERT_NE(d, nullptr);
  const int n = 11;
  std::vector<float> f = dspark::testing::RandomFloats(n * FeatureDim(), 5, 2.0f);
  std::vector<int32_t> tokens(n, 3);
  ASSERT_TRUE(d->Open(1).ok());
  ASSERT_TRUE(d->Extend(1, tokens, f).ok());
  ASSERT_TRUE(d->Open(2).ok());
  const absl::Span<const float> fs(f);
  ASSERT_TRUE(
      d->Extend(2, absl::Span<const int32_t>(tokens).subspan(0, 4), fs.subspan(0, 4 * FeatureDim()))
          .ok());
  ASSERT_TRUE(d->Extend(2, {}, {}).ok());
  ASSERT_TRUE(
      d->Extend(2, absl::Span<const int32_t>(tokens).subspan(4), fs.subspan(4 * FeatureDim()))
          .ok());
  EXPECT_EQ(d->ContextLength(2), n);
  std::vector<DraftBlock> a, b;
  std::vector<float> la, lb;
  ASSERT_TRUE(
      d->DraftWithLogits({{.session = 1, .last_token = 8, .max_tokens = kB}}, &a, &la).ok());
  ASSERT_TRUE(
      d->DraftWithLogits({{.session = 2, .last_token = 8, .max_tokens = kB}}, &b, &lb).ok());
  EXPECT_EQ(a[0].tokens, b[0].tokens);
  EXPECT_EQ(a[0].confidence, b[0].confidence);
  EXPECT_EQ(la, lb);
}

// Extend holds context back until a session drafts or forks (or the cap):
// the drafts are those of a drafter that writes every Extend at once, bit
// for bit, whatever the order of extends, drafts and forks.
TEST_F(DsparkDrafterTest, HeldBackContextGivesTheSameDrafts) {
  const std::string ckpt = WriteCheckpoint(dspark::testing::TinyDrafterConfig({}));
  auto eager = DsparkDrafter::Load(ckpt, target_, {.max_pending_tokens = 1});
  auto lazy = DsparkDrafter::Load(ckpt, target_, {.max_pending_tokens = 8});
  ASSERT_TRUE(eager.ok() && lazy.ok());
  uint64_t seed = 100;
  std::vector<DraftBlock> a, b;
  std::vector<float> la, lb;
  const auto extend = [&](SessionId s, int n) {
    std::vector<float> f = dspark::testing::RandomFloats(n * FeatureDim(), ++seed, 2.0f);
    const std::vector<int32_t> tokens(n, 5);
    ASSERT_TRUE((*eager)->Extend(s, tokens, f).ok());
    ASSERT_TRUE((*lazy)->Extend(s, tokens, f).ok());
    EXPECT_EQ((*lazy)->ContextLength(s), (*eager)->ContextLength(s));
  };
  const auto same_drafts = [&](std::vector<DraftRequest> requests) {
    ASSERT_TRUE((*eager)->DraftWithLogits(requests, &a, &la).ok());
    ASSERT_TRUE((*lazy)->DraftWithLogits(requests, &b, &lb).ok());
    ASSERT_EQ(a.size(), b.size());
    for (size_t i = 0; i < a.size(); ++i) {
      EXPECT_EQ(a[i].tokens, b[i].tokens);
      EXPECT_EQ(a[i].confidence, b[i].confidence);
    }
    EXPECT_EQ(la, lb);
  };
  for (SessionId s : {1, 2, 3}) {
    ASSERT_TRUE((*eager)->Open(s).ok());
    ASSERT_TRUE((*lazy)->Open(s).ok());
  }
  extend(1, 5);
  extend(2, 3);
  extend(3, 20);  // past the cap: written at once
  same_drafts({{.session = 1, .last_token = 8, .max_tokens = kB},
               {.session = 2, .last_token = 9, .max_tokens = 3}});
  for (int step = 0; step < 11; ++step) {  // 2 drafts, 1 and 3 hold back (3 crosses the cap)
    extend(1, 1 + step % 2);
    extend(2, 1);
    extend(3, 1);
    same_drafts({{.session = 2, .last_token = 4, .max_tokens = kB}});
  }
  // A fork of a session holding context back, then all three in one call.
  ASSERT_TRUE((*eager)->Fork(4, 1, 10).ok());
  ASSERT_TRUE((*lazy)->Fork(4, 1, 10).ok());
  extend(4, 2);
  extend(1, 1);
  same_drafts({{.session = 3, .last_token = 1, .max_tokens = kB},
               {.session = 4, .last_token = 2, .max_tokens = kB},
               {.session = 1, .last_token = 3, .max_tokens = 2}});
  EXPECT_EQ((*lazy)->ContextLength(4), 12);
}

TEST_F(DsparkDrafterTest, SampledDraftsCarryTheirDistribution) {
  auto d = LoadDefault();
  ASSERT_NE(d, nullptr);
  OpenWithContext(d.get(), 1, 5, 1);
  const engine::SamplingParams sampling{.temperature = 4.0f, .seed = 77};
  auto draft = [&](uint64_t counter) {
    std::vector<DraftBlock> blocks;
    EXPECT_TRUE(d->Draft({{.session = 1,
                           .last_token = 4,
                           .max_tokens = kB,
                           .sampling = sampling,
                           .draw_counter = counter}},
                         &blocks)
                    .ok());
    return blocks[0];
  };
  const DraftBlock a = draft(100);
  ASSERT_EQ(a.tokens.size(), kB);
  for (int i = 0; i < kB; ++i) {
    double sum = 0;
    bool in_support = false;
    ASSERT_FALSE(a.q[i].empty());
    EXPECT_LE(a.q[i].size(), static_cast<size_t>(kDraftTopK));
    for (const auto& [id, p] : a.q[i]) {
      EXPECT_GT(p, 0.0f);
      sum += p;
      in_support |= id == a.tokens[i];
    }
    EXPECT_NEAR(sum, 1.0, 1e-5);
    EXPECT_TRUE(in_support) << "position " << i;
    EXPECT_GT(a.confidence[i], 0.0f);
    EXPECT_LT(a.confidence[i], 1.0f);
  }
  const DraftBlock again = draft(100);
  EXPECT_EQ(again.tokens, a.tokens);
  EXPECT_EQ(again.q, a.q);
  // Fresh counters give fresh draws: over a few blocks some token changes.
  bool differs = false;
  for (uint64_t c = 200; c < 1000 && !differs; c += 100) differs = draft(c).tokens != a.tokens;
  EXPECT_TRUE(differs);

  std::vector<DraftBlock> greedy;
  ASSERT_TRUE(d->Draft({{.session = 1, .last_token = 4, .max_tokens = kB}}, &greedy).ok());
  for (int i = 0; i < kB; ++i) {
    ASSERT_EQ(greedy[0].q[i].size(), 1u);
    EXPECT_EQ(greedy[0].q[i][0], std::make_pair(greedy[0].tokens[i], 1.0f));
  }
}

// With a draft vocabulary the head is the target head's d2t rows: the same
// logits as the full head at those ids, and drafted ids are target ids.
TEST_F(DsparkDrafterTest, DraftVocabularyMapsThroughD2t) {
  json config = dspark::testing::TinyDrafterConfig({});
  auto full = DsparkDrafter::Load(WriteCheckpoint(config), target_);
  ASSERT_TRUE(full.ok()) << full.status();
  config["draft_vocab_size"] = 100;  // d2t: draft i -> target 3 i
  auto small = DsparkDrafter::Load(WriteCheckpoint(config), target_);
  ASSERT_TRUE(small.ok()) << small.status();
  EXPECT_EQ((*small)->head_vocab(), 100);
  std::vector<DraftBlock> bf, bs;
  std::vector<float> lf, ls;
  for (auto* d : {full->get(), small->get()}) OpenWithContext(d, 1, 6, 3);
  const engine::SamplingParams hot{.temperature = 2.0f, .seed = 1};
  ASSERT_TRUE(
      (*full)->DraftWithLogits({{.session = 1, .last_token = 4, .max_tokens = kB}}, &bf, &lf).ok());
  ASSERT_TRUE(
      (*small)
          ->DraftWithLogits({{.session = 1, .last_token = 4, .max_tokens = kB, .sampling = hot}},
                            &bs, &ls)
          .ok());
  // Position 0 has the same input (last_token) in both: compare its logits.
  for (int i = 0; i < 100; ++i) EXPECT_EQ(ls[i], lf[3 * i]) << i;
  for (int i = 0; i < kB; ++i) {
    EXPECT_EQ(bs[0].tokens[i] % 3, 0);
    for (const auto& [id, p] : bs[0].q[i]) EXPECT_EQ(id % 3, 0);
  }

  // d2t entries must be distinct target ids inside the vocabulary.
  auto bad_d2t = [&](int64_t offset_of_1) {
    return WriteCheckpoint(config, [&](std::vector<StTensor>* t) {
      for (StTensor& x : *t) {
        if (x.name == "d2t") std::memcpy(&x.bytes[8], &offset_of_1, 8);
      }
    });
  };
  auto dup = DsparkDrafter::Load(bad_d2t(-1), target_);  // draft 1 -> target 0 = draft 0's
  EXPECT_EQ(dup.status().code(), absl::StatusCode::kInvalidArgument);
  auto out = DsparkDrafter::Load(bad_d2t(300), target_);
  EXPECT_EQ(out.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(out.status().message(), "d2t")) << out.status();
}

TEST_F(DsparkDrafterTest, MarkovRankZeroHasNoMarkovHead) {
  json config = dspark::testing::TinyDrafterConfig({});
  config["markov_rank"] = 0;
  auto d = DsparkDrafter::Load(WriteCheckpoint(config), target_);
  ASSERT_TRUE(d.ok()) << d.status();
  OpenWithContext(d->get(), 1, 2, 1);
  std::vector<DraftBlock> blocks;
  ASSERT_TRUE((*d)->Draft({{.session = 1, .last_token = 4, .max_tokens = kB}}, &blocks).ok());
  EXPECT_EQ(blocks[0].tokens.size(), kB);
}

}  // namespace
}  // namespace dspark::drafter
