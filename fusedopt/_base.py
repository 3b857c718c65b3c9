"""The shared base of every fusedopt optimizer.

It does what each optimizer would otherwise repeat: grouping tensors by (device, dtype), lazy
state creation, per-param step tensors, fp32 master weights, the GradScaler protocol
(``grad_scale`` / ``found_inf`` attributes), tensor learning rates and a state_dict that keeps
fp32 state fp32. Subclasses declare their defaults and state names and make one op call per
bucket; no optimizer math lives in Python.

No host synchronisation happens in ``step()``: no ``.item()``, no ``.cpu()``, no data-dependent
Python branch on tensor values.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from itertools import chain
from typing import Any, Callable, Hashable, Optional

import re

import torch

from ._ops import ops  # noqa: F401  (loads the extension)

_LOW_PRECISION = (torch.float16, torch.bfloat16)
_SUPPORTED = (torch.float32, torch.float16, torch.bfloat16, torch.float64)


def _state_dtype(param: torch.Tensor) -> torch.dtype:
    return torch.float64 if param.dtype == torch.float64 else torch.float32


@dataclass
class Bucket:
    """Params of one group that share a device, a dtype and any subclass-specific key."""

    device: torch.device
    dtype: torch.dtype
    key: Hashable = None
    params: list = field(default_factory=list)
    grads: list = field(default_factory=list)
    steps: list = field(default_factory=list)
    masters: list = field(default_factory=list)
    states: dict = field(default_factory=dict)  # state name -> list aligned with params
    origins: list = field(default_factory=list)  # (group index, index in group) per param


def name_param_in_error(optimizer, error: RuntimeError, origins: list) -> RuntimeError:
    """Op errors name list positions ("grads[3]"); users know their params by group and index.
    Translating after the fact keeps validation off the hot path."""
    msg = str(error)
    m = re.search(r"\b[a-z_]+\[(\d+)\]", msg)
    if m is None or int(m.group(1)) >= len(origins):
        return error
    gi, pi = origins[int(m.group(1))]
    return RuntimeError(f"{type(optimizer).__name__}: param {pi} of param group {gi}: {msg}")


@dataclass
class StepScalars:
    """Per-device scalar inputs of one op call."""

    lr: float
    lr_tensor: Optional[torch.Tensor]
    grad_scale: Optional[torch.Tensor]
    found_inf: Optional[torch.Tensor]


def _as_scalar_tensor(value, device: torch.device) -> Optional[torch.Tensor]:
    if value is None:
        return None
    if not isinstance(value, torch.Tensor):
        return torch.tensor(float(value), dtype=torch.float32, device=device)
    return value.to(device=device, dtype=torch.float32, non_blocking=True)


class FusedOptimizer(torch.optim.Optimizer):
    # torch.amp.GradScaler hands us its scale and found_inf as attributes instead of unscaling
    # the grads itself: the kernels unscale in-flight and skip the step on overflow.
    _step_supports_amp_scaling = True

    def __init__(self, params, defaults: dict):
        if "lr" in defaults and not isinstance(defaults["lr"], torch.Tensor) and defaults["lr"] < 0:
            raise ValueError(f"Invalid learning rate: {defaults['lr']} (lr must be >= 0)")
        super().__init__(params, defaults)
        for gi, group in enumerate(self.param_groups):
            self._check_group(gi, group)

    # ---- hooks for subclasses --------------------------------------------------------------
    def _state_names(self, group: dict) -> tuple:
        """Names of the state tensors the op takes, in op order."""
        raise NotImplementedError

    def _launch(self, group: dict, bucket: Bucket, scalars: StepScalars, context: Any) -> None:
        raise NotImplementedError

    def _bucket_key(self, group: dict, param: torch.Tensor) -> Hashable:
        """Extra bucketing key (e.g. LARS exclusion); None by default."""
        return None

    def _prepare(self, buckets_per_group: list, grad_scale, found_inf) -> Any:
        """Work done once per step across all groups (e.g. LAMB's global grad norm)."""
        return None

    # ---- validation --------------------------------------------------------------------------
    def _check_group(self, gi: int, group: dict) -> None:
        name = type(self).__name__
        for pi, p in enumerate(group["params"]):
            if p.is_complex():
                raise TypeError(
                    f"{name}: param {pi} of param group {gi} is complex ({p.dtype}); fusedopt "
                    "supports real floating point params only: optimize torch.view_as_real(p)")
            if p.dtype not in _SUPPORTED:
                raise TypeError(
                    f"{name}: param {pi} of param group {gi} has dtype {p.dtype}; supported are "
                    "float32, float16, bfloat16 and float64")
            if p.layout != torch.strided:
                raise TypeError(f"{name}: param {pi} of param group {gi} is {p.layout}; "
                                "only dense (strided) params are supported")

    def add_param_group(self, param_group: dict) -> None:
        super().add_param_group(param_group)
        if hasattr(self, "defaults"):
            self._check_group(len(self.param_groups) - 1, self.param_groups[-1])

    # ---- state -------------------------------------------------------------------------------
    def _ensure_state(self, group: dict, p: torch.Tensor, names: tuple) -> dict:
        state = self.state[p]
        if "step" not in state:
            # A state loaded from torch.optim.SGD has a momentum buffer but no step: it has
            # already taken a step, so its buffer must not be re-initialised.
            started = state.get("momentum_buffer") is not None
            state["step"] = torch.full((), 1.0 if started else 0.0, dtype=torch.float32,
                                       device=p.device)
        for n in names:
            if state.get(n) is None:
                state[n] = torch.zeros_like(p, dtype=_state_dtype(p),
                                            memory_format=torch.preserve_format)
        if group.get("master_weights", False) and p.dtype in _LOW_PRECISION \
                and "master_param" not in state:
            state["master_param"] = torch.empty_like(
                p, dtype=torch.float32, memory_format=torch.preserve_format).copy_(p)
        return state

    def _gather(self, gi: int, group: dict) -> dict:
        names = self._state_names(group)
        buckets: dict = {}
        for pi, p in enumerate(group["params"]):
            g = p.grad
            if g is None:
                continue
            if g.is_sparse:
                raise RuntimeError(
                    f"{type(self).__name__}: param {pi} of param group {gi} has a sparse "
                    "gradient; fusedopt needs dense gradients (e.g. nn.Embedding(sparse=False)) "
                    "or use torch.optim.SparseAdam for sparse ones")
            if g.dtype is not p.dtype or g.shape != p.shape or g.device != p.device:
                # Checked before any bucket runs, so a bad grad cannot leave a step half-applied.
                raise RuntimeError(
                    f"{type(self).__name__}: param {pi} of param group {gi} has a "
                    f"{g.dtype} gradient of shape {tuple(g.shape)} on {g.device}, but the param "
                    f"is {p.dtype} of shape {tuple(p.shape)} on {p.device}; each gradient must "
                    "have its param's dtype, shape and device")
            state = self._ensure_state(group, p, names)
            use_master = "master_param" in state and group.get("master_weights", False)
            key = (p.device, p.dtype, use_master, self._bucket_key(group, p))
            b = buckets.get(key)
            if b is None:
                b = buckets[key] = Bucket(p.device, p.dtype, key[3],
                                          states={n: [] for n in names})
            b.params.append(p)
            b.grads.append(g)
            b.origins.append((gi, pi))
            b.steps.append(state["step"])
            if use_master:
                b.masters.append(state["master_param"])
            for n in names:
                b.states[n].append(state[n])
        return buckets

    # ---- step --------------------------------------------------------------------------------
    def _scalars(self, group: dict, device: torch.device, grad_scale, found_inf) -> StepScalars:
        lr = group["lr"]
        if isinstance(lr, torch.Tensor):
            return StepScalars(0.0, _as_scalar_tensor(lr, device),
                               _as_scalar_tensor(grad_scale, device),
                               _as_scalar_tensor(found_inf, device))
        return StepScalars(float(lr), None, _as_scalar_tensor(grad_scale, device),
                           _as_scalar_tensor(found_inf, device))

    @torch.no_grad()
    def step(self, closure: Optional[Callable] = None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        grad_scale = getattr(self, "grad_scale", None)
        found_inf = getattr(self, "found_inf", None)
        buckets_per_group = [self._gather(gi, g) for gi, g in enumerate(self.param_groups)]
        context = self._prepare(buckets_per_group, grad_scale, found_inf)
        for group, buckets in zip(self.param_groups, buckets_per_group):
            for bucket in buckets.values():
                scalars = self._scalars(group, bucket.device, grad_scale, found_inf)
                try:
                    self._launch(group, bucket, scalars, context)
                except RuntimeError as e:
                    raise name_param_in_error(self, e, bucket.origins) from e
        return loss

    # ---- state_dict --------------------------------------------------------------------------
    def load_state_dict(self, state_dict: dict) -> None:
        """Like torch's, but state keeps its own dtype: torch would cast fp32 moments and master
        weights of fp16/bf16 params to the param dtype, silently rounding them on resume."""
        saved_groups = state_dict["param_groups"]
        saved_state = state_dict["state"]
        super().load_state_dict(state_dict)
        ids = chain.from_iterable(g["params"] for g in saved_groups)
        params = chain.from_iterable(g["params"] for g in self.param_groups)
        for saved_id, p in zip(ids, params):
            saved = saved_state.get(saved_id)
            if not saved:
                continue
            restored = {}
            for k, v in saved.items():
                if not isinstance(v, torch.Tensor):
                    if v is not None:
                        restored[k] = v
                    continue
                if k == "step":
                    dtype = torch.float32
                elif k == "master_param":
                    dtype = torch.float32
                else:
                    dtype = _state_dtype(p)
                restored[k] = v.to(device=p.device, dtype=dtype, copy=True)
                if k == "step":
                    restored[k] = restored[k].reshape(())
            self.state[p] = restored
        # Groups saved by torch.optim (or an older fusedopt) may lack our options.
        for group in self.param_groups:
            for k, v in self.defaults.items():
                group.setdefault(k, v)
