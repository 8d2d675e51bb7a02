"""What decides the result: DNAL's learned VGG16 widths against controls at equal MACs
(the book's chapter "What decides the result").

Table I at the ``cpu`` profile ends on a negative: from 2.4x on, the uniformly narrowed network
beats the learned widths. The parts of this experiment each test one explanation; every trained
network is one line of ``results/criteria_vgg16_cifar10/<profile>/rows.jsonl`` (written under a
lock as each run ends, so two processes can share the work, each claiming the run it trains):

  ``scratch``   every finetuned Table I network's widths and the budget chapter's, trained from
                scratch with exactly the uniform control's recipe (``experiments.control_recipe``:
                weights + architecture + finetune epochs, one cosine schedule). Liu et al.,
                "Rethinking the Value of Network Pruning" (ICLR 2019): if the scratch network
                matches the uniform one, the inherited weights and the short finetune are what
                lose; if it stays below, the widths are.
  ``classic``   the classic criteria (L1 norm, BN scale, Taylor, random; per layer and global,
                scored by Torch-Pruning: ``dnal_core.prune.classic``) at each Table I network's
                MACs (within 2%), from Table I's weight stage, finetuned exactly as DNAL's networks.
  ``collect``   the networks Table I and the budget chapter already trained (DNAL finetuned with
                eq. 4 and with the cost-aware budget, the dense and uniform-width controls) as
                rows, with the provenance they were made with.

Run from the shell (resumable: a killed run continues from its last epoch)::

    python -m dnal_core.experiments criteria --part scratch --data $DNAL_DATA
"""
from __future__ import annotations

import fcntl
import json
from pathlib import Path

from .io import atomic_path, read_json
from .measure import count
from .recipes import Recipe, override

NAME = "criteria_vgg16_cifar10"
ROW_KEYS = ("method", "source", "width_mult", "widths", "macs", "params", "top1", "top5", "seed", "epochs",
            "seconds", "device", "cpu_kind", "date", "command", "git", "torch")


# --- the rows file --------------------------------------------------------------------------------

def read_rows(path: Path) -> list[dict]:
    """The rows of ``path`` (a JSON object a line); [] when it does not exist."""
    if not path.is_file():
        return []
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def add_row(path: Path, row: dict) -> None:
    """Append ``row`` to ``path`` under an exclusive lock (two processes share the file),
    replacing a row with the same (method, source, seed): a re-made run's row wins. Written to
    a temporary file and renamed, so a kill never leaves half a line."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        key = (row["method"], row["source"], row["seed"])
        rows = [r for r in read_rows(path) if (r["method"], r["source"], r["seed"]) != key] + [row]
        with atomic_path(path) as tmp:
            tmp.write_text("".join(json.dumps(r) + "\n" for r in rows))


def has_row(path: Path, method: str, source: str, seed: int) -> bool:
    return any((r["method"], r["source"], r["seed"]) == (method, source, seed) for r in read_rows(path))


# --- what was learned: the architectures to train from scratch --------------------------------------

def learned_architectures(table1_out: Path, budget_out: Path | None = None, prefix: str = "") -> list[dict]:
    """Every finetuned Table I network (``lam<label>.json`` with its ``arch/``) and every budget
    chapter network (``<form>_<kind><target>.json``) as {source, method, arch, result}, the
    smallest network first (a session cut short keeps the most rows where the gap is largest).
    Sources are "table1/<file>" and "budget/<file>", or "<prefix>/<file>" for a variant."""
    out = []
    for f in sorted(table1_out.glob("lam*.json")):
        arch = table1_out / "arch" / f.name
        if arch.is_file():
            out.append({"source": f"{prefix or 'table1'}/{f.stem}", "method": "dnal-eq4", "arch": read_json(arch),
                        "result": read_json(f), "file": f})
    for f in sorted(budget_out.glob("*_macs*.json")) if budget_out is not None else []:
        res = read_json(f)
        arch = {"model": res.get("model", "vgg16-cifar"), "widths": res["widths"]}
        out.append({"source": f"{prefix or 'budget'}/{f.stem}", "method": "dnal-cost", "arch": arch, "result": res,
                    "file": f})
    return sorted(out, key=lambda a: a["result"]["macs"])


def scratch_recipe(recipe: Recipe, arch: dict) -> Recipe:
    """The uniform control's recipe (``experiments.control_recipe``: one cosine schedule over
    weights + architecture + finetune epochs) for the network with ``arch``'s widths."""
    from .experiments import control_recipe

    return override(control_recipe(recipe, recipe.width_mult), {"widths": tuple(arch["widths"])})


