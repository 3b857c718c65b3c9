"""Runs on every rank of a gloo job started by tests/test_distributed.py (torchrun); writes one
JSON of check results per rank. All checks compare a sharded run with an unsharded run of the
same optimizer on the same gradients, on the same rank (the unsharded copy is replicated)."""
from __future__ import annotations

import json
import os
import sys
import traceback

import torch
import torch.distributed as dist
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.tensor import DTensor, Replicate, Shard, distribute_tensor

import fusedopt
import fusedopt.apex
from teardown import finish_and_exit

ELEMENTWISE = {
    "adamw": (fusedopt.FusedAdamW, dict(lr=1e-2, weight_decay=0.1)),
    "adam": (fusedopt.FusedAdam, dict(lr=1e-2, weight_decay=0.1, amsgrad=True)),
    "sgd": (fusedopt.FusedSGD, dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01)),
    "lion": (fusedopt.FusedLion, dict(lr=1e-3, weight_decay=0.1)),
    "apex-adam": (fusedopt.apex.FusedAdam, dict(lr=1e-2, weight_decay=0.1)),
    "apex-sgd": (fusedopt.apex.FusedSGD, dict(lr=0.05, momentum=0.9)),
}
NORMED = {
    "lamb": (fusedopt.FusedLAMB, dict(lr=1e-2, weight_decay=0.1, max_grad_norm=0.5)),
    "lamb-noclip": (fusedopt.FusedLAMB, dict(lr=1e-2, weight_decay=0.1, max_grad_norm=None,
                                             trust_clip=True)),
    "lars": (fusedopt.FusedLARS, dict(lr=0.1, momentum=0.9, weight_decay=0.01,
                                      trust_coefficient=0.02)),
    "lars-clip": (fusedopt.FusedLARS, dict(lr=0.1, momentum=0.9, weight_decay=0.01,
                                           trust_coefficient=0.02, clip=True,
                                           exclude_bias_and_norm=True)),
    "apex-lamb": (fusedopt.apex.FusedLAMB, dict(lr=1e-2, max_grad_norm=0.5)),
    "apex-mp-lamb": (fusedopt.apex.FusedMixedPrecisionLamb, dict(lr=1e-2, max_grad_norm=0.5)),
}
ALL = {**ELEMENTWISE, **NORMED}
# Shapes with rows that do not split evenly, and ones that leave some ranks an empty shard.
SHAPES = [(7, 5), (7,), (1,), (2, 3), (0, 4), (33, 2)]


def bits(t: torch.Tensor) -> torch.Tensor:
    return t.detach().reshape(-1).contiguous().view(torch.uint8)


def full(t):
    return t.full_tensor() if isinstance(t, DTensor) else t


def equal_bits(a, b) -> bool:
    a, b = full(a), full(b)
    return a.dtype == b.dtype and a.shape == b.shape and torch.equal(bits(a), bits(b))


def grads_for(step: int, shapes, dtype):
    gen = torch.Generator().manual_seed(1000 + step)
    return [torch.randn(s, generator=gen).to(dtype) for s in shapes]


def close(a, b, dtype) -> bool:
    """LAMB / LARS: equal up to the rounding of the norms (summed in another order)."""
    a, b = full(a), full(b)
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    tol = 1e-5 if dtype in (torch.float32, torch.float64) else 1e-2
    return torch.allclose(a.double(), b.double(), rtol=tol, atol=tol * 1e-2)


