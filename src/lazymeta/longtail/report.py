"""What a long-tail run reports: shot groups, the reference's best-test protocol, the methods' logged
magnitudes, the printed table and the plot of the learned weights."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from lazymeta.infra.files import atomic_write
from lazymeta.longtail.methods import MAGNITUDES

MODEL, BEST, PLOT = "model.safetensors", "best.safetensors", "weights.png"
# Shot groups of the long-tail literature (Liu et al. 2019), by training images per class.
MANY_SHOT, FEW_SHOT = 100, 20  # many: n > 100; medium: 20 <= n <= 100; few: n < 20


def shot_groups(counts: list[int], per_class: list[float]) -> dict:
    """Mean accuracy of the many- (n > 100), medium- (20 <= n <= 100) and few-shot (n < 20) classes."""
    groups = {"many": lambda n: n > MANY_SHOT, "medium": lambda n: FEW_SHOT <= n <= MANY_SHOT,
              "few": lambda n: n < FEW_SHOT}
    out = {}
    for name, member in groups.items():
        accs = [a for n, a in zip(counts, per_class) if member(n)]
        out[name] = {"classes": len(accs), "accuracy": float(np.mean(accs)) if accs else None}
    return out


def best_test(metrics: list[dict]) -> dict | None:
    """The reference code's protocol: the lowest test error over the logged epochs (the earliest on ties).
    It selects the epoch on the test set, so it is optimistic; reported only to read against the papers."""
    logged = [r for r in metrics if "test_error" in r]
    if not logged:
        return None
    best = min(logged, key=lambda r: (r["test_error"], r["epoch"]))
    return {"epoch": best["epoch"], "error": best["test_error"]}


def magnitudes(metrics: list[dict]) -> dict | None:
    """Means over the epochs that logged them of the per-epoch magnitudes (:data:`MAGNITUDES`), the γ
    histogram summed over those epochs and the share of batches at its lowest and highest γ; None when the
    method logged none."""
    logged = [r for r in metrics if any(key in r for key in MAGNITUDES)]
    if not logged:
        return None
    out: dict = {"epochs": len(logged)}
    for key in MAGNITUDES:
        values = [r[key] for r in logged if key in r]
        if values:
            out[key] = float(np.mean(values))
    histograms = [r["gamma_histogram"] for r in logged if "gamma_histogram" in r]
    if histograms:
        total = {g: sum(h[g] for h in histograms) for g in histograms[0]}
        batches = sum(total.values())
        grid = sorted(total, key=float)
        out.update(gamma_histogram=total, gamma_low=total[grid[0]] / batches, gamma_high=total[grid[-1]] / batches)
    return out


MAGNITUDE_LABELS = {"lookahead_step": "‖θ̃ − θ‖", "student_displacement": "‖φ_k − θ̃‖",
                    "eps_relative": "‖ε‖/‖w_y‖", "gamma": "mean γ"}


def format_report(r: dict) -> str:
    def line(label: str, result: dict | None) -> str:
        if result is None:
            return f"{label:<30}  n/a (no validation set: the test set never chooses the epoch)"
        groups = ", ".join(f"{k} {100 * g['accuracy']:.1f}% ({g['classes']})" if g["accuracy"] is not None
                           else f"{k} - (0)" for k, g in result["groups"].items())
        return f"{label:<30}  {result['error']:.2f}   [{groups}]"

    head = (f"{r['method']} on {r['dataset']}, imbalance {r['imbalance']:g} (real {r['real_imbalance']:.1f}), "
            f"{sum(r['train_counts'])} training images, {r['test_images']} test images, seed {r['seed']}")
    lines = [head, f"{'':<30}  top-1 error %  [group accuracy (classes); {r['shot_thresholds']}]",
             line(f"final epoch ({r['final']['epoch']})", r["final"]),
             line(f"best validation epoch ({r['best']['epoch'] if r['best'] else '-'})", r["best"])]
    if r["best_test"]:
        lines.append(f"{'best test epoch (' + str(r['best_test']['epoch']) + ')':<30}  {r['best_test']['error']:.2f}"
                     "   (the reference's protocol: selects the epoch on the test set)")
    m = r["magnitudes"]
    if m:
        found = ", ".join(f"{label} {m[key]:.3g}" for key, label in MAGNITUDE_LABELS.items() if key in m)
        lines.append(f"magnitudes, mean over {m['epochs']} re-weighted epochs: {found}")
        if "gamma_histogram" in m:
            lines.append("chosen γ (batches): " + ", ".join(f"{g}: {n}" for g, n in m["gamma_histogram"].items()))
    return "\n".join(lines)


def plot_weights(results: dict, path: Path) -> None:
    """Mean (± std) learned example weight of each class against its training size, beside w_y (top), and
    the learned part ``w - w_y`` (bottom: ε is often small next to w_y)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    counts, learned, base = results["train_counts"], results["learned_weights"], results["class_weights"]
    fig, (top, bottom) = plt.subplots(2, 1, sharex=True, figsize=(5, 5))
    top.plot(counts, base, "k--", lw=1, label="class-balanced $w_y$")
    if learned:
        label = f"learned weights, epoch {learned['epoch']}"
        top.errorbar(counts, learned["mean"], yerr=learned["std"], fmt="o", ms=4, capsize=2, label=label)
        bottom.errorbar(counts, [m - b for m, b in zip(learned["mean"], base)], yerr=learned["std"], fmt="o", ms=4,
                        capsize=2)
    top.set(xscale="log", ylabel="example weight",
            title=f"{results['method']} on {results['dataset']} (imbalance {results['imbalance']:g})")
    top.legend(fontsize=8)
    bottom.axhline(0, color="k", lw=0.5)
    bottom.set(xlabel="training images of the class", ylabel="learned $-$ $w_y$")
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=120))
    plt.close(fig)