def scratch_one(recipe: Recipe, data, runs: Path, item: dict, device="auto") -> dict:
    """Train ``item``'s architecture from scratch into runs/scratch_<source>; its row."""
    from .io import load_model
    from .train import run_pipeline

    r = scratch_recipe(recipe, item["arch"])
    folder = runs / ("scratch_" + item["source"].replace("/", "_"))
    if not (folder / "weights.pt").is_file():
        run_pipeline(r, data, folder, device=device, stages=["weights"], resume=True)
    model, meta = load_model(folder / "weights.pt")
    size = count(model)
    if size["macs"] != item["result"]["macs"]:  # the learned network, channel for channel
        raise AssertionError(f"{folder}: {size['macs']:,} MACs trained, the learned network has "
                             f"{item['result']['macs']:,}")
    return {"method": "dnal-scratch", "source": item["source"], "width_mult": recipe.width_mult,
            "widths": list(model.widths), "macs": size["macs"], "params": size["params"],
            "top1": meta.get("top1"), "top5": meta.get("top5"), "seed": r.seed, "epochs": r.weights.epochs,
            "seconds": meta.get("seconds"), "finetuned_top1": item["result"].get("top1"),
            "precision": (meta.get("precision") or {}).get("used", "fp32")}


def scratch(recipe: Recipe, data, runs: Path, out: Path, table1_out: Path, budget_out: Path, prov: dict,
            device="auto") -> int:
    """Every learned architecture of Table I and the budget chapter trained from scratch, one row
    each in out/rows.jsonl as each run ends; runs another process claimed are left to it.
    Returns the number of rows this call added."""
    from .experiments import claim

    rows, added = out / "rows.jsonl", 0
    for item in learned_architectures(table1_out, budget_out):
        if has_row(rows, "dnal-scratch", item["source"], recipe.seed):
            continue
        if not claim(runs / ("scratch_" + item["source"].replace("/", "_"))):
            continue
        add_row(rows, {**scratch_one(recipe, data, runs, item, device), **prov})
        added += 1
    return added


def classic_targets(table1_out: Path, prefix: str = "") -> list[dict]:
    """The MACs the classic criteria prune to: every finetuned Table I network's (smallest first)."""
    return [{"source": i["source"], "macs": i["result"]["macs"]}
            for i in learned_architectures(table1_out, prefix=prefix)]


def classic_one(recipe: Recipe, data, runs: Path, weights: Path, criterion: str, global_ranking: bool,
                target: dict, device="auto", grad_batches: int = 8) -> dict:
    """One classic criterion at one MACs target: from the shared weight stage (``weights``),
    Torch-Pruning's scores close the gates (``dnal_core.prune.classic``), then the recipe's
    finetune stage runs exactly as after a DNAL search (the pruner, precise BN, 12 epochs at the
    ``cpu`` profile). Run folder runs/classic_<method>_<source>; resumable. Its row."""
    import time

    from . import io
    from .prune.classic import close_gates, select_to_macs
    from .train import run_pipeline
    from .train.bn import calibration_batches
    from .train.pipeline import make_loaders, seed_everything

    method = f"{criterion}-{'global' if global_ranking else 'layer'}"
    folder = runs / f"classic_{method}_{target['source'].replace('/', '_')}"
    r = override(recipe, {"lam": None})
    if not (folder / "search.pt").is_file():
        run_pipeline(r, data, folder, device=device, stages=[], resume=True, weights_from=weights)
        t0 = time.perf_counter()
        model, wmeta = io.load_model(weights)
        seed_everything(r.seed)
        batches = None
        if criterion == "taylor":  # fixed training batches, the ones precise BN uses first
            train, _, _ = make_loaders(r, data, "cpu")
            train.batch_size = r.finetune.batch_size
            batches = calibration_batches(train, grad_batches)
        sel = select_to_macs(model, criterion, target["macs"], global_ranking, grad_batches=batches, seed=r.seed)
        close_gates(model, sel["keep"])
        io.save_model(model, folder / "search.pt",
                      {"stage": "arch", "seconds": time.perf_counter() - t0, "criterion": method,
                       "target_macs": target["macs"], "selected_macs": sel["macs"], "spread": sel.get("spread", False),
                       "top1": None, "hard_top1": None,
                       "config": r.to_dict(), "weights_top1": wmeta.get("top1")})
    final = run_pipeline(r, data, folder, device=device, stages=["finetune"], resume=True, weights_from=weights)
    return {"method": method, "source": target["source"], "width_mult": recipe.width_mult,
            "widths": final["widths"], "macs": final["macs"], "params": final["params"], "top1": final["top1"],
            "top5": final["top5"], "seed": r.seed, "epochs": r.weights.epochs + r.finetune.epochs,
            "seconds": sum(v for v in final["seconds"].values() if v), "target_macs": target["macs"],
            "precision": (final.get("precision") or {}).get("used", "fp32")}