def sharded_vs_plain(mesh, placements_of, name, dtype, master, steps=5, extra_plain=False):
    """Params of SHAPES sharded on mesh (placements_of(shape)), optionally plus one plain param,
    against plain copies; returns a list of mismatch descriptions (empty: equal: bitwise for the
    element-wise optimizers, within the norms' rounding for LAMB / LARS)."""
    cls, kw = ALL[name]
    same = equal_bits if name in ELEMENTWISE else (lambda a, b: close(a, b, dtype))
    gen = torch.Generator().manual_seed(7)
    inits = [torch.randn(s, generator=gen).to(dtype) for s in SHAPES]
    plain = [torch.nn.Parameter(x.clone()) for x in inits]
    sharded = [torch.nn.Parameter(distribute_tensor(x.clone(), mesh, placements_of(x.shape)))
               for x in inits]
    if extra_plain:
        x = torch.randn(3, 3, generator=gen).to(dtype)
        plain.append(torch.nn.Parameter(x.clone()))
        sharded.append(torch.nn.Parameter(x.clone()))
    kw = {**kw, "master_weights": True} if master else kw
    o_plain = cls(plain, **kw)
    o_sharded = cls(sharded, **kw)
    shapes = [p.shape for p in plain]
    for step in range(steps):
        for i, g in enumerate(grads_for(step, shapes, dtype)):
            if step == 2 and i == 0:  # a param without grad for a step
                plain[i].grad = sharded[i].grad = None
                continue
            plain[i].grad = g.clone()
            sp = sharded[i]
            sp.grad = distribute_tensor(g.clone(), sp.device_mesh, sp.placements) \
                if isinstance(sp, DTensor) else g.clone()
        o_plain.step()
        o_sharded.step()
    bad = []
    for i, (p, q) in enumerate(zip(plain, sharded)):
        if not same(p, q):
            bad.append(f"param {i}")
        sp, sq = o_plain.state[p], o_sharded.state[q]
        if set(sp) != set(sq):
            bad.append(f"state keys {i}: {sorted(sp)} vs {sorted(sq)}")
            continue
        for k in sp:
            if isinstance(q, DTensor) and k != "step":
                if not isinstance(sq[k], DTensor) or sq[k].placements != q.placements:
                    bad.append(f"state {k} of {i} is not a DTensor placed like its param")
            if not same(sp[k], sq[k]):
                bad.append(f"state {k} of param {i}")
    return bad


def repeatable(mesh, name):
    """Two sharded runs of LAMB / LARS from the same start are bitwise equal."""
    cls, kw = NORMED[name]
    runs = []
    for _ in range(2):
        gen = torch.Generator().manual_seed(5)
        ps = [torch.nn.Parameter(distribute_tensor(torch.randn(s, generator=gen), mesh,
                                                   [Shard(0)])) for s in SHAPES]
        opt = cls(ps, **kw)
        for step in range(3):
            for p, g in zip(ps, grads_for(step, [p.shape for p in ps], torch.float32)):
                p.grad = distribute_tensor(g, mesh, [Shard(0)])
            opt.step()
        runs.append([full(p).clone() for p in ps])
    return [f"param {i}" for i, (a, b) in enumerate(zip(*runs)) if not equal_bits(a, b)]


def found_inf_on_one_rank(mesh, name):
    """found_inf set on rank 1 only: every rank must skip (bitwise unchanged), then apply."""
    cls, kw = ALL[name]
    gen = torch.Generator().manual_seed(9)
    inits = [torch.randn(s, generator=gen) for s in SHAPES]
    ps = [torch.nn.Parameter(distribute_tensor(x, mesh, [Shard(0)] * mesh.ndim)) for x in inits]
    opt = cls(ps, **kw)
    for p, g in zip(ps, grads_for(0, [p.shape for p in ps], torch.float32)):
        p.grad = distribute_tensor(g, p.device_mesh, p.placements)
    opt.step()
    before = [full(p).clone() for p in ps]
    states = [{k: full(v).clone() for k, v in opt.state[p].items()} for p in ps]
    opt.grad_scale = torch.tensor(1.0)
    opt.found_inf = torch.tensor(1.0 if dist.get_rank() == 1 else 0.0)
    opt.step()
    bad = []
    for i, p in enumerate(ps):
        if not equal_bits(before[i], p):
            bad.append(f"param {i} changed on a skipped step")
        for k, v in opt.state[p].items():
            if not equal_bits(states[i][k], v):
                bad.append(f"state {k} of {i} changed on a skipped step")
    opt.found_inf = torch.tensor(0.0)
    opt.step()
    if all(equal_bits(b, p) for b, p in zip(before, ps) if p.numel()):
        bad.append("the next finite step was not applied")
    return bad


