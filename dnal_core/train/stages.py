"""The three stages of Alg. 1, the joint variant of Fig. 5, evaluation and the derivation of the
finetuned network. Every stage runs the same loop (``_fit``) and the same per-step code
(``train_step``); a stage only says which parameters train, with which weight decay, which
modules are in train mode, and whether delta grows and the sparsity term counts.
"""
from __future__ import annotations

import copy
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterable

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm  # plain text bars: ipywidgets is not a dependency

from ..gate import (DeltaSchedule, arch_parameters, gate_probs, gates, open_counts, reset_gates,
                    set_delta, set_mode, set_threshold)
from ..loss import sparsity_loss
from ..measure import count_macs, gated_macs
from ..recipes import SearchConfig, StageConfig
from .bn import PRECISE_BN_BATCHES, calibration_batches, precise_copy, recalibrate_bn
from .fast import FastStep, autocast, use_fast
from . import dist

HIST_BINS = 10  # gate-value histogram per architecture epoch: counts in 10 bins over [0, 1] (Fig. 3)
CPU_EVAL_SLICE = 128  # CPU evaluation in slices: 500 images outgrow the caches (1.45x the time, same logits)


# --- evaluation -----------------------------------------------------------------------------------

def _device_of(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


@torch.no_grad()
def evaluate(model: nn.Module, data: Iterable, device=None, bn_batches: Iterable | None = None) -> dict:
    """Top-1 and top-5 accuracy (percent) and mean cross-entropy of ``model`` on ``data``
    (batches of (x, y)); the model's train/eval flags are restored afterwards.
    ``bn_batches``: evaluate a copy whose BatchNorm statistics are re-estimated on these
    training batches first (precise BN, ``train.bn``); the model itself is not changed."""
    device = torch.device(device) if device is not None else _device_of(model)
    model = precise_copy(model, bn_batches)
    flags = [(m, m.training) for m in model.modules()]
    model.eval()
    loss = torch.zeros((), device=device, dtype=torch.float64)
    hit1 = torch.zeros((), device=device, dtype=torch.long)
    hit5 = torch.zeros((), device=device, dtype=torch.long)
    n = 0
    try:
        for x, y in data:
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            step = CPU_EVAL_SLICE if device.type == "cpu" else len(x)  # one slice: no copy (CUDA)
            out = model(x) if len(x) <= step else torch.cat([model(x[i:i + step]) for i in range(0, len(x), step)])
            loss += F.cross_entropy(out.float(), y, reduction="sum")
            top = out.topk(min(5, out.shape[1]), dim=1).indices == y[:, None]  # (B, k)
            hit1 += top[:, 0].sum()
            hit5 += top.any(dim=1).sum()
            n += len(y)
    finally:
        for m, t in flags:
            m.training = t
    if dist.active():  # each rank saw its slice of the test set: sum over the ranks
        tot = dist.all_sum(torch.stack([loss, hit1.double(), hit5.double(),
                                        torch.tensor(float(n), device=device, dtype=torch.float64)]))
        loss, hit1, hit5, n = tot[0], tot[1], tot[2], int(tot[3].item())
    if n == 0:
        raise ValueError("evaluate: the data yielded no batches")
    return {"top1": 100.0 * hit1.item() / n, "top5": 100.0 * hit5.item() / n, "loss": loss.item() / n}


def size_of(model: nn.Module) -> dict:
    """MACs of the network the model stands for: its hard-gated architecture while any gate is on
    (soft or hard), the model itself when every gate is off or it has none."""
    live = [g for _, g in gates(model) if g.mode != "off"]
    return {"macs": gated_macs(model) if live else count_macs(model)}


def _gate_summary(model: nn.Module, hist: bool) -> dict:
    gs = [g for _, g in gates(model)]
    total = sum(g.channels for g in gs)
    off = all(g.mode == "off" for g in gs)
    out = {"open_gates": total if off else sum(open_counts(model)), "gate_channels": total}
    if hist and gs:
        out["gate_hist"] = torch.histc(gate_probs(model).float().cpu(), HIST_BINS, 0.0, 1.0).long().tolist()
    return out


# --- the per-step code: one place for every stage -------------------------------------------------

def train_step(model: nn.Module, x: torch.Tensor, y: torch.Tensor, optimizer: torch.optim.Optimizer,
               lam: float | None = None, loss_form: str = "paper",
               bf16: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """One SGD step on CE (+ the sparsity term of eq. 4 when ``lam`` is given); returns the
    detached (total loss, CE) without synchronising the device. ``bf16``: the forward pass under
    bf16 autocast (``train.precision``); CE, the sparsity term and the update stay fp32."""
    if bf16:
        with autocast(x.device, True):
            logits = model(x)
        ce = F.cross_entropy(logits.float(), y)
    else:
        ce = F.cross_entropy(model(x), y)
    loss = ce if lam is None else ce + sparsity_loss(model, lam, loss_form)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.detach(), ce.detach()


@dataclass
class _Plan:
    """What a stage trains: optimizer param groups (each with its weight decay), a function that
    sets train/eval flags at the start of every epoch, and the search terms (or None)."""
    stage: str
    groups: list[dict]
    modes: Callable[[], None]
    lam: float | None = None
    loss_form: str = "paper"
    delta: DeltaSchedule | None = None
    budget: object = None  # a dnal_core.budget.BudgetController: projects s after every step


@contextmanager
def _trainable_only(model: nn.Module, params: list[nn.Parameter]):
    """requires_grad only for ``params`` (frozen weights then cost no weight gradients); the
    previous flags are restored on exit."""
    keep = {id(p) for p in params}
    old = [(p, p.requires_grad) for p in model.parameters()]
    for p in model.parameters():
        p.requires_grad_(id(p) in keep)
    try:
        yield
    finally:
        for p, r in old:
            p.requires_grad_(r)


def channels_last_safe(model: nn.Module) -> bool:
    """False when ``model`` has a 1x1 convolution of stride > 1 with fewer than 8 input
    channels (a pruned downsampling shortcut): torch 2.14.1's CPU backward of such a conv in
    channels_last corrupts the heap and aborts the process (measured 2026-12-02: Conv2d(3, 1, 1,
    stride=2) or Conv2d(2, 4, 1, stride=2) on 64 x 32 x 32 inputs, one thread; 8 or more input
    channels, a 3x3 kernel or stride 1 ran). Such a model trains in the default layout."""
    return not any(isinstance(m, nn.Conv2d) and m.kernel_size == (1, 1) and m.stride != (1, 1)
                   and m.in_channels < 8 for m in model.modules())


def _fit(model, train_data, test_data, cfg: StageConfig, plan: _Plan, *, device=None, log=None,
         on_epoch=None, resume=None, progress=False, fast=None, channels_last=None,
         precise_bn: int = PRECISE_BN_BATCHES, precision: str = "fp32") -> list[dict]:
    import math
    from . import fast as fast_mod
    from .fast import NonFiniteLossError, normalise_eager_optimizer
    if device is not None:
        model.to(device)
    device = _device_of(model)
    groups = [g for g in plan.groups if g["params"]]  # e.g. --train-linear on a net without Linear
    params = [p for g in groups for p in g["params"]]
    if not params:
        raise ValueError(f"the {plan.stage} stage has no parameters to train")
    opt = torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum)
    if cfg.schedule == "cosine":  # Section V-C, MobileNetV2 and ProxylessNAS: cosine over the stage
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(cfg.epochs, 1))
    else:
        sched = torch.optim.lr_scheduler.MultiStepLR(opt, list(cfg.milestones), cfg.gamma)
    start = 0
    if resume is not None:  # the model's state was loaded by the caller
        opt.load_state_dict(resume["optimizer"])
        sched.load_state_dict(resume["scheduler"])
        start = int(resume["epoch"]) + 1
    # the CUDA fast path (train/fast.py): default on CUDA, fast=False (dnal run --eager) for eager
    # (not under torch.distributed: FastStep calls the bare module, DDP would not average gradients)
    # (not with a budget either: its projection of s runs on the host between steps)
    fast_step = (FastStep(model, opt, plan.lam, plan.loss_form)
                 if use_fast(fast, device) and not dist.active() and plan.budget is None else None)
    if resume is not None and plan.budget is not None and resume.get("budget") is not None:
        plan.budget.load_state_dict(resume["budget"])
    # channels_last on the eager path: default on the CPU, where it is never slower for the CIFAR
    # models (benchmarks/results/cpu_2core.json, 2-core AMD EPYC, batch 128: VGG16 x1/4 109 vs
    # 139 s an epoch on 1 thread, 58 vs 80 on 2; MobileNetV2 x1/2 473 vs 699; ResNet56 x1/2 302
    # vs 303). bf16 autocast on the CPU only where ``precision`` says so (13x slower on AVX2,
    # which has no bf16 instructions). The fast path sets its own layout. Only the memory layout
    # changes, not the maths.
    cl = (device.type == "cpu" and channels_last_safe(model) if channels_last is None
          else bool(channels_last)) and fast_step is None
    if cl:
        model.to(memory_format=torch.channels_last)
    # ``precision`` (train/precision.py, resolved per run): "bf16" autocasts the eager path's
    # forward pass on the CPU; evaluation and precise BN stay fp32
    if precision not in ("fp32", "bf16"):
        raise ValueError(f"_fit needs a resolved precision (fp32 or bf16), got {precision!r}")
    bf16 = precision == "bf16" and device.type == "cpu" and fast_step is None
    if resume is not None and fast_step is None:  # e.g. a checkpoint of the fast path, resumed eagerly
        normalise_eager_optimizer(opt, sched)  # after the layout change: buffers take the params' strides
    # a NaN or infinite loss stops the stage (NonFiniteLossError) before anything of its epoch is
    # logged or saved: the running sum is checked every FINITE_CHECK_EVERY steps where that costs
    # no device sync (the CPU, one process), and at every epoch's end; the steps whose running sum
    # is still finite are counted on the device, which names the first bad step without a sync
    every = fast_mod.FINITE_CHECK_EVERY if device.type != "cuda" and not dist.active() else 0
    # precise BN (train/bn.py): every reported accuracy is of a copy whose BN statistics were
    # re-estimated on the same fixed training batches (0: evaluate the model as it is)
    calib = calibration_batches(train_data, precise_bn)
    history, size = [], None
    with _trainable_only(model, params):
        net = dist.wrap(model)  # DDP under torchrun: after the flags are set, anew every stage
        for epoch in range(start, cfg.epochs):
            if hasattr(train_data, "set_epoch"):
                train_data.set_epoch(epoch)
            dist.seed_epoch(getattr(train_data, "seed", 0), plan.stage, epoch)  # per rank; no-op on one process
            plan.modes()
            lr = float(opt.param_groups[0]["lr"])  # a device tensor on the fast path
            t0 = time.perf_counter()
            tot = torch.zeros((), device=device)
            ce_sum = torch.zeros((), device=device)
            finite = torch.zeros((), device=device, dtype=torch.long)
            steps = images = 0
            total = len(train_data) if hasattr(train_data, "__len__") else None
            bar = tqdm(train_data, total=total, disable=not progress, leave=False,
                       desc=f"{plan.stage} {epoch + 1}/{cfg.epochs}", dynamic_ncols=True)
            for step, (x, y) in enumerate(bar):
                if plan.delta is not None:  # in place, every step (Alg. 1 line 7)
                    d = plan.delta(epoch, step)
                    fast_step.set_delta(d) if fast_step else set_delta(model, d)
                x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
                if cl and x.dim() == 4:
                    x = x.contiguous(memory_format=torch.channels_last)
                lam = plan.budget.lam if plan.budget is not None else plan.lam
                loss, ce = fast_step(x, y) if fast_step else train_step(net, x, y, opt, lam, plan.loss_form, bf16)
                if plan.budget is not None:
                    plan.budget.update(model)
                tot += loss
                finite += torch.isfinite(tot)
                if every and (step + 1) % every == 0 and not torch.isfinite(tot):
                    raise NonFiniteLossError(plan.stage, epoch, cfg.epochs, int(finite.item()), total, value=tot.item())
                ce_sum += ce
                steps += 1
                images += len(y)
                if progress and step % 20 == 0:
                    bar.set_postfix(loss=f"{loss.item():.3f}")
            bar.close()
            if dist.active():  # the logs: loss averaged over the ranks, images summed
                red = dist.all_sum(torch.stack([tot, ce_sum, torch.tensor(float(images), device=device)]))
                tot, ce_sum, images = red[0] / dist.world(), red[1] / dist.world(), int(red[2].item())
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            if not torch.isfinite(tot):
                raise NonFiniteLossError(plan.stage, epoch, cfg.epochs, int(finite.item()), total, value=tot.item())
            train_s = time.perf_counter() - t0
            sched.step()
            t1 = time.perf_counter()
            low = bf16 or fast_step is not None and fast_step.cfg.autocast  # bf16 runs: bf16 evaluation
            with autocast(device, low and epoch < cfg.epochs - 1):  # but the last, the stage's reported one
                ev = evaluate(model, test_data, device, calib)
                if plan.delta is not None:  # searching: the hard-gated network the pruner derives
                    hard = evaluate(hard_gated(model), test_data, device, calib)
            if not math.isfinite(ev["loss"]):  # finite losses, diverged weights (the last update)
                raise NonFiniteLossError(plan.stage, epoch, cfg.epochs, None, None, "test loss", ev["loss"])
            if size is None or plan.delta is not None:  # the architecture changes only while searching
                size = size_of(model)
            record = {"stage": plan.stage, "epoch": epoch, "lr": lr,
                      "delta": float(gates(model)[0][1].delta) if plan.delta and gates(model) else None,
                      "train_loss": tot.item() / max(steps, 1), "train_ce": ce_sum.item() / max(steps, 1),
                      "test_top1": ev["top1"], "test_top5": ev["top5"], "test_loss": ev["loss"],
                      **({"hard_top1": hard["top1"], "hard_top5": hard["top5"]} if plan.delta is not None else {}),
                      **({"lambda": plan.budget.lam, "budget_shift": plan.budget.path[-1][1],
                          "budget_hard": plan.budget.path[-1][3]}
                         if plan.budget is not None and plan.budget.path else {}),
                      "precise_bn": len(calib) if calib else 0,
                      **_gate_summary(model, hist=plan.delta is not None), **size,
                      "images": images,
                      "seconds": train_s, "eval_seconds": time.perf_counter() - t1}
            history.append(record)
            if log is not None:
                log(record)
            if on_epoch is not None:
                on_epoch(epoch, {"optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                                 "record": record,
                                 "budget": plan.budget.state_dict() if plan.budget is not None else None})
    return history


