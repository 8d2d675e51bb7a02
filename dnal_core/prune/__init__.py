"""Remove the channels whose hard gate is closed (Alg. 1 line 9): a standalone network with
fewer channels and no SS layers, checked against the hard-gated one.

    from dnal_core.prune import prune, load_pruned, save_pruned
    res = prune(model, min_channels=1, round_to=1)   # model: a gated network after stage 2
    res.model, res.arch, res.report                  # nn.Module, model.arch(), counts + check
    save_pruned(res, "out/"); load_pruned("out/")    # arch.json + weights.pt (+ report.json)

Layout, each module importing only those before it: ``verbs`` is the mechanism (slice a
conv/BN/linear, fold constants); ``coupling`` the types that say how channels are coupled
(``Branch``, ``Group``) and what a family gives the pruner (``Family``); ``cifar``,
``imagenet`` and ``generic`` (networks of ``attach_gates``) say how each architecture couples
its channels and apply the verbs; ``registry`` finds a model's family; ``policy`` decides which
channels stay (``keep_masks``); ``files`` writes and reads pruned networks. This file ties them
together: ``prune`` and its check against the hard gates.
"""
from __future__ import annotations

import copy
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn

from ..gate import SSGate, gates, open_counts
from ..measure import count, count_macs
from .coupling import Branch, Family, Group
from .files import ARCH_FILE, REPORT_FILE, WEIGHTS_FILE, build_pruned, load_pruned, save_pruned
from .policy import KeepPlan, keep_masks
from .registry import family_of, register_family
from .verbs import (closed_values, fold_conv_in, shift_bn, slice_bn, slice_conv_in, slice_conv_out,
                    slice_depthwise, slice_linear_in, slice_linear_out)

CHECK_RTOL = 1e-4  # brief: pruned logits equal the hard-gated logits within 1e-4 relative


class PruneCheckError(RuntimeError):
    """The pruned network does not compute what the hard-gated network computes."""


@dataclass(frozen=True)
class PruneResult:
    model: nn.Module   # the pruned network: no SS layers, has .arch(), .name, .input_size
    arch: dict         # == model.arch(): what arch.json holds
    report: dict       # MACs/params before and after, what min_channels/round_to did, the check
    plan: KeepPlan     # the keep masks per gate


class _Mask(nn.Module):
    """A fixed channel mask standing in for an SS gate (the reference network)."""

    def __init__(self, mask: torch.Tensor):
        super().__init__()
        self.register_buffer("mask", mask.float())

    def forward(self, x):
        return x * self.mask.to(x.dtype).view((1, -1) + (1,) * (x.dim() - 2))


@contextmanager
def gates_masked(model: nn.Module, masks: list[torch.Tensor]):
    """Within the block, ``model``'s SS gates are replaced by the fixed ``masks`` (with the hard
    gates' masks: the hard-gated network); the gates are put back on exit."""
    swapped = []
    try:
        for (name, gate), mask in zip(gates(model), masks):
            parent_name, _, child = name.rpartition(".")
            parent = model.get_submodule(parent_name) if parent_name else model
            setattr(parent, child, _Mask(mask.to(gate.s.device)))
            swapped.append((parent, child, gate))
        yield model
    finally:
        for parent, child, gate in swapped:
            setattr(parent, child, gate)


def masked_reference(model: nn.Module, masks: list[torch.Tensor]) -> nn.Module:
    """A copy of ``model`` (eval) whose gates are the fixed ``masks``."""
    ref = copy.deepcopy(model).eval()
    with gates_masked(ref, masks):
        return copy.deepcopy(ref)


