"""Helpers of the fusedopt test suite (the fixtures live in conftest.py).

* ``make_tensor``: a tensor of given logical values in a given dtype / memory layout / offset.
* ``run_vs_reference``: drives a fused optimizer and ``fusedopt.reference.Reference`` (float64)
  side by side for N steps with a grad schedule, and compares params and every state tensor
  after every step (``compare_with_reference``).
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import pytest
import torch

import fusedopt
from fusedopt import FusedAdam, FusedAdamW, FusedLAMB, FusedLARS, FusedLion, FusedSGD

LOW_PRECISION = (torch.float16, torch.bfloat16)

FUSED = {
    "adam": FusedAdam,
    "adamw": FusedAdamW,
    "lamb": FusedLAMB,
    "lars": FusedLARS,
    "lion": FusedLion,
    "sgd": FusedSGD,
}
NAMES = tuple(FUSED)

# Hyper-parameters the tests use unless they say otherwise: large enough that every term of
# every update is visible at fp32 tolerance (the library defaults make some updates tiny).
TEST_KW = {
    "adam": dict(lr=1e-2, weight_decay=0.1),
    "adamw": dict(lr=1e-2, weight_decay=0.1),
    "lamb": dict(lr=1e-2, weight_decay=0.1),
    "lars": dict(lr=0.1, momentum=0.9, weight_decay=0.01, trust_coefficient=0.02),
    "lion": dict(lr=1e-3, weight_decay=0.1),
    "sgd": dict(lr=0.05, momentum=0.9, weight_decay=0.01),
}

# State tensor names each optimizer may create (besides 'step' and 'master_param').
STATE_KEYS = ("exp_avg", "exp_avg_sq", "max_exp_avg_sq", "momentum_buffer")


def reference_cls():
    """fusedopt.reference.Reference, imported lazily (it is written by someone else)."""
    from fusedopt.reference import Reference

    return Reference


# ---------------------------------------------------------------------------------------------
# Backends
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Backend:
    name: str
    device: torch.device

    def __str__(self) -> str:
        return self.name


BACKENDS = ("cpu", "cuda-emulated", "cuda")

# A test that needs a real GPU (skipped with "no GPU" without one; conftest.py). The "cuda"
# parametrization of the backend fixture carries the same marker.
needs_gpu = pytest.mark.gpu


def fusedopt_ops():
    """The op namespace CPU tensors go to now: torch.ops.fusedopt, or under the cuda-emulated
    backend torch.ops.fusedopt_emulated (CUDA tensors always go to torch.ops.fusedopt; the
    backend fixture selects "cpu" for them)."""
    from fusedopt import _ops

    return _ops.ops_for(torch.device("cpu"))


class RoutedOps:
    """``ops.adam_(...)`` on the op library of the backend in use (see fusedopt_ops)."""

    def __getattr__(self, name):
        return getattr(fusedopt_ops(), name)


@contextlib.contextmanager
def use_backend(name: str):
    """Routes CPU tensors through backend ``name`` inside the block; restores the previous
    route afterwards."""
    previous = fusedopt.get_backend()
    fusedopt.set_backend(name)
    try:
        yield
    finally:
        fusedopt.set_backend(previous)


# ---------------------------------------------------------------------------------------------
# Tensors
# ---------------------------------------------------------------------------------------------

LAYOUTS = ("contiguous", "transposed", "strided", "offset")


def make_tensor(values: torch.Tensor, dtype: torch.dtype, device, layout: str = "contiguous",
                offset: int = 0) -> torch.Tensor:
    """A tensor holding ``values`` (any dtype, logical shape) converted to ``dtype`` on ``device``
    with the given memory layout:

    contiguous  ordinary contiguous tensor (``offset`` > 0: a view starting ``offset`` elements
                into a larger buffer, i.e. a pointer misaligned by ``offset`` elements)
    transposed  dims reversed in memory (dense but not contiguous; falls back to contiguous
                for ndim < 2)
    strided     every other element of the last dim of a larger buffer (not dense)
    offset      same as contiguous with offset (default 1 if offset == 0)
    """
    shape = tuple(values.shape)
    numel = values.numel()
    if layout == "offset" and offset == 0:
        offset = 1
    if layout in ("contiguous", "offset") or (layout == "transposed" and len(shape) < 2):
        buf = torch.full((offset + numel,), float("nan"), dtype=dtype, device=device)
        t = buf[offset:offset + numel].view(shape)
    elif layout == "transposed":
        rev = tuple(reversed(range(len(shape))))
        buf = torch.full((offset + numel,), float("nan"), dtype=dtype, device=device)
        t = buf[offset:offset + numel].view(tuple(shape[i] for i in rev)).permute(rev)
    elif layout == "strided":
        if len(shape) == 0:
            buf = torch.full((offset + 2,), float("nan"), dtype=dtype, device=device)
            t = buf[offset]
        else:
            big = shape[:-1] + (2 * shape[-1] + offset,)
            buf = torch.full(big, float("nan"), dtype=dtype, device=device)
            t = buf[..., offset::2][..., :shape[-1]]
    else:  # pragma: no cover
        raise ValueError(layout)
    assert tuple(t.shape) == shape
    with torch.no_grad():
        t.copy_(values.to(device))
    return t


def randn(shape, gen: torch.Generator, scale: float = 1.0) -> torch.Tensor:
    return torch.randn(shape, generator=gen, dtype=torch.float64) * scale


# A list exercising the edge cases of checklist item 1: a 0-dim param, a zero-size param,
# a 1-element param, small vectors and matrices.
STANDARD_SHAPES = ((), (0,), (1,), (7,), (5, 9), (33,), (3, 4, 5))


def make_params(shapes, dtype, device, gen: torch.Generator, layout="contiguous",
                offset=0, scale=1.0):
    dtypes = dtype if isinstance(dtype, (list, tuple)) else [dtype] * len(shapes)
    layouts = layout if isinstance(layout, (list, tuple)) else [layout] * len(shapes)
    offsets = offset if isinstance(offset, (list, tuple)) else [offset] * len(shapes)
    return [make_tensor(randn(s, gen, scale), dt, device, lo, off)
            for s, dt, lo, off in zip(shapes, dtypes, layouts, offsets)]


def clone_like(t: torch.Tensor) -> torch.Tensor:
    """A copy with the same strides (and storage offset relative to a fresh buffer)."""
    out = torch.empty_strided(t.shape, t.stride(), dtype=t.dtype, device=t.device)
    with torch.no_grad():
        out.copy_(t)
    return out


# ---------------------------------------------------------------------------------------------
# Grad schedules
# ---------------------------------------------------------------------------------------------

def standard_plan(step: int, index: int, count: int) -> bool:
    """Checklist item 1: no grad at all on step 3; param 1 frozen on steps 5 and 6; param 2
    gets its first grad at step 2 (its state is created late)."""
    if step == 3:
        return False
    if index == 1 and step in (5, 6):
        return False
    if index == 2 and step in (0, 1):
        return False
    return True


def dense_plan(step: int, index: int, count: int) -> bool:
    return True


def make_grads(params, step: int, gen: torch.Generator, plan=standard_plan,
               grad_layouts=None, scale: float = 1.0):
    """Gradients (float64 values rounded to each param's dtype) for one step, None where the
    plan says so. ``grad_layouts``: optional per-param layout names for the grads."""
    grads = []
    for i, p in enumerate(params):
        vals = randn(p.shape, gen, scale)  # drawn even when unused: schedules stay aligned
        if not plan(step, i, len(params)):
            grads.append(None)
            continue
        layout = grad_layouts[i] if grad_layouts is not None else "contiguous"
        grads.append(make_tensor(vals, p.dtype, p.device, layout))
    return grads


# ---------------------------------------------------------------------------------------------
# Comparison with the reference
# ---------------------------------------------------------------------------------------------

def ulp(x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Spacing of ``dtype`` numbers at |x| (x float64)."""
    fi = torch.finfo(dtype)
    _, e = torch.frexp(x.abs())
    spacing = torch.ldexp(torch.ones_like(x), (e - 1).to(torch.int32)) * fi.eps
    return torch.clamp(spacing, min=fi.smallest_normal * fi.eps)


def fp_tol(dtype: torch.dtype, step: int):
    """(rtol, atol) of a float32 / float64 computation against the float64 reference after
    ``step`` + 1 steps (grows mildly with the number of steps)."""
    growth = 1.0 + step / 4.0
    if dtype == torch.float64:
        return 1e-9 * growth, 1e-11 * growth
    return 1.5e-5 * growth, 1e-6 * growth


def assert_close(actual: torch.Tensor, expected64: torch.Tensor, dtype: torch.dtype, step: int,
                 what: str, slack: float = 1.0):
    """``actual`` (storage ``dtype``) against the float64 reference value."""
    assert actual.shape == expected64.shape, f"{what}: shape {actual.shape} != {expected64.shape}"
    a = actual.detach().to("cpu", torch.float64)
    b = expected64.detach().to("cpu", torch.float64)
    rtol, atol = fp_tol(torch.float32 if dtype in LOW_PRECISION else dtype, step)
    # atol relative to the tensor's magnitude: states such as exp_avg_sq are ~1e-3 or smaller.
    scale = float(b.abs().nan_to_num(0.0, 0.0, 0.0).max()) if b.numel() else 0.0
    atol = atol * max(scale, 1e-30)
    rtol, atol = rtol * slack, atol * slack
    diff = (a - b).abs()
    bound = atol + rtol * b.abs()
    if dtype in LOW_PRECISION:
        # The reference is not rounded to the storage dtype: the fused value may sit up to half
        # an ulp of the storage dtype away from it (plus the fp32 error of the computation).
        bound = bound + 0.5 * ulp(torch.maximum(a.abs(), b.abs()), dtype)
    ok = (diff <= bound) | (a.isnan() & b.isnan()) | (a == b)
    if not bool(ok.all()):
        bad = ~ok
        idx = tuple(bad.nonzero()[0].tolist())
        raise AssertionError(
            f"{what} (step {step}, {dtype}): {int(bad.sum())} of {a.numel()} elements differ "
            f"from the float64 reference beyond rtol={rtol:.2g}, atol={atol:.2g}"
            f"{' + ulp/2' if dtype in LOW_PRECISION else ''}; first at {list(idx)}: "
            f"{a[idx].item()!r} vs reference {b[idx].item()!r} "
            f"(max abs diff {float(diff.nan_to_num(float('inf')).max()):.3g})")


def state_dtype(p: torch.Tensor) -> torch.dtype:
    return torch.float64 if p.dtype == torch.float64 else torch.float32


def fused_state(opt, p) -> dict:
    return opt.state[p] if p in opt.state else {}


def assert_pristine_state(state: dict, p, where: str) -> None:
    """A state created lazily for a param whose only steps were skipped (found_inf) must be
    pristine: step 0, zero moments, master == param (as good as no state at all)."""
    assert float(state["step"]) == 0.0, f"{where}: skipped step counted"
    for k, v in state.items():
        if k == "master_param":
            assert_bitwise_equal(v.to(p.dtype), p, f"{where}: master of pristine state")
        elif k != "step":
            assert not bool(v.any()), f"{where}: {k} nonzero in pristine state"


def compare_with_reference(opt, ref, params, step: int, master: bool = False,
                           f64_slack: float = 1.0, allow_pristine: bool = False):
    """Params and every state tensor of ``opt`` against the float64 reference ``ref``.
    ``f64_slack`` widens the tolerance of float64 params/states only. ``allow_pristine``: a
    param whose only steps were skipped (found_inf) may hold a pristine state where the
    reference has none."""
    ref_params = ref.params()
    assert len(ref_params) == len(params)
    for i, p in enumerate(params):
        where = f"param {i} {tuple(p.shape)}"
        fs = fused_state(opt, p)
        rs = ref.state.get(i, {})
        use_master = master and p.dtype in LOW_PRECISION
        if not rs and fs and allow_pristine:
            assert_pristine_state(fs, p, where)
            fs = {}
        expected_keys = set(rs) | ({"master_param"} if (use_master and rs) else set())
        assert set(fs) == expected_keys, \
            f"{where} step {step}: state keys {sorted(fs)} != expected {sorted(expected_keys)}"
        if rs:
            st = fs["step"]
            assert isinstance(st, torch.Tensor) and st.dtype == torch.float32 and st.dim() == 0
            assert st.device == p.device
            assert float(st) == float(rs["step"]), \
                f"{where}: step count {float(st)} != reference {rs['step']}"
        for key in STATE_KEYS:
            if key not in rs:
                continue
            s = fs[key]
            assert s.dtype == state_dtype(p), f"{where}: {key} has dtype {s.dtype}"
            assert s.device == p.device
            assert_close(s, rs[key], state_dtype(p), step, f"{where} state {key!r}",
                         slack=2.0 if p.dtype in LOW_PRECISION else
                         (f64_slack if p.dtype == torch.float64 else 1.0))
        if use_master and rs:
            m = fs["master_param"]
            assert m.dtype == torch.float32
            assert_close(m, ref_params[i], torch.float32, step, f"{where} master_param")
            assert_bitwise_equal(p, m.to(p.dtype), f"{where}: param != master rounded")
        else:
            assert_close(p, ref_params[i], p.dtype, step, f"{where} param",
                         slack=f64_slack if p.dtype == torch.float64 else 1.0)


def sync_low_precision(ref, params, master: bool):
    """Low-precision params without master weights: the storage rounds every step, so after
    comparing, continue the reference from the fused param (otherwise 1-ulp rounding
    differences would compound). Each step is then a one-step comparison from equal inputs."""
    for rp, p in zip(ref.params(), params):
        if p.dtype in LOW_PRECISION and not master:
            rp.copy_(p.detach().to("cpu", torch.float64))


def bits(t: torch.Tensor) -> torch.Tensor:
    """The raw bit pattern of a float tensor (as integers)."""
    t = t.detach().contiguous().cpu()
    view = {8: torch.int64, 4: torch.int32, 2: torch.int16}[t.element_size()]
    return t.view(view)


def assert_bitwise_equal(a: torch.Tensor, b: torch.Tensor, what: str = ""):
    assert a.shape == b.shape and a.dtype == b.dtype, \
        f"{what}: {a.shape}/{a.dtype} vs {b.shape}/{b.dtype}"
    ba, bb = bits(a), bits(b)
    if not torch.equal(ba, bb):
        n = int((ba != bb).sum())
        raise AssertionError(f"{what}: {n} of {a.numel()} elements differ bitwise")


def snapshot(opt, params) -> list:
    """Deep copy of params and all their state (for bitwise comparisons)."""
    out = []
    for p in params:
        st = {k: (v.detach().clone() if isinstance(v, torch.Tensor) else v)
              for k, v in fused_state(opt, p).items()}
        out.append((p.detach().clone(), st))
    return out


def assert_skipped_step(before, after, what=""):
    """``after`` equals ``before`` bitwise (a skipped step), except that a param without state
    before may now hold a pristine one (created lazily: step 0, zero moments, master == param)."""
    assert len(before) == len(after)
    for i, ((p1, st1), (p2, st2)) in enumerate(zip(before, after)):
        if not st1 and st2:
            assert_pristine_state(st2, p2, f"{what} param {i}")
            st2 = {}
        assert_snapshots_equal([(p1, st1)], [(p2, st2)], f"{what} param {i}")


def assert_snapshots_equal(s1, s2, what=""):
    assert len(s1) == len(s2)
    for i, ((p1, st1), (p2, st2)) in enumerate(zip(s1, s2)):
        assert_bitwise_equal(p1, p2, f"{what} param {i}")
        assert set(st1) == set(st2), f"{what} param {i}: state keys {sorted(st1)} vs {sorted(st2)}"
        for k in st1:
            if isinstance(st1[k], torch.Tensor):
                assert st1[k].dtype == st2[k].dtype, f"{what} param {i} {k}: dtype"
                assert_bitwise_equal(st1[k], st2[k], f"{what} param {i} state {k}")
            else:
                assert st1[k] == st2[k]


# ---------------------------------------------------------------------------------------------
# The driver
# ---------------------------------------------------------------------------------------------

def split_groups(params, groups: Optional[Sequence[dict]]):
    """``groups``: list of dicts with 'n' (number of consecutive params) and per-group options.
    Returns (fused_groups, ref_groups)."""
    if groups is None:
        return list(params), [p.detach().cpu() for p in params]
    fused_groups, ref_groups, i = [], [], 0
    for g in groups:
        g = dict(g)
        n = g.pop("n")
        chunk = params[i:i + n]
        i += n
        fused_groups.append({"params": chunk, **g})
        ref_groups.append({"params": [p.detach().cpu() for p in chunk], **g})
    assert i == len(params), "groups must cover every param"
    return fused_groups, ref_groups


def run_vs_reference(name: str, params, *, steps: int = 8, plan=standard_plan, groups=None,
                     ref_overrides: Optional[dict] = None, seed: int = 0,
                     grad_layouts=None, grad_scale: float = 1.0,
                     before_step: Optional[Callable] = None, f64_slack: float = 1.0,
                     amp: Optional[Callable] = None, **kw):
    """Runs fused optimizer ``name`` on ``params`` (already on the backend's device, in any dtype
    and layout) next to the float64 reference for ``steps`` steps and compares params and state
    after every step. ``kw`` goes to both constructors; ``ref_overrides`` only to the reference
    (to prove a comparison fails when the reference computes something else).
    ``before_step(step, opt, ref)`` may change group options between steps.
    ``amp(step) -> (S, found_inf)`` (each a float or None): the GradScaler protocol: grads are
    multiplied by S and ``opt.grad_scale`` / ``opt.found_inf`` are set for that step.
    Returns (opt, ref)."""
    Reference = reference_cls()
    gen = torch.Generator().manual_seed(seed)
    fused_groups, ref_groups = split_groups(params, groups)
    opt = FUSED[name](fused_groups, **kw)
    ref = Reference(name, ref_groups, **{**kw, **(ref_overrides or {})})
    master = bool(kw.get("master_weights", False))
    for step in range(steps):
        if before_step is not None:
            before_step(step, opt, ref)
        grads = make_grads(params, step, gen, plan, grad_layouts, grad_scale)
        S, found_inf = amp(step) if amp is not None else (None, None)
        if S is not None:
            grads = [None if g is None else g * S for g in grads]
        for p, g in zip(params, grads):
            p.grad = g
        ref.step([None if g is None else g.detach().cpu() for g in grads], grad_scale=S,
                 found_inf=found_inf)
        dev = params[0].device
        if S is not None:
            opt.grad_scale = torch.tensor(float(S), device=dev)
        if found_inf is not None:
            opt.found_inf = torch.tensor(float(found_inf), device=dev)
        opt.step()
        for attr in ("grad_scale", "found_inf"):
            if hasattr(opt, attr):
                delattr(opt, attr)
        compare_with_reference(opt, ref, params, step, master=master, f64_slack=f64_slack,
                               allow_pristine=amp is not None)
        sync_low_precision(ref, params, master)
    return opt, ref


def run_steps(opt, params, steps: int, gen: torch.Generator, plan=dense_plan, grad_layouts=None,
              start: int = 0):
    """Runs ``steps`` fused steps with generated grads (no reference)."""
    for step in range(start, start + steps):
        grads = make_grads(params, step, gen, plan, grad_layouts)
        for p, g in zip(params, grads):
            p.grad = g
        opt.step()


def deepcopy_params(params):
    return [clone_like(p) for p in params]


def check_larc_against_reference(opt, params, ref, grads_for_step, weight_decay, steps=6):
    """Steps a LARC wrapper and the float64 LARS reference side by side: params match, and the
    caller's grads (objects and values) and the group's weight_decay are left as they were."""
    for step in range(steps):
        grads = grads_for_step(step)
        for p, g in zip(params, grads):
            p.grad = g
        kept = [g.clone() for g in grads]
        opt.step()
        ref.step([g.cpu() for g in grads])
        for p, g, k in zip(params, grads, kept):
            assert p.grad is g and torch.equal(g, k)
        assert opt.param_groups[0]["weight_decay"] == weight_decay
        for i, (p, rp) in enumerate(zip(params, ref.params())):
            torch.testing.assert_close(p.detach().cpu().double(), rp, rtol=2e-5, atol=1e-6,
                                       msg=lambda m: f"LARC param {i} step {step}: {m}")
