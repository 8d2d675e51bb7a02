"""What a chapter calls once per experiment, and what the four ImageNet chapters share.

  ``place``    a chapter's set-up from its parameters: the profile resolved, its results,
               figures and run folders, its data; ``FIGURE_MODELS``, the networks of Figs. 4-5
  ``ensure``   a chapter's results: the committed ones, or made by the chapter's own ``make``
               when none are committed (or when ``train``), with one line saying where they
               came from (profile, device, date, command)
  ``ensure_lambdas``  ``ensure`` of a CIFAR-10 lambda sweep from one weight stage (Tables II-III)
  ``ImageNet`` a Table IV-VII chapter (ImageNet is not on this machine, a paper run takes
               days of GPU time): the paper's rows, our baseline counted both ways beside the
               paper's, the commands of a paper run, the smoke run on a generated ImageFolder,
               paper-profile results beside the paper's when committed, the figure, and the
               checks the four share. A chapter makes one with its name, table, model and
               title, calls ``walk`` for the steps the four share (their narrative with them),
               and keeps its own narrative, its parameters and its own checks in view.

A chapter over a lambda sweep chosen on MACs with its controls (Table I, Table II's cpu
section) calls ``dnal_core.chapter_sweep.Sweep``, which builds on ``place`` here.

The chapter decides what to show and in which order; this module places, runs and formats.
It sits above ``report`` (results, text, plots, the paper beside us) and ``experiments``
(``run_lambdas``), which it calls.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from .experiments.lambdas import run_lambdas
from .models import build
from .paper import paper_baseline, paper_table
from .recipes import get_recipe
from .report.compare import (baseline_counts, check_close, check_smoke_baseline, check_top1, paper_commands,
                             paper_run_table)
from .report.plots import plot_acc_vs_macs, save_figure
from .report.results import has_results, paths, provenance, random_imagefolder, read_folder, repo_root, results_dir
from .report.text import ours_table, run_line, say, shell
from .report_tables import COLUMNS, reader_table


class Place(NamedTuple):
    """Where a chapter's experiment lives (``place``)."""
    profile: str   # resolved: "auto" became the largest-scale committed profile
    run: object    # report.paths: results (out) and figures (fig) folders
    runs: Path     # checkpointed run folders, not committed
    data: str      # the CIFAR-10 folder ("" when neither data_dir nor $DNAL_DATA names one)


# The networks of Figs. 4 and 5 per profile: the paper's two, VGG16 alone on a CPU.
FIGURE_MODELS = {"smoke": ["vgg16-cifar"], "cpu": ["vgg16-cifar"], "paper": ["vgg16-cifar", "mobilenetv2-cifar"]}


def place(name: str, profile: str, out_dir: str = "", fig_dir: str = "", runs_dir: str = "", data_dir: str = "",
          threads: int = 1) -> Place:
    """A chapter's set-up from its parameters of those names: ``profile`` resolved
    (``report.resolve_profile``), its results and figures folders (``report.paths``), its run
    folders (empty ``runs_dir``: ``runs/<name>/<profile>``) and data (empty ``data_dir``:
    ``$DNAL_DATA``); torch's CPU threads set to ``threads``."""
    import os

    import torch

    from .report.results import resolve_profile

    profile = resolve_profile(name, profile)
    runs = Path(runs_dir) if runs_dir else repo_root() / "runs" / name / profile
    torch.set_num_threads(threads)
    return Place(profile, paths(name, profile, out_dir, fig_dir), runs, data_dir or os.environ.get("DNAL_DATA", ""))


def ensure(name: str, profile: str, make, train: bool = False, root: Path | str | None = None,
           out_dir: str = ""):
    """The results of experiment ``name`` under ``profile`` as final.json rows (``read_folder``):
    the folder ``report.results_dir`` finds (``$DNAL_OUT_ROOT``'s, else the committed one;
    ``root``: this results folder instead; ``out_dir``: a chapter's parameter of that name, this
    one folder, as ``report.paths`` places it), or, when there is none or ``train`` is true, the
    folder ``make()`` fills and returns. Prints one line: the profile, then the device, torch,
    date and command the results record (``report.run_line``)."""
    if out_dir:
        folder = paths(name, profile, out_dir).out
        folder = folder if has_results(folder) else None
    else:
        folder = results_dir(name, profile, root)
    if train or folder is None:
        folder = make()
    finals = read_folder(folder)
    say(f"{profile} result: {run_line(finals)}")
    return finals


