"""What each layer of a gated network costs as a function of its gates: the pruner's coupling,
written as the widths of the layers it cuts, so that a cost can be computed without cutting.

Each family (``dnal_core.prune.register_family``) may give a ``cost`` function that lists, for
every conv, BatchNorm and Linear whose size depends on the gates, which *widths* its input and
output channels have (``Layer``). A width is a function of the gate values v_i (one tensor per
gate, ``dnal_core.gates`` order; 0/1 for hard gates, sigmoid(delta s) for soft ones):

  ``Full(n)``    n channels whatever the gates (an ungated input: the image, a ResNet stream);
  ``Open(i)``    sum_j v_i[j], the channels gate i keeps;
  ``Live(ws, n)`` sum_q (1 - prod_(i, pos) (1 - v_i[j])) over the n positions q of a stream that
                 the output gates ``ws`` write into (MobileNetV2's narrowing streams: a position no
                 block of the stage writes live is removed);
  ``Any(i)``     1 - prod_j (1 - v_i[j]): 1 while the branch whose output gate is i lives, 0 once
                 it closes entirely and the pruner removes the branch (a residual block).

A conv costs (in width) x (out width) x kh*kw*H_out*W_out MACs and (in) x (out) x kh*kw params
(a depthwise conv: its one width x kh*kw*H_out*W_out), times its ``alive`` factor when it lies
in a removable branch; a BatchNorm 2 params per channel; a Linear in x out MACs and params plus
its bias. H_out, W_out are measured (one forward pass); what no listed layer holds (ungated
layers, a classifier's last Linear) is the dense network's count minus what the listed layers
cost at full width, a constant. ``CostModel.evaluate(values)`` is then a polynomial in the gate
values: at 0/1 values (the keep plan of ``policy.keep_masks``) it equals ``dnal_core.count`` of
the pruned network exactly (tests/test_budget.py checks every CIFAR model and placement), and it
is smooth in between, where each factor is the expectation of that width under independent
Bernoulli(v) channels (their product is the expectation of the product where the factors share
no gate; MobileNetV2's ``Live`` x ``Any`` share one and the product is an approximation there).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..gate import gates


@dataclass(frozen=True)
class Full:
    n: int

    def __call__(self, v, memo):
        return float(self.n)


@dataclass(frozen=True)
class Open:
    gate: int

    def __call__(self, v, memo):
        if self not in memo:
            memo[self] = v[self.gate].sum()
        return memo[self]


@dataclass(frozen=True)
class Any:
    gate: int

    def __call__(self, v, memo):
        if self not in memo:
            memo[self] = 1 - torch.prod(1 - v[self.gate])
        return memo[self]


@dataclass(frozen=True)
class Live:
    writers: tuple[tuple[int, tuple[int, ...]], ...]  # (output gate, its channels' stream positions)
    width: int

    def __call__(self, v, memo):
        if self not in memo:
            dead = None
            for g, pos in self.writers:
                d = torch.ones(self.width, dtype=v[g].dtype, device=v[g].device)
                d = d.index_copy(0, torch.tensor(pos, device=d.device), 1 - v[g])
                dead = d if dead is None else dead * d
            memo[self] = self.width - dead.sum()
        return memo[self]


@dataclass(frozen=True)
class Layer:
    """A conv, BatchNorm or Linear whose channels follow gates: ``cin`` and ``cout`` are its
    input and output widths (a depthwise conv and a BatchNorm: ``cout`` only), ``alive`` the
    ``Any`` of the removable branch it lies in (None: never removed)."""
    module: nn.Module
    cout: object
    cin: object = None
    alive: object = None


@dataclass(frozen=True)
class Term:
    macs: float
    params: float
    factors: tuple


class CostModel:
    """The cost polynomial of one gated network (``cost_model(model)``)."""

    def __init__(self, terms: list[Term], const: dict, dense: dict, sizes: list[int]):
        self.terms, self.const, self.dense, self.sizes = terms, const, dense, sizes

    def evaluate(self, values: list[torch.Tensor], kind: str = "macs") -> torch.Tensor:
        """The cost (``kind`` macs or params) at the gate ``values`` (one tensor per gate)."""
        if [int(t.numel()) for t in values] != self.sizes:
            raise ValueError(f"expected gate values of sizes {self.sizes}, got {[t.numel() for t in values]}")
        memo, total = {}, None
        for t in self.terms:
            c = t.macs if kind == "macs" else t.params
            if not c:
                continue
            x = c
            for f in t.factors:
                x = x * f(values, memo)
            total = x if total is None else total + x
        return total + self.const[kind]


def _term_of(layer: Layer, out_hw: dict) -> list[Term]:
    m, alive = layer.module, (layer.alive,) if layer.alive is not None else ()
    if isinstance(m, nn.Conv2d):
        k = m.kernel_size[0] * m.kernel_size[1]
        hw = out_hw[m]
        depthwise = m.groups > 1
        if depthwise and not (m.groups == m.in_channels == m.out_channels):
            raise ValueError(f"{type(m).__name__}: only dense and depthwise convs have a cost description")
        io = (layer.cout,) if depthwise else (layer.cin, layer.cout)
        terms = [Term(k * hw, k, io + alive)]
        if m.bias is not None:
            terms.append(Term(0, 1, (layer.cout,) + alive))
        return terms
    if isinstance(m, nn.Linear):
        terms = [Term(1, 1, (layer.cin, layer.cout) + alive)]
        if m.bias is not None:
            terms.append(Term(0, 1, (layer.cout,) + alive))
        return terms
    if isinstance(m, nn.modules.batchnorm._BatchNorm):
        return [Term(0, 2, (layer.cout,) + alive)] if m.affine else []
    raise ValueError(f"no cost description for a {type(m).__name__} layer")


@torch.no_grad()
def build_cost_model(model: nn.Module, layers: list[Layer]) -> CostModel:
    """The ``CostModel`` of ``model`` from its family's ``layers``; output sizes measured on one
    input of ``model.input_size`` (eval mode; every flag restored)."""
    from ..measure import count

    convs = [ly.module for ly in layers if isinstance(ly.module, nn.Conv2d)]
    out_hw, hooks = {}, []
    for c in convs:
        hooks.append(c.register_forward_hook(lambda mod, a, out: out_hw.__setitem__(mod, out.shape[-2] * out.shape[-1])))
    flags = [(m, m.training) for m in model.modules()]
    p = next(model.parameters())
    try:
        model.eval()
        model(torch.zeros((1,) + tuple(model.input_size), dtype=p.dtype, device=p.device))
    finally:
        for h in hooks:
            h.remove()
        for m, t in flags:
            m.training = t
    terms = [t for ly in layers for t in _term_of(ly, out_hw)]
    named = gates(model)
    full = [torch.ones(g.channels, dtype=torch.float64) for _, g in named]
    model_ = CostModel(terms, {"macs": 0.0, "params": 0.0}, {}, [g.channels for _, g in named])
    dense = count(model)
    const = {k: dense[k] - float(model_.evaluate(full, k)) for k in ("macs", "params")}
    return CostModel(terms, const, dense, model_.sizes)
