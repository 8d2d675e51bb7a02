"""``python -m dnal_core.experiments precision``: the bf16 dense control beside Table I's fp32
one, and one lambda's search in both precisions from one fp32 weight stage, at a tiny scale."""
import json

import pytest

from dnal_core.io import read_json, write_json
from dnal_core.machine import kind_slug
from dnal_core.recipes import get_recipe, override


@pytest.fixture
def tiny():
    return override(get_recipe("vgg16-cifar", "smoke"), {"width_mult": 0.125, "train_per_class": 10,
                                                       "test_per_class": 5, "weights.epochs": 1,
                                                       "arch.epochs": 1, "finetune.epochs": 1})


def test_dense_trains_the_control_in_bf16_beside_the_fp32_one(cifar_dir, tmp_path, tiny):
    from dnal_core.experiments import precision

    table1 = tmp_path / "results" / "table1_vgg16_cifar10" / "smoke"
    write_json(table1 / "controls" / "dense.json", {"top1": 12.5, "top5": 50.0, "epochs": 3, "date": "d"})
    out = tmp_path / "out"
    got = precision.dense(tiny, cifar_dir, tmp_path / "runs", out, table1, {"command": "cmd"}, "cpu")
    assert got == read_json(out / kind_slug() / "dense.json")
    assert got["bf16"]["precision"]["used"] == "bf16" and got["bf16"]["epochs"] == 3  # 1 + 1 + 1
    assert got["top1_difference"] == pytest.approx(got["bf16"]["top1"] - 12.5)
    assert got["fp32"]["top1"] == 12.5 and got["fp32_source"].endswith("controls/dense.json")
    assert set(got["eval_top1"]) == {"fp32", "bf16"}
    assert got["eval_difference"] == pytest.approx(got["eval_top1"]["bf16"] - got["eval_top1"]["fp32"])
    # the run folder's config names its precision: a resumed control keeps it
    config = json.loads((tmp_path / "runs" / "dense-bf16" / "config.json").read_text())
    assert config["precision"]["used"] == "bf16" and config["recipe"]["precision"] == "bf16"


def test_search_runs_both_precisions_from_one_weight_stage(cifar_dir, tmp_path, tiny):
    from dnal_core.experiments import precision

    out, runs, t1 = tmp_path / "out", tmp_path / "runs", tmp_path / "t1"
    got = precision.search(tiny, cifar_dir, runs, out, t1, tmp_path / "none", {"command": "cmd"}, "cpu",
                           lam=1e-3, seeds=[0, 1])
    assert got == read_json(out / kind_slug() / "search.json")
    assert [(r["seed"], r["precision"]["used"]) for r in got["rows"]] == [(0, "fp32"), (0, "bf16"),
                                                                          (1, "fp32"), (1, "bf16")]
    for name in ("fp32", "bf16"):  # every search started from the one fp32 weight stage
        for folder in (runs / f"{name}-lam1e-3", runs / f"{name}-lam1e-3-seed1"):
            cfg = json.loads((folder / "config.json").read_text())
            assert cfg["weights_from"] == str(t1 / "weights" / "weights.pt")
            assert cfg["recipe"]["seed"] == (1 if folder.name.endswith("seed1") else 0)
    assert got["macs"]["fp32"] == [r["macs"] for r in got["rows"] if r["precision"]["used"] == "fp32"]
    mean = {k: sum(v) / 2 for k, v in got["macs"].items()}
    assert got["mean_relative_difference"] == pytest.approx(mean["bf16"] / mean["fp32"] - 1)
    assert got["table1_fp32"] is None  # no committed sweep in that folder


def test_experiments_take_a_precision_for_every_run(monkeypatch, tmp_path):
    """``--precision`` sets the recipe of every run an experiment makes, and its command line
    says so; the precision experiment, which sets each run's own, refuses it."""
    from dnal_core.experiments import cli

    seen = {}
    (tmp_path / "train").mkdir()  # a folder the CLI takes for CIFAR-10 (an ImageFolder)
    monkeypatch.setattr(cli, "table1_search", lambda recipe, data, runs, out, command, device:
                        seen.update(recipe=recipe, command=command))
    assert cli.main(["table1", "--part", "search", "--data", str(tmp_path), "--runs", str(tmp_path / "r"),
                     "--out", str(tmp_path / "o"), "--precision", "auto"]) == 0
    assert seen["recipe"].precision == "auto" and seen["command"].endswith(" --precision auto")
    assert cli.main(["table1", "--part", "search", "--data", str(tmp_path), "--runs", str(tmp_path / "r"),
                     "--out", str(tmp_path / "o")]) == 0
    assert seen["recipe"].precision == "fp32" and "--precision" not in seen["command"]
    with pytest.raises(SystemExit) as e:
        cli.main(["precision", "--part", "dense", "--data", str(tmp_path), "--precision", "bf16"])
    assert e.value.code == 2
