"""Precise BN (dnal_core/train/bn.py) and the stage-2 metrics built on it (issues 13 and 14)."""
import json

import pytest
import torch
from torch import nn

import dnal_core as dn
from dnal_core.data import CIFAR10_MEAN, CIFAR10_STD, TensorLoader
from dnal_core.recipes import get_recipe, override
from dnal_core.train import evaluate, hard_gated, make_loaders, run_pipeline
from dnal_core.train.bn import calibration_batches, recalibrate_bn


def _loader(n=256, batch=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 32, 32, 3), dtype=torch.uint8, generator=g)
    return TensorLoader(images, torch.randint(0, 10, (n,), generator=g), batch, train=True,
                        mean=CIFAR10_MEAN, std=CIFAR10_STD, seed=seed)


def _stats(model):
    return [(m.running_mean.clone(), m.running_var.clone()) for m in model.modules()
            if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def test_recalibrated_means_are_the_calibration_data_means():
    """The first BN's running mean becomes the mean of its input over every calibration image
    (equal batches: the cumulative average of batch means is the global mean)."""
    model = dn.build("vgg16-cifar", width_mult=0.125)
    batches = _loader().calibration_batches(4)
    recalibrate_bn(model, batches)
    first = model.features[0]
    conv = next(m for m in first.modules() if isinstance(m, nn.Conv2d))
    bn = next(m for m in first.modules() if isinstance(m, nn.BatchNorm2d))
    with torch.no_grad():
        mean = torch.cat([conv(x) for x, _ in batches]).mean(dim=(0, 2, 3))
    torch.testing.assert_close(bn.running_mean, mean, rtol=1e-5, atol=1e-6)
    assert int(bn.num_batches_tracked) == 4


def test_current_statistics_are_left_as_they_are():
    """A network whose statistics are current (already estimated on these batches) is not
    changed by precise BN: same statistics, same accuracy; and evaluate(bn_batches=...) never
    touches the model it is given."""
    model = dn.build("vgg16-cifar", width_mult=0.125)
    loader = _loader()
    batches = loader.calibration_batches(4)
    recalibrate_bn(model, batches)
    before = _stats(model)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    test = list(loader)[:2]
    plain = evaluate(model, test)
    precise = evaluate(model, test, bn_batches=batches)
    assert precise == pytest.approx(plain, abs=1e-6)
    for (m0, v0), (m1, v1) in zip(before, _stats(model)):
        assert torch.equal(m0, m1) and torch.equal(v0, v1)
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())


def test_stale_statistics_are_replaced():
    """Statistics spoilt on purpose (as a gated search leaves them) are replaced: the precise
    evaluation equals that of the network recalibrated in place, not the spoilt one."""
    model = dn.build("vgg16-cifar", width_mult=0.125)
    loader = _loader()
    batches = loader.calibration_batches(4)
    test = list(loader)[:2]
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.fill_(5.0)
            m.running_var.fill_(0.01)
    spoilt = evaluate(model, test)
    precise = evaluate(model, test, bn_batches=batches)
    fixed = evaluate(recalibrate_bn(model, batches), test)
    assert precise == fixed and abs(precise["loss"] - spoilt["loss"]) > 1e-3


def test_calibration_batches_are_fixed_and_leave_the_epoch_generator_alone():
    loader = _loader()
    loader.set_epoch(3)
    state = loader.generator.get_state()
    a, b = loader.calibration_batches(3), loader.calibration_batches(3)
    assert len(a) == 3 and all(torch.equal(x, y) for (x, _), (y, _) in zip(a, b))
    assert torch.equal(loader.generator.get_state(), state)
    epoch = next(iter(loader))[0]
    assert not torch.equal(epoch, a[0][0])  # not the training epoch's first batch
    assert len(loader.calibration_batches(10**6)) == len(loader)  # at most an epoch
    assert calibration_batches(loader, 0) is None and calibration_batches([(1, 2)], 5) is None


def test_stage2_hard_accuracy_equals_the_pruned_network_before_finetuning(cifar_dir, tmp_path):
    """Issue 14 item 4: the architecture stage logs soft and hard-gated accuracies with BN
    re-estimated, far from the stale-statistics 10%; the last epoch's hard_top1 equals the pruned
    network's top-1 before finetuning (same calibration batches) within 0.5 point."""
    recipe = override(get_recipe("vgg16-cifar", "smoke"), {"lam": 1e-4, "arch.epochs": 1, "finetune.epochs": 1})
    final = run_pipeline(recipe, cifar_dir, tmp_path / "run", device="cpu")
    recs = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    arch = [r for r in recs if r["stage"] == "arch"]
    assert arch and all("hard_top1" in r and r["precise_bn"] == 15 for r in arch)  # 1,000 images / 64
    assert abs(arch[-1]["hard_top1"] - final["hard_top1"]) <= 0.5
    # the stale running statistics of the dense network would put the gated one at chance
    searched, _ = dn.io.load_model(tmp_path / "run" / "search.pt")
    dn.set_mode(searched, "soft")
    test = make_loaders(recipe, cifar_dir, "cpu")[1]
    assert evaluate(hard_gated(searched), test)["top1"] <= 12.0 < arch[-1]["hard_top1"]


@pytest.mark.parametrize("placement", dn.models.PLACEMENTS)
def test_the_pruned_network_is_the_hard_gated_one_with_precise_bn(placement):
    """derive_network(bn_batches=...) prunes the hard-gated network whose BN statistics were
    re-estimated on those batches: its outputs equal that network's (what the stage's hard_top1
    measures), for every placement. Without them a Conv-SS-BN-ReLU network folds its closed
    channels' constants with stale statistics, which re-estimating the pruned network's BN
    afterwards cannot undo."""
    from dnal_core.train.bn import precise_copy
    from dnal_core.train.stages import derive_network

    torch.manual_seed(0)
    model = dn.build("vgg16-cifar", width_mult=0.125, placement=placement)
    for m in model.modules():  # statistics of another network, as the weight stage leaves them
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    with torch.no_grad():
        for _, g in dn.gates(model):
            g.s.copy_(torch.randn(g.channels) + 1.0)  # about one gate in six closed
    loader = _loader()
    batches = loader.calibration_batches(4)
    x = next(iter(loader))[0]  # images like the calibration batches
    hard = precise_copy(hard_gated(model), batches).eval()
    pruned = derive_network(model, bn_batches=batches).model.eval()
    with torch.no_grad():
        torch.testing.assert_close(pruned(x), hard(x), rtol=1e-4, atol=1e-4)
        # pruned from the stale statistics, then re-estimated as the pipeline used to evaluate it:
        # the same network after BN, another one where BN follows the gate
        stale = precise_copy(derive_network(model).model, batches).eval()(x)
    assert (placement == "conv-ss-bn-relu") == (not torch.allclose(stale, hard(x), rtol=1e-4, atol=1e-4))
