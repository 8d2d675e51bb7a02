"""Result tables set for readers: the one formatting step every chapter's table goes through.

    from dnal_core.report_tables import Col, reader_table
    reader_table(rows, ["lambda", "macs_m", "macs_x", "top1", "uniform_top1"])
    reader_table(rows, {"lambda": None, "top1": Col("top-1 after finetuning (%)", "top1")})

``reader_table(df, columns)`` keeps the columns the spec names (a list of the library's column
names, each set as ``COLUMNS`` says, or a mapping name -> ``Col``, a plain label or None for
``COLUMNS``' entry), in its order, under the spec's labels (human names with units), writes
every value as text with its column's format, and returns a ``ReaderTable``: shown without
the index, as HTML in the book and JupyterLab and as plain text in nbval and a terminal (both
deterministic, so stored outputs compare).

A column's format is a ``str.format`` pattern (``"{:.1f}"``), a callable, or one of ``FORMATS``:
``top1`` (two decimals, 83.04), ``points`` (two decimals, a difference in points), ``x`` (a
reduction, "2.36x"), ``millions`` (``millions``: 15,470.00, 13.96, 0.238), ``int`` (thousands
separated), ``text``. ``ReaderTable.transposed()`` turns a table with many columns into one row
per column (its first column's values as headers), for the page's width.
A missing value (None, NaN) is shown as the column's ``missing`` text ("-" unless told; a
control that was never trained says "not run").
"""
from __future__ import annotations

import html as _html
from dataclasses import dataclass
from typing import Callable, Mapping, Union


def millions(value) -> str:
    """MACs or parameters in millions: two decimals with thousands separated (15,470.00, 13.96)
    from 1 up, three significant digits below (0.238, 0.0146), so a small network's count
    keeps its digits."""
    return f"{value:,.2f}" if abs(value) >= 1 else f"{value:.3g}"


FORMATS: dict[str, str | Callable[[object], str]] = {
    "top1": "{:.2f}",  # accuracy in %, two decimals (83.04, 73.88)
    "points": "{:.2f}",  # a difference of accuracies, in points
    "x": "{:.2f}x",  # a reduction, baseline / row: "2.36x"
    "millions": millions,  # MACs or parameters in millions: 15,470.00, 13.96, 0.238
    "int": "{:,.0f}",  # counts: 1,056
    "text": "{}",
}

Format = Union[str, Callable[[object], str]]


@dataclass(frozen=True)
class Col:
    """One column as the reader sees it: ``label`` (the header, with its unit), ``fmt`` (a key
    of ``FORMATS``, a ``str.format`` pattern or a callable value -> text) and ``missing`` (the
    text shown for None/NaN; None: the table's default)."""
    label: str
    fmt: Format = "text"
    missing: str | None = None

    def render(self, value, missing: str) -> str:
        if _is_missing(value):
            return self.missing if self.missing is not None else missing
        fmt = FORMATS.get(self.fmt, self.fmt) if isinstance(self.fmt, str) else self.fmt
        return str(fmt(value)) if callable(fmt) else fmt.format(value)


def _is_missing(value) -> bool:
    import pandas as pd

    return pd.api.types.is_scalar(value) and bool(pd.isna(value))


# The columns dnal_core's tables carry (report.ours_table, report.paper_vs_ours,
# report_cpu.table1_rows, paper.paper_table), as the reader sees them.
COLUMNS: dict[str, Col] = {
    "lambda": Col("lambda"),
    "method": Col("method"),
    "macs_m": Col("MACs (M)", "millions"),
    "params_m": Col("params (M)", "millions"),
    "top1": Col("top-1 (%)", "top1"),
    "top5": Col("top-5 (%)", "top1"),
    "drop1": Col("top-1 drop (points)", "points"),
    "drop5": Col("top-5 drop (points)", "points"),
    "drop": Col("drop from dense (points)", "points"),
    "macs_x": Col("MACs reduction", "x"),
    "params_x": Col("params reduction", "x"),
    "paper_macs_m": Col("paper: MACs (M)", "millions"),
    "ours_macs_m": Col("ours: MACs (M)", "millions"),
    "paper_params_m": Col("paper: params (M)", "millions"),
    "ours_params_m": Col("ours: params (M)", "millions"),
    "paper_macs_x": Col("paper: MACs reduction", "x"),
    "ours_macs_x": Col("ours: MACs reduction", "x"),
    "paper_top1": Col("paper: top-1 (%)", "top1"),
    "ours_top1": Col("ours: top-1 (%)", "top1"),
    "paper_top5": Col("paper: top-5 (%)", "top1"),
    "ours_top5": Col("ours: top-5 (%)", "top1"),
    "uniform_top1": Col("uniform width top-1 (%)", "top1", missing="not run"),
    "uniform_macs_m": Col("uniform width MACs (M)", "millions", missing="not run"),
    "dnal_minus_uniform": Col("vs uniform width (points)", "points", missing="not run"),
    "search_cost_epochs": Col("search cost (epochs)"),  # text: "90+30+20"
}

