"""Tests specific to the CUDA kernels (csrc/cuda).

* cuda-emulated vs cpu: the CUDA kernel sources, run by the SIMT emulator, agree bitwise with the
  CPU backend for the elementwise optimizers (Adam/AdamW/SGD/Lion) and within a stated tolerance
  for LAMB/LARS (norm summation order differs) -- through the public Python API, on lists with
  misaligned, multi-chunk, 0-dim and empty tensors.
* cuda (real GPU; marked gpu, skipped with "no GPU" without one): equals the CPU backend on the
  emulated grid, CUDA-graph capture + replay (tensor lr changed between replays) equals eager
  execution, a step never synchronizes with the host, a step on a side stream equals one on
  the default stream, and a tensor past 2^31 elements is updated everywhere.

The C++ tests in tests/csrc/cuda cover the same ground in more depth (every option x dtype, race
checker under every schedule, traffic budgets, launch counts).
"""
from __future__ import annotations

import pytest
import torch

import fusedopt
from fusedopt import FusedAdam, FusedAdamW, FusedLAMB, FusedLARS, FusedLion, FusedSGD

CHUNK = 65536

OPTIMIZERS = {
    "adam": (FusedAdam, dict(lr=1e-2, weight_decay=0.1, amsgrad=True)),
    "adamw": (FusedAdamW, dict(lr=1e-2, weight_decay=0.1)),
    "sgd": (FusedSGD, dict(lr=0.05, momentum=0.9, weight_decay=0.01, nesterov=True)),
    "lion": (FusedLion, dict(lr=1e-3, weight_decay=0.1)),
    "lamb": (FusedLAMB, dict(lr=1e-2, weight_decay=0.1, max_grad_norm=1.0)),
    "lars": (FusedLARS, dict(lr=0.1, momentum=0.9, weight_decay=0.01, trust_coefficient=0.02)),
}
ELEMENTWISE = ("adam", "adamw", "sgd", "lion")

GRID = [(torch.float32, False), (torch.bfloat16, True), (torch.float16, False),
        (torch.float64, False)]
GRID_IDS = ["fp32", "bf16-master", "fp16", "fp64"]

needs_emulated = pytest.mark.skipif(
    "cuda-emulated" not in fusedopt.available_backends(),
    reason="cuda-emulated backend not built (build with FUSEDOPT_EMULATED=1)")
needs_gpu = pytest.mark.gpu  # skipped with "no GPU" without one (conftest.py)


def make_params(dtype, device="cpu", seed=0):
    """Odd sizes around chunk / vector boundaries, a 0-dim and an empty param, and tensors whose
    storage offset misaligns them for 16-byte vector access."""
    g = torch.Generator().manual_seed(seed)
    shapes = [(CHUNK * 2 + 3,), (5,), (), (0,), (33, 31), (CHUNK + 1,), (1023,)]
    params = []
    for i, shape in enumerate(shapes):
        n = 1
        for s in shape:
            n *= s
        offset = i % 4  # element offset into a larger buffer: misaligned pointers
        base = torch.randn(n + offset, generator=g, dtype=torch.float64)
        params.append(base[offset:].to(dtype).reshape(shape).to(device))
    return params


def run(name, dtype, backend, device="cpu", steps=4, master=False):
    cls, kw = OPTIMIZERS[name]
    params = [p.clone().requires_grad_(True) for p in make_params(dtype, device)]
    extra = dict(master_weights=True) if master else {}
    previous = fusedopt.get_backend()
    fusedopt.set_backend(backend)
    try:
        opt = cls(params, **kw, **extra)
        for step in range(steps):
            g = torch.Generator().manual_seed(100 + step)
            for p in params:
                p.grad = torch.randn(p.shape, generator=g, dtype=torch.float64).to(dtype).to(device)
            opt.step()
    finally:
        fusedopt.set_backend(previous)
    state = []
    for p in params:
        st = opt.state[p]
        state.append({k: v.detach().cpu().clone() for k, v in st.items() if torch.is_tensor(v)})
    return [p.detach().cpu().clone() for p in params], state


