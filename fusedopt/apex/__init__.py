"""Drop-in replacements for NVIDIA apex's fused optimizers, with apex's names, signatures and
defaults: ``from fusedopt.apex import FusedLAMB`` replaces ``from apex.optimizers import
FusedLAMB``. apex's semantics are kept, its known defects are not (docs/apex.md):

- found_inf from torch.amp.GradScaler is honoured (an overflow step changes nothing);
- p.grad is never overwritten with the update (LARC restores the original grads);
- LAMB clipping can be switched off (max_grad_norm=None or 0);
- bfloat16 params are supported, as are fp16 and fp64;
- amsgrad is supported by FusedAdam instead of raising.
"""
from __future__ import annotations

import torch

from .. import _distributed
from .._base import _is_dtensor, _local
from .._ops import ops_for
from ..optimizers import FusedAdam as _FusedAdam
from ..optimizers import FusedLAMB as _FusedLAMB
from ..optimizers import FusedSGD as _FusedSGD

__all__ = ["FusedAdam", "FusedLAMB", "FusedSGD", "FusedMixedPrecisionLamb", "LARC"]


class _ApexCompat:
    """What every apex-named class shares: apex's ``set_grad_none`` decides what zero_grad()
    does by default, and apex checkpoints (one ``step`` per param group, none per param) resume
    with the right bias correction."""

    def zero_grad(self, set_to_none: bool | None = None) -> None:
        super().zero_grad(set_to_none=self.set_grad_none if set_to_none is None else set_to_none)

    def load_state_dict(self, state_dict: dict) -> None:
        super().load_state_dict(state_dict)
        for group in self.param_groups:
            group_step = group.pop("step", None)  # apex's per-group count
            if group_step is None:
                continue
            for p in group["params"]:
                state = self.state.get(p)
                if state and "step" not in state:
                    state["step"] = torch.full((), float(group_step), dtype=torch.float32,
                                               device=p.device)


_REQUIRED = object()  # apex's FusedSGD has no default lr


class FusedAdam(_ApexCompat, _FusedAdam):
    """apex.optimizers.FusedAdam: ``adam_w_mode=True`` by default (decoupled decay)."""

    def __init__(self, params, lr=1e-3, bias_correction=True, betas=(0.9, 0.999), eps=1e-8,
                 adam_w_mode=True, weight_decay=0.0, amsgrad=False, set_grad_none=True,
                 capturable=False, master_weights=False):
        # capturable is accepted for compatibility: every fusedopt kernel reads lr, step and
        # the scaler's tensors through device pointers without host syncs.
        self.set_grad_none = set_grad_none
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                         adam_w_mode=adam_w_mode, bias_correction=bias_correction,
                         amsgrad=amsgrad, master_weights=master_weights)


class FusedLAMB(_ApexCompat, _FusedLAMB):
    """apex.optimizers.FusedLAMB, with apex's code defaults (eps=1e-6, weight_decay=0.01;
    apex's docstring says 1e-8 / 0, its code uses these)."""

    def __init__(self, params, lr=1e-3, bias_correction=True, betas=(0.9, 0.999), eps=1e-6,
                 weight_decay=0.01, amsgrad=False, adam_w_mode=True, grad_averaging=True,
                 set_grad_none=True, max_grad_norm=1.0, use_nvlamb=False):
        if amsgrad:
            raise RuntimeError("FusedLAMB does not support the AMSGrad variant (as in apex); "
                               "pass amsgrad=False")
        self.set_grad_none = set_grad_none
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                         adam_w_mode=adam_w_mode, bias_correction=bias_correction,
                         grad_averaging=grad_averaging, max_grad_norm=max_grad_norm,
                         use_nvlamb=use_nvlamb)


