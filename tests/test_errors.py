"""Checklist item 10: bad input gets a clear error naming the parameter (or op argument) and the
fix; NaN/Inf gradients without a scaler propagate (documented, as torch.optim)."""
import pytest
import torch

import fusedopt
from support import FUSED, NAMES, TEST_KW, RoutedOps, snapshot, assert_snapshots_equal

ops = RoutedOps()  # the op library of the backend in use


def _raises(exc, fn, *substrings):
    with pytest.raises(exc) as info:
        fn()
    msg = str(info.value)
    for s in substrings:
        assert s in msg, f"{s!r} not in error message: {msg}"
    return msg


# ---- optimizer level ---------------------------------------------------------------------------

@pytest.mark.parametrize("name", NAMES)
def test_sparse_grad(backend, name):
    dev = backend.device
    a, b = torch.zeros(3, device=dev), torch.zeros(4, 5, device=dev)
    opt = FUSED[name]([dict(params=[a]), dict(params=[torch.zeros(2, device=dev), b])],
                      **TEST_KW[name])
    a.grad = torch.ones(3, device=dev)
    b.grad = torch.zeros(4, 5, device=dev).to_sparse()
    _raises(RuntimeError, opt.step, "param 1 of param group 1", "sparse", "dense")


@pytest.mark.parametrize("name", NAMES)
def test_complex_param(backend, name):
    dev = backend.device
    params = [torch.zeros(2, device=dev), torch.zeros(3, dtype=torch.complex64, device=dev)]
    _raises(TypeError, lambda: FUSED[name](params, **TEST_KW[name]),
            "param 1 of param group 0", "complex", "view_as_real")


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dtype", [torch.int64, torch.int32, torch.uint8, torch.bool])
def test_integer_param(backend, name, dtype):
    dev = backend.device
    _raises(TypeError, lambda: FUSED[name]([torch.zeros(2, device=dev, dtype=dtype)],
                                           **TEST_KW[name]),
            "param 0 of param group 0", str(dtype), "float32")


def test_bad_param_in_added_group(backend):
    opt = FUSED["adam"]([torch.zeros(2, device=backend.device)])
    _raises(TypeError, lambda: opt.add_param_group(
        dict(params=[torch.zeros(2, dtype=torch.int32, device=backend.device)])),
        "param 0 of param group 1")


def _grad_dtype_mismatch(dev):
    a, b, c = (torch.zeros(3, device=dev) for _ in range(3))
    c.grad_dtype = None  # let autograd-free code assign a float64 grad to a float32 param
    b.grad = torch.ones(3, device=dev)
    c.grad = torch.ones(3, dtype=torch.float64, device=dev)
    return [a, b, c]  # a has no grad: c is the second tensor of its bucket


def _grad_shape_mismatch(dev):
    a, b, c = torch.zeros(3, device=dev), torch.zeros(3, device=dev), torch.zeros(3, 4, device=dev)
    b.grad = torch.ones(3, device=dev)
    c.grad = torch.ones(3, 4, device=dev)
    c.data = torch.zeros(4, 3, device=dev)  # the param was reshaped after its grad was set
    return [a, b, c]


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("case,what", [(_grad_dtype_mismatch, "dtype"),
                                       (_grad_shape_mismatch, "shape")], ids=["dtype", "shape"])
def test_mismatched_grad_names_the_param(backend, name, case, what):
    """The error must identify the param the user knows (param 2 of param group 0), not its
    index inside an internal per-dtype bucket."""
    params = case(backend.device)
    opt = FUSED[name](params, **TEST_KW[name])
    _raises(RuntimeError, opt.step, what, "param 2 of param group 0")


