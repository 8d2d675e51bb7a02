"""The book: paired notebooks in sync, one chapter skeleton, stored outputs, the table of
contents, and the built HTML as a reader sees it (offline, rendered by headless Chromium).

The built-book tests stage the book from the committed notebooks (their stored outputs, no
execution) in a temporary folder and build it there, so they neither need `make book` first nor
touch book/_build. nbval (run by `make test` on notebooks/*.ipynb) re-executes the notebooks.
"""
import importlib.util
import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import jupytext
import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
NAMES = sorted(p.stem for p in NOTEBOOKS.glob("*.py"))
# The reference pages (book/reference/*.md, the manual the README links to): the toc's last part.
REFERENCE = sorted(p.stem for p in (ROOT / "book" / "reference").glob("*.md"))

_spec = importlib.util.spec_from_file_location("book_build", ROOT / "book" / "build.py")
build = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(build)
_spec = importlib.util.spec_from_file_location("book_buttons", ROOT / "book" / "_ext" / "dnal_book_buttons.py")
buttons = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(buttons)

# Pages the browser test renders: every page, (page, must have a <table>, must have an <img>).
# The front page has the status table; every chapter shows at least one figure; the reference
# pages are prose (their tables, where they have some, are checked for width like any other).
PAGES = ([("intro.html", True, False)] + [(f"chapters/{n}.html", False, True) for n in NAMES]
         + [(f"reference/{n}.html", False, False) for n in REFERENCE])
SKELETON = ["What it reproduces", "## Set-up", "## Run", "## Results", "## Check", "## Notes"]
PARAMETERS = ("profile", "data_dir", "device", "out_dir", "fig_dir")
# The address the test build's buttons must carry: what a workflow's context would give
# (book/_ext/dnal_book_buttons.py reads it from the environment).
REPO, BRANCH = "https://github.com/example-owner/example-book", "test-branch"


def test_there_are_notebooks():
    assert NAMES, "notebooks/*.py: the book has no chapter"


@pytest.mark.parametrize("name", NAMES)
def test_pair_in_sync(name):
    """The .py source and the committed .ipynb hold the same cells (sources and tags)."""
    ipynb = NOTEBOOKS / f"{name}.ipynb"
    assert ipynb.is_file(), f"{ipynb.name} is missing: run `make notebooks`"
    py, nb = jupytext.read(NOTEBOOKS / f"{name}.py"), jupytext.read(ipynb)

    def cells(book):
        return [(c.cell_type, c.source.strip(), sorted(c.metadata.get("tags", []))) for c in book.cells]

    assert cells(py) == cells(nb), (f"{name}.py and {name}.ipynb differ: `jupytext --sync notebooks/{name}.py`,"
                                    " then `make notebooks` to refresh the outputs")
    assert nb.metadata.get("jupytext", {}).get("formats") == "ipynb,py:percent"


def check_skeleton(nb):
    """First code cell tagged `parameters` with the common parameters; the fixed sections."""
    code = [c for c in nb.cells if c.cell_type == "code"]
    first = code[0]
    assert "parameters" in first.metadata.get("tags", []), "the first code cell must be tagged parameters"
    for p in PARAMETERS:
        assert re.search(rf"^{p}\s*=", first.source, re.M), f"parameter {p!r} missing"
    assert re.search(r'^profile\s*=\s*"(auto|smoke)"', first.source, re.M), "the default profile is auto or smoke"
    # papermill cannot read a parameter line with a second "=" (in its comment, say): it then
    # warns that the parameter is unknown.
    assert all(line.count("=") <= 1 for line in first.source.splitlines()), "one '=' per parameter line"
    text = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    positions = [text.find(s) for s in SKELETON]
    assert -1 not in positions, f"missing sections: {[s for s, p in zip(SKELETON, positions) if p < 0]}"
    assert positions == sorted(positions), "sections out of order"
    assert any("assert " in c.source for c in code), "the Check section asserts nothing"
    assert any("nbval-check-output" in c.metadata.get("tags", []) for c in code), \
        "no cell is tagged nbval-check-output: nbval would compare nothing"


@pytest.mark.parametrize("name", NAMES)
def test_chapter_skeleton(name):
    check_skeleton(jupytext.read(NOTEBOOKS / f"{name}.py"))


