"""dnal_core.experiments: the choice of lambdas on MACs and the uniform-width control."""
import pytest

import dnal_core as dn
from dnal_core.experiments import choose_lambdas, control_recipe, extend, uniform_width_for
from dnal_core.recipes import get_recipe


def _rows(pairs):
    return [{"lambda": lam, "macs_reduction": red} for lam, red in pairs]


def test_choose_lambdas_closest_on_a_log_scale():
    rows = _rows([(3e-5, 1.2), (1e-4, 1.6), (3e-4, 2.9), (1e-3, 4.6), (3e-3, 9.0), (1e-2, 30.0)])
    assert choose_lambdas(rows) == [1e-4, 3e-4, 1e-3, 3e-3]
    # each lambda at most once, even when two targets are closest to the same one
    assert choose_lambdas(_rows([(1e-4, 1.6), (1e-3, 9.0)])) == [1e-4, 1e-3]


def test_extend_a_sweep_that_misses_the_targets():
    assert extend(_rows([(3e-5, 2.0), (1e-3, 12.0)])) == 1e-5        # no reduction near 1.5x
    assert extend(_rows([(3e-5, 1.4), (1e-3, 6.0)])) == 3e-3         # none near 10x
    assert extend(_rows([(3e-5, 1.4), (1e-3, 9.5)])) is None


@pytest.mark.parametrize("target", [0.5, 0.2, 0.08])
def test_uniform_width_matches_macs_within_two_percent(target):
    base = dn.count(dn.build("vgg16-cifar", width_mult=0.25))["macs"]
    w = uniform_width_for("vgg16-cifar", target * base)
    got = dn.count(dn.build("vgg16-cifar", width_mult=w))["macs"]
    assert abs(got / (target * base) - 1) <= 0.02 and w < 0.25
    with pytest.raises(ValueError, match="no uniform width"):
        uniform_width_for("vgg16-cifar", 10.0)  # below the 1-channel network


def test_control_trains_as_long_as_the_three_stages():
    r = get_recipe("vgg16-cifar", "cpu")
    c = control_recipe(r, 0.1)
    assert c.weights.epochs == r.weights.epochs + r.arch.epochs + r.finetune.epochs == 30
    assert (c.width_mult, c.weights.schedule, c.weights.lr) == (0.1, "cosine", r.weights.lr)


def test_a_running_experiment_is_not_a_result(tmp_path):
    """A results folder holding only the sweep of a running experiment is not shown (the
    chapter would have nothing to render) and does not stop the notebook from training."""
    from dnal_core.report import best_profile, has_results

    cpu = tmp_path / "x" / "cpu"
    cpu.mkdir(parents=True)
    (cpu / "sweep.json").write_text('{"rows": []}')
    (cpu / "chosen.json").write_text('{"lambdas": []}')
    assert not has_results(cpu) and best_profile("x", tmp_path) == "smoke"
    (cpu / "lam1e-4.json").write_text("{}")
    assert has_results(cpu) and best_profile("x", tmp_path) == "cpu"


def test_refine_bisects_a_jump_of_the_map():
    """The cpu sweep of 2026-12-02 jumped from 3.5x (3e-3) to 130x (9e-3): the targets 5x and 10x
    fall in that gap, so refine proposes the geometric mean; a sweep meeting every target
    within 1.3x, or one that does not bracket a target, gets nothing."""
    from dnal_core.experiments import refine

    rows = _rows([(1e-4, 1.28), (3e-4, 1.43), (1e-3, 1.69), (3e-3, 3.49), (9e-3, 130.0)])
    assert refine(rows) == 5.2e-3
    assert refine(_rows([(1e-4, 1.5), (3e-4, 2.4), (1e-3, 5.5), (3e-3, 9.0)])) is None
    assert refine(_rows([(1e-4, 1.5), (3e-4, 2.4)])) is None  # 5x and 10x not bracketed: extend's job


