"""How the CIFAR families' channels are coupled (``structure``) and cut (``surgery``).

Each surgery reads the gated network ``src`` (eval mode) and the keep masks and returns the
pruned network as data: ``(arch, state_dict)``; ``build_from_arch(arch)`` then loads that
state_dict strictly, so the arch always describes exactly the weights.
"""
from __future__ import annotations

import torch

from ..models.cifar import MobileNetV2Cifar, ResNetCifar, VGGCifar
from ..models.layers import ConvUnit, FoldedConv2d
from .cost import Any, Full, Layer, Live, Open
from .coupling import Branch, Group
from .verbs import (closed_values, fold_conv_in, module_state, shift_bn, slice_bn, slice_conv_out,
                    slice_depthwise, slice_linear_in)


def pruned_arch(src, widths, **keys) -> dict:
    arch = src.arch()
    arch.update(widths=[int(w) for w in widths], gated=False, **keys)
    return arch


def prune_unit(prefix: str, unit: ConvUnit, keep: torch.Tensor, in_keep: torch.Tensor,
          in_values: torch.Tensor) -> tuple[dict, bool]:
    """A dense conv unit keeping outputs ``keep`` and inputs ``in_keep``; removed inputs were
    the constants ``in_values``. Returns (state, whether the conv became a FoldedConv2d)."""
    conv, shift = fold_conv_in(slice_conv_out(unit.conv, keep), in_keep, in_values)
    bn = slice_bn(unit.bn, keep)
    if shift is not None:
        bn = shift_bn(bn, shift)
    folded = isinstance(conv, FoldedConv2d)
    return {**module_state(f"{prefix}.conv", conv), **module_state(f"{prefix}.bn", bn)}, folded


def ones(n: int) -> torch.Tensor:
    return torch.ones(n, dtype=torch.bool)


# --- VGG: a chain; a layer's kept outputs are the next layer's inputs ------------------------

def vgg_structure(m: VGGCifar) -> list[Group]:
    names = [f"features.{i}" for i, u in enumerate(m.features) if isinstance(u, ConvUnit)]
    return [Group(n, (Branch((i,), i),), shortcut=False) for i, n in enumerate(names)]


def vgg_cost(m: VGGCifar) -> list[Layer]:
    """The widths the surgery below leaves (``prune.cost``): conv i reads gate i-1's channels."""
    units = [u for u in m.features if isinstance(u, ConvUnit)]
    layers, cin = [], Full(3)
    for i, u in enumerate(units):
        layers += [Layer(u.conv, Open(i), cin), Layer(u.bn, Open(i))]
        cin = Open(i)
    return layers + [Layer(m.classifier[0], Full(m.classifier[0].out_features), cin)]


def vgg_surgery(src: VGGCifar, keep: list[torch.Tensor]):
    sd, folded = {}, []
    in_keep, in_values, i = ones(3), torch.zeros(3), 0
    for j, unit in enumerate(src.features):
        if not isinstance(unit, ConvUnit):
            continue  # max-pool: a constant channel stays the same constant
        state, f = prune_unit(f"features.{j}", unit, keep[i], in_keep, in_values)
        sd.update(state)
        if f:
            folded.append(i)
        in_keep, in_values, i = keep[i], closed_values(unit), i + 1
    # global average pool keeps constants; the classifier's first linear folds them into its bias
    sd.update(module_state("classifier.0", slice_linear_in(src.classifier[0], in_keep, in_values)))
    for k in (1, 3):
        sd.update(module_state(f"classifier.{k}", src.classifier[k]))
    return pruned_arch(src, [int(k.sum()) for k in keep], folded=folded), sd


# --- ResNet (CIFAR, option A): blocks add their kept outputs into a full-width stream --------

def resnet_structure(m: ResNetCifar) -> list[Group]:
    return [Group(f"blocks.{b}", (Branch((2 * b, 2 * b + 1), 2 * b + 1),), shortcut=True)
            for b in range(len(m.blocks))]


def stream_positions(place) -> list[int]:
    idx = place.index_list()
    return idx if idx is not None else list(range(place.width))