class FusedMixedPrecisionLamb(FusedLAMB):
    """apex.optimizers.FusedMixedPrecisionLamb: LAMB over fp16/bf16 params with fp32 master
    weights kept in the optimizer state. ``step`` sets the initial step count;
    ``reduced_precision_dtype``, when given, must match the params' dtype."""

    def __init__(self, params, lr=1e-3, step=0, bias_correction=True, betas=(0.9, 0.999),
                 eps=1e-6, weight_decay=0.01, amsgrad=False, adam_w_mode=True,
                 grad_averaging=True, max_grad_norm=1.0, use_nvlamb=False,
                 reduced_precision_dtype=None):
        super().__init__(params, lr=lr, bias_correction=bias_correction, betas=betas, eps=eps,
                         weight_decay=weight_decay, amsgrad=amsgrad, adam_w_mode=adam_w_mode,
                         grad_averaging=grad_averaging, max_grad_norm=max_grad_norm,
                         use_nvlamb=use_nvlamb)
        self._initial_step = float(step)
        for gi, group in enumerate(self.param_groups):
            group["master_weights"] = True
            if reduced_precision_dtype is not None:
                for pi, p in enumerate(group["params"]):
                    if p.dtype not in (reduced_precision_dtype, torch.float32):
                        raise TypeError(
                            f"FusedMixedPrecisionLamb: param {pi} of param group {gi} has dtype "
                            f"{p.dtype} but reduced_precision_dtype={reduced_precision_dtype}; "
                            "pass the params' dtype (or None)")
        self.defaults["master_weights"] = True

    def _ensure_state(self, group, p, names):
        fresh = "step" not in self.state[p]
        state = super()._ensure_state(group, p, names)
        if fresh and self._initial_step:
            state["step"].fill_(self._initial_step)
        return state


class FusedSGD(_ApexCompat, _FusedSGD):
    """apex.optimizers.FusedSGD (torch.optim.SGD semantics). ``wd_after_momentum=True`` is not
    supported; ``materialize_master_grads`` is accepted and has no effect (fusedopt keeps
    master weights in the optimizer, see master_weights in fusedopt.FusedSGD)."""

    def __init__(self, params, lr=_REQUIRED, momentum=0.0, dampening=0.0, weight_decay=0.0,
                 nesterov=False, wd_after_momentum=False, materialize_master_grads=True,
                 set_grad_none=False):
        if lr is _REQUIRED:
            raise TypeError("fusedopt.apex.FusedSGD: lr is required (as in apex)")
        if wd_after_momentum:
            raise ValueError("fusedopt.apex.FusedSGD: wd_after_momentum=True is not supported; "
                             "use wd_after_momentum=False (weight decay added to the gradient "
                             "before momentum, as torch.optim.SGD does)")
        self.set_grad_none = set_grad_none
        super().__init__(params, lr=lr, momentum=momentum, dampening=dampening,
                         weight_decay=weight_decay, nesterov=nesterov)


