"""fusedopt's benchmark suite. Command line: ``python -m fusedopt.bench --help``.

``time_step(optimizer, params)`` times one optimizer's step from Python and leaves params, grads
and state exactly as it found them."""
from __future__ import annotations

from typing import Dict, List, Optional

import torch

from .timing import Entry, Snapshot, time_interleaved

__all__ = ["main", "time_step", "Snapshot"]


def main(argv: Optional[List[str]] = None) -> int:
    from .cli import main as _main
    return _main(argv)


def time_step(optimizer, params: Optional[List[torch.Tensor]] = None, warmup: int = 2,
              repeats: int = 10) -> Dict:
    """Min / median milliseconds of ``optimizer.step()``. Params, grads and optimizer state are
    snapshotted first and restored (bitwise) afterwards."""
    if params is None:
        params = [p for g in optimizer.param_groups for p in g["params"]]
    device = params[0].device if params else torch.device("cpu")
    snap = Snapshot(params, [optimizer])
    e = Entry("step", optimizer.step)
    try:
        time_interleaved([e], warmup, repeats, device)
    finally:
        snap.restore()
    if e.error:
        raise RuntimeError(e.error)
    t = sorted(e.times_ms)
    return {"min_ms": t[0], "median_ms": t[len(t) // 2], "times_ms": e.times_ms,
            "restored": snap.verify()}
