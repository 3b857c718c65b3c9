"""Float64 reference implementations of the fusedopt optimizers.

This module is the executable specification the tests compare the fused kernels against.
It is written for clarity, not speed: every update is a direct transcription of the formula in
its docstring (see also docs/*.md), computed in float64 with plain torch ops. The update math imports nothing
from fusedopt and uses no native code; only the constructor defaults (OPTIMIZER_DEFAULTS) are
read from the fused optimizers' signatures.

Conventions shared by every ``*_update`` function:

* ``p`` is a float64 tensor, updated in place; ``g`` is the float64 gradient, already divided by
  the grad scale S (the caller does that; see ``Reference.step``).
* ``state`` is the per-param state dict, updated in place. Missing entries are created first
  ('step' = 0, state tensors = zeros), so an empty dict means "first step with a gradient".
  ``state['step']`` is a Python ``int`` counting the updates applied to this param (the fused
  optimizers store it as a 0-d float32 tensor; compare with ``float(...)``). The param's first
  step is the one that makes ``state['step'] == 1``.
* Hyper-parameters are Python floats/bools. ``lr`` may also be a 0-d tensor; it is converted with
  ``float()``.
* NaN/Inf in ``g`` are not checked: they propagate into ``p`` and the state (as in torch.optim).
"""

import math

import torch

__all__ = [
    "Reference",
    "OPTIMIZER_DEFAULTS",
    "adam_update",
    "sgd_update",
    "lion_update",
    "lamb_update",
    "lars_update",
    "global_grad_norm",
    "round_like",
]

F64 = torch.float64


# --------------------------------------------------------------------------------------------
# Constructor defaults: those of the fused optimizers ("adam" -> FusedAdam, "adamw" -> FusedAdamW,
# "lamb" -> FusedLAMB, "lars" -> FusedLARS, "lion" -> FusedLion, "sgd" -> FusedSGD), read from
# their signatures, where they are written once. Every key is also a per-param-group key; LARS
# groups also take lars_exclude. Only this table comes from fusedopt: the update math below is
# independent of it.
# --------------------------------------------------------------------------------------------
_FUSED_CLASSES = {"adam": "FusedAdam", "adamw": "FusedAdamW", "lamb": "FusedLAMB",
                  "lars": "FusedLARS", "lion": "FusedLion", "sgd": "FusedSGD"}
_GROUP_ONLY = {"lars": dict(lars_exclude=False)}


def _optimizer_defaults():
    from . import optimizers
    from ._declarations import constructor_defaults

    return {name: {**constructor_defaults(getattr(optimizers, cls)), **_GROUP_ONLY.get(name, {})}
            for name, cls in _FUSED_CLASSES.items()}


OPTIMIZER_DEFAULTS = _optimizer_defaults()


def _f(x):
    """A hyper-parameter (float, int, bool or 0-d tensor) as a Python float."""
    return float(x.item()) if isinstance(x, torch.Tensor) else float(x)


def _norm(t):
    """Euclidean norm of all elements of t as a float64 0-d tensor (0 for an empty tensor)."""
    return t.reshape(-1).pow(2).sum().sqrt()


def _ensure_state(state, p, names):
    """Lazy state creation: 'step' = 0 and a zeros float64 tensor for each missing name."""
    state.setdefault("step", 0)
    for name in names:
        if name not in state:
            state[name] = torch.zeros_like(p)


def round_like(t64, dtype):
    """The float64 tensor ``t64`` rounded to storage ``dtype`` and converted back to float64.

    Use it to compare a float64 reference against fp16/bf16 storage, or to emulate a storage
    dtype between reference steps: ``for p in ref.params(): p.copy_(round_like(p, torch.bfloat16))``.
    """
    return t64.to(dtype).to(F64)


# --------------------------------------------------------------------------------------------
# Per-tensor update rules
# --------------------------------------------------------------------------------------------

