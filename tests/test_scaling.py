"""Checklist item 5: found_inf makes a step a bitwise no-op; grad_scale unscales in the kernel
(bitwise equal to the unscaled run for powers of two); torch.amp.GradScaler end to end."""
import pytest
import torch

from support import (FUSED, NAMES, STANDARD_SHAPES, TEST_KW, assert_skipped_step,
                     assert_snapshots_equal, bits, dense_plan, fused_state, make_grads, make_params, run_steps,
                     run_vs_reference, snapshot, standard_plan)

DTYPES = [torch.float32, torch.bfloat16, torch.float16, torch.float64]
DTYPE_IDS = ["fp32", "bf16", "fp16", "fp64"]


def _params(device, dtype, seed=31):
    return make_params(STANDARD_SHAPES, dtype, device, torch.Generator().manual_seed(seed))


def _set_scaler_attrs(opt, device, grad_scale=None, found_inf=None):
    if grad_scale is not None:
        opt.grad_scale = torch.tensor(float(grad_scale), device=device)
    if found_inf is not None:
        opt.found_inf = torch.tensor(float(found_inf), device=device)


def _clear_scaler_attrs(opt):
    for attr in ("grad_scale", "found_inf"):
        if hasattr(opt, attr):
            delattr(opt, attr)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("with_scale", [False, True], ids=["found_inf", "found_inf+grad_scale"])
def test_found_inf_step_is_a_bitwise_no_op(backend, name, dtype, with_scale):
    master = dtype in (torch.float16, torch.bfloat16)
    params = _params(backend.device, dtype)
    opt = FUSED[name](params, master_weights=master, **TEST_KW[name])
    gen = torch.Generator().manual_seed(0)
    # param 2 has no grad in the first steps: its state does not exist yet
    run_steps(opt, params, 2, gen, plan=standard_plan)
    assert not fused_state(opt, params[2])
    before = snapshot(opt, params)
    grads = make_grads(params, 2, gen, dense_plan)
    for p, g in zip(params, grads):
        if g is not None and g.numel() > 0:
            g.view(-1)[0] = float("inf")  # what made the scaler report found_inf
        p.grad = g
    _set_scaler_attrs(opt, backend.device, 1024.0 if with_scale else None, 1.0)
    opt.step()
    _clear_scaler_attrs(opt)
    after = snapshot(opt, params)
    # Params with state: everything bitwise unchanged, step counts included.
    for i in (0, 1, 3, 4, 5, 6):
        assert_snapshots_equal([before[i]], [after[i]], f"{name} param {i} after found_inf")
        assert torch.equal(bits(before[i][0]), bits(params[i]))
    # A param whose state would have been created by this step: no state, or a pristine one.
    assert_skipped_step([before[2]], [after[2]], f"{name} param 2")


@pytest.mark.parametrize("name", NAMES)
def test_found_inf_zero_steps_normally(backend, name):
    """found_inf = 0 and grad_scale = 1 must not change anything (vs reference)."""
    run_vs_reference(name, _params(backend.device, torch.float32),
                     amp=lambda step: (1.0, 0.0), **TEST_KW[name])


@pytest.mark.parametrize("name", NAMES)
def test_skipped_steps_then_training_matches_reference(backend, name):
    """Steps 0, 1 and 4 overflow (found_inf = 1), as in the first steps of GradScaler training;
    the other steps are scaled by varying powers of two."""
    def amp(step):
        return (2.0 ** (10 - step), 1.0 if step in (0, 1, 4) else 0.0)

    opt, _ = run_vs_reference(name, _params(backend.device, torch.float32), amp=amp,
                              **TEST_KW[name])


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_power_of_two_grad_scale_is_bitwise_invisible(backend, name, dtype):
    master = dtype in (torch.float16, torch.bfloat16)
    runs = []
    for S in (None, 2.0 ** 7, 2.0 ** -3):
        params = _params(backend.device, dtype, seed=32)
        opt = FUSED[name](params, master_weights=master, **TEST_KW[name])
        gen = torch.Generator().manual_seed(1)
        for step in range(6):
            grads = make_grads(params, step, gen, standard_plan)
            for p, g in zip(params, grads):
                p.grad = None if g is None else (g if S is None else g * S)
            _set_scaler_attrs(opt, backend.device, S, 0.0 if S is not None else None)
            opt.step()
            _clear_scaler_attrs(opt)
        runs.append(snapshot(opt, params))
    assert_snapshots_equal(runs[0], runs[1], f"{name}: grad_scale 2^7 vs unscaled")
    assert_snapshots_equal(runs[0], runs[2], f"{name}: grad_scale 2^-3 vs unscaled")


@pytest.mark.parametrize("name", NAMES)
def test_non_power_of_two_grad_scale_matches_reference(backend, name):
    run_vs_reference(name, _params(backend.device, torch.float32, seed=33),
                     amp=lambda step: (3.0 + step, 0.0), **TEST_KW[name])


@pytest.mark.parametrize("name", NAMES)
def test_grad_scale_does_not_leak_into_later_unscaled_steps(backend, name):
    """The attributes are removed after a scaler step; the next plain step uses raw grads."""
    def amp(step):
        return (256.0, 0.0) if step < 3 else (None, None)

    run_vs_reference(name, _params(backend.device, torch.float32, seed=34), amp=amp,
                     **TEST_KW[name])


