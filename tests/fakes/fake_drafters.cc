#include "tests/fakes/fake_drafters.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/base/logging.h"
#include "common/engine/sampling/sampler.h"
#include "draft_worker/drafter/draft_requests.h"

namespace dspark::testing {

using drafter::DraftBlock;
using drafter::DraftRequest;
using drafter::SessionId;

namespace {

// The checks every drafter makes on Draft's input.
absl::Status CheckRequests(const absl::flat_hash_set<SessionId>& sessions, int max_block,
                           absl::Span<const DraftRequest> requests) {
  return drafter::CheckDraftRequests(requests, max_block, /*vocab=*/0,
                                     [&sessions](SessionId id) { return sessions.contains(id); });
}

absl::Status OpenIn(absl::flat_hash_set<SessionId>& sessions, SessionId session) {
  if (!sessions.insert(session).second) {
    return absl::AlreadyExistsError(absl::StrCat("session ", session, " is already open"));
  }
  return absl::OkStatus();
}

absl::Status CheckExtend(const absl::flat_hash_set<SessionId>& sessions, SessionId session,
                         absl::Span<const float> features) {
  if (!sessions.contains(session)) {
    return absl::InvalidArgumentError(absl::StrCat("unknown session ", session));
  }
  if (!features.empty()) return absl::InvalidArgumentError("this fake reads no features");
  return absl::OkStatus();
}

}  // namespace

RandomFakeDrafter::RandomFakeDrafter(int vocab, int max_block, uint64_t seed)
    : vocab_(vocab), max_block_(max_block), seed_(seed) {
  DSPARK_CHECK(vocab > 0 && max_block > 0);
}

absl::Status RandomFakeDrafter::Open(SessionId session) { return OpenIn(sessions_, session); }

absl::Status RandomFakeDrafter::Extend(SessionId session, absl::Span<const int32_t> tokens,
                                       absl::Span<const float> features) {
  return CheckExtend(sessions_, session, features);
}

absl::Status RandomFakeDrafter::Draft(absl::Span<const DraftRequest> requests,
                                      std::vector<DraftBlock>* blocks) {
  if (absl::Status st = CheckRequests(sessions_, max_block_, requests); !st.ok()) return st;
  blocks->assign(requests.size(), DraftBlock{});
  for (size_t b = 0; b < requests.size(); ++b) {
    const DraftRequest& r = requests[b];
    // The fake's own stream for this session; 32 draws per drafted position.
    const uint64_t stream =
        seed_ ^ (static_cast<uint64_t>(r.session) * 0x9E3779B97F4A7C15ull + 0x5EED);
    DraftBlock& out = (*blocks)[b];
    for (int i = 0; i < r.max_tokens; ++i) {
      uint64_t draw = (r.draw_counter + i) * 32;
      auto next = [&] { return engine::UniformDraw(stream, draw++); };
      auto random_token = [&] {
        return std::min(vocab_ - 1, static_cast<int32_t>(next() * vocab_));
      };
      drafter::SparseDist q;
      int32_t token;
      if (r.sampling.temperature <= 0) {
        token = random_token();
        q = {{token, 1.0f}};
      } else {
        const int support = std::min(vocab_, 1 + static_cast<int>(next() * 8));
        double total = 0;
        std::vector<std::pair<int32_t, double>> weights;
        while (static_cast<int>(weights.size()) < support) {
          const int32_t t = random_token();
          if (std::any_of(weights.begin(), weights.end(), [&](auto& w) { return w.first == t; })) {
            continue;
          }
          weights.emplace_back(t, 0.05 + next());
          total += weights.back().second;
        }
        for (auto& [t, w] : weights) q.emplace_back(t, static_cast<float>(w / total));
        const double u =
            engine::UniformDraw(drafter::DraftSeed(r.sampling.seed), r.draw_counter + i);
        double acc = 0;
        token = q.back().first;  // the last entry absorbs rounding
        for (const auto& [t, p] : q) {
          acc += p;
          if (u < acc) {
            token = t;
            break;
          }
        }
      }
      out.tokens.push_back(token);
      out.q.push_back(std::move(q));
      out.confidence.push_back(static_cast<float>(0.01 + 0.98 * next()));
    }
  }
  return absl::OkStatus();
}

AlwaysWrongFakeDrafter::AlwaysWrongFakeDrafter(int32_t token, int max_block)
    : token_(token), max_block_(max_block) {
  DSPARK_CHECK(max_block > 0);
}

absl::Status AlwaysWrongFakeDrafter::Open(SessionId session) { return OpenIn(sessions_, session); }

absl::Status AlwaysWrongFakeDrafter::Extend(SessionId session, absl::Span<const int32_t> tokens,
                                            absl::Span<const float> features) {
  return CheckExtend(sessions_, session, features);
}

absl::Status AlwaysWrongFakeDrafter::Draft(absl::Span<const DraftRequest> requests,
                                           std::vector<DraftBlock>* blocks) {
  if (absl::Status st = CheckRequests(sessions_, max_block_, requests); !st.ok()) return st;
  blocks->assign(requests.size(), DraftBlock{});
  for (size_t b = 0; b < requests.size(); ++b) {
    DraftBlock& out = (*blocks)[b];
    out.tokens.assign(requests[b].max_tokens, token_);
    out.q.assign(requests[b].max_tokens, drafter::SparseDist{{token_, 1.0f}});
    out.confidence.assign(requests[b].max_tokens, 0.9f);
  }
  return absl::OkStatus();
}

OracleFakeDrafter::OracleFakeDrafter(engine::Model* target, int max_block, int64_t kv_tokens) {
  auto inner = drafter::DraftModelDrafter::CreateShared(
      target, target->config().vocab_size,
      {.max_block = max_block, .kv = {.max_tokens = kv_tokens}});
  DSPARK_CHECK(inner.ok()) << inner.status();
  inner_ = std::move(*inner);
}

absl::Status OracleFakeDrafter::Draft(absl::Span<const DraftRequest> requests,
                                      std::vector<DraftBlock>* blocks) {
  if (absl::Status st = inner_->Draft(requests, blocks); !st.ok()) return st;
  // The target's own argmax is certain to be accepted.
  for (size_t b = 0; b < requests.size(); ++b) {
    if (requests[b].sampling.temperature <= 0) {
      std::fill((*blocks)[b].confidence.begin(), (*blocks)[b].confidence.end(), 1.0f);
    }
  }
  return absl::OkStatus();
}

}  // namespace dspark::testing
