#!/usr/bin/env bash
# CUDA checks on a machine without a GPU (issue 4; docs/kernels.md "How it is checked").
#
#   1. nvcc compiles every csrc/cuda kernel source for sm_80, sm_90 and sm_100 with -Xptxas -v:
#      fails on any register spill; records registers per kernel and arch (registers.txt).
#   2. SASS (cuobjdump from pip): the fp32 fast path of every optimizer kernel uses 128-bit
#      global loads (LDG.E.128) and, where it writes, 128-bit stores (STG.E.128).
#   3. The real extension builds with CUDAExtension against torch 2.14.1+cu130 (a separate venv),
#      imports, reports CUDA compiled-in but unavailable, and a smoke subset of the CPU tests plus
#      tests/cuda (GPU tests skip with "no GPU") pass in that build.
# Budget: < 25 min on 2 cores (the venv install is ~3 min and is reused when it exists).
#
# Environment:
#   FUSEDOPT_CUDA_CHECKS_OUT  work directory (default build/cuda_checks)
#   FUSEDOPT_CUDA_VENV        venv with torch 2.14.1+cu130 (created if missing)
#   NVCC                      nvcc (default /usr/local/cuda/bin/nvcc)
#   FUSEDOPT_CUDA_CHECKS_SKIP_EXT=1  steps 1-2 only
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=${FUSEDOPT_CUDA_CHECKS_OUT:-$ROOT/build/cuda_checks}
VENV=${FUSEDOPT_CUDA_VENV:-$OUT/venv-cu130}
NVCC=${NVCC:-/usr/local/cuda/bin/nvcc}
ARCHS=(80 90 100)
JOBS=2
T0=$(date +%s)
mkdir -p "$OUT/cubin"

log() { printf '[cuda_checks %4ss] %s\n' "$(( $(date +%s) - T0 ))" "$*"; }

# ---- the venv (needed for cuobjdump/nvdisasm and for the extension build) ------------------------
# shellcheck source=cuda_venv.sh
. "$ROOT/.ci/cuda_venv.sh"  # the venv .ci/wheel.sh reuses
ensure_venv() {
  ensure_cuda_venv "$VENV"
  NVBIN=$("$VENV/bin/python" -c "import nvidia, os; print(os.path.join(list(nvidia.__path__)[0], 'cu13', 'bin'))")
  [ -x "$NVBIN/cuobjdump" ] || "$VENV/bin/pip" install -q nvidia-cuda-cuobjdump nvidia-cuda-nvdisasm
}

# ---- 1. ptxas: registers and spills ---------------------------------------------------------------
mapfile -t CU_SOURCES < <(awk '$1 == "cuda" {print $2}' "$ROOT/csrc/SOURCES.txt")
[ "${#CU_SOURCES[@]}" -gt 0 ] || { echo "no cuda sources in csrc/SOURCES.txt" >&2; exit 1; }
log "nvcc -cubin -Xptxas -v: ${#CU_SOURCES[@]} sources x sm_${ARCHS[*]}"
# The product's nvcc flags (csrc/build_flags.txt, as setup.py uses them).
NVCC_FLAGS="-std=$(awk '$1 == "std" {print $2}' "$ROOT/csrc/build_flags.txt") $(awk '$1 == "nvcc" {$1 = ""; print}' "$ROOT/csrc/build_flags.txt")"
compile_one() {  # src arch
  local src=$1 arch=$2 base
  base=$(basename "$src" .cu)
  # shellcheck disable=SC2086
  "$NVCC" $NVCC_FLAGS -cubin -arch="sm_$arch" \
    -Xptxas -v -I"$ROOT/csrc/include" -I"$ROOT/csrc/cuda" \
    "$ROOT/$src" -o "$OUT/cubin/${base}.sm_$arch.cubin" > "$OUT/cubin/${base}.sm_$arch.ptxas.log" 2>&1 ||
    { cat "$OUT/cubin/${base}.sm_$arch.ptxas.log" >&2; return 1; }
}
export -f compile_one
export NVCC ROOT OUT NVCC_FLAGS
for src in "${CU_SOURCES[@]}"; do for a in "${ARCHS[@]}"; do echo "$src $a"; done; done |
  xargs -P "$JOBS" -n 2 bash -c 'compile_one "$0" "$1"'