def test_chapter_template_follows_the_skeleton_and_compiles():
    """book/chapter_template.py, the starting point of every table chapter, stays valid."""
    nb = jupytext.read(ROOT / "book" / "chapter_template.py")
    check_skeleton(nb)
    for i, cell in enumerate(c for c in nb.cells if c.cell_type == "code"):
        compile(cell.source, f"chapter_template.py cell {i}", "exec")


@pytest.mark.parametrize("name", NAMES)
def test_stored_outputs(name):
    """The committed .ipynb was executed top to bottom, without errors or papermill timings."""
    nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    counts = [c.execution_count for c in code]
    assert None not in counts, f"{name}.ipynb has unexecuted cells: run `make notebooks`"
    assert counts == sorted(counts), "cells were executed out of order"
    assert not any(o.output_type == "error" for c in code for o in c.outputs)
    assert "papermill" not in nb.metadata
    assert not any("papermill" in c.metadata or "execution" in c.metadata for c in nb.cells)


PAGE_CHARS = 88  # what the content column shows at 1280 px in book/_assets/dnal.css's 11.7 px font


def _long_lines(text: str) -> list[str]:
    return [ln for ln in text.splitlines() if len(ln) > PAGE_CHARS]


@pytest.mark.parametrize("name", NAMES)
def test_code_and_output_lines_fit_the_page(name):
    """No code line and no stored text output line is cut at the page edge: at most 88
    characters (tables rendered as HTML are checked in the browser test)."""
    nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    bad = []
    for k, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        bad += [f"cell {k} code: {ln}" for ln in _long_lines(cell.source)]
        for out in cell.get("outputs", []):
            if out.output_type == "stream":
                bad += [f"cell {k} output: {ln}" for ln in _long_lines(out.text)]
            elif out.output_type in ("execute_result", "display_data") and "text/html" not in out.data:
                bad += [f"cell {k} output: {ln}" for ln in _long_lines(out.data.get("text/plain", ""))]
    assert not bad, f"{name}: {len(bad)} lines over {PAGE_CHARS} characters:\n" + "\n".join(bad[:10])


# --- a build leaves the checkout as it found it (issue 30, item 6) ---------------------------

def test_execute_writes_under_the_build_folder_unless_told(tmp_path):
    """`execute` gives each chapter a $DNAL_OUT_ROOT: the caller's when set (make test's scratch,
    or the repository to re-make committed results), the repository for a chapter asked to
    train (PROFILE=cpu), else book/_build/out (ignored by git)."""
    assert build.out_root_for({}, None) == build.BUILD_OUT
    assert build.out_root_for({"profile": "smoke"}, "") == build.BUILD_OUT
    assert build.out_root_for({"profile": "cpu", "train": True}, None) == ROOT
    assert build.out_root_for({"profile": "cpu", "train": True}, str(tmp_path)) == tmp_path.resolve()
    ignored = subprocess.run(["git", "check-ignore", "-q", str(build.BUILD_OUT / "results" / "x.json")],
                             cwd=ROOT)
    assert ignored.returncode == 0, "book/_build/out must be ignored by git"


QUICKSTART_FILES = ["results/quickstart/smoke/metrics.jsonl", "results/quickstart/smoke/summary.json",
                    "figures/quickstart_gates_smoke.png", "figures/quickstart_acc_vs_macs_smoke.png"]


def _state(paths):
    import hashlib

    status = subprocess.run(["git", "status", "--porcelain", "--", *paths], cwd=ROOT, capture_output=True,
                            text=True, check=True).stdout
    return status, {p: hashlib.sha1((ROOT / p).read_bytes()).hexdigest() for p in paths}


@pytest.mark.slow
def test_make_book_leaves_committed_quickstart_results_alone(tmp_path, monkeypatch):
    """The quickstart trains on every build (about a minute); run as `make book` runs it (no
    $DNAL_OUT_ROOT), it writes its results and figures under the build folder, and the
    committed results/quickstart/smoke and figures/quickstart_* stay as they were, in git's
    eyes and byte for byte. (Other chapters' files are not compared: experiments running in the
    same checkout may be writing theirs.)"""
    monkeypatch.delenv("DNAL_OUT_ROOT", raising=False)
    monkeypatch.setattr(build, "CHAPTERS", tmp_path / "chapters")
    monkeypatch.setattr(build, "BUILD_OUT", tmp_path / "out")
    before = _state(QUICKSTART_FILES)
    assert build.main(["execute", "--only", "quickstart"]) == 0
    assert _state(QUICKSTART_FILES) == before
    assert "DNAL_OUT_ROOT" not in os.environ
    for p in QUICKSTART_FILES:
        assert (tmp_path / "out" / p).is_file(), f"the build did not write {p} under its folder"
    assert (tmp_path / "chapters" / "quickstart.ipynb").is_file()


