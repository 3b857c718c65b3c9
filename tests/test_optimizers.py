"""Every optimizer against the float64 reference (fusedopt.reference), option by option, on every
backend; plus mutation tests proving the comparison fails when the reference computes
something else, param groups, learning-rate handling and parity with torch.optim."""
import pytest
import torch

import fusedopt
from support import (FUSED, NAMES, STANDARD_SHAPES, TEST_KW, assert_snapshots_equal,
                     compare_with_reference, dense_plan, make_grads, make_params,
                     reference_cls, run_steps, run_vs_reference, snapshot, standard_plan)

F32 = torch.float32


def _params(device, seed=1, shapes=STANDARD_SHAPES, dtype=F32):
    return make_params(shapes, dtype, device, torch.Generator().manual_seed(seed))


# ---- checklist 1: >= 7 steps, grads None on one step, a frozen param, 0-dim and empty params ---

@pytest.mark.parametrize("name", NAMES)
def test_matches_reference(backend, name):
    params = _params(backend.device)
    opt, ref = run_vs_reference(name, params, steps=8, plan=standard_plan, **TEST_KW[name])
    # The frozen param took fewer steps than the others (per-param step counts).
    steps = [float(opt.state[p]["step"]) for p in params]
    assert steps[0] == 7.0 and steps[1] == 5.0 and steps[2] == 5.0


@pytest.mark.parametrize("name", NAMES)
def test_library_defaults_match_reference(backend, name):
    """The constructors' own defaults (not the test's hyper-parameters)."""
    run_vs_reference(name, _params(backend.device), steps=7)


@pytest.mark.parametrize("name", NAMES)
def test_step_without_any_grad_is_a_no_op(backend, name):
    params = _params(backend.device)
    opt = FUSED[name](params, **TEST_KW[name])
    gen = torch.Generator().manual_seed(0)
    run_steps(opt, params, 2, gen)
    before = snapshot(opt, params)
    for p in params:
        p.grad = None
    opt.step()
    assert_snapshots_equal(before, snapshot(opt, params), "step with all grads None")


@pytest.mark.parametrize("name", NAMES)
def test_closure_is_called_and_its_loss_returned(backend, name):
    p = torch.ones(4, device=backend.device, requires_grad=True)
    opt = FUSED[name]([p], **TEST_KW[name])

    def closure():
        opt.zero_grad()
        loss = (p * torch.arange(4.0, device=p.device)).sum()
        loss.backward()
        return loss

    loss = opt.step(closure)
    assert float(loss.detach()) == 6.0
    assert float(opt.state[p]["step"]) == 1.0


# ---- checklist 9: each option on and off ---------------------------------------------------

OPTION_CASES = {
    "adam": [
        dict(),
        dict(weight_decay=0.0),
        dict(adam_w_mode=True),
        dict(bias_correction=False),
        dict(amsgrad=True),
        dict(maximize=True),
        dict(amsgrad=True, maximize=True, adam_w_mode=True),
        dict(betas=(0.8, 0.95), eps=1e-3),
        dict(betas=(0.9, 0.9999)),
    ],
    "adamw": [
        dict(),
        dict(weight_decay=0.0),
        dict(amsgrad=True),
        dict(bias_correction=False, maximize=True),
    ],
    "lamb": [
        dict(),                                   # max_grad_norm=1.0 < ||g||: clips
        dict(max_grad_norm=None),
        dict(max_grad_norm=0.0),
        dict(max_grad_norm=1e6),                  # finite but never reached
        dict(max_grad_norm=5.0),
        dict(adam_w_mode=False),
        dict(bias_correction=False),
        dict(grad_averaging=False),
        dict(weight_decay=0.0),                   # trust ratio 1 ...
        dict(weight_decay=0.0, use_nvlamb=True),  # ... unless use_nvlamb
        dict(use_nvlamb=True),
        dict(trust_clip=True),
        dict(min_trust_ratio=3.0),
        dict(max_trust_ratio=0.5),
        dict(min_trust_ratio=0.2, max_trust_ratio=0.4, trust_clip=True),
        dict(min_trust_ratio=None, max_trust_ratio=0.0),  # None / 0: no clamp
        dict(betas=(0.8, 0.9999), eps=1e-8),
    ],
    "lars": [
        dict(),
        dict(momentum=0.0),
        dict(nesterov=True),
        dict(dampening=0.5),
        dict(weight_decay=0.0),
        dict(clip=True),                          # ratio/lr < 1
        dict(clip=True, trust_coefficient=0.5),   # ratio/lr > 1: clamped to 1
        dict(exclude_bias_and_norm=True),
        dict(trust_coefficient=0.5, eps=1e-3),
    ],
    "lion": [
        dict(),
        dict(weight_decay=0.0),
        dict(maximize=True),
        dict(betas=(0.95, 0.98)),
    ],
    "sgd": [
        dict(),
        dict(momentum=0.0),
        dict(momentum=0.0, weight_decay=0.0),
        dict(nesterov=True),
        dict(dampening=0.3),
        dict(maximize=True),
        dict(maximize=True, nesterov=True, weight_decay=0.0),
    ],
}


