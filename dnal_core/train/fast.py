"""The fast path of the per-step code, for one CUDA GPU (issue 7).

At the paper's batch sizes (VGG16 128, ResNet56 64) a CIFAR step is launch-bound: the GPU waits
on Python and on hundreds of small kernel launches (notes/anchors.md). ``FastStep`` runs the
same step as ``stages.train_step`` (CE + the sparsity term of eq. 4, backward, one SGD step)
with
  * bf16 autocast (``cache_enabled=False``: the autocast weight cache must not live across a
    CUDA-graph capture) and channels_last weights and inputs;
  * the whole step (forward, backward, SGD update) captured once per stage in a CUDA graph
    (``torch.cuda.graph``) and replayed every step: one launch instead of hundreds;
  * every per-step value a device tensor updated in place, so the captured graph stays valid:
    the learning rate is a 0-d tensor in the optimizer (fused SGD reads it on the device; the
    LR schedulers ``fill_`` it), and delta is one master tensor (``set_delta``,
    one ``fill_``) that the graph copies into every gate's ``delta`` buffer;
  * optionally ``torch.compile`` of the model (``FastConfig.compile``: a backend name) under
    the graph. Off by default: the anchors measured no gain from default-mode compile, and a
    captured graph does not need it to remove launch overhead.

What is fixed when a stage's graph is captured: the parameters that train (requires_grad), the
gate modes, BN train/eval and ``track_running_stats``, lambda, the batch shape. They are fixed
within a stage of ``_fit`` and each stage (and each resume) makes a new ``FastStep``: one
capture per stage, 3 per sequential run (weights, arch, finetune on the pruned net), 0
``torch.compile`` compiles unless ``FastConfig.compile`` is set (then one per stage as well).
A batch of another shape than the captured one runs eagerly (same code, no graph).

On the CPU ``_fit`` uses the eager ``train_step`` unless asked for ``fast=True``; ``FastStep``
then runs without CUDA graphs (autocast to bf16 and channels_last still apply), which is how the
tests check it on machines without a GPU.

Also here, for every path of the per-step code: ``NonFiniteLossError`` (``_fit`` stops a stage
on a NaN or infinite loss; ``dnal run`` exits with code 3), ``normalise_eager_optimizer`` (a
checkpoint the fast path wrote, resumed eagerly) and ``set_cudnn`` (one cuDNN setting for
``dnal run`` and the benchmark).
"""
from __future__ import annotations

from contextlib import contextmanager, nullcontext
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..gate import gates
from ..loss import sparsity_loss

# [the default of ``use_fast`` on CUDA, the FastConfig that _fit's FastStep uses (None: defaults)]
_PREFER: list = [True, None]


@contextmanager
def prefer_fast(on: bool, config: "FastConfig | None" = None):
    """Within the block, stages called without ``fast=`` take the fast path on CUDA iff ``on``
    (``dnal run --eager`` is ``prefer_fast(False)``), and a FastStep built without a config uses
    ``config`` (e.g. ``FastConfig(compile="inductor")`` in benchmarks/epoch_time.py)."""
    old = list(_PREFER)
    _PREFER[:] = [bool(on), config]
    try:
        yield
    finally:
        _PREFER[:] = old


def use_fast(fast: bool | None, device: torch.device) -> bool:
    """``fast=None``: the fast path on CUDA (unless ``prefer_fast(False)``), eager on the CPU and
    under DDP (each rank would need its own graph around the all-reduce; not done yet)."""
    try:
        from . import dist  # noqa: PLC0415  (the DDP helper's module)
        if dist.active():
            return False
    except ImportError:
        pass
    if fast is None:
        return _PREFER[0] and device.type == "cuda"
    return bool(fast)


class NonFiniteLossError(RuntimeError):
    """A NaN or infinite loss: the stage stops at once (nothing of the bad epoch is written; the
    last good epoch's checkpoint stays). ``stage``, ``epoch`` and ``step`` (0-based; ``step`` None
    when the loss is an evaluation's) name where; ``dnal run`` reports it in one line, exit 3."""

    def __init__(self, stage: str, epoch: int, epochs: int, step: int | None, steps: int | None,
                 what: str = "training loss", value: float = float("nan")):
        self.stage, self.epoch, self.step, self.what, self.value = stage, epoch, step, what, value
        at = f", step {step + 1}" + (f"/{steps}" if steps else "") if step is not None else ""
        super().__init__(f"non-finite {what} ({value}) in the {stage} stage, epoch {epoch + 1}/{epochs}{at}: "
                         "stopped; the checkpoint of the last good epoch is kept (lower the learning rate "
                         "or lambda and start again)")


