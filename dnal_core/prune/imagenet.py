"""Coupling (``structure``) and cutting (``surgery``) of the ImageNet families: VGG16-BN,
ResNet50 and the ProxylessNAS supernet. (MobileNetV2-ImageNet is the CIFAR class with other
strides and prunes as such.)

The builders must express a pruned network: ``gated=False`` (all three), ``folded`` (VGG16,
ResNet50), ``stream_bias`` and width 0 for a removed block (ResNet50). Where a builder does not
take these keys yet, ``prune`` says so in one line.
"""
from __future__ import annotations

import torch

from ..models.imagenet import ResNet50ImageNet, VGGImageNet
from ..models.layers import ConvUnit
from ..models.proxyless import ProxylessSupernet
from .cifar import ones, prune_unit, pruned_arch, stages, stream_positions
from .coupling import Branch, Group
from .verbs import (closed_values, const_shift, module_state, shift_bn, slice_bn, slice_conv_in,
                    slice_conv_out, slice_depthwise, slice_linear_in)


# --- VGG16-BN: a chain, then a classifier that reads 7x7 positions per channel ---------------

def vgg_structure(m: VGGImageNet) -> list[Group]:
    names = [f"features.{i}" for i, u in enumerate(m.features) if isinstance(u, ConvUnit)]
    return [Group(n, (Branch((i,), i),), shortcut=False) for i, n in enumerate(names)]


def vgg_surgery(src: VGGImageNet, keep: list[torch.Tensor]):
    sd, folded = {}, []
    in_keep, in_values, i = ones(3), torch.zeros(3), 0
    for j, unit in enumerate(src.features):
        if not isinstance(unit, ConvUnit):
            continue  # max-pool keeps a constant channel constant
        state, f = prune_unit(f"features.{j}", unit, keep[i], in_keep, in_values)
        sd.update(state)
        if f:
            folded.append(i)
        in_keep, in_values, i = keep[i], closed_values(unit), i + 1
    # the adaptive pool makes each channel 7x7 = 49 features (channel-major when flattened);
    # a removed channel's constant is the same at its 49 positions
    size = src.avgpool.output_size
    per = size * size if isinstance(size, int) else size[0] * size[1]
    sd.update(module_state("classifier.0", slice_linear_in(
        src.classifier[0], in_keep.repeat_interleave(per), in_values.repeat_interleave(per))))
    for k in range(1, len(src.classifier)):  # the rest of the classifier as it is
        sd.update(module_state(f"classifier.{k}", src.classifier[k]))
    return pruned_arch(src, [int(k.sum()) for k in keep], folded=folded), sd


# --- ResNet50: bottlenecks add into a full-width stream; projections are not gated ----------

def resnet50_structure(m: ResNet50ImageNet) -> list[Group]:
    groups = [Group("stem", (Branch((0,), 0),), shortcut=False)]
    return groups + [Group(f"blocks.{b}", (Branch((3 * b + 1, 3 * b + 2, 3 * b + 3), 3 * b + 3),),
                           shortcut=True) for b in range(len(m.blocks))]


def resnet50_surgery(src: ResNet50ImageNet, keep: list[torch.Tensor]):
    """As ResNet56: channels inside a bottleneck are free, kept outputs go back to their stream
    positions, the stream keeps its width and closed outputs leave a bias beside it; a block
    whose bn3 gate closes entirely leaves ``relu(shortcut + bias)``. The projection shortcut
    (downsample conv+BN of a stage's first block) has no gate: it is kept whole, and only its
    inputs follow what the previous layer kept (block 0 reads the gated stem)."""
    k_stem = keep[0]
    sd = {**module_state("stem.conv", slice_conv_out(src.stem.conv, k_stem)),
          **module_state("stem.bn", slice_bn(src.stem.bn, k_stem)), **module_state("fc", src.fc)}
    in_keep, in_values = k_stem, closed_values(src.stem)  # the max-pool keeps constants constant
    widths, out_index, folded, stream_bias = [int(k_stem.sum())], [], [], []
    for b, blk in enumerate(src.blocks):
        k1, k2, k3 = keep[3 * b + 1], keep[3 * b + 2], keep[3 * b + 3]
        p, pos, v3 = f"blocks.{b}", torch.tensor(stream_positions(blk.place)), closed_values(blk.conv3)
        bias = torch.zeros(blk.place.stream)
        if blk.downsample is not None:
            sd.update(prune_unit(f"{p}.downsample", blk.downsample, ones(blk.place.stream), in_keep, in_values)[0])
        if k3.any():
            sd.update(prune_unit(f"{p}.conv1", blk.conv1, k1, in_keep, in_values)[0])
            state, f = prune_unit(f"{p}.conv2", blk.conv2, k2, k1, closed_values(blk.conv1))
            sd.update(state)
            if f:
                folded.append(3 * b + 2)
            sd.update(prune_unit(f"{p}.conv3", blk.conv3, k3, k2, closed_values(blk.conv2))[0])
            idx = pos[k3].tolist()
            out_index.append(None if idx == list(range(blk.place.stream)) else idx)
            bias[pos[~k3]] = v3[~k3]
            widths += [int(k1.sum()), int(k2.sum()), int(k3.sum())]
        else:
            out_index.append(None)
            bias[pos] = v3
            widths += [0, 0, 0]
        if bias.any():
            stream_bias.append(b)
            sd[f"{p}.place.bias"] = bias
        in_keep, in_values = ones(blk.place.stream), torch.zeros(blk.place.stream)
    arch = pruned_arch(src, widths, folded=folded, stream_bias=stream_bias,
                       out_index=out_index if any(i is not None for i in out_index) else None)
    return arch, sd


