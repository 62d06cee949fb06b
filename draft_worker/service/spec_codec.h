// The SpecStream wire format (proto/dspark/internal/v1/spec.proto) in one
// place, for both ends of the link: drafter requests and blocks to and from
// their protos, context features to and from raw little-endian f32 bytes,
// and the target identity a Hello carries. Stateless: thread-safe.
//
//   internal::v1::DraftRequest wire;
//   ToProto(request, &wire);                      // verify worker
//   drafter::DraftRequest back = FromProto(wire);  // draft worker
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "common/engine/model/model.h"
#include "draft_worker/drafter/drafter.h"
#include "dspark/internal/v1/spec.pb.h"

namespace dspark::draft_service {

// What Hello.target_model says about `target`: the model's file (or Hugging
// Face directory) name and its size in bytes, "name:bytes". Paths may differ
// between machines; the name and the size of the same weights do not.
std::string TargetIdentity(const engine::Model& target);

// [n] floats -> 4n bytes, little-endian.
std::string FeaturesToBytes(absl::Span<const float> features);
// 4n bytes -> [n] floats; InvalidArgument when the size is not a multiple of 4.
absl::StatusOr<std::vector<float>> FeaturesFromBytes(const std::string& bytes);

void ToProto(const engine::SamplingParams& params, dspark::internal::v1::Sampling* out);
engine::SamplingParams FromProto(const dspark::internal::v1::Sampling& wire);

void ToProto(const drafter::DraftRequest& request, dspark::internal::v1::DraftRequest* out);
drafter::DraftRequest FromProto(const dspark::internal::v1::DraftRequest& wire);

void ToProto(const drafter::DraftBlock& block, dspark::internal::v1::DraftBlock* out);
// InvalidArgument when the block's fields disagree in length or a
// distribution's ids and probs do (the other side is not trusted).
absl::StatusOr<drafter::DraftBlock> FromProto(const dspark::internal::v1::DraftBlock& wire);

}  // namespace dspark::draft_service
