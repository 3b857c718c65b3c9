"""The CUDA multi-tensor engine's launch-table constants, read from its sources
(csrc/cuda/cuda_backend.h: kChunkSize; csrc/cuda/multi_tensor.cuh: kParamReserve and the
slot-table layout). Standard library only: setup.py loads this file by path at build time and
records the result in fusedopt/_build_info.py, so that an installed package (which has no csrc/)
reports the limits of the engine it was built from (bench/static_gpu.py)."""
from __future__ import annotations

import os
import re
from typing import Dict, Optional


def parse(cuda_backend_h: Optional[str], multi_tensor_cuh: Optional[str]) -> Optional[Dict]:
    """{chunk_size, param_reserve} of the slot-table engine, or None if the sources are missing
    or no longer look like it (then the caller must not pretend to know the limits)."""
    if not cuda_backend_h or not multi_tensor_cuh:
        return None
    m = re.search(r"kChunkSize\s*=\s*(\d+)", cuda_backend_h)
    r = re.search(r"kParamReserve\s*=\s*(\d+)", multi_tensor_cuh)
    if not (m and r and "slot_bytes" in multi_tensor_cuh):
        return None
    return {"chunk_size": int(m.group(1)), "param_reserve": int(r.group(1))}


def _read(path: str) -> Optional[str]:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


def from_tree(root: str) -> Optional[Dict]:
    return parse(_read(os.path.join(root, "csrc", "cuda", "cuda_backend.h")),
                 _read(os.path.join(root, "csrc", "cuda", "multi_tensor.cuh")))
