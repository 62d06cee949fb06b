#!/usr/bin/env bash
# The main job, from a fresh Debian bookworm machine: installs the build
# dependencies (lean: no torch, no llama.cpp), builds dspark, pulls the default
# model, starts a local cluster (router + verify worker + draft worker with
# the committed drafter), sends a few chat requests through its OpenAI
# endpoint, prints the answers and the speed-up over target-only, and keeps
# serving until Ctrl-C. Flags go to `dspark up` (--exit-after-demo for scripts).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
bash tools/setup.sh serve
bash tools/build.sh build dspark dspark-router dspark-verify-worker dspark-draft-worker
build/bin/dspark pull
exec build/bin/dspark up --demo "$@"
