#include "draft_worker/service/spec_codec.h"

#include <bit>
#include <cstring>
#include <filesystem>

#include "absl/strings/str_cat.h"

namespace dspark::draft_service {

namespace v1 = dspark::internal::v1;
namespace fs = std::filesystem;

static_assert(std::endian::native == std::endian::little,
              "the SpecStream carries little-endian floats; add a byte swap for this host");

std::string TargetIdentity(const engine::Model& target) {
  const fs::path path(target.file().path());
  std::error_code ec;
  uintmax_t bytes = 0;
  if (fs::is_directory(path, ec)) {
    for (const fs::directory_entry& entry : fs::directory_iterator(path, ec)) {
      std::error_code size_error;
      if (entry.is_regular_file(size_error)) bytes += entry.file_size(size_error);
    }
  } else {
    bytes = fs::file_size(path, ec);
    if (ec) bytes = 0;
  }
  // A trailing slash would make filename() empty.
  const std::string name =
      path.has_filename() ? path.filename().string() : path.parent_path().filename().string();
  return absl::StrCat(name, ":", bytes);
}

std::string FeaturesToBytes(absl::Span<const float> features) {
  std::string bytes(features.size() * sizeof(float), '\0');
  if (!features.empty()) std::memcpy(bytes.data(), features.data(), bytes.size());
  return bytes;
}

absl::StatusOr<std::vector<float>> FeaturesFromBytes(const std::string& bytes) {
  if (bytes.size() % sizeof(float) != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("feature bytes ", bytes.size(), " are not a whole number of f32 values"));
  }
  std::vector<float> features(bytes.size() / sizeof(float));
  if (!bytes.empty()) std::memcpy(features.data(), bytes.data(), bytes.size());
  return features;
}

void ToProto(const engine::SamplingParams& params, v1::Sampling* out) {
  out->set_temperature(params.temperature);
  out->set_top_k(params.top_k);
  out->set_top_p(params.top_p);
  out->set_min_p(params.min_p);
  out->set_seed(params.seed);
}

engine::SamplingParams FromProto(const v1::Sampling& wire) {
  return {.temperature = wire.temperature(),
          .top_k = wire.top_k(),
          .top_p = wire.top_p(),
          .min_p = wire.min_p(),
          .seed = wire.seed()};
}

void ToProto(const drafter::DraftRequest& request, v1::DraftRequest* out) {
  out->set_session(request.session);
  out->set_last_token(request.last_token);
  out->set_max_tokens(request.max_tokens);
  ToProto(request.sampling, out->mutable_sampling());
  out->set_draw_counter(request.draw_counter);
}

drafter::DraftRequest FromProto(const v1::DraftRequest& wire) {
  // An unset Sampling message means the defaults (greedy); a set one is
  // taken as is (proto3 reads its unset top_p as 0, which validation rejects).
  return {.session = wire.session(),
          .last_token = wire.last_token(),
          .max_tokens = wire.max_tokens(),
          .sampling = wire.has_sampling() ? FromProto(wire.sampling()) : engine::SamplingParams{},
          .draw_counter = wire.draw_counter()};
}

void ToProto(const drafter::DraftBlock& block, v1::DraftBlock* out) {
  out->mutable_tokens()->Add(block.tokens.begin(), block.tokens.end());
  for (const drafter::SparseDist& dist : block.q) {
    v1::SparseDist* q = out->add_q();
    q->mutable_ids()->Reserve(static_cast<int>(dist.size()));
    q->mutable_probs()->Reserve(static_cast<int>(dist.size()));
    for (const auto& [id, p] : dist) {
      q->add_ids(id);
      q->add_probs(p);
    }
  }
  out->mutable_confidence()->Add(block.confidence.begin(), block.confidence.end());
}

absl::StatusOr<drafter::DraftBlock> FromProto(const v1::DraftBlock& wire) {
  const int n = wire.tokens_size();
  if (wire.q_size() != n || wire.confidence_size() != n) {
    return absl::InvalidArgumentError(absl::StrCat("draft block with ", n, " tokens, ",
                                                   wire.q_size(), " distributions and ",
                                                   wire.confidence_size(), " confidences"));
  }
  drafter::DraftBlock block;
  block.tokens.assign(wire.tokens().begin(), wire.tokens().end());
  block.confidence.assign(wire.confidence().begin(), wire.confidence().end());
  block.q.resize(n);
  for (int i = 0; i < n; ++i) {
    const v1::SparseDist& q = wire.q(i);
    if (q.ids_size() != q.probs_size()) {
      return absl::InvalidArgumentError(absl::StrCat("draft distribution ", i, " has ",
                                                     q.ids_size(), " ids and ", q.probs_size(),
                                                     " probabilities"));
    }
    block.q[i].reserve(q.ids_size());
    for (int k = 0; k < q.ids_size(); ++k) block.q[i].emplace_back(q.ids(k), q.probs(k));
  }
  return block;
}

}  // namespace dspark::draft_service
