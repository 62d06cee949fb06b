#include "router/openai/openai_server.h"

#include <atomic>
#include <deque>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "httplib.h"
#include "router/openai/request_parsing.h"
#include "router/openai/responses.h"

namespace dspark::router::openai {
namespace {

using json = nlohmann::ordered_json;  // fields in OpenAI's order

constexpr char kJson[] = "application/json";

// After Cancel, how long a request thread waits for the backend's on_done
// before giving up on it (the callbacks keep their Call alive regardless).
constexpr absl::Duration kCancelWait = absl::Seconds(5);

// One generation as the HTTP side sees it: the backend's callbacks fill it
// from the backend's threads; the request's HTTP thread drains it.
class Call {
 public:
  struct Progress {
    std::vector<GenerationChunk> chunks;
    bool done = false;
    absl::Status status;  // when done
  };

  void OnChunk(GenerationChunk chunk) {
    absl::MutexLock lock(&mu_);
    pending_.push_back(std::move(chunk));
  }
  void OnDone(absl::Status status) {
    absl::MutexLock lock(&mu_);
    done_ = true;
    status_ = std::move(status);
  }
  void SetHandle(std::unique_ptr<GenerationHandle> handle) {
    absl::MutexLock lock(&mu_);
    handle_ = std::move(handle);
  }

  // Waits up to `timeout` for chunks or the end, and takes what came.
  Progress Take(absl::Duration timeout) {
    absl::MutexLock lock(&mu_);
    auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return done_ || !pending_.empty(); };
    mu_.AwaitWithTimeout(absl::Condition(&ready), timeout);
    Progress progress;
    progress.chunks.assign(std::make_move_iterator(pending_.begin()),
                           std::make_move_iterator(pending_.end()));
    pending_.clear();
    progress.done = done_;
    if (done_) progress.status = status_;
    return progress;
  }

  // Cancels the generation unless it ended, and lets go of the handle (so a
  // backend that keeps the callbacks with the handle cannot make a cycle).
  void Release() {
    std::unique_ptr<GenerationHandle> handle;
    bool done;
    {
      absl::MutexLock lock(&mu_);
      handle = std::move(handle_);
      done = done_;
    }
    // Outside the lock: Cancel may run on_done on this thread.
    if (handle != nullptr && !done) handle->Cancel();
  }

  void Cancel() {
    GenerationHandle* handle;
    {
      absl::MutexLock lock(&mu_);
      handle = handle_.get();
    }
    // The handle lives until Release, which only this request's thread calls.
    if (handle != nullptr) handle->Cancel();
  }

 private:
  absl::Mutex mu_;
  std::deque<GenerationChunk> pending_ ABSL_GUARDED_BY(mu_);
  bool done_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status status_ ABSL_GUARDED_BY(mu_);
  std::unique_ptr<GenerationHandle> handle_ ABSL_GUARDED_BY(mu_);
};

void SetJson(httplib::Response& res, int status, const json& body) {
  res.status = status;
  res.set_content(Dump(body), kJson);
}

void SetError(httplib::Response& res, const absl::Status& status) {
  SetJson(res, HttpStatusFor(status), ErrorJson(status));
}

}  // namespace

class OpenAiServer::Impl {
 public:
  Impl(GenerationBackend* backend, OpenAiServerOptions options)
      : backend_(backend), options_(std::move(options)) {}

  absl::Status Start();
  int port() const { return port_; }
  void Stop(absl::Duration grace);

 private:
  // Counts a request in flight for Stop's grace period; null once draining.
  class InflightToken {
   public:
    explicit InflightToken(Impl* impl) : impl_(impl) {}
    ~InflightToken() {
      absl::MutexLock lock(&impl_->mu_);
      --impl_->inflight_;
    }

   private:
    Impl* const impl_;
  };

  std::shared_ptr<InflightToken> Admit();
  void HandleGeneration(Endpoint endpoint, const httplib::Request& req, httplib::Response& res);
  void RespondWhole(Call& call, ResponseMeta meta, httplib::Response& res);
  void RespondStream(std::shared_ptr<Call> call, ResponseMeta meta, bool include_usage,
                     std::shared_ptr<InflightToken> token, httplib::Response& res);
  std::string DefaultModel();

  GenerationBackend* const backend_;
  const OpenAiServerOptions options_;
  httplib::Server http_;
  std::thread listener_;
  int port_ = 0;
  // Set once Stop's grace period is over: request threads cancel and leave.
  std::atomic<bool> stopping_{false};

  absl::Mutex mu_;
  bool listening_ ABSL_GUARDED_BY(mu_) = false;
  bool draining_ ABSL_GUARDED_BY(mu_) = false;
  bool stopped_ ABSL_GUARDED_BY(mu_) = false;
  int inflight_ ABSL_GUARDED_BY(mu_) = 0;
};

