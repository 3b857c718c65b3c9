"""fusedopt.apex: apex's names, signatures and defaults on fusedopt's kernels (docs/apex.md)."""
import inspect

import pytest
import torch

import fusedopt
from fusedopt import apex

from support import assert_snapshots_equal, check_larc_against_reference, deepcopy_params, \
    make_params, reference_cls, run_steps, snapshot

SHAPES = ((), (7,), (5, 9), (33,), (3, 4, 5))


def _defaults(cls):
    return {k: v.default for k, v in inspect.signature(cls.__init__).parameters.items()
            if v.default is not inspect.Parameter.empty}


def test_apex_signatures_and_defaults():
    # apex's code defaults (its FusedLAMB docstring says eps=1e-8 / weight_decay=0; the code
    # uses 1e-6 / 0.01) and argument order.
    lamb = _defaults(apex.FusedLAMB)
    assert (lamb["eps"], lamb["weight_decay"], lamb["max_grad_norm"], lamb["adam_w_mode"]) == \
        (1e-6, 0.01, 1.0, True)
    assert list(inspect.signature(apex.FusedLAMB.__init__).parameters)[1:5] == \
        ["params", "lr", "bias_correction", "betas"]
    adam = _defaults(apex.FusedAdam)
    assert adam["adam_w_mode"] is True and adam["set_grad_none"] is True and adam["eps"] == 1e-8
    assert _defaults(fusedopt.FusedAdam)["adam_w_mode"] is False  # torch.optim.Adam semantics
    larc = _defaults(apex.LARC)
    assert (larc["trust_coefficient"], larc["clip"], larc["eps"]) == (0.02, True, 1e-8)
    assert _defaults(apex.FusedSGD)["set_grad_none"] is False


@pytest.mark.parametrize("apex_cls,native_cls,apex_kw,native_kw", [
    (apex.FusedAdam, fusedopt.FusedAdam, dict(lr=1e-2, weight_decay=0.1),
     dict(lr=1e-2, weight_decay=0.1, adam_w_mode=True)),
    (apex.FusedLAMB, fusedopt.FusedLAMB, dict(lr=1e-2, max_grad_norm=0.5),
     dict(lr=1e-2, eps=1e-6, weight_decay=0.01, max_grad_norm=0.5)),
    (apex.FusedSGD, fusedopt.FusedSGD, dict(lr=0.1, momentum=0.9, nesterov=True),
     dict(lr=0.1, momentum=0.9, nesterov=True)),
])
def test_apex_class_equals_native_with_mapped_options(backend, apex_cls, native_cls, apex_kw,
                                                      native_kw):
    gen = torch.Generator().manual_seed(3)
    params = make_params(SHAPES, torch.float32, backend.device, gen)
    twins = deepcopy_params(params)
    run_steps(apex_cls(params, **apex_kw), params, 5, torch.Generator().manual_seed(4))
    run_steps(native_cls(twins, **native_kw), twins, 5, torch.Generator().manual_seed(4))
    for a, b in zip(params, twins):
        assert torch.equal(a, b)


def test_mixed_precision_lamb_keeps_fp32_masters_and_initial_step(backend):
    gen = torch.Generator().manual_seed(5)
    params = make_params(SHAPES, torch.bfloat16, backend.device, gen)
    twins = deepcopy_params(params)
    opt = apex.FusedMixedPrecisionLamb(params, lr=1e-2, step=10,
                                       reduced_precision_dtype=torch.bfloat16)
    native = fusedopt.FusedLAMB(twins, lr=1e-2, master_weights=True)
    run_steps(opt, params, 1, torch.Generator().manual_seed(6))
    for p in params:
        assert opt.state[p]["master_param"].dtype == torch.float32
        assert float(opt.state[p]["step"]) == 11.0
    # Same math as the native optimizer once the step counts agree.
    run_steps(native, twins, 1, torch.Generator().manual_seed(6))
    for p in twins:
        native.state[p]["step"].fill_(11.0)
    for a, b in zip(params, twins):
        b.data.copy_(a)
        native.state[b]["master_param"].copy_(opt.state[a]["master_param"])
        for k in ("exp_avg", "exp_avg_sq"):
            native.state[b][k].copy_(opt.state[a][k])
    run_steps(opt, params, 3, torch.Generator().manual_seed(7), start=1)
    run_steps(native, twins, 3, torch.Generator().manual_seed(7), start=1)
    assert_snapshots_equal(snapshot(opt, params), snapshot(native, twins), "mixed-precision LAMB")


