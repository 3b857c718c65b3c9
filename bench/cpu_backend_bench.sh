#!/bin/sh
# Builds and runs bench/cpu_backend_bench.cpp (torch-free; same flags as the extension).
# Usage: bench/cpu_backend_bench.sh [numel=67108864] [tensors=1] [reps=10] [filter]
set -e
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=${TMPDIR:-/tmp}/fusedopt_cpu_backend_bench
SRCS=$(awk '$1 == "cpu" {print "'"$ROOT"'/" $2}' "$ROOT/csrc/SOURCES.txt")
g++ -std=c++17 -O3 -ffp-contract=off -fno-math-errno -fopenmp -I"$ROOT/csrc/include" \
    -I"$ROOT/csrc/cpu" $CXXEXTRA "$ROOT/bench/cpu_backend_bench.cpp" $SRCS -o "$OUT"
exec "$OUT" "$@"
