"""Checklist item 7: state_dict round trips (bit-identical resume, fp32 state of low-precision
params stays fp32), torch.save / torch.load(weights_only=True), interchange with torch.optim."""
import copy
import io

import fusedopt

import pytest
import torch

from support import (FUSED, NAMES, STANDARD_SHAPES, TEST_KW, assert_snapshots_equal,
                     clone_like, make_params, run_steps, snapshot, standard_plan)

F32, BF16, F16 = torch.float32, torch.bfloat16, torch.float16


def _params(device, dtype, seed=41):
    return make_params(STANDARD_SHAPES, dtype, device, torch.Generator().manual_seed(seed))


def _run(opt, params, steps, seed, start):
    run_steps(opt, params, steps, torch.Generator().manual_seed(seed + start), start=start,
              plan=standard_plan)


def _resume_check(backend, name, dtype, master, transport):
    kw = {**TEST_KW[name], "master_weights": master}
    params = _params(backend.device, dtype)
    opt = FUSED[name](params, **kw)
    _run(opt, params, 3, 0, 0)  # param 2 gets its first grad at step 2

    sd = opt.state_dict()
    if transport == "deepcopy":
        sd = copy.deepcopy(sd)
    else:
        buf = io.BytesIO()
        torch.save(sd, buf)
        buf.seek(0)
        sd = torch.load(buf, weights_only=True)

    params2 = [clone_like(p) for p in params]
    opt2 = FUSED[name](params2, **kw)
    opt2.load_state_dict(sd)
    for p, p2 in zip(params, params2):
        st, st2 = opt.state[p], opt2.state[p2]
        assert set(st) == set(st2)
        for k in st:
            assert st2[k].dtype == st[k].dtype, f"{k}: {st[k].dtype} became {st2[k].dtype}"
            assert st2[k].device == p2.device
            assert st2[k].shape == st[k].shape
            if k != "step":
                assert st2[k].dtype == (torch.float64 if dtype == torch.float64 else F32)
    assert_snapshots_equal(snapshot(opt, params), snapshot(opt2, params2), "right after load")
    # the loaded state is not aliased with the original
    for p, p2 in zip(params, params2):
        for k, v in opt2.state[p2].items():
            assert v.numel() == 0 or v.data_ptr() != opt.state[p][k].data_ptr()

    for o, ps in ((opt, params), (opt2, params2)):
        _run(o, ps, 5, 0, 3)
    assert_snapshots_equal(snapshot(opt, params), snapshot(opt2, params2),
                           f"{name}: resumed run vs uninterrupted run")


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("transport", ["deepcopy", "torch.save-weights_only"])
def test_resume_is_bit_identical_fp32(backend, name, transport):
    _resume_check(backend, name, F32, False, transport)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dtype", [BF16, F16], ids=["bf16", "fp16"])
@pytest.mark.parametrize("master", [False, True], ids=["no-master", "master"])
def test_resume_low_precision_keeps_fp32_state(backend, name, dtype, master):
    """torch.optim.Optimizer.load_state_dict would cast the fp32 moments and masters of bf16
    params to bf16; the resumed run would then differ from the uninterrupted one."""
    _resume_check(backend, name, dtype, master, "torch.save-weights_only")


def test_resume_fp64(backend):
    _resume_check(backend, "adam", torch.float64, False, "deepcopy")


@pytest.mark.parametrize("name", ["adam", "lamb"])
def test_resume_with_tensor_lr_and_groups(backend, name):
    params = _params(backend.device, F32, seed=42)
    kw = dict(TEST_KW[name])
    lr = torch.tensor(kw.pop("lr"), device=backend.device)

    def groups(ps):
        return [dict(params=ps[:3], lr=lr.clone()), dict(params=ps[3:], weight_decay=0.0)]

    opt = FUSED[name](groups(params), lr=0.5, **kw)
    _run(opt, params, 3, 1, 0)
    buf = io.BytesIO()
    torch.save(opt.state_dict(), buf)
    buf.seek(0)
    params2 = [clone_like(p) for p in params]
    opt2 = FUSED[name](groups(params2), lr=0.5, **kw)
    opt2.load_state_dict(torch.load(buf, weights_only=True))
    assert opt2.param_groups[1]["weight_decay"] == 0.0
    for o, ps in ((opt, params), (opt2, params2)):
        _run(o, ps, 4, 1, 3)
    assert_snapshots_equal(snapshot(opt, params), snapshot(opt2, params2), "resume with groups")