def test_toc_lists_every_notebook_and_reference_page_and_nothing_else():
    listed = build.toc_files(ROOT / "book")
    assert listed[0] == "intro"
    chapters = [f for f in listed[1:] if not f.startswith("reference/")]
    assert sorted(chapters) == sorted(f"chapters/{n}" for n in NAMES), \
        "book/_toc.yml and notebooks/*.py disagree: add or remove `- file: chapters/<name>`"
    reference = listed[len(listed) - len(REFERENCE):]
    assert sorted(reference) == sorted(f"reference/{n}" for n in REFERENCE), \
        "book/_toc.yml's last entries and book/reference/*.md disagree: add or remove `- file: reference/<name>`"
    assert len(set(listed)) == len(listed)


def test_offline_check_flags_fetched_urls_not_links(tmp_path):
    (tmp_path / "index.html").write_text(
        '<a href="https://arxiv.org/abs/2103.02126">the paper</a>'
        '<script src="_static/mathjax/tex-chtml.js"></script>'
        '<script>const THEBE_JS_URL = "https://unpkg.com/thebe@0.8.2/lib/index.js"</script>')
    assert build.outside_references(tmp_path) == []
    (tmp_path / "page.html").write_text(
        '<script src="https://cdn.jsdelivr.net/npm/mathjax@3/es5/tex-chtml.js"></script>'
        '<link rel="stylesheet" href="//fonts.example/css">'
        '<img alt="x" src="http://example.org/a.png">'
        '<script>fetch("https://example.org/x.json")</script>')
    (tmp_path / "s.css").write_text('@import "https://fonts.example/f.css"; a {background: url(data:image/png;base64,AA)}')
    bad = build.outside_references(tmp_path)
    assert len(bad) == 5, bad
    assert any("cdn.jsdelivr" in b for b in bad) and any("s.css" in b for b in bad)


def test_repository_address_comes_from_the_environment():
    """No variable: the buttons keep _config.yml's placeholder; a workflow's values are used
    (a trailing .git or slash dropped); a malformed one fails the build with its name."""
    from sphinx.errors import ConfigError

    assert buttons.repository_options({}) == {}
    env = {buttons.URL_ENV: "https://github.com/o-1/r.x.git", buttons.BRANCH_ENV: "release/1.0"}
    assert buttons.repository_options(env) == {"repository_url": "https://github.com/o-1/r.x",
                                               "repository_branch": "release/1.0"}
    for bad in ({buttons.URL_ENV: "github.com/o/r"}, {buttons.URL_ENV: "https://github.com/o"},
                {buttons.URL_ENV: "https://github.com/o/r/tree/main"}, {buttons.BRANCH_ENV: "a b"}):
        with pytest.raises(ConfigError, match=next(iter(bad))):
            buttons.repository_options(bad)


# --- the built book -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def html(tmp_path_factory):
    """The book built from the committed notebooks, in a temporary folder (about 20 s)."""
    if not (ROOT / "book" / "_mathjax" / "mathjax" / "tex-chtml.js").is_file():
        pytest.fail("book/_mathjax is missing: run `make setup` (it installs MathJax from npm)")
    src = tmp_path_factory.mktemp("book") / "book"
    assert build.main(["stage", str(src)]) == 0
    jb = Path(os.sys.executable).with_name("jupyter-book")
    env = {**os.environ, buttons.URL_ENV: REPO, buttons.BRANCH_ENV: BRANCH}
    proc = subprocess.run([str(jb), "build", "--all", "-W", "-n", "--keep-going", str(src)],
                          capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return src / "_build" / "html"


@pytest.mark.slow
def test_built_book_loads_nothing_from_outside(html):
    assert (html / "_static" / "mathjax" / "tex-chtml.js").is_file()
    assert build.outside_references(html) == []
    for name in NAMES:
        assert (html / "chapters" / f"{name}.html").is_file()


def _chromium():
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is missing on CI: `make setup` installs it")
        pytest.skip("chromium is not installed (make setup installs it as root)")
    return exe


def _run_chromium(exe, url, *args):
    # virtual time: 15 s, so that MathJax and the probe finish on a loaded machine (with 5 s the
    # probe of the Fig. 3 page did not run once while two trainings shared the 2 cores)
    with tempfile.TemporaryDirectory() as profile:
        cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               f"--user-data-dir={profile}", "--virtual-time-budget=15000", *args, url]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


