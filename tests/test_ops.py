"""Checklist item 11 and the op-level checks: torch.library.opcheck on every op, the norm ops
against torch.linalg.vector_norm, torch.compile(opt.step, fullgraph=True) against eager, and
bitwise determinism across CPU SIMD levels and thread counts."""
import pytest
import torch

import fusedopt
from fusedopt import _C
from support import (FUSED, NAMES, TEST_KW, assert_bitwise_equal, assert_snapshots_equal,
                     dense_plan, make_grads, make_params, make_tensor, randn, run_steps, snapshot,
                     standard_plan, use_backend, RoutedOps, fusedopt_ops)

# The op library of the backend in use (the backend fixture selects it).
ops = RoutedOps()
F32, BF16, F16, F64 = torch.float32, torch.bfloat16, torch.float16, torch.float64


def _sd(p):
    return F64 if p.dtype == F64 else F32


def _lists(device, dtype, sizes=(3, 17, 0, 40), seed=0, nstates=2, master=False):
    gen = torch.Generator().manual_seed(seed)
    shapes = [(n,) for n in sizes] + [(4, 5), ()]
    params = make_params(shapes, dtype, device, gen)
    grads = make_params(shapes, dtype, device, gen)
    states = [[torch.rand(p.shape, generator=gen, dtype=F64).to(device, _sd(p)) for p in params]
              for _ in range(nstates)]
    masters = [p.detach().float() for p in params] if master else []
    steps = [torch.full((), 2.0, device=device) for _ in params]
    return params, grads, states, masters, steps


def _step_kw(p, g, states, ms, st, lr, lr_tensor, grad_scale, found_inf, **hyper):
    """Keyword arguments of an optimizer op: its lists (``states``: list name -> list), the step
    scalars and ``hyper`` (hyper-parameters and extra inputs; the rest take the op's defaults)."""
    return dict(params=p, grads=g, **states, master_params=ms, steps=st, lr=lr,
                lr_tensor=lr_tensor, **hyper, grad_scale=grad_scale, found_inf=found_inf)


