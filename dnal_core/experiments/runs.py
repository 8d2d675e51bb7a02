"""The pieces every experiment is made of, each a ``run_pipeline`` call into its own run folder
(checkpoints every epoch: a killed experiment continues where it stopped when called again),
and what each result is tagged with.

  ``weights``      one weight stage that every lambda's search starts from (runs/weights);
                   processes sharing the run folders train it once (``claim``)
  ``search(lam)``  the architecture stage at ``lam`` from it (runs/lam<label>); its pruned MACs
                   are known when it ends (arch.json, ``search_row``)
  ``finetune(lam)``  the finetune stage of a searched run
  ``claim``        whether this process may train a run folder (no other live process holds it)
  ``provenance``, ``made``, ``FINAL_KEYS``  the date, device, commit and command of a result
  ``NAMES``        each experiment's results folder (``results/<name>/<profile>``)
"""
from __future__ import annotations

import datetime
import json
from pathlib import Path

import torch

from ..io import read_json
from ..machine import machine
from ..measure import count
from ..models import build, build_from_arch
from ..recipes import Recipe, override


NAMES = {"table1": "table1_vgg16_cifar10", "table2": "table2_resnet56_cifar10", "fig4": "fig4_ss_placement",
         "fig5": "fig5_joint_vs_sequential", "budget": "budget_vgg16_cifar10", "criteria": "criteria_vgg16_cifar10",
         "precision": "precision_vgg16_cifar10", "own": "prune_your_own"}

# The network each experiment trains, per profile (default VGG16): Table II's cpu scale is
# ResNet20, the paper's ResNet56 elsewhere (dnal_core/recipes.py says why).
MODELS = {"table2": {"cpu": "resnet20-cifar", None: "resnet56-cifar"},
          "own": {None: "dnal_core.examples:cifar_resnet18"}}  # experiments.own.OWN_MODEL
TABLE2_TARGETS = (1.5, 2.5, 4.0)  # the MACs reductions Table II's cpu lambdas are chosen for (issue 24)


def model_for(experiment: str, profile: str) -> str:
    """The ``dnal_core.models`` name (or "module:function" constructor) ``experiment`` trains at
    ``profile``."""
    m = MODELS.get(experiment, {})
    return m.get(profile, m.get(None, "vgg16-cifar"))


def label(lam: float) -> str:
    from ..report import lambda_label

    return lambda_label(lam)


def provenance(command: str) -> dict:
    from ..train.runfolder import git_commit

    return {"date": datetime.date.today().isoformat(), "torch": str(torch.__version__),
            "device": f"cpu ({torch.get_num_threads()} thread{'s' * (torch.get_num_threads() > 1)})"
            if not torch.cuda.is_available() else "cuda", **machine(), "git": git_commit(), "command": command}


def made(prov: dict, final: dict) -> dict:
    """The provenance a result is tagged with: this command's, but the commit of the run that
    made ``final`` (a reused run keeps the commit it was trained at)."""
    return {**prov, "git": final.get("git") or prov.get("git")}


FINAL_KEYS = ("macs", "params", "top1", "top5", "hard_top1", "baseline_macs", "baseline_params", "widths",
              "seconds", "git")


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
