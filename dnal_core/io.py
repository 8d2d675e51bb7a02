"""Files: atomic writes, JSON, and model files that rebuild their own architecture.

A model file (``save_model``) holds ``{"arch": model.arch(), "state_dict": ..., "meta": ...}``
so ``load_model`` rebuilds the network from data and loads it with ``weights_only=True``.
Every write goes to a temporary file in the same folder and is renamed into place, so a
killed process never leaves a half-written file (only its temporary, which
``remove_stale_tmp`` deletes when the run is resumed). JSON never holds NaN or infinity.
"""
from __future__ import annotations

import json
import math
import os
import re
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


def check_out_folder(path: str | Path, option: str = "--out") -> None:
    """Refuse, before any work, a folder that could not be created or written into: a file
    in its place or on its way (``afile/sub``), or a read-only place. ``option`` names the
    input in the message."""
    try:
        have = Path(path)
        while not have.exists():  # the part that exists; mkdir(parents=True) makes the rest
            have = have.parent
        if not have.is_dir():
            raise ValueError(f"{option} {path}: {have} is a file, not a folder")
    except OSError as e:  # e.g. a folder on the way that may not be listed
        raise ValueError(f"{option} {path}: {e.strerror}") from None
    if not os.access(have, os.W_OK | os.X_OK):
        raise ValueError(f"{option} {path}: {have} is not writable")


def check_out_file(path: str | Path, option: str) -> None:
    """Refuse, before any work, a file path that could not be written: a folder in its place,
    a missing or read-only folder."""
    path = Path(path)
    try:
        if path.is_dir():
            raise ValueError(f"{option} {path} is a folder; give the name of the file to write")
        if not path.parent.is_dir():
            what = "is not a folder" if path.parent.exists() else "does not exist"
            raise ValueError(f"{option} {path}: the folder {path.parent} {what}")
    except OSError as e:
        raise ValueError(f"{option} {path}: {e.strerror}") from None
    if not os.access(path.parent, os.W_OK | os.X_OK):
        raise ValueError(f"{option} {path}: the folder {path.parent} is not writable")


# what ``atomic_path`` leaves behind when a process dies mid-write: ".<name>.<8 random>.tmp"
_TMP_NAME = re.compile(r"^\..+\.[a-z0-9_]{8}\.tmp$")


def remove_stale_tmp(folder: str | Path) -> list[Path]:
    """Delete the temporary files of interrupted ``atomic_path`` writes under ``folder``
    (a killed run leaves e.g. ``.weights.pt.k3j_x9ab.tmp``); returns what was removed. Call it
    only where no other process writes into ``folder``: a live write's temporary file looks
    the same."""
    folder = Path(folder)
    stale = [p for p in folder.rglob(".*.tmp") if p.is_file() and _TMP_NAME.match(p.name)] if folder.is_dir() else []
    for p in stale:
        p.unlink(missing_ok=True)
    return stale


def _nonfinite(obj, where: str = ""):
    """(where, value) of the first NaN or infinity in ``obj`` (where: e.g. ``rows[2].loss``)."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return where or "the value", obj
    items = obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, (list, tuple)) else ()
    for k, v in items:
        found = _nonfinite(v, f"{where}[{k}]" if isinstance(k, int) else f"{where}.{k}" if where else str(k))
        if found:
            return found
    return None


def write_json(path: str | Path, obj) -> None:
    """Write ``obj`` as JSON, atomically. NaN and infinity are not JSON (Python would write
    ``NaN``/``Infinity``, which other readers reject): they raise ValueError naming the file."""
    try:
        text = json.dumps(obj, indent=2, sort_keys=False, allow_nan=False) + "\n"
    except ValueError as e:
        if not _nonfinite(obj):  # another ValueError (a circular reference): not ours to word
            raise
        where, value = _nonfinite(obj)
        raise ValueError(f"refusing to write {path}: {where} is {value} (JSON has no NaN or infinity)") from None
    with atomic_path(path) as tmp:
        tmp.write_text(text)


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
