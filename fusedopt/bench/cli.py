"""`python -m fusedopt.bench`: times optimizer steps of fusedopt and the alternatives on
realistic parameter layouts, prints a table, writes JSON and a PNG plot. See --help."""
from __future__ import annotations

import argparse
import datetime
import gc
import math
import os
import platform
import sys
import time
from typing import Dict, List, Optional

import torch

from . import competitors as C
from . import report as R
from . import static_gpu
from .check import check_family
from .layouts import LAYOUT_NAMES, Layout, make_layouts, single
from .timing import (CopyReference, Entry, Snapshot, StreamReference, count_cuda_launches,
                     stream_reference_unavailable, time_interleaved)


# ---- small helpers ---------------------------------------------------------------------------------
def parse_count(text: str) -> int:
    """'64M' -> 67108864, '1G', '512K', '1e6', '1000'."""
    t = str(text).strip().upper()
    mult = {"K": 2**10, "M": 2**20, "G": 2**30}.get(t[-1:], 1)
    if mult != 1:
        t = t[:-1]
    return int(float(t) * mult)


def parse_tiny(text: str):
    a, b = text.lower().split("x")
    return parse_count(a), parse_count(b)


class Progress:
    """tqdm when importable, else a line per pool."""

    def __init__(self, enabled: bool = True):
        self.bar = None
        self.enabled = enabled
        if enabled and sys.stderr.isatty():
            try:
                from tqdm import tqdm
                self.bar = tqdm(total=0, unit="step", dynamic_ncols=True, leave=False)
            except Exception:  # noqa: BLE001
                self.bar = None

    def add(self, n: int) -> None:
        if self.bar is not None:
            self.bar.total += n
            self.bar.refresh()

    def stage(self, text: str) -> None:
        if self.bar is not None:
            self.bar.set_description(text[:60])
        elif self.enabled:
            print(f"  ... {text}", file=sys.stderr, flush=True)

    def tick(self, _name: str = "") -> None:
        if self.bar is not None:
            self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _loadavg():
    try:
        return os.getloadavg()
    except (OSError, AttributeError):
        return None


def make_params(layout: Layout, device: torch.device, seed: int = 0) -> List[torch.Tensor]:
    """fp32 params ~ N(0, 0.02) with grads ~ N(0, 1e-3) (so LAMB's global clipping is active on
    the large layouts), deterministic."""
    torch.manual_seed(seed)
    params = []
    for shape in layout.shapes:
        p = torch.empty(shape, dtype=torch.float32, device=device).normal_(0.0, 0.02)
        p.requires_grad_(True)
        p.grad = torch.empty_like(p).normal_(0.0, 1e-3)
        params.append(p)
    return params


