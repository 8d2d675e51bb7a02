"""ImageNet builders and the ProxylessNAS supernet: forward/backward at every placement and gate
mode, arch round trips, the paper's baselines, torchvision weights, the supernet's eq. 5."""
import json
import random

import pytest
import torch
import torchvision
from torch import nn

from dnal_core import PLACEMENTS, build, build_from_arch, count, gates, set_mode
from dnal_core.cli import main as dnal
from dnal_core.models.imagenet import TORCHVISION, load_torchvision_weights
from dnal_core.models.proxyless import CANDIDATES, FIRST_OP, SPACE

IMAGENET = ["vgg16-imagenet", "resnet50-imagenet", "mobilenetv2-imagenet", "proxyless-supernet"]
MULT = 0.125
SIZE = 64  # not the declared 224: every model pools adaptively


def small(name, **kw):
    return build(name, width_mult=MULT, **kw)


def on_meta(name, **kw):
    """A full-size model without its memory: meta tensors are enough to count MACs and params
    (fast for dense convs; the CPU is faster for many depthwise ones)."""
    with torch.device("meta"):
        return build(name, **kw)


def test_registry_lists_imagenet_models():
    from dnal_core import list_models
    assert set(IMAGENET) <= set(list_models())


@pytest.mark.parametrize("name", IMAGENET)
@pytest.mark.parametrize("placement", PLACEMENTS)
def test_forward_backward_every_placement_and_mode(name, placement):
    m = small(name, placement=placement)
    x = torch.randn(2, 3, SIZE, SIZE)
    for mode in ("off", "soft", "hard"):
        set_mode(m, mode)
        m.zero_grad(set_to_none=True)
        y = m(x)
        assert y.shape == (2, 1000) and torch.isfinite(y).all()
        y.square().mean().backward()
        s_grads = [g.s.grad for _, g in gates(m)]
        if mode == "soft":  # every gate is on the path to the loss
            assert all(gr is not None and torch.isfinite(gr).all() for gr in s_grads)
        else:  # off and hard gates pass no gradient to s
            assert all(gr is None or not gr.any() for gr in s_grads)
        assert all(p.grad is not None for n, p in m.named_parameters() if not n.endswith(".s"))


def test_gate_counts_and_places():
    vgg, res, mb, sup = (small(n) for n in IMAGENET)
    assert len(gates(vgg)) == 13 and all(n.startswith("features.") for n, _ in gates(vgg))  # no FC gate
    # ResNet50: stem + 3 per bottleneck; bn3's gate sits before the sum; projections ungated
    assert len(gates(res)) == 1 + 3 * 16
    assert all(n.startswith("stem.") or ".conv" in n for n, _ in gates(res))
    assert [c for c, _ in res.blocks[0].conv3.named_children()] == ["conv", "bn", "ss"]
    assert not any("downsample" in n for n, _ in gates(res))
    # MobileNetV2: depthwise + projection per block, the last conv; not the stem, not expansion
    assert len(gates(mb)) == 2 * 17 + 1
    assert not any(n.startswith("stem.") or ".expand." in n for n, _ in gates(mb))
    # supernet: layer 0 (2), six candidates x 2 gates in 21 layers, the feature mix
    assert len(gates(sup)) == 2 + 21 * 6 * 2 + 1
    assert gates(sup)[-1][0] == "feature_mix.ss"
    assert sup.layers[0].ops == [FIRST_OP] and all(layer.ops == list(CANDIDATES) for layer in sup.layers[1:])
    assert [layer.residual for layer in sup.layers] == [False] + [i > 0 for n in SPACE.cells for i in range(n)]


def random_widths(model, rng):
    return [rng.randint(1, w) for w in model.default_widths]


