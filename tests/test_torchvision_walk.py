"""Every torchvision classification model through attach_gates (issue 23, item 3).

For each name in ``torchvision.models.list_models(module=torchvision.models)`` (random weights,
10 classes, the smallest input it takes): either ``attach_gates`` refuses it with a ValueError
of one line that names a layer of the network and the family's reason, or it attaches, and
random hard gates (seeded, at least one channel open per gate) prune it to logits equal to the
hard-gated network's within 1e-4 relative, and ``save_model``/``load_model`` (weights-only)
give the same logits back. No model attaches and then fails at prune.

``FAMILIES`` says what each family does and why; a model whose outcome changes fails here, and
``book/reference/torchvision.md`` is ``page()`` of that table (``test_page_is_current``;
regenerate with ``python tests/test_torchvision_walk.py > book/reference/torchvision.md``).

Time: models over ``GIANT`` parameters take seconds to build and to trace each (regnet_y_128gf
a minute and 15 GB of memory): they run with ``DNAL_WALK_ALL=1`` and are skipped otherwise,
unless a model is its family's smallest and under ``FAMILY_CAP`` (every family but VGG and
VGG-BN runs by default). All 82 cases took 175 CPU seconds on one thread (2026-12-07).
"""
from __future__ import annotations

import functools
import os
import re
import sys
import textwrap
import warnings
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

PAGE = Path(__file__).resolve().parents[1] / "book" / "reference" / "torchvision.md"
RTOL = 1e-4
# parameters above which a model runs only with DNAL_WALK_ALL=1, unless it is its family's smallest
# and under FAMILY_CAP (a family's smallest keeps the family in the default walk; VGG's and
# VGG-BN's smallest have 130M, 2 and 9 CPU seconds of the walk's 60)
GIANT, FAMILY_CAP = 30_000_000, 100_000_000
WALK_ALL = os.environ.get("DNAL_WALK_ALL") == "1"

# inputs other than 32x32, and the constructor keywords that let a fixed-size model take a small one
SIZE = {"alexnet": 64, "inception_v3": 75, "maxvit_t": 224, "vit_h_14": 28}
KWARGS = {n: {"image_size": SIZE.get(n, 32)} for n in ("vit_b_16", "vit_b_32", "vit_l_16", "vit_l_32", "vit_h_14")}
# GoogLeNet and Inception3 as built (aux classifiers on) are refused; without them they prune
VARIANTS = {"googlenet-noaux": ("googlenet", {"aux_logits": False}),
            "inception_v3-noaux": ("inception_v3", {"aux_logits": False})}

NO_BN = "has no BatchNorm after it"
NONE = "runs no BatchNorm"  # refused before Torch-Pruning traces it


@dataclass(frozen=True)
class Family:
    name: str
    match: str           # regular expression on the model name (full match)
    refused: str | None  # what attach_gates' message says (None: it prunes)
    why: str             # one line for the page: why refused, or a note on what prunes


