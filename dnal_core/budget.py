"""A budget instead of a lambda: the cost model of the cost-aware sparsity term and the controller
that steers the architecture stage to a requested number of MACs or parameters.

**The cost-aware term** (loss forms ``expected-macs`` and ``expected-params``, beside eq. 4's
``paper`` and the authors' ``code``; ``dnal_core.loss``): ``lam * C(v) / C_dense``, where v_j = sigmoid(delta s_j)
are the gate values and C the cost polynomial of ``dnal_core.prune.cost``: the MACs (params) of
the network the pruner would cut, each conv costing (open inputs) x (open outputs) x its
kernel and map size. At 0/1 gates C is the exact ``dnal_core.count`` of the pruned network, so a
channel is worth what removing it saves: more in a wide early layer than in a late one.

**The budget** (``SearchConfig.target_kind`` "macs" or "params" and ``target``: a fraction of
the dense count when below 1, an absolute count otherwise). The sparsity term keeps a fixed
lambda (``budget_lambda0``, in the units of the cost-aware term), and the budget is a constraint
that holds after every step: a projection. After each SGD step one scalar b is subtracted from
every s,

    s_j <- s_j - b,   b = the smallest shift whose hard gates give a pruned cost <= target,

found by bisection over the gates' margins s_j - logit(threshold) / delta (a gate is open when
its margin is above b; closing gates never raises the cost, so the cost falls monotonically in
b). b is the budget's multiplier solved exactly each step, rather than integrated: it is the
step a penalty b / lr x sum_j s_j would take in plain SGD, with the one strength that puts the
pruned network at the budget. The gradient of CE and of the cost-aware term decides the order
of the channels (which are worth keeping for what they cost); the shift, how many stay open.
As delta grows the gates become binary around the same boundary, so the network the pruner
derives is at the budget when the stage ends: within one channel below it. An earlier design,
dual ascent on lambda from the measured cost, did not settle at the ``cpu`` profile (lambda
swung from 1 to -15 and +21 in 213 steps while delta froze the gates it had closed; the record
is ``benchmarks/results/budget_controller_cpu.json``): the gates respond with a lag that grows
with delta, and an integrating controller overshoots them. The one knob is ``budget_lambda0``
(default 1.0): how hard the cost-aware term pulls expensive channels down relative to CE (0:
CE alone orders the channels); with the ``paper``/``code`` forms it is divided by the number of
gated channels, so that both forms start with the same pull on the average channel.

**The repair.** The projection leaves the cost at most the target, but a closed channel can be
expensive (one channel of VGG16's first layers is 7% of a 10% budget at quarter width), so the
stage may end under ``BELOW x target``; and float rounding of sigmoid(delta s) at the
boundary can leave it a hair above. Outside the bounds ``[BELOW, ABOVE] x target`` =
[0.90, 1.03], a deterministic greedy step changes single
gates until it is inside: above the budget it closes the open channel with the smallest s per
cost saved (the channel the search valued least for what it costs), one at a time, until the
cost is at most the target; below it opens the closed channel with the largest s (the search's
own preference) whose cost keeps the total at most the target, until it is at least 0.97 x target.
Closing writes s = min(s, (logit(threshold) - 1) / delta), opening s = max(s, (logit(threshold)
+ 1) / delta): the hard gates then say what was chosen. ``final.json`` records how many gates it
changed (``budget.repaired``); 0 when the controller alone landed inside.

A target below what ``min_channels`` leaves (every gate closed, each kept layer at its
``min_channels`` best channels), or above the dense count, is refused before training.
Networks without a cost description (``Family.cost``: the CIFAR families, MobileNetV2 on
ImageNet and ``attach_gates`` networks (``prune.generic_cost``); not yet VGG16/ResNet50 on
ImageNet or the supernet) are refused with one line naming the model.
"""
from __future__ import annotations

import functools
import math
import weakref
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from torch import nn

from .gate import gates

KINDS = ("macs", "params")
BELOW, ABOVE = 0.90, 1.03   # the pruned network's cost must lie in [BELOW, ABOVE] x target
PATH_POINTS = 100           # final.json keeps at most this many points of the lambda path
_CACHE: "weakref.WeakKeyDictionary[nn.Module, object]" = weakref.WeakKeyDictionary()


def cost_model(model: nn.Module):
    """The ``prune.cost.CostModel`` of a gated ``model`` (built once per model object)."""
    from .prune.cost import build_cost_model
    from .prune.registry import family_of

    cm = _CACHE.get(model)
    if cm is None:
        if not gates(model):
            raise ValueError(f"{getattr(model, 'name', type(model).__name__)} has no SS gates: it has no gated cost")
        try:
            fam = family_of(model)
        except ValueError:
            fam = None
        if fam is None or fam.cost is None:
            raise ValueError(f"{getattr(model, 'name', type(model).__name__)}: no cost description for its "
                             "family (budgets and the expected-macs/params loss forms cover the CIFAR models, "
                             "mobilenetv2-imagenet and attach_gates networks)")
        cm = _CACHE[model] = build_cost_model(model, fam.cost(model))
    return cm


