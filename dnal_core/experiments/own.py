"""Your own network at the cpu scale (the chapter "Prune your own network", issue 23): the example
constructor ``dnal_core.examples:cifar_resnet18`` (``OWN_MODEL``, at the width its cpu recipe
gives) trained once, then pruned to each of ``OWN_TARGETS`` of its dense MACs three ways:

- **DNAL with the MACs budget** (``budget_runs``: the architecture stage steered to the target
  from the shared weight stage, then the finetune stage);
- **Torch-Pruning's own global L1 pruning**, as a user of that library would write it
  (``MetaPruner`` with ``MagnitudeImportance(p=1)`` and ``global_pruning=True``, its defaults
  otherwise, the classifier ignored) on the same trained weights, its ratio bisected until the
  network's MACs lie within 2% of the DNAL network's, then the same finetune stage;
- **uniform width**: the constructor at the one width whose MACs equal the DNAL network's
  (within 2%, else the closest within 5%: ``UNIFORM_TOL``), trained from scratch for as many
  epochs as the three stages (``controls.control``), beside the dense network trained as long.

  ``own_search``    weights, budget searches, then Torch-Pruning's networks (one process)
  ``own_controls``  the dense control, then the uniform widths (a second process, which waits
                    for each budget network's MACs)
  ``tp_prune``      Torch-Pruning's global L1 to a MACs count
  ``own_width_for`` the constructor's width whose network has a MACs count

Results in out/: ``expected-macs_macs<t>.json`` (DNAL, as the budget chapter writes them),
``tp-l1-global_macs<t>.json``, ``controls/dense.json`` and ``controls/uniform_macs<t>.json``,
each with its provenance.
"""
from __future__ import annotations

import copy
import time
from pathlib import Path

import torch
from torch import nn

from ..io import read_json, write_json
from ..measure import count, count_macs
from .controls import closest, control
from .runs import claim, provenance

OWN_MODEL = "dnal_core.examples:cifar_resnet18"
OWN_TARGETS = (0.5, 0.25)   # fractions of the dense network's MACs
TOL = 0.02                  # "the same MACs": within 2%
# The constructor rounds every width to whole channels, so its MACs move in steps: at the cpu
# width, no width lands within 2% of 0.22x the dense MACs (closest -2.6%). A uniform control
# takes the closest width within 5% then, and its row keeps its own MACs beside the target's.
UNIFORM_TOL = 0.05
INPUT = (3, 32, 32)
WIDTH = "model_args.width"   # the constructor keyword a uniform control scales


def _build(recipe, **args) -> nn.Module:
    from ..own import resolve

    return resolve(recipe.model)(**{"num_classes": 10, **recipe.model_args, **args})


def own_width_for(recipe, macs: float, tol: float = TOL) -> float:
    """The constructor's ``width`` keyword (relative to the network of ``recipe``) whose network
    has ``macs`` MACs within ``tol``; ValueError when no width does."""
    full = recipe.model_args.get("width", 1.0)
    return round(closest(lambda w: count_macs(_build(recipe, width=w), INPUT), macs, 0.01 * full, full, tol=tol,
                         steps=30, what="no width"), 6)


def tp_prune(plain: nn.Module, target_macs: float, tol: float = TOL) -> nn.Module:
    """``plain`` (not modified) pruned by Torch-Pruning's global L1 to ``target_macs`` within
    ``tol``: ``MetaPruner(importance=MagnitudeImportance(p=1), global_pruning=True)`` with its
    last Linear ignored, the pruning ratio bisected on the pruned network's MACs."""
    import torch_pruning as tp

    example = torch.zeros((1,) + INPUT)

    def pruned(ratio: float) -> nn.Module:
        m = copy.deepcopy(plain).eval()
        last = [x for x in m.modules() if isinstance(x, nn.Linear)][-1:]
        tp.pruner.MetaPruner(m, example, importance=tp.importance.MagnitudeImportance(p=1), global_pruning=True,
                             pruning_ratio=ratio, ignored_layers=last).step()
        return m

    ratio = closest(lambda r: count_macs(pruned(r), INPUT), target_macs, 0.0, 0.95, rising=False, tol=tol, steps=16,
                    what="no pruning ratio")
    return pruned(ratio)


