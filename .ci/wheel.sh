#!/usr/bin/env bash
# Wheels (issue 9 point 5; docs/install.md). Stand-alone; every stage is timed (times.txt).
#
#   1. CPU wheel: `pip wheel --no-build-isolation` from a clean copy of the tree (tracked and
#      untracked-but-not-ignored files only, so nothing built in the tree can leak in), in a
#      FRESH venv with torch 2.13.0 CPU + the test deps (requirements-test.txt).
#   2. Its contents: the op library (_C.abi3.so), _build_info.py, fusedopt.apex, fusedopt.bench,
#      fusedopt.examples; no test tooling (SIMT emulator, cuda-emulated backend); tagged
#      cp310-abi3; Requires-Dist torch>=2.10 (the library is on the LibTorch stable ABI).
#   3. Installed into that venv and used from OUTSIDE the source tree (a temp dir holding a copy
#      of tests/): fusedopt.__file__ must lie in the venv's site-packages; the demo, the bench's C
#      reference kernels (compiled from the installed package) and its static GPU report run; the
#      whole test suite passes, and every skip names a missing capability (cuda-emulated, GPU).
#   4. One wheel, several torch releases: the same CPU wheel (built against torch 2.13.0),
#      installed unchanged beside torch 2.14.1+cu130, passes the whole suite there too.
#   5. CUDA wheel: FUSEDOPT_CUDA=1 against torch 2.14.1+cu130 (default archs: sm_80, sm_90,
#      sm_100, sm_120 SASS + compute_120 PTX, checked with cuobjdump); imported where there is no
#      GPU: build_info() and a CPU FusedAdamW step against torch.optim.AdamW; under the CPU-only
#      torch 2.13.0 it must fail with fusedopt's ImportError (it needs a CUDA build of torch).
# Stages 4-5 use the torch 2.14.1+cu130 venv of .ci/cuda_checks.sh (same location, created if
# missing: .ci/cuda_venv.sh); fusedopt is never installed into it (pip --target + PYTHONPATH).
#
# Environment:
#   FUSEDOPT_WHEEL_OUT     work directory (default build/wheel)
#   FUSEDOPT_WHEEL_CUDA=0  skip stages 4-5 (no nvcc / no room for the 5.5 GB venv)
#   FUSEDOPT_CUDA_VENV     the torch 2.14.1+cu130 venv (default build/cuda_checks/venv-cu130)
#   NVCC                   nvcc (default /usr/local/cuda/bin/nvcc)
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=${FUSEDOPT_WHEEL_OUT:-$ROOT/build/wheel}
mkdir -p "$OUT" && OUT=$(cd "$OUT" && pwd)
CUDA_VENV=${FUSEDOPT_CUDA_VENV:-$ROOT/build/cuda_checks/venv-cu130}
NVCC=${NVCC:-/usr/local/cuda/bin/nvcc}
JOBS=2
T0=$(date +%s)
TS=$T0
: > "$OUT/times.txt"

log() { printf '[wheel %4ss] %s\n' "$(( $(date +%s) - T0 ))" "$*"; }
fail() { echo "wheel.sh: FAILED: $*" >&2; exit 1; }
timed() {  # record the time since the previous call under a label
  local now; now=$(date +%s)
  printf '%-44s %5ss\n' "$1" "$(( now - TS ))" | tee -a "$OUT/times.txt"
  TS=$now
}
copy_tree() {  # the sources as git sees them, without build outputs
  rm -rf "$1" && mkdir -p "$1"
  (cd "$ROOT" && git ls-files -z --cached --others --exclude-standard | grep -zv '^build/' |
     xargs -0 tar -cf - 2>/dev/null) | tar -xf - -C "$1"
  rm -f "$1"/fusedopt/_C*.so "$1"/fusedopt/_emulated*.so "$1"/fusedopt/_build_info.py
}

