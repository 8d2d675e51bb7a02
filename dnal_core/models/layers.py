"""Building blocks shared by every model family: a conv unit with an SS gate placed as in
Fig. 4, width checking and the residual "placement" of pruned channels."""
from __future__ import annotations

from collections import OrderedDict
from typing import Sequence

import torch
from torch import nn

from ..gate import SSGate

# Fig. 4 / Section VI: where the SS layer sits. The paper's choice (and the default) is
# after BatchNorm and before the activation.
PLACEMENTS = ("conv-ss-bn-relu", "conv-bn-ss-relu", "conv-bn-relu-ss")
DEFAULT_PLACEMENT = "conv-bn-ss-relu"


def check_placement(placement: str) -> str:
    if placement not in PLACEMENTS:
        raise ValueError(f"unknown SS placement {placement!r}; valid: {', '.join(PLACEMENTS)}")
    return placement


class ConvUnit(nn.Sequential):
    """conv -> BN -> activation, with an SS gate where ``placement`` puts it.

    Children are always named ``conv``, ``bn``, ``ss`` (when gated) and ``act`` (when there
    is an activation), whatever their order, so code that reads a unit never depends on the
    placement. A unit without activation (a projection before a residual sum) puts the gate
    right after BN for both ``conv-bn-ss-relu`` and ``conv-bn-relu-ss``.
    """

    def __init__(self, cin: int, cout: int, kernel: int = 3, stride: int = 1, groups: int = 1,
                 act: type[nn.Module] | None = nn.ReLU, gated: bool = True,
                 placement: str = DEFAULT_PLACEMENT, folded: bool = False):
        check_placement(placement)
        conv_cls = FoldedConv2d if folded else nn.Conv2d  # folded: a pruned unit (see FoldedConv2d)
        parts = {
            "conv": conv_cls(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False),
            "bn": nn.BatchNorm2d(cout),
        }
        order = ["conv", "bn"]
        if act is not None:
            parts["act"] = act(inplace=True)
            order.append("act")
        if gated:
            parts["ss"] = SSGate(cout)
            pos = {"conv-ss-bn-relu": 1, "conv-bn-ss-relu": 2, "conv-bn-relu-ss": len(order)}[placement]
            order.insert(pos, "ss")
        super().__init__(OrderedDict((k, parts[k]) for k in order))


def const_response(kernel: torch.Tensor, size, stride, padding, dilation) -> torch.Tensor:
    """``conv2d(ones(1, 1, H, W), kernel)`` for a (O, 1, kh, kw) kernel, shape (O, Ho, Wo).

    Computed with element-wise products of 0/1 row and column masks (which kernel taps see the
    image, not the zero padding), so it is exact, cheap, and not counted as a MAC: it does not
    depend on the input, only on its spatial size."""
    def taps(n, k, s, p, d):  # (k, out): 1 where tap a of output position i reads the image
        out = (n + 2 * p - d * (k - 1) - 1) // s + 1
        pos = torch.arange(out, device=kernel.device)[None, :] * s - p + torch.arange(k, device=kernel.device)[:, None] * d
        return ((pos >= 0) & (pos < n)).to(kernel.dtype)

    (h, w), (kh, kw) = size, kernel.shape[-2:]
    rows = taps(h, kh, stride[0], padding[0], dilation[0])  # (kh, Ho)
    cols = taps(w, kw, stride[1], padding[1], dilation[1])  # (kw, Wo)
    t = (kernel[:, 0, :, :, None] * cols[None, None]).sum(2)  # (O, kh, Wo)
    return (t[:, :, None, :] * rows[None, :, :, None]).sum(1)  # (O, Ho, Wo)


