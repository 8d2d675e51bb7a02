"""The stages of Alg. 1 as functions, the recipes, and a whole run folder (tiny model, tiny data)."""
import dataclasses
import json

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from dnal_core import build, count_macs, gates, io, load_model, open_counts
from dnal_core.data import pack_jpeg_npz
from dnal_core.recipes import (RECIPES, SearchConfig, StageConfig, get_recipe, override,
                               register_recipe, Recipe)
from dnal_core.train import (derive_network, evaluate, finetune, hard_gated, run_pipeline, train_architecture,
                             train_joint, train_weights)

TINY = StageConfig(epochs=2, lr=0.05, batch_size=8)


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DNAL_CACHE", str(tmp_path / "cache"))


def batches(n=4, bs=8, seed=0):
    """A list of (x, y) batches: any re-iterable with len() is training data."""
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(bs, 3, 32, 32, generator=g), torch.randint(0, 10, (bs,), generator=g))
            for _ in range(n)]


def tiny_model():
    torch.manual_seed(0)
    return build("vgg16-cifar", width_mult=0.125)


def state(model, kind):
    return {k: v.clone() for k, v in model.state_dict().items() if kind(k)}


def test_evaluate_counts_top1_and_top5():
    class Fixed(nn.Module):  # scores 9 > 8 > ... > 0 for every input
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.zeros(()))

        def forward(self, x):
            return torch.arange(10.0).expand(len(x), 10) + self.w

    y = torch.tensor([9, 9, 8, 5, 4, 0, 1, 2])
    r = evaluate(Fixed(), [(torch.zeros(8, 1), y)])
    assert r["top1"] == pytest.approx(100 * 2 / 8) and r["top5"] == pytest.approx(100 * 4 / 8)  # 9, 9, 8, 5 are in the top 5
    assert r["loss"] > 0


def test_weight_stage_trains_weights_with_gates_off():
    m, data = tiny_model(), batches()
    before = state(m, lambda k: k.endswith("conv.weight"))
    hist = train_weights(m, data, data[:1], TINY)
    assert [h["epoch"] for h in hist] == [0, 1] and all(h["stage"] == "weights" for h in hist)
    assert all(g.mode == "off" and not g.s.any() for _, g in gates(m))
    assert not torch.equal(before["features.0.conv.weight"], m.state_dict()["features.0.conv.weight"])
    assert hist[0]["open_gates"] == hist[0]["gate_channels"] == sum(g.channels for _, g in gates(m))
    assert all(p.requires_grad for p in m.parameters())  # flags restored after the stage


def test_architecture_stage_paper_default_trains_only_s_and_keeps_bn_statistics():
    m, data = tiny_model(), batches()
    train_weights(m, data, data[:1], dataclasses.replace(TINY, epochs=1))
    frozen = state(m, lambda k: not k.endswith(".s") and not k.endswith(".delta") and not k.endswith("threshold"))
    hist = train_architecture(m, data, data[:1], TINY, lam=1e-2)
    after = m.state_dict()
    for k, v in frozen.items():  # conv, BN (weights AND running statistics), Linear: unchanged
        assert torch.equal(v, after[k]), k
    assert any(g.s.abs().sum() > 0 for _, g in gates(m))
    assert hist[0]["delta"] < 1e4 and hist[-1]["delta"] == pytest.approx(1e4)  # grows per step
    assert all(sum(h["gate_hist"]) == h["gate_channels"] for h in hist)
    assert all(g.mode == "soft" for _, g in gates(m))


@pytest.mark.parametrize("bn_stats", ["batch", "running"])
def test_architecture_stage_bn_statistics_modes(bn_stats):
    """"batch" (default) normalises with the batch's statistics, "running" with stage 1's; both
    leave every BN buffer unchanged and restore BN's flags after the stage."""
    m, data = tiny_model(), batches()
    train_weights(m, data, data[:1], dataclasses.replace(TINY, epochs=1))
    bn = state(m, lambda k: "running_" in k or "num_batches" in k)
    seen = []
    unit = m.features[0]
    hook = unit.bn.register_forward_hook(lambda mod, i, o: seen.append((i[0].detach(), o.detach())))
    train_architecture(m, data[:1], data[:1], dataclasses.replace(TINY, epochs=1), lam=1e-3,
                       search=SearchConfig(bn_stats=bn_stats))
    hook.remove()
    x, y = seen[0]  # the first training batch through the first BN
    mean = x.mean(dim=(0, 2, 3)) if bn_stats == "batch" else bn["features.0.bn.running_mean"]
    var = x.var(dim=(0, 2, 3), unbiased=False) if bn_stats == "batch" else bn["features.0.bn.running_var"]
    expect = (x - mean.view(1, -1, 1, 1)) / torch.sqrt(var.view(1, -1, 1, 1) + unit.bn.eps)
    expect = expect * unit.bn.weight.view(1, -1, 1, 1) + unit.bn.bias.view(1, -1, 1, 1)
    torch.testing.assert_close(y, expect, rtol=1e-4, atol=1e-4)
    after = m.state_dict()
    assert all(torch.equal(v, after[k]) for k, v in bn.items())
    assert all(b.track_running_stats for b in m.modules() if isinstance(b, nn.BatchNorm2d))


