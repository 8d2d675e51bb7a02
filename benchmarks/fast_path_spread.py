"""How far the CPU fast path (FastStep in fp32: fused SGD on a tensor LR, the step as one
function) and the eager path drift apart on one CPU kind, over several seeds: the measurement
behind the tolerances of tests/test_fast.py::test_fp32_fast_path_trains_as_the_eager_path.

Both paths train the same width-scaled VGG16 (x1/8, channels_last) on a tiny random task: two
weight epochs, then one architecture epoch in which delta climbs from 1 to 1e4. In the weight
stage the two paths differ by fp32 rounding only; in the architecture stage delta magnifies a
last-bit difference of the fused update into other gate values, so the losses drift by an
amount that depends on the CPU's kernels (the CPU kind, ``dnal_core.machine.cpu_kind``).

    python benchmarks/fast_path_spread.py --seeds 0 1 2 3 4

adds this kind's spread (the worst relative difference of each quantity over the seeds) to
benchmarks/results/fast_path_spread.json, keyed by CPU kind, with the date and torch version.
"""
from __future__ import annotations

import argparse
import datetime
import sys
from pathlib import Path

import torch

from dnal_core import build
from dnal_core.data import TensorLoader
from dnal_core.io import read_json, write_json
from dnal_core.machine import cpu_kind, cpu_model
from dnal_core.recipes import StageConfig
from dnal_core.train import train_architecture, train_weights
from dnal_core.train.fast import FastConfig, prefer_fast

RESULTS = Path(__file__).parent / "results" / "fast_path_spread.json"


def tiny_task(n=72, test_n=32):
    """72 random 32x32 images in 10 classes (batches of 16), the first 32 as the test set."""
    g = torch.Generator().manual_seed(1)
    imgs = torch.randint(0, 256, (n, 32, 32, 3), dtype=torch.uint8, generator=g)
    labels = torch.randint(0, 10, (n,), generator=g)
    kw = dict(mean=(0.5,) * 3, std=(0.25,) * 3)
    return TensorLoader(imgs, labels, 16, train=True, **kw), TensorLoader(imgs[:test_n], labels[:test_n], test_n,
                                                                           train=False, **kw)


def both_paths(seed: int = 0) -> dict[bool, list[dict]]:
    """{fast: history} for the fast (True) and the eager (False) path from the same seed: two
    weight-stage records, then one architecture-stage record."""
    train, test = tiny_task()
    out = {}
    for fast in (True, False):
        torch.manual_seed(seed)
        model = build("vgg16-cifar", width_mult=0.125)
        with prefer_fast(True, FastConfig(autocast=False)):
            hist = train_weights(model, train, test, StageConfig(epochs=2, lr=0.05, milestones=(1,), batch_size=16),
                                 fast=fast)
            hist += train_architecture(model, train, test, StageConfig(epochs=1, lr=0.1, batch_size=16), lam=1e-3,
                                       fast=fast)
        if not model.features[0].conv.weight.is_contiguous(memory_format=torch.channels_last):
            raise AssertionError("the CPU paths train channels_last")
        out[fast] = hist
    return out


def drift(out: dict[bool, list[dict]]) -> dict:
    """The differences between the paths: relative for losses, absolute (points, gates) for the
    rest, per stage."""
    def rel(a, b):
        return abs(a - b) / abs(b)

    w = [(f, e) for f, e in zip(out[True][:2], out[False][:2])]
    f, e = out[True][2], out[False][2]
    return {"weights_loss_rel": max(max(rel(a["train_loss"], b["train_loss"]), rel(a["test_loss"], b["test_loss"]))
                                    for a, b in w),
            "weights_top1_abs": max(abs(a["test_top1"] - b["test_top1"]) for a, b in w),
            "arch_train_loss_rel": rel(f["train_loss"], e["train_loss"]),
            "arch_test_loss_rel": rel(f["test_loss"], e["test_loss"]),
            "arch_gates_share": abs(f["open_gates"] - e["open_gates"]) / e["gate_channels"],
            "arch_top1_abs": abs(f["test_top1"] - e["test_top1"]),
            "arch_hard_top1_abs": abs(f["hard_top1"] - e["hard_top1"])}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    p.add_argument("--json", default=str(RESULTS))
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    per_seed = {}
    for s in a.seeds:
        per_seed[s] = drift(both_paths(s))
        print(s, per_seed[s], file=sys.stderr, flush=True)
    worst = {k: max(d[k] for d in per_seed.values()) for k in next(iter(per_seed.values()))}
    path = Path(a.json)
    data = read_json(path) if path.is_file() else {"kinds": {}}
    data["kinds"][cpu_kind()] = {"cpu_model": cpu_model(), "date": datetime.date.today().isoformat(),
                                 "torch": str(torch.__version__), "seeds": a.seeds, "worst": worst,
                                 "per_seed": {str(k): v for k, v in per_seed.items()},
                                 "command": "python benchmarks/fast_path_spread.py --seeds "
                                            + " ".join(map(str, a.seeds))}
    write_json(path, data)
    print(worst)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
