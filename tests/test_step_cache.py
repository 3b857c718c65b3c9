"""The step cache of FusedOptimizer (fusedopt/_base.py): step() reuses the last step's buckets
when nothing they were built from has changed. Every test drives two identical optimizers: one
normally (cached) and a twin whose cache is dropped before every step (the full gather), applies
the same change to both between steps, and requires bitwise equal params and state after every
step, and the same error (type and message) when a step raises. A cache that missed a change
would step stale lists and fail these. ``_drive`` also checks that unchanged steps really were
served from the cache, so the fast path is what is being tested."""
import copy
import gc
import weakref

import pytest
import torch

from support import (FUSED, NAMES, TEST_KW, assert_snapshots_equal, compare_with_reference,
                     make_grads, make_params, reference_cls, snapshot, standard_plan,
                     sync_low_precision)

F32, F64, BF16, F16 = torch.float32, torch.float64, torch.bfloat16, torch.float16
SHAPES = ((5, 3), (7,), (), (4, 2, 3), (0,), (7,))


def _flat(opt):
    return [p for g in opt.param_groups for p in g["params"]]


def _make_params(device, shapes=SHAPES, dtype=F32, seed=0):
    return make_params(shapes, dtype, device, torch.Generator().manual_seed(seed))


def _grads(params, step, plan=None):
    """Grads of the params' current dtype, device and shape, the same values for both twins."""
    gen = torch.Generator().manual_seed(1000 + step)
    out = []
    for i, p in enumerate(params):
        v = torch.randn(tuple(p.shape), generator=gen, dtype=F64)
        out.append(None if plan is not None and not plan(step, i)
                   else v.to(dtype=p.dtype, device=p.device))
    return out


def _set_grads(params, grads, mode):
    for p, g in zip(params, grads):
        if mode == "in-place" and g is not None and p.grad is not None \
                and p.grad.shape == g.shape and p.grad.dtype == g.dtype:
            p.grad.copy_(g)  # same grad objects as last step
        else:
            p.grad = g


class _Counter:
    """Counts the full gathers of an optimizer (a step served from the cache has none)."""

    def __init__(self, opt):
        self.n = 0
        inner = opt._gather

        def gather(gi, group):
            self.n += 1
            return inner(gi, group)

        opt._gather = gather


def _step(opt, cached: bool):
    if not cached:
        opt._step_cache = None
    try:
        opt.step()
    except (RuntimeError, TypeError, ValueError) as e:
        return e
    return None


def _drive(name, make, *, steps=7, changes=None, plan=None, grads="new", expect_hits=True,
           post=None, **kw):
    """``make(seed)`` -> param groups (or params), called once per twin with the same seed.
    ``changes``: {step: fn(opt)} applied to both optimizers before that step's grads are set;
    ``post``: the same, after the grads are set. Returns the two optimizers (cached, uncached)."""
    kw = {**TEST_KW[name], **kw}
    opts = [FUSED[name](make(0), **kw) for _ in range(2)]
    counter = _Counter(opts[0])
    changes = changes or {}
    hits = 0
    for step in range(steps):
        if step in changes:
            for o in opts:
                changes[step](o)
        for o in opts:
            params = _flat(o)
            _set_grads(params, _grads(params, step, plan), grads)
            if post and step in post:
                post[step](o)
        before = counter.n
        errors = [_step(opts[0], True), _step(opts[1], False)]
        hits += step > 0 and step not in changes and step not in (post or {}) \
            and counter.n == before and errors[0] is None
        where = f"{name} step {step}"
        assert type(errors[0]) is type(errors[1]), f"{where}: {errors[0]!r} vs {errors[1]!r}"
        if errors[0] is not None:
            assert str(errors[0]) == str(errors[1]), f"{where}: error messages differ"
        p0, p1 = _flat(opts[0]), _flat(opts[1])
        assert len(p0) == len(p1)
        assert_snapshots_equal(snapshot(opts[0], p0), snapshot(opts[1], p1),
                               f"{where}: cached vs uncached step")
    if expect_hits:
        assert hits > 0, f"{name}: no step was served from the cache"
    return opts