def ensure_lambdas(name: str, profile: str, recipe, lams, train: bool = False, data_dir: str = "",
                   out_dir: str = "", runs_dir: str = "", threads: int = 1, device: str = "auto",
                   overrides: dict | None = None):
    """``ensure`` of a lambda sweep on CIFAR-10 (Tables II-III): when made, ``recipe`` trained at
    each of ``lams`` from one shared weight stage (``experiments.run_lambdas``) on ``data_dir``
    (empty: ``$DNAL_DATA``), its checkpoints in ``runs_dir`` (empty: ``runs/<name>/<profile>``),
    each lambda's final.json and arch.json, with the provenance (``overrides``: the recipe
    overrides it names), in ``out_dir`` (empty: ``results/<name>/<profile>``). The arguments
    are a chapter's parameters of those names."""
    import os

    def make():
        data = data_dir or os.environ.get("DNAL_DATA", "")
        if not data:
            raise ValueError("set data_dir or DNAL_DATA to the CIFAR-10 folder")
        runs = Path(runs_dir) if runs_dir else repo_root() / "runs" / name / profile
        prov = provenance(name, profile, threads, overrides, device)
        return run_lambdas(recipe, data, lams, runs, paths(name, profile, out_dir).out, prov, device)

    return ensure(name, profile, make, train, out_dir=out_dir)


# What the smoke run trains on: an ImageFolder of seeded random JPEGs, ImageNet's layout.
SMOKE_DATA = {"classes": 10, "per_class": (8, 4)}
PAPER_COLUMNS = ["method", "lambda", "macs_m", "params_m", "top1", "top5", "search_cost_epochs"]
OUR_COLUMNS = ["lambda", "macs_m", "params_m", "top1", "top5"]


def check_baseline(model, table: str, macs, params) -> str:
    """Our baseline ``model`` counted (``measure.count``) against the paper's baseline row of
    ``table``, as the lines to print (an AssertionError names what is off): ``macs`` and
    ``params`` are a (counting convention, tolerance in millions) pair or a list of them;
    ``macs`` None: the table gives no MACs (its row must say so, NaN)."""
    import math

    from .measure import count

    base, lines = paper_baseline(table), []
    for what, specs in (("macs", macs), ("params", params)):
        if specs is None:
            assert math.isnan(base[f"{what}_m"]), f"Table {table} gives {what}: check them"
            continue
        for convention, tol in [specs] if isinstance(specs[0], str) else specs:
            ours = count(model, convention=convention)[what] / 1e6
            label = f"baseline {'MACs' if what == 'macs' else 'params'} (M)" + (
                ", authors' count" if convention == "authors" else "")
            lines.append(check_close(ours, base[f"{what}_m"], tol, label))
    return "\n".join(lines)


# What ``ImageNet.walk`` says before each step: the narrative the four chapters share.
WALK_TEXT = {
    "paper": "**The paper's table**, every method it lists:",
    "baseline": "**Our baseline network** at 224x224, counted two ways: `macs` (conv and linear "
                "multiply-accumulates, every parameter) and `authors` (the convention of the authors' counter, "
                "which prints some of the paper's baseline digits; `dnal_core.measure.count`).",
    "commands": "**The paper runs** need ImageNet (`train/<wnid>/*.JPEG`, `val/<wnid>/*.JPEG`) and GPUs: one "
                "weight stage, then the architecture and finetune stages for each $\\lambda_a$ from those "
                "weights (the command is the same on one GPU without `torchrun`; `--resume` continues a killed "
                "run from its last epoch):",
    "smoke": "**Smoke run.** Here, without ImageNet: the smoke recipe (width 1/16, 64x64 crops, 8 training and "
             "4 validation images a class, 1 epoch a stage) at the paper's first $\\lambda_a$, on an "
             "ImageFolder of random JPEGs written for the purpose (10 classes, seeded). It checks that the three "
             "stages, the pruning and the counting run on this network; it says nothing about accuracy. Its "
             "`final.json` and `arch.json` are committed in `results/<name>/smoke/`.",
    "beside": "**Results beside the paper**: a committed paper-profile run of this table, else the paper's "
              "rows alone.",
}


