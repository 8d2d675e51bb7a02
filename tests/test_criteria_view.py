"""dnal_core.criteria_view: groups of rows, DNAL against uniform width within a group, the width
trend and the seeds' spread."""
import math

import pytest

from dnal_core.criteria_view import (against_uniform, base_rows, dense_macs, group, seed_summary, seed_table,
                                     width_trend)


def _row(method, source, macs, top1, width=0.25, seed=0):
    return {"method": method, "source": source, "macs": macs, "top1": top1, "width_mult": width, "seed": seed}


def _rows():
    d4, d8 = dense_macs(0.25), dense_macs(0.125)
    return [
        _row("dnal-eq4", "table1/lam1", d4 / 2.4, 80.0), _row("uniform", "table1/uniform_lam1", d4 / 2.4, 81.0),
        _row("dense", "table1/dense", d4, 83.0),
        # another width: its uniform control must not be compared with the base group's
        _row("dnal-eq4", "w0.125-seed0/lam1", d8 / 2.4, 70.0, 0.125),
        _row("uniform", "w0.125-seed0/uniform_lam1", d8 / 2.4, 71.5, 0.125),
        _row("dnal-eq4", "w0.25-seed1/lam1", d4 / 2.36, 80.6, seed=1),
        _row("uniform", "w0.25-seed1/uniform_lam1", d4 / 2.36, 80.0, seed=1),
    ]


def test_groups_keep_each_weight_stage_apart():
    rows = _rows()
    assert [group(r) for r in rows][:4] == ["base", "base", "base", "w0.125-seed0"]
    assert len(base_rows(rows)) == 3
    t = against_uniform(rows).set_index("network")
    assert t.loc["table1/lam1", "vs_uniform"] == pytest.approx(-1.0)
    assert t.loc["w0.125-seed0/lam1", "vs_uniform"] == pytest.approx(-1.5)
    assert t.loc["w0.125-seed0/lam1", "reduction"] == pytest.approx(2.4)


def test_width_trend_takes_the_network_nearest_each_reduction():
    t = width_trend(_rows(), reductions=(2.4, 4.0))
    assert sorted(t["width"]) == [0.125, 0.25] and set(t["target"]) == {2.4}  # nothing near 4x


def _eq4_vs_uniform(rows):
    """seed_summary's line eq. 4 - uniform width at 2.36x (the seeds' own controls)."""
    s = seed_summary(seed_table(rows, reductions=(2.36,))).set_index("what")
    return s.loc["eq. 4 - uniform width"]


def test_seed_spread_says_one_seed_or_within_noise():
    rows = _rows()
    one = _eq4_vs_uniform([r for r in rows if r["seed"] == 0])
    assert one["verdict"] == "one seed" and math.isnan(one["sd"])
    two = _eq4_vs_uniform(rows)  # -1.0 and +0.6: mean -0.2, sd 1.13
    assert two["n"] == 2 and two["verdict"].startswith("within noise")
    apart = rows + [_row("dnal-eq4", "w0.25-seed2/lam1", dense_macs(0.25) / 2.4, 77.0, seed=2),
                    _row("uniform", "w0.25-seed2/uniform_lam1", dense_macs(0.25) / 2.4, 81.0, seed=2)]
    apart[5], apart[6] = ({**apart[5], "top1": 79.2}, apart[6])  # seed 1: -0.8
    three = _eq4_vs_uniform(apart)  # -1.0, -0.8, -4.0
    assert three["n"] == 3 and three["verdict"].startswith("within noise")
    tight = [r for r in apart if r["seed"] != 2] + [
        _row("dnal-eq4", "w0.25-seed2/lam1", dense_macs(0.25) / 2.4, 80.1, seed=2),
        _row("uniform", "w0.25-seed2/uniform_lam1", dense_macs(0.25) / 2.4, 81.0, seed=2)]
    assert _eq4_vs_uniform(tight)["verdict"] == "uniform width above"  # -1.0, -0.8, -0.9


def test_seed_table_pairs_each_seed_with_its_own_controls():
    """seed_table: per seed, eq. 4's network nearest the reduction, uniform width of its own
    weight stage and the classic criterion pruned to its MACs (same source); seed_summary: the
    means, spreads and the paired verdicts, NaN-free where a method has not run."""
    d4 = dense_macs(0.25)
    rows = _rows() + [_row("l1-layer", "table1/lam1", d4 / 2.4 * 1.01, 79.0),
                      _row("l1-layer", "w0.25-seed1/lam1", d4 / 2.36, 79.59, seed=1),
                      _row("dnal-eq4", "w0.25-seed2/lam1", d4 / 2.4, 80.2, seed=2),
                      _row("uniform", "w0.25-seed2/uniform_lam1", d4 / 2.4, 81.4, seed=2)]
    t = seed_table(rows, reductions=(2.36, 4.0))
    assert list(t["seed"]) == [0, 1, 2] and set(t["reduction"]) == {2.36}  # nothing near 4x
    assert list(t["uniform"]) == [81.0, 80.0, 81.4] and list(t["l1-layer"])[:2] == [79.0, 79.59]
    assert math.isnan(list(t["l1-layer"])[2])
    s = seed_summary(t).set_index("what")
    assert s.loc["eq. 4 - uniform width", "n"] == 3
    assert s.loc["eq. 4 - uniform width", "mean"] == pytest.approx((-1.0 + 0.6 - 1.2) / 3)
    # -1.0, +0.6, -1.2: the 95% interval (t, 2 degrees of freedom) holds 0
    assert s.loc["eq. 4 - uniform width", "verdict"] == "within noise (eq. 4 above in 1 of 3 seeds)"
    assert s.loc["L1 per layer - uniform width", "n"] == 2  # seed 2 has no l1 row
    assert s.loc["L1 per layer - uniform width", "verdict"] == \
        "within noise (L1 per layer above in 0 of 2 seeds)"  # -2.0, -0.41
    assert s.loc["eq. 4 - L1 per layer", "mean"] == pytest.approx(1.005)  # +1.0, +1.01: tight
    assert s.loc["eq. 4 - L1 per layer", "verdict"] == "eq. 4 above"
    assert s.loc["uniform width, top-1", "mean"] == pytest.approx((81.0 + 80.0 + 81.4) / 3)


def test_a_network_stands_for_a_reduction_within_the_sweeps_factor():
    """nearest: the network a variant chose for a target (1.92x for 2.4x: within 1.3, the
    sweep's REFINE_TOL) stands for it; one at 1.8x does not; of two, the nearer."""
    import pandas as pd

    from dnal_core.criteria_view import NEAR, nearest
    from dnal_core.experiments import REFINE_TOL

    assert NEAR == REFINE_TOL
    t = pd.DataFrame({"width": [0.5, 0.5, 0.25, 0.25], "seed": 0, "method": "dnal-eq4",
                      "reduction": [1.92, 3.41, 1.8, 2.36]})
    got = nearest(t, 2.4)
    assert sorted(got["reduction"]) == [1.92, 2.36]
    assert nearest(t[t["width"] == 0.25].iloc[:1], 2.4).empty
