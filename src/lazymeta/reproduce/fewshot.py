"""The few-shot entries: Tables 1-3, Figures 2 (ways, non-i.i.d.) and 3 (shots), and the two readings of
the leap. Every method of an entry gets the same data, meta-iterations, k and evaluation episodes."""
from __future__ import annotations

import copy
from dataclasses import replace

from lazymeta.reproduce.paper import PUBLISHED, UNAVAILABLE
from lazymeta.reproduce.scales import Setting, setting
from lazymeta.reproduce.spec import Claim, Entry, Plan, Run

# row -> the algorithm it runs at its paper's defaults (lazymeta.algorithms); the memory entry's rows too
ALGORITHM_ROWS = {"MAML": "maml", "FOMAML": "fomaml", "Reptile": "reptile", "lazy MAML": "lazy-maml",
                  "lazy Reptile": "lazy-reptile", "iMAML": "imaml", "Meta-SGD": "meta-sgd",
                  "Meta-MinibatchProx": "minibatchprox", "TAML": "taml", "Meta-Curvature": "meta-curvature",
                  "lazy TAML": "lazy-taml", "lazy Meta-MinibatchProx": "lazy-minibatchprox"}
# row -> the config overrides that make it (on top of the entry's setting)
METHODS = {
    "untrained start": {"iterations": 0},
    **{row: {"algorithm": {"name": name}} for row, name in ALGORITHM_ROWS.items()},
    "lazy MAML (b=1)": {"algorithm": {"name": "lazy-maml", "keep_last": 1}},
    "lazy MAML (b=3)": {"algorithm": {"name": "lazy-maml", "keep_last": 3}},
    "lazy Reptile (b=1)": {"algorithm": {"name": "lazy-reptile", "keep_last": 1}},
    "lazy Reptile (b=3)": {"algorithm": {"name": "lazy-reptile", "keep_last": 3}},
    "lazy MAML, leap-rate reading": {"algorithm": {"name": "lazy-maml"}, "teacher": {"reading": "leap-rate"}},
    "lazy MAML, literal reading": {"algorithm": {"name": "lazy-maml"}, "teacher": {"reading": "literal"}},
}
# Tables 2 and 3 also run every other algorithm of the library, so that each is compared at one budget
COMPARATORS = ["iMAML", "Meta-SGD", "Meta-MinibatchProx", "Meta-Curvature", "TAML", "lazy TAML",
               "lazy Meta-MinibatchProx"]
COMPARATOR_NOTE = ("comparators at their papers' defaults: iMAML λ = 2, 5 CG steps, damping 1; Meta-MinibatchProx "
                   "λ = 2; TAML entropy weight 1; Meta-SGD's rates and Meta-Curvature's factors start at the plain "
                   "student's rule; the same k, data and budget as every row; no claim lines (the paper's numbers "
                   "are not available offline)")


def merge(base: dict, *overrides: dict) -> dict:
    """A deep copy of ``base`` with each override's leaves written over it."""
    out = copy.deepcopy(base)
    for override in overrides:
        for key, value in override.items():
            if isinstance(value, dict) and isinstance(out.get(key), dict):
                out[key] = merge(out[key], value)
            else:
                out[key] = copy.deepcopy(value)
    return out


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-=." else "-" for c in text).strip("-").lower()


def grid(base: Setting, data_root: str | None, rows: list[str], columns: dict[str, dict], seeds: int,
         prefix: str = "") -> list[Run]:
    """Every (row, column, seed): the setting, the column's overrides (task, k), the row's method, the seed."""
    runs = []
    for column, overrides in columns.items():
        for row in rows:
            for seed in range(seeds):
                config = merge(base.config(data_root), overrides, METHODS[row], {"seed": seed})
                key = "/".join(p for p in (prefix, _slug(column), _slug(row), f"s{seed}") if p)
                runs.append(Run(key, config, row, column, seed))
    return runs


def _task(ways: int, shots: int, steps: int, **episodes) -> dict:
    return {"episodes": {"ways": ways, "shots": shots, **episodes}, "algorithm": {"steps": steps}}


def _notes(*settings: Setting) -> list[str]:
    return [s.note for s in settings if s.note]