@pytest.mark.slow
@pytest.mark.parametrize("page,has_table,has_img", PAGES)
def test_page_renders_in_chromium(html, tmp_path, page, has_table, has_img):
    from PIL import Image, ImageStat

    exe = _chromium()
    source = (html / page).read_text()
    if has_table:
        assert "<table" in source, f"{page}: no table"
    if has_img:
        assert re.search(r"<img [^>]*src=\"[^\"]*\.png\"", source), f"{page}: no figure"
    url = (html / page).as_uri()
    shot = tmp_path / "page.png"
    proc = _run_chromium(exe, url, "--window-size=1280,2400", f"--screenshot={shot}")
    assert shot.is_file(), proc.stderr[-2000:]
    img = Image.open(shot).convert("L")
    assert img.size == (1280, 2400)
    spread = ImageStat.Stat(img).stddev[0]
    inked = sum(img.histogram()[:200]) / (img.size[0] * img.size[1])  # pixels clearly not white
    assert spread > 10 and inked > 0.01, f"{page} looks blank: stddev {spread:.1f}, {inked:.1%} inked"
    # After scripts ran: MathJax (served locally) typeset the formulas, none failed; nothing is
    # cut at the page edge; every figure has pixels and is shown large enough to read.
    dom, result = _probe(exe, html / page, source)
    assert "DNAL, reproduced" in dom
    if 'class="math' in source:
        assert "<mjx-container" in dom, f"{page}: MathJax did not render (is it loaded offline?)"
    assert "<mjx-merror" not in dom and "Math input error" not in dom
    assert not result["wide"], f"{page}: cut at the page edge or wider than its column: {result['wide'][:5]}"
    assert result["tables"] == source.count("<table"), f"{page}: the probe saw {result['tables']} tables"
    for src, natural, shown in result["imgs"]:
        assert natural > 0, f"{page}: image {src} is empty or missing"
        assert shown >= min(natural, 300), f"{page}: image {src} shown {shown} px wide (of {natural})"
    check_header_buttons(html, page, result["buttons"])


def _probe(exe, path: Path, source: str):
    """``(dom, result)``: the page ``path`` with ``source`` as its HTML and PROBE added, as
    Chromium leaves it after its scripts, and the probe's findings."""
    probe = path.with_name(f"_probe_{path.name}")
    head, _, tail = source.rpartition("</body>")  # the page's own closing tag (an output may hold one)
    probe.write_text(head + PROBE + "</body>" + tail)
    try:
        dom = _run_chromium(exe, probe.as_uri(), "--window-size=1280,900", "--dump-dom").stdout
    finally:
        probe.unlink()
    found = re.search(r'<pre id="probe-result"[^>]*>(.*?)</pre>', dom, re.S)  # the theme may add tabindex
    assert found, f"{path.name}: the layout probe did not run"
    return dom, json.loads(html_unescape(found.group(1)))


@pytest.mark.slow
def test_probe_flags_a_wide_table_anywhere(html):
    """The probe finds a table wider than its column wherever it is: a cell's output, a
    collapsed (hidden) output, the prose of a page."""
    exe = _chromium()
    page = html / "chapters" / "table1_vgg16_cifar10.html"
    source = page.read_text()
    row = "<tr>" + "".join(f"<td>column{i:02d}_wide_value</td>" for i in range(30)) + "</tr>"
    wide = f"<table class='dataframe'>{row}</table>"
    marker, article = '<div class="cell_output docutils container">', '<article class="bd-article">'
    assert marker in source and article in source
    places = {
        "output": source.replace(marker, marker + wide, 1),
        "hidden": source.replace(marker, marker + f"<details><summary>s</summary>{wide}</details>", 1),
        "prose": source.replace(article, article + wide, 1),
    }
    for where, text in places.items():
        _, result = _probe(exe, page, text)
        assert any("column00_wide_value" in w[-1] for w in result["wide"]), (where, result["wide"])


