"""Counting and timing: MACs and params of a model, latency on a device.

What the paper calls FLOPs are multiply-accumulates (MACs). ``count`` runs one forward pass
under ``torch.utils.flop_counter.FlopCounterMode`` and reports MACs = FLOPs / 2 of the
convolution and linear (matmul) operators only, which reproduces the paper's baselines
(VGG16-CIFAR 313.46M, ResNet56 125.49M). BatchNorm, activations, pooling and the
residual sums are not counted.
"""
from __future__ import annotations

import statistics
import time

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

# The aten operators whose FLOPs are conv and linear multiply-adds.
_MAC_OPS = {"convolution", "_convolution", "addmm", "mm", "bmm", "baddbmm", "matmul", "linear"}


def _input_size(model: nn.Module, input_size):
    size = input_size or getattr(model, "input_size", None)
    if size is None:
        raise ValueError("pass input_size=(C, H, W): the model does not declare one")
    return tuple(size)


def count_params(model: nn.Module, trainable_only: bool = False) -> int:
    """Parameters of ``model``, the SS gates' architecture parameters excluded."""
    from .gate import arch_parameters  # local import: keep measure free of import cycles
    arch = {id(p) for p in arch_parameters(model)}
    return sum(p.numel() for p in model.parameters()
               if id(p) not in arch and (p.requires_grad or not trainable_only))


@torch.no_grad()
def count_macs(model: nn.Module, input_size=None) -> int:
    """MACs of one forward pass on one input of ``input_size`` (C, H, W)."""
    size = _input_size(model, input_size)
    p = next(model.parameters())
    x = torch.zeros((1,) + size, dtype=p.dtype, device=p.device)
    was_training = model.training
    model.eval()
    try:
        with FlopCounterMode(display=False) as counter:
            model(x)
    finally:
        model.train(was_training)
    flops = sum(v for op, v in counter.get_flop_counts()["Global"].items()
                if getattr(op, "__name__", str(op)).split(".")[0] in _MAC_OPS)
    return int(flops // 2)


CONVENTIONS = ("macs", "authors")


def count(model: nn.Module, input_size=None, convention: str = "macs") -> dict:
    """``{"macs": ..., "params": ...}`` of ``model`` (plain ints).

    ``convention="macs"`` (default): conv and linear multiply-accumulates, every parameter.
    ``convention="authors"``: what the authors' counter (their torchsummary) reports, which is
    how the paper's tables print some baselines: one extra operation per conv output channel and
    per linear output (VGG16-CIFAR 313.47M, MobileNetV2-ImageNet 300.79M), and the BatchNorm of
    ResNet50's ungated downsample path left out of the params (25.55M).
    """
    if convention not in CONVENTIONS:
        raise ValueError(f"unknown counting convention {convention!r}; valid: {', '.join(CONVENTIONS)}")
    macs, params = count_macs(model, input_size), count_params(model)
    if convention == "authors":
        macs += sum(m.out_channels for m in model.modules() if isinstance(m, nn.Conv2d))
        macs += sum(m.out_features for m in model.modules() if isinstance(m, nn.Linear))
        params -= sum(p.numel() for name, m in model.named_modules()
                      if "downsample" in name and isinstance(m, nn.modules.batchnorm._BatchNorm)
                      for p in m.parameters(recurse=False))
    return {"macs": macs, "params": params}


@torch.no_grad()
def latency(model: nn.Module, batch_size: int = 1, input_size=None, device: str | torch.device = "cpu",
            warmup: int = 10, iters: int = 50) -> float:
    """Median seconds of one forward pass at ``batch_size`` on ``device``, after ``warmup``
    passes; on CUDA each pass is timed with events after a synchronize."""
    size = _input_size(model, input_size)
    device = torch.device(device)
    model = model.to(device).eval()
    x = torch.randn((batch_size,) + size, device=device)
    for _ in range(warmup):
        model(x)
    times = []
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        for _ in range(iters):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            model(x)
            end.record()
            torch.cuda.synchronize(device)
            times.append(start.elapsed_time(end) / 1000.0)
    else:
        for _ in range(iters):
            t0 = time.perf_counter()
            model(x)
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def hard_gated_arch(model: nn.Module, min_channels: int = 1) -> dict:
    """The architecture the hard gates describe: ``model.arch()`` with each gate's width
    replaced by its open-channel count (at least ``min_channels``). Channel positions and
    whole-block removal are the pruner's business; this is what the widths alone imply."""
    from .gate import open_counts

    arch = model.arch()
    arch["widths"] = [max(min_channels, n) for n in open_counts(model)]
    arch.pop("out_index", None)
    return arch


def gated_macs(model: nn.Module) -> int:
    """MACs of the network the hard gates describe (each gated layer at its open width, at
    least 1): what the per-epoch logs report as the architecture shrinks."""
    from .models import build_from_arch

    return count_macs(build_from_arch(hard_gated_arch(model)), getattr(model, "input_size", None))
