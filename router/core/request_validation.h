// Turns a front end's GenerationRequest into the SessionRequest a verify
// worker runs: every rule of issue 7 item 8 checked in one place (each
// failure an InvalidArgument naming the field and the reason; an unknown
// model NotFound), the prompt tokenized, the seed and defaults resolved, the
// model's end-of-sequence ids added as stop ids. Stateless and thread-safe.
//
//   DSPARK_ASSIGN_OR_RETURN(ValidatedRequest v,
//                           ValidateRequest(request, model, limits, random_seed));
#pragma once

#include <cstdint>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "dspark/internal/v1/verify.pb.h"
#include "router/core/served_model.h"
#include "router/frontend/generation_backend.h"

namespace dspark::router {

struct ValidationLimits {
  // Largest max_tokens a request may ask for. Default 4096 (--max_tokens_limit).
  int max_tokens_limit = 4096;
  // max_tokens when the request gives 0. Default 128 (the API's documented
  // default), capped by max_tokens_limit.
  int default_max_tokens = 128;
  // Stop strings per request and bytes per string. Defaults 16 and 256 (the API's).
  int max_stop_strings = 16;
  int max_stop_bytes = 256;
  // Stop token ids per request. Default 64.
  int max_stop_token_ids = 64;
};

struct ValidatedRequest {
  // Ready to send but for draft_worker (placement fills it). max_tokens is
  // also capped so that prompt + completion fit the context.
  dspark::internal::v1::SessionRequest session;
  absl::Time deadline = absl::InfiniteFuture();
};

// `random_seed` is used when the request has none.
absl::StatusOr<ValidatedRequest> ValidateRequest(const GenerationRequest& request,
                                                 const ServedModel& model,
                                                 const ValidationLimits& limits,
                                                 uint64_t random_seed);

// The prompt forms Tokenize accepts, checked like Start checks them (model
// id, UTF-8, chat roles); no length limit.
absl::StatusOr<std::vector<int32_t>> TokenizeInput(
    const std::variant<std::string, std::vector<int32_t>, std::vector<ChatTurn>>& input,
    const ServedModel& model);

// OK when `model_id` is empty or names `model`; NotFound otherwise.
absl::Status CheckModelId(const std::string& model_id, const ServedModel& model);

}  // namespace dspark::router
