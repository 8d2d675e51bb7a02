"""What the book's notebooks share: where things go, figures, and the paper beside our numbers.

Notebooks hold narrative, parameters, tables and plots; the few helpers they would otherwise
copy from one another live here, one module a concern, every name re-exported here
(``report.paths``, ``report.beside_paper``, ...). Training, pruning and counting stay in
``train``, ``prune`` and ``measure``, the experiments' runs in ``experiments`` (``run_lambdas``
there), a pruned ResNet's stream count in ``prune.stream``: this package places, reads and
shows results.

  ``results``  where results go and come from: ``paths``, ``read_results``, ``results_dir``,
               ``read_folder``, ``has_results``, ``best_profile``, ``resolve_profile``,
               ``provenance``, ``copy_metrics``, ``repo_root``, ``out_root``
               (``$DNAL_OUT_ROOT``), ``random_imagefolder`` (seeded random JPEGs, ImageNet's
               layout, for smoke runs)
  ``text``     our rows and the words around them: ``ours_table``, ``lambda_label`` (lambda as
               the paper writes it, the key rows match on), ``say`` and ``shell`` (wrapped to
               the page's 88 characters), ``run_line``
  ``plots``    ``save_figure`` (deterministic PNG bytes, shown as the same PNG),
               ``plot_acc_vs_macs``, ``plot_acc_vs_relative_macs``, ``plot_tables``
  ``compare``  the paper beside us: ``paper_vs_ours``, ``beside_paper``, ``paper_run_table``,
               ``baseline_counts``, ``paper_commands``, and the checks a reproduction makes
               before it shows a number (``check_close``, ``check_top1``,
               ``check_macs_order``, ``check_smoke_baseline``)

The chapters' reader tables are ``dnal_core.report_tables``; Table I's cpu-profile views
(controls, sweep, widths) ``dnal_core.report_cpu``, which ``dnal_core.chapter_sweep`` shows; what a chapter calls once per experiment
(``ensure``) and the ImageNet chapters' shared steps ``dnal_core.chapter``, above this package
and ``experiments``.
"""
from __future__ import annotations

from .compare import (baseline_counts, beside_paper, check_close, check_macs_order, check_smoke_baseline, check_top1,
                      paper_commands, paper_run_table, paper_vs_ours)
from .plots import (AXIS_LABEL, MARKERS, figure_png, plot_acc_vs_macs, plot_acc_vs_relative_macs, plot_tables,
                    save_figure)
from .results import (OUT_ROOT_ENV, PLAN_FILES, PROFILES, SCALE_ORDER, RunPaths, best_profile, copy_metrics,
                      has_results, out_root, paths, provenance, random_imagefolder, read_folder, read_results,
                      repo_root, resolve_profile, results_dir)
from .text import PAGE_WIDTH, lambda_label, ours_table, run_line, say, shell

__all__ = ["AXIS_LABEL", "MARKERS", "OUT_ROOT_ENV", "PAGE_WIDTH", "PLAN_FILES", "PROFILES", "SCALE_ORDER", "RunPaths",
           "baseline_counts", "best_profile", "beside_paper", "check_close", "check_macs_order",
           "check_smoke_baseline", "check_top1", "copy_metrics", "figure_png", "has_results", "lambda_label",
           "out_root", "ours_table", "paper_commands", "paper_run_table", "paper_vs_ours", "paths",
           "plot_acc_vs_macs", "plot_acc_vs_relative_macs", "plot_tables", "provenance", "random_imagefolder",
           "read_folder", "read_results", "repo_root", "resolve_profile", "results_dir", "run_line", "save_figure",
           "say", "shell"]
