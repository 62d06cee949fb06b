#include "common/rpc/registry_client.h"

#include <grpcpp/grpcpp.h>

#include <thread>
#include <utility>

#include "absl/synchronization/mutex.h"
#include "common/base/logging.h"
#include "common/rpc/channel.h"

namespace dspark::rpc {

namespace v1 = dspark::internal::v1;

struct RegistryClient::State {
  RegistryClientOptions options;
  LoadFn load;
  PolicyFn on_policy;
  std::unique_ptr<v1::Registry::Stub> stub;
  absl::Mutex mu;
  bool stop ABSL_GUARDED_BY(mu) = false;
  std::string worker_id ABSL_GUARDED_BY(mu);
  absl::Duration interval ABSL_GUARDED_BY(mu);
  absl::Mutex rpc_mu;  // one Register/Heartbeat exchange at a time
  std::thread thread;

  // One register-if-needed + heartbeat round.
  void Round() {
    absl::MutexLock rpc_lock(&rpc_mu);
    std::string id;
    {
      absl::MutexLock lock(&mu);
      id = worker_id;
    }
    if (id.empty()) {
      v1::RegisterRequest request;
      request.set_kind(options.kind);
      request.set_address(options.address);
      request.set_model(options.model);
      request.set_max_sessions(options.max_sessions);
      v1::RegisterResponse response;
      grpc::ClientContext context;
      context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(2)));
      grpc::Status status = stub->Register(&context, request, &response);
      if (!status.ok()) {
        DSPARK_LOG(WARNING) << "cannot register with router " << options.router << ": "
                            << status.error_message();
        return;
      }
      absl::MutexLock lock(&mu);
      id = worker_id = response.worker_id();
      if (response.heartbeat_interval_ms() > 0) {
        interval = absl::Milliseconds(response.heartbeat_interval_ms());
      }
      DSPARK_LOG(INFO) << "registered with router " << options.router << " as " << id;
    }
    v1::HeartbeatRequest request;
    request.set_worker_id(id);
    *request.mutable_load() = load();
    v1::HeartbeatResponse response;
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(2)));
    grpc::Status status = stub->Heartbeat(&context, request, &response);
    if (!status.ok()) return;  // router unreachable: try again next round
    if (!response.known()) {
      absl::MutexLock lock(&mu);
      worker_id.clear();  // the router restarted: register again
      return;
    }
    if (response.has_policy() && on_policy) on_policy(response.policy());
  }

  void Loop() {
    while (true) {
      Round();
      absl::MutexLock lock(&mu);
      const absl::Time wake = absl::Now() + interval;
      auto stopping = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu) { return stop; };
      if (mu.AwaitWithDeadline(absl::Condition(&stopping), wake)) return;
    }
  }
};

RegistryClient::RegistryClient(std::unique_ptr<State> state) : state_(std::move(state)) {}

std::unique_ptr<RegistryClient> RegistryClient::Start(const RegistryClientOptions& options,
                                                      LoadFn load, PolicyFn on_policy) {
  auto state = std::make_unique<State>();
  state->options = options;
  state->load = std::move(load);
  state->on_policy = std::move(on_policy);
  state->stub = v1::Registry::NewStub(MakeChannel(options.router));
  {
    absl::MutexLock lock(&state->mu);
    state->interval = options.interval;
  }
  State* raw = state.get();
  state->thread = std::thread([raw] { raw->Loop(); });
  return std::unique_ptr<RegistryClient>(new RegistryClient(std::move(state)));
}

RegistryClient::~RegistryClient() {
  {
    absl::MutexLock lock(&state_->mu);
    state_->stop = true;
  }
  state_->thread.join();
}

void RegistryClient::HeartbeatNow() { state_->Round(); }

bool RegistryClient::registered() const {
  absl::MutexLock lock(&state_->mu);
  return !state_->worker_id.empty();
}

}  // namespace dspark::rpc