python3 - "$OUT" <<'EOF'
import glob, os, re, subprocess, sys
out = sys.argv[1]
rows, spills = [], []
for logf in sorted(glob.glob(os.path.join(out, "cubin", "*.ptxas.log"))):
    fn = None
    for line in open(logf):
        m = re.search(r"Compiling entry function '([^']+)' for '(sm_\d+)'", line)
        if m:
            fn, arch = m.group(1), m.group(2)
            continue
        m = re.search(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads", line)
        if m and fn:
            stack, st, ld = map(int, m.groups())
            if st or ld:
                spills.append((arch, fn, st, ld))
            cur = [arch, fn, None, stack]
            continue
        m = re.search(r"Used (\d+) registers", line)
        if m and fn:
            cur[2] = int(m.group(1))
            rows.append(tuple(cur))
            fn = None
names = subprocess.run(["c++filt"], input="\n".join(r[1] for r in rows), capture_output=True,
                       text=True).stdout.splitlines()
def short(n):
    n = n.replace("fusedopt::cuda::", "").replace("(anonymous namespace)::", "")
    return re.sub(r"\(.*\)$", "", n).replace("void ", "")
with open(os.path.join(out, "registers.txt"), "w") as f:
    f.write("arch\tregisters\tstack_bytes\tkernel\n")
    for (arch, _, regs, stack), name in sorted(zip(rows, names), key=lambda x: (x[1], x[0][0])):
        f.write(f"{arch}\t{regs}\t{stack}\t{short(name)}\n")
print(f"ptxas: {len(rows)} kernel compilations, max registers "
      + ", ".join(f"{a}: {max(r[2] for r in rows if r[0] == a)}" for a in sorted({r[0] for r in rows}))
      + f"; registers per kernel in {os.path.join(out, 'registers.txt')}")
if spills:
    for s in spills:
        print("SPILL:", s, file=sys.stderr)
    sys.exit("ptxas reported register spills")
print("ptxas: 0 spills")
EOF

# ---- 2. SASS: 128-bit accesses on the fp32 fast path ---------------------------------------------
ensure_venv
log "SASS check (cuobjdump -sass)"
PATH="$NVBIN:$PATH" python3 - "$OUT" <<'EOF'
import glob, os, re, subprocess, sys
out = sys.argv[1]
# Optimizer element ops and what their fp32 fast path must show.
# (Elementwise<Hyper>: the generic op of every Elementwise optimizer, csrc/cuda/elementwise.cu.)
WRITES = {"Elementwise<AdamHyper>": True, "Elementwise<SGDHyper>": True,
          "Elementwise<LionHyper>": True, "LambMomentsOp": True, "LambApplyOp": True,
          "LarsApplyOp": True, "LarsNormOp": False, "SquaresOp": False}
OP = r"fusedopt::cuda::(?:Elementwise<fusedopt::(\w+)>::Op|(\w+))<float(?:, \d+)?>"


def op_name(m):
    return f"Elementwise<{m.group(1)}>" if m.group(1) else m.group(2)
seen, bad = {}, []
for cubin in sorted(glob.glob(os.path.join(out, "cubin", "*.cubin"))):
    arch = cubin.rsplit(".", 2)[-2]
    sass = subprocess.run(["cuobjdump", "-sass", cubin], capture_output=True, text=True, check=True).stdout
    funcs = re.split(r"\n\s*Function : ", sass)[1:]
    mangled = [f.split("\n", 1)[0].strip() for f in funcs]
    names = subprocess.run(["c++filt"], input="\n".join(mangled), capture_output=True,
                           text=True).stdout.splitlines()
    for body, name in zip(funcs, names):
        m = re.search(r"multi_tensor_kernel<" + OP + r", float, false, (\d+)>", name)
        if not m:
            continue
        op = op_name(m)
        ldg128 = len(re.findall(r"\bLDG\.E\.128\b", body))
        stg128 = len(re.findall(r"\bSTG\.E\.128\b", body))
        key = (arch, re.sub(r"\(.*", "", name).replace("void fusedopt::cuda::", ""))
        seen[key] = (ldg128, stg128)
        if ldg128 == 0 or (WRITES.get(op, True) and stg128 == 0):
            bad.append((key, ldg128, stg128))
with open(os.path.join(out, "sass_check.txt"), "w") as f:
    for (arch, k), (l, s) in sorted(seen.items()):
        f.write(f"{arch}\tLDG.E.128={l}\tSTG.E.128={s}\t{k}\n")
ops = {op_name(re.search(OP, "fusedopt::cuda::" + k)) for (_, k) in seen}
missing = set(WRITES) - ops
if missing:
    sys.exit(f"SASS check: no fp32 instance found for {sorted(missing)}")
if bad:
    for b in bad:
        print("NO 128-BIT ACCESS:", b, file=sys.stderr)
    sys.exit("SASS check failed")
print(f"SASS: {len(seen)} fp32 optimizer kernel instances over {len({a for a, _ in seen})} archs "
      f"({', '.join(sorted(ops))}) all use LDG.E.128 (and STG.E.128 where they write)")
EOF

if [ "${FUSEDOPT_CUDA_CHECKS_SKIP_EXT:-0}" = "1" ]; then
  log "done (extension build skipped)"
  exit 0
fi

# ---- 3. the real extension against torch 2.14.1+cu130 --------------------------------------------
SRC="$OUT/src"
log "building the CUDA extension (CUDAExtension, sm_80/90/100) in $SRC"
rm -rf "$SRC" && mkdir -p "$SRC"
(cd "$ROOT" && git ls-files -z --cached --others --exclude-standard |
   grep -zv '^build/' | xargs -0 tar -cf - 2>/dev/null) | tar -xf - -C "$SRC"
rm -f "$SRC"/fusedopt/_C*.so
(
  cd "$SRC"
  export PATH="$VENV/bin:$(dirname "$NVCC"):$PATH" CUDA_HOME="$(dirname "$(dirname "$NVCC")")"
  # The archs checked above (the wheel build of .ci/wheel.sh adds sm_120 and PTX).
  export MAX_JOBS=$JOBS FUSEDOPT_CUDA=1 FUSEDOPT_CUDA_ARCHS="80;90;100"
  python setup.py -q build_ext --inplace > "$OUT/extension_build.log" 2>&1 ||
    { tail -50 "$OUT/extension_build.log" >&2; exit 1; }
)
log "extension built; import + build_info"
(
  cd "$SRC"
  "$VENV/bin/python" - <<'EOF'
import torch, fusedopt
info = fusedopt.build_info()
print("build_info:", info)
assert info["cuda_compiled"] is True, "CUDA backend not compiled in"
assert info["cuda_available"] is False, "expected no GPU on this machine"
assert torch.version.cuda is not None and not torch.cuda.is_available()
EOF
  log "smoke subset of the CPU tests + tests/cuda in the CUDA build"
  "$VENV/bin/python" -m pytest -q -p no:cacheprovider tests/test_optimizers.py -k "cpu" \
    -x --maxfail=1 2>&1 | tail -3
  if [ -d tests/cuda ]; then
    "$VENV/bin/python" -m pytest -q -p no:cacheprovider -rs tests/cuda 2>&1 | tail -8
  fi
)
log "all CUDA checks passed"
