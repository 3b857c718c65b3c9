"""Timing: interleaved wall-clock timing on CPU, CUDA events with an L2 flush on GPU, reference
bandwidth kernels measured in the same run, and snapshot / restore of params and state."""
from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional

import torch


# ---- snapshot / restore ----------------------------------------------------------------------------
class Snapshot:
    """Copies of params, grads and every optimizer's state tensors as they are now. ``restore()``
    puts them back bitwise (state entries created after the snapshot are removed), so timing
    leaves nothing changed. ``verify()`` checks that it did."""

    def __init__(self, params: List[torch.Tensor], optimizers=()):
        self.params = params
        self.p = [p.detach().clone() for p in params]
        self.g = [None if p.grad is None else p.grad.detach().clone() for p in params]
        self.opts = []
        for opt in optimizers:
            state = {}
            for p, s in opt.state.items():
                state[p] = {k: (v.detach().clone() if torch.is_tensor(v) else v)
                            for k, v in s.items()}
            self.opts.append((opt, state))

    @torch.no_grad()
    def restore(self) -> None:
        for p, saved, g in zip(self.params, self.p, self.g):
            p.copy_(saved)
            if g is None:
                p.grad = None
            elif p.grad is None:
                p.grad = g.clone()
            else:
                p.grad.copy_(g)
        for opt, state in self.opts:
            for p in list(opt.state.keys()):
                if p not in state:
                    del opt.state[p]
            for p, s in state.items():
                live = opt.state[p]
                for k in list(live.keys()):
                    if k not in s:
                        del live[k]
                for k, v in s.items():
                    if torch.is_tensor(v) and torch.is_tensor(live.get(k)) and \
                            live[k].shape == v.shape and live[k].dtype == v.dtype:
                        live[k].copy_(v)
                    else:
                        live[k] = v.clone() if torch.is_tensor(v) else v

    def verify(self) -> bool:
        ok = all(torch.equal(p, s) for p, s in zip(self.params, self.p))
        ok = ok and all((g is None and p.grad is None) or
                        (g is not None and p.grad is not None and torch.equal(p.grad, g))
                        for p, g in zip(self.params, self.g))
        for opt, state in self.opts:
            ok = ok and set(opt.state.keys()) == set(state.keys())
            for p, s in state.items():
                for k, v in s.items():
                    live = opt.state[p].get(k)
                    if torch.is_tensor(v):
                        ok = ok and torch.is_tensor(live) and torch.equal(live, v)
        return bool(ok)


# ---- the CPU reference kernel ----------------------------------------------------------------------
# A streaming kernel with AdamW's memory traffic: reads p, g, m, v and writes p, m, v
# (7 x 4 bytes per element), a few flops per element, OpenMP over the threads torch uses.
_STREAM_C = r"""
#include <stdint.h>
void fusedopt_bench_stream_r4w3(float* restrict p, const float* restrict g, float* restrict m,
                                float* restrict v, int64_t n, int threads) {
  #pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    const float gi = g[i];
    const float mi = 0.9f * m[i] + 0.1f * gi;
    const float vi = 0.999f * v[i] + 0.001f * gi;
    m[i] = mi;
    v[i] = vi;
    p[i] = 0.99999f * p[i] - 1e-8f * mi;
  }
}
"""

_stream_lib = None
_stream_error: Optional[str] = None


def _load_stream_lib():
    """Compiles the C kernel once (cached by source hash); None (with the reason kept) if there is
    no C compiler with OpenMP."""
    global _stream_lib, _stream_error
    if _stream_lib is not None or _stream_error is not None:
        return _stream_lib
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        _stream_error = "no C compiler (cc/gcc) on PATH"
        return None
    tag = hashlib.sha1(_STREAM_C.encode()).hexdigest()[:12]
    cache = os.path.join(os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")),
                         "fusedopt_bench")
    try:
        os.makedirs(cache, exist_ok=True)
    except OSError:
        cache = tempfile.gettempdir()
    so = os.path.join(cache, f"stream_{tag}.so")
    if not os.path.exists(so):
        src = os.path.join(cache, f"stream_{tag}.c")
        with open(src, "w") as f:
            f.write(_STREAM_C)
        tmp = so + f".{os.getpid()}.tmp"
        r = subprocess.run([cc, "-O3", "-fopenmp", "-shared", "-fPIC", "-std=c99", src, "-o", tmp],
                           capture_output=True, text=True)
        if r.returncode != 0:
            _stream_error = f"compiling the C stream kernel failed: {r.stderr.strip()[:200]}"
            return None
        os.replace(tmp, so)
    try:
        lib = ctypes.CDLL(so)
        fn = lib.fusedopt_bench_stream_r4w3
        fn.argtypes = [ctypes.c_void_p] * 4 + [ctypes.c_int64, ctypes.c_int]
        fn.restype = None
        _stream_lib = fn
    except OSError as e:
        _stream_error = f"loading the C stream kernel failed: {e}"
    return _stream_lib