def table1(scale: str, seeds: int, data_root: str | None) -> Plan:
    s = setting(scale, "miniimagenet", (200, 150), eval_episodes=2000)
    rows = ["untrained start", "MAML", "lazy MAML (b=1)", "lazy MAML (b=3)", "Reptile", "lazy Reptile (b=1)",
            "lazy Reptile (b=3)"]
    k = 2 if scale == "smoke" else 10
    # b = 3 scores 5 γ x 231 α candidates per task at the paper's α step 0.05; 5 x 15 at 0.25 off the paper scale
    grid_step = {} if scale == "paper" else {"teacher": {"alpha_step": 0.25}}
    columns = {"5-way 1-shot": merge(_task(5, 1, k), grid_step),
               "5-way 5-shot": merge(_task(5, 5 if scale != "smoke" else 2, k), grid_step)}
    claims = [Claim(f"{lazy} − {plain}, {column}", lazy, plain, column)
              for column in columns for lazy, plain in (("lazy MAML (b=1)", "MAML"), ("lazy MAML (b=3)", "MAML"),
                                                        ("lazy Reptile (b=1)", "Reptile"),
                                                        ("lazy Reptile (b=3)", "Reptile"))]
    claims += [Claim(f"{row} − untrained start, {column}", row, "untrained start", column)
               for column in columns for row in ("lazy MAML (b=1)", "lazy Reptile (b=1)")]
    notes = _notes(s) + [f"k = {k} student steps for every method (training and test)", UNAVAILABLE]
    if grid_step:
        notes.append("b = 3: α on the simplex in steps of 0.25 (15 points; the paper's 0.05 gives 231, each a "
                     "forward pass per task)")
    return Plan(grid(s, data_root, rows, columns, seeds), rows, list(columns), claims, notes,
                published=PUBLISHED["table1"])


def fig2_ways(scale: str, seeds: int, data_root: str | None) -> Plan:
    dataset = "tieredimagenet" if scale == "paper" else "omniglot"
    # Omniglot has 20 images per class: 5 shots + 1 for D_val + 10 queries
    s = setting(scale, dataset, (100, 100), queries=10 if dataset == "omniglot" else None)
    ways = {"smoke": (5, 8), "cpu": (5, 20), "paper": (5, 20, 30, 50)}[scale]
    steps = {5: 10, 8: 2, 20: 15, 30: 20, 50: 20}
    shots = 2 if scale == "smoke" else 5
    columns = {f"N={n}": _task(n, shots, steps[n]) for n in ways}
    rows = ["untrained start", "MAML", "FOMAML", "lazy MAML"]
    claims = [Claim(f"lazy MAML − {plain}, {n}-way {shots}-shot", "lazy MAML", plain, f"N={n}")
              for n in ways for plain in ("MAML", "FOMAML")]
    notes = _notes(s) + [f"N-way {shots}-shot; k = {', '.join(str(steps[n]) for n in ways)} for N = "
                         f"{', '.join(map(str, ways))}, the same k for every method"]
    if scale == "cpu":
        notes.append("omniglot in place of tieredImageNet (its test split has 1,692 classes with rotations), "
                     "N in {5, 20} only (paper: 5, 20, 30, 50): second-order MAML at 20-way 5-shot already takes "
                     "about 6 s per meta-step here")
    return Plan(grid(s, data_root, rows, columns, seeds), rows, list(columns), claims, notes + [UNAVAILABLE],
                x_axis="N (ways)")


def fig2_noniid(scale: str, seeds: int, data_root: str | None) -> Plan:
    s = setting(scale, "omniglot", (200, 200))
    ways, k = (5, 2) if scale == "smoke" else (20, 15)
    columns = {"i.i.d.": _task(ways, 1, k), "non-i.i.d.": _task(ways, 1, k, label_order="global")}
    rows = ["untrained start", "MAML", "lazy MAML", "TAML", "lazy TAML"]
    claims = [Claim(f"lazy MAML − MAML, {ways}-way 1-shot, {column} tasks", "lazy MAML", "MAML", column)
              for column in columns]
    notes = _notes(s) + [f"{ways}-way 1-shot, k = {k} for every method; non-i.i.d.: labels follow the global class "
                         "order (label j is the task's j-th class in dataset order), at training and test",
                         "TAML and lazy TAML: the entropy-maximisation variant, entropy weight 1 (reduction term off); "
                         "no claim lines for them (the paper's figure is not available offline)",
                         UNAVAILABLE]
    return Plan(grid(s, data_root, rows, columns, seeds), rows, list(columns), claims, notes)


