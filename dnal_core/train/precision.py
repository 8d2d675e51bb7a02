"""The arithmetic precision of CPU training: ``fp32``, ``bf16`` (autocast of the forward pass and
the loss; weights, gradients, the SGD update, BN statistics, evaluation and precise BN stay
fp32) or ``auto``, resolved once per run folder by ``resolve``:

  * ``fp32`` on a CPU without bf16 matrix instructions (AVX2 alone: bf16 is emulated there and
    a quarter-width VGG16 step was about 13x slower, benchmarks/results/cpu_2core.json);
  * on a CPU with AMX-BF16 or AVX512-BF16, a short probe on the run's own model (a copy, a few
    timed SGD steps on one real batch in each precision) and ``bf16`` only where it is faster.

The choice, the probe's times and the CPU are written to config.json, to every model file and to
final.json (``precision``), and a resumed run keeps the choice it started with. On CUDA the fast
path decides (book/reference/speed.md, "Fast training on one GPU"): ``precision`` applies to the CPU.
"""
from __future__ import annotations

import copy
import time

import torch
import torch.nn.functional as F
from torch import nn

from ..machine import cpu_kind, cpu_model, has_bf16_matmul

PRECISIONS = ("auto", "fp32", "bf16")
PROBE_STEPS = 5  # timed steps per precision, after one untimed step each


def probe(model: nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int = PROBE_STEPS) -> dict:
    """CPU seconds per SGD step (forward, backward, update; channels_last) of a copy of ``model``
    on the batch (x, y) in fp32 and in bf16 autocast: {"fp32_s", "bf16_s"}, the median of
    ``steps`` timed steps after one untimed step. The process's CPU time, not the wall clock: on
    a 2-core machine shared with other trainings the wall clock of one step varied 10x under
    load (AMD EPYC AVX512-BF16, 2026-12-07) and picked either precision by chance. ``model``
    itself is not changed."""
    out = {}
    for name in ("fp32", "bf16"):
        net = copy.deepcopy(model).train().to(memory_format=torch.channels_last)
        opt = torch.optim.SGD([p for p in net.parameters() if p.requires_grad], lr=1e-3, momentum=0.9)
        xb = x.contiguous(memory_format=torch.channels_last)
        times = []
        for i in range(steps + 1):
            t = time.process_time()
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=name == "bf16"):
                logits = net(xb)
            loss = F.cross_entropy(logits.float(), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if i:
                times.append(time.process_time() - t)
        out[f"{name}_s"] = sorted(times)[len(times) // 2]
    return out


def resolve(requested: str, model: nn.Module, batch, device: torch.device) -> dict:
    """What ``requested`` (auto, fp32, bf16) means for this run: {"requested", "used", "reason",
    "probe" (the times, or None), "cpu_model", "cpu_kind"}. ``batch``: one (x, y) training batch
    for the probe (used only by ``auto`` on a CPU with bf16 matrix instructions)."""
    if requested not in PRECISIONS:
        raise ValueError(f"unknown precision {requested!r}; valid: {', '.join(PRECISIONS)}")
    info = {"requested": requested, "probe": None, "cpu_model": cpu_model(), "cpu_kind": cpu_kind()}
    if torch.device(device).type != "cpu":
        return {**info, "used": "fp32" if requested == "auto" else requested,
                "reason": "not the CPU: the CUDA fast path sets its own precision"}
    if requested != "auto":
        return {**info, "used": requested, "reason": "asked for"}
    if not has_bf16_matmul():
        return {**info, "used": "fp32", "reason": "no bf16 matrix instructions (amx_bf16, avx512_bf16)"}
    x, y = batch
    times = probe(model, x, y)
    used = "bf16" if times["bf16_s"] < times["fp32_s"] else "fp32"
    return {**info, "used": used, "probe": times,
            "reason": f"probe on this model: bf16 {times['bf16_s']:.3f} s a step, fp32 {times['fp32_s']:.3f} s"}
