"""Your own network, as a user would prune it (issue 23, items 1, 2 and 5): ``dnal run
module:function`` runs Alg. 1 on it and ``dnal prune``/``export``/``bench`` take the result;
``--weights-from`` takes a plain state dict and skips stage 1; ``dnal_core.search`` does it in
one call; ``--target-macs`` lands on the budget (the cost read off the DepGraph groups equals the
pruned count); bad input gets one line, exit 2, nothing written. Synthetic 32x32 data (80
images), tiny networks and torchvision's at 32x32, one epoch a stage."""
import functools
import json
import os
import subprocess
import sys

import pytest
import torch
from torch import nn

import dnal_core as dn
from dnal_core.budget import ABOVE, BELOW, dense_cost, hard_cost
from dnal_core.cli import main
from dnal_core.io import load_model
from dnal_core.prune import prune
from dnal_core.train import evaluate
from test_generic import MODELS as GENERIC_MODELS, gated, random_hard_gates  # torchvision, 64x64

# 80 synthetic training and 20 test images, batch 16, one epoch a stage
TINY = ["--profile", "smoke", "--set", "train_per_class=null", "--set", "test_per_class=null",
        "--set", "test_batch_size=20", "--set", "weights.batch_size=16", "--set", "arch.batch_size=16",
        "--set", "finetune.batch_size=16", "--epochs-weights", "1", "--epochs-arch", "1",
        "--epochs-finetune", "1", "--set", "precise_bn=2", "--device", "cpu", "--quiet"]
HERE = os.path.dirname(os.path.abspath(__file__))


def tiny(num_classes=10, width=8):
    """conv-BN-ReLU twice, pooled, linear: two gate groups."""
    return nn.Sequential(nn.Conv2d(3, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(),
                         nn.Conv2d(width, 2 * width, 3, stride=2, padding=1, bias=False),
                         nn.BatchNorm2d(2 * width), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(2 * width, num_classes))


def flat(num_classes=10, width=8):
    """A Linear reading each channel at 2x2 positions (flatten): its inputs are 4 x the open channels."""
    return nn.Sequential(nn.Conv2d(3, width, 3, stride=2, padding=1), nn.BatchNorm2d(width), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(4 * width, 16), nn.ReLU(),
                         nn.Linear(16, num_classes))


def no_gate(num_classes=10):
    return nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, num_classes))


def not_a_module(num_classes=10):
    return "a string"


REF = f"{__name__}:tiny"