def bits(t):
    return t.detach().contiguous().view(-1).view(torch.uint8)


def assert_same(a, b, exact, what, rtol=0.0):
    for i, (x, y) in enumerate(zip(a, b)):
        if exact:
            assert torch.equal(bits(x), bits(y)), f"{what} {i}: not bitwise identical"
        else:
            torch.testing.assert_close(x, y, rtol=rtol, atol=0.0, msg=f"{what} {i}")


@needs_emulated
@pytest.mark.parametrize("name", list(OPTIMIZERS))
@pytest.mark.parametrize("dtype,master", GRID, ids=GRID_IDS)
def test_emulated_kernels_match_cpu_backend(name, dtype, master):
    assert_matches_cpu(name, dtype, run(name, dtype, "cpu", master=master),
                       run(name, dtype, "cuda-emulated", master=master))


def assert_matches_cpu(name, dtype, cpu, other):
    """(params, states) of the CPU backend against those of the CUDA kernels: bitwise for the
    element-wise optimizers; LAMB / LARS sum their per-tensor norms in another order
    (docs/kernels.md): 2 ulp of the storage type at most (in practice identical)."""
    (p_cpu, s_cpu), (p_other, s_other) = cpu, other
    exact = name in ELEMENTWISE
    assert_same(p_cpu, p_other, exact, f"{name} param", rtol=2 * torch.finfo(dtype).eps)
    for i, (a, b) in enumerate(zip(s_cpu, s_other)):
        assert a.keys() == b.keys()
        for k in a:
            if exact or k == "step":
                assert torch.equal(bits(a[k]), bits(b[k])), f"{name} state {i} {k}: not bitwise"
            else:
                torch.testing.assert_close(a[k], b[k], rtol=2 * torch.finfo(a[k].dtype).eps,
                                           atol=0.0)


@needs_emulated
def test_emulated_found_inf_is_a_bitwise_noop():
    params = [p.clone().requires_grad_(True) for p in make_params(torch.float32)]
    fusedopt.set_backend("cuda-emulated")
    try:
        opt = FusedLAMB(params, lr=1e-2)
        for p in params:
            p.grad = torch.ones_like(p)
        opt.step()
        before = [p.detach().clone() for p in params]
        state_before = [{k: v.clone() for k, v in opt.state[p].items()} for p in params]
        opt.grad_scale = torch.tensor(1.0)
        opt.found_inf = torch.tensor(1.0)
        opt.step()
    finally:
        fusedopt.set_backend("cpu")
    for p, b, sb in zip(params, before, state_before):
        assert torch.equal(p.detach(), b)
        for k, v in sb.items():
            assert torch.equal(opt.state[p][k], v), k


def test_build_info_reports_cuda_consistently():
    info = fusedopt.build_info()
    assert ("cuda" in info["backends"]) == info["cuda_compiled"]
    assert info["cuda_available"] == (info["cuda_compiled"] and torch.cuda.is_available())


@needs_gpu
@pytest.mark.parametrize("name", list(OPTIMIZERS))
@pytest.mark.parametrize("dtype,master", GRID, ids=GRID_IDS)
def test_cuda_matches_cpu_backend(name, dtype, master):
    """The real GPU against the CPU backend on the grid the emulated backend covers, with the same
    tolerances: bitwise for the element-wise optimizers, 2 ulp of the storage type for LAMB/LARS
    (their norms are summed in another order)."""
    if not fusedopt.build_info()["cuda_compiled"]:
        pytest.fail("a GPU is present but fusedopt was built without its CUDA backend")
    assert_matches_cpu(name, dtype, run(name, dtype, "cpu", master=master),
                       run(name, dtype, "cpu", device="cuda", master=master))