# report.beside_paper's comparison in the columns that fit the page (Tables II and III).
BESIDE_PAPER: dict[str, Col | None] = {
    "lambda": None,
    "paper_macs_x": None,
    "ours_macs_x": None,
    "paper_top1": None,
    "ours_top1": None,
    "drop1": Col("ours: top-1 drop (points)", "points"),
}

# prune.stream.stream_gap_table's columns.
STREAM_GAP: dict[str, Col] = {
    "width": Col("width multiplier", "{:g}"),
    "dense_macs_m": Col("dense MACs (M)", "millions"),
    "ours_macs_m": Col("ours: pruned MACs (M)", "millions"),
    "authors_macs_m": Col("authors' count (M)", "millions"),
    "ratio": Col("ours / authors'", "x"),
}


class ReaderTable:
    """A formatted table (``data``: a DataFrame of strings, the reader's headers) that shows
    itself without an index: ``_repr_html_`` for the book, ``__repr__`` for plain text."""

    def __init__(self, data, align: Mapping[str, str]):
        self.data = data
        self.align = dict(align)

    def to_string(self) -> str:
        if self.data.empty:  # pandas would print "Empty DataFrame ... Index: []"
            return "  ".join(self.data.columns) + "\n(no rows)"
        return self.data.to_string(index=False)

    def __repr__(self) -> str:
        return self.to_string()

    def to_html(self) -> str:
        def cell(tag, text, col):
            return f'<{tag} class="{self.align[col]}">{_html.escape(str(text))}</{tag}>'

        head = "".join(cell("th", c, c) for c in self.data.columns)
        body = "".join("<tr>" + "".join(cell("td", v, c) for c, v in zip(self.data.columns, row)) + "</tr>"
                       for row in self.data.itertuples(index=False))
        return (f'<div class="dnal-table"><table class="dataframe dnal-table">'
                f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>")

    def _repr_html_(self) -> str:
        return self.to_html()

    def transposed(self) -> "ReaderTable":
        """One row per column but the first, whose values become the headers (their label heads
        the first column): a table with many columns and few rows, turned to fit the page."""
        first = self.data.columns[0]
        data = self.data.set_index(first).T.rename_axis(None, axis=1)
        data.insert(0, first, list(data.index))
        data = data.reset_index(drop=True)
        return ReaderTable(data, {first: "text", **{c: "num" for c in data.columns[1:]}})


def reader_table(df, columns, missing: str = "-") -> ReaderTable:
    """``df`` (a DataFrame, or anything ``pandas.DataFrame`` takes) for the reader: the columns
    ``columns`` names (source column -> ``Col``, or a plain label for text as it is), in that
    order, each formatted; None/NaN shown as the column's or else ``missing``. A column the
    spec names but ``df`` lacks raises ValueError (naming it); so does a duplicate label.
    Numeric columns are right-aligned, text left-aligned."""
    import pandas as pd

    df = pd.DataFrame(df)
    if not isinstance(columns, Mapping):
        columns = dict.fromkeys(columns)
    unknown = [k for k, v in columns.items() if v is None and k not in COLUMNS]
    if unknown:
        raise ValueError(f"no reader's name for columns {unknown}: give each a Col (COLUMNS has "
                         f"{', '.join(COLUMNS)})")
    spec = {k: COLUMNS[k] if v is None else v if isinstance(v, Col) else Col(v) for k, v in columns.items()}
    lacking = [k for k in spec if k not in df.columns]
    if lacking:
        raise ValueError(f"the table lacks columns {lacking} (has {list(df.columns)})")
    labels = [c.label for c in spec.values()]
    if len(set(labels)) != len(labels):
        raise ValueError(f"two columns share a label: {labels}")
    out = pd.DataFrame({c.label: [c.render(v, missing) for v in df[k].tolist()] for k, c in spec.items()},
                       index=range(len(df)), dtype=object)
    align = {c.label: "num" if c.fmt != "text" else "text" for c in spec.values()}
    return ReaderTable(out, align)