@pytest.mark.parametrize("name", IMAGENET)
def test_arch_round_trips_json(name, tmp_path):
    rng = random.Random(1)
    m = small(name, widths=random_widths(small(name), rng), placement="conv-ss-bn-relu", num_classes=7)
    path = tmp_path / "arch.json"
    path.write_text(json.dumps(m.arch()))
    m2 = build_from_arch(path)
    assert m2.arch() == m.arch()
    m2.load_state_dict(m.state_dict())  # same shapes everywhere
    assert [g.channels for _, g in gates(m2)] == m.widths
    assert m2(torch.randn(2, 3, 48, 48)).shape == (2, 7)


def test_resnet50_out_index_round_trip():
    ref = small("resnet50-imagenet")
    widths = list(ref.default_widths)
    widths[3] = 2  # block 0 keeps 2 of its 32 output channels ...
    idx = [None] * 16
    idx[0] = [30, 1]  # ... at stream channels 30 and 1
    m = small("resnet50-imagenet", widths=widths, out_index=idx)
    m2 = build_from_arch(json.loads(json.dumps(m.arch())))
    assert m2.blocks[0].place.index.tolist() == [30, 1]
    m2.load_state_dict(m.state_dict())


# ---- the supernet's architecture data: which candidates survive, their widths and places -----

def pruned_supernet_arch(model, rng):
    """Keep a random subset of candidates per layer (none in one residual layer), random widths
    and a random placement of each survivor's outputs in its stream."""
    ops, widths, idx, it = [], [], [], iter(model.default_widths)
    for li, layer in enumerate(model.layers):
        keep = [True] if li == 0 else [rng.random() < 0.5 for _ in layer.ops]
        if li == 2:
            keep = [False] * len(layer.ops)  # a residual layer may lose every candidate
        elif li > 0 and not any(keep):
            keep[rng.randrange(len(keep))] = True
        names, places = [], []
        for op, k, cand in zip(layer.ops, keep, layer.candidates):
            hidden, out = next(it), next(it)
            if k:
                w_out = rng.randint(1, out)
                names.append(op)
                widths += [rng.randint(1, hidden), w_out]  # layer 0: the stem follows its hidden width
                places.append(sorted(rng.sample(range(cand.place.stream), w_out)))
        ops.append(names)
        idx.append(places)
    widths.append(rng.randint(1, next(it)))
    return {**model.arch(), "ops": ops, "widths": widths, "out_index": idx}


def test_supernet_pruned_arch_round_trips():
    rng = random.Random(3)
    dense = small("proxyless-supernet")
    arch = pruned_supernet_arch(dense, rng)
    m = build_from_arch(json.loads(json.dumps(arch)))
    assert m.arch() == arch
    assert len(m.layers[2].candidates) == 0 and m.layers[2].residual
    assert [g.channels for _, g in gates(m)] == arch["widths"]
    m2 = build_from_arch(m.arch())
    m2.load_state_dict(m.state_dict())
    x = torch.randn(2, 3, SIZE, SIZE)
    m.eval(), m2.eval()
    torch.testing.assert_close(m(x), m2(x))
    assert count(m)["params"] < count(dense)["params"]


def test_supernet_dense_arch_is_compact():
    arch = small("proxyless-supernet").arch()
    assert arch["ops"] is None and arch["out_index"] is None and arch["stream_widths"] is None
    assert arch["eq5_relu"] is False


@pytest.mark.parametrize("kw, match", [
    ({"ops": [["3x3_MBConv3"]] * 22}, "layer 0 is the fixed"),
    ({"ops": [[FIRST_OP]] + [["9x9_MBConv3"]] * 21}, "layer 1 lists"),
    ({"ops": [[FIRST_OP]] + [["3x3_MBConv3", "3x3_MBConv3"]] * 21}, "distinct"),
    ({"ops": [[FIRST_OP]] + [[]] * 21}, "layer 1 has no shortcut"),
    ({"ops": [[FIRST_OP]] * 3}, "one candidate list per layer"),
    ({"widths": [4] * 10}, "expected 255 widths"),
    ({"out_index": [None] * 3}, "out_index needs one list per layer"),
    ({"stream_widths": [8] * 6}, "stream_widths needs 7"),
])
def test_supernet_rejects_bad_arch(kw, match):
    with pytest.raises(ValueError, match=match):
        small("proxyless-supernet", **kw)


