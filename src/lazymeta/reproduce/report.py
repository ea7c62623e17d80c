"""A reproduction's report: mean ± 95% CI over seeds per cell, the published numbers beside them, one
verdict line per claim computed from the paired per-seed differences, a plot for figures."""
from __future__ import annotations

import math
from pathlib import Path

from lazymeta.infra.files import atomic_write, write_json, write_text
from lazymeta.reproduce.spec import Plan
from lazymeta.reproduce.stats import mean_ci, verdict


def value(results: dict, metric: str) -> float | None:
    """``metric`` of one run's results: a top-level key, or a dotted path (``support.accuracy``); None
    where the run has no such number (the teacher's choices of a non-lazy run)."""
    node = results
    for part in metric.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return float(node)


def cells(plan: Plan, results: dict[str, dict], metric: str) -> dict[tuple[str, str], dict[int, float]]:
    """(row, column) -> {seed: value} over the runs that have results."""
    out: dict[tuple[str, str], dict[int, float]] = {}
    for run in plan.runs:
        number = value(results[run.key], metric) if results.get(run.key) is not None else None
        if number is not None:
            out.setdefault((run.row, run.column), {})[run.seed] = number
    return out


def claim_lines(plan: Plan, grid: dict[tuple[str, str], dict[int, float]], scale: str,
                results: dict[str, dict] | None = None) -> list[dict]:
    """One dict per claim: the paired difference over the seeds both rows ran (or over their units, for a
    ``per_unit`` claim, from the runs' ``results``), its CI and the verdict (always inconclusive at smoke
    scale, whose numbers mean nothing)."""
    lines = []
    for claim in plan.claims:
        lower = plan.lower_is_better if claim.lower_is_better is None else claim.lower_is_better
        if claim.per_unit:
            differences, seeds = _unit_differences(plan, claim, results or {})
        else:
            better = grid.get((claim.better, claim.column), {})
            worse = grid.get((claim.worse, claim.worse_column or claim.column), {})
            seeds = sorted(set(better) & set(worse))
            differences = [better[s] - worse[s] for s in seeds]
        mean, ci = mean_ci(differences)
        line = {"claim": claim.text, "paper": claim.paper, "ours": mean, "ci95": ci, "seeds": len(seeds),
                "scale": scale, "verdict": "inconclusive" if scale == "smoke" else verdict(mean, ci, -1 if lower else 1)}
        if claim.per_unit:
            line["units"] = len(differences)
        lines.append(line)
    return lines


def _unit_differences(plan: Plan, claim, results: dict[str, dict]) -> tuple[list[float], list[int]]:
    """Per-unit differences ``better − worse`` pooled over the seeds both rows ran."""
    runs = {(run.row, run.column, run.seed): results.get(run.key) for run in plan.runs}
    differences, seeds = [], []
    for (row, column, seed), better in runs.items():
        worse = runs.get((claim.worse, claim.worse_column or claim.column, seed))
        if row != claim.better or column != claim.column or better is None or worse is None:
            continue
        seeds.append(seed)
        a, b = better["per_image"], worse["per_image"]
        keep = [True] * len(a[claim.per_unit]) if claim.units_where is None else [
            x and y for x, y in zip(a[claim.units_where], b[claim.units_where])]
        differences += [float(x) - float(y) for x, y, k in zip(a[claim.per_unit], b[claim.per_unit], keep) if k]
    return differences, seeds


def _cell(values: dict[int, float]) -> str:
    """Two decimals; small magnitudes (below 0.01, such as ‖ε‖/‖w_y‖) in scientific notation."""
    if not values:
        return "–"
    mean, ci = mean_ci(list(values.values()))
    small = 0 < abs(mean) < 0.01
    text = f"{mean:.2e}" if small else f"{mean:.2f}"
    return text if math.isnan(ci) else f"{text} ± {ci:.1e}" if small else f"{text} ± {ci:.2f}"


