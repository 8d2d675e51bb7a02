"""SS gates on your own network: ``attach_gates`` puts DNAL's gates into any CNN built of
Conv-BN-activation blocks (a torchvision ResNet, MobileNet, EfficientNet, RegNet, ...).

    model = attach_gates(torchvision.models.resnet18(num_classes=10), torch.randn(1, 3, 32, 32))
    dnal_core.gates(model)      # one SSGate per group of coupled channels, stage functions as usual
    gate_groups(model)          # per gate: the layers whose channels it opens and closes

Channels are coupled the way Torch-Pruning's DependencyGraph (DepGraph) traces them: the output
channels of a conv, of its BatchNorm, of every block adding into the same residual stream and of
a depthwise conv after them form one group, and removing channel j removes it from all of them.
Each group gets ONE gate, applied after every BatchNorm of the group (placement conv-bn-ss-relu),
so a closed gate zeroes that channel everywhere. The gate lives on the group's first BatchNorm
(``<bn>.ss``, what ``dnal_core.gates`` lists); the others call it through a forward hook, so the
user's module tree and state_dict keys stay as they were (plus the gates' ``ss.*`` entries).

Never gated: the classifier (the last conv or linear layer the forward pass runs) and the
input; groups holding a layer of ``ignored_layers``; groups through a grouped (not depthwise)
conv, whose channels cannot go one at a time; groups without BatchNorm on 1x1 maps or after
Linear layers (squeeze-excitation, MLP heads), kept whole. A conv on a larger map with no
BatchNorm after it, or a layer the trace does not reach, is a ValueError naming the layer.

The gated model also carries what the rest of dnal_core reads from a registered model:
``name`` ("generic"), ``input_size``, ``widths`` and ``arch()``, a JSON dict that the "generic"
builder (``build_from_arch``) turns back into the gated network, or into a pruned one when it
holds ``keep`` (the kept channel indices per gate; ``dnal_core.prune.generic`` writes them).
The builder starts from a copy of the network kept in this process, or, in another process,
from ``constructor`` (e.g. "torchvision.models:resnet18" with kwargs {"num_classes": 10}).

Torch-Pruning is imported only inside these functions: ``import dnal_core`` does not load it.
"""
from __future__ import annotations

import collections
import copy
import functools
import importlib
import json
import math
import types
import uuid
import weakref
from dataclasses import dataclass, replace
from typing import Annotated

import torch
from torch import nn

from .constructors import check_constructor, constructor_ref, resolve
from .gate import SSGate
from .models import DEFAULT_PLACEMENT, register_model

NAME = "generic"  # the registry name of attached (and pruned) networks
_BN = nn.modules.batchnorm._BatchNorm
_TEMPLATES: "weakref.WeakValueDictionary[str, _Template]" = weakref.WeakValueDictionary()


@dataclass(frozen=True)
class GateGroup:
    """One gate and the layers whose channels it opens and closes (module names)."""
    gate: str                    # the SSGate's name in dnal_core.gates order
    channels: int
    root: str                    # the conv Torch-Pruning starts the group from
    bns: tuple[str, ...]         # every BatchNorm the gate multiplies the output of
    producers: tuple[str, ...]   # convs/linears whose output channels the group holds
    consumers: tuple[str, ...]   # convs/linears whose input channels the group holds


class _GateHook:
    """Forward hook of a gated BatchNorm: its output times the group's gate, looked up on the
    owner BN at every call, so that replacing ``owner.ss`` (the pruner's fixed masks) reaches
    every member of the group."""

    def __init__(self, owner: nn.Module):
        self.owner = owner

    def __call__(self, module, args, output):
        return self.owner.ss(output)


class _Template:
    """The ungated network as attach_gates found it, shared by every deep copy of the gated
    model (``__deepcopy__`` returns itself): what the builder copies in this process."""

    def __init__(self, plain: nn.Module):
        self.plain = copy.deepcopy(plain).cpu()
        self.key = uuid.uuid4().hex
        _TEMPLATES[self.key] = self

    def __deepcopy__(self, memo):
        return self


# --- tracing ----------------------------------------------------------------------------------

def _names(model: nn.Module) -> dict:
    return {m: n for n, m in model.named_modules()}


def _grouped(m: nn.Module) -> bool:
    """A grouped conv that is not depthwise (RegNet, ResNeXt): Torch-Pruning couples neither its
    input with its output channels nor keeps its groups even, so its channels stay."""
    return isinstance(m, nn.Conv2d) and 1 < m.groups != m.out_channels


