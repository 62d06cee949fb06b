// bench_kernels: micro-benchmarks of the CPU matmul kernels on the shapes of
// the real models (SmolLM2-135M: hidden 576, MLP 1536, vocab 49152; Qwen2.5-
// 0.5B: hidden 896, MLP 4864). Reports weight GB/s and GMAC/s.
//
//   build/bin/bench_kernels --benchmark_filter='Q4_1'
//
// "hot" runs reuse one weight copy (it may sit in L2/L3); "stream" rotates
// over copies totalling >= 1 GiB so weights come from DRAM, as in a real
// decode step that walks ~100 MB of layers. DSPARK_CPU_ISA picks the ISA.
// "panels" runs read the weights packed in panels of 16 rows (PanelWeights,
// the AVX2 int8 path the model uses for Q4_0 / Q4_1 / Q5_0 / Q8_0).
#include <benchmark/benchmark.h>

#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "common/engine/backend/cpu/attention.h"
#include "common/engine/backend/cpu/cpu_isa.h"
#include "common/engine/backend/cpu/matmul.h"
#include "common/engine/backend/cpu/testing/random_weights.h"
#include "common/engine/backend/cpu/thread_pool.h"

namespace dspark::engine::cpu {
namespace {

constexpr int64_t kStreamBytes = int64_t{1} << 30;

ThreadPool* Pool(int threads) {
  static ThreadPool* one = new ThreadPool(1);
  static ThreadPool* two = new ThreadPool(2);
  return threads == 1 ? one : two;
}

// Args: rows (out), cols (in), n tokens, threads, stream (0/1).
void BM_MatMul(benchmark::State& state, GgmlType type, ActivationMode mode, bool panels) {
  const int64_t rows = state.range(0), cols = state.range(1), n = state.range(2);
  const int threads = static_cast<int>(state.range(3));
  const bool stream = state.range(4) != 0;
  testing::RandomWeights master = testing::MakeRandomWeights(type, rows, cols, 7);
  const PanelWeights packed = panels ? PanelWeights::Pack(master.view) : PanelWeights();
  if (panels && packed.empty()) {
    state.SkipWithError("no panels for this type and shape");
    return;
  }
  const uint8_t* src = panels ? packed.data() : master.bytes.data();
  const int64_t bytes = master.view.nbytes;
  const int64_t copies = stream ? std::max<int64_t>(2, kStreamBytes / bytes) : 1;
  std::vector<uint8_t> pool_bytes(stream ? copies * bytes : 0);
  for (int64_t c = 0; c < (stream ? copies : 0); ++c) {
    std::memcpy(pool_bytes.data() + c * bytes, src, bytes);
  }
  std::vector<float> x(n * cols), y(n * rows);
  std::mt19937 rng(3);
  std::normal_distribution<float> dist;
  for (float& v : x) v = dist(rng);
  TensorView w = master.view;
  w.panels = panels ? packed.data() : nullptr;
  int64_t c = 0;
  for (auto _ : state) {
    if (stream) {
      (panels ? w.panels : w.data) = pool_bytes.data() + c * bytes;
      c = c + 1 == copies ? 0 : c + 1;
    }
    MatMul(w, x.data(), n, y.data(), mode, Pool(threads));
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  state.counters["GB/s"] = benchmark::Counter(static_cast<double>(bytes) * 1e-9,
                                              benchmark::Counter::kIsIterationInvariantRate);
  state.counters["GMAC/s"] = benchmark::Counter(static_cast<double>(rows * cols * n) * 1e-9,
                                                benchmark::Counter::kIsIterationInvariantRate);
  state.counters["us/token"] = benchmark::Counter(
      static_cast<double>(n) * 1e-6,
      benchmark::Counter::kIsIterationInvariantRate | benchmark::Counter::kInvert);
  state.SetLabel(std::string(IsaName(ActiveIsa())));
}

// One query head over `n` cached positions (head_dim 64, entries of 3 KV
// heads as in SmolLM2), each position's entry at its own address.
void BM_AttendHead(benchmark::State& state) {
  const int64_t n = state.range(0);
  const int hd = static_cast<int>(state.range(1));
  const int64_t entry = 3 * hd;
  std::vector<float> kv(2 * n * entry);
  std::mt19937 rng(5);
  std::normal_distribution<float> dist;
  for (float& v : kv) v = dist(rng);
  std::vector<const float*> keys(n), values(n);
  for (int64_t p = 0; p < n; ++p) {
    keys[p] = &kv[p * entry];
    values[p] = &kv[(n + p) * entry];
  }
  std::vector<float> q(hd), out(hd);
  for (float& v : q) v = dist(rng);
  const AttentionArgs args{.keys = keys.data(),
                           .values = values.data(),
                           .n = n,
                           .offset = hd,
                           .head_dim = hd,
                           .scale = 0.125f};
  for (auto _ : state) {
    AttendHead(args, q.data(), out.data());
    benchmark::DoNotOptimize(out.data());
  }
  state.counters["GFLOP/s"] = benchmark::Counter(4.0 * static_cast<double>(n * hd) * 1e-9,
                                                 benchmark::Counter::kIsIterationInvariantRate);
  state.SetLabel(std::string(IsaName(ActiveIsa())));
}
BENCHMARK(BM_AttendHead)
    ->ArgNames({"n", "hd"})
    ->Args({192, 64})
    ->Args({1024, 64})
    ->Args({192, 256});

// Round trip of one ParallelFor with an empty body: the fixed cost a
// matmul pays for using the second thread.
void BM_ParallelForOverhead(benchmark::State& state) {
  ThreadPool* pool = Pool(static_cast<int>(state.range(0)));
  for (auto _ : state) {
    pool->ParallelFor(
        64, [](int64_t b, int64_t e) { benchmark::DoNotOptimize(b + e); }, 1);
  }
}
BENCHMARK(BM_ParallelForOverhead)->Arg(1)->Arg(2)->UseRealTime();

struct Shape {
  int64_t rows, cols;
};

void Register(const char* name, GgmlType type, ActivationMode mode, std::vector<Shape> shapes,
              std::vector<int64_t> ns, bool with_stream, bool panels = false) {
  auto* b = benchmark::RegisterBenchmark(name, BM_MatMul, type, mode, panels);
  b->ArgNames({"out", "in", "n", "thr", "stream"})->Unit(benchmark::kMicrosecond)->UseRealTime();
  for (const Shape& s : shapes) {
    for (int64_t n : ns) {
      for (int threads : {1, 2}) {
        b->Args({s.rows, s.cols, n, threads, 0});
        if (with_stream && n == 1) b->Args({s.rows, s.cols, n, threads, 1});
      }
    }
  }
}

const int kRegistered = [] {
  const std::vector<Shape> smol = {{576, 1536}, {1536, 576}, {49152, 576}};
  // Qwen2.5-0.5B's down projection (K-quants need in % 256 == 0) and its
  // gate/up projection (Q5_0 in the Q4_K_M file).
  const std::vector<Shape> qwen_down = {{896, 4864}};
  const std::vector<Shape> qwen = {{896, 4864}, {4864, 896}};
  const std::vector<int64_t> decode = {1};
  const std::vector<int64_t> batch = {1, 2, 4, 8, 16, 64};
  Register("Q4_1/int8", GgmlType::kQ4_1, ActivationMode::kInt8, smol, decode, true);
  Register("Q8_0/int8", GgmlType::kQ8_0, ActivationMode::kInt8, smol, decode, true);
  Register("Q4_1/int8/batch", GgmlType::kQ4_1, ActivationMode::kInt8, {{1536, 576}}, batch, false);
  Register("Q8_0/int8/batch", GgmlType::kQ8_0, ActivationMode::kInt8, {{1536, 576}}, batch, false);
  Register("Q4_1/int8/panels", GgmlType::kQ4_1, ActivationMode::kInt8, smol, decode, true, true);
  Register("Q4_1/int8/panels/batch", GgmlType::kQ4_1, ActivationMode::kInt8, {{1536, 576}}, batch,
           false, true);
  Register("Q5_0/int8/panels", GgmlType::kQ5_0, ActivationMode::kInt8, qwen, decode, false, true);
  Register("Q5_0/int8/panels/batch", GgmlType::kQ5_0, ActivationMode::kInt8, {{4864, 896}}, batch,
           false, true);
  Register("Q8_0/int8/panels/batch", GgmlType::kQ8_0, ActivationMode::kInt8, {{1536, 576}}, batch,
           false, true);
  Register("Q4_0/int8", GgmlType::kQ4_0, ActivationMode::kInt8, {{1536, 576}}, decode, false);
  Register("Q5_0/int8", GgmlType::kQ5_0, ActivationMode::kInt8, qwen, decode, false);
  Register("Q5_0/int8/batch", GgmlType::kQ5_0, ActivationMode::kInt8, {{4864, 896}}, batch, false);
  // Qwen2.5's 152k-row LM head (too big for any cache: always streams).
  Register("Q8_0/int8/lm_head", GgmlType::kQ8_0, ActivationMode::kInt8, {{151936, 896}}, {1, 8},
           false);
  Register("Q4_K/int8", GgmlType::kQ4_K, ActivationMode::kInt8, qwen_down, batch, true);
  Register("Q6_K/int8", GgmlType::kQ6_K, ActivationMode::kInt8, qwen_down, batch, true);
  Register("Q4_1/exact", GgmlType::kQ4_1, ActivationMode::kExact, {{1536, 576}}, {1, 8}, false);
  Register("Q4_K/exact", GgmlType::kQ4_K, ActivationMode::kExact, {{896, 4864}}, {1, 8}, false);
  Register("F32", GgmlType::kF32, ActivationMode::kExact, {{1536, 576}}, {1, 8}, true);
  Register("F16", GgmlType::kF16, ActivationMode::kExact, {{1536, 576}}, {1, 8}, true);
  Register("BF16", GgmlType::kBF16, ActivationMode::kExact, {{896, 4864}}, {1, 8}, true);
  return 0;
}();

}  // namespace
}  // namespace dspark::engine::cpu

BENCHMARK_MAIN();