def _case_id(kw):
    return ",".join(f"{k}={v}" for k, v in kw.items()) or "test-defaults"


@pytest.mark.parametrize(
    "name,options",
    [pytest.param(n, kw, id=f"{n}[{_case_id(kw)}]") for n, cases in OPTION_CASES.items()
     for kw in cases])
def test_option_matches_reference(backend, name, options):
    kw = {**TEST_KW[name], **options}
    run_vs_reference(name, _params(backend.device, seed=2), steps=8, **kw)


def test_lars_per_group_exclusion(backend):
    """group['lars_exclude'] turns off adaptation and weight decay for a whole group, and
    exclude_bias_and_norm for ndim <= 1 params only."""
    params = _params(backend.device, seed=3)
    groups = [dict(n=3, lars_exclude=True), dict(n=2), dict(n=2, exclude_bias_and_norm=True)]
    run_vs_reference("lars", params, groups=groups, **TEST_KW["lars"])


# ---- mutation tests: the comparison can fail -----------------------------------------------

MUTATIONS = [
    ("adam", {}, dict(bias_correction=False)),
    ("adam", {}, dict(adam_w_mode=True)),
    ("adam", dict(amsgrad=True), dict(amsgrad=False)),
    ("adam", {}, dict(maximize=True)),
    ("adamw", {}, dict(bias_correction=False)),
    ("adamw", {}, dict(weight_decay=0.0)),
    ("lamb", dict(weight_decay=0.0), dict(use_nvlamb=True)),      # trust ratio vs 1
    ("lamb", {}, dict(max_grad_norm=None)),                        # clipping
    ("lamb", {}, dict(adam_w_mode=False)),
    ("lamb", {}, dict(grad_averaging=False)),
    ("lamb", {}, dict(min_trust_ratio=3.0)),
    ("lars", {}, dict(clip=True)),
    ("lars", {}, dict(exclude_bias_and_norm=True)),
    ("lars", {}, dict(trust_coefficient=0.021)),
    ("lars", {}, dict(nesterov=True)),
    ("lion", {}, dict(maximize=True)),
    ("lion", {}, dict(betas=(0.9, 0.98))),
    ("sgd", {}, dict(nesterov=True)),
    ("sgd", {}, dict(dampening=0.1)),
    ("sgd", dict(momentum=0.0), dict(weight_decay=0.0)),
]


@pytest.mark.parametrize(
    "name,options,mutation",
    [pytest.param(n, o, m, id=f"{n}[{_case_id(o)}]-ref[{_case_id(m)}]")
     for n, o, m in MUTATIONS])
def test_comparison_detects_a_wrong_formula(backend, name, options, mutation):
    """The reference run with one option changed stands in for a kernel with a wrong formula:
    the comparison helper must reject it (so the tests above can fail)."""
    kw = {**TEST_KW[name], **options}
    with pytest.raises(AssertionError):
        run_vs_reference(name, _params(backend.device, seed=2), steps=8, ref_overrides=mutation,
                         **kw)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_comparison_detects_a_wrong_learning_rate(backend, dtype):
    """A 2% learning-rate error (e.g. a missing (1 - b1) factor somewhere would be far larger)
    is caught at fp32 and at bf16 storage."""
    params = _params(backend.device, seed=5, dtype=dtype)
    with pytest.raises(AssertionError):
        run_vs_reference("adam", params, ref_overrides=dict(lr=1.02e-2), **TEST_KW["adam"])


# ---- Lion sign(0) = 0, hand computed ---------------------------------------------------------