def fig3_shots(scale: str, seeds: int, data_root: str | None) -> Plan:
    s = setting(scale, "miniimagenet", (100, 100))
    shots = {"smoke": (1, 2, 3), "cpu": (1, 5, 20), "paper": (1, 5, 20, 50)}[scale]
    steps = {1: 10, 2: 2, 3: 2, 5: 15, 20: 15, 50: 20}
    if scale == "smoke":
        steps = dict.fromkeys(shots, 2)
    columns = {f"K={k}": _task(5, k, steps[k]) for k in shots}
    rows = ["untrained start", "MAML", "lazy MAML"]
    claims = [Claim(f"lazy MAML − MAML, 5-way {k}-shot", "lazy MAML", "MAML", f"K={k}") for k in shots]
    notes = _notes(s) + [f"5-way K-shot, k = {', '.join(str(steps[k]) for k in shots)} for K = "
                         f"{', '.join(map(str, shots))}, the same k for every method", UNAVAILABLE]
    if scale == "cpu":
        notes.append("K = 50 is not run at cpu scale: second-order MAML takes about 30 s per meta-step there "
                     "(250 support images, k = 20) on one core of this machine")
    return Plan(grid(s, data_root, rows, columns, seeds), rows, list(columns), claims, notes, x_axis="K (shots)")


def _dataset_tables(name: str, scale: str, seeds: int, data_root: str | None, datasets: dict[str, list],
                    eval_episodes: int) -> Plan:
    """Tables 2 and 3: ours (lazy MAML, lazy Reptile) and the comparators the library has, per dataset and
    task, on the datasets this machine has (the others are named in the notes)."""
    rows = ["untrained start", "MAML", "FOMAML", "Reptile", "lazy MAML (b=1)", "lazy Reptile (b=1)", *COMPARATORS]
    runs, columns, notes, claims = [], [], [], []
    k = 2 if scale == "smoke" else 10
    for dataset, tasks in datasets.items():
        if scale != "smoke" and not _available(dataset, data_root):
            notes.append(f"{dataset}: not on this machine (`lazymeta data list`), its columns were not run")
            continue
        s = setting(scale, dataset, (200, 150), eval_episodes)
        notes += _notes(s)
        for ways, shots in tasks:
            column = f"{dataset} {ways}w{shots}s"
            columns.append(column)
            shots = min(shots, 2) if scale == "smoke" else shots
            runs += grid(s, data_root, rows, {column: _task(ways, shots, k)}, seeds, prefix=_slug(dataset))
            claims += [Claim(f"{lazy} − {plain}, {column}", lazy, plain, column)
                       for lazy, plain in (("lazy MAML (b=1)", "MAML"), ("lazy Reptile (b=1)", "Reptile"))]
    notes += [f"k = {k} student steps for every method", COMPARATOR_NOTE, UNAVAILABLE]
    return Plan(runs, rows, columns, claims, notes, published=PUBLISHED.get(name, {}))


def _available(dataset: str, data_root: str | None) -> bool:
    """Whether the dataset's test split loads from ``data_root`` (without downloading anything)."""
    from lazymeta.data import load_split
    from lazymeta.data.download import DatasetError

    try:
        load_split(dataset, "test", data_root)
    except (DatasetError, FileNotFoundError, ValueError):
        return False
    return True


def table2(scale: str, seeds: int, data_root: str | None) -> Plan:
    return _dataset_tables("table2", scale, seeds, data_root,
                           {"miniimagenet": [(5, 1), (5, 5)], "tieredimagenet": [(5, 1), (5, 5)]}, 2000)


def table3(scale: str, seeds: int, data_root: str | None) -> Plan:
    return _dataset_tables("table3", scale, seeds, data_root,
                           {"omniglot": [(5, 1), (20, 1)], "cifar-fs": [(5, 1), (5, 5)]}, 1000)


