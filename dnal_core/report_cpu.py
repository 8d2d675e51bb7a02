"""What the chapters show of ``dnal_core.experiments``' results (the ``cpu`` profile, or any
profile run through it): Table I with its controls, the lambda sweep, the learned widths.

A results folder written by ``experiments.table1_search`` / ``table1_controls`` holds
``lam<label>.json`` (final.json of each chosen lambda, with date, device and command),
``arch/lam<label>.json`` (learned widths), ``metrics/lam<label>.jsonl`` (per-epoch records),
``sweep.json`` (every searched lambda: pruned MACs, reduction, hard top-1 before finetuning),
``chosen.json`` and ``controls/{dense,uniform_lam<label>}.json``.

  ``table1_rows``     one row per lambda: MACs, reduction, top-1, drop against the dense
                      control, and the uniform-width network at the same MACs
  ``paper_relative``  the paper's DNAL rows as reductions and drops (comparable across scales)
  ``plot_table1``     accuracy against MACs (DNAL, uniform width, dense) and drop against
                      relative MACs beside the paper's
  ``plot_widths``     learned widths per layer against the uniform network's
  ``plot_sweep``      MACs reduction against lambda (the calibration of lambda at this scale)
  ``own_rows``        "Prune your own network" at cpu: DNAL's budget, Torch-Pruning's global
                      L1 and uniform width at the same MACs (``experiments.own``); ``plot_own``
"""
from __future__ import annotations

import json
from pathlib import Path

from .report import lambda_label

STYLE = {"DNAL": dict(color="tab:red", marker="D"), "uniform": dict(color="tab:green", marker="s"),
         "dense": dict(color="black", marker="*", ms=12), "paper": dict(color="tab:blue", marker="o")}


def _plain_fmt(v, _pos=None) -> str:
    return f"{v:g}" if f"{v:g}"[0] in "1235" else ""  # 1, 2, 3, 5 x 10^k: few, readable ticks


def _ticker():
    from matplotlib.ticker import FuncFormatter

    return FuncFormatter(_plain_fmt)


def log_macs_axis(ax, xlabel: str = "MACs (millions, log scale)") -> None:
    """A log-scale x axis of MACs with plain tick labels (1, 2, 3, 5 x 10^k) and a grid."""
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(_ticker())
    ax.xaxis.set_minor_formatter(_ticker())
    ax.set_xlabel(xlabel)
    ax.grid(alpha=0.3)


def _read(path: Path):
    return json.loads(Path(path).read_text())


def controls(folder: Path | str) -> dict:
    """``{"dense": row or None, lambda label: uniform row, ...}`` from ``folder/controls``."""
    folder = Path(folder) / "controls"
    out = {"dense": _read(folder / "dense.json") if (folder / "dense.json").is_file() else None}
    for f in sorted(folder.glob("uniform_lam*.json")):
        row = _read(f)
        out[lambda_label(row["lambda"])] = row
    return out


def table1_rows(folder: Path | str):
    """One row per finetuned lambda (smallest first): ``lambda``, ``macs_m``, ``params_m``,
    ``macs_x`` (dense / pruned), ``top1``, ``drop`` (dense control - DNAL, points; positive:
    DNAL is worse), ``uniform_top1`` and ``uniform_macs_m`` (the uniform-width network trained
    as long as the dense control at this row's MACs; NaN while it has not run) and
    ``dnal_minus_uniform``."""
    import pandas as pd

    folder = Path(folder)
    finals = [_read(f) for f in sorted(folder.glob("lam*.json"))]
    if not finals:
        raise ValueError(f"no lam*.json results in {folder}")
    ctl = controls(folder)
    dense = ctl["dense"]
    rows = []
    for f in sorted(finals, key=lambda r: float(r["lambda"])):
        u = ctl.get(lambda_label(f["lambda"]))
        rows.append({"lambda": lambda_label(f["lambda"]), "macs_m": f["macs"] / 1e6, "params_m": f["params"] / 1e6,
                     "macs_x": f["baseline_macs"] / f["macs"], "top1": f["top1"],
                     "drop": dense["top1"] - f["top1"] if dense else float("nan"),
                     "uniform_top1": u["top1"] if u else float("nan"),
                     "uniform_macs_m": u["macs"] / 1e6 if u else float("nan")})
    out = pd.DataFrame(rows)
    out["dnal_minus_uniform"] = out["top1"] - out["uniform_top1"]
    return out


def paper_relative(table: str):
    """The paper's DNAL rows of ``table``: ``lambda``, ``macs_x`` and ``params_x`` (baseline /
    row) and ``drop`` (baseline top-1 - row, points): what compares across widths and data."""
    from .paper import paper_table

    p = paper_table(table)
    base = p[p["method"] == "Baseline"].iloc[0]
    d = p[p["method"] == "DNAL"].copy()
    d = d.assign(lambda_=d["lambda"].map(lambda_label), macs_x=base["macs_m"] / d["macs_m"],
                 params_x=base["params_m"] / d["params_m"], drop=base["top1"] - d["top1"])
    return d[["lambda_", "macs_x", "params_x", "drop"]].rename(columns={"lambda_": "lambda"}).reset_index(drop=True)


