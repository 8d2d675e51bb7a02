"""The book's front-page status: for every chapter, which results it shows (profile, device,
date) and whether they reproduce the paper's claim, read from the committed ``results/``
folders (never typed by hand). ``book/build.py`` writes it to ``book/_status.md``, which the
intro page includes, before every build.
"""
from __future__ import annotations

import json
from pathlib import Path

from .criteria_view import EQUAL_MACS
from .report import best_profile, repo_root

# chapter -> (what the paper claims there, in a few words)
CLAIMS = {
    "fig1_scaled_sigmoid": "sigmoid(delta s) tends to binary(s); eq. 6's erratum",
    "fig2_algorithm": "Alg. 1, line by line",
    "method_details": "sequential stages, zero-padding alignment, eq. 5",
    "quickstart": "the whole procedure on digits",
    "table1_vgg16_cifar10": "VGG16: 1.9x fewer MACs for no drop, 5.1x for 1.4 points",
    "table2_resnet56_cifar10": "ResNet56: 3.4x for 0.95 points",
    "table3_mobilenetv2_cifar10": "MobileNetV2: 2.5x for 0.3 points",
    "fig3_gate_histograms": "every gate binary at delta = 1e4",
    "fig4_ss_placement": "Conv-BN-SS-ReLU and Conv-BN-ReLU-SS close; Conv-SS-BN-ReLU worse",
    "fig5_joint_vs_sequential": "sequential ends ahead of joint",
    "table4_vgg16_imagenet": "VGG16 on ImageNet: 3.3x for 3 points",
    "table5_resnet50_imagenet": "ResNet50 on ImageNet: 2.3x for 1.5 points",
    "table6_mobilenetv2_imagenet": "MobileNetV2 on ImageNet: 1.4x for 0.5 points",
    "table7_proxyless_imagenet": "a supernet searched to 3.6M params at 75.0%",
    "prune_your_own": "beyond the paper: DNAL on any CNN",
    "budget_vgg16_cifar10": "beyond the paper: a MACs budget instead of lambda",
    "criteria_vgg16_cifar10": "beyond the paper: what decides the result (scratch training, width)",
}


# The lambda-sweep chapters' verdict is the drop from the dense control of the finetuned network
# nearest the MACs reduction of the paper's claim (Table I's 1.9x, Table II's 3.4x), within two
# points (the paper's drops there: none and 0.95), and how often it beats uniform width.
SWEEP_AT = {"table1_vgg16_cifar10": 2.0, "table2_resnet56_cifar10": 3.4}


def _word(ok: bool, profile: str) -> str:
    """The verdict's first word: "reproduced", or "not reproduced at <profile> scale"."""
    return "reproduced" if ok else f"not reproduced at {profile} scale"


def _equal_macs(a: float, b: float) -> bool:
    return abs(a / b - 1) <= EQUAL_MACS
ALWAYS_REAL = {"fig1_scaled_sigmoid", "fig2_algorithm", "method_details", "quickstart"}  # no training profile to speak of


def _first(folder: Path, key: str):
    """``key`` of the first result in ``folder`` (a JSON object, or a JSON-lines file's first line) that has it."""
    for f in sorted(folder.rglob("*.json*")):
        try:
            text = f.read_text()
            obj = json.loads(text.splitlines()[0] if f.suffix == ".jsonl" and text.strip() else text)
        except (OSError, IndexError, json.JSONDecodeError):
            continue
        if isinstance(obj, dict) and obj.get(key):
            return obj[key]
    return None


def _binary_at_the_end(folder: Path) -> bool | None:
    """Fig. 3's claim, from its JSON lines: at the last search epoch of every model no gate lies
    strictly between the outer histogram bins."""
    ends = {}
    for f in sorted(folder.glob("*.jsonl")):
        for line in f.read_text().splitlines():
            r = json.loads(line) if line.strip() else {}
            if r.get("stage") == "arch" and r.get("gate_hist"):
                ends[f.name] = r  # lines are in epoch order
    if not ends:
        return None
    return all(sum(r["gate_hist"][1:-1]) == 0 for r in ends.values())


