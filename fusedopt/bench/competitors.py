"""The optimizers the benchmark compares: fusedopt, torch.optim (for-loop / foreach / fused) and
optional peers (apex, DeepSpeed, timm, lion-pytorch, pytorch-optimizer), whichever import.

A missing or broken peer is never an error: it is listed as skipped, with the reason. Peers whose
import can crash or hang the interpreter (timm pulls torchvision, DeepSpeed JIT-builds ops) are
first probed in a subprocess."""
from __future__ import annotations

import importlib
import os
import subprocess
import sys
from dataclasses import dataclass, replace
from typing import Callable, Dict, List, Optional, Tuple

import torch

FAMILIES = ("adamw", "adam", "sgd", "lion", "lars", "lamb")

# Minimal bytes moved per element per step (fp32 params and state; read + write), the model the
# effective GB/s figures use. LAMB with global grad-norm clipping (max_grad_norm > 0, the default
# here) reads the grads once more: 40 + 4.
BYTES_PER_ELEM = {"adamw": 28, "adam": 28, "sgd": 20, "lion": 20, "lars": 28, "lamb": 44}
BYTES_NOTE = ("bytes/elem model (fp32): AdamW/Adam 28, SGD-momentum 20, Lion 20, "
              "LARS 28 (norm pass 8 + update 20), LAMB 40 + 4 (global grad-norm pass)")

# Same hyper-parameters for every implementation of a family (each library's own names): the
# fused optimizer's constructor defaults for the options every competitor takes, with the
# workload's changes (momentum for SGD, weight decay for Lion and LARS).
_HYPER_OPTIONS = {
    "adamw": ("FusedAdamW", ("lr", "betas", "eps", "weight_decay"), {}),
    "adam": ("FusedAdam", ("lr", "betas", "eps", "weight_decay"), {}),
    "sgd": ("FusedSGD", ("lr", "momentum"), dict(momentum=0.9)),
    "lion": ("FusedLion", ("lr", "betas", "weight_decay"), dict(weight_decay=1e-2)),
    "lars": ("FusedLARS", ("lr", "momentum", "weight_decay", "trust_coefficient"),
             dict(weight_decay=1e-4)),
    "lamb": ("FusedLAMB", ("lr", "betas", "eps", "weight_decay", "max_grad_norm"), {}),
}


def _hyper():
    import fusedopt
    from fusedopt._declarations import constructor_defaults

    out = {}
    for family, (cls, keys, changes) in _HYPER_OPTIONS.items():
        defaults = constructor_defaults(getattr(fusedopt, cls))
        out[family] = {k: changes.get(k, defaults[k]) for k in keys}
    return out


HYPER = _hyper()


@dataclass
class Competitor:
    name: str          # display name, unique
    family: str        # optimizer family (bytes model, hyper-parameters)
    library: str       # fusedopt | torch | apex | deepspeed | timm | lion-pytorch | pytorch-optimizer
    make: Callable     # make(params) -> torch.optim.Optimizer-like object with .step()
    devices: Tuple[str, ...] = ("cpu", "cuda")
    slow: bool = False  # per-tensor loops / many ops per step: fewer rounds, not in --quick
    simd_level: Optional[str] = None  # fusedopt only: CPU SIMD level its steps run at (None: native)

    @property
    def is_fusedopt(self) -> bool:
        return self.library == "fusedopt"


@dataclass
class Skipped:
    what: str
    reason: str


# ---- optional imports ----------------------------------------------------------------------------
_PROBE_TIMEOUT = 180


def _probe(module: str) -> Optional[str]:
    """Imports ``module`` in a subprocess; returns None if that works, else the reason."""
    try:
        r = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True,
                           text=True, timeout=_PROBE_TIMEOUT,
                           env=dict(os.environ, PYTHONWARNINGS="ignore"))
    except subprocess.TimeoutExpired:
        return f"`import {module}` did not finish in {_PROBE_TIMEOUT} s"
    except Exception as e:  # noqa: BLE001
        return f"could not probe `import {module}`: {e}"
    if r.returncode != 0:
        lines = [ln for ln in (r.stderr or "").strip().splitlines() if ln.strip()]
        last = lines[-1] if lines else f"exit code {r.returncode}"
        return f"`import {module}` fails: {last[:200]}"
    return None


