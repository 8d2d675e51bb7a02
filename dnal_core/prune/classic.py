"""The classic channel-selection criteria that the paper's tables cite, as a way to set the hard
gates, so that a classic criterion's network is pruned, counted and finetuned exactly as DNAL's.

Torch-Pruning 1.6.1 (``torch_pruning``, pinned) scores the channels: its importance classes on
the output-channel group of each conv in its dependency graph. The lowest-scored channels close,
either the same share of every layer or by one ranking over the whole network (raw scores: its
``MetaPruner`` with ``global_pruning`` takes a share of channels, not of MACs, and its ratio does
not map monotonically to MACs); those gates close (s = -1), the others open (s = +1), hard mode. The
project's pruner then removes the closed channels as it does after a search (``derive_network``:
checked against the hard-gated network, BN re-estimated first), and the finetune stage runs.

  ``l1``      L1 norm of each filter (Li et al., "Pruning Filters for Efficient ConvNets",
              ICLR 2017): ``MagnitudeImportance(p=1)`` on the conv
  ``bn``      |gamma| of the BatchNorm after it (the criterion of Network Slimming, Liu et al.,
              ICCV 2017, here without its sparsity training): ``BNScaleImportance``
  ``taylor``  first-order Taylor expansion of the loss (Molchanov et al., CVPR 2019), gradients
              from a few training batches: ``TaylorImportance``
  ``random``  random channels: ``RandomImportance`` (seeded)

``select_to_macs`` bisects the pruning ratio until the pruned network's MACs land within 2% of a
target. Supported: models whose every gate ``<p>.ss`` follows a conv ``<p>.conv`` whose output
channels are coupled to nothing but its BN and the next layer's input (the CIFAR VGG16).
"""
from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from ..gate import gates, set_mode

CRITERIA = ("l1", "bn", "taylor", "random")


def _importance(criterion: str, global_ranking: bool):
    import torch_pruning as tp

    # one ranking over every layer compares raw scores (no per-layer normalisation), as
    # Network Slimming's global |gamma| threshold does; per layer the normaliser changes nothing
    norm = None if global_ranking else "mean"
    if criterion == "l1":
        return tp.importance.MagnitudeImportance(p=1, normalizer=norm, group_reduction="first")
    if criterion == "bn":
        return tp.importance.BNScaleImportance(normalizer=norm)
    if criterion == "taylor":
        return tp.importance.TaylorImportance(normalizer=norm, group_reduction="first")
    if criterion == "random":
        return tp.importance.RandomImportance()
    raise ValueError(f"unknown criterion {criterion!r}; valid: {', '.join(CRITERIA)}")


def plain_copy(model: nn.Module) -> tuple[nn.Module, dict[str, int]]:
    """A gate-free copy of ``model`` with its weights (``build(..., gated=False)``), and the map
    conv name -> gate index. ValueError for a model this module does not support."""
    from ..models import build_from_arch

    arch = {**model.arch(), "gated": False}
    plain = build_from_arch(arch)
    state = {k: v for k, v in model.state_dict().items() if ".ss." not in k}
    plain.load_state_dict(state)
    names = [n for n, _ in gates(model)]
    convs = dict(plain.named_modules())
    out = {}
    for i, n in enumerate(names):
        conv = n.rsplit(".", 1)[0] + ".conv" if n.endswith(".ss") else None
        if conv is None or not isinstance(convs.get(conv), nn.Conv2d):
            raise ValueError(f"{model.name}: gate {n} does not follow a conv <prefix>.conv; the classic "
                             "criteria support the CIFAR VGG16")
        out[conv] = i
    return plain, out


def taylor_gradients(plain: nn.Module, batches) -> None:
    """Accumulate the CE loss's gradients over ``batches`` in ``plain`` (for ``taylor``)."""
    plain.train()
    plain.zero_grad(set_to_none=True)
    for x, y in batches:
        F.cross_entropy(plain(x), y).backward()


def channel_scores(plain: nn.Module, conv_gate: dict[str, int], criterion: str, global_ranking: bool,
                   seed: int = 0) -> list[torch.Tensor]:
    """Per gate, the importance of each channel: Torch-Pruning's importance of the conv's
    output-channel group in its dependency graph (the conv, its BN, the next layer's input)."""
    import torch_pruning as tp

    example = torch.zeros(1, *getattr(plain, "input_size", (3, 32, 32)))
    dg = tp.DependencyGraph().build_dependency(plain, example_inputs=example, verbose=False)
    imp = _importance(criterion, global_ranking)
    torch.manual_seed(seed)  # RandomImportance draws from torch's generator
    modules = dict(plain.named_modules())
    scores: list = [None] * len(conv_gate)
    for name, i in conv_gate.items():
        conv = modules[name]
        group = dg.get_pruning_group(conv, tp.prune_conv_out_channels, idxs=list(range(conv.out_channels)))
        scores[i] = imp(group).detach().float().cpu()
    return scores


