#!/usr/bin/env bash
# Checks the compiled per-SIMD-level objects of the CPU backend (kernels_<level>.cpp.o): loading
# the library must run no code compiled for a level before the driver picks that level.
#  - no static initializer (.init_array / .ctors sections): the level's table is a constant;
#  - every function the object defines is inside fusedopt::cpu::<level>, so the linker can never
#    pick a copy compiled for this level for an inline function another file also emits.
# A level the target does not have (the x86 levels on aarch64, kernel_table.h) compiles to an
# object that defines nothing: reported as "empty". The baseline object must define its kernels
# (so the check cannot pass on objects it could not read or that hold nothing).
# Usage: [NM=...] [OBJDUMP=...] check_level_objects.sh OBJECT...   (other objects are ignored;
# CMake passes the target's binutils, e.g. aarch64-linux-gnu-nm for the cross build)
set -euo pipefail
NM=${NM:-nm}
OBJDUMP=${OBJDUMP:-objdump}
status=0 checked=0 baseline_code=0
for obj in "$@"; do
  case "$(basename "$obj")" in
    kernels_*.o) ;;
    *) continue ;;
  esac
  level=$(basename "$obj"); level=${level#kernels_}; level=${level%%.*}
  checked=$((checked + 1))
  # A tool failure (missing file, foreign architecture) is a failure, never an empty result.
  headers=$("$OBJDUMP" -h "$obj") || { echo "FAIL $obj: $OBJDUMP -h failed"; status=1; continue; }
  symbols=$("$NM" --defined-only "$obj") || { echo "FAIL $obj: $NM failed"; status=1; continue; }
  if grep -Eq '\.(init_array|preinit_array|ctors)' <<<"$headers"; then
    echo "FAIL $obj: has a static initializer section"; grep -E 'init_array|ctors' <<<"$headers"
    status=1
  fi
  # Defined code symbols (text, weak, indirect) whose mangled name is not in the level's
  # namespace (functions and their local entities: _ZN... / _ZZN...8fusedopt3cpu<len><level>).
  code=$(awk '$2 ~ /^[TtWwi]$/ {print $3}' <<<"$symbols")
  prefix="^_ZZ?N8fusedopt3cpu${#level}${level}"
  stray=$(grep -Ev "$prefix" <<<"$code" || true)
  if [ -n "$stray" ]; then
    echo "FAIL $obj: code outside fusedopt::cpu::${level}:"; echo "$stray" | c++filt | head -20
    status=1
  elif [ -z "$code" ]; then
    echo "empty $obj ($level: defines no code; a level this target does not have)"
  else
    echo "ok   $obj ($level: $(wc -l <<<"$code") functions)"
    [ "$level" != baseline ] || baseline_code=1
  fi
done
[ "$checked" -gt 0 ] || { echo "FAIL: no kernels_<level> objects given"; exit 1; }
[ "$baseline_code" -eq 1 ] || { echo "FAIL: no kernels_baseline object with code given"; exit 1; }
exit $status