def _op_cases(device, dtype):
    """(label, op, args, kwargs) for every op with representative inputs, on the op library
    of the backend in use."""
    ops = fusedopt_ops()
    master = dtype in (BF16, F16)
    cases = []
    p, g, (m, v, vmax), ms, st = _lists(device, dtype, nstates=3, master=master)
    lr_t = torch.tensor(1e-2, device=device)
    scale = torch.tensor(4.0, device=device)
    found = torch.tensor(0.0, device=device)
    adam = dict(beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.1)
    cases.append(("adam_", ops.adam_.default, (), _step_kw(
        p, g, dict(exp_avgs=m, exp_avg_sqs=v, max_exp_avg_sqs=vmax), ms, st, 1e-2, None, scale,
        found, **adam, decoupled_weight_decay=True, bias_correction=True, amsgrad=True,
        maximize=False)))
    p, g, (m, v), ms, st = _lists(device, dtype, master=master, seed=1)
    cases.append(("adam_/lr_tensor", ops.adam_.default, (), _step_kw(
        p, g, dict(exp_avgs=m, exp_avg_sqs=v, max_exp_avg_sqs=[]), ms, st, 0.0, lr_t, None,
        None, **adam, decoupled_weight_decay=False, bias_correction=True, amsgrad=False,
        maximize=True)))
    p, g, (b,), ms, st = _lists(device, dtype, nstates=1, master=master, seed=2)
    cases.append(("sgd_", ops.sgd_.default, (), _step_kw(
        p, g, dict(momentum_buffers=b), ms, st, 0.1, None, scale, found, momentum=0.9,
        dampening=0.1, weight_decay=0.01, nesterov=False, maximize=True)))
    p, g, _, ms, st = _lists(device, dtype, nstates=0, master=master, seed=3)
    cases.append(("sgd_/no-momentum", ops.sgd_.default, (), _step_kw(
        p, g, dict(momentum_buffers=[]), ms, st, 0.1, lr_t, None, None, momentum=0.0)))
    p, g, (m,), ms, st = _lists(device, dtype, nstates=1, master=master, seed=4)
    cases.append(("lion_", ops.lion_.default, (), _step_kw(
        p, g, dict(exp_avgs=m), ms, st, 1e-3, None, scale, found, beta1=0.9, beta2=0.99,
        weight_decay=0.1, maximize=False)))
    p, g, (m, v), ms, st = _lists(device, dtype, master=master, seed=5)
    gnorm = torch.linalg.vector_norm(torch.cat([x.double().reshape(-1) for x in g])).float() \
        .to(device)
    lamb = dict(beta1=0.9, beta2=0.999, eps=1e-6, weight_decay=0.01, adam_w_mode=True,
                bias_correction=True, grad_averaging=True, max_grad_norm=1.0,
                global_grad_norm=gnorm)
    trust = dict(use_nvlamb=False, trust_clip=True, min_trust_ratio=0.1, max_trust_ratio=10.0)
    cases.append(("lamb_", ops.lamb_.default, (), _step_kw(
        p, g, dict(exp_avgs=m, exp_avg_sqs=v), ms, st, 1e-2, None, None, found, **lamb,
        **trust)))
    p, g, (b,), ms, st = _lists(device, dtype, nstates=1, master=master, seed=6)
    lars = dict(momentum=0.9, dampening=0.0, weight_decay=0.01, nesterov=True,
                trust_coefficient=0.001, eps=1e-8, clip=True)
    cases.append(("lars_", ops.lars_.default, (), _step_kw(
        p, g, dict(momentum_buffers=b), ms, st, 0.1, None, scale, found, **lars, adapt=True)))
    p, g, _, ms, st = _lists(device, dtype, nstates=0, master=master, seed=7)
    cases.append(("lars_/excluded", ops.lars_.default, (), _step_kw(
        p, g, dict(momentum_buffers=[]), ms, st, 0.1, lr_t, None, None, momentum=0.0,
        weight_decay=0.0, nesterov=False, clip=False, adapt=False)))
    p, g, (m, v), ms, st = _lists(device, dtype, master=master, seed=9)
    cases.append(("lamb_moments_", ops.lamb_moments_.default, (), _step_kw(
        p, g, dict(exp_avgs=m, exp_avg_sqs=v), ms, st, 0.0, None, scale, found, **lamb)))
    sums = torch.rand(2 * len(p), dtype=F64, generator=torch.Generator().manual_seed(10)) \
        .to(device)
    p, g, (m, v), ms, st = _lists(device, dtype, master=master, seed=11)
    cases.append(("lamb_apply_", ops.lamb_apply_.default, (), _step_kw(
        p, g, dict(exp_avgs=m, exp_avg_sqs=v), ms, st, 1e-2, None, scale, found, **lamb,
        **trust, norm_sums=sums)))
    p, g, (b,), ms, st = _lists(device, dtype, nstates=1, master=master, seed=12)
    cases.append(("lars_/norm_sums", ops.lars_.default, (), _step_kw(
        p, g, dict(momentum_buffers=b), ms, st, 0.1, None, scale, found, **lars, adapt=True,
        norm_sums=sums)))
    tensors = make_params([(5,), (0,), (3, 4), (33,)], dtype, device,
                          torch.Generator().manual_seed(8))
    cases.append(("sums_of_squares", ops.sums_of_squares.default,
                  (tensors, [t.float() for t in tensors], scale), {}))
    cases.append(("l2_norms", ops.l2_norms.default, (tensors, None), {}))
    cases.append(("l2_norms/scaled", ops.l2_norms.default, (tensors, scale), {}))
    cases.append(("global_l2_norm", ops.global_l2_norm.default, (tensors, None), {}))
    cases.append(("global_l2_norm/scaled", ops.global_l2_norm.default, (tensors, scale), {}))
    return cases


