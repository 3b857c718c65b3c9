"""One correctness check per fusedopt optimizer before timing it: a few steps on a small problem
compared with the float64 reference (fusedopt.reference)."""
from __future__ import annotations

from typing import Dict

import torch

from .competitors import HYPER

_REF_NAMES = {"adamw": "adamw", "adam": "adam", "sgd": "sgd", "lion": "lion", "lars": "lars",
              "lamb": "lamb"}
_SHAPES = [(7,), (33, 17), (5, 9), (1000,), (3, 1, 4)]


def check_family(family: str, make, device: torch.device, steps: int = 3,
                 rtol: float = 1e-4) -> Dict:
    """make(params) -> fused optimizer. Returns {'ok': bool, 'max_rel_err': float, 'detail': str}.
    The error is measured relative to the largest magnitude of each param (fp32 kernels vs a
    float64 reference: ~1e-6 expected)."""
    try:
        from ..reference import Reference
    except Exception as e:  # noqa: BLE001
        return {"ok": None, "max_rel_err": None, "detail": f"fusedopt.reference unavailable: {e}"}
    gen = torch.Generator().manual_seed(1234)
    init = [torch.randn(s, generator=gen) for s in _SHAPES]
    grads = [[torch.randn(s, generator=gen) for s in _SHAPES] for _ in range(steps)]
    params = [t.clone().to(device).requires_grad_(True) for t in init]
    try:
        opt = make(params)
        ref = Reference(_REF_NAMES[family], [t.clone() for t in init], **HYPER[family])
        for gs in grads:
            for p, g in zip(params, gs):
                p.grad = g.to(device)
            opt.step()
            ref.step(gs)
        worst = 0.0
        for p, r in zip(params, ref.params()):
            scale = max(float(r.abs().max()), 1e-12)
            err = float((p.detach().cpu().double() - r).abs().max()) / scale
            worst = max(worst, err)
    except Exception as e:  # noqa: BLE001
        return {"ok": False, "max_rel_err": None, "detail": f"{type(e).__name__}: {e}"}
    ok = worst <= rtol
    return {"ok": ok, "max_rel_err": worst,
            "detail": f"{steps} steps on {len(_SHAPES)} tensors vs float64 reference: "
                      f"max error {worst:.2e} of max |param| ({'ok' if ok else 'FAIL'}, "
                      f"tolerance {rtol:g})"}
