"""Fixtures of the fusedopt test suite: the ``backend`` fixture runs every optimizer test once per
backend ("cpu", "cuda-emulated", "cuda"); the backend decides the device of the tensors the test
creates. Helpers live in support.py."""
import pytest
import torch

import fusedopt

from support import Backend, BACKENDS, use_backend  # noqa: F401


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "big: the few tests with tensors past the CPU chunk size (32768 elements); "
        "they always run, `-m 'not big'` leaves them out of a quick local run")


@pytest.fixture(params=BACKENDS)
def backend(request):
    """The backend every optimizer test runs on. Tensors are created on ``backend.device``.
    CPU tensors are routed explicitly ("cpu" or "cuda-emulated"), whatever FUSEDOPT_BACKEND
    says, and the previous route is restored afterwards."""
    name = request.param
    if name == "cuda-emulated" and "cuda-emulated" not in fusedopt.available_backends():
        pytest.skip("cuda-emulated backend not built (FUSEDOPT_EMULATED=1)")
    if name == "cuda" and not torch.cuda.is_available():
        pytest.skip("no GPU")
    device = torch.device("cuda" if name == "cuda" else "cpu")
    with use_backend("cuda-emulated" if name == "cuda-emulated" else "cpu"):
        yield Backend(name, device)


@pytest.fixture
def device(backend):
    return backend.device


