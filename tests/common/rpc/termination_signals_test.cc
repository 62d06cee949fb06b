// rpc::BlockTerminationSignals and kParentPidEnv: a child process named
// its parent drains when the parent dies. A binary of its own, because it
// forks: no other thread may run when it does.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

#include "common/rpc/server.h"

namespace dspark::rpc {
namespace {

// Starts a process whose parent exits at once, with kParentPidEnv naming
// that parent or unset. The orphan calls BlockTerminationSignals() and waits
// up to `wait_s` for SIGTERM; returns the signal it got, or -1 for none.
int OrphanAwaitsSigterm(bool parent_pid_env, int wait_s) {
  int fds[2];
  if (pipe(fds) != 0) return -2;
  const pid_t middle = fork();
  if (middle == 0) {
    if (parent_pid_env) {
      setenv(kParentPidEnv, std::to_string(getpid()).c_str(), 1);
    } else {
      unsetenv(kParentPidEnv);
    }
    if (fork() == 0) {
      BlockTerminationSignals();
      sigset_t set;
      sigemptyset(&set);
      sigaddset(&set, SIGTERM);
      const timespec wait{.tv_sec = wait_s, .tv_nsec = 0};
      const int got = sigtimedwait(&set, nullptr, &wait);
      (void)!write(fds[1], &got, sizeof got);
      _exit(0);
    }
    _exit(0);  // the parent dies before or after its child's prctl
  }
  close(fds[1]);
  int status = 0;
  waitpid(middle, &status, 0);
  int got = -2;
  if (read(fds[0], &got, sizeof got) != static_cast<ssize_t>(sizeof got)) got = -2;
  close(fds[0]);
  return got;
}

// With the variable the orphan gets SIGTERM: from PR_SET_PDEATHSIG, or, when
// the parent died before prctl, from the getppid() check.
TEST(TerminationSignalsTest, ChildWithParentPidEnvIsTerminatedWhenTheParentDies) {
  EXPECT_EQ(OrphanAwaitsSigterm(/*parent_pid_env=*/true, /*wait_s=*/10), SIGTERM);
}

// Without it nothing changes: the orphan lives on.
TEST(TerminationSignalsTest, ChildWithoutParentPidEnvOutlivesItsParent) {
  EXPECT_EQ(OrphanAwaitsSigterm(/*parent_pid_env=*/false, /*wait_s=*/1), -1);
}

}  // namespace
}  // namespace dspark::rpc
