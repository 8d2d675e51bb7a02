"""README.md is a front door: short, its links resolve, and its results table is generated from
results/ (dnal_core.headline), every number equal to the file its row names."""
import re
from pathlib import Path

import pytest

from dnal_core import headline
from dnal_core.io import read_json

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
MAX_LINES = 160
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def readme() -> str:
    return README.read_text()


def table_rows(block: str) -> list[dict]:
    """The rows of the first Markdown table in ``block``, as {column: cell}."""
    lines = [ln for ln in block.splitlines() if ln.startswith("|")]
    split = lambda ln: [c.strip() for c in ln.strip().strip("|").split(" | ")]
    header = split(lines[0])
    assert set(lines[1].replace("|", "").split()) == {"---"}, lines[1]
    return [dict(zip(header, split(ln), strict=True)) for ln in lines[2:]]


def named_record(cell: str) -> tuple[str, dict]:
    """The results file a row's cell links to, and the record it names: the whole JSON file, or
    for a JSON Lines file the one row with the (method, source) written after the link."""
    (target,) = LINK.findall(cell)
    path = ROOT / target
    if path.suffix == ".jsonl":
        method, source = re.fullmatch(r".*\) \(([\w-]+), ([\w./-]+)\)", cell).groups()
        found = [r for r in headline.read_rows(path) if r["method"] == method and r["source"] == source]
        assert len(found) == 1, (cell, len(found))
        return target, found[0]
    return target, read_json(path)


def test_readme_is_short():
    n = len(readme().splitlines())
    assert n <= MAX_LINES, f"README.md has {n} lines: the manual belongs in book/reference/"


def test_readme_block_is_what_headline_generates():
    assert headline.block_of(readme()) == headline.headline_markdown(ROOT), \
        "README.md's results are stale or edited by hand: run `python -m dnal_core.headline --write README.md`"


def test_every_number_of_the_results_table_equals_its_file():
    rows = table_rows(headline.block_of(readme()))
    assert list(rows[0]) == list(headline.COLUMNS)
    assert len(rows) >= 3
    dense = None
    for row in rows:
        target, rec = named_record(row["results file"])
        assert target.startswith("results/"), target
        if dense is None:  # the first row is the dense control every reduction is taken against
            assert rec["macs"] == rec.get("baseline_macs", rec["macs"]) and "dense" in row["network"], row
            dense = rec["macs"]
        assert float(row["MACs (M)"]) == round(rec["macs"] / 1e6, 2), (row, rec["macs"])
        assert row["top-1 (%)"] == f"{rec['top1']:.2f}", (row, rec["top1"])
        assert re.fullmatch(r"\d+\.\d\dx", row["reduction"]), row
        assert float(row["reduction"][:-1]) == round(dense / rec["macs"], 2), (row, dense, rec["macs"])
        if "baseline_macs" in rec:
            assert rec["baseline_macs"] == dense, (target, rec["baseline_macs"], dense)
        # the numbers in a network's name: its lambda or its budget, as the file records them
        lam = re.search(r"lambda ([\d.e-]+)", row["network"])
        if lam:
            assert float(lam.group(1)) == rec["lambda"], (row, rec["lambda"])
        budget = re.search(r"budget ([\d.]+)", row["network"])
        if budget:
            assert float(budget.group(1)) == rec["target"], (row, rec["target"])
        (chapter,) = LINK.findall(row["chapter"])
        assert (ROOT / chapter).is_file() and chapter.startswith("notebooks/"), chapter


def test_every_relative_link_of_the_readme_resolves():
    text = readme()
    links = LINK.findall(text) + re.findall(r'(?:src|href)="([^"]+)"', text)
    local = [u.split("#")[0] for u in links if not re.match(r"^[a-z]+:|^#", u)]
    assert local, "no relative link found"
    missing = [u for u in local if not (ROOT / u).exists()]
    assert not missing, missing


def test_readme_has_the_figure_and_the_reference():
    text = readme()
    figures = re.findall(r"!\[[^\]]+\]\((figures/[^)]+\.png)\)", text)
    assert len(figures) == 1, figures
    refs = {u for u in LINK.findall(text) if u.startswith("book/reference/")}
    pages = {f"book/reference/{p.name}" for p in (ROOT / "book" / "reference").glob("*.md")}
    assert refs and refs <= pages, refs - pages


def test_write_replaces_only_the_block(tmp_path):
    target = tmp_path / "README.md"
    target.write_text(f"# title\n\n{headline.START}\nstale\n{headline.END}\n\nafter\n")
    assert headline.main(["--write", str(target)]) == 0
    text = target.read_text()
    assert text.startswith("# title\n\n") and text.endswith(f"{headline.END}\n\nafter\n")
    assert headline.block_of(text) == headline.headline_markdown(ROOT)
    assert not list(tmp_path.glob(".*.tmp")), "the atomic write left a temporary file"


def test_write_refuses_a_file_without_markers(tmp_path, capsys):
    target = tmp_path / "README.md"
    target.write_text("# no markers\n")
    assert headline.main(["--write", str(target)]) == 2
    assert target.read_text() == "# no markers\n"
    err = capsys.readouterr().err
    assert err.startswith("dnal_core.headline: ") and err.count("\n") == 1


@pytest.mark.parametrize("missing", [headline.DENSE, headline.CRITERIA])
def test_a_missing_results_file_is_one_line(tmp_path, capsys, missing):
    for row in headline.ROWS:
        src = ROOT / row.file
        dest = tmp_path / row.file
        if row.file != missing and not dest.exists():
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(src.read_bytes())
    assert headline.main(["--root", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "file not found" in err and err.count("\n") == 1
