"""The static GPU report, usable without a GPU:

* bytes per element per optimizer: the minimal traffic model (and the emulator's measured traffic
  when a record of it exists);
* launches per step per layout: from the chunk-planner arithmetic (csrc/include/fusedopt/planner.h
  plan_launches, with the CUDA engine's limits read from csrc/cuda when present) — a MODEL of
  the launch count, not a trace;
* registers and spills per kernel: parsed from a ptxas -v log (written by .ci/cuda_checks.sh).
"""
from __future__ import annotations

import glob
import math
import os
import re
from typing import Dict, List, Optional

from . import engine_source
from .competitors import BYTES_PER_ELEM
from .layouts import Layout

_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# Lists per multi-tensor launch (fp32, no master weights, no amsgrad): param, grad, states.
_LISTS = {"adamw": 4, "adam": 4, "sgd": 3, "lion": 3, "lars": 3, "lamb": 4}
# Multi-tensor passes over the lists per step (design: ARCHITECTURE.md / docs/kernels.md) and the
# per-tensor cleanup launches of the two-pass optimizers.
_PASSES = {"adamw": 1, "adam": 1, "sgd": 1, "lion": 1, "lars": 2, "lamb": 2}
_NORM_PASS = {"lamb": 1}  # global grad-norm pass (max_grad_norm > 0)
# The single-pass optimizers advance their step counters in a tiny launch of their own (LAMB and
# LARS do it in their cleanup launch; docs/kernels.md).
_STEP_LAUNCH = {"adamw": 1, "adam": 1, "sgd": 1, "lion": 1}


def _read(path: str) -> Optional[str]:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


def engine_limits(root: str = _ROOT) -> Dict:
    """Chunk size and table parameters of the CUDA engine: read from its sources in a source tree
    (csrc/cuda/cuda_backend.h, csrc/cuda/multi_tensor.cuh); in an installed package (no csrc/),
    the values setup.py read from the same sources at build time (fusedopt/_build_info.py);
    otherwise planner.h's defaults, labelled as such (they describe the 4 KB fixed-limit
    planner, not necessarily the built engine)."""
    lim = engine_source.from_tree(root)
    source = "csrc/cuda (slot tables, blocks not limited per launch)"
    if lim is None:
        try:
            from .. import _build_info
            lim = getattr(_build_info, "cuda_engine", None)
        except ImportError:
            lim = None
        source = ("csrc/cuda at build time, recorded in fusedopt/_build_info.py (slot tables, "
                  "blocks not limited per launch)")
    if lim is not None:
        return dict(lim, source=source)
    return {"chunk_size": 65536, "param_reserve": 384, "max_tensors_4k": 110, "max_blocks_4k": 320,
            "source": "planner.h defaults: csrc/cuda not found and no limits recorded at build "
                      "time, so these may NOT be the built engine's limits"}


def _slot_capacity(lists: int, param_bytes: int, reserve: int) -> int:
    # multi_tensor.cuh: slot_bytes = lists * 8 + 4 * 8 + 2 * 4
    return (param_bytes - reserve - 8) // (lists * 8 + 4 * 8 + 2 * 4)


def plan_launches(numels: List[int], chunk_size: int, max_tensors: int, max_blocks: int) -> int:
    """Launch count of planner.h plan_launches (same loop, counting only)."""
    launches = 0
    tensors = blocks = 0
    for n in numels:
        chunks = 0 if n <= 0 else (n - 1) // chunk_size + 1
        c = 0
        while c < chunks:
            if tensors == max_tensors:
                launches += 1
                tensors = blocks = 0
            tensors += 1
            take = min(chunks - c, max_blocks - blocks)
            blocks += take
            c += take
            if blocks == max_blocks:
                launches += 1
                tensors = blocks = 0
    if blocks:
        launches += 1
    return launches


def launches_per_step(layout: Layout, family: str, lim: Dict) -> Dict[str, int]:
    numels = [math.prod(s) for s in layout.shapes]
    out = {}
    for label, pbytes in (("4KB", 4096), ("32KB", 32764)):
        if "max_tensors_4k" in lim:  # planner.h's fixed limits (4 KB table), scaled for 32 KB
            k = pbytes / 4096
            max_t, max_b = int(lim["max_tensors_4k"] * k), int(lim["max_blocks_4k"] * k)
        else:
            max_t, max_b = _slot_capacity(_LISTS[family], pbytes, lim["param_reserve"]), 1 << 24
        per_pass = plan_launches(numels, lim["chunk_size"], max_t, max_b)
        total = per_pass * _PASSES[family] + _STEP_LAUNCH.get(family, 0)
        if family in ("lamb", "lars"):  # per-tensor cleanup of the reduction partials
            cap = _slot_capacity(2, pbytes, lim["param_reserve"])
            total += max(1, math.ceil(len(numels) / max(cap, 1)))
        if family in _NORM_PASS:
            total += plan_launches(numels, lim["chunk_size"],
                                   _slot_capacity(1, pbytes, lim["param_reserve"]), max_b) + 1
        out[label] = total
    return out


