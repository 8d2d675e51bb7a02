"""What the book's notebooks share: where things go, figures, and the paper beside our numbers.

Notebooks hold narrative, parameters, tables and plots; the few helpers they would otherwise
copy from one another live here. Training, pruning and counting stay in ``train``, ``prune``
and ``measure``: this module places, reads and shows results, and calls those (``run_lambdas``,
``baseline_counts``) the way every table chapter does.

  ``paths``          the output folders of one notebook run (``results/<name>/<profile>``,
                     ``figures/``), resolved against the repository, created on demand
  ``save_figure``    a matplotlib figure -> ``figures/<name>.png`` (deterministic bytes), shown
                     in the notebook as that same PNG whatever the matplotlib backend
  ``read_results``   every ``*.json`` / ``*.jsonl`` under ``results/<experiment>/<profile>/``
  ``results_dir``    that folder if it holds results (else None): train only when it is missing
  ``best_profile``, ``resolve_profile``  the largest-scale committed results a chapter shows
  ``read_folder``, ``has_results``, ``provenance``  one folder's results; date + command of a run
  ``copy_metrics``   a run's per-epoch metrics.jsonl lines -> a small committed JSONL file
  ``ours_table``     final.json records -> our baseline row and one row per lambda (with drops)
  ``paper_vs_ours``  one of the paper's tables beside our rows, with reduction ratios
  ``lambda_label``   lambda_a written as the paper writes it ("1e-4"), the key rows match on
  ``plot_acc_vs_macs``  top-1 against MACs, the paper's points beside ours
  ``plot_acc_vs_relative_macs``  the same against MACs as a share of each side's baseline
  ``check_close``    the assertion a reproduction makes before it shows a number
  ``check_top1``, ``check_macs_order``, ``check_smoke_baseline``  the table chapters' checks

What every table chapter repeats (one home here, the notebooks keep narrative and numbers):
  ``random_imagefolder``  a seeded ImageFolder of random JPEGs (ImageNet layout, smoke runs)
  ``run_lambdas``    one weight stage, then each lambda from it; ``lam*.json`` + ``arch/lam*.json``
  ``beside_paper``, ``paper_run_table``, ``run_line``  our rows beside the paper's; the
                     paper's rows alone (and why) when no paper-profile run is committed
  ``baseline_counts``, ``paper_commands``, ``plot_tables``  counts, commands, the two plots
  ``stream_gap``, ``stream_gap_table``  a pruned ResNet's MACs, ours (the residual stream kept
                     whole) against the authors' count (masked stream channels gone)
  ``say``, ``shell``  messages and commands wrapped to the page's 88 characters
"""
from __future__ import annotations

import io as _io
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

PROFILES = ("smoke", "cpu", "paper")


# Set by `make test` (a scratch folder) and by `book/build.py execute` (book/_build/out, unless
# the caller set it): notebooks write their results and figures under this folder instead of
# over the committed ones in the repository.
OUT_ROOT_ENV = "DNAL_OUT_ROOT"


def repo_root() -> Path:
    """The checkout that holds ``notebooks/`` and ``results/``: the parent of this package
    when installed editable (the supported way), else the current directory."""
    here = Path(__file__).resolve().parents[1]
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


def figure_png(fig, dpi: int = 110) -> bytes:
    """The figure as PNG bytes that depend on its content only (no software/date metadata),
    so re-running a notebook leaves ``figures/`` unchanged in git."""
    buf = _io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight", metadata={"Software": None})
    return buf.getvalue()


def save_figure(fig, name: str, fig_dir: Path | str, dpi: int = 110):
    """Write ``fig`` to ``<fig_dir>/<name>.png``, close it, and return an IPython ``Image`` of
    the same bytes (the last expression of a cell displays it). Figures therefore reach the
    notebook and the book even under the Agg backend that ``make book`` runs with."""
    import matplotlib.pyplot as plt
    from IPython.display import Image

    from .io import atomic_path

    data = figure_png(fig, dpi)
    path = Path(fig_dir) / f"{name}.png"
    with atomic_path(path) as tmp:
        Path(tmp).write_bytes(data)
    plt.close(fig)
    return Image(data=data, format="png")


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
    from .io import atomic_path

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

    from .machine import machine

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


