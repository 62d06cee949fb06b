#include "tests/fakes/fake_generation_backend.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"

namespace dspark::testing {

using router::ChatTurn;
using router::Finish;
using router::GenerationChunk;
using router::GenerationRequest;

struct FakeGenerationBackend::Generation {
  GenerationRequest request;
  ChunkFn on_chunk;
  DoneFn on_done;
  std::vector<int32_t> prompt;
  // Snapshots of the controls at Start, so a test can change them for later
  // requests without racing the running ones.
  int hold_after_chunks = -1;
  int release_epoch = 0;
  int fail_after_chunks = -1;
  absl::Status fail_status;
  int natural_length = 0;
  bool cancel_requested = false;  // guarded by the fake's mu_
};

class FakeGenerationBackend::Handle final : public router::GenerationHandle {
 public:
  Handle(FakeGenerationBackend* fake, std::shared_ptr<Generation> generation)
      : fake_(fake), generation_(std::move(generation)) {}
  ~Handle() override {
    absl::MutexLock lock(&fake_->mu_);
    ++fake_->handles_destroyed_;
  }
  void Cancel() override {
    absl::MutexLock lock(&fake_->mu_);
    generation_->cancel_requested = true;
  }

 private:
  FakeGenerationBackend* const fake_;
  const std::shared_ptr<Generation> generation_;
};

namespace {

std::vector<int32_t> Bytes(const std::string& text) {
  std::vector<int32_t> ids;
  for (unsigned char c : text) ids.push_back(c);
  return ids;
}

std::string TokenText(int32_t id) {
  if (id >= 0 && id < 256) return std::string(1, static_cast<char>(id));
  return absl::StrCat("<", id, ">");
}

// Bytes at the end of `text` that could still grow into a stop string: held
// back so no chunk ever carries part of a stop string.
size_t Holdback(const std::string& text, const std::vector<std::string>& stops) {
  size_t held = 0;
  for (const std::string& stop : stops) {
    for (size_t k = std::min(stop.size() - 1, text.size()); k > held; --k) {
      if (text.compare(text.size() - k, k, stop, 0, k) == 0) {
        held = k;
        break;
      }
    }
  }
  return held;
}

}  // namespace

FakeGenerationBackend::FakeGenerationBackend(std::vector<std::string> models)
    : models_(std::move(models)) {}

FakeGenerationBackend::~FakeGenerationBackend() {
  std::vector<std::thread> threads;
  {
    absl::MutexLock lock(&mu_);
    // Paused generations would never end: let them go (they then run to
    // their max_tokens, which is bounded).
    ++released_;
    threads.swap(threads_);
  }
  for (std::thread& thread : threads) thread.join();
}

std::string FakeGenerationBackend::RenderChat(const std::vector<ChatTurn>& turns) {
  std::string text;
  for (const ChatTurn& turn : turns) absl::StrAppend(&text, turn.role, ": ", turn.content, "\n");
  return text + "assistant: ";
}

std::string FakeGenerationBackend::ExpectedText(const std::string& prompt, int max_tokens) {
  std::string text;
  for (int i = 0; i < max_tokens; ++i) text += prompt[i % prompt.size()];
  return text;
}

absl::Status FakeGenerationBackend::Validate(const GenerationRequest& request) const {
  if (!request.model.empty() &&
      std::find(models_.begin(), models_.end(), request.model) == models_.end()) {
    return absl::NotFoundError(absl::StrCat("model '", request.model, "' not found"));
  }
  if (request.temperature < 0) return absl::InvalidArgumentError("temperature must be >= 0");
  if (!(request.top_p > 0 && request.top_p <= 1)) {
    return absl::InvalidArgumentError("top_p must be in (0, 1]");
  }
  if (request.top_k < 0) return absl::InvalidArgumentError("top_k must be >= 0");
  if (!(request.min_p >= 0 && request.min_p < 1)) {
    return absl::InvalidArgumentError("min_p must be in [0, 1)");
  }
  if (request.max_tokens < 0 || request.max_tokens > kMaxTokens) {
    return absl::InvalidArgumentError(absl::StrCat("max_tokens must be in [1, ", kMaxTokens, "]"));
  }
  if (request.stop.size() > 16) return absl::InvalidArgumentError("at most 16 stop strings");
  for (const std::string& stop : request.stop) {
    if (stop.empty() || stop.size() > 256) {
      return absl::InvalidArgumentError("stop strings must be 1..256 bytes");
    }
  }
  if (request.max_block < 0) return absl::InvalidArgumentError("max_block must be >= 0");
  if (!(request.min_confidence >= 0 && request.min_confidence <= 1)) {
    return absl::InvalidArgumentError("min_confidence must be in [0, 1]");
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<router::GenerationHandle>> FakeGenerationBackend::Start(
    GenerationRequest request, ChunkFn on_chunk, DoneFn on_done) {
  auto generation = std::make_shared<Generation>();
  {
    absl::MutexLock lock(&mu_);
    last_request_ = request;
    if (!start_failures_.empty()) {
      absl::Status status = start_failures_.front();
      start_failures_.pop_front();
      return status;
    }
    generation->hold_after_chunks = hold_after_chunks_;
    generation->release_epoch = released_;
    generation->fail_after_chunks = fail_after_chunks_;
    generation->fail_status = fail_status_;
    generation->natural_length = natural_length_;
  }
  if (absl::Status status = Validate(request); !status.ok()) return status;
  if (const auto* text = std::get_if<std::string>(&request.input)) {
    generation->prompt = Bytes(*text);
  } else if (const auto* ids = std::get_if<std::vector<int32_t>>(&request.input)) {
    generation->prompt = *ids;
  } else {
    generation->prompt = Bytes(RenderChat(std::get<std::vector<ChatTurn>>(request.input)));
  }
  if (generation->prompt.empty()) return absl::InvalidArgumentError("prompt is empty");
  if (generation->prompt.size() > kContextLength) {
    return absl::InvalidArgumentError("prompt is longer than the context");
  }
  generation->request = std::move(request);
  generation->on_chunk = std::move(on_chunk);
  generation->on_done = std::move(on_done);
  auto handle = std::make_unique<Handle>(this, generation);
  absl::MutexLock lock(&mu_);
  ++started_;
  ++active_;
  threads_.emplace_back([this, generation] { Run(generation); });
  return handle;
}

void FakeGenerationBackend::Run(std::shared_ptr<Generation> generation) {
  const GenerationRequest& request = generation->request;
  const std::vector<int32_t>& prompt = generation->prompt;
  const int max_tokens = request.max_tokens > 0 ? request.max_tokens : kDefaultMaxTokens;
  std::string text;  // everything generated so far
  size_t sent = 0;   // bytes of `text` already in chunks
  int chunks = 0;
  absl::Status end = absl::OkStatus();
  for (int i = 0;; ++i) {
    {
      absl::MutexLock lock(&mu_);
      if (chunks == generation->hold_after_chunks) {
        ++held_;
        auto go_on = [this, generation]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
          return generation->cancel_requested || released_ > generation->release_epoch;
        };
        mu_.Await(absl::Condition(&go_on));
        --held_;
      }
      if (generation->cancel_requested) {
        ++cancelled_;
        end = absl::CancelledError("cancelled by the client");
        break;
      }
    }
    if (chunks == generation->fail_after_chunks) {
      end = generation->fail_status;
      break;
    }
    GenerationChunk chunk;
    const int32_t token = prompt[i % prompt.size()];
    chunk.token_ids.push_back(token);
    text += TokenText(token);
    const int count = i + 1;
    size_t stop_at = std::string::npos;
    for (const std::string& stop : request.stop) stop_at = std::min(stop_at, text.find(stop));
    if (stop_at != std::string::npos) {
      chunk.finish = Finish::kStop;
      text.resize(stop_at);
    } else if (count == generation->natural_length) {
      chunk.finish = Finish::kStop;
    } else if (count == max_tokens) {
      chunk.finish = Finish::kLength;
    }
    const size_t safe =
        chunk.finish == Finish::kNone ? text.size() - Holdback(text, request.stop) : text.size();
    chunk.text = text.substr(sent, safe - sent);
    sent = safe;
    if (chunk.finish != Finish::kNone) {
      chunk.model = request.model.empty() ? models_.front() : request.model;
      chunk.prompt_tokens = static_cast<int>(prompt.size());
      chunk.completion_tokens = count;
      chunk.drafted_tokens = count;
      chunk.verified_tokens = count;
      chunk.accepted_tokens = count / 2;
      chunk.target_steps = count;
    }
    const bool last = chunk.finish != Finish::kNone;
    generation->on_chunk(std::move(chunk));
    ++chunks;
    if (last) break;
  }
  generation->on_done(end);
  absl::MutexLock lock(&mu_);
  --active_;
}

absl::StatusOr<std::vector<int32_t>> FakeGenerationBackend::Tokenize(
    const std::string& model, const std::variant<std::string, std::vector<ChatTurn>>& input) {
  if (const auto* text = std::get_if<std::string>(&input)) return Bytes(*text);
  return Bytes(RenderChat(std::get<std::vector<ChatTurn>>(input)));
}

absl::StatusOr<std::string> FakeGenerationBackend::Detokenize(const std::string& model,
                                                              const std::vector<int32_t>& ids) {
  std::string text;
  for (int32_t id : ids) text += TokenText(id);
  return text;
}

std::vector<router::ModelCard> FakeGenerationBackend::ListModels() {
  std::vector<router::ModelCard> cards;
  for (const std::string& id : models_) cards.push_back({id, kContextLength, "fake-drafter"});
  return cards;
}

bool FakeGenerationBackend::Healthy() {
  absl::MutexLock lock(&mu_);
  return healthy_;
}

void FakeGenerationBackend::SetHealthy(bool healthy) {
  absl::MutexLock lock(&mu_);
  healthy_ = healthy;
}

void FakeGenerationBackend::FailNextStart(absl::Status status) {
  absl::MutexLock lock(&mu_);
  start_failures_.push_back(std::move(status));
}

void FakeGenerationBackend::FailAfterChunks(int chunks, absl::Status status) {
  absl::MutexLock lock(&mu_);
  fail_after_chunks_ = chunks;
  fail_status_ = std::move(status);
}

void FakeGenerationBackend::SetHoldAfterChunks(int chunks) {
  absl::MutexLock lock(&mu_);
  hold_after_chunks_ = chunks;
}

void FakeGenerationBackend::Release() {
  absl::MutexLock lock(&mu_);
  ++released_;
}

void FakeGenerationBackend::SetNaturalLength(int tokens) {
  absl::MutexLock lock(&mu_);
  natural_length_ = tokens;
}

bool FakeGenerationBackend::WaitForCancelled(int count, absl::Time deadline) {
  absl::MutexLock lock(&mu_);
  auto reached = [this, count]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return cancelled_ >= count; };
  return mu_.AwaitWithDeadline(absl::Condition(&reached), deadline);
}

bool FakeGenerationBackend::WaitForHeld(int count, absl::Time deadline) {
  absl::MutexLock lock(&mu_);
  auto reached = [this, count]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return held_ >= count; };
  return mu_.AwaitWithDeadline(absl::Condition(&reached), deadline);
}

bool FakeGenerationBackend::WaitForIdle(absl::Time deadline) {
  absl::MutexLock lock(&mu_);
  auto idle = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return active_ == 0; };
  return mu_.AwaitWithDeadline(absl::Condition(&idle), deadline);
}

int FakeGenerationBackend::started() const {
  absl::MutexLock lock(&mu_);
  return started_;
}

int FakeGenerationBackend::cancelled() const {
  absl::MutexLock lock(&mu_);
  return cancelled_;
}

int FakeGenerationBackend::active() const {
  absl::MutexLock lock(&mu_);
  return active_;
}

bool FakeGenerationBackend::WaitForHandlesDestroyed(int count, absl::Time deadline) {
  absl::MutexLock lock(&mu_);
  auto reached = [this, count]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return handles_destroyed_ >= count;
  };
  return mu_.AwaitWithDeadline(absl::Condition(&reached), deadline);
}

GenerationRequest FakeGenerationBackend::last_request() const {
  absl::MutexLock lock(&mu_);
  return last_request_;
}

}  // namespace dspark::testing
