"""The fusedopt optimizers: constructor defaults, option checks, and the mapping of a param
group's options onto their op's hyper-parameters (``_hyper``). The op, its state lists and its
hyper-parameters are declared once in csrc/include/fusedopt/optimizers.h; the math lives in
csrc/include/fusedopt/math/ (one definition per optimizer); docs/<name>.md states each formula."""
from __future__ import annotations

from typing import Optional

import torch

from ._base import Bucket, FusedOptimizer, name_param_in_error
from ._declarations import declaration
from ._ops import ops_for


def _check_betas(betas) -> None:
    if not (0.0 <= betas[0] < 1.0 and 0.0 <= betas[1] < 1.0):
        raise ValueError(f"Invalid betas: {betas} (each must be in [0, 1))")


def _check_nonneg(name: str, value) -> None:
    if value is not None and value < 0.0:
        raise ValueError(f"Invalid {name}: {value} ({name} must be >= 0)")


class FusedAdam(FusedOptimizer):
    """Adam (``adam_w_mode=False``: L2 penalty, like torch.optim.Adam) or AdamW
    (``adam_w_mode=True``: decoupled weight decay). See docs/adam.md."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                 adam_w_mode=False, bias_correction=True, amsgrad=False, maximize=False,
                 master_weights=False):
        _check_betas(betas)
        _check_nonneg("eps", eps)
        _check_nonneg("weight_decay", weight_decay)
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps,
                                      weight_decay=weight_decay, adam_w_mode=adam_w_mode,
                                      bias_correction=bias_correction, amsgrad=amsgrad,
                                      maximize=maximize, master_weights=master_weights))

    _op = "adam_"

    def _hyper(self, group, key=None) -> dict:
        beta1, beta2 = group["betas"]
        return dict(beta1=beta1, beta2=beta2, eps=group["eps"],
                    weight_decay=group["weight_decay"],
                    decoupled_weight_decay=bool(group["adam_w_mode"]),
                    bias_correction=bool(group["bias_correction"]),
                    amsgrad=bool(group["amsgrad"]), maximize=bool(group["maximize"]))


class FusedAdamW(FusedAdam):
    """AdamW (decoupled weight decay), torch.optim.AdamW defaults. See docs/adam.md."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2,
                 bias_correction=True, amsgrad=False, maximize=False, master_weights=False):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                         adam_w_mode=True, bias_correction=bias_correction, amsgrad=amsgrad,
                         maximize=maximize, master_weights=master_weights)


class FusedSGD(FusedOptimizer):
    """SGD with momentum, dampening and Nesterov, torch.optim.SGD semantics. See docs/sgd.md."""

    def __init__(self, params, lr=1e-3, momentum=0.0, dampening=0.0, weight_decay=0.0,
                 nesterov=False, maximize=False, master_weights=False):
        _check_nonneg("momentum", momentum)
        _check_nonneg("weight_decay", weight_decay)
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening,
                                      weight_decay=weight_decay, nesterov=nesterov,
                                      maximize=maximize, master_weights=master_weights))

    _op = "sgd_"

    def _hyper(self, group, key=None) -> dict:
        return dict(momentum=group["momentum"], dampening=group["dampening"],
                    weight_decay=group["weight_decay"], nesterov=bool(group["nesterov"]),
                    maximize=bool(group["maximize"]))


class FusedLion(FusedOptimizer):
    """Lion (Chen et al., 2023) with decoupled weight decay; sign(0) = 0. See docs/lion.md."""

    def __init__(self, params, lr=1e-4, betas=(0.9, 0.99), weight_decay=0.0, maximize=False,
                 master_weights=False):
        _check_betas(betas)
        _check_nonneg("weight_decay", weight_decay)
        super().__init__(params, dict(lr=lr, betas=tuple(betas), weight_decay=weight_decay,
                                      maximize=maximize, master_weights=master_weights))

    _op = "lion_"

    def _hyper(self, group, key=None) -> dict:
        beta1, beta2 = group["betas"]
        return dict(beta1=beta1, beta2=beta2, weight_decay=group["weight_decay"],
                    maximize=bool(group["maximize"]))


def _clipping_enabled(max_grad_norm) -> bool:
    return max_grad_norm is not None and max_grad_norm > 0


