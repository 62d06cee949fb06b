#include "router/core/static_workers.h"

#include <arpa/inet.h>
#include <grpcpp/grpcpp.h>
#include <netdb.h>
#include <sys/socket.h>

#include <algorithm>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/base/logging.h"
#include "common/rpc/channel.h"
#include "dspark/internal/v1/spec.grpc.pb.h"
#include "dspark/internal/v1/verify.grpc.pb.h"

namespace dspark::router {

namespace v1 = dspark::internal::v1;

std::vector<std::string> SplitTargets(const std::string& flag) {
  std::vector<std::string> out;
  for (absl::string_view part : absl::StrSplit(flag, ',')) {
    part = absl::StripAsciiWhitespace(part);
    if (!part.empty()) out.emplace_back(part);
  }
  return out;
}

std::vector<std::string> ResolveTarget(const std::string& target) {
  absl::string_view name = target;
  if (!absl::ConsumePrefix(&name, "dns:///")) return {target};
  const size_t colon = name.rfind(':');
  if (colon == absl::string_view::npos) {
    DSPARK_LOG(WARNING) << target << ": no port";
    return {};
  }
  const std::string host(name.substr(0, colon));
  const std::string port(name.substr(colon + 1));
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* result = nullptr;
  if (int rc = getaddrinfo(host.c_str(), port.c_str(), &hints, &result); rc != 0) {
    DSPARK_LOG(WARNING) << target << ": " << gai_strerror(rc);
    return {};
  }
  std::vector<std::string> out;
  for (addrinfo* a = result; a != nullptr; a = a->ai_next) {
    char ip[INET6_ADDRSTRLEN] = {};
    if (a->ai_family == AF_INET) {
      inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(a->ai_addr)->sin_addr, ip, sizeof(ip));
      out.push_back(absl::StrCat(ip, ":", port));
    } else if (a->ai_family == AF_INET6) {
      inet_ntop(AF_INET6, &reinterpret_cast<sockaddr_in6*>(a->ai_addr)->sin6_addr, ip, sizeof(ip));
      out.push_back(absl::StrCat("[", ip, "]:", port));
    }
  }
  freeaddrinfo(result);
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

// Stubs per address, and the count of probes in flight (the round waits for
// them so none outlives the registry or the stubs). A callback drops its
// call's ClientContext before it lowers the count: a context released by the
// gRPC thread after the round (and then the test or process) had ended
// tripped gRPC's ref-count assertion at exit.
struct StaticWorkers::Prober {
  absl::Mutex mutex;
  int in_flight ABSL_GUARDED_BY(mutex) = 0;
  // Loop thread only. Verify and draft workers each have their own
  // GetStatus method (same messages).
  absl::flat_hash_map<std::string, std::unique_ptr<v1::VerifyWorker::Stub>> verify_stubs;
  absl::flat_hash_map<std::string, std::unique_ptr<v1::DraftWorker::Stub>> draft_stubs;

  template <typename Service, typename Map>
  static auto* Stub(Map& stubs, const std::string& address) {
    auto& stub = stubs[address];
    if (stub == nullptr) stub = Service::NewStub(rpc::MakeChannel(address));
    return stub.get();
  }
};

StaticWorkers::StaticWorkers(StaticWorkersOptions options, WorkerRegistry* registry)
    : options_(std::move(options)), registry_(registry), prober_(std::make_unique<Prober>()) {}

std::unique_ptr<StaticWorkers> StaticWorkers::Start(StaticWorkersOptions options,
                                                    WorkerRegistry* registry) {
  auto workers = std::unique_ptr<StaticWorkers>(new StaticWorkers(std::move(options), registry));
  if (workers->options_.verify_targets.empty() && workers->options_.draft_targets.empty()) {
    return workers;  // nothing to probe: no thread
  }
  workers->Round();
  workers->thread_ = std::thread([w = workers.get()] { w->Loop(); });
  return workers;
}

StaticWorkers::~StaticWorkers() {
  {
    absl::MutexLock lock(&mutex_);
    stop_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

void StaticWorkers::Loop() {
  while (true) {
    {
      absl::MutexLock lock(&mutex_);
      auto stopped = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_) { return stop_; };
      if (mutex_.AwaitWithTimeout(absl::Condition(&stopped), options_.interval)) return;
    }
    Round();
  }
}

void StaticWorkers::ProbeDone() {
  absl::MutexLock lock(&prober_->mutex);
  --prober_->in_flight;
}

void StaticWorkers::PushPolicy(dspark::internal::v1::VerifyWorker::Stub* stub,
                               const std::string& address, uint64_t worker_version) {
  const v1::Policy policy = registry_->PolicyFor(address);
  if (policy.version() <= worker_version) return;  // none, or it has it
  struct Push {
    grpc::ClientContext context;
    v1::SetPolicyRequest request;
    v1::SetPolicyResponse response;
  };
  auto push = std::make_shared<Push>();
  *push->request.mutable_policy() = policy;
  push->context.set_deadline(absl::ToChronoTime(absl::Now() + options_.probe_timeout));
  {
    absl::MutexLock lock(&prober_->mutex);
    ++prober_->in_flight;
  }
  stub->async()->SetPolicy(&push->context, &push->request, &push->response,
                           [this, push](grpc::Status) mutable {
                             push.reset();  // the context dies before the count drops
                             ProbeDone();
                           });
}

void StaticWorkers::Round() {
  struct Probe {
    grpc::ClientContext context;
    v1::GetStatusRequest request;
    v1::GetStatusResponse response;
  };
  auto probe_all = [&](const std::vector<std::string>& targets, WorkerKind kind) {
    for (const std::string& target : targets) {
      for (const std::string& address : ResolveTarget(target)) {
        auto probe = std::make_shared<Probe>();
        probe->context.set_deadline(absl::ToChronoTime(absl::Now() + options_.probe_timeout));
        {
          absl::MutexLock lock(&prober_->mutex);
          ++prober_->in_flight;
        }
        if (kind == WorkerKind::kVerify) {
          auto* stub = Prober::Stub<v1::VerifyWorker>(prober_->verify_stubs, address);
          stub->async()->GetStatus(
              &probe->context, &probe->request, &probe->response,
              [this, probe, address, stub](grpc::Status status) mutable {
                if (status.ok()) {
                  registry_->UpdateStatic(WorkerKind::kVerify, address, probe->response.model(),
                                          options_.max_sessions, probe->response.load());
                  PushPolicy(stub, address, probe->response.load().policy().version());
                }
                probe.reset();
                ProbeDone();
              });
        } else {
          Prober::Stub<v1::DraftWorker>(prober_->draft_stubs, address)
              ->async()
              ->GetStatus(&probe->context, &probe->request, &probe->response,
                          [this, probe, address](grpc::Status status) mutable {
                            if (status.ok()) {
                              registry_->UpdateStatic(
                                  WorkerKind::kDraft, address, probe->response.model(),
                                  options_.max_sessions, probe->response.load());
                            }
                            probe.reset();
                            ProbeDone();
                          });
        }
      }
    }
  };
  probe_all(options_.verify_targets, WorkerKind::kVerify);
  probe_all(options_.draft_targets, WorkerKind::kDraft);
  absl::MutexLock lock(&prober_->mutex);
  auto done = [this]()
                  ABSL_EXCLUSIVE_LOCKS_REQUIRED(prober_->mutex) { return prober_->in_flight == 0; };
  prober_->mutex.Await(absl::Condition(&done));
}

}  // namespace dspark::router
