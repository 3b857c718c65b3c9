#!/usr/bin/env bash
# What the LibTorch stable ABI costs per op call on long tensor lists, apart from any work: two
# no-op ops with adam_'s five lists, one on the stable ABI (stable_noop.cpp, as fusedopt's op
# library), one on the classic C++ API (classic_noop.cpp, ArrayRef arguments), timed in the same
# process on 2000 tensors (docs/install.md "Per-call cost of the stable ABI").
#   bench/abi_boxing/run.sh [python]   (default: python3 with torch installed)
set -euo pipefail
PY=${1:-python3}
OUT=$(mktemp -d /tmp/fusedopt-abi-boxing.XXXXXX)
trap 'rm -rf "$OUT"' EXIT
HERE=$(cd "$(dirname "$0")" && pwd)
INC=$("$PY" -c "import torch.utils.cpp_extension as c; print(' '.join('-I' + p for p in c.include_paths()))")
LIB=$("$PY" -c "import torch, os; print(os.path.join(os.path.dirname(torch.__file__), 'lib'))")
# shellcheck disable=SC2086
g++ -std=c++20 -O2 -shared -fPIC -DTORCH_TARGET_VERSION=0x020a000000000000 $INC \
  "$HERE/stable_noop.cpp" -o "$OUT/stable.so" -L"$LIB" -ltorch_cpu -lc10
# shellcheck disable=SC2086
g++ -std=c++20 -O2 -shared -fPIC $INC "$HERE/classic_noop.cpp" -o "$OUT/classic.so" \
  -L"$LIB" -ltorch_cpu -lc10
"$PY" - "$OUT" <<'PYEOF'
import sys, time, torch
torch.set_num_threads(1)
torch.ops.load_library(f"{sys.argv[1]}/stable.so")
torch.ops.load_library(f"{sys.argv[1]}/classic.so")
n = 2000
lists = [[torch.zeros(256) for _ in range(n)] for _ in range(4)] + [[torch.zeros(()) for _ in range(n)]]
for label, op in (("stable ABI no-op", torch.ops.noopns.noop),
                  ("stable ABI, dtype + data_ptr per tensor", torch.ops.noopns.touch),
                  ("classic API no-op", torch.ops.noopat.noop)):
    op(*lists)
    best = min((lambda t0: (op(*lists), time.perf_counter() - t0)[1])(time.perf_counter())
               for _ in range(50))
    print(f"{label:42s} {best * 1e3:.3f} ms per call (5 lists x {n} tensors)")
PYEOF