FAMILIES = [
    Family("AlexNet", r"alexnet", NONE, "no BatchNorm anywhere: DNAL's gate sits after a BatchNorm"),
    Family("ConvNeXt", r"convnext_\w+", NONE, "no BatchNorm: LayerNorm after its depthwise convolutions"),
    Family("DenseNet", r"densenet\d+", "holds channels of several groups",
           "a BatchNorm after a concatenation (each dense layer's norm1 reads all earlier layers' channels)"),
    Family("EfficientNet", r"efficientnet_b\d", None,
           "squeeze-excitation convs (on 1x1 maps, no BatchNorm) keep their width"),
    Family("EfficientNetV2", r"efficientnet_v2_\w", None, "as EfficientNet"),
    Family("GoogLeNet", r"googlenet", "does not run in eval mode",
           "its auxiliary classifiers run in training only, so the trace cannot see what they read; "
           "with aux_logits=False it prunes"),
    Family("GoogLeNet, aux_logits=False", r"googlenet-noaux", None, ""),
    Family("Inception v3", r"inception_v3", "does not run in eval mode",
           "its auxiliary classifier runs in training only; with aux_logits=False it prunes"),
    Family("Inception v3, aux_logits=False", r"inception_v3-noaux", None, "input 75x75 at least"),
    Family("MaxViT", r"maxvit_t", NO_BN,
           "the last 1x1 conv of each MBConv has no BatchNorm; attention blocks use LayerNorm"),
    Family("MNASNet", r"mnasnet\d_\d+", None, ""),
    Family("MobileNetV2", r"mobilenet_v2", None, "depthwise convs share their input's gate"),
    Family("MobileNetV3", r"mobilenet_v3_\w+", None,
           "squeeze-excitation convs (on 1x1 maps, no BatchNorm) keep their width"),
    Family("RegNetX", r"regnet_x_\w+", None,
           "the stem and the stage streams only: grouped convolutions keep their channels"),
    Family("RegNetY", r"regnet_y_\w+", None,
           "the stem and the stage streams only: grouped convolutions keep their channels"),
    Family("ResNet", r"resnet\d+", None, "each stage's residual stream is one gate"),
    Family("ResNeXt", r"resnext\w+", None,
           "the stem and the residual streams only: grouped convolutions keep their channels"),
    Family("ShuffleNetV2", r"shufflenet_v2_\w+", "cannot trace",
           "Torch-Pruning's DependencyGraph cannot follow the channel shuffle (a view/transpose of channels)"),
    Family("SqueezeNet", r"squeezenet\d_\d", NONE, "no BatchNorm anywhere"),
    Family("Swin", r"swin_[bst]", NONE,
           "no BatchNorm: LayerNorm and shifted-window attention (refused before Torch-Pruning's trace, "
           "which on swin_t runs for minutes through gigabytes)"),
    Family("Swin V2", r"swin_v2_[bst]", NONE, "no BatchNorm: LayerNorm and shifted-window attention"),
    Family("VGG", r"vgg\d+", NONE, "no BatchNorm anywhere (the `_bn` variants prune)"),
    Family("VGG-BN", r"vgg\d+_bn", None, "the classifier's Linear layers keep their width"),
    Family("ViT", r"vit_\w+", NONE, "no BatchNorm: a patch-embedding conv, then LayerNorm and attention"),
    Family("Wide ResNet", r"wide_resnet\w+", None, "each stage's residual stream is one gate"),
]


def family(name: str) -> Family:
    found = [f for f in FAMILIES if re.fullmatch(f.match, name)]
    assert len(found) == 1, f"{name}: families {[f.name for f in found]} (add it to FAMILIES)"
    return found[0]


def _torchvision():
    import torchvision
    return torchvision


def names() -> list[str]:
    """torchvision's classification models, then the variants."""
    return list(_torchvision().models.list_models(module=_torchvision().models)) + list(VARIANTS)


def build(name: str):
    """(torchvision's ``name``: random weights, 10 classes, eval; a batch of 2 inputs it takes)."""
    base, extra = VARIANTS.get(name, (name, {}))
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # GoogLeNet's and Inception3's note on their init
        net = _torchvision().models.get_model(base, num_classes=10, **KWARGS.get(base, {}), **extra)
    s = SIZE.get(base, 32)
    return net.eval(), torch.randn(2, 3, s, s, generator=torch.Generator().manual_seed(1))


def params(name: str) -> int:
    """Parameters as torchvision's weights metadata counts them (at 1000 classes; close enough
    for the threshold), without building the model."""
    base = VARIANTS.get(name, (name, {}))[0]
    return next(iter(_torchvision().models.get_model_weights(base))).meta["num_params"]


def _cases():
    all_names = names()
    sizes = {n: params(n) for n in all_names}
    smallest = {}
    for n in all_names:
        f = family(n).name
        if f not in smallest or sizes[n] < sizes[smallest[f]]:
            smallest[f] = n
    keep = {n for n in smallest.values() if sizes[n] <= FAMILY_CAP}
    return [pytest.param(n, marks=pytest.mark.skipif(
        not WALK_ALL and sizes[n] > GIANT and n not in keep,
        reason=f"{sizes[n] / 1e6:.0f}M parameters: DNAL_WALK_ALL=1 walks it")) for n in all_names]


def random_hard_gates(model, seed: int = 1) -> None:
    """s ~ N(0, 1): about half of each gate's channels closed, its largest s kept open."""
    import dnal_core as dn

    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, gate in dn.gates(model):
            s = torch.randn(gate.channels, generator=g)
            s[s.argmax()] = abs(float(s.max())) + 0.5
            gate.s.copy_(s)
    dn.set_mode(model, "hard")


def rel_diff(got: torch.Tensor, want: torch.Tensor) -> float:
    return float((got - want).abs().max()) / max(float(want.abs().max()), 1e-12)


