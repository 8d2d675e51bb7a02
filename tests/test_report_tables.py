"""dnal_core.report_tables: result tables set for readers (no index, units, formats)."""

import pandas as pd
import pytest

from dnal_core.report_tables import COLUMNS, FORMATS, Col, ReaderTable, reader_table

ROWS = pd.DataFrame({
    "lambda": ["1e-4", "1e-3"],
    "macs_m": [61.234, 12.5],
    "macs_x": [2.3567, 11.0],
    "top1": [83.04, 73.88],
    "uniform_top1": [80.1, float("nan")],
    "dnal_minus_uniform": [2.94, None],
    "unused": [1, 2],
}, index=[4, 7])
SPEC = {
    "lambda": "lambda",
    "macs_m": Col("MACs (M)", "millions"),
    "macs_x": Col("reduction", "x"),
    "top1": Col("top-1 (%)", "top1"),
    "uniform_top1": Col("uniform width top-1 (%)", "top1", missing="not run"),
    "dnal_minus_uniform": Col("vs uniform width (points)", "points"),
}


def test_values_formatted_for_the_reader():
    t = reader_table(ROWS, SPEC)
    assert isinstance(t, ReaderTable)
    assert list(t.data.columns) == ["lambda", "MACs (M)", "reduction", "top-1 (%)",
                                    "uniform width top-1 (%)", "vs uniform width (points)"]
    assert t.data["top-1 (%)"].tolist() == ["83.04", "73.88"]  # two decimals, never 3 digits
    assert t.data["reduction"].tolist() == ["2.36x", "11.00x"]
    assert t.data["MACs (M)"].tolist() == ["61.23", "12.50"]
    small = reader_table({"m": [15470.0, 0.23812, 0.014567]}, {"m": Col("M", "millions")})
    assert small.data["M"].tolist() == ["15,470.00", "0.238", "0.0146"]
    # a control never trained, and another missing value with the table's default
    assert t.data["uniform width top-1 (%)"].tolist() == ["80.10", "not run"]
    assert t.data["vs uniform width (points)"].tolist() == ["2.94", "-"]
    assert list(t.data.index) == [0, 1]


def test_text_has_no_index_and_no_nan():
    text = repr(reader_table(ROWS, SPEC))
    lines = text.splitlines()
    assert lines[0].split()[:3] == ["lambda", "MACs", "(M)"]  # the header comes first: no index
    assert lines[1].split()[0] == "1e-4" and lines[2].split()[0] == "1e-3"
    assert "NaN" not in text and "nan" not in text and "not run" in text


def test_html_has_no_index_and_is_deterministic():
    t = reader_table(ROWS, SPEC)
    html = t._repr_html_()
    assert html == reader_table(ROWS, SPEC).to_html()
    assert html.count("<th ") == len(SPEC)  # no index header cell
    assert html.count("<tr>") == 1 + len(ROWS)
    assert ">83.04<" in html and ">2.36x<" in html and ">not run<" in html and "NaN" not in html
    assert 'class="num">83.04' in html and 'class="text">1e-4' in html
    assert "vs uniform width (points)" in html


def test_html_escapes_text():
    html = reader_table({"a": ["<b>&"]}, {"a": "name"}).to_html()
    assert "&lt;b&gt;&amp;" in html and "<b>" not in html


def test_format_patterns_and_callables():
    df = pd.DataFrame({"n": [1056, 4224], "v": [0.5, 0.25]})
    t = reader_table(df, {"n": Col("gates", "int"), "v": Col("share", lambda v: f"{100 * v:.0f}%")})
    assert t.data["gates"].tolist() == ["1,056", "4,224"]
    assert t.data["share"].tolist() == ["50%", "25%"]
    t = reader_table(df, {"v": Col("value", "{:.3f}")}, missing="n/a")
    assert t.data["value"].tolist() == ["0.500", "0.250"]
    assert set(FORMATS) >= {"top1", "points", "x", "millions", "int", "text"}


def test_lists_are_values_not_missing():
    t = reader_table({"w": [[8, 16], None]}, {"w": "widths"})
    assert t.data["widths"].tolist() == ["[8, 16]", "-"]


def test_bad_specs_are_refused():
    with pytest.raises(ValueError, match="lacks columns.*'top5'"):
        reader_table(ROWS, {"top5": Col("top-5 (%)", "top1")})
    with pytest.raises(ValueError, match="share a label"):
        reader_table(ROWS, {"top1": "x", "macs_m": "x"})


def test_empty_table():
    t = reader_table(ROWS.iloc[:0], SPEC)
    assert len(t.data) == 0 and t.to_html().count("<th ") == len(SPEC)
    assert repr(t).splitlines() == ["  ".join(t.data.columns), "(no rows)"]


def test_library_column_names_by_list():
    t = reader_table(ROWS, ["lambda", "macs_x", "top1", "uniform_top1", "dnal_minus_uniform"])
    assert list(t.data.columns) == ["lambda", "MACs reduction", "top-1 (%)", "uniform width top-1 (%)",
                                    "vs uniform width (points)"]
    assert t.data.iloc[1].tolist() == ["1e-3", "11.00x", "73.88", "not run", "not run"]
    t = reader_table(ROWS, {"lambda": None, "top1": Col("top-1 after finetuning (%)", "top1")})
    assert list(t.data.columns) == ["lambda", "top-1 after finetuning (%)"]
    with pytest.raises(ValueError, match="no reader's name for columns \\['unused'\\]"):
        reader_table(ROWS, ["lambda", "unused"])
    assert all(isinstance(c, Col) and c.label for c in COLUMNS.values())


def test_transposed_turns_columns_into_rows():
    t = reader_table(ROWS, ["lambda", "macs_x", "top1", "uniform_top1"]).transposed()
    assert list(t.data.columns) == ["lambda", "1e-4", "1e-3"]
    assert t.data["lambda"].tolist() == ["MACs reduction", "top-1 (%)", "uniform width top-1 (%)"]
    assert t.data["1e-3"].tolist() == ["11.00x", "73.88", "not run"]
    assert repr(t).splitlines()[0].split() == ["lambda", "1e-4", "1e-3"]
    assert t.to_html().count("<th ") == 3 and 'class="text">top-1 (%)' in t.to_html()


def test_library_tables_have_reader_names():
    """Every column report.ours_table and report.paper_vs_ours produce has a reader's name, and
    the Tables II-III comparison renders from paper_vs_ours' output."""
    from dnal_core import report
    from dnal_core.report_tables import BESIDE_PAPER

    finals = pd.DataFrame({"lambda": [1e-4], "macs": [3.3e6], "params": [2e4], "top1": [16.0],
                           "top5": [67.5], "baseline_macs": [7.9e6], "baseline_params": [5.4e4],
                           "baseline_top1": [21.0], "baseline_top5": [71.0]})
    ours, merged = report.beside_paper("II", finals)
    assert set(ours.columns) <= set(COLUMNS) and set(merged.columns) <= set(COLUMNS)
    t = reader_table(merged, BESIDE_PAPER)
    assert list(t.data.columns)[:2] == ["lambda", "paper: MACs reduction"]
    row = t.data[t.data["lambda"] == "1e-4"].iloc[0]
    assert row["ours: top-1 (%)"] == "16.00" and row["ours: top-1 drop (points)"] == "5.00"
    assert row["ours: MACs reduction"] == f"{7.9 / 3.3:.2f}x"
    assert "nan" not in repr(t).lower()
