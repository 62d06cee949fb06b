// The n-gram (prompt lookup) drafter: proposes the tokens that followed the
// most recent earlier occurrence of the sequence's last n tokens, trying the
// longest n first. No model: it pays off on text that repeats its context
// (code edits, quoting, extraction, loops). Not thread-safe (see Drafter).
//
//   DSPARK_ASSIGN_OR_RETURN(auto drafter, NgramDrafter::Create({.max_block = 7}));
//   drafter->Open(7);
//   drafter->Extend(7, prompt_without_last, {});
//   drafter->Draft({{.session = 7, .last_token = t, .max_tokens = 5}}, &blocks);
//
// Drafts are point masses: q is one-hot on each proposed token, for greedy and
// sampled requests alike (exact for rejection sampling: a token is accepted
// with probability p(token) and a rejection resamples from p minus that token).
//
// Confidence is learned, not predicted: for each match length n and block
// position i the drafter keeps a running estimate of P(position i accepted |
// positions < i accepted), shared by all sessions, starting from a prior.
// It learns from the next Extend (how many drafts came back committed) and
// from the token that follows them (the target's correction or bonus, which
// arrives as the next request's last_token): the Drafter interface does not
// say how many drafts the verifier actually checked, but with a one-hot q the
// event "the next token equals the first uncommitted draft" has exactly the
// acceptance probability of that draft whether it was checked or not, so it
// is an unbiased observation either way.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "draft_worker/drafter/drafter.h"

namespace dspark::drafter {

struct NgramDrafterOptions {
  // Shortest suffix that may match. Default 1.
  int min_ngram = 1;
  // Longest suffix tried first. Default 3.
  int max_ngram = 3;
  // Largest block. Default 7.
  int max_block = 7;
  // Confidence before any observation. Default 0.5.
  double confidence_prior = 0.5;
  // Weight of the prior, in observations. Default 2.
  double prior_weight = 2.0;
  // Observations per (n, position) after which old ones count half, so the
  // estimate follows the workload as it changes. Default 1024.
  double window = 1024;
};

class NgramDrafter final : public Drafter {
 public:
  // InvalidArgument unless 1 <= min_ngram <= max_ngram, max_block >= 1,
  // confidence_prior in (0, 1), prior_weight > 0 and window >= 1.
  static absl::StatusOr<std::unique_ptr<NgramDrafter>> Create(const NgramDrafterOptions& options);

  std::string name() const override { return "ngram"; }
  int max_block() const override { return options_.max_block; }

  absl::Status Open(SessionId session) override;
  absl::Status Extend(SessionId session, absl::Span<const int32_t> tokens,
                      absl::Span<const float> features) override;
  absl::Status Draft(absl::Span<const DraftRequest> requests,
                     std::vector<DraftBlock>* blocks) override;
  // Re-indexes the parent's first prefix_len tokens for the child.
  absl::Status Fork(SessionId child, SessionId parent, int64_t prefix_len) override;
  void Close(SessionId session) override;

  // Current estimate of P(position `pos` accepted | earlier ones accepted) for
  // a draft that matched `n` tokens (for tests and metrics); `n` in
  // [min_ngram, max_ngram], `pos` in [0, max_block).
  double Confidence(int n, int pos) const;

 private:
  // A block awaiting its verdict.
  struct OpenBlock {
    int32_t last_token = 0;       // the request's last_token
    std::vector<int32_t> tokens;  // [k] drafted ids
    int n = 0;                    // match length
    int accepted = -1;            // drafts committed by the next Extend; -1 = none yet
  };
  struct Session {
    std::vector<int32_t> history;  // [len] committed tokens
    // index[n - min_ngram]: hash of an n-gram -> position just past its
    // latest occurrence in history (the token that followed it there).
    std::vector<absl::flat_hash_map<uint64_t, int32_t>> index;
    bool has_block = false;
    OpenBlock block;
  };
  struct PositionStats {
    double attempts = 0;
    double accepted = 0;
  };

  explicit NgramDrafter(const NgramDrafterOptions& options);
  // Drafts for one request from `s` into *block; returns the match length (0
  // when nothing matched and the block is empty).
  int Lookup(const Session& s, const DraftRequest& request, DraftBlock* block) const;
  // Records the verdict on `b`: its first `accepted` drafts were committed;
  // `next` (when `has_next`) is the committed token that followed them.
  void Learn(const OpenBlock& b, int accepted, bool has_next, int32_t next);

  NgramDrafterOptions options_;
  absl::flat_hash_map<SessionId, Session> sessions_;
  // [max_ngram - min_ngram + 1][max_block]
  std::vector<std::vector<PositionStats>> stats_;
};

}  // namespace dspark::drafter
