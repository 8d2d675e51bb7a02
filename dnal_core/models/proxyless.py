"""The ProxylessNAS supernet of Table VII, searched by DNAL channel by channel (eq. 5).

Network (ProxylessNAS's GPU search space, no zero op, Section V-C):
  stem 3x3/2 conv to 32 (BN, ReLU6; not gated), then 22 layers. Layer 0 is the fixed
  ``3x3_MBConv1`` block to 16; layers 1-21 are six stages (widths 24, 40, 80, 96, 192, 320;
  4, 4, 4, 4, 4, 1 layers; first strides 2, 2, 2, 1, 2, 1), each layer holding six parallel
  MBConv candidates, kernel {3, 5, 7} x expansion {3, 6}. A candidate is expand 1x1 (BN, ReLU6;
  not gated) -> depthwise kxk (BN, SS, ReLU6) -> project 1x1 (BN, SS), so every candidate has
  its own two gates. A layer's output is the sum of its candidates' outputs (eq. 5), plus the
  identity where stride is 1 and the width does not change (every layer but a stage's first).
  Then the feature-mix 1x1 conv to 1280 (BN, SS, ReLU6: gated, as the authors' code), global
  average pool and Linear(1280, 1000). BN eps 1e-3 as ProxylessNAS. Dense: 16.03M params.

The ReLU of eq. 5. The paper writes x = sum_i ReLU(x_i * sigmoid(delta s_i)); the authors'
code sums the gated projections with no activation. We follow the code (``eq5_relu=False``):
an MBConv's projection is a linear bottleneck by design (MobileNetV2), the ReLU would make
every candidate's contribution to the residual stream non-negative and so change the
ProxylessNAS baseline the paper compares with, and the code is what produced Table VII.
``eq5_relu=True`` puts a ReLU after each candidate's gated projection, the paper's reading
(ReLU(x * g) = ReLU(x) * g since g > 0, so its place relative to the gate does not matter).

Architecture format (``model.arch()``, a JSON object that ``build_from_arch`` rebuilds):
  ``ops``: per layer (22), the candidates that survive, by name (``"3x3_MBConv1"`` for layer 0,
      ``"{k}x{k}_MBConv{e}"`` otherwise), in module order; ``null`` = every layer dense. A
      candidate whose gates all close is dropped from its layer; several may survive; a layer
      with an identity shortcut may keep none (it becomes the identity).
  ``widths``: one per SS gate in ``dnal_core.gates`` order: for each layer, for each surviving
      candidate, (hidden, out); then the feature-mix width. ``hidden`` is the depthwise width
      (and the expansion conv's outputs); layer 0's hidden width is also the stem's width.
  ``out_index``: per layer, per surviving candidate, the stream channels its ``out`` outputs
      land on (``Place``), or ``null`` for the first ``out`` channels; ``null`` = all default.
  ``stream_widths``: the 7 stream widths (layer 0's 16, then the six stages); ``null`` = default.
  ``placement``, ``num_classes``, ``width_mult``, ``eq5_relu``.
``default_widths`` are the dense widths of the candidates in ``ops``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from torch import nn

from .imagenet import IMAGENET_CLASSES, IMAGENET_INPUT, init_weights
from .layers import DEFAULT_PLACEMENT, ConvUnit, Place, check_placement, check_widths, pruned_keys, scale
from .registry import register_model


@dataclass(frozen=True)
class ProxylessSpace:
    """ProxylessNAS's search space as DNAL uses it (Section V-C, Table VII; channels)."""
    stem: int = 32                                   # 3x3 stride-2 stem conv
    first: int = 16                                  # layer 0: 3x3 MBConv1 (no search)
    widths: tuple[int, ...] = (24, 40, 80, 96, 192, 320)  # stage output widths
    cells: tuple[int, ...] = (4, 4, 4, 4, 4, 1)      # layers per stage
    strides: tuple[int, ...] = (2, 2, 2, 1, 2, 1)    # stride of each stage's first layer
    kernels: tuple[int, ...] = (3, 5, 7)             # depthwise kernel sizes
    expands: tuple[int, ...] = (3, 6)                # expansion ratios (no zero op)
    last: int = 1280                                 # feature-mix 1x1 conv
    bn_eps: float = 1e-3                             # ProxylessNAS's BN epsilon


