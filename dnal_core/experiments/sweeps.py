"""The lambda sweep of the architecture stage and the choice of lambdas from it (Table I).

  ``lambda_sweep``    the architecture stage at each lambda of a grid from the shared weights,
                      extended at the ends (``extend``) and bisected where a target reduction
                      falls in a jump of the map (``refine``)
  ``choose_lambdas``  the lambdas whose MACs reductions come closest to target reductions
                      (1.5x, 2.5x, 5x, 10x): chosen on MACs, never on test accuracy
  ``calibration``     the same map for another sparsity-loss form (the authors' code's)
  ``table1_search``   weights, sweep, choice, then each chosen lambda's finetuning
"""
from __future__ import annotations

import math
from pathlib import Path

from ..io import read_json, write_json
from ..recipes import override
from .runs import finetune, label, provenance, search


TARGET_REDUCTIONS = (1.5, 2.5, 5.0, 10.0)  # MACs reductions the Table I lambdas are chosen for
SWEEP = (3e-5, 1e-4, 3e-4, 1e-3, 3e-3)   # eq. 4 lambdas searched first (extended at the ends)


def choose_lambdas(rows: list[dict], targets=TARGET_REDUCTIONS) -> list[float]:
    """For each target MACs reduction, the swept lambda whose reduction is closest to it on a
    log scale (each lambda once), sorted. Chosen on MACs alone."""
    left, chosen = list(rows), []
    for t in targets:
        if not left:
            break
        best = min(left, key=lambda r: abs(math.log(r["macs_reduction"] / t)))
        chosen.append(best["lambda"])
        left.remove(best)
    return sorted(chosen)


def extend(rows: list[dict], targets=TARGET_REDUCTIONS, factor: float = 3.0) -> float | None:
    """A lambda to add to a sweep whose reductions do not reach the targets at either end
    (a third of the smallest lambda, or three times the largest), else None."""
    rows = sorted(rows, key=lambda r: r["lambda"])
    if rows[0]["macs_reduction"] > targets[0] * 1.15:
        return float(f"{rows[0]['lambda'] / factor:.0e}")  # one significant digit: 3e-5 -> 1e-5
    if rows[-1]["macs_reduction"] < targets[-1] / 1.15:
        return float(f"{rows[-1]['lambda'] * factor:.0e}")
    return None


REFINE_TOL = 1.3  # a target reduction is met when a swept lambda comes within this factor of it


def refine(rows: list[dict], targets=TARGET_REDUCTIONS, tol: float = REFINE_TOL) -> float | None:
    """A lambda to add between two swept ones when a target reduction falls in the gap between
    their reductions and no swept lambda comes within ``tol`` of it (the map from lambda to
    reduction can jump: 3.5x at 3e-3, 130x at 9e-3 at the cpu profile): the geometric mean of
    the two, to two significant digits. None when every target is met or not bracketed."""
    rows = sorted(rows, key=lambda r: r["lambda"])
    for t in sorted(targets, key=lambda t: -min(abs(math.log(r["macs_reduction"] / t)) for r in rows)):
        if min(abs(math.log(r["macs_reduction"] / t)) for r in rows) <= math.log(tol):
            continue
        for lo, hi in zip(rows, rows[1:]):
            if lo["macs_reduction"] < t < hi["macs_reduction"]:
                mid = float(f"{math.sqrt(lo['lambda'] * hi['lambda']):.1e}")
                if mid not in (lo["lambda"], hi["lambda"]):
                    return mid
    return None