def test_architecture_stage_code_options():
    m, data = tiny_model(), batches()
    bn = state(m, lambda k: "running_mean" in k)
    lin = state(m, lambda k: k.startswith("classifier"))
    conv = state(m, lambda k: k.endswith("conv.weight"))
    search = SearchConfig(train_linear=True, bn_stats="update", delta_unit="epoch", loss_form="code",
                          threshold=0.9)
    hist = train_architecture(m, data, data[:1], TINY, lam=1e-3, search=search)
    after = m.state_dict()
    assert all(torch.equal(v, after[k]) for k, v in conv.items())          # conv still frozen
    assert not all(torch.equal(v, after[k]) for k, v in bn.items())        # BN statistics moved
    assert not torch.equal(lin["classifier.0.weight"], after["classifier.0.weight"])  # Linear trained
    assert [h["delta"] for h in hist] == pytest.approx([100.0, 1e4])       # 10^(4(k+1)/E), E = 2
    assert all(float(g.threshold) == pytest.approx(0.9) for _, g in gates(m))


def test_derive_network_prunes_to_what_the_hard_gates_compute():
    m, data = tiny_model(), batches()
    train_architecture(m, data, data[:1], TINY, lam=5e-2)
    res = derive_network(m)
    assert not gates(res.model) and all(g.mode == "soft" for _, g in gates(m))
    assert res.model.widths == [max(1, n) for n in open_counts(hard_gated(m))]
    assert count_macs(res.model) == res.report["macs_after"] < res.report["macs_before"]
    ref = hard_gated(m).eval()
    x = data[0][0]
    torch.testing.assert_close(res.model.eval()(x), ref(x), rtol=1e-4, atol=1e-5)
    hist = finetune(res.model, data, data[:1], TINY)
    assert hist[-1]["macs"] == res.report["macs_after"]


def test_finetuning_a_hard_gated_network_keeps_closed_channels_closed():
    m, data = tiny_model(), batches()
    train_architecture(m, data, data[:1], TINY, lam=5e-2)
    net = hard_gated(m)
    assert all(g.mode == "hard" for _, g in gates(net)) and all(g.mode == "soft" for _, g in gates(m))
    opened = open_counts(net)
    assert sum(opened) < sum(g.channels for _, g in gates(net))  # some channels closed
    s_before = [g.s.clone() for _, g in gates(net)]
    hist = finetune(net, data, data[:1], TINY)
    assert open_counts(net) == opened and all(torch.equal(a, g.s) for a, (_, g) in zip(s_before, gates(net)))
    outs = []
    hook = gates(net)[0][1].register_forward_hook(lambda mod, i, o: outs.append(o))
    net.eval()
    net(data[0][0])
    hook.remove()
    closed = ~gates(net)[0][1].keep()
    assert outs[0][:, closed].abs().sum() == 0
    assert hist[0]["macs"] == hist[-1]["macs"] < count_macs(build("vgg16-cifar", width_mult=0.125))


def test_joint_trains_weights_and_s_together():
    m, data = tiny_model(), batches()
    conv = m.state_dict()["features.0.conv.weight"].clone()
    hist = train_joint(m, data, data[:1], TINY, lam=1e-3)
    assert not torch.equal(conv, m.state_dict()["features.0.conv.weight"])
    assert any(g.s.abs().sum() > 0 for _, g in gates(m))
    assert hist[-1]["stage"] == "joint" and hist[-1]["delta"] == pytest.approx(1e4)


