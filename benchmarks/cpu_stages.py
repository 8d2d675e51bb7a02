"""Where a CPU epoch goes, per stage of Alg. 1 and per precision: the quarter-width VGG16 of the
``cpu`` profile (batch 128, CIFAR-10's 50,000 training and 10,000 test images).

    python benchmarks/cpu_stages.py                 # writes benchmarks/results/cpu_<kind>.json
    python benchmarks/cpu_stages.py --steps 2 --json /tmp/x.json     # a quick check
    python benchmarks/cpu_stages.py --compile     # eager against torch.compile: cpu_compile_<kind>.json

For each stage (weights: dense, every weight trains; arch: soft gates, only s trains, evaluated
twice an epoch, the soft and the hard-gated network; finetune: the pruned network of Table I's
lambda 2.3e-3) and each precision (fp32; bf16 where the CPU has bf16 matrix instructions, or
with ``--bf16`` anyway), it times with the trainer's own functions:

  * train step: ``train_step`` (forward, backward, SGD update) on ``--steps`` batches after one
    untimed step, extrapolated to the 390 steps of an epoch;
  * loader: ``TensorLoader`` (augmentation, batching) over the same number of batches;
  * evaluation: ``evaluate`` over 10,000 test images (in the stage's precision, as the trainer
    evaluates every epoch but a stage's last);
  * precise BN: re-estimating the BN statistics on 20 batches (``precise_copy``), once per
    evaluation;
  * checkpoint: ``io.save`` of the epoch's checkpoint (model, optimizer) to a temporary folder;

and reports seconds and shares of the epoch, the achieved GFLOP/s of the train step (2 FLOPs per
MAC; backward counted as twice the forward where weights train, once where only s trains)
against a measured matmul peak of the same machine, threads and precision (a 2048 x 2048
``torch.mm``), and the top operators by self CPU time from ``torch.profiler``. Threads: ``--threads``
(default 2, the machine's cores). Other jobs on the same cores make every time larger but the
shares less so: the JSON records the load average at the start.

``--compile`` times each stage's train step eagerly and under ``torch.compile`` (inductor, static
shapes) instead: two copies of the same model from the same seed take the same batches; the
first compiled step (the compilation) is timed on its own, and a whole epoch is compared as
first step + the rest at the steady step time. The losses of the two copies are compared step
by step (the largest relative difference), against the tolerances of ``tests/test_fast.py``
(1e-5 on one step; 5e-3 on the architecture stage's epoch loss).
"""
from __future__ import annotations

import argparse
import copy
import datetime
import json
import os
import tempfile
import time
from pathlib import Path

import torch

from dnal_core import build, gates, set_delta, set_mode
from dnal_core.data import CIFAR10_MEAN, CIFAR10_STD, TensorLoader
from dnal_core.io import save, write_json
from dnal_core.machine import cpu_kind, cpu_model, has_bf16_matmul, kind_slug
from dnal_core.measure import count
from dnal_core.train.bn import precise_copy
from dnal_core.train.fast import autocast
from dnal_core.train.stages import evaluate, train_step

ROOT = Path(__file__).resolve().parents[1]
EPOCH, TEST, BATCH, CALIB = 50_000, 10_000, 128, 20
STEPS_PER_EPOCH = EPOCH // BATCH  # the trainer drops the last incomplete batch
ARCH = ROOT / "results" / "table1_vgg16_cifar10" / "cpu" / "arch" / "lam2.3e-3.json"


def matmul_peak(dtype: torch.dtype, n: int = 2048, reps: int = 3) -> float:
    """GFLOP/s of an n x n matrix product on this machine (the best of ``reps``)."""
    a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
    torch.mm(a, b)
    best = min(_timed(lambda: torch.mm(a, b)) for _ in range(reps))
    return 2 * n ** 3 / best / 1e9


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def _stage_model(stage: str):
    """(model, trainable parameters, lambda, FLOPs factor of a train step over the forward)."""
    torch.manual_seed(0)
    if stage == "finetune":
        arch = json.loads(ARCH.read_text())
        m = build("vgg16-cifar", width_mult=0.25, widths=arch["widths"])
        set_mode(m, "off")
        return m, list(m.parameters()), None, 3
    m = build("vgg16-cifar", width_mult=0.25)
    if stage == "weights":
        set_mode(m, "off")
        return m, [p for n, p in m.named_parameters() if not n.endswith(".s")], None, 3
    set_mode(m, "soft")
    set_delta(m, 100.0)
    s = [g.s for _, g in gates(m)]
    for p in m.parameters():
        p.requires_grad_(False)
    for p in s:
        p.requires_grad_(True)
    return m, s, 2.3e-3, 2