def test_lion_sign_of_zero_is_zero(backend):
    dev = backend.device
    p = torch.tensor([1.0, -2.0, 0.0, 3.0], device=dev)
    opt = FUSED["lion"]([p], lr=0.125, betas=(0.5, 0.75), weight_decay=0.0)
    # zero gradient, zero momentum: c = 0 exactly, sign(0) = 0: nothing moves.
    p.grad = torch.zeros(4, device=dev)
    opt.step()
    assert p.tolist() == [1.0, -2.0, 0.0, 3.0]
    assert opt.state[p]["exp_avg"].tolist() == [0.0, 0.0, 0.0, 0.0]
    # one zero element among nonzero ones: c = 0.5*g -> sign = [1, -1, 0, 1]
    p.grad = torch.tensor([4.0, -4.0, 0.0, 2.0], device=dev)
    opt.step()
    assert p.tolist() == [1.0 - 0.125, -2.0 + 0.125, 0.0, 3.0 - 0.125]
    assert opt.state[p]["exp_avg"].tolist() == [1.0, -1.0, 0.0, 0.5]  # 0.75*0 + 0.25*g
    # zero grad with nonzero momentum: c = 0.5*m -> still moves by sign(m); m decays
    p.grad = torch.zeros(4, device=dev)
    opt.step()
    assert p.tolist() == [1.0 - 0.25, -2.0 + 0.25, 0.0, 3.0 - 0.25]
    assert opt.state[p]["exp_avg"].tolist() == [0.75, -0.75, 0.0, 0.375]


def test_lion_sign_edge_values(backend):
    """sign(+-inf) = +-1, sign(NaN) = NaN, sign(-0) = sign(+0) = 0 (docs/lion.md): the kernels'
    branch-free sign on every backend and SIMD level (37 elements: vector body and tail)."""
    levels = fusedopt.available_simd_levels() if backend.name == "cpu" else [None]
    for level in levels:
        if level is None:
            _lion_sign_edge_values(backend.device)
        else:
            with fusedopt.simd_level(level):
                _lion_sign_edge_values(backend.device)


def _lion_sign_edge_values(dev):
    special = [float("inf"), float("-inf"), float("nan"), -0.0, 0.0, 3.0, -3.0]
    grads = (special * 6)[:37]
    p = torch.full((37,), 2.0, device=dev)
    opt = FUSED["lion"]([p], lr=0.25, betas=(0.5, 0.75), weight_decay=0.0)
    p.grad = torch.tensor(grads, device=dev)
    opt.step()
    expected = [2.0 - 0.25 if g > 0 else 2.0 + 0.25 if g < 0 else (g if g != g else 2.0)
                for g in grads]
    got = p.cpu().tolist()
    for i, (a, b) in enumerate(zip(got, expected)):
        assert (a == b) or (a != a and b != b), (i, grads[i], a, b)
    # A zero direction leaves the param bitwise unchanged, a -0 param included.
    q = torch.tensor([-0.0, 0.0, -0.0], device=dev)
    opt = FUSED["lion"]([q], lr=0.25, weight_decay=0.0)
    q.grad = torch.tensor([-0.0, -0.0, 0.0], device=dev)
    opt.step()
    assert torch.equal(torch.signbit(q.cpu()), torch.tensor([True, False, True]))


def test_lion_sign_of_zero_with_weight_decay(backend):
    dev = backend.device
    p = torch.tensor([1.0, -2.0, 0.0], device=dev)
    opt = FUSED["lion"]([p], lr=0.5, weight_decay=0.5)  # decay factor 1 - 0.25 = 0.75
    p.grad = torch.zeros(3, device=dev)
    opt.step()
    assert p.tolist() == [0.75, -1.5, 0.0]


# ---- checklist 8: param groups ---------------------------------------------------------------

GROUP_OPTIONS = {
    "adam": [dict(lr=3e-2), dict(weight_decay=0.0, betas=(0.8, 0.99)),
             dict(adam_w_mode=True, amsgrad=True)],
    "adamw": [dict(lr=3e-2), dict(weight_decay=0.3, betas=(0.8, 0.99)), dict(maximize=True)],
    "lamb": [dict(lr=3e-2, weight_decay=0.0), dict(betas=(0.8, 0.99), trust_clip=True),
             dict(max_grad_norm=None, adam_w_mode=False)],
    "lars": [dict(lr=0.3, lars_exclude=True), dict(momentum=0.5, weight_decay=0.1),
             dict(nesterov=True, clip=True)],
    "lion": [dict(lr=3e-3), dict(weight_decay=0.0, betas=(0.8, 0.95)), dict(maximize=True)],
    "sgd": [dict(lr=0.1), dict(momentum=0.0, weight_decay=0.1), dict(nesterov=True)],
}


