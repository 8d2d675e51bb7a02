"""dnal_core.report: output folders, figures, results, the paper beside our numbers."""
import json
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from dnal_core import report  # noqa: E402
from dnal_core.paper import paper_table  # noqa: E402


@pytest.fixture
def out_root(tmp_path, monkeypatch):
    monkeypatch.setenv(report.OUT_ROOT_ENV, str(tmp_path))
    return tmp_path


def test_repo_root_holds_the_notebooks():
    root = report.repo_root()
    assert (root / "notebooks").is_dir() and (root / "pyproject.toml").is_file()


def test_paths_default_layout_under_out_root(out_root):
    run = report.paths("table1_vgg16_cifar10", "smoke")
    assert run.out == out_root / "results" / "table1_vgg16_cifar10" / "smoke"
    assert run.fig == out_root / "figures"
    assert run.out.is_dir() and run.fig.is_dir()


def test_paths_relative_and_absolute_overrides(out_root, tmp_path_factory):
    elsewhere = tmp_path_factory.mktemp("abs")
    run = report.paths("x", "paper", out_dir="custom/out", fig_dir=str(elsewhere))
    assert run.out == out_root / "custom" / "out"
    assert run.fig == elsewhere


def test_paths_rejects_unknown_profile(out_root):
    with pytest.raises(ValueError, match="unknown profile 'fast'"):
        report.paths("x", "fast")


def _figure():
    fig, ax = plt.subplots(figsize=(3, 2))
    ax.plot([0, 1, 2], [0, 1, 4])
    return fig


def test_save_figure_writes_deterministic_png_and_returns_it(tmp_path):
    img = report.save_figure(_figure(), "curve", tmp_path)
    first = (tmp_path / "curve.png").read_bytes()
    assert first.startswith(b"\x89PNG") and img.data == first
    report.save_figure(_figure(), "curve", tmp_path)
    assert (tmp_path / "curve.png").read_bytes() == first  # re-running leaves git clean
    assert not plt.get_fignums()  # closed: the inline backend does not show it twice


def test_read_results_json_and_jsonl(tmp_path):
    folder = tmp_path / "exp" / "smoke"
    folder.mkdir(parents=True)
    (folder / "summary.json").write_text(json.dumps({"lambda": "1e-4", "top1": 91.5}))
    (folder / "epochs.jsonl").write_text('{"epoch": 0, "top1": 50}\n\n{"epoch": 1, "top1": 60}\n')
    df = report.read_results("exp", "smoke", root=tmp_path)
    assert len(df) == 3
    assert list(df[df["source"] == "epochs.jsonl"]["top1"]) == [50, 60]
    assert df[df["source"] == "summary.json"]["top1"].item() == 91.5


def test_read_results_prefers_out_root_then_repository(out_root):
    folder = out_root / "results" / "exp_only_here" / "smoke"
    folder.mkdir(parents=True)
    (folder / "a.json").write_text('{"v": 1}')
    assert report.read_results("exp_only_here", "smoke")["v"].tolist() == [1]
    with pytest.raises(ValueError, match="run the experiment"):
        report.read_results("no_such_experiment", "smoke")


def test_paper_vs_ours_matches_on_lambda_and_orders_by_size():
    ours = [{"lambda": "-", "macs_m": 313.46, "params_m": 14.99, "top1": 93.0},
            {"lambda": "1e-4", "macs_m": 150.0, "params_m": 2.0, "top1": 92.5},
            {"lambda": "9e-4", "macs_m": 5.0, "params_m": 0.05, "top1": 80.0}]
    df = report.paper_vs_ours("I", ours)
    paper = paper_table("I")
    n_paper = int(paper["method"].isin(["DNAL", "Baseline"]).sum())
    assert len(df) == n_paper + 1  # our 9e-4 has no paper row
    row = df[df["lambda"] == "1e-4"].iloc[0]
    assert row["paper_macs_m"] == 161.97 and row["ours_macs_m"] == 150.0
    assert math.isclose(row["paper_macs_x"], 313.47 / 161.97)
    assert math.isclose(row["ours_macs_x"], 313.46 / 150.0)
    assert df.iloc[0]["lambda"] == "-" and df.iloc[-1]["lambda"] == "9e-4"
    assert math.isnan(df.iloc[-1]["paper_top1"])