# --- the stages -----------------------------------------------------------------------------------

def _weights_of(model: nn.Module) -> list[nn.Parameter]:
    arch = {id(p) for p in arch_parameters(model)}
    return [p for p in model.parameters() if id(p) not in arch]


def train_weights(model, train_data, test_data, cfg: StageConfig, **kw) -> list[dict]:
    """Alg. 1 lines 1-4: SS layers off, every weight trained by SGD with weight decay."""
    set_mode(model, "off")
    plan = _Plan("weights", [{"params": _weights_of(model), "weight_decay": cfg.weight_decay}],
                 modes=model.train)
    return _fit(model, train_data, test_data, cfg, plan, **kw)


def _delta_schedule(cfg: StageConfig, search: SearchConfig, train_data) -> DeltaSchedule:
    return DeltaSchedule(max(cfg.epochs, 1), len(train_data), search.delta_start, search.delta_end,
                         search.delta_unit)


def start_search(model: nn.Module, search: SearchConfig = SearchConfig(), reset: bool = True) -> None:
    """Alg. 1 line 5: SS layers on (soft); unless resuming (``reset=False``), s = 0, delta = its
    start and the pruning threshold set."""
    set_mode(model, "soft")
    if reset:
        reset_gates(model)
        set_delta(model, search.delta_start)
        set_threshold(model, search.threshold)


