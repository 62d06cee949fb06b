#include "common/engine/tensor/ggml_type.h"

namespace dspark::engine {

const GgmlTypeInfo* FindGgmlType(uint32_t id) {
  static const GgmlTypeInfo kF32{"F32", 1, 4, true};
  static const GgmlTypeInfo kF16{"F16", 1, 2, true};
  static const GgmlTypeInfo kBF16{"BF16", 1, 2, true};
  static const GgmlTypeInfo kQ4_0{"Q4_0", 32, 18, true};
  static const GgmlTypeInfo kQ4_1{"Q4_1", 32, 20, true};
  static const GgmlTypeInfo kQ5_0{"Q5_0", 32, 22, true};
  static const GgmlTypeInfo kQ5_1{"Q5_1", 32, 24, false};
  static const GgmlTypeInfo kQ8_0{"Q8_0", 32, 34, true};
  static const GgmlTypeInfo kQ8_1{"Q8_1", 32, 36, false};
  static const GgmlTypeInfo kQ2_K{"Q2_K", 256, 84, false};
  static const GgmlTypeInfo kQ3_K{"Q3_K", 256, 110, false};
  static const GgmlTypeInfo kQ4_K{"Q4_K", 256, 144, true};
  static const GgmlTypeInfo kQ5_K{"Q5_K", 256, 176, false};
  static const GgmlTypeInfo kQ6_K{"Q6_K", 256, 210, true};
  static const GgmlTypeInfo kQ8_K{"Q8_K", 256, 292, false};
  switch (static_cast<GgmlType>(id)) {
    case GgmlType::kF32: return &kF32;
    case GgmlType::kF16: return &kF16;
    case GgmlType::kBF16: return &kBF16;
    case GgmlType::kQ4_0: return &kQ4_0;
    case GgmlType::kQ4_1: return &kQ4_1;
    case GgmlType::kQ5_0: return &kQ5_0;
    case GgmlType::kQ5_1: return &kQ5_1;
    case GgmlType::kQ8_0: return &kQ8_0;
    case GgmlType::kQ8_1: return &kQ8_1;
    case GgmlType::kQ2_K: return &kQ2_K;
    case GgmlType::kQ3_K: return &kQ3_K;
    case GgmlType::kQ4_K: return &kQ4_K;
    case GgmlType::kQ5_K: return &kQ5_K;
    case GgmlType::kQ6_K: return &kQ6_K;
    case GgmlType::kQ8_K: return &kQ8_K;
  }
  return nullptr;
}

}  // namespace dspark::engine
