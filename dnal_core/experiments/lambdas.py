"""The table chapters' runs (Tables II-VII): one weight stage, then each lambda of the paper's
from it, each result recorded as it ends (``lam<label>.json`` and ``arch/lam<label>.json``).
"""
from __future__ import annotations

from pathlib import Path

from ..io import read_json, write_json
from ..recipes import override
from ..report import lambda_label


def run_lambdas(recipe, data, lams, runs, out, prov: dict, device: str = "auto", shared_weights: bool = True,
                workers: int = 8) -> Path:
    """Train ``recipe`` at each of ``lams`` into ``runs/lam<label>`` (checkpoints, not committed)
    and record ``out/lam<label>.json`` (``prov``, e.g. ``report.provenance(...)``, + final.json) and
    ``out/arch/lam<label>.json`` (the learned widths; ``models.build_from_arch`` rebuilds them).
    ``shared_weights``: one weight stage in ``runs/weights``, every lambda's architecture and
    finetune stages from it (the weight stage does not depend on lambda); else each lambda runs
    all stages. Killed runs resume. Returns ``out``."""
    from ..train import run_pipeline  # looked up at each call (tests stand in for it)

    runs, out = Path(runs), Path(out)
    weights = runs / "weights" / "weights.pt"
    if shared_weights and not weights.is_file():
        run_pipeline(recipe, data, weights.parent, device=device, stages=["weights"], workers=workers)
    for lam in lams:
        label = lambda_label(lam)
        kw = {"stages": ["arch", "finetune"], "weights_from": weights} if shared_weights else {}
        final = run_pipeline(override(recipe, {"lam": lam}), data, runs / f"lam{label}", device=device,
                             resume=True, workers=workers, **kw)
        write_json(out / f"lam{label}.json", {**prov, **final})
        write_json(out / "arch" / f"lam{label}.json", read_json(runs / f"lam{label}" / "arch.json"))
    return out
