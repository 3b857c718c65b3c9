#!/usr/bin/env bash
# Every CPU SIMD level of the CPU backend, run for real: natively at the host's best level (the
# one /proc/cpuinfo implies) and at each lower one (FUSEDOPT_CPU_ISA), and under qemu-user CPU
# models: Nehalem (SSE4.2, no AVX: level baseline) and Haswell (AVX2, no AVX-512: level avx2).
# QEMU's TCG has no AVX-512, so avx512 runs only natively (where the host has it).
#  - .ci/levels_smoke.py (one process per CPU model): import, level check, two steps of every
#    optimizer in fp32/bf16/fp16/fp64, results bitwise equal to the native run's;
#  - the C++ determinism test (tests/csrc/core/test_cpu_backend) under both models, comparing
#    exactly the levels the model has;
#  - FUSEDOPT_CPU_ISA under Haswell: avx512 (this CPU lacks it) and bogus warn naming the
#    available levels and run avx2; baseline runs baseline.
# -cpu is always given: qemu-x86_64's default model (qemu64) dies inside torch.
#
# Usage: .ci/cpu_levels.sh [VENV_OR_PYTHON] [CMAKE_BUILD_DIR]
#   VENV_OR_PYTHON   a venv folder or its python, with fusedopt installed (default .venv;
#                    env FUSEDOPT_VENV)
#   CMAKE_BUILD_DIR  CMake build of the repository (default build/cmake; env
#                    FUSEDOPT_CMAKE_BUILD); test_cpu_backend is built there if missing.
# Installs qemu-user with apt-get when qemu-x86_64 is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
stage() { echo; echo "=== cpu_levels [$(( $(date +%s) - start ))s] $*"; }

# The script sets FUSEDOPT_CPU_ISA itself where it forces a level; an inherited one would change
# what every other run checks.
unset FUSEDOPT_CPU_ISA
target=${1:-${FUSEDOPT_VENV:-.venv}}
build=${2:-${FUSEDOPT_CMAKE_BUILD:-build/cmake}}
if [ -d "$target" ]; then python=$target/bin/python; else python=$target; fi
# Not resolved through symlinks: a venv's python finds its site-packages from the path it is
# started by (qemu passes that path on).
[ -x "$python" ] || { echo "cpu_levels: no python at $python (give the venv as argument 1)"; exit 1; }