def _fake_search(calls):
    """A stand-in for experiments.search: reduction = lambda * 1000 (no training)."""
    def search(recipe, data, runs, lam, device="auto", prefix=""):
        calls.append(("search", lam))
        from dnal_core.experiments import label

        folder = runs / f"lam{label(lam)}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "search.pt").write_bytes(b"")
        return {"lambda": lam, "loss_form": recipe.search.loss_form, "macs": 1 / lam, "macs_reduction": lam * 1e3}
    return search


def test_table1_search_keeps_what_out_already_holds(tmp_path, monkeypatch):
    """A session that lost its run folders does not search the committed sweep's lambdas again,
    nor finetune a lambda whose result exists; a chosen lambda without a run folder is searched
    again before its finetuning."""
    import dnal_core.experiments as ex
    import dnal_core.experiments.sweeps as sweeps
    from dnal_core.io import read_json, write_json

    calls = []
    monkeypatch.setattr(sweeps, "search", _fake_search(calls))

    def finetune(recipe, data, runs, lam, device="auto"):
        calls.append(("finetune", lam))
        (runs / f"lam{ex.label(lam)}" / "arch.json").write_text("{}")
        return {"top1": 1.0}

    monkeypatch.setattr(sweeps, "finetune", finetune)
    import dnal_core.report as rep
    monkeypatch.setattr(rep, "copy_metrics", lambda *a, **k: 0)
    r = get_recipe("vgg16-cifar", "smoke")
    out, runs = tmp_path / "out", tmp_path / "runs"
    grid = (1.5e-3, 2.5e-3, 5e-3, 1e-2)
    old = [{"lambda": lam, "loss_form": r.search.loss_form, "macs": 1 / lam, "macs_reduction": lam * 1e3}
           for lam in grid]
    write_json(out / "sweep.json", {"rows": old})
    write_json(out / f"lam{ex.label(1e-2)}.json", {"top1": 2.0})  # finetuned in an earlier session
    chosen = ex.table1_search(r, None, runs, out, "cmd", grid=grid, max_extra=0, max_refine=0)
    assert chosen == list(grid)
    # no sweep search; the three unfinetuned lambdas searched again (no run folder), then finetuned
    assert [c for c in calls if c[0] == "search"] == [("search", lam) for lam in (5e-3, 2.5e-3, 1.5e-3)]
    assert [c for c in calls if c[0] == "finetune"] == [("finetune", lam) for lam in (5e-3, 2.5e-3, 1.5e-3)]
    assert read_json(out / f"lam{ex.label(1e-2)}.json") == {"top1": 2.0}
    assert [row["lambda"] for row in read_json(out / "sweep.json")["rows"]] == list(grid)


def test_figure_lambda_keeps_the_lambda_a_figure_used(tmp_path):
    from dnal_core.experiments import figure_lambda
    from dnal_core.io import write_json

    t1, fig = tmp_path / "t1", tmp_path / "fig"
    with pytest.raises(ValueError, match="run table1 first"):
        figure_lambda(fig, t1)
    assert figure_lambda(fig, t1, 1e-3) == 1e-3
    write_json(t1 / "sweep.json", {"rows": [{"lambda": 1e-3, "macs_reduction": 1.7},
                                            {"lambda": 3e-3, "macs_reduction": 3.5}]})
    write_json(t1 / "chosen.json", {"lambdas": [1e-3, 3e-3]})
    assert figure_lambda(fig, t1) == 3e-3  # nearest 2.5x
    write_json(fig / "vgg16-cifar_joint.json", {"lam": 1e-3})
    assert figure_lambda(fig, t1) == 1e-3  # the figure's own results win
    write_json(fig / "vgg16-cifar_sequential.json", {"lam": 3e-3})
    with pytest.raises(ValueError, match="mixes results"):
        figure_lambda(fig, t1)