def classic_methods() -> tuple[str, ...]:
    """Every classic method's name: ``<criterion>-layer`` (the same share in every layer) and
    ``<criterion>-global`` (one ranking over the network) for each of Torch-Pruning's criteria."""
    from .prune.classic import CRITERIA

    return tuple(f"{c}-{m}" for c in CRITERIA for m in ("layer", "global"))


def classic_plan(table1_out: Path, methods=None, targets=None, prefix: str = "") -> tuple[tuple[str, ...], list[dict]]:
    """The methods and MACs targets ``classic`` would run (see there); ValueError naming the
    valid choices for an unknown method or a Table I network that was not finetuned."""
    methods = tuple(methods or classic_methods())
    if bad := [m for m in methods if m not in classic_methods()]:
        raise ValueError(f"unknown classic method {bad[0]!r}; valid: {', '.join(classic_methods())}")
    every = {t["source"]: t for t in classic_targets(table1_out, prefix)}
    chosen = list(every.values()) if not targets else [every.get(f"{prefix or 'table1'}/{t}") for t in targets]
    if None in chosen:
        raise ValueError(f"no finetuned Table I network {targets[chosen.index(None)]!r}; "
                         f"valid: {', '.join(s.split('/')[1] for s in every)}")
    return methods, chosen


def classic(recipe: Recipe, data, runs: Path, out: Path, table1_runs: Path, table1_out: Path, prov: dict,
            device="auto", methods=None, targets=None, prefix: str = "") -> int:
    """The classic ``methods`` (default: every one of ``classic_methods``, in that order) at
    the MACs of the Table I networks ``targets`` names (e.g. "lam3e-3"; default every finetuned
    one, smallest first), one target after the other, from Table I's weight stage
    (table1_runs/weights, trained there when missing); one row each in out/rows.jsonl as each
    run ends; runs another process claimed are left to it. Returns the number of rows added."""
    from .experiments import claim, weights

    methods, chosen = classic_plan(table1_out, methods, targets, prefix)
    rows, added = out / "rows.jsonl", 0
    for target in chosen:
        for method in methods:
            if has_row(rows, method, target["source"], recipe.seed):
                continue
            if not claim(runs / f"classic_{method}_{target['source'].replace('/', '_')}"):
                continue
            criterion, mode = method.rsplit("-", 1)
            w = weights(recipe, data, table1_runs, device)
            add_row(rows, {**classic_one(recipe, data, runs, w, criterion, mode == "global", target, device),
                           **prov})
            added += 1
    return added


# --- variants: the same experiment at another width or seed ----------------------------------------

WIDTH_REDUCTIONS = (2.4, 4.0)  # the width trend's two sizes (issue 20)


def variant_name(width_mult: float, seed: int) -> str:
    return f"w{width_mult:g}-seed{seed}"


def variant(recipe: Recipe, data, runs: Path, out: Path, width_mult: float, seed: int, reductions, command: str,
            device="auto", dense: bool = False, methods=(), grid=None, max_extra: int = 3,
            max_refine: int = 4, budget: bool = True) -> int:
    """Table I's experiment for one width and seed, at the MACs ``reductions`` only: its own
    weight stage; the eq. 4 sweep (first ``grid``, default Table I's; extended and bisected
    towards the reductions) and the lambda closest to each reduction, finetuned; the uniform-width
    network trained at each one's MACs (``dense``: the dense network too); the cost-aware budget
    (``expected-macs``) steered to 1/r of the dense MACs (``budget=False``: left out); the
    classic ``methods`` at the eq. 4 networks' MACs. Run folders under runs/<name>, results under out/<name> (``variant_name``),
    every part resumable; then every network of the variant becomes a row of out/rows.jsonl with
    sources "<name>/...". Returns the number of rows collected."""
    from .experiments import SWEEP, budget_runs, provenance, table1_controls, table1_search

    name = variant_name(width_mult, seed)
    r = override(recipe, {"width_mult": width_mult, "seed": seed})
    vr, vo, reductions = runs / name, out / name, tuple(reductions)
    table1_search(r, data, vr, vo, command, device, grid=tuple(grid or SWEEP), max_extra=max_extra,
                  max_refine=max_refine, targets=reductions)
    table1_controls(r, data, vr, vo, command, device, dense=dense)
    if budget:
        budget_runs(r, data, vr, vr, vo, command, device, targets=tuple(round(1 / x, 4) for x in reductions))
    if methods:
        classic(r, data, vr, out, vr, vo, provenance(command), device, methods, prefix=name)
    return collect(r, vo, vo, out, prefix=name)


