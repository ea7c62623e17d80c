"""Published numbers beside ours, each with its source.

The Lazy paper's own tables were not available to this project (no copy of the PDF offline), so its rows
and the paper's effect sizes read ``n/a``; the baseline rows quote the methods' own papers.
"""
from __future__ import annotations

UNAVAILABLE = ("the paper's own numbers are not in this report (its PDF was not available offline); published "
               "numbers in brackets are the baselines' own papers: MAML (Finn et al. 2017), Reptile (Nichol et al. "
               "2018, transductive)")

PUBLISHED: dict[str, dict[tuple[str, str], str]] = {
    "table1": {
        ("MAML", "5-way 1-shot"): "48.70 ± 1.84", ("MAML", "5-way 5-shot"): "63.11 ± 0.92",
        ("Reptile", "5-way 1-shot"): "49.97 ± 0.32", ("Reptile", "5-way 5-shot"): "65.99 ± 0.58",
    },
    "table2": {
        ("MAML", "miniimagenet 5w1s"): "48.70 ± 1.84", ("MAML", "miniimagenet 5w5s"): "63.11 ± 0.92",
        ("Reptile", "miniimagenet 5w1s"): "49.97 ± 0.32", ("Reptile", "miniimagenet 5w5s"): "65.99 ± 0.58",
    },
    "table3": {
        ("MAML", "omniglot 5w1s"): "98.7 ± 0.4", ("MAML", "omniglot 20w1s"): "95.8 ± 0.3",
    },
}