def plot_table1(rows, dense: dict | None, base_macs: float, table: str, title: str, smoke: bool = False):
    """Left: top-1 against MACs (millions) of DNAL, the uniform-width controls and the dense
    control. Right: top-1 drop from each side's own dense network against MACs as a % of it,
    ours beside the paper's (the one view in which a quarter-width CPU run and the paper's
    full-width GPU runs compare). Legends, no point labels. ``smoke``: the figure says it is a
    machinery check and draws the chance line. Returns the figure."""
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(2, 1, figsize=(6.8, 8.6))  # stacked: full size in the page
    a.plot(rows["macs_m"], rows["top1"], "--", label="DNAL (learned widths)", **STYLE["DNAL"])
    u = rows.dropna(subset=["uniform_top1"])
    if len(u):
        a.plot(u["uniform_macs_m"], u["uniform_top1"], ":", label="uniform width, same MACs", **STYLE["uniform"])
    if dense:
        a.plot(dense["macs"] / 1e6, dense["top1"], linestyle="none", label="dense, same epochs", **STYLE["dense"])
    log_macs_axis(a)
    a.set_ylabel("top-1 (%)")
    a.set_title(title)
    a.legend(loc="best")
    paper = paper_relative(table)
    b.plot(100 / paper["macs_x"], paper["drop"], "-", label="DNAL, paper (full width, GPU)", **STYLE["paper"])
    if dense:
        b.plot(100 * rows["macs_m"] * 1e6 / base_macs, rows["drop"], "--", label="DNAL, ours", **STYLE["DNAL"])
        if len(u):
            b.plot(100 * u["uniform_macs_m"] * 1e6 / base_macs, dense["top1"] - u["uniform_top1"], ":",
                   label="uniform width, ours", **STYLE["uniform"])
    b.axhline(0, color="0.5", lw=0.8)
    log_macs_axis(b, "MACs (% of the same side's dense network, log scale)")
    b.set_ylabel("top-1 drop from dense (points)")
    b.set_title("drop against relative MACs")
    b.legend(loc="best")
    if smoke:
        a.axhline(10.0, color="0.4", lw=1, ls=":", label="chance (10 classes)")
        a.legend(loc="lower right")
        a.text(0.02, 0.04, "smoke profile: machinery check, chance-level accuracy", transform=a.transAxes,
               fontsize=9, color="tab:red", bbox=dict(fc="white", ec="tab:red", alpha=0.85))
    fig.tight_layout()
    return fig


def plot_widths(folder: Path | str, lams, base_widths, xlabel: str = "conv layer"):
    """Per-layer widths as a share of the dense network's: the learned ones of each lambda
    (bars) and the uniform network at the same MACs (a line, when it has run), against the gated
    layers (``xlabel``). Returns the figure."""
    import matplotlib.pyplot as plt
    import numpy as np

    folder = Path(folder)
    ctl = controls(folder)
    lams = [lambda_label(x) for x in lams]
    cols = min(len(lams), 2)
    rows = -(-len(lams) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.4 * cols, 2.9 * rows), sharey=True, squeeze=False)
    x = np.arange(1, len(base_widths) + 1)
    for ax in axes.flat[len(lams):]:
        ax.set_visible(False)
    for ax, lam in zip(axes.flat, lams):
        w = np.array(_read(folder / "arch" / f"lam{lam}.json")["widths"]) / np.array(base_widths)
        ax.bar(x, 100 * w, color=STYLE["DNAL"]["color"], alpha=0.75, label="learned")
        u = ctl.get(lam)
        if u:
            ax.plot(x, 100 * np.array(u["widths"]) / np.array(base_widths), "-", color=STYLE["uniform"]["color"],
                    lw=2, label="uniform, same MACs")
        ax.set_title(f"lambda {lam}")
        ax.set_xlabel(xlabel)
        ax.set_xticks(x[::2])
        ax.grid(alpha=0.3, axis="y")
    for ax in axes[:, 0]:
        ax.set_ylabel("kept (% of dense)")
    # the legend where both entries are drawn: the first panel with a uniform control
    both = next((ax for ax, lam in zip(axes.flat, lams) if ctl.get(lam)), axes.flat[0])
    both.legend(loc="upper right", fontsize=8.5)
    fig.tight_layout()
    return fig


def read_sweep(folder: Path | str):
    """The rows of ``sweep.json`` (Table I's eq. 4 sweep) and of any ``sweep_<form>.json`` (the
    same map for another loss form, ``experiments.calibration``) as one DataFrame (lambda,
    loss_form, macs_reduction, hard_top1, ...)."""
    import pandas as pd

    return pd.concat([pd.DataFrame(_read(f)["rows"]) for f in sorted(Path(folder).glob("sweep*.json"))],
                     ignore_index=True)


