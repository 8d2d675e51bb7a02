"""Where a chapter's results go and where they are read from: the output folders of one run,
the committed results, and the provenance each result carries.

  ``paths``          the output folders of one notebook run (``results/<name>/<profile>``,
                     ``figures/``), resolved against the repository, created on demand
  ``read_results``   every ``*.json`` / ``*.jsonl`` under ``results/<experiment>/<profile>/``
  ``results_dir``    that folder if it holds results (else None): train only when it is missing
  ``best_profile``, ``resolve_profile``  the largest-scale committed results a chapter shows
  ``read_folder``, ``has_results``, ``provenance``  one folder's results; date + command of a run
  ``copy_metrics``   a run's per-epoch metrics.jsonl lines -> a small committed JSONL file
  ``random_imagefolder``  a seeded ImageFolder of random JPEGs (ImageNet layout, smoke runs)
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path


PROFILES = ("smoke", "cpu", "paper")


# Set by `make test` (a scratch folder) and by `book/build.py execute` (book/_build/out, unless
# the caller set it): notebooks write their results and figures under this folder instead of
# over the committed ones in the repository.
OUT_ROOT_ENV = "DNAL_OUT_ROOT"


def repo_root() -> Path:
    """The checkout that holds ``notebooks/`` and ``results/``: the parent of ``dnal_core``
    when installed editable (the supported way), else the current directory."""
    here = Path(__file__).resolve().parents[2]
    if (here / "pyproject.toml").is_file() and (here / "notebooks").is_dir():
        return here
    return Path.cwd()


def out_root() -> Path:
    """Where notebooks write ``results/`` and ``figures/``: $DNAL_OUT_ROOT, else the repository."""
    env = os.environ.get(OUT_ROOT_ENV)
    return Path(env) if env else repo_root()


@dataclass(frozen=True)
class RunPaths:
    """Where one notebook run writes: ``out`` (small JSON results) and ``fig`` (PNG figures)."""
    name: str
    profile: str
    out: Path
    fig: Path


def paths(name: str, profile: str, out_dir: str = "", fig_dir: str = "") -> RunPaths:
    """Output folders of notebook ``name`` run under ``profile``.

    ``out_dir`` defaults to ``results/<name>/<profile>`` and ``fig_dir`` to ``figures``, both
    under ``out_root()`` (the repository unless $DNAL_OUT_ROOT says otherwise); relative paths
    given by the caller are taken from there too, so the notebook writes to the same place
    whether papermill, nbval or JupyterLab runs it (each with its own working directory).
    """
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; valid: {', '.join(PROFILES)}")
    root = out_root()
    out = Path(out_dir) if out_dir else Path("results") / name / profile
    fig = Path(fig_dir) if fig_dir else Path("figures")
    out, fig = (p if p.is_absolute() else root / p for p in (out, fig))
    out.mkdir(parents=True, exist_ok=True)
    fig.mkdir(parents=True, exist_ok=True)
    return RunPaths(name, profile, out, fig)


def read_results(experiment: str, profile: str, root: Path | str | None = None):
    """Every result under ``results/<experiment>/<profile>/`` as one DataFrame (``read_folder``).
    ``root`` is the ``results`` folder; by default the one under ``out_root()`` if it has this
    experiment, else the repository's (committed results). Missing folder -> ValueError (run the
    experiment first)."""
    roots = [Path(root)] if root else [out_root() / "results", repo_root() / "results"]
    folder = next((r / experiment / profile for r in roots if (r / experiment / profile).is_dir()), None)
    if folder is None:
        raise ValueError(f"no results for {experiment}/{profile} in {roots[0]}: "
                         f"run the experiment with profile {profile!r} first")
    return read_folder(folder)


def read_folder(folder: Path | str):
    """One row per ``*.json`` file (a JSON object) and one per line of each ``*.jsonl`` file in
    ``folder`` (not its subfolders), with a ``source`` column naming the file."""
    import pandas as pd

    folder = Path(folder)
    rows = []
    for f in sorted(folder.glob("*.json")):
        obj = json.loads(f.read_text())
        if isinstance(obj, dict):
            rows.append({"source": f.name, **obj})
    for f in sorted(folder.glob("*.jsonl")):
        for line in f.read_text().splitlines():
            if line.strip():
                rows.append({"source": f.name, **json.loads(line)})
    return pd.DataFrame(rows)


def copy_metrics(run_dir: Path | str, dest: Path | str, stages=None, **fields) -> int:
    """Copy the per-epoch lines of ``<run_dir>/metrics.jsonl`` (or of ``run_dir`` itself when it
    is a file; ``stages``: only those) into the JSON-lines file ``dest`` (atomic), each with
    ``fields`` added and without wall-clock times, so a notebook commits curves without
    checkpoints. Returns the number of lines written."""
    from ..io import atomic_path

    src = Path(run_dir) if Path(run_dir).is_file() else Path(run_dir) / "metrics.jsonl"
    lines = []
    for line in src.read_text().splitlines():
        if line.strip():
            rec = json.loads(line)
            if stages is None or rec.get("stage") in stages:
                rec = {k: v for k, v in rec.items() if k not in ("seconds", "eval_seconds")}
                lines.append(json.dumps({**fields, **rec}))
    with atomic_path(Path(dest)) as tmp:
        Path(tmp).write_text("".join(f"{x}\n" for x in lines))
    return len(lines)


# Files an experiment writes while it is still running (dnal_core.experiments: the lambda sweep,
# the lambdas chosen from it, the delta-free form's sweep): committed as they come, but not
# results a chapter renders.
PLAN_FILES = {"sweep.json", "chosen.json", "sweep_code.json"}


def has_results(folder: Path | str | None) -> bool:
    """Whether ``folder`` exists and holds a ``*.json`` or ``*.jsonl`` result (``PLAN_FILES``,
    the intermediate files of a running experiment, do not count)."""
    if folder is None or not Path(folder).is_dir():
        return False
    return any(f.name not in PLAN_FILES for pat in ("*.json", "*.jsonl") for f in Path(folder).glob(pat))


def provenance(notebook: str, profile: str, threads: int, overrides: dict | None = None,
               device: str = "auto") -> dict:
    """What a notebook adds to each result it writes: the date, the call that made it, the
    torch version, the device and the CPU kind (``dnal_core.machine``; the run folders' own files
    hold the resolved recipe and the git commit too)."""
    import datetime

    import torch

    from ..machine import machine

    if device in (None, "auto"):
        device = "cuda" if torch.cuda.is_available() else "cpu"
    extra = f", recipe overrides {overrides}" if overrides else ""
    return {"date": datetime.date.today().isoformat(), "torch": str(torch.__version__), "device": str(device),
            **machine(),
            "command": f"python book/build.py execute --only {notebook} (profile {profile}, "
                       f"train when results are missing, torch threads {threads}{extra})"}


def results_dir(experiment: str, profile: str, root: Path | str | None = None) -> Path | None:
    """The folder ``read_results`` would read (same search order), or None when no such folder
    holds a ``*.json``/``*.jsonl`` file: a notebook trains only in that case (or when asked)."""
    roots = [Path(root)] if root else [out_root() / "results", repo_root() / "results"]
    return next((r / experiment / profile for r in roots if has_results(r / experiment / profile)), None)


SCALE_ORDER = ("paper", "cpu", "smoke")  # largest scale first


def best_profile(name: str, root: Path | str | None = None) -> str:
    """The largest-scale profile (paper, then cpu, then smoke) with results (``has_results``) in
    ``results/<name>/<profile>/`` (``root``: the results folder, default the repository's);
    "smoke" when none has any."""
    root = Path(root) if root else repo_root() / "results"
    return next((p for p in SCALE_ORDER if has_results(root / name / p)), "smoke")


def resolve_profile(name: str, profile: str) -> str:
    """A chapter's ``profile`` parameter: "auto" is ``best_profile(name)``; else it must be one
    of ``PROFILES`` (ValueError naming them)."""
    if profile == "auto":
        return best_profile(name)
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; valid: auto, {', '.join(PROFILES)}")
    return profile


def random_imagefolder(root, classes: int = 10, per_class=(8, 4), size: int = 80, seed: int = 0) -> Path:
    """``root/{train,val}/n<8 digits>/<i>.JPEG``: ``per_class`` (train, val) seeded random RGB
    ``size``x``size`` images a class, ImageNet's layout for smoke runs and tests without ImageNet
    (accuracies on it are chance). The same arguments give the same pixels."""
    import numpy as np
    from PIL import Image

    root, rng = Path(root), np.random.default_rng(seed)
    for split, n in zip(("train", "val"), per_class):
        for c in range(classes):
            folder = root / split / f"n{c:08d}"
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(folder / f"{i}.JPEG")
    return root
