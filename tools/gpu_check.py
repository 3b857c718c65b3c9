"""The on-GPU check of the CUDA backend in one command (issue 11): build, the suite's GPU tests,
compute-sanitizer, the GPU benchmark. Run through tools/gpu_check.sh from the repository root.

Stages run in order, each under the time left of --budget-s, and each writes its result into
<out>/gpu_check.json as soon as it ends, so a run cut short keeps what it completed. The Markdown
summary (<out>/summary.md) is rewritten after every stage and printed last.

--dry-run (what .ci/run calls, no GPU needed): the same stages on this machine. Stages that need
a GPU say "skipped: no GPU" and still prove their inputs: the test selection (`pytest -m gpu`) is
collected and must be skipped entirely with "no GPU" here, the sanitizer's selection is
collected, the benchmark's argument list is parsed. The build stage compiles nothing in a dry
run (the tree's build is used).
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from typing import Dict, List, Optional

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# The suite's GPU tests: everything marked gpu (tests/conftest.py), nothing else.
TEST_SELECTION = ["tests", "-m", "gpu"]
# Under compute-sanitizer: every op (opcheck cases, fp32 and bf16) and every optimizer on odd
# sizes and misaligned views (fp32 and bf16 with fp32 masters), on the real CUDA backend.
SANITIZER_SELECTION = ["tests/test_ops.py::test_opcheck_every_op",
                       "tests/cuda/test_cuda_kernels.py::test_cuda_matches_cpu_backend",
                       "-m", "gpu", "-k", "fp32 or bf16"]
SANITIZER_TOOLS = ("memcheck", "racecheck")
BENCH_ARGS = ["--device", "cuda", "--layouts", "single,gpt2,bert-large", "--sweep", "none",
              "--no-progress"]
STAGES = ("environment", "build", "tests", "bench", "sanitizer")
# What the build leaves of the budget is shared out in stage order: the tests may use this share
# of it, the benchmark this share of what the tests leave, the sanitizer the rest. A stage that
# runs over its share is stopped and recorded as such; the later stages still run.
TESTS_SHARE = 0.45
BENCH_SHARE = 0.6


class Run:
    def __init__(self, out: str, budget_s: float, dry_run: bool):
        self.out = out
        self.t0 = time.time()
        self.budget_s = budget_s
        self.dry_run = dry_run
        self.results: Dict = dict(
            tool="tools/gpu_check.sh", dry_run=dry_run, budget_s=budget_s,
            started=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            stages={})
        os.makedirs(out, exist_ok=True)

    def left(self) -> float:
        return self.budget_s - (time.time() - self.t0)

    def record(self, stage: str, **fields) -> Dict:
        fields.setdefault("status", "ok")
        self.results["stages"][stage] = fields
        self.results["elapsed_s"] = round(time.time() - self.t0, 1)
        with open(os.path.join(self.out, "gpu_check.json"), "w") as f:
            json.dump(self.results, f, indent=1, default=str)
        with open(os.path.join(self.out, "summary.md"), "w") as f:
            f.write(summary(self.results))
        line = f"[gpu_check {self.results['elapsed_s']:6.1f}s] {stage}: {fields['status']}"
        if fields.get("note"):
            line += f" ({fields['note']})"
        print(line, flush=True)
        return fields

    def sh(self, cmd: List[str], log: str, timeout: float, env: Optional[Dict] = None):
        """Runs cmd with its output in <out>/<log>; returns (rc, seconds, output tail)."""
        t = time.time()
        path = os.path.join(self.out, log)
        with open(path, "w") as f:
            f.write("$ " + " ".join(shlex.quote(c) for c in cmd) + "\n")
            f.flush()
            try:
                rc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, cwd=ROOT,
                                    env={**os.environ, **(env or {})},
                                    timeout=max(timeout, 1)).returncode
            except subprocess.TimeoutExpired:
                rc = "timeout"
        with open(path) as f:
            text = f.read()
        return rc, round(time.time() - t, 1), text


def gpu_present() -> bool:
    try:
        import torch
        return torch.cuda.is_available()
    except Exception:  # noqa: BLE001
        return False


# ---- stages -------------------------------------------------------------------------------------
def stage_environment(run: Run) -> None:
    import torch
    info = dict(python=sys.version.split()[0], torch=torch.__version__,
                torch_cuda=torch.version.cuda, cores=os.cpu_count(), gpu=None)
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        info["gpu"] = dict(name=props.name, capability=f"{props.major}.{props.minor}",
                           memory_gib=round(props.total_memory / 2**30, 1),
                           sms=props.multi_processor_count)
    for tool in ("nvcc", "compute-sanitizer", "ncu", "nvidia-smi", "ninja"):  # no ninja: serial build
        info[tool] = shutil.which(tool) or _cuda_bin(tool)
    if info["nvcc"]:
        r = subprocess.run([info["nvcc"], "--version"], capture_output=True, text=True)
        info["nvcc_version"] = (re.findall(r"release [\d.]+", r.stdout) or ["?"])[0]
    run.record("environment", **info,
               note=(info["gpu"] or {}).get("name", "no GPU"))


def _cuda_bin(tool: str) -> Optional[str]:
    for base in (os.environ.get("CUDA_HOME"), "/usr/local/cuda"):
        if base and os.path.exists(os.path.join(base, "bin", tool)):
            return os.path.join(base, "bin", tool)
    return None


def local_arch() -> Optional[str]:
    import torch
    if not torch.cuda.is_available():
        return None
    major, minor = torch.cuda.get_device_capability(0)
    return f"{major}{minor}"


def stage_build(run: Run) -> bool:
    """The CUDA extension against the installed torch, for this GPU's architecture only."""
    arch = local_arch()
    if run.dry_run or arch is None:
        import fusedopt
        info = fusedopt.build_info()
        run.record("build", status="skipped: no GPU" if arch is None else "skipped: dry run",
                   note=f"using the tree's build: backends {info['backends']}",
                   build_info=info)
        return True
    jobs = str(os.cpu_count() or 4)
    env = dict(FUSEDOPT_CUDA="1", FUSEDOPT_CUDA_ARCHS=arch, MAX_JOBS=jobs, FUSEDOPT_EMULATED="0")
    nvcc = shutil.which("nvcc") or _cuda_bin("nvcc")
    if nvcc:
        env["CUDA_HOME"] = os.path.dirname(os.path.dirname(nvcc))
    cmd = [sys.executable, "setup.py", "build_ext", "--inplace"]
    rc, secs, text = run.sh(cmd, "build.log", run.left(), env)
    if rc != 0:
        run.record("build", status=f"FAILED (rc {rc})", seconds=secs, log="build.log",
                   tail=text[-3000:], arch=f"sm_{arch}", jobs=jobs)
        return False
    r = subprocess.run([sys.executable, "-c", "import fusedopt, json; "
                        "print(json.dumps(fusedopt.build_info()))"],
                       capture_output=True, text=True, cwd=ROOT)
    info = json.loads(r.stdout) if r.returncode == 0 else {"error": r.stderr[-2000:]}
    ok = info.get("cuda_available") is True
    run.record("build", status="ok" if ok else "FAILED (extension does not see the GPU)",
               seconds=secs, note=f"sm_{arch}, MAX_JOBS={jobs}, {secs} s", arch=f"sm_{arch}",
               jobs=jobs, build_info=info, log="build.log")
    return ok


