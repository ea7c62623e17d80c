"""What a long-tail run reports: shot groups, the printed table and the plot of the learned weights."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from lazymeta.infra.files import atomic_write

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


def format_report(r: dict) -> str:
    def line(label: str, result: dict | None) -> str:
        if result is None:
            return f"{label:<30}  n/a (no validation set: the test set never chooses the epoch)"
        groups = ", ".join(f"{k} {100 * g['accuracy']:.1f}% ({g['classes']})" if g["accuracy"] is not None
                           else f"{k} - (0)" for k, g in result["groups"].items())
        return f"{label:<30}  {result['error']:.2f}   [{groups}]"

    head = (f"{r['method']} on {r['dataset']}, imbalance {r['imbalance']:g} (real {r['real_imbalance']:.1f}), "
            f"{sum(r['train_counts'])} training images, {r['test_images']} test images, seed {r['seed']}")
    return "\n".join([head, f"{'':<30}  top-1 error %  [group accuracy (classes); {r['shot_thresholds']}]",
                      line(f"final epoch ({r['final']['epoch']})", r["final"]),
                      line(f"best validation epoch ({r['best']['epoch'] if r['best'] else '-'})", r["best"])])


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