def test_supernet_layer_is_the_sum_of_its_candidates():
    """Eq. 5 as coded: layer output = identity + sum of candidate outputs, no activation; and a
    candidate whose gates are all closed is exactly a candidate removed from ``ops``."""
    m = small("proxyless-supernet").eval()
    layer = m.layers[2]  # stride 1, residual, six candidates
    x = torch.randn(2, layer.candidates[0].expand[0].in_channels, 16, 16)
    with torch.no_grad():
        parts = [c(x) for c in layer.candidates]
        torch.testing.assert_close(layer(x), x + sum(parts))
        assert min(p.min() for p in parts) < 0  # linear bottleneck: no ReLU on the candidates

    set_mode(m, "hard")
    with torch.no_grad():
        for _, g in gates(m):
            g.s.fill_(1.0)
        for li in (2, 5):  # close every gate of layer 2's and layer 5's last candidate
            for _, g in gates(m.layers[li].candidates[-1]):
                g.s.fill_(-1.0)
    arch = m.arch()
    arch["ops"] = [list(layer.ops) for layer in m.layers]
    drop = []
    for li in (2, 5):
        arch["ops"][li] = arch["ops"][li][:-1]
        drop.append((li, len(m.layers[li].ops) - 1))
    widths, it = [], iter(m.widths)
    for li, layer in enumerate(m.layers):
        for ci in range(len(layer.ops)):
            hidden, out = next(it), next(it)
            if (li, ci) not in drop:
                widths += [hidden, out]
    arch["widths"] = widths + [next(it)]
    pruned = build_from_arch(arch).eval()
    set_mode(pruned, "hard")
    keep = set(pruned.state_dict())
    pruned.load_state_dict({k: v for k, v in m.state_dict().items() if k in keep})
    x = torch.randn(2, 3, SIZE, SIZE)
    with torch.no_grad():
        torch.testing.assert_close(pruned(x), m(x))


def test_supernet_eq5_relu_option():
    m = small("proxyless-supernet", eq5_relu=True).eval()
    assert build_from_arch(m.arch()).eq5_relu
    layer = m.layers[2]
    x = torch.randn(2, layer.candidates[0].expand[0].in_channels, 16, 16)
    with torch.no_grad():
        assert all(c(x).min() >= 0 for c in layer.candidates)


# ---- the paper's baselines at 224x224 -------------------------------------------------------

def test_vgg16_baseline_matches_paper():
    c = count(on_meta("vgg16-imagenet"))
    assert (c["macs"], c["params"]) == (15_470_264_320, 138_365_992)  # Table IV: 15.47G, 138.37M
    # the authors' classifier (BN1d, no dropout): same MACs, 16,384 more BN params
    c2 = count(on_meta("vgg16-imagenet", fc_bn=True, dropout=0.0))
    assert (c2["macs"], c2["params"] - c["params"]) == (c["macs"], 4 * 4096)


def test_resnet50_baseline_matches_paper():
    m = on_meta("resnet50-imagenet")
    c = count(m)
    assert c["macs"] == 4_089_184_256 and round(c["macs"] / 1e9, 2) == 4.09  # Table V
    assert c["params"] == 25_557_032  # torchvision's resnet50
    # the paper's 25.55M: the authors' counter skips the BN of the (unmasked) downsample convs
    skipped = sum(2 * b.downsample.bn.num_features for b in m.blocks if b.downsample is not None)
    assert round((c["params"] - skipped) / 1e6, 2) == 25.55