_PTXAS_CANDIDATES = ("build/cuda_checks/cubin/*.ptxas.log", "build/cuda_checks/ptxas.log",
                     "build/cuda_checks/*.log",
                     "build/ptxas*.log", ".ci/ptxas*.log", "build/cuda*/ptxas*.txt")


def find_ptxas_log(root: str = _ROOT, explicit: Optional[str] = None) -> Optional[str]:
    """The log (an explicit file, or the first candidate pattern with ptxas output; a pattern
    matching several files, like .ci/cuda_checks.sh's per-source logs, yields them all)."""
    if explicit:
        return explicit if os.path.exists(explicit) else None
    for pat in _PTXAS_CANDIDATES:
        paths = [p for p in sorted(glob.glob(os.path.join(root, pat)))
                 if "registers" in (_read(p) or "")]
        if paths:
            return os.path.pathsep.join(paths)
    return None


def parse_ptxas(text: str) -> List[Dict]:
    """Rows {kernel, arch, registers, spill_stores, spill_loads} from `ptxas -v` output."""
    rows, kernel, arch, spills = [], None, None, (0, 0)
    for line in text.splitlines():
        m = re.search(r"Compiling entry function '([^']+)' for '(sm_\d+a?)'", line)
        if m:
            kernel, arch, spills = m.group(1), m.group(2), (0, 0)
            continue
        m = re.search(r"(\d+) bytes spill stores, (\d+) bytes spill loads", line)
        if m:
            spills = (int(m.group(1)), int(m.group(2)))
            continue
        m = re.search(r"Used (\d+) registers", line)
        if m and kernel:
            rows.append({"kernel": _demangle(kernel), "arch": arch, "registers": int(m.group(1)),
                         "spill_stores": spills[0], "spill_loads": spills[1]})
            kernel = None
    return rows


def _demangle(name: str) -> str:
    try:
        import subprocess
        r = subprocess.run(["c++filt", name], capture_output=True, text=True, timeout=5)
        out = r.stdout.strip()
        return out[:160] if out else name
    except Exception:  # noqa: BLE001
        return name


def report(layouts: List[Layout], families, ptxas_log: Optional[str] = None) -> Dict:
    lim = engine_limits()
    data = {
        "bytes_per_elem_model": {f: BYTES_PER_ELEM[f] for f in families},
        "launch_model": {
            "what": "launches per optimizer step from the chunk-planner arithmetic (a model, not "
                    "a trace): multi-tensor passes x launches per pass, + per-tensor cleanup "
                    "(LAMB/LARS) + global grad-norm pass and its cleanup (LAMB)",
            "limits": lim,
            "per_layout": {l.name: {f: launches_per_step(l, f, lim) for f in families}
                           for l in layouts},
        },
    }
    path = find_ptxas_log(explicit=ptxas_log)
    if path:
        text = "\n".join(_read(p) or "" for p in path.split(os.path.pathsep))
        data["ptxas"] = {"log": path, "kernels": parse_ptxas(text)}
    else:
        data["ptxas"] = {"log": None, "note": "not available: no ptxas log given (--ptxas-log) "
                         f"or found under {_ROOT} (.ci/cuda_checks.sh writes one in a source tree)"}
    return data


def format_report(data: Dict) -> str:
    lines = ["Static GPU report (no GPU needed)"]
    bpe = data["bytes_per_elem_model"]
    lines.append("  bytes/element/step (fp32 model): " +
                 ", ".join(f"{f} {b}" for f, b in bpe.items()))
    lm = data["launch_model"]
    lines.append(f"  launches per step (model; limits from {lm['limits']['source']}, "
                 f"chunk {lm['limits']['chunk_size']} elements), 4 KB / 32 KB parameter tables:")
    fams = list(bpe)
    lines.append("    " + f"{'layout':<12}" + "".join(f"{f:>12}" for f in fams))
    for lname, per in lm["per_layout"].items():
        lines.append("    " + f"{lname:<12}" +
                     "".join(f"{str(per[f]['4KB']) + '/' + str(per[f]['32KB']):>12}"
                             for f in fams))
    px = data["ptxas"]
    if px.get("log"):
        lines.append(f"  registers / spills per kernel (ptxas log {px['log']}):")
        for r in px["kernels"][:60]:
            lines.append(f"    {r['arch']:<7} {r['registers']:>4} regs  spill st/ld "
                         f"{r['spill_stores']}/{r['spill_loads']} B  {r['kernel']}")
        if not px["kernels"]:
            lines.append("    (no 'Used N registers' lines in the log)")
    else:
        lines.append(f"  registers / spills per kernel: {px['note']}")
    return "\n".join(lines)