# A directory outside the source tree: `import fusedopt` there can only find an installed copy.
RUN=$(mktemp -d /tmp/fusedopt-wheel-run.XXXXXX)
trap 'rm -rf "$RUN"' EXIT
# Every Python file of the suite, as git sees it (the distributed tests spawn tests/distributed/*).
(cd "$ROOT" && git ls-files -z --cached --others --exclude-standard -- 'tests/*.py' |
   xargs -0 tar -cf -) | tar -xf - -C "$RUN"
[ -f "$RUN/tests/distributed/worker.py" ] || fail "the suite's copy lacks tests/distributed/worker.py"
export XDG_CACHE_HOME="$RUN/cache"  # the bench's C kernels are compiled afresh, from the package

# ---- 1. the CPU wheel, in a fresh venv --------------------------------------------------------
VENV="$OUT/venv-cpu"
log "fresh venv $VENV (torch 2.13.0 CPU + test deps)"
rm -rf "$VENV"
python3 -m venv "$VENV"
"$VENV/bin/pip" install -q -r "$ROOT/requirements-test.txt" > "$OUT/venv-cpu.log" 2>&1 ||
  { cat "$OUT/venv-cpu.log" >&2; fail "venv"; }
timed "fresh venv (torch 2.13.0 + test deps)"

copy_tree "$OUT/src-cpu"
rm -rf "$OUT/dist-cpu"
log "pip wheel --no-build-isolation (CPU, torch 2.13.0)"
(cd "$OUT/src-cpu" && PATH="$VENV/bin:$PATH" MAX_JOBS=$JOBS \
   pip wheel -q --no-build-isolation --no-deps . -w "$OUT/dist-cpu" > "$OUT/cpu_wheel_build.log" 2>&1) ||
  { tail -40 "$OUT/cpu_wheel_build.log" >&2; fail "CPU wheel build"; }
CPU_WHEEL=$(ls "$OUT"/dist-cpu/fusedopt-*.whl)
timed "CPU wheel build"

# ---- 2. what the wheel contains ---------------------------------------------------------------
check_wheel() {  # wheel
  "$VENV/bin/python" - "$1" <<'EOF'
import re, sys, zipfile
whl = sys.argv[1]
names = zipfile.ZipFile(whl).namelist()
need = ["fusedopt/__init__.py", "fusedopt/_abi.py", "fusedopt/_build_info.py",
        "fusedopt/_ops.py", "fusedopt/_declarations.py", "fusedopt/optimizers.py",
        "fusedopt/reference.py",
        "fusedopt/apex/__init__.py", "fusedopt/bench/__main__.py", "fusedopt/bench/cli.py",
        "fusedopt/bench/timing.py", "fusedopt/bench/static_gpu.py", "fusedopt/__main__.py",
        "fusedopt/examples/__init__.py", "fusedopt/examples/fsdp_lamb.py"]
missing = [n for n in need if n not in names]
assert not missing, f"{whl} lacks {missing}"
assert [n for n in names if re.fullmatch(r"fusedopt/_C\.abi3\.so", n)], f"{whl} has no fusedopt/_C.abi3.so"
test_only = [n for n in names if re.search(r"simt|emulat|testing|(^|/)tests?/", n)]
assert not test_only, f"test tooling in the product wheel: {test_only}"
meta = zipfile.ZipFile(whl).read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
reqs = re.findall(r"^Requires-Dist: (torch\b[^;\n]*)$", meta, re.M)
assert reqs == ["torch>=2.10"], f"torch requirement {reqs}, expected torch>=2.10 (stable ABI)"
assert whl.endswith("-cp310-abi3-linux_x86_64.whl"), f"{whl}: expected an abi3 wheel (cp310)"
print(f"{whl.rsplit('/', 1)[-1]}: {len(names)} files, requires {reqs[0]}")
EOF
}
check_wheel "$CPU_WHEEL"