def resnet_cost(m: ResNetCifar) -> list[Layer]:
    """A block reads the full stream; both its convs go when its output gate closes entirely."""
    layers = []
    for b, blk in enumerate(m.blocks):
        mid, out, alive = Open(2 * b), Open(2 * b + 1), Any(2 * b + 1)
        layers += [Layer(blk.conv1.conv, mid, Full(blk.conv1.conv.in_channels), alive),
                   Layer(blk.conv1.bn, mid, alive=alive), Layer(blk.conv2.conv, out, mid),
                   Layer(blk.conv2.bn, out)]
    return layers


def resnet_surgery(src: ResNetCifar, keep: list[torch.Tensor]):
    """Inside a block channels are free; the block's kept outputs go back to their positions in
    the residual stream (``out_index``), which keeps its width: no live channel is lost. What
    closed outputs emit (BN's shift when SS precedes BN) becomes a bias beside the stream; a
    block whose outputs all close is removed and leaves ``relu(shortcut + bias)``."""
    sd = {**module_state("stem", src.stem), **module_state("fc", src.fc)}
    widths, out_index, folded, stream_bias = [], [], [], []
    for b, blk in enumerate(src.blocks):
        k_mid, k_out = keep[2 * b], keep[2 * b + 1]
        pos = torch.tensor(stream_positions(blk.place))
        v_out = closed_values(blk.conv2)
        bias = torch.zeros(blk.place.stream)
        if k_out.any():
            p = f"blocks.{b}"
            state, _ = prune_unit(f"{p}.conv1", blk.conv1, k_mid, ones(blk.conv1.conv.in_channels),
                             torch.zeros(blk.conv1.conv.in_channels))
            sd.update(state)
            state, f = prune_unit(f"{p}.conv2", blk.conv2, k_out, k_mid, closed_values(blk.conv1))
            sd.update(state)
            if f:
                folded.append(2 * b + 1)
            idx = pos[k_out].tolist()
            out_index.append(None if idx == list(range(blk.place.stream)) else idx)
            bias[pos[~k_out]] = v_out[~k_out]
            widths += [int(k_mid.sum()), int(k_out.sum())]
        else:
            out_index.append(None)
            bias[pos] = v_out
            widths += [0, 0]
        if bias.any():
            stream_bias.append(b)
            sd[f"blocks.{b}.place.bias"] = bias
    arch = pruned_arch(src, widths, folded=folded, stream_bias=stream_bias,
                        out_index=out_index if any(i is not None for i in out_index) else None)
    return arch, sd


# --- MobileNetV2: expansion, depthwise and projection are coupled; streams narrow ------------

def mbv2_structure(m: MobileNetV2Cifar) -> list[Group]:
    groups = [Group(f"blocks.{b}", (Branch((2 * b, 2 * b + 1), 2 * b + 1),), shortcut=blk.residual)
              for b, blk in enumerate(m.blocks)]
    last = 2 * len(m.blocks)
    return groups + [Group("last", (Branch((last,), last),), shortcut=False)]


def stages(blocks) -> list[list[int]]:
    """Block indices of each stage: a stage starts at a block without shortcut."""
    stages = []
    for b, blk in enumerate(blocks):
        if not blk.residual:
            stages.append([])
        stages[-1].append(b)
    return stages


def mbv2_cost(m: MobileNetV2Cifar) -> list[Layer]:
    """Per block: expansion (reads the stream), depthwise and projection as the surgery below
    cuts them; a stage's stream keeps the positions some block of the stage writes live; a
    residual block goes when its projection closes entirely."""
    stage_of, live = {}, []
    for s, blocks in enumerate(stages(m.blocks)):
        live.append(Live(tuple((2 * b + 1, tuple(stream_positions(m.blocks[b].place))) for b in blocks),
                         m.blocks[blocks[0]].place.stream))
        stage_of.update({b: s for b in blocks})
    layers, cin = [], Full(m.stem.conv.out_channels)
    if m.blocks[0].expand is None:  # the first depthwise conv reads the stem: its outputs follow gate 0
        layers += [Layer(m.stem.conv, Open(0), Full(m.stem.conv.in_channels)), Layer(m.stem.bn, Open(0))]
    for b, blk in enumerate(m.blocks):
        hid, out = Open(2 * b), Open(2 * b + 1)
        alive = Any(2 * b + 1) if blk.residual else None
        if blk.expand is not None:
            layers += [Layer(blk.expand.conv, hid, cin, alive), Layer(blk.expand.bn, hid, alive=alive)]
        layers += [Layer(blk.dw.conv, hid, alive=alive), Layer(blk.dw.bn, hid, alive=alive),
                   Layer(blk.project.conv, out, hid), Layer(blk.project.bn, out)]
        cin = live[stage_of[b]]
    last = Open(2 * len(m.blocks))
    return layers + [Layer(m.last.conv, last, cin), Layer(m.last.bn, last),
                     Layer(m.classifier, Full(m.classifier.out_features), last)]