def _pytest_counts(text: str) -> Dict[str, int]:
    counts = {}
    tail = text.strip().splitlines()[-1] if text.strip() else ""
    for n, what in re.findall(r"(\d+) (passed|failed|skipped|errors?|deselected|xfailed)", tail):
        counts[what.rstrip("s") if what.startswith("error") else what] = int(n)
    return counts


def stage_tests(run: Run) -> bool:
    base = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rs"]
    if not gpu_present():
        # Same selection: here all of it must be skipped, each with "no GPU".
        rc, secs, text = run.sh(base + TEST_SELECTION, "tests.log", max(run.left(), 60))
        counts = _pytest_counts(text)
        reasons = set(re.findall(r"^SKIPPED \[\d+\] [^:]+:\d+: (.*)$", text, re.M))
        ok = (rc == 0 and counts.get("skipped", 0) > 0 and not counts.get("passed")
              and not counts.get("failed") and reasons == {"no GPU"})
        run.record("tests", status="skipped: no GPU" if ok else "FAILED (selection check)",
                   seconds=secs, counts=counts, skip_reasons=sorted(reasons), log="tests.log",
                   note=f"{counts.get('skipped', 0)} GPU tests selected, all skipped with "
                        f"'no GPU' here" if ok else text[-1500:])
        return ok
    rc, secs, text = run.sh(base + ["-x", "--durations=15"] + TEST_SELECTION, "tests.log",
                            run.left() * TESTS_SHARE)
    counts = _pytest_counts(text)
    failed = re.findall(r"^(FAILED|ERROR) (\S+)", text, re.M)
    ok = rc == 0
    run.record("tests", status="ok" if ok else f"FAILED (rc {rc})", seconds=secs, counts=counts,
               failures=[f for _, f in failed][:20], log="tests.log",
               note=", ".join(f"{v} {k}" for k, v in counts.items()),
               tail=None if ok else text[-3000:])
    return ok