def _import(module: str, probe: bool = False):
    """(module, None) or (None, reason)."""
    if importlib.util.find_spec(module.split(".")[0]) is None:
        return None, "not installed"
    if probe:
        reason = _probe(module)
        if reason:
            return None, reason
    try:
        return importlib.import_module(module), None
    except BaseException as e:  # noqa: BLE001  (a peer may raise anything, even SystemExit)
        if isinstance(e, KeyboardInterrupt):
            raise
        return None, f"import fails: {type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"


# ---- the registry ----------------------------------------------------------------------------------
def _torch_variants(family: str, cls, **kw) -> List[Competitor]:
    out = []
    for mode, flags, slow in (("for-loop", dict(foreach=False), True),
                              ("foreach", dict(foreach=True), True),
                              ("fused", dict(fused=True), False)):
        out.append(Competitor(f"torch {cls.__name__} {mode}", family, "torch",
                              lambda ps, cls=cls, flags=flags: cls(ps, **kw, **flags), slow=slow))
    return out


def _fusedopt() -> List[Competitor]:
    import fusedopt
    h = HYPER
    return [
        Competitor("fusedopt FusedAdamW", "adamw", "fusedopt",
                   lambda ps: fusedopt.FusedAdamW(ps, **h["adamw"])),
        Competitor("fusedopt FusedAdam", "adam", "fusedopt",
                   lambda ps: fusedopt.FusedAdam(ps, **h["adam"])),
        Competitor("fusedopt FusedSGD", "sgd", "fusedopt",
                   lambda ps: fusedopt.FusedSGD(ps, **h["sgd"])),
        Competitor("fusedopt FusedLion", "lion", "fusedopt",
                   lambda ps: fusedopt.FusedLion(ps, **h["lion"])),
        Competitor("fusedopt FusedLARS", "lars", "fusedopt",
                   lambda ps: fusedopt.FusedLARS(ps, **h["lars"])),
        Competitor("fusedopt FusedLAMB", "lamb", "fusedopt",
                   lambda ps: fusedopt.FusedLAMB(ps, **h["lamb"])),
    ]


def _torch() -> List[Competitor]:
    h = HYPER
    out = _torch_variants("adamw", torch.optim.AdamW, **h["adamw"])
    out += _torch_variants("adam", torch.optim.Adam, **h["adam"])
    out += _torch_variants("sgd", torch.optim.SGD, **h["sgd"])
    return out