def test_calibration_sweeps_the_other_loss_form(tmp_path, monkeypatch):
    """The delta-free form's sweep searches with that form, from Table I's weight stage (no
    weight stage of its own), into its own run folders and out/sweep_code.json; extended like
    Table I's sweep; rows already there are not searched again; read_sweep shows both forms."""
    import dnal_core.experiments as ex
    import dnal_core.experiments.sweeps as sweeps
    from dnal_core.io import read_json, write_json
    from dnal_core.report_cpu import read_sweep

    seen = []

    def search(recipe, data, runs, lam, device="auto", prefix=""):
        seen.append((recipe.search.loss_form, prefix, lam))
        return {"lambda": lam, "loss_form": recipe.search.loss_form, "macs_reduction": lam * 100}

    monkeypatch.setattr(sweeps, "search", search)
    r = get_recipe("vgg16-cifar", "smoke")
    out = tmp_path / "out"
    write_json(out / "sweep.json", {"rows": [{"lambda": 1e-3, "loss_form": "paper", "macs_reduction": 2.0}]})
    rows = ex.calibration(r, None, tmp_path / "runs", out, "cmd", grid=(1e-2, 3e-2), max_extra=1, max_refine=0)
    # 1.0x and 3.0x: no row near 10x, so one extension (3 x 3e-2), then the extension budget is spent
    assert seen == [("code", "code-", 1e-2), ("code", "code-", 3e-2), ("code", "code-", 9e-2)]
    assert [row["lambda"] for row in read_json(out / "sweep_code.json")["rows"]] == [1e-2, 3e-2, 9e-2] \
        == [row["lambda"] for row in rows]
    seen.clear()
    ex.calibration(r, None, tmp_path / "runs", out, "cmd", grid=(1e-2, 3e-2), max_extra=1, max_refine=0)
    assert seen == []  # all kept
    # refined like Table I's: 5x, the target farthest from any row, lies in the jump 3x -> 9x
    ex.calibration(r, None, tmp_path / "runs", out, "cmd", grid=(1e-2, 3e-2), max_extra=1, max_refine=1)
    assert seen == [("code", "code-", 5.2e-2)]
    both = read_sweep(out)
    assert sorted(both["loss_form"].unique()) == ["code", "paper"] and len(both) == 5


def test_two_controls_processes_share_the_work(tmp_path, monkeypatch):
    """A lambda claimed by another live process is left to it (the next one is trained); a
    claim whose process has ended is taken over; this process's own claim holds."""
    import subprocess
    import sys

    import dnal_core.experiments as ex
    import dnal_core.experiments.controls as controls
    from dnal_core.io import write_json

    out, runs = tmp_path / "out", tmp_path / "runs"
    write_json(out / "controls" / "dense.json", {"top1": 80.0})
    write_json(out / "sweep.json", {"rows": [{"lambda": lam, "macs": 5e6} for lam in (1e-3, 3e-3)]})
    write_json(out / "chosen.json", {"lambdas": [1e-3, 3e-3]})
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        runs.mkdir()
        (runs / "uniform_lam3e-3.claim").write_text(str(other.pid))  # a live worker trains 3e-3
        trained = []

        def control(recipe, data, runs_, w, name, device="auto"):
            trained.append(name)
            return {"name": name, "macs": 5e6, "top1": 70.0}

        monkeypatch.setattr(controls, "control", control)
        ex.table1_controls(get_recipe("vgg16-cifar", "smoke"), None, runs, out, "cmd", poll=0.01)
        assert trained == ["uniform_lam1e-3"]  # 3e-3 left to the other worker, then nothing to do
        assert not (out / "controls" / "uniform_lam3e-3.json").exists()
    finally:
        other.kill()
        other.wait()
    assert ex.claim(runs / "uniform_lam3e-3")  # its process ended: the claim is taken over
    assert ex.claim(runs / "uniform_lam3e-3")  # and this process's own claim holds


