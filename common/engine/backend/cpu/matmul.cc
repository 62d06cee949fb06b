// MatMul / MatMulShared: picks each weight's row kernel for the ISA,
// quantizes the activations once per token and layout (kInt8) and splits the
// output rows over the pool.
#include "common/engine/backend/cpu/matmul.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <memory>

#include "common/base/logging.h"
#include "common/engine/backend/cpu/quant/activations.h"
#include "common/engine/backend/cpu/quant/panel16.h"
#include "common/engine/backend/cpu/quant/quant_kernels.h"
#include "common/engine/backend/cpu/quant/simd.h"
#include "common/engine/backend/cpu/thread_pool.h"

namespace dspark::engine::cpu {
namespace {

using quant::RowsArgs;
using quant::TypeKernels;

// Rows per thread-range unit: ranges stay multiples of it (row chunks of
// the kernels never straddle two threads' ranges needlessly; panel kernels
// need whole panels).
constexpr int64_t kRowGrain = quant::kPanelRows;
// Below this many weight bytes times tokens a second thread costs more to
// wake than it saves.
constexpr int64_t kMinParallelBytes = 48 * 1024;
// Fewer tokens than this are quantized by the calling thread alone: a few
// microseconds, less than waking the pool and waiting for it once more.
constexpr int64_t kMinParallelQuantizeTokens = 16;

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
  const MatMulTarget target{&w, y};
  MatMulShared(&target, 1, x, n, mode, pool, isa);
}

void MatMulShared(const MatMulTarget* targets, int count, const float* x, int64_t n,
                  ActivationMode mode, ThreadPool* pool) {
  MatMulShared(targets, count, x, n, mode, pool, ActiveIsa());
}

void MatMulShared(const MatMulTarget* targets, int count, const float* x, int64_t n,
                  ActivationMode mode, ThreadPool* pool, Isa isa) {
  if (n <= 0 || count <= 0) return;
  DSPARK_CHECK(count <= kMaxSharedTargets) << count << " matmul targets";
  DSPARK_CHECK(IsaSupported(isa)) << IsaName(isa);
  const int isa_index = static_cast<int>(isa);
  const bool parallel = pool != nullptr && pool->num_threads() > 1;
  const int64_t cols = targets[0].w->cols();

  // Distinct int8 activation layouts among the targets, each quantized once.
  struct Layout {
    quant::ActFormat format;
    int offset;
    int64_t stride;  // bytes per token
    int64_t start;   // byte offset in the scratch buffer
  };
  Layout layouts[kMaxSharedTargets];
  int num_layouts = 0;
  int64_t scratch_bytes = 0;
  quant::RowsKernel kernels[kMaxSharedTargets];
  RowsArgs args[kMaxSharedTargets];
  int layout_of[kMaxSharedTargets];
  int64_t first_row[kMaxSharedTargets];
  int64_t total_rows = 0, work = 0;
  for (int i = 0; i < count; ++i) {
    const TensorView& w = *targets[i].w;
    const TypeKernels& k = KernelsFor(w);
    DSPARK_CHECK(w.cols() == cols) << w.name << ": " << w.cols() << " columns, not " << cols;
    DSPARK_CHECK(cols % k.block_size == 0) << w.name << ": " << cols << " columns";
    const bool int8 = mode == ActivationMode::kInt8 && k.int8[isa_index] != nullptr;
    const bool panels = int8 && isa == Isa::kAvx2 && w.panels != nullptr;
    kernels[i] = panels ? quant::PanelKernel(w.type) : int8 ? k.int8[isa_index] : k.exact[isa_index];
    RowsArgs& a = args[i];
    a.w = panels ? w.panels : w.data;
    a.row_bytes = RowBytes(w.type, cols);
    a.cols = cols;
    a.n = n;
    a.y = targets[i].y;
    a.ldy = w.rows();
    // Targets are laid end to end, each from a multiple of kRowGrain (= the
    // panel height), so thread ranges split panels only on their boundaries.
    first_row[i] = (total_rows + kRowGrain - 1) / kRowGrain * kRowGrain;
    total_rows = first_row[i] + w.rows();
    work += w.rows() * a.row_bytes * n;
    layout_of[i] = -1;
    if (!int8) {
      a.x = reinterpret_cast<const uint8_t*>(x);
      a.x_stride = cols * static_cast<int64_t>(sizeof(float));
      continue;
    }
    for (int l = 0; l < num_layouts; ++l) {
      if (layouts[l].format == k.int8_format && layouts[l].offset == k.int8_offset)
        layout_of[i] = l;
    }
    if (layout_of[i] < 0) {
      const int64_t stride = quant::ActBytesPerToken(k.int8_format, cols);
      layouts[num_layouts] = {k.int8_format, k.int8_offset, stride, scratch_bytes};
      scratch_bytes += n * stride;
      layout_of[i] = num_layouts++;
    }
  }

  if (num_layouts > 0) {
    uint8_t* buf = t_scratch.Get(scratch_bytes);
    auto quantize = [&](int64_t t0, int64_t t1) {
      for (int l = 0; l < num_layouts; ++l) {
        const Layout& lay = layouts[l];
        for (int64_t t = t0; t < t1; ++t) {
          quant::QuantizeActivations(lay.format, lay.offset, x + t * cols, cols,
                                     buf + lay.start + t * lay.stride, isa);
        }
      }
    };
    if (parallel && n >= kMinParallelQuantizeTokens) {
      pool->ParallelFor(n, quantize);
    } else {
      quantize(0, n);
    }
    for (int i = 0; i < count; ++i) {
      if (layout_of[i] < 0) continue;
      args[i].x = buf + layouts[layout_of[i]].start;
      args[i].x_stride = layouts[layout_of[i]].stride;
    }
  }

  // Rows [begin, end) of the targets' outputs laid end to end.
  auto run = [&](int64_t begin, int64_t end) {
    for (int i = 0; i < count; ++i) {
      const int64_t first = first_row[i], rows = args[i].ldy;
      const int64_t b = std::max(begin, first), e = std::min(end, first + rows);
      if (b < e) {
        RowsArgs part = args[i];
        part.row_begin = b - first;
        part.row_end = e - first;
        kernels[i](part);
      }
    }
  };
  if (parallel && total_rows > kRowGrain && work >= kMinParallelBytes) {
    pool->ParallelFor(total_rows, run, kRowGrain);
  } else {
    run(0, total_rows);
  }
}

PanelWeights PanelWeights::Pack(const TensorView& w) {
  PanelWeights p;
  if (!quant::HasPanelKernels(w.type) || w.rows() % quant::kPanelRows != 0) return p;
  const int64_t bytes = w.rows() * RowBytes(w.type, w.cols());
  p.data_.reset(static_cast<uint8_t*>(std::aligned_alloc(64, (bytes + 63) / 64 * 64)));
  quant::PackPanels(w.type, w.data, w.rows(), w.cols(), p.data_.get());
  return p;
}

void PanelWeights::Free::operator()(uint8_t* p) const { std::free(p); }

std::vector<uint8_t> QuantizeToQ8_0(const TensorView& w) {
  const bool float_type =
      w.type == GgmlType::kBF16 || w.type == GgmlType::kF16 || w.type == GgmlType::kF32;
  const int64_t cols = w.cols();
  if (!float_type || cols % 32 != 0) return {};
  constexpr int kBlockBytes = 34;  // {f16 d; i8 qs[32]}
  std::vector<uint8_t> out(static_cast<size_t>(w.rows() * RowBytes(GgmlType::kQ8_0, cols)));
  std::vector<float> row(cols);
  uint8_t* block = out.data();
  for (int64_t r = 0; r < w.rows(); ++r) {
    DequantizeRow(w, r, row.data());
    for (int64_t b = 0; b < cols; b += 32, block += kBlockBytes) {
      float amax = 0;
      for (int i = 0; i < 32; ++i) amax = std::max(amax, std::fabs(row[b + i]));
      const float d = amax / 127;
      const float inv = d > 0 ? 1 / d : 0;
      const uint16_t h = quant::F32ToF16(d);
      std::memcpy(block, &h, 2);
      for (int i = 0; i < 32; ++i) {
        block[2 + i] = static_cast<uint8_t>(static_cast<int8_t>(std::lround(row[b + i] * inv)));
      }
    }
  }
  return out;
}

Int8Weights::Int8Weights(ActivationMode mode, bool quantize_float, bool panels)
    : quantize_float_(quantize_float && mode == ActivationMode::kInt8),
      panels_(panels && mode == ActivationMode::kInt8 && ActiveIsa() == Isa::kAvx2) {}

const TensorView* Int8Weights::Use(const TensorView* w) {
  if (quantize_float_) {
    std::vector<uint8_t> q8 = QuantizeToQ8_0(*w);
    if (!q8.empty()) {
      TensorView& view = views_.emplace_back(*w);
      view.type = GgmlType::kQ8_0;
      view.data = q8.data();
      view.nbytes = static_cast<int64_t>(q8.size());
      q8_.push_back(std::move(q8));  // moving keeps the bytes where view.data points
      w = &view;
    }
  }
  if (panels_) {
    PanelWeights packed = PanelWeights::Pack(*w);
    if (!packed.empty()) {
      TensorView& view = views_.emplace_back(*w);
      view.panels = packed.data();
      packed_.push_back(std::move(packed));
      w = &view;
    }
  }
  return w;
}

void DequantizeRow(const TensorView& w, int64_t row, float* out) {
  const TypeKernels& k = KernelsFor(w);
  const int64_t cols = w.cols();
  DSPARK_CHECK(row >= 0 && row < w.rows()) << w.name << ": row " << row;
  k.dequantize(w.data + row * RowBytes(w.type, cols), out, cols);
}

}  // namespace dspark::engine::cpu