class _PaperTable:
    """What every chapter of a paper table (its ``table`` field) can check."""
    table: str

    def check_counts(self, model, macs, params) -> str:
        """``check_baseline`` of ``model`` against this chapter's table."""
        return check_baseline(model, self.table, macs, params)


@dataclass
class ImageNet(_PaperTable):
    """One ImageNet table chapter: ``name`` (its notebook and results folder), ``table`` (the
    paper's, "IV"), ``model`` (``dnal_core.models`` name) and ``title`` (the figure's: "VGG16 on
    ImageNet"); ``out_dir``, ``fig_dir`` and ``threads`` are the chapter's parameters of those
    names (``out_dir``: where paper-profile results are read from, empty: the committed ones).
    Setting torch's CPU threads to ``threads`` is the one thing making one does."""
    name: str
    table: str
    model: str
    title: str
    out_dir: str = ""
    fig_dir: str = ""
    threads: int = 1
    lams: list = field(init=False)

    def __post_init__(self):
        import torch

        paper = paper_table(self.table)
        self.lams = paper.loc[paper["method"] == "DNAL", "lambda"].tolist()  # the paper's lambda_a
        torch.set_num_threads(self.threads)

    @property
    def baseline_row(self):
        """The paper's baseline row (``paper.paper_baseline``): ``macs_m``, ``params_m``, ..."""
        return paper_baseline(self.table)

    def paper_rows(self):
        """The paper's table (every method it lists), for the reader."""
        return reader_table(paper_table(self.table), PAPER_COLUMNS)

    def baseline(self):
        """Build our baseline network (224x224), print it counted both ways beside the paper's
        baseline row (``report.baseline_counts``), and return it."""
        model = build(self.model)
        print(f"{self.model} at {tuple(model.input_size)}")
        counts = baseline_counts(model, self.table)
        print(counts.to_string(index=False, float_format=lambda x: f"{x:.2f}"))
        return model

    def commands(self, data_dir: str = "", gpus: int = 8) -> None:
        """Print the shell commands of a paper-profile run (``report.paper_commands``) on
        ``gpus`` GPUs, wrapped to the page; ``data_dir`` empty: ``$IMAGENET`` (as set, or as
        the variable's name when unset)."""
        import os

        data = data_dir or os.environ.get("IMAGENET", "$IMAGENET")
        cmds = paper_commands(self.name, self.model, self.lams, data, gpus)
        print("\n\n".join(shell(c) for c in cmds))

    def smoke(self, train: bool = False, runs_dir: str = "", device: str = "auto"):
        """The smoke run's final.json rows (``ensure``): committed, or trained when none are (or
        ``train``): the smoke recipe at the paper's first lambda_a on a generated 10-class
        ImageFolder, all three stages, in ``runs_dir`` (empty: ``runs/<name>/smoke``)."""
        out = paths(self.name, "smoke", "", self.fig_dir).out

        def make():
            runs = Path(runs_dir) if runs_dir else repo_root() / "runs" / self.name / "smoke"
            data = random_imagefolder(runs / "imagefolder", **SMOKE_DATA)
            prov = provenance(self.name, "smoke", self.threads, {"data": "generated 10-class ImageFolder"},
                              device)
            return run_lambdas(get_recipe(self.model, "smoke"), data, [float(self.lams[0])], runs, out, prov,
                               device, shared_weights=False, workers=0)

        return ensure(self.name, "smoke", make, train)

    @staticmethod
    def rows(finals):
        """Our rows of ``finals`` (baseline first, ``report.ours_table``), for the reader."""
        return reader_table(ours_table(finals), OUR_COLUMNS)

    def paper_run(self):
        """``(ours, table)``: committed paper-profile results (in ``out_dir`` if set) beside the
        paper's rows, or ``(None, the paper's rows)`` when there are none
        (``report.paper_run_table``); prints where they came from, or that none exist."""
        folder = paths(self.name, "paper", self.out_dir, self.fig_dir).out if self.out_dir else \
            results_dir(self.name, "paper")
        ours, table, message = paper_run_table(self.name, self.table, folder)
        say(message)
        return ours, table

    @staticmethod
    def beside(table):
        """A ``paper_run`` table for the reader (the columns ``COLUMNS`` knows)."""
        return reader_table(table, [c for c in table.columns if c in COLUMNS])

    def figure(self, ours, x: str = "macs_m"):
        """Top-1 against ``x`` (``macs_m``; ``params_m`` where the table gives no MACs), the
        paper's points and our pruned rows (``ours`` from ``paper_run``, None: the paper's
        alone), saved as ``figures/<name>.png`` and returned for the cell to show."""
        mine = None if ours is None else ours[ours["lambda"] != "-"]
        fig = plot_acc_vs_macs(self.table, mine, x=x, title=f"Table {self.table}: {self.title}")
        return save_figure(fig, self.name, paths(self.name, "paper", self.out_dir, self.fig_dir).fig)

    def walk(self, data_dir: str = "", train: bool = False, runs_dir: str = "", device: str = "auto"):
        """The steps the four ImageNet chapters share, each after its sentence of ``WALK_TEXT``,
        shown in order: the paper's table, our baseline counted both ways (``baseline``), the
        commands of a paper run (``commands``), the smoke run (``smoke``; ``train``, ``runs_dir``
        and ``device`` as there) and its rows, a paper run beside the paper's rows if one is
        committed (``paper_run``). Returns ``(model, smoke, ours, table)`` for the chapter's
        figure and checks. The arguments are the chapter's parameters of those names."""
        from IPython.display import Markdown, display

        def say_md(key):
            display(Markdown(WALK_TEXT[key]))

        say_md("paper")
        display(self.paper_rows())
        say_md("baseline")
        model = self.baseline()
        say_md("commands")
        self.commands(data_dir)
        say_md("smoke")
        smoke = self.smoke(train, runs_dir, device)
        display(self.rows(smoke))
        say_md("beside")
        ours, table = self.paper_run()
        display(self.beside(table))
        return model, smoke, ours, table

    def check(self, smoke, ours, table) -> str:
        """The checks every ImageNet chapter makes after its own, as the lines to print: the
        smoke run's baseline is this network at the smoke width with 10 classes (counted, like
        every final.json, at the 224x224 input whatever crop it trained on) and pruning saved
        MACs; and, when a paper run is shown (``ours``), its top-1 within half a point of the
        paper's."""
        lines = [check_smoke_baseline(self.model, smoke, SMOKE_DATA["classes"])]
        if ours is not None:
            lines += check_top1(table, 0.5)
        return "\n".join(lines)


