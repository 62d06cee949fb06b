#include "deploy/local_cluster/local_cluster.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/rpc/server.h"
#include "nlohmann/json.hpp"

extern char** environ;

namespace dspark::deploy {
namespace {

const char* RoleName(LocalCluster::Role role) {
  switch (role) {
    case LocalCluster::Role::kRouter: return "router";
    case LocalCluster::Role::kVerify: return "verify";
    case LocalCluster::Role::kDraft: return "draft";
  }
  return "?";
}

std::string Tail(const std::string& path, size_t bytes = 2000) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  std::string s = ss.str();
  return s.size() > bytes ? s.substr(s.size() - bytes) : s;
}

// The ready file once it exists and parses; nullopt meanwhile.
std::optional<nlohmann::json> ReadReady(const std::string& path) {
  std::ifstream in(path);
  if (!in) return std::nullopt;
  nlohmann::json j = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return std::nullopt;
  return j;
}

}  // namespace

absl::StatusOr<std::unique_ptr<LocalCluster>> LocalCluster::Start(
    const LocalClusterOptions& options) {
  if (options.verify_workers < 1) return absl::InvalidArgumentError("need a verify worker");
  if (options.draft_workers < 0) return absl::InvalidArgumentError("draft workers < 0");
  std::unique_ptr<LocalCluster> cluster(new LocalCluster());
  cluster->work_dir_ = options.work_dir;
  if (cluster->work_dir_.empty()) {
    std::string tmpl = (std::filesystem::temp_directory_path() / "dspark-up-XXXXXX").string();
    if (mkdtemp(tmpl.data()) == nullptr) return absl::InternalError("mkdtemp failed");
    cluster->work_dir_ = tmpl;
  }
  std::filesystem::create_directories(cluster->work_dir_);
  const absl::Time deadline = absl::Now() + options.ready_timeout;
  auto bin = [&](const char* name) { return (std::filesystem::path(options.bin_dir) / name).string(); };
  const std::string model_flag = "--model=" + options.model;

  // Workers start side by side; each is waited for in Spawn's order, which
  // costs nothing extra since they load concurrently.
  std::vector<std::pair<Process, std::vector<std::string>>> pending;
  for (int i = 0; i < options.draft_workers; ++i) {
    // All processes share this machine's cores. A draft worker computes
    // while the verify worker waits for its drafts (its DSpark drafter holds
    // context back until a session drafts), so it gets every core; under
    // two-batch overlap it drafts during the verify worker's forward and
    // would preempt it (the critical path), so it gets one thread. Its own
    // flags win (they come later).
    const bool overlap = std::find(options.verify_flags.begin(), options.verify_flags.end(),
                                   "--two_batch_overlap") != options.verify_flags.end();
    std::vector<std::string> args = {model_flag};
    if (overlap) args.push_back("--threads=1");
    args.insert(args.end(), options.draft_flags.begin(), options.draft_flags.end());
    pending.push_back({Process{.role = Role::kDraft, .index = i}, args});
  }
  for (int i = 0; i < options.verify_workers; ++i) {
    std::vector<std::string> args = {model_flag};
    args.insert(args.end(), options.verify_flags.begin(), options.verify_flags.end());
    pending.push_back({Process{.role = Role::kVerify, .index = i}, args});
  }
  for (auto& [process, args] : pending) {
    const std::string binary =
        bin(process.role == Role::kDraft ? "dspark-draft-worker" : "dspark-verify-worker");
    absl::Status st = cluster->Spawn(process, binary, args, /*deadline=*/absl::InfinitePast());
    if (!st.ok()) return st;
  }
  // Wait for every worker's ready file.
  for (size_t i = 0; i < cluster->processes_.size(); ++i) {
    Process& p = cluster->processes_[i];
    const std::string ready = absl::StrCat(cluster->work_dir_, "/", RoleName(p.role), p.index, ".ready");
    while (true) {
      if (auto j = ReadReady(ready)) {
        p.grpc = j->value("grpc", "");
        p.metrics = j->value("metrics", "");
        break;
      }
      int status = 0;
      if (waitpid(p.pid, &status, WNOHANG) == p.pid) {
        cluster->reaped_[i] = true;
        return absl::InternalError(absl::StrCat(RoleName(p.role), " worker ", p.index,
                                                " exited during start-up; log ", p.log_path,
                                                ":\n", Tail(p.log_path)));
      }
      if (absl::Now() > deadline) {
        return absl::DeadlineExceededError(absl::StrCat(RoleName(p.role), " worker ", p.index,
                                                        " not ready; log ", p.log_path));
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));  // polling a file
    }
  }
  std::vector<std::string> verify, draft;
  for (const Process& p : cluster->processes_) {
    (p.role == Role::kVerify ? verify : draft).push_back(p.grpc);
  }
  // The router admits as many sessions per worker as a verify worker runs
  // (its --max_running, 64 unless the verify flags say otherwise) instead
  // of queueing beyond its default guess of 16 for static workers.
  std::string max_running = "64";
  for (const std::string& f : options.verify_flags) {
    if (absl::StartsWith(f, "--max_running=")) max_running = f.substr(f.find('=') + 1);
  }
  std::vector<std::string> args = {model_flag, "--verify_workers=" + absl::StrJoin(verify, ","),
                                   "--static_max_sessions=" + max_running};
  if (!draft.empty()) args.push_back("--draft_workers=" + absl::StrJoin(draft, ","));
  args.insert(args.end(), options.router_flags.begin(), options.router_flags.end());
  absl::Status st = cluster->Spawn(Process{.role = Role::kRouter}, bin("dspark-router"), args, deadline);
  if (!st.ok()) return st;
  return cluster;
}

