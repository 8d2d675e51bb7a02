"""The chapters' figures: saved as deterministic PNGs and shown as the same bytes, and the
paper's points beside ours.

  ``save_figure``    a matplotlib figure -> ``figures/<name>.png`` (deterministic bytes), shown
                     in the notebook as that same PNG whatever the matplotlib backend
  ``plot_acc_vs_macs``  top-1 against MACs, the paper's points beside ours
  ``plot_acc_vs_relative_macs``  the same against MACs as a share of each side's baseline
  ``plot_tables``    both plots, stacked (a smoke run says so in the figure)
"""
from __future__ import annotations

import io as _io
from pathlib import Path

from .text import lambda_label


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

    from ..io import atomic_path

    data = figure_png(fig, dpi)
    path = Path(fig_dir) / f"{name}.png"
    with atomic_path(path) as tmp:
        Path(tmp).write_bytes(data)
    plt.close(fig)
    return Image(data=data, format="png")


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

    from ..paper import paper_table

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

    from ..paper import paper_table

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