def test_paper_recipes_and_overrides():
    v, r, mb = (get_recipe(m, "paper") for m in ("vgg16-cifar", "resnet56-cifar", "mobilenetv2-cifar"))
    assert (v.weights.epochs, v.arch.epochs, v.finetune.epochs) == (100, 20, 130)
    assert v.finetune.milestones == (30, 80) and v.finetune.lr_at(29) == 0.1
    assert v.finetune.lr_at(30) == pytest.approx(0.01) and v.finetune.lr_at(129) == pytest.approx(0.001)
    assert v.weights.milestones == () and v.weights.batch_size == 128 and r.arch.batch_size == 64
    assert v.weights.weight_decay == 1e-4 and v.weights.momentum == 0.9 and v.arch.lr == 0.1
    assert (mb.weights.epochs, mb.arch.epochs, mb.finetune.epochs) == (150, 20, 180)
    assert mb.finetune.milestones == (30, 105) and mb.weights.weight_decay == 4e-5
    assert v.search == SearchConfig() and v.search.threshold == 0.5 and v.search.delta_end == 1e4
    with pytest.raises(ValueError, match="valid: cpu, paper, smoke"):
        get_recipe("vgg16-cifar", "fast")
    with pytest.raises(ValueError, match="unknown config key 'arch.epoch'.*arch.epochs"):
        override(v, {"arch.epoch": 3})
    with pytest.raises(ValueError, match="lambda must be >= 0"):
        override(v, {"lam": -1e-4})
    o = override(v, {"arch.epochs": 3, "lam": 1e-4, "search.threshold": 0.9})
    assert (o.arch.epochs, o.lam, o.search.threshold, o.weights.epochs) == (3, 1e-4, 0.9, 100)
    assert Recipe.from_dict(json.loads(json.dumps(o.to_dict()))) == o
    with pytest.raises(ValueError, match="registered twice"):
        register_recipe(v)
    assert ("vgg16-cifar", "smoke") in RECIPES


def test_a_stored_config_with_a_retired_key():
    """config.json files of 2026-12-02 hold search.budget_rate (the first budget controller's):
    inert without a budget, dropped; a budgeted run made with it cannot be continued."""
    r = get_recipe("vgg16-cifar", "smoke")
    d = json.loads(json.dumps(r.to_dict()))
    d["search"]["budget_rate"] = 0.5
    assert Recipe.from_dict(d) == r
    d["search"].update(target_kind="macs", target=0.3)
    with pytest.raises(ValueError, match="search.budget_rate, the dual-ascent step .* start it again"):
        Recipe.from_dict(d)
    d["search"]["budget_rate_typo"] = 1.0  # other unknown keys are still refused
    d["search"].pop("budget_rate")
    with pytest.raises(ValueError, match="unknown config key search.'budget_rate_typo'"):
        Recipe.from_dict(d)


@pytest.fixture(scope="module")
def fake_cifar(tmp_path_factory):
    d = tmp_path_factory.mktemp("fake_cifar")
    rng = np.random.default_rng(0)
    for split, n in (("train", 80), ("test", 20)):
        labels = np.arange(n) % 10
        # class-dependent colour so there is something to learn
        imgs = rng.integers(0, 120, (n, 32, 32, 3)) + (labels[:, None, None, None] * 12)
        pack_jpeg_npz(d / f"{split}.npz", imgs.astype(np.uint8), labels)
    return d


def tiny_recipe(**kw):
    st = StageConfig(epochs=1, lr=0.05, batch_size=16)
    r = dataclasses.replace(get_recipe("vgg16-cifar", "smoke"), weights=st, arch=StageConfig(2, 0.1, batch_size=16),
                            finetune=st, joint=st, width_mult=0.125, train_per_class=None, test_per_class=None,
                            test_batch_size=20, lam=2e-2)
    return override(r, kw) if kw else r