SPACE = ProxylessSpace()
FIRST_OP = "3x3_MBConv1"
CANDIDATES = tuple(f"{k}x{k}_MBConv{e}" for k in SPACE.kernels for e in SPACE.expands)


def parse_op(name: str) -> tuple[int, int]:
    """``"5x5_MBConv6"`` -> (kernel 5, expansion 6)."""
    if name != FIRST_OP and name not in CANDIDATES:
        raise ValueError(f"unknown candidate {name!r}; valid: {', '.join(CANDIDATES)}")
    return int(name[0]), int(name[-1])


class MBConv(nn.Module):
    """One candidate: [expand 1x1] -> depthwise kxk -> project 1x1, its output placed into the
    layer's stream and added to ``base`` (the running sum of eq. 5)."""

    def __init__(self, cin: int, hidden: int, out: int, stream: int, kernel: int, stride: int,
                 expand: bool, placement: str, out_index: Sequence[int] | None, eq5_relu: bool,
                 gated: bool = True):
        super().__init__()
        if not expand and hidden != cin:
            raise ValueError(f"an MBConv1 keeps its input width ({cin}), got hidden {hidden}")
        self.expand = ConvUnit(cin, hidden, 1, act=nn.ReLU6, gated=False) if expand else None
        self.dw = ConvUnit(hidden, hidden, kernel, stride, groups=hidden, act=nn.ReLU6,
                           placement=placement, gated=gated)
        self.project = ConvUnit(hidden, out, 1, act=nn.ReLU if eq5_relu else None, placement=placement,
                                gated=gated)
        self.place = Place(out, stream, out_index)

    def forward(self, x, base=None):
        h = self.expand(x) if self.expand is not None else x
        return self.place(self.project(self.dw(h)), base)


class MixedLayer(nn.Module):
    """Eq. 5: the sum of the surviving candidates, plus the identity where there is one."""

    def __init__(self, ops: Sequence[str], candidates: Sequence[MBConv], residual: bool):
        super().__init__()
        self.ops = list(ops)
        self.candidates = nn.ModuleList(candidates)
        self.residual = residual

    def forward(self, x):  # (B, C_in, H, W) -> (B, stream, H / stride, W / stride)
        y = x if self.residual else None
        for c in self.candidates:
            y = c(x, y)
        return y