def plot_sweep(sweep, chosen=(), title: str = "MACs reduction against lambda"):
    """MACs reduction after the architecture stage against lambda, one line per loss form
    (``loss_form``), the chosen lambdas ringed. Returns the figure."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    names = {"paper": "eq. 4 (with delta)", "code": "authors' code (no delta)"}
    for form, g in sweep.groupby("loss_form"):
        g = g.sort_values("lambda")
        ax.plot(g["lambda"], g["macs_reduction"], "o-", label=names.get(form, form))
    pick = sweep[(sweep["loss_form"] == "paper") & sweep["lambda"].isin(list(chosen))]
    if len(pick):
        ax.plot(pick["lambda"], pick["macs_reduction"], "o", ms=13, mfc="none", mec="k", label="chosen for Table I")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(_ticker())
    ax.yaxis.set_minor_formatter(_ticker())
    ax.set_xlabel("lambda_a")
    ax.set_ylabel("MACs reduction (dense / pruned)")
    ax.set_title(title)
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    return fig


OWN_METHODS = {"dnal": "DNAL, MACs budget", "tp-l1-global": "Torch-Pruning, global L1",
               "uniform": "uniform width, from scratch"}


def own_rows(folder: Path | str):
    """The chapter "Prune your own network" at the cpu scale (``experiments.own``), one row per
    trained network (None while none is committed): ``method`` (``OWN_METHODS``'s words, or
    "dense, from scratch"), ``target`` (the MACs fraction aimed at), ``macs_m``, ``params_m``,
    ``macs_frac`` (of the dense network's), ``top1``, ``epochs``, and for each pruned size
    ``vs_uniform`` / ``vs_tp`` (this row's top-1 minus uniform width's / Torch-Pruning's at
    that target, points; NaN where either has not run)."""
    import pandas as pd

    folder = Path(folder)
    rows = []
    dense = folder / "controls" / "dense.json"
    if dense.is_file():
        rows.append({"key": "dense", **_read(dense), "target": 1.0})
    for f in sorted(folder.glob("expected-macs_macs*.json")):
        rows.append({"key": "dnal", **_read(f)})
    for f in sorted(folder.glob("tp-l1-global_macs*.json")):
        rows.append({"key": "tp-l1-global", **_read(f)})
    for f in sorted((folder / "controls").glob("uniform_macs*.json")):
        rows.append({"key": "uniform", **_read(f)})
    if not rows:
        return None
    d = pd.DataFrame(rows)
    base = d["baseline_macs"].dropna().iloc[0] if "baseline_macs" in d and d["baseline_macs"].notna().any() else \
        d.loc[d["key"] == "dense", "macs"].iloc[0]
    if "epochs" not in d:
        d["epochs"] = float("nan")
    d = d.assign(method=d["key"].map({**OWN_METHODS, "dense": "dense, from scratch"}), macs_m=d["macs"] / 1e6,
                 params_m=d["params"] / 1e6, macs_frac=d["macs"] / base)
    top = {(k, t): v for k, t, v in zip(d["key"], d["target"], d["top1"])}
    nan = float("nan")
    d["vs_uniform"] = [v - top[("uniform", t)] if k != "uniform" and ("uniform", t) in top else nan
                       for k, t, v in zip(d["key"], d["target"], d["top1"])]
    d["vs_tp"] = [v - top[("tp-l1-global", t)] if k != "tp-l1-global" and ("tp-l1-global", t) in top else nan
                  for k, t, v in zip(d["key"], d["target"], d["top1"])]
    d.loc[d["key"] == "dense", ["vs_uniform", "vs_tp"]] = nan
    order = {"dense": 0, "dnal": 1, "tp-l1-global": 2, "uniform": 3}
    d = d.sort_values(["target", "key"], ascending=[False, True], key=lambda s: s.map(order) if s.name == "key"
                      else s)
    return d[["key", "method", "target", "macs_m", "params_m", "macs_frac", "top1", "epochs", "vs_uniform",
              "vs_tp"]].reset_index(drop=True)


def plot_own(rows, title: str):
    """Top-1 against MACs (log scale) of each method of ``own_rows``, the dense network a star.
    Returns the figure."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    marks = {"dnal": STYLE["DNAL"], "tp-l1-global": dict(color="tab:purple", marker="^"),
             "uniform": STYLE["uniform"], "dense": STYLE["dense"]}
    for key, g in rows.groupby("key", sort=False):
        g = g.sort_values("macs_m")
        ax.plot(g["macs_m"], g["top1"], ls="--" if key != "dense" else "", label=g["method"].iloc[0], **marks[key])
    log_macs_axis(ax)
    ax.set_ylabel("top-1 (%)")
    ax.set_title(title)
    ax.legend(fontsize=8.5)
    fig.tight_layout()
    return fig