@pytest.mark.parametrize("name", NAMES)
def test_failed_step_changes_nothing(backend, name):
    """A step that raises on bad input must not have applied part of the update (here: the
    first param group would be stepped before the bad grad of the second one is seen)."""
    dev = backend.device
    good = [torch.randn(5, generator=torch.Generator().manual_seed(0)).to(dev),
            torch.randn(4, 3, generator=torch.Generator().manual_seed(1)).to(dev)]
    bad = torch.zeros(3, device=dev)
    opt = FUSED[name]([dict(params=good), dict(params=[bad])], **TEST_KW[name])
    for p in good:
        p.grad = torch.ones_like(p)
    opt.step()
    before = snapshot(opt, good)
    bad.grad_dtype = None
    bad.grad = torch.ones(3, dtype=torch.float64, device=dev)
    with pytest.raises(RuntimeError):
        opt.step()
    assert_snapshots_equal(before, snapshot(opt, good), f"{name}: params after a failed step")


@pytest.mark.parametrize("name,kw,substr", [
    ("adam", dict(lr=-1.0), "lr"),
    ("adam", dict(betas=(1.0, 0.9)), "betas"),
    ("adam", dict(eps=-1e-8), "eps"),
    ("adamw", dict(weight_decay=-0.1), "weight_decay"),
    ("lamb", dict(max_grad_norm=-1.0), "max_grad_norm"),
    ("lamb", dict(min_trust_ratio=2.0, max_trust_ratio=1.0), "max_trust_ratio"),
    ("lars", dict(trust_coefficient=-1.0), "trust_coefficient"),
    ("lars", dict(nesterov=True, momentum=0.0), "Nesterov"),
    ("sgd", dict(nesterov=True), "Nesterov"),
    ("sgd", dict(momentum=-0.5), "momentum"),
    ("lion", dict(betas=(0.9, -0.1)), "betas"),
])
def test_invalid_hyperparameters(backend, name, kw, substr):
    _raises(ValueError, lambda: FUSED[name]([torch.zeros(2, device=backend.device)], **kw),
            substr)


# ---- NaN / Inf gradients without a scaler: documented propagation ------------------------------

@pytest.mark.parametrize("name", ["adam", "adamw", "sgd", "lion"])
@pytest.mark.parametrize("bad", [float("nan"), float("inf")], ids=["nan", "inf"])
def test_nonfinite_grad_propagates_elementwise(backend, name, bad):
    """Element-wise optimizers: the bad element's param becomes non-finite (Lion: sign(inf) is
    finite, so only NaN propagates into its param); no other element is affected, no error."""
    dev = backend.device
    p = torch.randn(40, generator=torch.Generator().manual_seed(0)).to(dev)
    q = p.clone()
    kw = {**TEST_KW[name], "momentum": 0.9} if name == "sgd" else TEST_KW[name]
    o1, o2 = FUSED[name]([p], **kw), FUSED[name]([q], **kw)
    g = torch.randn(40, generator=torch.Generator().manual_seed(1)).to(dev)
    p.grad, q.grad = g.clone(), g.clone()
    p.grad[7] = bad
    o1.step()
    o2.step()
    others = torch.arange(40, device=dev) != 7
    assert torch.equal(p[others], q[others])
    if name == "lion" and bad == float("inf"):
        assert torch.isfinite(p[7])
        assert not torch.isfinite(o1.state[p]["exp_avg"][7])
    else:
        assert not torch.isfinite(p[7])
    st = o1.state[p]
    key = "momentum_buffer" if name == "sgd" else "exp_avg"
    assert not torch.isfinite(st[key][7])
    assert bool(torch.isfinite(st[key][others]).all())


@pytest.mark.parametrize("name", ["lamb", "lars"])
def test_nonfinite_grad_propagates_through_norms(backend, name):
    """LAMB/LARS: a NaN grad poisons the norms; the step runs and the result is NaN (as the
    float64 reference computes), never an error and never a silently finite update."""
    from fusedopt.reference import Reference
    dev = backend.device
    p = torch.randn(40, generator=torch.Generator().manual_seed(0)).to(dev)
    opt = FUSED[name]([p], **TEST_KW[name])
    ref = Reference(name, [p.cpu()], **TEST_KW[name])
    g = torch.randn(40, generator=torch.Generator().manual_seed(1)).to(dev)
    g[7] = float("nan")
    p.grad = g
    opt.step()
    ref.step([g.cpu()])
    expected_nan = ref.params()[0].isnan()
    assert bool(expected_nan[7])
    assert torch.equal(p.isnan().cpu(), expected_nan)


