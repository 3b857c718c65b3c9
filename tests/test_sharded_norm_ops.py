"""The ops behind cross-shard LAMB / LARS (docs/distributed.md): LAMB split into lamb_moments_
(pass 1, returns the local sums of squares) and lamb_apply_ (pass 2 from given sums), LARS with
given sums, and sums_of_squares. Fed the sums of the whole tensors, each must give the bits of
the fused op, on every backend (the CUDA kernels through the emulator); a skipped step changes
nothing and returns zero sums."""
import pytest
import torch

from support import RoutedOps, assert_bitwise_equal, make_params

ops = RoutedOps()  # the op library of the backend in use
F32, BF16, F16, F64 = torch.float32, torch.bfloat16, torch.float16, torch.float64
# Around the CPU chunk (32768) and the CUDA chunk (65536) sizes, empty and 0-d included.
SHAPES = [(), (0,), (1,), (17,), (5, 9), (32769,), (70001,)]


def _problem(device, dtype, master, seed):
    gen = torch.Generator().manual_seed(seed)
    params = make_params(SHAPES, dtype, device, gen, offset=[i % 3 for i in range(len(SHAPES))])
    grads = make_params(SHAPES, dtype, device, gen)
    sd = F64 if dtype == F64 else F32
    states = [[torch.rand(p.shape, generator=gen, dtype=F64).to(device, sd) for p in params]
              for _ in range(2)]
    masters = [p.detach().float() + 1e-3 for p in params] if master else []
    steps = [torch.full((), 3.0, device=device) for _ in params]
    return params, grads, states, masters, steps


def _clone(prob):
    params, grads, states, masters, steps = prob
    c = lambda lst: [t.clone() for t in lst]  # noqa: E731
    return c(params), grads, [c(s) for s in states], c(masters), c(steps)


def _assert_same(a, b, what):
    for la, lb, name in zip((a[0], *a[2], a[3], a[4]), (b[0], *b[2], b[3], b[4]),
                            ("params", "state0", "state1", "masters", "steps")):
        for i, (x, y) in enumerate(zip(la, lb)):
            assert_bitwise_equal(x, y, f"{what}: {name}[{i}]")


DTYPES = [(F32, False), (BF16, True), (F16, False), (F64, False)]
IDS = ["fp32", "bf16-master", "fp16", "fp64"]
LAMB_OPTS = dict(beta1=0.9, beta2=0.999, eps=1e-6, weight_decay=0.01, adam_w_mode=True,
                 bias_correction=True, grad_averaging=True, use_nvlamb=False, trust_clip=False,
                 min_trust_ratio=0.0, max_trust_ratio=0.0)
LARS_OPTS = dict(momentum=0.9, dampening=0.0, weight_decay=0.01, trust_coefficient=0.02,
                 eps=1e-8, clip=False, adapt=True)


def _lamb_lists(p, g, states, ms, st):
    m, v = states
    return dict(params=p, grads=g, exp_avgs=m, exp_avg_sqs=v, master_params=ms, steps=st)


def _lars_lists(p, g, b, ms, st):
    return dict(params=p, grads=g, momentum_buffers=b, master_params=ms, steps=st)


@pytest.mark.parametrize("dtype,master", DTYPES, ids=IDS)
@pytest.mark.parametrize("clip", [False, True], ids=["no-clip", "clip"])
def test_lamb_split_equals_fused(backend, dtype, master, clip):
    prob = _problem(backend.device, dtype, master, 1)
    fused, split = _clone(prob), _clone(prob)
    scale = torch.tensor(2.0, device=backend.device)
    gnorm = ops.global_l2_norm(prob[1], scale) if clip else None
    max_norm = 0.5 if clip else 0.0
    o = dict(LAMB_OPTS, max_grad_norm=max_norm, global_grad_norm=gnorm, grad_scale=scale)
    for step in range(2):
        ops.lamb_(**_lamb_lists(*fused), lr=1e-2, **o)
        sums = ops.lamb_moments_(**_lamb_lists(*split), lr=1e-2, **o)
        assert sums.dtype == F64 and sums.shape == (2 * len(split[0]),)
        ops.lamb_apply_(**_lamb_lists(*split), lr=1e-2, **o, norm_sums=sums)
        _assert_same(fused, split, f"step {step}")
    assert float(split[4][0]) == 5.0


@pytest.mark.parametrize("dtype,master", DTYPES, ids=IDS)
def test_lars_with_given_sums_equals_fused(backend, dtype, master):
    prob = _problem(backend.device, dtype, master, 2)
    fused, given = _clone(prob), _clone(prob)
    scale = torch.tensor(4.0, device=backend.device)
    for step in range(2):
        p, g, (b, _), ms, st = fused
        ops.lars_(**_lars_lists(p, g, b, ms, st), lr=0.1, **LARS_OPTS, nesterov=True,
                  grad_scale=scale)
        p, g, (b, _), ms, st = given
        sums = ops.sums_of_squares(ms if ms else p, g, scale)
        n = len(p)
        interleaved = torch.stack([sums[:n], sums[n:]], dim=1).reshape(-1)
        ops.lars_(**_lars_lists(p, g, b, ms, st), lr=0.1, **LARS_OPTS, nesterov=True,
                  grad_scale=scale, norm_sums=interleaved)
        for x, y in zip(fused[2][0], given[2][0]):
            assert_bitwise_equal(x, y, f"step {step}: momentum")
        for lst_a, lst_b in ((fused[0], given[0]), (fused[3], given[3]), (fused[4], given[4])):
            for x, y in zip(lst_a, lst_b):
                assert_bitwise_equal(x, y, f"step {step}")


def test_sums_of_squares_values(backend):
    gen = torch.Generator().manual_seed(3)
    a = make_params([(5,), (0,), (3, 4)], F32, backend.device, gen)
    b = make_params([(7,), (2, 2)], BF16, backend.device, gen)
    scale = torch.tensor(2.0, device=backend.device)
    out = ops.sums_of_squares(a, b, scale)
    expected = [x.double().square().sum() for x in a] + \
        [(x.double() / 2.0).square().sum() for x in b]
    torch.testing.assert_close(out.cpu(), torch.stack(expected).cpu(), rtol=1e-12, atol=0)


def test_skipped_split_step_changes_nothing(backend):
    prob = _problem(backend.device, F32, False, 4)
    work = _clone(prob)
    found = torch.tensor(1.0, device=backend.device)
    p, g, (m, v), ms, st = work
    o = dict(LAMB_OPTS, max_grad_norm=0.0, found_inf=found)
    sums = ops.lamb_moments_(**_lamb_lists(p, g, (m, v), ms, st), lr=1e-2, **o)
    assert torch.count_nonzero(sums) == 0
    ops.lamb_apply_(**_lamb_lists(p, g, (m, v), ms, st), lr=1e-2, **o,
                    norm_sums=torch.ones(2 * len(p), dtype=F64, device=backend.device))
    b = [x.clone() for x in m]
    ops.lars_(**_lars_lists(p, g, b, ms, st), lr=0.1, **LARS_OPTS, found_inf=found,
              norm_sums=torch.ones(2 * len(p), dtype=F64, device=backend.device))
    _assert_same(prob, work, "skipped")


def test_norm_sums_are_validated(backend):
    p, g, (m, v), ms, st = _problem(backend.device, F32, False, 5)
    with pytest.raises(RuntimeError, match="norm_sums must be a contiguous float64 tensor of 2"):
        ops.lars_(**_lars_lists(p, g, m, ms, st), lr=0.1, **LARS_OPTS,
                  norm_sums=torch.ones(len(p), dtype=F64, device=backend.device))
