"""Checklist item 16 (distributed): every optimizer on DTensor params, sharded on a 1-D mesh
(3 ranks: uneven and empty shards), on a 2-D FSDP x TP mesh (4 ranks), and under FSDP2
fully_shard, equals the unsharded run (bitwise for AdamW, Adam, SGD, Lion; LAMB and LARS within
the rounding of their cross-shard norms, and bitwise repeatable); state tensors are DTensors
placed like their params; plain and DTensor params mix in one optimizer; found_inf on one rank
skips the step on every rank; collectives per step are counted; apex LARC works on sharded
params; FSDP1 flat params are refused with a clear error; DCP checkpoints reshard.
The ranks run tests/distributed/worker.py under torchrun (gloo), with a timeout."""
import json
import os
import subprocess
import sys

import pytest

WORKER = os.path.join(os.path.dirname(__file__), "distributed", "worker.py")
ELEMENTWISE = ("adamw", "adam", "sgd", "lion", "apex-adam", "apex-sgd")
NORMED = ("lamb", "lamb-noclip", "lars", "lars-clip", "apex-lamb", "apex-mp-lamb")
ALL = ELEMENTWISE + NORMED
# Collectives of one step with a GradScaler-style found_inf (the budget is 2): the
# element-wise ones agree found_inf; LARS adds its norms to that all-reduce; LAMB needs a second
# one for the norms of the update direction (clipping rides in the first).
COLLECTIVES = {"lamb": 2, "lamb-noclip": 2, "lars": 1, "lars-clip": 1, "apex-lamb": 2,
               "apex-mp-lamb": 2}


def _distributed_available():
    import torch.distributed as dist

    return dist.is_available() and dist.is_gloo_available()


pytestmark = pytest.mark.skipif(not _distributed_available(),
                                reason="torch built without distributed / gloo")


_JOBS = {}  # (world size, backend) -> (world, per-rank results): each job runs once per session


@pytest.fixture(scope="module", params=[(3, "cpu"), (4, "cpu"), (3, "cuda-emulated")],
                ids=["3-ranks", "4-ranks", "3-ranks-cuda-emulated"])
def ranks(request, tmp_path_factory):
    """The worker's results on every rank: on the CPU backend with 3 ranks (uneven and empty
    shards) and 4 (also the 2-D mesh), and with 3 ranks on the cuda-emulated backend (the CUDA
    kernels' stacked-norm path, on the emulator)."""
    world, backend = request.param
    if backend == "cuda-emulated":
        import fusedopt

        if "cuda-emulated" not in fusedopt.available_backends():
            pytest.skip("cuda-emulated backend not built (FUSEDOPT_EMULATED=1)")
    return _job(world, backend, tmp_path_factory)


@pytest.fixture(scope="module")
def ranks4(tmp_path_factory):
    """The 4-rank job alone (the 2-D 2 x 2 mesh needs 4 ranks)."""
    return _job(4, "cpu", tmp_path_factory)


def _job(world, backend, tmp_path_factory):
    if (world, backend) not in _JOBS:
        _JOBS[world, backend] = _run_job(world, backend, tmp_path_factory)
    return _JOBS[world, backend]


def _run_job(world, backend, tmp_path_factory):
    out = tmp_path_factory.mktemp(f"dist{world}-{backend}")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "FUSEDOPT_BACKEND": backend}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(world),
           "--master-port", str(29500 + world + 10 * (backend != "cpu") + os.getpid() % 1000),
           WORKER, str(out)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    results = [json.loads((out / f"rank{r}.json").read_text()) for r in range(world)]
    assert all(res["backend"] == backend for res in results), [r["backend"] for r in results]
    return world, results


def _mismatches(results, prefix):
    found = {}
    for rank, res in enumerate(results):
        keys = [k for k in res if k.startswith(prefix)]
        assert keys, f"no {prefix} results on rank {rank}"
        for k in keys:
            if res[k]:
                found[f"rank {rank} {k}"] = res[k]
    return found


@pytest.mark.parametrize("name", ALL)
def test_sharded_equals_unsharded_1d(ranks, name):
    _, results = ranks
    assert _mismatches(results, f"1d/{name}/") == {}


@pytest.mark.parametrize("name", ALL)
def test_sharded_equals_unsharded_2d(ranks4, name):
    _, results = ranks4
    assert _mismatches(results, f"2d/{name}/") == {}
    assert _mismatches(results, f"2d/replicate-shard/{name}") == {}


@pytest.mark.parametrize("name", NORMED)
def test_sharded_norm_runs_are_bitwise_repeatable(ranks, name):
    _, results = ranks
    assert _mismatches(results, f"repeatable/{name}") == {}


