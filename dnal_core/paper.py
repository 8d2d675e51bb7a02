"""The paper's Tables I-VII as data (``paper_tables.csv``, shipped with the package).

Columns: table, dataset, model, method, lambda, macs_m (the paper's "FLOPs", which are
MACs, in millions), params_m, top1, top5, search_cost_epochs, search_method. A blank cell
is one the paper leaves empty.
"""
from __future__ import annotations

from importlib import resources

TABLES = ("I", "II", "III", "IV", "V", "VI", "VII")


def paper_table(table: str | None = None):
    """The paper's rows as a pandas DataFrame; ``table`` ("I".."VII") selects one table."""
    import pandas as pd

    with resources.files("dnal_core").joinpath("paper_tables.csv").open() as f:
        df = pd.read_csv(f, dtype={"lambda": str, "search_cost_epochs": str})
    if table is None:
        return df
    if table not in TABLES:
        raise ValueError(f"unknown table {table!r}; valid: {', '.join(TABLES)}")
    return df[df["table"] == table].reset_index(drop=True)


def paper_lambdas(table: str) -> list[float]:
    """The lambda_a values of a table's DNAL rows, in the paper's order."""
    df = paper_table(table)
    return [float(x) for x in df.loc[df["method"] == "DNAL", "lambda"]]


def paper_baseline(table: str) -> dict:
    """The Baseline row of one table as a dict."""
    df = paper_table(table)
    return df[df["method"] == "Baseline"].iloc[0].to_dict()