def larc_sharded_vs_plain(mesh, inner, placements_of):
    """apex LARC wrapping torch SGD or FusedSGD on sharded params (plus one plain param) equals
    LARC on plain copies within the rounding of the cross-shard norms."""
    from fusedopt.apex import LARC

    gen = torch.Generator().manual_seed(21)
    inits = [torch.randn(s, generator=gen) for s in SHAPES] + [torch.randn(3, 3, generator=gen)]
    plain = [torch.nn.Parameter(x.clone()) for x in inits]
    sharded = [torch.nn.Parameter(distribute_tensor(x.clone(), mesh, placements_of(x.shape)))
               for x in inits[:-1]] + [torch.nn.Parameter(inits[-1].clone())]
    opts = [LARC(inner(ps), trust_coefficient=0.02, clip=clip)
            for ps, clip in ((plain, True), (sharded, True))]
    for step in range(4):
        for i, g in enumerate(grads_for(step, [p.shape for p in plain], torch.float32)):
            plain[i].grad = g.clone()
            q = sharded[i]
            q.grad = distribute_tensor(g.clone(), q.device_mesh, q.placements) \
                if isinstance(q, DTensor) else g.clone()
        for o in opts:
            o.step()
    return [f"param {i}" for i, (p, q) in enumerate(zip(plain, sharded))
            if not close(p, q, torch.float32)]


def grad_scaler_overflow_on_one_rank(mesh):
    """torch.amp.GradScaler with an inf in rank 1's shard only: every rank skips the step and
    drops the scale; the next finite step is applied on every rank."""
    ps = [torch.nn.Parameter(distribute_tensor(torch.randn(s, generator=torch.Generator()
                                                           .manual_seed(3)), mesh, [Shard(0)]))
          for s in SHAPES]
    opt = fusedopt.FusedAdamW(ps, lr=0.1)
    scaler = torch.amp.GradScaler("cpu", init_scale=4.0)
    bad = []
    for step, overflow in enumerate((False, True, False)):
        for p, g in zip(ps, grads_for(step, [p.shape for p in ps], torch.float32)):
            p.grad = distribute_tensor(g * 4.0 if not overflow else g, mesh, [Shard(0)])
        if overflow and dist.get_rank() == 1:
            ps[0].grad.to_local().view(-1)[0] = float("inf")
        before = [full(p).clone() for p in ps]
        scaler.scale(torch.ones(()))
        scaler.step(opt)
        scaler.update()
        changed = any(not equal_bits(b, p) for b, p in zip(before, ps))
        if changed == overflow:
            bad.append(f"step {step}: overflow={overflow} but params changed={changed}")
        scales = [torch.zeros(()) for _ in range(dist.get_world_size())]
        dist.all_gather(scales, torch.tensor(scaler.get_scale()))
        if len({float(x) for x in scales}) != 1:
            bad.append(f"step {step}: scales differ across ranks: {scales}")
    if scaler.get_scale() != 2.0:
        bad.append(f"scale {scaler.get_scale()} after one overflow, expected 2.0")
    return bad


def collectives_per_step(mesh):
    """{optimizer: collectives of one step with a GradScaler-style found_inf} (budget: 1)."""
    from torch.distributed.tensor.debug import CommDebugMode

    out = {}
    for name, (cls, kw) in ALL.items():
        ps = [torch.nn.Parameter(distribute_tensor(torch.ones(s), mesh, [Shard(0)]))
              for s in SHAPES]
        opt = cls(ps, **kw)
        for p in ps:
            p.grad = distribute_tensor(torch.ones(p.shape), mesh, [Shard(0)])
        opt.grad_scale, opt.found_inf = torch.tensor(2.0), torch.tensor(0.0)
        counts = []
        for _ in range(2):
            mode = CommDebugMode()
            with mode:
                opt.step()
            counts.append(mode.get_total_counts())
        out[name] = counts
    return out


