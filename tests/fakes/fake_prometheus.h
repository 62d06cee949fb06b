// FakePrometheus: an HTTP server on 127.0.0.1 (port chosen at run time) that
// answers /api/v1/query like Prometheus for dspark's load queries, and can
// misbehave on purpose (errors, garbage, NaN, stale samples, slowness) to
// test the cluster scheduler's fallbacks. Test-only. Thread-safe.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <thread>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace httplib {
class Server;
}

namespace dspark::testing {

class FakePrometheus {
 public:
  enum class Mode { kGood, kHttpError, kGarbage, kNaN, kStale, kSlow };
  struct Load {
    double running = 0, waiting = 0, kv_usage = 0, step_seconds = 0.01, acceptance = 0.5;
  };

  FakePrometheus();  // starts serving
  ~FakePrometheus();

  std::string url() const;  // "http://127.0.0.1:P"
  void SetMode(Mode mode);
  void SetLoad(const std::string& worker, const Load& load);
  // Queries answered so far.
  int queries() const;

 private:
  std::string Answer(const std::string& promql);

  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
  int port_ = 0;
  mutable absl::Mutex mu_;
  Mode mode_ ABSL_GUARDED_BY(mu_) = Mode::kGood;
  std::map<std::string, Load> loads_ ABSL_GUARDED_BY(mu_);
  int queries_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace dspark::testing