def _plain(device, **mk):
    return lambda seed: _make_params(device, seed=seed, **mk)


def _two_groups_mixed(device):
    """Two groups, the first with three dtypes (three buckets): several op calls per step."""
    def make(seed):
        gen = torch.Generator().manual_seed(seed)
        a = make_params(SHAPES, [F32, BF16, F32, F64, F32, BF16], device, gen)
        b = make_params(((3, 3), (6,), ()), F32, device, gen)
        return [dict(params=a), dict(params=b, weight_decay=0.0)]
    return make


LAYOUTS = {"one-bucket": _plain, "multi-bucket": _two_groups_mixed}


def _layout_params(indices: dict):
    """(layout, index) for each index (param position over all groups, with its id) that the
    layout has: the one-bucket layout has no second group."""
    out = []
    for layout, build in LAYOUTS.items():
        made = build(torch.device("cpu"))(0)
        count = sum(len(g["params"]) if isinstance(g, dict) else 1 for g in made)
        out += [pytest.param(layout, i, id=f"{layout}-{label}")
                for label, i in indices.items() if i < count]
    return out


# ---- the cache is used, and it does not hold on to grads --------------------------------------

@pytest.mark.parametrize("name", NAMES)
def test_unchanged_steps_skip_the_gather(backend, name):
    params = _make_params(backend.device)
    opt = FUSED[name](params, **TEST_KW[name])
    counter = _Counter(opt)
    for step in range(4):
        _set_grads(params, _grads(params, step), "new")
        opt.step()
    assert counter.n == 1, "only the first step should gather"
    opt.state[params[1]]["step"] = opt.state[params[1]]["step"].clone()
    _set_grads(params, _grads(params, 4), "new")
    opt.step()
    assert counter.n == 2, "a replaced state entry must rebuild"


@pytest.mark.parametrize("name", NAMES)
def test_cache_releases_grads(backend, name):
    """zero_grad(set_to_none=True) must free the grads: the cache keeps no reference to them."""
    params = _make_params(backend.device)
    opt = FUSED[name](params, **TEST_KW[name])
    for step in range(3):
        _set_grads(params, _grads(params, step), "new")
        opt.step()
    refs = [weakref.ref(p.grad) for p in params]
    opt.zero_grad(set_to_none=True)
    gc.collect()
    assert all(r() is None for r in refs)


# ---- grads --------------------------------------------------------------------------------------

@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("grads", ["new", "in-place"])
@pytest.mark.parametrize("name", NAMES)
def test_grads_new_objects_or_in_place(backend, name, grads, layout):
    _drive(name, LAYOUTS[layout](backend.device), grads=grads)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("name", NAMES)
def test_set_of_params_with_grad_changes(backend, name, layout):
    def plan(step, i):
        if step == 2:
            return i != 1          # param 1 loses its grad
        if step == 3:
            return i not in (0, 4)  # param 1 back, params 0 and 4 gone
        if step == 4:
            return False           # no grad at all
        return True
    _drive(name, LAYOUTS[layout](backend.device), plan=plan, steps=8)


@pytest.mark.parametrize("name", NAMES)
def test_matches_reference_with_grad_schedule_and_state_resets(backend, name):
    """The float64 reference: grads appear and disappear (standard_plan), new grad objects every
    step, and one param's state is reset half way."""
    Reference = reference_cls()
    params = _make_params(backend.device)
    kw = TEST_KW[name]
    opt = FUSED[name](params, **kw)
    ref = Reference(name, [p.detach().cpu() for p in params], **kw)
    gen = torch.Generator().manual_seed(3)
    for step in range(9):
        if step == 5:
            del opt.state[params[3]]
            ref.state.pop(3, None)
        if step == 6:
            st = opt.state[params[5]]
            for k in list(st):
                st[k] = st[k].clone()  # same values, new tensors
        grads = make_grads(params, step, gen, standard_plan)
        for p, g in zip(params, grads):
            p.grad = g
        ref.step([None if g is None else g.detach().cpu() for g in grads])
        opt.step()
        compare_with_reference(opt, ref, params, step)
        sync_low_precision(ref, params, False)