def table(plan: Plan, grid: dict[tuple[str, str], dict[int, float]], published: bool = False) -> str:
    """Markdown: one row per method, one column per setting, with ``published`` the published number beside ours."""
    has_published = published and bool(plan.published)
    head = "| | " + " | ".join(plan.columns) + " |"
    rows = [head, "|---|" + "---:|" * len(plan.columns)]
    for row in plan.rows:
        parts = []
        for column in plan.columns:
            text = _cell(grid.get((row, column), {}))
            if has_published:
                text += f" ({plan.published.get((row, column), 'n/a')})"
            parts.append(text)
        rows.append(f"| {row} | " + " | ".join(parts) + " |")
    return "\n".join(rows) + "\n"


def _signed(x: float) -> str:
    return "n/a" if x is None or math.isnan(x) else f"{x:+.2f}"


def claim_text(line: dict) -> str:
    ci = "" if math.isnan(line["ci95"]) else f" ± {line['ci95']:.2f}"
    seeds = f"{line['seeds']} seed" + ("s" if line["seeds"] != 1 else "")
    units = f" over {line['units']} paired images" if "units" in line else ""
    return (f"- {line['claim']}: paper {_signed(line['paper'])}; here {_signed(line['ours'])}{ci}{units} "
            f"({seeds}, {line['scale']} scale): {line['verdict']}")


def write(out: Path, name: str, title: str, scale: str, plan: Plan, results: dict[str, dict],
          metrics: dict[str, str], elapsed_min: float) -> dict:
    """``report.md``, ``report.json`` and, for a figure, ``plot.png`` in ``out``; returns the report."""
    grids = {label: cells(plan, results, metric) for label, metric in metrics.items()}
    main = next(iter(grids.values()))
    lines = claim_lines(plan, main, scale, results)
    md = [f"# {title}: {name}, {scale} scale", ""]
    if scale != "paper":
        md += [f"**{scale} scale, not the paper's setting.** " + (
            "Smoke runs only check that every step runs end to end; their numbers mean nothing." if scale == "smoke"
            else "What differs from the paper:"), ""]
    md += [f"- {note}" for note in plan.notes] + [""]
    for (label, grid), metric in zip(grids.items(), metrics.values()):
        published = bool(plan.published) and metric == plan.metric  # the papers' numbers are of the plan's metric
        md += [f"## {label}", "", "Mean ± 95% CI over seeds" + (" (published number in brackets)"
                                                                    if published else "") + ".", "",
               table(plan, grid, published)]
    md += ["## Claims", ""] + [claim_text(line) for line in lines]
    md += ["", f"Runs: {sum(r is not None for r in results.values())} of {len(plan.runs)}; "
               f"this invocation took {elapsed_min:.1f} min."]
    report = {"name": name, "title": title, "scale": scale, "notes": plan.notes, "claims": lines,
              "tables": {label: {f"{row} | {column}": values for (row, column), values in grid.items()}
                         for label, grid in grids.items()},
              "runs": {key: _without_units(r) for key, r in results.items()}}
    write_text(out / "report.md", "\n".join(md) + "\n")
    write_json(out / "report.json", _jsonable(report))
    if plan.x_axis:
        plot(plan, main, out / "plot.png", f"{title} ({scale} scale)", next(iter(metrics)))
    return report


def _without_units(results: dict | None) -> dict | None:
    """A run's results without its per-unit lists (they stay in the run's own directory)."""
    return results if results is None else {k: v for k, v in results.items() if k != "per_image"}


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def plot(plan: Plan, grid: dict[tuple[str, str], dict[int, float]], path: Path, title: str, ylabel: str) -> None:
    """One line per row against the numeric column values, with 95% CI bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 4))
    for row in plan.rows:
        points = [(float(c.split("=")[-1]), *mean_ci(list(grid[(row, c)].values())))
                  for c in plan.columns if grid.get((row, c))]
        if points:
            x, y, ci = zip(*points)
            ax.errorbar(x, y, yerr=[0 if math.isnan(e) else e for e in ci], marker="o", capsize=3, label=row)
    ax.set(xlabel=plan.x_axis, ylabel=ylabel, title=title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=120))
    plt.close(fig)