# ---- torch.amp.GradScaler end to end ------------------------------------------------------------

def _model(device, seed):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.Tanh(),
                               torch.nn.Linear(16, 3)).to(device)


@pytest.mark.parametrize("name", NAMES)
def test_grad_scaler_end_to_end(backend, name):
    """Training with GradScaler (power-of-two scales, one step with an inf gradient) gives
    bitwise the same params and state as training without scaling that skips the same step."""
    dev = backend.device
    if dev.type == "cpu":
        scaler = torch.amp.GradScaler("cpu", init_scale=2.0 ** 12, growth_interval=2)
    else:
        scaler = torch.amp.GradScaler(dev.type, init_scale=2.0 ** 12, growth_interval=2)
    m_scaled, m_plain = _model(dev, 5), _model(dev, 5)
    opt_s = FUSED[name](m_scaled.parameters(), **TEST_KW[name])
    opt_p = FUSED[name](m_plain.parameters(), **TEST_KW[name])
    gen = torch.Generator().manual_seed(0)
    inf_step = 3
    scales = []
    for step in range(7):
        x = torch.randn(8, 6, generator=gen).to(dev)
        y = torch.randn(8, 3, generator=gen).to(dev)

        opt_s.zero_grad()
        loss = torch.nn.functional.mse_loss(m_scaled(x), y)
        scaler.scale(loss).backward()
        if step == inf_step:
            next(m_scaled.parameters()).grad.view(-1)[3] = float("inf")
            before = snapshot(opt_s, list(m_scaled.parameters()))
        scales.append(float(scaler.get_scale()))
        scaler.step(opt_s)
        scaler.update()
        assert not hasattr(opt_s, "grad_scale") and not hasattr(opt_s, "found_inf")
        if step == inf_step:
            assert_snapshots_equal(before, snapshot(opt_s, list(m_scaled.parameters())),
                                   f"{name}: GradScaler step with an inf gradient")
            assert float(scaler.get_scale()) == scales[-1] / 2  # the scaler saw the overflow

        opt_p.zero_grad()
        loss = torch.nn.functional.mse_loss(m_plain(x), y)
        loss.backward()
        if step != inf_step:
            opt_p.step()

        assert_snapshots_equal(snapshot(opt_p, list(m_plain.parameters())),
                               snapshot(opt_s, list(m_scaled.parameters())),
                               f"{name} step {step}: GradScaler vs unscaled")
    assert len(set(scales)) > 1  # the scale actually varied during the run


@pytest.mark.parametrize("name", ["adam", "lamb"])
def test_grad_scaler_with_bf16_autocast_and_master_weights(backend, name):
    """bf16 params with fp32 master weights under GradScaler: every step applied or skipped
    as a whole, params always equal to their master rounded."""
    dev = backend.device
    scaler = torch.amp.GradScaler(dev.type, init_scale=2.0 ** 8)
    model = _model(dev, 7).to(torch.bfloat16)
    opt = FUSED[name](model.parameters(), master_weights=True, **TEST_KW[name])
    gen = torch.Generator().manual_seed(0)
    for step in range(5):
        x = torch.randn(8, 6, generator=gen).to(dev, torch.bfloat16)
        opt.zero_grad()
        loss = model(x).float().pow(2).mean()
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        for p in model.parameters():
            st = opt.state[p]
            assert st["master_param"].dtype == torch.float32
            assert torch.equal(p, st["master_param"].to(torch.bfloat16))
            assert float(st["step"]) == step + 1


@pytest.mark.parametrize("name", ["adam", "lamb", "sgd"])
def test_grad_scaler_real_fp16_overflow(backend, name):
    """fp16 model, fp32 master weights, a scale so large that the fp16 gradients really overflow:
    every overflowing step is skipped bitwise (scale backs off), the others are applied."""
    dev = backend.device
    scaler = torch.amp.GradScaler(dev.type, init_scale=2.0 ** 24, backoff_factor=0.125,
                                  growth_interval=1000)
    model = _model(dev, 9).to(torch.float16)
    params = list(model.parameters())
    opt = FUSED[name](params, master_weights=True, **TEST_KW[name])
    gen = torch.Generator().manual_seed(0)
    skipped = applied = 0
    for step in range(8):
        x = torch.randn(8, 6, generator=gen).to(dev, torch.float16)
        opt.zero_grad()
        loss = model(x).float().pow(2).mean() * 100
        scaler.scale(loss).backward()
        overflow = any(not bool(torch.isfinite(p.grad).all()) for p in params)
        before = snapshot(opt, params)
        scale = float(scaler.get_scale())
        scaler.step(opt)
        scaler.update()
        if overflow:
            skipped += 1
            assert float(scaler.get_scale()) == scale * 0.125
            assert_skipped_step(before, snapshot(opt, params), f"{name} step {step}")
        else:
            applied += 1
            assert float(scaler.get_scale()) == scale
            for p in params:
                st = opt.state[p]
                assert torch.equal(p, st["master_param"].to(torch.float16))
                assert bool(torch.isfinite(st["master_param"]).all())
    assert skipped >= 1 and applied >= 1
    assert all(float(opt.state[p]["step"]) == applied for p in params)
