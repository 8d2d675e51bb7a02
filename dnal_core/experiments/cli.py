"""The command line of ``python -m dnal_core.experiments`` (see the package's docstring)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from ..recipes import get_recipe, override
from . import (NAMES, TABLE2_TARGETS, budget_runs, calibration, figure_runs, model_for, provenance,
               table1_controls, table1_search)
from . import __doc__ as DOC


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m dnal_core.experiments", description=DOC.split("\n\n")[0])
    p.add_argument("experiment", choices=sorted(NAMES))
    p.add_argument("--part", choices=["search", "controls", "calibration", "scratch", "classic", "collect", "variant",
                                      "uniform", "dense"],
                   help="table1 (and table2, ResNet20 at the cpu profile, and own, your own network: search "
                        "or controls): which of its "
                        "processes (calibration: the delta-free loss form's lambda "
                        "sweep); criteria: scratch (the learned widths trained from scratch), classic "
                        "(classic criteria at Table I's MACs), collect (Table I's and the budget "
                        "chapter's networks as rows), variant (Table I at --width-mult and --seed, "
                        "at --reductions only: the width trend and the seeds) or uniform (a variant's uniform-width "
                        "controls at --reductions of its dense MACs, without waiting for its search: a second "
                        "process's share); precision: dense (the dense "
                        "control in bf16) or search (one lambda's search in fp32 and bf16)")
    p.add_argument("--profile", default="cpu")
    p.add_argument("--data", required=True)
    p.add_argument("--runs", default="", help="run folders (default runs/<experiment>/<profile>)")
    p.add_argument("--out", default="", help="results (default results/<experiment>/<profile>)")
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--precision", choices=["auto", "fp32", "bf16"], default=None,
                   help="CPU training arithmetic of every run (default the profile's, fp32; auto: bf16 where "
                        "the CPU has bf16 matrix instructions and a probe finds it faster; "
                        "book/reference/training.md); a run folder keeps the precision it started with")
    p.add_argument("--lambda", dest="lam", type=float, default=None,
                   help="fig4/fig5: the lambda to search at (default: the one their results already used, "
                        "else Table I's chosen lambda nearest a 2.5x reduction)")
    p.add_argument("--seeds", type=int, nargs="+", default=None,
                   help="fig4: the seeds to run (default 0 1); two processes given one seed each run side "
                        "by side and write different files; precision --part search: the search's seeds "
                        "(default the recipe's)")
    p.add_argument("--methods", nargs="+", default=None,
                   help="criteria --part classic|variant: the classic methods to run, in order (classic's "
                        "default all: l1|bn|taylor|random, each -layer and -global; variant's none)")
    p.add_argument("--targets", nargs="+", default=None,
                   help="criteria --part classic: the Table I networks whose MACs to prune to, in order, "
                        "e.g. lam3e-3 (default every finetuned one, smallest first)")
    p.add_argument("--width-mult", type=float, default=None, help="criteria --part variant: the network width")
    p.add_argument("--seed", type=int, default=None, help="criteria --part variant: the seed (default the recipe's)")
    p.add_argument("--reductions", type=float, nargs="+", default=None,
                   help="criteria --part variant: the MACs reductions (default 2.4 4)")
    p.add_argument("--grid", type=float, nargs="+", default=None,
                   help="criteria --part variant: the lambdas searched first (default Table I's sweep)")
    p.add_argument("--dense", action="store_true", help="criteria --part variant: train the dense network too")
    p.add_argument("--no-budget", action="store_true",
                   help="criteria --part variant: leave out the cost-aware searches (the seeds compare eq. 4, "
                        "uniform width and a classic criterion only)")
    a = p.parse_args(argv)
    from ..report import repo_root

    if a.experiment == "table1" and a.part not in ("search", "controls", "calibration"):
        p.error("table1 needs --part search, controls or calibration")
    if a.experiment in ("table2", "own") and a.part not in ("search", "controls"):
        p.error(f"{a.experiment} needs --part search or controls")
    if a.experiment == "criteria" and a.part not in ("scratch", "classic", "collect", "variant", "uniform"):
        p.error("criteria needs --part scratch, classic, collect, variant or uniform")
    if a.experiment == "precision" and a.part not in ("dense", "search"):
        p.error("precision needs --part dense or search")
    given = [k for k in ("width_mult", "seed", "reductions", "grid") if getattr(a, k) is not None] + ["dense"] * a.dense
    given += ["no_budget"] * a.no_budget
    if given and a.part not in ("variant", "uniform"):
        p.error(f"--{given[0].replace('_', '-')} is for criteria --part variant")
    if a.part == "uniform" and (a.grid or a.no_budget):
        p.error("--grid and --no-budget are for criteria --part variant")
    if a.part in ("variant", "uniform") and (a.width_mult is None or not 0 < a.width_mult <= 1):
        p.error(f"criteria --part {a.part} needs --width-mult in (0, 1]")
    if any(x <= 1 for x in a.reductions or ()) or any(x <= 0 for x in a.grid or ()):
        p.error("--reductions must be above 1 and --grid lambdas above 0")
    if a.precision is not None and a.experiment == "precision":
        p.error("precision sets each run's precision itself: no --precision")
    try:
        recipe = get_recipe(model_for(a.experiment, a.profile), a.profile)
        if a.precision is not None:
            recipe = override(recipe, {"precision": a.precision})
    except ValueError as e:
        print(f"experiments: {e}", file=sys.stderr)
        return 2
    torch.set_num_threads(a.threads)
    name = NAMES[a.experiment]
    runs = Path(a.runs) if a.runs else repo_root() / "runs" / name / a.profile
    out = Path(a.out) if a.out else repo_root() / "results" / name / a.profile
    part = f" --part {a.part}" if a.part else ""
    lam = f" --lambda {a.lam:g}" if a.lam is not None else ""
    if a.seeds is not None and a.experiment not in ("fig4", "precision"):
        p.error("--seeds is for fig4 and precision --part search")
    if a.targets and a.part != "classic" or a.methods and a.part not in ("classic", "variant"):
        p.error("--methods is for criteria --part classic or variant, --targets for classic")
    seeds = " --seeds " + " ".join(map(str, a.seeds)) if a.seeds else ""
    only = "".join(f" --{k} " + " ".join(map(str, v)) for k, v in (
        ("methods", a.methods), ("targets", a.targets), ("width-mult", [a.width_mult] if a.width_mult else None),
        ("seed", [a.seed] if a.seed is not None else None), ("reductions", a.reductions), ("grid", a.grid)) if v)
    only += " --dense" * a.dense + " --no-budget" * a.no_budget
    command = (f"python -m dnal_core.experiments {a.experiment}{part} --profile {a.profile} "
               f"--data $DNAL_DATA --threads {a.threads}{lam}{seeds}{only}"
               + (f" --precision {a.precision}" if a.precision else ""))
    results = repo_root() / "results"
    sources = (results / NAMES["table1"] / a.profile, results / NAMES["budget"] / a.profile)
    try:
        if a.experiment == "criteria" and a.part in ("variant", "classic"):
            from ..criteria import classic_plan

            # the method and target names first (a variant's targets come from its own search)
            classic_plan(sources[0], a.methods, a.targets if a.part == "classic" else None)
        if a.part != "collect":  # every other part trains: the data must be there
            from ..data.cifar import find_format

            find_format(a.data)
    except ValueError as e:
        print(f"experiments: {e}", file=sys.stderr)
        return 2
    if a.experiment == "own":  # your own network: DNAL's budget, Torch-Pruning, uniform width
        from . import own

        (own.own_search if a.part == "search" else own.own_controls)(recipe, a.data, runs, out, command, a.device)
    elif a.experiment == "table2" and a.part == "search":  # Table I's experiment on Table II's network
        table1_search(recipe, a.data, runs, out, command, a.device, targets=TABLE2_TARGETS)
    elif a.experiment == "table2":
        table1_controls(recipe, a.data, runs, out, command, a.device)
    elif a.experiment == "table1" and a.part == "search":
        table1_search(recipe, a.data, runs, out, command, a.device)
    elif a.experiment == "table1" and a.part == "calibration":
        calibration(recipe, a.data, runs, out, command, a.device)
    elif a.experiment == "table1":
        table1_controls(recipe, a.data, runs, out, command, a.device)
    elif a.experiment == "criteria":
        from .. import criteria

        if a.part == "collect":
            criteria.collect(recipe, *sources, out)
        elif a.part == "uniform":
            criteria.variant_uniform(recipe, a.data, runs, out, a.width_mult, recipe.seed if a.seed is None else a.seed,
                                     a.reductions or criteria.WIDTH_REDUCTIONS, command, a.device, a.dense)
        elif a.part == "variant":
            criteria.variant(recipe, a.data, runs, out, a.width_mult, recipe.seed if a.seed is None else a.seed,
                             a.reductions or criteria.WIDTH_REDUCTIONS, command, a.device, a.dense,
                             a.methods or (), a.grid, budget=not a.no_budget)
        elif a.part == "classic":
            criteria.classic(recipe, a.data, runs, out, repo_root() / "runs" / NAMES["table1"] / a.profile,
                             sources[0], provenance(command), a.device, a.methods, a.targets)
        else:
            criteria.scratch(recipe, a.data, runs, out, *sources, provenance(command), a.device)
    elif a.experiment == "precision":
        from . import precision

        table1 = NAMES["table1"]
        if a.part == "dense":
            precision.dense(recipe, a.data, runs, out, repo_root() / "results" / table1 / a.profile,
                            provenance(command), a.device)
        else:
            precision.search(recipe, a.data, runs, out, repo_root() / "runs" / table1 / a.profile,
                             repo_root() / "results" / table1 / a.profile, provenance(command), a.device,
                             precision.SEARCH_LAMBDA if a.lam is None else a.lam, a.seeds)
    elif a.experiment == "budget":  # from Table I's weight stage (its run folders)
        budget_runs(recipe, a.data, repo_root() / "runs" / NAMES["table1"] / a.profile, runs, out, command, a.device)
    else:
        try:
            figure_runs(a.experiment, a.profile, a.data, runs, out, command, a.device, a.lam, a.seeds)
        except ValueError as e:
            print(f"experiments: {e}", file=sys.stderr)
            return 2
    return 0
