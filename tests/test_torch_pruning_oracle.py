"""Issue #15, item 6: the pruner against an independent implementation, Torch-Pruning 1.6.1
(DepGraph; a test-only use here: it prunes by its own dependency graph, traced from autograd).

The same trained-looking weights (random BN statistics and affine parameters), the same closed
channels: ``dnal_core.prune`` on the hard-gated network, and Torch-Pruning on a copy with the
gates off, given the closed channels of each gated conv's output. Both must give the same MACs
(two counters: torch's FlopCounterMode and forward hooks), the same parameter count and the same logits in eval mode.

Where Torch-Pruning cannot express what we prune, it is not used as an oracle:

* the gate BEFORE BN (``conv-ss-bn-relu``): a closed channel emits the constant
  relu(BN shift), not zero. Pruning the conv output, its BN channel and the next conv's input
  drops that constant (Torch-Pruning: 0.199 relative error against the hard-gated network);
  ours folds it into the next layer's bias or a ``FoldedConv2d`` map (2e-7).
  ``test_gate_before_bn_is_beyond_torch_pruning`` shows the difference.
* ResNet56's block-output gates (conv2's outputs, gated before the residual sum): our pruned
  network keeps the residual stream at full width and places the kept outputs back at their
  stream channels (``out_index``). Torch-Pruning can only prune the stream itself: pruning one
  conv2 output returns one group of 148 items (stem, every conv2 output, every conv1 input, fc),
  narrowing the stream in all stages, and it maps channels through the option-A zero-padding
  shortcut unchanged although stage-1 channel i is stage-2 channel i + 8. So only the blocks'
  inner gates (conv1 outputs) are compared on ResNet56.
"""
import copy

import pytest
import torch

from dnal_core import build, gates, set_mode
from dnal_core.measure import count_macs, count_params
from dnal_core.prune import prune
from dnal_core.train import hard_gated

tp = pytest.importorskip("torch_pruning")


def _randomise(model: torch.nn.Module, seed: int, closed: float = 0.4, only=None) -> None:
    """BN statistics and affine parameters as after training, and hard gates that close about
    ``closed`` of the channels of the gates ``only`` selects (by index; None: every gate)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.3)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.weight.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.num_features, generator=g) * 0.3)
        for i, (_, gate) in enumerate(gates(model)):
            s = torch.rand(gate.channels, generator=g) - closed  # sigmoid(s) > 0.5 iff s > 0
            if only is not None and i not in only:
                s = s.abs() + 0.1
            s[torch.randint(gate.channels, (1,), generator=g)] = 1.0  # never a whole layer
            gate.s.copy_(s)
            gate.delta.fill_(1.0)
            gate.threshold.fill_(0.5)
    set_mode(model, "hard")
    model.eval()


def _unit_of(model, gate_name: str):
    return model.get_submodule(gate_name.rsplit(".", 1)[0])  # the ConvUnit holding conv, bn, ss


def _torch_pruning(model: torch.nn.Module, size=(1, 3, 32, 32)) -> torch.nn.Module:
    """A copy of ``model`` with its gates off and, for each gate, its closed channels pruned
    from the gated conv's output by Torch-Pruning (with everything DepGraph says depends on it)."""
    closed = [(name, torch.nonzero(~gate.keep()).flatten().tolist()) for name, gate in gates(model)]
    net = copy.deepcopy(model)
    for name, _ in closed:  # a gate off is the identity: plain modules for DepGraph
        setattr(_unit_of(net, name), "ss", torch.nn.Identity())
    net.eval()
    dg = tp.DependencyGraph().build_dependency(net, example_inputs=torch.randn(size))
    for name, idx in closed:
        if idx:
            group = dg.get_pruning_group(_unit_of(net, name).conv, tp.prune_conv_out_channels, idxs=idx)
            assert dg.check_pruning_group(group)
            group.prune()
    return net


def _hook_macs(net: torch.nn.Module, size) -> int:
    """Conv and Linear MACs from forward hooks (a second counter, not torch's FlopCounterMode).
    Torch-Pruning's own ``count_ops_and_params`` is not used: it adds BatchNorm and other
    element-wise operations (6.84M against 6.72M conv + linear MACs for the x1/4 VGG16 here)."""
    total = []

    def hook(m, inp, out):
        if isinstance(m, torch.nn.Conv2d):
            total.append(out.numel() * (m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1])
        else:
            total.append(out.numel() * m.in_features)

    hs = [m.register_forward_hook(hook) for m in net.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    try:
        with torch.no_grad():
            net(torch.zeros(size))
    finally:
        for h in hs:
            h.remove()
    return sum(total)


def _compare(model, seed=0, size=(1, 3, 32, 32)):
    ours = prune(hard_gated(model)).model.eval()
    theirs = _torch_pruning(model, size)
    x = torch.randn((8,) + size[1:], generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        a, b, ref = ours(x), theirs(x), model(x)
    return {"macs": (count_macs(ours), count_macs(theirs), _hook_macs(theirs, size)),
            "params": (count_params(ours), count_params(theirs)),
            "logits": (a, b, ref)}


@pytest.mark.parametrize("placement", ["conv-bn-ss-relu", "conv-bn-relu-ss"])
def test_vgg16_pruned_as_torch_pruning_prunes_it(placement):
    model = build("vgg16-cifar", width_mult=0.25, placement=placement)
    _randomise(model, seed=1)
    r = _compare(model)
    ours_macs, their_macs, hooked = r["macs"]
    assert ours_macs == their_macs == hooked < count_macs(build("vgg16-cifar", width_mult=0.25))
    assert r["params"][0] == r["params"][1]
    a, b, ref = r["logits"]
    assert torch.equal(a, b), (a - b).abs().max()  # measured: bit for bit
    torch.testing.assert_close(a, ref, rtol=1e-5, atol=1e-5)  # and the hard-gated network's


def test_resnet56_inner_gates_pruned_as_torch_pruning_prunes_them():
    """Inner gates only (conv1 outputs, the even gate indices); the block outputs stay open."""
    model = build("resnet56-cifar", width_mult=0.5)
    _randomise(model, seed=2, only=set(range(0, len(gates(model)), 2)))
    assert all(bool(g.keep().all()) for _, g in gates(model)[1::2])
    r = _compare(model)
    ours_macs, their_macs, hooked = r["macs"]
    assert ours_macs == their_macs == hooked < count_macs(build("resnet56-cifar", width_mult=0.5))
    assert r["params"][0] == r["params"][1]
    a, b, ref = r["logits"]
    assert torch.equal(a, b), (a - b).abs().max()
    torch.testing.assert_close(a, ref, rtol=1e-5, atol=1e-5)


def test_gate_before_bn_is_beyond_torch_pruning():
    """Gate before BN: Torch-Pruning's network misses the constants the closed channels leave
    (relu of the BN shift), ours keeps them (folded): only ours computes the hard-gated network."""
    model = build("vgg16-cifar", width_mult=0.25, placement="conv-ss-bn-relu")
    _randomise(model, seed=3)
    r = _compare(model)
    a, b, ref = r["logits"]
    rel = lambda t: ((t - ref).norm() / ref.norm()).item()
    assert rel(a) < 1e-5 and rel(b) > 1e-2, (rel(a), rel(b))