# ---- 3. installed, used from outside the tree -------------------------------------------------
"$VENV/bin/pip" install -q "$CPU_WHEEL"   # with dependencies: the torch pin must be satisfied
timed "install the CPU wheel"
cd "$RUN"
"$VENV/bin/python" - "$ROOT" "$OUT/src-cpu" "$VENV" <<'EOF'
import os, sys, sysconfig
root, src, venv = (os.path.realpath(p) for p in sys.argv[1:])
import fusedopt, torch
where = os.path.realpath(fusedopt.__file__)
print("fusedopt imported from", where)
site = os.path.realpath(sysconfig.get_paths()["platlib"])
for tree in (root, src):
    assert not where.startswith(os.path.join(tree, "fusedopt")), f"imported from the tree {tree}"
assert where.startswith(site + os.sep) and site.startswith(venv + os.sep), f"not in {site}"
info = fusedopt.build_info()
print("build_info:", info)
assert info["backends"] == ["cpu"] and fusedopt.available_backends() == ["cpu"], info
assert info["torch_built_against"] == torch.__version__ == "2.13.0+cpu", info
# The bench's C reference kernels are compiled from the source embedded in the package.
from fusedopt.bench import static_gpu, timing
for mix in ("r4w3", "r3w2", "lars", "lamb"):
    assert timing.stream_reference_unavailable(mix) is None, (mix, timing._stream_error)
ref = timing.StreamReference([torch.ones(1000), torch.ones(37)], "lamb")
ref.step()  # its moments start at zero; the C loop writes m = 0.1 * clipped g
assert ref.name.startswith("floor: C LAMB") and bool((ref.m[1] != 0).all()), ref.name
# The static GPU report: the launch plans and engine constants come from the installed op
# library (a CPU-only build: the planner is in every build).
lim = static_gpu.engine_limits()
print("static GPU report limits:", lim)
assert "_cuda_launch_plan" in lim["source"], lim
assert lim["chunk_size"] > 0 and lim["32KB"]["table_capacity"][0] > lim["4KB"]["table_capacity"][0], lim
EOF
"$VENV/bin/python" -m fusedopt --steps 5 > "$OUT/demo.log" 2>&1 || { cat "$OUT/demo.log"; fail "demo"; }
"$VENV/bin/python" -m fusedopt.bench --static-only > "$OUT/static.log" 2>&1 ||
  { cat "$OUT/static.log"; fail "static GPU report"; }
grep -q "launches per step (from the op library" "$OUT/static.log" || fail "static report: $(cat "$OUT/static.log")"
timed "installed-package checks (demo, bench C kernels, static report)"

# The whole suite against the installed wheel (measured: ~75 s on 2 cores, most of it the CPU
# backend's tests; the cuda-emulated and cuda parametrizations skip, so no subset is needed even
# though .ci/run runs the suite once more against the editable emulated build).
SEL=(tests)
log "pytest ${SEL[*]} against the installed wheel, from $RUN"
set +e
"$VENV/bin/python" -m pytest -q -rs -p no:cacheprovider "${SEL[@]}" > "$OUT/pytest.log" 2>&1
rc=$?
set -e
tail -3 "$OUT/pytest.log"
[ "$rc" = 0 ] || { grep -E "^(FAILED|ERROR)" "$OUT/pytest.log" | head -30 >&2; fail "pytest (rc $rc), log $OUT/pytest.log"; }
# A skip must name the missing capability: the only ones allowed in this build.
bad_skips=$(grep -E "^SKIPPED" "$OUT/pytest.log" |
  grep -vE "cuda-emulated backend not built \((build with )?FUSEDOPT_EMULATED=1\)|: no GPU$" || true)
[ -z "$bad_skips" ] || { echo "$bad_skips" >&2; fail "skips that do not name a missing capability"; }
grep -qE "^SKIPPED.*cuda-emulated backend not built" "$OUT/pytest.log" ||
  fail "no cuda-emulated test skipped in a build without it: did the backend fixture change?"
timed "pytest tests/ against the installed CPU wheel"