def breakdown(stage: str, precision: str, steps: int) -> dict:
    model, params, lam, factor = _stage_model(stage)
    model.to(memory_format=torch.channels_last).train()
    g = torch.Generator().manual_seed(0)
    n = BATCH * (steps + 1)
    loader = TensorLoader(torch.randint(0, 256, (n, 32, 32, 3), dtype=torch.uint8, generator=g),
                          torch.randint(0, 10, (n,), generator=g), BATCH, train=True,
                          mean=CIFAR10_MEAN, std=CIFAR10_STD)
    t = time.perf_counter()
    batches = [(x.contiguous(memory_format=torch.channels_last), y) for x, y in loader]
    loader_s = (time.perf_counter() - t) / len(batches) * STEPS_PER_EPOCH
    opt = torch.optim.SGD(params, lr=0.01, momentum=0.9, weight_decay=1e-4)
    bf16 = precision == "bf16"
    train_step(model, *batches[0], opt, lam, "paper", bf16)
    t = time.perf_counter()
    for x, y in batches[1:]:
        train_step(model, x, y, opt, lam, "paper", bf16)
    step_s = (time.perf_counter() - t) / steps
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for x, y in batches[1:3]:
            train_step(model, x, y, opt, lam, "paper", bf16)
    events = sorted(prof.key_averages(), key=lambda e: -e.self_cpu_time_total)
    total_us = sum(e.self_cpu_time_total for e in events) or 1.0
    top = [{"op": e.key, "self_ms_per_step": round(e.self_cpu_time_total / 1e3 / 2, 2),
            "share": round(e.self_cpu_time_total / total_us, 3)} for e in events[:8]]
    test = [(torch.randn(500, 3, 32, 32).contiguous(memory_format=torch.channels_last),
             torch.randint(0, 10, (500,))) for _ in range(2)]
    with autocast(torch.device("cpu"), bf16):
        eval_s = _timed(lambda: evaluate(model, test)) / 1000 * TEST
    calib = [(x, y) for x, y in (batches * CALIB)[:CALIB]]
    with autocast(torch.device("cpu"), bf16):
        bn_s = _timed(lambda: precise_copy(model, calib))
    evals = 2 if stage == "arch" else 1  # the arch stage evaluates the soft and the hard-gated network
    with tempfile.TemporaryDirectory() as d:
        ckpt_s = _timed(lambda: save({"model": model.state_dict(), "optimizer": opt.state_dict()},
                                     Path(d) / "ckpt.pt"))
    parts = {"train_step": step_s * STEPS_PER_EPOCH, "loader": loader_s, "evaluation": evals * eval_s,
             "precise_bn": evals * bn_s, "checkpoint": ckpt_s}
    epoch = sum(parts.values())
    macs = count(model)["macs"] if stage != "arch" else count(build("vgg16-cifar", width_mult=0.25))["macs"]
    gflops = factor * 2 * macs * BATCH / step_s / 1e9
    return {"stage": stage, "precision": precision, "macs_per_image": macs, "steps_timed": steps,
            "s_per_step": round(step_s, 4), "epoch_s": round(epoch, 1),
            "seconds": {k: round(v, 2) for k, v in parts.items()},
            "shares": {k: round(v / epoch, 3) for k, v in parts.items()},
            "outside_forward_backward": round(1 - parts["train_step"] / epoch, 3),
            "train_step_gflops": round(gflops, 2), "top_ops": top}


