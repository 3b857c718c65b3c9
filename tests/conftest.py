"""Fixtures of the fusedopt test suite: the ``backend`` fixture runs every optimizer test once per
backend ("cpu", "cuda-emulated", "cuda"); the backend decides the device of the tensors the test
creates. Helpers live in support.py."""
import pytest
import torch

import fusedopt

from support import Backend, BACKENDS  # noqa: F401


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "big: the few tests with tensors past the CPU chunk size (32768 elements); "
        "they always run, `-m 'not big'` leaves them out of a quick local run")


@pytest.fixture(params=BACKENDS)
def backend(request):
    """The backend every optimizer test runs on. Tensors are created on ``backend.device``."""
    name = request.param
    if name == "cpu":
        yield Backend("cpu", torch.device("cpu"))
    elif name == "cuda-emulated":
        if "cuda-emulated" not in fusedopt.available_backends():
            pytest.skip("cuda-emulated backend not built (FUSEDOPT_EMULATED=1)")
        fusedopt.set_backend("cuda-emulated")
        try:
            yield Backend("cuda-emulated", torch.device("cpu"))
        finally:
            fusedopt.set_backend("cpu")
    elif name == "cuda":
        if not torch.cuda.is_available():
            pytest.skip("no GPU")
        yield Backend("cuda", torch.device("cuda"))
    else:  # pragma: no cover
        raise AssertionError(name)


@pytest.fixture
def device(backend):
    return backend.device


