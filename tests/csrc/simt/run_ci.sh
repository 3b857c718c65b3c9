#!/usr/bin/env bash
# CI for the SIMT emulator: plain build (+ race-check variant), ASan+UBSan
# build, and nvcc compile checks of every test kernel source. At most -j2.
# Exits non-zero on any failure. Build trees go to $FUSEDOPT_SIMT_CI_DIR
# (default: a directory under ${TMPDIR:-/tmp}), reused between runs.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
SRC="$ROOT/tests/csrc/simt"
OUT=${FUSEDOPT_SIMT_CI_DIR:-${TMPDIR:-/tmp}/fusedopt-simt-ci}
JOBS=${FUSEDOPT_SIMT_JOBS:-2}
NVCC=${NVCC:-/usr/local/cuda/bin/nvcc}
mkdir -p "$OUT"

step() { printf '\n=== simt: %s ===\n' "$*"; }

step "plain + race-check build"
cmake -S "$SRC" -B "$OUT/plain" -DCMAKE_BUILD_TYPE=Release >"$OUT/plain.configure.log" 2>&1 ||
  { cat "$OUT/plain.configure.log"; exit 1; }
cmake --build "$OUT/plain" -j "$JOBS"
ctest --test-dir "$OUT/plain" --output-on-failure

step "ASan + UBSan build"
cmake -S "$SRC" -B "$OUT/asan" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DFUSEDOPT_SIMT_SANITIZE=ON \
  >"$OUT/asan.configure.log" 2>&1 || { cat "$OUT/asan.configure.log"; exit 1; }
cmake --build "$OUT/asan" -j "$JOBS"
ctest --test-dir "$OUT/asan" --output-on-failure

step "nvcc compile checks (the emulated kernels are valid CUDA)"
if [[ ! -x "$NVCC" ]]; then
  echo "nvcc not found at $NVCC" >&2
  exit 1
fi
nv_pass=0
nv_fail=0
for arch in sm_80 sm_90; do
  for cu in "$SRC"/kernels/*.cu; do
    obj="$OUT/nvcc_$(basename "$cu" .cu)_$arch.o"
    if "$NVCC" -std=c++17 -arch="$arch" -I"$ROOT/csrc/include" -I"$ROOT/csrc/testing/simt" -I"$SRC/kernels" -c "$cu" -o "$obj"; then
      echo "[ OK ] nvcc -arch=$arch $(basename "$cu")"
      nv_pass=$((nv_pass + 1))
    else
      echo "[FAIL] nvcc -arch=$arch $(basename "$cu")"
      nv_fail=$((nv_fail + 1))
    fi
  done
done
echo "nvcc: $nv_pass passed, $nv_fail failed"
[[ $nv_fail -eq 0 ]]
step "all SIMT emulator checks passed"
