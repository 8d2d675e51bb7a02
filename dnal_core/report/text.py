"""Our rows as a table, and the text a chapter prints: lambda as the paper writes it,
messages and shell commands wrapped to the page, where results came from.

  ``ours_table``     final.json records -> our baseline row and one row per lambda (with drops)
  ``lambda_label``   lambda_a written as the paper writes it ("1e-4"), the key rows match on
  ``say``, ``shell``  messages and commands wrapped to the page's 88 characters
  ``run_line``       where results came from (device, torch, date, command)
"""
from __future__ import annotations


def ours_table(finals):
    """Our rows in the columns ``paper_vs_ours`` takes, from final.json records (a DataFrame or
    list of dicts with ``lambda``, ``macs``, ``params``, ``top1``, ``top5`` and the
    ``baseline_*`` fields): first our baseline (lambda "-", the dense network of the weight
    stage, as final.json records it), then one row per lambda, smallest lambda first, with
    ``drop1``/``drop5`` = baseline - row (points; positive: worse than our baseline)."""
    import pandas as pd

    finals = pd.DataFrame(finals)
    missing = {"lambda", "macs", "params", "top1", "baseline_macs", "baseline_params",
               "baseline_top1"} - set(finals.columns)
    if missing:
        raise ValueError(f"final.json records lack {sorted(missing)}")
    if finals.empty:
        raise ValueError("no final.json records")
    finals = finals.assign(_lam=finals["lambda"].astype(float)).sort_values("_lam", kind="stable")
    top5 = finals["top5"] if "top5" in finals else float("nan")
    base = finals.iloc[0]
    base_top5 = base.get("baseline_top5", float("nan"))
    rows = pd.DataFrame({"lambda": finals["lambda"].map(lambda_label), "macs_m": finals["macs"] / 1e6,
                         "params_m": finals["params"] / 1e6, "top1": finals["top1"], "top5": top5})
    first = pd.DataFrame([{"lambda": "-", "macs_m": base["baseline_macs"] / 1e6,
                           "params_m": base["baseline_params"] / 1e6, "top1": base["baseline_top1"],
                           "top5": base_top5}])
    out = pd.concat([first, rows], ignore_index=True)
    out["drop1"] = out["top1"].iloc[0] - out["top1"]
    out["drop5"] = out["top5"].iloc[0] - out["top5"]
    return out


def lambda_label(lam) -> str:
    """lambda_a as the paper's tables write it: 1e-05, 0.0001, "1e-4" -> "1e-5", "1e-4";
    1.5e-4 -> "1.5e-4"; the baseline's "-" (or None) -> "-". Rows are matched on this label."""
    if lam is None or (isinstance(lam, str) and lam.strip() in ("", "-")):
        return "-"
    try:
        x = float(lam)
    except (TypeError, ValueError):
        return str(lam)
    if x != x:  # NaN: a row without lambda
        return "-"
    if x == 0:
        return "0"
    mantissa, exponent = f"{x:e}".split("e")
    mantissa = mantissa.rstrip("0").rstrip(".")
    return f"{mantissa}e{int(exponent)}"


PAGE_WIDTH = 88  # characters of code or text output the book's content column shows (book/_assets/dnal.css)


def say(*parts: str, width: int = PAGE_WIDTH) -> None:
    """Print ``parts`` (joined by spaces) wrapped at ``width`` characters, so a message is never
    cut at the page edge."""
    import textwrap

    print(textwrap.fill(" ".join(parts), width, break_long_words=False, break_on_hyphens=False))


def shell(cmd: str, width: int = PAGE_WIDTH) -> str:
    """A shell command as lines of at most ``width`` characters joined by `` \\`` continuations
    (indented), what a reader can paste; a single token longer than a line stays whole."""
    lines, cur = [], ""
    for tok in cmd.split():
        room = width - 2 - (4 if lines else 0)
        if cur and len(cur) + 1 + len(tok) > room:
            lines.append(cur)
            cur = tok
        else:
            cur = f"{cur} {tok}" if cur else tok
    lines.append(cur)
    return " \\\n".join(("    " if i else "") + ln for i, ln in enumerate(lines))


def run_line(finals) -> str:
    """Where results came from, from ``provenance`` fields: device (and CPU kind where recorded),
    torch, date and command."""
    r = finals.iloc[0]
    kind = r.get("cpu_kind")
    device = f"{r['device']} ({kind})" if isinstance(kind, str) and kind else r["device"]
    return f"{device}, torch {r['torch']}, {r['date']}; made by `{r['command']}`"
