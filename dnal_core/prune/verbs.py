"""Mechanism: per-layer verbs that cut channels out of conv, BN and linear layers and fold what
removed channels emitted into the layers that read them. They return new modules and never
modify their arguments; which channels to keep is the policy's business (``policy.py``).

``idx`` is a boolean mask or a list/tensor of channel indices, in the order the new layer
should have them.

Why folding is needed (SS placement, Fig. 4): a closed gate makes its channel a constant,
not necessarily zero. With ``conv-ss-bn-relu`` the gate sits before BN, so a closed channel
emits ``act(beta - mean * gamma / std)``; a reader of that channel sees a constant input,
whose contribution goes to the reader's BN running mean (a 1x1 or unpadded conv: a uniform
shift), to a ``FoldedConv2d`` map (a zero-padded conv: not uniform at the borders), to a linear
bias, or to a bias kept beside a residual stream.
"""
from __future__ import annotations

import torch
from torch import nn

from ..gate import SSGate
from ..models.layers import FoldedConv2d


def as_index(idx, n: int) -> torch.Tensor:
    """A long tensor of channel indices from a boolean mask of length ``n`` or a list."""
    idx = torch.as_tensor(idx)
    if idx.dtype == torch.bool:
        if idx.numel() != n:
            raise ValueError(f"a keep mask needs {n} entries, got {idx.numel()}")
        idx = idx.nonzero().flatten()
    idx = idx.long().flatten()
    if idx.numel() and (idx.min() < 0 or idx.max() >= n):
        raise ValueError(f"channel index out of range [0, {n})")
    return idx


def _conv_like(conv: nn.Conv2d, cin: int, cout: int, groups: int, cls=None) -> nn.Conv2d:
    cls = cls or type(conv)
    return cls(cin, cout, conv.kernel_size, conv.stride, conv.padding, conv.dilation, groups,
               bias=conv.bias is not None, padding_mode=conv.padding_mode,
               device=conv.weight.device, dtype=conv.weight.dtype)


@torch.no_grad()
def slice_conv_out(conv: nn.Conv2d, idx) -> nn.Conv2d:
    """Keep output channels ``idx`` of a dense conv (groups=1)."""
    if conv.groups != 1:
        raise ValueError("slice_conv_out: use slice_depthwise for a grouped conv")
    idx = as_index(idx, conv.out_channels)
    new = _conv_like(conv, conv.in_channels, len(idx), 1)
    new.weight.copy_(conv.weight[idx])
    if conv.bias is not None:
        new.bias.copy_(conv.bias[idx])
    if isinstance(conv, FoldedConv2d):
        new.const_kernel.copy_(conv.const_kernel[idx])
    return new


@torch.no_grad()
def slice_conv_in(conv: nn.Conv2d, idx) -> nn.Conv2d:
    """Keep input channels ``idx`` of a dense conv (what is removed is simply dropped; see
    ``fold_conv_in`` when the removed inputs are not zero)."""
    if conv.groups != 1:
        raise ValueError("slice_conv_in: use slice_depthwise for a grouped conv")
    idx = as_index(idx, conv.in_channels)
    new = _conv_like(conv, len(idx), conv.out_channels, 1)
    new.weight.copy_(conv.weight[:, idx])
    if conv.bias is not None:
        new.bias.copy_(conv.bias)
    if isinstance(conv, FoldedConv2d):
        new.const_kernel.copy_(conv.const_kernel)
    return new


@torch.no_grad()
def slice_depthwise(conv: nn.Conv2d, idx) -> nn.Conv2d:
    """Keep channels ``idx`` of a depthwise conv: its inputs and outputs are the same channels."""
    if conv.groups != conv.in_channels or conv.out_channels != conv.in_channels:
        raise ValueError("slice_depthwise needs a depthwise conv (groups = in = out channels)")
    idx = as_index(idx, conv.out_channels)
    if len(idx) == 0:
        raise ValueError("slice_depthwise: cannot keep zero channels")
    new = _conv_like(conv, len(idx), len(idx), len(idx))
    new.weight.copy_(conv.weight[idx])
    if conv.bias is not None:
        new.bias.copy_(conv.bias[idx])
    return new


@torch.no_grad()
def slice_bn(bn: nn.modules.batchnorm._BatchNorm, idx) -> nn.modules.batchnorm._BatchNorm:
    """Keep channels ``idx`` of a BatchNorm (affine weights and running statistics)."""
    idx = as_index(idx, bn.num_features)
    new = type(bn)(len(idx), bn.eps, bn.momentum, bn.affine, bn.track_running_stats,
                   device=(bn.weight if bn.affine else bn.running_mean).device)
    if bn.affine:
        new.weight.copy_(bn.weight[idx])
        new.bias.copy_(bn.bias[idx])
    if bn.track_running_stats:
        new.running_mean.copy_(bn.running_mean[idx])
        new.running_var.copy_(bn.running_var[idx])
        new.num_batches_tracked.copy_(bn.num_batches_tracked)
    return new


@torch.no_grad()
def slice_linear_out(lin: nn.Linear, idx) -> nn.Linear:
    idx = as_index(idx, lin.out_features)
    new = nn.Linear(lin.in_features, len(idx), lin.bias is not None, lin.weight.device, lin.weight.dtype)
    new.weight.copy_(lin.weight[idx])
    if lin.bias is not None:
        new.bias.copy_(lin.bias[idx])
    return new


