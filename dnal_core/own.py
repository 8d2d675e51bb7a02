"""Your own network in a run: ``dnal run mypkg.nets:make_net`` (any importable
``module:function`` that returns an ``nn.Module``) gates it with ``attach_gates`` and runs
Alg. 1 on it with a profile's recipe (``recipes.own_recipe``), through the same pipeline as the
registered models.

A recipe whose ``model`` holds a colon names such a constructor. It is called as
``function(num_classes=<from the data>, **recipe.model_args)`` (``--set model_args.KEY=VALUE``;
a ``num_classes`` there wins), then gated for the dataset's input size. The gated network's
``arch()`` keeps the constructor's "module:name" and keyword arguments, so ``dnal prune``,
``export`` and ``bench`` rebuild it in another process. ``width_mult``, ``widths`` and other
placements are the registered models'; a constructor's own width keyword goes in model_args.

A budget (``--target-macs``/``--target-params``) and the cost-aware loss forms work as for the
registered models: ``prune.generic_cost`` describes the cost from the DepGraph groups.
"""
from __future__ import annotations

import functools

from torch import nn

from .models import DEFAULT_PLACEMENT


def check_recipe(recipe) -> None:
    """What a run of ``recipe.model`` = "module:function" cannot do, refused before any work
    (the constructor is imported here, so a bad name fails before the data loads)."""
    for key, ok in (("width_mult", recipe.width_mult == 1.0), ("widths", recipe.widths is None),
                    ("placement", recipe.placement == DEFAULT_PLACEMENT), ("dataset", recipe.dataset == "cifar10")):
        if not ok:
            raise ValueError(f"{key} {getattr(recipe, key)!r}: a module:function network runs at its own widths "
                             f"with placement {DEFAULT_PLACEMENT} on CIFAR-10 folders (its constructor's "
                             "keywords go in --set model_args.KEY=VALUE)")
    resolve(recipe.model)


def resolve(ref: str):
    """The callable ``ref`` ("module:function") names; ValueError in one line otherwise."""
    from .constructors import resolve as import_ref

    module, _, name = str(ref).partition(":")
    if not module or not name:
        raise ValueError(f"model {ref!r}: give 'module:function', e.g. torchvision.models:resnet18")
    try:
        fn = import_ref(ref)
    except ValueError:
        raise
    except Exception as e:  # an import that runs code can fail in any way
        raise ValueError(f"cannot import the constructor {ref!r}: {type(e).__name__}: {e}") from None
    if not callable(fn):
        raise ValueError(f"model {ref!r} is a {type(fn).__name__}, not a function returning an nn.Module")
    return fn


def build_own(recipe, num_classes: int) -> nn.Module:
    """The gated dense network of ``recipe`` (SS off): the constructor's network with
    ``attach_gates``' gates, for ``num_classes`` classes."""
    from .attach import attach_gates
    import torch

    fn = resolve(recipe.model)
    kwargs = {"num_classes": num_classes, **dict(recipe.model_args)}
    try:
        net = fn(**kwargs)
    except Exception as e:  # the user's code: any error, said in one line
        raise ValueError(f"model {recipe.model}({_args(kwargs)}) failed: {type(e).__name__}: "
                         f"{str(e).splitlines()[0] if str(e) else ''}") from None
    if not isinstance(net, nn.Module):
        raise ValueError(f"model {recipe.model}({_args(kwargs)}) returned a {type(net).__name__}, not an nn.Module")
    size = (3, 32, 32)  # CIFAR-10 (check_recipe)
    try:
        return attach_gates(net, torch.zeros((1, *size)), constructor=functools.partial(fn, **kwargs))
    except ValueError as e:
        raise ValueError(f"model {recipe.model}: {e}") from None
    except Exception as e:  # e.g. a network that does not take 32x32 inputs
        raise ValueError(f"model {recipe.model}: cannot gate it on a {size} input: {type(e).__name__}: "
                         f"{str(e).splitlines()[0] if str(e) else ''}") from None


def _args(kwargs: dict) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in kwargs.items())


def load_state(model: nn.Module, state, source) -> None:
    """Load a plain state dict (the user's ``torch.save(net.state_dict())``) into the gated
    ``model``: every key of the network must be there with its shape, except the gates' own
    (``ss.*``, which start off); ValueError naming the first misfit."""
    from .gate import SSGate

    if not isinstance(state, dict) or not all(hasattr(v, "shape") for v in state.values()):
        raise ValueError(f"--weights-from {source} is neither a dnal model file nor a state dict of tensors")
    own = model.state_dict()
    gate_keys = {f"{n}.{k}" for n, m in model.named_modules() if isinstance(m, SSGate) for k in m.state_dict()}
    missing = [k for k in own if k not in state and k not in gate_keys]
    extra = [k for k in state if k not in own]
    wrong = [k for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or extra or wrong:
        k = (missing or extra or wrong)[0]
        why = (f"it has no {k!r}" if missing else f"it has an unexpected {k!r}" if extra else
               f"{k!r} is {tuple(state[k].shape)} there, {tuple(own[k].shape)} in the network")
        n = len(missing) + len(extra) + len(wrong)
        name = model.arch().get("constructor") or model.name
        raise ValueError(f"--weights-from {source} does not fit {name}: {why}" + (f" ({n} keys differ)" if n > 1 else ""))
    model.load_state_dict({**{k: own[k] for k in gate_keys if k in own}, **state}, strict=True)
