"""The static GPU report, usable without a GPU:

* bytes per element per optimizer: the minimal traffic model (and the emulator's measured traffic
  when a record of it exists);
* launches per step per table layout: the CUDA engine's own launch plans, asked from the op
  library (torch.ops.fusedopt._cuda_launch_plan, csrc/cuda/launch_plan.cpp: the planner the CUDA
  ops run, present in every build, the CPU-only one included) for one optimizer step of each
  family on the layout's tensor sizes;
* registers and spills per kernel: parsed from a ptxas -v log (written by .ci/cuda_checks.sh).
"""
from __future__ import annotations

import glob
import math
import os
import re
from typing import Dict, List, Optional, Tuple

from .competitors import BYTES_PER_ELEM, HYPER
from .layouts import Layout

_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

LAYOUTS = ("4KB", "32KB")  # kernel-parameter table layouts (CUDA >= 12.1 builds use 32 KB)


def _read(path: str) -> Optional[str]:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


def step_ops(family: str) -> List[Tuple[str, Dict]]:
    """The CUDA op calls of one fp32 step of `family` with the benchmark's hyper-parameters
    (competitors.HYPER), as (plan op, options of _cuda_launch_plan)."""
    h = HYPER[family]
    if family in ("adamw", "adam"):
        return [("adam", dict(states=3 if h.get("amsgrad") else 2))]
    if family == "sgd":
        return [("sgd", dict(states=1 if h.get("momentum") else 0))]
    if family == "lion":
        return [("lion", {})]
    if family == "lars":
        return [("lars", dict(states=1 if h.get("momentum") else 0))]
    if family == "lamb":  # global grad-norm clipping: the norm op runs first
        ops = [("lamb", {})]
        if h.get("max_grad_norm"):
            ops.insert(0, ("l2_norm", dict(global_norm=True)))
        return ops
    raise ValueError(f"no CUDA step for family {family!r}")


def launch_plan(op: str, numels: List[int], layout: str, **options) -> Dict:
    """{"constants": {...}, "launches": [(kernel, blocks, threads), ...]} of one op call."""
    import torch

    from .. import _ops  # noqa: F401  (loads the op library)

    text = torch.ops.fusedopt._cuda_launch_plan(op, [int(n) for n in numels], layout, **options)
    constants, launches = {}, []
    for line in text.splitlines():
        key, value = line.split("=", 1)
        if key == "launch":
            kernel, blocks, threads = value.split(",")
            launches.append((kernel, int(blocks), int(threads)))
        elif key == "table_capacity":
            constants[key] = [int(v) for v in value.split(",")]  # for 1, 2, ... pointer lists
        else:
            constants[key] = int(value)
    return {"constants": constants, "launches": launches}


def engine_limits() -> Dict:
    """The engine's constants per table layout, from the op library."""
    out = {"source": "the op library (torch.ops.fusedopt._cuda_launch_plan)"}
    for layout in LAYOUTS:
        c = launch_plan("l2_norm", [], layout)["constants"]
        out.setdefault("chunk_size", c["chunk_size"])
        out.setdefault("block_threads", c["block_threads"])
        out[layout] = {k: c[k] for k in ("param_bytes", "table_capacity", "tensor_capacity",
                                         "step_capacity", "max_blocks")}
    return out


def launches_per_step(layout: Layout, family: str) -> Dict[str, int]:
    numels = [math.prod(s) for s in layout.shapes]
    return {lay: sum(len(launch_plan(op, numels, lay, **opt)["launches"])
                     for op, opt in step_ops(family))
            for lay in LAYOUTS}


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
    data = {"bytes_per_elem_model": {f: BYTES_PER_ELEM[f] for f in families}}
    try:
        data["launch_model"] = {
            "what": "launches per optimizer step: the CUDA ops' own launch plans (the planner "
                    "they run, asked from the op library), fp32 params, the benchmark's "
                    "hyper-parameters; LAMB includes its global grad-norm op",
            "limits": engine_limits(),
            "per_layout": {l.name: {f: launches_per_step(l, f) for f in families}
                           for l in layouts},
        }
    except Exception as e:  # noqa: BLE001  (an op library without the op: say so, guess nothing)
        data["launch_model"] = {"error": f"launch plans unavailable: {type(e).__name__}: {e}"}
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
    if "error" in lm:
        lines.append(f"  launches per step: {lm['error']}")
    else:
        lim = lm["limits"]
        lines.append(f"  launches per step (from {lim['source']}; chunk {lim['chunk_size']} "
                     f"elements, {lim['block_threads']} threads per block), 4 KB / 32 KB "
                     f"parameter tables:")
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
