"""The benchmark's SIMD-level option (issue 9): `python -m fusedopt.bench --simd-levels all`
times fusedopt at every level this CPU has, interleaved with the native rows, and evaluates the
targets per level; fusedopt.simd_level() is the switch it uses. Tiny sizes: this checks the
plumbing, never speed (speed claims come from bench/, not from tests)."""
import json

import pytest
import torch

import fusedopt
from fusedopt import _C
from fusedopt.bench import cli


def test_simd_level_context_switches_and_restores():
    native = _C.simd_level()
    for level in fusedopt.available_simd_levels():
        with fusedopt.simd_level(level):
            assert _C.simd_level() == level
        assert _C.simd_level() == native
    with pytest.raises(ValueError, match="choose from baseline"):
        with fusedopt.simd_level("avx1024"):
            pass
    assert _C.simd_level() == native


def test_simd_level_context_restores_after_an_error():
    native = _C.simd_level()
    with pytest.raises(RuntimeError, match="boom"):
        with fusedopt.simd_level("baseline"):
            raise RuntimeError("boom")
    assert _C.simd_level() == native


def test_bench_times_every_level(tmp_path):
    rc = cli.main(["--quick", "--layouts", "single", "--numel", "40K", "--optimizers",
                   "lion,lars", "--simd-levels", "all", "--no-peers", "--no-progress",
                   "--out", str(tmp_path)])
    assert rc == 0
    res = json.loads((tmp_path / "results.json").read_text())
    levels = fusedopt.available_simd_levels()
    native = _C.simd_level()
    assert res["simd_levels_timed"] == [native] + [lv for lv in levels if lv != native]
    rows = {r["name"] for p in res["layouts"][0]["pools"] for r in p["rows"] if "min_ms" in r}
    for lv in levels:
        for name in ("fusedopt FusedLion", "fusedopt FusedLARS"):
            assert (name if lv == native else f"{name} @{lv}") in rows, (lv, name, rows)
    by_level = {}
    for t in res["targets"]:
        by_level.setdefault(t["simd_level"], []).append(t)
    assert set(by_level) == set(levels)
    for lv, ts in by_level.items():
        assert {t["what"] for t in ts} >= {"fusedopt Lion / torch fused SGD-momentum",
                                           "fusedopt LARS / its floor"}, lv
        # baseline figures are reported without a target
        assert all((t["limit"] is None) == (lv == "baseline") for t in ts), (lv, ts)


def test_bench_refuses_an_unknown_level(capsys):
    assert cli.main(["--quick", "--simd-levels", "avx1024", "--no-peers"]) == 2
    err = capsys.readouterr().err
    assert "avx1024" in err and "available: baseline" in err


def _gpu_results(adamw_ms, torch_adamw_ms, pct_copy, lamb_ms, lars_ms, sgd_ms, launches):
    """A GPU results dict shaped like the benchmark's (one 'single' layout)."""
    from fusedopt.bench import competitors as C

    def row(name, ms, **kw):
        return dict(name=name, min_ms=ms, median_ms=ms, **kw)
    pools = [
        dict(family="adamw", rows=[row(C.FUSEDOPT_ADAMW, adamw_ms, pct_copy=pct_copy,
                                       launches=launches),
                                   row(C.TORCH_FUSED_ADAMW, torch_adamw_ms)]),
        dict(family="lamb", rows=[row("fusedopt FusedLAMB", lamb_ms, launches=9),
                                  row(C.FUSEDOPT_ADAMW, adamw_ms, anchor=True, launches=2)]),
        dict(family="lars", rows=[row("fusedopt FusedLARS", lars_ms, launches=5),
                                  row(C.FUSEDOPT_SGD, sgd_ms, anchor=True, launches=2)]),
    ]
    model = {"single": {"adamw": {"32KB": 2}, "lamb": {"32KB": 9}, "lars": {"32KB": 6}}}
    return dict(layouts=[dict(name="single", pools=pools)],
                static_gpu=dict(launch_model=dict(per_layout=model)))


def test_gpu_targets_are_evaluated_from_the_rows():
    res = _gpu_results(adamw_ms=1.0, torch_adamw_ms=1.1, pct_copy=86.0, lamb_ms=1.8,
                       lars_ms=1.4, sgd_ms=1.0, launches=2)
    got = {t["what"]: t for t in cli.evaluate_gpu_targets(res)}
    assert got["fusedopt AdamW, % of D2D copy bandwidth"]["met"] is True
    assert got["fusedopt AdamW / torch fused AdamW"]["value"] == pytest.approx(1.0 / 1.1)
    assert got["fusedopt AdamW / torch fused AdamW"]["met"] is True
    assert got["fusedopt LAMB (clipped) / fusedopt AdamW"]["met"] is False  # 1.8 > 1.7
    assert got["fusedopt LARS / fusedopt SGD-momentum"]["met"] is True      # 1.4 <= 1.5
    assert got["fusedopt FusedAdamW: launches per step"]["met"] is True
    assert got["fusedopt FusedLAMB: launches per step"]["met"] is True
    assert got["fusedopt FusedLARS: launches per step"]["met"] is False     # 5 != 6
    # anchors (a pool's copy of another family's row) are not counted twice
    assert sum(1 for t in cli.evaluate_gpu_targets(res) if "launches" in t["what"]) == 3
    slow = _gpu_results(adamw_ms=1.2, torch_adamw_ms=1.1, pct_copy=80.0, lamb_ms=1.8,
                        lars_ms=1.4, sgd_ms=1.0, launches=3)
    got = {t["what"]: t for t in cli.evaluate_gpu_targets(slow)}
    assert got["fusedopt AdamW, % of D2D copy bandwidth"]["met"] is False
    assert got["fusedopt AdamW / torch fused AdamW"]["met"] is False
    assert got["fusedopt FusedAdamW: launches per step"]["met"] is False
