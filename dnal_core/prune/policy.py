"""Policy: which channels the pruned network keeps, read from the hard gates (Alg. 1 line 9).

A network's gates are grouped by how channels are coupled (each family says so, see
``registry``): a *branch* is a chain of gated layers whose last gate (``output``) feeds a sum or
the next layer; a *group* is the set of branches that feed one point (one branch for a plain
layer, several candidates for a supernet edge), with or without a shortcut beside them
(``coupling.Branch``, ``coupling.Group``).

Rules:
  - a branch whose output gates all close is removed as a whole (its inner channels are dead),
    provided its group has a shortcut; a group without a shortcut keeps at least the branch
    whose output gate has the largest s, else the network would stop depending on its input;
  - every layer of a kept branch keeps at least ``min_channels`` channels (the largest s);
  - ``round_to`` rounds each kept layer up to a multiple (capped at the layer's full width),
    adding back the closed channels with the largest s.
Channels added by the last two rules are reported; the pruned network then equals the
hard-gated one with those gates opened (``KeepPlan.reference``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import nn

from ..gate import gates
from .coupling import Branch, Group
from .registry import family_of


@dataclass(frozen=True)
class KeepPlan:
    keep: list[torch.Tensor]        # per gate: the channels the pruned network keeps (bool)
    reference: list[torch.Tensor]   # per gate: the mask of the hard-gated network it equals
    names: list[str]                # gate names
    removed: list[str] = field(default_factory=list)   # removed branches, by their output gate
    bound: list[dict] = field(default_factory=list)    # where min_channels added channels
    rounded: list[dict] = field(default_factory=list)  # where round_to added channels


def check_structure(groups: list[Group], n_gates: int) -> None:
    seen = [g for grp in groups for b in grp.branches for g in b.gates]
    if sorted(seen) != list(range(n_gates)):
        raise ValueError("pruning structure must list every gate exactly once")
    for grp in groups:
        for b in grp.branches:
            if b.output not in b.gates:
                raise ValueError(f"{grp.name}: a branch's output gate must be one of its gates")


def _open_more(keep: torch.Tensor, s: torch.Tensor, n: int) -> None:
    """Open the ``n`` closed channels with the largest s (ties: lowest index)."""
    if n <= 0:
        return
    score = torch.where(keep, torch.full_like(s, -math.inf), s)
    order = torch.sort(score, descending=True, stable=True).indices
    keep[order[:n]] = True


@torch.no_grad()
def keep_masks(model: nn.Module, groups: list[Group] | None = None, min_channels: int = 1,
               round_to: int = 1) -> KeepPlan:
    """The keep plan of ``model``'s hard gates under the coupling ``groups`` (by default its
    family's, see ``dnal_core.prune.register_family``)."""
    if groups is None:
        groups = family_of(model).structure(model)
    if not isinstance(min_channels, int) or min_channels < 1:
        raise ValueError(f"min_channels must be an integer >= 1, got {min_channels!r}")
    if not isinstance(round_to, int) or round_to < 1:
        raise ValueError(f"round_to must be an integer >= 1, got {round_to!r}")
    named = gates(model)
    if not named:
        raise ValueError(f"{type(model).__name__} has no SS gates: nothing to prune")
    check_structure(groups, len(named))
    names = [n for n, _ in named]
    hard = [g.keep().cpu() for _, g in named]
    s = [g.s.detach().float().cpu() for _, g in named]
    keep = [h.clone() for h in hard]
    removed, bound, rounded = [], [], []

    for grp in groups:
        alive = [b for b in grp.branches if hard[b.output].any()]
        if not alive and not grp.shortcut:
            alive = [max(grp.branches, key=lambda b: float(s[b.output].max()))]
        for b in grp.branches:
            if b not in alive:
                for i in b.gates:
                    keep[i].zero_()
                removed.append(names[b.output])
                continue
            for i in b.gates:
                full, n = keep[i].numel(), int(keep[i].sum())
                want = max(n, min(min_channels, full))
                if want > n:
                    bound.append({"layer": names[i], "open": n, "kept": want})
                rounded_want = min(full, math.ceil(want / round_to) * round_to)
                if rounded_want > want:
                    rounded.append({"layer": names[i], "kept": want, "rounded": rounded_want})
                _open_more(keep[i], s[i], rounded_want - n)
    reference = [h | k for h, k in zip(hard, keep)]
    return KeepPlan(keep, reference, names, removed, bound, rounded)
