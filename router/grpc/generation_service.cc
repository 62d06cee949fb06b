#include "router/grpc/generation_service.h"

#include <deque>
#include <memory>
#include <optional>
#include <utility>

#include "absl/synchronization/mutex.h"
#include "common/rpc/status.h"

namespace dspark::router {

namespace pb = dspark::v1;

namespace {

pb::FinishReason ToProto(Finish finish) {
  switch (finish) {
    case Finish::kLength:
      return pb::FINISH_REASON_LENGTH;
    case Finish::kStop:
      return pb::FINISH_REASON_STOP;
    case Finish::kCancelled:
      return pb::FINISH_REASON_CANCELLED;
    default:
      return pb::FINISH_REASON_UNSPECIFIED;
  }
}

// Fills the last message's totals.
template <typename Message>
void SetTotals(const GenerationChunk& chunk, Message* m) {
  m->set_finish_reason(ToProto(chunk.finish));
  m->set_model(chunk.model);
  m->mutable_usage()->set_prompt_tokens(chunk.prompt_tokens);
  m->mutable_usage()->set_completion_tokens(chunk.completion_tokens);
  m->mutable_usage()->set_total_tokens(chunk.prompt_tokens + chunk.completion_tokens);
  auto* s = m->mutable_speculation();
  s->set_drafted_tokens(chunk.drafted_tokens);
  s->set_verified_tokens(chunk.verified_tokens);
  s->set_accepted_tokens(chunk.accepted_tokens);
  s->set_target_steps(chunk.target_steps);
}

absl::Time Deadline(const grpc::CallbackServerContext* context) {
  const absl::Time d = absl::FromChrono(context->deadline());
  // No deadline arrives as a far-future time point.
  return d > absl::Now() + absl::Hours(24 * 365) ? absl::InfiniteFuture() : d;
}

// The backend's handle of one call, and whether the client cancelled before
// the handle existed. Thread-safe; Cancel may come from any gRPC thread.
class HandleSlot {
 public:
  void Set(std::shared_ptr<GenerationHandle> handle) {
    bool cancel = false;
    {
      absl::MutexLock lock(&mutex_);
      handle_ = handle;
      cancel = cancelled_;
    }
    if (cancel) handle->Cancel();
  }
  // Outside the lock: a backend may finish the call inline.
  void Cancel() {
    std::shared_ptr<GenerationHandle> handle;
    {
      absl::MutexLock lock(&mutex_);
      cancelled_ = true;
      handle = handle_;
    }
    if (handle != nullptr) handle->Cancel();
  }

 private:
  absl::Mutex mutex_;
  std::shared_ptr<GenerationHandle> handle_ ABSL_GUARDED_BY(mutex_);
  bool cancelled_ ABSL_GUARDED_BY(mutex_) = false;
};

// Validates and starts a call on the backend, its handle going to `slot`;
// the error to finish the call with when that fails.
grpc::Status StartCall(GenerationBackend* backend, grpc::CallbackServerContext* context,
                       const pb::GenerateRequest& request, GenerationBackend::ChunkFn on_chunk,
                       GenerationBackend::DoneFn on_done, HandleSlot* slot) {
  absl::StatusOr<GenerationRequest> r = FromProto(request, Deadline(context));
  if (!r.ok()) return rpc::ToGrpcStatus(r.status());
  auto started = backend->Start(*std::move(r), std::move(on_chunk), std::move(on_done));
  if (!started.ok()) return rpc::ToGrpcStatus(started.status());
  slot->Set(*std::move(started));
  return grpc::Status::OK;
}

// Generate: chunks are gathered into the response; on_done finishes.
class GenerateCall final : public grpc::ServerUnaryReactor {
 public:
  GenerateCall(GenerationBackend* backend, grpc::CallbackServerContext* context,
               const pb::GenerateRequest* request, pb::GenerateResponse* response)
      : response_(response) {
    grpc::Status st = StartCall(
        backend, context, *request, [this](GenerationChunk chunk) { OnChunk(std::move(chunk)); },
        [this](absl::Status status) { Finish(rpc::ToGrpcStatus(status)); }, &slot_);
    if (!st.ok()) Finish(st);
  }