# ---- direct op calls -----------------------------------------------------------------------

def _f(n=3, dtype=torch.float32, dev="cpu"):
    return torch.zeros(n, dtype=dtype, device=dev)


def _step(dev="cpu"):
    return torch.zeros((), device=dev)


def _sgd(params, grads, bufs, masters, steps, lr_tensor=None, momentum=0.9, grad_scale=None,
         found_inf=None):
    return lambda: ops.sgd_(params=params, grads=grads, momentum_buffers=bufs,
                            master_params=masters, steps=steps, lr=0.1, lr_tensor=lr_tensor,
                            momentum=momentum, grad_scale=grad_scale, found_inf=found_inf)


def _adam(params, grads, m, v, steps):
    return lambda: ops.adam_(params=params, grads=grads, exp_avgs=m, exp_avg_sqs=v,
                             max_exp_avg_sqs=[], master_params=[], steps=steps, lr=0.1)


def test_op_mismatched_list_lengths(backend):
    d = backend.device
    _raises(RuntimeError, _sgd([_f(dev=d)], [_f(dev=d), _f(dev=d)], [_f(dev=d)], [], [_step(d)]),
            "fusedopt.sgd_", "1 params but 2 grads")
    _raises(RuntimeError, _sgd([_f(dev=d)], [_f(dev=d)], [], [], [_step(d)]),
            "0 momentum_buffers")
    _raises(RuntimeError, _sgd([_f(dev=d)], [_f(dev=d)], [_f(dev=d)], [], []), "0 steps")
    _raises(RuntimeError, _adam([_f(dev=d)] * 2, [_f(dev=d)] * 2, [_f(dev=d)] * 2, [_f(dev=d)],
                                [_step(d)] * 2), "exp_avg_sqs")


def test_op_wrong_state_dtype_and_shape(backend):
    d = backend.device
    _raises(RuntimeError, _adam([_f(dev=d)], [_f(dev=d)], [_f(dtype=torch.float16, dev=d)],
                                [_f(dev=d)], [_step(d)]),
            "exp_avgs[0]", "torch.float16", "float32")
    bf = [_f(dtype=torch.bfloat16, dev=d)]
    _raises(RuntimeError, _adam(bf, [_f(dtype=torch.bfloat16, dev=d)], [_f(dtype=torch.bfloat16,
                                                                             dev=d)],
                                [_f(dev=d)], [_step(d)]), "exp_avgs[0]", "torch.bfloat16")
    _raises(RuntimeError, _adam([_f(dev=d)], [_f(dev=d)], [_f(4, dev=d)], [_f(dev=d)], [_step(d)]),
            "exp_avgs[0]", "shape")


def test_op_wrong_step_master_and_scalar_tensors(backend):
    d = backend.device
    p, g, b = [_f(dev=d)], [_f(dev=d)], [_f(dev=d)]
    _raises(RuntimeError, _sgd(p, g, b, [], [torch.zeros((), dtype=torch.int32, device=d)]),
            "steps[0]", "float32")
    _raises(RuntimeError, _sgd(p, g, b, [_f(dev=d)], [_step(d)]),
            "master_params", "float16/bfloat16")
    bf = [_f(dtype=torch.bfloat16, dev=d)]
    _raises(RuntimeError, _sgd(bf, [_f(dtype=torch.bfloat16, dev=d)], b,
                               [_f(dtype=torch.bfloat16, dev=d)], [_step(d)]),
            "master_params[0]", "float32")
    _raises(RuntimeError, _sgd(p, g, b, [], [_step(d)],
                               lr_tensor=torch.tensor(0.1, dtype=torch.float64, device=d)),
            "lr_tensor", "float32")
    _raises(RuntimeError, _sgd(p, g, b, [], [_step(d)], grad_scale=torch.ones(2, device=d)),
            "grad_scale", "1-element")
    _raises(RuntimeError, _sgd(p, g, b, [], [_step(d)],
                               found_inf=torch.zeros((), dtype=torch.int64, device=d)),
            "found_inf")