def compiled(stage: str, precision: str, steps: int) -> dict:
    """Eager against ``torch.compile`` (inductor) for one stage's train step (see the docstring)."""
    bf16 = precision == "bf16"
    g = torch.Generator().manual_seed(0)
    n = BATCH * (steps + 1)
    loader = TensorLoader(torch.randint(0, 256, (n, 32, 32, 3), dtype=torch.uint8, generator=g),
                          torch.randint(0, 10, (n,), generator=g), BATCH, train=True,
                          mean=CIFAR10_MEAN, std=CIFAR10_STD)
    batches = [(x.contiguous(memory_format=torch.channels_last), y) for x, y in loader]
    out = {"stage": stage, "precision": precision, "steps_timed": steps}
    losses = {}
    for mode in ("eager", "compiled"):
        model, params, lam, _ = _stage_model(stage)
        model.to(memory_format=torch.channels_last).train()
        opt = torch.optim.SGD(params, lr=0.01, momentum=0.9, weight_decay=1e-4)
        net = torch.compile(model, backend="inductor", dynamic=False) if mode == "compiled" else model
        t = time.perf_counter()
        losses[mode] = [train_step(net, *batches[0], opt, lam, "paper", bf16)[0].item()]
        first = time.perf_counter() - t
        t = time.perf_counter()
        for x, y in batches[1:]:
            losses[mode].append(train_step(net, x, y, opt, lam, "paper", bf16)[0].item())
        step = (time.perf_counter() - t) / steps
        out[mode] = {"first_step_s": round(first, 2), "s_per_step": round(step, 4),
                     "epoch_train_s": round(first + step * (STEPS_PER_EPOCH - 1), 1)}
        torch._dynamo.reset()
    rel = [abs(c - e) / abs(e) for e, c in zip(losses["eager"], losses["compiled"])]
    out.update(first_step_loss_rel=float(f"{rel[0]:.2e}"), max_loss_rel=float(f"{max(rel):.2e}"),
               epoch_speedup=round(out["eager"]["epoch_train_s"] / out["compiled"]["epoch_train_s"], 3),
               steady_speedup=round(out["eager"]["s_per_step"] / out["compiled"]["s_per_step"], 3))
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--bf16", action="store_true", help="time bf16 also on a CPU without bf16 matrix instructions")
    p.add_argument("--json", default=None, help="default benchmarks/results/cpu_<kind>.json "
                                                 "(--compile: cpu_compile_<kind>.json)")
    p.add_argument("--compile", action="store_true", help="eager against torch.compile, per stage")
    a = p.parse_args(argv)
    if a.steps < 2:
        p.error("--steps must be >= 2")
    torch.set_num_threads(a.threads)
    torch.set_flush_denormal(True)  # as run_pipeline does on the CPU
    load = os.getloadavg()[0]
    precisions = ["fp32"] + (["bf16"] if has_bf16_matmul() or a.bf16 else [])
    if a.compile:
        return _compile_main(a, precisions, load)
    peaks = {pr: round(matmul_peak(torch.float32 if pr == "fp32" else torch.bfloat16), 1) for pr in precisions}
    rows = []
    for pr in precisions:
        for stage in ("weights", "arch", "finetune"):
            rows.append({**breakdown(stage, pr, a.steps), "matmul_peak_gflops": peaks[pr]})
            rows[-1]["of_peak"] = round(rows[-1]["train_step_gflops"] / peaks[pr], 3)
            print(json.dumps({k: v for k, v in rows[-1].items() if k != "top_ops"}), flush=True)
    path = Path(a.json) if a.json else Path(__file__).parent / "results" / f"cpu_{kind_slug(cpu_kind())}.json"
    cmd = f"python benchmarks/cpu_stages.py --steps {a.steps} --threads {a.threads}" + (" --bf16" if a.bf16 else "")
    write_json(path, {"cpu_model": cpu_model(), "cpu_kind": cpu_kind(), "cores": os.cpu_count(),
                      "threads": a.threads, "load_average_at_start": round(load, 2),
                      "date": datetime.date.today().isoformat(), "torch": str(torch.__version__),
                      "command": cmd, "matmul_peak_gflops": peaks, "rows": rows})
    print(path)
    return 0


def _compile_main(a, precisions, load) -> int:
    rows = []
    for pr in precisions:
        for stage in ("weights", "arch", "finetune"):
            rows.append(compiled(stage, pr, a.steps))
            print(json.dumps(rows[-1]), flush=True)
    path = Path(a.json) if a.json else Path(__file__).parent / "results" / f"cpu_compile_{kind_slug(cpu_kind())}.json"
    cmd = f"python benchmarks/cpu_stages.py --compile --steps {a.steps} --threads {a.threads}" + " --bf16" * a.bf16
    write_json(path, {"cpu_model": cpu_model(), "cpu_kind": cpu_kind(), "cores": os.cpu_count(),
                      "threads": a.threads, "load_average_at_start": round(load, 2),
                      "load_average_at_end": round(os.getloadavg()[0], 2),
                      "date": datetime.date.today().isoformat(), "torch": str(torch.__version__),
                      "command": cmd, "rows": rows})
    print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