def ours_table(finals):
    """Our rows in the columns ``paper_vs_ours`` takes, from final.json records (a DataFrame or
    list of dicts with ``lambda``, ``macs``, ``params``, ``top1``, ``top5`` and the
    ``baseline_*`` fields): first our baseline (lambda "-", the dense network of the weight
    stage, as final.json records it), then one row per lambda, smallest lambda first, with
    ``drop1``/``drop5`` = baseline - row (points; positive: worse than our baseline)."""
    import pandas as pd

    finals = pd.DataFrame(finals)
    missing = {"lambda", "macs", "params", "top1", "baseline_macs", "baseline_params",
               "baseline_top1"} - set(finals.columns)
    if missing:
        raise ValueError(f"final.json records lack {sorted(missing)}")
    if finals.empty:
        raise ValueError("no final.json records")
    finals = finals.assign(_lam=finals["lambda"].astype(float)).sort_values("_lam", kind="stable")
    top5 = finals["top5"] if "top5" in finals else float("nan")
    base = finals.iloc[0]
    base_top5 = base.get("baseline_top5", float("nan"))
    rows = pd.DataFrame({"lambda": finals["lambda"].map(lambda_label), "macs_m": finals["macs"] / 1e6,
                         "params_m": finals["params"] / 1e6, "top1": finals["top1"], "top5": top5})
    first = pd.DataFrame([{"lambda": "-", "macs_m": base["baseline_macs"] / 1e6,
                           "params_m": base["baseline_params"] / 1e6, "top1": base["baseline_top1"],
                           "top5": base_top5}])
    out = pd.concat([first, rows], ignore_index=True)
    out["drop1"] = out["top1"].iloc[0] - out["top1"]
    out["drop5"] = out["top5"].iloc[0] - out["top5"]
    return out


def lambda_label(lam) -> str:
    """lambda_a as the paper's tables write it: 1e-05, 0.0001, "1e-4" -> "1e-5", "1e-4";
    1.5e-4 -> "1.5e-4"; the baseline's "-" (or None) -> "-". Rows are matched on this label."""
    if lam is None or (isinstance(lam, str) and lam.strip() in ("", "-")):
        return "-"
    try:
        x = float(lam)
    except (TypeError, ValueError):
        return str(lam)
    if x != x:  # NaN: a row without lambda
        return "-"
    if x == 0:
        return "0"
    mantissa, exponent = f"{x:e}".split("e")
    mantissa = mantissa.rstrip("0").rstrip(".")
    return f"{mantissa}e{int(exponent)}"


def paper_vs_ours(table: str, ours, method: str = "DNAL", key: str = "lambda"):
    """The paper's ``method`` rows of ``table`` beside ours, matched on ``key`` (lambda).

    ``ours`` is a DataFrame (or list of dicts) with columns ``key``, ``macs_m``, ``params_m``
    and ``top1`` (millions, millions, percent), and ``top5`` when it has one; lambdas may be floats or strings in any
    notation (``lambda_label`` normalises both sides). The result has one row per key of either side:
    ``paper_*`` and ``ours_*`` columns and the MACs reduction ``*_macs_x`` = baseline / row,
    which is how rows are compared when our baseline counts differently (Table III).
    Our baseline row, if any, has ``key`` == "-" as in the paper's CSV.
    """
    import pandas as pd

    from .paper import paper_table

    ours = pd.DataFrame(ours).copy()
    missing = {key, "macs_m", "params_m", "top1"} - set(ours.columns)
    if missing:
        raise ValueError(f"our rows lack columns {sorted(missing)}")
    ours[key] = ours[key].map(lambda_label) if key == "lambda" else ours[key].astype(str)
    paper = paper_table(table)
    base = paper[paper["method"] == "Baseline"]
    rows = paper[paper["method"].isin([method, "Baseline"])].copy()
    if key == "lambda":
        rows[key] = rows[key].map(lambda_label)
    cols = [key, "macs_m", "params_m", "top1"] + (["top5"] if "top5" in ours.columns else [])
    merged = rows[cols].merge(ours[cols], on=key, how="outer", suffixes=("_paper", "_ours"), sort=False)
    merged = merged.rename(columns={f"{c}_{side}": f"{side}_{c}" for c in cols[1:]
                                    for side in ("paper", "ours")})
    # The paper's baseline MACs, and ours where we have a baseline row.
    if len(base):
        merged["paper_macs_x"] = float(base["macs_m"].iloc[0]) / merged["paper_macs_m"]
    our_base = ours[ours[key] == "-"]
    if len(our_base):
        merged["ours_macs_x"] = float(our_base["macs_m"].iloc[0]) / merged["ours_macs_m"]
    # Largest model first, as the paper orders its rows; rows only we have slot in by our MACs.
    order = merged["paper_macs_m"].fillna(merged["ours_macs_m"])
    return merged.loc[order.sort_values(ascending=False, kind="stable").index].reset_index(drop=True)


