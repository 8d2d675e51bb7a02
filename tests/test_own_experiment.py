"""dnal_core.experiments.own: your own network at the cpu scale, DNAL's MACs budget against
Torch-Pruning's global L1 and uniform width at the same MACs, on the book's example constructor
at an eighth of its width, a CIFAR-10 subset and one epoch a stage."""
import json

import pytest

from dnal_core.examples import cifar_resnet18
from dnal_core.experiments import own
from dnal_core.measure import count_macs
from dnal_core.recipes import get_recipe, override


def test_the_cpu_recipe_of_the_example():
    r = get_recipe(own.OWN_MODEL, "cpu")
    assert r.model_args == {"width": 0.25} and r.width_mult == 1.0
    assert (r.weights.epochs, r.arch.epochs, r.finetune.epochs) == (15, 3, 12)
    assert count_macs(cifar_resnet18(width=0.25), (3, 32, 32)) == 35_046_656
    assert get_recipe("torchvision.models:resnet18", "cpu").model_args == {}  # other constructors: own width


def test_widths_and_torch_pruning_hit_a_macs_count():
    r = override(get_recipe(own.OWN_MODEL, "cpu"), {"model_args.width": 0.125})
    dense = count_macs(cifar_resnet18(width=0.125), (3, 32, 32))
    w = own.own_width_for(r, dense * 0.45)
    assert w < 0.125 and abs(count_macs(cifar_resnet18(width=w), (3, 32, 32)) / (dense * 0.45) - 1) <= 0.02
    with pytest.raises(ValueError, match="within 2%"):  # whole channels: MACs move in steps
        own.own_width_for(r, dense / 3)
    assert abs(count_macs(cifar_resnet18(width=own.own_width_for(r, dense / 3, own.UNIFORM_TOL)),
                          (3, 32, 32)) / (dense / 3) - 1) <= own.UNIFORM_TOL
    net = cifar_resnet18(width=0.125)
    pruned = own.tp_prune(net, dense / 2)
    assert abs(count_macs(pruned, (3, 32, 32)) / (dense / 2) - 1) <= 0.02
    assert count_macs(net, (3, 32, 32)) == dense  # the network given is left whole
    with pytest.raises(ValueError, match="within 2%"):
        own.own_width_for(r, dense * 3)  # wider than the network itself


def test_search_and_controls_write_every_result(cifar_dir, tmp_path):
    """Both parts end to end: the weight stage, DNAL's budget network, Torch-Pruning's network
    at its MACs (within 2%) finetuned as long, the dense control and the uniform width at the
    same MACs; a second call trains nothing again."""
    r = override(get_recipe(own.OWN_MODEL, "cpu"), {"model_args.width": 0.125, "train_per_class": 10,
                                                    "test_per_class": 5, "weights.epochs": 1, "arch.epochs": 1,
                                                    "finetune.epochs": 1})
    runs, out = tmp_path / "runs", tmp_path / "out"
    own.own_search(r, cifar_dir, runs, out, "cmd", device="cpu", targets=(0.5,))
    own.own_controls(r, cifar_dir, runs, out, "cmd", device="cpu", targets=(0.5,), poll=0)
    dnal = json.loads((out / "expected-macs_macs0.5.json").read_text())
    tp = json.loads((out / "tp-l1-global_macs0.5.json").read_text())
    uni = json.loads((out / "controls" / "uniform_macs0.5.json").read_text())
    dense = json.loads((out / "controls" / "dense.json").read_text())
    assert 0.90 <= dnal["macs"] / (0.5 * dnal["baseline_macs"]) <= 1.03
    for row, tol in ((tp, own.TOL), (uni, own.UNIFORM_TOL)):
        assert abs(row["macs"] / dnal["macs"] - 1) <= tol and row["target_macs"] == dnal["macs"]
        assert row["command"] == "cmd" and 0 <= row["top1"] <= 100
    assert tp["epochs"] == 1 and tp["precision"] == "fp32" and uni["epochs"] == dense["epochs"] == 3
    assert dense["macs"] == dnal["baseline_macs"] and dense["width"] == 0.125
    before = {p: p.read_text() for p in out.rglob("*.json")}
    own.own_search(r, cifar_dir, runs, out, "cmd", device="cpu", targets=(0.5,))
    own.own_controls(r, cifar_dir, runs, out, "cmd", device="cpu", targets=(0.5,), poll=0)
    assert {p: p.read_text() for p in out.rglob("*.json")} == before  # read back, nothing new
    from dnal_core.report_cpu import own_rows

    rows = own_rows(out)  # what the chapter shows: dense first, then each method at the target
    assert rows["key"].tolist() == ["dense", "dnal", "tp-l1-global", "uniform"]
    assert rows["vs_uniform"].iloc[1] == dnal["top1"] - uni["top1"] and rows["vs_tp"].iloc[3] == uni["top1"] - tp["top1"]
    assert rows["macs_frac"].iloc[0] == 1.0 and rows["vs_tp"].isna().tolist() == [True, False, True, False]