def _budget(model, search: SearchConfig, lam, min_channels: int):
    """The stage's budget projection (None without a target); the target checked first."""
    if search.target is None:
        if lam is None or lam < 0:
            raise ValueError(f"lambda must be >= 0, got {lam}")
        return None
    from ..budget import BudgetController, initial_lambda, resolve_target

    if lam is not None:
        raise ValueError("a lambda and a budget (search.target) exclude each other: with a budget, lambda is "
                         "search.budget_lambda0")
    target = resolve_target(model, search.target_kind, search.target, min_channels)
    return BudgetController(search.target_kind, target, initial_lambda(model, search.loss_form, search.budget_lambda0),
                            min_channels)


def _finish_budget(model, search: SearchConfig, ctl, history: list[dict], resume) -> list[dict]:
    """After a budgeted stage: the repair (dnal_core.budget), and what the budget did, under
    ``"budget"`` in the last record (what final.json reports)."""
    if ctl is None:
        return history
    from ..budget import dense_cost, hard_cost, repair

    repaired = repair(model, ctl.kind, ctl.target, ctl.min_channels)
    reached, dense = hard_cost(model, ctl.kind, ctl.min_channels), dense_cost(model, ctl.kind)
    if not history and resume is not None:  # resumed after the last epoch: its record
        history = [dict(resume["record"])]
    if history:
        history[-1]["budget"] = {
            "kind": ctl.kind, "given": search.target, "target": ctl.target, "dense": dense,
            "reached": reached, "fraction": reached / dense, "of_target": reached / ctl.target,
            "repaired": repaired, "loss_form": search.loss_form, "lambda0": search.budget_lambda0,
            "lambda": ctl.lam, "path": ctl.summary()}
    return history


