"""What a run folder records besides its model files, and what it is checked against before a
run goes on in it: the provenance (git commit, torch, device, machine), the random states a
resumed stage restores, the stored recipe, and the refusal of a folder or data that is not the
run's.

  ``provenance``, ``git_commit``  what config.json and final.json record of where a run ran
  ``rng_state``, ``set_rng_state``, ``seed_everything``  torch (CPU, CUDA), python, numpy and
                   the data generator: saved with every checkpoint, restored on resume
  ``stored_recipe``  the recipe of the run in a folder (config.json)
  ``_check_out``   refuse an ``out`` that would be overwritten, or a resume with another recipe
                   or other data (``_check_data``: the same files under another path pass)
  ``_metrics_keep``  metrics.jsonl without the epochs that are run again
"""
from __future__ import annotations

import json
import os
import platform
import random
import subprocess
from pathlib import Path

import numpy as np
import torch

from .. import io
from ..machine import machine
from ..recipes import Recipe, without_retired


def git_commit() -> str:
    try:
        r = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, timeout=10,
                           capture_output=True, text=True)
        return r.stdout.strip() if r.returncode == 0 and r.stdout.strip() else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def provenance(device: torch.device) -> dict:
    dev = str(device)
    if device.type == "cuda":
        dev += f" ({torch.cuda.get_device_name(device)})"
    return {"git": git_commit(), "torch": str(torch.__version__), "device": dev,
            "python": platform.python_version(), **machine()}


# --- RNG states (torch CPU, CUDA, python, numpy, the data generator) ------------------------------

def rng_state(loader=None) -> dict:
    name, key, pos, has_gauss, cached = np.random.get_state()
    st = {"torch": torch.get_rng_state(), "python": random.getstate(),
          "numpy": [name, torch.from_numpy(key.astype(np.int64)), pos, has_gauss, cached]}
    if torch.cuda.is_available():
        st["cuda"] = torch.cuda.get_rng_state_all()
    if loader is not None and hasattr(loader, "state_dict"):
        st["data"] = loader.state_dict()
    return st


def set_rng_state(st: dict, loader=None) -> None:
    torch.set_rng_state(st["torch"])
    random.setstate(st["python"])
    name, key, pos, has_gauss, cached = st["numpy"]
    np.random.set_state((name, key.numpy().astype(np.uint32), pos, has_gauss, cached))
    if "cuda" in st and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(st["cuda"])
    if loader is not None and "data" in st:
        loader.load_state_dict(st["data"])


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    random.seed(seed)
    np.random.seed(seed)


# --- the run folder -------------------------------------------------------------------------------

def stored_recipe(out: str | Path) -> Recipe | None:
    """The recipe of the run in ``out`` (None when there is none)."""
    cfg = Path(out) / "config.json"
    if not cfg.is_file():
        return None
    try:
        return Recipe.from_dict(io.read_json(cfg)["recipe"])
    except (KeyError, TypeError) as e:
        raise ValueError(f"{cfg} is not the configuration of a dnal run ({type(e).__name__}: {e})") from None


def _data_files(data: Path, dataset: str) -> list | None:
    """What identifies a data folder's content when its path differs from the stored one: for
    CIFAR-10 each split's source files (relative name, size, SHA-256; a copy elsewhere has
    another mtime, so the content is read: 55 MB for the packed JPEG set, a fraction of a
    second); None for ImageNet (1.3M files: compared by path only)."""
    if dataset != "cifar10":
        return None
    import hashlib

    from ..data.cifar import _sources, find_format

    fmt, folder = find_format(data)
    files = [f for train in (True, False) for f in _sources(fmt, folder, train)]
    out = []
    for f in files:
        h = hashlib.sha256()
        with open(f, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
        out.append((fmt, str(f.relative_to(folder)), f.stat().st_size, h.hexdigest()))
    return out


def _check_data(out: Path, stored: dict, data, dataset: str) -> None:
    """Refuse resuming ``out`` on a ``data`` folder other than the stored one, unless it names the
    same files by another path (a link, another mount, a copy with the same content)."""
    old, new = stored.get("data"), Path(data)
    if old is None or Path(old) == new.resolve():
        return
    try:
        if new.exists() and Path(old).exists() and os.path.samefile(old, new):
            return
    except OSError:
        pass
    if not Path(old).is_dir():
        raise ValueError(f"--resume: {out} was run on --data {old}, which is gone: cannot check that {data} "
                         f"holds the same files (if the data moved, put its new path in {out / 'config.json'})")
    try:
        a, b = _data_files(Path(old), dataset), _data_files(new, dataset)
    except (OSError, ValueError):
        a = b = None
    if a is None or a != b:
        how = "other files" if a is not None or dataset == "cifar10" else "another folder (ImageNet: compared by path)"
        raise ValueError(f"--resume: {out} was run on --data {old}; {data} holds {how}")


def _check_out(out: Path, recipe: Recipe, resume: bool, data=None) -> dict | None:
    """Refuse an ``out`` that would be overwritten; return the stored config when resuming
    (refused when ``data`` is not the stored data, ``_check_data``)."""
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file, not a folder")
    cfg_path = out / "config.json"
    if not cfg_path.is_file():
        if out.is_dir() and any(out.iterdir()):
            raise ValueError(f"--out {out} is not empty and holds no dnal run; choose another folder")
        return None
    if not resume:
        raise ValueError(f"--out {out} already holds a run; pass --resume to continue it or choose "
                         "another folder")
    stored = io.read_json(cfg_path)
    old = without_retired(stored.get("recipe", {}))
    if old.get("model") != recipe.model:
        raise ValueError(f"--resume: {out} holds a run of {old.get('model')!r}, not {recipe.model!r}")
    new = json.loads(json.dumps(recipe.to_dict()))  # as stored: tuples become lists
    # a key added to the recipe after the run was made takes its (default) value
    old = {k: ({**new[k], **old[k]} if isinstance(new[k], dict) and isinstance(old.get(k), dict)
               else old.get(k, new[k])) for k in new}
    if old.get("lam") is None:  # a weight-stage-only run may go on with a lambda
        old = {**old, "lam": new["lam"]}
    if old != new:
        diff = next(k for k in new if old.get(k) != new[k])
        raise ValueError(f"--resume: {out} was run with {diff}={old.get(diff)!r}, not {new[diff]!r}")
    if data is not None:
        _check_data(out, stored, data, recipe.dataset)
    return stored


def _metrics_keep(path: Path, drop) -> None:
    """Rewrite metrics.jsonl without the lines ``drop(record)`` selects (epochs to be run again)
    and without a line torn by a kill in mid-write."""
    if not path.is_file():
        return

    def keep_line(ln: str) -> bool:
        try:
            return not drop(json.loads(ln))
        except json.JSONDecodeError:
            return False

    lines = path.read_text().splitlines()
    keep = [ln for ln in lines if ln.strip() and keep_line(ln)]
    if len(keep) != len(lines):
        with io.atomic_path(path) as tmp:
            tmp.write_text("".join(ln + "\n" for ln in keep))
