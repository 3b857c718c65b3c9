#!/usr/bin/env bash
# The op library against torch releases other than the one it was built with (issue 12; the
# library is on the LibTorch stable ABI, target torch 2.10):
#   1. headers: the torch-facing sources (csrc/SOURCES.txt groups ops, torch, torch_cuda) compile
#      (g++ -fsyntax-only, CUDA backend on, TORCH_TARGET_VERSION = 2.10, as setup.py builds them)
#      against the headers of each release given (default 2.10.0, the oldest torch the library
#      targets, and 2.11.0, the torch of the GPU machine tools/gpu_check.sh is planned for);
#   2. symbols: every torch symbol the built libraries (--lib PATH, repeatable) import is
#      exported by torch 2.10.0's libtorch_cpu / libtorch_cuda, and none is a C++ symbol: the
#      libraries load under 2.10 (and later releases keep the stable C shim).
# The torch wheels (~0.5 GB each, local index) are downloaded once; what is needed of them is
# cached under build/torch_compat. ~1 min the first time, ~20 s after.
#   .ci/torch_compat.sh [--lib PATH]... [torch version ...]
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
LIBS=()
VERSIONS=()
while [ $# -gt 0 ]; do
  case "$1" in
    --lib) LIBS+=("$2"); shift 2 ;;
    *) VERSIONS+=("$1"); shift ;;
  esac
done
[ ${#VERSIONS[@]} -gt 0 ] || VERSIONS=(2.10.0 2.11.0)
std=$(awk '$1 == "std" {print $2}' csrc/build_flags.txt)
target=$("$PY" -c 'print(hex((2 << 56) | (10 << 48)))')
CUDA_INC=${CUDA_HOME:-/usr/local/cuda}/include
fail=0

fetch() {  # version, what to keep (headers | libs) -> $DIR/torch/...
  local version=$1 what=$2
  DIR=build/torch_compat/$version
  local stamp="$DIR/.have-$what"
  [ -f "$stamp" ] && return 0
  mkdir -p "$DIR"
  if ! ls "$DIR"/torch-*.whl > /dev/null 2>&1; then
    "$PY" -m pip download -q --no-deps -d "$DIR" "torch==$version" > "$DIR/download.log" 2>&1 ||
      { cat "$DIR/download.log"; exit 1; }
  fi
  "$PY" - "$DIR" "$what" <<'PYEOF'
import glob, sys, zipfile
d, what = sys.argv[1], sys.argv[2]
whl, = glob.glob(f"{d}/torch-*.whl")
keep = (lambda n: n.startswith("torch/include/") or n == "torch/version.py") if what == "headers" \
    else (lambda n: n in ("torch/lib/libtorch_cpu.so", "torch/lib/libtorch_cuda.so",
                          "torch/version.py"))
with zipfile.ZipFile(whl) as z:
    z.extractall(d, [n for n in z.namelist() if keep(n)])
PYEOF
  touch "$stamp"
}

for VERSION in "${VERSIONS[@]}"; do
  fetch "$VERSION" headers
  FULL=$(sed -n "s/^__version__ = '\(.*\)'$/\1/p" "$DIR/torch/version.py")
  I=$DIR/torch/include
  for f in $(awk '$1 == "ops" || $1 == "torch" || $1 == "torch_cuda" {print $2}' csrc/SOURCES.txt); do
    if g++ -std="$std" -fsyntax-only -fvisibility=hidden -DFUSEDOPT_WITH_CUDA=1 \
         -DTORCH_TARGET_VERSION="$target" -Icsrc/include -Icsrc/cpu -Icsrc/torch \
         -I"$I" -I"$CUDA_INC" "$f" 2> "$DIR/err.txt"; then
      echo "ok      $f compiles against torch $FULL headers"
    else
      echo "FAILED  $f against torch $FULL headers:"; head -30 "$DIR/err.txt"; fail=1
    fi
  done
done

if [ ${#LIBS[@]} -gt 0 ]; then
  fetch 2.10.0 libs
  nm -D --defined-only "$DIR"/torch/lib/libtorch_cpu.so "$DIR"/torch/lib/libtorch_cuda.so |
    awk 'NF == 3 {print $3}' | sort -u > "$DIR/exports.txt"
  for lib in "${LIBS[@]}"; do
    [ -f "$lib" ] || { echo "FAILED  no library at $lib"; fail=1; continue; }
    cpp=$(nm -D --undefined-only -C "$lib" | grep -E "c10::|at::|torch::|caffe2::" || true)
    [ -z "$cpp" ] || { echo "FAILED  $lib imports C++ symbols of torch:"; echo "$cpp" | head; fail=1; }
    nm -D --undefined-only "$lib" | awk '{print $NF}' | grep -E "^(aoti_torch_|torch_)" |
      sort -u > "$DIR/needs.txt"
    missing=$(comm -23 "$DIR/needs.txt" "$DIR/exports.txt")
    if [ -n "$missing" ]; then
      echo "FAILED  $lib imports torch symbols torch 2.10.0 does not export:"; echo "$missing"
      fail=1
    else
      echo "ok      $lib: its $(wc -l < "$DIR/needs.txt") torch symbols are all in torch 2.10.0's" \
           "stable C shim, no C++ symbol of torch"
    fi
  done
fi
exit $fail
