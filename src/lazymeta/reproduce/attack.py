"""The meta-attack entry: Table 5, black-box attacks on a held-out classifier (MNIST and CIFAR-10, untargeted and
targeted). Every row attacks the same images of the same target with the same loop; the meta rows differ only
in how their meta-attacker was meta-trained (from the same initialisation, which is the untrained row)."""
from __future__ import annotations

from pathlib import Path

from lazymeta.infra.config import load_yaml
from lazymeta.infra.errors import ConfigError
from lazymeta.reproduce.fewshot import _available, merge
from lazymeta.reproduce.spec import Claim, Entry, Plan, Run

CONFIGS = Path(__file__).parents[3] / "configs" / "attack"
# row -> the method of lazymeta.attack that makes it
ROWS = {"ZOO": "zoo", "NES": "nes", "untrained attacker": "untrained", "meta-attack": "meta",
        "lazy meta-attack": "lazy-meta", "meta-attack at the lazy horizon": "meta-long"}
BASELINES = ("ZOO", "NES")  # the rows that cost the most CPU (a query is a forward pass of the target)
# report tables: label -> results field (the claims use each run's per-image results)
METRICS = {"table5": {
    "mean queries (successful images)": "avg_queries",
    "success rate (adversarial with L2 ≤ 20)": "success_rate",
    "mean L2 (successful images)": "avg_l2",
    "median queries (successful images)": "median_queries",
    "top-q overlap of the unadapted prediction with the true gradient, held-out target (chance: q/d)":
        "diagnostics.topq_overlap",
    "sign agreement on the predicted top-q coordinates (what the attack steps on)": "diagnostics.topq_sign_agreement",
    "sign agreement, every coordinate": "diagnostics.sign_agreement",
    "cosine to the true gradient": "diagnostics.cosine",
    "MSE to the std-normalised true gradient (zeros score 1)": "diagnostics.mse",
    "mean chosen γ (lazy)": "diagnostics.gamma",
}}
# the reference's targeted attacks run 300 iterations (CIFAR-10 untargeted: 100)
TARGETED = {"attack": {"targeted": True, "max_iterations": 300}}
SMOKE = {"data": {"train_images": 1000, "gradient_images": 200, "attack_images": 3}, "whitebox": ["lenet5"],
         "zoo": {"epochs": 1}, "attacker_width_divisor": 8,
         "attack": {"max_iterations": 3, "finetune_steps": 1, "nes_samples": 2},
         **{section: {"iterations": 1, "support": 4, "query": 4, "steps": 1 if section == "meta" else 2}
            for section in ("meta", "lazy", "long")}}

# what every scale's report says about the rows and the claims
NOTES = [
    "meta rows: the reference meta-attacker (Du et al. 2020's layer lists), all from the same initialisation "
    "(the untrained attacker) and the same support/query draws. meta-attack: Reptile, inner Adam, the "
    "reference's k = 5; lazy meta-attack: lazy-reptile (γ ∈ {0.75, ..., 0.95} chosen on the query MSE); "
    "meta-attack at the lazy horizon: plain Reptile at the lazy k (MNIST 8, CIFAR-10 10). Lazy and its plain "
    "twin differ only in the teacher's leap; under the Reptile rule θ − φ = γ(θ − φ_k), so the leap scales "
    "each task's outer step by γ",
    "claims are paired over images (each image attacked by both rows): queries on the images both attack "
    "successfully (lower is better), success rate (higher is better); diagnostics are of the unadapted "
    "prediction on the first 500 correctly classified test images of the held-out target, q = the attack's "
    "coordinates per iteration",
    "paper: n/a (the Lazy paper's Table 5 was not available offline, nor are Du et al.'s numbers quoted: their "
    "targets and scale differ)",
]


def _config(dataset: str, scale: str) -> dict:
    """The shipped config of ``dataset`` at ``scale`` (smoke: the cpu config, shrunk to seconds)."""
    path = CONFIGS / f"{dataset}-{'cpu' if scale == 'smoke' else scale}.yaml"
    if not path.exists():
        raise ConfigError(f"table5 reads {path.name} from {path.parent}: run it from a source checkout of lazymeta")
    return merge(load_yaml(path), SMOKE) if scale == "smoke" else load_yaml(path)


def _claims(column: str) -> list[Claim]:
    queries = dict(per_unit="queries", units_where="success", lower_is_better=True)
    success = dict(per_unit="success", lower_is_better=False)
    pairs = [("lazy meta-attack", "meta-attack"), ("lazy meta-attack", "meta-attack at the lazy horizon"),
             ("meta-attack", "untrained attacker"), ("meta-attack", "ZOO")]
    claims = [Claim(f"{a} − {b}, queries on the images both attack successfully, {column}", a, b, column, **queries)
              for a, b in pairs]
    claims += [Claim(f"{a} − {b}, success rate, {column}", a, b, column, **success) for a, b in pairs[:2]]
    return claims


def table5(scale: str, seeds: int, data_root: str | None) -> Plan:
    datasets = ["mnist"] if scale == "smoke" else ["mnist", "cifar10"]
    runs, columns, claims, notes = [], [], [], []
    for dataset in datasets:
        if scale != "smoke" and not _available(dataset, data_root):
            notes.append(f"{dataset}: not in the data root (`lazymeta data list`), its columns were not run")
            continue
        base = merge(_config(dataset, scale), {"data": {"root": data_root}})
        targeted = {"attack": {"targeted": True}} if scale == "smoke" else TARGETED
        for kind, overrides in (("untargeted", {}), ("targeted", targeted)):
            column = f"{dataset} {kind}"
            columns.append(column)
            claims += _claims(column)
            for row, method in ROWS.items():
                for seed in range(seeds):
                    config = merge(base, overrides, {"methods": [method], "seed": seed})
                    runs.append(Run(f"{dataset}-{kind}/{method}/s{seed}", config, row, column, seed, app="attack"))
    runs.sort(key=lambda run: run.row in BASELINES)  # the cheap meta rows first: a stopped reproduction has them
    notes += [
        f"every row of a column: the same zoo, held-out target, attacked images (the first correctly classified "
        f"test images) and attack loop (configs/attack/<dataset>-{'cpu' if scale == 'smoke' else scale}.yaml); "
        "targeted: target class = (label + 1) mod 10, 300 iterations",
    ] + NOTES
    return Plan(runs, list(ROWS), columns, claims, notes, metric="avg_queries", lower_is_better=True)


ENTRIES = {"table5": Entry("table5", "Table 5: black-box meta-attack, lazy and plain meta-attackers against ZOO "
                                     "and NES", table5)}
