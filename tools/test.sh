#!/usr/bin/env bash
# The whole test suite, from a fresh Debian bookworm machine: installs every
# test dependency, pulls the catalogue models, builds and runs the unit tests
# once with AddressSanitizer + UndefinedBehaviorSanitizer, runs each fuzzer
# briefly, then runs the full suite (ctest) on the normal build.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
bash tools/setup.sh test

echo "== build"
bash tools/build.sh build
echo "== pull the catalogue models"
build/bin/dspark pull smollm2-135m-instruct qwen2.5-coder-0.5b-instruct gemma-3-270m

echo "== unit tests under ASan + UBSan (tests on the real models excluded: label "model")"
DSPARK_CMAKE_ARGS="-DDSPARK_SANITIZE=address,undefined" bash tools/build.sh build-asan
(cd build-asan && ctest -L unit -LE model --output-on-failure -j2 --timeout 900)

echo "== fuzzers (clang, libFuzzer): a short run of each"
CC=clang CXX=clang++ DSPARK_CMAKE_ARGS="-DDSPARK_BUILD_FUZZERS=ON" bash tools/build.sh build-fuzz fuzzers
(cd build-fuzz && ctest -L fuzz --output-on-failure --timeout 600)

echo "== full suite"
cd build && ctest --output-on-failure -j2 --timeout 1800