# What ``Cifar.walk`` says before each step ({table}: the chapter's table).
CIFAR_WALK_TEXT = {
    "baseline": "**Our baseline network** at full width, whatever the profile, counted as Table {table}'s first "
                "row counts it:",
    "run": "**The runs**: one weight stage, then the architecture and finetune stages of each $\\lambda_a$ "
           "from its weights (`weights_from`: the weight stage does not depend on $\\lambda_a$). Run folders "
           "keep the checkpoints (not committed); the results folder gets each lambda's `final.json` (resolved "
           "recipe, git commit, torch, device, date and the call that made it) and its learned widths in "
           "`arch/`. The results shown:",
    "beside": "**Our rows beside Table {table}'s** (`dnal_core.paper`). Each MACs reduction is against its own "
              "side's baseline; ours is the dense network after the weight stage (not finetuned further), and a "
              "drop is its top-1 (top-5) minus the pruned network's, in points.",
    "full": "**The full table**, one column per $\\lambda_a$: MACs, parameters, top-1 and top-5 of both sides.",
    "others": "**The other methods of Table {table}**, as the paper reports them:",
}


# The smoke profile of a CIFAR-10 table chapter: three lambdas, one epoch for the search and the
# finetuning (near a minute on 2 CPU cores), on the smoke recipe (quarter width, 100 training /
# 20 test images a class).
CIFAR_SMOKE = {"lams": [1e-4, 3e-4, 5e-4], "overrides": {"arch.epochs": 1, "finetune.epochs": 1}}


@dataclass(kw_only=True)
class CifarParams:
    """What a CIFAR-10 chapter passes on from its parameters cell, by keyword, each under its
    parameter's name (``Cifar``, ``chapter_sweep.Sweep``)."""
    profile: str = "smoke"
    data_dir: str = ""
    out_dir: str = ""
    fig_dir: str = ""
    runs_dir: str = ""
    threads: int = 1
    device: str = "auto"


