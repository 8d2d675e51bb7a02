"""Build steps of the book, called by the Makefile (one subcommand per step).

  python book/build.py mathjax              copy MathJax 3 (es5/) from the npm package into book/_mathjax
  python book/build.py execute [--profile P] [--only NAME ...]
                                            run notebooks/<NAME>.py with papermill -> book/chapters/<NAME>.ipynb
                                            (P: auto, the default, renders each chapter's largest-scale
                                            committed results; cpu trains the CPU_CHAPTERS' cpu
                                            experiments, about 5 hours on 2 cores, resumable; smoke, paper).
                                            What a chapter writes (results/, figures/) goes under
                                            book/_build/out, never over the committed files, except
                                            a chapter asked to train (cpu) or when $DNAL_OUT_ROOT says
                                            where (DNAL_OUT_ROOT=$PWD: re-make the committed results)
  python book/build.py html [--source DIR]  jupyter-book build (offline, -W -n --keep-going) of DIR (book/);
                                            DNAL_REPOSITORY_URL/_BRANCH: the address of the page buttons
                                            (book/_ext/dnal_book_buttons.py; a placeholder without them)
  python book/build.py check-offline [DIR]  fail if a built page loads anything from outside (default book/_build/html)
  python book/build.py store                write the executed default-profile outputs back into notebooks/*.ipynb
  python book/build.py stage DEST
                                            copy the book sources to DEST, chapters from notebooks/*.ipynb
                                            (their stored outputs): what the browser test builds

The `.py` (jupytext percent format) is each notebook's source; it is what `execute` runs, so a
stale `.ipynb` never reaches the book. Exit status 2 with one line on stderr on bad input.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

BOOK = Path(__file__).resolve().parent
ROOT = BOOK.parent
NOTEBOOKS = ROOT / "notebooks"
CHAPTERS = BOOK / "chapters"
MATHJAX_NPM = ROOT / ".cache" / "npm" / "node_modules" / "mathjax"
MATHJAX_DEST = BOOK / "_mathjax" / "mathjax"  # served as _static/mathjax/ (html_static_path)
# Where executed chapters write results/ and figures/ (dnal_core.report.out_root, through
# $DNAL_OUT_ROOT): a build leaves the committed ones as it found them.
BUILD_OUT = BOOK / "_build" / "out"
OUT_ROOT_ENV = "DNAL_OUT_ROOT"  # dnal_core.report.OUT_ROOT_ENV
DEFAULT_PROFILE = "auto"  # each chapter shows its largest-scale committed results (paper, cpu, smoke)
PROFILES = ("auto", "smoke", "cpu", "paper")
# The chapters that have a cpu profile (dnal_core.experiments; results/<name>/cpu): `make book
# PROFILE=cpu` trains them (train=True) and renders the others as `auto` would.
CPU_CHAPTERS = ("table1_vgg16_cifar10", "fig3_gate_histograms", "fig4_ss_placement", "fig5_joint_vs_sequential",
                "budget_vgg16_cifar10")
CPU_HOURS = 5  # 2-core machine, two processes: ~4 h measured (Table I, Figs. 3-5) + ~1 h estimated (budget)
# Papermill bookkeeping that would change on every run: never stored in notebooks/*.ipynb.
VOLATILE_CELL_KEYS = ("papermill", "execution")


def notebook_names() -> list[str]:
    """Every notebook of the book: notebooks/<name>.py, in name order."""
    return sorted(p.stem for p in NOTEBOOKS.glob("*.py"))


def read_source(name: str):
    import jupytext
    return jupytext.read(NOTEBOOKS / f"{name}.py")


# --- mathjax -----------------------------------------------------------------------------

def cmd_mathjax(args) -> None:
    es5 = MATHJAX_NPM / "es5"
    if not (es5 / "tex-chtml.js").is_file():
        raise ValueError(f"{es5} is missing: run `make setup` (npm install mathjax@3)")
    if (MATHJAX_DEST / "tex-chtml.js").is_file() and not args.force:
        return
    tmp = MATHJAX_DEST.with_name("mathjax.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(es5, tmp)
    shutil.rmtree(MATHJAX_DEST, ignore_errors=True)
    tmp.rename(MATHJAX_DEST)
    print(f"MathJax {es5.parent.name} es5 -> {MATHJAX_DEST.relative_to(ROOT)}")


# --- execute -----------------------------------------------------------------------------

def cmd_execute(args) -> None:
    import papermill as pm

    names = args.only or notebook_names()
    unknown = sorted(set(names) - set(notebook_names()))
    if unknown:
        raise ValueError(f"no notebook {', '.join(unknown)} in notebooks/")
    # Agg: no display anywhere; figures reach the page through report.save_figure's PNGs.
    os.environ["MPLBACKEND"] = "Agg"
    os.environ.setdefault("PYTHONHASHSEED", "0")
    CHAPTERS.mkdir(parents=True, exist_ok=True)
    if args.profile == "cpu":
        print(f"PROFILE=cpu trains the cpu experiments of {', '.join(n for n in names if n in CPU_CHAPTERS)}: "
              f"about {CPU_HOURS} hours on a 2-core CPU (run folders under runs/: an interrupted build "
              "resumes where it stopped; progress in runs/<chapter>/cpu/*/metrics.jsonl)", flush=True)
    total = time.perf_counter()
    chosen_root = os.environ.get(OUT_ROOT_ENV)
    try:
        for name in names:
            params = execute_params(name, args.profile)
            root = out_root_for(params, chosen_root)
            if root == BUILD_OUT:  # no stale result of an earlier build read as this one's
                shutil.rmtree(BUILD_OUT / "results" / name, ignore_errors=True)
            os.environ[OUT_ROOT_ENV] = str(root)  # the kernel papermill starts inherits it
            t0 = time.perf_counter()
            out = CHAPTERS / f"{name}.ipynb"
            tmp = out.with_name(f".{name}.tmp.ipynb")
            pm.execute_notebook(read_source(name), str(tmp), parameters=params, kernel_name="python3",
                                progress_bar=False, cwd=str(NOTEBOOKS), request_save_on_cell_execute=False)
            tmp.replace(out)  # a failed run leaves no half-executed chapter behind
            where = root.relative_to(ROOT) if root.is_relative_to(ROOT) else root
            print(f"executed {name} ({args.profile}) in {time.perf_counter() - t0:.1f} s, "
                  f"its results and figures under {where}/", flush=True)
    finally:
        if chosen_root is None:
            os.environ.pop(OUT_ROOT_ENV, None)
        else:
            os.environ[OUT_ROOT_ENV] = chosen_root
    print(f"executed {len(names)} notebooks in {time.perf_counter() - total:.1f} s")


def out_root_for(params: dict, chosen: str | None) -> Path:
    """The $DNAL_OUT_ROOT a chapter runs with: ``chosen`` (the caller's $DNAL_OUT_ROOT) when set;
    the repository when the chapter is asked to train (``make book PROFILE=cpu``: its results
    are the committed ones, made resumably in place); else ``BUILD_OUT``, an ignored folder, so
    that a build (a chapter that always trains, like the quickstart, or figures drawn on
    another CPU kind) leaves results/ and figures/ as they were. A chapter still reads the
    committed results: dnal_core.report looks under the out root first, then the repository."""
    if chosen:
        return Path(chosen).resolve()
    if params.get("train"):
        return ROOT
    return BUILD_OUT


def execute_params(name: str, profile: str) -> dict:
    """Papermill parameters of chapter ``name`` under ``make book PROFILE=profile``."""
    if profile == DEFAULT_PROFILE:
        return {}
    if profile == "cpu":
        return {"profile": "cpu", "train": True} if name in CPU_CHAPTERS else {}
    return {"profile": profile}


# --- store -------------------------------------------------------------------------------

def clean_for_storage(nb):
    """The executed notebook without papermill's per-run bookkeeping (timings, status, empty
    tag lists) and with cell ids derived from the cells' sources, so that storing the same
    notebook twice gives the same file (jupytext invents random ids when it reads a .py)."""
    nb.metadata.pop("papermill", None)
    seen: dict[str, int] = {}
    for cell in nb.cells:
        for key in VOLATILE_CELL_KEYS:
            cell.metadata.pop(key, None)
        if cell.metadata.get("tags") == []:
            del cell.metadata["tags"]
        digest = hashlib.sha1(f"{cell.cell_type}\n{cell.source}".encode()).hexdigest()[:8]
        seen[digest] = seen.get(digest, 0) + 1
        cell["id"] = digest if seen[digest] == 1 else f"{digest}-{seen[digest]}"
    return nb


def cmd_store(args) -> None:
    import jupytext
    import nbformat

    for name in args.only or notebook_names():
        executed = CHAPTERS / f"{name}.ipynb"
        if not executed.is_file():
            raise ValueError(f"{executed.relative_to(ROOT)} is missing: run `make book` first")
        nb = nbformat.read(executed, as_version=4)
        params = nb.metadata.get("papermill", {}).get("parameters", {})
        if params:  # stored outputs are the default (auto) run's: nbval compares to them
            raise ValueError(f"{name} was executed with {params}; store runs only after a default-profile run")
        src = read_source(name)
        if [c.source for c in src.cells] != [c.source for c in nb.cells]:
            raise ValueError(f"{name}.py changed since it was executed: run `make book` again")
        nb = clean_for_storage(nb)
        nb.metadata["jupytext"] = {"formats": "ipynb,py:percent"}
        jupytext.write(nb, NOTEBOOKS / f"{name}.ipynb")
        print(f"stored outputs of {name} in notebooks/{name}.ipynb")


# --- html --------------------------------------------------------------------------------

def write_status(source: Path) -> None:
    """book/_status.md: the front page's status table, from the committed results (dnal_core.status)."""
    from dnal_core.status import status_markdown

    (source / "_status.md").write_text(status_markdown(ROOT))


