"""Checklist items 3 and 4: non-contiguous params and grads, params and grads with different
strides, sizes around the chunk (CPU: 32768 elements) and vector (16) boundaries, misaligned
pointers and long tensor lists."""
import pytest
import torch

from support import (FUSED, NAMES, TEST_KW, assert_snapshots_equal, dense_plan, make_grads,
                     make_params, make_tensor, randn, run_vs_reference, snapshot,
                     standard_plan)

F32, BF16 = torch.float32, torch.bfloat16

LAYOUT_SHAPES = [(5, 9), (33, 17), (3, 4, 5), (1, 7), (7, 1), (16,), (0, 3), ()]


def _run_layout(device, name, dtype, param_layout, grad_layout, master=False, steps=5,
                shapes=LAYOUT_SHAPES, offset=0, kw=None):
    gen = torch.Generator().manual_seed(51)
    params = make_params(shapes, dtype, device, gen, layout=param_layout, offset=offset)
    opt = FUSED[name](params, master_weights=master, **(kw or TEST_KW[name]))
    ggen = torch.Generator().manual_seed(52)
    for step in range(steps):
        grads = make_grads(params, step, ggen, standard_plan,
                           grad_layouts=[grad_layout] * len(params))
        for p, g in zip(params, grads):
            p.grad = g
        opt.step()
    return snapshot(opt, params), params, opt


LAYOUT_PAIRS = [
    ("transposed", "transposed"),
    ("strided", "strided"),
    ("offset", "offset"),
    ("contiguous", "transposed"),   # same logical values, different strides
    ("transposed", "contiguous"),
    ("strided", "transposed"),
    ("contiguous", "strided"),
    ("transposed", "strided"),
]


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("param_layout,grad_layout", LAYOUT_PAIRS,
                         ids=[f"p-{a}-g-{b}" for a, b in LAYOUT_PAIRS])
def test_layout_is_bitwise_invisible_fp32(backend, name, param_layout, grad_layout):
    base, _, _ = _run_layout(backend.device, name, F32, "contiguous", "contiguous")
    other, params, opt = _run_layout(backend.device, name, F32, param_layout, grad_layout)
    assert_snapshots_equal(base, other, f"{name}: param {param_layout}, grad {grad_layout}")
    # the params stayed the views they were (updated in place, strides unchanged)
    for p in params:
        assert p.grad is not None


@pytest.mark.parametrize("name", ["adam", "lamb", "lars", "sgd"])
@pytest.mark.parametrize("param_layout,grad_layout",
                         [("transposed", "contiguous"), ("contiguous", "transposed"),
                          ("strided", "strided")],
                         ids=["p-transposed-g-contiguous", "p-contiguous-g-transposed",
                              "p-strided-g-strided"])
@pytest.mark.parametrize("master", [False, True], ids=["no-master", "master"])
def test_layout_is_bitwise_invisible_bf16(backend, name, param_layout, grad_layout, master):
    base, _, _ = _run_layout(backend.device, name, BF16, "contiguous", "contiguous", master)
    other, _, _ = _run_layout(backend.device, name, BF16, param_layout, grad_layout, master)
    assert_snapshots_equal(base, other, f"{name} bf16: param {param_layout}, grad {grad_layout}")


@pytest.mark.parametrize("name", NAMES)
def test_different_strides_match_reference(backend, name):
    """Param contiguous and grad transposed (and the reverse): the values must be paired by
    logical index (torch 2.13's own CPU fused AdamW/SGD pair them by memory order)."""
    gen = torch.Generator().manual_seed(53)
    params = make_params(LAYOUT_SHAPES, F32, backend.device, gen,
                         layout=["contiguous", "transposed"] * 4)
    grad_layouts = ["transposed", "contiguous"] * 4
    run_vs_reference(name, params, grad_layouts=grad_layouts, **TEST_KW[name])


