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