class LARC:
    """apex.parallel.LARC: wraps any optimizer and scales each param's gradient by its local
    learning rate ``trust_coefficient * ||p|| / (||g|| + wd * ||p|| + eps)`` (clip mode:
    ``min(local_lr / lr, 1)``), adding the group's weight decay to the gradient first, and
    running the wrapped optimizer with weight decay 0. As in apex, a param whose weight or
    gradient norm is zero is passed through unchanged. Unlike apex, the caller's ``p.grad`` is
    left as it was: the scaled gradients are temporaries. Norms are computed on the device (no
    host sync). For a single fused kernel use ``fusedopt.FusedLARS(clip=True,
    trust_coefficient=0.02)`` instead."""

    def __init__(self, optimizer, trust_coefficient=0.02, clip=True, eps=1e-8):
        self.optim = optimizer
        self.trust_coefficient = trust_coefficient
        self.clip = clip
        self.eps = eps

    # torch.optim.Optimizer surface, forwarded to the wrapped optimizer
    def __getstate__(self):
        return self.optim.__getstate__()

    def __setstate__(self, state):
        self.optim.__setstate__(state)

    @property
    def state(self):
        return self.optim.state

    @property
    def param_groups(self):
        return self.optim.param_groups

    @param_groups.setter
    def param_groups(self, value):
        self.optim.param_groups = value

    @property
    def defaults(self):
        return self.optim.defaults

    def __repr__(self):
        return f"LARC({self.optim!r}, trust_coefficient={self.trust_coefficient}, clip={self.clip})"

    def state_dict(self):
        return self.optim.state_dict()

    def load_state_dict(self, state_dict):
        self.optim.load_state_dict(state_dict)

    def zero_grad(self, set_to_none: bool = True):
        self.optim.zero_grad(set_to_none=set_to_none)

    def add_param_group(self, param_group):
        self.optim.add_param_group(param_group)

    @torch.no_grad()
    def _scaled_grads(self) -> list:
        """(param, scaled grad) for every param with a grad. DTensor params: the norms are those
        of the full tensors (local sums of squares, one all-reduce for all groups, see
        fusedopt/_distributed.py)."""
        plans = []  # (group, params of one (device, dtype))
        sharded = False
        for group in self.optim.param_groups:
            buckets = {}
            for p in group["params"]:
                if p.grad is not None:
                    buckets.setdefault((p.device, p.dtype), []).append(p)
                    sharded = sharded or _is_dtensor(p)
            plans.extend((group, plist) for plist in buckets.values())
        norms = self._sharded_norms(plans) if sharded else [
            (ops_for(plist[0].device).l2_norms(plist, None),
             ops_for(plist[0].device).l2_norms([p.grad for p in plist], None))
            for _, plist in plans]
        out = []
        for (group, plist), (p_norms, g_norms) in zip(plans, norms):
            wd = group.get("weight_decay", 0.0)
            local_lr = self.trust_coefficient * p_norms / (g_norms + p_norms * wd + self.eps)
            if self.clip:
                local_lr = torch.clamp(local_lr / group["lr"], max=1.0)
            adapt = (p_norms != 0) & (g_norms != 0)
            factor = torch.where(adapt, local_lr, torch.ones_like(local_lr))
            decay = torch.where(adapt, torch.full_like(local_lr, wd), torch.zeros_like(local_lr))
            for i, p in enumerate(plist):
                g = _local(p.grad)
                scaled = ((g.float() + decay[i] * _local(p).float()) * factor[i]).to(g.dtype)
                if _is_dtensor(p):
                    scaled = type(p).from_local(scaled, p.device_mesh, p.placements,
                                                run_check=False, shape=p.shape,
                                                stride=p.stride())
                out.append((p, scaled))
        return out

    def _sharded_norms(self, plans) -> list:
        """[(param norms, grad norms)] per plan, of the full tensors, float32 on the device."""
        mesh = _distributed.param_mesh(self.optim)
        if getattr(self, "_group_of", None) is not mesh:
            self._group, self._group_of = _distributed.mesh_group(mesh), mesh
        red = _distributed.Reduction(mesh, self._group, torch.device(mesh.device_type))
        handles = []
        for _, plist in plans:
            sums = ops_for(plist[0].device).sums_of_squares(
                [_local(p) for p in plist], [_local(p.grad) for p in plist], None)
            n = len(plist)
            per_tensor = torch.stack([sums[:n], sums[n:]], dim=1).reshape(-1)
            handles.append(red.add_masked_sums(per_tensor, plist, 2))
        red.reduce()
        out = []
        for (_, plist), h in zip(plans, handles):
            full = red.get(h).to(plist[0].device).reshape(-1, 2).sqrt().float()
            out.append((full[:, 0].contiguous(), full[:, 1].contiguous()))
        return out

    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        saved_wd, saved_grads = [], []
        try:
            scaled_grads = self._scaled_grads()
            for p, scaled in scaled_grads:
                saved_grads.append((p, p.grad))
                p.grad = scaled
            for group in self.optim.param_groups:
                saved_wd.append(group.get("weight_decay", 0.0))
                group["weight_decay"] = 0.0
            self.optim.step()
        finally:
            for group, wd in zip(self.optim.param_groups, saved_wd):
                group["weight_decay"] = wd
            for p, g in saved_grads:
                p.grad = g
        return loss
