#!/usr/bin/env bash
# Installs what dspark needs on a Debian bookworm machine (run as root).
#   tools/setup.sh serve   build deps + a lean .venv (pip only): enough to build and serve
#   tools/setup.sh test    everything tests and tools need (torch, transformers, llama.cpp, ...)
# Idempotent: a second run skips what is already there.
set -euo pipefail
mode="${1:-serve}"
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

apt_pkgs=(build-essential cmake ninja-build ccache pkg-config git ca-certificates unzip zlib1g-dev
  python3 python3-venv python3-pip
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libabsl-dev prometheus-cpp-dev libgtest-dev libgmock-dev libbenchmark-dev
  libopenblas-dev nlohmann-json3-dev libcpp-httplib-dev libpcre2-dev libicu-dev)
if [ "$mode" = test ]; then
  apt_pkgs+=(clang prometheus)
fi

missing=()
for p in "${apt_pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# The project virtualenv, made from Debian's python3 so nothing depends on PATH
# order. It lives in the user's cache (so a fresh clone, as CI makes, reuses
# it) and .venv links to it.
venv="${DSPARK_VENV:-$HOME/.cache/dspark/venv}"
if [ ! -x "$venv/bin/python" ]; then
  mkdir -p "$(dirname "$venv")"
  /usr/bin/python3 -m venv "$venv"
  "$venv/bin/python" -m pip install -q --upgrade pip
fi
if [ ! -e .venv ]; then ln -s "$venv" .venv; fi
if [ "$mode" = test ]; then
  stamp=.venv/.dspark-test-deps
  reqs=tools/requirements-test.txt
  # llama.cpp is built from source by llama-cpp-python, for the instruction
  # sets this CPU has (machines of one kind have differed: AVX-512 VNNI/BF16
  # Xeons, AVX2-only EPYCs). AMX is left out: the kernel may not grant AMX
  # tile state (it crashes where it is not granted).
  has() { grep -qw "$1" /proc/cpuinfo && echo ON || echo OFF; }
  avx512=$(has avx512f); [ "$(has avx512bw)" = ON ] && [ "$(has avx512vl)" = ON ] || avx512=OFF
  llama_cmake="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=$(has avx2) -DGGML_FMA=$(has fma) \
-DGGML_F16C=$(has f16c) -DGGML_AVX512=$avx512 -DGGML_AVX512_VNNI=$(has avx512_vnni) \
-DGGML_AVX512_BF16=$(has avx512_bf16) -DGGML_AVX512_VBMI=$(has avx512vbmi) \
-DGGML_AMX_INT8=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_BF16=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TESTS=OFF"
  want="$(cat "$reqs"; echo "$llama_cmake")"
  if [ ! -f "$stamp" ] || [ "$want" != "$(cat "$stamp")" ]; then
    echo "setup: installing Python packages from $reqs into .venv (first run is slow)"
    grep -v '^llama-cpp-python' "$reqs" | .venv/bin/python -m pip install -q -r /dev/stdin
    CMAKE_ARGS="$llama_cmake" .venv/bin/python -m pip install -q --no-cache-dir --force-reinstall \
      --no-deps "$(grep '^llama-cpp-python' "$reqs")"
    printf '%s' "$want" > "$stamp"
  fi
fi
echo "setup: done ($mode)"