def mbv2_surgery(src: MobileNetV2Cifar, keep: list[torch.Tensor]):
    """Per block the expansion outputs, the depthwise channels and the projection inputs are
    one set of channels (the depthwise gate). The projection's kept outputs go to their places
    in the stage's stream; a residual block whose projection closes entirely leaves only its
    shortcut. A stream channel that no block of its stage writes live carries a constant (or
    zero), so it is removed from the stream and its constant folded into the 1x1 convs that
    read it (the next expansions and the last conv): streams narrow."""
    nb = len(src.blocks)
    stage_of = {b: s for s, blocks in enumerate(stages(src.blocks)) for b in blocks}
    live = [torch.zeros(src.blocks[blocks[0]].place.stream, dtype=torch.bool) for blocks in stages(src.blocks)]
    for b, blk in enumerate(src.blocks):
        live[stage_of[b]][torch.tensor(stream_positions(blk.place))[keep[2 * b + 1]]] = True

    sd = {}
    widths, out_index, stream_bias = [], [], []
    first = src.blocks[0]
    if first.expand is None:  # its depthwise conv reads the stem: stem outputs follow its gate
        stem_conv, stem_bn = slice_conv_out(src.stem.conv, keep[0]), slice_bn(src.stem.bn, keep[0])
        sd.update({**module_state("stem.conv", stem_conv), **module_state("stem.bn", stem_bn)})
    else:
        sd.update(module_state("stem", src.stem))
    in_keep = ones(src.stem.conv.out_channels)
    in_values = torch.zeros(len(in_keep))
    for b, blk in enumerate(src.blocks):
        k_hid, k_out = keep[2 * b], keep[2 * b + 1]
        s_keep = live[stage_of[b]]
        rank = torch.cumsum(s_keep.long(), 0) - 1  # old stream position -> new position
        pos = torch.tensor(stream_positions(blk.place))
        v_out = closed_values(blk.project)
        const = torch.zeros(blk.place.stream)  # constants this block writes into the stream
        p = f"blocks.{b}"
        if k_out.any():
            if blk.expand is not None:
                sd.update(prune_unit(f"{p}.expand", blk.expand, k_hid, in_keep, in_values)[0])
            sd.update(module_state(f"{p}.dw.conv", slice_depthwise(blk.dw.conv, k_hid)))
            sd.update(module_state(f"{p}.dw.bn", slice_bn(blk.dw.bn, k_hid)))
            sd.update(prune_unit(f"{p}.project", blk.project, k_out, k_hid, closed_values(blk.dw))[0])
            idx = rank[pos[k_out]].tolist()
            out_index.append(None if idx == list(range(int(s_keep.sum()))) else idx)
            const[pos[~k_out]] = v_out[~k_out]
            widths += [int(k_hid.sum()), int(k_out.sum())]
        else:
            out_index.append(None)
            const[pos] = v_out
            widths += [0, 0]
        if const[s_keep].any():
            stream_bias.append(b)
            sd[f"{p}.place.bias"] = const[s_keep]
        # the stream after this block: kept channels flow in the tensor; removed ones are constants
        in_values = const if not blk.residual else in_values + const
        in_keep = s_keep
    k_last = keep[2 * nb]
    sd.update(prune_unit("last", src.last, k_last, in_keep, in_values)[0])
    sd.update(module_state("classifier", slice_linear_in(src.classifier, k_last, closed_values(src.last))))
    widths.append(int(k_last.sum()))
    streams = [int(s.sum()) for s in live]
    arch = pruned_arch(src, widths, stream_bias=stream_bias,
                        out_index=out_index if any(i is not None for i in out_index) else None,
                        stream_widths=streams)
    return arch, sd
