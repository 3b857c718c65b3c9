"""The optimizer declarations of the op library, for Python.

Each optimizer op (its state lists, hyper-parameters, defaults and extra inputs) is declared
once, in csrc/include/fusedopt/optimizers.h. The op library derives its schemas from that
declaration and returns it from ``torch.ops.fusedopt._declarations()``; this module reads it
(and the defaults from the schemas), so Python restates none of it: the optimizers take their
state names and op arguments from here, the reference and the benchmark their op defaults.
"""
from __future__ import annotations

from dataclasses import dataclass
import inspect
from typing import Dict, Mapping, Optional, Tuple

from ._ops import ops, ops_for

# OpExtra flags (fusedopt/optimizers.h).
GLOBAL_GRAD_NORM_IN = 1
NORM_SUMS_IN = 2
NORM_SUMS_REQUIRED = 4
NORM_SUMS_OUT = 8


@dataclass(frozen=True)
class OpDeclaration:
    op: str                                   # e.g. "adam_"
    optimizer: str                            # e.g. "adam"
    states: Tuple[Tuple[str, Optional[str]], ...]  # (state key, hyper-parameter it needs or None)
    hyper: Tuple[str, ...]                    # hyper-parameter names, schema order
    defaults: Mapping[str, object]            # hyper-parameter -> the op's default
    extras: int                               # OpExtra flags

    def state_names(self, hyper: Mapping[str, object]) -> Tuple[str, ...]:
        """The states the op keeps for these hyper-parameters, in op order."""
        return tuple(key for key, when in self.states if when is None or hyper[when])

    def kwargs(self, bucket, scalars, hyper: Mapping[str, object], **inputs) -> dict:
        """The op's keyword arguments for one bucket: its lists (a state the hyper-parameters
        do not ask for gets an empty list), the step scalars, ``hyper`` (every declared
        hyper-parameter) and the extra tensor inputs."""
        if hyper.keys() != self.defaults.keys():
            missing = sorted(set(self.defaults) - set(hyper))
            unknown = sorted(set(hyper) - set(self.defaults))
            raise TypeError(f"fusedopt.{self.op}: hyper-parameters missing {missing}, unknown "
                            f"{unknown} (declared in csrc/include/fusedopt/optimizers.h)")
        kw = dict(params=bucket.params, grads=bucket.grads)
        for key, _ in self.states:
            kw[key + "s"] = bucket.states.get(key, [])
        kw.update(master_params=bucket.masters, steps=bucket.steps, lr=scalars.lr,
                  lr_tensor=scalars.lr_tensor)
        kw.update(hyper)
        kw.update(inputs)
        kw.update(grad_scale=scalars.grad_scale, found_inf=scalars.found_inf)
        return kw

    def call(self, bucket, scalars, hyper: Mapping[str, object], **inputs):
        """Runs the op over one bucket, on the backend of its device."""
        return getattr(ops_for(bucket.device), self.op)(
            **self.kwargs(bucket, scalars, hyper, **inputs))


def _parse() -> Dict[str, OpDeclaration]:
    out = {}
    for line in ops._declarations().splitlines():
        fields = dict(part.split("=", 1) for part in line.split())
        states = tuple((s.split(":")[0], s.split(":")[1] if ":" in s else None)
                       for s in fields["states"].split(",") if s)
        hyper = tuple(h.split(":")[0] for h in fields["hyper"].split(",") if h)
        schema = getattr(ops, fields["op"]).default._schema
        defaults = {a.name: a.default_value for a in schema.arguments if a.name in hyper}
        out[fields["op"]] = OpDeclaration(fields["op"], fields["optimizer"], states, hyper,
                                          defaults, int(fields["extras"]))
    return out


DECLARATIONS: Dict[str, OpDeclaration] = _parse()


def declaration(op: str) -> OpDeclaration:
    return DECLARATIONS[op]


def op_defaults(optimizer: str) -> Dict[str, object]:
    """The hyper-parameter defaults of ``optimizer``'s ops (e.g. "adam")."""
    return dict(DECLARATIONS[optimizer + "_"].defaults)


def constructor_defaults(cls) -> Dict[str, object]:
    """The keyword defaults of an optimizer class's constructor: the one place its user-facing
    defaults are written (the reference and the benchmark read them from here)."""
    return {name: param.default for name, param in inspect.signature(cls.__init__).parameters.items()
            if param.default is not inspect.Parameter.empty}
