"""dnal_core.chapter_sweep.Sweep: what Table I and Table II's cpu section show of a lambda sweep
with its controls, on a results folder written here the way ``experiments.table1_search`` and
``table1_controls`` write theirs (ResNet20 pruned by seeded random hard gates, no training)."""
import json

import pytest
import torch

from dnal_core.chapter_sweep import Sweep
from dnal_core.gate import gates, set_mode
from dnal_core.measure import count
from dnal_core.models import build
from dnal_core.prune import prune
from dnal_core.prune.stream import stream_gap_pruned
from dnal_core.report.text import PAGE_WIDTH
from dnal_core.train import hard_gated

NAME = "table2_resnet56_cifar10"
PROV = {"date": "2026-12-07", "torch": "2.0", "device": "cpu", "command": "python -m dnal_core.experiments x"}


def _pruned(seed: int, shift: float):
    """ResNet20 with seeded random hard gates (more closed for a larger ``shift``), pruned."""
    model = build("resnet20-cifar")
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, gate in gates(model):
            gate.s.copy_(torch.randn(gate.channels, generator=g) - shift)
    set_mode(model, "hard")
    return prune(hard_gated(model))


def _write(path, obj):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))


@pytest.fixture
def folder(tmp_path, monkeypatch):
    """Three finetuned lambdas, the dense control, two of three uniform controls."""
    monkeypatch.setenv("DNAL_OUT_ROOT", str(tmp_path))
    out = tmp_path / "results" / NAME / "cpu"
    dense = count(build("resnet20-cifar"))
    config = {"weights": {"epochs": 15}}
    lams = [("1e-3", 0.0, 88.0), ("3e-3", 0.8, 86.5), ("1e-2", 1.6, 83.0)]
    for i, (lam, shift, top1) in enumerate(lams):
        res = _pruned(i, shift)
        c = count(res.model)
        _write(out / f"lam{lam}.json", {**PROV, "lambda": float(lam), "macs": c["macs"], "params": c["params"],
                                        "top1": top1, "baseline_macs": dense["macs"],
                                        "baseline_params": dense["params"], "baseline_top1": 87.0,
                                        "config": config})
        _write(out / "arch" / f"lam{lam}.json", res.arch)
        if lam != "1e-2":
            _write(out / "controls" / f"uniform_lam{lam}.json",
                   {**PROV, "lambda": float(lam), "macs": c["macs"] * 1.01, "top1": top1 + 0.5,
                    "widths": res.arch["widths"]})
    _write(out / "controls" / "dense.json", {**PROV, "epochs": 30, "macs": dense["macs"], "top1": 89.0})
    _write(out / "chosen.json", {"lambdas": [1e-3, 3e-3, 1e-2]})
    _write(out / "sweep.json", {"rows": [{"lambda": float(lam), "macs_reduction": 1.5 + i, "hard_top1": 50.0,
                                          "loss_form": "paper"}
                                         for i, (lam, _, _) in enumerate(lams)]})
    return out


def _sweep():
    return Sweep(NAME, table="II", model="resnet56-cifar", title="ResNet20 on CIFAR-10", profile="cpu")


def test_a_cpu_profile_trains_its_own_network_and_finds_the_results(folder):
    s = _sweep()
    assert (s.net, s.profile, s.folder) == ("resnet20-cifar", "cpu", folder)
    assert s.recipe.model == "resnet20-cifar" and s.recipe.weights.epochs == 15
    finals = s.run()  # nothing to train: the results are there
    assert sorted(finals["source"]) == ["lam1e-2.json", "lam1e-3.json", "lam3e-3.json"]
    assert "3 finetuned networks, resnet20-cifar" in s.made(finals).data


def test_rows_tables_and_check(folder):
    s = _sweep()
    finals, rows = s.run(), s.rows()
    assert rows["lambda"].tolist() == ["1e-3", "3e-3", "1e-2"]
    assert rows["drop"].tolist() == [1.0, 2.5, 6.0]  # the dense control's 89.0 minus each
    assert rows["dnal_minus_uniform"].tolist()[:2] == [-0.5, -0.5]
    shown = repr(s.ours(rows))
    assert "not run" in shown and "vs uniform width" in shown  # 1e-2's control is missing
    stages = repr(s.stages(finals))
    assert "dense, 30 epochs" in stages and "weight stage (15 ep.), for lambda 1e-3, 3e-3, 1e-2" in stages
    line = s.check(rows, finals)
    assert line.startswith("3 lambdas, reductions") and "2 uniform controls; every chosen lambda" in line
    assert s.complete(rows)
    (folder / "lam1e-2.json").unlink()  # a chosen lambda still to finetune: the longest text
    s = _sweep()
    text = s.check(s.rows(), s.run())
    assert "still running" in text and max(len(x) for x in text.splitlines()) <= PAGE_WIDTH  # fits the page


def test_stream_counts_each_lambda_both_ways(folder):
    s = _sweep()
    rows = s.rows()
    table = s.stream(rows).data
    arch = json.loads((folder / "arch" / "lam3e-3.json").read_text())
    from dnal_core.models import build_from_arch

    ours, authors = stream_gap_pruned(build_from_arch(arch))
    assert authors < ours  # closed block outputs leave the stream's readers in the authors' count
    assert table.iloc[1].tolist() == ["3e-3", f"{ours / 1e6:.2f}", f"{authors / 1e6:.2f}", f"{ours / authors:.2f}x"]


def test_a_broken_check_names_what_is_off(folder):
    s = _sweep()
    finals, rows = s.run(), s.rows()
    rows.loc[2, "macs_m"] = 1e3  # more MACs than the baseline
    with pytest.raises(AssertionError):
        s.check(rows, finals)


def test_figures_are_saved_and_a_missing_experiment_says_so(folder, tmp_path, monkeypatch):
    s = _sweep()
    finals, rows = s.run(), s.rows()
    for fig in (s.figure(rows, finals), s.widths(rows), s.sweep()):
        assert fig is not None
    names = sorted(p.name for p in (tmp_path / "figures").glob("*.png"))
    assert names == [f"{NAME}_cpu.png", f"{NAME}_cpu_sweep.png", f"{NAME}_cpu_widths.png"]
    for f in folder.glob("lam*.json"):
        f.unlink()
    # the repository's own committed cpu results must not stand in for the missing ones
    monkeypatch.setattr("dnal_core.report.results.repo_root", lambda: tmp_path / "repository")
    empty = _sweep()
    assert empty.folder is None and empty.run() is None and empty.rows() is None
    assert "not run yet" in empty.made(None, "Run it.").data
    assert empty.ours(None).data == "*Not run yet.*" and empty.check(None, None).startswith("no results")
