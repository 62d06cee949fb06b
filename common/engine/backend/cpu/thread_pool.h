// A persistent pool of worker threads for splitting a kernel's outputs.
// ParallelFor is called from one thread at a time (the engine's step thread);
// the calling thread takes part in the work. Workers sleep when idle.
//
//   ThreadPool pool(2);
//   pool.ParallelFor(rows, [&](int64_t begin, int64_t end) { ... });
#pragma once

#include <cstdint>
#include <functional>

namespace dspark::engine::cpu {

class ThreadPool {
 public:
  // num_threads >= 1 counts the calling thread; 0 means all cores.
  explicit ThreadPool(int num_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int num_threads() const;

  // Splits [0, n) into num_threads() contiguous static ranges (each a multiple
  // of `grain` except the last) and runs fn(begin, end) on each, returning
  // when all are done. Splits outputs only: fn must not reduce across ranges.
  void ParallelFor(int64_t n, const std::function<void(int64_t, int64_t)>& fn, int64_t grain = 1);

 private:
  struct Impl;
  Impl* impl_;
};

}  // namespace dspark::engine::cpu