# ---- state --------------------------------------------------------------------------------------

def _each_state(opt, fn):
    for p in _flat(opt):
        if p in opt.state:
            fn(p, opt.state[p])


def _entries_replaced(opt):
    """What moving the state to another device does: every entry becomes a new tensor."""
    def fn(p, st):
        for k in list(st):
            st[k] = st[k].clone()
    _each_state(opt, fn)


def _one_entry_scaled(opt):
    p = _flat(opt)[3]
    st = opt.state[p]
    k = next(k for k in ("exp_avg", "momentum_buffer", "step") if k in st)
    st[k] = st[k] * 0.5


def _step_reset(opt):
    p = _flat(opt)[0]
    opt.state[p]["step"] = torch.zeros_like(opt.state[p]["step"])


def _state_dict_assigned(opt):
    p = _flat(opt)[1]
    opt.state[p] = {k: v.clone() + (0.25 if k != "step" else 0.0)
                    for k, v in opt.state[p].items()}


def _state_deleted(opt):
    del opt.state[_flat(opt)[5]]


def _state_cleared(opt):
    opt.state[_flat(opt)[0]].clear()


def _all_state_cleared(opt):
    opt.state.clear()


def _states_swapped(opt):
    """Same params and per-param dicts in the state, paired differently (equal shapes)."""
    ps = _flat(opt)
    opt.state[ps[1]], opt.state[ps[5]] = opt.state[ps[5]], opt.state[ps[1]]


def _state_moved_to_other_param(opt):
    ps = _flat(opt)
    opt.state[ps[5]] = opt.state.pop(ps[1])


def _entry_set_to_none(opt):
    st = opt.state[_flat(opt)[3]]
    st[next(k for k in ("exp_avg", "momentum_buffer", "step") if k in st)] = None


STATE_CHANGES = {
    "entries-replaced": _entries_replaced,
    "one-entry-scaled": _one_entry_scaled,
    "step-reset": _step_reset,
    "state-dict-assigned": _state_dict_assigned,
    "state-deleted": _state_deleted,
    "state-cleared": _state_cleared,
    "all-state-cleared": _all_state_cleared,
    "states-swapped": _states_swapped,
    "state-moved-to-other-param": _state_moved_to_other_param,
    "entry-set-to-none": _entry_set_to_none,
}


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("change", STATE_CHANGES)
@pytest.mark.parametrize("name", NAMES)
def test_state_changed_between_steps(backend, name, change, layout):
    _drive(name, LAYOUTS[layout](backend.device), changes={3: STATE_CHANGES[change]})


@pytest.mark.parametrize("name", NAMES)
def test_state_moved_to_a_param_without_state(backend, name):
    """opt.state keeps its length and its per-param dicts in the same order, only a key changes:
    param 2 (never a grad, no state) takes over the state of param 5, which starts afresh."""
    def move(opt):
        ps = _flat(opt)
        assert list(opt.state)[-1] is ps[5] and ps[2] not in opt.state
        opt.state[ps[2]] = opt.state.pop(ps[5])
    _drive(name, _plain(backend.device), plan=lambda step, i: i != 2, changes={3: move})


@pytest.mark.parametrize("name", NAMES)
def test_state_attribute_replaced(backend, name):
    def fresh(opt):
        opt.state = type(opt.state)(dict)
    _drive(name, _plain(backend.device), changes={3: fresh})


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("name", NAMES)
def test_load_state_dict(backend, name, layout):
    """An older state is loaded into both optimizers (the twins keep equal state)."""
    saved = {}

    def save(opt):
        saved.setdefault(id(opt), copy.deepcopy(opt.state_dict()))

    def load(opt):
        opt.load_state_dict(saved[id(opt)])

    _drive(name, LAYOUTS[layout](backend.device), changes={2: save, 5: load}, steps=8)