std::shared_ptr<OpenAiServer::Impl::InflightToken> OpenAiServer::Impl::Admit() {
  absl::MutexLock lock(&mu_);
  if (draining_) return nullptr;
  ++inflight_;
  return std::make_shared<InflightToken>(this);
}

std::string OpenAiServer::Impl::DefaultModel() {
  std::vector<ModelCard> models = backend_->ListModels();
  return models.empty() ? std::string() : models.front().id;
}

void OpenAiServer::Impl::HandleGeneration(Endpoint endpoint, const httplib::Request& req,
                                          httplib::Response& res) {
  absl::StatusOr<ParsedRequest> parsed = ParseRequest(endpoint, req.body);
  if (!parsed.ok()) return SetError(res, parsed.status());
  std::shared_ptr<InflightToken> token = Admit();
  if (token == nullptr) return SetError(res, absl::UnavailableError("the server is shutting down"));

  auto call = std::make_shared<Call>();
  ResponseMeta meta = NewResponseMeta(
      endpoint, parsed->generation.model.empty() ? DefaultModel() : parsed->generation.model);
  absl::StatusOr<std::unique_ptr<GenerationHandle>> handle = backend_->Start(
      std::move(parsed->generation),
      [call](GenerationChunk chunk) { call->OnChunk(std::move(chunk)); },
      [call](absl::Status status) { call->OnDone(std::move(status)); });
  if (!handle.ok()) return SetError(res, handle.status());
  call->SetHandle(*std::move(handle));
  if (parsed->stream) {
    RespondStream(std::move(call), std::move(meta), parsed->include_usage, std::move(token), res);
  } else {
    RespondWhole(*call, std::move(meta), res);
  }
}

void OpenAiServer::Impl::RespondWhole(Call& call, ResponseMeta meta, httplib::Response& res) {
  std::string text;
  GenerationChunk last;
  int completion_tokens = 0;
  absl::Status status;
  absl::Time give_up = absl::InfiniteFuture();
  for (;;) {
    Call::Progress progress = call.Take(options_.disconnect_check);
    for (GenerationChunk& chunk : progress.chunks) {
      text += chunk.text;
      completion_tokens += static_cast<int>(chunk.token_ids.size());
      if (chunk.finish != Finish::kNone) last = std::move(chunk);
    }
    if (progress.done) {
      status = progress.status;
      break;
    }
    if (stopping_ && give_up == absl::InfiniteFuture()) {
      call.Cancel();
      give_up = absl::Now() + kCancelWait;
    } else if (absl::Now() > give_up) {
      status = absl::UnavailableError("the server is shutting down");
      break;
    }
  }
  call.Release();
  if (give_up != absl::InfiniteFuture() && absl::IsCancelled(status)) {
    status = absl::UnavailableError("the server is shutting down");
  }
  if (!status.ok()) return SetError(res, status);
  if (last.finish == Finish::kNone) {
    // The backend ended without a finishing chunk: report what came.
    last.finish = Finish::kStop;
    last.completion_tokens = completion_tokens;
  }
  // The name the request used (or the default's) wins, as in streams, whose
  // chunks go out before the backend names its model.
  if (meta.model.empty()) meta.model = last.model;
  SetJson(res, 200, CompletionJson(meta, text, last));
}

void OpenAiServer::Impl::RespondStream(std::shared_ptr<Call> call, ResponseMeta meta,
                                       bool include_usage, std::shared_ptr<InflightToken> token,
                                       httplib::Response& res) {
  auto writer = std::make_shared<StreamWriter>(std::move(meta), include_usage);
  res.status = 200;
  res.set_header("Cache-Control", "no-cache");
  // httplib calls the provider on this request's thread until it calls
  // sink.done() or returns false. Writes fail once the client has gone; while
  // the backend has nothing to say, the provider wakes every
  // disconnect_check to look for a client that left.
  res.set_chunked_content_provider(
      "text/event-stream",
      [this, call, writer](size_t /*offset*/, httplib::DataSink& sink) {
        if (stopping_) return false;
        Call::Progress progress = call->Take(options_.disconnect_check);
        std::string events;
        for (const GenerationChunk& chunk : progress.chunks) events += writer->Chunk(chunk);
        if (progress.done) events += writer->End(progress.status);
        // Nothing to say: check the client is still there (is_writable peeks
        // at the socket for end-of-file).
        if (events.empty()) return sink.is_writable();
        if (!sink.write(events.data(), events.size())) return false;
        if (progress.done) sink.done();
        return true;
      },
      // Runs when the response is over, written or not: a generation still
      // running here lost its client.
      [call, token](bool /*success*/) { call->Release(); });
}

