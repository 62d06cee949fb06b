#include "common/rpc/server.h"

#include <google/protobuf/descriptor.h>
#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/support/server_interceptor.h>
#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"

namespace dspark::rpc {
namespace {

// The full name of the request message of `method` ("/pkg.Service/Method"),
// from the generated descriptor pool, or "" if it is not there.
std::string RequestTypeName(const std::string& method) {
  std::string name = absl::StrReplaceAll(method.substr(method.empty() ? 0 : 1), {{"/", "."}});
  const google::protobuf::MethodDescriptor* descriptor =
      google::protobuf::DescriptorPool::generated_pool()->FindMethodByName(name);
  return descriptor == nullptr ? "" : descriptor->input_type()->full_name();
}

// Turns a request whose bytes do not parse as the method's message into
// INVALID_ARGUMENT with the reason; by itself gRPC answers such a request of
// a callback method with a bare UNIMPLEMENTED (its callback handlers replace
// the parse error with UnimplementedUnaryReactor's status) and of a sync
// method with INTERNAL and an empty message, which reads as a server bug.
//
// What grpc 1.51 does with a bad request, seen in experiments: for unary and
// server-streaming methods the request is parsed before the handler runs;
// POST_RECV_MESSAGE then fires with GetRecvMessage() == nullptr (also when
// the client sent no message at all), the handler never runs, and
// PRE_SEND_STATUS carries gRPC's own status: UNIMPLEMENTED with no message
// for callback methods (every dspark service), not the INTERNAL that
// GenericDeserialize returns, so any non-OK status is rewritten once the
// message failed rather than INTERNAL only. A parsed request gives a
// non-null message, so statuses the handler sets itself (INTERNAL included)
// are never rewritten. For client-streaming and bidi methods a parse failure
// fails the Read exactly as the client's half-close does (OnReadDone(false),
// POST_RECV_MESSAGE with nullptr in both cases), so neither this interceptor
// nor the reactor can tell them apart; those methods are left alone. No
// public dspark method streams requests. Unknown methods arrive as bidi too,
// and keep their UNIMPLEMENTED.
class ParseErrorInterceptor final : public grpc::experimental::Interceptor {
 public:
  explicit ParseErrorInterceptor(grpc::experimental::ServerRpcInfo* info) : info_(info) {}

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    using grpc::experimental::InterceptionHookPoints;
    using Type = grpc::experimental::ServerRpcInfo::Type;
    const bool request_first =
        info_->type() == Type::UNARY || info_->type() == Type::SERVER_STREAMING;
    if (request_first &&
        methods->QueryInterceptionHookPoint(InterceptionHookPoints::POST_RECV_MESSAGE) &&
        methods->GetRecvMessage() == nullptr) {
      // The status is sent from another batch, later in the call's own order;
      // atomic because gRPC may run the two batches on different threads.
      malformed_.store(true, std::memory_order_release);
    }
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_STATUS) &&
        malformed_.load(std::memory_order_acquire) && !methods->GetSendStatus().ok()) {
      methods->ModifySendStatus(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, Reason()));
    }
    methods->Proceed();
  }

 private:
  std::string Reason() const {
    const std::string method = info_->method() == nullptr ? "" : info_->method();
    const std::string type = RequestTypeName(method);
    return absl::StrCat(
        "malformed request: the request message is missing or its bytes are not a valid ",
        type.empty() ? "request" : type, " (", method, ")");
  }

  grpc::experimental::ServerRpcInfo* const info_;  // Owns this interceptor.
  std::atomic<bool> malformed_{false};
};

class ParseErrorInterceptorFactory final
    : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override {
    return new ParseErrorInterceptor(info);
  }
};

}  // namespace

RunningServer::RunningServer(std::unique_ptr<grpc::Server> server, int port)
    : server_(std::move(server)), port_(port) {}

RunningServer::~RunningServer() { Drain(absl::ZeroDuration()); }

void RunningServer::Drain(absl::Duration grace) {
  if (stopped_) return;
  stopped_ = true;
  if (auto* health = server_->GetHealthCheckService()) health->SetServingStatus(false);
  server_->Shutdown(absl::ToChronoTime(absl::Now() + grace));
  server_->Wait();
}

absl::StatusOr<std::unique_ptr<RunningServer>> StartServer(
    const ServerOptions& options, const std::vector<grpc::Service*>& services) {
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(options.address, grpc::InsecureServerCredentials(), &port);
  builder.SetMaxReceiveMessageSize(options.max_message_bytes);
  builder.SetMaxSendMessageSize(options.max_message_bytes);
  // Accept the keepalive pings MakeChannel's clients send every 5 s even
  // with no call open; by default a server answers pings more frequent than
  // every 5 minutes with GOAWAY, and the next call then pays a reconnect.
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 4000);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MAX_PING_STRIKES, 0);
  for (grpc::Service* service : services) builder.RegisterService(service);
  std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> interceptors;
  interceptors.push_back(std::make_unique<ParseErrorInterceptorFactory>());
  builder.experimental().SetInterceptorCreators(std::move(interceptors));
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port == 0) {
    return absl::UnavailableError(absl::StrCat("cannot listen on ", options.address));
  }
  return std::make_unique<RunningServer>(std::move(server), port);
}

namespace {
sigset_t TerminationSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  return set;
}
}  // namespace

void BlockTerminationSignals() {
  sigset_t set = TerminationSignals();
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  // A child of `dspark up` (or of a benchmark or test that started a local
  // cluster) drains when that parent dies, even by SIGKILL. A parent that
  // died before prctl took effect has already left us to another process.
  const char* parent = std::getenv(kParentPidEnv);
  if (parent == nullptr) return;
  prctl(PR_SET_PDEATHSIG, SIGTERM);
  if (std::to_string(getppid()) != parent) kill(getpid(), SIGTERM);
}

int WaitForTerminationSignal() {
  sigset_t set = TerminationSignals();
  int signal = 0;
  sigwait(&set, &signal);
  return signal;
}

}  // namespace dspark::rpc
