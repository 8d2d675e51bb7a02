"""The controls that say whether learning the widths pays: the dense network, or every width
scaled by one factor, trained from scratch for as many epochs as weights + architecture +
finetune, one cosine schedule (factor 1: the like-for-like dense baseline; smaller factors: the
uniform-width network at a pruned network's MACs, ``uniform_width_for``).
"""
from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from ..io import read_json, write_json
from ..measure import count
from ..models import build
from ..recipes import Recipe, override
from .runs import claim, label, provenance


def control_recipe(recipe: Recipe, width: float, key: str = "width_mult") -> Recipe:
    """The control: ``recipe``'s network at ``width`` (the recipe field ``key``: the registered
    builders' ``width_mult``, or a constructor keyword such as ``model_args.width``), trained from
    scratch as one weight stage of weights + architecture + finetune epochs (cosine from the
    weight stage's lr)."""
    epochs = recipe.weights.epochs + recipe.arch.epochs + recipe.finetune.epochs
    return override(recipe, {key: width, "weights.epochs": epochs, "weights.schedule": "cosine"})


def control(recipe: Recipe, data, runs: Path, width: float, name: str, device="auto",
            key: str = "width_mult") -> dict:
    """Train the control at ``width`` (``control_recipe``) into runs/<name>, resumable; returns
    its summary row, which names the width by the last part of ``key``."""
    from ..io import load_model
    from ..train import run_pipeline

    r = control_recipe(recipe, width, key)
    folder = runs / name
    if not (folder / "weights.pt").is_file():
        run_pipeline(r, data, folder, device=device, stages=["weights"], resume=True)
    model, meta = load_model(folder / "weights.pt")
    size = count(model)
    widths = {"widths": list(model.widths)} if hasattr(model, "widths") else {}
    return {"name": name, key.rsplit(".", 1)[-1]: width, **widths, "macs": size["macs"],
            "params": size["params"], "top1": meta.get("top1"), "top5": meta.get("top5"),
            "epochs": r.weights.epochs, "seconds": meta.get("seconds")}


def closest(macs_at: Callable[[float], float], target: float, lo: float, hi: float, *, rising: bool = True,
            tol: float = 0.02, steps: int = 40, grid: bool = False, what: str = "no setting") -> float:
    """The setting x in [lo, hi] whose ``macs_at(x)`` (monotone: growing with x when
    ``rising``) comes closest to ``target``: bisection, then the best of the points it
    visited, or (``grid``, for widths, whose channel counts are integers) of a fine grid of
    settings 0.25% apart around where it ended. ValueError ``"<what> reaches ... within
    <tol>"`` naming the closest miss when none comes within ``tol`` (relative)."""
    seen = {}
    for _ in range(steps):
        mid = (lo + hi) / 2
        seen[mid] = macs_at(mid)
        lo, hi = (mid, hi) if (seen[mid] < target) == rising else (lo, mid)
    if grid:
        seen = {x: macs_at(x) for x in (round(lo * (1 + k / 400), 5) for k in range(-8, 9))}
    best = min(seen, key=lambda x: abs(seen[x] / target - 1))
    err = seen[best] / target - 1
    if abs(err) > tol:
        raise ValueError(f"{what} reaches {target:.0f} MACs within {tol:.0%} (closest: {best:.4g}, {err:+.1%})")
    return best


def uniform_width_for(model: str, macs: float, num_classes: int = 10, tol: float = 0.02,
                      lo: float = 0.01, hi: float = 1.0) -> float:
    """The one width factor (relative to the full network) whose network has ``macs`` MACs
    within ``tol`` (relative), on a grid of channel counts (``closest``). ValueError when no
    factor comes within ``tol``."""
    return closest(lambda w: count(build(model, width_mult=w, num_classes=num_classes))["macs"], macs, lo, hi,
                   tol=tol, grid=True, what=f"no uniform width of {model}")


def table1_controls(recipe, data, runs: Path, out: Path, command: str, device="auto",
                    poll: float = 60.0, dense: bool = True, wait: bool = True) -> None:
    """The dense control (out/controls/dense.json; ``dense=False``: not trained), then, once
    out/chosen.json exists, the uniform-width network at each chosen lambda's pruned MACs
    (out/controls/uniform_lam<label>.json; ``wait=False``: the dense control only). Two such
    processes side by side share the work: each claims the lambda it trains (``claim``)."""
    prov = provenance(command)
    want, dense = dense, out / "controls" / "dense.json"
    if want and not dense.is_file() and claim(runs / "dense"):
        write_json(dense, {**control(recipe, data, runs, recipe.width_mult, "dense", device), **prov})
    while wait:  # chosen.json is read anew after each control: a refined sweep may change it
        while not (out / "chosen.json").is_file():
            time.sleep(poll)
        sweep = {r["lambda"]: r for r in read_json(out / "sweep.json")["rows"]}
        # the smallest network first: a session cut short keeps the most controls
        todo = [lam for lam in sorted(read_json(out / "chosen.json")["lambdas"], reverse=True)
                if not (out / "controls" / f"uniform_lam{label(lam)}.json").is_file()]
        if not todo:
            return
        # a second controls process (another core) takes the next lambda nobody trains
        lam = next((lam for lam in todo if claim(runs / f"uniform_lam{label(lam)}")), None)
        if lam is None:  # every remaining control is being trained by another process
            return
        path = out / "controls" / f"uniform_lam{label(lam)}.json"
        # the finetuned network's MACs when it exists (its search may have been re-run from
        # another run of the weight stage than the sweep row's), else the sweep row's
        final = out / f"lam{label(lam)}.json"
        target = read_json(final)["macs"] if final.is_file() else sweep[lam]["macs"]
        w = uniform_width_for(recipe.model, target)
        row = control(recipe, data, runs, w, f"uniform_lam{label(lam)}", device)
        write_json(path, {**row, "lambda": lam, "target_macs": target, **prov})
