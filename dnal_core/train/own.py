"""Alg. 1 on a network in one call, as ``dnal run`` does it: ``search`` resolves a profile's
recipe for a registered model or for your own ``module:function`` (``dnal_core.own``), runs
the pipeline into a run folder and returns the finetuned pruned network with its record::

    net, final = dnal_core.search("torchvision.models:resnet18", "data/cifar10", "runs/r18",
                                  lam=1e-3, profile="smoke")
"""
from __future__ import annotations

import functools
from pathlib import Path

from torch import nn

from .. import io
from ..recipes import get_recipe, override
from .pipeline import run_pipeline


def budget_changes(kind: str, target: float, loss_form: str | None = None) -> dict:
    """The recipe changes of a budget (``--target-macs X``): the kind, the target and, unless
    another form is chosen, the cost-aware term of that kind."""
    return {"search.target_kind": kind, "search.target": target,
            "search.loss_form": loss_form or f"expected-{kind}"}


def model_ref(model) -> tuple[str, dict]:
    """(a registered name or "module:function", the constructor's keywords) of ``model``: a
    string, a module-level function, or a ``functools.partial`` of one with keywords."""
    kwargs = {}
    if isinstance(model, functools.partial):
        if model.args:
            raise ValueError("model: a functools.partial with keyword arguments only")
        model, kwargs = model.func, dict(model.keywords)
    if isinstance(model, str):
        return model, kwargs
    if callable(model) and "<" not in getattr(model, "__qualname__", "<"):
        return f"{model.__module__}:{model.__qualname__}", kwargs
    raise ValueError(f"model must be a registered name, 'module:function' or a module-level function, got {model!r}")


def search(model, data, out, *, lam: float | None = None, target_macs: float | None = None,
           target_params: float | None = None, profile: str = "smoke", weights_from=None,
           changes: dict | None = None, device: str = "auto", quiet: bool = True) -> tuple[nn.Module, dict]:
    """Run Alg. 1 (weights, architecture, finetune) on ``model`` into the run folder ``out``
    with ``profile``'s recipe and ``changes`` (dotted recipe keys, as ``--set``); ``lam`` or a
    budget (``target_macs``/``target_params``: a fraction of the dense count or a count).
    ``weights_from``: another run's weights.pt or a plain state dict file of the same network;
    stage 1 is then skipped. Returns (the finetuned pruned network, final.json as a dict)."""
    ref, kwargs = model_ref(model)
    targets = [(k, t) for k, t in (("macs", target_macs), ("params", target_params)) if t is not None]
    if len(targets) > 1 or (targets and lam is not None):
        raise ValueError("give one of lam, target_macs and target_params")
    ch = {**({"lam": lam} if lam is not None else {}), **({"model_args": kwargs} if kwargs else {})}
    if targets:
        ch.update(budget_changes(*targets[0], (changes or {}).get("search.loss_form")))
    recipe = override(get_recipe(ref, profile), {**ch, **(changes or {})})
    final = run_pipeline(recipe, data, out, device=device, quiet=quiet, weights_from=weights_from)
    net, _ = io.load_model(Path(out) / "final.pt")
    return net.eval(), final