MARKERS = "sv^<>pPXhH*dD8"  # other methods' markers (one per method, in the legend)
AXIS_LABEL = {"macs_m": "MACs (millions; the paper's \"FLOPs\")", "params_m": "parameters (millions)"}


def plot_acc_vs_macs(table: str, ours=None, ax=None, method: str = "DNAL", title: str | None = None,
                     x: str = "macs_m"):
    """Top-1 (%) against ``x`` (``macs_m``, or ``params_m`` for Table VII, which gives no MACs)
    for every method of the paper's ``table``: DNAL as a line, each other method with its own
    marker in the legend (no point labels: they collide), and ``ours`` (columns ``x``, ``top1``)
    on top. A panel with nothing to draw says so. Returns the matplotlib figure."""
    import matplotlib.pyplot as plt
    import pandas as pd

    from .paper import paper_table

    paper = paper_table(table).dropna(subset=[x, "top1"])
    if ax is None:
        fig, ax = plt.subplots(figsize=(6.8, 4.6))
    else:
        fig = ax.figure
    dnal = paper[paper["method"] == method].sort_values(x)
    if len(dnal):
        ax.plot(dnal[x], dnal["top1"], "o-", color="tab:blue", label=f"{method} (paper)", zorder=3)
    others = paper[paper["method"] != method]
    for k, (name, rows) in enumerate(others.groupby("method", sort=False)):
        marker = "*" if name == "Baseline" else MARKERS[k % len(MARKERS)]
        ax.plot(rows[x], rows["top1"], linestyle="none", marker=marker, ms=8 if name == "Baseline" else 6,
                color="black" if name == "Baseline" else f"C{(k % 9) + 1}", alpha=0.8, label=f"{name} (paper)")
    if ours is not None and len(pd.DataFrame(ours)):
        ours = pd.DataFrame(ours).sort_values(x)
        ax.plot(ours[x], ours["top1"], "D--", color="tab:red", label="ours", zorder=4)
    if not len(paper) and (ours is None or not len(pd.DataFrame(ours))):
        ax.text(0.5, 0.5, f"no data: Table {table} gives no {AXIS_LABEL.get(x, x)}", ha="center", va="center",
                transform=ax.transAxes, color="0.4")
    ax.set_xlabel(AXIS_LABEL.get(x, x))
    ax.set_ylabel("top-1 accuracy (%)")
    ax.set_title(title or f"Table {table}: accuracy against {'MACs' if x == 'macs_m' else 'parameters'}")
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8.5, frameon=False)
    return fig


