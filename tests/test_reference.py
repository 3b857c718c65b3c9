"""The specification checked against independent implementations: fusedopt.reference in float64
agrees with torch.optim (Adam, AdamW, SGD) run in float64, and with small hand-computed cases
for Lion, LAMB and LARS. Every other test trusts the reference, so it gets its own tests."""
import math

import pytest
import torch

from support import STANDARD_SHAPES, make_grads, make_params, reference_cls, standard_plan

F64 = torch.float64


def _params64(seed=101):
    return make_params(STANDARD_SHAPES, F64, "cpu", torch.Generator().manual_seed(seed))


CASES = [
    ("adam", torch.optim.Adam, dict(lr=1e-2, weight_decay=0.1)),
    ("adam", torch.optim.Adam, dict(lr=1e-2, amsgrad=True, maximize=True, betas=(0.8, 0.99))),
    ("adamw", torch.optim.AdamW, dict(lr=1e-2, weight_decay=0.1, eps=1e-3)),
    ("sgd", torch.optim.SGD, dict(lr=0.05, momentum=0.9, weight_decay=0.01)),
    ("sgd", torch.optim.SGD, dict(lr=0.05, momentum=0.9, nesterov=True, maximize=True)),
    ("sgd", torch.optim.SGD, dict(lr=0.05, momentum=0.5, dampening=0.3)),
    ("sgd", torch.optim.SGD, dict(lr=0.05)),
]


@pytest.mark.parametrize("name,torch_cls,kw", CASES,
                         ids=[f"{c.__name__}-{i}" for i, (_, c, _) in enumerate(CASES)])
def test_reference_agrees_with_torch_optim_in_float64(name, torch_cls, kw):
    Reference = reference_cls()
    params = _params64()
    ref = Reference(name, [p.clone() for p in params], **kw)
    topt = torch_cls(params, foreach=False, **kw)
    gen = torch.Generator().manual_seed(0)
    for step in range(8):
        grads = make_grads(params, step, gen, standard_plan)
        for p, g in zip(params, grads):
            p.grad = g
        topt.step()
        ref.step(grads)
        for i, (p, r) in enumerate(zip(params, ref.params())):
            torch.testing.assert_close(r, p.detach(), rtol=1e-12, atol=1e-14,
                                       msg=lambda m: f"param {i} step {step}: {m}")
            st = topt.state.get(p, {})
            for k in ("exp_avg", "exp_avg_sq", "max_exp_avg_sq", "momentum_buffer"):
                if isinstance(st.get(k), torch.Tensor):
                    torch.testing.assert_close(ref.state[i][k], st[k], rtol=1e-12, atol=1e-14)


def test_reference_lion_by_hand():
    Reference = reference_cls()
    ref = Reference("lion", [torch.tensor([1.0, -1.0, 0.5])], lr=0.1, betas=(0.5, 0.75),
                    weight_decay=1.0)
    ref.step([torch.tensor([2.0, 0.0, -4.0])])
    # c = 0.5*0 + 0.5*g = [1, 0, -2]; p = p*(1 - 0.1) - 0.1*sign(c)
    assert ref.params()[0].tolist() == pytest.approx([0.9 - 0.1, -0.9, 0.45 + 0.1], abs=1e-15)
    assert ref.state[0]["exp_avg"].tolist() == [0.5, 0.0, -1.0]  # 0.25*g


def test_reference_lamb_by_hand():
    """One tensor, one step, no clipping, bias correction: m_hat = g, v_hat = g^2, so
    u = g/(|g| + eps) + wd*p and p -= lr * (||p||/||u||) * u."""
    Reference = reference_cls()
    p0 = torch.tensor([3.0, 4.0], dtype=F64)
    g = torch.tensor([1.0, -2.0], dtype=F64)
    lr, wd, eps = 0.1, 0.5, 1e-6
    ref = Reference("lamb", [p0], lr=lr, weight_decay=wd, eps=eps, max_grad_norm=None)
    ref.step([g])
    u = g / (g.abs() + eps) + wd * p0
    ratio = p0.norm() / u.norm()
    torch.testing.assert_close(ref.params()[0], p0 - lr * ratio * u, rtol=1e-14, atol=0.0)
    # with clipping: G = sqrt(5) > 1: g is scaled by 1/G first (m_hat = g/G, v_hat = g^2/G^2)
    ref = Reference("lamb", [p0], lr=lr, weight_decay=wd, eps=eps, max_grad_norm=1.0)
    ref.step([g])
    gc = g / math.sqrt(5.0)
    u = gc / (gc.abs() + eps) + wd * p0
    torch.testing.assert_close(ref.params()[0], p0 - lr * (p0.norm() / u.norm()) * u,
                               rtol=1e-14, atol=0.0)


def test_reference_lars_by_hand():
    Reference = reference_cls()
    p0 = torch.tensor([3.0, 4.0], dtype=F64)  # ||p|| = 5
    g = torch.tensor([0.6, 0.8], dtype=F64)   # ||g|| = 1
    lr, wd, tc, eps = 0.1, 0.2, 0.01, 0.0
    ref = Reference("lars", [p0], lr=lr, momentum=0.0, weight_decay=wd, trust_coefficient=tc,
                    eps=eps)
    ref.step([g])
    ratio = tc * 5.0 / (1.0 + wd * 5.0)
    torch.testing.assert_close(ref.params()[0], p0 - lr * ratio * (g + wd * p0), rtol=1e-14,
                               atol=0.0)
    # clip mode: ratio/lr = 0.025/0.1 < 1 -> local ratio 0.25
    ref = Reference("lars", [p0], lr=lr, momentum=0.0, weight_decay=wd, trust_coefficient=tc,
                    eps=eps, clip=True)
    ref.step([g])
    torch.testing.assert_close(ref.params()[0], p0 - lr * min(ratio / lr, 1.0) * (g + wd * p0),
                               rtol=1e-14, atol=0.0)
    # excluded: plain momentum SGD on the raw gradient (no weight decay)
    ref = Reference("lars", [p0], lr=lr, momentum=0.0, weight_decay=wd, trust_coefficient=tc,
                    eps=eps, exclude_bias_and_norm=True)
    ref.step([g])
    torch.testing.assert_close(ref.params()[0], p0 - lr * g, rtol=1e-14, atol=0.0)


def test_reference_found_inf_and_grad_scale():
    Reference = reference_cls()
    a = Reference("adam", [torch.ones(3)], lr=0.1)
    b = Reference("adam", [torch.ones(3)], lr=0.1)
    g = torch.tensor([1.0, -2.0, 0.5])
    a.step([g])
    b.step([g * 8], grad_scale=torch.tensor(8.0))
    assert torch.equal(a.params()[0], b.params()[0])
    before = a.params()[0].clone()
    a.step([g], found_inf=torch.tensor(1.0))
    assert torch.equal(a.params()[0], before) and a.state[0]["step"] == 1
