"""What the chapter "What decides the result" shows, computed from the rows of
``dnal_core.criteria`` (``results/criteria_vgg16_cifar10/<profile>/rows.jsonl``): the learned
widths trained from scratch against DNAL finetuned and uniform width, the classic criteria, the
width trend and the seeds, every comparison at equal MACs (within ``EQUAL_MACS``) or said not to be.

A row belongs to a *group*: one weight stage, i.e. one width and seed. Table I's and the budget
chapter's networks (sources ``table1/...``, ``budget/...``) and the rows trained from them form
the base group; ``criteria --part variant`` adds groups named ``w<width>-seed<seed>``. Controls
are only ever compared within their group.
"""
from __future__ import annotations

import functools
import math
import re


EQUAL_MACS = 0.02  # two networks compare "at equal MACs" when their MACs differ by at most this


VARIANT = re.compile(r"^w[0-9.]+-seed[0-9]+$")


def group(row: dict) -> str:
    """The weight stage a row comes from: its variant's name, else "base"."""
    prefix = row["source"].split("/", 1)[0]
    return prefix if VARIANT.match(prefix) else "base"


def base_rows(rows: list[dict]) -> list[dict]:
    """The rows of Table I's own weight stage (and of the networks trained from it)."""
    return [r for r in rows if group(r) == "base"]


def uniform_at(rows: list[dict], macs: float) -> tuple[float | None, str]:
    """Top-1 of the uniform-width network at ``macs``, from the uniform and dense rows: a trained
    control within ``EQUAL_MACS`` ("trained"), else linear in log MACs between the two nearest
    controls on either side ("interpolated"); (None, "outside") beyond the controls' range.
    ``rows``: one group's (``group``)."""
    ctl = sorted((r for r in rows if r["method"] in ("uniform", "dense")), key=lambda r: r["macs"])
    for r in ctl:
        if abs(r["macs"] / macs - 1) <= EQUAL_MACS:
            return r["top1"], "trained"
    for lo, hi in zip(ctl, ctl[1:]):
        if lo["macs"] < macs < hi["macs"]:
            t = (math.log(macs) - math.log(lo["macs"])) / (math.log(hi["macs"]) - math.log(lo["macs"]))
            return lo["top1"] + t * (hi["top1"] - lo["top1"]), "interpolated"
    return None, "outside"


def scratch_table(rows: list[dict]):
    """One line per learned network (smallest first): its MACs, the reduction against the dense
    control, top-1 finetuned (as DNAL does) and trained from scratch (NaN: not run yet), the
    uniform-width network at the same MACs (how it was obtained) and the differences, in points."""
    import pandas as pd

    dense = next((r for r in rows if r["method"] == "dense"), None)
    scratch = {r["source"]: r for r in rows if r["method"] == "dnal-scratch"}
    out = []
    for r in sorted((r for r in rows if r["method"] in ("dnal-eq4", "dnal-cost")), key=lambda r: r["macs"]):
        s = scratch.get(r["source"])
        u, how = uniform_at(rows, r["macs"])
        out.append({"network": r["source"], "method": r["method"], "macs_m": r["macs"] / 1e6,
                    "reduction": dense["macs"] / r["macs"] if dense else float("nan"),
                    "finetuned": r["top1"], "scratch": s["top1"] if s else float("nan"),
                    "uniform": u if u is not None else float("nan"), "uniform_from": how})
    t = pd.DataFrame(out)
    if len(t):
        t["scratch_minus_finetuned"] = t["scratch"] - t["finetuned"]
        t["scratch_minus_uniform"] = t["scratch"] - t["uniform"]
    return t