def verdict(name: str, profile: str, folder: Path) -> str:
    """Whether the committed results reproduce the claim, in a few words, computed from them."""
    if name in ALWAYS_REAL:
        return "shown (exact or self-checking)"
    if name == "fig3_gate_histograms" and _binary_at_the_end(folder) is not None:
        ok = _binary_at_the_end(folder)
        return f"{_word(ok, profile)}: gates {'all' if ok else 'not all'} 0 or 1 at the end of the search"
    if profile == "smoke":
        return "machinery check only (chance-level accuracy)"
    if name in SWEEP_AT and any(folder.glob("lam*.json")):
        from .report_cpu import table1_rows

        rows = table1_rows(folder)
        r = rows.iloc[(rows["macs_x"] - SWEEP_AT[name]).abs().argmin()]
        u = rows.dropna(subset=["uniform_top1"])
        beats = (f"; above uniform width at equal MACs at {int((u['dnal_minus_uniform'] > 0).sum())} of {len(u)} "
                 f"sizes" if len(u) else "")
        if r["drop"] != r["drop"]:
            return f"at {r['macs_x']:.1f}x fewer MACs: no dense control yet{beats}"
        ok = r["drop"] <= 2.0  # SWEEP_AT: two points at the reduction of the paper's claim
        return f"{_word(ok, profile)}: a {r['drop']:.1f}-point drop at {r['macs_x']:.1f}x fewer MACs{beats}"
    if name == "fig5_joint_vs_sequential":
        return _fig5(folder, profile) or f"{profile} results: see the chapter"
    if name == "fig4_ss_placement":
        got = _placements(folder, profile)
        if got is not None:
            return got
    if name == "budget_vgg16_cifar10":
        ends = [json.loads(f.read_text()) for f in sorted(folder.glob("*.json"))]
        ends = sorted((r for r in ends if r.get("budget")), key=lambda r: -r["target"])
        if ends:
            from .budget import ABOVE, BELOW

            met = sum(BELOW <= r["budget"]["of_target"] <= ABOVE for r in ends)
            each = ", ".join(f"{r['target']:g} -> {r['budget']['fraction']:.3f} ({r['top1']:.1f}%)" for r in ends)
            return (f"{_word(met == len(ends), profile)}: {met} of {len(ends)} budgets met, MACs fraction "
                    f"(top-1): {each}")
    if name == "criteria_vgg16_cifar10" and (folder / "rows.jsonl").is_file():
        from .criteria import read_rows
        from .criteria_view import base_rows, scratch_table, scratch_verdict

        rows = read_rows(folder / "rows.jsonl")
        return scratch_verdict(scratch_table(base_rows(rows))) + _seeds(rows)
    return f"{profile} results: see the chapter"


def _seeds(rows: list[dict]) -> str:
    """The criteria chapter's seeds, where two or more exist at a size: eq. 4 minus uniform width
    at equal MACs (each seed against its own controls), mean and spread, and the verdict."""
    from .criteria_view import seed_summary, seed_table

    t = seed_summary(seed_table(rows))
    if not len(t):
        return ""
    t = t[(t["what"] == "eq. 4 - uniform width") & (t["n"] >= 2)]
    parts = [f"near {r.reduction:g}x over {r.n} seeds, eq. 4 minus uniform width {r.mean:+.2f} "
             f"(sd {r.sd:.2f}): {r.verdict}" for r in t.itertuples()]
    return "; " + "; ".join(parts) if parts else ""


