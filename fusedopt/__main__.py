"""``python -m fusedopt``: build information, then a small large-batch training run with
FusedLAMB next to the float64 reference (fusedopt.reference) on synthetic data, showing that the
two trajectories agree and the loss falls. ``python -m fusedopt.bench`` runs the benchmarks."""
from __future__ import annotations

import argparse
import json

import torch

import fusedopt
from fusedopt.reference import Reference


def _mlp_loss(params, x, y):
    w1, b1, w2, b2 = params
    hidden = torch.tanh(x @ w1 + b1)
    return torch.mean((hidden @ w2 + b2 - y) ** 2)


def demo(steps: int = 40, batch: int = 4096, width: int = 256, seed: int = 0) -> dict:
    gen = torch.Generator().manual_seed(seed)
    n_in, n_out = 64, 8
    teacher = torch.randn(n_in, n_out, generator=gen) / n_in ** 0.5
    x = torch.randn(batch, n_in, generator=gen)
    y = torch.sin(x @ teacher)
    init = [torch.randn(n_in, width, generator=gen) / n_in ** 0.5, torch.zeros(width),
            torch.randn(width, n_out, generator=gen) / width ** 0.5, torch.zeros(n_out)]

    params = [t.clone().requires_grad_() for t in init]
    # LAMB for large batches; biases in their own group without weight decay (usual practice).
    groups = [{"params": [params[0], params[2]]}, {"params": [params[1], params[3]],
                                                    "weight_decay": 0.0}]
    kwargs = dict(lr=2e-2, weight_decay=0.01, max_grad_norm=1.0)
    opt = fusedopt.FusedLAMB(groups, **kwargs)
    ref = Reference("lamb", [{"params": [init[0], init[2]]},
                             {"params": [init[1], init[3]], "weight_decay": 0.0}], **kwargs)
    ref_params = ref.params()  # float64 copies, in flat group order (w1, w2, b1, b2)
    ref_order = [ref_params[0], ref_params[2], ref_params[1], ref_params[3]]

    print(f"{'step':>5} {'loss (fused fp32)':>18} {'loss (reference f64)':>21} "
          f"{'max |param diff|':>17}")
    history = []
    for step in range(1, steps + 1):
        loss = _mlp_loss(params, x, y)
        opt.zero_grad()
        loss.backward()
        opt.step()

        leaves = [t.detach().clone().requires_grad_() for t in ref_order]
        ref_loss = _mlp_loss(leaves, x.double(), y.double())
        ref_loss.backward()
        g = {id(t): leaf.grad for t, leaf in zip(ref_order, leaves)}
        ref.step([g[id(t)] for t in ref_params])

        diff = max((p.detach().double() - r).abs().max().item()
                   for p, r in zip(params, ref_order))
        history.append((step, loss.item(), ref_loss.item(), diff))
        if step == 1 or step % 5 == 0:
            print(f"{step:>5} {loss.item():>18.6f} {ref_loss.item():>21.6f} {diff:>17.2e}")
    first, last = history[0], history[-1]
    result = {"loss_first": first[1], "loss_last": last[1], "max_param_diff": max(h[3] for h in history)}
    ok = result["loss_last"] < 0.5 * result["loss_first"] and result["max_param_diff"] < 1e-3
    print(f"\nloss {first[1]:.4f} -> {last[1]:.4f}; fused vs float64 reference: max param "
          f"difference {result['max_param_diff']:.2e} over {steps} steps: "
          f"{'OK' if ok else 'MISMATCH'}")
    result["ok"] = ok
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fusedopt", description=__doc__)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--batch", type=int, default=4096)
    args = parser.parse_args(argv)
    print("fusedopt build:", json.dumps(fusedopt.build_info(), indent=2))
    print("\nFusedLAMB vs float64 reference, large-batch MLP regression "
          f"(batch {args.batch}, {args.steps} steps):\n")
    return 0 if demo(steps=args.steps, batch=args.batch)["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