def scratch_verdict(table) -> str:
    """What the scratch rows say, in one sentence, computed from ``scratch_table``."""
    done = table.dropna(subset=["scratch"])
    if not len(done):
        return "no learned architecture has been trained from scratch yet"
    n = len(done)
    better = int((done["scratch_minus_finetuned"] > 0).sum())
    vs_u = done.dropna(subset=["uniform"])
    part = (f"trained from scratch, {better} of {n} learned networks score above their finetuned selves "
            f"(mean {done['scratch_minus_finetuned'].mean():+.2f} points)")
    if len(vs_u):
        above = int((vs_u["scratch_minus_uniform"] > 0).sum())
        part += (f"; against uniform width at the same MACs, {above} of {len(vs_u)} score above "
                 f"(mean {vs_u['scratch_minus_uniform'].mean():+.2f} points)")
    return part


def classic_table(rows: list[dict]):
    """One line per MACs target (a Table I network), one column per method: top-1 (%) of DNAL
    (eq. 4, finetuned), its widths from scratch, the uniform-width network at the same MACs and
    every classic criterion that has run there; None when no classic criterion has run."""
    import pandas as pd

    classic = [r for r in rows if r["method"] not in ("dnal-eq4", "dnal-cost", "dnal-scratch", "uniform", "dense")]
    if not classic:
        return None
    out = []
    for t in sorted({r["source"] for r in classic}, key=lambda s: next(r["macs"] for r in classic if r["source"] == s)):
        dnal = next((r for r in rows if r["method"] == "dnal-eq4" and r["source"] == t), None)
        line = {"target": t, "MACs (M)": round(dnal["macs"] / 1e6, 2) if dnal else None,
                "dnal-eq4": dnal["top1"] if dnal else None,
                "dnal-scratch": next((r["top1"] for r in rows if r["method"] == "dnal-scratch" and r["source"] == t),
                                     None),
                "uniform": uniform_at(rows, dnal["macs"])[0] if dnal else None}
        line.update({r["method"]: r["top1"] for r in classic if r["source"] == t})
        out.append(line)
    return pd.DataFrame(out).set_index("target")


def plot_methods(rows: list[dict], title: str = "VGG16 x1/4, CIFAR-10: top-1 against MACs"):
    """Top-1 against MACs (millions, log scale) of every method in ``rows``, one line each.
    Returns the figure."""
    import matplotlib.pyplot as plt

    from .report_cpu import log_macs_axis

    style = {"dnal-eq4": ("DNAL, eq. 4, finetuned", "tab:red", "D", "--"),
             "dnal-cost": ("DNAL, cost-aware budget, finetuned", "tab:orange", "v", "--"),
             "dnal-scratch": ("DNAL's widths, from scratch", "tab:purple", "^", "-."),
             "uniform": ("uniform width, from scratch", "tab:green", "s", ":"),
             "dense": ("dense, from scratch", "black", "*", "none")}
    fig, ax = plt.subplots(figsize=(6.8, 4.6))
    others = sorted({r["method"] for r in rows} - set(style))  # the classic criteria: thin grey lines
    for i, method in enumerate(others):
        style[method] = (method, plt.cm.Greys(0.35 + 0.5 * i / max(len(others) - 1, 1)), "o", "-")
    for method, (name, color, marker, ls) in style.items():
        pts = sorted(((r["macs"] / 1e6, r["top1"]) for r in rows if r["method"] == method))
        if pts:
            ax.plot(*zip(*pts), linestyle=ls, marker=marker, color=color, label=name, ms=7 if method != "dense" else 12,
                    lw=1 if method in others else 1.5)
    log_macs_axis(ax)
    ax.set_ylabel("top-1 (%)")
    ax.set_title(title)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    return fig


# --- the width trend and the seeds -----------------------------------------------------------------

@functools.lru_cache(maxsize=None)
def dense_macs(width_mult: float, model: str = "vgg16-cifar") -> int:
    """MACs of the dense ``model`` at ``width_mult`` (counted once per width: every row of a
    width shares it)."""
    from .measure import count
    from .models import build

    return count(build(model, width_mult=width_mult))["macs"]