def _fig5(folder: Path, profile: str) -> str | None:
    """Fig. 5's verdict at equal MACs: its own sequential and joint networks where their MACs
    agree within 2%, else the joint network against the Table I network (the sequential search
    at the same profile) within 2% of its MACs; a sentence saying it cannot compare otherwise."""
    ends = {f.stem.rsplit("_", 1)[-1]: json.loads(f.read_text()) for f in sorted(folder.glob("*.json"))}
    if not {"sequential", "joint"} <= set(ends):
        return None
    seq, joint = ends["sequential"], ends["joint"]
    if not _equal_macs(seq["macs"], joint["macs"]):
        table1 = folder.parent.parent / "table1_vgg16_cifar10" / profile
        twins = [json.loads(f.read_text()) for f in sorted(table1.glob("lam*.json"))]
        twins = [t for t in twins if t.get("macs") and _equal_macs(t["macs"], joint["macs"])]
        if not twins:
            return (f"cannot compare at equal MACs: sequential {seq['top1']:.1f}% at {seq['macs'] / 1e6:.1f}M, "
                    f"joint {joint['top1']:.1f}% at {joint['macs'] / 1e6:.1f}M")
        seq = min(twins, key=lambda t: abs(t["macs"] / joint["macs"] - 1))
    return (f"{_word(seq['top1'] > joint['top1'], profile)}: at equal MACs ({joint['macs'] / 1e6:.2f}M), "
            f"sequential {seq['top1']:.1f}%, joint {joint['top1']:.1f}% after finetuning")


def _placements(folder: Path, profile: str) -> str | None:
    """Fig. 4's verdict from its final networks (<model>_<placement>_seed<k>.json): the two
    placements after BN within the seeds' spread of each other, and Conv-SS-BN-ReLU below both
    (top-1 after finetuning, mean over seeds). None without all three placements."""
    from .models import PLACEMENTS

    top, macs = {}, {}
    for f in sorted(folder.glob("*_seed*.json")):
        r = json.loads(f.read_text())
        top.setdefault(r.get("placement"), []).append(r["top1"])
        if r.get("macs"):
            macs.setdefault(r.get("placement"), []).append(r["macs"])
    if not set(PLACEMENTS) <= set(top):
        return None
    mean = {p: sum(v) / len(v) for p, v in top.items()}
    spread = max((max(v) - min(v) for v in top.values()), default=0.0)
    a, b, c = mean["conv-bn-ss-relu"], mean["conv-bn-relu-ss"], mean["conv-ss-bn-relu"]
    ok = abs(a - b) <= max(spread, 0.5) and c < min(a, b)
    text = (f"after finetuning Conv-BN-SS-ReLU {a:.1f}%, Conv-BN-ReLU-SS {b:.1f}%, Conv-SS-BN-ReLU {c:.1f}% "
            f"(mean of {min(map(len, top.values()))} seeds; seed spread up to {spread:.1f})")
    m = {p: sum(v) / len(v) for p, v in macs.items()}
    if set(PLACEMENTS) <= set(m) and not all(_equal_macs(m[p], m["conv-bn-ss-relu"]) for p in PLACEMENTS):
        sizes = ", ".join(f"{m[p] / 1e6:.1f}M" for p in ("conv-bn-ss-relu", "conv-bn-relu-ss", "conv-ss-bn-relu"))
        return f"cannot compare at equal MACs (one lambda: mean MACs {sizes}): {text}"
    return f"{_word(ok, profile)}: {text}"


def status_rows(root: Path | None = None) -> list[dict]:
    """One row per chapter: name, profile shown, device, date, claim, verdict."""
    root = Path(root) if root else repo_root()
    rows = []
    for name in CLAIMS:
        if not (root / "notebooks" / f"{name}.py").is_file():
            continue
        profile = best_profile(name, root / "results")
        folder = root / "results" / name / profile
        rows.append({"chapter": name, "profile": "-" if name in ALWAYS_REAL else profile,
                     "device": _first(folder, "device") or "-",
                     "date": _first(folder, "date") or "-", "claim": CLAIMS[name],
                     "reproduced": verdict(name, profile, folder)})
    return rows


def status_markdown(root: Path | None = None) -> str:
    """The status table as MyST markdown (chapter names link to their pages)."""
    lines = ["| chapter | results shown | device, date | the paper's claim | reproduced? |",
             "| --- | --- | --- | --- | --- |"]
    for r in status_rows(root):
        lines.append(f"| [{r['chapter']}](chapters/{r['chapter']}) | {r['profile']} | {r['device']}, {r['date']} "
                     f"| {r['claim']} | {r['reproduced']} |")
    return "\n".join(lines) + "\n"
