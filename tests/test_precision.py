"""Checklist item 2: fp32 / fp16 / bf16 / fp64 params, fp32 math and fp32 state for the
low-precision ones, fp32 master weights (the param is the master rounded, bitwise)."""
import pytest
import torch

from support import (FUSED, NAMES, STANDARD_SHAPES, TEST_KW, make_params, run_steps,
                     run_vs_reference, standard_plan)

LOWP = [torch.float16, torch.bfloat16]

# Larger steps for Lion at low precision: lr=1e-3 is below half an ulp of bf16 near 1, so
# without master weights nothing would ever move and the param comparison would be vacuous.
# Betas exact in fp32 for Lion: with coarse bf16/fp16 grads, c = b1*m + (1-b1)*g is sometimes
# exactly 0 in exact arithmetic (sign 0), which fp32-rounded 0.9/0.1 would turn into +-1.
PRECISION_KW = {**TEST_KW, "lion": dict(lr=2e-2, weight_decay=0.1, betas=(0.875, 0.984375))}


# Hyper-parameters exactly representable in float32: an implementation that passes them to a
# float64 kernel through float32 loses nothing, so the float64 result must match the float64
# reference to ~1e-9.
EXACT_KW = {
    "adam": dict(lr=2.0 ** -7, betas=(0.875, 1 - 2.0 ** -10), eps=2.0 ** -20,
                 weight_decay=0.125),
    "adamw": dict(lr=2.0 ** -7, betas=(0.875, 1 - 2.0 ** -10), eps=2.0 ** -20,
                  weight_decay=0.125),
    "lamb": dict(lr=2.0 ** -7, betas=(0.875, 1 - 2.0 ** -10), eps=2.0 ** -20,
                 weight_decay=0.125),
    "lars": dict(lr=0.125, momentum=0.875, weight_decay=2.0 ** -7, trust_coefficient=2.0 ** -6,
                 eps=2.0 ** -20),
    "lion": dict(lr=2.0 ** -10, betas=(0.875, 0.984375), weight_decay=0.125),
    "sgd": dict(lr=2.0 ** -5, momentum=0.875, weight_decay=2.0 ** -7),
}

# LAMB and LARS scale updates by norms and trust ratios that are float32 by the op contract
# (the norm ops return float32), so float64 params get float32-level accuracy (relative to the
# tensor magnitude) there.
F64_SLACK = {"lamb": 1e4, "lars": 1e4}



def _params(device, dtype, seed=21, shapes=STANDARD_SHAPES):
    return make_params(shapes, dtype, device, torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dtype", LOWP, ids=["fp16", "bf16"])
@pytest.mark.parametrize("master", [False, True], ids=["no-master", "master"])
def test_low_precision_params(backend, name, dtype, master):
    params = _params(backend.device, dtype)
    opt, _ = run_vs_reference(name, params, master_weights=master, **PRECISION_KW[name])
    for p in params:
        st = opt.state[p]
        for k, v in st.items():
            assert v.dtype == torch.float32, f"{k} of a {dtype} param is {v.dtype}"
        assert ("master_param" in st) == master


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dtype", LOWP, ids=["fp16", "bf16"])
def test_low_precision_params_actually_move(backend, name, dtype):
    """Guards the test above against vacuity: the params change over the run."""
    params = _params(backend.device, dtype, seed=22)
    before = [p.clone() for p in params]
    opt = FUSED[name](params, **PRECISION_KW[name])
    run_steps(opt, params, 6, torch.Generator().manual_seed(0), plan=standard_plan)
    moved = sum(int((p != b).sum()) for p, b in zip(params, before))
    assert moved > sum(p.numel() for p in params) // 2


@pytest.mark.parametrize("name", NAMES)
def test_master_weights_keep_small_updates(backend, name):
    """bf16 params whose per-step update is below half an ulp: without master weights they
    never move; with master weights the fp32 master accumulates the updates."""
    kw = {**TEST_KW[name], "lr": TEST_KW[name]["lr"] * 0.05}
    base = make_params([(64,)], torch.float32, backend.device,
                       torch.Generator().manual_seed(3))[0].abs() + 16.0  # ulp(16) = 0.125
    results = {}
    for master in (False, True):
        p = base.to(torch.bfloat16).clone()
        start = p.clone()
        opt = FUSED[name]([p], master_weights=master, **kw)
        run_steps(opt, [p], 5, torch.Generator().manual_seed(0))
        results[master] = (p, start, opt.state[p])
    p, start, _ = results[False]
    assert torch.equal(p, start)
    p, start, st = results[True]
    assert not torch.equal(st["master_param"], start.float())
    assert torch.equal(p, st["master_param"].to(torch.bfloat16))


@pytest.mark.parametrize("name", NAMES)
def test_master_weights_flag_is_ignored_for_fp32_and_fp64(backend, name):
    params = (_params(backend.device, torch.float32, seed=23)
              + _params(backend.device, torch.float64, seed=24))
    # fp32-representable hyper-parameters: float64 accuracy is tested separately below
    opt, _ = run_vs_reference(name, params, master_weights=True,
                              f64_slack=F64_SLACK.get(name, 1.0), **EXACT_KW[name])
    assert not any("master_param" in opt.state[p] for p in params)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("master", [False, True], ids=["no-master", "master"])
def test_mixed_dtypes_in_one_group(backend, name, master):
    """One group holding fp32, bf16, fp16 and fp64 params (bucketed per dtype internally)."""
    shapes = [(), (7,), (5, 9), (0,), (33,), (3, 4), (16,), (2, 3, 2)]
    dtypes = [torch.float32, torch.bfloat16, torch.float16, torch.float64] * 2
    params = make_params(shapes, dtypes, backend.device, torch.Generator().manual_seed(25))
    kw = {**EXACT_KW[name], "lr": 2.0 ** -6} if name == "lion" else EXACT_KW[name]
    run_vs_reference(name, params, master_weights=master, f64_slack=F64_SLACK.get(name, 1.0),
                     **kw)


# ---- float64 ---------------------------------------------------------------------------------

@pytest.mark.parametrize("name", NAMES)
def test_float64_params_with_fp32_representable_hyperparameters(backend, name):
    params = _params(backend.device, torch.float64, seed=26)
    opt, _ = run_vs_reference(name, params, f64_slack=F64_SLACK.get(name, 1.0), **EXACT_KW[name])
    for p in params:
        for k, v in opt.state[p].items():
            assert v.dtype == (torch.float32 if k == "step" else torch.float64), k


@pytest.mark.parametrize("name", NAMES)
def test_float64_params_are_float64_accurate(backend, name):
    """float64 params with ordinary hyper-parameters (0.9, 0.999, 1e-2, ...) must be computed
    to float64 accuracy, as torch.optim does (tolerance 1e-9 relative; LAMB/LARS: limited by
    their float32 norms as above)."""
    params = _params(backend.device, torch.float64, seed=27)
    run_vs_reference(name, params, f64_slack=F64_SLACK.get(name, 1.0), **TEST_KW[name])


@pytest.mark.parametrize("name", NAMES)
def test_float64_params_with_non_power_of_two_grad_scale(backend, name):
    """Unscaling by S = 3 must keep float64 accuracy (a float32 reciprocal 1/S would not)."""
    params = _params(backend.device, torch.float64, seed=28)
    run_vs_reference(name, params, amp=lambda step: (3.0, 0.0),
                     f64_slack=F64_SLACK.get(name, 1.0), **EXACT_KW[name])