@torch.no_grad()
def _run_record(model: nn.Module, x: torch.Tensor) -> tuple[list[nn.Module], dict]:
    """The conv/linear/BN modules in the order the forward pass calls them, and their output
    shapes."""
    order, shapes = [], {}

    def rec(m, args, out):
        if m not in shapes:
            order.append(m)
            shapes[m] = tuple(out.shape)

    hooks = [m.register_forward_hook(rec) for m in model.modules()
             if isinstance(m, (nn.Conv2d, nn.Linear, _BN))]
    try:
        model(x)
    finally:
        for h in hooks:
            h.remove()
    return order, shapes


def _failed_at(e: Exception, names: dict) -> str:
    """Where in the network DepGraph's ``e`` arose: " at <op> after layer '<name>'" (the op node
    DepGraph was handling, from its frames, and the nearest conv/linear/BN feeding it), or ""."""
    from torch_pruning.dependency.node import Node

    node, tb = None, e.__traceback__
    while tb is not None:  # the innermost frame that holds a graph node
        node = next((v for v in tb.tb_frame.f_locals.values() if isinstance(v, Node)), node)
        tb = tb.tb_next
    if node is None:
        return ""
    op = type(node.grad_fn).__name__.removesuffix("Backward0") if node.grad_fn is not None else "an op"
    todo, seen = collections.deque([node]), {id(node)}
    while todo:  # breadth first, back through the inputs
        n = todo.popleft()
        if isinstance(n.module, (nn.Conv2d, nn.Linear, _BN)) and n.module in names:
            return f" at a {op} after layer {names[n.module]!r}"
        for i in n.inputs:
            if id(i) not in seen:
                seen.add(id(i))
                todo.append(i)
    return f" at a {op}"


def trace_groups(model: nn.Module, x: torch.Tensor, ignored: tuple[str, ...] = ()):
    """Trace ``model`` (ungated) with DepGraph: (the graph, the GateGroups to gate in gate order,
    the groups left ungated as {"layers", "why"}). ValueError for what DNAL cannot gate."""
    import torch_pruning as tp

    names = _names(model)
    flags = [(m, m.training) for m in model.modules()]
    model.eval()  # no BN statistics updated, no dropout drawn, batch 1 allowed
    try:
        order, shapes = _run_record(model, x)
        lin = [m for m in order if isinstance(m, (nn.Conv2d, nn.Linear))]
        if not lin:
            raise ValueError(f"{type(model).__name__} runs no conv or linear layer: nothing to gate")
        if not any(isinstance(m, _BN) for m in order):  # refused before DepGraph, which can take
            # minutes and gigabytes on a transformer (swin_t)
            raise ValueError(f"{type(model).__name__}: no group of channels to gate: it runs no BatchNorm "
                             f"(its first layer {names[lin[0]]!r} is a {type(lin[0]).__name__}), and DNAL "
                             "gates a channel after its BatchNorm (conv-bn-ss-relu)")
        with torch.enable_grad():
            try:
                dg = tp.DependencyGraph().build_dependency(model, example_inputs=x, verbose=False)
            except Exception as e:  # what DepGraph raises is not ours to type
                raise ValueError(f"Torch-Pruning's DependencyGraph cannot trace {type(model).__name__}"
                                 f"{_failed_at(e, names)}: {type(e).__name__}: "
                                 f"{(str(e).splitlines() or [''])[0]}") from None
    finally:
        for m, t in flags:
            m.training = t
    # a layer that ran but is not in the graph sits behind a cut in autograd: its channels'
    # coupling is unknown, so pruning would break the network
    for m in order:
        if m not in dg.module2node:
            raise ValueError(f"layer {names[m]!r} ({type(m).__name__}) ran but Torch-Pruning's trace does not "
                             "reach it (a .detach(), .data, torch.no_grad or a non-differentiable op on its "
                             "path): DNAL cannot tell which channels it couples; pass it in ignored_layers or "
                             "make the path differentiable")
    skip = [lin[-1]] + [model.get_submodule(n) for n in ignored]  # the classifier's outputs stay
    specs, ungated = [], []
    for group in dg.get_all_groups(ignored_layers=skip, root_module_types=(nn.Conv2d, nn.Linear)):
        spec, why = _gate_group(dg, group, names, shapes)
        if spec is None:
            ungated.append({"layers": [names[it.dep.target.module] for it in group.items
                                       if it.dep.target.module in names], "why": why})
        else:
            specs.append(spec)
    # a layer that did not run at all (an auxiliary classifier that runs in training mode only):
    # its input channels' coupling is unknown, so the pruned network would fail when it runs
    attn = {m.out_proj for m in model.modules() if isinstance(m, nn.MultiheadAttention)}  # called functionally
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear, _BN)) and m not in shapes and m not in attn:
            raise ValueError(f"layer {names[m]!r} ({type(m).__name__}) does not run in eval mode, where "
                             "attach_gates traces the network (an auxiliary classifier run in training "
                             "only?): DNAL cannot tell which channels it reads; build the network without "
                             "it (torchvision's GoogLeNet and Inception3: aux_logits=False)")
    index = {n: i for i, n in enumerate(names.values())}
    specs.sort(key=lambda s: index[s.bns[0]])  # gate order (dnal_core.gates): the owners' module order
    return dg, specs, ungated