@pytest.mark.parametrize("name", NAMES)
def test_param_groups_with_their_own_options(backend, name):
    params = _params(backend.device, seed=4)
    sizes = (3, 2, 2)
    groups = [dict(n=n, **o) for n, o in zip(sizes, GROUP_OPTIONS[name])]
    run_vs_reference(name, params, groups=groups, **TEST_KW[name])


def test_lamb_global_norm_spans_all_groups(backend):
    """The clipping norm is over the grads of every group, even groups that do not clip;
    a per-group norm is caught (the reference with separate optimizers per group differs)."""
    params = _params(backend.device, seed=6)
    groups = [dict(n=4, max_grad_norm=2.0), dict(n=3, max_grad_norm=2.0)]
    run_vs_reference("lamb", params, groups=groups, **TEST_KW["lamb"])

    # A per-group-norm implementation: two independent reference optimizers.
    Reference = reference_cls()
    p2 = _params(backend.device, seed=6)
    opt = FUSED["lamb"]([dict(params=p2[:4], max_grad_norm=2.0),
                         dict(params=p2[4:], max_grad_norm=2.0)], **TEST_KW["lamb"])
    ra = Reference("lamb", [p.cpu() for p in p2[:4]], **{**TEST_KW["lamb"], "max_grad_norm": 2.0})
    rb = Reference("lamb", [p.cpu() for p in p2[4:]], **{**TEST_KW["lamb"], "max_grad_norm": 2.0})
    gen = torch.Generator().manual_seed(0)
    grads = make_grads(p2, 0, gen, dense_plan)
    for p, g in zip(p2, grads):
        p.grad = g
    opt.step()
    ra.step([g.cpu() for g in grads[:4]])
    rb.step([g.cpu() for g in grads[4:]])

    class Both:
        state = {**ra.state, **{i + 4: s for i, s in rb.state.items()}}

        @staticmethod
        def params():
            return ra.params() + rb.params()

    with pytest.raises(AssertionError):
        compare_with_reference(opt, Both, p2, 0)


def test_add_param_group_later(backend):
    params = _params(backend.device, seed=7)
    Reference = reference_cls()
    opt = FUSED["adam"](params[:4], **TEST_KW["adam"])
    gen = torch.Generator().manual_seed(0)
    run_steps(opt, params[:4], 2, gen)
    opt.add_param_group(dict(params=params[4:], lr=0.05))
    ref = Reference("adam", [dict(params=[p.cpu() for p in params[:4]]),
                             dict(params=[p.cpu() for p in params[4:]], lr=0.05)],
                    **TEST_KW["adam"])
    # bring the reference to the same point: copy the fused state of the first group
    for i, p in enumerate(params[:4]):
        st = opt.state[p]
        if st:
            ref.state[i] = {"step": int(st["step"]),
                            "exp_avg": st["exp_avg"].double().cpu(),
                            "exp_avg_sq": st["exp_avg_sq"].double().cpu()}
    for step in range(2, 6):
        grads = make_grads(params, step, gen, dense_plan)
        for p, g in zip(params, grads):
            p.grad = g
        opt.step()
        ref.step([g.cpu() for g in grads])
        compare_with_reference(opt, ref, params, step)


# ---- checklist 6: learning rates ---------------------------------------------------------------

