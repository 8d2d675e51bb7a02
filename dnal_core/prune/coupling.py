"""How a network's channels are coupled, as the pruner reads it: the types each family module
(``cifar``, ``imagenet``, ``generic``) fills in and the policy (``policy.keep_masks``) reads.

A *branch* is a chain of gated layers whose last gate (``output``) feeds a sum or the next
layer; a *group* is the set of branches that feed one point (one branch for a plain layer,
several candidates for a supernet edge), with or without a shortcut beside them. A *family*
is what the pruner knows of a model class: its groups (``structure``), how to cut it
(``surgery``) and, for cost-aware search and budgets, the widths its surgery leaves (``cost``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from torch import nn


@dataclass(frozen=True)
class Branch:
    gates: tuple[int, ...]  # gate indices (``dnal_core.gates`` order) of the branch's layers
    output: int             # the gate whose closure removes the branch


@dataclass(frozen=True)
class Group:
    name: str                       # module name, for reports
    branches: tuple[Branch, ...]
    shortcut: bool                  # a residual sum keeps the signal if every branch goes


@dataclass(frozen=True)
class Family:
    structure: Callable[[nn.Module], list[Group]]   # how channels are coupled (policy input)
    surgery: Callable[[nn.Module, list], tuple]     # (src, keep) -> (arch, state_dict)
    cost: Callable[[nn.Module], list] | None = None  # the widths surgery leaves (prune.cost), or None