def train_architecture(model, train_data, test_data, cfg: StageConfig, *, lam: float | None = None,
                       search: SearchConfig = SearchConfig(), resume=None, min_channels: int = 1,
                       **kw) -> list[dict]:
    """Alg. 1 lines 5-8: conv and BN weights frozen; only the architecture parameters s are
    trained by SGD (no weight decay on s, as the authors' code) under CE + lam * sum
    sigmoid(delta s) while delta grows from 1 to 1e4.

    Paper default: every weight frozen, BN included; BN normalises with batch statistics and
    its running statistics stay unchanged (``search.bn_stats="batch"``).
    ``search.bn_stats="running"``: BN in eval mode, on the running statistics of stage 1;
    ``search.bn_stats="update"``: model.train(), running statistics update (authors' code);
    ``search.train_linear``: Linear and BatchNorm1d layers keep training (authors' code).

    With a budget (``search.target_kind``, ``search.target``; no ``lam``) lambda is fixed at
    ``search.budget_lambda0``, s is projected onto the budget after every step
    (``dnal_core.budget``) and the pruned network (``min_channels`` as the pruner
    will be given) ends within [0.90, 1.03] x target; the last record's ``"budget"`` says how.
    """
    if not gates(model):
        raise ValueError("the model has no SS gates to search")
    ctl = _budget(model, search, lam, min_channels)
    start_search(model, search, reset=resume is None)
    groups = [{"params": list(arch_parameters(model)), "weight_decay": 0.0}]
    if search.train_linear:
        lin = [p for m in model.modules() if isinstance(m, (nn.Linear, nn.BatchNorm1d))
               for p in m.parameters(recurse=False)]
        groups.append({"params": lin, "weight_decay": cfg.weight_decay})

    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]

    def modes():
        model.train()
        for m in bns:
            if search.bn_stats == "running":
                m.eval()
            elif search.bn_stats == "batch":  # batch statistics, running ones neither read nor written
                m.track_running_stats = False

    plan = _Plan("arch", groups, modes, lam, search.loss_form, _delta_schedule(cfg, search, train_data), ctl)
    try:
        history = _fit(model, train_data, test_data, cfg, plan, resume=resume, **kw)
    finally:
        for m in bns:
            m.track_running_stats = m.running_mean is not None
    return _finish_budget(model, search, ctl, history, resume)


