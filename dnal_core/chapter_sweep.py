"""A chapter over one lambda sweep and its controls: Table I, and Table II at the cpu profile.

``experiments.table1_search`` trains one weight stage, sweeps eq. 4's lambda from it, chooses
lambdas on MACs and finetunes them; ``experiments.table1_controls`` trains the dense network
and, at each chosen lambda's MACs, the uniformly narrowed network, all for as many epochs as
the three stages. ``Sweep`` is what a chapter calls to make (or find) and show those results:

  ``run``        the finetuned lambdas, made when none are committed (or when ``train``)
  ``made``       one line: the profile, how many networks, the device, date and command
  ``rows``       one row per lambda beside the dense and uniform controls (``table1_rows``)
  ``ours``, ``stages``, ``paper``    the reader's tables: ours, the dense control and weight
                 stage(s), the paper's rows as reductions and drops
  ``figure``, ``widths``, ``sweep``  the plots (saved as ``figures/<name>_<profile>*.png``)
  ``stream``     a ResNet's pruned MACs two ways (ours, the authors' count) per lambda
  ``check``      what every such chapter asserts of its rows

A chapter without committed results at a profile it does not train (Table II's cpu section)
gets ``rows() is None``, and each display method then says the experiment has not run yet
and how to run it.
"""
from __future__ import annotations

import json
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

from .chapter import CifarParams, Place, _PaperTable, place
from .experiments.runs import NAMES, model_for
from .models import build
from .recipes import get_recipe
from .report.results import has_results, provenance, read_folder, results_dir
from .report.text import PAGE_WIDTH, lambda_label, run_line
from .report_tables import reader_table

ROW_COLUMNS = ["lambda", "macs_m", "params_m", "macs_x", "top1", "drop", "uniform_top1", "dnal_minus_uniform"]


