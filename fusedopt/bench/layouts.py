"""Parameter layouts the benchmark times: one large tensor, transformer-like lists (GPT-2 small,
BERT-large; optionally scaled), and many tiny tensors (per-step host overhead)."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import List, Tuple

Shape = Tuple[int, ...]


@dataclass
class Layout:
    name: str
    shapes: List[Shape]
    description: str
    meta: dict = field(default_factory=dict)

    @property
    def numel(self) -> int:
        return sum(math.prod(s) for s in self.shapes)

    @property
    def count(self) -> int:
        return len(self.shapes)

    def summary(self) -> str:
        return (f"{self.count} tensor{'s' if self.count != 1 else ''}, "
                f"{self.numel / 2**20:.1f}M elements")


def single(numel: int) -> Layout:
    return Layout("single", [(int(numel),)], f"one tensor of {numel} elements")


def tiny(count: int = 2000, size: int = 256) -> Layout:
    return Layout("tiny", [(size,)] * count, f"{count} tensors x {size} elements")


def _gpt2_small(d: dict) -> List[Shape]:
    """Hugging Face GPT-2 small parameter shapes (148 tensors, 124.4M elements at scale 1)."""
    h, v, ctx, ffn, layers = d["hidden"], d["vocab"], d["ctx"], d["ffn"], d["layers"]
    shapes = [(v, h), (ctx, h)]                                      # wte, wpe
    for _ in range(layers):
        shapes += [(h,), (h,),                                       # ln_1
                   (h, 3 * h), (3 * h,),                             # attn.c_attn
                   (h, h), (h,),                                     # attn.c_proj
                   (h,), (h,),                                       # ln_2
                   (h, ffn), (ffn,),                                 # mlp.c_fc
                   (ffn, h), (h,)]                                   # mlp.c_proj
    shapes += [(h,), (h,)]                                           # ln_f
    return shapes


def _bert_large(d: dict) -> List[Shape]:
    """Hugging Face BERT-large parameter shapes (391 tensors, 335.1M elements at scale 1)."""
    h, v, ctx, ffn, layers = d["hidden"], d["vocab"], d["ctx"], d["ffn"], d["layers"]
    shapes = [(v, h), (ctx, h), (2, h), (h,), (h,)]                  # embeddings + LayerNorm
    for _ in range(layers):
        shapes += [(h, h), (h,), (h, h), (h,), (h, h), (h,),         # query, key, value
                   (h, h), (h,), (h,), (h,),                         # attention output + LN
                   (ffn, h), (ffn,),                                 # intermediate
                   (h, ffn), (h,), (h,), (h,)]                       # output + LN
    shapes += [(h, h), (h,)]                                         # pooler
    return shapes


_MODELS = {
    "gpt2": (_gpt2_small, dict(hidden=768, vocab=50257, ctx=1024, ffn=3072, layers=12),
             "GPT-2 small"),
    "bert-large": (_bert_large, dict(hidden=1024, vocab=30522, ctx=512, ffn=4096, layers=24),
                   "BERT-large"),
}


def transformer(name: str, scale: float = 1.0, target_numel: int | None = None) -> Layout:
    """The model's parameter shapes with every dimension except the layer count multiplied by
    sqrt(scale), so the element count scales by about ``scale`` and the tensor count is kept.
    ``target_numel`` picks the scale that gives about that many elements."""
    build, dims, label = _MODELS[name]
    full = sum(math.prod(s) for s in build(dims))
    if target_numel is not None:
        scale = target_numel / full
    k = math.sqrt(scale)
    scaled = {key: (val if key == "layers" else max(1, int(round(val * k))))
              for key, val in dims.items()}
    shapes = build(scaled)
    desc = f"{label} shapes" + ("" if scale == 1.0 else f" scaled x{scale:.3g} (hidden {scaled['hidden']})")
    return Layout(name, shapes, desc, meta=dict(scale=scale, dims=scaled))


LAYOUT_NAMES = ("single", "gpt2", "bert-large", "tiny")


def make_layouts(names, numel: int, scale, tiny_count: int, tiny_size: int,
                 transformer_numel: int | None) -> List[Layout]:
    """scale: float, or None to scale transformers to ``transformer_numel`` elements."""
    out = []
    for n in names:
        if n == "single":
            out.append(single(numel))
        elif n == "tiny":
            out.append(tiny(tiny_count, tiny_size))
        elif n in _MODELS:
            if scale is None:
                out.append(transformer(n, target_numel=transformer_numel))
            else:
                out.append(transformer(n, scale=scale))
        else:
            raise ValueError(f"unknown layout {n!r} (choose from {', '.join(LAYOUT_NAMES)})")
    return out
