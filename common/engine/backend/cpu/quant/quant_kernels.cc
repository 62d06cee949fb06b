#include "common/engine/backend/cpu/quant/quant_kernels.h"

namespace dspark::engine::cpu::quant {

const TypeKernels* FindTypeKernels(GgmlType type) {
  switch (type) {
    case GgmlType::kF32:
      return &kF32Kernels;
    case GgmlType::kF16:
      return &kF16Kernels;
    case GgmlType::kBF16:
      return &kBF16Kernels;
    case GgmlType::kQ4_0:
      return &kQ4_0Kernels;
    case GgmlType::kQ4_1:
      return &kQ4_1Kernels;
    case GgmlType::kQ5_0:
      return &kQ5_0Kernels;
    case GgmlType::kQ8_0:
      return &kQ8_0Kernels;
    case GgmlType::kQ4_K:
      return &kQ4_KKernels;
    case GgmlType::kQ6_K:
      return &kQ6_KKernels;
    default:
      return nullptr;
  }
}

}  // namespace dspark::engine::cpu::quant
