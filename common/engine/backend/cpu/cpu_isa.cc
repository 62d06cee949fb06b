#include "common/engine/backend/cpu/cpu_isa.h"

#include <cstdlib>
#include <string>

#if defined(__x86_64__)
#include <cpuid.h>
#endif

#include "common/base/logging.h"

namespace dspark::engine::cpu {
namespace {

#if defined(__x86_64__)
// F16C (CPUID leaf 1, ECX bit 29): clang 14's __builtin_cpu_supports lacks it.
bool HasF16c() {
  unsigned a, b, c, d;
  return __get_cpuid(1, &a, &b, &c, &d) && (c & (1u << 29)) != 0;
}
#endif

bool DetectAvx2() {
#if defined(__x86_64__)
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && HasF16c();
#else
  return false;
#endif
}

bool DetectAvx512() {
#if defined(__x86_64__)
  __builtin_cpu_init();
  return DetectAvx2() && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
         __builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("avx512vbmi");
#else
  return false;
#endif
}

Isa ChooseIsa() {
  Isa best = DetectAvx512() ? Isa::kAvx512 : DetectAvx2() ? Isa::kAvx2 : Isa::kScalar;
  const char* env = std::getenv("DSPARK_CPU_ISA");
  if (env == nullptr || *env == '\0') return best;
  const std::string want(env);
  for (Isa isa : {Isa::kScalar, Isa::kAvx2, Isa::kAvx512}) {
    if (want != IsaName(isa)) continue;
    if (IsaSupported(isa)) return isa;
    DSPARK_LOG(WARNING) << "DSPARK_CPU_ISA=" << want << " not supported by this CPU; using "
                        << IsaName(best);
    return best;
  }
  DSPARK_LOG(WARNING) << "DSPARK_CPU_ISA=" << want << " unknown (scalar|avx2|avx512); using "
                      << IsaName(best);
  return best;
}

}  // namespace

std::string_view IsaName(Isa isa) {
  switch (isa) {
    case Isa::kScalar:
      return "scalar";
    case Isa::kAvx2:
      return "avx2";
    case Isa::kAvx512:
      return "avx512";
  }
  return "?";
}

bool IsaSupported(Isa isa) {
  static const bool avx2 = DetectAvx2();
  static const bool avx512 = DetectAvx512();
  switch (isa) {
    case Isa::kScalar:
      return true;
    case Isa::kAvx2:
      return avx2;
    case Isa::kAvx512:
      return avx512;
  }
  return false;
}

Isa ActiveIsa() {
  static const Isa isa = ChooseIsa();
  return isa;
}

}  // namespace dspark::engine::cpu
