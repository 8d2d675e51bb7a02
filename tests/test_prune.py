"""The pruner: verbs (mechanism), keep masks (policy), and the equivalence of every pruned
architecture with its hard-gated network, for the three SS placements."""
import json

import pytest
import torch
from torch import nn

import dnal_core as dn
from dnal_core.models.layers import FoldedConv2d, const_response
from dnal_core.prune import (PruneCheckError, closed_values, fold_conv_in, keep_masks, load_pruned,
                             masked_reference, prune, save_pruned, shift_bn, slice_bn,
                             slice_conv_in, slice_conv_out, slice_depthwise, slice_linear_in)
from dnal_core.prune import cifar as prune_cifar

CIFAR = ["vgg16-cifar", "resnet56-cifar", "mobilenetv2-cifar"]
MULT = {"vgg16-cifar": 0.125, "resnet56-cifar": 0.25, "mobilenetv2-cifar": 0.125}


def randomize_bn(model, gen):
    """Non-trivial BN statistics, so that closed channels emit non-zero constants."""
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            n = m.num_features
            m.weight.data = torch.rand(n, generator=gen) + 0.5
            m.bias.data = torch.randn(n, generator=gen) * 0.5
            m.running_mean.data = torch.randn(n, generator=gen) * 0.5
            m.running_var.data = torch.rand(n, generator=gen) + 0.5


def gated(name, placement, scenario, seed=0):
    """A width-scaled gated model with random BN statistics and hard gates set by ``scenario``."""
    gen = torch.Generator().manual_seed(seed)
    m = dn.build(name, width_mult=MULT[name], placement=placement)
    randomize_bn(m, gen)
    gs = dn.gates(m)
    for _, g in gs:  # random: about half of every layer open (delta 1, threshold 0.5)
        g.s.data = torch.randn(g.channels, generator=gen)
    if scenario == "all_open":
        for _, g in gs:
            g.s.data = g.s.data.abs() + 0.1
    elif scenario == "one_left":
        for _, g in gs:
            g.s.data = -g.s.data.abs() - 0.1
            g.s.data[torch.randint(g.channels, (1,), generator=gen)] = 1.0
    elif scenario == "closed":
        close = {"vgg16-cifar": [5],                      # a plain layer: min_channels binds
                 "resnet56-cifar": [1, 21, 8],            # blocks 0 and 10 removed; block 4's inner layer
                 "mobilenetv2-cifar": [5, 7, 11, 14]}[name]  # blocks 2, 5 removed; block 3 (no shortcut) and 7's hidden bind
        for i in close:
            gs[i][1].s.data = -gs[i][1].s.data.abs() - 0.1
    return m


# --- mechanism ---------------------------------------------------------------------------

def test_slice_verbs_copy_surviving_slices():
    conv, bn, lin = nn.Conv2d(6, 8, 3, padding=1, bias=True), nn.BatchNorm2d(8), nn.Linear(6, 4)
    randomize_bn(bn, torch.Generator().manual_seed(0))
    bn.eval()
    x = torch.randn(2, 6, 5, 5)
    keep_out, keep_in = torch.tensor([0, 3, 7]), torch.tensor([True, False, True, True, False, False])
    with torch.no_grad():
        assert torch.allclose(slice_conv_out(conv, keep_out)(x), conv(x)[:, keep_out], atol=1e-6)
        xin = x * keep_in.float().view(1, -1, 1, 1)  # removed inputs are zero: slicing is exact
        assert torch.allclose(slice_conv_in(conv, keep_in)(x[:, keep_in]), conv(xin), atol=1e-6)
        assert torch.allclose(slice_bn(bn, keep_out).eval()(conv(x)[:, keep_out]), bn(conv(x))[:, keep_out])
        v = torch.randn(6)  # removed features carried constants: folded into the bias
        xf = torch.where(keep_in, torch.randn(3, 6), v)
        assert torch.allclose(slice_linear_in(lin, keep_in, v)(xf[:, keep_in]), lin(xf), atol=1e-6)
        dw = nn.Conv2d(6, 6, 3, padding=1, groups=6)
        assert torch.allclose(slice_depthwise(dw, keep_in)(x[:, keep_in]), dw(x)[:, keep_in], atol=1e-6)
    with pytest.raises(ValueError, match="depthwise"):
        slice_conv_out(dw, [0])