def test_param_views_stay_views(backend):
    """Params that are views into one buffer (as in a flattened-parameter model): the update
    lands in the buffer, and neighbouring memory is untouched."""
    dev = backend.device
    buf = torch.zeros(100, device=dev)
    a = buf[1:41].view(5, 8)
    b = buf[41:91:2]  # strided
    with torch.no_grad():
        a.copy_(torch.randn(5, 8, generator=torch.Generator().manual_seed(0)))
        b.copy_(torch.randn(25, generator=torch.Generator().manual_seed(1)))
    guard = buf.clone()
    opt = FUSED["adam"]([a, b], lr=0.1)
    a.grad = torch.ones(5, 8, device=dev)
    b.grad = torch.ones(25, device=dev)
    opt.step()
    assert a.data_ptr() == buf[1:].data_ptr() and b.stride() == (2,)
    changed = (buf != guard)
    assert bool(changed[1:41].all()) and bool(changed[41:91:2].all())
    untouched = torch.ones(100, dtype=torch.bool, device=dev)
    untouched[1:41] = False
    untouched[41:91:2] = False
    assert not bool(changed[untouched].any())


# ---- sizes, alignment, long lists ------------------------------------------------------------

BOUNDARY_SIZES = [1, 15, 16, 17, 31, 33, 1023, 1025, 32767, 32768, 32769, 65537]


@pytest.mark.big
@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dtype", [F32, BF16], ids=["fp32", "bf16"])
def test_chunk_and_vector_boundaries_with_misaligned_pointers(backend, name, dtype):
    """Sizes around the vector width (16) and the CPU chunk (32768), each param a view starting
    0..3 elements into its buffer (misaligned pointers); three steps."""
    gen = torch.Generator().manual_seed(54)
    shapes = [(n,) for n in BOUNDARY_SIZES]
    offsets = [i % 4 for i in range(len(shapes))]
    params = make_params(shapes, dtype, backend.device, gen, layout="contiguous",
                         offset=offsets)
    assert any(p.data_ptr() % 64 != 0 for p in params)
    kw = {**TEST_KW[name]}
    if name == "lion" and dtype == BF16:
        # betas exact in fp32: with coarse bf16 grads, c = b1*m + (1-b1)*g is sometimes exactly
        # 0 (sign 0) in exact arithmetic, and fp32-rounded 0.9/0.1 would turn that into +-1.
        kw.update(lr=2e-2, betas=(0.875, 0.984375))
    run_vs_reference(name, params, steps=3, plan=dense_plan,
                     master_weights=(dtype == BF16), **kw)


@pytest.mark.parametrize("name", NAMES)
def test_long_tensor_list(backend, name):
    """300 tensors of assorted small sizes (several chunks and launches worth of tensors)."""
    gen = torch.Generator().manual_seed(55)
    sizes = torch.randint(0, 70, (300,), generator=gen).tolist()
    shapes = [(n,) if i % 3 else (n, 2) for i, n in enumerate(sizes)]
    params = make_params(shapes, F32, backend.device, gen)
    run_vs_reference(name, params, steps=3, plan=dense_plan, **TEST_KW[name])


@pytest.mark.big
@pytest.mark.parametrize("name", NAMES)
def test_result_does_not_depend_on_list_neighbours(backend, name):
    """Each tensor updated in one big list equals it updated alone, bitwise (chunking and
    vector tails are per tensor). LAMB with clipping couples tensors, so clipping is off."""
    gen = torch.Generator().manual_seed(56)
    shapes = [(n,) for n in (3, 17, 32769, 40, 16, 1)]
    values = [randn(s, gen) for s in shapes]
    kw = {**TEST_KW[name]}
    if name == "lamb":
        kw["max_grad_norm"] = None
    grads = [[randn(s, gen) for s in shapes] for _ in range(3)]

    def run(indices):
        ps = [make_tensor(values[i], F32, backend.device) for i in indices]
        opt = FUSED[name](ps, **kw)
        for step in range(3):
            for p, i in zip(ps, indices):
                p.grad = make_tensor(grads[step][i], F32, backend.device)
            opt.step()
        return snapshot(opt, ps)

    together = run(list(range(len(shapes))))
    for i in range(len(shapes)):
        assert_snapshots_equal([together[i]], run([i]), f"{name}: tensor {i} alone vs in list")