def _gate_group(dg, group, names, shapes) -> tuple[GateGroup | None, str]:
    items = [(it.dep.target.module, it.dep.handler, list(it.idxs)) for it in group.items
             if it.dep.target.module in names]  # modules only (not DepGraph's op nodes)
    uniq = lambda ms: list(dict.fromkeys(ms))  # noqa: E731  (first-seen order, no repeats)
    layers = uniq(m for m, _, _ in items)
    producers = uniq(m for m, h, _ in items if isinstance(m, (nn.Conv2d, nn.Linear)) and dg.is_out_channel_pruning_fn(h))
    consumers = uniq(m for m, h, _ in items if isinstance(m, (nn.Conv2d, nn.Linear)) and dg.is_in_channel_pruning_fn(h)
                     and m not in producers)
    bns = uniq(m for m in layers if isinstance(m, _BN))
    if any(_grouped(m) for m in layers):
        return None, "a grouped (not depthwise) conv: its channels cannot be removed one at a time"
    spatial = [m for m in producers if isinstance(m, nn.Conv2d) and math.prod(shapes.get(m, (1, 1))[2:]) > 1]
    for m in spatial:  # the gate sits after BN: a conv's output must pass a gated BN to be zeroed
        if not any(o.module in bns for o in dg.module2node[m].outputs):
            raise ValueError(f"conv {names[m]!r} has no BatchNorm after it: DNAL gates a channel after its "
                             "BatchNorm (conv-bn-ss-relu); add one, or pass the layer in ignored_layers")
    if not bns:
        return None, "no BatchNorm (linear layers, or convs on 1x1 maps such as squeeze-excitation)"
    for m, _, idxs in items:
        if isinstance(m, _BN) and sorted(idxs) != list(range(m.num_features)):
            raise ValueError(f"BatchNorm {names[m]!r} holds channels of several groups (a concatenation "
                             "before it): not supported by attach_gates")
    root = group.items[0].dep.target.module
    order = list(names)  # module order: the group's first BatchNorm owns the gate
    bns.sort(key=order.index)
    return GateGroup(gate=f"{names[bns[0]]}.ss", channels=bns[0].num_features, root=names[root],
                     bns=tuple(names[b] for b in bns), producers=tuple(names[m] for m in producers),
                     consumers=tuple(names[m] for m in consumers)), ""


def apply_keep(dg, model: nn.Module, specs, keep) -> None:
    """Prune ``model`` (ungated, traced into ``dg``) in place: group ``specs[i]`` keeps the
    channels ``keep[i]`` (indices), in every layer of the group. Torch-Pruning removes them; the
    probe and the builder below use it, and so does ``dnal_core.prune.generic``'s surgery."""
    if len(keep) != len(specs):
        raise ValueError(f"{len(keep)} kept-channel lists for {len(specs)} gate groups")
    for spec, k in zip(specs, keep):
        kept = {int(i) for i in k}
        if not kept or min(kept) < 0 or max(kept) >= spec.channels:
            raise ValueError(f"{spec.gate}: kept channels must be 1 to {spec.channels} indices in "
                             f"[0, {spec.channels}), got {sorted(kept)[:8]}")
        drop = [i for i in range(spec.channels) if i not in kept]
        if drop:
            root = model.get_submodule(spec.root)
            dg.get_pruning_group(root, dg.get_pruner_of_module(root).prune_out_channels, drop).prune()