  void OnCancel() override { slot_.Cancel(); }
  void OnDone() override { delete this; }

 private:
  // The backend never calls this concurrently with itself or after on_done.
  void OnChunk(GenerationChunk chunk) {
    response_->mutable_token_ids()->Add(chunk.token_ids.begin(), chunk.token_ids.end());
    response_->mutable_text()->append(chunk.text);
    if (chunk.finish != Finish::kNone) SetTotals(chunk, response_);
  }

  pb::GenerateResponse* response_;
  HandleSlot slot_;
};

// GenerateStream: chunks queue up and are written one at a time; the
// status goes out after the last write.
class StreamCall final : public grpc::ServerWriteReactor<pb::GenerateStreamResponse> {
 public:
  StreamCall(GenerationBackend* backend, grpc::CallbackServerContext* context,
             const pb::GenerateRequest* request) {
    grpc::Status st = StartCall(
        backend, context, *request, [this](GenerationChunk chunk) { OnChunk(std::move(chunk)); },
        [this](absl::Status status) { OnBackendDone(std::move(status)); }, &slot_);
    if (!st.ok()) Finish(st);
  }

  void OnWriteDone(bool ok) override {
    {
      absl::MutexLock lock(&mutex_);
      writing_ = false;
      if (!ok) {
        // The client is gone: nothing more is written; stop generating.
        broken_ = true;
        pending_.clear();
      }
    }
    if (!ok) slot_.Cancel();
    Advance();
  }
  void OnCancel() override { slot_.Cancel(); }
  void OnDone() override { delete this; }

 private:
  void OnChunk(GenerationChunk chunk) {
    {
      absl::MutexLock lock(&mutex_);
      if (broken_) return;
      pb::GenerateStreamResponse& m = pending_.emplace_back();
      m.mutable_token_ids()->Add(chunk.token_ids.begin(), chunk.token_ids.end());
      m.set_text_delta(std::move(chunk.text));
      if (chunk.finish != Finish::kNone) SetTotals(chunk, &m);
    }
    Advance();
  }
  void OnBackendDone(absl::Status status) {
    {
      absl::MutexLock lock(&mutex_);
      status_ = rpc::ToGrpcStatus(status);
    }
    Advance();
  }
  // Starts the next write, or finishes once everything is written. gRPC
  // calls are made outside the lock (a reaction may run inline).
  void Advance() {
    enum { kNothing, kWrite, kFinish } action = kNothing;
    grpc::Status status;
    {
      absl::MutexLock lock(&mutex_);
      if (writing_ || finished_) return;
      if (!pending_.empty()) {
        current_ = std::move(pending_.front());
        pending_.pop_front();
        writing_ = true;
        action = kWrite;
      } else if (status_.has_value()) {
        finished_ = true;
        status = *status_;
        action = kFinish;
      }
    }
    if (action == kWrite) StartWrite(&current_);
    if (action == kFinish) Finish(status);
  }

