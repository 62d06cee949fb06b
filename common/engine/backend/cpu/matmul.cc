// MatMul: picks the type's row kernel for the active ISA, quantizes the
// activations once per token (kInt8) and splits output rows over the pool.
#include "common/engine/backend/cpu/matmul.h"

#include <cstdlib>
#include <memory>

#include "common/base/logging.h"
#include "common/engine/backend/cpu/quant/activations.h"
#include "common/engine/backend/cpu/quant/quant_kernels.h"
#include "common/engine/backend/cpu/thread_pool.h"

namespace dspark::engine::cpu {
namespace {

using quant::RowsArgs;
using quant::TypeKernels;

// Rows per thread-range unit: ranges stay multiples of it (row chunks of
// the kernels never straddle two threads' ranges needlessly).
constexpr int64_t kRowGrain = 16;
// Below this many weight bytes times tokens a second thread costs more to
// wake than it saves.
constexpr int64_t kMinParallelBytes = 48 * 1024;

// Grow-only, 64-byte-aligned scratch for quantized activations, one per
// calling thread (workers only read it during that thread's ParallelFor).
class Scratch {
 public:
  uint8_t* Get(int64_t bytes) {
    if (bytes > capacity_) {
      capacity_ = (bytes + 4095) / 4096 * 4096;
      data_.reset(static_cast<uint8_t*>(std::aligned_alloc(64, capacity_)));
    }
    return data_.get();
  }

 private:
  struct Free {
    void operator()(uint8_t* p) const { std::free(p); }
  };
  std::unique_ptr<uint8_t, Free> data_;
  int64_t capacity_ = 0;
};

thread_local Scratch t_scratch;

const TypeKernels& KernelsFor(const TensorView& w) {
  const TypeKernels* k = quant::FindTypeKernels(w.type);
  DSPARK_CHECK(k != nullptr) << "no CPU kernels for tensor " << w.name << " of type "
                             << static_cast<uint32_t>(w.type);
  return *k;
}

}  // namespace

void MatMul(const TensorView& w, const float* x, int64_t n, float* y, ActivationMode mode,
            ThreadPool* pool) {
  MatMul(w, x, n, y, mode, pool, ActiveIsa());
}

void MatMul(const TensorView& w, const float* x, int64_t n, float* y, ActivationMode mode,
            ThreadPool* pool, Isa isa) {
  if (n <= 0) return;
  const TypeKernels& k = KernelsFor(w);
  DSPARK_CHECK(IsaSupported(isa)) << IsaName(isa);
  const int64_t rows = w.rows(), cols = w.cols();
  DSPARK_CHECK(cols % k.block_size == 0) << w.name << ": " << cols << " columns";
  const int isa_index = static_cast<int>(isa);
  const bool int8 = mode == ActivationMode::kInt8 && k.int8[isa_index] != nullptr;
  const bool parallel = pool != nullptr && pool->num_threads() > 1;

  RowsArgs a;
  a.w = w.data;
  a.row_bytes = RowBytes(w.type, cols);
  a.cols = cols;
  a.n = n;
  a.y = y;
  a.ldy = rows;
  if (int8) {
    const int64_t stride = quant::ActBytesPerToken(k.int8_format, cols);
    uint8_t* buf = t_scratch.Get(n * stride);
    auto quantize = [&](int64_t t0, int64_t t1) {
      for (int64_t t = t0; t < t1; ++t) {
        quant::QuantizeActivations(k.int8_format, k.int8_offset, x + t * cols, cols,
                                   buf + t * stride, isa);
      }
    };
    if (parallel && n >= 8) {
      pool->ParallelFor(n, quantize);
    } else {
      quantize(0, n);
    }
    a.x = buf;
    a.x_stride = stride;
  } else {
    a.x = reinterpret_cast<const uint8_t*>(x);
    a.x_stride = cols * static_cast<int64_t>(sizeof(float));
  }

  const quant::RowsKernel kernel = int8 ? k.int8[isa_index] : k.exact[isa_index];
  if (parallel && rows > kRowGrain && rows * a.row_bytes * n >= kMinParallelBytes) {
    pool->ParallelFor(
        rows,
        [&](int64_t begin, int64_t end) {
          RowsArgs part = a;
          part.row_begin = begin;
          part.row_end = end;
          kernel(part);
        },
        kRowGrain);
  } else {
    a.row_begin = 0;
    a.row_end = rows;
    kernel(a);
  }
}

void DequantizeRow(const TensorView& w, int64_t row, float* out) {
  const TypeKernels& k = KernelsFor(w);
  const int64_t cols = w.cols();
  DSPARK_CHECK(row >= 0 && row < w.rows()) << w.name << ": row " << row;
  k.dequantize(w.data + row * RowBytes(w.type, cols), out, cols);
}

}  // namespace dspark::engine::cpu
