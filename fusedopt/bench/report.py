"""Table, JSON and PNG output of a benchmark run."""
from __future__ import annotations

import json
import os
from typing import Dict, List, Optional


def fmt_ms(x: Optional[float]) -> str:
    if x is None:
        return "-"
    return f"{x:.3f}" if x < 1 else (f"{x:.2f}" if x < 100 else f"{x:.1f}")


def fmt_ratio(x: Optional[float]) -> str:
    return "-" if x is None else f"{x:.2f}x"


def format_table(results: Dict) -> str:
    """One block per layout; rows grouped by the pool (family) they were timed in."""
    out = []
    dev = results["device"]
    gbs_col = "GB/s" if dev == "cpu" else "GB/s (% copy)"
    for lay in results["layouts"]:
        out.append("")
        out.append(f"== layout {lay['name']}: {lay['summary']} ({lay['description']})")
        head = (f"  {'pool':<6} {'implementation':<36} {'min ms':>9} {'median ms':>10} "
                f"{gbs_col:>14} {'vs base':>8} {'vs torch fused AdamW':>21}  check")
        out.append(head)
        out.append("  " + "-" * (len(head) - 2))
        for pool in lay["pools"]:
            base = pool.get("base")
            for row in pool["rows"]:
                if row.get("error"):
                    out.append(f"  {pool['family']:<6} {row['name']:<36} failed: {row['error']}")
                    continue
                gbs = "-" if row["gbps"] is None else f"{row['gbps']:.1f}"
                if dev != "cpu" and row.get("pct_copy") is not None:
                    gbs += f" ({row['pct_copy']:.0f}%)"
                check = row.get("check") or ""
                mark = "*" if row["name"] == base else " "
                out.append(f"  {pool['family']:<6} {row['name'] + mark:<36} "
                           f"{fmt_ms(row['min_ms']):>9} {fmt_ms(row['median_ms']):>10} "
                           f"{gbs:>14} {fmt_ratio(row.get('vs_base')):>8} "
                           f"{fmt_ratio(row.get('vs_torch_fused_adamw')):>21}  {check}")
    out.append("")
    out.append("  * = the pool's base for 'vs base' (ratios of min times within one interleaved "
               "pool, i.e. the same run).")
    out.append(f"  GB/s = {results['bytes_model']}")
    for name, what in results.get("reference_kernels", {}).items():
        out.append(f"  {name}: {what}")
    return "\n".join(out)


def format_targets(targets: List[Dict]) -> str:
    if not targets:
        return ""
    out = ["", "CPU performance targets (issue 5; ratios of min step times in the same run, "
                "median-based ratio in brackets; the floor is the same ratio for a C kernel that "
                "moves only the bytes the algorithm must move):"]
    for t in targets:
        status = {True: "MET", False: "NOT MET", None: "n/a"}[t["met"]]
        if t["limit"] is None:
            status = "figure"
        ratio = "-" if t["ratio"] is None else f"{t['ratio']:.2f}x"
        med = "" if t.get("ratio_median") is None else f" [{t['ratio_median']:.2f}x]"
        floor = ("" if t.get("floor_ratio") is None else
                 f"; memory-traffic floor {t['floor_ratio']:.2f}x")
        level = f"@{t['simd_level']}" if t.get("simd_level") else ""
        out.append(f"  {status:<8} {level:<9} {t['layout']:<11} {t['what']:<50} {ratio:>7}{med:<9} "
                   + (f"(no target at this level{floor})" if t["limit"] is None else
                    f"(target <= {t['limit']:.2f}x{floor})"))
    return "\n".join(out)


def format_gpu_targets(targets: List[Dict]) -> str:
    if not targets:
        return ""
    out = ["", "GPU targets (issue 11; ratios of min step times in the same run; launches counted "
                "from a torch.profiler trace of one step against the static model, 32 KB tables):"]
    for t in targets:
        status = {True: "MET", False: "NOT MET", None: "n/a"}[t["met"]]
        v = t["value"]
        val = ("-" if v is None else f"{v:.2f}" if isinstance(v, float) else str(v))
        out.append(f"  {status:<8} {t['layout']:<11} {t['what']:<58} {val:>8}  "
                   f"(target {t['unit']} {t['limit']})")
    return "\n".join(out)


def write_json(results: Dict, path: str) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump(results, f, indent=1, default=str)


def plot(results: Dict, path: str) -> Optional[str]:
    """Time per step by optimizer and layout (one panel per layout), and GB/s vs tensor size.
    Returns None, or why no plot was written."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except Exception as e:  # noqa: BLE001
        return f"matplotlib not importable ({type(e).__name__}); no plot"
    layouts = results["layouts"]
    sweep = results.get("sweep") or []
    ncols = len(layouts) + (1 if sweep else 0)
    if ncols == 0:
        return "nothing to plot"
    fig, axes = plt.subplots(1, ncols, figsize=(6.5 * ncols, 7), squeeze=False)
    for ax, lay in zip(axes[0], layouts):
        names, vals, colors = [], [], []
        for pool in lay["pools"]:
            for row in pool["rows"]:
                if row.get("min_ms") is None or row.get("anchor"):
                    continue
                names.append(row["name"])
                vals.append(row["min_ms"])
                lib = row.get("library", "")
                colors.append({"fusedopt": "tab:red", "torch": "tab:blue",
                               "reference": "tab:gray"}.get(lib, "tab:green"))
        y = range(len(names))
        ax.barh(list(y), vals, color=colors)
        ax.set_yticks(list(y))
        ax.set_yticklabels(names, fontsize=7)
        ax.invert_yaxis()
        ax.set_xscale("log")
        ax.set_xlabel("ms per step (min, log scale)")
        ax.set_title(f"{lay['name']}: {lay['summary']}", fontsize=9)
    if sweep:
        ax = axes[0][-1]
        by_name: Dict[str, list] = {}
        for pt in sweep:
            if pt.get("gbps") is not None:
                by_name.setdefault(pt["name"], []).append((pt["numel"], pt["gbps"]))
        for name, pts in by_name.items():
            pts.sort()
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=name)
        ax.set_xscale("log", base=2)
        ax.set_xlabel("elements (one tensor)")
        ax.set_ylabel("effective GB/s (bytes model)")
        ax.set_title("GB/s vs tensor size", fontsize=9)
        ax.legend(fontsize=7)
        ax.grid(True, alpha=0.3)
    fig.suptitle(f"fusedopt bench on {results['device_name']} ({results['device']})", fontsize=10)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return None
