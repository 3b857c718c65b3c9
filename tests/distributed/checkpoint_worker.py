"""torch.distributed.checkpoint with fusedopt optimizers on FSDP2 (tests/test_distributed.py).

  save DIR       (2 ranks) 3 steps, DCP-save model + optimizer (get_*_state_dict), 3 more
                 steps; rank 0 writes DIR/uninterrupted.pt (full params and states)
  load DIR OUT   (any number of ranks) fresh model and optimizer, DCP-load (set_*_state_dict),
                 the same 3 steps; rank 0 writes OUT (full params and states)
Gradients are fixed per step and param, so runs on any number of ranks see the same ones."""
from __future__ import annotations

import os
import sys

import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint.state_dict import (get_model_state_dict,
                                                     get_optimizer_state_dict,
                                                     set_model_state_dict,
                                                     set_optimizer_state_dict)
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import fully_shard
from torch.distributed.tensor import DTensor, distribute_tensor

import fusedopt
from teardown import finish_and_exit

OPTIMIZERS = {
    "adamw": (fusedopt.FusedAdamW, dict(lr=1e-2, weight_decay=0.1)),
    "sgd": (fusedopt.FusedSGD, dict(lr=0.05, momentum=0.9, nesterov=True)),
    "lion": (fusedopt.FusedLion, dict(lr=1e-3, weight_decay=0.1)),
    "lamb": (fusedopt.FusedLAMB, dict(lr=1e-2, weight_decay=0.1, max_grad_norm=0.5)),
    "lars": (fusedopt.FusedLARS, dict(lr=0.1, momentum=0.9, weight_decay=0.01,
                                      trust_coefficient=0.02)),
}


def build(mesh):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.ReLU(), torch.nn.Linear(7, 3))
    fully_shard(model, mesh=mesh)
    opts = {name: cls(model.parameters(), **kw) for name, (cls, kw) in OPTIMIZERS.items()}
    return model, opts


def step(model, opt, index):
    """One step with gradients fixed by (step index, param index)."""
    for i, p in enumerate(model.parameters()):
        g = torch.randn(p.shape, generator=torch.Generator().manual_seed(100 * index + i))
        p.grad = distribute_tensor(g, p.device_mesh, p.placements)
    opt.step()


def full_snapshot(model, opt):
    out = {}
    for i, p in enumerate(model.parameters()):
        out[f"p{i}"] = p.full_tensor().clone()
        for k, v in opt.state[p].items():
            out[f"p{i}.{k}"] = (v.full_tensor() if isinstance(v, DTensor) else v).clone()
    return out


def main():
    dist.init_process_group("gloo")
    mesh = init_device_mesh("cpu", (dist.get_world_size(),))
    mode, ckpt = sys.argv[1], sys.argv[2]
    snapshots = {}
    # One model per optimizer: each optimizer owns its model's params.
    for name in OPTIMIZERS:
        model, opts = build(mesh)
        opt = opts[name]
        key = f"{ckpt}/{name}"
        if mode == "save":
            for i in range(3):
                step(model, opt, i)
            dcp.save({"model": get_model_state_dict(model),
                      "optim": get_optimizer_state_dict(model, opt)}, checkpoint_id=key)
        else:
            state = {"model": get_model_state_dict(model),
                     "optim": get_optimizer_state_dict(model, opt)}
            dcp.load(state, checkpoint_id=key)
            set_model_state_dict(model, state["model"])
            set_optimizer_state_dict(model, opt, state["optim"])
        for i in range(3, 6):
            step(model, opt, i)
        snapshots[name] = full_snapshot(model, opt)
    if dist.get_rank() == 0:
        out = os.path.join(ckpt, "uninterrupted.pt") if mode == "save" else sys.argv[3]
        torch.save(snapshots, out)
    finish_and_exit()


if __name__ == "__main__":
    main()
