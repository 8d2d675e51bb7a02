"""The delta schedule's SHAPE (issue #15, item 4): geometric growth, and each unit's per-epoch
values written out from its formula. A linear schedule from 1 to 1e4 has the same endpoints and
is monotone, so it passes endpoint tests; every test here fails on it (its midpoint is 5000.5,
not 100)."""
import math

import pytest

from dnal_core import DeltaSchedule
from dnal_core.cli import make_parser
from dnal_core.gate import SCHEDULE_UNITS
from dnal_core.recipes import SearchConfig, get_recipe, override


def per_epoch(sch, epochs, steps):
    """delta of every epoch, asserting it is constant within the epoch."""
    vals = []
    for k in range(epochs):
        within = [sch(k, s) for s in range(steps)]
        assert max(within) == min(within), (k, within)
        vals.append(within[0])
    return vals


def test_iteration_is_geometric_step_by_step():
    # 3 epochs x 3 steps: 9 steps, t = 0..8; the middle step t = 4 (epoch 1, step 1)
    sch = DeltaSchedule(epochs=3, steps_per_epoch=3, unit="iteration")
    vals = [sch(k, s) for k in range(3) for s in range(3)]
    assert vals[0] == pytest.approx(1.0) and vals[-1] == pytest.approx(1e4)
    assert sch(1, 1) == pytest.approx(100.0)  # geometric mean of 1 and 1e4 (linear: 5000.5)
    ratios = [b / a for a, b in zip(vals, vals[1:])]
    assert ratios == pytest.approx([10 ** 0.5] * 8)  # 1e4 ** (1/8): the same factor every step
    assert vals == pytest.approx([10 ** (4 * t / 8) for t in range(9)])


def test_iteration_other_start_and_end():
    sch = DeltaSchedule(epochs=2, steps_per_epoch=5, start=0.5, end=50.0, unit="iteration")
    assert [sch(k, s) for k in range(2) for s in range(5)] == pytest.approx(
        [0.5 * 100 ** (t / 9) for t in range(10)])
    assert sch(0, 4) * sch(1, 0) == pytest.approx(0.5 * 50.0)  # symmetric steps multiply to start*end


def test_epoch_paper_is_alg1():
    """Alg. 1 indexes delta by epoch with delta_1 = 1: 1 in the first epoch, 1e4 in the last,
    geometric in between (E = 5: one decade an epoch)."""
    sch = DeltaSchedule(epochs=5, steps_per_epoch=4, unit="epoch-paper")
    assert per_epoch(sch, 5, 4) == pytest.approx([1.0, 10.0, 100.0, 1e3, 1e4])
    sch = DeltaSchedule(epochs=20, steps_per_epoch=3, start=2.0, end=2e4, unit="epoch-paper")
    assert per_epoch(sch, 20, 3) == pytest.approx([2.0 * 1e4 ** (k / 19) for k in range(20)])


def test_epoch_code_is_the_authors_code():
    """The authors' code: 10^(4(k+1)/E), never 1 (E = 4: 10, 100, 1000, 1e4)."""
    for unit in ("epoch-code", "epoch"):  # "epoch": the name stored in older config files
        sch = DeltaSchedule(epochs=4, steps_per_epoch=3, unit=unit)
        assert per_epoch(sch, 4, 3) == pytest.approx([10.0, 100.0, 1e3, 1e4])
        sch = DeltaSchedule(epochs=20, steps_per_epoch=7, unit=unit)
        assert per_epoch(sch, 20, 7) == pytest.approx([10 ** (4 * (k + 1) / 20) for k in range(20)])
        assert min(per_epoch(sch, 20, 7)) > 1.5


def test_epoch_alias_equals_epoch_code_everywhere():
    a, b = (DeltaSchedule(epochs=6, steps_per_epoch=5, start=3.0, end=300.0, unit=u) for u in ("epoch", "epoch-code"))
    assert [a(k, s) for k in range(6) for s in range(5)] == [b(k, s) for k in range(6) for s in range(5)]


def test_units_differ_where_they_should():
    """Same stage, three forms: the paper's starts at 1, the code's one epoch ahead of it."""
    E, S = 10, 4
    paper, code, it = (DeltaSchedule(E, S, unit=u) for u in ("epoch-paper", "epoch-code", "iteration"))
    assert paper(0) == pytest.approx(1.0) and code(0) == pytest.approx(10 ** 0.4) and it(0, 0) == pytest.approx(1.0)
    assert paper(E - 1, S - 1) == code(E - 1, S - 1) == pytest.approx(1e4) == it(E - 1, S - 1)
    # in the log domain every form is a straight line: equal spacing per epoch
    for sch in (paper, code):
        logs = [math.log10(v) for v in per_epoch(sch, E, S)]
        assert [b - a for a, b in zip(logs, logs[1:])] == pytest.approx([logs[1] - logs[0]] * (E - 1))
    assert math.log10(code(1)) - math.log10(code(0)) == pytest.approx(0.4)
    assert math.log10(paper(1)) - math.log10(paper(0)) == pytest.approx(4 / 9)


def test_single_epoch_ends_at_end():
    assert DeltaSchedule(1, 3, unit="epoch-paper")(0, 0) == pytest.approx(1e4)
    assert DeltaSchedule(1, 3, unit="epoch-code")(0, 2) == pytest.approx(1e4)
    assert DeltaSchedule(1, 1, unit="iteration")(0, 0) == pytest.approx(1e4)


def test_bad_schedules_rejected():
    with pytest.raises(ValueError, match="valid: iteration, epoch-paper, epoch-code, epoch"):
        DeltaSchedule(2, 2, unit="paper")
    with pytest.raises(ValueError, match="finite end"):
        DeltaSchedule(2, 2, end=math.inf)
    with pytest.raises(ValueError, match="positive start"):
        DeltaSchedule(2, 2, start=0.0)


def test_recipe_and_cli_take_every_unit():
    assert set(SCHEDULE_UNITS) == {"iteration", "epoch-paper", "epoch-code", "epoch"}
    for unit in SCHEDULE_UNITS:
        r = override(get_recipe("vgg16-cifar", "smoke"), {"search.delta_unit": unit})
        assert r.search == SearchConfig(delta_unit=unit)
        args = make_parser().parse_args(["run", "vgg16-cifar", "--out", "x", "--delta-unit", unit])
        assert args.delta_unit == unit
