"""DNAL on networks it was not written for (issue #11): attach_gates on torchvision models,
random hard gates pruned for real and checked, files rebuilt, every stage on random data, and
the clear errors. Random weights and small inputs: about a minute on one thread."""
import copy
import functools
import math
import subprocess
import sys

import pytest
import torch
import torchvision
from torch import nn

import dnal_core as dn
from dnal_core.attach import gate_groups
from dnal_core.prune import PruneCheckError, load_pruned, prune, save_pruned
from dnal_core.recipes import StageConfig
from dnal_core.train.stages import (derive_network, finetune, train_architecture, train_joint,
                                    train_weights)

# model -> (gates attach_gates must find, one gate's expected members)
MODELS = {
    "resnet18": (12, ("bn1.ss", ("bn1", "layer1.0.bn2", "layer1.1.bn2"))),  # stem + layer1 stream
    "mobilenet_v2": (25, ("features.0.1.ss", ("features.0.1", "features.1.conv.0.1"))),  # + depthwise
    "mobilenet_v3_small": (17, ("features.0.1.ss", ("features.0.1", "features.1.block.0.1"))),
    "efficientnet_b0": (24, ("features.0.1.ss", ("features.0.1", "features.1.0.block.0.1"))),
    "regnet_x_400mf": (5, ("stem.1.ss", ("stem.1",))),  # grouped convs: only the streams gate
}
_ATTACHED = {}


def gated(name: str) -> nn.Module:
    """A fresh copy of torchvision's ``name`` (10 classes, seeded weights) with gates attached
    for 64x64 inputs (attached once per model, copied for each test)."""
    if name not in _ATTACHED:
        torch.manual_seed(0)
        net = getattr(torchvision.models, name)(num_classes=10)
        _ATTACHED[name] = dn.attach_gates(net, torch.randn(2, 3, 64, 64))
    return copy.deepcopy(_ATTACHED[name])