def cmd_html(args) -> None:
    source = Path(args.source).resolve()
    write_status(source)
    missing = [n for n in toc_files(source) if not (source / f"{n}.ipynb").is_file()
               and not (source / f"{n}.md").is_file()]
    if missing:
        raise ValueError(f"the toc lists pages that were not built: {', '.join(missing)} (run `make book`)")
    if not (source / "_mathjax" / "mathjax" / "tex-chtml.js").is_file():
        raise ValueError(f"{source}/_mathjax is missing: run `make setup`")
    t0 = time.perf_counter()
    cmd = [str(Path(sys.executable).with_name("jupyter-book")), "build", "--all", "-W", "-n",
           "--keep-going", str(source)]
    rc = subprocess.run(cmd).returncode
    if rc:
        raise SystemExit(rc)
    print(f"built {source / '_build' / 'html'} in {time.perf_counter() - t0:.1f} s")


def toc_files(source: Path) -> list[str]:
    """The `file:` entries of a book's _toc.yml (root included), without suffix."""
    import yaml

    toc = yaml.safe_load((source / "_toc.yml").read_text())
    found = [toc["root"]]

    def walk(node):
        if isinstance(node, dict):
            if "file" in node:
                found.append(str(node["file"]))
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(toc.get("parts", toc.get("chapters", [])))
    return [re.sub(r"\.(ipynb|md)$", "", f) for f in found]


