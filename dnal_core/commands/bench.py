"""``dnal bench DIR``: latency of the dense and the pruned network beside their MACs.

Fewer MACs become less time only where the work is not launch- or overhead-bound
(notes/anchors.md): this prints, per device and batch size, the median latency of both
networks after warm-up (``dnal_core.measure.latency``) and the MACs ratio next to the
latency ratio. The dense network is the pruned one's source architecture at full width,
without SS layers (random weights: latency does not depend on them)."""
from __future__ import annotations

import json
import statistics
from pathlib import Path

import torch

from ..attach import NAME as GENERIC, strip_gates
from ..io import read_json
from ..machine import cpu_kind
from ..measure import count_macs, latency
from ..prune import REPORT_FILE, build_pruned, load_pruned


def register(sub) -> None:
    p = sub.add_parser("bench", help="median latency of the dense vs the pruned network (JSON)",
                       description="Time the dense and the pruned network (from `dnal prune --out "
                                   "DIR`) at batch 1 and a large batch, on the CPU and on a GPU "
                                   "where there is one.")
    p.add_argument("dir", help="a directory written by `dnal prune --out`")
    p.add_argument("--batch-sizes", default="1,64", help="comma-separated batch sizes")
    p.add_argument("--devices", default="auto", help="comma-separated: cpu, cuda; auto = cpu and cuda if present")
    p.add_argument("--warmup", type=int, default=10, help="untimed passes first")
    p.add_argument("--iters", type=int, default=30, help="timed passes per round")
    p.add_argument("--rounds", type=int, default=3,
                   help="dense and pruned are timed in alternating rounds (load drifts hit both); "
                        "the median of the rounds' medians is reported")
    p.add_argument("--threads", type=int, default=None, help="CPU threads (default: torch's)")
    p.set_defaults(func=run)


def _ints(text: str, what: str) -> list[int]:
    try:
        vals = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"{what} must be comma-separated integers, got {text!r}") from None
    if not vals or any(v < 1 for v in vals):
        raise ValueError(f"{what} must be positive integers, got {text!r}")
    return vals


def _devices(text: str) -> list[str]:
    if text == "auto":
        return ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    devs = [d.strip() for d in text.split(",") if d.strip()]
    for d in devs:
        if d not in ("cpu", "cuda"):
            raise ValueError(f"unknown device {d!r}; valid: cpu, cuda, auto")
        if d == "cuda" and not torch.cuda.is_available():
            raise ValueError("--devices cuda: no CUDA device here")
    return devs


def dense_of(pruned_dir: Path, pruned: torch.nn.Module) -> torch.nn.Module:
    """The full-width network of the pruned one's family, without SS layers."""
    report = pruned_dir / REPORT_FILE
    arch = read_json(report).get("source_arch") if report.is_file() else None
    if arch is None:  # no report (save_pruned of a bare model): the pruned arch at default widths
        arch = {k: v for k, v in pruned.arch().items()
                if k not in ("widths", "out_index", "folded", "stream_bias", "stream_widths", "ops")}
    if arch.get("model") == GENERIC:  # attach_gates' network: the user's, gates taken out
        return strip_gates(build_pruned({**arch, "keep": None, "widths": None}))
    return build_pruned({**arch, "gated": False})


def run(args) -> int:
    batches, devices = _ints(args.batch_sizes, "--batch-sizes"), _devices(args.devices)
    if args.warmup < 0 or args.iters < 1 or args.rounds < 1:
        raise ValueError("--warmup must be >= 0, --iters and --rounds >= 1")
    if args.threads is not None:
        if args.threads < 1:
            raise ValueError("--threads must be >= 1")
        torch.set_num_threads(args.threads)
    d = Path(args.dir)
    pruned = load_pruned(d)
    dense = dense_of(d, pruned).eval()
    macs_dense, macs_pruned = count_macs(dense), count_macs(pruned)
    rows = []
    for dev in devices:
        for bs in batches:
            times = {"dense": [], "pruned": []}
            for r in range(args.rounds):
                for key, net in (("dense", dense), ("pruned", pruned)):
                    times[key].append(latency(net, bs, device=dev, warmup=args.warmup if r == 0 else 1,
                                              iters=args.iters))
            t_dense, t_pruned = statistics.median(times["dense"]), statistics.median(times["pruned"])
            rows.append({"device": dev, "batch_size": bs, "dense_ms": 1e3 * t_dense,
                         "pruned_ms": 1e3 * t_pruned, "latency_ratio": t_pruned / t_dense,
                         "macs_ratio": macs_pruned / macs_dense})
    device_names = {"cpu": f"cpu ({torch.get_num_threads()} threads)"}
    if "cuda" in devices:
        device_names["cuda"] = torch.cuda.get_device_name()
    print(json.dumps({"dir": str(d), "model": pruned.name, "macs_dense": macs_dense,
                      "macs_pruned": macs_pruned, "macs_ratio": macs_pruned / macs_dense,
                      "torch": torch.__version__, "devices": device_names, "cpu_kind": cpu_kind(),
                      "rounds": args.rounds,
                      "iters": args.iters,
                      "ratio": "pruned / dense", "rows": rows}))
    return 0
