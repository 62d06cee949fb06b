// Batch invariance on the real catalogue models: a sequence's logits and KV
// entries are bit-identical whether its tokens are decoded one at a time, fed
// in verify blocks of every length 1-16, or batched with 1-15 other sequences
// of mixed lengths. This is what makes speculative output exactly equal to
// plain decoding. Skips a model that has not been pulled.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cstring>
#include <numeric>
#include <random>

#include "common/engine/model/model.h"
#include "common/engine/model_store/model_store.h"

namespace dspark::engine {
namespace {

struct Trace {
  std::vector<float> logits;  // [16, vocab]: logits after each continuation token
  std::vector<float> kv;      // every layer's K and V at every position
};

std::vector<int32_t> Ids(int n, int vocab, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<int32_t> ids(n);
  for (int32_t& id : ids) id = static_cast<int32_t>(rng() % vocab);
  return ids;
}

void AppendKv(const Model& model, const KvCache& cache, SeqId seq, std::vector<float>* out) {
  const ModelConfig& c = model.config();
  const int64_t n = static_cast<int64_t>(c.num_kv_heads) * c.head_dim;
  for (int layer = 0; layer < c.num_layers; ++layer) {
    for (int64_t p = 0; p < cache.Length(seq); ++p) {
      out->insert(out->end(), cache.Key(layer, seq, p), cache.Key(layer, seq, p) + n);
      out->insert(out->end(), cache.Value(layer, seq, p), cache.Value(layer, seq, p) + n);
    }
  }
}

class BatchInvarianceTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    const std::string path = ModelPath(ModelCacheDir(), GetParam());
    if (::access(path.c_str(), R_OK) != 0) {
      GTEST_SKIP() << path << " not found: run `dspark pull " << GetParam() << "`";
    }
    auto model = Model::Load(path, {.threads = 2});
    ASSERT_TRUE(model.ok()) << model.status();
    model_ = std::move(*model);
    vocab_ = model_->config().vocab_size;
    prompt_ = Ids(19, vocab_, 1);
    cont_ = Ids(16, vocab_, 2);
  }

  // Prefill the prompt, then feed the continuation in blocks of `block`
  // tokens with logits for every token; `others` extra sequences of mixed
  // lengths share every forward.
  Trace Run(int block, int others) {
    auto cache = model_->NewKvCache({.max_tokens = 4096});
    std::mt19937 rng(1234 + block * 31 + others);
    std::vector<SeqId> other_seqs;
    for (int i = 0; i < others; ++i) other_seqs.push_back(cache->CreateSequence());
    SeqId seq = cache->CreateSequence();
    ForwardOutput out;
    auto step = [&](std::vector<int32_t> tokens, bool want_logits) {
      ForwardBatch batch;
      // The sequence under test sits at a varying place in the batch.
      const size_t at = others == 0 ? 0 : rng() % (others + 1);
      for (size_t i = 0; i <= other_seqs.size(); ++i) {
        if (i == at) {
          SequenceInput in{.seq = seq, .tokens = tokens};
          if (want_logits) {
            in.logit_rows.resize(tokens.size());
            std::iota(in.logit_rows.begin(), in.logit_rows.end(), 0);
          }
          batch.seqs.push_back(std::move(in));
        }
        if (i < other_seqs.size()) {
          const int n = 1 + static_cast<int>(rng() % 6);  // decode, verify block or prefill chunk
          batch.seqs.push_back({.seq = other_seqs[i], .tokens = Ids(n, vocab_, rng()), .logit_rows = {n - 1}});
        }
      }
      EXPECT_TRUE(model_->Forward(batch, cache.get(), &out).ok());
      // Our rows come after the logit rows of the sequences placed before it.
      std::vector<float> mine;
      if (want_logits) {
        const size_t first = at;  // each earlier sequence contributes exactly one row
        mine.assign(out.logits.begin() + first * vocab_,
                    out.logits.begin() + (first + tokens.size()) * vocab_);
      }
      return mine;
    };
    step(prompt_, false);
    Trace trace;
    for (size_t i = 0; i < cont_.size(); i += block) {
      std::vector<int32_t> chunk(cont_.begin() + i,
                                 cont_.begin() + std::min(cont_.size(), i + block));
      auto l = step(chunk, true);
      trace.logits.insert(trace.logits.end(), l.begin(), l.end());
    }
    AppendKv(*model_, *cache, seq, &trace.kv);
    return trace;
  }

  std::unique_ptr<Model> model_;
  int vocab_ = 0;
  std::vector<int32_t> prompt_, cont_;
};

bool SameBits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

TEST_P(BatchInvarianceTest, VerifyBlocksOfEveryLengthMatchDecodingBitForBit) {
  const Trace ref = Run(/*block=*/1, /*others=*/0);
  ASSERT_EQ(ref.logits.size(), cont_.size() * vocab_);
  for (int block = 2; block <= 16; ++block) {
    const Trace t = Run(block, 0);
    EXPECT_TRUE(SameBits(ref.logits, t.logits)) << "logits differ with verify blocks of " << block;
    EXPECT_TRUE(SameBits(ref.kv, t.kv)) << "KV differs with verify blocks of " << block;
  }
}

TEST_P(BatchInvarianceTest, BatchingWithOtherSequencesChangesNoBit) {
  const Trace ref = Run(1, 0);
  for (int others : {1, 2, 3, 5, 8, 11, 15}) {
    for (int block : {1, 4}) {
      const Trace t = Run(block, others);
      EXPECT_TRUE(SameBits(ref.logits, t.logits))
          << "logits differ with " << others << " other sequences, blocks of " << block;
      EXPECT_TRUE(SameBits(ref.kv, t.kv)) << "KV differs with " << others << " other sequences";
    }
  }
}

INSTANTIATE_TEST_SUITE_P(CatalogueModels, BatchInvarianceTest,
                         ::testing::Values("smollm2-135m-instruct", "qwen2.5-coder-0.5b-instruct",
                                           "gemma-3-270m"),
                         [](const auto& info) {
                           std::string s = info.param;
                           for (char& ch : s) if (!isalnum(ch)) ch = '_';
                           return s;
                         });

}  // namespace
}  // namespace dspark::engine