class StreamReference:
    """The CPU reference: per tensor, one pass reading 4 fp32 arrays and writing 3 (AdamW's mix,
    28 B/elem). Uses the compiled C kernel; without a C compiler, falls back to torch ops
    (``m.lerp_(g, 0.1); v.lerp_(g, 0.001); p.add_(m, alpha=-1e-8)``: 3 ops, which move
    36 B/elem, not 28 — labelled as such)."""

    def __init__(self, params: List[torch.Tensor]):
        self.p = [p.detach() for p in params]
        self.g = [torch.randn_like(p) for p in self.p]
        self.m = [torch.zeros_like(p) for p in self.p]
        self.v = [torch.zeros_like(p) for p in self.p]
        self.fn = _load_stream_lib()
        self.threads = torch.get_num_threads()
        if self.fn is not None:
            self.name = "reference: C stream r4w3"
            self.bytes_per_elem = 28
            self.what = ("C loop (OpenMP, torch's thread count) reading p, g, m, v and writing "
                         "p, m, v: AdamW's memory traffic, 28 B/elem")
        else:
            self.name = "reference: torch ops stream"
            self.bytes_per_elem = 36
            self.what = (f"torch ops m.lerp_(g), v.lerp_(g), p.add_(m) (36 B/elem moved); "
                         f"C kernel unavailable: {_stream_error}")

    @torch.no_grad()
    def step(self) -> None:
        if self.fn is not None:
            for p, g, m, v in zip(self.p, self.g, self.m, self.v):
                self.fn(p.data_ptr(), g.data_ptr(), m.data_ptr(), v.data_ptr(), p.numel(),
                        self.threads)
        else:
            for p, g, m, v in zip(self.p, self.g, self.m, self.v):
                m.lerp_(g, 0.1)
                v.lerp_(g, 0.001)
                p.add_(m, alpha=-1e-8)


class CopyReference:
    """The GPU reference: device-to-device copy of a buffer as large as the layout's params,
    2 x 4 B/elem moved; its GB/s is the peak the optimizers are compared with."""

    def __init__(self, params: List[torch.Tensor]):
        n = sum(p.numel() for p in params)
        dev = params[0].device
        self.src = torch.empty(n, dtype=torch.float32, device=dev).normal_()
        self.dst = torch.empty_like(self.src)
        self.name = "reference: D2D copy"
        self.bytes_per_elem = 8
        self.what = "device-to-device copy (read 4 + write 4 B/elem), the measured peak"

    def step(self) -> None:
        self.dst.copy_(self.src)


# ---- timers --------------------------------------------------------------------------------------
@dataclass
class Entry:
    name: str
    step: Callable[[], None]
    times_ms: List[float] = field(default_factory=list)
    error: Optional[str] = None
    max_reps: Optional[int] = None  # slow entries: fewer timed rounds (and 1 warm-up step)


def time_interleaved(entries: List[Entry], warmup: int, repeats: int, device: torch.device,
                     tick: Callable[[str], None] = lambda name: None,
                     min_time_s: float = 0.0) -> None:
    """Runs every entry ``warmup`` times, then ``repeats`` rounds in which each entry steps once
    (round r starts at entry r mod n, so no entry always follows the same neighbour). CPU: wall
    clock around each step. CUDA: events around each step, L2 flushed before it. An entry that
    raises is marked with its error and left out of later rounds. If ``min_time_s`` > 0, rounds
    continue past ``repeats`` until that much time was spent (for very short steps)."""
    cuda = device.type == "cuda"
    flush = None
    if cuda:
        l2 = getattr(torch.cuda.get_device_properties(device), "L2_cache_size", 0) or (64 << 20)
        flush = torch.empty(int(2 * l2) // 4 + 1, dtype=torch.float32, device=device)

    def one(e: Entry, record: bool) -> None:
        if e.error is not None or (record and e.max_reps is not None
                                   and len(e.times_ms) >= e.max_reps):
            return
        try:
            if cuda:
                flush.zero_()
                start = torch.cuda.Event(enable_timing=True)
                end = torch.cuda.Event(enable_timing=True)
                start.record()
                e.step()
                end.record()
                end.synchronize()
                ms = start.elapsed_time(end)
            else:
                t0 = time.perf_counter()
                e.step()
                ms = (time.perf_counter() - t0) * 1e3
        except Exception as ex:  # noqa: BLE001  (a peer may fail on some layout)
            e.error = f"{type(ex).__name__}: {str(ex).splitlines()[0][:200] if str(ex) else ''}"
            return
        if record:
            e.times_ms.append(ms)

    for e in entries:
        for _ in range(min(warmup, 1) if e.max_reps is not None else warmup):
            one(e, False)
        tick(e.name)
    n = len(entries)
    t_start = time.perf_counter()
    r = 0
    while r < repeats or (min_time_s > 0 and time.perf_counter() - t_start < min_time_s
                          and r < 50 * repeats):
        for k in range(n):
            one(entries[(r + k) % n], True)
        if r < repeats:
            tick("")
        r += 1