def stage_bench(run: Run) -> None:
    from fusedopt.bench import cli
    bench_out = os.path.join(run.out, "bench")
    args = BENCH_ARGS + ["--out", bench_out]
    cli.build_parser().parse_args(args)  # the arguments parse, GPU or not
    if not gpu_present():
        run.record("bench", status="skipped: no GPU",
                   note="arguments parsed: python -m fusedopt.bench " + " ".join(args))
        return
    rc, secs, text = run.sh([sys.executable, "-m", "fusedopt.bench"] + args, "bench.log",
                            run.left() * BENCH_SHARE)
    path = os.path.join(bench_out, "results.json")
    if rc != 0 or not os.path.exists(path):
        run.record("bench", status=f"FAILED (rc {rc})", seconds=secs, log="bench.log",
                   tail=text[-3000:])
        return
    with open(path) as f:
        res = json.load(f)
    rows = []
    for lay in res["layouts"]:
        for pool in lay["pools"]:
            for r in pool["rows"]:
                if r.get("min_ms") is not None:
                    rows.append(dict(layout=lay["name"], pool=pool["family"], name=r["name"],
                                     min_ms=r["min_ms"], gbps=r.get("gbps"),
                                     pct_copy=r.get("pct_copy"), vs_base=r.get("vs_base"),
                                     launches=r.get("launches")))
    targets = res.get("gpu_targets", [])
    met = sum(1 for t in targets if t["met"])
    run.record("bench", seconds=secs, rows=rows, targets=targets, skipped=res.get("skipped"),
               results=os.path.relpath(path, run.out), log="bench.log",
               note=f"{met}/{len(targets)} targets met")


def stage_sanitizer(run: Run) -> None:
    sel = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-x"] + \
        SANITIZER_SELECTION
    if not gpu_present():
        rc, secs, text = run.sh(sel + ["--co"], "sanitizer.log", 120)
        n = re.findall(r"(\d+)/\d+ tests collected|(\d+) tests? collected", text)
        collected = next((int(a or b) for a, b in n), 0)
        ok = rc == 0 and collected > 0
        run.record("sanitizer", status="skipped: no GPU" if ok else "FAILED (selection)",
                   note=f"{collected} tests selected for memcheck and racecheck",
                   selection=SANITIZER_SELECTION, log="sanitizer.log")
        return
    sanitizer = shutil.which("compute-sanitizer") or _cuda_bin("compute-sanitizer")
    if sanitizer is None:
        run.record("sanitizer", status="FAILED (no compute-sanitizer)")
        return
    reports = {}
    # Each tensor its own allocation, so an out-of-bounds access cannot land in a cached block.
    env = dict(PYTORCH_NO_CUDA_MEMORY_CACHING="1")
    for tool in SANITIZER_TOOLS:
        if run.left() < 30:
            reports[tool] = dict(status="skipped: budget")
            continue
        cmd = [sanitizer, "--tool", tool, "--error-exitcode", "97", "--print-limit", "20"]
        if tool == "racecheck":
            cmd += ["--racecheck-report", "all"]
        rc, secs, text = run.sh(cmd + sel, f"sanitizer_{tool}.log", run.left() - 5, env)
        summary_line = (re.findall(r"(?:ERROR|RACECHECK) SUMMARY: .*", text) or ["no summary"])[-1]
        clean = rc == 0 and re.search(r"SUMMARY: 0 (errors|hazards)", summary_line) is not None
        reports[tool] = dict(status="ok" if clean else f"FAILED (rc {rc})", seconds=secs,
                             summary=summary_line, log=f"sanitizer_{tool}.log",
                             tail=None if clean else text[-3000:])
    ok = all(r["status"] == "ok" for r in reports.values())
    run.record("sanitizer", status="ok" if ok else "FAILED", tools=reports,
               note="; ".join(f"{t}: {r.get('summary', r['status'])}"
                              for t, r in reports.items()))


