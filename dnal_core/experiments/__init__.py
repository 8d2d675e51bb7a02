"""The book's experiments beyond one ``dnal run``: a lambda sweep of the architecture stage, the
choice of lambdas from it, and the controls that say whether learning the widths pays.

Every piece is a ``run_pipeline`` call into its own run folder (checkpoints every epoch, so a
killed experiment continues where it stopped when called again), and every result is written
to the committed results folder as soon as its run finishes (small JSON/JSONL, with the date,
the device and the command):

  ``weights``            one weight stage that every lambda's search starts from (runs/weights)
  ``search(lam)``        the architecture stage at ``lam`` from it (runs/lam<label>); its
                         pruned MACs are known when it ends (arch.json)
  ``choose_lambdas``     from a sweep of searches, the lambdas whose MACs reductions come
                         closest to target reductions (1.5x, 2.5x, 5x, 10x): chosen on MACs,
                         never on test accuracy
  ``finetune(lam)``      the finetune stage of a searched run
  ``control(width)``     the dense network with every width scaled by one factor, trained from
                         scratch for as many epochs as weights + architecture + finetune, one
                         cosine schedule (factor 1: the like-for-like dense baseline; smaller
                         factors: the uniform-width network at a pruned network's MACs)

Run from the shell (``make book PROFILE=cpu`` runs the same through the notebooks)::

    python -m dnal_core.experiments table1 --part search   --data $DNAL_DATA
    python -m dnal_core.experiments table1 --part controls --data $DNAL_DATA

The two parts are independent processes, one CPU thread each (on the 2-core machine two
1-thread runs side by side take about 107 s an epoch each, one 2-thread run 58 s: the same
throughput, benchmarks/results/cpu_2core.json); ``controls`` waits for the search part's sweep
before it trains the uniform-width networks.
"""
from __future__ import annotations

import datetime
import json
import math
import time
from pathlib import Path

import torch

from ..io import read_json, write_json
from ..machine import machine
from ..measure import count
from ..models import build, build_from_arch
from ..recipes import Recipe, get_recipe, override

TARGET_REDUCTIONS = (1.5, 2.5, 5.0, 10.0)  # MACs reductions the Table I lambdas are chosen for
SWEEP = (3e-5, 1e-4, 3e-4, 1e-3, 3e-3)   # eq. 4 lambdas searched first (extended at the ends)


def label(lam: float) -> str:
    from ..report import lambda_label

    return lambda_label(lam)


def provenance(command: str) -> dict:
    from ..train.pipeline import git_commit

    return {"date": datetime.date.today().isoformat(), "torch": str(torch.__version__),
            "device": f"cpu ({torch.get_num_threads()} thread{'s' * (torch.get_num_threads() > 1)})"
            if not torch.cuda.is_available() else "cuda", **machine(), "git": git_commit(), "command": command}


# --- the pieces -----------------------------------------------------------------------------------

def weights(recipe: Recipe, data, runs: Path, device="auto", poll: float = 30.0) -> Path:
    """The shared weight stage (runs/weights/weights.pt); resumes a killed one. Processes that
    share ``runs`` train it once: the one holding its claim trains, the others wait for it."""
    import time

    from ..train import run_pipeline

    path = runs / "weights" / "weights.pt"
    while not path.is_file():
        if claim(path.parent):
            run_pipeline(recipe, data, path.parent, device=device, stages=["weights"], resume=True)
        else:
            time.sleep(poll)
    return path


def search(recipe: Recipe, data, runs: Path, lam: float, device="auto", prefix: str = "") -> dict:
    """The architecture stage at ``lam`` from the shared weights (runs/weights) into
    runs/<prefix>lam<label>; returns the sweep row (the pruned network's MACs and params, its
    reduction, its BN-re-estimated top-1 before finetuning, the open gates)."""
    from ..train import run_pipeline

    folder = runs / f"{prefix}lam{label(lam)}"
    r = override(recipe, {"lam": lam})
    if not (folder / "search.pt").is_file():
        run_pipeline(r, data, folder, device=device, stages=["arch"], resume=True,
                     weights_from=weights(recipe, data, runs, device))
    return search_row(recipe, folder, lam)