def check_header_buttons(html, page, groups):
    """The header's button groups are shown and their links well formed: the repository, an
    issue on it and the edit page of the committed source (a chapter's notebooks/<name>.py), the
    download of the page's source, and on a chapter the Binder launch of notebooks/<name>.ipynb
    in JupyterLab, all at the address the build was given."""
    chapter, name = page.startswith("chapters/"), Path(page).stem
    wanted = ["source", "download"] + ["launch"] * chapter
    for group in wanted:
        assert groups.get(group) and groups[group]["shown"], f"{page}: no {group} buttons shown"
    links = {text: href for g in wanted for text, href in groups[g]["links"]}
    source = f"notebooks/{name}.py" if chapter else f"book/{Path(page).with_suffix('.md')}"
    assert links["Repository"] == REPO, links
    assert links["Suggest edit"] == f"{REPO}/edit/{BRANCH}/{source}" and (ROOT / source).is_file(), links
    issue = urlsplit(links["Open issue"])
    assert f"{issue.scheme}://{issue.netloc}{issue.path}" == f"{REPO}/issues/new", links
    assert parse_qs(issue.query)["title"] == [f"Issue on page /{page}"], links
    download = (html / page).parent / links[".ipynb" if chapter else ".md"]
    assert download.resolve().is_file(), f"{page}: {download} is missing"
    if chapter:
        assert nbformat.read(download, as_version=4).cells, f"{page}: {download} holds no cells"
        binder = urlsplit(links["Binder"])
        assert (binder.scheme, binder.netloc, binder.path) == \
            ("https", "mybinder.org", f"/v2/gh{urlsplit(REPO).path}/{BRANCH}"), links
        target = f"notebooks/{name}.ipynb"
        assert parse_qs(binder.query) == {"urlpath": [f"lab/tree/{target}"]} and (ROOT / target).is_file(), links


# Run in the page after its scripts, with every collapsed block opened (a hidden output is
# still read once a reader opens it): every code/output block and table that scrolls
# horizontally (a line cut at the page edge), and every table of the page (a result table, a
# Markdown table such as the front page's status) wider than the column that holds it (a
# cell's output area, else the article), its right columns hidden behind a scroll bar; each
# figure's natural and shown width, and the header's button groups (shown or not, links).
PROBE = """<script>window.addEventListener('load', () => setTimeout(() => {
  document.querySelectorAll('main details').forEach(d => { d.open = true; });
  const column = el => el.closest('div.cell_output') || el.closest('article') || el.closest('main');
  const wide = [...document.querySelectorAll('main pre, main table')]
    .filter(el => el.scrollWidth > el.clientWidth + 1 || (el.tagName === 'TABLE'
      && el.offsetWidth > column(el).clientWidth + 1))
    .map(el => [el.tagName, el.scrollWidth, el.offsetWidth, column(el).clientWidth,
                el.textContent.slice(0, 60)]);
  const tables = document.querySelectorAll('main table').length;
  const imgs = [...document.querySelectorAll('main img')].filter(i => !i.closest('.article-header-buttons'))
    .map(i => [i.getAttribute('src'), i.naturalWidth, i.clientWidth]);
  const buttons = Object.fromEntries(['launch', 'source', 'download'].map(g => {
    const menu = document.querySelector(`.article-header-buttons .dropdown-${g}-buttons`);
    return [g, menu && {shown: menu.querySelector('button').getBoundingClientRect().width > 0,
      links: [...menu.querySelectorAll('a.dropdown-item')].map(a => [a.textContent.trim(), a.getAttribute('href')])}];
  }));
  const out = document.createElement('pre'); out.id = 'probe-result';
  out.textContent = JSON.stringify({wide, imgs, buttons, tables});
  document.body.appendChild(out);
}, 300));</script>"""


def html_unescape(text: str) -> str:
    import html as _html

    return _html.unescape(text)


@pytest.mark.slow
def test_every_local_link_resolves(html):
    """Every relative href/src of every built page points at a file of the built book."""
    bad = []
    for page in sorted(p for p in html.rglob("*.html") if "_static" not in p.parts):  # not theme templates
        for url in re.findall(r'(?:href|src)="([^"#?]+)[^"]*"', page.read_text()):
            if re.match(r"^(?:[a-z]+:|//|data:)", url):
                continue
            if not (page.parent / url).resolve().exists():
                bad.append(f"{page.relative_to(html)} -> {url}")
    assert not bad, bad[:10]