@dataclass
class Sweep(CifarParams, _PaperTable):
    """One chapter's lambda sweep with its controls. ``name`` (its notebook and results folder,
    one of ``experiments.NAMES``), ``table`` ("I"), ``model`` (the paper's network, for the
    baseline check) and ``title`` (what the figures call the trained network); the chapter's
    parameters by keyword (``chapter.CifarParams``: ``profile``, default "smoke", or "auto" for
    the largest-scale committed results; ``data_dir``, ...). Derived: ``place`` (``chapter.place``:
    the profile resolved, folders, data; torch's threads set), ``net`` (the network trained at
    this profile, ``experiments.model_for``: ResNet20 for Table II at cpu), ``recipe`` and
    ``folder`` (the results shown; None while there are none)."""
    name: str
    table: str
    model: str
    title: str
    place: Place = field(init=False)
    net: str = field(init=False)
    recipe: object = field(init=False)
    folder: Path | None = field(init=False)

    def __post_init__(self):
        self.place = place(self.name, self.profile, self.out_dir, self.fig_dir, self.runs_dir, self.data_dir,
                           self.threads)
        self.profile = self.place.profile
        experiment = {v: k for k, v in NAMES.items()}[self.name]
        self.net = model_for(experiment, self.profile)
        self.recipe = get_recipe(self.net, self.profile)
        folder = self.place.run.out if self.out_dir else results_dir(self.name, self.profile)
        self.folder = folder if has_results(folder) and any(Path(folder).glob("lam*.json")) else None

    # -- making -------------------------------------------------------------------------------
    def run(self, train: bool = False, search: dict | None = None):
        """The final.json rows of the finetuned lambdas. When there are none (or ``train``) and
        ``search`` is given, the experiment runs first into the chapter's results folder:
        ``table1_search`` with ``search`` (its grid, targets, ...), then ``table1_controls``.
        ``search`` None: nothing is trained (a profile the chapter only shows, its experiment
        run from the shell), and None is returned while there are no results."""
        if search is not None and (train or self.folder is None):
            from .experiments import table1_controls, table1_search

            if not self.place.data:
                raise ValueError("set data_dir or DNAL_DATA to the CIFAR-10 folder")
            command = provenance(self.name, self.profile, self.threads, None, self.device)["command"]
            out = self.place.run.out
            table1_search(self.recipe, self.place.data, self.place.runs, out, command, self.device, **search)
            table1_controls(self.recipe, self.place.data, self.place.runs, out, command, self.device, poll=0)
            self.folder = out
        if self.folder is None:
            return None
        return read_folder(self.folder).query("source.str.startswith('lam')")

    def made(self, finals, command: str = ""):
        """One Markdown line: the profile, how many networks, where they were made; without
        results, that the experiment has not run and ``command`` (the shell's) that runs it."""
        from IPython.display import Markdown

        if finals is None:
            return Markdown(f"**Profile `{self.profile}`: not run yet.** {command}".strip())
        return Markdown(f"**Profile `{self.profile}`** ({len(finals)} finetuned networks, {self.net}). "
                        f"Made on {run_line(finals)}.")

    # -- reading ------------------------------------------------------------------------------
    def rows(self):
        """``report_cpu.table1_rows`` of the results (None without results)."""
        from .report_cpu import table1_rows

        return None if self.folder is None else table1_rows(self.folder)

    def dense(self) -> dict | None:
        """The dense control's result (None while it has not run)."""
        from .report_cpu import controls

        return None if self.folder is None else controls(self.folder)["dense"]

    @staticmethod
    def _pending():
        from IPython.display import Markdown

        return Markdown("*Not run yet.*")

    def ours(self, rows):
        """Our rows for the reader: MACs, parameters, reduction, top-1, drop from the dense
        control and the uniform-width network of the same MACs ("not run" while it has not)."""
        return self._pending() if rows is None else reader_table(rows, ROW_COLUMNS, missing="not run")

    def stages(self, finals):
        """The dense control and the weight stage(s) the finetuned rows started from (a lost run
        folder means a re-trained weight stage: the table says which rows come from which)."""
        import pandas as pd

        if finals is None:
            return self._pending()
        dense = self.dense()
        stages = finals.groupby("baseline_top1")["lambda"].apply(
            lambda x: ", ".join(lambda_label(v) for v in sorted(x)))
        first = {"network": f"dense, {dense['epochs']} epochs (the control)" if dense else
                 "dense control: not run yet",
                 "macs_m": dense["macs"] / 1e6 if dense else float("nan"),
                 "top1": dense["top1"] if dense else float("nan")}
        epochs = finals.iloc[0]["config"]["weights"]["epochs"]  # as the results were made
        rows = [first] + [{"network": f"weight stage ({epochs} ep.), for lambda {lams}",
                           "macs_m": finals.iloc[0]["baseline_macs"] / 1e6, "top1": top1}
                          for top1, lams in stages.items()]
        return reader_table(pd.DataFrame(rows), {"network": "network", "macs_m": None, "top1": None},
                            missing="not run")

    def paper(self):
        """The paper's DNAL rows of the table as reductions and drops (``paper_relative``)."""
        from .report_cpu import paper_relative

        return reader_table(paper_relative(self.table), ["lambda", "macs_x", "params_x", "drop"])

    # -- plots --------------------------------------------------------------------------------
    def _save(self, fig, suffix: str = ""):
        from .report.plots import save_figure

        return save_figure(fig, f"{self.name}_{self.profile}{suffix}", self.place.run.fig)

    def figure(self, rows, finals):
        """Top-1 against MACs (DNAL, uniform width, dense) and the drop against relative MACs
        beside the paper's (``report_cpu.plot_table1``)."""
        from .report_cpu import plot_table1

        if rows is None:
            return self._pending()
        title = f"Table {self.table} at the {self.profile} profile: {self.title}"
        return self._save(plot_table1(rows, self.dense(), finals.iloc[0]["baseline_macs"], self.table, title,
                                      smoke=self.profile == "smoke"))

    def widths(self, rows):
        """The channels each gated layer keeps, per lambda, against the uniform network's."""
        from .report_cpu import plot_widths

        if rows is None:
            return self._pending()
        base = build(self.net, width_mult=self.recipe.width_mult).widths
        # a ResNet's gates: two a block, after its inner conv and after its output conv
        xlabel = "gate (two a residual block)" if self.net.startswith("resnet") else "conv layer"
        return self._save(plot_widths(self.folder, rows["lambda"].tolist(), base, xlabel), "_widths")

    def chosen(self) -> list[float]:
        return json.loads((self.folder / "chosen.json").read_text())["lambdas"]

    def sweep(self):
        """The MACs reduction after the architecture stage of every searched lambda, the chosen
        ones ringed (``report_cpu.plot_sweep``)."""
        from .report_cpu import plot_sweep, read_sweep

        if self.folder is None:
            return self._pending()
        fig = plot_sweep(read_sweep(self.folder), self.chosen(), f"lambda sweep ({self.profile})")
        return self._save(fig, "_sweep")

    # -- counting and checks --------------------------------------------------------------------
    def stream(self, rows):
        """Per lambda, the pruned ResNet's MACs as we count them (the residual stream kept whole)
        and as the authors count them (masked stream channels gone; ``prune.stream``)."""
        import pandas as pd

        from .models import build_from_arch
        from .prune.stream import stream_gap_pruned
        from .report_tables import STREAM_GAP

        if rows is None:
            return self._pending()
        out = []
        for lam in rows["lambda"]:
            ours, authors = stream_gap_pruned(build_from_arch(json.loads(
                (self.folder / "arch" / f"lam{lam}.json").read_text())))
            out.append({"lambda": lam, "ours_macs_m": ours / 1e6, "authors_macs_m": authors / 1e6,
                        "ratio": ours / authors})
        cols = ("ours_macs_m", "authors_macs_m", "ratio")  # as stream_gap_table's
        return reader_table(pd.DataFrame(out), {"lambda": None, **{k: STREAM_GAP[k] for k in cols}})

    def check(self, rows, finals) -> str:
        """What every sweep chapter asserts of its rows (an AssertionError names what is off):
        the baseline they name is this profile's network; a larger lambda never costs more MACs
        and no row more than the baseline; every uniform control within 2% of its DNAL network's
        MACs. Returns the line to print: how many lambdas, the reductions, how many controls, and
        whether every chosen lambda is finetuned yet."""
        from .measure import count

        if rows is None:
            return "no results yet: nothing to check"
        small = count(build(self.net, width_mult=self.recipe.width_mult))
        base = finals.iloc[0]
        assert (base["baseline_macs"], base["baseline_params"]) == (small["macs"], small["params"]), (base, small)
        assert rows["macs_m"].is_monotonic_decreasing and (rows["macs_m"] * 1e6 <= small["macs"]).all(), rows
        u = rows.dropna(subset=["uniform_top1"])
        assert ((u["uniform_macs_m"] / u["macs_m"] - 1).abs() <= 0.02).all(), u
        chosen = self.chosen()
        todo = [lam for lam in chosen if lambda_label(lam) not in set(rows["lambda"])]
        state = ("every chosen lambda finetuned" if not todo else
                 f"{len(chosen) - len(todo)} of the {len(chosen)} chosen lambdas finetuned so far: "
                 "the experiment is still running (its command resumes it)")
        line = (f"{len(rows)} lambdas, reductions {rows['macs_x'].min():.2f}x to {rows['macs_x'].max():.2f}x; "
                f"{len(u)} uniform controls; {state}")
        return "\n".join(textwrap.wrap(line, PAGE_WIDTH))  # printed: lines that fit the page

    def complete(self, rows) -> bool:
        """Whether every chosen lambda has a finetuned row."""
        return rows is not None and all(lambda_label(lam) in set(rows["lambda"]) for lam in self.chosen())
