"""dnal_core.chapter: ``ensure`` (committed results, or made once, and where they came from) and
the ImageNet chapters' shared steps, on Table VI's MobileNetV2 (small enough to build at full
width in a second) with a stand-in for the trainer, under a scratch $DNAL_OUT_ROOT."""
import json

import pandas as pd
import pytest

from dnal_core import chapter as ch
from dnal_core.measure import count
from dnal_core.models import build
from dnal_core.paper import paper_table
from dnal_core.recipes import get_recipe
from dnal_core.report import lambda_label

PROV = {"date": "2026-12-07", "torch": "2.0", "device": "cpu", "command": "make it"}
NAME, TABLE, MODEL = "test_chapter_imagenet", "VI", "mobilenetv2-imagenet"


@pytest.fixture
def root(tmp_path, monkeypatch):
    monkeypatch.setenv("DNAL_OUT_ROOT", str(tmp_path / "root"))
    return tmp_path / "root"


def _write(folder, name="lam1e-4.json", **fields):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(json.dumps({**PROV, "lambda": 1e-4, **fields}))
    return folder


def test_ensure_reads_committed_results_and_says_where_from(root, capsys):
    folder = _write(root / "results" / "exp" / "smoke", top1=12.5)

    def make():
        raise AssertionError("results exist: nothing to make")

    finals = ch.ensure("exp", "smoke", make)
    assert finals["top1"].tolist() == [12.5] and finals["source"].tolist() == ["lam1e-4.json"]
    assert capsys.readouterr().out == "smoke result: cpu, torch 2.0, 2026-12-07; made by `make it`\n"
    assert folder.is_dir()


def test_ensure_makes_results_when_none_or_asked(root, capsys):
    made = []

    def make():
        made.append(1)
        return _write(root / "results" / "exp" / "cpu", top1=float(len(made)))

    assert ch.ensure("exp", "cpu", make)["top1"].tolist() == [1.0]  # none yet: made
    assert ch.ensure("exp", "cpu", make)["top1"].tolist() == [1.0]  # committed now: read
    assert ch.ensure("exp", "cpu", make, train=True)["top1"].tolist() == [2.0]  # asked: made again
    assert len(made) == 2
    assert capsys.readouterr().out.count("cpu result: cpu, torch 2.0") == 3


def _fake_pipeline(calls):
    """A stand-in for train.run_pipeline: no training; the smoke network's counts as the
    baseline, half its MACs as the pruned network's, and an arch.json."""
    def run_pipeline(recipe, data, out, device="auto", resume=False, workers=8, **kw):
        calls.append({"recipe": recipe, "data": data, "out": out, "workers": workers, **kw})
        dense = count(build(MODEL, width_mult=recipe.width_mult, num_classes=10))
        out.mkdir(parents=True, exist_ok=True)
        (out / "arch.json").write_text(json.dumps({"widths": [1, 2]}))
        return {"lambda": recipe.lam, "macs": dense["macs"] // 2, "params": dense["params"] - 1, "top1": 10.0,
                "top5": 50.0, "baseline_macs": dense["macs"], "baseline_params": dense["params"],
                "baseline_top1": 10.0, "baseline_top5": 50.0}
    return run_pipeline


def test_imagenet_smoke_run_trains_once_on_a_generated_imagefolder(root, tmp_path, monkeypatch, capsys):
    import dnal_core.train as train_pkg

    calls = []
    monkeypatch.setattr(train_pkg, "run_pipeline", _fake_pipeline(calls))
    chapter = ch.ImageNet(NAME, TABLE, MODEL, "MobileNetV2 on ImageNet")
    first = paper_table(TABLE).query("method == 'DNAL'")["lambda"].iloc[0]
    assert chapter.lams[0] == first

    smoke = chapter.smoke(runs_dir=str(tmp_path / "runs"))
    (call,) = calls
    assert call["recipe"].width_mult == get_recipe(MODEL, "smoke").width_mult and call["recipe"].lam == float(first)
    assert call["workers"] == 0 and "weights_from" not in call  # every stage, one lambda
    assert len(list((tmp_path / "runs" / "imagefolder" / "train").iterdir())) == ch.SMOKE_DATA["classes"]
    out = root / "results" / NAME / "smoke"
    assert (out / f"lam{lambda_label(first)}.json").is_file() and (out / "arch").is_dir()
    assert smoke["command"].iloc[0].startswith(f"python book/build.py execute --only {NAME} (profile smoke")
    assert capsys.readouterr().out.startswith("smoke result: ")

    assert chapter.smoke(runs_dir=str(tmp_path / "runs"))["macs"].tolist() == smoke["macs"].tolist()
    assert len(calls) == 1  # the second call read what the first made
    chapter.smoke(train=True, runs_dir=str(tmp_path / "runs"))
    assert len(calls) == 2

    rows = chapter.rows(smoke).data
    assert rows.columns.tolist() == ["lambda", "MACs (M)", "params (M)", "top-1 (%)", "top-5 (%)"]
    assert rows["lambda"].tolist() == ["-", lambda_label(first)]
    # no paper run: the smoke check alone
    assert chapter.check(smoke, None, None).startswith("smoke: ")
    with pytest.raises(AssertionError):  # a smoke result of another network fails it
        chapter.check(smoke.assign(baseline_macs=smoke["baseline_macs"] + 1), None, None)


