"""Cross-rank reductions for DTensor params (docs/distributed.md).

Norms of sharded tensors: each rank computes the local sums of squares of all its tensors in one
op call per bucket, stacked in one float64 vector; one all-reduce (SUM) over every rank of the
param mesh makes them the full tensors' sums on every rank. A tensor replicated along some mesh
dims would be counted once per replica, so a rank contributes a tensor's local sums only if its
coordinate is 0 along every mesh dim on which the tensor is replicated (plain tensors, replicated
everywhere: only mesh coordinate (0, ..., 0)). Masking multiplies by exactly 0 or 1, so the sums
are those of the distinct shards, added in rank order by the collective.
found_inf rides in the same vector, unmasked: the sum over ranks is non-zero (the step is
skipped, kernels test found_inf != 0) iff some rank saw an inf or NaN.
Nothing here reads a tensor value on the host: the masks are built from placements and mesh
coordinates, and all reductions are device tensors handed to the collective."""
from __future__ import annotations

from typing import Optional

import torch

try:
    import torch.distributed as dist
    from torch.distributed.tensor import DTensor
except ImportError:  # torch built without distributed
    dist, DTensor = None, None


def is_dtensor(t) -> bool:
    return DTensor is not None and isinstance(t, DTensor)


def param_mesh(optimizer) -> Optional[object]:
    """The one DeviceMesh of the optimizer's DTensor params (None if it has none)."""
    mesh = None
    for gi, group in enumerate(optimizer.param_groups):
        for pi, p in enumerate(group["params"]):
            if is_dtensor(p):
                if mesh is None:
                    mesh = p.device_mesh
                elif p.device_mesh != mesh:
                    raise ValueError(
                        f"{type(optimizer).__name__}: param {pi} of param group {gi} is on "
                        f"DeviceMesh {p.device_mesh}, another param on {mesh}; the DTensor "
                        "params of one optimizer must share one mesh (use one optimizer per "
                        "mesh)")
    return mesh


def mesh_group(mesh):
    """A process group spanning every rank of mesh (one collective for all its dims)."""
    if mesh.ndim == 1:
        return mesh.get_group()
    if mesh.size() == dist.get_world_size():
        return dist.group.WORLD
    return mesh._flatten().get_group()


def contributes(mesh, t) -> bool:
    """Whether this rank adds t's local sums to the all-reduced ones (see the module doc)."""
    coord = mesh.get_coordinate()
    if coord is None:  # this rank is not in the mesh
        return False
    if is_dtensor(t):
        return all(c == 0 for c, pl in zip(coord, t.placements) if pl.is_replicate())
    return all(c == 0 for c in coord)


class Reduction:
    """One step's cross-rank reduction: pieces are appended, reduced together, read back."""

    def __init__(self, mesh, group, device: torch.device):
        self.mesh, self.group, self.device = mesh, group, device
        self.pieces: list = []
        self.offsets: list = []
        self.size = 0

    def add(self, t: torch.Tensor) -> int:
        """Adds a float64 vector; returns its handle."""
        t = t.to(self.device, torch.float64).reshape(-1)
        self.pieces.append(t)
        self.offsets.append(self.size)
        self.size += t.numel()
        return len(self.pieces) - 1

    def add_masked_sums(self, sums: torch.Tensor, tensors: list, per_tensor: int) -> int:
        """Local sums (per_tensor values per tensor) of tensors, masked by contributes()."""
        mask = torch.tensor([1.0 if contributes(self.mesh, t) else 0.0 for t in tensors],
                            dtype=torch.float64).repeat_interleave(per_tensor)
        return self.add(sums * mask.to(sums.device, non_blocking=True))

    def reduce(self) -> None:
        if not self.pieces:
            self.result = None
            return
        flat = torch.cat(self.pieces)
        dist.all_reduce(flat, op=dist.ReduceOp.SUM, group=self.group)
        self.result = flat

    def get(self, handle: int) -> torch.Tensor:
        start = self.offsets[handle]
        return self.result[start:start + self.pieces[handle].numel()]
