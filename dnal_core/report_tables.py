"""Result tables set for readers: the one formatting step every chapter's table goes through.

    from dnal_core.report_tables import Col, reader_table
    reader_table(rows, {
        "lambda": "lambda",
        "macs_m": Col("MACs (M)", "{:.2f}"),
        "macs_x": Col("reduction", "x"),
        "top1": Col("top-1 (%)", "top1"),
        "uniform_top1": Col("uniform width top-1 (%)", "top1", missing="not run"),
    })

``reader_table(df, columns)`` keeps the columns the spec names, in its order, under the
spec's labels (human names with units), writes every value as text with its column's format,
and returns a ``ReaderTable``: shown without the index, as HTML in the book and JupyterLab and
as plain text in nbval and a terminal (both deterministic, so stored outputs compare).

A column's format is a ``str.format`` pattern (``"{:.1f}"``), a callable, or one of ``FORMATS``:
``top1`` (two decimals, 83.04), ``points`` (two decimals, a difference in points), ``x`` (a
reduction, "2.36x"), ``millions`` (two decimals), ``int`` (thousands separated), ``text``.
A missing value (None, NaN) is shown as the column's ``missing`` text ("-" unless told; a
control that was never trained says "not run").
"""
from __future__ import annotations

import html as _html
from dataclasses import dataclass
from typing import Callable, Mapping, Union

FORMATS: dict[str, str] = {
    "top1": "{:.2f}",  # accuracy in %, two decimals (83.04, 73.88)
    "points": "{:.2f}",  # a difference of accuracies, in points
    "x": "{:.2f}x",  # a reduction, baseline / row: "2.36x"
    "millions": "{:.2f}",  # MACs or parameters in millions
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
        if callable(self.fmt):
            return str(self.fmt(value))
        return FORMATS.get(self.fmt, self.fmt).format(value)


def _is_missing(value) -> bool:
    import pandas as pd

    return pd.api.types.is_scalar(value) and bool(pd.isna(value))


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


def reader_table(df, columns: Mapping[str, Union[Col, str]], missing: str = "-") -> ReaderTable:
    """``df`` (a DataFrame, or anything ``pandas.DataFrame`` takes) for the reader: the columns
    ``columns`` names (source column -> ``Col``, or a plain label for text as it is), in that
    order, each formatted; None/NaN shown as the column's or else ``missing``. A column the
    spec names but ``df`` lacks raises ValueError (naming it); so does a duplicate label.
    Numeric columns are right-aligned, text left-aligned."""
    import pandas as pd

    df = pd.DataFrame(df)
    spec = {k: (v if isinstance(v, Col) else Col(v)) for k, v in columns.items()}
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