def random_hard_gates(model: nn.Module, seed: int = 1) -> None:
    """s ~ N(0, 1) (about half the channels closed), the second gate closed entirely."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for i, (_, gate) in enumerate(dn.gates(model)):
            gate.s.copy_(torch.randn(gate.channels, generator=g) - (100.0 if i == 1 else 0.0))
    dn.set_mode(model, "hard")


def test_groups_and_membership():
    model = gated("resnet18")
    groups = gate_groups(model)
    assert [g.gate for g in groups] == [n for n, _ in dn.gates(model)] == model.arch()["gates"]
    stream = next(g for g in groups if g.gate == "bn1.ss")
    assert stream.bns == ("bn1", "layer1.0.bn2", "layer1.1.bn2")
    assert "fc" not in {n for g in groups for n in g.producers}  # the classifier's outputs stay
    assert model.widths == [g.channels for g in groups]
    # one gate for the whole stream: closing channel 5 zeroes it in both blocks' outputs
    dn.set_mode(model, "hard")
    with torch.no_grad():
        for _, gate in dn.gates(model):
            gate.s.fill_(1.0)
        dict(dn.gates(model))["bn1.ss"].s[5] = -1.0
    seen = []
    model.layer1.register_forward_hook(lambda m, a, out: seen.append(out))
    model.layer1[0].register_forward_hook(lambda m, a, out: seen.append(out))
    with torch.no_grad():
        model.eval()(torch.randn(2, 3, 64, 64))
    assert len(seen) == 2 and all(float(t[:, 5].abs().max()) == 0.0 and float(t[:, 4].abs().max()) > 0 for t in seen)
    # ignored_layers keeps a group whole
    torch.manual_seed(0)
    net = torchvision.models.resnet18(num_classes=10)
    ign = dn.attach_gates(net, torch.randn(1, 3, 64, 64), ignored_layers=[net.layer4[1].conv1])
    assert len(dn.gates(ign)) == 11 and "layer4.1.bn1.ss" not in dict(dn.gates(ign))


@pytest.mark.parametrize("name", list(MODELS))
def test_random_hard_gates_prune_reload(name, tmp_path):
    n_gates, (gate, bns) = MODELS[name]
    model = gated(name)
    assert len(dn.gates(model)) == n_gates
    assert next(g for g in gate_groups(model) if g.gate == gate).bns == bns
    random_hard_gates(model)
    res = prune(model)  # raises PruneCheckError unless the logits match the hard gates
    rep = res.report
    assert rep["check"] == "passed" and rep["rel_logit_diff"] <= 1e-4
    assert rep["macs_after"] < rep["macs_before"] and rep["params_after"] < rep["params_before"]
    assert res.model.widths == [int(k.sum()) for k in res.plan.keep] == rep["widths_after"]
    assert rep["widths_after"][1] == 1 and rep["min_channels_bound"]  # the closed gate kept one
    assert not any(isinstance(m, dn.SSGate) for m in res.model.modules())
    save_pruned(res, tmp_path)
    back = load_pruned(tmp_path)
    assert dn.count(back)["macs"] == rep["macs_after"] == dn.count(res.model)["macs"]
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(back(x), res.model.eval()(x), rtol=0, atol=0)


def test_reload_in_a_fresh_process_from_the_constructor(tmp_path):
    """A new process has no in-process copy: the constructor named in arch.json rebuilds it.
    There ``import dnal_core`` must not import Torch-Pruning; load_pruned then does."""
    torch.manual_seed(0)
    make = functools.partial(torchvision.models.resnet18, num_classes=10)
    model = dn.attach_gates(make(), torch.randn(1, 3, 32, 32), constructor=make)
    random_hard_gates(model)
    res = prune(model)
    save_pruned(res, tmp_path)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.save({"x": x, "y": res.model.eval()(x)}, tmp_path / "io.pt")
    code = ("import sys, torch, dnal_core as dn\n"
            "print('torch_pruning' in sys.modules)\n"
            f"d = {str(tmp_path)!r}\n"
            "m = dn.load_pruned(d)\n"
            "t = torch.load(d + '/io.pt', weights_only=True)\n"
            "with torch.no_grad(): print(float((m(t['x']) - t['y']).abs().max()), dn.count(m)['macs'])\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    lazy, diff, macs = out.stdout.split()
    assert lazy == "False" and float(diff) == 0.0 and int(macs) == res.report["macs_after"]
    with pytest.raises(ValueError, match="another network"):
        dn.attach_gates(torchvision.models.resnet34(num_classes=10), torch.randn(1, 3, 32, 32), constructor=make)


@pytest.mark.parametrize("name", list(MODELS))
def test_search_runs_every_stage(name):
    """Alg. 1 and the joint strategy on two random batches with the stage functions as they are."""
    g = torch.Generator().manual_seed(0)  # 64x64: at 32x32 RegNet's and EfficientNet's last
    # BatchNorms see 1x1 maps of 4 images and the first SGD step blows the weights up (dense too)
    data = [(torch.randn(4, 3, 64, 64, generator=g), torch.randint(0, 10, (4,), generator=g)) for _ in range(2)]
    cfg = StageConfig(epochs=1, lr=0.01, batch_size=4)
    model = gated(name)
    w0 = next(model.parameters()).detach().clone()
    hist = train_weights(model, data, data, cfg)
    assert not torch.equal(w0, next(model.parameters()))
    hist += train_architecture(model, data, data, cfg, lam=1.0)
    assert any(float(gate.s.detach().abs().max()) > 0 for _, gate in dn.gates(model))
    res = derive_network(model)
    assert res.report["check"] == "passed"
    assert hist[-1]["macs"] == res.report["macs_after"]  # the search's hard-gated MACs = pruned network's
    hist += finetune(res.model, data, data, cfg)
    assert hist[-1]["macs"] == dn.count(res.model)["macs"] < hist[0]["macs"]
    joint = train_joint(gated(name), data, data, cfg, lam=1.0)
    assert [r["stage"] for r in hist + joint] == ["weights", "arch", "finetune", "joint"]
    assert all(math.isfinite(r["train_loss"]) and math.isfinite(r["test_loss"]) for r in hist + joint)


class _NoBN(nn.Module):
    def __init__(self, detach: bool = False, act=nn.ReLU()):
        super().__init__()
        self.detach, self.act = detach, act
        self.conv1, self.bn1 = nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8)
        self.conv2, self.bn2 = nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8)
        self.fc = nn.Linear(8, 10)

    def forward(self, x):
        x = self.act(self.bn1(self.conv1(x)))
        x = x.detach() if self.detach else x
        x = torch.relu(self.bn2(self.conv2(x)))
        return self.fc(x.mean((2, 3)))


def test_clear_errors():
    x = torch.randn(1, 3, 16, 16)
    no_bn = _NoBN()
    no_bn.bn1 = nn.Identity()  # conv1 -> ReLU -> conv2: no BatchNorm to put the gate after
    with pytest.raises(ValueError, match="conv 'conv1' has no BatchNorm"):
        dn.attach_gates(no_bn, x)
    with pytest.raises(ValueError, match="layer 'conv1' .* trace does not reach it"):
        dn.attach_gates(_NoBN(detach=True), x)
    with pytest.raises(ValueError, match="already has SS gates"):
        dn.attach_gates(gated("mobilenet_v3_small"), torch.randn(1, 3, 64, 64))


def test_check_catches_an_activation_that_is_not_zero_at_zero():
    """sigmoid(0) = 0.5: a closed channel still feeds conv2, so removing it changes the logits."""
    model = dn.attach_gates(_NoBN(act=nn.Sigmoid()), torch.randn(1, 3, 16, 16))
    random_hard_gates(model)
    with pytest.raises(PruneCheckError):
        prune(model)