def horizon(scale: str, seeds: int, data_root: str | None) -> Plan:
    """Every algorithm of the library at one long horizon, on the same tasks, k, budget and episodes: the
    comparison a researcher choosing a long-horizon method wants (MAML's memory grows with k, the lazy
    teacher's does not: the ``memory`` entry measures that side)."""
    # Omniglot has 20 images per class: 5 shots + 1 for D_val + 10 queries
    s = setting(scale, "omniglot", (100, 100), queries=10)
    ways, shots, k = (5, 2, 3) if scale == "smoke" else (20, 5, 20)
    column = f"{ways}-way {shots}-shot, k = {k}"
    rows = ["untrained start", "MAML", "FOMAML", "Reptile", "lazy MAML", "lazy Reptile", *COMPARATORS]
    pairs = (("lazy MAML", "MAML"), ("lazy MAML", "FOMAML"), ("lazy Reptile", "Reptile"), ("lazy TAML", "TAML"),
             ("lazy Meta-MinibatchProx", "Meta-MinibatchProx"))
    claims = [Claim(f"{lazy} − {plain}, {column}", lazy, plain, column) for lazy, plain in pairs]
    notes = _notes(s) + [f"{ways}-way {shots}-shot, k = {k} student steps for every method, at training and test",
                         COMPARATOR_NOTE, "time of a meta-step: the median of each run's logged meta-steps "
                         "(sampling the meta-batch included), one op thread, with whatever else ran on the machine "
                         "(the report's wall time says how long the grid took)", UNAVAILABLE]
    return Plan(grid(s, data_root, rows, {column: _task(ways, shots, k)}, seeds), rows, [column], claims, notes)


def leap_reading(scale: str, seeds: int, data_root: str | None) -> Plan:
    """Eq. (4) as printed (γ weighs θ) against γ as the leap rate toward the student, on glyphs and Omniglot."""
    rows = ["untrained start", "lazy MAML, leap-rate reading", "lazy MAML, literal reading"]
    runs, columns, notes = [], [], []
    k = 2 if scale == "smoke" else 10
    base = setting(scale, "omniglot", (600, 300))
    for dataset in ("glyphs", "omniglot"):
        s = base if dataset == "omniglot" or scale == "smoke" else replace(
            base, dataset="glyphs", image_size=None, queries=15, note="glyphs: the embedded dataset, the same network, "
                                                                       "budget and evaluation as omniglot")
        column = f"{dataset} 5w1s"
        columns.append(column)
        runs += grid(s, data_root, rows, {column: _task(5, 1, k)}, seeds, prefix=dataset)
        notes += _notes(s)
    claims = [Claim(f"leap-rate − literal reading, {c}", "lazy MAML, leap-rate reading", "lazy MAML, literal reading",
                    c) for c in columns]
    claims += [Claim(f"{row} − untrained start, {c}", row, "untrained start", c) for c in columns
               for row in rows[1:]]
    notes.append(f"lazy MAML, k = {k}, b = 1, γ grid 0.75..0.95, selection by D_val accuracy (ties: loss). "
                 "Leap-rate reading: φ = θ + γ(R − θ); literal: φ = γθ + (1 − γ)R. The paper's claim tested here "
                 "is the reading its experiments imply (leap rate); it states no number for it")
    return Plan(runs, rows, columns, claims, notes)


ENTRIES = {e.name: e for e in (
    Entry("leap-reading", "The two readings of the leap (eq. 4)", leap_reading),
    Entry("table1", "Table 1: MAML and Reptile with and without the lazy teacher, miniImageNet", table1),
    Entry("fig2-ways", "Figure 2 (left): accuracy against the number of ways", fig2_ways),
    Entry("fig2-noniid", "Figure 2 (right): non-i.i.d. tasks, Omniglot 20-way 1-shot", fig2_noniid),
    Entry("fig3-shots", "Figure 3: accuracy against the number of shots, miniImageNet 5-way", fig3_shots),
    Entry("table2", "Table 2: miniImageNet and tieredImageNet", table2),
    Entry("table3", "Table 3: Omniglot and CIFAR-FS", table3),
    Entry("horizon", "Every algorithm at a long horizon: Omniglot 20-way 5-shot, k = 20", horizon),
)}
