"""Backends that must agree bit for bit: the CPU backend and the CUDA kernel sources run by the
SIMT emulator (both built with FMA contraction off). Also: backend selection itself."""
import pytest
import torch

import fusedopt
from support import (FUSED, NAMES, TEST_KW, assert_snapshots_equal, make_params, run_steps,
                     snapshot, standard_plan, use_backend)

EMULATED = "cuda-emulated" in fusedopt.available_backends()
needs_emulated = pytest.mark.skipif(
    not EMULATED, reason="cuda-emulated backend not built (FUSEDOPT_EMULATED=1)")

SHAPES = [(), (0,), (1,), (15,), (17,), (5, 9), (33,), (1029,), (3, 4, 5)]


def _run(backend_name, name, dtype, master, seed=71, steps=4, shapes=SHAPES, **extra):
    with use_backend(backend_name):
        gen = torch.Generator().manual_seed(seed)
        params = make_params(shapes, dtype, "cpu", gen, offset=[i % 3 for i in range(len(shapes))])
        opt = FUSED[name](params, master_weights=master, **{**TEST_KW[name], **extra})
        run_steps(opt, params, steps, torch.Generator().manual_seed(seed + 1), plan=standard_plan)
        return snapshot(opt, params)


@needs_emulated
@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dtype,master", [(torch.float32, False), (torch.bfloat16, False),
                                          (torch.bfloat16, True), (torch.float16, True),
                                          (torch.float64, False)],
                         ids=["fp32", "bf16", "bf16-master", "fp16-master", "fp64"])
def test_emulated_cuda_is_bitwise_equal_to_cpu(name, dtype, master):
    cpu = _run("cpu", name, dtype, master)
    emu = _run("cuda-emulated", name, dtype, master)
    assert_snapshots_equal(cpu, emu, f"{name} {dtype}: cpu vs cuda-emulated")


@needs_emulated
@pytest.mark.parametrize("name,extra", [("lamb", dict(max_grad_norm=1.0)),
                                        ("lamb", dict(use_nvlamb=True, trust_clip=True)),
                                        ("lars", dict(clip=True)),
                                        ("adam", dict(amsgrad=True, maximize=True))],
                         ids=["lamb-clip", "lamb-nvlamb", "lars-clip", "adam-amsgrad"])
def test_emulated_cuda_options_bitwise_equal_to_cpu(name, extra):
    cpu = _run("cpu", name, torch.float32, False, **extra)
    emu = _run("cuda-emulated", name, torch.float32, False, **extra)
    assert_snapshots_equal(cpu, emu, f"{name} {extra}: cpu vs cuda-emulated")


def test_backend_selection_round_trip():
    original = fusedopt.get_backend()
    try:
        for name in fusedopt.available_backends():
            fusedopt.set_backend(name)
            assert fusedopt.get_backend() == name
    finally:
        fusedopt.set_backend(original)
    assert fusedopt.get_backend() == original
    with pytest.raises(ValueError, match="FUSEDOPT_EMULATED"):
        fusedopt.set_backend("no-such-backend")
