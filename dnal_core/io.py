"""Files: atomic writes, JSON, and model files that rebuild their own architecture.

A model file (``save_model``) holds ``{"arch": model.arch(), "state_dict": ..., "meta": ...}``
so ``load_model`` rebuilds the network from data and loads it with ``weights_only=True``.
Every write goes to a temporary file in the same folder and is renamed into place, so a
killed process never leaves a half-written file.
"""
from __future__ import annotations

import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path

import torch
from torch import nn


@contextmanager
def atomic_path(path: str | Path):
    """Yield a temporary path beside ``path``; on success rename it onto ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: str | Path, obj) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=False) + "\n")


def read_json(path: str | Path):
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise ValueError(f"file not found: {path}") from None
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"cannot read JSON from {path}: {e}") from None


def save(obj, path: str | Path) -> None:
    """``torch.save`` written atomically."""
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def load(path: str | Path, map_location="cpu"):
    """``torch.load`` with ``weights_only=True``; unreadable files raise ValueError."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"file not found: {path}")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # corrupt or foreign file: one clear message
        raise ValueError(f"cannot load {path}: {type(e).__name__}: {e}") from None


def save_model(model: nn.Module, path: str | Path, meta: dict | None = None) -> None:
    """Save ``model`` with its architecture, so ``load_model`` needs nothing else."""
    save({"arch": model.arch(), "state_dict": model.state_dict(), "meta": meta or {}}, path)


def load_model(path: str | Path, map_location="cpu") -> tuple[nn.Module, dict]:
    """Rebuild a model saved by ``save_model``; returns (model, meta)."""
    from .models import build_from_arch

    blob = load(path, map_location)
    if not isinstance(blob, dict) or "arch" not in blob or "state_dict" not in blob:
        raise ValueError(f"{path} is not a dnal model file (no 'arch' and 'state_dict')")
    model = build_from_arch(blob["arch"])
    model.load_state_dict(blob["state_dict"])
    return model, blob.get("meta", {})
