"""Evaluation without BatchNorm artefacts: re-estimate BN statistics before measuring accuracy.

A network's BN running statistics go stale whenever what feeds a BN layer changes without the
statistics following: gates opened or closed in the architecture stage (BN normalises with
batch statistics there and its running statistics are frozen, ``SearchConfig.bn_stats``), a
network pruned from such a search, or a short run whose exponential averages have not settled.
Evaluated on stale statistics such a network scores near chance (10.0% in every architecture
epoch of the first Fig. 4 runs) although the same weights with current statistics are fine.

The remedy is the one of fvcore's and timm's "precise BN": reset every BN layer's running
statistics and average the batch statistics of a fixed set of training batches (a cumulative
mean, ``momentum=None``), with no weight update. Here it is done on a deep copy, so the run's
own model, optimizer and RNG states are untouched (a resumed run stays bit-identical), and the
batches come from ``calibration_batches``: the same images every time, not drawn from the
training loader's generator.
"""
from __future__ import annotations

import copy
from typing import Iterable

import torch
from torch import nn

PRECISE_BN_BATCHES = 20  # training batches averaged (2,560 images at batch 128)


def _bns(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


@torch.no_grad()
def recalibrate_bn(model: nn.Module, batches: Iterable, device=None) -> nn.Module:
    """Replace the running statistics of every BatchNorm layer of ``model`` (in place) by the
    average of its batch statistics over ``batches`` ((x, y) pairs); no parameter changes.
    Only BN layers run in train mode, so dropout or other random layers draw nothing.
    Returns ``model``; a model without BN, or an empty ``batches``, is left as it was."""
    bns = _bns(model)
    batches = list(batches)
    if not bns or not batches:
        return model
    device = device or next(model.parameters()).device
    flags = [(m, m.training) for m in model.modules()]
    saved = [(m, m.momentum, m.track_running_stats) for m in bns]
    model.eval()
    for m in bns:
        if m.running_mean is None:  # a BN built without running statistics has nothing to fix
            continue
        m.momentum, m.track_running_stats = None, True  # None: the cumulative average
        m.reset_running_stats()  # (a no-op unless track_running_stats is set: set it first)
        m.train()
    try:
        for x, _ in batches:
            model(x.to(device, non_blocking=True))
    finally:
        for m, t in flags:
            m.training = t
        for m, mom, track in saved:
            m.momentum, m.track_running_stats = mom, track
    return model


def precise_copy(model: nn.Module, batches: Iterable | None) -> nn.Module:
    """A deep copy of ``model`` with BN statistics re-estimated on ``batches`` (no copy, the
    model itself, when ``batches`` is None: precise BN turned off)."""
    if batches is None:
        return model
    return recalibrate_bn(copy.deepcopy(model), batches)


def calibration_batches(train_data, n: int = PRECISE_BN_BATCHES) -> list | None:
    """The fixed training batches precise BN averages over: ``train_data.calibration_batches(n)``
    where the loader offers it (both of the project's loaders do), else None (precise BN off);
    ``n <= 0``: None."""
    if n <= 0 or not hasattr(train_data, "calibration_batches"):
        return None
    return train_data.calibration_batches(n)
