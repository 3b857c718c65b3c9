#!/usr/bin/env bash
# The torch-facing sources (csrc/SOURCES.txt groups torch and torch_cuda) against the headers of
# another torch release, without building or importing it: g++ -fsyntax-only with the CUDA backend
# on. Default 2.11.0, the torch of the GPU machine tools/gpu_check.sh is planned for (issue 11),
# so an API the build there would trip over shows up here first. ~40 s (the wheel download is
# cached under build/torch_headers).
#   .ci/torch_headers.sh [torch version]
set -euo pipefail
cd "$(dirname "$0")/.."
VERSION=${1:-2.11.0}
DIR=build/torch_headers/$VERSION
PY=${PYTHON:-python3}
mkdir -p "$DIR"
if [ ! -d "$DIR/torch/include" ]; then
  "$PY" -m pip download -q --no-deps -d "$DIR" "torch==$VERSION" > "$DIR/download.log" 2>&1 ||
    { cat "$DIR/download.log"; exit 1; }
  "$PY" - "$DIR" <<'PYEOF'
import glob, sys, zipfile
d = sys.argv[1]
whl, = glob.glob(f"{d}/torch-*.whl")
with zipfile.ZipFile(whl) as z:
    z.extractall(d, [n for n in z.namelist()
                     if n.startswith("torch/include/") or n == "torch/version.py"])
PYEOF
  rm -f "$DIR"/torch-*.whl
fi
FULL=$(sed -n "s/^__version__ = '\(.*\)'$/\1/p" "$DIR/torch/version.py")
I=$DIR/torch/include
CUDA_INC=${CUDA_HOME:-/usr/local/cuda}/include
std=$(awk '$1 == "std" {print $2}' csrc/build_flags.txt)
fail=0
for f in $(awk '$1 == "torch" || $1 == "torch_cuda" {print $2}' csrc/SOURCES.txt); do
  if g++ -std="$std" -fsyntax-only -fopenmp -DFUSEDOPT_VERSION='"check"' -DFUSEDOPT_WITH_CUDA=1 \
       -DTORCH_EXTENSION_NAME=_C -DTORCH_API_INCLUDE_EXTENSION_H \
       -Icsrc/include -Icsrc/cpu -Icsrc/torch -Icsrc/testing/simt \
       -I"$I" -I"$I/torch/csrc/api/include" -I"$CUDA_INC" $("$PY" -c \
       'import sysconfig; print("-I" + sysconfig.get_paths()["include"])') "$f" 2> "$DIR/err.txt"; then
    echo "ok      $f against torch $FULL headers"
  else
    echo "FAILED  $f against torch $FULL headers:"; head -30 "$DIR/err.txt"; fail=1
  fi
done
exit $fail