if [ "${FUSEDOPT_WHEEL_CUDA:-1}" = 0 ]; then
  log "CUDA stages skipped (FUSEDOPT_WHEEL_CUDA=0)"
elif [ ! -x "$NVCC" ]; then
  fail "no nvcc at $NVCC (set NVCC, or FUSEDOPT_WHEEL_CUDA=0 to skip the CUDA stages)"
else
  # shellcheck source=.ci/cuda_venv.sh
  . "$ROOT/.ci/cuda_venv.sh"
  ensure_cuda_venv "$CUDA_VENV"
  timed "torch 2.14.1+cu130 venv (reused when present)"

  # ---- 4. one wheel, two torch releases: the CPU wheel (built against torch 2.13.0), installed
  #         unchanged beside torch 2.14.1+cu130, passes the whole suite there ------------------------
  rm -rf "$OUT/site-other-torch"
  "$CUDA_VENV/bin/pip" install -q --no-deps --target "$OUT/site-other-torch" "$CPU_WHEEL"
  log "pytest tests/ with the torch 2.13.0 wheel under torch 2.14.1+cu130 (stable ABI)"
  (cd "$RUN" && PYTHONPATH="$OUT/site-other-torch" "$CUDA_VENV/bin/python" - "$OUT/site-other-torch" <<'EOF'
import os, sys
import torch
import fusedopt
where = os.path.realpath(fusedopt.__file__)
assert where.startswith(os.path.realpath(sys.argv[1]) + os.sep), where
info = fusedopt.build_info()
print("build_info:", info)
assert info["torch_built_against"].startswith("2.13.0") and torch.__version__.startswith("2.14.1")
EOF
  )
  set +e
  (cd "$RUN" && PYTHONPATH="$OUT/site-other-torch" "$CUDA_VENV/bin/python" -m pytest -q -rs \
     -p no:cacheprovider tests > "$OUT/pytest_other_torch.log" 2>&1)
  rc=$?
  set -e
  tail -3 "$OUT/pytest_other_torch.log"
  [ "$rc" = 0 ] || { grep -E "^(FAILED|ERROR)" "$OUT/pytest_other_torch.log" | head -30 >&2
                     fail "pytest under the other torch (rc $rc), log $OUT/pytest_other_torch.log"; }
  timed "pytest tests/ with the 2.13.0 wheel under torch 2.14.1"

  # ---- 5. the CUDA wheel ------------------------------------------------------------------------
  copy_tree "$OUT/src-cuda"
  rm -rf "$OUT/dist-cuda"
  log "pip wheel --no-build-isolation FUSEDOPT_CUDA=1 (torch 2.14.1+cu130, default archs)"
  (cd "$OUT/src-cuda" && PATH="$CUDA_VENV/bin:$(dirname "$NVCC"):$PATH" \
     CUDA_HOME="$(dirname "$(dirname "$NVCC")")" FUSEDOPT_CUDA=1 MAX_JOBS=$JOBS \
     pip wheel -q --no-build-isolation --no-deps . -w "$OUT/dist-cuda" > "$OUT/cuda_wheel_build.log" 2>&1) ||
    { tail -40 "$OUT/cuda_wheel_build.log" >&2; fail "CUDA wheel build"; }
  CUDA_WHEEL=$(ls "$OUT"/dist-cuda/fusedopt-*.whl)
  timed "CUDA wheel build (4 archs + PTX)"
  check_wheel "$CUDA_WHEEL"

  rm -rf "$OUT/site-cuda"
  "$CUDA_VENV/bin/pip" install -q --no-deps --target "$OUT/site-cuda" "$CUDA_WHEEL"
  NVBIN=$("$CUDA_VENV/bin/python" -c "import nvidia, os; print(os.path.join(list(nvidia.__path__)[0], 'cu13', 'bin'))")
  SO=$(ls "$OUT"/site-cuda/fusedopt/_C*.so)
  elfs=$(PATH="$NVBIN:$PATH" cuobjdump --list-elf "$SO" | grep -oE "sm_[0-9]+a?" | sort -u | tr '\n' ' ')
  ptxs=$(PATH="$NVBIN:$PATH" cuobjdump --list-ptx "$SO" | grep -oE "sm_[0-9]+a?" | sort -u | tr '\n' ' ')
  echo "SASS: $elfs  PTX: $ptxs" | tee "$OUT/cuda_archs.txt"
  for a in sm_80 sm_90 sm_100 sm_120; do
    echo " $elfs" | grep -q " $a " || fail "no $a SASS in the CUDA wheel"
  done
  [ "$ptxs" = "sm_120 " ] || fail "expected PTX for compute_120 only, got '$ptxs'"
  cd "$RUN"
  PYTHONPATH="$OUT/site-cuda" "$CUDA_VENV/bin/python" - "$OUT/site-cuda" <<'EOF'
