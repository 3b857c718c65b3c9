"""FSDP2 + FusedLAMB on a small transformer-like language model, next to a single-process run.

    torchrun --nproc-per-node 2 -m fusedopt.examples.fsdp_lamb [--steps 30]

Each rank trains its slice of every global batch with the model sharded by
``torch.distributed.fsdp.fully_shard`` (gloo on CPU, NCCL on GPUs: one GPU per rank). LAMB's
trust ratios need the norms of the full tensors; fusedopt computes them from the shards with
one all-reduce (two for clipped LAMB) per step. Rank 0 also trains an unsharded copy of the
model on the whole global batch with FusedLAMB, and the script prints both loss curves side by
side: they agree up to float rounding (the gradients are summed in another order).
"""
from __future__ import annotations

import argparse
import os

import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F

import fusedopt

VOCAB, DIM, HEADS, LAYERS, SEQ = 64, 64, 4, 2, 16


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(DIM), nn.LayerNorm(DIM)
        self.attn = nn.MultiheadAttention(DIM, HEADS, batch_first=True)
        self.mlp = nn.Sequential(nn.Linear(DIM, 4 * DIM), nn.GELU(), nn.Linear(4 * DIM, DIM))

    def forward(self, x):
        mask = torch.triu(torch.ones(x.shape[1], x.shape[1], dtype=torch.bool, device=x.device),
                          diagonal=1)
        h = self.ln1(x)
        x = x + self.attn(h, h, h, attn_mask=mask, need_weights=False)[0]
        return x + self.mlp(self.ln2(x))


class TinyLM(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(VOCAB, DIM)
        self.pos = nn.Parameter(torch.zeros(SEQ, DIM))
        self.blocks = nn.ModuleList(Block() for _ in range(LAYERS))
        self.ln = nn.LayerNorm(DIM)
        self.head = nn.Linear(DIM, VOCAB)

    def forward(self, tokens):
        x = self.embed(tokens) + self.pos[: tokens.shape[1]]
        for block in self.blocks:
            x = block(x)
        return self.head(self.ln(x).reshape(-1, DIM))  # (tokens, VOCAB) logits


def batch(step: int, size: int, device):
    """Sequences of a fixed random affine rule (t[i+1] = (a * t[i] + c) mod VOCAB, one (a, c) per
    sequence from a small set), so the model can learn it and the loss falls."""
    g = torch.Generator().manual_seed(step)
    a = torch.tensor([1, 3, 5, 7])[torch.randint(0, 4, (size, 1), generator=g)]
    c = torch.randint(0, 4, (size, 1), generator=g)
    t = [torch.randint(0, VOCAB, (size, 1), generator=g)]
    for _ in range(SEQ):
        t.append((a * t[-1] + c) % VOCAB)
    seq = torch.cat(t, dim=1)
    return seq[:, :-1].to(device), seq[:, 1:].to(device)


def loss_of(model, tokens, targets):
    return F.cross_entropy(model(tokens), targets.reshape(-1))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m fusedopt.examples.fsdp_lamb",
                                 description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--batch", type=int, default=32, help="global batch (split over the ranks)")
    ap.add_argument("--lr", type=float, default=2e-2)
    args = ap.parse_args(argv)

    distributed = "RANK" in os.environ
    cuda = torch.cuda.is_available()
    if distributed:
        dist.init_process_group("nccl" if cuda else "gloo")
        rank, world = dist.get_rank(), dist.get_world_size()
    else:
        rank, world = 0, 1
    if cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    device = torch.device("cuda", torch.cuda.current_device()) if cuda else torch.device("cpu")
    if args.batch % world:
        raise SystemExit(f"--batch {args.batch} must be divisible by the {world} ranks")
    local = args.batch // world
    hyper = dict(lr=args.lr, weight_decay=0.01, max_grad_norm=1.0)

    torch.manual_seed(0)
    reference = TinyLM().to(device)
    model = TinyLM().to(device)
    model.load_state_dict(reference.state_dict())
    if distributed:
        from torch.distributed.device_mesh import init_device_mesh
        from torch.distributed.fsdp import fully_shard

        mesh = init_device_mesh(device.type, (world,))
        for block in model.blocks:
            fully_shard(block, mesh=mesh)
        fully_shard(model, mesh=mesh)
    opt = fusedopt.FusedLAMB(model.parameters(), **hyper)
    ref_opt = fusedopt.FusedLAMB(reference.parameters(), **hyper) if rank == 0 else None

    if rank == 0:
        print(f"FusedLAMB on a {sum(p.numel() for p in reference.parameters())}-parameter "
              f"transformer-like LM, {'FSDP2 over ' + str(world) + ' ranks' if distributed else 'one process'} "
              f"({'NCCL, GPUs' if cuda else 'gloo, CPU'}), global batch {args.batch}")
        print(f"{'step':>4} {'FSDP2 loss':>12} {'single-process loss':>20} {'rel. diff':>10}")
    worst = 0.0
    first = last = None
    for step in range(args.steps):
        tokens, targets = batch(step, args.batch, device)
        mine = slice(rank * local, (rank + 1) * local)
        loss = loss_of(model, tokens[mine], targets[mine])
        loss.backward()  # FSDP2 averages the gradients over the ranks
        opt.step()
        opt.zero_grad()
        global_loss = loss.detach().clone()
        if distributed:
            dist.all_reduce(global_loss)
            global_loss /= world
        if rank == 0:
            ref_loss = loss_of(reference, tokens, targets)
            ref_loss.backward()
            ref_opt.step()
            ref_opt.zero_grad()
            a, b = global_loss.item(), ref_loss.item()
            rel = abs(a - b) / max(abs(b), 1e-12)
            worst = max(worst, rel)
            first = b if first is None else first
            last = b
            if step % max(1, args.steps // 10) == 0 or step == args.steps - 1:
                print(f"{step:>4} {a:>12.6f} {b:>20.6f} {rel:>10.1e}")
    if rank == 0:
        agree = worst < 1e-3
        print(f"loss {first:.4f} -> {last:.4f}; the curves "
              f"{'agree' if agree else 'DISAGREE'}: largest relative difference {worst:.1e} "
              f"(float rounding: the sharded gradients are summed in another order)")
    if distributed:
        dist.barrier()
        dist.destroy_process_group()
    return 0 if rank != 0 or (agree and last < first) else 1


if __name__ == "__main__":
    raise SystemExit(main())