def test_imagenet_baseline_commands_and_paper_run(root, tmp_path, capsys):
    chapter = ch.ImageNet(NAME, TABLE, MODEL, "MobileNetV2 on ImageNet", fig_dir=str(tmp_path / "figs"))
    assert chapter.paper_rows().data["method"].iloc[0] == "Baseline"

    model = chapter.baseline()
    counts = capsys.readouterr().out
    assert counts.startswith(f"{MODEL} at (3, 224, 224)\n") and "authors" in counts and "paper" in counts
    assert len(model.widths) > 0

    chapter.commands(gpus=2)
    cmds = capsys.readouterr().out
    assert "--nproc_per_node 2" in cmds and "$IMAGENET" in cmds
    assert cmds.count("--lambda") == len(chapter.lams) and max(map(len, cmds.splitlines())) <= 88

    ours, table = chapter.paper_run()  # none committed: the paper's rows alone, and why
    assert ours is None and set(table["lambda"]) == {"-", *map(lambda_label, chapter.lams)}
    assert "No full (paper-profile) run of Table VI" in capsys.readouterr().out
    assert chapter.figure(None).data[:4] == b"\x89PNG" and (tmp_path / "figs" / f"{NAME}.png").is_file()

    # a paper run in out_dir: beside the paper's rows, its top-1 checked against the paper's
    paper = paper_table(TABLE).set_index("method")
    base, dnal = paper.loc["Baseline"], paper.loc["DNAL"].iloc[0]
    out = tmp_path / "paper_run"
    _write(out, f"lam{lambda_label(dnal['lambda'])}.json", **{
        "lambda": float(dnal["lambda"]), "macs": dnal["macs_m"] * 1e6, "params": dnal["params_m"] * 1e6,
        "top1": dnal["top1"] + 0.2, "top5": dnal["top5"], "baseline_macs": base["macs_m"] * 1e6,
        "baseline_params": base["params_m"] * 1e6, "baseline_top1": base["top1"], "baseline_top5": base["top5"]})
    chapter = ch.ImageNet(NAME, TABLE, MODEL, "MobileNetV2 on ImageNet", out_dir=str(out),
                          fig_dir=str(tmp_path / "figs"))
    ours, table = chapter.paper_run()
    said = " ".join(capsys.readouterr().out.split())  # wrapped to the page
    assert said == f"paper-profile results from {out}: cpu, torch 2.0, 2026-12-07; made by `make it`"
    assert isinstance(ours, pd.DataFrame) and "ours_top1" in table
    assert "ours: top-1 (%)" in chapter.beside(table).data.columns
    smoke = pd.DataFrame([{"lambda": 1e-4, "macs": 1, "params": 1, "baseline_macs": 2, "baseline_params": 2}])
    with pytest.raises(AssertionError):  # not this network's smoke run: the smoke check fails first
        chapter.check(smoke, ours, table)
    chapter.figure(ours)


def test_ensure_reads_and_makes_in_a_chapters_out_dir(root, tmp_path, capsys):
    _write(root / "results" / "exp" / "cpu", top1=1.0)  # found by the search, but out_dir says where
    out = tmp_path / "mine"
    made = []

    def make():
        made.append(1)
        return _write(out, top1=2.0)

    assert ch.ensure("exp", "cpu", make, out_dir=str(out))["top1"].tolist() == [2.0]  # empty: made
    assert ch.ensure("exp", "cpu", make, out_dir=str(out))["top1"].tolist() == [2.0]  # now read
    assert len(made) == 1 and ch.ensure("exp", "cpu", make)["top1"].tolist() == [1.0]
    ch.ensure("exp", "cpu", make, train=True, out_dir=str(out))
    assert len(made) == 2 and capsys.readouterr().out.count("cpu result: ") == 4