# --- check-offline -----------------------------------------------------------------------

# Elements whose src/href the browser fetches by itself while loading a page. Plain <a href>
# links are not fetched (a reader follows them or not), so links in prose may point outside.
_FETCHING_TAG = re.compile(r"<(script|link|img|iframe|source|video|audio|embed|object)\b[^>]*>", re.I)
_URL_ATTR = re.compile(r"\b(?:src|href|data|srcset)\s*=\s*[\"']([^\"']*)[\"']", re.I)
_CSS_URL = re.compile(r"(?:url\(\s*[\"']?|@import\s+[\"'])((?:https?:)?//[^\"')\s]+)", re.I)
_OUTSIDE = re.compile(r"^\s*(?:https?:)?//", re.I)
# Inline scripts: any URL there may be fetched by the script. One is known and allowed:
# sphinx-thebe (always loaded by Jupyter Book 1.x) names thebe's CDN in a constant that only a
# click on a "launch thebe" button would load, and the book has no such button (thebe: false).
_INLINE_SCRIPT = re.compile(r"<script\b(?![^>]*\bsrc=)[^>]*>(.*?)</script>", re.I | re.S)
_SCRIPT_URL = re.compile(r"https?://[^\s\"'<>`]+", re.I)
_ALLOWED_INLINE = re.compile(r"THEBE_JS_URL\s*=\s*[\"']https://unpkg\.com/thebe@[\d.]+/lib/index\.js[\"']")