# --- gates in, gates out ----------------------------------------------------------------------

def _insert_gates(model: nn.Module, specs: list[GateGroup]) -> None:
    for spec in specs:
        owner = model.get_submodule(spec.bns[0])
        device = next(iter(owner.state_dict().values())).device
        owner.ss = SSGate(spec.channels).to(device)
        for name in spec.bns:
            model.get_submodule(name).register_forward_hook(_GateHook(owner))


def strip_gates(model: nn.Module) -> nn.Module:
    """Remove attach_gates' gates and hooks in place: the plain network, same weights."""
    for m in model.modules():
        hooked = [k for k, h in m._forward_hooks.items() if isinstance(h, _GateHook)]
        for k in hooked:
            del m._forward_hooks[k]
        if hooked and "ss" in m._modules:
            del m._modules["ss"]
    return model


def gate_groups(model: nn.Module) -> list[GateGroup]:
    """Per gate, in ``dnal_core.gates`` order: the layers it opens and closes (on a pruned network:
    the same groups with their kept widths)."""
    groups = getattr(model, "dnal_groups", None)
    if groups is None:
        raise ValueError(f"{type(model).__name__} was not made by attach_gates")
    return list(groups)


def _describe(model: nn.Module, arch: dict, groups, ungated, template) -> nn.Module:
    """Give ``model`` what dnal_core reads from a registered model (name, input_size, widths,
    arch()) and the group report."""
    model.name = NAME
    model.input_size = tuple(arch["input_size"])
    model.placement = arch["placement"]
    model.widths = list(arch["widths"])
    model.arch = functools.partial(copy.deepcopy, arch)  # a fresh JSON-able dict per call
    model.dnal_groups = list(groups)
    model.dnal_ungated = list(ungated)
    model._dnal_template = template  # keeps the template alive while any copy of the model is
    model.load_state_dict = types.MethodType(_load_state_dict, model)
    return model


def _load_state_dict(self: nn.Module, state_dict, strict: bool = True, assign: bool = False):
    """``nn.Module.load_state_dict`` of a network of attach_gates: a state dict without torch's
    version metadata (a dict copied key by key: the pruner's surgery, save_pruned's weights,
    ``--weights-from``) is read as of this network's own module versions, as a state_dict() of
    it would be. Without this, torchvision's MNASNet refuses to load (version None)."""
    if getattr(state_dict, "_metadata", None) is None:
        state_dict = collections.OrderedDict(state_dict)
        state_dict._metadata = {n: {"version": m._version} for n, m in self.named_modules()}
    return nn.Module.load_state_dict(self, state_dict, strict=strict, assign=assign)


def _probe(model: nn.Module, x: torch.Tensor, ignored: tuple[str, ...]) -> None:
    """Remove one channel of every group from a copy and run it: an op that DepGraph couples
    wrongly fails here, named, rather than inside a later prune."""
    probe = copy.deepcopy(model)
    dg, specs, _ = trace_groups(probe, x, ignored)
    apply_keep(dg, probe, specs, [range(max(s.channels - 1, 1)) for s in specs])
    names, last = _names(probe), [None]
    hooks = [m.register_forward_pre_hook(lambda m, a: last.__setitem__(0, m))
             for m in probe.modules() if not list(m.children())]
    try:
        with torch.no_grad():
            probe.eval()(x)
    except RuntimeError as e:
        raise ValueError(f"with one channel per group removed, the network fails at or after layer "
                         f"{names.get(last[0])!r}: Torch-Pruning does not follow an op there "
                         f"({str(e).splitlines()[0]}); pass that layer in ignored_layers") from None
    finally:
        for h in hooks:
            h.remove()