def test_op_bad_tensor_kinds(backend):
    d = backend.device
    step = [_step(d)]
    _raises(RuntimeError, _sgd([_f(dev=d)], [_f(dtype=torch.int32, dev=d)], [_f(dev=d)], [], step),
            "grads[0]", "torch.int32")
    _raises(RuntimeError, _sgd([_f(dtype=torch.complex64, dev=d)], [_f(dtype=torch.complex64,
                                                                        dev=d)],
                               [_f(dev=d)], [], step), "params[0]", "complex", "view_as_real")
    _raises(RuntimeError, _sgd([_f(dev=d)], [_f(dev=d).to_sparse()], [_f(dev=d)], [], step),
            "grads[0]", "sparse", "dense")
    _raises(RuntimeError, _sgd([_f(dev=d), _f(dtype=torch.float64, dev=d)],
                               [_f(dev=d), _f(dtype=torch.float64, dev=d)],
                               [_f(dev=d), _f(dtype=torch.float64, dev=d)], [], step * 2),
            "params[1]", "dtype", "call once per dtype")
    _raises(RuntimeError, _sgd([_f(dev=d)], [_f(4, dev=d)], [_f(dev=d)], [], step),
            "grads[0]", "shape")


def test_op_lamb_requires_norm_when_clipping(backend):
    d = backend.device
    def lamb(max_grad_norm, min_ratio, max_ratio):
        return lambda: ops.lamb_(params=[_f(dev=d)], grads=[_f(dev=d)], exp_avgs=[_f(dev=d)],
                                 exp_avg_sqs=[_f(dev=d)], master_params=[], steps=[_step(d)],
                                 lr=0.1, weight_decay=0.0, max_grad_norm=max_grad_norm,
                                 min_trust_ratio=min_ratio, max_trust_ratio=max_ratio)

    _raises(RuntimeError, lamb(1.0, 0.0, 0.0), "global_grad_norm", "global_l2_norm")
    _raises(RuntimeError, lamb(0.0, 2.0, 1.0), "min_trust_ratio", "max_trust_ratio")


def test_op_norms_bad_input(backend):
    d = backend.device
    _raises(RuntimeError, lambda: ops.l2_norms([_f(dev=d), _f(dtype=torch.float64, dev=d)], None),
            "tensors[1]", "call once per dtype")
    _raises(RuntimeError, lambda: ops.global_l2_norm([_f(dtype=torch.int64, dev=d)], None),
            "tensors[0]")


def test_set_backend_unknown():
    _raises(ValueError, lambda: fusedopt.set_backend("tpu"), "tpu", "available")


def test_op_errors_report_the_list_position_as_data(backend):
    """The op records which list position a failed check was about (op _last_error_index):
    optimizers name the user's param from it, not from the message text."""
    d = backend.device
    ps = [_f(dev=d), _f(dev=d), _f(dev=d)]
    gs = [_f(dev=d), _f(4, dev=d), _f(dev=d)]  # grads[1] has the wrong shape
    with pytest.raises(RuntimeError, match=r"grads\[1\]"):
        _sgd(ps, gs, [_f(dev=d)] * 3, [], [_step(d)] * 3)()
    assert ops._last_error_index() == 1
    with pytest.raises(RuntimeError, match="3 params but 2 grads"):  # about no single position
        _sgd(ps, gs[:2], [_f(dev=d)] * 3, [], [_step(d)] * 3)()
    assert ops._last_error_index() == -1