def test_load_state_dict_into_model_of_other_dtype_converts_state(backend):
    """A checkpoint of an fp32 run loaded for bf16 params (same shapes): moments stay fp32 and
    the group options come from the checkpoint (master_weights=False there); switching master
    weights on afterwards creates them from the bf16 params."""
    params = _params(backend.device, F32, seed=43)
    opt = FUSED["adam"](params, **TEST_KW["adam"])
    _run(opt, params, 3, 2, 0)
    bf = [p.detach().to(BF16) for p in params]
    opt2 = FUSED["adam"](bf, master_weights=True, **TEST_KW["adam"])
    opt2.load_state_dict(opt.state_dict())
    assert opt2.param_groups[0]["master_weights"] is False
    opt2.param_groups[0]["master_weights"] = True
    for p, q in zip(params, bf):
        for k, v in opt.state[p].items():
            assert opt2.state[q][k].dtype == F32
            assert torch.equal(opt2.state[q][k], v)
    _run(opt2, bf, 2, 2, 3)
    for q in bf:
        st = opt2.state[q]
        assert st["master_param"].dtype == F32
        assert torch.equal(q, st["master_param"].to(BF16))


# ---- interchange with torch.optim ------------------------------------------------------------

INTERCHANGE = [
    ("adam", torch.optim.Adam, dict(lr=1e-2, weight_decay=0.1)),
    ("adam", torch.optim.Adam, dict(lr=1e-2, amsgrad=True)),
    ("adamw", torch.optim.AdamW, dict(lr=1e-2, weight_decay=0.1)),
    ("sgd", torch.optim.SGD, dict(lr=0.05, momentum=0.9, weight_decay=0.01)),
    ("sgd", torch.optim.SGD, dict(lr=0.05, momentum=0.9, nesterov=True)),
    ("sgd", torch.optim.SGD, dict(lr=0.05)),
]
INTERCHANGE_IDS = [f"{c.__name__}-{','.join(f'{k}={v}' for k, v in kw.items())}"
                   for _, c, kw in INTERCHANGE]


def _assert_runs_close(pa, oa, pb, ob, what, check_step=True):
    for i, (a, b) in enumerate(zip(pa, pb)):
        torch.testing.assert_close(a, b, rtol=3e-5, atol=1e-6,
                                   msg=lambda m: f"{what}: param {i}: {m}")
        sa, sb = oa.state.get(a, {}), ob.state.get(b, {})
        for k in ("exp_avg", "exp_avg_sq", "max_exp_avg_sq", "momentum_buffer"):
            va, vb = sa.get(k), sb.get(k)
            if isinstance(va, torch.Tensor) and isinstance(vb, torch.Tensor):
                scale = max(float(vb.abs().max()), 1e-30) if vb.numel() else 1.0
                torch.testing.assert_close(va, vb, rtol=3e-5, atol=1e-6 * scale,
                                           msg=lambda m: f"{what}: param {i} {k}: {m}")
            else:
                assert (va is None) == (vb is None), f"{what}: param {i} {k}: {va} vs {vb}"
        if check_step and "step" in sa and "step" in sb:
            assert float(sa["step"]) == float(sb["step"])


@pytest.mark.parametrize("name,torch_cls,kw", INTERCHANGE, ids=INTERCHANGE_IDS)
def test_torch_checkpoint_into_fused(backend, name, torch_cls, kw):
    """Train with torch.optim, load its state_dict into the fused optimizer, continue; torch
    continuing on its own is the expected result."""
    pt = _params(backend.device, F32, seed=44)
    topt = torch_cls(pt, foreach=False, **kw)
    gen = torch.Generator().manual_seed(0)
    run_steps(topt, pt, 3, gen)
    sd = copy.deepcopy(topt.state_dict())
    pf = [clone_like(p) for p in pt]
    fopt = FUSED[name](pf, **{**kw, "lr": 123.0})  # lr must come from the checkpoint
    fopt.load_state_dict(sd)
    assert fopt.param_groups[0]["lr"] == kw["lr"]
    g1, g2 = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    run_steps(topt, pt, 4, g1, start=3)
    run_steps(fopt, pf, 4, g2, start=3)
    _assert_runs_close(pf, fopt, pt, topt, f"torch {torch_cls.__name__} -> fused")