# --- the ProxylessNAS supernet: candidates summed per layer (eq. 5) -------------------------

def _gate_ids(src: ProxylessSupernet) -> list[list[tuple[int, int]]]:
    """(hidden gate, output gate) of every candidate, per layer."""
    ids, i = [], 0
    for layer in src.layers:
        ids.append([(i + 2 * c, i + 2 * c + 1) for c in range(len(layer.candidates))])
        i += 2 * len(layer.candidates)
    return ids


def supernet_structure(m: ProxylessSupernet) -> list[Group]:
    groups = [Group(f"layers.{li}", tuple(Branch((h, o), o) for h, o in cands), shortcut=layer.residual)
              for li, (layer, cands) in enumerate(zip(m.layers, _gate_ids(m)))]
    last = sum(2 * len(layer.candidates) for layer in m.layers)
    return groups + [Group("feature_mix", (Branch((last,), last),), shortcut=False)]


def _reader(prefix: str, unit: ConvUnit, keep, in_keep, in_values) -> dict:
    """A 1x1 unit reading a stream whose constants (``in_values``, at every position) are not in
    the tensor: they become a shift of its BN."""
    conv = slice_conv_out(unit.conv, keep)
    bn = shift_bn(slice_bn(unit.bn, keep), const_shift(conv, in_values))
    return {**module_state(f"{prefix}.conv", slice_conv_in(conv, in_keep)), **module_state(f"{prefix}.bn", bn)}


def supernet_surgery(src: ProxylessSupernet, keep: list[torch.Tensor]):
    """A candidate whose projection gate closes entirely is removed from its layer (``ops``);
    several may survive; a layer with a shortcut may keep none. Inside a candidate expansion,
    depthwise and projection channels are coupled, as in MobileNetV2. Streams narrow to the
    channels some candidate of the stage writes live. Nothing follows a layer's sum but 1x1
    convs (the next expansions, the feature mix), so what closed outputs emit is not kept in the
    stream at all: each reader folds the stream's constants into its BN."""
    ids = _gate_ids(src)
    stage_list = stages(src.layers)
    live = [torch.zeros(src.layers[s[0]].candidates[0].place.stream, dtype=torch.bool) for s in stage_list]
    stage_of = {li: s for s, layers in enumerate(stage_list) for li in layers}
    for li, layer in enumerate(src.layers):
        for cand, (_, o) in zip(layer.candidates, ids[li]):
            live[stage_of[li]][torch.tensor(stream_positions(cand.place))[keep[o]]] = True

    k0 = keep[ids[0][0][0]]  # layer 0's MBConv1 runs its depthwise conv on the stem's channels
    sd = {**module_state("stem.conv", slice_conv_out(src.stem.conv, k0)),
          **module_state("stem.bn", slice_bn(src.stem.bn, k0))}
    in_keep, in_values = k0, torch.zeros(len(k0))
    widths, ops, out_index = [], [], []
    for li, layer in enumerate(src.layers):
        s_keep = live[stage_of[li]]
        rank = torch.cumsum(s_keep.long(), 0) - 1
        const = torch.zeros(len(s_keep))
        names, idxs = [], []
        for cand, op, (h, o) in zip(layer.candidates, layer.ops, ids[li]):
            k_hid, k_out = keep[h], keep[o]
            pos, v_out = torch.tensor(stream_positions(cand.place)), closed_values(cand.project)
            if not k_out.any():
                const[pos] += v_out
                continue
            p = f"layers.{li}.candidates.{len(names)}"
            if cand.expand is not None:
                sd.update(_reader(f"{p}.expand", cand.expand, k_hid, in_keep, in_values))
            sd.update({**module_state(f"{p}.dw.conv", slice_depthwise(cand.dw.conv, k_hid)),
                       **module_state(f"{p}.dw.bn", slice_bn(cand.dw.bn, k_hid))})
            sd.update(prune_unit(f"{p}.project", cand.project, k_out, k_hid, closed_values(cand.dw))[0])
            const[pos[~k_out]] += v_out[~k_out]
            idx = rank[pos[k_out]].tolist()
            idxs.append(None if idx == list(range(len(idx))) else idx)
            names.append(op)
            widths += [int(k_hid.sum()), int(k_out.sum())]
        ops.append(names)
        out_index.append(idxs if any(i is not None for i in idxs) else None)
        in_values = const if not layer.residual else in_values + const
        in_keep = s_keep
    k_mix = keep[-1]
    sd.update(_reader("feature_mix", src.feature_mix, k_mix, in_keep, in_values))
    sd.update(module_state("classifier", slice_linear_in(src.classifier, k_mix, closed_values(src.feature_mix))))
    arch = pruned_arch(src, widths + [int(k_mix.sum())], ops=ops, stream_widths=[int(s.sum()) for s in live],
                       out_index=out_index if any(i is not None for i in out_index) else None)
    return arch, sd
