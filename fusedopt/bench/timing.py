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


# ---- the CPU reference kernels ---------------------------------------------------------------------
# Plain C loops (OpenMP over torch's thread count, one parallel loop per tensor and pass) with a
# family's minimal memory traffic, timed in the same rounds as the optimizers:
#  r4w3   AdamW's mix: reads p, g, m, v, writes p, m, v (28 B/elem), a few flops per element.
#  r3w2   SGD-momentum's mix: reads p, g, m, writes p, m (20 B/elem).
#  lars   what any LARS must move: per tensor, a read-only pass summing p^2 and g^2 (the trust
#         ratio needs both norms before the first update), then the r3w2 update (28 B/elem).
#  lamb   what any LAMB with global grad-norm clipping must move: a pass summing g^2 over all
#         tensors (the clip factor enters the moments), then per tensor a pass reading g, m, v, p,
#         writing m, v and summing p^2 and u^2, and a pass reading p, m, v and writing p
#         (44 B/elem).
# The last two are floors: the ratio of their time to the family's base time (measured in the
# same run) is what an implementation limited only by memory traffic would reach.
_STREAM_C = r"""
#include <math.h>
#include <stdint.h>
typedef float* const* restrict Arrays;

void fo_ref_r4w3(Arrays p, Arrays g, Arrays m, Arrays v, const int64_t* n, int count,
                 int threads) {
  for (int t = 0; t < count; ++t) {
    float* restrict pt = p[t]; const float* restrict gt = g[t];
    float* restrict mt = m[t]; float* restrict vt = v[t];
    #pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t i = 0; i < n[t]; ++i) {
      const float gi = gt[i];
      const float mi = 0.9f * mt[i] + 0.1f * gi;
      const float vi = 0.999f * vt[i] + 0.001f * gi;
      mt[i] = mi;
      vt[i] = vi;
      pt[i] = 0.99999f * pt[i] - 1e-8f * mi;
    }
  }
}

static void r3w2(float* restrict p, const float* restrict g, float* restrict m, int64_t n,
                 float lr, int threads) {
  #pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    const float mi = 0.9f * m[i] + g[i];
    m[i] = mi;
    p[i] = p[i] - lr * mi;
  }
}

void fo_ref_r3w2(Arrays p, Arrays g, Arrays m, Arrays v, const int64_t* n, int count,
                 int threads) {
  for (int t = 0; t < count; ++t) r3w2(p[t], g[t], m[t], n[t], 1e-8f, threads);
}

void fo_ref_lars(Arrays p, Arrays g, Arrays m, Arrays v, const int64_t* n, int count,
                 int threads) {
  for (int t = 0; t < count; ++t) {
    const float* restrict pt = p[t]; const float* restrict gt = g[t];
    double sp = 0.0, sg = 0.0;
    #pragma omp parallel for simd num_threads(threads) schedule(static) reduction(+:sp, sg)
    for (int64_t i = 0; i < n[t]; ++i) {
      sp += (double)pt[i] * pt[i];
      sg += (double)gt[i] * gt[i];
    }
    const double ratio = sp > 0.0 && sg > 0.0 ? 1e-3 * sqrt(sp) / sqrt(sg) : 1.0;
    r3w2(p[t], g[t], m[t], n[t], (float)(1e-8 * ratio), threads);
  }
}

void fo_ref_lamb(Arrays p, Arrays g, Arrays m, Arrays v, const int64_t* n, int count,
                 int threads) {
  double gg = 0.0;
  for (int t = 0; t < count; ++t) {
    const float* restrict gt = g[t];
    #pragma omp parallel for simd num_threads(threads) schedule(static) reduction(+:gg)
    for (int64_t i = 0; i < n[t]; ++i) gg += (double)gt[i] * gt[i];
  }
  const float clip = gg > 1.0 ? (float)(1.0 / sqrt(gg)) : 1.0f;
  for (int t = 0; t < count; ++t) {
    float* restrict pt = p[t]; const float* restrict gt = g[t];
    float* restrict mt = m[t]; float* restrict vt = v[t];
    double sp = 0.0, su = 0.0;
    #pragma omp parallel for simd num_threads(threads) schedule(static) reduction(+:sp, su)
    for (int64_t i = 0; i < n[t]; ++i) {
      const float gi = gt[i] * clip, pi = pt[i];
      const float mi = 0.9f * mt[i] + 0.1f * gi;
      const float vi = 0.999f * vt[i] + 0.001f * gi * gi;
      mt[i] = mi;
      vt[i] = vi;
      const float u = mi / (sqrtf(vi) + 1e-6f) + 0.01f * pi;
      sp += (double)pi * pi;
      su += (double)u * u;
    }
    const float lr = (float)(1e-8 * (sp > 0.0 && su > 0.0 ? sqrt(sp) / sqrt(su) : 1.0));
    #pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t i = 0; i < n[t]; ++i) {
      const float pi = pt[i];
      pt[i] = pi - lr * (mt[i] / (sqrtf(vt[i]) + 1e-6f) + 0.01f * pi);
    }
  }
}
"""