def test_ensure_lambdas_sweeps_from_one_weight_stage_once(root, tmp_path, monkeypatch, capsys):
    import dnal_core.train as train_pkg

    calls = []
    monkeypatch.setattr(train_pkg, "run_pipeline", _fake_pipeline(calls))
    monkeypatch.delenv("DNAL_DATA", raising=False)
    recipe, lams, smoke = get_recipe("resnet56-cifar", "smoke"), [1e-4, 3e-4], {"arch.epochs": 1}
    with pytest.raises(ValueError, match="DNAL_DATA"):  # nothing committed, no data: said so
        ch.ensure_lambdas("exp", "smoke", recipe, lams)
    assert calls == []

    monkeypatch.setenv("DNAL_DATA", str(tmp_path / "cifar"))
    kw = dict(runs_dir=str(tmp_path / "runs"), overrides=smoke)
    finals = ch.ensure_lambdas("exp", "smoke", recipe, lams, **kw)
    assert [c.get("stages") for c in calls] == [["weights"], ["arch", "finetune"], ["arch", "finetune"]]
    assert {c["data"] for c in calls} == {str(tmp_path / "cifar")} and calls[0]["out"] == tmp_path / "runs" / "weights"
    out = root / "results" / "exp" / "smoke"
    assert sorted(finals["source"]) == ["lam1e-4.json", "lam3e-4.json"] and (out / "arch" / "lam3e-4.json").is_file()
    assert "recipe overrides {'arch.epochs': 1}" in finals["command"].iloc[0]
    assert capsys.readouterr().out.startswith("smoke result: ")

    assert ch.ensure_lambdas("exp", "smoke", recipe, lams, **kw)["macs"].tolist() == finals["macs"].tolist()
    assert len(calls) == 3  # committed now: read, not made
    (tmp_path / "runs" / "weights" / "weights.pt").touch()  # the weight stage's file: not rerun
    mine = tmp_path / "mine"  # a chapter's out_dir, and train: made there again
    ch.ensure_lambdas("exp", "smoke", recipe, lams[:1], True, str(tmp_path / "cifar"), str(mine), **kw)
    assert len(calls) == 4 and (mine / "lam1e-4.json").is_file()


def test_imagenet_walk_shows_the_shared_steps_in_order(root, tmp_path, monkeypatch, capsys):
    """walk: each shared step after its sentence, in the chapter's order, and what the chapter's
    figure and checks need; check_counts: our counts against the paper's baseline row in the
    convention asked, a table without MACs asserted to give none, a wrong count failing."""
    import IPython.display
    import dnal_core.train as train_pkg

    shown = []
    monkeypatch.setattr(IPython.display, "display", lambda x: shown.append(x))
    monkeypatch.setattr(train_pkg, "run_pipeline", _fake_pipeline([]))
    chapter = ch.ImageNet(NAME, TABLE, MODEL, "MobileNetV2 on ImageNet", fig_dir=str(tmp_path / "figs"))
    model, smoke, ours, table = chapter.walk(runs_dir=str(tmp_path / "runs"))
    said = [x.data for x in shown if isinstance(x, IPython.display.Markdown)]
    assert said == [ch.WALK_TEXT[k] for k in ("paper", "baseline", "commands", "smoke", "beside")]
    assert len(shown) == 8 and ours is None and len(smoke) == 1  # 5 sentences, 3 tables; one lambda
    out = capsys.readouterr().out
    assert out.index(f"{MODEL} at (3, 224, 224)") < out.index("torchrun") < out.index("smoke result: ")

    lines = chapter.check_counts(model, macs=("authors", 0.01), params=("authors", 0.01)).splitlines()
    assert [x.split(":")[0] for x in lines] == ["baseline MACs (M), authors' count",
                                                "baseline params (M), authors' count"]
    with pytest.raises(AssertionError):  # conv and linear MACs alone miss the authors' 300.79M by 0.02M
        chapter.check_counts(model, macs=("macs", 0.01), params=("authors", 0.01))
    with pytest.raises(AssertionError):  # Table VI gives MACs: leaving them out is a mistake
        chapter.check_counts(model, macs=None, params=("authors", 0.01))