@dataclass
class Cifar(CifarParams, _PaperTable):
    """One CIFAR-10 table chapter with a lambda sweep from one weight stage (Tables II and III):
    ``name``, ``table`` ("II"), ``model`` and ``title`` as ``ImageNet``'s; the chapter's parameters
    by keyword (``CifarParams``). ``lams``: the smoke profile's (``CIFAR_SMOKE``),
    else every DNAL row of the paper's table; ``recipe``: the profile's, with the smoke
    overrides (``overrides``) at the smoke profile. Making one sets torch's CPU threads and
    pandas' float display (4 significant digits) as the chapters show their tables."""
    name: str
    table: str
    model: str
    title: str
    lams: list = field(init=False)
    overrides: dict | None = field(init=False)
    recipe: object = field(init=False)

    def __post_init__(self):
        import pandas as pd
        import torch

        from .paper import paper_lambdas
        from .recipes import override

        smoke = self.profile == "smoke"
        self.lams = list(CIFAR_SMOKE["lams"]) if smoke else paper_lambdas(self.table)
        self.overrides = dict(CIFAR_SMOKE["overrides"]) if smoke else None
        recipe = get_recipe(self.model, self.profile)
        self.recipe = override(recipe, self.overrides) if smoke else recipe
        torch.set_num_threads(self.threads)
        pd.set_option("display.float_format", lambda x: f"{x:.4g}")

    def baseline(self) -> dict:
        """The full-width network counted (``measure.count``), whatever the profile: printed in
        one line and returned, for the chapter's check against the paper's first row."""
        from .measure import count

        full = count(build(self.model))
        print(f"{self.model}: {full['macs'] / 1e6:.2f}M MACs, {full['params'] / 1e6:.2f}M params")
        return full

    def run(self, train: bool = False):
        """The committed results of the sweep (``ensure_lambdas``), made if there are none or if
        ``train``; one line says where they came from."""
        return ensure_lambdas(self.name, self.profile, self.recipe, self.lams, train, self.data_dir, self.out_dir,
                              self.runs_dir, self.threads, self.device, overrides=self.overrides)

    def beside(self, finals):
        """``(ours, table, shown)``: our rows, the paper's beside them (``report.beside_paper``)
        and that table in the columns that fit the page."""
        from .report.compare import beside_paper
        from .report_tables import BESIDE_PAPER

        ours, table = beside_paper(self.table, finals)
        return ours, table, reader_table(table, BESIDE_PAPER)

    def walk(self, train: bool = False):
        """The steps the CIFAR-10 table chapters share, each after its sentence of
        ``CIFAR_WALK_TEXT``: our baseline counted (``baseline``), the results (``run``; made if
        none, or if ``train``), our rows beside the paper's in the columns that fit the page and
        in full (``beside``), the paper's other methods (``others``). Returns ``(full, finals,
        ours, table)`` for the chapter's figure and checks."""
        from IPython.display import Markdown, display

        def say_md(key):
            display(Markdown(CIFAR_WALK_TEXT[key].format(table=self.table)))

        say_md("baseline")
        full = self.baseline()
        say_md("run")
        finals = self.run(train)
        ours, table, shown = self.beside(finals)
        say_md("beside")
        display(shown)
        say_md("full")
        display(reader_table(table, [c for c in table.columns if c in COLUMNS]).transposed())
        say_md("others")
        display(self.others())
        return full, finals, ours, table

    def others(self):
        """The other methods of the paper's table, as the paper reports them."""
        rows = paper_table(self.table).query("method not in ['DNAL', 'Baseline']")
        return reader_table(rows, ["method", "macs_m", "params_m", "top1"])

    def figure(self, ours):
        """Top-1 against MACs and against MACs relative to each side's baseline
        (``report.plot_tables``), saved as ``figures/<name>_<profile>.png``; returned to show."""
        from .report.plots import plot_tables

        fig = plot_tables(self.table, ours, f"Table {self.table}: {self.title}", self.profile)
        return save_figure(fig, f"{self.name}_{self.profile}", paths(self.name, self.profile, self.out_dir,
                                                                    self.fig_dir).fig)

    def check(self, ours, table) -> str:
        """The checks both chapters make after their own count's: a larger lambda costs no more
        MACs and no pruned row more than the baseline; at the paper profile, every top-1 within
        half a point of the paper's. The lines to print."""
        from .report.compare import check_macs_order

        check_macs_order(ours)
        return "\n".join(check_top1(table, 0.5)) if self.profile == "paper" else "MACs order: as expected"