def _peers(device: str, skipped: List[Skipped], probe_heavy: bool = True) -> List[Competitor]:
    h = HYPER
    out: List[Competitor] = []

    # lion-pytorch
    mod, why = _import("lion_pytorch")
    if mod is None:
        skipped.append(Skipped("lion-pytorch Lion", why))
    else:
        lh = h["lion"]
        out.append(Competitor("lion-pytorch Lion", "lion", "lion-pytorch",
                              lambda ps: mod.Lion(ps, lr=lh["lr"], betas=lh["betas"],
                                                  weight_decay=lh["weight_decay"],
                                                  use_triton=False), slow=True))

    # pytorch-optimizer
    po, why = _import("pytorch_optimizer")
    if po is None:
        for n in ("Lamb", "LARS", "Lion"):
            skipped.append(Skipped(f"pytorch-optimizer {n}", why))
    else:
        lh, rh, bh = h["lion"], h["lars"], h["lamb"]
        if hasattr(po, "Lion"):
            out.append(Competitor("pytorch-optimizer Lion", "lion", "pytorch-optimizer",
                                  lambda ps: po.Lion(ps, lr=lh["lr"], betas=lh["betas"],
                                                     weight_decay=lh["weight_decay"]),
                                  slow=True))
        if hasattr(po, "LARS"):
            out.append(Competitor("pytorch-optimizer LARS", "lars", "pytorch-optimizer",
                                  lambda ps: po.LARS(ps, lr=rh["lr"], momentum=rh["momentum"],
                                                     weight_decay=rh["weight_decay"],
                                                     trust_coefficient=rh["trust_coefficient"]),
                                  slow=True))
        if hasattr(po, "Lamb"):
            out.append(Competitor("pytorch-optimizer Lamb", "lamb", "pytorch-optimizer",
                                  lambda ps: po.Lamb(ps, lr=bh["lr"], betas=bh["betas"],
                                                     eps=bh["eps"], weight_decay=bh["weight_decay"],
                                                     max_grad_norm=bh["max_grad_norm"]),
                                  slow=True))

    # timm (needs torchvision, which often fails to import beside a CPU torch)
    timm_optim, why = _import("timm.optim", probe=probe_heavy)
    if timm_optim is None:
        for n in ("Lamb", "Lars", "Lion"):
            skipped.append(Skipped(f"timm {n}", why))
    else:
        lh, rh, bh = h["lion"], h["lars"], h["lamb"]
        if hasattr(timm_optim, "Lamb"):
            out.append(Competitor("timm Lamb", "lamb", "timm",
                                  lambda ps: timm_optim.Lamb(ps, lr=bh["lr"], betas=bh["betas"],
                                                             eps=bh["eps"],
                                                             weight_decay=bh["weight_decay"],
                                                             max_grad_norm=bh["max_grad_norm"]),
                                  slow=True))
        if hasattr(timm_optim, "Lars"):
            out.append(Competitor("timm Lars", "lars", "timm",
                                  lambda ps: timm_optim.Lars(ps, lr=rh["lr"],
                                                             momentum=rh["momentum"],
                                                             weight_decay=rh["weight_decay"],
                                                             trust_coeff=rh["trust_coefficient"]),
                                  slow=True))
        if hasattr(timm_optim, "Lion"):
            out.append(Competitor("timm Lion", "lion", "timm",
                                  lambda ps: timm_optim.Lion(ps, lr=lh["lr"], betas=lh["betas"],
                                                             weight_decay=lh["weight_decay"])))
        else:
            skipped.append(Skipped("timm Lion", "this timm has no timm.optim.Lion"))

    # DeepSpeed: CPUAdam / CPULion (CPU, JIT-built C++ ops), FusedLamb (CUDA)
    if importlib.util.find_spec("deepspeed") is None:
        for n in ("DeepSpeedCPUAdam", "DeepSpeedCPULion", "FusedLamb"):
            skipped.append(Skipped(f"deepspeed {n}", "not installed"))
    else:
        why = _probe("deepspeed") if probe_heavy else None
        if why:
            for n in ("DeepSpeedCPUAdam", "DeepSpeedCPULion", "FusedLamb"):
                skipped.append(Skipped(f"deepspeed {n}", why))
        else:
            ah, dh, lh, bh = h["adamw"], h["adam"], h["lion"], h["lamb"]

            def ds(cls_path, **kw):
                def make(ps):
                    mod_name, cls_name = cls_path.rsplit(".", 1)
                    cls = getattr(importlib.import_module(mod_name), cls_name)
                    return cls(ps, **kw)
                return make
            out.append(Competitor("deepspeed DeepSpeedCPUAdam (adamw)", "adamw", "deepspeed",
                                  ds("deepspeed.ops.adam.DeepSpeedCPUAdam", lr=ah["lr"],
                                     betas=ah["betas"], eps=ah["eps"],
                                     weight_decay=ah["weight_decay"], adamw_mode=True),
                                  devices=("cpu",), slow=True))
            out.append(Competitor("deepspeed DeepSpeedCPUAdam (adam)", "adam", "deepspeed",
                                  ds("deepspeed.ops.adam.DeepSpeedCPUAdam", lr=dh["lr"],
                                     betas=dh["betas"], eps=dh["eps"],
                                     weight_decay=dh["weight_decay"], adamw_mode=False),
                                  devices=("cpu",), slow=True))
            out.append(Competitor("deepspeed DeepSpeedCPULion", "lion", "deepspeed",
                                  ds("deepspeed.ops.lion.DeepSpeedCPULion", lr=lh["lr"],
                                     betas=lh["betas"], weight_decay=lh["weight_decay"]),
                                  devices=("cpu",), slow=True))
            out.append(Competitor("deepspeed FusedLamb", "lamb", "deepspeed",
                                  ds("deepspeed.ops.lamb.FusedLamb", lr=bh["lr"],
                                     betas=bh["betas"], eps=bh["eps"],
                                     weight_decay=bh["weight_decay"],
                                     max_grad_norm=bh["max_grad_norm"]),
                                  devices=("cuda",)))

    # apex (CUDA only)
    apex_opt, why = _import("apex.optimizers") if device == "cuda" else (None, "CUDA only")
    if apex_opt is None:
        for n in ("FusedAdam", "FusedSGD", "FusedLAMB"):
            skipped.append(Skipped(f"apex {n}", why))
    else:
        ah, sh, bh = h["adamw"], h["sgd"], h["lamb"]
        out.append(Competitor("apex FusedAdam (adamw)", "adamw", "apex",
                              lambda ps: apex_opt.FusedAdam(ps, lr=ah["lr"], betas=ah["betas"],
                                                            eps=ah["eps"], adam_w_mode=True,
                                                            weight_decay=ah["weight_decay"]),
                              devices=("cuda",)))
        out.append(Competitor("apex FusedSGD", "sgd", "apex",
                              lambda ps: apex_opt.FusedSGD(ps, lr=sh["lr"],
                                                           momentum=sh["momentum"]),
                              devices=("cuda",)))
        out.append(Competitor("apex FusedLAMB", "lamb", "apex",
                              lambda ps: apex_opt.FusedLAMB(ps, lr=bh["lr"], betas=bh["betas"],
                                                            eps=bh["eps"],
                                                            weight_decay=bh["weight_decay"],
                                                            max_grad_norm=bh["max_grad_norm"]),
                              devices=("cuda",)))
    return out


