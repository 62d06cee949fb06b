// The router's OpenAI-compatible HTTP front end: /v1/completions and
// /v1/chat/completions (whole, or streamed as Server-Sent Events),
// /v1/models, /v1/models/{id} and /health, over a GenerationBackend. Errors
// come in OpenAI's JSON error shape. Thread-safe; serves on threads of its own.
//
//   OpenAiServerOptions options;  // 127.0.0.1, port chosen by the OS
//   DSPARK_ASSIGN_OR_RETURN(auto server, StartOpenAiServer(&backend, options));
//   LOG(INFO) << "http=127.0.0.1:" << server->port();
//   ...
//   server->Stop(absl::Seconds(30));  // finish in-flight requests, then stop
#pragma once

#include <cstddef>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "router/frontend/generation_backend.h"

namespace dspark::router::openai {

struct OpenAiServerOptions {
  // Address to bind (an IP; "0.0.0.0" for every interface). Default loopback.
  std::string address = "127.0.0.1";
  // 0: any free port (see OpenAiServer::port()).
  int port = 0;
  // Larger request bodies get 413 without being parsed. Default 1 MiB.
  size_t max_body_bytes = size_t{1} << 20;
  // Connections served at once; a streaming response holds one thread for its
  // whole length, so this caps concurrent requests. Default 64.
  int threads = 64;
  // How often a stream with nothing to send checks that its client is still
  // there (to cancel the generation when it is not). Default 100 ms.
  absl::Duration disconnect_check = absl::Milliseconds(100);
  // A client that does not read for this long is dropped. Default 30 s.
  absl::Duration write_timeout = absl::Seconds(30);
};

class OpenAiServer {
 public:
  class Impl;
  explicit OpenAiServer(std::unique_ptr<Impl> impl);
  ~OpenAiServer();  // Stop()
  OpenAiServer(const OpenAiServer&) = delete;
  OpenAiServer& operator=(const OpenAiServer&) = delete;

  // The bound port.
  int port() const;
  // Refuses new generations (503), lets in-flight ones finish for up to
  // `grace`, then cancels what is left and closes every connection. The
  // router drains its backend first; this is the HTTP side of the same drain.
  // Idempotent; any thread but a request's own.
  void Stop(absl::Duration grace = absl::ZeroDuration());

 private:
  std::unique_ptr<Impl> impl_;
};

// Binds and starts serving; `backend` must outlive the server.
absl::StatusOr<std::unique_ptr<OpenAiServer>> StartOpenAiServer(GenerationBackend* backend,
                                                                const OpenAiServerOptions& options);

}  // namespace dspark::router::openai
