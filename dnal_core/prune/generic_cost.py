"""The cost description of a network gated by ``attach_gates`` (``Family.cost`` of ``generic``),
so that budgets (``--target-macs``/``--target-params``) and the cost-aware loss forms work on it.

It is read off the DepGraph groups that ``attach_gates`` recorded (``model.dnal_groups``): a
conv, Linear or BatchNorm whose output channels a gated group holds (a producer, a depthwise conv
of the group, a member BatchNorm) has output width ``Open(gate)``, one whose input channels it
holds (a consumer) input width ``Open(gate)``; every other width is ``Full``. A conv then costs
(open inputs) x (open outputs) x kernel x its output size, measured on the example input
(``prune.cost``). A Linear after a flatten reads each channel at several positions: its input
width is ``Open(gate)`` times that many. No branch is ever removed (a closed group keeps its
``min_channels`` best channels), so no ``Any`` factor: at 0/1 gates the polynomial is the count
of the network the generic surgery leaves (tests/test_own_network.py, every tested network).
"""
from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from .cost import Full, Layer, Open

_BN = nn.modules.batchnorm._BatchNorm


@dataclass(frozen=True)
class Times:
    """``width`` x ``k``: the input width of a Linear that reads each channel at k positions."""
    width: Open
    k: int

    def __call__(self, v, memo):
        return self.width(v, memo) * self.k


def generic_cost(model: nn.Module) -> list[Layer]:
    """Per conv/Linear/BatchNorm with a gated width: its input and output widths (``Layer``)."""
    outs, ins = {}, {}  # module name -> the gate index holding its output (input) channels
    for i, g in enumerate(model.dnal_groups):
        for name in g.producers + g.bns:
            outs[name] = i
        for name in g.consumers:
            ins[name] = i
    layers = []
    for name, m in model.named_modules():
        if not isinstance(m, (nn.Conv2d, nn.Linear, _BN)) or (name not in outs and name not in ins):
            continue
        n_out = m.num_features if isinstance(m, _BN) else m.out_channels if isinstance(m, nn.Conv2d) else m.out_features
        cout = Open(outs[name]) if name in outs else Full(n_out)
        if isinstance(m, _BN) or (isinstance(m, nn.Conv2d) and m.groups > 1):  # one width: cout
            if name in ins and ins[name] != outs.get(name):
                raise ValueError(f"{name}: a depthwise conv whose input and output gates differ has no cost description")
            layers.append(Layer(m, cout))
            continue
        n_in = m.in_channels if isinstance(m, nn.Conv2d) else m.in_features
        cin = Full(n_in)
        if name in ins:
            channels = model.dnal_groups[ins[name]].channels
            k, rest = divmod(n_in, channels)
            if rest:
                raise ValueError(f"{name}: {n_in} inputs from a group of {channels} channels: no cost description")
            cin = Open(ins[name]) if k == 1 else Times(Open(ins[name]), k)
        layers.append(Layer(m, cout, cin))
    return layers