def plot_acc_vs_relative_macs(table: str, ours, ax=None, method: str = "DNAL", title: str | None = None):
    """Top-1 (%) against MACs as a percentage of each side's own baseline: the paper's
    ``method`` rows against its Baseline row, ``ours`` (columns ``lambda``, ``macs_m``, ``top1``,
    with the baseline row at lambda "-") against our baseline. This puts a width-scaled smoke run
    and the paper on one axis (the accuracies still are not comparable). Returns the figure."""
    import matplotlib.pyplot as plt
    import pandas as pd

    from .paper import paper_table

    paper = paper_table(table)
    if ax is None:
        fig, ax = plt.subplots(figsize=(6, 4))
    else:
        fig = ax.figure
    base = paper.loc[paper["method"] == "Baseline", "macs_m"].iloc[0]
    dnal = paper[paper["method"] == method].sort_values("macs_m")
    ax.plot(100 * dnal["macs_m"] / base, dnal["top1"], "o-", color="tab:blue", label=f"{method} (paper)")
    ours = pd.DataFrame(ours)
    our_base = ours.loc[ours["lambda"].map(lambda_label) == "-", "macs_m"]
    if len(our_base):
        rows = ours[ours["lambda"].map(lambda_label) != "-"].sort_values("macs_m")
        ax.plot(100 * rows["macs_m"] / float(our_base.iloc[0]), rows["top1"], "D--", color="tab:red", label="ours")
        for _, r in rows.iterrows():
            ax.annotate(lambda_label(r["lambda"]), (100 * r["macs_m"] / float(our_base.iloc[0]), r["top1"]),
                        fontsize=7, xytext=(3, 3), textcoords="offset points", color="tab:red")
    ax.set_xlabel("MACs (% of the same side's baseline)")
    ax.set_ylabel("top-1 accuracy (%)")
    ax.set_title(title or f"Table {table}: accuracy against relative MACs")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    return fig


def check_close(ours: float, paper: float, tol: float, what: str) -> str:
    """Assert ``|ours - paper| <= tol`` with a message that names ``what``; returns a one-line
    verdict for the notebook to print. NaN on either side fails."""
    ours, paper = float(ours), float(paper)
    if math.isnan(ours) or math.isnan(paper) or abs(ours - paper) > tol:
        raise AssertionError(f"{what}: ours {ours:g} vs paper {paper:g}, tolerance {tol:g}")
    return f"{what}: ours {ours:g}, paper {paper:g} (within {tol:g})"


def check_top1(table, tol: float = 0.5) -> list[str]:
    """The reproduction itself: every row with both top-1s (a ``paper_vs_ours`` table) within
    ``tol`` points of the paper's. Returns the verdict lines."""
    return [check_close(r["ours_top1"], r["paper_top1"], tol, f"top-1 at lambda {r['lambda']}")
            for _, r in table.dropna(subset=["paper_top1", "ours_top1"]).iterrows()]


def check_macs_order(ours) -> None:
    """``ours_table`` rows: a larger lambda costs no more MACs, and no pruned row more than the baseline."""
    macs = ours[ours["lambda"] != "-"]["macs_m"].tolist()
    assert all(a >= b for a, b in zip(macs, macs[1:])), "a larger lambda must not cost more MACs"
    assert (ours["macs_m"].iloc[1:] <= ours["macs_m"].iloc[0]).all(), "a pruned network costs more than its baseline"


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


def run_lambdas(recipe, data, lams, runs, out, prov: dict, device: str = "auto", shared_weights: bool = True,
                workers: int = 8) -> Path:
    """Train ``recipe`` at each of ``lams`` into ``runs/lam<label>`` (checkpoints, not committed)
    and record ``out/lam<label>.json`` (``prov``, e.g. ``provenance(...)``, + final.json) and
    ``out/arch/lam<label>.json`` (the learned widths; ``models.build_from_arch`` rebuilds them).
    ``shared_weights``: one weight stage in ``runs/weights``, every lambda's architecture and
    finetune stages from it (the weight stage does not depend on lambda); else each lambda runs
    all stages. Killed runs resume. Returns ``out``."""
    from .io import read_json, write_json
    from .recipes import override
    from .train import run_pipeline

    runs, out = Path(runs), Path(out)
    weights = runs / "weights" / "weights.pt"
    if shared_weights and not weights.is_file():
        run_pipeline(recipe, data, weights.parent, device=device, stages=["weights"], workers=workers)
    for lam in lams:
        label = lambda_label(lam)
        kw = {"stages": ["arch", "finetune"], "weights_from": weights} if shared_weights else {}
        final = run_pipeline(override(recipe, {"lam": lam}), data, runs / f"lam{label}", device=device,
                             resume=True, workers=workers, **kw)
        write_json(out / f"lam{label}.json", {**prov, **final})
        write_json(out / "arch" / f"lam{label}.json", read_json(runs / f"lam{label}" / "arch.json"))
    return out