@pytest.fixture(scope="module")
def data(synthetic_cifar, tmp_path_factory):
    old = os.environ.get("DNAL_CACHE")  # decoded arrays cached beside the test's files
    os.environ["DNAL_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    yield synthetic_cifar
    if old is None:
        os.environ.pop("DNAL_CACHE", None)
    else:
        os.environ["DNAL_CACHE"] = old


def test_module_function_run_prune_export_bench(data, tmp_path, capsys):
    """torchvision's MobileNetV2 at width 0.25 (a constructor keyword) through the whole CLI;
    ``dnal prune`` in a fresh process rebuilds it from the constructor stored in search.pt."""
    run, pruned = tmp_path / "run", tmp_path / "pruned"
    assert main(["run", "torchvision.models:mobilenet_v2", "--data", str(data), "--out", str(run), *TINY,
                 "--lambda", "5e-2", "--set", "model_args.width_mult=0.25"]) == 0
    final = json.loads((run / "final.json").read_text())
    assert final["model"] == "torchvision.models:mobilenet_v2" and final["config"]["model_args"] == {"width_mult": 0.25}
    assert final["macs"] < final["baseline_macs"] and final["baseline_top1"] is not None
    net, _ = load_model(run / "final.pt")
    assert dn.count(net) == {"macs": final["macs"], "params": final["params"]}
    assert net.arch()["kwargs"] == {"num_classes": 10, "width_mult": 0.25}
    r = subprocess.run([sys.executable, "-m", "dnal_core.cli", "prune", str(run), "--out", str(pruned)],
                       capture_output=True, text=True, timeout=300, env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert (report["macs_after"], report["params_after"]) == (final["macs"], final["params"])
    capsys.readouterr()
    assert main(["export", str(pruned), "--onnx", str(tmp_path / "m.onnx")]) == 0
    assert json.loads(capsys.readouterr().out)["onnxruntime_checked"] in (True, False)
    assert main(["bench", str(pruned), "--devices", "cpu", "--batch-sizes", "1", "--warmup", "1", "--iters", "2",
                 "--rounds", "1"]) == 0
    bench = json.loads(capsys.readouterr().out)
    assert (bench["macs_dense"], bench["macs_pruned"]) == (final["baseline_macs"], final["macs"])


def test_weights_from_a_plain_state_dict_skips_stage_1(data, tmp_path):
    torch.manual_seed(3)
    user = tiny(width=6)
    user[1].running_mean.uniform_(-0.5, 0.5)  # a trained-looking BN: its statistics must arrive
    sd = tmp_path / "mine.pt"
    torch.save(user.state_dict(), sd)
    run = tmp_path / "run"
    assert main(["run", REF, "--data", str(data), "--out", str(run), *TINY, "--lambda", "1e-2",
                 "--set", "model_args.width=6", "--weights-from", str(sd)]) == 0
    stages = [json.loads(ln)["stage"] for ln in (run / "metrics.jsonl").read_text().splitlines()]
    assert stages == ["arch", "finetune"] and not (run / "weights.pt").exists()
    searched, _ = load_model(run / "search.pt")  # stage 2 trains s only: the user's weights, unchanged
    got = searched.state_dict()
    assert all(torch.equal(got[k], v) for k, v in user.state_dict().items())
    final = json.loads((run / "final.json").read_text())
    assert final["weights_from"] == str(sd.resolve())
    base = evaluate(user.eval(), load_test(data))  # the user's network as given
    assert (final["baseline_top1"], final["baseline_top5"]) == (base["top1"], base["top5"])


def test_search_in_one_call(data, tmp_path):
    ch = {"train_per_class": None, "test_per_class": None, "test_batch_size": 20, "precise_bn": 2,
          **{f"{s}.{k}": v for s in ("weights", "arch", "finetune") for k, v in (("epochs", 1), ("batch_size", 16))}}
    net, final = dn.search(functools.partial(tiny, width=6), data, tmp_path / "run", lam=1e-2, changes=ch,
                           device="cpu")
    assert final["model"] == REF and final["config"]["model_args"] == {"width": 6}
    assert dn.count(net) == {"macs": final["macs"], "params": final["params"]} and not net.training
    net, final = dn.search(functools.partial(tiny, width=16), data, tmp_path / "budget", target_params=0.5,
                           changes=ch, device="cpu")
    assert BELOW <= dn.count(net)["params"] / (0.5 * final["baseline_params"]) <= ABOVE
    with pytest.raises(ValueError, match="give one of"):
        dn.search(REF, data, tmp_path / "both", lam=1e-2, target_macs=0.5)


def load_test(data):
    from dnal_core.data import cifar10_loaders
    return cifar10_loaders(data, 16, 20, device="cpu")[1]


def _listing(d):
    return sorted((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in d.rglob("*")) if d.exists() else None


@pytest.fixture
def bad(data, tmp_path, capsys):
    """Run ``dnal run`` with bad input: one line on stderr naming ``match``, exit 2, --out untouched."""
    out = tmp_path / "out"

    def check(model, extra, match):
        before = _listing(out)
        assert main(["run", model, "--data", str(data), "--out", str(out), *TINY, *extra]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("dnal"), err
        assert match in err, err
        assert _listing(out) == before
    return check


def test_bad_constructors(bad):
    lam = ["--lambda", "1e-3"]
    bad("no_such_module_xyz:f", lam, "cannot import the constructor 'no_such_module_xyz:f'")
    bad("torchvision.models:no_such_net", lam, "has no attribute 'no_such_net'")
    bad("math:pi", lam, "is a float, not a function")
    bad(f"{__name__}:not_a_module", lam, "returned a str, not an nn.Module")
    bad(f"{__name__}:no_gate", lam, "no group of channels to gate")
    bad(REF, [*lam, "--set", "model_args.depth=3"], "unexpected keyword argument 'depth'")
    bad("torchvision.models", lam, "or a module:function")
    bad(REF, [*lam, "--profile", "huge"], "unknown profile 'huge' for a module:function network")
    bad(REF, [*lam, "--width-mult", "0.5"], "model_args")
    bad("vgg16-cifar", [*lam, "--set", "model_args.width=3"], "vgg16-cifar is a registered model")


def test_bad_state_dicts(bad, tmp_path):
    lam = ["--lambda", "1e-3"]
    torch.save(tiny(width=4).state_dict(), tmp_path / "narrow.pt")
    bad(REF, [*lam, "--weights-from", str(tmp_path / "narrow.pt")], "'0.weight' is (4, 3, 3, 3) there")
    torch.save({k: v for k, v in tiny().state_dict().items() if k != "8.bias"}, tmp_path / "part.pt")
    bad(REF, [*lam, "--weights-from", str(tmp_path / "part.pt")], "it has no '8.bias'")
    torch.save({"a": 1}, tmp_path / "junk.pt")
    bad(REF, [*lam, "--weights-from", str(tmp_path / "junk.pt")], "neither a dnal model file nor a state dict")
    (tmp_path / "text.pt").write_text("not torch")
    bad(REF, [*lam, "--weights-from", str(tmp_path / "text.pt")], "cannot load")


def test_bad_budgets_and_zero_arch_epochs(bad):
    bad(REF, ["--target-macs", "2k"], "is unreachable")  # below every gate closed: refused before training
    bad(REF, ["--target-params", "1e9"], "exceeds the dense")
    # 0 architecture epochs: every s = 0 sits on the threshold (every gate would close), any model
    bad(REF, ["--lambda", "1e-3", "--epochs-arch", "0"], "arch.epochs (--epochs-arch) is 0")
    bad("vgg16-cifar", ["--lambda", "1e-3", "--width-mult", "0.125", "--epochs-arch", "0"], "arch.epochs")
    bad("vgg16-cifar", ["--lambda", "1e-3", "--width-mult", "0.125", "--joint", "--epochs-joint", "0"],
        "joint.epochs")


@pytest.mark.parametrize("name", list(GENERIC_MODELS) + ["flat"])
def test_cost_at_hard_gates_is_the_pruned_count(name):
    """Item 2: the cost description read off the DepGraph groups equals dnal_core.count of the
    really pruned network at random 0/1 gates (a whole group closed included), MACs and params."""
    model = dn.attach_gates(flat(), torch.zeros(1, 3, 32, 32)) if name == "flat" else gated(name)
    random_hard_gates(model)
    pruned = prune(model).model
    assert dense_cost(model, "macs") == dn.count(model)["macs"]
    assert {k: hard_cost(model, k) for k in ("macs", "params")} == dn.count(pruned)
    assert hard_cost(model) < dense_cost(model)


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v2", "efficientnet_b0"])
def test_one_command_lands_on_the_budget(data, tmp_path, name):
    """``dnal run torchvision.models:NAME --target-macs 0.5``: the finetuned network has half the
    dense MACs, within the budget's [0.90, 1.03] bounds, as counted on the saved network."""
    run = tmp_path / "run"
    assert main(["run", f"torchvision.models:{name}", "--data", str(data), "--out", str(run), *TINY,
                 "--target-macs", "0.5"]) == 0
    final = json.loads((run / "final.json").read_text())
    net, _ = load_model(run / "final.pt")
    assert dn.count(net)["macs"] == final["macs"] == final["budget"]["reached"]
    assert BELOW <= final["macs"] / (0.5 * final["baseline_macs"]) <= ABOVE
    assert final["budget"]["loss_form"] == "expected-macs" and final["budget"]["kind"] == "macs"