@pytest.mark.parametrize("dtype", [F32, BF16], ids=["fp32", "bf16"])
def test_opcheck_every_op(backend, dtype):
    cases = _op_cases(backend.device, dtype)
    covered = {label.split("/")[0] for label, _, _, _ in cases}
    # Every tensor op; the "_"-prefixed ones are the library's build information and controls
    # (no tensors: nothing for opcheck to check; tests/test_bench.py and test_ops cover them).
    registered = {name.split("::", 1)[1] for name in torch._C._dispatch_get_all_op_names()
                  if name.startswith("fusedopt::") and not name.startswith("fusedopt::_")}
    assert covered == registered, f"ops without an opcheck case: {registered - covered}"
    for label, op, args, kwargs in cases:
        assert op.namespace == ("fusedopt_emulated" if backend.name == "cuda-emulated"
                                else "fusedopt"), label
        result = torch.library.opcheck(op, args, kwargs)
        assert all(v == "SUCCESS" for v in result.values()), f"{label}: {result}"


def test_ops_mutate_their_lists_in_place(backend):
    """Sanity of the op contract opcheck relies on: params (or, for LAMB's pass 1, the moments),
    and the step counters (except in LAMB's pass 2, whose pass 1 advanced them) change in
    place."""
    for label, op, _, kwargs in _op_cases(backend.device, F32):
        name = label.split("/")[0]
        if name in ("l2_norms", "global_l2_norm", "sums_of_squares"):
            continue
        written = kwargs["exp_avgs"] if name == "lamb_moments_" else kwargs["params"]
        steps = kwargs["steps"]
        before = [p.clone() for p in written]
        op(**kwargs)
        assert any(not torch.equal(p, b) for p, b in zip(written, before)), label
        expected_step = 2.0 if name == "lamb_apply_" else 3.0
        assert all(float(s) == expected_step for s in steps), label


# ---- norms --------------------------------------------------------------------------------------

NORM_SIZES = [(), (0,), (1,), (15,), (16,), (17,), (4, 33), (32769,)]


@pytest.mark.parametrize("dtype", [F32, BF16, F16, F64], ids=["fp32", "bf16", "fp16", "fp64"])
@pytest.mark.parametrize("layout", ["contiguous", "transposed", "strided"])
@pytest.mark.parametrize("scale", [None, 2.0 ** 10, 3.0], ids=["unscaled", "S=1024", "S=3"])
@pytest.mark.big
def test_norm_ops_match_vector_norm(backend, dtype, layout, scale):
    dev = backend.device
    gen = torch.Generator().manual_seed(9)
    tensors = [make_tensor(randn(s, gen, 3.0), dtype, dev, layout) for s in NORM_SIZES]
    S = None if scale is None else torch.tensor(scale, device=dev)
    norms = ops.l2_norms(tensors, S)
    total = ops.global_l2_norm(tensors, S)
    assert norms.dtype == F32 and norms.shape == (len(tensors),) and norms.device == dev
    assert total.dtype == F32 and total.shape == () and total.device == dev
    div = 1.0 if scale is None else scale
    expected = torch.stack([torch.linalg.vector_norm(t.double().cpu()) / div for t in tensors])
    torch.testing.assert_close(norms.double().cpu(), expected, rtol=2e-7, atol=0.0)
    expected_total = torch.linalg.vector_norm(expected)
    torch.testing.assert_close(total.double().cpu(), expected_total, rtol=2e-7, atol=0.0)


def test_norm_ops_empty_list():
    """An empty list is a valid input (e.g. a model whose params all have grad None)."""
    assert ops.l2_norms([], None).shape == (0,)
    assert float(ops.global_l2_norm([], None)) == 0.0


def test_norm_ops_nonfinite(backend):
    dev = backend.device
    t = [torch.ones(5, device=dev), torch.tensor([1.0, float("inf")], device=dev),
         torch.tensor([float("nan")], device=dev)]
    n = ops.l2_norms(t, None).cpu()
    assert float(n[0]) == float(torch.tensor(5.0 ** 0.5, dtype=F32))
    assert n[1] == float("inf") and n[2].isnan()
    assert ops.global_l2_norm(t, None).isnan()