@pytest.mark.parametrize("lam,label", [(1e-5, "1e-5"), (0.0001, "1e-4"), ("5e-05", "5e-5"), ("1e-4", "1e-4"),
                                       (1.5e-4, "1.5e-4"), (2e-3, "2e-3"), ("-", "-"), (None, "-"),
                                       (float("nan"), "-")])
def test_lambda_label_writes_lambda_as_the_paper(lam, label):
    assert report.lambda_label(lam) == label


def test_paper_vs_ours_matches_float_lambdas():
    df = report.paper_vs_ours("I", [{"lambda": 0.0001, "macs_m": 150.0, "params_m": 2.0, "top1": 92.5},
                                    {"lambda": 5e-05, "macs_m": 190.0, "params_m": 3.0, "top1": 93.0}])
    assert df[df["lambda"] == "1e-4"]["ours_macs_m"].item() == 150.0
    assert df[df["lambda"] == "5e-5"]["paper_macs_m"].item() == 195.14


def test_paper_vs_ours_rejects_missing_columns():
    with pytest.raises(ValueError, match="lack columns"):
        report.paper_vs_ours("I", pd.DataFrame([{"lambda": "1e-4", "top1": 90.0}]))


def test_plot_acc_vs_macs_draws_paper_and_ours():
    fig = report.plot_acc_vs_macs("I", [{"macs_m": 100.0, "top1": 92.0, "label": "1e-4"}])
    ax = fig.axes[0]
    labels = [line.get_label() for line in ax.get_lines()]
    assert "DNAL (paper)" in labels and "ours" in labels
    ours = next(line for line in ax.get_lines() if line.get_label() == "ours")
    assert list(ours.get_xdata()) == [100.0]
    plt.close(fig)


def test_check_close():
    assert "within" in report.check_close(93.7, 93.77, 0.1, "top-1")
    with pytest.raises(AssertionError, match="top-1: ours 90"):
        report.check_close(90.0, 93.77, 0.5, "top-1")
    with pytest.raises(AssertionError):
        report.check_close(float("nan"), 93.77, 100.0, "top-1")


def _final(lam, macs, top1, top5=90.0):
    return {"lambda": lam, "macs": macs, "params": macs // 10, "top1": top1, "top5": top5,
            "baseline_macs": 1_000_000, "baseline_params": 100_000, "baseline_top1": 80.0, "baseline_top5": 95.0}


def test_ours_table_baseline_first_sorted_by_lambda_with_drops():
    ours = report.ours_table([_final(5e-4, 200_000, 70.0, 85.0), _final(1e-4, 500_000, 78.0)])
    assert ours["lambda"].tolist() == ["-", "1e-4", "5e-4"]
    assert ours["macs_m"].tolist() == [1.0, 0.5, 0.2]
    assert ours["drop1"].tolist() == [0.0, 2.0, 10.0]
    assert ours["drop5"].tolist() == [0.0, 5.0, 10.0]
    with pytest.raises(ValueError, match="lack"):
        report.ours_table([{"lambda": 1e-4, "macs": 1}])


def test_paper_vs_ours_carries_top5_when_given():
    ours = report.ours_table([_final(1e-4, 500_000, 78.0, 91.0)])
    merged = report.paper_vs_ours("I", ours)
    row = merged[merged["lambda"] == "1e-4"].iloc[0]
    assert row["ours_top5"] == 91.0 and row["paper_top5"] == 99.72


def test_results_dir_needs_a_result_file(out_root):
    folder = out_root / "results" / "exp" / "smoke"
    folder.mkdir(parents=True)
    assert not report.has_results(folder) and report.results_dir("exp", "smoke", out_root / "results") is None
    (folder / "a.json").write_text(json.dumps({"x": 1}))
    assert report.results_dir("exp", "smoke", out_root / "results") == folder
    assert report.read_folder(folder)["x"].tolist() == [1]


def test_copy_metrics_filters_stages_adds_fields_drops_times(tmp_path):
    lines = [{"stage": "weights", "epoch": 0, "seconds": 1.5}, {"stage": "arch", "epoch": 0, "seconds": 2.0,
                                                                 "eval_seconds": 0.1, "gate_hist": [1, 2]}]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    n = report.copy_metrics(tmp_path, tmp_path / "out" / "m.jsonl", stages=["arch"], model="m")
    got = [json.loads(x) for x in (tmp_path / "out" / "m.jsonl").read_text().splitlines()]
    assert n == 1 and got == [{"model": "m", "stage": "arch", "epoch": 0, "gate_hist": [1, 2]}]


