"""``dnal count MODEL [--widths FILE] [--placement P]``: MACs and params as one JSON object."""
from __future__ import annotations

import json

from ..io import read_json
from ..measure import CONVENTIONS, count
from ..models import DEFAULT_PLACEMENT, build, list_models


def register(sub) -> None:
    p = sub.add_parser("count", help="print the MACs and params of a model as JSON",
                       description="Count MACs (what the paper calls FLOPs) and parameters of a "
                                   f"registered model. Models: {', '.join(list_models())}.")
    p.add_argument("model", help="a registered model name")
    p.add_argument("--widths", metavar="FILE",
                   help="JSON file: a list of widths (one per SS gate) or an arch.json object")
    p.add_argument("--placement", default=DEFAULT_PLACEMENT, help="SS placement (Fig. 4)")
    p.add_argument("--width-mult", type=float, default=1.0, help="scale every default width")
    p.add_argument("--convention", default="macs", choices=CONVENTIONS,
                   help="macs: conv+linear multiply-accumulates (default); authors: the authors' "
                        "counter, as some of the paper's baselines are printed")
    p.set_defaults(func=run)


def run(args) -> int:
    kwargs = {"placement": args.placement, "width_mult": args.width_mult}
    if args.widths:
        data = read_json(args.widths)
        if isinstance(data, dict):
            if data.get("model", args.model) != args.model:
                raise ValueError(f"{args.widths} describes {data['model']!r}, not {args.model!r}")
            kwargs.update({k: v for k, v in data.items() if k != "model"})
        elif isinstance(data, list):
            kwargs["widths"] = data
        else:
            raise ValueError(f"{args.widths}: expected a list of widths or an arch object")
    model = build(args.model, **kwargs)
    print(json.dumps({"model": args.model, **count(model, convention=args.convention),
                      "convention": args.convention, "input_size": list(model.input_size),
                      "unit": {"macs": "multiply-accumulates"}}))
    return 0