def test_norm_of_large_values_does_not_overflow(backend):
    """Squares of fp32 values near 1e30 overflow fp32: the accumulation must not."""
    dev = backend.device
    t = [torch.full((100,), 1e30, device=dev), torch.full((7,), 3e-30, device=dev)]
    n = ops.l2_norms(t, None).double().cpu()
    torch.testing.assert_close(n, torch.tensor([1e31, 3e-30 * 7 ** 0.5], dtype=F64), rtol=2e-7,
                               atol=0.0)


# ---- torch.compile ------------------------------------------------------------------------------

@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("compile_backend", ["aot_eager"])
def test_compiled_step_matches_eager(backend, name, compile_backend):
    torch._dynamo.reset()
    gen = torch.Generator().manual_seed(10)
    shapes = [(5, 3), (7,), (), (33,)]
    pe = make_params(shapes, F32, backend.device, gen)
    pc = [p.clone() for p in pe]
    oe, oc = FUSED[name](pe, **TEST_KW[name]), FUSED[name](pc, **TEST_KW[name])
    step = torch.compile(oc.step, fullgraph=True, backend=compile_backend)
    g1, g2 = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    for i in range(4):
        run_steps(oe, pe, 1, g1, start=i)
        grads = make_grads(pc, i, g2, dense_plan)
        for p, g in zip(pc, grads):
            p.grad = g
        step()
    assert_snapshots_equal(snapshot(oe, pe), snapshot(oc, pc), f"{name}: compiled vs eager")


@pytest.mark.parametrize("name", ["adam", "lamb"])
def test_inductor_compiled_step_matches_eager(backend, name):
    """The default inductor backend, with a tensor lr and a GradScaler-style grad_scale."""
    torch._dynamo.reset()
    dev = backend.device
    gen = torch.Generator().manual_seed(11)
    shapes = [(5, 3), (7,), (40,)]
    pe = make_params(shapes, F32, dev, gen)
    pc = [p.clone() for p in pe]
    kw = {**TEST_KW[name], "lr": torch.tensor(TEST_KW[name]["lr"], device=dev)}
    oe = FUSED[name](pe, **kw)
    oc = FUSED[name](pc, **{**kw, "lr": kw["lr"].clone()})
    step = torch.compile(oc.step, fullgraph=True)
    for o in (oe, oc):
        o.grad_scale = torch.tensor(8.0, device=dev)
        o.found_inf = torch.tensor(0.0, device=dev)
    g1 = torch.Generator().manual_seed(2)
    for i in range(3):
        grads = make_grads(pe, i, g1, dense_plan)
        for a, b, g in zip(pe, pc, grads):
            a.grad, b.grad = g * 8, g.clone() * 8
        oe.step()
        step()
    assert_snapshots_equal(snapshot(oe, pe), snapshot(oc, pc), f"{name}: inductor vs eager")


# ---- determinism: SIMD levels and thread counts -------------------------------------------------

def _available_levels():
    original = _C.simd_level()
    levels = [lv for lv in ("baseline", "avx2", "avx512") if _C.set_simd_level(lv)]
    assert _C.set_simd_level(original)
    return levels


# 33000: several chunks; 300001: above the CPU backend's solo limits, so LAMB / LARS run it on
# all threads (the two-pass schedule, csrc/cpu/driver.cpp).
SIMD_SHAPES = [(), (1,), (15,), (16,), (17,), (31, 3), (1029,), (33000,), (0,), (300001,)]


def _run_config(device, name, dtype, seed=12, steps=3):
    """Always through the backend the caller selected (SIMD tests select "cpu")."""
    gen = torch.Generator().manual_seed(seed)
    params = make_params(SIMD_SHAPES, dtype, device, gen, offset=[i % 3 for i in range(len(SIMD_SHAPES))])
    master = dtype in (BF16, F16)
    opt = FUSED[name](params, master_weights=master, **TEST_KW[name])
    run_steps(opt, params, steps, torch.Generator().manual_seed(seed + 1), plan=standard_plan)
    return snapshot(opt, params)


def test_simd_levels_exist():
    levels = _available_levels()
    assert "baseline" in levels and _C.simd_level() in levels
    assert _C.set_simd_level("no-such-level") is False
    assert fusedopt.available_simd_levels() == levels


