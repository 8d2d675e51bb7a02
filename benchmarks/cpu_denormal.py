"""Seconds per training step with and without flushing denormal floats to zero, on the CPU.

    python benchmarks/cpu_denormal.py        # writes benchmarks/results/cpu_denormal.json

What it answers: why ``run_pipeline`` calls ``torch.set_flush_denormal(True)`` on the CPU. In the
joint stage the weights of a channel whose gate has closed get no gradient but weight decay's,
so they shrink geometrically into denormal floats (below 1.2e-38; the gate itself,
sigmoid(delta s), passes through that range too), and x86 CPUs take a microcode assist for
every multiply that reads one. The Fig. 5 joint run at the cpu profile went from 84-168 s an
epoch to 459 s and 1,100 s in epochs 8-9 (2-core Intel Xeon, AVX-512, 2026-12-02); a step on its
epoch-9 checkpoint took 2.35 s, 0.27 s with denormals flushed. This reproduces it on VGG16 x1/4:
soft gates at delta = 100, a share of every layer's channels closed (s = -0.95, sigmoid(-95) =
5.5e-42) with their conv weights scaled by 1e-39, one SGD step (forward, backward, update) at
batch 128, one thread; the weight stage (no closed channel) for comparison.
"""
from __future__ import annotations

import argparse
import datetime
import platform
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from dnal_core import build
from dnal_core.gate import gates, set_delta, set_mode
from dnal_core.io import write_json
from dnal_core.machine import cpu_kind, cpu_model


def step_seconds(closed: float, ftz: bool, steps: int, layout: str, warmup: int = 1) -> float:
    torch.manual_seed(0)
    fmt = torch.channels_last if layout == "channels_last" else torch.contiguous_format
    model = build("vgg16-cifar", width_mult=0.25).to(memory_format=fmt)
    set_mode(model, "soft")
    set_delta(model, 100.0)
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == len(gates(model)), "one conv per gate (VGG16)"
    for conv, (_, g) in zip(convs, gates(model)):
        k = int(round(closed * g.channels))
        with torch.no_grad():
            g.s.fill_(0.5)
            g.s[:k] = -0.95
            conv.weight[:k] *= 1e-39  # what weight decay leaves of a channel its gate closed
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    x, y = torch.randn(128, 3, 32, 32).contiguous(memory_format=fmt), torch.randint(0, 10, (128,))
    torch.set_flush_denormal(ftz)
    try:
        for i in range(warmup + steps):
            if i == warmup:
                t0 = time.perf_counter()
            opt.zero_grad()
            F.cross_entropy(model(x), y).backward()
            opt.step()
        return (time.perf_counter() - t0) / steps
    finally:
        torch.set_flush_denormal(False)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--json", default=str(Path(__file__).with_name("results") / "cpu_denormal.json"))
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    rows = []
    for layout in ("channels_last", "nchw"):
        for closed in (0.0, 0.3):
            for ftz in (False, True):
                s = step_seconds(closed, ftz, a.steps, layout)
                rows.append({"layout": layout, "closed_share": closed, "flush_denormal": ftz,
                             "s_per_step": round(s, 4),
                             "s_per_epoch": round(s * 50_000 / 128, 1)})
                print(rows[-1], flush=True)
    write_json(Path(a.json), {"rows": rows, "date": datetime.date.today().isoformat(), "torch": torch.__version__,
                              "machine": cpu_model() or platform.machine(), "cpu_kind": cpu_kind(), "threads": 1,
                              "command": "python benchmarks/cpu_denormal.py"})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