def variant_uniform(recipe: Recipe, data, runs: Path, out: Path, width_mult: float, seed: int, reductions,
                    command: str, device="auto", dense: bool = False) -> int:
    """The uniform-width controls of a variant at the MACs ``reductions`` of its dense network,
    trained without waiting for its search (``dense``: the dense network too): a second process
    (another core) trains them while the first trains the variant's weight stage and searches,
    and the chapter compares each learned network with them interpolated in log MACs
    (``criteria_view.uniform_at``) when none lies within 2% of it. Run folders under
    runs/<name>/uniform_x<r>, results in out/<name>/controls/ as ``table1_controls`` writes
    them; then the variant's rows are collected. Returns the number of rows collected."""
    from .criteria_view import dense_macs
    from .experiments import control, provenance, table1_controls, uniform_width_for
    from .io import write_json

    name = variant_name(width_mult, seed)
    r = override(recipe, {"width_mult": width_mult, "seed": seed})
    vr, vo, prov = runs / name, out / name, provenance(command)
    if dense:
        table1_controls(r, data, vr, vo, command, device, dense=True, wait=False)
    full = dense_macs(r.width_mult, r.model)
    for x in sorted(reductions, reverse=True):  # the smallest network first
        path = vo / "controls" / f"uniform_x{x:g}.json"
        if path.is_file():
            continue
        w = uniform_width_for(r.model, full / x)
        row = control(r, data, vr, w, f"uniform_x{x:g}", device)
        write_json(path, {**row, "reduction": x, "target_macs": full / x, **prov})
    return collect(r, vo, vo, out, prefix=name)


def _shown(path: Path) -> str:
    """``path`` relative to the repository when it lies in it (committed rows name files so)."""
    from .report import repo_root

    try:
        return str(path.resolve().relative_to(repo_root().resolve()))
    except ValueError:
        return str(path)


def collect(recipe: Recipe, table1_out: Path, budget_out: Path, out: Path, prefix: str = "") -> int:
    """The networks Table I and the budget chapter trained (``recipe``'s profile), as rows, each
    with the provenance of its own results file (date, device, command, git) and that file's
    path under ``from``; ``prefix`` names a variant's sources (``variant``). Returns the number
    of rows written."""
    rows, n = out / "rows.jsonl", 0
    stages = recipe.weights.epochs + recipe.arch.epochs + recipe.finetune.epochs
    prov = ("device", "cpu_kind", "date", "command", "git", "torch")
    for item in learned_architectures(table1_out, budget_out, prefix):
        res = item["result"]
        add_row(rows, {"method": item["method"], "source": item["source"], "width_mult": recipe.width_mult,
                       **{k: res.get(k) for k in ("widths", "macs", "params", "top1", "top5")},
                       "seed": (res.get("config") or {}).get("seed", recipe.seed), "epochs": stages,
                       "seconds": sum(v for v in (res.get("seconds") or {}).values() if v) or None,
                       **{k: res.get(k) for k in prov}, "from": _shown(item["file"])})
        n += 1
    for f in sorted((table1_out / "controls").glob("*.json")):
        res = read_json(f)
        add_row(rows, {"method": "dense" if res["name"] == "dense" else "uniform", "source": f"{prefix or 'table1'}/{res['name']}",
                       **{k: res.get(k) for k in ("width_mult", "widths", "macs", "params", "top1", "top5",
                                                  "epochs", "seconds")},
                       "seed": recipe.seed, **{k: res.get(k) for k in prov}, "from": _shown(f)})
        n += 1
    return n