@pytest.mark.parametrize("name", ALL)
def test_found_inf_on_one_rank_skips_everywhere(ranks, name):
    _, results = ranks
    assert _mismatches(results, f"found_inf/{name}") == {}


def test_apex_larc_on_sharded_params(ranks):
    _, results = ranks
    assert _mismatches(results, "larc/") == {}


def test_grad_scaler_overflow_in_one_shard(ranks):
    _, results = ranks
    assert _mismatches(results, "grad_scaler") == {}


def test_fsdp2_fully_shard_adamw(ranks):
    _, results = ranks
    assert _mismatches(results, "fsdp2") == {}


def test_fsdp2_cpu_offload_policy(ranks):
    _, results = ranks
    assert _mismatches(results, "fsdp2_cpu_offload") == {}


def test_ddp_works_unchanged(ranks):
    _, results = ranks
    assert _mismatches(results, "ddp") == {}


def test_collectives_per_step(ranks):
    _, results = ranks
    for res in results:
        for name in ALL:
            n = COLLECTIVES.get(name, 1)
            assert res["collectives"][name] == [n, n], (name, res["collectives"])


def test_unsupported_sharding_is_refused_clearly(ranks):
    _, results = ranks
    for res in results:
        err = res["errors"]
        assert err["replicated"] == "ok" and err["LARC replicated"] == "ok", err
        assert "FlatParameter" in err["fsdp1"] and "fully_shard" in err["fsdp1"], err



# ---- torch.distributed.checkpoint ---------------------------------------------------------------
CKPT_WORKER = os.path.join(os.path.dirname(__file__), "distributed", "checkpoint_worker.py")


def _torchrun(world, *args):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "FUSEDOPT_BACKEND": "cpu"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(world),
           "--master-port", str(29600 + world + os.getpid() % 1000), CKPT_WORKER, *args]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]


@pytest.fixture(scope="module")
def checkpoint_runs(tmp_path_factory):
    """Saved on 2 ranks after 3 steps; {world: resumed snapshot} for loads on 2, 1 and 4 ranks,
    each continued for 3 steps, and the uninterrupted 6-step run."""
    import torch

    ckpt = tmp_path_factory.mktemp("dcp")
    _torchrun(2, "save", str(ckpt))
    resumed = {}
    for world in (2, 1, 4):
        out = ckpt / f"resumed{world}.pt"
        _torchrun(world, "load", str(ckpt), str(out))
        resumed[world] = torch.load(out)
    return torch.load(ckpt / "uninterrupted.pt"), resumed


@pytest.mark.parametrize("world", [2, 1, 4], ids=["2-ranks", "1-rank", "4-ranks"])
@pytest.mark.parametrize("name", ["adamw", "sgd", "lion", "lamb", "lars"])
def test_dcp_resume_continues_like_uninterrupted(checkpoint_runs, name, world):
    """Save on 2 ranks, load on `world` ranks (resharded for 1 and 4), 3 more steps: params and
    every state equal the uninterrupted run (bitwise; LAMB / LARS resharded: within the rounding
    of their cross-shard norm sums)."""
    import torch

    uninterrupted, resumed = checkpoint_runs
    a, b = uninterrupted[name], resumed[world][name]
    assert set(a) == set(b)
    assert float(a["p0.step"]) == 6.0 and float(b["p0.step"]) == 6.0
    exact = name not in ("lamb", "lars") or world == 2
    for k in a:
        assert a[k].dtype == b[k].dtype and a[k].shape == b[k].shape, k
        if exact:
            assert torch.equal(a[k].reshape(-1).view(torch.uint8),
                               b[k].reshape(-1).view(torch.uint8)), f"{name} {k}"
        else:
            torch.testing.assert_close(b[k], a[k], rtol=1e-5, atol=1e-7, msg=f"{name} {k}")


# ---- the example ------------------------------------------------------------------------------------
def test_fsdp_lamb_example_on_two_ranks():
    """`torchrun --nproc-per-node 2 -m fusedopt.examples.fsdp_lamb`: FSDP2 + FusedLAMB, loss
    curve next to a single-process run; the script itself fails if they disagree or the loss
    does not fall."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "FUSEDOPT_BACKEND": "cpu"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
           "--master-port", str(29700 + os.getpid() % 1000), "-m", "fusedopt.examples.fsdp_lamb",
           "--steps", "12"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    out = proc.stdout
    assert "FSDP2 over 2 ranks" in out and "the curves agree" in out, out
    rows = [line.split() for line in out.splitlines() if line[:4].strip().isdigit()]
    assert len(rows) == 12, out  # a row per step (every step when steps < 20)
    fsdp, single = [float(r[1]) for r in rows], [float(r[2]) for r in rows]
    assert fsdp[-1] < fsdp[0]
    for a, b in zip(fsdp, single):
        assert abs(a - b) <= 1e-4 * abs(b), (a, b)