def against_uniform(rows: list[dict]):
    """Every DNAL network (eq. 4 and cost-aware, finetuned) of every group against the uniform
    width of its own group at the same MACs: width, seed, group, network, method, MACs (M), the
    reduction against the dense network of that width, top-1, uniform top-1 (NaN outside the
    controls) and the difference in points."""
    import pandas as pd

    out = []
    for g in sorted({group(r) for r in rows}):
        mine = [r for r in rows if group(r) == g]
        for r in sorted((r for r in mine if r["method"] in ("dnal-eq4", "dnal-cost")), key=lambda r: r["macs"]):
            u, how = uniform_at(mine, r["macs"])
            out.append({"width": r["width_mult"], "seed": r["seed"], "group": g, "network": r["source"],
                        "method": r["method"], "macs_m": r["macs"] / 1e6,
                        "reduction": dense_macs(r["width_mult"]) / r["macs"], "top1": r["top1"],
                        "uniform": float("nan") if u is None else u, "uniform_from": how})
    t = pd.DataFrame(out)
    if len(t):
        t["vs_uniform"] = t["top1"] - t["uniform"]
    return t


# A network stands for a target reduction within this factor: the one within which the lambda
# sweep counts a target as met (experiments.REFINE_TOL), so that the lambda a variant chose for
# a target (the 1/2 width's 1.92x for 2.4x) is the network shown for it.
NEAR = 1.3


def nearest(table, reduction: float, tol: float = NEAR):
    """Per (width, seed, method): the line of ``against_uniform`` whose reduction is nearest
    ``reduction`` on a log scale, within a factor ``tol``; the others dropped."""
    if not len(table):
        return table
    t = table.assign(off=(table["reduction"] / reduction).map(lambda x: abs(math.log(x))))
    t = t[t["off"] <= math.log(tol)].sort_values("off")
    return t.groupby(["width", "seed", "method"], as_index=False).first().drop(columns="off")


def width_trend(rows: list[dict], reductions=(2.4, 4.0), seed: int = 0):
    """For each width and reduction (seed ``seed``): DNAL's difference to uniform width at the
    same MACs, eq. 4 and cost-aware, from the networks nearest each reduction."""
    import pandas as pd

    t = against_uniform(rows)
    if not len(t):
        return t
    t = t[t["seed"] == seed]
    parts = [nearest(t, r).assign(target=r) for r in reductions]
    return pd.concat(parts, ignore_index=True).sort_values(["target", "method", "width"], ignore_index=True)


# Two-sided 95% critical values of Student's t by degrees of freedom (n - 1 seeds); 1.96 beyond.
T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262}


def verdict(diffs) -> tuple[int, float, float, str]:
    """n, mean, standard deviation (NaN for one value) and the verdict on paired differences
    (first minus second, points): "one seed"; "within noise" when the 95% confidence interval
    of the mean (Student's t, n - 1 degrees of freedom: 4.3 standard errors for three seeds)
    holds 0; else "first above" or "second above"."""
    d = [float(x) for x in diffs if not math.isnan(float(x))]
    n = len(d)
    mean = sum(d) / n if n else float("nan")
    sd = math.sqrt(sum((x - mean) ** 2 for x in d) / (n - 1)) if n > 1 else float("nan")
    word = ("one seed" if n < 2 else "within noise" if abs(mean) < T95.get(n - 1, 1.96) * sd / math.sqrt(n)
            else "first above" if mean > 0 else "second above")
    return n, mean, sd, word


METHOD_LABELS = {"l1-layer": "L1 per layer", "l1-global": "L1, global", "bn-layer": "BN scale per layer",
                 "bn-global": "BN scale, global", "taylor-layer": "Taylor per layer", "taylor-global": "Taylor, global",
                 "random-layer": "random per layer", "random-global": "random, global"}


SEED_REDUCTIONS = (2.36, 3.49)  # the seeds' two sizes: Table I's networks at lambda 2.3e-3 and 3e-3