def test_mixed_precision_lamb_rejects_other_reduced_dtype():
    with pytest.raises(TypeError, match="reduced_precision_dtype"):
        apex.FusedMixedPrecisionLamb([torch.zeros(3, dtype=torch.float16, requires_grad=True)],
                                     reduced_precision_dtype=torch.bfloat16)


def test_apex_only_arguments():
    p = [torch.zeros(3, requires_grad=True)]
    with pytest.raises(RuntimeError, match="AMSGrad"):
        apex.FusedLAMB(p, amsgrad=True)
    with pytest.raises(ValueError, match="wd_after_momentum"):
        apex.FusedSGD(p, lr=0.1, wd_after_momentum=True)
    with pytest.raises(TypeError, match="lr is required"):
        apex.FusedSGD(p)
    apex.FusedAdam(p, amsgrad=True, capturable=True)  # supported / accepted


@pytest.mark.parametrize("cls,kw,expect_none", [
    (apex.FusedAdam, dict(), True), (apex.FusedAdam, dict(set_grad_none=False), False),
    (apex.FusedSGD, dict(lr=0.1), False)])
def test_set_grad_none_decides_zero_grad(cls, kw, expect_none):
    p = torch.ones(3, requires_grad=True)
    opt = cls([p], **kw)
    p.grad = torch.ones(3)
    opt.zero_grad()
    assert (p.grad is None) == expect_none
    if not expect_none:
        assert torch.equal(p.grad, torch.zeros(3))


def test_apex_checkpoint_per_group_step_resumes_bias_correction():
    p = torch.randn(4, requires_grad=True)
    opt = apex.FusedAdam([p], lr=1e-2)
    saved = {"state": {0: {"exp_avg": torch.full((4,), 0.1), "exp_avg_sq": torch.full((4,), 0.2)}},
             "param_groups": [dict(opt.param_groups[0], params=[0], step=7)]}
    opt.load_state_dict(saved)
    assert float(opt.state[p]["step"]) == 7.0
    assert "step" not in opt.param_groups[0]
    p.grad = torch.ones(4)
    opt.step()
    assert float(opt.state[p]["step"]) == 8.0


def test_larc_matches_lars_reference_and_leaves_grads_alone(backend):
    """LARC(SGD) in clip mode = LARS with apex's ratio (reference 'lars', clip=True), as long
    as no norm is zero; p.grad and the group's weight_decay are restored afterwards."""
    Reference = reference_cls()
    gen = torch.Generator().manual_seed(8)
    params = make_params(((5, 9), (33,), (3, 4, 5)), torch.float32, backend.device, gen)
    wd, lr = 1e-3, 0.1
    opt = apex.LARC(torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=wd))
    ref = Reference("lars", [p.detach().cpu() for p in params], lr=lr, momentum=0.9,
                    weight_decay=wd, trust_coefficient=0.02, clip=True, eps=1e-8)
    check_larc_against_reference(
        opt, params, ref,
        lambda step: [torch.randn(p.shape, generator=gen).to(backend.device) for p in params], wd)


def test_larc_zero_grad_gets_no_weight_decay_as_in_apex():
    p = torch.ones(4, requires_grad=True)
    opt = apex.LARC(torch.optim.SGD([p], lr=0.1, weight_decay=0.5))
    p.grad = torch.zeros(4)
    opt.step()
    assert torch.equal(p.detach(), torch.ones(4))  # apex: zero grad norm -> untouched