def test_load_state_dict_of_another_optimizer(backend):
    """State and options of an optimizer that ran a different schedule."""
    dev = backend.device
    other = FUSED["adam"](_make_params(dev), **TEST_KW["adam"], amsgrad=True)
    ps = _flat(other)
    for step in range(3):
        _set_grads(ps, _grads(ps, step + 50), "new")
        other.step()
    sd = other.state_dict()
    _drive("adam", _plain(dev), changes={3: lambda o: o.load_state_dict(copy.deepcopy(sd))})


# ---- param groups -------------------------------------------------------------------------------

def _new_params(opt, count=2, dtype=F32, seed=77):
    dev = _flat(opt)[0].device
    return make_params(((4,), (2, 3))[:count], dtype, dev, torch.Generator().manual_seed(seed))


def _group_added(opt):
    opt.add_param_group(dict(params=_new_params(opt), lr=opt.param_groups[0]["lr"] * 0.5))


def _param_appended(opt):
    opt.param_groups[0]["params"].append(_new_params(opt, 1)[0])


def _param_removed(opt):
    opt.param_groups[0]["params"].pop(1)


def _params_reordered(opt):
    ps = opt.param_groups[0]["params"]
    ps[0], ps[3] = ps[3], ps[0]


def _param_replaced(opt):
    opt.param_groups[0]["params"][2] = _new_params(opt, 1, seed=78)[0]


def _same_shape_params_swapped(opt):
    """Params 1 and 5 have the same shape: only identity tells them apart."""
    ps = opt.param_groups[0]["params"]
    ps[1], ps[5] = ps[5], ps[1]


def _param_replaced_by_same_shape(opt):
    ps = opt.param_groups[0]["params"]
    ps[1] = make_params([tuple(ps[1].shape)], ps[1].dtype, ps[1].device,
                        torch.Generator().manual_seed(79))[0]


def _group_appended_directly(opt):
    """Not through add_param_group."""
    opt.param_groups.append({**opt.param_groups[0], "params": _new_params(opt, seed=80)})


def _params_list_reassigned(opt):
    g = opt.param_groups[0]
    g["params"] = list(reversed(g["params"]))


def _group_dict_replaced(opt):
    opt.param_groups[0] = dict(opt.param_groups[0])


def _group_removed(opt):
    if len(opt.param_groups) > 1:
        opt.param_groups.pop()
    else:
        opt.param_groups[0]["params"] = opt.param_groups[0]["params"][:2]


GROUP_CHANGES = {
    "group-added": _group_added,
    "param-appended": _param_appended,
    "param-removed": _param_removed,
    "params-reordered": _params_reordered,
    "param-replaced": _param_replaced,
    "same-shape-params-swapped": _same_shape_params_swapped,
    "param-replaced-by-same-shape": _param_replaced_by_same_shape,
    "group-appended-directly": _group_appended_directly,
    "params-list-reassigned": _params_list_reassigned,
    "group-dict-replaced": _group_dict_replaced,
    "group-removed": _group_removed,
}


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("change", GROUP_CHANGES)
@pytest.mark.parametrize("name", NAMES)
def test_param_groups_changed_between_steps(backend, name, change, layout):
    _drive(name, LAYOUTS[layout](backend.device), changes={3: GROUP_CHANGES[change]})


def _set_option(key, value):
    def fn(opt):
        for g in opt.param_groups:
            g[key] = value
    return fn


# (optimizer, option, value before, value after): options that change the state names, the
# master weights or the buckets.
OPTION_CHANGES = [
    ("adam", "amsgrad", False, True),
    ("adam", "amsgrad", True, False),
    ("adamw", "amsgrad", False, True),
    ("sgd", "momentum", 0.0, 0.9),
    ("sgd", "momentum", 0.9, 0.0),
    ("lars", "momentum", 0.0, 0.9),
    ("lars", "lars_exclude", False, True),
    ("lars", "lars_exclude", True, False),
    ("lars", "exclude_bias_and_norm", False, True),
    ("lars", "exclude_bias_and_norm", True, False),
]


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("name,key,before,after", OPTION_CHANGES)
def test_structural_option_changed(backend, name, key, before, after, layout):
    start = {key: before} if key != "lars_exclude" else {}

    def initial(opt):
        _set_option(key, before)(opt)

    _drive(name, LAYOUTS[layout](backend.device), changes={0: initial, 3: _set_option(key, after)},
           **start)