def gate_values(model: nn.Module) -> list[torch.Tensor]:
    """sigmoid(delta s) of every gate (differentiable in s)."""
    return [g.probs() for _, g in gates(model)]


def expected_cost(model: nn.Module, kind: str = "macs", values: list[torch.Tensor] | None = None) -> torch.Tensor:
    """The cost polynomial at ``values`` (default: the soft gate values), a 0-d tensor."""
    if kind not in KINDS:
        raise ValueError(f"unknown cost kind {kind!r}; valid: {', '.join(KINDS)}")
    return cost_model(model).evaluate(gate_values(model) if values is None else values, kind)


def dense_cost(model: nn.Module, kind: str = "macs") -> int:
    return int(cost_model(model).dense[kind])


@torch.no_grad()
def hard_cost(model: nn.Module, kind: str = "macs", min_channels: int = 1) -> int:
    """The exact cost of the network the pruner derives from the hard gates now."""
    from .prune.policy import keep_masks

    keep = keep_masks(model, min_channels=min_channels).keep
    return int(round(float(expected_cost(model, kind, [k.double() for k in keep]))))


@torch.no_grad()
def min_cost(model: nn.Module, kind: str = "macs", min_channels: int = 1) -> int:
    """A lower bound of the cost the pruner can reach: every gate closed, each kept layer at
    ``min_channels`` channels (MobileNetV2: the blocks of a stage keeping the same positions)."""
    with _shifted(model, math.inf):  # sigmoid(delta * -inf) = 0: every hard gate closed, whatever delta
        return hard_cost(model, kind, min_channels)


# --- targets ----------------------------------------------------------------------------------

def resolve_target(model: nn.Module, kind: str, target: float, min_channels: int = 1) -> int:
    """The absolute cost a target means on ``model`` (a fraction of the dense count below 1, a
    count otherwise); ValueError when the pruner cannot reach it."""
    dense = dense_cost(model, kind)
    absolute = target * dense if target < 1 else target
    name = getattr(model, "name", type(model).__name__)
    if absolute > dense:
        raise ValueError(f"target {kind} {target:g} exceeds the dense {name}'s {dense:,}")
    low = min_cost(model, kind, min_channels)
    if ABOVE * absolute < low:
        raise ValueError(f"target {kind} {target:g} ({absolute:,.0f}) is unreachable: with min_channels="
                         f"{min_channels} the smallest {name} the pruner leaves has {low:,} ({low / dense:.3f} "
                         "of dense)")
    return int(round(absolute))


def parse_target(text: str) -> float:
    """A budget as the command line gives it: a fraction of the dense count (0 < X < 1, e.g.
    ``0.3``) or an absolute count >= 1000 (``25M``, ``1.5e6``, ``800k``, ``2G``)."""
    raw = str(text).strip()
    mult = {"k": 1e3, "K": 1e3, "M": 1e6, "G": 1e9}.get(raw[-1:], 1.0)
    num = raw[:-1] if mult != 1.0 else raw
    try:
        x = float(num) * mult
    except ValueError:
        raise ValueError(f"target {raw!r} is not a number (a fraction like 0.3 or a count like 25M, 1.5e6, "
                         "800k)") from None
    if not math.isfinite(x) or x <= 0:
        raise ValueError(f"target {raw!r} must be a fraction in (0, 1) or a count >= 1000")
    if 1 <= x < 1000:
        raise ValueError(f"target {raw!r} is neither a fraction of the dense count (< 1) nor a plausible "
                         "absolute count (>= 1000)")
    return x


# --- the controller ---------------------------------------------------------------------------

@contextmanager
def _shifted(model: nn.Module, b: float):
    """Every s lowered by ``b`` inside the block, restored exactly on exit."""
    named = [g for _, g in gates(model)]
    saved = [g.s.detach().clone() for g in named]
    try:
        with torch.no_grad():
            for g in named:
                g.s.sub_(b)
        yield
    finally:
        with torch.no_grad():
            for g, s in zip(named, saved):
                g.s.copy_(s)


@torch.no_grad()
def budget_shift(model: nn.Module, kind: str, target: float, min_channels: int = 1) -> tuple[float, int]:
    """The shift b of the projection (module docstring) and the pruned cost after s -= b: the
    gates open are those whose margin s - logit(threshold) / delta exceeded b, and the cost is
    the largest one at or under ``target`` that a single shift can give (every gate closed when
    even the highest-margin gate alone is over it)."""
    margins = torch.cat([g.s.detach().double().cpu() - _logit(float(g.threshold)) / float(g.delta)
                         for _, g in gates(model)])
    u = torch.unique(margins).flip(0).tolist()  # distinct margins, highest first

    def shift(i: int) -> float:  # open every gate with margin >= u[i]; -1: none open
        if i < 0:
            return u[0] + 1.0
        return (u[i] + u[i + 1]) / 2 if i + 1 < len(u) else u[-1] - 1.0

    @functools.cache
    def cost(i: int) -> int:
        with _shifted(model, shift(i)):
            return hard_cost(model, kind, min_channels)

    lo, hi = -1, len(u) - 1  # cost(lo) <= target is assumed (resolve_target); find the largest such i
    if cost(hi) <= target:
        return shift(hi), cost(hi)
    while hi - lo > 1:  # invariant: cost(lo) <= target < cost(hi)
        mid = (lo + hi) // 2
        if cost(mid) <= target:
            lo = mid
        else:
            hi = mid
    return shift(lo), cost(lo)  # measured during the bisection (the same s - b), except lo = -1