def _loaders(recipe, data, device):
    from ..data import cifar10_loaders

    return cifar10_loaders(data, recipe.finetune.batch_size, recipe.test_batch_size, device=device, seed=recipe.seed,
                           train_per_class=recipe.train_per_class, test_per_class=recipe.test_per_class)


def tp_network(recipe, data, weights_pt: Path, target_macs: float, device="auto") -> dict:
    """Torch-Pruning's global L1 network at ``target_macs`` from the weight stage ``weights_pt``
    (its gates stripped: the user's plain network), finetuned by ``recipe``'s finetune stage in
    the weight stage's precision (its config.json), top-1 after precise BN as every run's.
    Returns its summary row."""
    from ..attach import strip_gates
    from ..io import load_model
    from ..train import finetune
    from ..train.pipeline import resolve_device

    gated, _ = load_model(weights_pt)
    net = tp_prune(strip_gates(gated).cpu(), target_macs)
    size = count(net, input_size=INPUT)
    precision = read_json(Path(weights_pt).parent / "config.json")["precision"]["used"]
    torch.manual_seed(recipe.seed)
    start = time.perf_counter()
    dev = resolve_device(device)
    train, test = _loaders(recipe, data, dev)
    records = finetune(net.to(dev), train, test, recipe.finetune, channels_last=False, precise_bn=recipe.precise_bn,
                       precision=precision)
    return {"macs": size["macs"], "params": size["params"], "top1": records[-1]["test_top1"],
            "top5": records[-1].get("test_top5"), "epochs": recipe.finetune.epochs, "precision": precision,
            "seconds": time.perf_counter() - start}


def _tag(t: float) -> str:
    return f"macs{t:g}"


def own_search(recipe, data, runs: Path, out: Path, command: str, device="auto", targets=OWN_TARGETS) -> None:
    """The weight stage (runs/weights), DNAL with the MACs budget at each of ``targets``
    (``budget_runs``), then Torch-Pruning's global L1 network at each DNAL network's MACs,
    finetuned (out/tp-l1-global_macs<t>.json). Resumable: a written result is kept."""
    from .chapters import budget_runs

    budget_runs(recipe, data, runs, runs, out, command, device, targets=targets)
    prov = provenance(command)
    for t in targets:
        path = out / f"tp-l1-global_{_tag(t)}.json"
        if path.is_file():
            continue
        dnal = read_json(out / f"expected-macs_{_tag(t)}.json")
        row = tp_network(recipe, data, runs / "weights" / "weights.pt", dnal["macs"], device)
        write_json(path, {"method": "tp-l1-global", "target": t, "target_macs": dnal["macs"], **row, **prov})


def own_controls(recipe, data, runs: Path, out: Path, command: str, device="auto", targets=OWN_TARGETS,
                 poll: float = 60.0) -> None:
    """The dense control (out/controls/dense.json), then at each of ``targets`` (smallest
    first) the uniform width at the DNAL network's MACs once ``own_search`` has written it
    (out/controls/uniform_macs<t>.json). Two processes share the runs through claims."""
    prov = provenance(command)
    dense = out / "controls" / "dense.json"
    if not dense.is_file() and claim(runs / "dense"):
        width = recipe.model_args.get("width", 1.0)
        write_json(dense, {"method": "dense", **control(recipe, data, runs, width, "dense", device, WIDTH), **prov})
    for t in sorted(targets):
        path = out / "controls" / f"uniform_{_tag(t)}.json"
        if path.is_file() or not claim(runs / f"uniform_{_tag(t)}"):
            continue
        dnal = out / f"expected-macs_{_tag(t)}.json"
        while not dnal.is_file():
            time.sleep(poll)
        target = read_json(dnal)["macs"]
        try:
            width = own_width_for(recipe, target)
        except ValueError:  # whole channels: the closest width within UNIFORM_TOL
            width = own_width_for(recipe, target, UNIFORM_TOL)
        row = control(recipe, data, runs, width, f"uniform_{_tag(t)}", device, WIDTH)
        write_json(path, {"method": "uniform", "target": t, "target_macs": target, **row, **prov})