@torch.no_grad()
def slice_linear_in(lin: nn.Linear, idx, values: torch.Tensor | None = None) -> nn.Linear:
    """Keep input features ``idx``; removed features that carried the constants ``values``
    (one per input feature, read at the removed ones) are folded into the bias."""
    keep = as_index(idx, lin.in_features)
    new = nn.Linear(len(keep), lin.out_features, True, lin.weight.device, lin.weight.dtype)
    new.weight.copy_(lin.weight[:, keep])
    bias = lin.bias.clone() if lin.bias is not None else torch.zeros_like(new.bias)
    gone = _removed(keep, lin.in_features)
    if values is not None and len(gone):
        bias += lin.weight[:, gone] @ values[gone].to(lin.weight.dtype)
    new.bias.copy_(bias)
    return new


def _removed(keep: torch.Tensor, n: int) -> torch.Tensor:
    mask = torch.ones(n, dtype=torch.bool)
    mask[keep] = False
    return mask.nonzero().flatten()


@torch.no_grad()
def shift_bn(bn: nn.modules.batchnorm._BatchNorm, shift: torch.Tensor) -> nn.modules.batchnorm._BatchNorm:
    """A BN whose input lost a uniform per-channel ``shift``: bn'(x) = bn(x + shift) in eval.
    (In train mode the batch mean absorbs a uniform shift anyway.)"""
    new = slice_bn(bn, torch.arange(bn.num_features))
    with torch.no_grad():
        new.running_mean.sub_(shift.to(new.running_mean.dtype))
    return new


@torch.no_grad()
def fold_conv_in(conv: nn.Conv2d, idx, values: torch.Tensor) -> tuple[nn.Conv2d, torch.Tensor | None]:
    """Keep input channels ``idx`` of a dense conv whose removed inputs were the constants
    ``values`` (one per input channel). Returns ``(conv, shift)``:
      - unpadded conv: every output sees whole windows, so the removed inputs add a uniform
        ``shift`` per output channel (fold it into the next BN with ``shift_bn``);
      - zero-padded conv: a ``FoldedConv2d`` that adds the exact border-aware map; shift None;
      - removed inputs all zero: the plain sliced conv; shift None.
    """
    keep = as_index(idx, conv.in_channels)
    gone = _removed(keep, conv.in_channels)
    sliced = slice_conv_in(conv, keep)
    if not len(gone) or not values[gone].any():
        return sliced, None
    v = values[gone].to(conv.weight.dtype).view(1, -1, 1, 1)
    kernel = (conv.weight[:, gone] * v).sum(1, keepdim=True)  # (O, 1, kh, kw)
    if all(p == 0 for p in conv.padding) and not isinstance(conv, FoldedConv2d):
        return sliced, kernel.sum((1, 2, 3))
    folded = _conv_like(conv, len(keep), conv.out_channels, 1, cls=FoldedConv2d)
    folded.weight.copy_(sliced.weight)
    if conv.bias is not None:
        folded.bias.copy_(conv.bias)
    folded.const_kernel.copy_(kernel + (conv.const_kernel if isinstance(conv, FoldedConv2d) else 0))
    return folded, None


@torch.no_grad()
def const_shift(conv: nn.Conv2d, values: torch.Tensor) -> torch.Tensor:
    """The uniform output shift of an unpadded dense conv whose inputs carry the constants
    ``values`` on top of what its input tensor holds, shape (out,). Used where constants are
    not kept in a stream tensor but folded into every reader of that stream."""
    if conv.groups != 1 or any(p != 0 for p in conv.padding):
        raise ValueError("const_shift needs an unpadded dense conv (a padded one needs a FoldedConv2d)")
    return conv.weight.sum((2, 3)) @ values.to(conv.weight.dtype)


@torch.no_grad()
def closed_values(unit: nn.Sequential) -> torch.Tensor:
    """What each channel of a gated unit emits when its gate is closed, shape (C,): the unit's
    children after the SS gate applied, in eval mode, to a zero input. 0 for ``conv-bn-ss-relu``
    and ``conv-bn-relu-ss``; ``act(beta - mean * gamma / std)`` for ``conv-ss-bn-relu``."""
    names = [n for n, _ in unit.named_children()]
    pos = [i for i, (_, m) in enumerate(unit.named_children()) if isinstance(m, SSGate)]
    if len(pos) != 1:
        raise ValueError(f"closed_values needs a unit with one SS gate, got children {names}")
    gate = unit[pos[0]]
    x = torch.zeros(1, gate.channels, 1, 1, device=gate.s.device, dtype=gate.s.dtype)
    for m in list(unit.children())[pos[0] + 1:]:
        was = m.training
        m.eval()
        x = m(x)
        m.train(was)
    return x.flatten().clone()


def module_state(prefix: str, module: nn.Module) -> dict[str, torch.Tensor]:
    """``module.state_dict()`` with keys under ``prefix`` (how surgery assembles a state_dict)."""
    return {f"{prefix}.{k}": v.detach().clone() for k, v in module.state_dict().items()}
