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
                 placement: str = DEFAULT_PLACEMENT):
        check_placement(placement)
        parts = {
            "conv": nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False),
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


def scale(width: int, mult: float) -> int:
    """A width scaled by ``mult`` (smoke runs and tests), never below 1."""
    return max(1, int(round(width * mult)))


def check_widths(widths: Sequence[int] | None, default: Sequence[int], model: str) -> list[int]:
    """Validate per-gate widths: the right number of positive integers."""
    if widths is None:
        return list(default)
    widths = list(widths)
    if len(widths) != len(default):
        raise ValueError(f"{model}: expected {len(default)} widths (one per SS gate), got {len(widths)}")
    bad = [w for w in widths if not isinstance(w, int) or isinstance(w, bool) or w < 1]
    if bad:
        raise ValueError(f"{model}: widths must be positive integers, got {bad[:5]}")
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
    channels are ``base`` (or zero). With no index and equal widths it is a plain sum."""

    def __init__(self, width: int, stream: int, index: Sequence[int] | None):
        super().__init__()
        self.stream = stream
        self.width = width
        index = check_index(index, width, stream, "Place")
        if index is None and width == stream:
            self.register_buffer("index", None, persistent=False)
        else:
            idx = torch.tensor(index if index is not None else list(range(width)), dtype=torch.long)
            self.register_buffer("index", idx, persistent=False)

    def index_list(self) -> list[int] | None:
        return None if self.index is None else self.index.tolist()

    def forward(self, branch: torch.Tensor, base: torch.Tensor | None = None) -> torch.Tensor:
        if self.index is None:
            return branch if base is None else base + branch
        if base is None:
            base = branch.new_zeros((branch.shape[0], self.stream) + tuple(branch.shape[2:]))
        return base.index_add(1, self.index, branch)
