// FeatureRecorder: a Drafter that never drafts and instead records, per
// session, every committed token with the target's hidden states at the
// chosen layers (what `dspark distill` writes as drafter-training data).
// The speculative engine hands a drafter exactly these through Extend, from
// the same forward that generates, so recording costs no extra target pass.
// Not thread-safe (one caller, as every Drafter).
//
//   FeatureRecorder recorder({1, 15, 28}, /*dim=*/576);
//   SpecEngine engine(&model, &cache, &recorder, nullptr, nullptr, options);
//   ... after the request's finishing Step (the engine has Closed it):
//   absl::StatusOr<FeatureRecorder::Recording> r = recorder.Take(id);
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "draft_worker/drafter/drafter.h"

namespace dspark::cli {

class FeatureRecorder : public drafter::Drafter {
 public:
  struct Recording {
    std::vector<int32_t> tokens;     // [n] committed tokens fed to the target
    std::vector<uint16_t> features;  // [n, layers * dim] IEEE half bits
  };

  // `layers`: target layers to capture (ForwardBatch::capture_layers);
  // `dim`: the target hidden size.
  FeatureRecorder(std::vector<int> layers, int dim);

  std::string name() const override { return "feature-recorder"; }
  // 0: the engine never asks for drafts, so every step decodes one token.
  int max_block() const override { return 0; }
  std::vector<int> context_layers() const override { return layers_; }

  absl::Status Open(drafter::SessionId session) override;
  absl::Status Extend(drafter::SessionId session, absl::Span<const int32_t> tokens,
                      absl::Span<const float> features) override;
  // Answers one empty block per request (never drafts).
  absl::Status Draft(absl::Span<const drafter::DraftRequest> requests,
                     std::vector<drafter::DraftBlock>* blocks) override;
  // Copies the parent's first `prefix_len` tokens and features (the engine
  // shares prompt prefixes between running requests).
  absl::Status Fork(drafter::SessionId child, drafter::SessionId parent,
                    int64_t prefix_len) override;
  // Keeps the recording for Take.
  void Close(drafter::SessionId session) override;

  // The recording of a closed session, removed from the recorder; NotFound
  // for an unknown or still open session.
  absl::StatusOr<Recording> Take(drafter::SessionId session);

  // Floats per token row: layers * dim.
  size_t row() const { return row_; }

 private:
  std::vector<int> layers_;
  size_t row_;
  std::map<drafter::SessionId, Recording> open_;
  std::map<drafter::SessionId, Recording> closed_;
};

// IEEE 754 binary16 bits of `f`, round to nearest even (inf/NaN kept).
uint16_t FloatToHalfBits(float f);

}  // namespace dspark::cli