def stream_gap(model) -> tuple[int, int]:
    """MACs of the pruned ``model`` (its hard gates set): ours, and a count in which the
    channels a closed block-output gate masks are gone from the residual stream too, so
    every layer that reads block b's output (block b+1's first conv and projection
    shortcut, or the classifier after the last block) reads only that gate's open
    channels."""
    import torch

    from .measure import count
    from .prune import prune
    from .train import hard_gated

    pruned = prune(hard_gated(model)).model.eval()

    def last(blk):  # the block-output unit
        return blk.conv3 if hasattr(blk, "conv3") else blk.conv2

    open_out = [int(last(blk).ss.keep().sum()) for blk in model.blocks]
    readers = {pruned.fc: open_out[-1]}
    for b, blk in enumerate(pruned.blocks):
        for unit in (blk.conv1, getattr(blk, "downsample", None)):
            if b > 0 and unit is not None:
                readers[unit.conv] = open_out[b - 1]
    cut = []

    def hook(m, inp, out):  # MACs of the stream channels this reader would not read
        conv = isinstance(m, torch.nn.Conv2d)
        taps = m.kernel_size[0] * m.kernel_size[1] if conv else 1
        cut.append(out.numel() * taps * (inp[0].shape[1] - readers[m]))

    hooks = [m.register_forward_hook(hook) for m in readers]
    with torch.no_grad():
        pruned(torch.zeros((1,) + tuple(model.input_size)))
    for h in hooks:
        h.remove()
    ours = count(pruned)["macs"]
    return ours, ours - sum(cut)


def stream_gap_table(model: str, widths, seed: int = 0):
    """``stream_gap`` of ``model`` at each (width_mult, build keywords) of ``widths`` with the same
    seeded random hard gates (s ~ N(0, 1): about half of each gate closed), as a DataFrame:
    dense MACs, ours, the authors' count (masked stream channels gone), in millions, and the
    ratio ours / authors'."""
    import pandas as pd
    import torch

    from .gate import gates, set_mode
    from .measure import count
    from .models import build

    rows = []
    for width, kw in widths:
        gated = build(model, width_mult=width, **kw)
        g = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for _, gate in gates(gated):
                gate.s.copy_(torch.randn(gate.channels, generator=g))
        set_mode(gated, "hard")
        ours, stream = stream_gap(gated)
        dense = count(build(model, width_mult=width, **kw))["macs"]
        rows.append({"width": width, "dense_macs_m": dense / 1e6, "ours_macs_m": ours / 1e6,
                     "authors_macs_m": stream / 1e6, "ratio": ours / stream})
    return pd.DataFrame(rows)


PAGE_WIDTH = 88  # characters of code or text output the book's content column shows (book/_assets/dnal.css)


def say(*parts: str, width: int = PAGE_WIDTH) -> None:
    """Print ``parts`` (joined by spaces) wrapped at ``width`` characters, so a message is never
    cut at the page edge."""
    import textwrap

    print(textwrap.fill(" ".join(parts), width, break_long_words=False, break_on_hyphens=False))


def shell(cmd: str, width: int = PAGE_WIDTH) -> str:
    """A shell command as lines of at most ``width`` characters joined by `` \\`` continuations
    (indented), what a reader can paste; a single token longer than a line stays whole."""
    lines, cur = [], ""
    for tok in cmd.split():
        room = width - 2 - (4 if lines else 0)
        if cur and len(cur) + 1 + len(tok) > room:
            lines.append(cur)
            cur = tok
        else:
            cur = f"{cur} {tok}" if cur else tok
    lines.append(cur)
    return " \\\n".join(("    " if i else "") + ln for i, ln in enumerate(lines))


def run_line(finals) -> str:
    """Where results came from, from ``provenance`` fields: device (and CPU kind where recorded),
    torch, date and command."""
    r = finals.iloc[0]
    kind = r.get("cpu_kind")
    device = f"{r['device']} ({kind})" if isinstance(kind, str) and kind else r["device"]
    return f"{device}, torch {r['torch']}, {r['date']}; made by `{r['command']}`"


def beside_paper(table: str, finals):
    """``(ours, merged)``: ``ours_table(finals)`` and the paper's ``table`` beside it
    (``paper_vs_ours``) with our ``drop1``/``drop5`` columns."""
    ours = ours_table(finals)
    return ours, paper_vs_ours(table, ours).merge(ours[["lambda", "drop1", "drop5"]], on="lambda", how="left")


