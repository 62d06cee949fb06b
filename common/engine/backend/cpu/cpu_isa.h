// Instruction-set selection for the CPU kernels: detected once per process
// from cpuid, overridable with DSPARK_CPU_ISA=scalar|avx2|avx512 (tests).
// Thread-safe: the choice is computed once and never changes.
#pragma once

#include <string_view>

namespace dspark::engine::cpu {

enum class Isa {
  kScalar = 0,  // portable C++
  kAvx2 = 1,    // AVX2 + FMA + F16C
  kAvx512 = 2,  // AVX-512 F/BW/VL/DQ + VNNI + VBMI (Ice Lake, Zen 4 and later)
};
inline constexpr int kNumIsas = 3;

std::string_view IsaName(Isa isa);

// Whether this CPU (and OS) can run kernels for `isa`.
bool IsaSupported(Isa isa);

// The best supported ISA, or the one DSPARK_CPU_ISA names (falling back to
// the best supported one, with a warning, if the CPU lacks it).
Isa ActiveIsa();

}  // namespace dspark::engine::cpu