# ---- summary --------------------------------------------------------------------------------------
def summary(res: Dict) -> str:
    st = res["stages"]
    env = st.get("environment", {})
    gpu = env.get("gpu") or {}
    lines = [f"# GPU check ({'dry run, ' if res['dry_run'] else ''}{res['started']})", "",
             f"- GPU: {gpu.get('name', 'none')} (sm_{gpu.get('capability', '-').replace('.', '')}, "
             f"{gpu.get('memory_gib', '-')} GiB); torch {env.get('torch')} (CUDA "
             f"{env.get('torch_cuda')}), Python {env.get('python')}, nvcc "
             f"{env.get('nvcc_version', '-')}, {env.get('cores')} cores",
             f"- budget {res['budget_s']:.0f} s, elapsed {res.get('elapsed_s', 0):.0f} s", "",
             "| stage | status | notes |", "|---|---|---|"]
    for name in STAGES:
        if name in st:
            s = st[name]
            note = str(s.get("note") or "").replace("\n", " ")[:300]
            lines.append(f"| {name} | {s['status']} | {note} |")
        else:
            lines.append(f"| {name} | not reached | |")
    bench = st.get("bench", {})
    if bench.get("targets"):
        lines += ["", "## Targets", "", "| layout | what | measured | target | |", "|---|---|---|---|---|"]
        for t in bench["targets"]:
            v = t["value"]
            val = "-" if v is None else f"{v:.2f}" if isinstance(v, float) else str(v)
            mark = {True: "met", False: "NOT MET", None: "n/a"}[t["met"]]
            lines.append(f"| {t['layout']} | {t['what']} | {val} | {t['unit']} {t['limit']} | {mark} |")
    if bench.get("rows"):
        lines += ["", "## Benchmark (min step time; GB/s by the bytes model; % of D2D copy)", "",
                  "| layout | pool | implementation | ms | GB/s | % copy | vs base | launches |",
                  "|---|---|---|---|---|---|---|---|"]
        for r in bench["rows"]:
            def f(x, fmt):
                return "-" if x is None else format(x, fmt)
            lines.append(f"| {r['layout']} | {r['pool']} | {r['name']} | {f(r['min_ms'], '.3f')} | "
                         f"{f(r['gbps'], '.0f')} | {f(r['pct_copy'], '.0f')} | "
                         f"{f(r['vs_base'], '.2f')} | {r['launches'] if r['launches'] is not None else '-'} |")
    tests = st.get("tests", {})
    if tests.get("failures"):
        lines += ["", "## Test failures", ""] + [f"- {f}" for f in tests["failures"]]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="tools/gpu_check.sh", description=__doc__.split("\n\n")[0])
    ap.add_argument("--budget-s", type=float, default=480.0,
                    help="wall-clock budget for all stages (default 480)")
    ap.add_argument("--out", default=None,
                    help="results folder (default gpu_check_results/<UTC time>)")
    ap.add_argument("--dry-run", action="store_true",
                    help="check the script itself here: GPU stages skipped with 'no GPU'")
    args = ap.parse_args(argv)
    out = args.out or os.path.join(
        ROOT, "gpu_check_results", datetime.datetime.now(datetime.timezone.utc)
        .strftime("%Y%m%dT%H%M%SZ") + ("-dry-run" if args.dry_run else ""))
    run = Run(os.path.abspath(out), args.budget_s, args.dry_run)
    print(f"[gpu_check] results in {run.out}", flush=True)
    if not args.dry_run and not gpu_present():
        print("[gpu_check] no GPU visible to torch: use --dry-run to check the script itself",
              file=sys.stderr)
    ok = True
    try:
        stage_environment(run)
        if stage_build(run):
            ok = stage_tests(run) and ok
            if run.left() > 30:
                stage_bench(run)
            else:
                run.record("bench", status="skipped: budget")
            if run.left() > 30:
                stage_sanitizer(run)
            else:
                run.record("sanitizer", status="skipped: budget")
        else:
            ok = False
    finally:
        with open(os.path.join(run.out, "summary.md")) as f:
            text = f.read()
        print()
        print(text)
    failed = [n for n, s in run.results["stages"].items() if str(s["status"]).startswith("FAILED")]
    return 1 if failed or not ok else 0


if __name__ == "__main__":
    sys.exit(main())
