"""fusedopt.apex.LARC beyond tests/test_apex.py: both inner optimizers (torch.optim.SGD and
fusedopt.FusedSGD), clip and scale modes against the float64 LARS reference, and a state_dict
round trip through the wrapper."""
import pytest
import torch

import fusedopt
import fusedopt.apex as fapex
from support import (assert_snapshots_equal, check_larc_against_reference, dense_plan, make_grads,
                     make_params, reference_cls, run_steps, snapshot)

F32 = torch.float32


def _params(device, seed, shapes):
    return make_params(shapes, F32, device, torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("inner", ["torch.optim.SGD", "fusedopt.FusedSGD"])
@pytest.mark.parametrize("clip", [True, False], ids=["clip", "scale"])
def test_larc_matches_reference_lars(backend, inner, clip):
    Reference = reference_cls()
    shapes = [(0,), (1,), (7,), (5, 9), (33,), (3, 4, 5)]  # no zero-norm params (see below)
    params = _params(backend.device, 86, shapes)
    sgd_kw = dict(lr=0.1, momentum=0.9, weight_decay=0.01)
    base = torch.optim.SGD(params, foreach=False, **sgd_kw) if inner == "torch.optim.SGD" \
        else fusedopt.FusedSGD(params, **sgd_kw)
    opt = fapex.LARC(base, trust_coefficient=0.02, clip=clip)
    ref = Reference("lars", [p.cpu() for p in params], trust_coefficient=0.02, clip=clip,
                    **sgd_kw)
    gen = torch.Generator().manual_seed(0)
    check_larc_against_reference(opt, params, ref,
                                 lambda step: make_grads(params, step, gen, dense_plan),
                                 sgd_kw["weight_decay"])


def test_larc_state_dict_round_trip(backend):
    params = _params(backend.device, 87, [(), (7,), (5, 9), (33,)])
    opt = fapex.LARC(fusedopt.FusedSGD(params, lr=0.1, momentum=0.9), trust_coefficient=0.02)
    run_steps(opt, params, 3, torch.Generator().manual_seed(0))
    params2 = [p.clone() for p in params]
    opt2 = fapex.LARC(fusedopt.FusedSGD(params2, lr=0.1, momentum=0.9), trust_coefficient=0.02)
    opt2.load_state_dict(opt.state_dict())
    for o, ps in ((opt, params), (opt2, params2)):
        run_steps(o, ps, 3, torch.Generator().manual_seed(1), start=3)
    assert_snapshots_equal(snapshot(opt, params), snapshot(opt2, params2), "LARC resume")
