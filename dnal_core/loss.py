"""The sparsity loss: the second term of eq. 4 and the forms beside it.

It stands above the gate (``dnal_core.gate``) and the pruner's cost model
(``dnal_core.budget``, ``dnal_core.prune.cost``): the cost-aware forms price each gate by what
the pruner would remove with it, so the gate itself need not know the pruner.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from .budget import cost_model, gate_values
from .gate import gates

# "paper": eq. 4; "code": the authors' delta-free form; "expected-macs"/"expected-params": the
# cost-aware term (the pruned network's MACs/params as a function of the gates, cost_loss below)
LOSS_FORMS = ("paper", "code", "expected-macs", "expected-params")


def sparsity_loss(model: nn.Module, lam: float, form: str = "paper") -> torch.Tensor:
    """The second term of eq. 4.

    ``form="paper"``: lam * sum_j sigmoid(delta * s_j) (eq. 4);
    ``form="code"``:  lam * sum_j sigmoid(s_j), without delta (the authors' code);
    ``form="expected-macs"`` / ``"expected-params"``: lam * C(sigmoid(delta s)) / C_dense, the
    MACs / params of the network the pruner would derive, as a smooth function of the gate values
    (``cost_loss``, with the cost model of ``dnal_core.budget``; exact at 0/1 gates).
    """
    if form not in LOSS_FORMS:
        raise ValueError(f"unknown sparsity loss form {form!r}; valid: {', '.join(LOSS_FORMS)}")
    if not (math.isfinite(lam) and lam >= 0):
        raise ValueError(f"lambda must be finite and >= 0, got {lam}")
    if not gates(model):
        raise ValueError("the model has no SS gates")
    if form.startswith("expected-"):
        return lam * cost_loss(model, form.split("-", 1)[1])
    terms = [(g.probs() if form == "paper" else torch.sigmoid(g.s)).sum() for _, g in gates(model)]
    return lam * torch.stack(terms).sum()


def cost_loss(model: nn.Module, kind: str) -> torch.Tensor:
    """C(sigmoid(delta s)) / C_dense: the cost-aware sparsity term without lambda."""
    cm = cost_model(model)
    return cm.evaluate(gate_values(model), kind) / cm.dense[kind]
