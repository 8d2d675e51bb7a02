"""The scaled-sigmoid (SS) channel gate and the delta schedule (the sparsity loss that pulls
the gates shut is ``dnal_core.loss``).

Paper, Section III-C: every gated channel j carries one architecture parameter s_j and
is multiplied by p_j = sigmoid(delta * s_j). As delta grows from 1 to 1e4 the gate
becomes the binary function 1[s_j > 0] (eq. 3), and a channel whose gate is 0 can be
removed without changing the network's output. ``DeltaSchedule`` gives delta for each step
of the architecture stage, in one of three forms (``SCHEDULE_UNITS``).

Three modes, one per stage of Alg. 1:
  ``off``  identity: the weight stage (lines 1-4) and the finetune stage (lines 10-11);
  ``soft`` x * sigmoid(delta * s): the architecture stage (lines 5-8);
  ``hard`` x * 1[sigmoid(delta * s) > threshold]: what the pruner reads (line 9).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterator

import torch
from torch import nn

MODES = ("off", "soft", "hard")
# The delta schedule's forms (DeltaSchedule): "iteration" grows every step (our default);
# "epoch-paper" is Alg. 1 (delta indexed by epoch, delta_1 = 1); "epoch-code" the authors' code
# (10^(4(k+1)/E), never 1). "epoch" is the name config files stored before "epoch-paper"
# existed: it stays the code's form.
SCHEDULE_UNITS = ("iteration", "epoch-paper", "epoch-code", "epoch")
_UNIT_ALIASES = {"epoch": "epoch-code"}

# Paper, eq. 2: binary(s) = 1 if s > 0, i.e. sigmoid(delta*s) > 0.5. The authors' code keeps
# a channel where sigmoid(delta*s) > 0.9 (notes/official-code.md); pass threshold=0.9 for that.
PAPER_THRESHOLD = 0.5
CODE_THRESHOLD = 0.9


class SSGate(nn.Module):
    """Per-channel gate ``x * sigmoid(delta * s)`` over dimension 1 of its input.

    ``delta`` and ``threshold`` are 0-d tensor buffers: they travel in the state_dict, and
    ``delta`` is updated in place (``set_delta``), so changing it never changes a compiled
    graph's guards or a captured CUDA graph's addresses.
    """

    def __init__(self, channels: int, threshold: float = PAPER_THRESHOLD):
        super().__init__()
        if channels < 1:
            raise ValueError(f"SSGate needs at least one channel, got {channels}")
        self.s = nn.Parameter(torch.zeros(channels))
        self.register_buffer("delta", torch.ones(()))
        self.register_buffer("threshold", torch.tensor(float(threshold)))
        self.mode = "off"

    @property
    def channels(self) -> int:
        return self.s.numel()

    def extra_repr(self) -> str:
        return f"{self.channels}, mode={self.mode!r}, threshold={float(self.threshold):g}"

    def probs(self) -> torch.Tensor:
        """sigmoid(delta * s), shape (C,)."""
        return torch.sigmoid(self.delta * self.s)

    def keep(self) -> torch.Tensor:
        """Boolean mask of the channels a hard gate keeps, shape (C,)."""
        return self.probs().detach() > self.threshold

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mode == "off":
            return x
        if self.mode == "soft":
            g = self.probs()
        elif self.mode == "hard":
            g = self.keep()
        else:  # guarded by set_mode; kept for direct attribute writes
            raise ValueError(f"unknown SS mode {self.mode!r}; valid: {', '.join(MODES)}")
        shape = (1, -1) + (1,) * (x.dim() - 2)  # (1, C, 1, 1) for NCHW, (1, C) for NC
        return x * g.to(x.dtype).view(shape)


# --- whole-model helpers ------------------------------------------------------------------

def gates(model: nn.Module) -> list[tuple[str, SSGate]]:
    """Every SS gate of ``model`` as (qualified name, module), in registration order."""
    return [(n, m) for n, m in model.named_modules() if isinstance(m, SSGate)]


def arch_parameters(model: nn.Module) -> Iterator[nn.Parameter]:
    """The architecture parameters s of every gate (the only thing stage 2 trains)."""
    for _, g in gates(model):
        yield g.s


def set_mode(model: nn.Module, mode: str) -> None:
    if mode not in MODES:
        raise ValueError(f"unknown SS mode {mode!r}; valid: {', '.join(MODES)}")
    for _, g in gates(model):
        g.mode = mode


def set_delta(model: nn.Module, delta: float) -> None:
    """Write delta into every gate's buffer in place: one ``fill_`` with a Python float per gate
    (the value travels as a kernel argument: no new tensor, no host-to-device copy, no sync, no
    recompile of a compiled model)."""
    value = float(delta)
    with torch.no_grad():
        for _, g in gates(model):
            g.delta.fill_(value)


def set_threshold(model: nn.Module, threshold: float) -> None:
    if not 0.0 < threshold < 1.0:
        raise ValueError(f"threshold must lie in (0, 1), got {threshold}")
    with torch.no_grad():
        for _, g in gates(model):
            g.threshold.fill_(float(threshold))


def reset_gates(model: nn.Module) -> None:
    """Alg. 1 line 5: s = 0 for every gate, so every gate starts at sigmoid(0) = 0.5."""
    with torch.no_grad():
        for _, g in gates(model):
            g.s.zero_()


def open_counts(model: nn.Module) -> list[int]:
    """Channels each hard gate keeps, in ``gates`` order."""
    return [int(g.keep().sum()) for _, g in gates(model)]


def gate_probs(model: nn.Module) -> torch.Tensor:
    """All gate values sigmoid(delta*s), concatenated (for histograms, Fig. 3)."""
    return torch.cat([g.probs().detach().flatten() for _, g in gates(model)])


# --- the delta schedule -------------------------------------------------------------------

@dataclass(frozen=True)
class DeltaSchedule:
    """Exponential (geometric) growth of delta from ``start`` to ``end`` over the
    architecture stage (Section III-C: delta_0 = 1, max(delta) = 1e4), in one of three forms;
    for E epochs of S steps, epoch k = 0..E-1, and start=1, end=1e4:

    ``unit="iteration"`` (default, a smooth reading of the paper): delta changes every step,
    1 at the stage's first step and 1e4 at its last, 10^(4t/(ES-1)) at step t = kS + s.
    ``unit="epoch-paper"`` (Alg. 1, which indexes delta by epoch with delta_1 = 1): constant
    within an epoch, 10^(4k/(E-1)): 1 in the first epoch, 1e4 in the last (1e4 when E = 1).
    ``unit="epoch-code"`` (the authors' code; ``"epoch"`` is the same, the name older config
    files hold): constant within an epoch, 10^(4(k+1)/E): never exactly 1 (10^(4/E) in the
    first epoch), 1e4 in the last.
    """

    epochs: int
    steps_per_epoch: int
    start: float = 1.0
    end: float = 1e4
    unit: str = "iteration"

    def __post_init__(self):
        if self.unit not in SCHEDULE_UNITS:
            raise ValueError(f"unknown delta schedule unit {self.unit!r}; valid: {', '.join(SCHEDULE_UNITS)}")
        if self.epochs < 1 or self.steps_per_epoch < 1:
            raise ValueError("a delta schedule needs at least one epoch and one step per epoch")
        if not 0 < self.start <= self.end < math.inf:
            raise ValueError(f"delta must grow from a positive start to a finite end: got {self.start} -> {self.end}")

    def __call__(self, epoch: int, step: int = 0) -> float:
        """delta for ``step`` (0-based, within the epoch) of ``epoch`` (0-based)."""
        log_ratio = math.log(self.end / self.start)
        unit = _UNIT_ALIASES.get(self.unit, self.unit)
        if unit == "epoch-code":
            frac = (epoch + 1) / self.epochs
        elif unit == "epoch-paper":
            frac = 1.0 if self.epochs == 1 else epoch / (self.epochs - 1)
        else:
            total = self.epochs * self.steps_per_epoch
            t = epoch * self.steps_per_epoch + step
            frac = 1.0 if total == 1 else t / (total - 1)
        frac = min(max(frac, 0.0), 1.0)
        return float(self.start * math.exp(log_ratio * frac))
