#!/usr/bin/env bash
# The main job, from a fresh Debian bookworm machine: installs the build
# dependencies (lean: no torch, no llama.cpp), builds dspark, pulls the default
# model and generates from a chat prompt, printing tokens/s.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
bash tools/setup.sh serve
bash tools/build.sh build dspark
build/bin/dspark pull
build/bin/dspark generate --chat "${1:-Write a haiku about speculative decoding.}" --max-tokens 96