def train_joint(model, train_data, test_data, cfg: StageConfig, *, lam: float | None = None,
                search: SearchConfig = SearchConfig(), resume=None, min_channels: int = 1, **kw) -> list[dict]:
    """Fig. 5's joint strategy: from the start, weights (with weight decay) and s (without) are
    trained together under CE + sparsity while delta grows as in the architecture stage (with a
    budget, as ``train_architecture``)."""
    ctl = _budget(model, search, lam, min_channels)
    start_search(model, search, reset=resume is None)
    groups = [{"params": _weights_of(model), "weight_decay": cfg.weight_decay},
              {"params": list(arch_parameters(model)), "weight_decay": 0.0}]
    plan = _Plan("joint", groups, model.train, lam, search.loss_form,
                 _delta_schedule(cfg, search, train_data), ctl)
    return _finish_budget(model, search, ctl, _fit(model, train_data, test_data, cfg, plan, resume=resume, **kw),
                          resume)


def hard_gated(model: nn.Module, search: SearchConfig | None = None) -> nn.Module:
    """A deep copy of ``model`` with every gate hard (x * 1[sigmoid(delta s) > threshold]);
    ``search.threshold``, when given, overrides the threshold stored in the gates."""
    net = copy.deepcopy(model)
    if search is not None:
        set_threshold(net, search.threshold)
    set_mode(net, "hard")
    return net