_MIXES = {
    # mix: (C function, bytes/elem, row name, description)
    "r4w3": ("fo_ref_r4w3", 28, "reference: C stream r4w3",
             "C loop (OpenMP, torch's thread count) reading p, g, m, v and writing p, m, v: "
             "AdamW's memory traffic, 28 B/elem"),
    "r3w2": ("fo_ref_r3w2", 20, "reference: C stream r3w2",
             "C loop reading p, g, m and writing p, m: SGD-momentum's memory traffic, 20 B/elem"),
    "lars": ("fo_ref_lars", 28, "floor: C LARS norms + update",
             "C loops: per tensor a read-only pass summing p^2 and g^2, then the r3w2 update "
             "(28 B/elem): the least traffic any LARS moves"),
    "lamb": ("fo_ref_lamb", 44, "floor: C LAMB clip + moments + apply",
             "C loops: a pass over all grads (global norm), then per tensor r4w2 (moments, "
             "norms) and r3w1 (apply) (44 B/elem): the least traffic any clipped LAMB moves"),
}

_stream_lib = None
_stream_error: Optional[str] = None


def _load_stream_lib():
    """Compiles the C kernels once (cached by source hash); None (with the reason kept) if there
    is no C compiler with OpenMP."""
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
        # "omp simd" lets the reductions vectorize; without -fno-math-errno sqrtf would not.
        # -march=native keeps the loops memory-bound (the kernels are built where they run).
        base = [cc, "-O3", "-fopenmp", "-fno-math-errno", "-shared", "-fPIC", "-std=c99", src,
                "-o", tmp, "-lm"]
        r = subprocess.run(base + ["-march=native"], capture_output=True, text=True)
        if r.returncode != 0:
            r = subprocess.run(base, capture_output=True, text=True)
        if r.returncode != 0:
            _stream_error = f"compiling the C stream kernels failed: {r.stderr.strip()[:200]}"
            return None
        os.replace(tmp, so)
    try:
        lib = ctypes.CDLL(so)
        for fn_name, *_ in _MIXES.values():
            fn = getattr(lib, fn_name)
            fn.argtypes = [ctypes.c_void_p] * 5 + [ctypes.c_int, ctypes.c_int]
            fn.restype = None
        _stream_lib = lib
    except (OSError, AttributeError) as e:
        _stream_error = f"loading the C stream kernels failed: {e}"
    return _stream_lib


def stream_reference_unavailable(mix: str) -> Optional[str]:
    """Why the C reference of ``mix`` cannot run here (None if it can). Only r4w3 has a torch
    fallback."""
    if mix == "r4w3" or _load_stream_lib() is not None:
        return None
    return _stream_error


class StreamReference:
    """A CPU reference row: the C kernels above over the layout's shapes (own buffers; p is the
    params themselves, restored by the pool's snapshot). Without a C compiler, r4w3 falls back to
    torch ops (``m.lerp_(g, 0.1); v.lerp_(g, 0.001); p.add_(m, alpha=-1e-8)``: 3 ops, which move
    36 B/elem, not 28 — labelled as such); the other mixes are then unavailable."""

    def __init__(self, params: List[torch.Tensor], mix: str = "r4w3"):
        fn_name, bpe, name, what = _MIXES[mix]
        self.p = [p.detach() for p in params]
        self.g = [torch.randn_like(p) for p in self.p]
        self.m = [torch.zeros_like(p) for p in self.p]
        self.v = [torch.zeros_like(p) for p in self.p] if mix in ("r4w3", "lamb") else self.m
        self.threads = torch.get_num_threads()
        lib = _load_stream_lib()
        self.fn = getattr(lib, fn_name) if lib is not None else None
        if self.fn is not None:
            self.name, self.bytes_per_elem, self.what = name, bpe, what
            arrays = lambda ts: (ctypes.c_void_p * len(ts))(*[t.data_ptr() for t in ts])  # noqa: E731
            self._args = (arrays(self.p), arrays(self.g), arrays(self.m), arrays(self.v),
                          (ctypes.c_int64 * len(self.p))(*[t.numel() for t in self.p]),
                          len(self.p), self.threads)
        elif mix == "r4w3":
            self.name = "reference: torch ops stream"
            self.bytes_per_elem = 36
            self.what = (f"torch ops m.lerp_(g), v.lerp_(g), p.add_(m) (36 B/elem moved); "
                         f"C kernel unavailable: {_stream_error}")
        else:
            raise RuntimeError(f"C reference {mix!r} unavailable: {_stream_error}")

    @torch.no_grad()
    def step(self) -> None:
        if self.fn is not None:
            self.fn(*self._args)
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


def count_cuda_launches(step: Callable[[], None]) -> int:
    """Kernels launched by one call of ``step``, counted from a torch.profiler trace (CUDA
    activity: every kernel the GPU ran, whoever launched it). The caller has warmed ``step`` up."""
    from torch.profiler import ProfilerActivity, profile

    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        step()
        torch.cuda.synchronize()
    return sum(1 for e in prof.events()
               if e.device_type == torch.autograd.DeviceType.CUDA and not _is_memop(e.name))


def _is_memop(name: str) -> bool:
    # memset / memcpy activities are not kernel launches of the optimizer
    n = name.lower()
    return n.startswith("memset") or n.startswith("memcpy")

