"""How long a CPU training epoch of the CIFAR ResNets takes, to size Table II's ``cpu`` profile
(issue 24): the weight-stage train step (forward, backward, SGD; channels_last) of ResNet20, 32
and 56 at full width, and of the quarter-width VGG16 of Table I's ``cpu`` profile as the
reference measured in the same run, in fp32 and bf16 autocast, at batch 128.

    python benchmarks/cpu_resnets.py [--steps 8] [--threads 1] [--json F]

Each row: seconds a step (wall and this process's CPU time: the CPU time is the better guide
when other jobs share the cores) and the epoch it extrapolates to (390 steps of 128: the
trainer's epoch of CIFAR-10's 50,000 images), with MACs and params. Evaluation, the loader and
precise BN come on top (``cpu_stages.py``: 10-20% of a VGG16 epoch). Writes
benchmarks/results/cpu_resnets_<kind>.json by default.
"""
from __future__ import annotations

import argparse
import datetime
import sys
import time
from pathlib import Path

import torch

from dnal_core import build, set_mode
from dnal_core.io import write_json
from dnal_core.machine import cpu_kind, has_bf16_matmul, kind_slug
from dnal_core.measure import count
from dnal_core.train.stages import train_step

ROOT = Path(__file__).resolve().parents[1]
BATCH, STEPS_PER_EPOCH = 128, 50_000 // 128
MODELS = (("vgg16-cifar", 0.25), ("resnet20-cifar", 1.0), ("resnet32-cifar", 1.0), ("resnet56-cifar", 1.0))


def time_steps(name: str, width: float, bf16: bool, steps: int) -> dict:
    torch.manual_seed(0)
    model = build(name, width_mult=width).to(memory_format=torch.channels_last).train()
    set_mode(model, "off")
    params = [p for n, p in model.named_parameters() if not n.endswith(".s")]
    opt = torch.optim.SGD(params, lr=0.01, momentum=0.9, weight_decay=1e-4)
    x = torch.randn(BATCH, 3, 32, 32).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (BATCH,))
    for _ in range(2):  # warm-up
        train_step(model, x, y, opt, None, "paper", bf16)
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(steps):
        train_step(model, x, y, opt, None, "paper", bf16)
    wall, cpu = (time.perf_counter() - wall) / steps, (time.process_time() - cpu) / steps
    c = count(build(name, width_mult=width))
    return {"model": name, "width_mult": width, "precision": "bf16" if bf16 else "fp32", "macs": c["macs"],
            "params": c["params"], "steps_timed": steps, "s_per_step_wall": round(wall, 4),
            "s_per_step_cpu": round(cpu, 4), "epoch_s_cpu": round(cpu * STEPS_PER_EPOCH, 1)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", default="")
    a = p.parse_args(argv)
    if a.steps < 1 or a.threads < 1:
        print("cpu_resnets: --steps and --threads must be at least 1", file=sys.stderr)
        return 2
    torch.set_num_threads(a.threads)
    precisions = (False, True) if has_bf16_matmul() else (False,)
    rows = [time_steps(m, w, b, a.steps) for m, w in MODELS for b in precisions]
    for r in rows:
        print(f"{r['model']:15s} x{r['width_mult']:<5g} {r['precision']}: {r['s_per_step_cpu']:.3f} s a step (CPU), "
              f"{r['epoch_s_cpu']:.0f} s an epoch, {r['macs'] / 1e6:.1f}M MACs")
    out = Path(a.json) if a.json else ROOT / "benchmarks" / "results" / f"cpu_resnets_{kind_slug()}.json"
    with open("/proc/loadavg") as f:
        load = float(f.read().split()[0])
    write_json(out, {"cpu_kind": cpu_kind(), "threads": a.threads, "load_average_at_start": load,
                     "date": datetime.date.today().isoformat(), "torch": torch.__version__,
                     "command": "python benchmarks/cpu_resnets.py " + " ".join(argv or sys.argv[1:]), "rows": rows})
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