absl::Status LocalCluster::Spawn(Process process, const std::string& binary,
                                 std::vector<std::string> args, absl::Time deadline) {
  if (!std::filesystem::exists(binary)) return absl::NotFoundError(binary + " not found (build it)");
  const std::string name = absl::StrCat(RoleName(process.role), process.index);
  const std::string ready = absl::StrCat(work_dir_, "/", name, ".ready");
  std::filesystem::remove(ready);
  process.log_path = absl::StrCat(work_dir_, "/", name, ".log");
  args.insert(args.begin(), binary);
  args.push_back("--ready_file=" + ready);
  args.push_back("--listen=127.0.0.1:0");
  args.push_back("--metrics_listen=127.0.0.1:0");
  if (process.role == Role::kRouter) args.push_back("--http_listen=127.0.0.1:0");

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, process.log_path.c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  // Children take Ctrl-C from us (we forward SIGTERM), not from the terminal,
  // and start with no signals blocked whatever our own mask is.
  sigset_t none;
  sigemptyset(&none);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setpgroup(&attr, 0);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETPGROUP);
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  // Children drain when this process dies, even by SIGKILL
  // (rpc::BlockTerminationSignals).
  std::string parent = absl::StrCat(rpc::kParentPidEnv, "=", getpid());
  std::vector<char*> envp;
  for (char** e = environ; *e != nullptr; ++e) {
    if (!absl::StartsWith(*e, absl::StrCat(rpc::kParentPidEnv, "="))) envp.push_back(*e);
  }
  envp.push_back(parent.data());
  envp.push_back(nullptr);
  pid_t pid = -1;
  const int rc = posix_spawn(&pid, binary.c_str(), &actions, &attr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) return absl::InternalError(absl::StrCat("cannot start ", binary, ": ", strerror(rc)));
  process.pid = pid;
  processes_.push_back(process);
  reaped_.push_back(false);
  if (deadline == absl::InfinitePast()) return absl::OkStatus();  // caller waits

  Process& p = processes_.back();
  while (true) {
    if (auto j = ReadReady(ready)) {
      p.grpc = j->value("grpc", "");
      p.http = j->value("http", "");
      p.metrics = j->value("metrics", "");
      return absl::OkStatus();
    }
    int status = 0;
    if (waitpid(pid, &status, WNOHANG) == pid) {
      reaped_.back() = true;
      return absl::InternalError(absl::StrCat(name, " exited during start-up; log ",
                                              p.log_path, ":\n", Tail(p.log_path)));
    }
    if (absl::Now() > deadline) {
      return absl::DeadlineExceededError(absl::StrCat(name, " not ready; log ", p.log_path));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));  // polling a file
  }
}