@pytest.mark.parametrize("stride", [1, 2])
def test_constant_inputs_of_a_padded_conv_fold_into_a_border_aware_map(stride):
    """A constant channel under zero padding is not a constant at the borders: the folded conv
    matches exactly, a plain bias (the interior value) would not."""
    conv = nn.Conv2d(5, 4, 3, stride, padding=1, bias=False)
    keep = torch.tensor([True, False, True, False, True])
    values = torch.tensor([0.0, 1.5, 0.0, -0.7, 0.0])
    x = torch.randn(2, 5, 9, 9)
    x[:, ~keep] = values[~keep].view(1, -1, 1, 1)
    with torch.no_grad():
        folded, shift = fold_conv_in(conv, keep, values)
        assert isinstance(folded, FoldedConv2d) and shift is None
        y, yf = conv(x), folded(x[:, keep])
        assert torch.allclose(yf, y, atol=1e-5)
        interior = (conv.weight[:, ~keep] * values[~keep].view(1, -1, 1, 1)).sum((1, 2, 3))
        plain = slice_conv_in(conv, keep)(x[:, keep]) + interior.view(1, -1, 1, 1)
        assert (plain - y).abs().max() > 1e-3  # borders differ
        k = folded.const_kernel
        assert torch.allclose(const_response(k, (9, 9), conv.stride, conv.padding, conv.dilation),
                              nn.functional.conv2d(torch.ones(1, 1, 9, 9), k, None, stride, 1)[0], atol=1e-6)


def test_constant_inputs_of_a_1x1_conv_shift_the_next_bn():
    conv, bn = nn.Conv2d(4, 3, 1, bias=False), nn.BatchNorm2d(3)
    randomize_bn(bn, torch.Generator().manual_seed(1))
    bn.eval()
    keep, values = torch.tensor([True, False, False, True]), torch.tensor([0.0, 2.0, -1.0, 0.0])
    x = torch.randn(2, 4, 6, 6)
    x[:, ~keep] = values[~keep].view(1, -1, 1, 1)
    with torch.no_grad():
        sliced, shift = fold_conv_in(conv, keep, values)
        assert shift is not None and not isinstance(sliced, FoldedConv2d)
        assert torch.allclose(shift_bn(bn, shift).eval()(sliced(x[:, keep])), bn(conv(x)), atol=1e-5)


@pytest.mark.parametrize("placement", dn.PLACEMENTS)
def test_closed_values_per_placement(placement):
    m = gated("vgg16-cifar", placement, "random")
    unit = m.features[0]
    v = closed_values(unit)
    if placement == "conv-ss-bn-relu":  # the gate is before BN: a closed channel emits relu(BN shift)
        bn = unit.bn
        shift = bn.bias - bn.running_mean * bn.weight / torch.sqrt(bn.running_var + bn.eps)
        assert torch.allclose(v, shift.relu().detach()) and v.any()
    else:
        assert not v.any()


# --- policy --------------------------------------------------------------------------------

def _plan(m, **kw):
    return keep_masks(m, **kw)


def test_min_channels_keeps_largest_s_and_reports():
    m = gated("vgg16-cifar", "conv-bn-ss-relu", "closed")
    g = dn.gates(m)[5][1]
    plan = _plan(m, min_channels=3)
    assert int(plan.keep[5].sum()) == 3
    assert set(plan.keep[5].nonzero().flatten().tolist()) == set(g.s.topk(3).indices.tolist())
    assert {"layer": dn.gates(m)[5][0], "open": 0, "kept": 3} in plan.bound
    assert all(int(k.sum()) >= 3 for k in plan.keep)
    with pytest.raises(ValueError, match="min_channels"):
        _plan(m, min_channels=0)


def test_round_to_adds_highest_s_channels():
    m = gated("vgg16-cifar", "conv-bn-ss-relu", "random")
    plan = _plan(m, round_to=4)
    for k, h, (_, g) in zip(plan.keep, plan.reference, dn.gates(m)):
        n = int(k.sum())
        assert n % 4 == 0 or n == g.channels
        assert (k & g.keep()).sum() == g.keep().sum()  # never closes an open channel
        added = k & ~g.keep()
        if added.any() and not k.all():  # the added channels are the largest-s closed ones
            assert g.s[added].min() >= g.s[~k].max()
    assert plan.rounded


def test_branches_go_only_where_a_shortcut_remains():
    m = gated("mobilenetv2-cifar", "conv-bn-ss-relu", "closed")
    plan = _plan(m)
    names = [n for n, _ in dn.gates(m)]
    assert names[5] in plan.removed and names[11] in plan.removed  # residual blocks 2 and 5
    assert names[7] not in plan.removed and plan.keep[7].sum() == 1  # block 3 has no shortcut
    assert not plan.keep[4].any() and not plan.keep[5].any()  # a removed branch keeps nothing