def test_run_folder(fake_cifar, tmp_path):
    out = tmp_path / "run"
    final = run_pipeline(tiny_recipe(), fake_cifar, out)
    for f in ("config.json", "metrics.jsonl", "weights.pt", "search.pt", "arch.json", "final.pt", "final.json"):
        assert (out / f).is_file(), f
    assert not list((out / "ckpt").glob("*.pt"))  # stage checkpoints go once a stage is done
    df = pd.read_json(out / "metrics.jsonl", lines=True)
    assert df["stage"].tolist() == ["weights", "arch", "arch", "finetune"]
    arch = df[df.stage == "arch"]
    assert arch["delta"].iloc[-1] == pytest.approx(1e4) and len(arch["gate_hist"].iloc[-1]) == 10
    assert arch["open_gates"].iloc[-1] < arch["gate_channels"].iloc[-1]
    for k in ("macs", "params", "top1", "top5", "baseline_macs", "baseline_params", "seconds",
              "config", "git", "torch", "device"):
        assert k in final, k
    assert final["macs"] < final["baseline_macs"] and set(final["seconds"]) == {"weights", "arch", "finetune"}
    assert final == json.loads((out / "final.json").read_text())
    searched, meta = load_model(out / "search.pt")
    assert float(gates(searched)[0][1].delta) == pytest.approx(1e4) and meta["stage"] == "arch"
    assert json.loads((out / "arch.json").read_text())["widths"] == final["widths"]
    ckpt_keys = io.load(out / "weights.pt")["meta"]
    assert ckpt_keys["config"]["lam"] == 2e-2 and ckpt_keys["torch"] == torch.__version__

    # one weight stage serves another lambda: --weights-from skips stage 1 and searches the same
    # network (same lambda here, so search.pt must be bitwise the first run's)
    out2 = tmp_path / "reuse"
    run_pipeline(tiny_recipe(), fake_cifar, out2, weights_from=out / "weights.pt")
    assert not (out2 / "weights.pt").exists()
    a, b = io.load(out / "search.pt")["state_dict"], io.load(out2 / "search.pt")["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert pd.read_json(out2 / "metrics.jsonl", lines=True)["stage"].iloc[0] == "arch"
    # Fig. 4: the same weight stage searched with another SS placement (same state_dict keys)
    r3 = run_pipeline(tiny_recipe(placement="conv-bn-relu-ss"), fake_cifar, tmp_path / "place",
                      weights_from=out / "weights.pt", stages=["arch"])
    searched, _ = load_model(tmp_path / "place" / "search.pt")
    assert r3 == {"stages": ["arch"]} and searched.arch()["placement"] == "conv-bn-relu-ss"
    w = io.load(out / "weights.pt")["state_dict"]["features.0.conv.weight"]
    assert torch.equal(searched.state_dict()["features.0.conv.weight"], w)
    with pytest.raises(ValueError, match="not a dense vgg16-cifar at width_mult 0.25"):
        run_pipeline(tiny_recipe(width_mult=0.25), fake_cifar, tmp_path / "bad", weights_from=out / "weights.pt")
    assert not (tmp_path / "bad").exists()


def test_stages_one_at_a_time_and_joint(fake_cifar, tmp_path):
    out = tmp_path / "w"
    r = tiny_recipe(**{"arch.epochs": 1})
    assert run_pipeline(dataclasses.replace(r, lam=None), fake_cifar, out, stages=["weights"]) == {"stages": ["weights"]}
    with pytest.raises(ValueError, match="needs a lambda"):
        run_pipeline(dataclasses.replace(r, lam=None), fake_cifar, out, stages=["arch"], resume=True)
    with pytest.raises(ValueError, match="needs search.pt"):
        run_pipeline(r, fake_cifar, out, stages=["finetune"], resume=True)
    run_pipeline(r, fake_cifar, out, stages=["arch"], resume=True)
    assert (out / "search.pt").is_file() and not (out / "final.pt").exists()
    final = run_pipeline(r, fake_cifar, out, stages=["finetune"], resume=True)
    assert final["lambda"] == r.lam and final["seconds"]["weights"] > 0
    joint = run_pipeline(dataclasses.replace(r, sequential=False), fake_cifar, tmp_path / "j")
    assert set(joint["seconds"]) == {"weights", "joint", "finetune"} and joint["seconds"]["weights"] is None
    df = pd.read_json(tmp_path / "j" / "metrics.jsonl", lines=True)
    assert df["stage"].tolist() == ["joint", "finetune"]


def test_denormals_flushed_while_training_on_the_cpu(fake_cifar, tmp_path, monkeypatch):
    """run_pipeline flushes denormal floats to zero on the CPU for its duration (the weights of
    closed channels decay into denormals, which slow CPU kernels 7x: benchmarks/cpu_denormal.py)
    and restores the default afterwards."""
    calls, real = [], torch.set_flush_denormal
    seen = []

    def record(on):
        calls.append(on)
        return real(on)

    monkeypatch.setattr(torch, "set_flush_denormal", record)
    import dnal_core.train.pipeline as pl

    inner = pl._run_pipeline

    def spy(*a, **k):
        seen.append(torch.tensor(1e-40).item() == 0.0)  # flushed: a denormal reads as zero
        return inner(*a, **k)

    monkeypatch.setattr(pl, "_run_pipeline", spy)
    run_pipeline(tiny_recipe(), fake_cifar, tmp_path / "run", device="cpu", stages=["weights"])
    assert calls == [True, False] and seen == [True]
    assert torch.tensor(1e-40).item() != 0.0  # restored