class ProxylessSupernet(nn.Module):
    name = "proxyless-supernet"
    input_size = IMAGENET_INPUT

    def __init__(self, widths: Sequence[int] | None = None, placement: str = DEFAULT_PLACEMENT,
                 num_classes: int = IMAGENET_CLASSES, width_mult: float = 1.0,
                 ops: Sequence[Sequence[str]] | None = None,
                 out_index: Sequence[Sequence[Sequence[int] | None]] | None = None,
                 stream_widths: Sequence[int] | None = None, eq5_relu: bool = False,
                 gated: bool = True):
        super().__init__()
        self.placement = check_placement(placement)
        self.num_classes, self.width_mult, self.eq5_relu = num_classes, width_mult, bool(eq5_relu)
        self.gated = bool(gated)
        sp = SPACE
        default_streams = [scale(c, width_mult) for c in (sp.first,) + sp.widths]
        if stream_widths is not None:
            stream_widths = list(stream_widths)
            if len(stream_widths) != len(default_streams) or any(
                    not isinstance(s, int) or s < 1 for s in stream_widths):
                raise ValueError(f"{self.name}: stream_widths needs {len(default_streams)} positive integers")
        self.stream_widths = stream_widths or default_streams
        # per layer: (stream, stride, residual, dense ops). The identity shortcut is ProxylessNAS's
        # "stride 1 and same width": every layer but a stage's first (whose width changes even
        # where its stride is 1), decided by position so that stream widths never add one.
        plan = [(self.stream_widths[0], 1, False, [FIRST_OP])]
        for stream, n, s in zip(self.stream_widths[1:], sp.cells, sp.strides):
            plan += [(stream, s if i == 0 else 1, i > 0, list(CANDIDATES)) for i in range(n)]
        self.ops = self._check_ops(ops, plan)
        stem = scale(sp.stem, width_mult)
        # dense widths of the listed candidates: hidden = input width x expansion (layer 0: the stem)
        default, cin = [], stem
        for (stream, _, _, _), names in zip(plan, self.ops):
            default += [w for op in names for w in (cin * parse_op(op)[1], stream)]
            cin = stream
        self.default_widths = default + [scale(sp.last, width_mult)]
        self.widths = check_widths(widths, self.default_widths, self.name)
        if out_index is not None and (len(out_index) != len(plan) or any(
                i is not None and len(i) != len(names) for i, names in zip(out_index, self.ops))):
            raise ValueError(f"{self.name}: out_index needs one list per layer ({len(plan)}), "
                             "one entry per surviving candidate")
        # layer 0 runs its depthwise conv on the stem's channels: the stem's width is its hidden width
        it, cin = iter(self.widths), self.widths[0]
        self.stem = ConvUnit(3, cin, 3, 2, act=nn.ReLU6, gated=False)
        layers = []
        for li, ((stream, stride, residual, _), names) in enumerate(zip(plan, self.ops)):
            cands = []
            for ci, op in enumerate(names):
                kernel, expand = parse_op(op)
                hidden, out = next(it), next(it)
                idx = out_index[li][ci] if out_index is not None and out_index[li] is not None else None
                cands.append(MBConv(cin, hidden, out, stream, kernel, stride, expand != 1,
                                    placement, idx, self.eq5_relu, self.gated))
            layers.append(MixedLayer(names, cands, residual))
            cin = stream
        self.layers = nn.Sequential(*layers)
        self.feature_mix = ConvUnit(cin, self.widths[-1], 1, act=nn.ReLU6, placement=placement,
                                    gated=self.gated)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(self.widths[-1], num_classes)
        init_weights(self)
        for m in self.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.eps = sp.bn_eps

    def _check_ops(self, ops, plan) -> list[list[str]]:
        if ops is None:
            return [list(p[3]) for p in plan]
        ops = [list(o) for o in ops]
        if len(ops) != len(plan):
            raise ValueError(f"{self.name}: ops needs one candidate list per layer ({len(plan)}), got {len(ops)}")
        if ops[0] != [FIRST_OP]:
            raise ValueError(f"{self.name}: layer 0 is the fixed {FIRST_OP}, got {ops[0]}")
        for li, (names, (_, _, residual, _)) in enumerate(zip(ops[1:], plan[1:]), start=1):
            if any(n not in CANDIDATES for n in names) or len(set(names)) != len(names):
                raise ValueError(f"{self.name}: layer {li} lists {names}; candidates are distinct names "
                                 f"from {', '.join(CANDIDATES)}")
            if not names and not residual:
                raise ValueError(f"{self.name}: layer {li} has no shortcut, so it needs at least one candidate")
        return ops

    def forward(self, x):  # (B, 3, H, W) -> (B, num_classes)
        x = self.feature_mix(self.layers(self.stem(x)))
        return self.classifier(torch.flatten(self.pool(x), 1))

    def arch(self) -> dict:
        idx = [[c.place.index_list() for c in layer.candidates] for layer in self.layers]
        default_ops = [[FIRST_OP]] + [list(CANDIDATES)] * (len(self.ops) - 1)
        default_streams = [scale(c, self.width_mult) for c in (SPACE.first,) + SPACE.widths]
        return {"model": self.name, "widths": list(self.widths), "placement": self.placement,
                "num_classes": self.num_classes, "width_mult": self.width_mult,
                "eq5_relu": self.eq5_relu,
                "ops": None if self.ops == default_ops else [list(o) for o in self.ops],
                "out_index": idx if any(i is not None for layer in idx for i in layer) else None,
                "stream_widths": None if self.stream_widths == default_streams else list(self.stream_widths),
                **pruned_keys(self)}


@register_model("proxyless-supernet")
def proxyless_supernet(**kw) -> ProxylessSupernet:
    return ProxylessSupernet(**kw)