# --- the equivalence, for every architecture, placement and gate pattern -------------------

@pytest.mark.parametrize("scenario", ["random", "all_open", "one_left", "closed"])
@pytest.mark.parametrize("placement", dn.PLACEMENTS)
@pytest.mark.parametrize("name", CIFAR)
def test_pruned_equals_hard_gated(name, placement, scenario):
    m = gated(name, placement, scenario)
    before = [g.s.detach().clone() for _, g in dn.gates(m)]
    m.train()
    first_bn = next(x for x in m.modules() if isinstance(x, nn.BatchNorm2d))
    first_bn.eval()  # a module the caller keeps in eval mode stays so
    res = prune(m, batch_size=2)  # raises PruneCheckError if the logits differ
    assert m.training and not first_bn.training
    rep = res.report
    assert rep["check"] == "passed" and rep["rel_logit_diff"] <= 1e-4
    assert all(torch.equal(b, g.s) for b, (_, g) in zip(before, dn.gates(m)))  # source untouched
    assert not dn.gates(res.model) and res.arch == res.model.arch()
    # the arch as data rebuilds a network with the same MACs and params
    rebuilt = dn.build_from_arch(json.loads(json.dumps(res.arch)))
    rebuilt.load_state_dict(res.model.state_dict())
    assert dn.count(rebuilt) == {"macs": rep["macs_after"], "params": rep["params_after"]}
    if scenario == "all_open":
        assert rep["widths_after"] == rep["widths_before"]
        assert (rep["macs_after"], rep["params_after"]) == (rep["macs_before"], rep["params_before"])
    else:
        assert rep["macs_after"] < rep["macs_before"] and rep["params_after"] < rep["params_before"]
    if scenario == "one_left":
        assert set(rep["widths_after"]) == {1} and not rep["min_channels_bound"]
    if scenario == "closed":
        assert rep["min_channels_bound"]  # a plain layer or a branch's inner layer bound
        assert rep["reference"].startswith("hard gates with")
        if name != "vgg16-cifar":
            assert rep["removed_branches"] and 0 in rep["widths_after"]
    if placement == "conv-ss-bn-relu" and scenario != "all_open":
        assert rep["folded"]["conv_maps"] or rep["folded"]["stream_biases"] or name == "mobilenetv2-cifar"
    elif placement != "conv-ss-bn-relu":
        assert not rep["folded"]["conv_maps"] and not rep["folded"]["stream_biases"]


def test_vgg_pruned_macs_equal_the_open_counts():
    """Where nothing binds, a plain chain's MACs are those of the open-channel widths."""
    m = gated("vgg16-cifar", "conv-bn-ss-relu", "random")
    res = prune(m, batch_size=2)
    assert not res.report["min_channels_bound"]
    assert res.report["macs_after"] == dn.measure.gated_macs(m)
    assert res.model.widths == dn.open_counts(m)


def test_mobilenetv2_streams_narrow_to_live_channels():
    m = gated("mobilenetv2-cifar", "conv-ss-bn-relu", "one_left")
    res = prune(m, batch_size=2)
    default = dn.build("mobilenetv2-cifar", width_mult=MULT["mobilenetv2-cifar"]).stream_widths
    assert sum(res.model.stream_widths) < sum(default)
    assert res.report["macs_after"] < dn.measure.gated_macs(m)  # the width-only count misses this


def test_round_to_check_compares_with_opened_gates_and_reports_cost():
    m = gated("vgg16-cifar", "conv-ss-bn-relu", "random")
    res = prune(m, round_to=8, batch_size=2)
    rep = res.report
    full = dn.build("vgg16-cifar", width_mult=MULT["vgg16-cifar"]).widths
    assert all(w % 8 == 0 or w == f for w, f in zip(rep["widths_after"], full))
    plain = prune(m, batch_size=2).report
    assert rep["round_to_macs_cost"] == rep["macs_after"] - plain["macs_after"] > 0
    # against the plain hard gates the rounded network differs: the reference had to open gates
    hard = masked_reference(m, [g.keep() for _, g in dn.gates(m)])
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert (res.model(x) - hard(x)).abs().max() > 1e-3


def test_check_catches_an_unfolded_constant(monkeypatch):
    """Dropping the classifier's constant inputs instead of folding them breaks equivalence
    with SS before BN, and the check refuses the result."""
    m = gated("vgg16-cifar", "conv-ss-bn-relu", "random")
    monkeypatch.setattr(prune_cifar, "slice_linear_in", lambda lin, idx, values=None: slice_linear_in(lin, idx))
    with pytest.raises(PruneCheckError, match="differs from the hard-gated network"):
        prune(m, batch_size=2)