def derive_network(model: nn.Module, search: SearchConfig | None = None,
                   min_channels: int = 1, round_to: int = 1, bn_batches: Iterable | None = None):
    """Alg. 1 lines 9-10: prune the channels whose hard gate is closed and drop the SS layers.

    Returns the ``dnal_core.prune.PruneResult``: ``.model`` is a plain network with fewer
    channels that computes, in eval mode, what the hard-gated network computes (the pruner
    checks it and raises otherwise); ``.report`` says what ``min_channels``/``round_to`` did.
    ``bn_batches`` (precise BN): the hard-gated network's BN statistics are re-estimated on
    them first, so the pruned network is the one the stage's ``hard_top1`` measured. It matters
    for ``conv-ss-bn-relu``, where a closed channel still emits BN's output for a zero input,
    a constant the pruner folds into the next layer's bias: with the weight stage's statistics
    that constant is act(beta - mean * gamma / std), with re-estimated ones act(beta).
    """
    from ..prune import prune  # the pruner imports the models; keep train importable without it
    from .bn import recalibrate_bn

    net = hard_gated(model, search)
    if bn_batches is not None:
        recalibrate_bn(net, bn_batches)
    return prune(net, min_channels=min_channels, round_to=round_to)


def finetune(model, train_data, test_data, cfg: StageConfig, **kw) -> list[dict]:
    """Alg. 1 line 11: every weight of the derived network trained by SGD with weight decay;
    gates (if any: a hard-gated network instead of a pruned one) keep their mode and their s
    stays fixed."""
    plan = _Plan("finetune", [{"params": _weights_of(model), "weight_decay": cfg.weight_decay}],
                 modes=model.train)
    return _fit(model, train_data, test_data, cfg, plan, **kw)
