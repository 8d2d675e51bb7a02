"""A pruned network on disk: ``arch.json`` (``model.arch()``), ``weights.pt`` (its state_dict)
and, from ``prune``, ``report.json``; ``build_pruned`` turns such an arch back into a network.
"""
from __future__ import annotations

from pathlib import Path

from torch import nn

from .. import io
from ..models import build_from_arch

ARCH_FILE, WEIGHTS_FILE, REPORT_FILE = "arch.json", "weights.pt", "report.json"


def build_pruned(arch: dict) -> nn.Module:
    """``build_from_arch`` for a pruned arch; a builder that cannot express one says so."""
    try:
        return build_from_arch(arch)
    except TypeError as e:  # a builder without the gated/folded/stream_bias keys
        raise ValueError(f"{arch.get('model')}: its builder cannot build a pruned network yet ({e}); "
                         "it needs the keys described at the end of dnal_core/models/layers.py") from None


def save_pruned(result, out_dir: str | Path, report: dict | None = None) -> Path:
    """Write ``weights.pt`` (state_dict), ``arch.json`` (``model.arch()``) and, with a report,
    ``report.json`` into ``out_dir``; each file is written atomically, arch.json after the
    weights it describes. ``result``: what ``prune`` returns (a ``PruneResult``: its model and
    report), or a pruned network."""
    model = result if isinstance(result, nn.Module) else result.model
    report = report if report is not None else getattr(result, "report", None)
    out = Path(out_dir)
    io.save({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}, out / WEIGHTS_FILE)
    io.write_json(out / ARCH_FILE, model.arch())
    if report is not None:
        io.write_json(out / REPORT_FILE, report)
    return out


def load_pruned(path: str | Path, map_location="cpu") -> nn.Module:
    """Rebuild a pruned network from ``arch.json`` and load ``weights.pt`` (weights_only)."""
    d = Path(path)
    if not d.is_dir():
        raise ValueError(f"pruned model directory not found: {d}")
    model = build_pruned(io.read_json(d / ARCH_FILE))
    state = io.load(d / WEIGHTS_FILE, map_location)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise ValueError(f"{d / WEIGHTS_FILE} does not match {d / ARCH_FILE}: {str(e).splitlines()[0]}") from None
    return model.eval()