apt_install() {  # apt_install PACKAGE...
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo=sudo
  $sudo apt-get install -y "$@" || { $sudo apt-get update && $sudo apt-get install -y "$@"; }
}
command -v qemu-x86_64 > /dev/null || { stage "installing qemu-user"; apt_install qemu-user; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failed=()
fail() { echo "FAIL: $*"; failed+=("$*"); }

# q MODEL CMD...: CMD under qemu-x86_64 with that CPU model. q_isa LEVEL MODEL CMD...: with
# FUSEDOPT_CPU_ISA=LEVEL. (Run in the background subshells of check(), so the export stays there.)
q() { local model=$1; shift; qemu-x86_64 -cpu "$model" "$@"; }
q_isa() { export FUSEDOPT_CPU_ISA=$1; shift; q "$@"; }
smoke=(.ci/levels_smoke.py --quiet)

# ---- native ----------------------------------------------------------------------------------
flags=" $(grep -m1 '^flags' /proc/cpuinfo | cut -d: -f2) "
has() { for f in "$@"; do [[ $flags == *" $f "* ]] || return 1; done; }
if has avx512f avx512bw avx512dq avx512vl avx2 fma f16c; then
  host_level=avx512 host_levels=baseline,avx2,avx512
elif has avx2 fma f16c; then
  host_level=avx2 host_levels=baseline,avx2
else
  host_level=baseline host_levels=baseline
fi
stage "native: /proc/cpuinfo implies level $host_level (available $host_levels)"
"$python" "${smoke[@]}" --expect-level "$host_level" --expect-available "$host_levels" \
  --write "$work/native.pt" || fail "native run at $host_level"
[ -s "$work/native.pt" ] || { echo "FAIL: the native run wrote no results"; exit 1; }
IFS=, read -ra lower <<< "$host_levels"
for level in "${lower[@]}"; do
  [ "$level" != "$host_level" ] || continue
  stage "native: FUSEDOPT_CPU_ISA=$level, bitwise equal to $host_level"
  FUSEDOPT_CPU_ISA=$level "$python" "${smoke[@]}" --expect-level "$level" \
    --expect-available "$host_levels" --compare "$work/native.pt" || fail "native $level"
done

# ---- C++ determinism test ----------------------------------------------------------------------
cxx_test=$build/tests/csrc/core/test_cpu_backend
if [ ! -x "$cxx_test" ]; then
  stage "building test_cpu_backend in $build"
  cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release > /dev/null
  cmake --build "$build" -j2 --target test_cpu_backend
fi

# ---- qemu CPU models ---------------------------------------------------------------------------
# Each check is one process under qemu (20-40 s each, CPU-bound); they run side by side,
# FUSEDOPT_CI_JOBS at a time (default: the number of cores), and their logs are printed in order.
jobs_max=${FUSEDOPT_CI_JOBS:-$(nproc)}
checks=()
# check NAME DESCRIPTION CMD...: starts CMD in the background, output to $work/NAME.log.
check() {
  local name=$1 what=$2; shift 2
  while [ "$(jobs -rp | wc -l)" -ge "$jobs_max" ]; do wait -n || true; done
  checks+=("$name"); echo "$what" > "$work/$name.what"
  ( set +e; t0=$(date +%s); "$@" > "$work/$name.log" 2>&1; echo $? > "$work/$name.rc"
    echo "(took $(( $(date +%s) - t0 ))s)" >> "$work/$name.log" ) &
}

# Nehalem: SSE4.2, no AVX.
check nehalem "qemu -cpu Nehalem: level baseline, bitwise equal to the native run" \
  q Nehalem "$python" "${smoke[@]}" --expect-level baseline --expect-available baseline \
  --expect-torch-capability DEFAULT --compare "$work/native.pt"
# Haswell: AVX2, FMA, F16C, no AVX-512.
check haswell "qemu -cpu Haswell: level avx2, bitwise equal to the native run" \
  q Haswell "$python" "${smoke[@]}" --expect-level avx2 --expect-available baseline,avx2 \
  --expect-torch-capability AVX2 --compare "$work/native.pt"
# The C++ test compares every level the CPU has and names the ones it lacks.
check cxx_nehalem "qemu -cpu Nehalem: C++ test_cpu_backend (lacks avx2 avx512)" \
  q Nehalem "$cxx_test"
check cxx_haswell "qemu -cpu Haswell: C++ test_cpu_backend (lacks avx512)" \
  q Haswell "$cxx_test"
for isa in avx512 bogus; do
  check "isa_$isa" "qemu -cpu Haswell, FUSEDOPT_CPU_ISA=$isa: warns naming baseline, avx2; runs avx2" \
    q_isa $isa Haswell "$python" "${smoke[@]}" --no-steps --expect-warning --expect-level avx2 \
    --expect-available baseline,avx2
done
check isa_baseline "qemu -cpu Haswell, FUSEDOPT_CPU_ISA=baseline: runs baseline" \
  q_isa baseline Haswell "$python" "${smoke[@]}" --no-steps --expect-level baseline \
  --expect-available baseline,avx2
wait

skipped_levels() {  # the levels test_cpu_backend's log says it did not compare
  sed -n 's/^SIMD level \([a-z0-9]*\) not supported on this CPU.*/\1/p' "$1" | xargs
}
for name in "${checks[@]}"; do
  stage "$(cat "$work/$name.what")"
  # (qemu notes each feature of the CPU model that TCG lacks: pcid, rtm, ...; dropped here)
  grep -v "TCG doesn't support requested feature" "$work/$name.log" || true
  rc=$(cat "$work/$name.rc" 2>/dev/null || echo "no exit status")
  [ "$rc" = 0 ] || { fail "$name (exit status $rc)"; continue; }
  case $name in
    cxx_nehalem) want="avx2 avx512" ;;
    cxx_haswell) want="avx512" ;;
    *) continue ;;
  esac
  got=$(skipped_levels "$work/$name.log")
  [ "$got" = "$want" ] || fail "$name: test_cpu_backend did not compare '$got', expected '$want'"
done

stage "done"
if [ ${#failed[@]} -gt 0 ]; then
  printf 'cpu_levels FAILED:\n'; printf '  %s\n' "${failed[@]}"
  exit 1
fi
echo "cpu_levels: all levels passed (native $host_level, qemu Nehalem baseline, qemu Haswell avx2)"