absl::Status OpenAiServer::Impl::Start() {
  http_.new_task_queue = [this] {
    // httplib builds its queue once it is serving, so this tells Start the
    // listener is up (and Stop's http_.stop() cannot be missed).
    {
      absl::MutexLock lock(&mu_);
      listening_ = true;
    }
    return new httplib::ThreadPool(static_cast<size_t>(std::max(1, options_.threads)));
  };
  http_.set_payload_max_length(options_.max_body_bytes);
  http_.set_write_timeout(absl::ToChronoSeconds(options_.write_timeout));
  http_.set_keep_alive_max_count(1000);
  http_.set_error_handler(httplib::Server::HandlerWithResponse(
      [this](const httplib::Request& req, httplib::Response& res) {
        // Our handlers write their own bodies; this fills httplib's own errors.
        if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
        std::string message;
        switch (res.status) {
          case 404:
            message = absl::StrCat("unknown request URL: ", req.method, " ", req.path);
            break;
          case 413:
            message =
                absl::StrCat("the request body is larger than ", options_.max_body_bytes, " bytes");
            break;
          default:
            message = absl::StrCat("the HTTP request failed with status ", res.status);
        }
        res.set_content(Dump(ErrorJson(res.status, message)), kJson);
        return httplib::Server::HandlerResponse::Handled;
      }));
  http_.set_exception_handler(
      [](const httplib::Request&, httplib::Response& res, std::exception_ptr error) {
        std::string what = "internal error";
        try {
          std::rethrow_exception(error);
        } catch (const std::exception& e) {
          what = absl::StrCat("internal error: ", e.what());
        } catch (...) {
        }
        SetJson(res, 500, ErrorJson(absl::InternalError(what)));
      });

  http_.Post("/v1/completions", [this](const httplib::Request& req, httplib::Response& res) {
    HandleGeneration(Endpoint::kCompletions, req, res);
  });
  http_.Post("/v1/chat/completions", [this](const httplib::Request& req, httplib::Response& res) {
    HandleGeneration(Endpoint::kChatCompletions, req, res);
  });
  http_.Get("/v1/models", [this](const httplib::Request&, httplib::Response& res) {
    SetJson(res, 200, ModelListJson(backend_->ListModels()));
  });
  http_.Get(R"(/v1/models/(.+))", [this](const httplib::Request& req, httplib::Response& res) {
    const std::string id = req.matches[1];
    for (const ModelCard& model : backend_->ListModels()) {
      if (model.id == id) return SetJson(res, 200, ModelJson(model));
    }
    SetError(res, absl::NotFoundError(absl::StrCat("model '", id, "' not found")));
  });
  http_.Get("/health", [this](const httplib::Request&, httplib::Response& res) {
    const bool healthy = backend_->Healthy();
    SetJson(res, healthy ? 200 : 503, {{"status", healthy ? "ok" : "unavailable"}});
  });

  if (options_.port == 0) {
    port_ = http_.bind_to_any_port(options_.address);
  } else if (http_.bind_to_port(options_.address, options_.port)) {
    port_ = options_.port;
  } else {
    port_ = -1;
  }
  if (port_ <= 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", options_.address, ":", options_.port));
  }
  listener_ = std::thread([this] { http_.listen_after_bind(); });
  absl::MutexLock lock(&mu_);
  mu_.Await(absl::Condition(&listening_));
  return absl::OkStatus();
}

void OpenAiServer::Impl::Stop(absl::Duration grace) {
  {
    absl::MutexLock lock(&mu_);
    if (stopped_) return;
    stopped_ = true;
    draining_ = true;
    auto idle = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return inflight_ == 0; };
    mu_.AwaitWithTimeout(absl::Condition(&idle), grace);
  }
  stopping_ = true;
  // Closes the listening socket; listen_after_bind returns once every
  // connection thread is done (streams notice stopping_ within
  // disconnect_check, whole responses cancel their generation).
  http_.stop();
  if (listener_.joinable()) listener_.join();
}

OpenAiServer::OpenAiServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
OpenAiServer::~OpenAiServer() { Stop(); }
int OpenAiServer::port() const { return impl_->port(); }
void OpenAiServer::Stop(absl::Duration grace) { impl_->Stop(grace); }

absl::StatusOr<std::unique_ptr<OpenAiServer>> StartOpenAiServer(
    GenerationBackend* backend, const OpenAiServerOptions& options) {
  auto impl = std::make_unique<OpenAiServer::Impl>(backend, options);
  if (absl::Status status = impl->Start(); !status.ok()) return status;
  return std::make_unique<OpenAiServer>(std::move(impl));
}

}  // namespace dspark::router::openai