def lambda_sweep(recipe, data, runs: Path, path: Path, prov: dict, device="auto", grid=SWEEP, max_extra: int = 3,
                 max_refine: int = 0, prefix: str = "", void: Path | None = None,
                 targets=TARGET_REDUCTIONS) -> list[dict]:
    """The architecture stage at each lambda of ``grid`` from the shared weight stage, one row
    each (``search``), written to ``path`` after every search; extended at the ends by ``extend``
    (at most ``max_extra`` times), then bisected where a target falls in a jump by ``refine``
    (at most ``max_refine`` times). A row ``path`` already holds (same loss form) is not searched
    again: a session that lost its run folders keeps the committed sweep. ``void``: a file
    removed while the sweep still grows (a choice made from a shorter sweep). ``targets``: the
    MACs reductions the extension and bisection aim at. Returns the rows."""
    old = {r["lambda"]: r for r in (read_json(path)["rows"] if path.is_file() else [])
           if r.get("loss_form") == recipe.search.loss_form}
    rows, lams = [], list(grid)
    while lams:
        lam = lams.pop(0)
        rows.append(old.get(lam) or {**search(recipe, data, runs, lam, device, prefix=prefix), **prov})
        rows.sort(key=lambda r: r["lambda"])
        write_json(path, {"rows": rows, **prov})
        if not lams and max_extra > 0:
            extra = extend(rows, targets)
            if extra is not None:
                lams, max_extra = [extra], max_extra - 1
                continue
        if not lams and max_refine > 0:  # a target inside a jump of the map: bisect it
            mid = refine(rows, targets)
            if mid is not None:
                lams, max_refine = [mid], max_refine - 1
        if lams and void is not None:
            void.unlink(missing_ok=True)
    return rows


CODE_SWEEP = (1e-3, 1e-2, 1e-1)  # the authors' delta-free form: lambdas searched first (extended)


def calibration(recipe, data, runs: Path, out: Path, command: str, device="auto", grid=CODE_SWEEP,
                form: str = "code", max_extra: int = 3, max_refine: int = 3) -> list[dict]:
    """The lambda -> MACs reduction map of another sparsity-loss form (default the authors'
    code, eq. 4 without delta) from Table I's weight stage: ``lambda_sweep`` over ``grid``,
    extended at the ends and bisected where a target reduction falls in a jump, like Table I's
    (at most ``max_refine`` times), into out/sweep_<form>.json (rows already there are kept)
    and run folders runs/<form>-lam<label>. Beside Table I's eq. 4 sweep it shows that the map
    depends on the loss form. Returns the rows."""
    return lambda_sweep(override(recipe, {"search.loss_form": form}), data, runs, out / f"sweep_{form}.json",
                        provenance(command), device, grid, max_extra, max_refine, prefix=f"{form}-")


def table1_search(recipe, data, runs: Path, out: Path, command: str, device="auto", grid=SWEEP,
                  max_extra: int = 3, choose: bool = True, max_refine: int = 4,
                  targets=TARGET_REDUCTIONS) -> list[float]:
    """Weights, the eq. 4 sweep (written to out/sweep.json after every search; extended at the
    ends by ``extend``, then bisected where a target falls in a jump by ``refine``), the choice
    of lambdas (out/chosen.json; ``choose=False``: every lambda of ``grid``, e.g. the paper's),
    then each chosen lambda's finetuning (out/lam<label>.json, out/arch/, out/metrics/).
    What out/ already holds is kept: a swept row is not searched again, a finetuned lambda not
    finetuned again (its search re-runs only when a chosen lambda lost its run folder).
    ``targets``: the MACs reductions the lambdas are chosen for. Returns the chosen lambdas."""
    from ..report import copy_metrics

    prov = provenance(command)
    # while the sweep goes on, a choice made from an earlier, shorter sweep is void
    rows = lambda_sweep(recipe, data, runs, out / "sweep.json", prov, device, grid, max_extra,
                        max_refine if choose else 0, void=out / "chosen.json", targets=targets)
    chosen = choose_lambdas(rows, targets) if choose else sorted(grid)
    rule = "closest MACs reduction on a log scale, each lambda once" if choose else "every lambda searched"
    write_json(out / "chosen.json", {"lambdas": chosen, "targets": list(targets), "rule": rule, **prov})
    for lam in sorted(chosen, reverse=True):  # the smallest network first: a cut session keeps the most
        if (out / f"lam{label(lam)}.json").is_file():  # finetuned and committed earlier
            continue
        folder = runs / f"lam{label(lam)}"
        if not (folder / "search.pt").is_file():  # its row came from the committed sweep
            search(recipe, data, runs, lam, device)
        final = finetune(recipe, data, runs, lam, device)
        write_json(out / f"lam{label(lam)}.json", {**prov, **final})
        write_json(out / "arch" / f"lam{label(lam)}.json", read_json(folder / "arch.json"))
        copy_metrics(folder, out / "metrics" / f"lam{label(lam)}.jsonl", lam=lam)
    return chosen
