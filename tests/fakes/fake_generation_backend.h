// A deterministic fake of router::GenerationBackend for testing front ends
// (the OpenAI HTTP server, the dspark.v1 gRPC service) without workers.
// Thread-safe: every method may be called from any thread.
//
// It "tokenizes" by bytes (token id = byte value; chat turns render as
// "role: content\n" lines followed by "assistant: ") and "generates" by
// repeating the prompt's tokens, one chunk per token, so every output is
// predictable from its input:
//
//   FakeGenerationBackend fake;
//   fake.ExpectedText("abc", 5);        // "abcab"
//   auto handle = fake.Start(request, on_chunk, on_done);
//   fake.SetHoldAfterChunks(1);          // later requests pause after 1 chunk
//   fake.WaitForCancelled(1, absl::Now() + absl::Seconds(10));
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "router/frontend/generation_backend.h"

namespace dspark::testing {

class FakeGenerationBackend final : public router::GenerationBackend {
 public:
  // The models it serves; the first is the default. Every output token counts
  // as drafted and verified, and every second one as accepted, one target step
  // per chunk, so speculation stats are predictable too.
  explicit FakeGenerationBackend(std::vector<std::string> models = {"fake-model"});
  ~FakeGenerationBackend() override;  // joins the generation threads

  // Checks the request like a real backend would (unknown model: NotFound;
  // empty prompt, temperature < 0, top_p outside (0, 1], max_tokens above
  // kMaxTokens, more than 16 stop strings or one outside 1..256 bytes:
  // InvalidArgument), then generates on a thread of its own.
  absl::StatusOr<std::unique_ptr<router::GenerationHandle>> Start(router::GenerationRequest request,
                                                                  ChunkFn on_chunk,
                                                                  DoneFn on_done) override;
  absl::StatusOr<std::vector<int32_t>> Tokenize(
      const std::string& model,
      const std::variant<std::string, std::vector<router::ChatTurn>>& input) override;
  absl::StatusOr<std::string> Detokenize(const std::string& model,
                                         const std::vector<int32_t>& ids) override;
  std::vector<router::ModelCard> ListModels() override;
  bool Healthy() override;

  static constexpr int kDefaultMaxTokens = 128;
  static constexpr int kMaxTokens = 4096;
  static constexpr int kContextLength = 8192;

  // What a request with this prompt text and max_tokens generates (no stop
  // strings, no natural end).
  static std::string ExpectedText(const std::string& prompt, int max_tokens);
  // The text a chat renders to (what the fake then repeats).
  static std::string RenderChat(const std::vector<router::ChatTurn>& turns);

  // --- Test controls ---
  void SetHealthy(bool healthy);
  // Start fails with these, first in first out, before any validation.
  void FailNextStart(absl::Status status);
  // After this many chunks, later-started generations end with `status`
  // instead of finishing (-1: never).
  void FailAfterChunks(int chunks, absl::Status status);
  // After this many chunks, later-started generations pause until Release()
  // or Cancel() (-1: never pause).
  void SetHoldAfterChunks(int chunks);
  // Lets every paused generation go on.
  void Release();
  // Ends generations with finish "stop" after this many tokens (0: only
  // max_tokens or a stop string ends them).
  void SetNaturalLength(int tokens);

  // Condition waits with a deadline; false when the deadline passed first.
  bool WaitForCancelled(int count, absl::Time deadline);
  bool WaitForHeld(int count, absl::Time deadline);
  bool WaitForIdle(absl::Time deadline);  // no generation running
  // Front ends must not leak handles: waits until this many were destroyed.
  bool WaitForHandlesDestroyed(int count, absl::Time deadline);

  int started() const;
  int cancelled() const;  // generations that ended because of Cancel
  int active() const;     // generations whose on_done has not run
  router::GenerationRequest last_request() const;

 private:
  struct Generation;
  class Handle;

  void Run(std::shared_ptr<Generation> generation);
  absl::Status Validate(const router::GenerationRequest& request) const;

  const std::vector<std::string> models_;
  mutable absl::Mutex mu_;
  bool healthy_ ABSL_GUARDED_BY(mu_) = true;
  std::deque<absl::Status> start_failures_ ABSL_GUARDED_BY(mu_);
  int fail_after_chunks_ ABSL_GUARDED_BY(mu_) = -1;
  absl::Status fail_status_ ABSL_GUARDED_BY(mu_);
  int hold_after_chunks_ ABSL_GUARDED_BY(mu_) = -1;
  int released_ ABSL_GUARDED_BY(mu_) = 0;  // Release() calls so far
  int natural_length_ ABSL_GUARDED_BY(mu_) = 0;
  int started_ ABSL_GUARDED_BY(mu_) = 0;
  int cancelled_ ABSL_GUARDED_BY(mu_) = 0;
  int active_ ABSL_GUARDED_BY(mu_) = 0;
  int held_ ABSL_GUARDED_BY(mu_) = 0;  // generations paused right now
  int handles_destroyed_ ABSL_GUARDED_BY(mu_) = 0;
  router::GenerationRequest last_request_ ABSL_GUARDED_BY(mu_);
  std::vector<std::thread> threads_ ABSL_GUARDED_BY(mu_);
};

}  // namespace dspark::testing