def discover(device: str, peers: bool = True, probe_heavy: bool = True
             ) -> Tuple[List[Competitor], List[Skipped]]:
    """Every competitor usable on ``device`` and the ones skipped (with why)."""
    skipped: List[Skipped] = []
    comps = _fusedopt() + _torch()
    if peers:
        comps += _peers(device, skipped, probe_heavy)
    usable = []
    for c in comps:
        if device not in c.devices:
            skipped.append(Skipped(c.name, f"{'/'.join(c.devices)} only"))
        else:
            usable.append(c)
    return usable, skipped


def by_name(comps: List[Competitor]) -> Dict[str, Competitor]:
    return {c.name: c for c in comps}


# Baselines every family's pool also times, so ratios come from the same interleaved run.
TORCH_FUSED_ADAMW = "torch AdamW fused"
TORCH_FUSED_SGD = "torch SGD fused"
FUSEDOPT_ADAMW = "fusedopt FusedAdamW"
FUSEDOPT_SGD = "fusedopt FusedSGD"
ANCHORS = {
    "adamw": (),
    "adam": (TORCH_FUSED_ADAMW,),
    "sgd": (),
    "lion": (TORCH_FUSED_SGD,),
    "lars": (TORCH_FUSED_SGD, FUSEDOPT_SGD),
    "lamb": (FUSEDOPT_ADAMW, TORCH_FUSED_ADAMW),
}
# The baseline each family's ratio column is taken against.
FAMILY_BASE = {"adamw": TORCH_FUSED_ADAMW, "adam": TORCH_FUSED_ADAMW, "sgd": TORCH_FUSED_SGD,
               "lion": TORCH_FUSED_SGD, "lars": TORCH_FUSED_SGD, "lamb": FUSEDOPT_ADAMW}


def at_simd_level(comp: Competitor, level: str) -> Competitor:
    """The same fusedopt implementation, stepping at CPU SIMD level ``level`` (``name @level``)."""
    return replace(comp, name=f"{comp.name} @{level}", simd_level=level)


def level_name(name: str, level: Optional[str]) -> str:
    """The row name of implementation ``name`` at ``level`` (None: the native level's row)."""
    return name if level is None else f"{name} @{level}"

