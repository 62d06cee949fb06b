// A dspark cluster on 127.0.0.1 as child processes: N verify workers, M
// draft workers and a router, each on a port chosen at run time. Used by
// `dspark up` and by the integration tests. Not thread-safe: one owner.
// The processes drain when the thread that started them exits, or the
// whole owner dies (even by SIGKILL), so none outlives a killed benchmark.
//
//   DSPARK_ASSIGN_OR_RETURN(auto cluster, LocalCluster::Start({.bin_dir = dir}));
//   Talk(cluster->endpoints().http);
//   cluster->Stop(absl::Seconds(30));   // SIGTERM, drain, SIGKILL after the grace
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace dspark::deploy {

struct LocalClusterOptions {
  // Directory holding dspark-router, dspark-verify-worker, dspark-draft-worker. Required.
  std::string bin_dir;
  // Catalogue model (or path) every process serves. Default the default model.
  std::string model = "smollm2-135m-instruct";
  // Process counts. Defaults 1 and 1; 0 draft workers = no speculation.
  int verify_workers = 1;
  int draft_workers = 1;
  // Extra flags per kind, e.g. {"--drafter=ngram"}.
  std::vector<std::string> router_flags;
  std::vector<std::string> verify_flags;
  std::vector<std::string> draft_flags;
  // Ready files and one log per process. Default: a fresh temporary directory.
  std::string work_dir;
  // How long start-up may take (the first start profiles the cost table).
  absl::Duration ready_timeout = absl::Minutes(5);
};

class LocalCluster {
 public:
  enum class Role { kRouter, kVerify, kDraft };
  struct Process {
    Role role;
    int index = 0;
    pid_t pid = -1;
    std::string grpc;      // host:port
    std::string http;      // router only
    std::string metrics;   // host:port of /metrics, when the process serves it
    std::string log_path;  // stdout + stderr
  };

  // Starts the workers, then the router pointed at them; returns once every
  // process has written its ready file. A process that exits during start-up
  // fails the call with the tail of its log; everything started is stopped.
  static absl::StatusOr<std::unique_ptr<LocalCluster>> Start(const LocalClusterOptions& options);
  ~LocalCluster();  // Stop(absl::Seconds(10)) if not stopped yet.

  const Process& router() const { return processes_.back(); }
  std::vector<const Process*> processes(Role role) const;
  // {"grpc": ..., "http": ..., "metrics": {"router": host:port, "verify-0": ..., ...},
  //  "verify_workers": [...], "draft_workers": [...]}
  std::string EndpointsJson() const;

  // Sends `signal` to one process (fault tests); Wait reaps it.
  absl::Status Signal(Role role, int index, int signal);
  // Exit status of a process that has exited, waiting up to `timeout`.
  absl::StatusOr<int> Wait(Role role, int index, absl::Duration timeout);
  // First process that exited on its own, if any (e.g. a crash).
  const Process* FindExited();
  // SIGTERM to the router, then the workers; SIGKILL whatever is left after `grace`.
  void Stop(absl::Duration grace);

 private:
  LocalCluster() = default;
  absl::Status Spawn(Process process, const std::string& binary, std::vector<std::string> args,
                     absl::Time deadline);

  std::string work_dir_;
  std::vector<Process> processes_;  // workers first, router last
  std::vector<bool> reaped_;
  bool stopped_ = false;
};

}  // namespace dspark::deploy
