"""Seconds per CIFAR-10 training epoch on the CPU, by memory layout, dtype and thread count.

    python benchmarks/cpu_epoch.py                    # writes benchmarks/results/cpu_2core.json
    python benchmarks/cpu_epoch.py --steps 2 --json /tmp/x.json   # a quick check
    python benchmarks/cpu_epoch.py --widths 0.125 0.25 0.5 --json benchmarks/results/vgg16_widths.json

What it answers: which CPU settings the trainer should use by default (``_fit`` turns on
channels_last on the CPU; bf16 autocast is left off on the CPU), and how much of an epoch is
spent outside forward and backward. For each row, ``--warmup`` steps and then ``--steps`` timed
SGD steps (forward, backward, update: the weight stage's step) at batch 128 on random images of
CIFAR's shape through the project's ``TensorLoader``, extrapolated to 50,000 images
(``s_per_epoch``); ``loader_s_per_epoch``: the loader alone (augmentation, batching);
``eval_s_per_10k``: forward passes over 10,000 test images. Threads are set per row
(``torch.set_num_threads``); run it on an idle machine: other jobs on the same cores make every
number larger.
"""
from __future__ import annotations

import argparse
import datetime
import os
import platform
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from dnal_core import build
from dnal_core.data import CIFAR10_MEAN, CIFAR10_STD, TensorLoader
from dnal_core.io import write_json
from dnal_core.machine import cpu_kind, cpu_model

EPOCH, BATCH = 50_000, 128
# (model, width_mult, layout, dtype, threads)
ROWS = [("vgg16-cifar", 0.25, layout, "fp32", t) for t in (1, 2) for layout in ("nchw", "channels_last")]
ROWS += [("vgg16-cifar", 0.25, "channels_last", "bf16", 2), ("vgg16-cifar", 0.125, "channels_last", "fp32", 1)]
ROWS += [(m, 0.5, layout, "fp32", 1) for m in ("resnet56-cifar", "mobilenetv2-cifar")
         for layout in ("nchw", "channels_last")]


def time_row(model_name, width, layout, dtype, threads, steps, warmup):
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    n = BATCH * (steps + warmup)
    loader = TensorLoader(torch.randint(0, 256, (n, 32, 32, 3), dtype=torch.uint8, generator=g),
                          torch.randint(0, 10, (n,), generator=g), BATCH, train=True,
                          mean=CIFAR10_MEAN, std=CIFAR10_STD)
    t = time.perf_counter()
    batches = list(loader)
    loader_s = (time.perf_counter() - t) / len(batches) * EPOCH / BATCH
    model = build(model_name, width_mult=width)
    cl = layout == "channels_last"
    if cl:
        model.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-4)

    def fwd(x):
        if cl:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == "bf16"):
            return model(x)

    model.train()
    for i, (x, y) in enumerate(batches):
        if i == warmup:
            t = time.perf_counter()
        loss = F.cross_entropy(fwd(x).float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    step_s = (time.perf_counter() - t) / steps
    model.eval()
    with torch.no_grad():
        t = time.perf_counter()
        for x, _ in batches[:max(1, steps // 2)]:
            fwd(x)
        eval_s = (time.perf_counter() - t) / max(1, steps // 2)
    return {"model": model_name, "width_mult": width, "layout": layout, "dtype": dtype, "threads": threads,
            "batch": BATCH, "steps": steps, "s_per_epoch": round(step_s * EPOCH / BATCH, 1),
            "loader_s_per_epoch": round(loader_s, 2), "eval_s_per_10k": round(eval_s * 10_000 / BATCH, 2)}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=6)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--json", default=str(Path(__file__).parent / "results" / "cpu_2core.json"))
    p.add_argument("--widths", type=float, nargs="+", default=None,
                   help="only VGG16 at these width multipliers (1 thread, channels_last, fp32): what an "
                        "experiment at another width costs")
    a = p.parse_args(argv)
    if a.steps < 1 or a.warmup < 1:
        p.error("--steps and --warmup must be >= 1")
    if a.widths and not all(0 < w <= 1 for w in a.widths):
        p.error("--widths must lie in (0, 1]")
    rows, load = [], os.getloadavg()[0]
    for r in ROWS if not a.widths else [("vgg16-cifar", w, "channels_last", "fp32", 1) for w in a.widths]:
        rows.append(time_row(*r, a.steps, a.warmup))
        print(rows[-1], flush=True)
    write_json(a.json, {"device": f"cpu: {cpu_model() or platform.processor()}, {os.cpu_count()} cores",
                        "cpu_capability": torch.backends.cpu.get_cpu_capability(), "cpu_kind": cpu_kind(),
                        "date": datetime.date.today().isoformat(), "torch": str(torch.__version__),
                        "load_before": round(load, 2), "load_after": round(os.getloadavg()[0], 2),
                        "command": "python benchmarks/cpu_epoch.py" + "".join(
                            f" {k} {v}" for k, v in (("--steps", a.steps), ("--warmup", a.warmup)) if v)
                        + (" --widths " + " ".join(f"{w:g}" for w in a.widths) if a.widths else ""),
                        "rows": rows})


if __name__ == "__main__":
    main()
