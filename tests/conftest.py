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
    config.addinivalue_line(
        "markers", "gpu: needs a real CUDA GPU; skipped with 'no GPU' elsewhere. "
        "tools/gpu_check.sh runs exactly these (`pytest -m gpu`), so no GPU test lives outside "
        "the suite")


def pytest_collection_modifyitems(config, items):
    # The "cuda" parametrization of the backend fixture is a GPU test like the @needs_gpu ones.
    have_gpu = torch.cuda.is_available()
    for item in items:
        callspec = getattr(item, "callspec", None)
        if callspec is not None and callspec.params.get("backend") == "cuda":
            item.add_marker(pytest.mark.gpu)
        if not have_gpu and item.get_closest_marker("gpu") is not None:
            item.add_marker(pytest.mark.skip(reason="no GPU"))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    # A test skipped for want of a GPU must carry the gpu marker, or the GPU check script would
    # never run it: fail such a test instead of skipping it quietly.
    outcome = yield
    report = outcome.get_result()
    if report.skipped and item.get_closest_marker("gpu") is None:
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        if "no GPU" in reason:
            report.outcome = "failed"
            report.longrepr = (f"{item.nodeid} skips with 'no GPU' but is not marked gpu: mark it "
                               "@pytest.mark.gpu (support.needs_gpu) so tools/gpu_check.sh runs it")


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