def keep_masks(scores: list[torch.Tensor], global_ranking: bool, amount: float,
               spread: bool = False) -> list[torch.Tensor]:
    """Which channels stay: per layer (``global_ranking`` False), the lowest-scored ``amount``
    share of every layer closes (rounded down; ``spread``: layer i of L rounds up from a
    fraction 1 - i/L on, so that layers of one width do not all lose a channel at the same
    amount); globally, the ``amount`` lowest-scored channels of the whole network close (raw
    scores, one ranking). Every layer keeps at least one channel."""
    keep = [torch.ones(len(s), dtype=torch.bool) for s in scores]
    if not global_ranking:
        for i, (k, s) in enumerate(zip(keep, scores)):
            n = min(int(amount * len(s) + (i / len(scores) if spread else 0.0)), len(s) - 1)
            k[torch.argsort(s, stable=True)[:n]] = False
        return keep
    flat = torch.cat(scores)
    layer = torch.cat([torch.full((len(s),), i) for i, s in enumerate(scores)])
    left = [len(s) for s in scores]
    offsets = [sum(left[:i]) for i in range(len(scores))]
    closed = 0
    for j in torch.argsort(flat, stable=True).tolist():
        if closed >= int(amount):
            break
        i = int(layer[j])
        if left[i] > 1:
            keep[i][j - offsets[i]] = False
            left[i] -= 1
            closed += 1
    return keep


def _macs(model: nn.Module, keep: list[torch.Tensor]) -> int:
    from ..measure import count
    from ..models import build_from_arch

    return count(build_from_arch({**model.arch(), "widths": [int(k.sum()) for k in keep], "gated": False}))["macs"]


def select_to_macs(model: nn.Module, criterion: str, target_macs: float, global_ranking: bool,
                   grad_batches=None, tol: float = 0.02, seed: int = 0) -> dict:
    """The channels ``criterion`` keeps when the pruned network has ``target_macs`` MACs within
    ``tol`` (relative): bisection of the share of each layer closed (per layer) or of the number
    of channels closed (global). Returns {"keep": masks per gate, "amount", "macs", "widths"}.
    Per layer, where the plain rounding's steps skip the target (the six 128-channel layers of a
    quarter-width VGG16 lose a channel together, a 3.5% step in MACs), the bisection runs again
    with the rounding spread over the layers (``keep_masks``), recorded as "spread".
    ValueError when none comes within ``tol``."""
    if criterion not in CRITERIA:
        raise ValueError(f"unknown criterion {criterion!r}; valid: {', '.join(CRITERIA)}")
    plain, conv_gate = plain_copy(model)
    if criterion == "taylor":
        if not grad_batches:
            raise ValueError("the taylor criterion needs training batches for its gradients")
        taylor_gradients(plain, grad_batches)
    scores = channel_scores(plain, conv_gate, criterion, global_ranking, seed)
    best = None
    for spread in ((False,) if global_ranking else (False, True)):
        lo, hi = 0.0, (1.0 if not global_ranking else float(sum(len(s) for s in scores)))
        for _ in range(40):  # MACs fall as the amount grows
            mid = (lo + hi) / 2 if not global_ranking else float(int((lo + hi) / 2))
            keep = keep_masks(scores, global_ranking, mid, spread)
            macs = _macs(model, keep)
            if best is None or abs(macs / target_macs - 1) < abs(best["macs"] / target_macs - 1):
                best = {"keep": keep, "amount": mid, "macs": macs, "widths": [int(k.sum()) for k in keep],
                        **({"spread": True} if spread else {})}
            if abs(macs / target_macs - 1) <= tol:
                return best
            lo, hi = (mid, hi) if macs > target_macs else (lo, mid)
            if global_ranking and hi - lo < 1:
                break
    raise ValueError(f"{criterion} ({'global' if global_ranking else 'per layer'}): no amount gives "
                     f"{target_macs:,.0f} MACs within {tol:.0%} (closest {best['macs']:,})")


def close_gates(model: nn.Module, keep: list[torch.Tensor]) -> nn.Module:
    """``model`` (in place) with hard gates: s = +1 where ``keep``, -1 elsewhere (open iff s > 0 at
    any threshold of 0.5, the paper's); returns it."""
    set_mode(model, "hard")
    with torch.no_grad():
        for (_, g), k in zip(gates(model), keep):
            g.s.copy_(torch.where(k.to(g.s.device), 1.0, -1.0).to(g.s.dtype))
    return model


def copy_with_gates(model: nn.Module, keep: list[torch.Tensor]) -> nn.Module:
    return close_gates(copy.deepcopy(model), keep)