@pytest.mark.parametrize("name,torch_cls,kw", INTERCHANGE, ids=INTERCHANGE_IDS)
def test_fused_checkpoint_into_torch(backend, name, torch_cls, kw):
    """Train with the fused optimizer, load its state_dict into torch.optim, continue; the
    fused optimizer continuing on its own is the expected result."""
    pf = _params(backend.device, F32, seed=45)
    fopt = FUSED[name](pf, **kw)
    gen = torch.Generator().manual_seed(0)
    run_steps(fopt, pf, 3, gen)
    sd = copy.deepcopy(fopt.state_dict())
    pt = [clone_like(p) for p in pf]
    topt = torch_cls(pt, foreach=False, **{**kw, "lr": 123.0})
    topt.load_state_dict(sd)
    g1, g2 = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    run_steps(fopt, pf, 4, g1, start=3)
    run_steps(topt, pt, 4, g2, start=3)
    # torch.optim.SGD keeps no step count: the loaded 'step' entry is carried along untouched
    _assert_runs_close(pf, fopt, pt, topt, f"fused -> torch {torch_cls.__name__}",
                       check_step=torch_cls is not torch.optim.SGD)


def test_state_dict_is_weights_only_loadable_with_every_option(backend):
    """Every optimizer's state_dict, with option values of every type (None, tuples, tensors),
    survives torch.load(weights_only=True)."""
    for name in NAMES:
        params = _params(backend.device, BF16, seed=46)
        kw = {**TEST_KW[name], "master_weights": True}
        if name == "lamb":
            kw.update(max_trust_ratio=None, max_grad_norm=None)
        opt = FUSED[name](params, **kw)
        _run(opt, params, 2, 3, 0)
        buf = io.BytesIO()
        torch.save(opt.state_dict(), buf)
        buf.seek(0)
        loaded = torch.load(buf, weights_only=True)
        assert loaded["param_groups"][0]["lr"] == kw["lr"]
        assert len(loaded["state"]) == len([p for p in params if opt.state.get(p)])


@pytest.mark.parametrize("name", NAMES)
def test_state_dict_before_any_step_and_repeated_round_trip(backend, name):
    """A state_dict taken before the first step loads and gives the same run; state_dict ->
    load -> state_dict is the identity (same keys, same options, bitwise same tensors)."""
    params = _params(backend.device, F32, seed=47)
    opt = FUSED[name](params, **TEST_KW[name])
    empty = opt.state_dict()
    assert empty["state"] == {}
    params2 = [clone_like(p) for p in params]
    opt2 = FUSED[name](params2, **{**TEST_KW[name], "lr": 9.0})
    opt2.load_state_dict(copy.deepcopy(empty))
    assert opt2.param_groups[0]["lr"] == TEST_KW[name]["lr"]
    for o, ps in ((opt, params), (opt2, params2)):
        _run(o, ps, 4, 4, 0)
    assert_snapshots_equal(snapshot(opt, params), snapshot(opt2, params2), "from empty state")

    sd1 = opt.state_dict()
    opt3 = FUSED[name]([clone_like(p) for p in params], **TEST_KW[name])
    opt3.load_state_dict(copy.deepcopy(sd1))
    sd2 = opt3.state_dict()
    assert sd1["param_groups"] == sd2["param_groups"]
    assert sd1["state"].keys() == sd2["state"].keys()
    for k, st in sd1["state"].items():
        assert st.keys() == sd2["state"][k].keys()
        for key, v in st.items():
            assert v.dtype == sd2["state"][k][key].dtype
            assert torch.equal(v, sd2["state"][k][key])
        assert st["step"].dtype == F32 and st["step"].dim() == 0