def test_cifar_chapter_runs_the_smoke_sweep_and_sets_it_beside_the_paper(root, tmp_path, monkeypatch, capsys):
    """Cifar (Tables II-III): the smoke profile's three lambdas and shortened stages, the paper
    profile's lambdas from the paper's DNAL rows; run makes the sweep once from one weight
    stage; beside, others, figure and check on what it made."""
    import dnal_core.train as train_pkg

    calls = []
    monkeypatch.setattr(train_pkg, "run_pipeline", _fake_pipeline(calls))
    paper = ch.Cifar("table2_resnet56_cifar10", "II", "resnet56-cifar", "ResNet56 on CIFAR-10", profile="paper")
    assert paper.lams == paper_table("II").query("method == 'DNAL'")["lambda"].astype(float).tolist()
    assert paper.overrides is None and paper.recipe == get_recipe("resnet56-cifar", "paper")
    chapter = ch.Cifar("exp_cifar", "II", "resnet56-cifar", "ResNet56 on CIFAR-10", data_dir=str(tmp_path / "cifar"),
                       runs_dir=str(tmp_path / "runs"), fig_dir=str(tmp_path / "figs"))
    assert chapter.lams == ch.CIFAR_SMOKE["lams"] and chapter.recipe.arch.epochs == 1
    assert chapter.baseline() == count(build("resnet56-cifar"))
    assert capsys.readouterr().out.startswith("resnet56-cifar: 125.")
    finals = chapter.run()
    assert [c.get("stages") for c in calls] == [["weights"]] + [["arch", "finetune"]] * 3
    assert "recipe overrides {'arch.epochs': 1, 'finetune.epochs': 1}" in finals["command"].iloc[0]
    chapter.run()
    assert len(calls) == 4  # read back, not made again
    ours, table, shown = chapter.beside(finals)
    assert len(ours) == 4 and "ours: top-1 (%)" in shown.data.columns
    assert "DNAL" not in set(chapter.others().data["method"])
    assert chapter.figure(ours).data[:4] == b"\x89PNG" and (tmp_path / "figs" / "exp_cifar_smoke.png").is_file()
    assert chapter.check(ours, table) == "MACs order: as expected"  # the smoke profile: no top-1 check
    with pytest.raises(AssertionError):  # a pruned row above its baseline
        chapter.check(ours.assign(macs_m=ours["macs_m"][::-1].to_numpy()), table)
    # walk: the same steps, each after its sentence, on what run made (nothing trained again)
    shown_objs = []
    monkeypatch.setattr("IPython.display.display", lambda obj: shown_objs.append(obj))
    full, walked, ours2, table2 = chapter.walk()
    assert len(calls) == 4 and full == count(build("resnet56-cifar")) and ours2.equals(ours)
    texts = [o.data for o in shown_objs if type(o).__name__ == "Markdown"]
    assert [t.split("**")[1] for t in texts] == ["Our baseline network", "The runs", "Our rows beside Table II's",
                                                 "The full table", "The other methods of Table II"]
    assert len(shown_objs) == 5 + 3  # the three tables after their sentences


def test_check_baseline_takes_one_or_several_conventions():
    """check_baseline: the paper's Table I baseline digits in the authors' convention (within
    half of the last digit) and conv+linear within 0.01M, one line each; a tolerance the count
    misses fails with the name of what is off."""
    model = build("vgg16-cifar")
    lines = ch.check_baseline(model, "I", macs=[("authors", 0.005), ("macs", 0.01)],
                              params=("authors", 0.005)).splitlines()
    assert [x.split(":")[0] for x in lines] == ["baseline MACs (M), authors' count", "baseline MACs (M)",
                                                "baseline params (M), authors' count"]
    with pytest.raises(AssertionError, match="baseline MACs"):
        ch.check_baseline(model, "I", macs=("macs", 1e-9), params=("authors", 0.005))


def test_place_resolves_the_profile_and_the_folders(root, tmp_path, monkeypatch):
    """place: "auto" becomes the largest-scale committed profile (smoke when none), the run
    folders default to runs/<name>/<profile>, the data to $DNAL_DATA, and torch's threads are
    set."""
    import torch

    monkeypatch.setenv("DNAL_DATA", "/some/cifar")
    threads = torch.get_num_threads()
    try:
        p = ch.place("exp_place", "auto", threads=1)
        assert p.profile == "smoke" and p.data == "/some/cifar" and torch.get_num_threads() == 1
        assert p.runs.parts[-3:] == ("runs", "exp_place", "smoke") and p.run.out.parts[-2:] == ("exp_place", "smoke")
        # the committed results decide (Table I has cpu results and no paper ones)
        p = ch.place("table1_vgg16_cifar10", "auto", runs_dir=str(tmp_path / "r"), data_dir="/mine")
        assert (p.profile, p.runs, p.data) == ("cpu", tmp_path / "r", "/mine")
    finally:
        torch.set_num_threads(threads)
    assert ch.FIGURE_MODELS["cpu"] == ["vgg16-cifar"] and "mobilenetv2-cifar" in ch.FIGURE_MODELS["paper"]
