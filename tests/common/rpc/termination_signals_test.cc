// rpc::BlockTerminationSignals and kParentPidEnv: a child process named
// its parent drains when the parent dies. A binary of its own, because it
// forks: no other thread may run when it does.
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

#include "common/rpc/server.h"

namespace dspark::rpc {
namespace {

// A child started with kParentPidEnv naming its parent gets SIGTERM when
// that parent dies (here: exits at once after starting it, so the child
// sees either the death signal or an already-reparented getppid()).
TEST(TerminationSignalsTest, ChildWithParentPidEnvIsTerminatedWhenTheParentDies) {
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  const pid_t middle = fork();
  ASSERT_GE(middle, 0);
  if (middle == 0) {
    setenv(kParentPidEnv, std::to_string(getpid()).c_str(), 1);
    if (fork() == 0) {
      BlockTerminationSignals();
      const pid_t self = getpid();
      (void)!write(fds[1], &self, sizeof self);
      const int signal = WaitForTerminationSignal();
      (void)!write(fds[1], &signal, sizeof signal);
      _exit(0);
    }
    _exit(0);  // the parent dies; its child must hear of it
  }
  close(fds[1]);
  int status = 0;
  ASSERT_EQ(waitpid(middle, &status, 0), middle);
  pid_t child = 0;
  ASSERT_EQ(read(fds[0], &child, sizeof child), static_cast<ssize_t>(sizeof child));
  pollfd p{.fd = fds[0], .events = POLLIN};
  if (poll(&p, 1, 10000) != 1) {
    kill(child, SIGKILL);
    FAIL() << "the orphaned child got no SIGTERM in 10 s";
  }
  int signal = 0;
  ASSERT_EQ(read(fds[0], &signal, sizeof signal), static_cast<ssize_t>(sizeof signal));
  EXPECT_EQ(signal, SIGTERM);
  close(fds[0]);
}

// Without the variable nothing changes: a child outlives its parent.
TEST(TerminationSignalsTest, ChildWithoutParentPidEnvOutlivesItsParent) {
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  const pid_t middle = fork();
  ASSERT_GE(middle, 0);
  if (middle == 0) {
    unsetenv(kParentPidEnv);
    if (fork() == 0) {
      BlockTerminationSignals();
      sigset_t set;
      sigemptyset(&set);
      sigaddset(&set, SIGTERM);
      const timespec wait{.tv_sec = 1, .tv_nsec = 0};
      const int got = sigtimedwait(&set, nullptr, &wait);  // -1: none came
      (void)!write(fds[1], &got, sizeof got);
      _exit(0);
    }
    _exit(0);
  }
  close(fds[1]);
  int status = 0;
  ASSERT_EQ(waitpid(middle, &status, 0), middle);
  int got = 0;
  ASSERT_EQ(read(fds[0], &got, sizeof got), static_cast<ssize_t>(sizeof got));
  EXPECT_EQ(got, -1) << "signal " << got;
  close(fds[0]);
}

}  // namespace
}  // namespace dspark::rpc