@dataclass
class BudgetController:
    """The budget's projection (module docstring): ``update`` after every step shifts s so that
    the pruned cost is at most ``target``; lambda (the cost-aware term's) stays fixed."""
    kind: str
    target: int               # absolute
    lam: float                # the sparsity term's lambda, fixed (initial_lambda of budget_lambda0)
    min_channels: int = 1
    step_count: int = 0
    path: list = field(default_factory=list)  # (step, shift, cost after the SGD step, after the shift)

    @torch.no_grad()
    def update(self, model: nn.Module) -> float:
        """After a step: project, record; returns the lambda of the next step (unchanged)."""
        before = hard_cost(model, self.kind, self.min_channels)
        b, after = budget_shift(model, self.kind, self.target, self.min_channels)
        for _, g in gates(model):
            g.s.sub_(b)  # the same float operation _shifted measured ``after`` with
        self.path.append((self.step_count, b, before, after))
        self.step_count += 1
        return self.lam

    def state_dict(self) -> dict:
        return {"lam": self.lam, "step_count": self.step_count, "path": [list(p) for p in self.path]}

    def load_state_dict(self, st: dict) -> None:
        self.lam, self.step_count = float(st["lam"]), int(st["step_count"])
        self.path = [tuple(p) for p in st["path"]]

    def summary(self) -> list[dict]:
        """The path, at most PATH_POINTS points (evenly subsampled, the last one kept): the shift
        of each step and the pruned cost before and after it."""
        n = len(self.path)
        idx = sorted({round(i * (n - 1) / (PATH_POINTS - 1)) for i in range(PATH_POINTS)}) if n > PATH_POINTS \
            else range(n)
        return [{"step": self.path[i][0], "shift": self.path[i][1], "before": self.path[i][2],
                 "hard": self.path[i][3]} for i in idx]


def initial_lambda(model: nn.Module, loss_form: str, lam0: float) -> float:
    """``lam0`` in the units of ``loss_form``: the cost-aware forms are normalised by the dense
    cost; eq. 4 and the code's form sum over channels, so there it is divided by their number."""
    if loss_form.startswith("expected-"):
        return lam0
    return lam0 / sum(g.channels for _, g in gates(model))


# --- the repair -------------------------------------------------------------------------------

def _logit(p: float) -> float:
    return math.log(p / (1 - p))


@torch.no_grad()
def repair(model: nn.Module, kind: str, target: int, min_channels: int = 1) -> int:
    """Open or close single gates (module docstring) until the pruned cost lies in
    [BELOW, ABOVE] x ``target``; returns how many gates changed. RuntimeError if it cannot."""
    from .prune.policy import keep_masks

    named = [g for _, g in gates(model)]
    changed = 0
    limit = 4 * sum(g.channels for g in named) + 10
    for _ in range(limit):
        cost = hard_cost(model, kind, min_channels)
        inside = BELOW * target <= cost <= ABOVE * target
        if inside and changed == 0:
            return 0
        closing = cost > target
        if not closing and cost >= 0.97 * target:
            return changed
        keep = keep_masks(model, min_channels=min_channels).keep
        vals = [k.double().requires_grad_(True) for k in keep]
        with torch.enable_grad():
            grads = torch.autograd.grad(expected_cost(model, kind, vals), vals)
        cands = []  # closing: smallest s per cost saved first; opening: largest s first
        for gi, (g, k, gr) in enumerate(zip(named, keep, grads)):
            s = g.s.detach().double().cpu()
            for j in range(g.channels):
                c = float(gr[j])  # the cost of channel j (first order; exact where it enters once)
                if bool(k[j]) == closing and c > 0:
                    cands.append(((float(s[j]) / c, j) if closing else (-float(s[j]), c), gi, j))
        cands.sort()
        done = False
        for _, gi, j in cands:
            g = named[gi]
            old = float(g.s[j])
            d, th = float(g.delta), float(g.threshold)
            g.s[j] = min(old, (_logit(th) - 1) / d) if closing else max(old, (_logit(th) + 1) / d)
            new = hard_cost(model, kind, min_channels)
            if (closing and new < cost) or (not closing and cost < new <= target):
                changed += 1
                done = True
                break
            g.s[j] = old  # no effect (min_channels) or over the budget: try the next one
        if not done:
            if inside:
                return changed
            raise RuntimeError(f"budget repair: no single gate brings {kind} {cost:,} toward the target "
                               f"{target:,}")
    raise RuntimeError(f"budget repair did not converge after {limit} changes")
