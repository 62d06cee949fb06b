#include "draft_worker/drafter/draft_requests.h"

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"

namespace dspark::drafter {

absl::Status CheckDraftRequests(absl::Span<const DraftRequest> requests, int max_block,
                                int64_t vocab, const std::function<bool(SessionId)>& is_open) {
  absl::flat_hash_set<SessionId> seen;
  for (const DraftRequest& r : requests) {
    if (!is_open(r.session)) {
      return absl::InvalidArgumentError(absl::StrCat("unknown session ", r.session));
    }
    if (!seen.insert(r.session).second) {
      return absl::InvalidArgumentError(absl::StrCat("session ", r.session, " requested twice"));
    }
    if (r.max_tokens < 1 || r.max_tokens > max_block) {
      return absl::InvalidArgumentError(
          absl::StrCat("max_tokens ", r.max_tokens, " outside [1, ", max_block, "]"));
    }
    if (vocab > 0 && (r.last_token < 0 || r.last_token >= vocab)) {
      return absl::InvalidArgumentError(
          absl::StrCat("last_token ", r.last_token, " outside the vocabulary [0, ", vocab, ")"));
    }
    absl::Status st = engine::ValidateSamplingParams(r.sampling);
    if (!st.ok()) return st;
  }
  return absl::OkStatus();
}

}  // namespace dspark::drafter