@pytest.mark.parametrize("dtype", [BF16, F16], ids=["bf16", "fp16"])
@pytest.mark.parametrize("master", [(False, True), (True, False)], ids=["on", "off"])
@pytest.mark.parametrize("name", NAMES)
def test_master_weights_toggled(backend, name, dtype, master):
    before, after = master
    mk = _plain(backend.device, dtype=dtype)
    _drive(name, mk, changes={3: _set_option("master_weights", after)}, master_weights=before)


def test_master_param_added_to_fp32_state(backend):
    """With master_weights on, a 'master_param' in an fp32 param's state makes the op refuse
    it (both twins must see that)."""
    def add(opt):
        p = _flat(opt)[0]
        opt.state[p]["master_param"] = p.detach().float().clone()
    _drive("adam", _plain(backend.device), changes={3: add}, master_weights=True)


# ---- params moved to another dtype (p.data = ...) ----------------------------------------------

def _to_dtype(index, dtype):
    def fn(opt):
        p = _flat(opt)[index]
        p.data = p.data.to(dtype)
        p.grad = None
    return fn


def _all_to_dtype(dtype):
    """model.to(dtype) before the next backward: every param of every group, consistently."""
    def fn(opt):
        for p in _flat(opt):
            p.data = p.data.to(dtype)
            p.grad = None
    return fn


def _to_dtype_grad_kept(index, dtype):
    """Applied after the grads are set: the param changes dtype, its grad does not."""
    def fn(opt):
        p = _flat(opt)[index]
        p.data = p.data.to(dtype)
    return fn


def _view_reshaped(index):
    def fn(opt):
        p = _flat(opt)[index]
        p.data = p.data.view(-1)  # same storage and pointer, other shape
        p.grad = None
    return fn


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("index", [0, 1, 3], ids=["first-param", "second-param", "4th-param"])
@pytest.mark.parametrize("dtype", [BF16, F64], ids=["bf16", "fp64"])
@pytest.mark.parametrize("master", [False, True], ids=["no-master", "master"])
@pytest.mark.parametrize("name", NAMES)
def test_param_moved_to_other_dtype(backend, name, dtype, index, master, layout):
    """A param (and then its grads) changes dtype after the cache was built. fp32 -> bf16: it
    moves to a bf16 bucket (with a master weight if enabled); fp32 -> fp64: its fp32 state no
    longer fits and both twins raise the same error."""
    _drive(name, LAYOUTS[layout](backend.device), changes={3: _to_dtype(index, dtype)},
           master_weights=master)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", [BF16, F16, F64], ids=["bf16", "fp16", "fp64"])
@pytest.mark.parametrize("master", [False, True], ids=["no-master", "master"])
@pytest.mark.parametrize("name", NAMES)
def test_all_params_moved_to_other_dtype(backend, name, dtype, master, layout):
    """Every param changes dtype at once, so each op call still gets params of one dtype; with
    master weights, fp32 -> bf16/fp16 must create the master weights."""
    _drive(name, LAYOUTS[layout](backend.device), changes={3: _all_to_dtype(dtype)},
           master_weights=master)


@pytest.mark.parametrize("layout,index",
                         _layout_params({"first": 0, "second": 1, "4th": 3, "2nd-group": 7}))
@pytest.mark.parametrize("dtype", [BF16, F64], ids=["bf16", "fp64"])
@pytest.mark.parametrize("name", NAMES)
def test_param_moved_to_other_dtype_grad_kept(backend, name, dtype, index, layout):
    """The grad keeps the old dtype: the step must fail as a whole, naming the param."""
    make = LAYOUTS[layout](backend.device)
    _drive(name, make, post={3: _to_dtype_grad_kept(index, dtype)}, steps=5)


@pytest.mark.parametrize("name", NAMES)
def test_param_reshaped_in_place(backend, name):
    """p.data = p.data.view(-1): the same pointer, dtype and device, another shape."""
    _drive(name, _plain(backend.device), changes={3: _view_reshaped(3)})


