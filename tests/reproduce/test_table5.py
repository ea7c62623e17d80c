"""`lazymeta reproduce table5`: rows that differ only in their method, a controlled lazy vs plain pair, and
claims paired over the attacked images (the smoke report itself runs in test_reproduce.py with every entry)."""
import pytest

from lazymeta.reproduce.attack import ROWS, _config
from lazymeta.reproduce.entries import ENTRIES
from lazymeta.reproduce.report import claim_lines
from lazymeta.reproduce.spec import Claim, Plan, Run


def test_every_row_attacks_with_the_same_settings_and_lazy_differs_from_its_twin_only_in_the_leap():
    plan = ENTRIES["table5"].plan("smoke", 2, None)
    assert plan.rows == list(ROWS) and plan.columns == ["mnist untargeted", "mnist targeted"]
    cells = {}
    for run in plan.runs:
        assert run.app == "attack" and run.config["methods"] == [ROWS[run.row]]
        shared = {k: v for k, v in run.config.items() if k != "methods"}
        cells.setdefault((run.column, run.seed), []).append(shared)
    assert len(cells) == 4 and all(len(c) == len(ROWS) and all(x == c[0] for x in c) for c in cells.values())
    for dataset, k in (("mnist", 8), ("cifar10", 10)):
        for scale in ("cpu", "paper"):
            config = _config(dataset, scale)
            lazy, long = dict(config["lazy"]), dict(config["long"])
            assert (lazy.pop("algorithm"), long.pop("algorithm")) == ("lazy-reptile", "reptile") and lazy == long
            assert lazy["steps"] == k and config["meta"]["steps"] == 5
            assert {key: v for key, v in config["meta"].items() if key != "steps"} == {
                key: v for key, v in long.items() if key != "steps"} | {"algorithm": "reptile"}


def _run(row: str, seed: int = 0) -> Run:
    return Run(f"{row}/s{seed}", {}, row, "c", seed, app="attack")


def test_claims_are_paired_over_the_images_both_rows_attacked_successfully():
    runs = [_run("lazy"), _run("plain")]
    claims = [Claim("queries", "lazy", "plain", "c", per_unit="queries", units_where="success", lower_is_better=True),
              Claim("success", "lazy", "plain", "c", per_unit="success", lower_is_better=False)]
    plan = Plan(runs, ["lazy", "plain"], ["c"], claims)
    results = {"lazy/s0": {"per_image": {"queries": [100, 110, 90, 5000, 120], "success": [1, 1, 1, 0, 1]}},
               "plain/s0": {"per_image": {"queries": [300, 290, 310, 320, 9000], "success": [1, 1, 1, 1, 0]}}}
    queries, success = claim_lines(plan, {}, "cpu", results)
    assert queries["units"] == 3 and queries["ours"] == pytest.approx(-200) and queries["verdict"] == "reproduced"
    assert success["units"] == 5 and success["ours"] == 0 and success["verdict"] == "inconclusive"
    assert claim_lines(plan, {}, "smoke", results)[0]["verdict"] == "inconclusive"  # smoke numbers mean nothing