@pytest.mark.parametrize("name", _cases())
def test_walk(name, tmp_path):
    import dnal_core as dn
    from dnal_core.io import load_model, save_model
    from dnal_core.prune import prune

    fam = family(name)
    net, x = build(name)
    modules = {n for n, _ in net.named_modules()}
    if fam.refused is not None:
        with pytest.raises(ValueError) as err:
            dn.attach_gates(net, x)
        msg = str(err.value)
        assert "\n" not in msg and fam.refused in msg, msg
        assert any(q in modules for q in re.findall(r"'([\w.]+)'", msg)), f"no layer named: {msg}"
        return
    model = dn.attach_gates(net, x)
    random_hard_gates(model)
    assert all(gate.keep().any() for _, gate in dn.gates(model))
    with torch.no_grad():
        hard = model.eval()(x)
    res = prune(model)  # its own check: PruneCheckError above 1e-4 relative
    assert res.report["check"] == "passed" and not res.report["min_channels_bound"]
    assert res.report["macs_after"] < res.report["macs_before"]
    with torch.no_grad():
        pruned = res.model.eval()(x)
    assert rel_diff(pruned, hard) <= RTOL
    save_model(res.model, tmp_path / "pruned.pt")
    back, _ = load_model(tmp_path / "pruned.pt")
    with torch.no_grad():
        assert torch.equal(back.eval()(x), pruned)


def test_state_dicts_without_versions(tmp_path):
    """MNASNet refuses a state dict without torch's version metadata (``version None``), and the
    library copies state dicts key by key (the pruner's surgery, save_pruned's weights.pt,
    ``--weights-from``): a network of attach_gates reads such a dict as of its own versions."""
    import dnal_core as dn
    from dnal_core.prune import load_pruned, prune, save_pruned

    net, x = build("mnasnet0_5")
    model = dn.attach_gates(net, x)
    model.load_state_dict({k: v.clone() for k, v in model.state_dict().items()})  # a plain dict
    random_hard_gates(model)
    res = prune(model)
    save_pruned(res, tmp_path)
    with torch.no_grad():
        assert torch.equal(load_pruned(tmp_path)(x), res.model.eval()(x))


def page() -> str:
    """book/reference/torchvision.md: FAMILIES as a table."""
    all_names = names()
    rows, n_prune, n_refuse = [], 0, 0
    for f in FAMILIES:
        members = [n for n in all_names if re.fullmatch(f.match, n)]
        shown = [VARIANTS[n][0] if n in VARIANTS else n for n in members]
        if f.refused is None:
            n_prune += len(members) if not f.name.endswith("=False") else 0
        else:
            n_refuse += len(members)
        outcome = "prunes" if f.refused is None else "refused"
        rows.append(f"| {f.name} | {', '.join(f'`{n}`' for n in shown)} | {outcome} | {f.why} |")
    n_models = len(all_names) - len(VARIANTS)
    fill = functools.partial(textwrap.fill, width=100, break_on_hyphens=False)
    return "\n".join([
        "# torchvision models",
        "",
        fill(f"What `attach_gates` does with each of torchvision's {n_models} classification models "
             "(`torchvision.models.list_models(module=torchvision.models)`), as `tests/test_torchvision_walk.py` "
             "walks them: random weights, 10 classes, the smallest input each takes (32x32; AlexNet 64, "
             "Inception v3 75, MaxViT 224; ViT built with `image_size=32`, vit_h_14 28). A model that "
             "*prunes* attaches, random hard gates prune it to the hard-gated network's logits (within "
             "1e-4 relative) and the saved file loads back to the same logits. A *refused* model gets a "
             "ValueError of one line from `attach_gates`, naming the layer and the reason; nothing is gated."),
        "",
        fill(f"{n_prune} models prune, {n_refuse} are refused; GoogLeNet and Inception v3 prune when built "
             "with `aux_logits=False`."),
        "",
        "| Family | Models | `attach_gates` | Why, or a note |",
        "|---|---|---|---|",
        *rows,
        "",
        fill(f"By default the test walks the models up to {GIANT // 1_000_000}M parameters and each family's "
             f"smallest up to {FAMILY_CAP // 1_000_000}M; the others (seconds to a minute each to build and "
             "trace) with `DNAL_WALK_ALL=1`. "
             "This page is `page()` in the test, regenerated with "
             "`python tests/test_torchvision_walk.py > book/reference/torchvision.md`."),
        "",
    ])


def test_page_is_current():
    assert {family(n).name for n in names()} == {f.name for f in FAMILIES}  # no family left empty
    assert PAGE.read_text() == page(), "regenerate: python tests/test_torchvision_walk.py > " + str(PAGE)


if __name__ == "__main__":
    sys.stdout.write(page())
