#!/usr/bin/env bash
# Checks the compiled per-SIMD-level objects of the CPU backend (kernels_<level>.cpp.o): loading
# the library must run no code compiled for a level before the driver picks that level.
#  - no static initializer (.init_array / .ctors sections): the level's table is a constant;
#  - every function the object defines is inside fusedopt::cpu::<level>, so the linker can never
#    pick a copy compiled for this level for an inline function another file also emits.
# Usage: check_level_objects.sh OBJECT...   (other objects are ignored)
set -euo pipefail
status=0 checked=0
for obj in "$@"; do
  case "$(basename "$obj")" in
    kernels_*.o | *kernels_*.o) ;;
    *) continue ;;
  esac
  level=$(basename "$obj"); level=${level#kernels_}; level=${level%%.*}
  checked=$((checked + 1))
  if objdump -h "$obj" | grep -Eq '\.(init_array|preinit_array|ctors)'; then
    echo "FAIL $obj: has a static initializer section"; objdump -h "$obj" | grep -E 'init_array|ctors'
    status=1
  fi
  # Defined code symbols (text, weak, indirect) whose mangled name is not in the level's
  # namespace (functions and their local entities: _ZN... / _ZZN...8fusedopt3cpu<len><level>).
  prefix="^_ZZ?N8fusedopt3cpu${#level}${level}"
  stray=$(nm --defined-only "$obj" | awk '$2 ~ /^[TtWwi]$/ {print $3}' | grep -Ev "$prefix" || true)
  if [ -n "$stray" ]; then
    echo "FAIL $obj: code outside fusedopt::cpu::${level}:"; echo "$stray" | c++filt | head -20
    status=1
  else
    echo "ok   $obj ($level)"
  fi
done
[ "$checked" -gt 0 ] || { echo "no kernels_<level> objects given"; exit 1; }
exit $status