def adam_update(p, g, state, *, lr, beta1, beta2, eps, weight_decay, decoupled, bias_correction,
                amsgrad, maximize):
    """One Adam / AdamW step for one tensor (Kingma & Ba 2015; Loshchilov & Hutter 2019).

    t = state['step'] + 1 (this param's step count after the increment)
        g = -g                            if maximize
        g = g + wd*p                      if not decoupled (L2, torch.optim.Adam)
        p = p * (1 - lr*wd)               if decoupled     (AdamW)
        m = b1*m + (1-b1)*g
        v = b2*v + (1-b2)*g^2
        bc1 = 1 - b1^t, bc2 = 1 - b2^t    (both 1 if not bias_correction)
        v_hat = vmax = max(vmax, v)       if amsgrad, else v_hat = v
        p = p - (lr/bc1) * m / (sqrt(v_hat)/sqrt(bc2) + eps)

    State: 'step' (int), 'exp_avg' = m, 'exp_avg_sq' = v, 'max_exp_avg_sq' = vmax iff amsgrad
    (all zeros before the first step).
    """
    lr, beta1, beta2, eps, wd = _f(lr), _f(beta1), _f(beta2), _f(eps), _f(weight_decay)
    _ensure_state(state, p, ("exp_avg", "exp_avg_sq", "max_exp_avg_sq") if amsgrad
                  else ("exp_avg", "exp_avg_sq"))

    state["step"] += 1
    t = state["step"]

    if maximize:
        g = -g
    if decoupled:
        p_decayed = p * (1.0 - lr * wd)
    else:
        g = g + wd * p
        p_decayed = p

    m = beta1 * state["exp_avg"] + (1.0 - beta1) * g
    v = beta2 * state["exp_avg_sq"] + (1.0 - beta2) * g * g
    if bias_correction:
        bc1 = 1.0 - beta1 ** t
        bc2 = 1.0 - beta2 ** t
    else:
        bc1 = 1.0
        bc2 = 1.0
    if amsgrad:
        vmax = torch.maximum(state["max_exp_avg_sq"], v)
        state["max_exp_avg_sq"].copy_(vmax)
        v_hat = vmax
    else:
        v_hat = v

    new_p = p_decayed - (lr / bc1) * m / (v_hat.sqrt() / math.sqrt(bc2) + eps)

    state["exp_avg"].copy_(m)
    state["exp_avg_sq"].copy_(v)
    p.copy_(new_p)


def _momentum_direction(d, state, *, momentum, dampening, nesterov):
    """Heavy-ball momentum as in torch.optim.SGD, shared by SGD and LARS.
    Called after state['step'] was incremented.

        momentum == 0:  return d                       (no buffer is created)
        buf = d                                 at the param's first step (state['step'] == 1)
        buf = momentum*buf + (1-dampening)*d    afterwards (buf starts at zeros if momentum
                                                was 0 at the first step and changed since)
        return d + momentum*buf if nesterov else buf
    """
    if momentum == 0.0:
        return d
    if state["step"] == 1:
        buf = d.clone()
    else:
        old = state.get("momentum_buffer")
        if old is None:
            old = torch.zeros_like(d)
        buf = momentum * old + (1.0 - dampening) * d
    state["momentum_buffer"] = buf
    return d + momentum * buf if nesterov else buf


def sgd_update(p, g, state, *, lr, momentum, dampening, weight_decay, nesterov, maximize):
    """One SGD step for one tensor (torch.optim.SGD semantics).

        g = -g            if maximize
        g = g + wd*p
        momentum != 0:  buf = g                                  at the param's first step
                        buf = momentum*buf + (1-dampening)*g     afterwards
                        d = g + momentum*buf if nesterov else buf
        momentum == 0:  d = g
        p = p - lr*d

    State: 'step' (int), 'momentum_buffer' = buf iff momentum != 0.
    Note: the first step copies g into the buffer without the (1-dampening) factor, as torch does.
    """
    lr, momentum, dampening, wd = _f(lr), _f(momentum), _f(dampening), _f(weight_decay)
    _ensure_state(state, p, ())
    state["step"] += 1

    if maximize:
        g = -g
    g = g + wd * p
    d = _momentum_direction(g, state, momentum=momentum, dampening=dampening, nesterov=nesterov)
    p.copy_(p - lr * d)