def _assert_state_dicts_equal(a: dict, b: dict, what: str) -> None:
    """Same keys everywhere, equal options, bitwise equal tensors of the same dtype."""
    assert a.keys() == b.keys(), what
    assert len(a["param_groups"]) == len(b["param_groups"]), what
    for ga, gb in zip(a["param_groups"], b["param_groups"]):
        assert ga.keys() == gb.keys(), f"{what}: group keys {sorted(set(ga) ^ set(gb))} differ"
        for k in ga:
            va, vb = ga[k], gb[k]
            if isinstance(va, torch.Tensor):
                assert isinstance(vb, torch.Tensor) and va.dtype == vb.dtype, f"{what}: {k}"
                assert torch.equal(va, vb), f"{what}: group option {k}"
            else:
                assert va == vb, f"{what}: group option {k}: {va!r} vs {vb!r}"
    assert a["state"].keys() == b["state"].keys(), what
    for i, st in a["state"].items():
        assert st.keys() == b["state"][i].keys(), f"{what}: state keys of param {i}"
        for k, v in st.items():
            w = b["state"][i][k]
            assert v.dtype == w.dtype and v.shape == w.shape, f"{what}: {k} of param {i}"
            assert torch.equal(bits_of(v), bits_of(w)), f"{what}: {k} of param {i}"


def bits_of(t: torch.Tensor) -> torch.Tensor:
    return t.reshape(-1).contiguous().view(torch.uint8)


def _apex_factories():
    from fusedopt import apex

    return {
        "apex.FusedLAMB": lambda ps: apex.FusedLAMB(ps, lr=1e-2, max_grad_norm=0.5),
        "apex.FusedAdam": lambda ps: apex.FusedAdam(ps, lr=1e-2, weight_decay=0.1),
        "apex.FusedSGD": lambda ps: apex.FusedSGD(ps, lr=0.1, momentum=0.9, nesterov=True),
        "apex.FusedMixedPrecisionLamb": lambda ps: apex.FusedMixedPrecisionLamb(
            ps, lr=torch.tensor(1e-2), step=3),
        "apex.LARC(torch SGD)": lambda ps: apex.LARC(
            torch.optim.SGD(ps, lr=0.1, momentum=0.9, weight_decay=1e-4)),
        "apex.LARC(FusedSGD)": lambda ps: apex.LARC(
            fusedopt.FusedSGD(ps, lr=0.1, momentum=0.9, weight_decay=1e-4), clip=False),
    }


ROUND_TRIP = [*NAMES, *_apex_factories()]


@pytest.mark.parametrize("name", ROUND_TRIP)
@pytest.mark.parametrize("dtype", [F32, BF16], ids=["fp32", "bf16"])
def test_state_dict_round_trip_is_the_identity(backend, name, dtype):
    """After load_state_dict, state_dict() has exactly the keys and values it had before (torch's
    __setstate__ used to add 'differentiable' to every group), for every optimizer, apex classes
    included; after pickling the optimizer too."""
    import pickle

    def make(ps):
        if name in FUSED:
            return FUSED[name](ps, **TEST_KW[name])
        return _apex_factories()[name](ps)

    params = [p for p in _params(backend.device, dtype, seed=48) if p.dim() > 0]
    opt = make(params)
    _run(opt, params, 3, 5, 0)
    sd = opt.state_dict()
    before = copy.deepcopy(sd)
    opt2 = make([clone_like(p) for p in params])
    opt2.load_state_dict(copy.deepcopy(sd))
    _assert_state_dicts_equal(before, opt2.state_dict(), f"{name}: loaded")
    _assert_state_dicts_equal(before, opt.state_dict(), f"{name}: original after state_dict()")
    opt2.load_state_dict(opt2.state_dict())  # twice
    _assert_state_dicts_equal(before, opt2.state_dict(), f"{name}: loaded twice")
    if name in FUSED:  # the apex LARC wrapper pickles its inner optimizer only
        opt3 = pickle.loads(pickle.dumps(opt))
        _assert_state_dicts_equal(before, opt3.state_dict(), f"{name}: unpickled")