def attach_gates(model: nn.Module, example_inputs, placement: str = DEFAULT_PLACEMENT,
                 ignored_layers=None, constructor=None) -> nn.Module:
    """Put one SS gate per group of coupled channels into ``model`` (in place; returned).

    ``example_inputs``: a batch (N, C, H, W) the network takes (only its shape and device are
    used). ``ignored_layers``: modules or module names whose output channels keep full width,
    as Torch-Pruning's. ``constructor``: how to build the same network afresh, needed only to
    rebuild a saved pruned network in another process: "module:function", a function, or a
    ``functools.partial`` with JSON-able keyword arguments. Gates start "off" (identity)."""
    if placement != DEFAULT_PLACEMENT:
        raise ValueError(f"attach_gates places gates after BatchNorm only ({DEFAULT_PLACEMENT!r}), "
                         f"got {placement!r}")
    if any(isinstance(m, SSGate) for m in model.modules()):
        raise ValueError(f"{type(model).__name__} already has SS gates")
    x = example_inputs[0] if isinstance(example_inputs, (tuple, list)) else example_inputs
    if not isinstance(x, torch.Tensor) or x.dim() < 3:
        raise ValueError("example_inputs must be a tensor batch (N, C, H, W)")
    param = next(iter(model.state_dict().values()), None)
    x = x[:1].detach().to(param.device if param is not None else "cpu")
    names = _names(model)
    ignored = tuple(names[m] if isinstance(m, nn.Module) else str(m) for m in ignored_layers or ())
    for n in ignored:
        model.get_submodule(n)  # AttributeError naming an unknown layer
    ref, kwargs = constructor_ref(constructor)
    if ref is not None:
        check_constructor(model, ref, kwargs)
    dg, specs, ungated = trace_groups(model, x, ignored)
    del dg
    if not specs:
        raise ValueError(f"{type(model).__name__}: no group of channels to gate "
                         f"({'; '.join(dict.fromkeys(u['why'] for u in ungated)) or 'no conv'})")
    _probe(model, x, ignored)
    template = _Template(model)  # the ungated network, for the builder
    _insert_gates(model, specs)
    arch = {"model": NAME, "constructor": ref, "kwargs": kwargs, "template": template.key,
            "input_size": list(x.shape[1:]), "placement": placement, "ignored_layers": list(ignored),
            "gates": [s.gate for s in specs], "widths": [s.channels for s in specs], "keep": None}
    return _describe(model, arch, specs, ungated, template)


# --- the "generic" builder: arch() back into a network ------------------------------------------

@register_model(NAME)
def build_generic(constructor=None, kwargs=None, template=None, input_size=None,
                  placement=DEFAULT_PLACEMENT, ignored_layers=(), gates=None, widths=None,
                  keep=None) -> Annotated[nn.Module, "the user's class"]:
    # (not a class: registry.arch_keys then reads this function's keywords as the arch keys)
    """The network an attach_gates ``arch()`` describes: gated (``keep`` None, ``widths`` full),
    else pruned (``keep``: kept channel indices per gate; ``widths`` alone: the first channels,
    which is all that MAC counts need). Built from the in-process template, else from
    ``constructor(**kwargs)``; weights are the constructor's (load a state_dict)."""
    if input_size is None:
        raise ValueError(f"{NAME}: networks of attach_gates are rebuilt from their arch(); "
                         "see dnal_core.attach_gates")
    t = _TEMPLATES.get(template) if template else None
    if t is not None:
        plain = copy.deepcopy(t.plain)
    elif constructor:
        plain = resolve(constructor)(**(kwargs or {}))
        t = _Template(plain)
    else:
        raise ValueError(f"{NAME}: this network was gated in another process without a constructor; "
                         "rebuild it with dnal_core.prune.generic.load(path, constructor=...)")
    ignored = tuple(ignored_layers)
    dg, specs, ungated = trace_groups(plain, torch.zeros((1, *input_size)), ignored)
    if gates is not None and [s.gate for s in specs] != list(gates):
        raise ValueError(f"{NAME}: the rebuilt network's gate groups differ from the saved ones "
                         "(the constructor builds another architecture)")
    full = [s.channels for s in specs]
    arch = {"model": NAME, "constructor": constructor, "kwargs": kwargs or {}, "template": t.key,
            "input_size": list(input_size), "placement": placement, "ignored_layers": list(ignored),
            "gates": [s.gate for s in specs], "widths": full, "keep": None}
    if keep is None and (widths is None or list(widths) == full):
        _insert_gates(plain, specs)
        return _describe(plain, arch, specs, ungated, t)
    if keep is None:
        keep = [range(max(1, min(int(w), c))) for w, c in zip(widths, full)]
    keep = [sorted(int(i) for i in k) for k in keep]
    apply_keep(dg, plain, specs, keep)
    arch.update(widths=[len(k) for k in keep], keep=keep)
    groups = [replace(s, channels=len(k)) for s, k in zip(specs, keep)]
    return _describe(plain, arch, groups, ungated, t).eval()
