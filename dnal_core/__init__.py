"""dnal_core: Differentiable Neural Architecture Learning (Guo, Wu, Kittler, Feng).

The pieces, each with one home:
  gate     the SS layer, the delta schedule (Section III-C)
  loss     the sparsity loss: eq. 4, the authors' delta-free form, the cost-aware term
  models   model builders by name (``build``, ``list_models``)
  measure  MACs (the paper's "FLOPs"), params, latency
  io       atomic writes, model files that carry their architecture
  paper    the paper's Tables I-VII as data
  data     CIFAR-10 and ImageNet loading (``dnal_core.data``)
  recipes  the paper's training recipes as frozen dataclasses (``dnal_core.recipes``)
  train    the stages of Alg. 1 and the run folder (``dnal_core.train``; torchrun via ``train.dist``);
           ``dnal_core.search(model, data, out, lam=...)``: all of it in one call (loaded on first use)
  prune    channel removal checked against the hard gates (``dnal_core.prune``)
  report   what the book's chapters use to put results beside the paper (``dnal_core.report``)
  chapter  what a chapter calls once per experiment (``ensure``: the committed results, or made)
           and the steps the ImageNet chapters share (``chapter.ImageNet``)
"""
__version__ = "0.1.0"

from .gate import (DeltaSchedule, SSGate, arch_parameters, gate_probs, gates, open_counts,
                   reset_gates, set_delta, set_mode, set_threshold)
from .loss import sparsity_loss
from .io import load_model, save_model
from .measure import count, count_macs, count_params, latency
from .models import PLACEMENTS, build, build_from_arch, list_models
from .paper import paper_table
from .prune import load_pruned, save_pruned  # the module stays dnal_core.prune (prune.prune)
from .attach import attach_gates  # any CNN: gates per DepGraph group (Torch-Pruning, lazily)

__all__ = [
    "__version__", "SSGate", "DeltaSchedule", "gates", "arch_parameters", "set_mode", "set_delta",
    "set_threshold", "reset_gates", "open_counts", "gate_probs", "sparsity_loss", "build",
    "build_from_arch", "list_models", "PLACEMENTS", "count", "count_macs", "count_params",
    "latency", "save_model", "load_model", "paper_table", "load_pruned", "save_pruned",
    "attach_gates", "search",
]


def __getattr__(name):  # ``dnal_core.search`` without loading the trainer at ``import dnal_core``
    if name == "search":
        from .train.own import search
        return search
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