@torch.no_grad()
def logit_diff(a: nn.Module, b: nn.Module, input_size, batch_size: int = 4, seed: int = 0) -> tuple[float, float]:
    """(max |a(x) - b(x)|, that divided by max |b(x)|) on a seeded random batch, eval mode."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn((batch_size,) + tuple(input_size), generator=gen)
    ya, yb = a.eval()(x), b.eval()(x)
    diff = float((ya - yb).abs().max())
    return diff, diff / max(float(yb.abs().max()), 1e-12)


def prune(model: nn.Module, min_channels: int = 1, round_to: int = 1, check: bool = True,
          batch_size: int = 4, seed: int = 0, rtol: float = CHECK_RTOL) -> PruneResult:
    """Prune ``model`` (a gated network) by its hard gates; see ``policy`` for the rules.

    With ``check`` the pruned network's logits (eval mode) are compared with the hard-gated
    network's (with any channels that min_channels/round_to opened) on a random batch, and a
    relative difference above ``rtol`` raises PruneCheckError. ``model`` is not modified."""
    fam = family_of(model)
    device = next(model.parameters()).device
    modes = [(m, m.training) for m in model.modules()]  # each module's own train/eval flag
    # the surgery only reads the source; a model elsewhere than the CPU is copied there
    src = model.eval() if device.type == "cpu" else copy.deepcopy(model).cpu().eval()
    try:
        return _prune(fam, src, device, min_channels, round_to, check, batch_size, seed, rtol)
    finally:
        for m, training in modes:
            m.training = training


def _prune(fam, src, device, min_channels, round_to, check, batch_size, seed, rtol) -> PruneResult:
    groups = fam.structure(src)
    plan = keep_masks(src, groups, min_channels, round_to)
    pruned = _build(fam, src, plan.keep)

    before, after = count(src), count(pruned)
    report = {
        "model": src.name, "placement": getattr(src, "placement", None),
        "macs_before": before["macs"], "macs_after": after["macs"],
        "params_before": before["params"], "params_after": after["params"],
        "macs_ratio": after["macs"] / before["macs"], "params_ratio": after["params"] / before["params"],
        "widths_before": list(src.widths), "open_channels": open_counts(src),
        "widths_after": list(pruned.widths),
        "removed_branches": plan.removed,
        "min_channels": min_channels, "min_channels_bound": plan.bound,
        "round_to": round_to, "round_to_added": plan.rounded, "round_to_macs_cost": 0,
        "folded": _folded(pruned),
        "source_arch": src.arch(),  # the gated network's architecture (dnal bench's dense one)
    }
    if round_to > 1:
        unrounded = keep_masks(src, groups, min_channels, 1)
        report["round_to_macs_cost"] = after["macs"] - count_macs(
            build_pruned(fam.surgery(src, unrounded.keep)[0]))
    report["reference"] = ("hard gates" if not (plan.bound or plan.rounded) else
                           "hard gates with the channels min_channels/round_to added opened")
    report["max_abs_logit_diff"] = report["rel_logit_diff"] = None
    report["check"] = "skipped"
    if check:
        with gates_masked(src, plan.reference) as ref:
            diff, rel = logit_diff(pruned, ref, src.input_size, batch_size, seed)
        report.update(max_abs_logit_diff=diff, rel_logit_diff=rel, check="passed" if rel <= rtol else "failed")
        if rel > rtol:
            raise PruneCheckError(f"pruned {src.name} differs from the hard-gated network: max |diff| "
                                  f"{diff:.3g} ({rel:.3g} relative > {rtol:g})")
    pruned = pruned.to(device)
    return PruneResult(pruned, pruned.arch(), report, plan)


def _build(fam: Family, src: nn.Module, keep: list[torch.Tensor]) -> nn.Module:
    arch, state = fam.surgery(src, keep)
    pruned = build_pruned(arch)
    pruned.load_state_dict(state, strict=True)  # the arch describes exactly these weights
    if any(isinstance(m, SSGate) for m in pruned.modules()):
        raise AssertionError("a pruned network must have no SS layers")
    return pruned.eval()


def _folded(model: nn.Module) -> dict:
    """Where the constants of closed channels went (names of the holding modules)."""
    from ..models.layers import FoldedConv2d, Place

    return {"conv_maps": [n for n, m in model.named_modules() if isinstance(m, FoldedConv2d)],
            "stream_biases": [n for n, m in model.named_modules()
                              if isinstance(m, Place) and m.bias is not None]}


__all__ = ["prune", "PruneResult", "PruneCheckError", "keep_masks", "KeepPlan", "Branch", "Group",
           "register_family", "family_of", "build_pruned", "gates_masked", "masked_reference", "logit_diff", "save_pruned",
           "load_pruned", "slice_conv_out", "slice_conv_in", "slice_depthwise", "slice_bn",
           "slice_linear_in", "slice_linear_out", "fold_conv_in", "shift_bn", "closed_values"]
