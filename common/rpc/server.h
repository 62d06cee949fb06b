// Starting a gRPC server the dspark way: bound to an address whose port may
// be 0 (chosen at run time and reported), with grpc.health.v1 and server
// reflection, a graceful drain, and INVALID_ARGUMENT (not gRPC's bare
// UNIMPLEMENTED or INTERNAL) for a unary or server-streaming request whose
// bytes do not parse. Thread-safe after Start returns.
//
//   MyService service;
//   DSPARK_ASSIGN_OR_RETURN(auto server, rpc::StartServer({.address = "127.0.0.1:0"}, {&service}));
//   std::cout << server->port();
//   rpc::WaitForTerminationSignal();
//   server->Drain(absl::Seconds(30));
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace grpc {
class Server;
class Service;
}  // namespace grpc

namespace dspark::rpc {

struct ServerOptions {
  // host:port; port 0 picks a free one. Default loopback, any port.
  std::string address = "127.0.0.1:0";
  // Largest message accepted, bytes. Default 64 MiB (feature payloads).
  int max_message_bytes = 64 << 20;
};

class RunningServer {
 public:
  explicit RunningServer(std::unique_ptr<grpc::Server> server, int port);
  ~RunningServer();  // Shuts down immediately if Drain was not called.

  int port() const { return port_; }
  grpc::Server* server() { return server_.get(); }
  // Health turns NOT_SERVING, then in-flight calls get up to `grace` to
  // finish before they are cancelled. Idempotent.
  void Drain(absl::Duration grace);

 private:
  std::unique_ptr<grpc::Server> server_;
  int port_;
  bool stopped_ = false;
};

// Builds and starts a server for `services` (not owned; they must outlive it).
absl::StatusOr<std::unique_ptr<RunningServer>> StartServer(
    const ServerOptions& options, const std::vector<grpc::Service*>& services);

// Blocks the calling thread until SIGTERM or SIGINT arrives; returns its
// number. Call BlockTerminationSignals() first thing in main (before any
// thread starts) so that no other thread takes the signal. When the
// environment has kParentPidEnv set to the parent's pid, the process also
// gets SIGTERM when that parent dies (PR_SET_PDEATHSIG; the parent must
// start it from a thread that lives as long as the child should).
inline constexpr char kParentPidEnv[] = "DSPARK_PARENT_PID";
void BlockTerminationSignals();
int WaitForTerminationSignal();

}  // namespace dspark::rpc
