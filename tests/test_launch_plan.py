"""The CUDA engine's launch plans as the op library reports them (torch.ops.fusedopt.
_cuda_launch_plan, csrc/cuda/launch_plan.cpp): present in every build, the CPU-only one included,
and the source of the static GPU report's launch counts. The C++ test
launches_match_plan_for_every_variant (tests/csrc/cuda) checks that the ops issue exactly these
launches on the emulator."""
import math

import pytest
import torch

import fusedopt  # noqa: F401  (loads the op library)
from fusedopt.bench import layouts, static_gpu

CHUNK = 65536


def plan(op, numel, layout="32KB", **kw):
    return static_gpu.launch_plan(op, numel, layout, **kw)


def chunks(numel):
    return sum(-(-n // CHUNK) for n in numel)


def test_engine_constants_per_layout():
    c32, c4 = plan("adam", [])["constants"], plan("adam", [], "4KB")["constants"]
    assert c32["chunk_size"] == c4["chunk_size"] == CHUNK
    assert c32["block_threads"] == c4["block_threads"] == 256
    assert (c32["param_bytes"], c4["param_bytes"]) == (32764, 4096)
    # Tensors per table for 1..6 pointer lists (docs/kernels.md's table).
    assert c32["table_capacity"][:6] == [674, 578, 505, 449, 404, 367]
    assert c4["table_capacity"][:6] == [77, 66, 57, 51, 46, 42]
    assert (c32["tensor_capacity"], c4["tensor_capacity"]) == (1011, 115)
    assert (c32["step_capacity"], c4["step_capacity"]) == (4046, 463)
    assert plan("adam", [])["launches"] == []


def test_single_pass_plans_step_then_update():
    numel = [3 * CHUNK + 1, 0, 5]
    for op, states in (("adam", 2), ("adam", 3), ("sgd", 0), ("sgd", 1), ("lion", 1)):
        got = plan(op, numel, states=states)["launches"]
        assert got == [("step", 1, 256), ("update", chunks(numel), 256)], (op, states)


def test_sizes_past_2_pow_32_stay_one_update_launch():
    numel = [3 << 31, (5 << 30) + 7, 1, 0, 1 << 32]
    got = plan("adam", numel)["launches"]
    assert got == [("step", 1, 256), ("update", chunks(numel), 256)]


def test_two_pass_plans():
    numel = [CHUNK + 3, 17]
    n = chunks(numel)
    assert [k for k, _, _ in plan("lamb", numel)["launches"]] == ["reduce", "cleanup", "update"]
    assert plan("lamb", numel)["launches"][0][1] == n
    assert [k for k, _, _ in plan("lamb_moments", numel)["launches"]] == ["reduce", "cleanup"]
    assert [k for k, _, _ in plan("lamb_apply", numel)["launches"]] == ["update"]
    assert [k for k, _, _ in plan("lars", numel)["launches"]] == ["reduce", "cleanup", "update"]
    assert [k for k, _, _ in plan("lars", numel, adapt=False)["launches"]] == ["step", "update"]
    assert [k for k, _, _ in plan("lars", numel, norm_sums=True)["launches"]] == ["step", "update"]
    assert [k for k, _, _ in plan("l2_norm", numel, global_norm=True)["launches"]] == \
        ["reduce", "cleanup"]


def test_table_layout_and_masters_change_the_table_count():
    numel = [100] * 300
    # 300 tensors: one 32 KB table; 4 KB tables of 51 tensors (4 lists) -> 6, of 46 (5) -> 7.
    assert len(plan("adam", numel)["launches"]) == 2
    assert [k for k, _, _ in plan("adam", numel, "4KB")["launches"]].count("update") == 6
    assert [k for k, _, _ in plan("adam", numel, "4KB", master=True)["launches"]].count(
        "update") == 7
    # A global norm over more tensors than a 4 KB cleanup table holds (115): a finish launch.
    got = [k for k, _, _ in plan("l2_norm", numel, "4KB", global_norm=True)["launches"]]
    assert got[-1] == "finish" and got.count("cleanup") == 3


def test_bert_large_lamb_step_launches():
    """docs/kernels.md: a clipped LAMB step on BERT-large is 5 launches with 32 KB tables and 30
    with 4 KB ones (global grad norm + LAMB); the static report adds the same."""
    lay = layouts.transformer("bert-large")
    numel = [math.prod(s) for s in lay.shapes]
    for table, expect in (("32KB", 5), ("4KB", 30)):
        got = len(plan("l2_norm", numel, table, global_norm=True)["launches"]) + \
            len(plan("lamb", numel, table)["launches"])
        assert got == expect, table
    assert static_gpu.launches_per_step(lay, "lamb") == {"4KB": 30, "32KB": 5}


def test_static_report_takes_the_plans_from_the_op_library():
    lay = layouts.single(1 << 20)
    rep = static_gpu.report([lay], ["adamw", "lars", "lamb"])
    lm = rep["launch_model"]
    assert "_cuda_launch_plan" in lm["limits"]["source"]
    assert lm["limits"]["32KB"]["table_capacity"][0] == 674
    assert lm["per_layout"]["single"] == {"adamw": {"4KB": 2, "32KB": 2},
                                          "lars": {"4KB": 3, "32KB": 3},
                                          "lamb": {"4KB": 5, "32KB": 5}}
    assert "launches per step (from the op library" in static_gpu.format_report(rep)


@pytest.mark.parametrize("args, match", [
    (("adamax", [1], "32KB"), "no CUDA launch plan for op 'adamax'"),
    (("adam", [1], "8KB"), "table layout '8KB'"),
    (("lion", [1], "32KB", 2), "lion cannot have 2 state lists"),
    (("adam", [-1], "32KB"), "negative numel"),
])
def test_bad_requests_raise(args, match):
    with pytest.raises(RuntimeError, match=match):
        torch.ops.fusedopt._cuda_launch_plan(*args)
