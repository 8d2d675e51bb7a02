"""Seconds per training epoch of each DNAL stage, eager fp32 against the fast path, in one run.

    python benchmarks/epoch_time.py                       # on the GPU: VGG16 bs128, ResNet56 bs64
    python benchmarks/epoch_time.py --fraction 0.25       # time a quarter epoch, extrapolate
    python benchmarks/epoch_time.py --smoke --json /tmp/s.json   # CPU smoke check (not a measurement)

For each model (VGG16 at batch 128, ResNet56 at batch 64: the paper's sizes) and each mode
(``eager``: fp32, the eager ``train_step``; ``fast``: dnal_core/train/fast.py, the default on
CUDA) it runs the three stages of Alg. 1 through the library's own stage functions: the weight
stage, the architecture stage (delta growing every step) and the finetune stage on a pruned
network (gates set at random so that about half the channels close, then ``derive_network``).
Each stage runs ``--epochs`` epochs; the first holds warm-up and CUDA-graph capture (or
compilation) and is reported separately ("first-epoch extra": its time minus a timed epoch's);
the others are timed (training only, evaluation excluded, the device synchronised: the
``seconds`` of each record). With ``--fraction F < 1`` an "epoch" is F x 50,000 images and the
time is extrapolated to 50,000 (labelled ``extrapolated``). Images are synthetic uint8 of
CIFAR's shape unless ``--data`` (the cost of a step does not depend on the pixels): random noise
plus a brightness that depends on the label, so that the task can be learnt and a path that
trains wrongly shows in its loss; the loader is the project's ``TensorLoader`` either way
(GPU-resident, augmented per batch).

Each row records, beside the time, the stage's last training loss and its last top-1 / top-5
(fp32 evaluation on the held-out images): a fast path that trains wrongly cannot pass on speed
alone. The table's verdict needs the speed targets AND the fast path's loss within
``LOSS_TOL`` of the eager loss (relative) and its top-1 within ``TOP1_TOL`` points.

Writes ``{"device", "date", "torch", "rows": [{"model", "stage", "mode", "s_per_epoch",
"train_loss", "top1", ...}]}`` to ``--json`` (default ``benchmarks/results/<--name>.json``;
none in smoke mode unless given). cuDNN is set as ``dnal run`` sets it (``set_cudnn``).
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime
import math
import statistics
import sys
import time
from pathlib import Path

import torch

from dnal_core import build, gates
from dnal_core.io import write_json
from dnal_core.data import CIFAR10_MEAN, CIFAR10_STD, TensorLoader, cifar10_loaders
from dnal_core.recipes import StageConfig, get_recipe
from dnal_core.train import derive_network, finetune, resolve_device, train_architecture, train_weights
from dnal_core.train.fast import FastConfig, prefer_fast, set_cudnn
from dnal_core.train.pipeline import provenance

EPOCH_IMAGES = 50_000                          # one CIFAR-10 training epoch
MODELS = {"vgg16-cifar": 128, "resnet56-cifar": 64}   # paper batch sizes (Section V-B)
TARGETS = {"vgg16-cifar": (1.0, 2.7), "resnet56-cifar": (4.0, 4.5)}  # issue 7: s/epoch, ratio
STAGES = ("weights", "arch", "finetune")
LOSS_TOL, TOP1_TOL = 0.10, 5.0   # fast vs eager in the same run: relative train loss, top-1 points


def loaders(args, batch: int, device):
    n = max(batch, round(args.fraction * EPOCH_IMAGES))
    if args.data:
        per_class = -(-n // 10)
        tr, te = cifar10_loaders(args.data, batch, args.test_images, device=device,
                                 train_per_class=per_class, test_per_class=max(1, args.test_images // 10))
        return tr, te
    g = torch.Generator().manual_seed(0)
    def fake(k):  # noise in [0, 120) plus 12 x label: learnable from the mean brightness
        labels = torch.randint(0, 10, (k,), generator=g)
        noise = torch.randint(0, 120, (k, 32, 32, 3), dtype=torch.uint8, generator=g)
        return noise + (labels * 12).to(torch.uint8)[:, None, None, None], labels
    common = dict(mean=CIFAR10_MEAN, std=CIFAR10_STD, device=device)
    return (TensorLoader(*fake(n), batch, train=True, **common),
            TensorLoader(*fake(args.test_images), args.test_images, train=False, **common))


def run_model(name: str, batch: int, mode: str, args, device) -> list[dict]:
    r = get_recipe(name, "paper")
    train, test = loaders(args, batch, device)
    cfg = {s: dataclasses.replace(getattr(r, s), epochs=args.epochs, milestones=(), batch_size=batch)
           for s in STAGES}
    fast = mode == "fast"
    torch.manual_seed(0)
    model = build(name, width_mult=args.width_mult).to(device)
    rows = []
    for stage in STAGES:
        kw = dict(fast=fast)
        if stage == "weights":
            hist = train_weights(model, train, test, cfg[stage], **kw)
        elif stage == "arch":
            hist = train_architecture(model, train, test, cfg[stage], lam=args.lam, search=r.search, **kw)
        else:
            with torch.no_grad():  # a pruned net of about half the channels, the same for both modes
                g = torch.Generator().manual_seed(1)
                for _, gate in gates(model):
                    gate.s.copy_(torch.randn(gate.s.shape, generator=g))
            res = derive_network(model, r.search)
            model = res.model
            hist = finetune(model, train, test, cfg[stage], **kw)
        secs = [h["seconds"] for h in hist]
        timed = statistics.median(secs[1:]) if len(secs) > 1 else secs[0]
        frac = hist[-1]["images"] / EPOCH_IMAGES
        rows.append({"model": name, "stage": stage, "mode": mode, "batch_size": batch,
                     "s_per_epoch": timed / frac, "measured_s": timed, "images_per_epoch": hist[-1]["images"],
                     "train_loss": hist[-1]["train_loss"], "train_ce": hist[-1]["train_ce"],
                     "top1": hist[-1]["test_top1"], "top5": hist[-1]["test_top5"],
                     "test_images": args.test_images,
                     "extrapolated": frac != 1.0, "epochs": len(secs),
                     "first_epoch_extra_s": secs[0] - timed if len(secs) > 1 else None,
                     "width_mult": args.width_mult})
        print(f"  {name:15s} {stage:8s} {mode:5s} {timed / frac:9.3f} s/epoch (first epoch +"
              f"{rows[-1]['first_epoch_extra_s'] or 0:.2f} s)  loss {hist[-1]['train_loss']:.4f}  "
              f"top1 {hist[-1]['test_top1']:.2f}", file=sys.stderr, flush=True)
    return rows


def same_training(eager: dict, fast: dict) -> bool:
    """The fast row trained as the eager one did: finite loss within LOSS_TOL (relative; 0.05
    absolute near zero), top-1
    within TOP1_TOL points (bf16 and another summation order: close, not equal)."""
    lf, le = fast["train_loss"], eager["train_loss"]
    return (math.isfinite(lf) and math.isfinite(le) and abs(lf - le) <= max(LOSS_TOL * abs(le), 0.05)
            and abs(fast["top1"] - eager["top1"]) <= TOP1_TOL)


def table(rows: list[dict], smoke: bool) -> str:
    by = {(r["model"], r["stage"], r["mode"]): r for r in rows}
    lines = ["| model | stage | eager s/epoch | fast s/epoch | ratio | fast first-epoch extra s | "
             "eager loss / top-1 | fast loss / top-1 | target |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for (model, stage, mode), r in by.items():
        if mode != "eager" or (model, stage, "fast") not in by:
            continue
        f = by[(model, stage, "fast")]
        ratio = r["s_per_epoch"] / f["s_per_epoch"]
        t_s, t_r = TARGETS.get(model, (None, None))
        trains = same_training(r, f)
        ok = "" if smoke or t_s is None else (" OK" if f["s_per_epoch"] <= t_s and ratio >= t_r and trains
                                              else " MISSED" if trains else " TRAINS DIFFERENTLY")
        lines.append(f"| {model} | {stage} | {r['s_per_epoch']:.3f} | {f['s_per_epoch']:.3f} | {ratio:.2f}x | "
                     f"{f['first_epoch_extra_s'] or 0:.2f} | {r['train_loss']:.4f} / {r['top1']:.1f} | "
                     f"{f['train_loss']:.4f} / {f['top1']:.1f} | {'-' if smoke else f'<= {t_s} s, >= {t_r}x{ok}'} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", default=",".join(MODELS), help="comma-separated, of " + ", ".join(MODELS))
    p.add_argument("--modes", default="eager,fast")
    p.add_argument("--device", default="auto")
    p.add_argument("--epochs", type=int, default=2, help="epochs per stage; the first is warm-up")
    p.add_argument("--fraction", type=float, default=1.0, help="an epoch of F x 50,000 images, extrapolated")
    p.add_argument("--width-mult", type=float, default=1.0)
    p.add_argument("--batch-size", type=int, help="override the paper batch sizes")
    p.add_argument("--test-images", type=int, default=1000, help="evaluation set (one large batch)")
    p.add_argument("--lam", type=float, default=1e-4)
    p.add_argument("--compile", help="also torch.compile the model under the graph (a backend name)")
    p.add_argument("--no-channels-last", action="store_true", help="fast path without channels_last")
    p.add_argument("--no-autocast", action="store_true", help="fast path in fp32 (graphs only)")
    p.add_argument("--data", help="CIFAR-10 folder (default: random images of CIFAR's shape)")
    p.add_argument("--smoke", action="store_true",
                   help="CPU machinery check: width 1/16, 2 batches of 8, 1 epoch (NOT a measurement)")
    p.add_argument("--name", default="epoch_time", help="benchmarks/results/<name>.json")
    p.add_argument("--json", help="output path (overrides --name)")
    args = p.parse_args(argv)
    if args.smoke:
        args.device, args.width_mult, args.test_images, args.epochs = "cpu", 0.0625, 8, 1
        args.fraction = 16 / EPOCH_IMAGES
        torch.set_num_threads(min(2, torch.get_num_threads()))
    device = resolve_device(args.device)
    models = [m.strip() for m in args.models.split(",")]
    bad = [m for m in models if m not in MODELS]
    if bad or not 0 < args.fraction <= 1 or args.epochs < 1:
        p.error(f"models must be among {', '.join(MODELS)}; 0 < fraction <= 1; epochs >= 1")
    set_cudnn(device)  # as `dnal run` sets it, for both modes
    rows, t0 = [], time.perf_counter()
    fast_cfg = FastConfig(compile=args.compile, channels_last=not args.no_channels_last,
                          autocast=not args.no_autocast)
    prov = provenance(device)
    out = args.json or (None if args.smoke else Path(__file__).parent / "results" / f"{args.name}.json")

    def result(rows, complete):
        return {"device": prov["device"], "cpu_kind": prov["cpu_kind"], "date": datetime.date.today().isoformat(),
                "torch": torch.__version__,
                "git": prov["git"], "fast_config": dataclasses.asdict(fast_cfg),
                "cudnn_benchmark": torch.backends.cudnn.benchmark, "loss_tol": LOSS_TOL, "top1_tol": TOP1_TOL,
                "eager_fp32_tf32": {"cudnn_conv": torch.backends.cudnn.allow_tf32,
                                    "matmul": torch.backends.cuda.matmul.allow_tf32},
                "smoke": args.smoke, "fraction": args.fraction, "epochs": args.epochs,
                "complete": complete, "total_s": time.perf_counter() - t0, "rows": rows}

    with prefer_fast(True, fast_cfg):
        for name in models:
            bs = args.batch_size or (8 if args.smoke else MODELS[name])
            for mode in args.modes.split(","):
                rows += run_model(name, bs, mode, args, device)
                if out:  # after every model and mode: a run cut short keeps what it measured
                    write_json(out, result(rows, complete=False))
    label = "SMOKE (CPU machinery check, not a measurement)" if args.smoke else prov["device"]
    extra = f", EXTRAPOLATED from {args.fraction:g} of an epoch" if args.fraction < 1 and not args.smoke else ""
    print(f"# epoch_time: {label}{extra}; torch {torch.__version__}; {args.epochs} epochs/stage"
          + (", first dropped" if args.epochs > 1 else ", warm-up included"))
    print(table(rows, args.smoke))
    if out:
        write_json(out, result(rows, complete=True))
        print(f"# wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
