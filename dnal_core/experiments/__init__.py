"""The book's experiments beyond one ``dnal run``: a lambda sweep of the architecture stage, the
choice of lambdas from it, and the controls that say whether learning the widths pays.

Every piece is a ``run_pipeline`` call into its own run folder (checkpoints every epoch, so a
killed experiment continues where it stopped when called again), and every result is written
to the committed results folder as soon as its run finishes (small JSON/JSONL, with the date,
the device and the command). One module a concern, every name re-exported here:

  ``runs``       the pieces: ``weights`` (one weight stage that every lambda's search starts
                 from, runs/weights), ``search(lam)`` (the architecture stage at ``lam`` from
                 it, runs/lam<label>; its pruned MACs are known when it ends), ``finetune(lam)``,
                 ``claim`` (processes sharing run folders train each once), ``provenance``
  ``sweeps``     ``lambda_sweep``, ``choose_lambdas`` (the lambdas whose MACs reductions come
                 closest to target reductions, 1.5x, 2.5x, 5x, 10x: chosen on MACs, never on
                 test accuracy), ``calibration`` (another loss form's map), ``table1_search``
  ``controls``   ``control(width)``: the dense network with every width scaled by one factor,
                 trained from scratch for as many epochs as weights + architecture + finetune,
                 one cosine schedule (factor 1: the like-for-like dense baseline; smaller
                 factors: the uniform-width network at a pruned network's MACs);
                 ``table1_controls``
  ``chapters``   the figure chapters' runs (Figs. 3-5, ``figure_runs``) and the budget
                 chapter's (``budget_runs``), from Table I's
  ``lambdas``    ``run_lambdas``: the table chapters' runs (one weight stage, then each lambda)
  ``precision``  bf16 autocast against fp32 (the CPU speed issue's accuracy check)
  ``own``        your own network at the cpu scale (``experiments.own``, not re-exported): DNAL's
                 budget against Torch-Pruning's global L1 and uniform width

Run from the shell (``make book PROFILE=cpu`` runs the same through the notebooks)::

    python -m dnal_core.experiments table1 --part search   --data $DNAL_DATA
    python -m dnal_core.experiments table1 --part controls --data $DNAL_DATA
    python -m dnal_core.experiments table2 --part search   --data $DNAL_DATA   # ResNet20 (cpu)
    python -m dnal_core.experiments own --part search      --data $DNAL_DATA   # your own network

The two parts are independent processes, one CPU thread each (on the 2-core machine two
1-thread runs side by side take about 107 s an epoch each, one 2-thread run 58 s: the same
throughput, benchmarks/results/cpu_2core.json); ``controls`` waits for the search part's sweep
before it trains the uniform-width networks.
"""
from __future__ import annotations

from .chapters import (BUDGET_TARGETS, budget_name, budget_runs, fig3_lines, fig4_runs, fig5_runs, figure_lambda,
                       figure_runs, pick_lambda)
from .controls import control, control_recipe, table1_controls, uniform_width_for
from .lambdas import run_lambdas
from .runs import (FINAL_KEYS, MODELS, NAMES, TABLE2_TARGETS, claim, finetune, label, made, model_for, provenance,
                   search, search_row, weights)
from .sweeps import (CODE_SWEEP, REFINE_TOL, SWEEP, TARGET_REDUCTIONS, calibration, choose_lambdas, extend,
                     lambda_sweep, refine, table1_search)

__all__ = ["BUDGET_TARGETS", "CODE_SWEEP", "FINAL_KEYS", "MODELS", "NAMES", "REFINE_TOL", "SWEEP", "TABLE2_TARGETS",
           "TARGET_REDUCTIONS",
           "budget_name", "budget_runs", "calibration", "choose_lambdas", "claim", "control", "control_recipe",
           "extend", "fig3_lines", "fig4_runs", "fig5_runs", "figure_lambda", "figure_runs", "finetune", "label",
           "lambda_sweep", "made", "model_for", "pick_lambda", "provenance", "refine", "run_lambdas", "search",
           "search_row",           "table1_controls", "table1_search", "uniform_width_for", "weights"]
