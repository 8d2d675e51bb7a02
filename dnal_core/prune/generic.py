"""Pruning the networks ``dnal_core.attach_gates`` gated: Torch-Pruning removes the channels.

``prune(model)`` reaches this module for any class it has no family for, when the model came
from attach_gates. It runs the same steps as for a registered network (``prune._prune``):
every gate is its own group for the keep policy (``min_channels`` and ``round_to`` as usual; a
group whose gate closes entirely keeps its ``min_channels`` best channels, since no shortcut
carries a DepGraph group's signal), the surgery below, the logit check against the hard gates.

Surgery: a copy of the gated network loses its gates, DepGraph traces it, and for each gate
group Torch-Pruning removes the closed channels from every coupled layer (producers, BatchNorms,
consumers). With the gate after BatchNorm a closed channel is exactly zero where it leaves the
group (activations map 0 to 0; squeeze-excitation scales multiply it), so removing it changes
nothing; an activation with f(0) != 0 there would, and the check would say so.

Files: ``arch.json`` holds the gated network's arch with ``keep``, the kept channel indices per
gate; ``load_pruned`` rebuilds it by applying the same removal to a fresh network (the
in-process copy, or ``constructor(**kwargs)``) and loads ``weights.pt`` weights-only.
"""
from __future__ import annotations

import copy
from pathlib import Path

import torch
from torch import nn

from .. import io
from ..attach import apply_keep, strip_gates, trace_groups
from ..constructors import constructor_ref
from ..gate import gates
from .coupling import Branch, Family, Group
from .files import ARCH_FILE, WEIGHTS_FILE, build_pruned
from .generic_cost import generic_cost


def structure(model: nn.Module) -> list[Group]:
    """Each gate a group of its own, no shortcut beside it (the coupling is inside the gate)."""
    return [Group(name, (Branch((i,), i),), shortcut=False) for i, (name, _) in enumerate(gates(model))]


def surgery(src: nn.Module, keep: list[torch.Tensor]) -> tuple[dict, dict]:
    """(the pruned network's arch, its state_dict) from the gated ``src`` and the keep masks."""
    arch = src.arch()
    plain = strip_gates(copy.deepcopy(src)).cpu()
    dg, specs, _ = trace_groups(plain, torch.zeros((1, *arch["input_size"])), tuple(arch["ignored_layers"]))
    if [s.gate for s in specs] != arch["gates"]:
        raise ValueError(f"{src.name}: the network's gate groups changed since attach_gates")
    idx = [torch.nonzero(k).flatten().tolist() for k in keep]
    apply_keep(dg, plain, specs, idx)
    arch.update(widths=[len(i) for i in idx], keep=idx)
    return arch, {k: v.detach().clone() for k, v in plain.state_dict().items()}


FAMILY = Family(structure, surgery, generic_cost)  # cost: budgets and the cost-aware term


def load(path: str | Path, constructor=None, map_location="cpu") -> nn.Module:
    """``load_pruned`` for a pruned generic network, with the constructor given here (a network
    gated without ``constructor=``, or one whose constructor moved): "module:name", a function
    or a ``functools.partial`` with keyword arguments, as for attach_gates."""
    d = Path(path)
    arch = io.read_json(d / ARCH_FILE)
    if constructor is not None:
        arch["constructor"], arch["kwargs"] = constructor_ref(constructor)
    model = build_pruned(arch)
    model.load_state_dict(io.load(d / WEIGHTS_FILE, map_location), strict=True)
    return model.eval()