def lion_update(p, g, state, *, lr, beta1, beta2, weight_decay, maximize):
    """One Lion step for one tensor (Chen et al. 2023, "Symbolic Discovery of Optimization
    Algorithms", Algorithm 2 with decoupled weight decay).

        g = -g                        if maximize
        c = b1*m + (1-b1)*g
        p = p*(1 - lr*wd) - lr*sign(c)
        m = b2*m + (1-b2)*g

    sign(0) = 0 (torch.sign): an element whose interpolation c is exactly zero only gets the
    weight decay. sign(NaN) = NaN.
    State: 'step' (int), 'exp_avg' = m (zeros before the first step).
    """
    lr, beta1, beta2, wd = _f(lr), _f(beta1), _f(beta2), _f(weight_decay)
    _ensure_state(state, p, ("exp_avg",))
    state["step"] += 1

    if maximize:
        g = -g
    m = state["exp_avg"]
    c = beta1 * m + (1.0 - beta1) * g
    new_p = p * (1.0 - lr * wd) - lr * torch.sign(c)
    new_m = beta2 * m + (1.0 - beta2) * g

    state["exp_avg"].copy_(new_m)
    p.copy_(new_p)


def global_grad_norm(grads):
    """G = sqrt(sum over the given (unscaled) grads of ||g||^2); None entries are skipped."""
    total = torch.zeros((), dtype=F64)
    for g in grads:
        if g is not None:
            total = total + g.reshape(-1).pow(2).sum().to(total.device)
    return total.sqrt()


def lamb_update(params, grads, states, *, lr, beta1, beta2, eps, weight_decay, adam_w_mode,
                bias_correction, grad_averaging, max_grad_norm, use_nvlamb, trust_clip,
                min_trust_ratio, max_trust_ratio, global_grad_norm):
    """One LAMB step (You et al. 2020, NVIDIA apex FusedLAMB variant) for a list of tensors.

    ``global_grad_norm`` G is the norm over ALL grads of ALL param groups (after unscaling),
    computed by the caller (see ``global_grad_norm()``). For each (p, g, state), t = this param's
    step after the increment:

        if max_grad_norm is not None and max_grad_norm > 0 and G > max_grad_norm:
            g = g / (G / max_grad_norm)
        g = g + wd*p                          if not adam_w_mode (L2)
        beta3 = 1 - b1 if grad_averaging else 1
        m = b1*m + beta3*g
        v = b2*v + (1-b2)*g^2
        bc1 = 1 - b1^t, bc2 = 1 - b2^t        (both 1 if not bias_correction)
        u = (m/bc1) / (sqrt(v/bc2) + eps)
        u = u + wd*p                          if adam_w_mode
        ratio = ||p|| / ||u||   if (use_nvlamb or wd != 0) and ||p|| > 0 and ||u|| > 0, else 1
        ratio = min(ratio, 1)                 if trust_clip
        ratio = max(ratio, min_trust_ratio)
        ratio = min(ratio, max_trust_ratio)   if max_trust_ratio (None or 0: no upper clamp)
        p = p - lr*ratio*u

    ||p|| is the norm of the param before this step's update; norms are per tensor. The trust
    clamps are applied to whatever ratio results, including the fallback 1.
    State: 'step' (int), 'exp_avg' = m, 'exp_avg_sq' = v.
    """
    lr, beta1, beta2, eps, wd = _f(lr), _f(beta1), _f(beta2), _f(eps), _f(weight_decay)
    min_trust_ratio = 0.0 if min_trust_ratio is None else _f(min_trust_ratio)
    G = global_grad_norm
    clip = max_grad_norm is not None and _f(max_grad_norm) > 0 and bool(G > _f(max_grad_norm))
    beta3 = (1.0 - beta1) if grad_averaging else 1.0

    for p, g, state in zip(params, grads, states):
        _ensure_state(state, p, ("exp_avg", "exp_avg_sq"))
        state["step"] += 1
        t = state["step"]

        if clip:
            g = g / (G / _f(max_grad_norm))
        if not adam_w_mode:
            g = g + wd * p

        m = beta1 * state["exp_avg"] + beta3 * g
        v = beta2 * state["exp_avg_sq"] + (1.0 - beta2) * g * g
        if bias_correction:
            bc1 = 1.0 - beta1 ** t
            bc2 = 1.0 - beta2 ** t
        else:
            bc1 = 1.0
            bc2 = 1.0
        u = (m / bc1) / ((v / bc2).sqrt() + eps)
        if adam_w_mode:
            u = u + wd * p

        p_norm = _norm(p)
        u_norm = _norm(u)
        ratio = torch.ones((), dtype=F64, device=p.device)
        if (use_nvlamb or wd != 0.0) and bool(p_norm > 0) and bool(u_norm > 0):
            ratio = p_norm / u_norm
        if trust_clip:
            ratio = torch.clamp(ratio, max=1.0)
        ratio = torch.clamp(ratio, min=min_trust_ratio)
        if max_trust_ratio:
            ratio = torch.clamp(ratio, max=_f(max_trust_ratio))

        new_p = p - lr * ratio * u

        state["exp_avg"].copy_(m)
        state["exp_avg_sq"].copy_(v)
        p.copy_(new_p)


