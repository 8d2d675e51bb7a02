"""``dnal prune RUN_DIR --out DIR``: remove the channels whose hard gate is closed.

RUN_DIR is what ``dnal run`` writes; its ``search.pt`` is the gated network after the
architecture stage (learned s, final delta and threshold). DIR receives ``arch.json``,
``weights.pt`` and ``report.json``; the report is also printed as one JSON object."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from ..io import check_out_folder, load_model
from ..prune import PruneCheckError, prune, save_pruned

SEARCH_FILE = "search.pt"  # the trainer's model file after the architecture stage


def register(sub) -> None:
    p = sub.add_parser("prune", help="remove closed channels; print MACs/params before and after as JSON",
                       description="Turn the gated network of a run (RUN_DIR/search.pt) into a "
                                   "smaller network without SS layers, check that it computes "
                                   "what the hard-gated network computes, and save it.")
    p.add_argument("run_dir", help="a run directory written by `dnal run` (holds search.pt)")
    p.add_argument("--out", required=True, help="directory for arch.json, weights.pt, report.json")
    p.add_argument("--min-channels", type=int, default=1,
                   help="every kept layer keeps at least this many channels (largest s)")
    p.add_argument("--round-to", type=int, default=1,
                   help="round kept widths up to a multiple of this (e.g. 8), adding the largest-s channels")
    p.add_argument("--batch-size", type=int, default=4, help="random images for the equivalence check")
    p.add_argument("--seed", type=int, default=0, help="seed of the check's random batch")
    p.set_defaults(func=run)


def run(args) -> int:
    run_dir = Path(args.run_dir)
    if not run_dir.is_dir():
        raise ValueError(f"run directory not found: {run_dir}")
    search = run_dir / SEARCH_FILE
    if not search.is_file():
        raise ValueError(f"{run_dir} has no {SEARCH_FILE} (written by `dnal run` after the architecture stage)")
    out = Path(args.out)
    check_out_folder(out)  # a file in its place, a file on its way, a read-only place
    if out.resolve() == run_dir.resolve() or (out / SEARCH_FILE).exists():
        raise ValueError(f"--out {out} is a run directory: its weights.pt and arch.json are the trainer's; "
                         "choose another directory")
    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {args.batch_size}")
    model, meta = load_model(search)
    try:
        res = prune(model, min_channels=args.min_channels, round_to=args.round_to,
                    batch_size=args.batch_size, seed=args.seed)
    except PruneCheckError as e:  # not bad input: a pruner bug; nothing is written
        print(f"dnal prune: check failed: {e}", file=sys.stderr)
        return 1
    report = {"run_dir": str(run_dir), "out": str(args.out), **res.report}
    save_pruned(res, args.out, report)
    print(json.dumps(report))
    return 0