import os, sys
import torch
import fusedopt
where = os.path.realpath(fusedopt.__file__)
assert where.startswith(os.path.realpath(sys.argv[1]) + os.sep), where
info = fusedopt.build_info()
print("build_info:", info)
assert info["cuda_compiled"] and not info["cuda_available"] and not torch.cuda.is_available(), info
assert info["backends"] == ["cpu", "cuda"], info
assert info["cuda_archs"] == ["sm_80", "sm_90", "sm_100", "sm_120", "compute_120"], info
torch.manual_seed(0)
ps = [torch.randn(1000, requires_grad=True), torch.randn(7, 3, requires_grad=True)]
qs = [p.detach().clone().requires_grad_() for p in ps]
opt = fusedopt.FusedAdamW(ps, lr=1e-2, weight_decay=0.1)
ref = torch.optim.AdamW(qs, lr=1e-2, weight_decay=0.1, foreach=False)
for _ in range(3):
    for p, q in zip(ps, qs):
        g = torch.randn_like(p)
        p.grad, q.grad = g, g.clone()
    opt.step()
    ref.step()
for p, q in zip(ps, qs):
    assert not torch.equal(p, torch.zeros_like(p))
    torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)
print("CPU FusedAdamW steps in the CUDA wheel match torch.optim.AdamW")
EOF
  timed "CUDA wheel checks (archs, import without GPU, CPU step)"

  # The CUDA wheel under a torch without CUDA (the 2.13.0 CPU venv): fusedopt's ImportError
  # naming the fix, before the library (which needs libtorch_cuda) is loaded.
  rm -rf "$OUT/site-cuda-on-cpu"
  "$VENV/bin/pip" install -q --no-deps --target "$OUT/site-cuda-on-cpu" "$CUDA_WHEEL"
  rc=0
  (cd "$RUN" && PYTHONPATH="$OUT/site-cuda-on-cpu" "$VENV/bin/python" -c "import fusedopt") \
    > "$RUN/cuda_on_cpu.out" 2>&1 || rc=$?
  msg=$(tail -1 "$RUN/cuda_on_cpu.out")
  [ "$rc" = 1 ] && echo "$msg" | grep -q "^ImportError: this fusedopt build" &&
    echo "$msg" | grep -qF "needs a CUDA build of torch" && echo "$msg" | grep -qF "2.13.0+cpu" ||
    { cat "$RUN/cuda_on_cpu.out" >&2; fail "CUDA wheel under a CPU torch: expected fusedopt's ImportError"; }
  echo "$msg" | tee "$OUT/cuda_on_cpu_error.txt"
  timed "CUDA wheel under a CPU-only torch: clear ImportError"
fi

log "wheel sizes:"
ls -l "$OUT"/dist-*/fusedopt-*.whl | awk '{printf "  %8.2f MB  %s\n", $5 / 1e6, $NF}' | tee -a "$OUT/times.txt"
cat "$OUT/times.txt"
log "all wheel checks passed"