def test_mobilenetv2_baseline_matches_paper(capsys):
    assert dnal(["count", "mobilenetv2-imagenet"]) == 0
    c = json.loads(capsys.readouterr().out)
    assert (c["macs"], c["params"]) == (300_774_272, 3_504_872)  # conv + linear MACs
    assert round(c["params"] / 1e6, 2) == 3.50  # Table VI
    # the paper's 300.79M: the authors' counter adds one op per conv output channel and per
    # Linear bias to the MACs
    m = on_meta("mobilenetv2-imagenet")
    extra = sum(c.out_channels for c in m.modules() if isinstance(c, nn.Conv2d)) + m.classifier.out_features
    assert round((c["macs"] + extra) / 1e6, 2) == 300.79


def supernet_analytic_params(classes=1000):
    """Params of the dense supernet written out from the search space alone."""
    sp = SPACE
    p = 3 * sp.stem * 9 + 2 * sp.stem  # stem conv + BN
    p += sp.stem * 9 + 2 * sp.stem + sp.stem * sp.first + 2 * sp.first  # layer 0: MBConv1
    cin = sp.first
    for width, n in zip(sp.widths, sp.cells):
        for _ in range(n):
            for k in sp.kernels:
                for e in sp.expands:
                    h = cin * e
                    p += cin * h + 2 * h + h * k * k + 2 * h + h * width + 2 * width
            cin = width
    p += cin * sp.last + 2 * sp.last
    return p + sp.last * classes + classes


def test_supernet_dense_params():
    c = count(build("proxyless-supernet"))  # on the CPU: meta depthwise convs count slower
    assert c["params"] == supernet_analytic_params() == 16_034_168
    assert round(c["params"] / 1e6, 2) == 16.03  # Table VII: 16.0M; official code: 16.03M
    assert c["macs"] == 2_260_347_776


# ---- torchvision weights ---------------------------------------------------------------------

@pytest.mark.parametrize("name", [pytest.param("vgg16-imagenet", marks=pytest.mark.slow),
                                  "resnet50-imagenet", "mobilenetv2-imagenet"])
def test_torchvision_weights_give_the_same_logits(name):  # vgg: 2 x 138M params to initialise
    tv = getattr(torchvision.models, TORCHVISION[name][0])(weights=None).eval()
    with torch.no_grad():  # random BN statistics and affines, so a misplaced BN shows
        for mod in tv.modules():
            if isinstance(mod, nn.BatchNorm2d):
                mod.running_mean.normal_(0, 0.1), mod.running_var.uniform_(0.5, 2.0)
                mod.weight.normal_(1, 0.1), mod.bias.normal_(0, 0.1)
    ours = build(name).eval()
    load_torchvision_weights(ours, tv.state_dict())  # gates stay in mode "off": identity
    x = torch.randn(1, 3, SIZE, SIZE)
    with torch.no_grad():
        expect, got = tv(x), ours(x)
    torch.testing.assert_close(got, expect, rtol=1e-4, atol=1e-5 * expect.abs().max().item())


def test_torchvision_weights_reject_mismatches():
    sd = torchvision.models.mobilenet_v2(weights=None).state_dict()
    m = build("mobilenetv2-imagenet")
    with pytest.raises(ValueError, match="shape"):
        load_torchvision_weights(build("mobilenetv2-imagenet", num_classes=10), sd)
    with pytest.raises(ValueError, match="missing"):
        load_torchvision_weights(m, {k: v for k, v in sd.items() if k != "features.3.conv.1.1.weight"})
    with pytest.raises(ValueError, match="unexpected"):
        load_torchvision_weights(m, {**sd, "extra.weight": torch.zeros(1)})
    with pytest.raises(ValueError, match="no torchvision layout"):
        load_torchvision_weights(small("proxyless-supernet"), sd)
    with pytest.raises(ValueError, match="no torchvision layout"):
        load_torchvision_weights(small("vgg16-imagenet", fc_bn=True), {})