def search_row(recipe: Recipe, folder: Path, lam: float) -> dict:
    """The sweep row of the architecture stage in ``folder`` (see ``search``)."""
    arch = read_json(folder / "arch.json")
    size = count(build_from_arch(arch))
    base = count(build(recipe.model, width_mult=recipe.width_mult, num_classes=arch["num_classes"]))
    last = [json.loads(x) for x in (folder / "metrics.jsonl").read_text().splitlines() if x.strip()][-1]
    return {"lambda": lam, "loss_form": recipe.search.loss_form, "macs": size["macs"], "params": size["params"],
            "macs_reduction": base["macs"] / size["macs"], "params_reduction": base["params"] / size["params"],
            "hard_top1": last.get("hard_top1"), "soft_top1": last.get("test_top1"),
            "open_gates": last.get("open_gates"), "gate_channels": last.get("gate_channels"),
            "widths": arch["widths"]}


def finetune(recipe: Recipe, data, runs: Path, lam: float, device="auto") -> dict:
    """The finetune stage of the searched run at ``lam``; returns its final.json."""
    from ..train import run_pipeline

    return run_pipeline(override(recipe, {"lam": lam}), data, runs / f"lam{label(lam)}", device=device,
                        stages=["finetune"], resume=True)


def claim(folder: Path) -> bool:
    """Whether this process may train the run in ``folder``: True when no other live process
    holds its claim (``<folder>.claim`` beside it, created atomically with this process's pid;
    a claim whose process has ended is taken over, so a killed worker's run is resumed)."""
    import os

    folder.parent.mkdir(parents=True, exist_ok=True)
    pid_file = folder.with_name(folder.name + ".claim")
    while True:
        try:
            fd = os.open(pid_file, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            try:
                pid = int(pid_file.read_text().strip() or 0)
            except (OSError, ValueError):
                pid = 0
            if pid == os.getpid():
                return True
            if pid and _alive(pid):
                return False
            pid_file.unlink(missing_ok=True)  # a dead worker's claim: take it over
            continue
        with os.fdopen(fd, "w") as f:
            f.write(str(os.getpid()))
        return True


def _alive(pid: int) -> bool:
    import os

    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def control_recipe(recipe: Recipe, width_mult: float) -> Recipe:
    """The control: ``recipe``'s network at ``width_mult``, trained from scratch as one weight
    stage of weights + architecture + finetune epochs (cosine from the weight stage's lr)."""
    epochs = recipe.weights.epochs + recipe.arch.epochs + recipe.finetune.epochs
    return override(recipe, {"width_mult": width_mult, "weights.epochs": epochs, "weights.schedule": "cosine"})


def control(recipe: Recipe, data, runs: Path, width_mult: float, name: str, device="auto") -> dict:
    """Train the control at ``width_mult`` into runs/<name>; returns its summary row."""
    from ..io import load_model
    from ..train import run_pipeline

    r = control_recipe(recipe, width_mult)
    folder = runs / name
    if not (folder / "weights.pt").is_file():
        run_pipeline(r, data, folder, device=device, stages=["weights"], resume=True)
    model, meta = load_model(folder / "weights.pt")
    size = count(model)
    return {"name": name, "width_mult": width_mult, "widths": list(model.widths), "macs": size["macs"],
            "params": size["params"], "top1": meta.get("top1"), "top5": meta.get("top5"),
            "epochs": r.weights.epochs, "seconds": meta.get("seconds")}


def uniform_width_for(model: str, macs: float, num_classes: int = 10, tol: float = 0.02,
                      lo: float = 0.01, hi: float = 1.0) -> float:
    """The one width factor (relative to the full network) whose network has ``macs`` MACs
    within ``tol`` (relative): bisection on the factor (MACs grow with it), then the
    closest factor on a fine grid around it, since channel counts are integers. ValueError
    when no factor comes within ``tol``."""
    def macs_at(w):
        return count(build(model, width_mult=w, num_classes=num_classes))["macs"]

    for _ in range(40):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if macs_at(mid) < macs else (lo, mid)
    grid = [round(lo * (1 + k / 400), 5) for k in range(-8, 9)]
    best = min(grid, key=lambda w: abs(macs_at(w) / macs - 1))
    err = macs_at(best) / macs - 1
    if abs(err) > tol:
        raise ValueError(f"no uniform width of {model} has {macs:.0f} MACs within {tol:.0%} "
                         f"(closest: x{best}, {err:+.1%})")
    return best


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


# --- Table I at one profile -----------------------------------------------------------------------

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


def table1_controls(recipe, data, runs: Path, out: Path, command: str, device="auto",
                    poll: float = 60.0, dense: bool = True) -> None:
    """The dense control (out/controls/dense.json; ``dense=False``: not trained), then, once
    out/chosen.json exists, the uniform-width network at each chosen lambda's pruned MACs
    (out/controls/uniform_lam<label>.json). Two such processes side by side share the work:
    each claims the lambda it trains (``claim``)."""
    prov = provenance(command)
    want, dense = dense, out / "controls" / "dense.json"
    if want and not dense.is_file() and claim(runs / "dense"):
        write_json(dense, {**control(recipe, data, runs, recipe.width_mult, "dense", device), **prov})
    while True:  # chosen.json is read anew after each control: a refined sweep may change it
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


# --- figures from the Table I runs ------------------------------------------------------------------

def pick_lambda(table1_out: Path, reduction: float = 2.5) -> float:
    """Of Table I's chosen lambdas (``chosen.json``), the one whose MACs reduction is closest to
    ``reduction`` on a log scale: the search the figure chapters (Figs. 3-5) look at."""
    sweep = {r["lambda"]: r for r in read_json(table1_out / "sweep.json")["rows"]}
    lams = read_json(table1_out / "chosen.json")["lambdas"]
    return min(lams, key=lambda lam: abs(math.log(sweep[lam]["macs_reduction"] / reduction)))


def fig3_lines(table1_out: Path, dest: Path, model: str, lam: float) -> int:
    """Fig. 3 needs no run of its own: the architecture-stage lines of Table I's search at
    ``lam`` (``metrics/lam<label>.jsonl``, with ``gate_hist``) copied to ``dest`` with the Table I
    result's date, device and command. Returns the number of lines."""
    final = read_json(table1_out / f"lam{label(lam)}.json")
    src = table1_out / "metrics" / f"lam{label(lam)}.jsonl"
    tag = {k: final[k] for k in ("date", "device", "torch", "command") if k in final}
    lines = [json.loads(x) for x in src.read_text().splitlines() if x.strip()]
    out = [{**r, "model": model, "lam": lam, **tag, "source": str(src.relative_to(src.parents[3]))}
           for r in lines if r.get("stage") == "arch"]
    dest.parent.mkdir(parents=True, exist_ok=True)
    from ..io import atomic_path

    with atomic_path(dest) as tmp:
        tmp.write_text("".join(json.dumps(r) + "\n" for r in out))
    return len(out)


def _table1_result(table1_runs: Path, table1_out: Path | None, lam: float):
    """Table I's finished run at ``lam`` as (final, metrics file): from its run folder when that
    holds final.json, else from the committed results (out/lam<label>.json and
    out/metrics/lam<label>.jsonl) when they exist, else None (the run has to be trained)."""
    folder = table1_runs / f"lam{label(lam)}"
    if (folder / "final.json").is_file():
        return read_json(folder / "final.json"), folder / "metrics.jsonl"
    if table1_out is not None and (table1_out / f"lam{label(lam)}.json").is_file():
        return read_json(table1_out / f"lam{label(lam)}.json"), table1_out / "metrics" / f"lam{label(lam)}.jsonl"
    return None


def _weights_lines(runs: Path) -> list[dict]:
    path = runs / "weights" / "metrics.jsonl"
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def fig4_runs(recipe, data, table1_runs: Path, runs: Path, out: Path, lam: float, command: str,
              device="auto", seeds=(0, 1)) -> None:
    """Fig. 4: the three SS placements searched at ``lam`` from Table I's shared weight stage
    (gates are off there, so the three networks are the same until stage 2) and finetuned, for
    each of ``seeds`` (the seed orders the data of stages 2 and 3: run-to-run noise). Writes
    out/vgg16-cifar_weights.jsonl once and out/<model>_<placement>_seed<k>.jsonl + .json as
    each run ends."""
    from ..models import PLACEMENTS
    from ..report import copy_metrics
    from ..train import run_pipeline

    prov = provenance(command)
    w = weights(recipe, data, table1_runs, device)
    lines = [{**r, "model": recipe.model, "placement": "shared", "lam": lam, **prov}
             for r in _weights_lines(table1_runs)]
    from ..io import atomic_path

    with atomic_path(out / f"{recipe.model}_weights.jsonl") as tmp:
        tmp.write_text("".join(json.dumps({k: v for k, v in r.items() if k not in ("seconds", "eval_seconds")})
                               + "\n" for r in lines))
    for seed in seeds:
        for placement in PLACEMENTS:
            name = f"{recipe.model}_{placement}_seed{seed}"
            r = override(recipe, {"lam": lam, "placement": placement, "seed": seed})
            # the recipe's own placement and seed: that is Table I's run at lam, reused as it is
            same = placement == recipe.placement and seed == recipe.seed
            # a committed Table I result is not reused here: it may come from another run of the
            # weight stage, and every placement must start from the same weights
            done = _table1_result(table1_runs, None, lam) if same else None
            if done is None:
                folder = table1_runs / f"lam{label(lam)}" if same else runs / name
                final = run_pipeline(r, data, folder, device=device, stages=["arch", "finetune"],
                                     weights_from=w, resume=True)
                done = final, folder / "metrics.jsonl"
            final, metrics = done
            tag = dict(model=recipe.model, placement=placement, seed=seed, lam=lam, **made(prov, final))
            copy_metrics(metrics, out / f"{name}.jsonl", **tag)
            write_json(out / f"{name}.json", {**tag, **{k: final[k] for k in FINAL_KEYS}})


def made(prov: dict, final: dict) -> dict:
    """The provenance a result is tagged with: this command's, but the commit of the run that
    made ``final`` (a reused run keeps the commit it was trained at)."""
    return {**prov, "git": final.get("git") or prov.get("git")}


FINAL_KEYS = ("macs", "params", "top1", "top5", "hard_top1", "baseline_macs", "baseline_params", "widths",
              "seconds", "git")


def fig5_runs(recipe, data, table1_runs: Path, runs: Path, out: Path, lam: float, command: str,
              device="auto", table1_out: Path | None = None) -> None:
    """Fig. 5 at equal total epochs: the sequential strategy is Table I's run at ``lam`` (weights
    + architecture + finetune: its run folder, else its committed result, else trained), the
    joint one trains weights and gates together for weights + architecture epochs, then
    finetunes as long. Writes out/<model>_<strategy>.jsonl (every epoch; the sequential curve
    opens with the weight stage of table1_runs) and .json (the final network)."""
    from ..report import copy_metrics
    from ..io import atomic_path
    from ..train import run_pipeline

    prov = provenance(command)
    seq_dir = table1_runs / f"lam{label(lam)}"
    seq = _table1_result(table1_runs, table1_out, lam)
    if seq is None:
        seq = (run_pipeline(override(recipe, {"lam": lam}), data, seq_dir, device=device, stages=["arch", "finetune"],
                            weights_from=weights(recipe, data, table1_runs, device), resume=True),
               seq_dir / "metrics.jsonl")
    weights(recipe, data, table1_runs, device)  # its per-epoch lines open the sequential curve
    joint_dir = runs / f"{recipe.model}_joint"
    joint = run_pipeline(override(recipe, {"lam": lam, "sequential": False}), data, joint_dir, device=device,
                         resume=True), joint_dir / "metrics.jsonl"
    for strategy, (final, metrics) in (("sequential", seq), ("joint", joint)):
        tag = dict(model=recipe.model, strategy=strategy, lam=lam, **made(prov, final))
        copy_metrics(metrics, out / f"{recipe.model}_{strategy}.jsonl", **tag)
        if strategy == "sequential":  # the shared weight stage's epochs first
            text = "".join(json.dumps({**{k: v for k, v in r.items() if k not in ("seconds", "eval_seconds")}, **tag})
                           + "\n" for r in _weights_lines(table1_runs))
            path = out / f"{recipe.model}_{strategy}.jsonl"
            rest = path.read_text()
            with atomic_path(path) as tmp:
                tmp.write_text(text + rest)
        write_json(out / f"{recipe.model}_{strategy}.json", {**tag, **{k: final[k] for k in FINAL_KEYS}})


BUDGET_TARGETS = (0.5, 0.25, 0.1)  # fractions of the dense network's MACs (issue 10's chapter)


def budget_name(form: str, kind: str, target: float) -> str:
    return f"{form}_{kind}{target:g}"


def budget_runs(recipe, data, table1_runs: Path, runs: Path, out: Path, command: str, device="auto",
                targets=BUDGET_TARGETS, form: str = "expected-macs", kind: str = "macs") -> None:
    """The budget chapter: the architecture stage steered to each of ``targets`` (a fraction of
    the dense ``kind`` count; ``dnal_core.budget``) with the sparsity term ``form``, from Table I's
    weight stage (``table1_runs``/weights, trained there when missing), then finetuned. Writes
    out/<form>_<kind><target>.json (the final network, its widths and the budget record: target,
    reached cost, repaired gates, lambda path) and .jsonl (every epoch) as each run ends."""
    from ..report import copy_metrics
    from ..train import run_pipeline

    prov = provenance(command)
    w = weights(recipe, data, table1_runs, device)
    for t in targets:
        name = budget_name(form, kind, t)
        r = override(recipe, {"lam": None, "search.target_kind": kind, "search.target": t, "search.loss_form": form})
        final = run_pipeline(r, data, runs / name, device=device, stages=["arch", "finetune"], weights_from=w,
                             resume=True)
        tag = dict(model=recipe.model, form=form, kind=kind, target=t, **made(prov, final))
        copy_metrics(runs / name, out / f"{name}.jsonl", **tag)
        write_json(out / f"{name}.json", {**tag, **{k: final[k] for k in FINAL_KEYS}, "budget": final["budget"]})


NAMES = {"table1": "table1_vgg16_cifar10", "fig4": "fig4_ss_placement", "fig5": "fig5_joint_vs_sequential",
         "budget": "budget_vgg16_cifar10", "criteria": "criteria_vgg16_cifar10",
         "precision": "precision_vgg16_cifar10"}


def figure_lambda(out: Path, table1_out: Path, lam: float | None = None) -> float:
    """The lambda Fig. 4 or 5 searches at: ``lam`` when given; else the one its results in
    ``out`` already used (a resumed or re-rendered figure keeps its lambda while Table I's sweep
    grows); else Table I's chosen lambda nearest a 2.5x reduction (``pick_lambda``).
    ValueError when none of these exists."""
    if lam is not None:
        return lam
    used = {r["lam"] for r in map(read_json, sorted(out.glob("*.json"))) if "lam" in r} if out.is_dir() else set()
    if len(used) > 1:
        raise ValueError(f"{out} mixes results at lambdas {sorted(used)}: remove the stale ones")
    if used:
        return used.pop()
    if not (table1_out / "chosen.json").is_file():
        raise ValueError(f"the figure searches at a lambda Table I chose: run table1 first "
                         f"({table1_out / 'chosen.json'} is missing) or give --lambda")
    return pick_lambda(table1_out)


def figure_runs(figure: str, profile: str, data, runs: Path, out: Path, command: str, device="auto",
                lam: float | None = None, seeds: tuple[int, ...] | None = None) -> None:
    """Fig. 4 or 5 (``figure`` "fig4" or "fig5") at ``profile``, from the Table I experiment of
    the same profile: its run folders (shared weights, reused runs) or committed results, at
    ``figure_lambda``. ValueError when no lambda can be settled."""
    from ..report import repo_root

    table1_out = repo_root() / "results" / NAMES["table1"] / profile
    lam = figure_lambda(out, table1_out, lam)
    run = {"fig4": fig4_runs, "fig5": fig5_runs}[figure]
    extra = {"table1_out": table1_out} if figure == "fig5" else {} if seeds is None else {"seeds": tuple(seeds)}
    run(get_recipe("vgg16-cifar", profile), data, repo_root() / "runs" / NAMES["table1"] / profile, runs, out,
        lam, command, device, **extra)
