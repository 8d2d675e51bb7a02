"""dnal_core.criteria: the learned architectures trained from scratch, and the rows file."""
import json
import threading

import pytest

import dnal_core as dn
from dnal_core.criteria import add_row, collect, learned_architectures, read_rows, scratch, scratch_recipe
from dnal_core.io import write_json
from dnal_core.recipes import get_recipe, override


def _fake_results(tmp_path, width_mult=0.125):
    """A Table I results folder with one finetuned lambda and a budget folder with one target,
    as the experiments write them (final.json fields, the arch file)."""
    t1, bud = tmp_path / "t1", tmp_path / "budget"
    base = dn.build("vgg16-cifar", width_mult=width_mult)
    small = dn.build("vgg16-cifar", width_mult=width_mult, widths=[w // 2 for w in base.default_widths])
    tiny = dn.build("vgg16-cifar", width_mult=width_mult, widths=[max(1, w // 4) for w in base.default_widths])
    prov = {"date": "2026-12-02", "device": "cpu (1 thread)", "command": "cmd", "git": "abc", "torch": "2.14.1"}
    write_json(t1 / "lam1e-3.json", {**dn.count(small), "top1": 50.0, "top5": 90.0, "widths": small.widths,
                                     "config": {"seed": 0}, "seconds": {"weights": 1.0, "arch": 2.0}, **prov})
    write_json(t1 / "arch" / "lam1e-3.json", small.arch())
    write_json(t1 / "controls" / "dense.json", {"name": "dense", "width_mult": width_mult, "widths": base.widths,
                                                **dn.count(base), "top1": 60.0, "epochs": 3, **prov})
    write_json(bud / "expected-macs_macs0.1.json", {"model": "vgg16-cifar", "widths": tiny.widths,
                                                    **dn.count(tiny), "top1": 30.0, **prov})
    return t1, bud, small, tiny


PROV = {"date": "today", "device": "cpu", "cpu_kind": "k", "command": "cmd", "git": "g", "torch": "t"}


def _tiny_recipe(arch_epochs=0):
    """A 1/8-width VGG16 on 10 images a class, one epoch a stage."""
    return override(get_recipe("vgg16-cifar", "smoke"), {"width_mult": 0.125, "train_per_class": 10,
                                                          "test_per_class": 5, "weights.epochs": 1,
                                                          "arch.epochs": arch_epochs, "finetune.epochs": 1})


def test_learned_architectures_smallest_first(tmp_path):
    t1, bud, small, tiny = _fake_results(tmp_path)
    items = learned_architectures(t1, bud)
    assert [(i["source"], i["method"]) for i in items] == [("budget/expected-macs_macs0.1", "dnal-cost"),
                                                           ("table1/lam1e-3", "dnal-eq4")]
    assert items[1]["arch"]["widths"] == small.widths


def test_scratch_recipe_is_the_uniform_controls_with_the_learned_widths():
    r = get_recipe("vgg16-cifar", "cpu")
    s = scratch_recipe(r, {"widths": [3] * 13})
    assert s.weights.epochs == 30 and s.weights.schedule == "cosine" and s.widths == (3,) * 13
    assert (s.width_mult, s.weights.lr, s.seed) == (r.width_mult, r.weights.lr, r.seed)


def test_scratch_trains_each_learned_network_once(cifar_dir, tmp_path):
    """Every learned architecture trained from scratch into one row each, with the finetuned
    network's MACs exactly; a second call trains nothing."""
    t1, bud, small, tiny = _fake_results(tmp_path)
    r = _tiny_recipe()
    out, runs = tmp_path / "out", tmp_path / "runs"
    assert scratch(r, cifar_dir, runs, out, t1, bud, PROV, device="cpu") == 2
    rows = read_rows(out / "rows.jsonl")
    assert [(x["method"], x["source"], x["macs"], x["epochs"]) for x in rows] == [
        ("dnal-scratch", "budget/expected-macs_macs0.1", dn.count(tiny)["macs"], 2),
        ("dnal-scratch", "table1/lam1e-3", dn.count(small)["macs"], 2)]
    assert all(0 <= x["top1"] <= 100 and x["cpu_kind"] == "k" for x in rows)
    assert rows[1]["finetuned_top1"] == 50.0
    assert scratch(r, cifar_dir, runs, out, t1, bud, PROV, device="cpu") == 0


def test_collect_keeps_each_results_provenance(tmp_path):
    t1, bud, small, _ = _fake_results(tmp_path)
    r = override(get_recipe("vgg16-cifar", "cpu"), {"width_mult": 0.125})
    assert collect(r, t1, bud, tmp_path / "out") == 3
    rows = {x["source"]: x for x in read_rows(tmp_path / "out" / "rows.jsonl")}
    assert rows["table1/lam1e-3"]["method"] == "dnal-eq4" and rows["table1/lam1e-3"]["epochs"] == 30
    assert rows["table1/lam1e-3"]["seconds"] == 3.0 and rows["table1/lam1e-3"]["date"] == "2026-12-02"
    assert rows["table1/dense"]["method"] == "dense" and rows["budget/expected-macs_macs0.1"]["method"] == "dnal-cost"
    assert collect(r, t1, bud, tmp_path / "out") == 3  # again: the same rows replace themselves
    assert len(read_rows(tmp_path / "out" / "rows.jsonl")) == 3


def test_rows_from_two_writers_are_all_kept(tmp_path):
    path = tmp_path / "rows.jsonl"

    def write(k):
        for i in range(20):
            add_row(path, {"method": f"m{k}", "source": f"s{i}", "seed": 0})

    threads = [threading.Thread(target=write, args=(k,)) for k in range(2)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    rows = read_rows(path)
    assert len(rows) == 40 and all(json.dumps(r) for r in rows)


def test_classic_criteria_prune_to_the_macs_and_finetune(cifar_dir, tmp_path):
    """From a weight stage (trained here, tiny), a classic criterion closes gates until the
    pruned network has the Table I network's MACs within 2%, and the finetune stage runs as after
    a search: one row per (criterion, ranking, target); a second call trains nothing."""
    from dnal_core.criteria import classic

    t1, _, small, _ = _fake_results(tmp_path)
    r = _tiny_recipe(arch_epochs=1)
    out, runs = tmp_path / "out", tmp_path / "runs"
    n = classic(r, cifar_dir, runs, out, tmp_path / "t1runs", t1, PROV, device="cpu",
                methods=("l1-layer", "l1-global", "taylor-layer", "taylor-global"))
    assert n == 4 and (tmp_path / "t1runs" / "weights" / "weights.pt").is_file()
    rows = read_rows(out / "rows.jsonl")
    assert sorted(x["method"] for x in rows) == ["l1-global", "l1-layer", "taylor-global", "taylor-layer"]
    target = dn.count(small)["macs"]
    for x in rows:
        assert abs(x["macs"] / target - 1) <= 0.02 and x["source"] == "table1/lam1e-3", x
        assert 0 <= x["top1"] <= 100 and x["epochs"] == 2
    assert classic(r, cifar_dir, runs, out, tmp_path / "t1runs", t1, PROV, device="cpu",
                   methods=("l1-layer", "l1-global", "taylor-layer", "taylor-global")) == 0


def test_keep_masks_close_the_lowest_scores():
    import torch

    from dnal_core.prune.classic import keep_masks

    scores = [torch.tensor([3.0, 1.0, 2.0, 4.0]), torch.tensor([0.5, 0.1])]
    assert [k.tolist() for k in keep_masks(scores, False, 0.5)] == [[True, False, False, True], [True, False]]
    # one ranking: the three lowest are 0.1, 0.5 (both of layer 2, which keeps one) and 1.0
    assert [k.tolist() for k in keep_masks(scores, True, 3)] == [[True, False, False, True], [True, False]]
    assert [k.tolist() for k in keep_masks(scores, True, 0)] == [[True] * 4, [True] * 2]
    # spread: layers of one width lose their next channel at different amounts, not together
    same = [torch.tensor([4.0, 3.0, 2.0, 1.0]), torch.tensor([4.0, 3.0, 2.0, 1.0])]
    assert [int(k.sum()) for k in keep_masks(same, False, 0.4)] == [3, 3]
    assert [int(k.sum()) for k in keep_masks(same, False, 0.4, spread=True)] == [3, 2]
    assert [int(k.sum()) for k in keep_masks(same, False, 0.5, spread=True)] == [2, 2]


def test_per_layer_selection_spreads_its_rounding_where_the_steps_skip_the_target():
    """Quarter-width VGG16: one per-layer share drops a channel from all six 128-channel layers
    at once; a MACs target between two such steps is reached with the rounding spread."""
    import torch

    import dnal_core as dn
    from dnal_core.prune.classic import keep_masks, select_to_macs

    model = dn.build("vgg16-cifar", width_mult=0.25)
    torch.manual_seed(0)
    scores = [torch.rand(w) for w in model.widths]
    plain = sorted({dn.count(dn.build_from_arch({**model.arch(), "widths": [int(k.sum()) for k in
                    keep_masks(scores, False, a / 512)], "gated": False}))["macs"] for a in range(512)})
    gap = max(zip(plain, plain[1:]), key=lambda p: p[1] / p[0])
    target = (gap[0] * gap[1]) ** 0.5
    assert gap[1] / gap[0] > 1.04  # no plain share lands within 2% of the target
    sel = select_to_macs(model, "random", target, False)
    assert sel.get("spread") and abs(sel["macs"] / target - 1) <= 0.02


def test_classic_cli_refuses_an_unknown_method_or_target_in_one_line(capsys):
    """criteria --part classic with a method or Table I network that does not exist: exit 2 and
    one line naming the valid choices, before anything trains."""
    from dnal_core.experiments.cli import main

    assert main(["criteria", "--part", "classic", "--data", "/nonexistent", "--methods", "l2-layer"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "'l2-layer'" in err and "l1-global" in err
    assert main(["criteria", "--part", "classic", "--data", "/nonexistent", "--targets", "lam9e-9"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "'lam9e-9'" in err and "lam3e-3" in err
    with pytest.raises(SystemExit) as e:
        main(["criteria", "--part", "scratch", "--data", "/nonexistent", "--methods", "l1-layer"])
    assert e.value.code == 2


def test_variant_is_table1_at_another_width_and_seed(cifar_dir, tmp_path):
    """criteria.variant: its own weight stage, the eq. 4 lambda closest to each reduction
    finetuned, the uniform-width control and a classic criterion at that network's MACs, the
    cost-aware budget; every network a row named after the variant, with its width and seed.
    A second call trains nothing and writes the same rows."""
    from dnal_core.criteria import variant

    r = _tiny_recipe(arch_epochs=1)
    out, runs = tmp_path / "out", tmp_path / "runs"
    kw = dict(device="cpu", methods=("l1-global",), grid=(1e-3,), max_extra=0, max_refine=0)
    n = variant(r, cifar_dir, runs, out, 0.0625, 3, (2.0,), "cmd", **kw)
    rows = read_rows(out / "rows.jsonl")
    by = {x["method"]: x for x in rows}
    assert n == 3 and sorted(by) == ["dnal-cost", "dnal-eq4", "l1-global", "uniform"], sorted(by)
    assert all(x["source"].startswith("w0.0625-seed3/") and x["seed"] == 3 for x in rows), rows
    assert by["dnal-eq4"]["width_mult"] == by["l1-global"]["width_mult"] == 0.0625
    for m in ("uniform", "l1-global"):  # at the learned network's MACs
        assert abs(by[m]["macs"] / by["dnal-eq4"]["macs"] - 1) <= 0.02, m
    assert (runs / "w0.0625-seed3" / "weights" / "weights.pt").is_file()
    stamp = sorted((p, p.stat().st_mtime) for p in runs.rglob("*.pt"))
    assert variant(r, cifar_dir, runs, out, 0.0625, 3, (2.0,), "cmd", **kw) == n
    assert len(read_rows(out / "rows.jsonl")) == len(rows)
    assert sorted((p, p.stat().st_mtime) for p in runs.rglob("*.pt")) == stamp


def test_variant_without_budget_leaves_out_the_cost_aware_search(cifar_dir, tmp_path):
    """budget=False (the CLI's --no-budget, used by the seeds): eq. 4 and uniform width only,
    no cost-aware search and no row for it."""
    from dnal_core.criteria import variant

    r = _tiny_recipe(arch_epochs=1)
    out, runs = tmp_path / "out", tmp_path / "runs"
    kw = dict(device="cpu", grid=(1e-3,), max_extra=0, max_refine=0, budget=False)
    variant(r, cifar_dir, runs, out, 0.0625, 4, (2.0,), "cmd", **kw)
    assert sorted(x["method"] for x in read_rows(out / "rows.jsonl")) == ["dnal-eq4", "uniform"]
    assert not list((out / "w0.0625-seed4").glob("expected-macs*"))


def test_variant_uniform_trains_the_controls_without_the_search(cifar_dir, tmp_path):
    """variant_uniform (criteria --part uniform): the uniform-width networks at the reductions of
    the variant's dense MACs (within 2%), and the dense one when asked, with no weight stage and
    no search; rows named after the variant; a second call trains nothing."""
    from dnal_core.criteria import variant_uniform
    from dnal_core.criteria_view import dense_macs

    r = _tiny_recipe(arch_epochs=1)
    out, runs = tmp_path / "out", tmp_path / "runs"
    n = variant_uniform(r, cifar_dir, runs, out, 0.0625, 5, (2.0, 3.0), "cmd", device="cpu", dense=True)
    rows = read_rows(out / "rows.jsonl")
    assert n == 3 and sorted(x["method"] for x in rows) == ["dense", "uniform", "uniform"]
    assert all(x["source"].startswith("w0.0625-seed5/") and x["seed"] == 5 for x in rows)
    full = dense_macs(0.0625)
    for x in (2.0, 3.0):
        got = next(r["macs"] for r in rows if r["source"] == f"w0.0625-seed5/uniform_x{x:g}")
        assert abs(got / (full / x) - 1) <= 0.02, (x, got)
    assert not (runs / "w0.0625-seed5" / "weights").exists() and not (out / "w0.0625-seed5" / "sweep.json").exists()
    stamp = sorted((p, p.stat().st_mtime) for p in runs.rglob("*.pt"))
    assert variant_uniform(r, cifar_dir, runs, out, 0.0625, 5, (2.0, 3.0), "cmd", device="cpu", dense=True) == n
    assert sorted((p, p.stat().st_mtime) for p in runs.rglob("*.pt")) == stamp


def test_uniform_part_needs_a_width_and_refuses_search_flags():
    from dnal_core.experiments.cli import main

    for argv in (["--width-mult", "0.5", "--grid", "1e-3"], ["--width-mult", "0.5", "--no-budget"], []):
        with pytest.raises(SystemExit) as e:
            main(["criteria", "--part", "uniform", "--data", "/nonexistent", *argv])
        assert e.value.code == 2
