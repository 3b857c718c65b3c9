"""Params of one group on two devices (needs a GPU; the rest of the suite runs on CUDA through
the backend fixture, and tests/cuda/test_cuda_kernels.py covers graph capture and sync-freedom)."""
import pytest
import torch

from support import NAMES, STANDARD_SHAPES, TEST_KW, make_params, run_vs_reference

needs_gpu = pytest.mark.gpu  # skipped with "no GPU" without one (conftest.py)


@needs_gpu
@pytest.mark.parametrize("name", NAMES)
def test_mixed_devices_in_one_group(name):
    """One group with CPU and CUDA params: bucketed per device; LAMB's global norm spans both."""
    gen = torch.Generator().manual_seed(91)
    params = make_params(STANDARD_SHAPES, torch.float32, "cpu", gen)
    params = [p.to("cuda") if i % 2 else p for i, p in enumerate(params)]
    run_vs_reference(name, params, **TEST_KW[name])
