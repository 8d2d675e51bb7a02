"""Seconds per epoch and images per second of each DNAL stage on one device.

    python benchmarks/train_speed.py --device cuda --model vgg16-cifar --epochs 2
    python benchmarks/train_speed.py --device cpu --width-mult 0.25 --per-class 100 --epochs 1

Runs the weight, architecture and finetune stages of the chosen recipe (batch sizes from the
paper profile unless ``--batch-size``) on CIFAR-10 from ``--data`` (default ``$DNAL_DATA``) and
prints one line per stage: the median training seconds per epoch (evaluation excluded; the first
epoch is dropped as warm-up when there are several) and the training images per second. A script,
not a test: its numbers depend on the machine, so report them with the device it prints.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import sys

import torch

from dnal_core.data import cifar10_loaders
from dnal_core.models import build
from dnal_core.recipes import get_recipe
from dnal_core.train import (derive_network, finetune, resolve_device, train_architecture,
                             train_weights)
from dnal_core.train.pipeline import provenance


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="vgg16-cifar")
    p.add_argument("--profile", default="paper", help="recipe whose batch sizes and lrs are used")
    p.add_argument("--data", default=os.environ.get("DNAL_DATA"))
    p.add_argument("--device", default="auto")
    p.add_argument("--epochs", type=int, default=2, help="epochs timed per stage")
    p.add_argument("--batch-size", type=int, help="override every stage's batch size")
    p.add_argument("--width-mult", type=float, default=1.0)
    p.add_argument("--per-class", type=int, help="training images per class (default: all)")
    p.add_argument("--test-per-class", type=int, default=10)
    p.add_argument("--lam", type=float, default=1e-4)
    p.add_argument("--json", action="store_true", help="print one JSON object per stage instead")
    args = p.parse_args(argv)
    if not args.data:
        p.error("--data (or DNAL_DATA) is required")
    device = resolve_device(args.device)
    r = get_recipe(args.model, args.profile)
    stage_cfg = {}
    for s in ("weights", "arch", "finetune"):
        cfg = dataclasses.replace(getattr(r, s), epochs=args.epochs, milestones=())
        if args.batch_size:
            cfg = dataclasses.replace(cfg, batch_size=args.batch_size)
        stage_cfg[s] = cfg
    train, test = cifar10_loaders(args.data, stage_cfg["weights"].batch_size, 500, device=device,
                                  train_per_class=args.per_class, test_per_class=args.test_per_class)
    torch.manual_seed(0)
    model = build(args.model, width_mult=args.width_mult, placement=r.placement).to(device)
    print(f"# {args.model} width_mult={args.width_mult} train images={train.num_samples} "
          f"{json.dumps(provenance(device))}", file=sys.stderr)
    for stage in ("weights", "arch", "finetune"):
        cfg = stage_cfg[stage]
        train.batch_size = cfg.batch_size
        if stage == "weights":
            hist = train_weights(model, train, test, cfg)
        elif stage == "arch":
            hist = train_architecture(model, train, test, cfg, lam=args.lam, search=r.search)
        else:
            model = derive_network(model, r.search)
            hist = finetune(model, train, test, cfg)
        secs = [h["seconds"] for h in hist]
        timed = secs[1:] if len(secs) > 1 else secs
        per_epoch = statistics.median(timed)
        ips = hist[-1]["images"] / per_epoch
        row = {"stage": stage, "model": args.model, "batch_size": cfg.batch_size,
               "seconds_per_epoch": round(per_epoch, 3), "images_per_second": round(ips, 1),
               "epochs": len(secs), "device": str(device)}
        print(json.dumps(row) if args.json else
              f"{stage:>8}  bs {cfg.batch_size:4d}  {per_epoch:8.2f} s/epoch  {ips:10.1f} img/s  ({device})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
