// ThreadPool: persistent workers woken per ParallelFor by bumping a
// generation counter. Workers spin briefly on the counter (back-to-back
// kernels in a decode step then cost no syscall), then sleep on a condition
// variable. The caller runs range 0 itself and waits the same way.
#include "common/engine/backend/cpu/thread_pool.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

#include "common/base/logging.h"

namespace dspark::engine::cpu {
namespace {

// How long an idle thread polls before it blocks. Long enough to bridge the
// gap between two matmuls of one layer, short enough not to steal a core
// from other processes when the engine is idle.
constexpr std::chrono::microseconds kSpinTime{50};
// The first part of it is a pure busy spin (lowest latency on idle cores).
constexpr std::chrono::microseconds kBusySpinTime{5};

inline void CpuRelax() {
#if defined(__x86_64__) || defined(__i386__)
  _mm_pause();
#endif
}

// Set while a thread is inside a ParallelFor body: a nested ParallelFor on
// any pool then runs inline instead of deadlocking.
thread_local bool t_in_parallel_for = false;

// Polls `done()` for up to kSpinTime; returns whether it became true. After
// a short busy spin it yields between polls, so that on an oversubscribed
// machine the thread it waits for can run on this core.
template <class Pred>
bool SpinUntil(Pred done) {
  const auto start = std::chrono::steady_clock::now();
  const auto busy_until = start + kBusySpinTime;
  const auto deadline = start + kSpinTime;
  for (;;) {
    for (int i = 0; i < 32; ++i) {
      if (done()) return true;
      CpuRelax();
    }
    const auto now = std::chrono::steady_clock::now();
    if (now >= deadline) return done();
    if (now >= busy_until) std::this_thread::yield();
  }
}

}  // namespace

struct ThreadPool::Impl {
  int num_threads = 1;
  std::vector<std::thread> workers;

  // The current job, written by the caller before `generation` is bumped
  // (release) and read by workers after they see the bump (acquire).
  const std::function<void(int64_t, int64_t)>* fn = nullptr;
  int64_t n = 0;
  int64_t grain = 1;

  std::atomic<uint64_t> generation{0};
  std::atomic<int> pending{0};  // workers still running the current job
  std::atomic<bool> stop{false};
  std::atomic<bool> in_use{false};  // guards the one-caller-at-a-time contract

  // Sleep/wake. The counters are seq_cst atomics so that "publish, then check
  // for sleepers" on one side and "announce sleeping, then re-check" on the
  // other cannot both miss each other.
  std::mutex mu;
  std::condition_variable work_cv;  // workers wait for a new generation
  std::condition_variable done_cv;  // the caller waits for pending == 0
  std::atomic<int> sleeping_workers{0};
  std::atomic<bool> caller_sleeping{false};

  // Range of part `i` of num_threads: whole grains, the tail in the last.
  void Range(int i, int64_t* begin, int64_t* end) const {
    const int64_t chunks = (n + grain - 1) / grain;
    const int64_t c0 = chunks * i / num_threads;
    const int64_t c1 = chunks * (i + 1) / num_threads;
    *begin = std::min(n, c0 * grain);
    *end = std::min(n, c1 * grain);
  }

  void RunPart(int i) {
    int64_t begin, end;
    Range(i, &begin, &end);
    if (begin < end) {
      t_in_parallel_for = true;
      (*fn)(begin, end);
      t_in_parallel_for = false;
    }
  }

  void WorkerLoop(int index) {
    uint64_t seen = 0;
    for (;;) {
      auto has_work = [&] { return generation.load() != seen || stop.load(); };
      if (!SpinUntil(has_work)) {
        std::unique_lock<std::mutex> lock(mu);
        sleeping_workers.fetch_add(1);
        work_cv.wait(lock, has_work);
        sleeping_workers.fetch_sub(1);
      }
      if (stop.load(std::memory_order_acquire)) return;
      seen = generation.load(std::memory_order_acquire);
      RunPart(index);
      if (pending.fetch_sub(1) == 1 && caller_sleeping.load()) {
        std::lock_guard<std::mutex> lock(mu);
        done_cv.notify_one();
      }
    }
  }
};

ThreadPool::ThreadPool(int num_threads) : impl_(new Impl) {
  if (num_threads <= 0) num_threads = static_cast<int>(std::thread::hardware_concurrency());
  impl_->num_threads = std::max(1, num_threads);
  for (int i = 1; i < impl_->num_threads; ++i) {
    impl_->workers.emplace_back([this, i] { impl_->WorkerLoop(i); });
  }
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    impl_->stop.store(true);
  }
  impl_->work_cv.notify_all();
  for (std::thread& t : impl_->workers) t.join();
  delete impl_;
}

int ThreadPool::num_threads() const { return impl_->num_threads; }

void ThreadPool::ParallelFor(int64_t n, const std::function<void(int64_t, int64_t)>& fn,
                             int64_t grain) {
  if (n <= 0) return;
  grain = std::max<int64_t>(1, grain);
  Impl& p = *impl_;
  // One thread, one grain, or a nested call: run inline as a single range.
  if (p.num_threads == 1 || n <= grain || t_in_parallel_for) {
    fn(0, n);
    return;
  }
  DSPARK_CHECK(!p.in_use.exchange(true, std::memory_order_acquire))
      << "ThreadPool::ParallelFor called from two threads at once";
  p.fn = &fn;
  p.n = n;
  p.grain = grain;
  p.pending.store(p.num_threads - 1, std::memory_order_relaxed);
  p.generation.fetch_add(1);  // seq_cst: publishes the job
  if (p.sleeping_workers.load() > 0) {
    std::lock_guard<std::mutex> lock(p.mu);
    p.work_cv.notify_all();
  }
  p.RunPart(0);
  auto all_done = [&] { return p.pending.load() == 0; };
  if (!SpinUntil(all_done)) {
    std::unique_lock<std::mutex> lock(p.mu);
    p.caller_sleeping.store(true);
    p.done_cv.wait(lock, all_done);
    p.caller_sleeping.store(false);
  }
  p.fn = nullptr;
  p.in_use.store(false, std::memory_order_release);
}

}  // namespace dspark::engine::cpu