class FoldedConv2d(nn.Conv2d):
    """A convolution of a pruned network that also adds what its removed constant input
    channels contributed. With SS before BN (``conv-ss-bn-relu``) a closed channel emits a
    constant, not zero; under zero padding a constant channel is not a constant at the image
    borders, so its contribution is the map ``const_response(const_kernel)`` with
    ``const_kernel[o] = sum_j value_j * weight[o, j]`` over the removed channels j (a buffer:
    a constant of the architecture, not a trained parameter).

    The map depends only on the input's spatial size, so eager calls cache it: one map per
    input size (and dtype and device), never evicted by another size, so a CUDA graph captured
    on one size keeps reading live memory while another size (an evaluation batch, a test image
    size) is served. A changed kernel (its storage or version) refreshes a size's map in place
    when the shape allows, for the same reason. Traced or compiled calls compute it in the
    graph, where it is constant-folded."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.groups != 1:
            raise ValueError("FoldedConv2d folds constant inputs of a dense (groups=1) conv only")
        self.register_buffer("const_kernel", torch.zeros(self.out_channels, 1, *self.kernel_size))
        self._maps: dict = {}  # (size, dtype, device) -> [(kernel storage, version), map]

    def const_map(self, size) -> torch.Tensor:
        k = self.const_kernel
        if torch.jit.is_tracing() or torch.compiler.is_compiling() or k.requires_grad:
            return const_response(k, size, self.stride, self.padding, self.dilation)
        slot, stamp = (tuple(size), k.dtype, k.device), (k.data_ptr(), k._version)
        entry = self._maps.get(slot)
        if entry is None or entry[0] != stamp:
            with torch.no_grad():
                new = const_response(k, size, self.stride, self.padding, self.dilation)
                if entry is not None and entry[1].shape == new.shape:
                    entry[1].copy_(new)  # in place: memory a captured graph reads stays valid
                    entry[0] = stamp
                else:
                    self._maps[slot] = [stamp, new]
        return self._maps[slot][1]

    def forward(self, x):
        y = super().forward(x)
        return y + self.const_map(x.shape[-2:]).to(y.dtype)


def scale(width: int, mult: float) -> int:
    """A width scaled by ``mult`` (smoke runs and tests), never below 1."""
    return max(1, int(round(width * mult)))


def check_widths(widths: Sequence[int] | None, default: Sequence[int], model: str,
                 min_width: int = 1) -> list[int]:
    """Validate per-gate widths: the right number of integers >= ``min_width`` (0 only in a
    pruned, ungated network, where it marks a removed residual branch)."""
    if widths is None:
        return list(default)
    widths = list(widths)
    if len(widths) != len(default):
        raise ValueError(f"{model}: expected {len(default)} widths (one per SS gate), got {len(widths)}")
    bad = [w for w in widths if not isinstance(w, int) or isinstance(w, bool) or w < min_width]
    if bad:
        kind = "positive integers" if min_width >= 1 else "integers >= 0"
        raise ValueError(f"{model}: widths must be {kind}, got {bad[:5]}")
    return widths


def check_index(index: Sequence[int] | None, width: int, stream: int, where: str) -> list[int] | None:
    """Validate where a branch's ``width`` channels land in a ``stream``-channel tensor."""
    if index is None:
        if width > stream:
            raise ValueError(f"{where}: branch width {width} exceeds its stream width {stream}")
        return None
    index = [int(i) for i in index]
    if len(index) != width or len(set(index)) != width or any(not 0 <= i < stream for i in index):
        raise ValueError(f"{where}: out_index must list {width} distinct channels in [0, {stream})")
    return index


class Place(nn.Module):
    """Put a branch's channels at fixed positions of a wider stream (the paper's zero-padding
    alignment, Section III-C): ``out[:, index] = base[:, index] + branch`` and the stream's other
    channels are ``base`` (or zero). With no index and equal widths it is a plain sum.

    In a pruned network ``bias=True`` adds a constant per stream channel: what the closed
    channels of the branch (or a whole removed branch, ``width=0``, ``branch=None``) emitted,
    e.g. BN's shift when the gate sits before BN. It is a buffer, like BN's running mean."""

    def __init__(self, width: int, stream: int, index: Sequence[int] | None, bias: bool = False):
        super().__init__()
        self.stream = stream
        self.width = width
        if bias:
            self.register_buffer("bias", torch.zeros(stream))
        else:
            self.bias = None
        index = check_index(index, width, stream, "Place")
        if index is None and width == stream:
            self.register_buffer("index", None, persistent=False)
        else:
            idx = torch.tensor(index if index is not None else list(range(width)), dtype=torch.long)
            self.register_buffer("index", idx, persistent=False)

    def index_list(self) -> list[int] | None:
        return None if self.index is None else self.index.tolist()

    def forward(self, branch: torch.Tensor | None, base: torch.Tensor | None = None) -> torch.Tensor:
        if branch is None:  # a removed branch: the stream passes through
            out = base
        elif self.index is None:
            out = branch if base is None else base + branch
        else:
            if base is None:
                base = branch.new_zeros((branch.shape[0], self.stream) + tuple(branch.shape[2:]))
            out = base.index_add(1, self.index, branch)
        if self.bias is not None:
            out = out + self.bias.to(out.dtype).view((1, -1) + (1,) * (out.dim() - 2))
        return out


# --- the keys of a pruned network's arch (dnal_core.prune) ------------------------------------
# A pruned network is built by its family's builder with ``gated=False`` (no SS layers),
# ``folded`` (gate indices whose conv is a FoldedConv2d), ``stream_bias`` (block indices whose
# Place adds a constant) and width 0 for a removed residual branch; arch() writes these keys
# only when they differ from the defaults, so a dense or gated model's arch() is unchanged.

def pruned_keys(model) -> dict:
    keys = {}
    if not model.gated:
        keys["gated"] = False
    if getattr(model, "folded", None):
        keys["folded"] = list(model.folded)
    if getattr(model, "stream_bias", None):
        keys["stream_bias"] = list(model.stream_bias)
    return keys


def index_set(values, n: int, what: str, model: str) -> list[int]:
    values = sorted({int(v) for v in (values or ())})
    if any(not 0 <= v < n for v in values):
        raise ValueError(f"{model}: {what} entries must lie in [0, {n})")
    return values


def check_removed(widths: list[int], branches, removable, model: str) -> None:
    """Width 0 marks a removed residual branch: all of its widths (``branches``: the width
    indices of each block's branch), and only where the block has a shortcut."""
    for b, idx in enumerate(branches):
        zero = [widths[i] == 0 for i in idx]
        if any(zero) and not all(zero):
            raise ValueError(f"{model}: block {b} has some zero widths; a removed branch has all zero")
        if all(zero) and not removable[b]:
            raise ValueError(f"{model}: block {b} has no shortcut and cannot be removed (width 0)")