def normalise_eager_optimizer(opt: torch.optim.Optimizer, sched=None) -> None:
    """Undo ``_pin_optimizer`` on an optimizer loaded from a checkpoint (the fast path writes
    fused=True, a tensor learning rate and momentum buffers in the channels_last layout), so that
    an eager resume (``--eager``, the CPU, torchrun) trains exactly as a freshly made eager
    optimizer with the same numbers would: float learning rates, ``fused``/``foreach`` as the
    optimizer was made (its ``defaults``), every state tensor in its parameter's layout. Without
    it the CPU's fused SGD silently computes a wrong update when the strides differ (issue 15).
    Call it after the model's layout is final."""
    for g in opt.param_groups:
        for k in ("lr", "initial_lr"):
            if isinstance(g.get(k), torch.Tensor):
                g[k] = float(g[k])
        for k in ("fused", "foreach"):
            if k in opt.defaults:
                g[k] = opt.defaults[k]
        for p in g["params"]:
            st = opt.state.get(p, {})
            for k, v in st.items():
                if isinstance(v, torch.Tensor) and v.shape == p.shape and v.stride() != p.stride():
                    st[k] = torch.empty_like(p).copy_(v)  # empty_like keeps p's strides
    if sched is not None and hasattr(sched, "_last_lr"):
        sched._last_lr = [float(x) for x in sched._last_lr]


# steps between two checks of the running training loss on the CPU (one process): reading a CPU
# scalar costs microseconds against milliseconds a step. On CUDA (and under torchrun) the check
# is at the epoch's end only, with the first bad step counted on the device (no sync a step).
FINITE_CHECK_EVERY = 1

CUDNN_BENCHMARK = True  # cuDNN picks the fastest kernels for the fixed training shapes


def set_cudnn(device) -> None:
    """The cuDNN setting for training on ``device``, the same in ``dnal run`` (both paths) and
    benchmarks/epoch_time.py (both modes): ``cudnn.benchmark = CUDNN_BENCHMARK`` on CUDA."""
    if device in (None, "auto"):  # as resolve_device: CUDA when available
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if torch.device(device).type == "cuda":
        torch.backends.cudnn.benchmark = CUDNN_BENCHMARK


def _pin_optimizer(opt: torch.optim.Optimizer, device: torch.device) -> None:
    """Make ``opt`` (SGD) capturable: each group's learning rate a 0-d tensor on ``device`` and
    the fused update, which reads it there. A captured step then sees every LR the scheduler
    writes (LR schedulers ``fill_`` a tensor LR in place) and no ``.item()`` syncs the device.
    Done here rather than at construction so that a resumed optimizer (its groups loaded from
    a checkpoint, eager or fast) is pinned as well; its momentum buffers take their parameter's
    layout (channels_last), as the fused multi-tensor kernel expects of every tensor it walks."""
    for g in opt.param_groups:
        lr = g["lr"]
        if not (isinstance(lr, torch.Tensor) and lr.device == device):
            g["lr"] = torch.tensor(float(lr), device=device)
        g["fused"], g["foreach"] = True, False
        for p in g["params"]:
            st = opt.state.get(p, {})
            for k, v in st.items():
                if isinstance(v, torch.Tensor) and v.shape == p.shape and v.stride() != p.stride():
                    st[k] = torch.empty_like(p).copy_(v)  # empty_like keeps p's strides


def autocast(device: torch.device, enabled: bool = True):
    """bf16 autocast on ``device`` (a no-op context when not ``enabled``)."""
    if not enabled:
        return nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16, cache_enabled=False)


@dataclass(frozen=True)
class FastConfig:
    """What the fast path switches on. Defaults: everything but ``compile``."""
    autocast: bool = True           # bf16 autocast for forward and loss (BN statistics stay fp32)
    channels_last: bool = True      # NHWC weights and inputs (tensor-core friendly convolutions)
    cuda_graph: bool = True         # capture the whole step once per stage (CUDA only)
    warmup: int = 3                 # eager steps on a side stream before the capture (PyTorch docs)
    compile: object = None          # None, or a torch.compile backend ("inductor", "aot_eager", ...)

    def __post_init__(self):
        # warmup 0 would capture the first step: the optimizer has no momentum buffer yet, so the
        # graph would bake "no momentum" in (SGD takes another branch on its first step)
        if isinstance(self.warmup, bool) or not isinstance(self.warmup, int) or self.warmup < 1:
            raise ValueError(f"FastConfig.warmup must be an integer >= 1, got {self.warmup!r}")