def lars_update(p, g, state, *, lr, momentum, dampening, weight_decay, nesterov,
                trust_coefficient, eps, clip, excluded):
    """One LARS step for one tensor (You et al. 2017; clip mode as apex LARC).

    ``excluded`` is group['lars_exclude'] or (group['exclude_bias_and_norm'] and p.ndim <= 1).

        excluded:      d = g                   (ratio 1, no weight decay)
        otherwise:     ratio = tc*||p|| / (||g|| + wd*||p|| + eps)   if ||p|| > 0 and ||g|| > 0
                       ratio = min(ratio/lr, 1)                      if clip (same condition)
                       ratio = 1                                     if a norm is zero
                       d = (g + wd*p) * ratio  (weight decay is added even when ratio is 1)
        momentum as SGD: buf = d at the param's first step,
                         buf = momentum*buf + (1-dampening)*d afterwards;
                         d = d + momentum*buf if nesterov else buf     (d unchanged if momentum 0)
        p = p - lr*d

    State: 'step' (int), 'momentum_buffer' = buf iff momentum != 0.
    """
    lr_f = _f(lr)
    momentum, dampening, wd = _f(momentum), _f(dampening), _f(weight_decay)
    tc, eps = _f(trust_coefficient), _f(eps)
    _ensure_state(state, p, ())
    state["step"] += 1

    if excluded:
        d = g
    else:
        p_norm = _norm(p)
        g_norm = _norm(g)
        ratio = torch.ones((), dtype=F64, device=p.device)
        if bool(p_norm > 0) and bool(g_norm > 0):
            ratio = tc * p_norm / (g_norm + wd * p_norm + eps)
            if clip:
                # tensor division: lr == 0 gives inf, clamped to 1 (and then p - 0*d)
                ratio = torch.clamp(ratio / lr_f, max=1.0)
        d = (g + wd * p) * ratio

    d = _momentum_direction(d, state, momentum=momentum, dampening=dampening, nesterov=nesterov)
    p.copy_(p - lr_f * d)


# --------------------------------------------------------------------------------------------
# Optimizer-like driver
# --------------------------------------------------------------------------------------------

