"""Does bf16 autocast on the CPU give the fp32 results? (The CPU speed issue's accuracy check.)

Two parts, each resumable, each writing one JSON under ``out/<cpu kind>/`` (the kind names the
arithmetic, ``machine.kind_slug``), with the date, the command and the machine:

  ``dense``   the dense control of Table I (``control_recipe``: the recipe's network trained
              from scratch for weights + architecture + finetune epochs, one cosine schedule)
              in bf16 autocast, beside Table I's fp32 control (results/table1_.../controls/
              dense.json); and the bf16-trained network evaluated both in fp32 and in bf16
              autocast (evaluation and precise BN stay fp32 unless the two agree within 0.1
              point of top-1);
  ``search``  the architecture stage at one lambda (default 2.3e-3, Table I's) from one fp32
              weight stage (Table I's run folder runs/table1_.../weights, trained here when
              missing) in fp32 and in bf16: the pruned networks' MACs side by side.

    python -m dnal_core.experiments precision --part dense  --data $DNAL_DATA
    python -m dnal_core.experiments precision --part search --data $DNAL_DATA [--lambda 2.3e-3]
"""
from __future__ import annotations

from pathlib import Path

import torch

from ..io import load_model, read_json, write_json
from ..machine import kind_slug
from ..recipes import Recipe, override
from . import control, label, search_row, weights

SEARCH_LAMBDA = 2.3e-3  # Table I's cpu lambda nearest 2.4x, the one the issue names
TOLERANCES = {"dense_top1_points": 0.5, "search_macs_relative": 0.05, "eval_top1_points": 0.1}


def dense(recipe: Recipe, data, runs: Path, out: Path, table1_out: Path, prov: dict, device="auto") -> dict:
    """The bf16 dense control against Table I's fp32 one; writes out/<kind>/dense.json."""
    from ..train import make_loaders
    from ..train.fast import autocast
    from ..train.stages import evaluate

    row = control(override(recipe, {"precision": "bf16"}), data, runs, recipe.width_mult, "dense-bf16", device)
    model, meta = load_model(runs / "dense-bf16" / "weights.pt")
    _, test, _ = make_loaders(recipe, data, "cpu")
    ev = {}
    for name in ("fp32", "bf16"):
        with autocast(torch.device("cpu"), name == "bf16"):
            ev[name] = evaluate(model, test)["top1"]
    ref_path = table1_out / "controls" / "dense.json"
    ref = read_json(ref_path) if ref_path.is_file() else {}
    result = {**prov, "part": "dense", "bf16": {**row, "precision": meta.get("precision")},
              "fp32": {k: ref.get(k) for k in ("top1", "top5", "epochs", "seconds", "cpu_kind", "date", "git")}
              if ref else None, "fp32_source": str(ref_path.relative_to(table1_out.parents[1])) if ref else None,
              "top1_difference": row["top1"] - ref["top1"] if ref else None,
              "eval_top1": ev, "eval_difference": ev["bf16"] - ev["fp32"], "tolerances": TOLERANCES}
    write_json(out / kind_slug() / "dense.json", result)
    return result


def search(recipe: Recipe, data, runs: Path, out: Path, table1_runs: Path, table1_out: Path, prov: dict,
           device="auto", lam: float = SEARCH_LAMBDA, seeds=None) -> dict:
    """The architecture stage at ``lam`` in fp32 and in bf16 from one fp32 weight stage, for
    each of ``seeds`` (the search's data order; default the recipe's seed): fp32's spread over
    the seeds is the yardstick for bf16's difference. Writes out/<kind>/search.json."""
    from ..train import run_pipeline

    start = weights(override(recipe, {"precision": "fp32"}), data, table1_runs, device)
    seeds = list(seeds or [recipe.seed])
    rows = []
    for seed in seeds:
        for name in ("fp32", "bf16"):
            folder = runs / (f"{name}-lam{label(lam)}" + (f"-seed{seed}" if seed != recipe.seed else ""))
            if not (folder / "search.pt").is_file():
                run_pipeline(override(recipe, {"lam": lam, "precision": name, "seed": seed}), data, folder,
                             device=device, stages=["arch"], resume=True, weights_from=start)
            _, meta = load_model(folder / "search.pt")
            rows.append({**search_row(recipe, folder, lam), "seed": seed, "precision": meta.get("precision"),
                         "seconds": meta.get("seconds")})
    macs = {name: [r["macs"] for r in rows if r["precision"]["used"] == name] for name in ("fp32", "bf16")}
    mean = {name: sum(v) / len(v) for name, v in macs.items()}
    swept = table1_out / "sweep.json"
    committed = next((r for r in (read_json(swept)["rows"] if swept.is_file() else [])
                      if abs(r["lambda"] - lam) <= 1e-12), None)
    result = {**prov, "part": "search", "lambda": lam, "seeds": seeds, "rows": rows, "macs": macs,
              "mean_macs": mean, "mean_relative_difference": mean["bf16"] / mean["fp32"] - 1,
              "fp32_relative_spread": (max(macs["fp32"]) - min(macs["fp32"])) / mean["fp32"],
              "table1_fp32": {k: committed.get(k) for k in ("macs", "hard_top1", "date", "git")} if committed else None,
              "tolerances": TOLERANCES}
    write_json(out / kind_slug() / "search.json", result)
    return result