@pytest.mark.parametrize("name", NAMES)
def test_lr_float_and_tensor_are_bitwise_identical(backend, name):
    kw = dict(TEST_KW[name])
    runs = []
    for lr in (kw["lr"], torch.tensor(kw["lr"], device=backend.device)):
        params = _params(backend.device, seed=8)
        opt = FUSED[name](params, **{**kw, "lr": lr})
        run_steps(opt, params, 7, torch.Generator().manual_seed(1), plan=standard_plan)
        runs.append(snapshot(opt, params))
    assert_snapshots_equal(runs[0], runs[1], f"{name}: float lr vs tensor lr")


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("kind", ["float", "tensor-replaced", "tensor-in-place"])
def test_lr_changed_between_steps_is_honoured(backend, name, kind):
    base = TEST_KW[name]["lr"]
    lr0 = torch.tensor(base, device=backend.device) if kind != "float" else base

    def before_step(step, opt, ref):
        new = base * (0.5 ** step)
        for g in opt.param_groups:
            if kind == "float":
                g["lr"] = new
            elif kind == "tensor-replaced":
                g["lr"] = torch.tensor(new, device=backend.device)
            else:
                g["lr"].fill_(new)
        for g in ref.param_groups:
            g["lr"] = new

    run_vs_reference(name, _params(backend.device, seed=9), before_step=before_step,
                     **{**TEST_KW[name], "lr": lr0})


def _run_with_scheduler(backend, name, make_sched, expected_lr, tensor_lr=False):
    Reference = reference_cls()
    params = _params(backend.device, seed=10)
    kw = dict(TEST_KW[name])
    base = kw["lr"]
    if tensor_lr:
        kw["lr"] = torch.tensor(base, device=backend.device)
    opt = FUSED[name](params, **kw)
    ref = Reference(name, [p.cpu() for p in params], **{**TEST_KW[name]})
    sched = make_sched(opt)
    gen = torch.Generator().manual_seed(0)
    for step in range(7):
        ref.param_groups[0]["lr"] = expected_lr(base, step)
        grads = make_grads(params, step, gen, dense_plan)
        for p, g in zip(params, grads):
            p.grad = g
        opt.step()
        ref.step([g.cpu() for g in grads])
        sched.step()
        compare_with_reference(opt, ref, params, step)


