"""CIFAR-10 models: VGG16 (as in GAL/HRank, the paper's ref. [47]), ResNet56 with option-A
shortcuts, MobileNetV2. Each takes per-gate ``widths`` and an SS ``placement``."""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .layers import (DEFAULT_PLACEMENT, ConvUnit, Place, check_placement, check_removed, check_widths,
                     index_set, pruned_keys, scale)
from .registry import register_model

# A pruned network (dnal_core.prune) is built by these same builders: ``gated=False``,
# ``folded``, ``stream_bias`` and width 0 for a removed branch (see the end of layers.py).

# --------------------------------------------------------------------------------------------
# VGG16: 13 conv+BN (each gated), max-pool after conv 2, 4, 7, 10, then a 2x2 average pool and
# the classifier Linear(512, 512) -> BN1d -> ReLU -> Linear(512, 10), not gated (as the
# authors' code). 313.46M MACs, 14.99M params.
VGG16_CFG = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512)


class VGGCifar(nn.Module):
    name = "vgg16-cifar"
    input_size = (3, 32, 32)

    def __init__(self, widths: Sequence[int] | None = None, placement: str = DEFAULT_PLACEMENT,
                 num_classes: int = 10, width_mult: float = 1.0, fc_width: int | None = None,
                 gated: bool = True, folded: Sequence[int] | None = None):
        super().__init__()
        self.placement = check_placement(placement)
        self.num_classes, self.width_mult, self.gated = num_classes, width_mult, bool(gated)
        self.default_widths = [scale(c, width_mult) for c in VGG16_CFG if c != "M"]
        self.widths = check_widths(widths, self.default_widths, self.name)
        self.folded = index_set(folded, len(self.widths), "folded", self.name)
        self.fc_width = fc_width if fc_width is not None else scale(512, width_mult)
        layers, cin, i = [], 3, 0
        for c in VGG16_CFG:
            if c == "M":
                layers.append(nn.MaxPool2d(2))
            else:
                w = self.widths[i]
                layers.append(ConvUnit(cin, w, 3, placement=placement, gated=self.gated,
                                       folded=i in self.folded))
                cin, i = w, i + 1
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(
            nn.Linear(cin, self.fc_width), nn.BatchNorm1d(self.fc_width), nn.ReLU(inplace=True),
            nn.Linear(self.fc_width, num_classes))

    def forward(self, x):  # (B, 3, 32, 32) -> (B, num_classes)
        return self.classifier(torch.flatten(self.pool(self.features(x)), 1))

    def arch(self) -> dict:
        return {"model": self.name, "widths": list(self.widths), "placement": self.placement,
                "num_classes": self.num_classes, "width_mult": self.width_mult,
                "fc_width": self.fc_width, **pruned_keys(self)}


# --------------------------------------------------------------------------------------------
# ResNet56: stem conv 3->16, three stages of 9 basic blocks (16, 32, 64 channels, strides 1, 2,
# 2), option-A shortcuts (subsample and zero-pad: no parameters). Each block has two gates: after
# conv1 (the block's inner width) and after conv2 (its output, gated BEFORE the residual sum, as
# the authors do for ResNet50). The residual stream itself is never gated; a pruned block output
# is placed back at its channels of the stream (``out_index``). 125.49M MACs, 0.85M params.

