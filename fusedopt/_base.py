"""The shared base of every fusedopt optimizer.

It does what each optimizer would otherwise repeat: grouping tensors by (device, dtype), lazy
state creation, per-param step tensors, fp32 master weights, the GradScaler protocol
(``grad_scale`` / ``found_inf`` attributes), tensor learning rates and a state_dict that keeps
fp32 state fp32. Subclasses declare their defaults and state names and make one op call per
bucket; no optimizer math lives in Python.

No host synchronisation happens in ``step()``: no ``.item()``, no ``.cpu()``, no data-dependent
Python branch on tensor values.

Per-step host cost. Building the buckets visits every param (grad checks, state lookups, list
appends); with thousands of small tensors that costs more than the op calls. So ``step()``
keeps the buckets of the last step (``_StepCache``) and each step checks, by identity where it
can, that what they were built from is unchanged: the param lists, which params have a grad,
the optimizer's state dict, every per-param state entry the op gets, the group options that
decide the state names and master weights, and each param's dtype and device (and bucket key,
for subclasses that define one). Any change means a full rebuild, as without the cache. Grads
are always read anew, and the cache keeps none between steps.
The first op call of a step checks its inputs before it writes anything: its grads (what
``_gather`` checks) and that its params share the dtype and device of ``params[0]``; Python
checks only that ``params[0]`` for it. If the op refuses its inputs, ``_gather`` runs and raises
the error naming the bad param, or, if the cache was stale, the step runs on the rebuilt
buckets. The grads of every later op call are checked in Python before the first op runs, so a
bad grad still leaves the step unapplied.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from itertools import chain, repeat
from operator import attrgetter, contains, is_, itemgetter
from typing import Any, Callable, Hashable, Optional

import torch

from . import _distributed
from ._declarations import declaration
from ._ops import ops_for

_LOW_PRECISION = (torch.float16, torch.bfloat16)
_SUPPORTED = (torch.float32, torch.float16, torch.bfloat16, torch.float64)


def _state_dtype(param: torch.Tensor) -> torch.dtype:
    return torch.float64 if param.dtype == torch.float64 else torch.float32


# ---- distributed tensors (FSDP2 / DTensor) --------------------------------------------------------
# A DTensor param is updated through its local shard: the ops get the local tensors of the param,
# its grad and its states (which are DTensors with the param's placements, so DCP checkpoints
# see them sharded like the param). Element-wise optimizers need nothing else; LAMB and LARS
# complete their norms across ranks in _run_sharded (fusedopt/_distributed.py).
try:
    from torch.distributed.tensor import DTensor as _DTensor
except ImportError:  # torch built without distributed
    _DTensor = None


def _is_dtensor(t) -> bool:
    return _DTensor is not None and isinstance(t, _DTensor)


def _local(t: torch.Tensor) -> torch.Tensor:
    """The local shard of a DTensor (the same tensor object on every call, under no_grad, so
    writes to it are writes to the DTensor), or t itself."""
    return t.to_local() if _is_dtensor(t) else t


def _is_fsdp1_flat_param(p) -> bool:
    return bool(getattr(p, "_is_flat_param", False)) or type(p).__name__ == "FlatParameter"


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


def name_param_in_error(optimizer, error: RuntimeError, origins: list,
                        device: torch.device) -> RuntimeError:
    """Op errors name list positions ("grads[3]"); users know their params by group and index.
    The op records the position of the failed check as data (op _last_error_index of the op
    library that ran, for tensors on ``device``; -1 for none), so the param is named without
    parsing the message. Translating after the fact keeps validation off the hot path."""
    index = ops_for(device)._last_error_index()
    if not 0 <= index < len(origins):
        return error
    gi, pi = origins[index]
    return RuntimeError(f"{type(optimizer).__name__}: param {pi} of param group {gi}: {error}")


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
    _step_cache: Optional["_StepCache"] = None

    def __init__(self, params, defaults: dict):
        if "lr" in defaults and not isinstance(defaults["lr"], torch.Tensor) and defaults["lr"] < 0:
            raise ValueError(f"Invalid learning rate: {defaults['lr']} (lr must be >= 0)")
        super().__init__(params, defaults)
        for gi, group in enumerate(self.param_groups):
            self._check_group(gi, group)

    # ---- hooks for subclasses --------------------------------------------------------------
    # The op a step calls per bucket ("adam_", ...), declared in csrc/include/fusedopt/
    # optimizers.h with its state lists and hyper-parameters.
    _op: str = ""

    def _hyper(self, group: dict, key: Hashable = None) -> dict:
        """The op's hyper-parameters (every declared one, by name) for ``group``'s params of
        bucket key ``key``."""
        raise NotImplementedError

    def _state_names(self, group: dict) -> tuple:
        """Names of the state tensors the op takes, in op order (from the declaration)."""
        return declaration(self._op).state_names(self._hyper(group))

    def _launch(self, group: dict, bucket: Bucket, scalars: StepScalars, context: Any) -> None:
        """One op call over one bucket. ``context``: what _prepare returned."""
        declaration(self._op).call(bucket, scalars, self._hyper(group, bucket.key))

    def _bucket_key(self, group: dict, param: torch.Tensor) -> Hashable:
        """Extra bucketing key (e.g. LARS exclusion); None by default."""
        return None

    def _prepare(self, buckets_per_group: list, grad_scale, found_inf) -> Any:
        """Work done once per step across all groups (e.g. LAMB's global grad norm). Must not
        write params or state: when step() uses cached buckets, the first op call checks its
        grads only after this has run, and may still refuse them."""
        return None

    # ---- validation --------------------------------------------------------------------------
    def _check_group(self, gi: int, group: dict) -> None:
        name = type(self).__name__
        for pi, p in enumerate(group["params"]):
            if _is_fsdp1_flat_param(p):
                raise TypeError(
                    f"{name}: param {pi} of param group {gi} is an FSDP1 FlatParameter, a "
                    "flattened concatenation of many params whose shapes (and so per-tensor "
                    "norms and state layouts) are lost; shard the model with FSDP2 instead "
                    "(torch.distributed.fsdp.fully_shard), whose DTensor params fusedopt "
                    "supports")
            if _is_dtensor(p):
                # Decided here, before the first step: step() takes the DTensor path from
                # the start (found_inf agreed across ranks, no step cache).
                self._uses_dtensors = True
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
        self._step_cache = None
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
        ensure_state, bucket_key = self._ensure_state, self._bucket_key
        master = group.get("master_weights", False)
        for pi, p in enumerate(group["params"]):
            g = p.grad
            if g is None:
                continue
            if g.is_sparse:
                raise RuntimeError(
                    f"{type(self).__name__}: param {pi} of param group {gi} has a sparse "
                    "gradient; fusedopt needs dense gradients (e.g. nn.Embedding(sparse=False)) "
                    "or use torch.optim.SparseAdam for sparse ones")
            device, dtype = p.device, p.dtype
            if g.dtype is not dtype or g.shape != p.shape or g.device != device:
                # Checked before any bucket runs, so a bad grad cannot leave a step half-applied.
                raise RuntimeError(
                    f"{type(self).__name__}: param {pi} of param group {gi} has a "
                    f"{g.dtype} gradient of shape {tuple(g.shape)} on {g.device}, but the param "
                    f"is {dtype} of shape {tuple(p.shape)} on {device}; each gradient must "
                    "have its param's dtype, shape and device")
            state = ensure_state(group, p, names)
            use_master = "master_param" in state and master
            key = (device, dtype, use_master, bucket_key(group, p))
            b = buckets.get(key)
            if b is None:
                b = buckets[key] = Bucket(device, dtype, key[3], states={n: [] for n in names})
            if _is_dtensor(p):
                if not _is_dtensor(g) or g.device_mesh != p.device_mesh \
                        or g.placements != p.placements:
                    raise RuntimeError(
                        f"{type(self).__name__}: param {pi} of param group {gi} is a DTensor "
                        f"placed {p.placements} but its gradient is "
                        + (f"placed {g.placements}" if _is_dtensor(g) else "a plain tensor")
                        + "; the gradient must be sharded like its param (as FSDP2 does)")
                b.params.append(p.to_local())
                b.grads.append(g.to_local())
                b.masters.extend([_local(state["master_param"])] if use_master else [])
                for n in names:
                    b.states[n].append(_local(state[n]))
            else:
                b.params.append(p)
                b.grads.append(g)
                if use_master:
                    b.masters.append(state["master_param"])
                for n in names:
                    b.states[n].append(state[n])
            b.origins.append((gi, pi))
            b.steps.append(state["step"])
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
        if getattr(self, "_uses_dtensors", False):
            # Sharded params: the step cache keys its checks by the tensors the ops get, which
            # are the DTensors' local shards here; gathering anew costs little next to the
            # collectives of a sharded step.
            self._mesh = _distributed.param_mesh(self)
            self._run_sharded(self._gather_all(), grad_scale, found_inf)
            return loss
        if torch.compiler.is_compiling():
            # Traced once into a graph: host cost does not matter, keep the plain path.
            self._run(self._gather_all(), grad_scale, found_inf)
            return loss
        try:
            cached = _StepCache.buckets(self)
            if cached is None:
                self._run(self._rebuild(), grad_scale, found_inf)
            else:
                self._run_cached(cached, grad_scale, found_inf)
        finally:
            # The cache must not keep this step's grads alive (zero_grad(set_to_none=True)).
            if self._step_cache is not None:
                self._step_cache.release()
        return loss

    # ---- DTensor params (docs/distributed.md) ---------------------------------------------------
    def _mesh_group(self):
        """The process group of all ranks of the params' mesh, made once per mesh."""
        if getattr(self, "_group_of", None) is not self._mesh:
            self._group = _distributed.mesh_group(self._mesh)
            self._group_of = self._mesh
        return self._group

    def _reduction(self) -> "_distributed.Reduction":
        return _distributed.Reduction(self._mesh, self._mesh_group(),
                                      torch.device(self._mesh.device_type))

    def _originals(self, bucket: Bucket) -> list:
        """The params (DTensors or plain) behind a bucket's local tensors."""
        groups = self.param_groups
        return [groups[gi]["params"][pi] for gi, pi in bucket.origins]

    def _call_named(self, bucket: Bucket, fn: Callable):
        try:
            return fn()
        except RuntimeError as e:
            raise name_param_in_error(self, e, bucket.origins, bucket.device) from e

    def _run_sharded(self, buckets_per_group: list, grad_scale, found_inf) -> None:
        """A step with DTensor params. Element-wise optimizers only need found_inf to agree
        across ranks (one all-reduce when a GradScaler is in use, none otherwise)."""
        if found_inf is not None:
            red = self._reduction()
            handle = red.add(found_inf)
            red.reduce()
            found_inf = red.get(handle).reshape(()).float()
        self._run(buckets_per_group, grad_scale, found_inf)

    def _gather_all(self) -> list:
        return [self._gather(gi, g) for gi, g in enumerate(self.param_groups)]

    def _rebuild(self) -> list:
        """The full gather (checks every grad, creates missing state); caches its buckets."""
        self._step_cache = None
        buckets_per_group = self._gather_all()
        self._step_cache = _StepCache(self, buckets_per_group)
        return buckets_per_group

    def _launches(self, buckets_per_group: list) -> list:
        return [(group, b) for group, buckets in zip(self.param_groups, buckets_per_group)
                for b in buckets.values()]

    def _launch_named(self, group: dict, bucket: Bucket, grad_scale, found_inf, context) -> None:
        scalars = self._scalars(group, bucket.device, grad_scale, found_inf)
        try:
            self._launch(group, bucket, scalars, context)
        except RuntimeError as e:
            raise name_param_in_error(self, e, bucket.origins, bucket.device) from e

    def _run(self, buckets_per_group: list, grad_scale, found_inf) -> None:
        """One op call per bucket; every grad has passed _gather's checks."""
        context = self._prepare(buckets_per_group, grad_scale, found_inf)
        for group, bucket in self._launches(buckets_per_group):
            self._launch_named(group, bucket, grad_scale, found_inf, context)

    def _run_cached(self, buckets_per_group: list, grad_scale, found_inf) -> None:
        """Like _run, for buckets from the cache whose grads are unchecked. The grads of every
        op call but the first are checked here; those of the first by the op, which checks what
        _gather does (and that the params of a call share one dtype and device) before it writes
        anything. If it refuses them, _gather runs: it raises the error naming the bad param."""
        launches = self._launches(buckets_per_group)
        for _, b in launches[1:]:
            if not _grads_match_params(b):
                self._run(self._rebuild(), grad_scale, found_inf)  # _gather raises
                return
        launching = False
        try:
            context = self._prepare(buckets_per_group, grad_scale, found_inf)
            if launches:
                group, first = launches[0]
                scalars = self._scalars(group, first.device, grad_scale, found_inf)
                launching = True
                self._launch(group, first, scalars, context)
        except RuntimeError as e:
            # Nothing has been written.
            try:
                fresh = self._rebuild()
            except RuntimeError as bad:
                raise bad from None
            if not _same_buckets(buckets_per_group, fresh):
                # The op caught what the cache's checks did not: run the step as built anew.
                self._run(fresh, grad_scale, found_inf)
                return
            if launching:
                raise name_param_in_error(self, e, first.origins, first.device) from e
            raise
        for group, bucket in launches[1:]:
            self._launch_named(group, bucket, grad_scale, found_inf, context)

    # ---- state_dict --------------------------------------------------------------------------
    def __setstate__(self, state: dict) -> None:
        # torch.optim.Optimizer.__setstate__ (run by load_state_dict and by unpickling) adds
        # defaults["differentiable"] = False, which load_state_dict would then copy into every
        # param group: a loaded optimizer's state_dict would gain a key the original lacks.
        # fusedopt steps are never differentiable, so the option does not exist here.
        super().__setstate__(state)
        self.defaults.pop("differentiable", None)

    def load_state_dict(self, state_dict: dict) -> None:
        """Like torch's, but state keeps its own dtype: torch would cast fp32 moments and master
        weights of fp16/bf16 params to the param dtype, silently rounding them on resume."""
        self._step_cache = None
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


# ---- the step cache ----------------------------------------------------------------------------
_GRAD = attrgetter("grad")
_DTYPE = attrgetter("dtype")
_DEVICE = attrgetter("device")
_IS_CPU = attrgetter("is_cpu")
_IS_SPARSE = attrgetter("is_sparse")
_SHAPE = attrgetter("shape")


def _all_is(a, b) -> bool:
    """Element-wise identity of two equally long iterables (never calls Tensor.__eq__)."""
    return all(map(is_, a, b))


def _on_device(tensors: list, device: torch.device) -> bool:
    if device.type == "cpu":
        return all(map(_IS_CPU, tensors))
    return all(map(device.__eq__, map(_DEVICE, tensors)))


def _grads_match_params(b: Bucket) -> bool:
    """The checks of FusedOptimizer._gather, in bulk, for a bucket whose params are verified to
    have the bucket's dtype and device. False: let _gather find and name the bad grad."""
    gs = b.grads
    return (not any(map(_IS_SPARSE, gs))
            and all(map(is_, map(_DTYPE, gs), repeat(b.dtype)))
            and _on_device(gs, b.device)
            and list(map(_SHAPE, gs)) == list(map(_SHAPE, b.params)))


def _bucket_lists(b: Bucket) -> list:
    return [b.params, b.steps, b.masters, *b.states.values()]


def _same_buckets(a: list, b: list) -> bool:
    """Whether two gathers made the same op calls (same params and state tensors)."""
    if len(a) != len(b):
        return False
    for x, y in zip(a, b):
        if list(x) != list(y):
            return False
        for bx, by in zip(x.values(), y.values()):
            lx, ly = _bucket_lists(bx), _bucket_lists(by)
            if len(lx) != len(ly) or any(len(u) != len(v) or not _all_is(u, v)
                                         for u, v in zip(lx, ly)):
                return False
    return True


class _BucketPlan:
    """One cached bucket and what it was built from."""
    __slots__ = ("bucket", "index", "sdicts", "entries", "master_absent")

    def __init__(self, opt, b: Bucket, n_params: int, master: bool):
        self.bucket = b
        index = list(map(itemgetter(1), b.origins))  # increasing: _gather goes in group order
        # None: the bucket holds every param of the group (its grads are the group's list).
        self.index = None if len(index) == n_params else index
        self.sdicts = list(map(opt.state.__getitem__, b.params))
        self.entries = [(itemgetter("step"), b.steps)]
        self.entries += [(itemgetter(n), lst) for n, lst in b.states.items()]
        if b.masters:
            self.entries.append((itemgetter("master_param"), b.masters))
        # With master weights on, a "master_param" appearing in the state of a param of a
        # non-master bucket would move it to a master bucket.
        self.master_absent = master and not b.masters


class _GroupPlan:
    __slots__ = ("group", "params", "names", "master", "none_mask", "keyed", "buckets", "plans")

    def __init__(self, opt, group: dict, buckets: dict):
        params = group["params"]
        self.group = group
        self.params = list(params)
        self.names = opt._state_names(group)
        self.master = bool(group.get("master_weights", False))
        self.keyed = type(opt)._bucket_key is not FusedOptimizer._bucket_key
        self.buckets = buckets
        self.plans = [_BucketPlan(opt, b, len(params), self.master) for b in buckets.values()]
        # Which params had no grad: those in no bucket.
        self.none_mask = [True] * len(params)
        for bp in self.plans:
            if bp.index is None:
                self.none_mask = [False] * len(params)
            else:
                any(map(self.none_mask.__setitem__, bp.index, repeat(False)))

    def refresh(self, opt, group: dict, first: bool) -> Optional[dict]:
        """This step's buckets (with the current grads), or None if anything they were built
        from has changed. ``first``: this group's first bucket makes the step's first op call,
        which checks itself that its params share the dtype and device of params[0]."""
        params = group["params"]
        if group is not self.group or len(params) != len(self.params) \
                or not _all_is(params, self.params):
            return None
        if opt._state_names(group) != self.names \
                or bool(group.get("master_weights", False)) != self.master:
            return None
        grads = list(map(_GRAD, params))
        if list(map(is_, grads, repeat(None))) != self.none_mask:
            return None
        for bp in self.plans:
            b = bp.bucket
            ps = b.params
            # p.data = ... (another dtype or device) must move the param to another bucket.
            if first:
                first = False
                if ps[0].dtype is not b.dtype or ps[0].device != b.device:
                    return None
            elif not all(map(is_, map(_DTYPE, ps), repeat(b.dtype))) \
                    or not _on_device(ps, b.device):
                return None
            if self.keyed and list(map(partial(opt._bucket_key, group), ps)) != [b.key] * len(ps):
                return None
            sdicts = bp.sdicts
            try:
                for get, cached in bp.entries:
                    if not _all_is(map(get, sdicts), cached):
                        return None
            except KeyError:
                return None
            if bp.master_absent and any(map(contains, sdicts, repeat("master_param"))):
                return None
            b.grads = grads if bp.index is None else list(map(grads.__getitem__, bp.index))
        return self.buckets


class _StepCache:
    """The buckets of the last step and what they were built from (see the module docstring)."""
    __slots__ = ("state", "keys", "values", "groups")

    def __init__(self, opt: FusedOptimizer, buckets_per_group: list):
        self.state = opt.state
        self.keys = list(opt.state.keys())
        self.values = list(opt.state.values())
        self.groups = [_GroupPlan(opt, g, bs) for g, bs in zip(opt.param_groups, buckets_per_group)]

    def release(self) -> None:
        for plan in self.groups:
            for b in plan.buckets.values():
                b.grads = []

    @staticmethod
    def buckets(opt: FusedOptimizer) -> Optional[list]:
        c = opt._step_cache
        if c is None:
            return None
        st = opt.state
        groups = opt.param_groups
        # The state dict itself (load_state_dict), its params (del opt.state[p]) and each
        # param's state dict (opt.state[p] = {...}).
        if st is not c.state or len(st) != len(c.keys) or len(groups) != len(c.groups) \
                or not _all_is(st.values(), c.values) or not _all_is(st.keys(), c.keys):
            return None
        out = []
        first = True
        for group, plan in zip(groups, c.groups):
            buckets = plan.refresh(opt, group, first)
            if buckets is None:
                return None
            first = first and not buckets
            out.append(buckets)
        return out