class FastStep:
    """``step(x, y) -> (loss, ce)``: one SGD step, as ``train_step(model, x, y, optimizer, lam,
    loss_form)`` computes it. The returned tensors are detached; on a replayed graph they are
    the graph's static outputs, overwritten by the next step (accumulate them before that).
    """

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, lam: float | None = None,
                 loss_form: str = "paper", config: FastConfig | None = None):
        config = config or _PREFER[1] or FastConfig()
        self.model, self.opt, self.lam, self.loss_form, self.cfg = model, optimizer, lam, loss_form, config
        self.device = next(model.parameters()).device
        self.graphs = config.cuda_graph and self.device.type == "cuda"
        if config.channels_last:
            model.to(memory_format=torch.channels_last)
        _pin_optimizer(optimizer, self.device)  # after the layout change: state follows the params
        self.forward = torch.compile(model, backend=config.compile, dynamic=False) if config.compile else model
        self.deltas = [g.delta for _, g in gates(model)]
        # one master delta; the step copies it into every gate (inside the graph: no launch each)
        self.delta = self.deltas[0].detach().clone() if self.deltas else None
        self.graph = None
        self.shape = None
        self.warm = 0
        self.captures = 0  # CUDA graphs captured by this step (one per stage unless shapes vary)

    def set_delta(self, value: float) -> None:
        """delta for the next step(s): one in-place fill of the master tensor, no host copy."""
        if self.delta is None:
            raise ValueError("the model has no SS gates")
        self.delta.fill_(float(value))

    def _body(self, x: torch.Tensor, y: torch.Tensor):
        if self.delta is not None:
            with torch.no_grad():
                for d in self.deltas:
                    d.copy_(self.delta)
        with autocast(self.device, self.cfg.autocast):
            out = self.forward(x)
        ce = F.cross_entropy(out.float(), y)
        loss = ce + sparsity_loss(self.model, self.lam, self.loss_form) if self.lam is not None else ce
        loss.backward()
        self.opt.step()
        return loss.detach(), ce.detach()

    def __call__(self, x: torch.Tensor, y: torch.Tensor):
        if self.cfg.channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        if not self.graphs:
            self.opt.zero_grad(set_to_none=True)
            return self._body(x, y)
        # everything on the model's device: its current stream, side streams, the capture and
        # every replay (``--device cuda:1`` while cuda:0 is the current device)
        with torch.cuda.device(self.device):
            return self._cuda_step(x, y)

    def _cuda_step(self, x: torch.Tensor, y: torch.Tensor):
        if self.graph is not None:
            if (x.shape, y.shape) == self.shape:
                self.sx.copy_(x)
                self.sy.copy_(y)
                self.graph.replay()
                return self.out
            # another batch shape (a last partial batch): eager; the graph owns the .grad
            # tensors, so they are zeroed in place rather than dropped
            self.opt.zero_grad(set_to_none=False)
            return self._body(x, y)
        current = torch.cuda.current_stream(self.device)
        if self.warm < self.cfg.warmup:  # real training steps, on a side stream (cuDNN/BN setup)
            side = torch.cuda.Stream(self.device)
            side.wait_stream(current)
            with torch.cuda.stream(side):
                self.opt.zero_grad(set_to_none=True)
                out = self._body(x, y)
            current.wait_stream(side)
            self.warm += 1
            return out
        self.shape = (x.shape, y.shape)
        self.sx, self.sy = x.clone(), y.clone()
        self.opt.zero_grad(set_to_none=True)  # .grad allocated inside the graph's memory pool
        graph = torch.cuda.CUDAGraph()
        capture = torch.cuda.Stream(self.device)  # a stream of the model's device, not the current one
        capture.wait_stream(current)
        # thread_local: a DataLoader's pin-memory thread may call CUDA during the capture
        with torch.cuda.graph(graph, stream=capture, capture_error_mode="thread_local"):
            self.out = self._body(self.sx, self.sy)
        current.wait_stream(capture)
        self.graph = graph
        self.captures += 1
        graph.replay()  # capturing does not run the step: this batch trains now
        return self.out