@needs_gpu
@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_step_on_a_non_default_stream(name):
    """A step issued on a side stream (grads written on the default stream, ordered by
    wait_stream) gives the bits of a step on the default stream."""
    cls, kw = OPTIMIZERS[name]
    grads = [torch.randn_like(p) for p in make_params(torch.float32, "cuda", seed=3)]

    def build():
        params = [p.clone().requires_grad_(True) for p in make_params(torch.float32, "cuda")]
        return params, cls(params, **kw)

    ref_params, ref = build()
    side_params, side_opt = build()
    side = torch.cuda.Stream()
    for _ in range(3):
        for p, q, g in zip(ref_params, side_params, grads):
            p.grad = g.clone()
            q.grad = g.clone()
        ref.step()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            side_opt.step()
        torch.cuda.current_stream().wait_stream(side)
    torch.cuda.synchronize()
    for p, q in zip(ref_params, side_params):
        assert torch.equal(bits(p), bits(q))


@needs_gpu
@pytest.mark.big
def test_tensor_past_2_to_the_31_elements():
    """One fp32 tensor of 2^31 + 4099 elements (17 GB with its grad): SGD without momentum must
    reach every element with 64-bit indexing. The grad differs past 2^31, so a wrapped index
    shows up as a wrong value at either end."""
    n = (1 << 31) + 4099
    split = 1 << 31
    p = torch.zeros(n, device="cuda", requires_grad=True)
    p.grad = torch.ones(n, device="cuda")
    p.grad[split:] = 2.0
    opt = FusedSGD([p], lr=0.5)
    opt.step()
    torch.cuda.synchronize()
    head, tail = p.detach()[:split], p.detach()[split:]
    assert bool((head == -0.5).all()), "elements below 2^31"
    assert bool((tail == -1.0).all()), "elements past 2^31"
    del p, opt, head, tail
    torch.cuda.empty_cache()


@needs_gpu
@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_cuda_graph_capture_and_replay_equal_eager(name):
    cls, kw = OPTIMIZERS[name]
    kw = dict(kw, lr=torch.tensor(kw["lr"], device="cuda"))

    def build():
        params = [p.clone().requires_grad_(True) for p in make_params(torch.float32, "cuda")]
        for p in params:
            p.grad = torch.zeros_like(p)
        return params, cls(params, **kw)

    grads = [[torch.randn_like(p) for p in make_params(torch.float32, "cuda")] for _ in range(6)]
    eager_params, eager = build()
    graph_params, graphed = build()
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):  # warm-up: lazy state creation happens outside the graph
        for p, g in zip(graph_params, grads[0]):
            p.grad.copy_(g)
        graphed.step()
    torch.cuda.current_stream().wait_stream(side)
    for p, g in zip(eager_params, grads[0]):
        p.grad.copy_(g)
    eager.step()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        graphed.step()
    # The lr is one 0-d CUDA tensor shared by both optimizers' param groups; it changes between
    # replays, and the replays must use each new value, as the eager steps do.
    lr, base_lr = kw["lr"], OPTIMIZERS[name][1]["lr"]
    assert eager.param_groups[0]["lr"] is lr and graphed.param_groups[0]["lr"] is lr
    for step in range(1, 6):
        lr.fill_(base_lr * (1.0 + 0.25 * step))
        for p, q, g in zip(eager_params, graph_params, grads[step]):
            p.grad.copy_(g)
            q.grad.copy_(g)
        eager.step()
        graph.replay()
    torch.cuda.synchronize()
    for p, q in zip(eager_params, graph_params):
        assert torch.equal(p, q)


@needs_gpu
@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_cuda_step_does_not_sync_with_host(name):
    cls, kw = OPTIMIZERS[name]
    params = [p.clone().requires_grad_(True) for p in make_params(torch.float32, "cuda")]
    for p in params:
        p.grad = torch.randn_like(p)
    opt = cls(params, **dict(kw, lr=torch.tensor(kw["lr"], device="cuda")))
    opt.step()  # lazy state init may allocate
    torch.cuda.set_sync_debug_mode("error")
    try:
        opt.step()
    finally:
        torch.cuda.set_sync_debug_mode("default")