LocalCluster::~LocalCluster() { Stop(absl::Seconds(10)); }

std::vector<const LocalCluster::Process*> LocalCluster::processes(Role role) const {
  std::vector<const Process*> out;
  for (const Process& p : processes_) {
    if (p.role == role) out.push_back(&p);
  }
  return out;
}

std::string LocalCluster::EndpointsJson() const {
  nlohmann::json j;
  j["grpc"] = router().grpc;
  j["http"] = router().http;
  j["metrics"] = nlohmann::json::object();
  j["verify_workers"] = nlohmann::json::array();
  j["draft_workers"] = nlohmann::json::array();
  for (const Process& p : processes_) {
    if (!p.metrics.empty()) {
      j["metrics"][p.role == Role::kRouter ? std::string("router")
                                           : absl::StrCat(RoleName(p.role), "-", p.index)] = p.metrics;
    }
    if (p.role == Role::kVerify) j["verify_workers"].push_back(p.grpc);
    if (p.role == Role::kDraft) j["draft_workers"].push_back(p.grpc);
  }
  return j.dump();
}

absl::Status LocalCluster::Signal(Role role, int index, int signal) {
  for (size_t i = 0; i < processes_.size(); ++i) {
    if (processes_[i].role != role || processes_[i].index != index) continue;
    if (reaped_[i]) return absl::FailedPreconditionError("process already exited");
    kill(processes_[i].pid, signal);
    return absl::OkStatus();
  }
  return absl::NotFoundError("no such process");
}

absl::StatusOr<int> LocalCluster::Wait(Role role, int index, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  for (size_t i = 0; i < processes_.size(); ++i) {
    if (processes_[i].role != role || processes_[i].index != index) continue;
    while (true) {
      int status = 0;
      if (reaped_[i]) return absl::FailedPreconditionError("already reaped");
      if (waitpid(processes_[i].pid, &status, WNOHANG) == processes_[i].pid) {
        reaped_[i] = true;
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      }
      if (absl::Now() > deadline) return absl::DeadlineExceededError("still running");
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
  return absl::NotFoundError("no such process");
}

const LocalCluster::Process* LocalCluster::FindExited() {
  for (size_t i = 0; i < processes_.size(); ++i) {
    int status = 0;
    if (!reaped_[i] && waitpid(processes_[i].pid, &status, WNOHANG) == processes_[i].pid) {
      reaped_[i] = true;
      return &processes_[i];
    }
  }
  return nullptr;
}

void LocalCluster::Stop(absl::Duration grace) {
  if (stopped_) return;
  stopped_ = true;
  // The router first, so nothing new reaches the workers while they drain.
  for (size_t k = processes_.size(); k-- > 0;) {
    if (!reaped_[k]) kill(processes_[k].pid, SIGTERM);
    if (k + 1 == processes_.size() && processes_[k].role == Role::kRouter) {
      Wait(Role::kRouter, 0, grace).IgnoreError();
    }
  }
  const absl::Time deadline = absl::Now() + grace;
  for (size_t i = 0; i < processes_.size(); ++i) {
    while (!reaped_[i]) {
      int status = 0;
      if (waitpid(processes_[i].pid, &status, WNOHANG) == processes_[i].pid) {
        reaped_[i] = true;
      } else if (absl::Now() > deadline) {
        kill(processes_[i].pid, SIGKILL);
        waitpid(processes_[i].pid, &status, 0);
        reaped_[i] = true;
      } else {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
    }
  }
}

}  // namespace dspark::deploy
