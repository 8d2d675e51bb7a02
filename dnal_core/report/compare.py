"""The paper beside our numbers: one of its tables beside our rows, its rows alone when no
paper-profile run is committed, the commands of such a run, and the checks a reproduction makes
before it shows a number.

  ``paper_vs_ours``  one of the paper's tables beside our rows, with reduction ratios
  ``beside_paper``, ``paper_run_table``  our rows beside the paper's; the paper's rows alone
                     (and why) when no paper-profile run is committed
  ``baseline_counts``, ``paper_commands``  counts both ways beside the paper's; the commands
  ``check_close``    the assertion a reproduction makes before it shows a number
  ``check_top1``, ``check_macs_order``, ``check_smoke_baseline``  the table chapters' checks
"""
from __future__ import annotations

import math

from .results import has_results, read_folder
from .text import lambda_label, ours_table, run_line


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

    from ..paper import paper_table

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
    from ..paper import paper_table

    paper = paper_table(table)
    rows = paper[paper["method"].isin(["Baseline", "DNAL"])][["lambda", "macs_m", "params_m", "top1", "top5"]]
    return None, rows, (f"No full (paper-profile) run of Table {table} exists yet: results/{name}/paper/ is "
                        "empty. The table below is the paper's alone.")


def baseline_counts(model, table: str):
    """``model`` counted both ways (``macs``: conv+linear, every parameter; ``authors``: the
    authors' counter, ``measure.count``) and the paper's baseline row of ``table``, in millions."""
    import pandas as pd

    from ..measure import count
    from ..paper import paper_baseline

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
    from ..measure import count
    from ..models import build
    from ..recipes import get_recipe

    small = count(build(model, width_mult=get_recipe(model, "smoke").width_mult, num_classes=num_classes))
    row = finals.iloc[0]
    assert (row["baseline_macs"], row["baseline_params"]) == (small["macs"], small["params"]), (row, small)
    assert row["macs"] <= row["baseline_macs"] and row["params"] <= row["baseline_params"]
    return (f"smoke: {row['baseline_macs'] / 1e6:.2f}M -> {row['macs'] / 1e6:.2f}M MACs "
            f"at lambda {lambda_label(row['lambda'])}")