  HandleSlot slot_;
  absl::Mutex mutex_;
  bool broken_ ABSL_GUARDED_BY(mutex_) = false;
  bool writing_ ABSL_GUARDED_BY(mutex_) = false;
  bool finished_ ABSL_GUARDED_BY(mutex_) = false;
  std::deque<pb::GenerateStreamResponse> pending_ ABSL_GUARDED_BY(mutex_);
  std::optional<grpc::Status> status_ ABSL_GUARDED_BY(mutex_);
  // The message being written (gRPC reads it until OnWriteDone).
  pb::GenerateStreamResponse current_;
};

std::vector<ChatTurn> ChatFromProto(const pb::Chat& chat) {
  std::vector<ChatTurn> turns;
  for (const pb::ChatMessage& m : chat.messages()) turns.push_back({m.role(), m.content()});
  return turns;
}

}  // namespace

absl::StatusOr<GenerationRequest> FromProto(const pb::GenerateRequest& request,
                                            absl::Time deadline) {
  GenerationRequest r;
  r.model = request.model();
  switch (request.input_case()) {
    case pb::GenerateRequest::kPrompt:
      r.input = request.prompt();
      break;
    case pb::GenerateRequest::kTokenIds:
      r.input =
          std::vector<int32_t>(request.token_ids().ids().begin(), request.token_ids().ids().end());
      break;
    case pb::GenerateRequest::kChat:
      r.input = ChatFromProto(request.chat());
      break;
    default:
      return absl::InvalidArgumentError("no input: set prompt, token_ids or chat");
  }
  const pb::SamplingParams& s = request.sampling();
  r.temperature = s.temperature();
  r.top_p = s.top_p() == 0.0f ? 1.0f : s.top_p();  // 0 means unset
  r.top_k = s.top_k();
  r.min_p = s.min_p();
  r.has_seed = s.has_seed();
  r.seed = s.seed();
  const pb::StopCriteria& stop = request.stop();
  r.max_tokens = stop.max_tokens();
  r.stop.assign(stop.stop().begin(), stop.stop().end());
  r.stop_token_ids.assign(stop.stop_token_ids().begin(), stop.stop_token_ids().end());
  r.ignore_eos = stop.ignore_eos();
  const pb::SpeculationSettings& spec = request.speculation();
  r.speculation_enabled = spec.mode() != pb::SpeculationSettings::MODE_OFF;
  r.max_block = spec.max_block();
  r.min_confidence = spec.min_confidence();
  r.deadline = deadline;
  return r;
}

grpc::ServerUnaryReactor* GenerationService::Generate(grpc::CallbackServerContext* context,
                                                      const pb::GenerateRequest* request,
                                                      pb::GenerateResponse* response) {
  return new GenerateCall(backend_, context, request, response);
}

grpc::ServerWriteReactor<pb::GenerateStreamResponse>* GenerationService::GenerateStream(
    grpc::CallbackServerContext* context, const pb::GenerateRequest* request) {
  return new StreamCall(backend_, context, request);
}

grpc::ServerUnaryReactor* GenerationService::Tokenize(grpc::CallbackServerContext* context,
                                                      const pb::TokenizeRequest* request,
                                                      pb::TokenizeResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  std::variant<std::string, std::vector<ChatTurn>> input;
  switch (request->input_case()) {
    case pb::TokenizeRequest::kText:
      input = request->text();
      break;
    case pb::TokenizeRequest::kChat:
      input = ChatFromProto(request->chat());
      break;
    default:
      reactor->Finish(
          grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "no input: set text or chat"));
      return reactor;
  }
  // Tokenizing is bounded CPU work on the caller's input; it runs here.
  absl::StatusOr<std::vector<int32_t>> ids = backend_->Tokenize(request->model(), input);
  if (ids.ok()) response->mutable_token_ids()->Add(ids->begin(), ids->end());
  reactor->Finish(rpc::ToGrpcStatus(ids.status()));
  return reactor;
}

grpc::ServerUnaryReactor* GenerationService::Detokenize(grpc::CallbackServerContext* context,
                                                        const pb::DetokenizeRequest* request,
                                                        pb::DetokenizeResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  absl::StatusOr<std::string> text = backend_->Detokenize(
      request->model(), {request->token_ids().begin(), request->token_ids().end()});
  if (text.ok()) response->set_text(*std::move(text));
  reactor->Finish(rpc::ToGrpcStatus(text.status()));
  return reactor;
}

grpc::ServerUnaryReactor* GenerationService::ListModels(grpc::CallbackServerContext* context,
                                                        const pb::ListModelsRequest* request,
                                                        pb::ListModelsResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  for (const ModelCard& card : backend_->ListModels()) {
    pb::ModelInfo* m = response->add_models();
    m->set_id(card.id);
    m->set_context_length(card.context_length);
    m->set_drafter(card.drafter);
  }
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

}  // namespace dspark::router