# ---- one pool: a family's implementations + anchors, interleaved -----------------------------------
def run_pool(layout: Layout, family: str, members: List[C.Competitor], anchors: List[C.Competitor],
             device: torch.device, args, progress: Progress, checks: Dict) -> Dict:
    params = make_params(layout, device)
    numel = layout.numel
    rows: List[Dict] = []
    entries: List[Entry] = []
    meta: Dict[str, Dict] = {}
    optimizers = []
    refs = []
    if device.type == "cuda":
        refs.append(CopyReference(params))
    else:
        for mix in CPU_REFERENCES.get(family, ()):
            why = stream_reference_unavailable(mix)
            if why is None:
                refs.append(StreamReference(params, mix))
            else:
                rows.append(dict(name=f"reference {mix}", library="reference", family=None,
                                 error=why))
    for ref in refs:
        entries.append(Entry(ref.name, ref.step))
        meta[ref.name] = dict(library="reference", family=None, bpe=ref.bytes_per_elem,
                              anchor=False)
    for comp, is_anchor in [(m, False) for m in members] + [(a, True) for a in anchors]:
        try:
            opt = comp.make(params)
        except Exception as e:  # noqa: BLE001
            rows.append(dict(name=comp.name, library=comp.library, family=comp.family,
                             error=f"constructor failed: {type(e).__name__}: {e}"[:240]))
            continue
        optimizers.append(opt)
        step = opt.step if comp.simd_level is None else _stepping_at(comp.simd_level, opt.step)
        # Slow implementations (per-tensor Python loops) get at most 5 timed rounds: they are
        # 3-30x off the fused ones, the extra precision would only cost minutes.
        entries.append(Entry(comp.name, step,
                             max_reps=min(args.repeats, 5) if comp.slow else None))
        meta[comp.name] = dict(library=comp.library, family=comp.family,
                               bpe=C.BYTES_PER_ELEM[comp.family], anchor=is_anchor)
    # Snapshot before anything steps: timing must leave params, grads and state as they were.
    snap = Snapshot(params, optimizers)
    progress.add(len(entries) + args.repeats)
    progress.stage(f"{layout.name}/{family}")
    time_interleaved(entries, args.warmup, args.repeats, device, tick=progress.tick,
                     min_time_s=args.min_time)
    launches = {}
    if device.type == "cuda":  # kernels per step of each fusedopt row, from a profiler trace
        for e in entries:
            if meta[e.name]["library"] == "fusedopt" and e.error is None:
                try:
                    launches[e.name] = count_cuda_launches(e.step)
                except Exception as ex:  # noqa: BLE001
                    launches[e.name] = f"{type(ex).__name__}: {ex}"[:200]
    snap.restore()
    restored = snap.verify()

    copy_gbps = None
    if refs and device.type == "cuda":
        e = entries[0]
        if e.times_ms:
            copy_gbps = refs[0].bytes_per_elem * numel / (min(e.times_ms) * 1e6)
    for e in entries:
        m = meta[e.name]
        row = dict(name=e.name, library=m["library"], family=m["family"], anchor=m["anchor"])
        if e.error or not e.times_ms:
            row["error"] = e.error or "no timing"
        else:
            t = sorted(e.times_ms)
            row.update(min_ms=t[0], median_ms=t[len(t) // 2], mean_ms=sum(t) / len(t),
                       reps=len(t), times_ms=[round(x, 4) for x in e.times_ms])
            row["gbps"] = m["bpe"] * numel / (t[0] * 1e6)
            if copy_gbps:
                row["pct_copy"] = 100.0 * row["gbps"] / copy_gbps
        if e.name in launches:
            row["launches"] = launches[e.name]
        if m["library"] == "fusedopt" and m["family"] in checks:
            ck = checks[m["family"]]
            row["check"] = ("check skipped" if ck["ok"] is None else
                            f"{'ok' if ck['ok'] else 'FAIL'} {ck['max_rel_err']:.1e}"
                            if ck["max_rel_err"] is not None else "FAIL")
        rows.append(row)
    by = {r["name"]: r for r in rows}
    base = C.FAMILY_BASE[family]
    for r in rows:
        if r.get("min_ms") is None:
            continue
        b = by.get(base)
        if b and b.get("min_ms"):
            r["vs_base"] = r["min_ms"] / b["min_ms"]
            r["vs_base_median"] = r["median_ms"] / b["median_ms"]
        t = by.get(C.TORCH_FUSED_ADAMW)
        if t and t.get("min_ms"):
            r["vs_torch_fused_adamw"] = r["min_ms"] / t["min_ms"]
    references = {r.name: r.what for r in refs}
    del entries, optimizers, snap, params, refs
    if numel >= (1 << 24):  # free big layouts now, whatever cycles torch.optim keeps (0.2 s)
        gc.collect()
    return dict(family=family, base=base if base in by else None, rows=rows,
                restored_bitwise=restored,
                references=references)


def _stepping_at(level: str, step):
    """step() run with the CPU kernels at SIMD level ``level`` (interleaved with native rows)."""
    import fusedopt

    def run():
        with fusedopt.simd_level(level):
            return step()
    return run


# Reference rows timed with each CPU pool (see timing.py): the family's traffic mix, and for LARS
# and LAMB the floor, a plain implementation moving only the bytes the algorithm must move.
CPU_REFERENCES = {"adamw": ("r4w3",), "sgd": ("r3w2",), "lion": ("r3w2",),
                  "lars": ("r3w2", "lars"), "lamb": ("r4w3", "lamb")}
FLOOR_ROWS = {"lars": "floor: C LARS norms + update",
              "lamb": "floor: C LAMB clip + moments + apply"}

# ---- targets ---------------------------------------------------------------------------------------
TARGETS = [
    # (pool family, implementation, base, limit, description)
    ("adamw", C.FUSEDOPT_ADAMW, C.TORCH_FUSED_ADAMW, 1.0, "fusedopt AdamW / torch fused AdamW"),
    ("adam", "fusedopt FusedAdam", C.TORCH_FUSED_ADAMW, 1.0, "fusedopt Adam / torch fused AdamW"),
    ("sgd", "fusedopt FusedSGD", C.TORCH_FUSED_SGD, 1.1,
     "fusedopt SGD-momentum / torch fused SGD-momentum"),
    ("lion", "fusedopt FusedLion", C.TORCH_FUSED_SGD, 1.1,
     "fusedopt Lion / torch fused SGD-momentum"),
    ("lars", "fusedopt FusedLARS", C.TORCH_FUSED_SGD, 1.1,
     "fusedopt LARS / torch fused SGD-momentum"),
    ("lamb", "fusedopt FusedLAMB", C.FUSEDOPT_ADAMW, 1.5,
     "fusedopt LAMB (max_grad_norm=1) / fusedopt AdamW"),
]


# At every SIMD level (issue 9): LARS and clipped LAMB within 1.1x of their floor rows.
FLOOR_TARGETS = [
    ("lars", "fusedopt FusedLARS", FLOOR_ROWS["lars"], 1.1, "fusedopt LARS / its floor"),
    ("lamb", "fusedopt FusedLAMB", FLOOR_ROWS["lamb"], 1.1, "fusedopt LAMB (clipped) / its floor"),
]


def evaluate_targets(results: Dict) -> List[Dict]:
    """Each target at the native level, then at each extra level timed (--simd-levels): the
    fusedopt row at that level against the same baselines (torch rows, floors, and for LAMB's
    AdamW ratio, fusedopt AdamW at the same level)."""
    out = []
    native = results.get("fusedopt", {}).get("cpu_simd_level")
    levels = [None] + [lv for lv in results.get("simd_levels_timed", []) if lv != native]
    for level in levels:
        for lay in results["layouts"]:
            out += _layout_targets(lay, level, native)
    return out


def _layout_targets(lay: Dict, level: Optional[str], native: Optional[str]) -> List[Dict]:
    out = []
    pools = {p["family"]: p for p in lay["pools"]}
    if lay["name"] == "tiny":
        specs = [("adamw", C.FUSEDOPT_ADAMW, C.TORCH_FUSED_ADAMW, 0.5,
                  "fusedopt AdamW / torch fused AdamW")]
    else:
        specs = TARGETS + FLOOR_TARGETS
    for fam, name, base, limit, what in specs:
        p = pools.get(fam)
        if p is None:
            continue
        rows = {r["name"]: r for r in p["rows"]}
        name = C.level_name(name, level)
        if base.startswith("fusedopt"):
            base = C.level_name(base, level)
        a, b = rows.get(name, {}), rows.get(base, {})
        ratio = med = None
        if a.get("min_ms") and b.get("min_ms"):
            ratio = a["min_ms"] / b["min_ms"]
            med = a["median_ms"] / b["median_ms"]
        # The floor: the same ratio for a kernel moving only the bytes the algorithm needs.
        floor = rows.get(FLOOR_ROWS.get(fam, ""), {})
        floor_ratio = (floor["min_ms"] / b["min_ms"]
                       if floor.get("min_ms") and b.get("min_ms") else None)
        if (level or native) == "baseline":  # reported, without a target (issue 9)
            limit = None
        out.append(dict(layout=lay["name"], what=what, ratio=ratio, ratio_median=med,
                        limit=limit, met=None if ratio is None or limit is None else ratio <= limit,
                        floor_ratio=None if base == FLOOR_ROWS.get(fam) else floor_ratio,
                        simd_level=level or native))
    return out


# GPU targets (issue 11), from the GPU run of the default layouts at full size.
GPU_RATIO_TARGETS = [
    # (pool family, implementation, base, limit, description)
    ("adamw", C.FUSEDOPT_ADAMW, C.TORCH_FUSED_ADAMW, 1.0, "fusedopt AdamW / torch fused AdamW"),
    ("lamb", "fusedopt FusedLAMB", C.FUSEDOPT_ADAMW, 1.7, "fusedopt LAMB (clipped) / fusedopt AdamW"),
    ("lars", "fusedopt FusedLARS", C.FUSEDOPT_SGD, 1.5, "fusedopt LARS / fusedopt SGD-momentum"),
]
GPU_COPY_TARGET = 85.0  # % of the measured D2D copy bandwidth, FusedAdamW on the single layout


def evaluate_gpu_targets(results: Dict) -> List[Dict]:
    out = []
    model = results.get("static_gpu", {}).get("launch_model", {}).get("per_layout", {})
    for lay in results["layouts"]:
        pools = {p["family"]: p for p in lay["pools"]}
        rows = {(p["family"], r["name"]): r for p in lay["pools"] for r in p["rows"]}
        if lay["name"] == "single":
            r = rows.get(("adamw", C.FUSEDOPT_ADAMW), {})
            pct = r.get("pct_copy")
            out.append(dict(layout=lay["name"], what="fusedopt AdamW, % of D2D copy bandwidth",
                            value=pct, limit=GPU_COPY_TARGET, unit="% >=",
                            met=None if pct is None else pct >= GPU_COPY_TARGET))
        for fam, name, base, limit, what in GPU_RATIO_TARGETS:
            if fam not in pools:
                continue
            a, b = rows.get((fam, name), {}), rows.get((fam, base), {})
            ratio = a["min_ms"] / b["min_ms"] if a.get("min_ms") and b.get("min_ms") else None
            out.append(dict(layout=lay["name"], what=what, value=ratio, limit=limit, unit="x <=",
                            met=None if ratio is None else ratio <= limit))
        for fam, pool in pools.items():
            expected = model.get(lay["name"], {}).get(fam, {}).get("32KB")
            for r in pool["rows"]:
                if "launches" not in r or "@" in r["name"] or r.get("anchor"):
                    continue
                got = r["launches"]
                out.append(dict(layout=lay["name"], what=f"{r['name']}: launches per step",
                                value=got, limit=expected, unit="== model",
                                met=None if not isinstance(got, int) or expected is None
                                else got == expected))
    return out


# ---- the size sweep (GB/s vs tensor size) ------------------------------------------------------------
def run_sweep(sizes: List[int], comps: Dict[str, C.Competitor], device: torch.device, args,
              progress: Progress) -> List[Dict]:
    points = []
    names = [C.TORCH_FUSED_ADAMW, C.FUSEDOPT_ADAMW]
    for n in sizes:
        lay = single(n)
        params = make_params(lay, device)
        ref = StreamReference(params) if device.type == "cpu" else CopyReference(params)
        entries = [Entry(ref.name, ref.step)]
        bpe = {ref.name: ref.bytes_per_elem}
        for name in names:
            if name in comps:
                try:
                    entries.append(Entry(name, comps[name].make(params).step))
                    bpe[name] = C.BYTES_PER_ELEM["adamw"]
                except Exception:  # noqa: BLE001
                    pass
        reps = max(args.repeats, 5)
        progress.add(len(entries) + reps)
        progress.stage(f"sweep {n}")
        # Short steps: keep stepping for a while so the minimum means something.
        time_interleaved(entries, args.warmup, reps, device, tick=progress.tick,
                         min_time_s=0.3 if n < (1 << 22) else 0.0)
        for e in entries:
            if e.times_ms:
                t = sorted(e.times_ms)
                points.append(dict(name=e.name, numel=n, min_ms=t[0], median_ms=t[len(t) // 2],
                                   gbps=bpe[e.name] * n / (t[0] * 1e6)))
        del entries, params, ref
    return points


# ---- main ------------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="python -m fusedopt.bench",
        description="Benchmark fusedopt optimizers against torch.optim and optional peers "
                    "(apex, DeepSpeed, timm, lion-pytorch, pytorch-optimizer) on realistic "
                    "parameter layouts. CPU: wall clock, interleaved rounds, min/median. GPU: "
                    "CUDA events with an L2 flush before each step.")
    ap.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                    help="auto: cuda when available, else cpu")
    ap.add_argument("--layouts", default=",".join(LAYOUT_NAMES),
                    help=f"comma list from {', '.join(LAYOUT_NAMES)} (default: all)")
    ap.add_argument("--optimizers", default=",".join(C.FAMILIES),
                    help=f"comma list from {', '.join(C.FAMILIES)} (default: all)")
    ap.add_argument("--impls", default="",
                    help="only implementations whose name contains one of these comma-separated "
                         "substrings (e.g. 'fusedopt,fused'); baselines are always kept")
    ap.add_argument("--no-peers", action="store_true",
                    help="fusedopt and torch.optim only (no apex/DeepSpeed/timm/... detection)")
    ap.add_argument("--numel", default=None,
                    help="elements of the 'single' layout (default 64M on CPU, 256M on GPU)")
    ap.add_argument("--scale", type=float, default=None,
                    help="transformer layouts: multiply the element count by this (dims by its "
                         "square root; tensor count kept). Default: CPU scales each model to "
                         "--transformer-numel, GPU uses the real shapes (1.0)")
    ap.add_argument("--transformer-numel", default=None,
                    help="CPU default target size of the transformer layouts (default: --numel)")
    ap.add_argument("--tiny", default="2000x256", help="COUNTxSIZE of the 'tiny' layout")
    ap.add_argument("--repeats", type=int, default=None,
                    help="timed rounds per pool (default 10 CPU, 20 GPU)")
    ap.add_argument("--warmup", type=int, default=2, help="untimed steps per implementation")
    ap.add_argument("--min-time", type=float, default=0.0,
                    help="keep timing rounds until this many seconds per pool")
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads(N) first")
    ap.add_argument("--sweep", default=None,
                    help="comma list of sizes for the GB/s-vs-size sweep (AdamW; default "
                         "4K..--numel by 4x; 'none' to skip)")
    ap.add_argument("--out", default="bench_results",
                    help="directory for results.json and results.png (default ./bench_results)")
    ap.add_argument("--no-check", action="store_true",
                    help="skip the check of each fusedopt optimizer against fusedopt.reference")
    ap.add_argument("--static-only", action="store_true",
                    help="only print the static GPU report (bytes model, launch counts, ptxas)")
    ap.add_argument("--ptxas-log", default=None,
                    help="ptxas -v log for registers/spills (default: look for the one "
                         ".ci/cuda_checks.sh writes)")
    ap.add_argument("--quick", action="store_true",
                    help="CI smoke run (< 1 min): small sizes, 3 rounds, no slow implementations")
    ap.add_argument("--no-progress", action="store_true", help="no progress bar")
    ap.add_argument("--simd-levels", default="native",
                    help="CPU: also time fusedopt at these SIMD levels, interleaved with the "
                         "native rows in each pool ('all' = every level this CPU has, or a comma "
                         "list such as 'baseline,avx2'; rows are named '... @LEVEL'). Default: "
                         "the native level only")
    return ap


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device == "auto":
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        device = torch.device(args.device)
        if device.type == "cuda" and not torch.cuda.is_available():
            print("error: --device cuda but torch.cuda.is_available() is False", file=sys.stderr)
            return 2
    gpu = device.type == "cuda"

    if args.quick:
        numel = parse_count(args.numel or "1M")
        tnumel = parse_count(args.transformer_numel or "2M")
        tiny_count, tiny_size = parse_tiny(args.tiny if args.tiny != "2000x256" else "500x256")
        args.repeats = args.repeats or 3
        args.warmup = min(args.warmup, 1)
        sweep = [] if args.sweep in (None, "none") else [parse_count(s) for s in args.sweep.split(",")]
    else:
        numel = parse_count(args.numel or ("256M" if gpu else "64M"))
        tnumel = parse_count(args.transformer_numel) if args.transformer_numel else numel
        tiny_count, tiny_size = parse_tiny(args.tiny)
        args.repeats = args.repeats or (20 if gpu else 10)
        if args.sweep == "none":
            sweep = []
        elif args.sweep:
            sweep = [parse_count(s) for s in args.sweep.split(",")]
        else:
            sweep, n = [], 4096
            while n <= numel:
                sweep.append(n)
                n *= 4
    scale = args.scale if args.scale is not None else (1.0 if gpu else None)
    layout_names = [s.strip() for s in args.layouts.split(",") if s.strip()]
    families = [s.strip() for s in args.optimizers.split(",") if s.strip()]
    for f in families:
        if f not in C.FAMILIES:
            print(f"error: unknown optimizer {f!r} (choose from {', '.join(C.FAMILIES)})",
                  file=sys.stderr)
            return 2
    try:
        layouts = make_layouts(layout_names, numel, scale, tiny_count, tiny_size, tnumel)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2

    # The static GPU report uses the real model shapes (scale 1), whatever the timed run uses.
    static = static_gpu.report(make_layouts(layout_names, numel, 1.0, tiny_count, tiny_size, None),
                               families, args.ptxas_log)
    if args.static_only:
        print(static_gpu.format_report(static))
        return 0

    import fusedopt
    info = fusedopt.build_info()
    comps, skipped = C.discover(device.type, peers=not args.no_peers,
                                probe_heavy=not args.quick)
    if gpu and not info.get("cuda_available"):
        skipped += [C.Skipped(c.name, "fusedopt built without its CUDA backend")
                    for c in comps if c.is_fusedopt]
        comps = [c for c in comps if not c.is_fusedopt]
    if args.quick:
        skipped += [C.Skipped(c.name, "slow (per-tensor Python loop / JIT build): not in --quick")
                    for c in comps if c.slow]
        comps = [c for c in comps if not c.slow]
    native_level = info.get("cpu_simd_level")
    extra_levels = []
    if args.simd_levels != "native":
        available = info.get("cpu_simd_levels_available", [])
        asked = available if args.simd_levels == "all" else [
            s.strip() for s in args.simd_levels.split(",") if s.strip()]
        bad = [lv for lv in asked if lv not in available]
        if bad:
            print(f"error: --simd-levels {','.join(bad)}: not a level this CPU can run "
                  f"(available: {', '.join(available)})", file=sys.stderr)
            return 2
        if gpu:
            print("error: --simd-levels is for the CPU backend (--device cpu)", file=sys.stderr)
            return 2
        extra_levels = [lv for lv in asked if lv != native_level]
        comps = comps + [C.at_simd_level(c, lv) for lv in extra_levels
                         for c in comps if c.is_fusedopt]
    wanted = [s.strip() for s in args.impls.split(",") if s.strip()]
    all_comps = C.by_name(comps)
    if wanted:
        comps = [c for c in comps if any(w.lower() in c.name.lower() for w in wanted)]

    print(f"fusedopt {info.get('version')} bench on {device.type}: "
          f"{torch.cuda.get_device_name(device) if gpu else cpu_name()}, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"fusedopt CPU SIMD {native_level}"
          + (f" (also timed at {', '.join(extra_levels)}: rows '... @LEVEL')" if extra_levels
             else ""))
    load = _loadavg()
    if load is not None:
        print(f"load average before the run: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} "
              f"(other processes on these cores make timings noisy; ratios are from interleaved "
              f"rounds of the same run)")
    print(f"layouts: " + "; ".join(f"{l.name} = {l.summary()} ({l.description})" for l in layouts))
    print(f"timing: {args.warmup} warm-up steps, {args.repeats} interleaved rounds per pool "
          f"({'CUDA events, L2 flushed before each step' if gpu else 'wall clock'})")
    if skipped:
        print("skipped:")
        for s in skipped:
            print(f"  - {s.what}: {s.reason}")

    progress = Progress(enabled=not args.no_progress)
    checks: Dict[str, Dict] = {}
    if not args.no_check:
        for c in comps:
            if c.is_fusedopt and c.simd_level is None and c.family in families:
                progress.stage(f"check {c.family}")
                checks[c.family] = check_family(c.family, c.make, device)

    t0 = time.time()
    results = dict(
        tool="python -m fusedopt.bench", argv=sys.argv[1:] if argv is None else argv,
        date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        device=device.type, device_name=torch.cuda.get_device_name(device) if gpu else cpu_name(),
        torch=torch.__version__, threads=torch.get_num_threads(), fusedopt=info,
        bytes_model=C.BYTES_NOTE, repeats=args.repeats, warmup=args.warmup,
        skipped=[dict(what=s.what, reason=s.reason) for s in skipped],
        checks=checks, simd_levels_timed=[native_level] + extra_levels if not gpu else [],
        layouts=[], static_gpu=static, loadavg_before=_loadavg())
    try:
        for lay in layouts:
            lres = dict(name=lay.name, summary=lay.summary(), description=lay.description,
                        count=lay.count, numel=lay.numel, pools=[])
            for fam in families:
                members = [c for c in comps if c.family == fam]
                names = {c.name for c in members}
                wanted_anchors = C.ANCHORS[fam] + (C.FAMILY_BASE[fam],)
                wanted_anchors += tuple(C.level_name(a, lv) for lv in extra_levels
                                        for a in wanted_anchors if a.startswith("fusedopt"))
                anchors = [all_comps[a] for a in wanted_anchors
                           if a in all_comps and a not in names]
                anchors = list({a.name: a for a in anchors}.values())
                if not members and not anchors:
                    continue
                pool = run_pool(lay, fam, members, anchors, device, args, progress, checks)
                lres["pools"].append(pool)
                results.setdefault("reference_kernels", {}).update(pool.get("references", {}))
            results["layouts"].append(lres)
        results["sweep"] = run_sweep(sweep, all_comps, device, args, progress) if sweep else []
    finally:
        progress.close()
    results["elapsed_s"] = round(time.time() - t0, 1)
    results["loadavg_after"] = _loadavg()
    results["targets"] = evaluate_targets(results) if not gpu else []
    results["gpu_targets"] = evaluate_gpu_targets(results) if gpu else []

    print(R.format_table(results))
    if results["sweep"]:
        print("\nGB/s vs tensor size (one tensor; min of rounds):")
        sizes = sorted({p["numel"] for p in results["sweep"]})
        names = list(dict.fromkeys(p["name"] for p in results["sweep"]))
        print("  " + f"{'elements':>10}" + "".join(f"{n[:28]:>30}" for n in names))
        for n in sizes:
            cells = []
            for name in names:
                pt = next((p for p in results["sweep"] if p["numel"] == n and p["name"] == name),
                          None)
                cells.append(f"{pt['gbps']:>25.1f} GB/s" if pt else f"{'-':>30}")
            print("  " + f"{n:>10}" + "".join(cells))
    bad = [f"{l['name']}/{p['family']}" for l in results["layouts"] for p in l["pools"]
           if not p["restored_bitwise"]]
    print(f"\nparams, grads and optimizer state restored bitwise after timing: "
          f"{'yes' if not bad else 'NO: ' + ', '.join(bad)}")
    if checks:
        print("checks against fusedopt.reference (float64): " +
              ", ".join(f"{f} {'ok' if c['ok'] else ('skipped' if c['ok'] is None else 'FAIL')}"
                        for f, c in checks.items()))
    if args.quick and results["targets"]:
        print("\n(--quick: small sizes and few rounds; the targets below are indicative only)")
    print(R.format_targets(results["targets"]))
    print(R.format_gpu_targets(results["gpu_targets"]))
    print()
    print(static_gpu.format_report(static))

    out = args.out
    json_path = os.path.join(out, "results.json")
    R.write_json(results, json_path)
    png_path = os.path.join(out, "results.png")
    why = R.plot(results, png_path)
    print(f"\nwrote {json_path}" + (f" and {png_path}" if why is None else f" ({why})")
          + f" in {results['elapsed_s']} s")
    failed_checks = [f for f, c in checks.items() if c["ok"] is False]
    if failed_checks:
        print(f"error: fusedopt result differs from the reference for {failed_checks}",
              file=sys.stderr)
        return 1
    return 0