class Reference:
    """Float64 reference optimizer driving the ``*_update`` functions.

    ``Reference(name, params, **defaults)``
        name: "adam", "adamw", "lamb", "lars", "lion" or "sgd".
        params: a list of tensors, or a list of param-group dicts ``{"params": [...], **overrides}``
            as for torch.optim. The tensors are copied (detached float64 clones) into
            ``self.param_groups[i]["params"]``; the originals are never touched.
        defaults: the keyword arguments of the matching fused optimizer constructor, same names
            and defaults (see ``OPTIMIZER_DEFAULTS``). Unknown names raise TypeError
            ("adamw" also accepts ``adam_w_mode=True``, as FusedAdamW's groups contain it;
            groups may contain the LR schedulers' ``initial_lr``, which is ignored).
            ``master_weights`` is accepted and ignored (everything is float64 here).

    ``param_groups``: list of dicts with every hyper-parameter resolved. They are read at every
        step, so changing ``group['lr']`` (float or 0-d tensor) between steps is honoured.
    ``state``: dict, flat param index -> state dict. Created at the first step the param has a
        grad. Keys as torch.optim: 'step' (Python int), 'exp_avg', 'exp_avg_sq',
        'max_exp_avg_sq' (amsgrad), 'momentum_buffer' (SGD/LARS with momentum != 0), all float64.
        No 'master_param' (the reference is float64 throughout).
    ``params()``: the flat list of float64 params (the live tensors, in order).
    ``step(grads, grad_scale=None, found_inf=None)``: one step. ``grads`` is a flat list aligned
        with ``params()`` (None = this param has no grad: it and its state are untouched). Grads
        of any floating dtype are converted to float64 and divided by ``grad_scale`` S. If
        ``found_inf`` is nonzero the step is a no-op: params, existing state and step counts are
        unchanged; a param with a grad and no state yet gets zero state with 'step' 0, exactly
        as the fused optimizers create it before their (skipped) kernel.
    """

    def __init__(self, name, params, **defaults):
        if name not in OPTIMIZER_DEFAULTS:
            raise ValueError(f"unknown optimizer {name!r}; expected one of "
                             f"{sorted(OPTIMIZER_DEFAULTS)}")
        self.name = name
        known = set(OPTIMIZER_DEFAULTS[name])
        if name == "adamw":
            known.add("adam_w_mode")  # FusedAdamW's groups carry adam_w_mode=True; must stay True
        unknown = set(defaults) - known
        if unknown:
            raise TypeError(f"Reference({name!r}): unknown option(s) {sorted(unknown)}")
        self.defaults = dict(OPTIMIZER_DEFAULTS[name])
        self.defaults.update(defaults)

        params = list(params)
        if len(params) == 0:
            raise ValueError("Reference got an empty parameter list")
        if not isinstance(params[0], dict):
            params = [{"params": params}]

        self.param_groups = []
        for group in params:
            group = dict(group)
            # 'initial_lr' is added to groups by torch LR schedulers; it is kept and ignored.
            unknown = set(group) - known - {"params", "initial_lr"}
            if unknown:
                raise TypeError(f"Reference({name!r}): unknown param-group option(s) "
                                f"{sorted(unknown)}")
            tensors = group.pop("params")
            if isinstance(tensors, torch.Tensor):
                tensors = [tensors]
            resolved = dict(self.defaults)
            resolved.update(group)
            if name == "adamw" and not resolved.get("adam_w_mode", True):
                raise ValueError("Reference('adamw') is always decoupled; use Reference('adam') "
                                 "for adam_w_mode=False")
            resolved["params"] = [t.detach().to(F64, copy=True) for t in tensors]
            self.param_groups.append(resolved)

        self.state = {}

    def params(self):
        return [p for group in self.param_groups for p in group["params"]]

    def step(self, grads, grad_scale=None, found_inf=None):
        flat = self.params()
        grads = list(grads)
        if len(grads) != len(flat):
            raise ValueError(f"expected {len(flat)} grads (one per param, None allowed), "
                             f"got {len(grads)}")
        if found_inf is not None and _f(found_inf) != 0.0:
            # The whole step is a no-op. Like the fused optimizers, a param that has a grad gets
            # its (zero) state created, with 'step' 0; nothing existing is modified.
            index = 0
            for group in self.param_groups:
                for p in group["params"]:
                    if grads[index] is not None:
                        _ensure_state(self.state.setdefault(index, {}), p,
                                      self._state_names(group))
                    index += 1
            return

        scale = 1.0 if grad_scale is None else _f(grad_scale)
        grads64 = []
        for i, (p, g) in enumerate(zip(flat, grads)):
            if g is None:
                grads64.append(None)
                continue
            if g.shape != p.shape:
                raise ValueError(f"grad {i} has shape {tuple(g.shape)}, param has "
                                 f"{tuple(p.shape)}")
            grads64.append(g.detach().to(device=p.device, dtype=F64) / scale)

        # LAMB clips with the norm over all grads of all groups.
        G = global_grad_norm(grads64) if self.name == "lamb" else None

        index = 0
        for group in self.param_groups:
            indices = range(index, index + len(group["params"]))
            index += len(group["params"])
            active = [i for i in indices if grads64[i] is not None]
            if self.name == "lamb":
                lamb_update([flat[i] for i in active], [grads64[i] for i in active],
                            [self.state.setdefault(i, {}) for i in active],
                            global_grad_norm=G, **self._lamb_kwargs(group))
                continue
            for i in active:
                self._step_one(group, flat[i], grads64[i], self.state.setdefault(i, {}))

    # -- per-optimizer keyword mapping (group dict -> update function arguments) --

    def _state_names(self, group):
        """Names of the state tensors this optimizer keeps for a param of ``group``."""
        if self.name in ("adam", "adamw"):
            return (("exp_avg", "exp_avg_sq", "max_exp_avg_sq") if group["amsgrad"]
                    else ("exp_avg", "exp_avg_sq"))
        if self.name == "lamb":
            return ("exp_avg", "exp_avg_sq")
        if self.name == "lion":
            return ("exp_avg",)
        return ("momentum_buffer",) if _f(group["momentum"]) != 0.0 else ()

    def _step_one(self, group, p, g, state):
        name = self.name
        if name in ("adam", "adamw"):
            b1, b2 = group["betas"]
            adam_update(p, g, state, lr=group["lr"], beta1=b1, beta2=b2, eps=group["eps"],
                        weight_decay=group["weight_decay"],
                        decoupled=True if name == "adamw" else bool(group["adam_w_mode"]),
                        bias_correction=bool(group["bias_correction"]),
                        amsgrad=bool(group["amsgrad"]), maximize=bool(group["maximize"]))
        elif name == "sgd":
            sgd_update(p, g, state, lr=group["lr"], momentum=group["momentum"],
                       dampening=group["dampening"], weight_decay=group["weight_decay"],
                       nesterov=bool(group["nesterov"]), maximize=bool(group["maximize"]))
        elif name == "lion":
            b1, b2 = group["betas"]
            lion_update(p, g, state, lr=group["lr"], beta1=b1, beta2=b2,
                        weight_decay=group["weight_decay"], maximize=bool(group["maximize"]))
        elif name == "lars":
            excluded = bool(group["lars_exclude"]) or (
                bool(group["exclude_bias_and_norm"]) and p.ndim <= 1)
            lars_update(p, g, state, lr=group["lr"], momentum=group["momentum"],
                        dampening=group["dampening"], weight_decay=group["weight_decay"],
                        nesterov=bool(group["nesterov"]),
                        trust_coefficient=group["trust_coefficient"], eps=group["eps"],
                        clip=bool(group["clip"]), excluded=excluded)
        else:  # pragma: no cover
            raise AssertionError(name)

    @staticmethod
    def _lamb_kwargs(group):
        b1, b2 = group["betas"]
        return dict(lr=group["lr"], beta1=b1, beta2=b2, eps=group["eps"],
                    weight_decay=group["weight_decay"], adam_w_mode=bool(group["adam_w_mode"]),
                    bias_correction=bool(group["bias_correction"]),
                    grad_averaging=bool(group["grad_averaging"]),
                    max_grad_norm=group["max_grad_norm"], use_nvlamb=bool(group["use_nvlamb"]),
                    trust_clip=bool(group["trust_clip"]),
                    min_trust_ratio=group["min_trust_ratio"],
                    max_trust_ratio=group["max_trust_ratio"])