def errors(mesh):
    """FSDP1 flat params are refused with a clear error; LAMB and LARC take replicated
    DTensors (LARC's result equals the plain run)."""
    from fusedopt.apex import LARC

    out = {}
    rep = distribute_tensor(torch.randn(6, 2), mesh, [Replicate()] * mesh.ndim)
    # LARC on replicated DTensors equals LARC on plain tensors.
    pr, pp = torch.nn.Parameter(rep.clone()), torch.nn.Parameter(rep.full_tensor().clone())
    opts = [LARC(fusedopt.FusedSGD([q], lr=0.1, momentum=0.9, weight_decay=0.01))
            for q in (pr, pp)]
    for step in range(3):
        g = grads_for(step, [(6, 2)], torch.float32)[0]
        pr.grad, pp.grad = distribute_tensor(g.clone(), mesh, [Replicate()] * mesh.ndim), g
        for o in opts:
            o.step()
    out["LARC replicated"] = "ok" if equal_bits(pr, pp) else "differs"
    try:
        fusedopt.FusedLAMB([torch.nn.Parameter(rep)])
        out["replicated"] = "ok"
    except Exception as e:  # noqa: BLE001
        out["replicated"] = repr(e)
    try:
        from torch.distributed.fsdp._flat_param import FlatParameter

        flat = FlatParameter(torch.zeros(8), requires_grad=True)
        flat._is_flat_param = True
        fusedopt.FusedAdamW([flat])
        out["fsdp1"] = "no error"
    except TypeError as e:
        out["fsdp1"] = str(e)
    except Exception as e:  # noqa: BLE001
        out["fsdp1"] = "unexpected " + repr(e)
    return out


def fsdp2_model(mesh):
    """fully_shard on a small model: AdamW steps after real backward passes, identical on all
    ranks to an unsharded AdamW fed the same (all-gathered) gradients."""
    from torch.distributed.fsdp import fully_shard

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.ReLU(), torch.nn.Linear(7, 1))
    ref = [torch.nn.Parameter(p.detach().clone()) for p in model.parameters()]
    fully_shard(model, mesh=mesh)
    opt = fusedopt.FusedAdamW(model.parameters(), lr=1e-2)
    ref_opt = fusedopt.FusedAdamW(ref, lr=1e-2)
    for step in range(3):
        x = torch.randn(8, 5, generator=torch.Generator().manual_seed(step))
        model(x).square().mean().backward()
        for r, p in zip(ref, model.parameters()):
            r.grad = p.grad.full_tensor()
        opt.step()
        ref_opt.step()
        opt.zero_grad()
    return [f"param {i}" for i, (r, p) in enumerate(zip(ref, model.parameters()))
            if not equal_bits(r, p)]


def fsdp2_cpu_offload(mesh):
    """fully_shard with CPUOffloadPolicy (sharded params and their grads live on the CPU, where
    the optimizer runs on the CPU backend): LAMB and AdamW steps equal unsharded runs fed the
    same gradients (AdamW bitwise, LAMB within the rounding of its cross-shard norms)."""
    from torch.distributed.fsdp import CPUOffloadPolicy, fully_shard

    out = []
    for name, cls, kw in (("adamw", fusedopt.FusedAdamW, dict(lr=1e-2)),
                          ("lamb", fusedopt.FusedLAMB, dict(lr=1e-2, max_grad_norm=0.5))):
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.ReLU(),
                                    torch.nn.Linear(7, 3))
        ref = [torch.nn.Parameter(p.detach().clone()) for p in model.parameters()]
        # pin_memory needs an accelerator; on a GPU machine the default (True) applies.
        fully_shard(model, mesh=mesh, offload_policy=CPUOffloadPolicy(pin_memory=False))
        opt, ref_opt = cls(model.parameters(), **kw), cls(ref, **kw)
        for step in range(3):
            x = torch.randn(8, 5, generator=torch.Generator().manual_seed(step))
            model(x).square().mean().backward()
            for r, p in zip(ref, model.parameters()):
                assert p.device.type == "cpu" and p.grad.device.type == "cpu"
                r.grad = p.grad.full_tensor()
            opt.step()
            ref_opt.step()
            opt.zero_grad()
        same = equal_bits if name == "adamw" else (lambda a, b: close(a, b, torch.float32))
        out += [f"{name} param {i}" for i, (r, p) in enumerate(zip(ref, model.parameters()))
                if not same(r, p)]
    return out