def _import_level(env_value):
    """(level in use, stderr) of a fresh interpreter importing fusedopt with FUSEDOPT_CPU_ISA."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "FUSEDOPT_CPU_ISA"}
    if env_value is not None:
        env["FUSEDOPT_CPU_ISA"] = env_value
    out = subprocess.run(
        [sys.executable, "-W", "always", "-c",
         "import fusedopt; print(fusedopt.build_info()['cpu_simd_level'])"],
        env=env, capture_output=True, text=True, timeout=120, check=True)
    return out.stdout.strip().splitlines()[-1], out.stderr


def test_cpu_isa_env_forces_a_level_or_warns_naming_the_levels():
    levels = _available_levels()
    best, err = _import_level(None)
    assert best == levels[-1] and "FUSEDOPT_CPU_ISA" not in err
    level, err = _import_level("baseline")
    assert level == "baseline" and "FUSEDOPT_CPU_ISA" not in err
    unsupported = [lv for lv in ("avx2", "avx512") if lv not in levels]
    for value in ["no-such-level"] + unsupported:
        level, err = _import_level(value)
        assert level == best, value
        assert "RuntimeWarning" in err and f"FUSEDOPT_CPU_ISA={value}" in err, err
        assert "this CPU can run: " + ", ".join(levels) in err, err


@pytest.mark.big
@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dtype", [F32, BF16, F16, F64], ids=["fp32", "bf16", "fp16", "fp64"])
def test_simd_levels_are_bitwise_identical(name, dtype):
    original = _C.simd_level()
    levels = _available_levels()
    try:
        results = {}
        for lv in levels:
            assert _C.set_simd_level(lv) and _C.simd_level() == lv
            with use_backend("cpu"):
                results[lv] = _run_config(torch.device("cpu"), name, dtype)
    finally:
        _C.set_simd_level(original)
    assert _C.simd_level() == original
    for lv in levels[1:]:
        assert_snapshots_equal(results[levels[0]], results[lv],
                               f"{name} {dtype}: SIMD level {levels[0]} vs {lv}")


def test_simd_levels_norms_bitwise_identical():
    original = _C.simd_level()
    out = {}
    try:
        for lv in _available_levels():
            _C.set_simd_level(lv)
            for dtype in (F32, BF16, F16, F64):
                gen = torch.Generator().manual_seed(13)
                ts = [make_tensor(randn(s, gen, 2.0), dtype, "cpu")
                      for s in [(17,), (33000,), (5, 7)]]
                with use_backend("cpu"):
                    out.setdefault(dtype, []).append(
                        (lv, ops.l2_norms(ts, None), ops.global_l2_norm(ts, torch.tensor(3.0))))
    finally:
        _C.set_simd_level(original)
    for dtype, rows in out.items():
        for lv, n, t in rows[1:]:
            assert_bitwise_equal(rows[0][1], n, f"l2_norms {dtype} {rows[0][0]} vs {lv}")
            assert_bitwise_equal(rows[0][2], t, f"global_l2_norm {dtype} {rows[0][0]} vs {lv}")


@pytest.mark.big
@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dtype", [F32, BF16], ids=["fp32", "bf16"])
def test_thread_count_is_bitwise_invisible(backend, name, dtype):
    """Several chunks per tensor (33000 > 32768 elements) so threads split the work; LAMB/LARS
    norms are reduced across chunks."""
    original = torch.get_num_threads()
    try:
        results = []
        for n in (1, 2, 3):
            torch.set_num_threads(n)
            results.append(_run_config(backend.device, name, dtype, seed=14))
    finally:
        torch.set_num_threads(original)
    assert_snapshots_equal(results[0], results[1], f"{name}: 1 vs 2 threads")
    assert_snapshots_equal(results[0], results[2], f"{name}: 1 vs 3 threads")


def test_build_info():
    info = fusedopt.build_info()
    assert info["cpu_simd_level"] == _C.simd_level()
    assert "cpu" in info["backends"] and info["backends"][0] == "cpu"
    assert fusedopt.available_backends()[0] == "cpu"
    assert fusedopt.get_backend() in fusedopt.available_backends()
