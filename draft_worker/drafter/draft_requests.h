// The input checks every Drafter makes on a Draft call, in one place so that
// all drafters reject bad requests alike. Stateless: thread-safe.
#pragma once

#include <cstdint>
#include <functional>

#include "absl/status/status.h"
#include "absl/types/span.h"
#include "draft_worker/drafter/drafter.h"

namespace dspark::drafter {

// InvalidArgument when a request names a session `is_open` rejects, names a
// session twice, asks for max_tokens outside [1, max_block], has a last_token
// outside [0, vocab) (vocab 0: not checked) or bad sampling parameters.
absl::Status CheckDraftRequests(absl::Span<const DraftRequest> requests, int max_block,
                                int64_t vocab, const std::function<bool(SessionId)>& is_open);

}  // namespace dspark::drafter