@pytest.mark.parametrize("name", ["adam", "lamb", "sgd"])
@pytest.mark.parametrize("tensor_lr", [False, True], ids=["float-lr", "tensor-lr"])
def test_step_lr_scheduler(backend, name, tensor_lr):
    _run_with_scheduler(backend, name,
                        lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=2, gamma=0.5),
                        lambda base, k: base * 0.5 ** (k // 2), tensor_lr)


@pytest.mark.parametrize("name", ["adamw", "lars", "lion"])
def test_lambda_lr_scheduler(backend, name):
    _run_with_scheduler(backend, name,
                        lambda o: torch.optim.lr_scheduler.LambdaLR(o, lambda k: 1.0 / (k + 1)),
                        lambda base, k: base / (k + 1))


def test_zero_lr_leaves_params_unchanged_but_updates_state(backend):
    params = _params(backend.device, seed=11)
    before = [p.clone() for p in params]
    run_vs_reference("adam", params, **{**TEST_KW["adam"], "lr": 0.0})
    for p, b in zip(params, before):
        assert torch.equal(p, b)


# ---- parity with torch.optim -------------------------------------------------------------------

TORCH_PARITY = [
    ("adam", torch.optim.Adam, dict(lr=1e-2, weight_decay=0.1)),
    ("adam", torch.optim.Adam, dict(lr=1e-2, amsgrad=True, maximize=True)),
    ("adam", torch.optim.Adam, dict(lr=1e-2, betas=(0.8, 0.99), eps=1e-4)),
    ("adamw", torch.optim.AdamW, dict(lr=1e-2, weight_decay=0.1)),
    ("adamw", torch.optim.AdamW, dict(lr=1e-2, weight_decay=0.1, amsgrad=True)),
    ("sgd", torch.optim.SGD, dict(lr=0.05)),
    ("sgd", torch.optim.SGD, dict(lr=0.05, momentum=0.9, weight_decay=0.01)),
    ("sgd", torch.optim.SGD, dict(lr=0.05, momentum=0.9, nesterov=True, maximize=True)),
    ("sgd", torch.optim.SGD, dict(lr=0.05, momentum=0.9, dampening=0.3)),
]


@pytest.mark.parametrize("name,torch_cls,kw",
                         [pytest.param(n, c, k, id=f"{c.__name__}[{_case_id(k)}]")
                          for n, c, k in TORCH_PARITY])
def test_parity_with_torch_optim(backend, name, torch_cls, kw):
    pa = _params(backend.device, seed=12)
    pb = _params(backend.device, seed=12)
    fused = FUSED[name](pa, **kw)
    ref = torch_cls(pb, foreach=False, **kw)
    gen = torch.Generator().manual_seed(3)
    for step in range(8):
        grads = make_grads(pa, step, gen, standard_plan)
        for a, b, g in zip(pa, pb, grads):
            a.grad = g
            b.grad = None if g is None else g.clone()
        fused.step()
        ref.step()
        for i, (a, b) in enumerate(zip(pa, pb)):
            torch.testing.assert_close(a, b, rtol=3e-5, atol=1e-6,
                                       msg=lambda m: f"param {i} step {step}: {m}")
            sa, sb = fused.state.get(a, {}), ref.state.get(b, {})
            keys = {k for k in sb if isinstance(sb[k], torch.Tensor)}
            assert keys <= set(sa), f"param {i}: torch has {sorted(sb)}, fused {sorted(sa)}"
            for k in keys:
                if k == "step":
                    assert float(sa[k]) == float(sb[k])
                else:
                    scale = max(float(sb[k].abs().max()), 1e-3) if sb[k].numel() else 1.0
                    torch.testing.assert_close(sa[k], sb[k], rtol=3e-5, atol=1e-6 * scale,
                                               msg=lambda m: f"param {i} {k} step {step}: {m}")


# ---- options changed between steps (group[key] = ...) ------------------------------------------

CHANGES = [
    ("adam", dict(amsgrad=True)),
    ("adam", dict(weight_decay=0.0, betas=(0.8, 0.99), eps=1e-4)),
    ("adam", dict(adam_w_mode=True, maximize=True)),
    ("lamb", dict(max_grad_norm=None, trust_clip=True)),
    ("lion", dict(betas=(0.8, 0.95), weight_decay=0.0)),
    ("sgd", dict(momentum=0.9, dampening=0.3)),      # momentum switched on mid-training
    ("sgd", dict(nesterov=True, weight_decay=0.0)),
    ("lars", dict(momentum=0.5, dampening=0.3, clip=True)),
    ("lars", dict(lars_exclude=True)),
]


@pytest.mark.parametrize("name,change", CHANGES,
                         ids=[f"{n}[{_case_id(c)}]" for n, c in CHANGES])
def test_option_changed_between_steps_is_honoured(backend, name, change):
    start = dict(TEST_KW[name])
    if name in ("sgd", "lars") and "momentum" in change:
        start["momentum"] = 0.0

    def before_step(step, opt, ref):
        if step == 4:
            for groups in (opt.param_groups, ref.param_groups):
                for g in groups:
                    g.update(change)

    run_vs_reference(name, _params(backend.device, seed=13), before_step=before_step, **start)


# ---- zero norms (LAMB/LARS trust-ratio fallbacks), zero params and zero grads -------------------

@pytest.mark.parametrize("name,options", [
    ("lamb", {}), ("lamb", dict(use_nvlamb=True, weight_decay=0.0)),
    ("lamb", dict(min_trust_ratio=0.5, max_trust_ratio=2.0)), ("lamb", dict(adam_w_mode=False)),
    ("lars", {}), ("lars", dict(clip=True)), ("lars", dict(weight_decay=0.0)),
    ("adam", {}), ("lion", {}), ("sgd", {})],
    ids=lambda v: v if isinstance(v, str) else _case_id(v))
def test_zero_params_and_zero_grads(backend, name, options):
    """A param that is all zeros (||p|| = 0) and a param whose grad is all zeros (||g|| = 0,
    and for LAMB ||u|| = 0 without weight decay): the trust ratios fall back to 1."""
    Reference = reference_cls()
    dev = backend.device
    gen = torch.Generator().manual_seed(14)
    values = [torch.zeros(5), torch.randn(7, generator=gen), torch.randn(4, 3, generator=gen),
              torch.zeros(0)]
    params = [v.to(dev) for v in values]
    kw = {**TEST_KW[name], **options}
    opt = FUSED[name](params, **kw)
    ref = Reference(name, [p.cpu() for p in params], **kw)
    for step in range(4):
        grads = [torch.randn(5, generator=gen).to(dev) if step % 2 else torch.zeros(5, device=dev),
                 torch.zeros(7, device=dev),
                 torch.randn(4, 3, generator=gen).to(dev), torch.zeros(0, device=dev)]
        for p, g in zip(params, grads):
            p.grad = g
        opt.step()
        ref.step([g.cpu() for g in grads])
        compare_with_reference(opt, ref, params, step)