def test_prune_rejects_bad_input():
    with pytest.raises(ValueError, match="no pruner"):
        prune(nn.Sequential(nn.Linear(2, 2)))
    with pytest.raises(ValueError, match="round_to"):
        prune(gated("vgg16-cifar", "conv-bn-ss-relu", "random"), round_to=0)


def test_saved_pruned_model_reloads_with_its_constants(tmp_path):
    """Folded maps and stream biases are buffers: they travel in weights.pt (a fresh process
    reloads it in test_prune_cli)."""
    m = gated("resnet56-cifar", "conv-ss-bn-relu", "closed")
    res = prune(m, batch_size=2)
    save_pruned(res, tmp_path)
    assert json.loads((tmp_path / "arch.json").read_text()) == res.arch
    loaded = load_pruned(tmp_path)
    assert isinstance(loaded, type(m)) and dn.count_params(loaded) == res.report["params_after"]
    assert any(k.endswith("const_kernel") for k in loaded.state_dict())
    assert any(k.endswith("place.bias") for k in loaded.state_dict())
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(loaded(x), res.model(x))


def test_load_pruned_rejects_mismatched_files(tmp_path):
    res = prune(gated("vgg16-cifar", "conv-bn-ss-relu", "random"), batch_size=2)
    save_pruned(res, tmp_path)
    arch = dict(res.arch, widths=[w + 1 for w in res.arch["widths"]])
    (tmp_path / "arch.json").write_text(json.dumps(arch))
    with pytest.raises(ValueError, match="does not match"):
        load_pruned(tmp_path)
    with pytest.raises(ValueError, match="not found"):
        load_pruned(tmp_path / "nope")


# --- ImageNet families (their builders need the pruned-arch keys: gated, folded, ...) -------

def _can_prune(name):
    try:
        dn.build(name, width_mult=0.0625, gated=False)
    except TypeError:
        return False
    return True


IMAGENET = [("resnet50-imagenet", p, {}) for p in dn.PLACEMENTS] + [
    ("proxyless-supernet", "conv-ss-bn-relu", {}), ("proxyless-supernet", "conv-bn-ss-relu", {"eq5_relu": True}),
    ("vgg16-imagenet", "conv-ss-bn-relu", {}), ("mobilenetv2-imagenet", "conv-ss-bn-relu", {})]


@pytest.mark.parametrize("name,placement,kw", IMAGENET)
def test_imagenet_pruned_equals_hard_gated(name, placement, kw):
    if not _can_prune(name):
        pytest.skip(f"{name}'s builder does not take gated=False yet (see the prune report)")
    gen = torch.Generator().manual_seed(0)
    m = dn.build(name, width_mult=0.0625 if name == "vgg16-imagenet" else 0.125, placement=placement, **kw)
    randomize_bn(m, gen)
    gs = dn.gates(m)
    for _, g in gs:
        g.s.data = torch.randn(g.channels, generator=gen)
    if name == "resnet50-imagenet":  # block 0 (with projection) and block 1 removed; block 2's 3x3 closed
        close = [3, 6, 8]
    elif name == "proxyless-supernet":  # layer 2 (shortcut): every candidate; layer 5 (none): every one
        first = [sum(2 * len(layer.candidates) for layer in m.layers[:li]) for li in range(len(m.layers))]
        close = [first[2] + 2 * c + 1 for c in range(6)] + [first[5] + 2 * c + 1 for c in range(6)]
    else:
        close = []
    for i in close:
        gs[i][1].s.data = -gs[i][1].s.data.abs() - 0.1
    res = prune(m, batch_size=2)
    rep = res.report
    assert rep["check"] == "passed" and rep["rel_logit_diff"] <= 1e-4 and not dn.gates(res.model)
    rebuilt = dn.build_from_arch(json.loads(json.dumps(res.arch)))
    assert dn.count(rebuilt) == {"macs": rep["macs_after"], "params": rep["params_after"]}
    if name == "resnet50-imagenet":
        assert res.arch["widths"][1:7] == [0] * 6 and res.model.blocks[0].downsample is not None
    if name == "proxyless-supernet":
        assert res.arch["ops"][2] == [] and len(res.arch["ops"][5]) == 1  # identity; the largest s kept
        assert any(len(o) > 1 for o in res.arch["ops"][1:])  # several candidates survive in a layer
