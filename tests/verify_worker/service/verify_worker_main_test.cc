// The dspark-verify-worker binary as a process, on the tiny committed llama
// checkpoint (no tokenizer, a local n-gram drafter): it announces itself on
// stderr and in the ready file, takes flags from DSPARK_* variables, serves
// GetStatus and greedy sessions equal to engine::Generate, and on SIGTERM
// refuses new sessions, drains and exits 0. A bad flag value makes it exit
// non-zero. The test waits on the child's stderr pipe (poll with a
// deadline), never by sleeping.
#include <fcntl.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/engine/model/generate.h"
#include "common/rpc/channel.h"
#include "dspark/internal/v1/verify.grpc.pb.h"
#include "nlohmann/json.hpp"
#include "tests/verify_worker/service/verify_service_test_util.h"

extern char** environ;

namespace dspark::verify::testing {
namespace {

const std::string kTiny =
    std::string(DSPARK_SOURCE_DIR) + "/tests/common/engine/model/testdata/tiny/llama";

// A child process whose stderr the test reads.
class Child {
 public:
  Child(std::vector<std::string> args, const std::vector<std::string>& extra_env) {
    int fds[2];
    if (pipe(fds) != 0) return;
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, fds[1], STDERR_FILENO);
    posix_spawn_file_actions_addclose(&actions, fds[0]);
    std::vector<std::string> env;
    for (char** e = environ; *e != nullptr; ++e) {
      if (std::string(*e).rfind("DSPARK_", 0) != 0 ||
          std::string(*e).rfind("DSPARK_HOME", 0) == 0) {
        env.push_back(*e);  // no stray DSPARK_* flags from the caller
      }
    }
    env.insert(env.end(), extra_env.begin(), extra_env.end());
    args.insert(args.begin(), DSPARK_VERIFY_WORKER_BIN);
    std::vector<char*> argv, envp;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    for (std::string& e : env) envp.push_back(e.data());
    envp.push_back(nullptr);
    if (posix_spawn(&pid_, argv[0], &actions, nullptr, argv.data(), envp.data()) != 0) pid_ = -1;
    posix_spawn_file_actions_destroy(&actions);
    close(fds[1]);
    fd_ = fds[0];
  }
  ~Child() {
    if (pid_ > 0 && !reaped_) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    if (fd_ >= 0) close(fd_);
  }

  pid_t pid() const { return pid_; }
  const std::string& output() const { return output_; }

  // Reads stderr until it contains `text` (true) or EOF / the deadline.
  bool WaitFor(const std::string& text, absl::Time deadline) {
    while (output_.find(text) == std::string::npos) {
      const int ms = static_cast<int>(absl::ToInt64Milliseconds(deadline - absl::Now()));
      if (ms <= 0) return false;
      pollfd p{.fd = fd_, .events = POLLIN};
      if (poll(&p, 1, ms) <= 0) return false;
      char buf[4096];
      const ssize_t n = read(fd_, buf, sizeof(buf));
      if (n <= 0) return false;
      output_.append(buf, n);
    }
    return true;
  }

  // Reads stderr to EOF, then reaps the child; its exit code, or -1.
  int Wait(absl::Time deadline) {
    WaitFor("\x01never\x01", deadline);  // until EOF: the child closed stderr
    int status = 0;
    if (waitpid(pid_, &status, 0) != pid_) return -1;
    reaped_ = true;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }

 private:
  pid_t pid_ = -1;
  int fd_ = -1;
  bool reaped_ = false;
  std::string output_;
};

TEST(VerifyWorkerMainTest, ServesAndDrainsOnSigterm) {
  const std::string ready =
      absl::StrCat(::testing::TempDir(), "/verify_worker_main_test_", getpid(), ".ready");
  std::filesystem::remove(ready);
  Child child({"--model=" + kTiny, "--drafter=ngram", "--scheduler=fixed", "--verify_len=3",
               "--threads=1", "--ready_file=" + ready, "--drain_seconds=20"},
              {"DSPARK_KV_TOKENS=2048"});
  ASSERT_GT(child.pid(), 0);
  const absl::Time deadline = absl::Now() + absl::Seconds(60);
  ASSERT_TRUE(child.WaitFor("ready grpc=", deadline)) << child.output();
  std::ifstream in(ready);
  ASSERT_TRUE(in.good()) << ready;
  const nlohmann::json j = nlohmann::json::parse(in);
  const std::string address = j.at("grpc");
  EXPECT_NE(child.output().find("ready grpc=" + address), std::string::npos) << child.output();

  // The channel is closed before SIGTERM: an idle client connection that
  // nobody polls delays the server's shutdown by seconds (its GOAWAY
  // handshake), which is not what this test times.
  auto stub = internal::v1::VerifyWorker::NewStub(rpc::MakeChannel(address));
  {
    grpc::ClientContext context;
    internal::v1::GetStatusResponse status;
    ASSERT_TRUE(stub->GetStatus(&context, {}, &status).ok());
    EXPECT_EQ(status.model(), kTiny);
    EXPECT_EQ(status.load().kv_blocks_total(), 2048 / 16);  // from DSPARK_KV_TOKENS
    EXPECT_TRUE(status.load().policy().speculation_enabled());
  }
  auto model = engine::Model::Load(kTiny, {.threads = 1});
  ASSERT_TRUE(model.ok()) << model.status();
  auto cache = (*model)->NewKvCache({.max_tokens = 1024});
  for (int i = 0; i < 3; ++i) {
    std::vector<int32_t> prompt;
    for (int k = 0; k < 10 + 7 * i; ++k) prompt.push_back(3 + (k * 31 + i * 17) % 200);
    auto reference = engine::Generate(**model, *cache, prompt, {.max_tokens = 30});
    ASSERT_TRUE(reference.ok()) << reference.status();
    grpc::ClientContext context;
    auto reader = stub->Generate(&context, Request(prompt, 30));
    std::vector<int32_t> tokens;
    internal::v1::SessionEvent e;
    while (reader->Read(&e))
      tokens.insert(tokens.end(), e.token_ids().begin(), e.token_ids().end());
    ASSERT_TRUE(reader->Finish().ok());
    EXPECT_EQ(tokens, reference->tokens) << "prompt " << i;
  }

  stub.reset();
  ASSERT_EQ(kill(child.pid(), SIGTERM), 0);
  // Well within --drain_seconds: with nothing in flight, draining is immediate.
  const absl::Time sent = absl::Now();
  EXPECT_EQ(child.Wait(absl::Now() + absl::Seconds(60)), 0) << child.output();
  EXPECT_LT(absl::Now() - sent, absl::Seconds(10));
  EXPECT_NE(child.output().find("signal 15: draining"), std::string::npos) << child.output();
  EXPECT_NE(child.output().find("stopped"), std::string::npos) << child.output();
  std::filesystem::remove(ready);
}

TEST(VerifyWorkerMainTest, BadFlagValueExitsNonZero) {
  Child child({"--model=" + kTiny, "--drafter=bogus", "--threads=1"}, {});
  ASSERT_GT(child.pid(), 0);
  EXPECT_NE(child.Wait(absl::Now() + absl::Seconds(60)), 0);
  EXPECT_NE(child.output().find("bogus"), std::string::npos) << child.output();
}

}  // namespace
}  // namespace dspark::verify::testing