def ddp_unchanged():
    """DistributedDataParallel needs nothing from fusedopt: after each step every rank holds
    the same params, equal bitwise to a plain optimizer fed the all-reduced gradients."""
    from torch.nn.parallel import DistributedDataParallel as DDP

    out = []
    rank = dist.get_rank()
    for name in ("adamw", "lamb", "lars"):
        cls, kw = ALL[name]
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.ReLU(),
                                    torch.nn.Linear(7, 3))
        ref = [torch.nn.Parameter(p.detach().clone()) for p in model.parameters()]
        ddp = DDP(model)
        opt, ref_opt = cls(ddp.parameters(), **kw), cls(ref, **kw)
        for step in range(3):
            x = torch.randn(8, 5, generator=torch.Generator().manual_seed(10 * step + rank))
            ddp(x).square().mean().backward()  # different data per rank; DDP averages grads
            for r, p in zip(ref, model.parameters()):
                r.grad = p.grad.clone()
            opt.step()
            ref_opt.step()
            opt.zero_grad()
        out += [f"{name} param {i} vs plain" for i, (r, p) in
                enumerate(zip(ref, model.parameters())) if not equal_bits(r, p)]
        for i, p in enumerate(model.parameters()):
            gathered = [torch.empty_like(p.detach()) for _ in range(dist.get_world_size())]
            dist.all_gather(gathered, p.detach().contiguous())
            if not all(equal_bits(g, p) for g in gathered):
                out.append(f"{name} param {i} differs between ranks")
    return out


def main():
    out_dir = sys.argv[1]
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    results = {"backend": fusedopt.get_backend()}

    def record(key, fn, *args):
        try:
            results[key] = fn(*args)
        except Exception:  # noqa: BLE001
            results[key] = ["raised: " + traceback.format_exc()]

    mesh1 = init_device_mesh("cpu", (world,))
    for name in ALL:
        # apex's FusedLAMB has no master_weights option (FusedMixedPrecisionLamb has them)
        bf16_master = not name.startswith("apex")
        for dtype, master in ((torch.float32, False), (torch.bfloat16, bf16_master)):
            record(f"1d/{name}/{dtype}/master={master}", sharded_vs_plain, mesh1,
                   lambda shape: [Shard(0)], name, dtype, master, 5, True)
        record(f"found_inf/{name}", found_inf_on_one_rank, mesh1, name)
    for name in NORMED:
        record(f"repeatable/{name}", repeatable, mesh1, name)
    if world == 4:
        mesh2 = init_device_mesh("cpu", (2, 2), mesh_dim_names=("dp", "tp"))

        def placements_2d(shape):  # FSDP x TP: rows over dp; columns over tp where there are
            return [Shard(0), Shard(1) if len(shape) == 2 else Replicate()]
        for name in ALL:
            record(f"2d/{name}/", sharded_vs_plain, mesh2, placements_2d, name, torch.float32,
                   False, 4, True)
            record(f"2d/replicate-shard/{name}", sharded_vs_plain, mesh2,
                   lambda shape: [Replicate(), Shard(0)], name, torch.float32, False, 4)
    for label, inner in (("torch-sgd", lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9,
                                                                  weight_decay=1e-3)),
                         ("fused-sgd", lambda ps: fusedopt.FusedSGD(ps, lr=0.1, momentum=0.9,
                                                                    weight_decay=1e-3))):
        record(f"larc/1d/{label}", larc_sharded_vs_plain, mesh1, inner,
               lambda shape: [Shard(0)])
    record("fsdp2", fsdp2_model, mesh1)
    record("fsdp2_cpu_offload", fsdp2_cpu_offload, mesh1)
    record("ddp", ddp_unchanged)
    record("grad_scaler", grad_scaler_overflow_on_one_rank, mesh1)
    record("errors", errors, mesh1)
    record("collectives", collectives_per_step, mesh1)
    with open(os.path.join(out_dir, f"rank{rank}.json"), "w") as f:
        json.dump(results, f, indent=1)
    finish_and_exit()


if __name__ == "__main__":
    main()
