"""The runs of the figure chapters (Figs. 3-5) and of the budget chapter, all from Table I's
experiment of the same profile: its shared weight stage, its reused runs, its chosen lambdas.

  ``figure_runs``   Fig. 4 or 5 at a profile, at ``figure_lambda`` (``pick_lambda``: Table I's
                    chosen lambda nearest a 2.5x reduction, unless the figure already used one)
  ``fig3_lines``    Fig. 3's lines, copied from Table I's search (no run of its own)
  ``fig4_runs``, ``fig5_runs``  the SS placements; joint against sequential training
  ``budget_runs``   the architecture stage steered to fractions of the dense MACs
"""
from __future__ import annotations

import json
import math
from pathlib import Path

from ..io import read_json, write_json
from ..recipes import get_recipe, override
from .runs import FINAL_KEYS, NAMES, label, made, provenance, weights


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