def paper_run_table(name: str, table: str, folder):
    """``(ours, merged, message)`` for paper-profile results in ``folder``; when it holds none,
    ``(None, the paper's Baseline and DNAL rows, a message that says no paper run exists)``."""
    if has_results(folder):
        finals = read_folder(folder)
        return (*beside_paper(table, finals), f"paper-profile results from {folder}: {run_line(finals)}")
    from .paper import paper_table

    paper = paper_table(table)
    rows = paper[paper["method"].isin(["Baseline", "DNAL"])][["lambda", "macs_m", "params_m", "top1", "top5"]]
    return None, rows, (f"No full (paper-profile) run of Table {table} exists yet: results/{name}/paper/ is "
                        "empty. The table below is the paper's alone.")


def baseline_counts(model, table: str):
    """``model`` counted both ways (``macs``: conv+linear, every parameter; ``authors``: the
    authors' counter, ``measure.count``) and the paper's baseline row of ``table``, in millions."""
    import pandas as pd

    from .measure import count
    from .paper import paper_baseline

    base = paper_baseline(table)
    rows = [{"count": conv, "macs_m": c["macs"] / 1e6, "params_m": c["params"] / 1e6}
            for conv in ("macs", "authors") for c in [count(model, convention=conv)]]
    return pd.DataFrame(rows + [{"count": "paper", "macs_m": base["macs_m"], "params_m": base["params_m"]}])


def paper_commands(name: str, model: str, lams, data: str, gpus: int = 8) -> list[str]:
    """The shell commands of a paper-profile run of ``model`` (one weight stage, then each
    lambda from it, under torchrun) and the copies of its final.json into ``results/<name>/paper``."""
    runs, launch = f"runs/{name}/paper", f"torchrun --nproc_per_node {gpus} $(which dnal)"
    cmds = [f"{launch} run {model} --data {data} --profile paper --stages weights --out {runs}/weights"]
    cmds += [f"{launch} run {model} --data {data} --profile paper --lambda {lam} "
             f"--weights-from {runs}/weights/weights.pt --out {runs}/lam{lam}" for lam in lams]
    return cmds + [f"cp {runs}/lam{lam}/final.json results/{name}/paper/lam{lam}.json" for lam in lams]


def check_smoke_baseline(model: str, finals, num_classes: int = 10) -> str:
    """A smoke result's baseline is ``model`` at the smoke width with ``num_classes`` classes
    (counted at its full input size, like every final.json) and pruning did not add cost."""
    from .measure import count
    from .models import build
    from .recipes import get_recipe

    small = count(build(model, width_mult=get_recipe(model, "smoke").width_mult, num_classes=num_classes))
    row = finals.iloc[0]
    assert (row["baseline_macs"], row["baseline_params"]) == (small["macs"], small["params"]), (row, small)
    assert row["macs"] <= row["baseline_macs"] and row["params"] <= row["baseline_params"]
    return (f"smoke: {row['baseline_macs'] / 1e6:.2f}M -> {row['macs'] / 1e6:.2f}M MACs "
            f"at lambda {lambda_label(row['lambda'])}")


def plot_tables(table: str, ours, title: str, profile: str):
    """Both plots side by side: top-1 against MACs (millions; a smoke run's width-scaled network
    sits near zero) and against MACs relative to each side's baseline. Returns the figure."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 1, figsize=(6.8, 8.2))  # stacked: full size in the page
    plot_acc_vs_macs(table, ours[ours["lambda"] != "-"], ax=axes[0], title=f"{title} (ours: {profile} profile)")
    plot_acc_vs_relative_macs(table, ours, ax=axes[1], title=f"{title}, relative MACs ({profile})")
    if profile == "smoke":  # said in the figure itself, with the chance line
        for ax in axes:
            ax.axhline(10.0, color="0.4", lw=1, ls=":", label="chance (10 classes)")
        fig.suptitle("smoke profile: machinery check, chance-level accuracy", color="tab:red", fontsize=10)
    fig.tight_layout()
    return fig