def seed_table(rows: list[dict], width: float = 0.25, reductions=SEED_REDUCTIONS, classic: str = "l1-layer"):
    """One line per reduction and seed of width ``width``: eq. 4's finetuned network nearest the
    reduction (``nearest``), its MACs (M), its top-1, uniform width's at its MACs (``uniform_at``,
    its own weight stage) and the ``classic`` criterion's pruned to its MACs from the same weight
    stage (NaN where not run)."""
    import pandas as pd

    t = against_uniform(rows)
    out = []
    for red in reductions:
        d = nearest(t[(t["width"] == width) & (t["method"] == "dnal-eq4")], red) if len(t) else t
        for _, x in (d.sort_values("seed").iterrows() if len(d) else ()):
            c = next((r["top1"] for r in rows if r["method"] == classic and r["source"] == x["network"]),
                     float("nan"))
            out.append({"reduction": red, "seed": int(x["seed"]), "network": x["network"], "macs_m": x["macs_m"],
                        "dnal-eq4": x["top1"], "uniform": x["uniform"], "uniform_from": x["uniform_from"],
                        classic: c})
    return pd.DataFrame(out)


def seed_summary(table, classic: str = "l1-layer"):
    """From ``seed_table``: per reduction, each method's top-1 over the seeds (n, mean, sd) and
    the paired differences eq. 4 - uniform, ``classic`` - uniform and eq. 4 - ``classic`` with
    their verdicts (``verdict``, in the methods' names; "within noise" says how many seeds put
    the first above)."""
    import pandas as pd

    out = []
    names = {"dnal-eq4": "eq. 4", "uniform": "uniform width", classic: METHOD_LABELS.get(classic, classic)}
    for red, d in (table.groupby("reduction", sort=True) if len(table) else ()):
        for m in ("dnal-eq4", "uniform", classic):
            n, mean, sd, _ = verdict(d[m])
            out.append({"reduction": red, "what": f"{names[m]}, top-1", "n": n, "mean": mean, "sd": sd,
                        "verdict": ""})
        for a, b in (("dnal-eq4", "uniform"), (classic, "uniform"), ("dnal-eq4", classic)):
            diff = (d[a] - d[b]).dropna()
            n, mean, sd, word = verdict(diff)
            word = {"first above": f"{names[a]} above", "second above": f"{names[b]} above"}.get(word, word)
            if n >= 2 and word == "within noise":  # how the seeds lean, said beside it
                word += f" ({names[a]} above in {int((diff > 0).sum())} of {n} seeds)"
            out.append({"reduction": red, "what": f"{names[a]} - {names[b]}", "n": n, "mean": mean, "sd": sd,
                        "verdict": word})
    return pd.DataFrame(out)


def plot_width_trend(rows: list[dict], seed: int = 0):
    """DNAL's top-1 minus uniform width's at the same MACs against the MACs reduction, one line
    per width and DNAL form (seed ``seed``); the figure."""
    import matplotlib.pyplot as plt

    t = against_uniform(rows).dropna(subset=["vs_uniform"]) if rows else None
    fig, ax = plt.subplots(figsize=(6.8, 4.2))
    if t is not None and len(t):
        t = t[t["seed"] == seed]
        widths = sorted(t["width"].unique())
        for i, w in enumerate(widths):
            color = plt.cm.viridis(i / max(len(widths) - 1, 1))
            for method, ls, marker in (("dnal-eq4", "--", "D"), ("dnal-cost", "-", "v")):
                d = t[(t["width"] == w) & (t["method"] == method)].sort_values("reduction")
                if len(d):
                    ax.plot(d["reduction"], d["vs_uniform"], ls, marker=marker, color=color,
                            label=f"x{w:g}, {'eq. 4' if method == 'dnal-eq4' else 'cost-aware'}")
    ax.axhline(0, color="grey", lw=1)
    ax.set_xscale("log")
    ax.set_xlabel("MACs reduction against the dense network of that width (log scale)")
    ax.set_ylabel("DNAL minus uniform width (points)")
    ax.set_title("Does DNAL gain on uniform width as the network gets wider?")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
