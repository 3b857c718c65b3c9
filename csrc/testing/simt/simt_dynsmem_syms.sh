#!/bin/sh
# Usage: simt_dynsmem_syms.sh OUT_RSP OBJECT_OR_ARCHIVE...
#
# A raw `extern __shared__ T name[];` in emulated kernel code becomes an
# undefined thread_local symbol. This writes a linker response file that
# aliases every such symbol to the emulator's dynamic shared memory
# (fusedopt_simt_dynsmem_tls), e.g. "--defsym=_ZN2ns4smemE=fusedopt_simt_dynsmem_tls".
# Use it as -Wl,@OUT_RSP when linking. TLS symbols defined in the inputs are
# left alone.
set -eu
out=$1
shift
readelf -sW "$@" 2>/dev/null | awk '
  $4 == "TLS" && $7 == "UND" { und[$8] = 1 }
  $4 == "TLS" && $7 != "UND" { def[$8] = 1 }
  END {
    for (s in und)
      if (!(s in def) && s != "fusedopt_simt_dynsmem_tls")
        printf "--defsym=%s=fusedopt_simt_dynsmem_tls\n", s
  }' | sort > "$out.tmp"
mv "$out.tmp" "$out"