def test_budget_runs_land_on_their_targets(cifar_dir, tmp_path):
    """The budget chapter's runs: from Table I's weight stage (trained there when missing), the
    architecture stage steered to a MACs fraction, then finetuned; the result records the
    budget and lands within [0.90, 1.03] x target."""
    import dnal_core.experiments as ex
    from dnal_core.io import read_json
    from dnal_core.recipes import override

    r = override(get_recipe("vgg16-cifar", "smoke"), {"width_mult": 0.125, "train_per_class": 20,
                                                       "test_per_class": 5, "weights.epochs": 1,
                                                       "arch.epochs": 1, "finetune.epochs": 1})
    out = tmp_path / "out"
    ex.budget_runs(r, cifar_dir, tmp_path / "t1", tmp_path / "runs", out, "cmd", device="cpu", targets=(0.5,))
    assert (tmp_path / "t1" / "weights" / "weights.pt").is_file()
    row = read_json(out / "expected-macs_macs0.5.json")
    assert 0.90 <= row["macs"] / (0.5 * row["baseline_macs"]) <= 1.03
    assert row["budget"]["kind"] == "macs" and row["budget"]["reached"] == row["macs"] and row["target"] == 0.5
    assert (out / "expected-macs_macs0.5.jsonl").read_text().count('"stage": "arch"') == 1
    # run again: the finished run is reused, and its lines keep the commit it was trained at
    import json
    final = tmp_path / "runs" / "expected-macs_macs0.5" / "final.json"
    final.write_text(json.dumps({**json.loads(final.read_text()), "git": "0123abc"}))
    ex.budget_runs(r, cifar_dir, tmp_path / "t1", tmp_path / "runs", out, "cmd", device="cpu", targets=(0.5,))
    lines = [json.loads(x) for x in (out / "expected-macs_macs0.5.jsonl").read_text().splitlines()]
    assert {x["git"] for x in lines} == {"0123abc"} == {read_json(out / "expected-macs_macs0.5.json")["git"]}


def test_a_second_process_waits_for_the_weight_stage_another_trains(tmp_path, monkeypatch):
    """weights(): while another live process holds the weight stage's claim, this one trains
    nothing and waits for weights.pt; a dead process's claim would be taken over."""
    import subprocess
    import sys
    import threading

    import dnal_core.train as train_pkg
    from dnal_core.experiments import weights
    from dnal_core.recipes import get_recipe

    def refuse(*a, **k):
        raise AssertionError("trained although another process holds the claim")

    monkeypatch.setattr(train_pkg, "run_pipeline", refuse)
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        folder = tmp_path / "weights"
        folder.mkdir()
        (tmp_path / "weights.claim").write_text(str(other.pid))
        done = threading.Timer(0.3, lambda: (folder / "weights.pt").write_bytes(b"x"))
        done.start()
        path = weights(get_recipe("vgg16-cifar", "smoke"), "/nonexistent", tmp_path, "cpu", poll=0.05)
        assert path == folder / "weights.pt" and path.read_bytes() == b"x"
    finally:
        other.kill()


def test_table2_trains_resnet20_at_the_cpu_profile_and_refuses_bad_data(tmp_path, monkeypatch, capsys):
    """``table2``: Table I's search and controls on Table II's network (ResNet20 at the cpu
    profile, its lambdas chosen near 1.5x, 2.5x and 4x); a data folder that is not CIFAR-10 is
    one line and exit code 2, before anything trains."""
    from dnal_core.experiments import TABLE2_TARGETS, cli, model_for

    assert model_for("table2", "cpu") == "resnet20-cifar" and model_for("table2", "paper") == "resnet56-cifar"
    assert model_for("table1", "cpu") == "vgg16-cifar"
    seen = {}
    monkeypatch.setattr(cli, "table1_search", lambda recipe, data, runs, out, command, device, **kw:
                        seen.update(recipe=recipe, out=out, **kw))
    monkeypatch.setattr(cli, "table1_controls", lambda *a, **kw: seen.update(controls=True))
    assert cli.main(["table2", "--part", "search", "--data", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert capsys.readouterr().err.count("\n") == 1 and not seen  # an empty folder: no CIFAR-10
    (tmp_path / "train").mkdir()
    assert cli.main(["table2", "--part", "search", "--data", str(tmp_path), "--out", str(tmp_path / "o")]) == 0
    assert seen["recipe"].model == "resnet20-cifar" and seen["recipe"].width_mult == 1.0
    assert seen["targets"] == TABLE2_TARGETS == (1.5, 2.5, 4.0)
    assert cli.main(["table2", "--part", "controls", "--data", str(tmp_path), "--out", str(tmp_path / "o")]) == 0
    assert seen["controls"]
    with pytest.raises(SystemExit) as e:
        cli.main(["table2", "--part", "calibration", "--data", str(tmp_path)])
    assert e.value.code == 2
