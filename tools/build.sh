#!/usr/bin/env bash
# Configures and builds dspark with Ninja (ccache when present).
#   tools/build.sh [BUILD_DIR [TARGET...]] (extra CMake args in $DSPARK_CMAKE_ARGS)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
dir="${1:-$root/build}"
shift || true
launcher=()
if command -v ccache >/dev/null; then
  export CCACHE_DIR="${CCACHE_DIR:-$HOME/.cache/dspark/ccache}"
  # Fresh clones (CI) sit at new paths: hash relative paths so they hit.
  export CCACHE_BASEDIR="$root" CCACHE_NOHASHDIR=1
  launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_C_COMPILER_LAUNCHER=ccache)
fi
if [ ! -f "$dir/build.ninja" ]; then
  # shellcheck disable=SC2086
  cmake -S "$root" -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo "${launcher[@]}" \
    ${DSPARK_CMAKE_ARGS:-}
fi
ninja -C "$dir" -j"${DSPARK_JOBS:-$(nproc)}" "$@"