def test_provenance_names_date_command_device():
    p = report.provenance("table1_vgg16_cifar10", "smoke", 1, {"arch.epochs": 1}, device="cpu")
    assert p["device"] == "cpu" and "table1_vgg16_cifar10" in p["command"] and "arch.epochs" in p["command"]
    assert len(p["date"]) == 10


def test_plot_acc_vs_relative_macs_scales_each_side_by_its_baseline():
    ours = report.ours_table([_final(1e-4, 500_000, 78.0)])
    fig = report.plot_acc_vs_relative_macs("I", ours)
    lines = {ln.get_label(): ln for ln in fig.axes[0].get_lines()}
    assert list(lines["ours"].get_xdata()) == [50.0]
    paper_x = lines["DNAL (paper)"].get_xdata()
    assert max(paper_x) == pytest.approx(100 * 211.89 / 313.47)
    plt.close(fig)


# What the table chapters share (report.random_imagefolder ... report.plot_tables, and
# experiments.run_lambdas).

def test_random_imagefolder_layout_and_seed(tmp_path):
    root = report.random_imagefolder(tmp_path / "a", classes=2, per_class=(3, 1), size=16, seed=1)
    assert sorted(str(p.relative_to(root)) for p in root.rglob("*.JPEG")) == [
        "train/n00000000/0.JPEG", "train/n00000000/1.JPEG", "train/n00000000/2.JPEG",
        "train/n00000001/0.JPEG", "train/n00000001/1.JPEG", "train/n00000001/2.JPEG",
        "val/n00000000/0.JPEG", "val/n00000001/0.JPEG"]
    same = report.random_imagefolder(tmp_path / "b", classes=2, per_class=(3, 1), size=16, seed=1)
    other = report.random_imagefolder(tmp_path / "c", classes=2, per_class=(3, 1), size=16, seed=2)
    f = "val/n00000001/0.JPEG"
    assert (root / f).read_bytes() == (same / f).read_bytes() != (other / f).read_bytes()


def _fake_pipeline(calls):
    def run_pipeline(recipe, data, out, **kw):
        calls.append((recipe.lam, Path(out).name, kw.get("stages"), kw.get("weights_from")))
        Path(out).mkdir(parents=True, exist_ok=True)
        (Path(out) / "arch.json").write_text(json.dumps({"widths": [1, 2], "lam": recipe.lam}))
        return {"lambda": recipe.lam, "top1": 1.0}
    return run_pipeline


@pytest.mark.parametrize("shared", [True, False])
def test_run_lambdas_records_each_lambda_with_provenance(tmp_path, monkeypatch, shared):
    import dnal_core.train
    from dnal_core.experiments import run_lambdas
    from dnal_core.recipes import get_recipe

    calls = []
    monkeypatch.setattr(dnal_core.train, "run_pipeline", _fake_pipeline(calls))
    out = run_lambdas(get_recipe("vgg16-cifar", "smoke"), "data", [1e-4, 5e-4], tmp_path / "runs",
                      tmp_path / "out", {"date": "d"}, "cpu", shared_weights=shared)
    assert sorted(p.name for p in out.glob("*.json")) == ["lam1e-4.json", "lam5e-4.json"]
    assert json.loads((out / "lam5e-4.json").read_text()) == {"date": "d", "lambda": 5e-4, "top1": 1.0}
    assert json.loads((out / "arch" / "lam1e-4.json").read_text())["lam"] == 1e-4
    weights = tmp_path / "runs" / "weights" / "weights.pt"
    if shared:  # one weight stage (no lambda), then each lambda's search and finetuning from it
        assert calls == [(None, "weights", ["weights"], None), (1e-4, "lam1e-4", ["arch", "finetune"], weights),
                         (5e-4, "lam5e-4", ["arch", "finetune"], weights)]
    else:
        assert calls == [(1e-4, "lam1e-4", None, None), (5e-4, "lam5e-4", None, None)]