class FusedLAMB(FusedOptimizer):
    """LAMB (You et al., 2020) in NVIDIA apex's variant: global grad-norm clipping, per-tensor
    trust ratio computed on the device. ``max_grad_norm=None`` (or 0) disables clipping.
    See docs/lamb.md."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-6, weight_decay=0.01,
                 adam_w_mode=True, bias_correction=True, grad_averaging=True, max_grad_norm=1.0,
                 use_nvlamb=False, trust_clip=False, min_trust_ratio=0.0, max_trust_ratio=None,
                 master_weights=False):
        _check_betas(betas)
        _check_nonneg("eps", eps)
        _check_nonneg("weight_decay", weight_decay)
        _check_nonneg("max_grad_norm", max_grad_norm)
        _check_nonneg("min_trust_ratio", min_trust_ratio)
        if max_trust_ratio is not None and max_trust_ratio < (min_trust_ratio or 0.0):
            raise ValueError(f"Invalid max_trust_ratio: {max_trust_ratio} (must be >= "
                             f"min_trust_ratio={min_trust_ratio}, or None for no upper clamp)")
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps,
                                      weight_decay=weight_decay, adam_w_mode=adam_w_mode,
                                      bias_correction=bias_correction,
                                      grad_averaging=grad_averaging, max_grad_norm=max_grad_norm,
                                      use_nvlamb=use_nvlamb, trust_clip=trust_clip,
                                      min_trust_ratio=min_trust_ratio,
                                      max_trust_ratio=max_trust_ratio,
                                      master_weights=master_weights))

    _op = "lamb_"

    def _hyper(self, group, key=None, clip: bool = True) -> dict:
        """``clip``: whether this step has the global grad norm (clipping on)."""
        beta1, beta2 = group["betas"]
        max_ratio = group["max_trust_ratio"]
        return dict(beta1=beta1, beta2=beta2, eps=group["eps"],
                    weight_decay=group["weight_decay"], adam_w_mode=bool(group["adam_w_mode"]),
                    bias_correction=bool(group["bias_correction"]),
                    grad_averaging=bool(group["grad_averaging"]),
                    max_grad_norm=float(group["max_grad_norm"])
                    if clip and _clipping_enabled(group["max_grad_norm"]) else 0.0,
                    use_nvlamb=bool(group["use_nvlamb"]), trust_clip=bool(group["trust_clip"]),
                    min_trust_ratio=float(group["min_trust_ratio"] or 0.0),
                    max_trust_ratio=float(max_ratio) if max_ratio is not None else 0.0)

    def _prepare(self, buckets_per_group, grad_scale, found_inf) -> Optional[torch.Tensor]:
        """Global norm of the unscaled grads of every group, on the device (no host sync)."""
        if not any(_clipping_enabled(g["max_grad_norm"]) for g in self.param_groups):
            return None
        by_kind: dict = {}
        for buckets in buckets_per_group:
            for b in buckets.values():
                grads, origins = by_kind.setdefault((b.device, b.dtype), ([], []))
                grads.extend(b.grads)
                origins.extend(b.origins)
        if not by_kind:
            return None
        norms = []
        for (device, _), (grads, origins) in by_kind.items():
            scale = None if grad_scale is None else \
                torch.as_tensor(grad_scale, dtype=torch.float32).to(device)
            try:
                norms.append(ops_for(device).global_l2_norm(grads, scale))
            except RuntimeError as e:
                raise name_param_in_error(self, e, origins, device) from e
        if len(norms) == 1:
            return norms[0]
        device = norms[0].device
        return torch.linalg.vector_norm(torch.stack([n.to(device) for n in norms]))

    def _launch(self, group, b: Bucket, s, global_norm) -> None:
        clip = _clipping_enabled(group["max_grad_norm"]) and global_norm is not None
        norm = global_norm.to(b.device, non_blocking=True) if clip else None
        declaration("lamb_").call(b, s, self._hyper(group, clip=clip), global_grad_norm=norm)

    def _run_sharded(self, buckets_per_group, grad_scale, found_inf) -> None:
        """DTensor params: norms of the full tensors in at most two all-reduces per step
        (docs/distributed.md): [found_inf, per-tensor grad sums of squares] when a scaler or
        clipping needs them, then pass 1 (lamb_moments_) and the per-tensor ||p||^2, ||u||^2
        of every bucket in one all-reduce, then pass 2 (lamb_apply_) with those sums."""
        launches = self._launches(buckets_per_group)
        clip = any(_clipping_enabled(g["max_grad_norm"]) for g, _ in launches)
        first = self._reduction()
        h_found = first.add(found_inf) if found_inf is not None else None
        h_grads = []
        if clip:
            for _, b in launches:
                scale = None if grad_scale is None else \
                    torch.as_tensor(grad_scale, dtype=torch.float32).to(b.device)
                sq = self._call_named(b, lambda: ops_for(b.device).sums_of_squares(
                    [], b.grads, scale))
                h_grads.append(first.add_masked_sums(sq, self._originals(b), 1))
        first.reduce()
        found = None if h_found is None else first.get(h_found).reshape(()).float()
        global_norm = None
        if h_grads:
            global_norm = torch.cat([first.get(h) for h in h_grads]).sum().sqrt().float()

        second = self._reduction()
        handles = []
        for group, b in launches:
            s = self._scalars(group, b.device, grad_scale, found)
            clip_here = _clipping_enabled(group["max_grad_norm"]) and global_norm is not None
            norm = global_norm.to(b.device) if clip_here else None
            hyper = self._hyper(group, clip=clip_here)
            sums = self._call_named(b, lambda: declaration("lamb_moments_").call(
                b, s, hyper, global_grad_norm=norm))
            handles.append((s, norm, hyper, second.add_masked_sums(sums, self._originals(b),
                                                                   2)))
        second.reduce()
        for (group, b), (s, norm, hyper, h) in zip(launches, handles):
            full = second.get(h).to(b.device)
            self._call_named(b, lambda: declaration("lamb_apply_").call(
                b, s, hyper, global_grad_norm=norm, norm_sums=full))


class FusedLARS(FusedOptimizer):
    """LARS (You et al., 2017) with momentum; ``clip=True`` is apex LARC's clip mode.
    Params are excluded from adaptation and weight decay when their group sets
    ``lars_exclude=True``, or when ``exclude_bias_and_norm=True`` and ``p.ndim <= 1``.
    See docs/lars.md."""

    def __init__(self, params, lr=1e-3, momentum=0.9, dampening=0.0, weight_decay=0.0,
                 nesterov=False, trust_coefficient=0.001, eps=1e-8, clip=False,
                 exclude_bias_and_norm=False, master_weights=False):
        _check_nonneg("momentum", momentum)
        _check_nonneg("weight_decay", weight_decay)
        _check_nonneg("trust_coefficient", trust_coefficient)
        _check_nonneg("eps", eps)
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening,
                                      weight_decay=weight_decay, nesterov=nesterov,
                                      trust_coefficient=trust_coefficient, eps=eps, clip=clip,
                                      exclude_bias_and_norm=exclude_bias_and_norm,
                                      lars_exclude=False, master_weights=master_weights))

    _op = "lars_"

    def _hyper(self, group, key=None) -> dict:
        """``key``: the bucket key, True for params excluded from adaptation (no trust ratio,
        no weight decay)."""
        excluded = bool(key)
        return dict(momentum=group["momentum"], dampening=group["dampening"],
                    weight_decay=0.0 if excluded else group["weight_decay"],
                    nesterov=bool(group["nesterov"]),
                    trust_coefficient=group["trust_coefficient"], eps=group["eps"],
                    clip=bool(group["clip"]), adapt=not excluded)

    def _bucket_key(self, group, p):
        return bool(group["lars_exclude"] or (group["exclude_bias_and_norm"] and p.ndim <= 1))

    def _run_sharded(self, buckets_per_group, grad_scale, found_inf) -> None:
        """DTensor params: found_inf and the per-tensor ||p||^2, ||g||^2 of every adapted
        bucket in one all-reduce (docs/distributed.md), then the update with those sums."""
        launches = self._launches(buckets_per_group)
        red = self._reduction()
        h_found = red.add(found_inf) if found_inf is not None else None
        handles = {}
        for i, (group, b) in enumerate(launches):
            if b.key:  # excluded from adaptation: no norms
                continue
            scale = None if grad_scale is None else \
                torch.as_tensor(grad_scale, dtype=torch.float32).to(b.device)
            sums = self._call_named(b, lambda: ops_for(b.device).sums_of_squares(
                b.masters if b.masters else b.params, b.grads, scale))
            n = len(b.params)
            per_tensor = torch.stack([sums[:n], sums[n:]], dim=1).reshape(-1)
            handles[i] = red.add_masked_sums(per_tensor, self._originals(b), 2)
        red.reduce()
        found = None if h_found is None else red.get(h_found).reshape(()).float()
        for i, (group, b) in enumerate(launches):
            s = self._scalars(group, b.device, grad_scale, found)
            full = red.get(handles[i]).to(b.device) if i in handles else None
            self._call_named(b, lambda: declaration("lars_").call(
                b, s, self._hyper(group, b.key), norm_sums=full))