@pytest.mark.gpu
@pytest.mark.parametrize("name", NAMES)
def test_param_moved_to_other_device(name):
    """A param moves to the GPU: its state stays behind (both twins raise the same error),
    then its state follows it and both step it on the GPU."""
    def move(opt):
        p = _flat(opt)[1]
        p.data = p.data.to("cuda")
        p.grad = None

    def move_state(opt):
        st = opt.state[_flat(opt)[1]]
        for k in list(st):
            st[k] = st[k].to("cuda")

    _drive(name, _plain(torch.device("cpu")), changes={3: move, 5: move_state})


# ---- bad grads after the cache was built -------------------------------------------------------

def _bad_dtype(index):
    def fn(opt):
        p = _flat(opt)[index]
        p.grad_dtype = None
        p.grad = torch.ones(tuple(p.shape), dtype=F64 if p.dtype != F64 else F32,
                            device=p.device)
    return fn


def _bad_shape(index):
    def fn(opt):
        p = _flat(opt)[index]
        p.data = torch.zeros(tuple(p.shape) + (1,), dtype=p.dtype, device=p.device)
    return fn


def _bad_sparse(index):
    def fn(opt):
        p = _flat(opt)[index]
        p.grad = torch.zeros(tuple(p.shape), dtype=p.dtype, device=p.device).to_sparse()
    return fn


BAD = {"dtype": _bad_dtype, "shape": _bad_shape, "sparse": _bad_sparse}


@pytest.mark.parametrize("layout,index",
                         _layout_params({"first-param": 0, "4th-param": 3, "2nd-group": 7}))
@pytest.mark.parametrize("what", BAD)
@pytest.mark.parametrize("name", NAMES)
def test_bad_grad_raises_the_same_error_and_changes_nothing(backend, name, what, index, layout):
    make = LAYOUTS[layout](backend.device)
    kw = TEST_KW[name]
    opts = [FUSED[name](make(0), **kw) for _ in range(2)]
    for step in range(3):
        for o in opts:
            ps = _flat(o)
            _set_grads(ps, _grads(ps, step), "new")
            o.step()
    shape = tuple(_flat(opts[0])[index].shape)
    for o in opts:
        ps = _flat(o)
        _set_grads(ps, _grads(ps, 3), "new")
        BAD[what](index)(o)
    before = snapshot(opts[0], _flat(opts[0]))
    errors = [_step(opts[0], True), _step(opts[1], False)]
    assert isinstance(errors[0], RuntimeError), errors[0]
    assert type(errors[0]) is type(errors[1]) and str(errors[0]) == str(errors[1])
    gi, pi = (1, index - 6) if index >= 6 else (0, index)
    assert f"param {pi} of param group {gi}" in str(errors[0])
    assert_snapshots_equal(before, snapshot(opts[0], _flat(opts[0])), "after the failed step")
    # Fixed, the next steps match again (and use the cache again).
    for o in opts:
        ps = _flat(o)
        if what == "shape":
            ps[index].data = ps[index].data.view(shape)
        _set_grads(ps, _grads(ps, 4), "new")
    errors = [_step(opts[0], True), _step(opts[1], False)]
    assert errors == [None, None]
    assert_snapshots_equal(snapshot(opts[0], _flat(opts[0])), snapshot(opts[1], _flat(opts[1])))


# ---- scaler attributes and lr changes still read every step ------------------------------------

@pytest.mark.parametrize("name", NAMES)
def test_scaler_and_lr_read_every_step(backend, name):
    dev = backend.device

    def scaler_on(opt):
        opt.grad_scale = torch.tensor(4.0, device=dev)
        opt.found_inf = torch.tensor(0.0, device=dev)

    def overflow(opt):
        opt.found_inf = torch.tensor(1.0, device=dev)

    def scaler_off(opt):
        del opt.grad_scale, opt.found_inf

    def lr(opt):
        for g in opt.param_groups:
            g["lr"] = g["lr"] * 0.3

    _drive(name, _plain(dev), steps=8,
           changes={2: scaler_on, 3: lr, 4: overflow, 5: scaler_off, 6: lr})