def test_beside_paper_and_paper_run_table(tmp_path):
    finals = [{**_final(1e-4, 500_000, 78.0), "device": "cpu", "torch": "2.14.1", "date": "2026-11-27",
               "command": "c"}]
    ours, table = report.beside_paper("I", finals)
    assert table[table["lambda"] == "1e-4"]["drop1"].item() == 2.0 and ours["lambda"].tolist() == ["-", "1e-4"]
    none, rows, message = report.paper_run_table("table1_x", "I", tmp_path / "missing")
    paper = paper_table("I")
    assert none is None and len(rows) == paper["method"].isin(["Baseline", "DNAL"]).sum()
    assert "No full (paper-profile) run of Table I" in message and "results/table1_x/paper/" in message
    (tmp_path / "lam1e-4.json").write_text(json.dumps(finals[0]))
    ours, table, message = report.paper_run_table("table1_x", "I", tmp_path)
    assert message.endswith("cpu, torch 2.14.1, 2026-11-27; made by `c`") and "ours_top1" in table


def test_baseline_counts_beside_the_paper():
    from dnal_core.measure import count
    from dnal_core.models import build
    from dnal_core.paper import paper_baseline

    model = build("vgg16-cifar", width_mult=0.25)
    counts = report.baseline_counts(model, "I").set_index("count")
    assert counts.loc["macs", "macs_m"] == count(model)["macs"] / 1e6
    assert counts.loc["authors", "params_m"] == count(model, convention="authors")["params"] / 1e6
    assert counts.loc["paper", "macs_m"] == paper_baseline("I")["macs_m"]


def test_paper_commands_one_weight_stage_then_each_lambda():
    cmds = report.paper_commands("t4", "vgg16-imagenet", ["1e-4", "2e-4"], "/data", gpus=2)
    assert len(cmds) == 5 and "--stages weights" in cmds[0] and "--nproc_per_node 2" in cmds[0]
    assert "--lambda 2e-4 --weights-from runs/t4/paper/weights/weights.pt" in cmds[2]
    assert cmds[-1] == "cp runs/t4/paper/lam2e-4/final.json results/t4/paper/lam2e-4.json"


def test_check_smoke_baseline():
    from dnal_core.measure import count
    from dnal_core.models import build
    from dnal_core.recipes import get_recipe

    c = count(build("vgg16-cifar", width_mult=get_recipe("vgg16-cifar", "smoke").width_mult, num_classes=10))
    row = {"lambda": 1e-4, "baseline_macs": c["macs"], "baseline_params": c["params"], "macs": c["macs"] // 2,
           "params": c["params"]}
    assert report.check_smoke_baseline("vgg16-cifar", pd.DataFrame([row])).endswith("MACs at lambda 1e-4")
    with pytest.raises(AssertionError):
        report.check_smoke_baseline("vgg16-cifar", pd.DataFrame([{**row, "macs": c["macs"] + 1}]))


def test_check_top1_and_macs_order():
    ours = report.ours_table([_final(5e-4, 200_000, 70.0), _final(1e-4, 500_000, 78.0)])
    report.check_macs_order(ours)
    with pytest.raises(AssertionError, match="larger lambda"):
        report.check_macs_order(ours.assign(macs_m=[1.0, 0.2, 0.5]))
    table = pd.DataFrame([{"lambda": "1e-4", "paper_top1": 93.0, "ours_top1": 92.8},
                          {"lambda": "5e-4", "paper_top1": float("nan"), "ours_top1": 10.0}])
    assert report.check_top1(table) == ["top-1 at lambda 1e-4: ours 92.8, paper 93 (within 0.5)"]
    with pytest.raises(AssertionError):
        report.check_top1(table.assign(ours_top1=[90.0, 10.0]))


def test_plot_tables_two_panels():
    fig = report.plot_tables("I", report.ours_table([_final(1e-4, 500_000, 78.0)]), "Table I: x", "smoke")
    assert [ax.get_title() for ax in fig.axes] == ["Table I: x (ours: smoke profile)",
                                                   "Table I: x, relative MACs (smoke)"]
    plt.close(fig)


def test_paper_lambdas_are_the_dnal_rows():
    from dnal_core.paper import paper_lambdas, paper_table

    assert paper_lambdas("I") == [1e-5, 5e-5, 1e-4, 2e-4, 3e-4, 4e-4, 5e-4]
    assert paper_lambdas("V") == [5e-5, 6e-5, 7e-5, 1e-4]
    assert all(len(paper_lambdas(t)) == (paper_table(t)["method"] == "DNAL").sum()
               for t in ("I", "II", "III", "IV", "V", "VI", "VII"))