class BasicBlockA(nn.Module):
    def __init__(self, cin: int, mid: int, out: int, stream: int, stride: int, placement: str,
                 out_index: Sequence[int] | None = None, gated: bool = True, folded: bool = False,
                 bias: bool = False):
        super().__init__()
        if out:  # out == 0: a pruned block whose branch was removed; only the shortcut is left
            self.conv1 = ConvUnit(cin, mid, 3, stride, placement=placement, gated=gated)
            self.conv2 = ConvUnit(mid, out, 3, 1, act=None, placement=placement, gated=gated,
                                  folded=folded)
        else:
            self.conv1 = self.conv2 = None
        self.place = Place(out, stream, out_index, bias=bias)
        self.stride, self.pad = stride, stream - cin  # option A: zero channels added by the shortcut

    def shortcut(self, x):
        if self.stride != 1:
            x = x[:, :, ::self.stride, ::self.stride]
        if self.pad:
            x = F.pad(x, (0, 0, 0, 0, self.pad // 2, self.pad - self.pad // 2))
        return x

    def forward(self, x):
        branch = self.conv2(self.conv1(x)) if self.conv2 is not None else None
        return F.relu(self.place(branch, self.shortcut(x)))


class ResNetCifar(nn.Module):
    input_size = (3, 32, 32)

    def __init__(self, depth: int, widths: Sequence[int] | None = None,
                 placement: str = DEFAULT_PLACEMENT, num_classes: int = 10, width_mult: float = 1.0,
                 out_index: Sequence[Sequence[int] | None] | None = None, gated: bool = True,
                 folded: Sequence[int] | None = None, stream_bias: Sequence[int] | None = None):
        super().__init__()
        if (depth - 2) % 6:
            raise ValueError(f"a CIFAR ResNet has depth 6n+2, got {depth}")
        n = (depth - 2) // 6
        self.name = f"resnet{depth}-cifar"
        self.placement = check_placement(placement)
        self.num_classes, self.width_mult, self.gated = num_classes, width_mult, bool(gated)
        streams = [scale(c, width_mult) for c in (16, 32, 64)]
        self.streams = [s for s in streams for _ in range(n)]  # stream width of each block
        self.default_widths = [w for s in self.streams for w in (s, s)]
        self.widths = check_widths(widths, self.default_widths, self.name, min_width=0 if not gated else 1)
        check_removed(self.widths, [(2 * b, 2 * b + 1) for b in range(3 * n)], [True] * (3 * n), self.name)
        self.folded = index_set(folded, len(self.widths), "folded", self.name)
        self.stream_bias = index_set(stream_bias, 3 * n, "stream_bias", self.name)
        if out_index is not None and len(out_index) != 3 * n:
            raise ValueError(f"{self.name}: out_index needs {3 * n} entries (one per block), got {len(out_index)}")
        self.stem = ConvUnit(3, streams[0], 3, gated=False)
        blocks, cin = [], streams[0]
        for b, stream in enumerate(self.streams):
            stride = 2 if b % n == 0 and b > 0 else 1
            mid, out = self.widths[2 * b], self.widths[2 * b + 1]
            idx = out_index[b] if out_index is not None else None
            blocks.append(BasicBlockA(cin, mid, out, stream, stride, placement, idx, self.gated,
                                      2 * b + 1 in self.folded, b in self.stream_bias))
            cin = stream
        self.blocks = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x):  # (B, 3, 32, 32) -> (B, num_classes)
        return self.fc(torch.flatten(self.pool(self.blocks(self.stem(x))), 1))

    def arch(self) -> dict:
        idx = [blk.place.index_list() for blk in self.blocks]
        return {"model": self.name, "widths": list(self.widths), "placement": self.placement,
                "num_classes": self.num_classes, "width_mult": self.width_mult,
                "out_index": idx if any(i is not None for i in idx) else None, **pruned_keys(self)}


@register_model("vgg16-cifar")
def vgg16_cifar(**kw) -> VGGCifar:
    return VGGCifar(**kw)


@register_model("resnet56-cifar")
def resnet56_cifar(**kw) -> ResNetCifar:
    return ResNetCifar(56, **kw)


# The same family at depths 20 and 32 (3 and 5 blocks a stage instead of 9; He et al. 2016's
# CIFAR ResNets): not in the paper, a cheaper stand-in where a CPU budget asks for one.
@register_model("resnet20-cifar")
def resnet20_cifar(**kw) -> ResNetCifar:
    return ResNetCifar(20, **kw)


@register_model("resnet32-cifar")
def resnet32_cifar(**kw) -> ResNetCifar:
    return ResNetCifar(32, **kw)


# --------------------------------------------------------------------------------------------
# MobileNetV2 for CIFAR (the common variant: stride-1 3x3 stem of 32, stage strides
# 1,1,2,2,1,2,1, last 1x1 conv of 1280). Gates as in the authors' ImageNet code: after the
# depthwise BN (the block's hidden width, which also sets the expansion conv's outputs), after
# the projection BN (the block's output), and after the last 1x1 conv; none on the stem or the
# expansion conv. A block's projection output is placed into its stage's stream (``out_index``)
# and added to the shortcut where the block has one.
# (t, c, n, s): expansion, output channels, blocks, stride of the first block
MBV2_CIFAR_CFG = ((1, 16, 1, 1), (6, 24, 2, 1), (6, 32, 3, 2), (6, 64, 4, 2),
                  (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))


class InvertedResidual(nn.Module):
    def __init__(self, cin: int, hidden: int, out: int, stream: int, stride: int, expand: bool,
                 residual: bool, placement: str, out_index: Sequence[int] | None = None,
                 act: type[nn.Module] = nn.ReLU6, gated: bool = True, bias: bool = False):
        super().__init__()
        if not expand and hidden != cin and out:
            raise ValueError(f"a block without expansion keeps its input width ({cin}), got {hidden}")
        if out:  # out == 0: a pruned residual block whose branch was removed
            self.expand = ConvUnit(cin, hidden, 1, act=act, gated=False) if expand else None
            self.dw = ConvUnit(hidden, hidden, 3, stride, groups=hidden, act=act,
                               placement=placement, gated=gated)
            self.project = ConvUnit(hidden, out, 1, act=None, placement=placement, gated=gated)
        else:
            self.expand = self.dw = self.project = None
        self.place = Place(out, stream, out_index, bias=bias)
        self.residual = residual

    def forward(self, x):
        branch = None
        if self.project is not None:
            h = self.expand(x) if self.expand is not None else x
            branch = self.project(self.dw(h))
        return self.place(branch, x if self.residual else None)


class MobileNetV2Cifar(nn.Module):
    name = "mobilenetv2-cifar"
    input_size = (3, 32, 32)
    cfg = MBV2_CIFAR_CFG
    stem_stride = 1
    last_width = 1280

    def __init__(self, widths: Sequence[int] | None = None, placement: str = DEFAULT_PLACEMENT,
                 num_classes: int = 10, width_mult: float = 1.0,
                 out_index: Sequence[Sequence[int] | None] | None = None,
                 stream_widths: Sequence[int] | None = None, gated: bool = True,
                 stream_bias: Sequence[int] | None = None):
        super().__init__()
        self.placement = check_placement(placement)
        self.num_classes, self.width_mult, self.gated = num_classes, width_mult, bool(gated)
        stem = scale(32, width_mult)
        stages = [scale(c, width_mult) for _, c, _, _ in self.cfg]
        if stream_widths is not None:
            stream_widths = list(stream_widths)
            if len(stream_widths) != len(stages) or any(int(s) < 1 for s in stream_widths):
                raise ValueError(f"{self.name}: stream_widths needs {len(stages)} positive widths")
            stages = [int(s) for s in stream_widths]
        self.stream_widths = stages
        # per block: (cin, default hidden, stream, stride, expand, residual)
        plan, cin = [], stem
        for (t, _, n, s), stream in zip(self.cfg, stages):
            for i in range(n):
                stride = s if i == 0 else 1
                plan.append((cin, cin * t if t != 1 else cin, stream, stride, t != 1,
                             stride == 1 and cin == stream and i > 0))
                cin = stream
        self.default_widths = [w for p in plan for w in (p[1], p[2])] + [scale(self.last_width, width_mult)]
        self.widths = check_widths(widths, self.default_widths, self.name, min_width=0 if not gated else 1)
        check_removed(self.widths, [(2 * b, 2 * b + 1) for b in range(len(plan))],
                       [p[5] for p in plan], self.name)
        if self.widths[-1] == 0:
            raise ValueError(f"{self.name}: the last conv cannot have width 0")
        self.stream_bias = index_set(stream_bias, len(plan), "stream_bias", self.name)
        if out_index is not None and len(out_index) != len(plan):
            raise ValueError(f"{self.name}: out_index needs {len(plan)} entries (one per block)")
        # a first block without expansion runs its depthwise conv on the stem's channels,
        # so the stem's width follows that block's hidden width
        stem_out = self.widths[0] if not plan[0][4] else stem
        self.stem = ConvUnit(3, stem_out, 3, self.stem_stride, act=nn.ReLU6, gated=False)
        blocks, cin = [], stem_out
        for b, (_, _, stream, stride, expand, residual) in enumerate(plan):
            hidden, out = self.widths[2 * b], self.widths[2 * b + 1]
            idx = out_index[b] if out_index is not None else None
            blocks.append(InvertedResidual(cin, hidden, out, stream, stride, expand, residual,
                                           placement, idx, gated=self.gated, bias=b in self.stream_bias))
            cin = stream
        self.blocks = nn.Sequential(*blocks)
        self.last = ConvUnit(cin, self.widths[-1], 1, act=nn.ReLU6, placement=placement, gated=self.gated)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(self.widths[-1], num_classes)

    def forward(self, x):  # (B, 3, H, W) -> (B, num_classes)
        return self.classifier(torch.flatten(self.pool(self.last(self.blocks(self.stem(x)))), 1))

    def arch(self) -> dict:
        idx = [blk.place.index_list() for blk in self.blocks]
        default_streams = [scale(c, self.width_mult) for _, c, _, _ in self.cfg]
        return {"model": self.name, "widths": list(self.widths), "placement": self.placement,
                "num_classes": self.num_classes, "width_mult": self.width_mult,
                "out_index": idx if any(i is not None for i in idx) else None,
                "stream_widths": None if self.stream_widths == default_streams else list(self.stream_widths),
                **pruned_keys(self)}


@register_model("mobilenetv2-cifar")
def mobilenetv2_cifar(**kw) -> MobileNetV2Cifar:
    return MobileNetV2Cifar(**kw)
