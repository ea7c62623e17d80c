"""Table 5 of the paper for what was run, and success rate against query budget for every method."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from lazymeta.infra.files import atomic_write

Result = dict[str, list]  # per image: adversarial, success, l2, queries


def summary(result: Result) -> dict[str, float]:
    """Success rate; average L2 and average / median queries over the successful images."""
    success = np.asarray(result["success"], dtype=bool)
    l2, queries = np.asarray(result["l2"])[success], np.asarray(result["queries"])[success]
    empty = not success.any()
    return {"images": len(success), "success_rate": float(success.mean()),
            "avg_l2": float("nan") if empty else float(l2.mean()),
            "avg_queries": float("nan") if empty else float(queries.mean()),
            "median_queries": float("nan") if empty else float(np.median(queries))}


def table(results: dict[str, Result]) -> str:
    """A Markdown table, one row per method."""
    rows = ["| method | images | success rate | avg L2 | avg queries | median queries |",
            "|---|---:|---:|---:|---:|---:|"]
    for method, result in results.items():
        s = summary(result)
        rows.append(f"| {method} | {s['images']} | {100 * s['success_rate']:.1f} % | {s['avg_l2']:.3f} | "
                    f"{s['avg_queries']:,.0f} | {s['median_queries']:,.0f} |")
    return "\n".join(rows) + "\n"


def success_curve(result: Result, budgets: np.ndarray) -> np.ndarray:
    """Fraction of images attacked successfully within each query budget."""
    success = np.asarray(result["success"], dtype=bool)
    queries = np.asarray(result["queries"])[success]
    return np.array([(queries <= b).sum() for b in budgets]) / max(len(success), 1)


def plot(results: dict[str, Result], path: Path, title: str = "") -> None:
    """Success rate against query budget (log scale), every method on one chart, saved as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    top = max([max(r["queries"], default=1) for r in results.values()] + [10])
    budgets = np.unique(np.geomspace(1, top, 200).astype(int))
    fig, ax = plt.subplots(figsize=(6, 4))
    for method, result in results.items():
        ax.plot(budgets, 100 * success_curve(result, budgets), label=method)
    ax.set(xscale="log", xlabel="query budget per image", ylabel="success rate (%)", ylim=(0, 100), title=title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=120))
    plt.close(fig)
