"""ImageNet models (Section V-C, Tables IV-VI): VGG16 with BN, ResNet50, MobileNetV2.

Laid out as torchvision's ``vgg16_bn``, ``resnet50`` and ``mobilenet_v2``, so their weights load
into the dense models (``load_torchvision_weights``). SS gates sit where the authors' code puts
them (notes/official-code.md):
  - VGG16: after each of the 13 conv BNs; the three Linear layers are not gated;
  - ResNet50: after the stem's BN (the authors' ``scale1``) and after every BN inside a
    bottleneck, bn3 included, i.e. BEFORE the residual sum. The residual stream is never gated:
    a block's kept output channels are placed back at their stream positions (``out_index``,
    ``Place``). The downsample (projection) path is not gated;
  - MobileNetV2: after the depthwise BN and the projection BN of every block and on the last 1x1
    conv; none on the stem or the expansion conv (the CIFAR model with ImageNet strides).
Counts at 224x224 (``dnal count``: conv and linear MACs, every parameter): VGG16 15.47G MACs /
138.37M params, ResNet50 4.09G / 25.56M, MobileNetV2 300.77M / 3.50M. The paper prints 25.55M
and 300.79M because the authors' counter (their torchsummary.py) skips the BN of ResNet's
unmasked downsample convs (-7,680 params) and adds one operation per conv output channel and per
Linear bias (+18,056 for MobileNetV2); ``tests/test_imagenet_models.py`` checks both readings.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..gate import gates
from .cifar import MBV2_CIFAR_CFG, VGG16_CFG, MobileNetV2Cifar
from .layers import (DEFAULT_PLACEMENT, ConvUnit, Place, check_placement, check_removed, check_widths,
                     index_set, pruned_keys, scale)
from .registry import register_model

IMAGENET_INPUT = (3, 224, 224)
IMAGENET_CLASSES = 1000


def init_weights(model: nn.Module) -> nn.Module:
    """torchvision's initialisation: He-normal (fan_out) convs, BN 1/0, Linear N(0, 0.01).
    A model built on the meta device (to count it) has nothing to initialise."""
    if any(p.is_meta for p in model.parameters()):
        return model
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0, 0.01)
            nn.init.zeros_(m.bias)
    return model


def _with_bias(unit: ConvUnit) -> ConvUnit:
    """torchvision's VGG convs carry a bias (it is in the paper's 138.37M params); ConvUnit's
    conv has none, so swap in a biased conv of the same shape (same child name and order)."""
    c = unit.conv
    unit.conv = type(c)(c.in_channels, c.out_channels, c.kernel_size, c.stride, c.padding,
                        groups=c.groups, bias=True)
    return unit


# --------------------------------------------------------------------------------------------
# VGG16 with BN: 13 gated conv(+bias)+BN units, max-pool after conv 2, 4, 7, 10, 13, a 7x7
# adaptive average pool, then Linear(512*49, 4096) -> ReLU -> Dropout -> Linear(4096, 4096) ->
# ReLU -> Dropout -> Linear(4096, 1000), as torchvision's vgg16_bn. ``fc_bn=True, dropout=0``
# gives the authors' classifier instead (BatchNorm1d after both hidden Linears, no dropout; same
# MACs, +16,384 BN params), which torchvision's weights do not fit.
class VGGImageNet(nn.Module):
    name = "vgg16-imagenet"
    input_size = IMAGENET_INPUT

    def __init__(self, widths: Sequence[int] | None = None, placement: str = DEFAULT_PLACEMENT,
                 num_classes: int = IMAGENET_CLASSES, width_mult: float = 1.0,
                 fc_width: int | None = None, dropout: float = 0.5, fc_bn: bool = False,
                 gated: bool = True, folded: Sequence[int] | None = None):
        super().__init__()
        self.placement = check_placement(placement)
        self.num_classes, self.width_mult, self.gated = num_classes, width_mult, bool(gated)
        self.dropout, self.fc_bn = dropout, fc_bn
        self.default_widths = [scale(c, width_mult) for c in VGG16_CFG if c != "M"]
        self.widths = check_widths(widths, self.default_widths, self.name)
        self.folded = index_set(folded, len(self.widths), "folded", self.name)
        self.fc_width = fc_width if fc_width is not None else scale(4096, width_mult)
        layers, cin, i = [], 3, 0
        for c in VGG16_CFG + ("M",):
            if c == "M":
                layers.append(nn.MaxPool2d(2))
            else:
                w = self.widths[i]
                layers.append(_with_bias(ConvUnit(cin, w, 3, placement=placement, gated=self.gated,
                                                  folded=i in self.folded)))
                cin, i = w, i + 1
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(7)  # any input size >= 32 gives the 7x7 the FC expects
        fc = []
        for fin in (cin * 49, self.fc_width):
            fc += [nn.Linear(fin, self.fc_width)] + ([nn.BatchNorm1d(self.fc_width)] if fc_bn else [])
            fc += [nn.ReLU(inplace=True), nn.Dropout(dropout)]
        self.classifier = nn.Sequential(*fc, nn.Linear(self.fc_width, num_classes))
        init_weights(self)

    def forward(self, x):  # (B, 3, H, W) -> (B, num_classes)
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))

    def arch(self) -> dict:
        return {"model": self.name, "widths": list(self.widths), "placement": self.placement,
                "num_classes": self.num_classes, "width_mult": self.width_mult,
                "fc_width": self.fc_width, "dropout": self.dropout, "fc_bn": self.fc_bn,
                **pruned_keys(self)}


# --------------------------------------------------------------------------------------------
# ResNet50 (torchvision's v1.5: the stride sits on the 3x3 conv): 7x7/2 stem (gated, as the
# authors' code), 3x3/2 max-pool, stages of 3, 4, 6, 3 bottlenecks (inner widths 64, 128, 256,
# 512; stream 4x that). widths = [stem] + (mid1, mid2, out) per block, its three gates sitting
# after bn1, bn2, bn3. A stage's first block has a conv1x1+BN projection of the stream, ungated.
RESNET50_STAGES = ((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2))  # (inner width, blocks, stride)


class Bottleneck(nn.Module):
    def __init__(self, cin: int, mid1: int, mid2: int, out: int, stream: int, stride: int,
                 project: bool, placement: str, out_index: Sequence[int] | None = None,
                 gated: bool = True, folded: bool = False, bias: bool = False):
        super().__init__()
        if out:  # out == 0: a pruned block whose branch was removed; only the shortcut is left
            self.conv1 = ConvUnit(cin, mid1, 1, placement=placement, gated=gated)
            self.conv2 = ConvUnit(mid1, mid2, 3, stride, placement=placement, gated=gated, folded=folded)
            self.conv3 = ConvUnit(mid2, out, 1, act=None, placement=placement, gated=gated)  # gated before the sum
        else:
            self.conv1 = self.conv2 = self.conv3 = None
        self.downsample = ConvUnit(cin, stream, 1, stride, act=None, gated=False) if project else None
        self.place = Place(out, stream, out_index, bias=bias)

    def forward(self, x):
        base = x if self.downsample is None else self.downsample(x)
        branch = self.conv3(self.conv2(self.conv1(x))) if self.conv3 is not None else None
        return F.relu(self.place(branch, base))


class ResNet50ImageNet(nn.Module):
    name = "resnet50-imagenet"
    input_size = IMAGENET_INPUT

    def __init__(self, widths: Sequence[int] | None = None, placement: str = DEFAULT_PLACEMENT,
                 num_classes: int = IMAGENET_CLASSES, width_mult: float = 1.0,
                 out_index: Sequence[Sequence[int] | None] | None = None, gated: bool = True,
                 folded: Sequence[int] | None = None, stream_bias: Sequence[int] | None = None):
        super().__init__()
        self.placement = check_placement(placement)
        self.num_classes, self.width_mult, self.gated = num_classes, width_mult, bool(gated)
        plan = []  # per block: (inner width, stream width, stride, has projection)
        for inner, n, s in RESNET50_STAGES:
            inner = scale(inner, width_mult)
            plan += [(inner, 4 * inner, s if i == 0 else 1, i == 0) for i in range(n)]
        self.streams = [p[1] for p in plan]
        self.default_widths = [scale(64, width_mult)] + [
            w for inner, stream, _, _ in plan for w in (inner, inner, stream)]
        self.widths = check_widths(widths, self.default_widths, self.name, min_width=0 if not gated else 1)
        if self.widths[0] == 0:
            raise ValueError(f"{self.name}: the stem cannot have width 0")
        check_removed(self.widths, [(3 * b + 1, 3 * b + 2, 3 * b + 3) for b in range(len(plan))],
                      [True] * len(plan), self.name)  # every block has a shortcut
        self.folded = index_set(folded, len(self.widths), "folded", self.name)
        self.stream_bias = index_set(stream_bias, len(plan), "stream_bias", self.name)
        if out_index is not None and len(out_index) != len(plan):
            raise ValueError(f"{self.name}: out_index needs {len(plan)} entries (one per block), got {len(out_index)}")
        self.stem = ConvUnit(3, self.widths[0], 7, 2, placement=placement, gated=self.gated)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        blocks, cin = [], self.widths[0]
        for b, (_, stream, stride, project) in enumerate(plan):
            mid1, mid2, out = self.widths[3 * b + 1: 3 * b + 4]
            idx = out_index[b] if out_index is not None else None
            blocks.append(Bottleneck(cin, mid1, mid2, out, stream, stride, project, placement, idx,
                                     self.gated, 3 * b + 2 in self.folded, b in self.stream_bias))
            cin = stream
        self.blocks = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(cin, num_classes)
        init_weights(self)

    def forward(self, x):  # (B, 3, H, W) -> (B, num_classes)
        x = self.blocks(self.maxpool(self.stem(x)))
        return self.fc(torch.flatten(self.pool(x), 1))

    def arch(self) -> dict:
        idx = [blk.place.index_list() for blk in self.blocks]
        return {"model": self.name, "widths": list(self.widths), "placement": self.placement,
                "num_classes": self.num_classes, "width_mult": self.width_mult,
                "out_index": idx if any(i is not None for i in idx) else None, **pruned_keys(self)}


# --------------------------------------------------------------------------------------------
# MobileNetV2: the CIFAR model (same gates, same arch format) with torchvision's ImageNet
# configuration: stride-2 stem of 32, stage strides 1,2,2,2,1,2,1, last 1x1 conv of 1280. The
# classifier is a plain Linear: the paper removes MobileNetV2's dropout (Section V-C).
MBV2_IMAGENET_CFG = tuple((t, c, n, s) for (t, c, n, _), s in
                          zip(MBV2_CIFAR_CFG, (1, 2, 2, 2, 1, 2, 1)))


class MobileNetV2ImageNet(MobileNetV2Cifar):
    name = "mobilenetv2-imagenet"
    input_size = IMAGENET_INPUT
    cfg = MBV2_IMAGENET_CFG
    stem_stride = 2

    def __init__(self, widths: Sequence[int] | None = None, placement: str = DEFAULT_PLACEMENT,
                 num_classes: int = IMAGENET_CLASSES, width_mult: float = 1.0, **kw):
        super().__init__(widths, placement, num_classes, width_mult, **kw)
        init_weights(self)


@register_model("vgg16-imagenet")
def vgg16_imagenet(**kw) -> VGGImageNet:
    return VGGImageNet(**kw)


@register_model("resnet50-imagenet")
def resnet50_imagenet(**kw) -> ResNet50ImageNet:
    return ResNet50ImageNet(**kw)


@register_model("mobilenetv2-imagenet")
def mobilenetv2_imagenet(**kw) -> MobileNetV2ImageNet:
    return MobileNetV2ImageNet(**kw)


# --------------------------------------------------------------------------------------------
# torchvision weights. Each map names, for every conv/BN/Linear module of ours, the module of
# torchvision's model that holds the same tensors.

def _vgg_names(model: VGGImageNet) -> dict[str, str]:
    if model.fc_bn:
        raise ValueError("vgg16-imagenet with fc_bn=True (the authors' classifier) has no torchvision layout")
    names, tv = {}, 0
    for i, layer in enumerate(model.features):
        if isinstance(layer, ConvUnit):  # torchvision: conv, bn, relu at tv, tv+1, tv+2
            names[f"features.{i}.conv"], names[f"features.{i}.bn"] = f"features.{tv}", f"features.{tv + 1}"
            tv += 3
        else:
            tv += 1
    names.update({f"classifier.{i}": f"classifier.{i}" for i in (0, 3, 6)})
    return names


def _resnet_names(model: ResNet50ImageNet) -> dict[str, str]:
    names = {"stem.conv": "conv1", "stem.bn": "bn1", "fc": "fc"}
    b = 0
    for stage, (_, n, _) in enumerate(RESNET50_STAGES, start=1):
        for i in range(n):
            ours, tv = f"blocks.{b}", f"layer{stage}.{i}"
            for k in (1, 2, 3):
                names[f"{ours}.conv{k}.conv"], names[f"{ours}.conv{k}.bn"] = f"{tv}.conv{k}", f"{tv}.bn{k}"
            if model.blocks[b].downsample is not None:
                names[f"{ours}.downsample.conv"] = f"{tv}.downsample.0"
                names[f"{ours}.downsample.bn"] = f"{tv}.downsample.1"
            b += 1
    return names


def _mobilenetv2_names(model: MobileNetV2ImageNet) -> dict[str, str]:
    last = len(model.blocks) + 1
    names = {"stem.conv": "features.0.0", "stem.bn": "features.0.1", "last.conv": f"features.{last}.0",
             "last.bn": f"features.{last}.1", "classifier": "classifier.1"}
    for b, blk in enumerate(model.blocks):
        ours, tv = f"blocks.{b}", f"features.{b + 1}.conv"
        units = ["dw"] if blk.expand is None else ["expand", "dw"]
        for j, u in enumerate(units):  # Conv2dNormActivation: .0 conv, .1 BN
            names[f"{ours}.{u}.conv"], names[f"{ours}.{u}.bn"] = f"{tv}.{j}.0", f"{tv}.{j}.1"
        names[f"{ours}.project.conv"], names[f"{ours}.project.bn"] = f"{tv}.{len(units)}", f"{tv}.{len(units) + 1}"
    return names


TORCHVISION = {  # our model -> (torchvision builder, module-name map)
    "vgg16-imagenet": ("vgg16_bn", _vgg_names),
    "resnet50-imagenet": ("resnet50", _resnet_names),
    "mobilenetv2-imagenet": ("mobilenet_v2", _mobilenetv2_names),
}


def torchvision_key_map(model: nn.Module) -> dict[str, str]:
    """Our state_dict key -> torchvision's, for every tensor except the SS gates'."""
    if getattr(model, "name", None) not in TORCHVISION:
        raise ValueError(f"no torchvision layout for {getattr(model, 'name', model)!r}; "
                         f"valid: {', '.join(TORCHVISION)}")
    keys = {}
    for ours, tv in TORCHVISION[model.name][1](model).items():
        for k in model.get_submodule(ours).state_dict():
            keys[f"{ours}.{k}"] = f"{tv}.{k}"
    gate_prefixes = tuple(f"{n}." for n, _ in gates(model))
    unmapped = [k for k in model.state_dict() if k not in keys and not k.startswith(gate_prefixes)]
    if unmapped:  # a layout change here that the map does not know about
        raise ValueError(f"{model.name}: no torchvision key for {unmapped[:3]}")
    return keys


@torch.no_grad()
def load_torchvision_weights(model: nn.Module, state_dict: dict[str, torch.Tensor]) -> nn.Module:
    """Copy a torchvision ``vgg16_bn`` / ``resnet50`` / ``mobilenet_v2`` state_dict into our
    dense model of the same name (the SS gates keep their values). Raises ValueError, changing
    nothing, when keys are missing or unexpected or a shape differs (a pruned or width-scaled
    model, another num_classes)."""
    keys = torchvision_key_map(model)
    wanted, given = set(keys.values()), set(state_dict)
    if wanted != given:
        missing, unexpected = sorted(wanted - given), sorted(given - wanted)
        raise ValueError(f"{model.name}: torchvision state_dict does not match: "
                         f"missing {missing[:3]} ({len(missing)}), unexpected {unexpected[:3]} ({len(unexpected)})")
    own = model.state_dict()
    for ours, tv in keys.items():
        if own[ours].shape != state_dict[tv].shape:
            raise ValueError(f"{model.name}: {tv} has shape {tuple(state_dict[tv].shape)}, "
                             f"ours ({ours}) {tuple(own[ours].shape)}")
    model.load_state_dict({**own, **{ours: state_dict[tv] for ours, tv in keys.items()}})
    return model