def outside_references(html_dir: Path) -> list[str]:
    """'file: url' for every outside URL that a built page (or its CSS) would load."""
    bad = []
    for page in sorted(html_dir.rglob("*.html")):
        text = page.read_text(errors="replace")
        for tag in _FETCHING_TAG.finditer(text):
            for url in _URL_ATTR.findall(tag.group(0)):
                if _OUTSIDE.match(url):
                    bad.append(f"{page.relative_to(html_dir)}: <{tag.group(1)}> {url}")
        for body in _INLINE_SCRIPT.findall(text):
            for url in _SCRIPT_URL.findall(_ALLOWED_INLINE.sub("", body)):
                bad.append(f"{page.relative_to(html_dir)}: inline <script> {url}")
    for css in sorted(html_dir.rglob("*.css")):
        for url in _CSS_URL.findall(css.read_text(errors="replace")):
            bad.append(f"{css.relative_to(html_dir)}: {url}")
    return bad


def cmd_check_offline(args) -> None:
    html_dir = Path(args.html_dir)
    if not (html_dir / "index.html").is_file():
        raise ValueError(f"{html_dir}/index.html is missing: build the book first")
    bad = outside_references(html_dir)
    for line in bad:
        print(f"outside URL: {line}", file=sys.stderr)
    if bad:
        raise SystemExit(f"{len(bad)} outside URLs in {html_dir}: the book must load nothing from the network")
    pages = sum(1 for _ in html_dir.rglob("*.html"))
    print(f"offline check: {pages} pages load no outside URL")


# --- stage -------------------------------------------------------------------------------

def cmd_stage(args) -> None:
    """A buildable copy of the book whose chapters are notebooks/*.ipynb as committed."""
    dest = Path(args.dest)
    shutil.copytree(BOOK, dest, ignore=shutil.ignore_patterns("_build", "chapters", "*.pyc", "__pycache__"),
                    dirs_exist_ok=True)
    (dest / "chapters").mkdir(exist_ok=True)
    write_status(dest)
    for name in notebook_names():
        shutil.copy2(NOTEBOOKS / f"{name}.ipynb", dest / "chapters" / f"{name}.ipynb")
    print(f"staged the book with {len(notebook_names())} stored notebooks in {dest}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="book/build.py", description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("mathjax")
    p.add_argument("--force", action="store_true")
    p.set_defaults(func=cmd_mathjax)
    p = sub.add_parser("execute")
    p.add_argument("--profile", default=DEFAULT_PROFILE, choices=PROFILES)
    p.add_argument("--only", nargs="*", help="notebook names (default: all)")
    p.set_defaults(func=cmd_execute)
    p = sub.add_parser("store")
    p.add_argument("--only", nargs="*", help="notebook names (default: all)")
    p.set_defaults(func=cmd_store)
    p = sub.add_parser("html")
    p.add_argument("--source", default=str(BOOK))
    p.set_defaults(func=cmd_html)
    p = sub.add_parser("check-offline")
    p.add_argument("html_dir", nargs="?", default=str(BOOK / "_build" / "html"))
    p.set_defaults(func=cmd_check_offline)
    p = sub.add_parser("stage")
    p.add_argument("dest")
    p.set_defaults(func=cmd_stage)
    args = ap.parse_args(argv)
    try:
        args.func(args)
    except ValueError as e:
        print(f"book/build.py: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
